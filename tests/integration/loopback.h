// tests/integration/loopback.h — what the test-server launchers (s3rver, Azurite) share: where
// scripts/setup.sh installed a server, a free TCP port on 127.0.0.1, and a check that a server
// accepts connections on one.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace haven::testing {

// The npm-installed binary `name` under $HAVEN_TEST_SERVERS or /opt/haven-test-servers; "" if
// neither has it.
inline std::string test_server_binary(const std::string& name) {
  std::vector<std::string> roots;
  if (const char* r = std::getenv("HAVEN_TEST_SERVERS"); r != nullptr && *r != '\0') roots.push_back(r);
  roots.push_back("/opt/haven-test-servers");
  for (const auto& root : roots) {
    std::string p = root + "/node_modules/.bin/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

inline int loopback_free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

inline bool loopback_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace haven::testing

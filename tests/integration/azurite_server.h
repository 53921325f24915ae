// tests/integration/azurite_server.h — starts a private Azurite blob server on loopback for a
// test suite and stops it afterwards.
//
// Azurite is looked up as $HAVEN_TEST_SERVERS/node_modules/.bin/azurite-blob, then under
// /opt/haven-test-servers. It listens on 127.0.0.1 on a free port, keeps its data in a fresh
// temporary directory, and runs in its own process group so that stop() ends node and anything
// it spawned. Not thread-safe (used from SetUpTestSuite/TearDownTestSuite).
#pragma once

#include "integration/loopback.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace haven::testing {

class AzuriteServer {
 public:
  // The well-known Azurite development account.
  static constexpr const char* kAccount = "devstoreaccount1";
  static constexpr const char* kKey =
      "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

  AzuriteServer() = default;
  AzuriteServer(const AzuriteServer&) = delete;
  AzuriteServer& operator=(const AzuriteServer&) = delete;
  ~AzuriteServer() { stop(); }

  static std::string find_binary() { return test_server_binary("azurite-blob"); }

  // Starts the server; returns an empty string on success, else why it failed.
  std::string start() {
    std::string bin = find_binary();
    if (bin.empty()) return "azurite-blob not found (set HAVEN_TEST_SERVERS)";
    char tmpl[] = "/tmp/haven-azurite-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
    dir_ = tmpl;
    port_ = loopback_free_port();
    if (port_ == 0) return "no free port";
    std::string port = std::to_string(port_);
    pid_ = ::fork();
    if (pid_ < 0) return "fork failed";
    if (pid_ == 0) {
      ::setpgid(0, 0);
      int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      ::execl(bin.c_str(), bin.c_str(), "--blobHost", "127.0.0.1", "--blobPort", port.c_str(),
              "--location", dir_.c_str(), "--silent", "--skipApiVersionCheck", "--loose",
              "--disableTelemetry", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (loopback_accepts(port_)) return "";
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return "azurite-blob exited during start-up";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    stop();
    return "azurite-blob did not accept connections within 20 s";
  }

  void stop() {
    if (pid_ > 0) {
      // SIGKILL at once: the data is throw-away, and a graceful SIGTERM waits for clients'
      // idle keep-alive connections to close.
      ::kill(-pid_, SIGKILL);
      int status;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  int port() const { return port_; }
  // Path-style endpoint of the development account.
  std::string endpoint() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + kAccount;
  }
  std::string connection_string(const std::string& key = kKey) const {
    return "DefaultEndpointsProtocol=http;AccountName=" + std::string(kAccount) +
           ";AccountKey=" + key + ";BlobEndpoint=" + endpoint() + ";";
  }

 private:

  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

// One Azurite for a whole test binary (every test gets its own container); nullptr when it is
// not installed or did not start.
inline AzuriteServer* azurite_server() {
  static AzuriteServer server;
  static std::string why = AzuriteServer::find_binary().empty() ? "azurite is not installed"
                                                                : server.start();
  return why.empty() ? &server : nullptr;
}

}  // namespace haven::testing

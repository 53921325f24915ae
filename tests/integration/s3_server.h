// tests/integration/s3_server.h — starts a private s3rver (S3 API emulator) on loopback for a
// test suite and stops it afterwards.
//
// s3rver is looked up as $HAVEN_TEST_SERVERS/node_modules/.bin/s3rver, then under
// /opt/haven-test-servers. It accepts the access key S3RVER with secret S3RVER and, in 3.7.1,
// checks the access key but not the V4 signature (the signer has its own known-answer test).
// With --service-endpoint localhost it also serves virtual-hosted style requests to
// <bucket>.s3.localhost, which curl resolves to loopback by itself. It listens on 127.0.0.1 on a free port, keeps its data in a fresh
// temporary directory, and runs in its own process group so that stop() ends node and anything
// it spawned. Not thread-safe (used from SetUpTestSuite/TearDownTestSuite).
#pragma once

#include "integration/loopback.h"
#include <arpa/inet.h>
#include <fcntl.h>
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

class S3rverServer {
 public:
  static constexpr const char* kAccessKey = "S3RVER";
  static constexpr const char* kSecretKey = "S3RVER";

  S3rverServer() = default;
  S3rverServer(const S3rverServer&) = delete;
  S3rverServer& operator=(const S3rverServer&) = delete;
  ~S3rverServer() { stop(); }

  static std::string find_binary() { return test_server_binary("s3rver"); }

  // Starts the server; returns an empty string on success, else why it failed.
  //
  // s3rver 3.7.1 makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3 (Node 17
  // and later) only offers through its legacy provider: without it every truncated listing is
  // an HTTP 500. So the server runs with --openssl-legacy-provider, and without it on a Node
  // too old to know the flag (which then has DES anyway).
  // With `key_file` and `cert_file` (PEM), the server speaks HTTPS only.
  std::string start(const std::string& key_file = "", const std::string& cert_file = "") {
    tls_key_ = key_file;
    tls_cert_ = cert_file;
    std::string why = start_once(true);
    if (why == kExited) why = start_once(false);
    return why;
  }

 private:
  static constexpr const char* kExited = "s3rver exited during start-up";

  std::string start_once(bool legacy_openssl) {
    std::string bin = find_binary();
    if (bin.empty()) return "s3rver not found (set HAVEN_TEST_SERVERS)";
    char tmpl[] = "/tmp/haven-s3rver-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
    dir_ = tmpl;
    port_ = loopback_free_port();
    if (port_ == 0) return "no free port";
    std::string port = std::to_string(port_);
    pid_ = ::fork();
    if (pid_ < 0) return "fork failed";
    if (pid_ == 0) {
      ::setpgid(0, 0);
      if (legacy_openssl) ::setenv("NODE_OPTIONS", "--openssl-legacy-provider", 1);
      int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      if (tls_key_.empty()) {
        ::execl(bin.c_str(), bin.c_str(), "--directory", dir_.c_str(), "--port", port.c_str(),
                "--address", "127.0.0.1", "--silent", "--service-endpoint", "localhost",
                static_cast<char*>(nullptr));
      } else {
        ::execl(bin.c_str(), bin.c_str(), "--directory", dir_.c_str(), "--port", port.c_str(),
                "--address", "127.0.0.1", "--silent", "--service-endpoint", "localhost", "--key", tls_key_.c_str(), "--cert",
                tls_cert_.c_str(), static_cast<char*>(nullptr));
      }
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (loopback_accepts(port_)) return "";
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        stop();  // removes the data directory
        return kExited;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    stop();
    return "s3rver did not accept connections within 20 s";
  }

 public:
  void stop() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGTERM);
      int status;
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          ::kill(-pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      pid_ = -1;
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  int port() const { return port_; }
  std::string endpoint() const {
    return (tls_key_.empty() ? "http" : "https") + std::string("://127.0.0.1:") + std::to_string(port_);
  }
  const std::string& dir() const { return dir_; }

 private:

  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
  std::string tls_key_, tls_cert_;
};

// One s3rver for a whole test binary (every test gets its own bucket); nullptr when it is not
// installed or did not start.
inline S3rverServer* s3_server() {
  static S3rverServer server;
  static std::string why = S3rverServer::find_binary().empty() ? "s3rver is not installed"
                                                               : server.start();
  return why.empty() ? &server : nullptr;
}

}  // namespace haven::testing

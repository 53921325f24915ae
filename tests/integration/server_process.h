// tests/integration/server_process.h — `haven server --config F --port 0` as a child process
// for a test: its port (read from its log), its log, signals. Killed when it goes out of scope.
#pragma once

#include <fcntl.h>
#include <signal.h>

#include <chrono>
#include <optional>
#include <regex>
#include <string>
#include <thread>

#include "support/fs_test_util.h"
#include "util/subprocess.h"

namespace haven {
namespace {

class ServerProcess {
 public:
  ServerProcess(const std::string& config, const std::string& log) : log_(log) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    SpawnOptions o;
    o.argv = {HAVEN_BINARY, "server", "--config", config, "--port", "0"};
    o.stdout_fd = fd;
    o.stderr_fd = fd;
    auto p = Subprocess::spawn(o);
    ::close(fd);
    if (!p.ok()) return;
    proc_.emplace(std::move(*p));
    for (int i = 0; i < 1000 && port_ == 0; ++i) {
      std::smatch m;
      std::string text = read_file(log_);
      static const std::regex re("listening on port ([0-9]+)");
      if (std::regex_search(text, m, re)) port_ = std::stoi(m[1]);
      else std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~ServerProcess() {
    if (proc_) {
      proc_->send_signal(SIGKILL);
      (void)proc_->wait(CancelToken());
    }
  }
  int port() const { return port_; }
  std::string log() const { return read_file(log_); }
  void signal(int sig) { proc_->send_signal(sig); }
  int wait() {
    auto r = proc_->wait(CancelToken());
    proc_.reset();
    return r.ok() ? *r : -1;
  }

 private:
  std::string log_;
  std::optional<Subprocess> proc_;
  int port_ = 0;
};

}  // namespace
}  // namespace haven

// cli/progress.h — renders the event path for a person or a program: on a terminal, a live
// status line on stderr plus warnings; with --json, every event as one JSON line on stdout;
// otherwise (a pipe) only warnings and errors on stderr.
#pragma once

#include <chrono>
#include <mutex>

#include "util/events.h"

namespace haven::cli {

class CliSink : public EventSink {
 public:
  CliSink(bool json, bool quiet);
  ~CliSink() override;
  void emit(const Event& e) override;
  void clear_line();

 private:
  bool json_;
  bool quiet_;
  bool tty_;
  bool line_shown_ = false;
  std::mutex mu_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

std::string human_bytes(uint64_t n);

}  // namespace haven::cli

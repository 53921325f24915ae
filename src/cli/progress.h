// cli/progress.h — renders the event path for a person or a program: on a terminal, a live
// status line on stderr plus warnings and errors; with --json, every event as one JSON line on
// stdout (progress at most once a second); otherwise (a pipe) only warnings and errors on
// stderr. Rendering runs on a thread of its own (AsyncSink), so a slow terminal or a reader of
// the JSON that does not keep up never stalls the operation.
#pragma once

#include <chrono>
#include <mutex>

#include "util/events.h"

namespace haven::cli {

// Writes events to the terminal / stdout (the synchronous part).
class EventRenderer : public EventSink {
 public:
  EventRenderer(bool json, bool quiet);
  void emit(const Event& e) override;
  void clear_line();

 private:
  bool json_;
  bool quiet_;
  bool tty_;
  bool line_shown_ = false;
  std::mutex mu_;
  std::chrono::steady_clock::time_point last_{};
};

// What commands hand to operations: the renderer behind an AsyncSink.
class CliSink : public EventSink {
 public:
  CliSink(bool json, bool quiet) : renderer_(json, quiet), async_(renderer_) {}
  ~CliSink() override { clear_line(); }
  void emit(const Event& e) override { async_.emit(e); }
  // Waits until everything emitted is written, then removes the status line (before a
  // command prints its result).
  void clear_line() {
    async_.flush();
    renderer_.clear_line();
  }

 private:
  EventRenderer renderer_;
  AsyncSink async_;
};

std::string human_bytes(uint64_t n);
// One status line for a progress report: "1204 files, 1.2 GiB of 3.4 GiB, 98.0 MiB/s, ETA 23 s"
// or "packs 12/40".
std::string progress_line(const Progress& p);

}  // namespace haven::cli

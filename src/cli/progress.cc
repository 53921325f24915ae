#include "cli/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>

namespace haven::cli {

std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  char buf[32];
  snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string progress_line(const Progress& p) {
  std::string line;
  if (p.bytes_done > 0 || p.bytes_total > 0 || p.files_done > 0) {
    line = std::to_string(p.files_done) + " files, " + human_bytes(p.bytes_done);
    if (p.bytes_total > 0) line += " of " + human_bytes(p.bytes_total);
    if (p.rate > 0) line += ", " + human_bytes(static_cast<uint64_t>(p.rate)) + "/s";
  } else {
    line = p.phase + " " + std::to_string(p.items_done);
    if (p.items_total > 0) line += "/" + std::to_string(p.items_total);
  }
  if (p.eta_seconds > 0 && std::isfinite(p.eta_seconds)) {
    line += ", ETA " + std::to_string(static_cast<long long>(p.eta_seconds)) + " s";
  }
  return line;
}

EventRenderer::EventRenderer(bool json, bool quiet)
    : json_(json), quiet_(quiet), tty_(!json && !quiet && isatty(2)) {}

void EventRenderer::clear_line() {
  std::lock_guard<std::mutex> g(mu_);
  if (line_shown_) {
    std::fputs("\r\033[K", stderr);
    line_shown_ = false;
  }
}

void EventRenderer::emit(const Event& e) {
  std::lock_guard<std::mutex> g(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (json_) {
    if (e.kind == EventKind::kProgress && !e.progress->final && now - last_ < std::chrono::seconds(1)) {
      return;
    }
    if (e.kind == EventKind::kProgress) last_ = now;
    std::cout << e.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << std::endl;
    return;
  }
  if (e.kind == EventKind::kWarning || e.kind == EventKind::kError) {
    if (line_shown_) {
      std::fputs("\r\033[K", stderr);
      line_shown_ = false;
    }
    std::fprintf(stderr, "%s: %s%s%s\n", e.kind == EventKind::kWarning ? "warning" : "error",
                 e.path.c_str(), e.path.empty() ? "" : ": ", e.message.c_str());
    return;
  }
  if (e.kind == EventKind::kProgress && tty_) {
    if (!e.progress->final && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    std::fprintf(stderr, "\r\033[K%s", progress_line(*e.progress).c_str());
    std::fflush(stderr);
    line_shown_ = true;
  }
}

}  // namespace haven::cli

#include "cli/progress.h"

#include <unistd.h>

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

CliSink::CliSink(bool json, bool quiet)
    : json_(json), quiet_(quiet), tty_(!json && !quiet && isatty(2)) {}

CliSink::~CliSink() { clear_line(); }

void CliSink::clear_line() {
  if (line_shown_) {
    std::fputs("\r\033[K", stderr);
    line_shown_ = false;
  }
}

void CliSink::emit(const Event& e) {
  std::lock_guard<std::mutex> g(mu_);
  if (json_) {
    if (e.type == "progress") {
      auto now = std::chrono::steady_clock::now();
      bool final = e.data.value("final", false);
      if (!final && now - last_ < std::chrono::seconds(1)) return;
      last_ = now;
    }
    nlohmann::json j = e.data;
    j["message_type"] = e.type;
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    return;
  }
  if (e.type == "warning" || e.type == "error") {
    clear_line();
    std::string path = e.data.value("path", std::string());
    std::fprintf(stderr, "%s: %s%s%s\n", e.type.c_str(), path.c_str(), path.empty() ? "" : ": ",
                 e.data.value("message", std::string()).c_str());
    return;
  }
  if (e.type == "progress" && tty_) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    if (e.data.contains("phase")) {  // maintenance: check, prune, repair
      std::string line = e.data.value("phase", std::string()) + " " +
                         std::to_string(e.data.value("done", uint64_t{0}));
      if (uint64_t total = e.data.value("total", uint64_t{0})) line += "/" + std::to_string(total);
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      std::fflush(stderr);
      line_shown_ = true;
      return;
    }
    uint64_t files = e.data.value("files_done", uint64_t{0});
    uint64_t bytes = e.data.value("bytes_read", e.data.value("bytes", uint64_t{0}));
    uint64_t total = e.data.value("bytes_total", uint64_t{0});
    double secs = e.data.value("seconds", 0.0);
    double rate = secs > 0 ? bytes / secs : 0;
    std::string line = std::to_string(files) + " files, " + human_bytes(bytes);
    if (total > 0) line += " of " + human_bytes(total);
    if (rate > 0) line += ", " + human_bytes(static_cast<uint64_t>(rate)) + "/s";
    if (total > bytes && rate > 0) {
      line += ", ETA " + std::to_string(static_cast<int>((total - bytes) / rate)) + " s";
    }
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
    line_shown_ = true;
  }
}

}  // namespace haven::cli

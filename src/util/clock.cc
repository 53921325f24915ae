#include <cctype>
#include "util/clock.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <limits>

namespace haven {

TimeNs now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string format_time(TimeNs t) {
  time_t secs = static_cast<time_t>(t / 1000000000);
  long nanos = static_cast<long>(t % 1000000000);
  if (nanos < 0) {
    nanos += 1000000000;
    secs -= 1;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nanos);
  return buf;
}

std::optional<TimeNs> parse_time(const std::string& s) {
  int Y, M, D, h = 0, m = 0, sec = 0, consumed = 0;
  struct tm tm = {};
  if (sscanf(s.c_str(), "%4d-%2d-%2d%n", &Y, &M, &D, &consumed) != 3 || consumed != 10) {
    return std::nullopt;
  }
  size_t pos = 10;
  long nanos = 0;
  bool utc = false;
  long offset = 0;
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == ' ')) {
    int n2 = 0;
    if (sscanf(s.c_str() + pos + 1, "%2d:%2d%n", &h, &m, &n2) != 2 || n2 != 5) return std::nullopt;
    pos += 1 + 5;
    if (pos < s.size() && s[pos] == ':') {
      int n3 = 0;
      if (sscanf(s.c_str() + pos + 1, "%2d%n", &sec, &n3) != 1 || n3 != 2) return std::nullopt;
      pos += 3;
    }
    if (pos < s.size() && s[pos] == '.') {
      pos++;
      long scale = 100000000;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        nanos += (s[pos] - '0') * scale;
        scale /= 10;
        pos++;
      }
    }
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
      utc = true;
      pos++;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
      // +HH:MM, +HHMM or +HH (PostgreSQL prints "+00").
      auto digits = [&](size_t at) {
        return at + 1 < s.size() && isdigit(static_cast<unsigned char>(s[at])) &&
               isdigit(static_cast<unsigned char>(s[at + 1]));
      };
      if (!digits(pos + 1)) return std::nullopt;
      int oh = (s[pos + 1] - '0') * 10 + (s[pos + 2] - '0'), om = 0;
      size_t end = pos + 3;
      if (end < s.size() && s[end] == ':') end++;
      if (end < s.size()) {
        if (!digits(end)) return std::nullopt;
        om = (s[end] - '0') * 10 + (s[end + 1] - '0');
        end += 2;
      }
      if (oh > 23 || om > 59) return std::nullopt;
      offset = (oh * 3600L + om * 60L) * (s[pos] == '-' ? -1 : 1);
      utc = true;
      pos = end;
    }
  }
  if (pos != s.size()) return std::nullopt;
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return std::nullopt;
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  time_t secs;
  if (utc) {
    secs = timegm(&tm) - offset;
  } else {
    tm.tm_isdst = -1;
    secs = mktime(&tm);
  }
  // TimeNs spans 1677..2262: a time outside it (a server's "4052-11-22", found by fuzzing
  // S3 listings) is not one we can represent, rather than an overflow.
  constexpr int64_t kLimit = std::numeric_limits<TimeNs>::max() / 1000000000 - 1;
  if (secs > kLimit || secs < -kLimit) return std::nullopt;
  return static_cast<TimeNs>(secs) * 1000000000 + nanos;
}

}  // namespace haven

#include "retention/posix_rule.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>

namespace haven::retention {

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

namespace {

bool leap_year(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int64_t year_of_seconds(int64_t t) {
  int64_t z = (t >= 0 ? t : t - 86399) / 86400 + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  return yoe + era * 400 + (mp >= 10);
}

struct Reader {
  const std::string& s;
  size_t i = 0;
  bool done() const { return i == s.size(); }
  bool eat(char c) {
    if (i < s.size() && s[i] == c) {
      i++;
      return true;
    }
    return false;
  }
  std::optional<int64_t> number(int64_t max) {
    size_t start = i;
    int64_t n = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      n = n * 10 + (s[i++] - '0');
      if (n > max) return std::nullopt;
    }
    if (i == start) return std::nullopt;
    return n;
  }
  bool name() {
    if (eat('<')) {
      size_t close = s.find('>', i);
      if (close == std::string::npos || close - i < 3) return false;
      i = close + 1;
      return true;
    }
    size_t start = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) i++;
    return i - start >= 3;
  }
  // [+-]hh[:mm[:ss]] in seconds, hours up to max_hours.
  std::optional<int64_t> duration(int64_t max_hours) {
    int64_t sign = 1;
    if (eat('-')) sign = -1;
    else eat('+');
    auto h = number(max_hours);
    if (!h) return std::nullopt;
    int64_t secs = *h * 3600;
    if (eat(':')) {
      auto m = number(59);
      if (!m) return std::nullopt;
      secs += *m * 60;
      if (eat(':')) {
        auto sec = number(59);
        if (!sec) return std::nullopt;
        secs += *sec;
      }
    }
    return sign * secs;
  }
};

}  // namespace

std::optional<PosixRule> PosixRule::parse(const std::string& text) {
  Reader r{text};
  PosixRule p;
  if (!r.name()) return std::nullopt;
  auto off = r.duration(24);
  if (!off) return std::nullopt;
  p.std_offset_ = -*off;  // POSIX offsets count west of UTC
  if (r.done()) return p;
  if (!r.name()) return std::nullopt;
  p.has_dst_ = true;
  p.dst_offset_ = p.std_offset_ + 3600;
  if (!r.done() && r.s[r.i] != ',') {
    auto d = r.duration(24);
    if (!d) return std::nullopt;
    p.dst_offset_ = -*d;
  }
  if (!r.eat(',')) return std::nullopt;
  for (When* w : {&p.start_, &p.end_}) {
    if (w == &p.end_ && !r.eat(',')) return std::nullopt;
    if (r.eat('M')) {
      auto m = r.number(12);
      if (!m || *m < 1 || !r.eat('.')) return std::nullopt;
      auto wk = r.number(5);
      if (!wk || *wk < 1 || !r.eat('.')) return std::nullopt;
      auto d = r.number(6);
      if (!d) return std::nullopt;
      *w = When{'M', static_cast<int>(*m), static_cast<int>(*wk), static_cast<int>(*d), 7200};
    } else if (r.eat('J')) {
      auto n = r.number(365);
      if (!n || *n < 1) return std::nullopt;
      *w = When{'J', 0, 0, static_cast<int>(*n), 7200};
    } else {
      auto n = r.number(365);
      if (!n) return std::nullopt;
      *w = When{'N', 0, 0, static_cast<int>(*n), 7200};
    }
    if (r.eat('/')) {
      auto t = r.duration(167);
      if (!t) return std::nullopt;
      w->time = *t;
    }
  }
  if (!r.done()) return std::nullopt;
  return p;
}

int64_t PosixRule::instant(const When& w, int64_t year, int64_t offset) {
  int64_t day;
  if (w.kind == 'J') {
    day = days_from_civil(year, 1, 1) + w.day - 1 + (leap_year(year) && w.day >= 60 ? 1 : 0);
  } else if (w.kind == 'N') {
    day = days_from_civil(year, 1, 1) + w.day;
  } else {
    const int64_t first = days_from_civil(year, static_cast<unsigned>(w.month), 1);
    const int64_t first_wd = ((first + 4) % 7 + 7) % 7;  // 1970-01-01 was a Thursday; 0 = Sunday
    day = first + (w.day - first_wd + 7) % 7 + (w.week - 1) * 7;
    const int64_t next_month =
        w.month == 12 ? days_from_civil(year + 1, 1, 1)
                      : days_from_civil(year, static_cast<unsigned>(w.month + 1), 1);
    while (day >= next_month) day -= 7;  // week 5 = the last such day of the month
  }
  return day * 86400 + w.time - offset;
}

PosixRule::Period PosixRule::at(int64_t t) const {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (!has_dst_) return {std_offset_, kMin, kMax};
  // The transitions of the years around t, in order; DST starts at a time given in standard
  // time and ends at one given in daylight time. At the same instant the start wins (a rule
  // such as "EST5EDT,0/0,J365/25" is daylight time all year).
  struct Event {
    int64_t when;
    bool dst;
  };
  std::array<Event, 8> ev{};
  const int64_t y = year_of_seconds(t);
  size_t n = 0;
  for (int64_t yy = y - 2; yy <= y + 1; yy++) {
    ev[n++] = {instant(end_, yy, dst_offset_), false};
    ev[n++] = {instant(start_, yy, std_offset_), true};
  }
  std::stable_sort(ev.begin(), ev.end(), [](const Event& a, const Event& b) {
    return a.when != b.when ? a.when < b.when : (!a.dst && b.dst);
  });
  Period p{std_offset_, kMin, kMax};
  for (size_t i = 0; i < ev.size(); i++) {
    if (ev[i].when > t) {
      p.end = ev[i].when;
      break;
    }
    p.utc_offset = ev[i].dst ? dst_offset_ : std_offset_;
    p.begin = ev[i].when;
  }
  if (p.begin == kMin || p.end == kMax) {
    // Outside the years looked at (cannot happen for sane rules): this instant only.
    p.begin = t;
    p.end = t + 1;
  }
  return p;
}

}  // namespace haven::retention

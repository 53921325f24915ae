// Helpers for the schedule tests: UTC instants written as text, and fire times as text, so that
// expectations read as the times they are ("2026-03-29 01:00" is UTC, always).
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "schedule/cron.h"
#include "schedule/zone.h"

namespace haven::schedule::testing {

constexpr TimeNs kSecond = 1000000000;

// "YYYY-MM-DD HH:MM[:SS]" read as UTC. Aborts the test binary on a typo (a test bug).
inline TimeNs T(const std::string& text) {
  struct tm tm = {};
  int sec = 0;
  const int n = std::sscanf(text.c_str(), "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &sec);
  if (n < 5) std::abort();
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_sec = sec;
  return static_cast<TimeNs>(timegm(&tm)) * kSecond;
}

// The instant as "YYYY-MM-DD HH:MM" (UTC), with ":SS" if not on a whole minute and "+ns" if
// not on a whole second; "never" for Cron::kNever.
inline std::string iso(TimeNs t) {
  if (t == Cron::kNever) return "never";
  TimeNs s = t / kSecond;
  TimeNs ns = t % kSecond;
  if (ns < 0) {
    ns += kSecond;
    --s;
  }
  const time_t tt = static_cast<time_t>(s);
  struct tm tm = {};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min);
  std::string out = buf;
  if (tm.tm_sec != 0 || ns != 0) {
    std::snprintf(buf, sizeof buf, ":%02d", tm.tm_sec);
    out += buf;
  }
  if (ns != 0) out += "+" + std::to_string(ns) + "ns";
  return out;
}

inline Zone zone(const std::string& name) {
  Result<Zone> z = Zone::load(name);
  if (!z.ok()) {
    ADD_FAILURE() << "Zone::load(" << name << "): " << z.error().message();
    return Zone::utc();
  }
  return *z;
}

inline Cron cron(const std::string& text) {
  Result<Cron> c = Cron::parse(text);
  if (!c.ok()) {
    ADD_FAILURE() << "Cron::parse(" << text << "): " << c.error().message();
    return *Cron::parse("* * * * *");
  }
  return *c;
}

// The next n fire times of `expr` in zone `zone_name` after the UTC instant `after`, as text.
inline std::vector<std::string> fires(const std::string& expr, const std::string& zone_name,
                                      TimeNs after, size_t n) {
  std::vector<std::string> out;
  for (TimeNs t : cron(expr).next_n(after, zone(zone_name), n)) out.push_back(iso(t));
  return out;
}
inline std::vector<std::string> fires(const std::string& expr, const std::string& zone_name,
                                      const std::string& after, size_t n) {
  return fires(expr, zone_name, T(after), n);
}

using Times = std::vector<std::string>;

}  // namespace haven::schedule::testing

// retention/posix_rule.h — the POSIX TZ rule that closes a version 2+ zone file (RFC 8536 §3.3,
// e.g. "CET-1CEST,M3.5.0,M10.5.0/3"): what a zone does after the last transition its file
// lists. Debian's zone files list transitions up to 2037; the date library keeps the last listed
// offset for ever after that, so TimeZone asks this rule instead. (The date library's own
// ptz.h does the same job but does not compile as C++20 in Debian 12's version.)
//
// Supported: names plain or <quoted>, offsets [+-]hh[:mm[:ss]], rules Mm.w.d, Jn and n with
// transition times from -167 to 167 hours (RFC 8536's extension, e.g. America/Nuuk's "/-1").
// A rule with DST but without transition dates is refused (zone files always give them).
//
// Thread-safety: an immutable value; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace haven::retention {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil); shared by
// the rule and by TimeZone's calendar arithmetic.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);

class PosixRule {
 public:
  static std::optional<PosixRule> parse(const std::string& text);

  struct Period {
    int64_t utc_offset;  // seconds east of UTC
    int64_t begin, end;  // seconds since the epoch, [begin, end): the offset holds throughout
  };
  // The offset in force at t (seconds since the epoch).
  Period at(int64_t t) const;

 private:
  struct When {
    char kind = 'M';  // 'M' month.week.day, 'J' Julian day 1-365 (no Feb 29), 'N' day 0-365
    int month = 0, week = 0, day = 0;
    int64_t time = 7200;  // seconds after local midnight (default 02:00)
  };
  // Seconds since the epoch (UTC) of `w` in year y, read in local time at `offset`.
  static int64_t instant(const When& w, int64_t year, int64_t offset);

  int64_t std_offset_ = 0, dst_offset_ = 0;
  bool has_dst_ = false;
  When start_, end_;
};

}  // namespace haven::retention

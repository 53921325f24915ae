// The next fire time of a cron expression in a time zone (schedule/cron.h).
//
// Two steps. First, on the local calendar alone: the earliest matching wall-clock minute at or
// after a starting minute, skipping whole months, days and hours that cannot match (bit sets,
// no minute-by-minute scan). Second, the zone maps that wall time to an instant:
// Zone::resolve()'s `first`, the earliest instant whose local time is at or after it (rules 1
// and 2 of cron.h). That map never decreases as the wall time grows, so the next fire is the
// instant of the first matching wall time whose instant is after `after`. The search starts at
// the minute after the local time of `after` (earlier wall times were all reached by then) and
// passes over wall times whose instant is not after `after`: during the second pass of a
// repeated stretch, those wall times fired on the first pass (rule 2).
#include <bit>
#include <optional>

#include <date/date.h>

#include "schedule/cron.h"

namespace haven::schedule {
namespace {

constexpr int64_t kNsPerSecond = 1000000000;
constexpr int64_t kMinutesPerDay = 1440;
// How far the calendar search runs: 8 years and a few days, the longest wait between fires of
// an accepted expression (29 February 2096, then 2104; cron.h).
constexpr int64_t kSearchDays = 8 * 366 + 3;
// The latest instant (seconds) a TimeNs can hold.
constexpr int64_t kMaxSeconds = Cron::kNever / kNsPerSecond;

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// The lowest set bit at or above `from`, or -1.
int next_bit(uint64_t bits, int from) {
  if (from >= 64) return -1;
  const uint64_t rest = bits >> from << from;
  return rest == 0 ? -1 : std::countr_zero(rest);
}

// The one place that says how day-of-month and day-of-week combine (cron.h): either, when
// both are restricted; else both (the "*" one always matches).
bool day_matches(const Cron::Fields& f, unsigned day, unsigned weekday) {
  const bool dom = (f.days >> day & 1) != 0;
  const bool dow = (f.weekdays >> weekday & 1) != 0;
  return (!f.any_day && !f.any_weekday) ? (dom || dow) : (dom && dow);
}

date::local_days to_days(int64_t day) {
  return date::local_days{date::days{static_cast<int>(day)}};
}

int64_t from_days(date::local_days d) { return d.time_since_epoch().count(); }

// The first wall-clock minute (minutes since 1970-01-01T00:00 local) at or after `from` whose
// fields match, on a day no later than `last_day`; nullopt if none.
std::optional<int64_t> first_match(const Cron::Fields& f, int64_t from, int64_t last_day) {
  int64_t day = floor_div(from, kMinutesPerDay);
  int minute_of_day = static_cast<int>(from - day * kMinutesPerDay);
  while (day <= last_day) {
    const date::year_month_day ymd{to_days(day)};
    const unsigned month = static_cast<unsigned>(ymd.month());
    if ((f.months >> month & 1) == 0) {
      // On to the first day of the next month in the set (this year or the next).
      int next = next_bit(f.months, static_cast<int>(month) + 1);
      date::year y = ymd.year();
      if (next < 0) {
        next = next_bit(f.months, 1);
        ++y;
      }
      day = from_days(date::local_days{y / date::month{static_cast<unsigned>(next)} / 1});
      minute_of_day = 0;
      continue;
    }
    const unsigned dom = static_cast<unsigned>(ymd.day());
    const unsigned weekday = date::weekday{to_days(day)}.c_encoding();
    if (!day_matches(f, dom, weekday)) {
      // On to the next matching day of this month, or the month's end (the loop then moves on
      // to the next month).
      const unsigned last = static_cast<unsigned>((ymd.year() / ymd.month() / date::last).day());
      unsigned d = dom + 1;
      unsigned wd = (weekday + 1) % 7;
      while (d <= last && !day_matches(f, d, wd)) {
        ++d;
        wd = (wd + 1) % 7;
      }
      day += d - dom;
      minute_of_day = 0;
      continue;
    }
    const int hour = minute_of_day / 60;
    const int h = next_bit(f.hours, hour);
    if (h < 0) {
      ++day;
      minute_of_day = 0;
      continue;
    }
    const int m = next_bit(f.minutes, h == hour ? minute_of_day % 60 : 0);
    if (m < 0) {
      minute_of_day = (h + 1) * 60;
      if (minute_of_day >= kMinutesPerDay) {
        ++day;
        minute_of_day = 0;
      }
      continue;
    }
    return day * kMinutesPerDay + h * 60 + m;
  }
  return std::nullopt;
}

}  // namespace

bool Cron::matches(unsigned month, unsigned day, unsigned weekday, unsigned hour,
                   unsigned minute) const {
  if (month > 12 || day > 31 || weekday > 6 || hour > 23 || minute > 59) return false;
  return (fields_.months >> month & 1) != 0 && (fields_.hours >> hour & 1) != 0 &&
         (fields_.minutes >> minute & 1) != 0 && day_matches(fields_, day, weekday);
}

TimeNs Cron::next(TimeNs after, const Zone& zone) const {
  const int64_t after_s = floor_div(after, kNsPerSecond);
  if (after_s >= kMaxSeconds) return kNever;
  // The first wall-clock minute after the local time of `after`.
  int64_t from = floor_div(after_s + zone.utc_offset(after_s), 60) + 1;
  const int64_t last_day = floor_div(from, kMinutesPerDay) + kSearchDays;
  while (true) {
    const std::optional<int64_t> wall = first_match(fields_, from, last_day);
    if (!wall) return kNever;  // only past the end of TimeNs: every accepted Cron fires sooner
    const int64_t fire = zone.resolve(*wall * 60).first;
    if (fire > kMaxSeconds) return kNever;
    if (fire > after_s) return fire * kNsPerSecond;
    // A repeated wall time whose first occurrence is past (at most the matches in the repeated
    // stretch, 60 per hour of it, are passed over this way).
    from = *wall + 1;
  }
}

std::vector<TimeNs> Cron::next_n(TimeNs after, const Zone& zone, size_t n) const {
  std::vector<TimeNs> out;
  out.reserve(n);
  for (TimeNs t = after; out.size() < n;) {
    t = next(t, zone);
    if (t == kNever) break;
    out.push_back(t);
  }
  return out;
}

}  // namespace haven::schedule

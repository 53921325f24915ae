// schedule/zone.h — an IANA time zone for schedules: UTC offsets at an instant, and what a local
// wall-clock time maps to when daylight saving makes it nonexistent or ambiguous.
//
// A Zone is loaded by name from the system's zone files (/usr/share/zoneinfo, through Howard
// Hinnant's date library built with USE_OS_TZDB: never downloaded). Cron::next() reads its
// fields as wall-clock time in a Zone; these two lookups are all it asks of the zone, so this is
// the one place that knows where offsets come from.
//
// Limitation: Debian's zone files list transitions up to 2037 and the date library keeps the
// last listed offset after that (winter time in Europe/Berlin all year from 2038), whereas the
// files' closing POSIX rule says DST continues. retention/posix_rule.h evaluates that rule; once
// it moves down to util (schedule may include util only), period_at() and resolve() should ask
// it past the last listed transition, as retention::TimeZone does.
//
// Thread-safety: an immutable value, cheap to copy; safe from any thread (the date library loads
// each zone file once, under its own lock). Library code: never reads TZ or changes process state.
#pragma once

#include <cstdint>
#include <string>

#include "util/error.h"

namespace date {
class time_zone;
}

namespace haven::schedule {

class Zone {
 public:
  // "UTC" (also "utc") or an IANA name as the zone files spell it ("Europe/Berlin",
  // "America/Argentina/Buenos_Aires"; case matters). Errors: kInvalidArgument for an empty or
  // unknown name (the message names it and says where valid names are listed); kNotFound when
  // the system has no zone database at all (install tzdata).
  static Result<Zone> load(const std::string& name);
  // UTC without the zone database.
  static Zone utc() { return Zone(); }

  // The name as given to load() ("UTC" for utc() and "utc").
  const std::string& name() const { return name_; }

  // A stretch of time with one UTC offset, in seconds since the epoch (UTC): [begin, end).
  // Before the first and after the last known transition, begin/end are clamped to kFarPast /
  // kFarFuture (about 35,000 years away).
  struct Period {
    int64_t begin = 0;
    int64_t end = 0;
    int32_t utc_offset = 0;  // seconds east of UTC (Europe/Berlin in summer: 7200)
  };
  static constexpr int64_t kFarPast = -(int64_t{1} << 40);
  static constexpr int64_t kFarFuture = int64_t{1} << 40;
  // The period holding the instant `utc_seconds`.
  Period period_at(int64_t utc_seconds) const;
  // Seconds east of UTC at instant t.
  int32_t utc_offset(int64_t utc_seconds) const { return period_at(utc_seconds).utc_offset; }

  // What a local wall-clock time `local_seconds` (seconds since 1970-01-01T00:00 read as local
  // time) is in this zone:
  //   kUnique       it occurs once, at `first` (UTC seconds); second == first.
  //   kNonexistent  it falls in a gap (clocks jumped forward over it); `first` is the gap's end,
  //                 the instant of the transition, and second == first.
  //   kAmbiguous    it occurs twice (clocks were set back): at `first`, under the earlier
  //                 (pre-transition) offset, and again at `second` > first.
  // In every case `first` is the earliest instant whose local time is at or after the wall
  // time, which is when a schedule fires for it (schedule/cron.h).
  struct Local {
    enum class Kind { kUnique, kNonexistent, kAmbiguous };
    Kind kind = Kind::kUnique;
    int64_t first = 0;
    int64_t second = 0;
  };
  Local resolve(int64_t local_seconds) const;

 private:
  Zone() : name_("UTC") {}
  const date::time_zone* tz_ = nullptr;  // nullptr: UTC; else owned by the date library's tzdb
  std::string name_;
};

}  // namespace haven::schedule

// schedule/cron.h — cron expressions and their next fire times, read as wall-clock time in an
// IANA time zone (schedule/zone.h). Used by haven.yaml's schedules (config) and the job runner.
//
// Syntax: five fields separated by spaces or tabs, "minute hour day-of-month month day-of-week":
//   minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT
//   (0 and 7 are Sunday; names are three letters, any case). Each field is a comma-separated
//   list of items: "*" (every value), a value "5", a range "1-5" (a range of days of the week
//   may end in Sunday: "FRI-SUN" = 5,6,0), or "*" or a range with a step: "*/15"
//   (0,15,30,45), "8-18/2" (8,10,...,18); "5/15" is refused (write "5-59/15"). Ranges do not wrap around ("22-2" is refused;
//   write "22-23,0-2"). Or one macro alone: @hourly = "0 * * * *", @daily and @midnight =
//   "0 0 * * *", @weekly = "0 0 * * 0", @monthly = "0 0 1 * *", @yearly and @annually =
//   "0 0 1 1 *". Not supported: seconds or year fields, @reboot, Quartz's L W # ?, Jenkins' H.
//
// Days: as in Vixie cron, when both day-of-month and day-of-week are restricted, a day matches
// if EITHER matches ("0 0 13 * FRI": every 13th and every Friday); when either is "*", the
// other alone decides. Unlike Vixie cron, only a field that is exactly "*" counts as
// unrestricted: "*/2" restricts (Vixie treats any field starting with '*' as unrestricted).
// That keeps every accepted expression firing at least once in any 8 years (a 29 February,
// from 2096 to 2104, is the longest wait).
//
// Fire times are whole minutes of local wall-clock time in the zone, mapped to instants
// (UTC) under these daylight-saving rules:
//   1. A matching wall time that does not exist (clocks jump forward over it) fires once, at
//      the first instant after it: the end of the gap, i.e. the transition. Europe/Berlin on
//      2026-03-29 jumps from 02:00 to 03:00 CEST, so "30 2 * * *" fires at 03:00 CEST
//      (01:00Z). Several matching wall times in one gap ("*/15 2 * * *") collapse into that
//      one fire, together with a match at the gap's end itself (03:00).
//   2. A matching wall time that occurs twice (clocks set back) fires once, at its first
//      occurrence (under the earlier, pre-transition offset). Berlin on 2026-10-25 runs 02:00-
//      02:59 CEST, then 02:00-02:59 CET: "30 2 * * *" fires at 02:30 CEST (00:30Z) only;
//      "*/30 * * * *" fires at 02:00 and 02:30 CEST, not again at 02:00 or 02:30 CET, then at
//      03:00 CET.
//   3. Nothing assumes a gap or overlap of one hour, on the hour, or at 02:00: Lord Howe's
//      30-minute shift, Chatham's transitions at 02:45/03:45 (+12:45/+13:45), Havana's at
//      midnight and Casablanca's Ramadan switches follow from rules 1 and 2.
// Both rules amount to: a matching wall time W fires at the earliest instant whose local time
// is at or after W, and each instant fires at most once. (Offsets after 2037: see zone.h.)
//
// Thread-safety: a Cron is an immutable value; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "schedule/zone.h"
#include "util/clock.h"
#include "util/error.h"

namespace haven::schedule {

class Cron {
 public:
  // Parses a five-field expression or a macro (leading and trailing whitespace ignored).
  // Errors, all kInvalidArgument, each saying what to write instead:
  //   a bad field names the field and quotes it, and the bad item if the field has several:
  //   "hour field '25': must be 0-23", "hour field '1,25': '25' must be 0-23", "minute field
  //   '*/0': step must be 1-60, not 0", "hour field '22-2': range '22-2' is backwards: ranges
  //   do not wrap around; write 22-23,0-2";
  //   too few or too many fields, an unknown macro, something after a macro, an empty text;
  //   an expression that can never fire: "0 0 30 2 *", "0 0 31 4,6 *" ("... never fires: no
  //   month in the month field '2' has a day in the day-of-month field '30' ...").
  static Result<Cron> parse(std::string_view text);

  // The expression as given (trimmed).
  const std::string& text() const { return text_; }

  // Returned by next() when no fire time is representable as TimeNs (after 2262-04-11).
  static constexpr TimeNs kNever = std::numeric_limits<TimeNs>::max();

  // The first fire instant strictly after `after` (an instant exactly on a fire time gives the
  // following one), with the fields read as wall-clock time in `zone` under the rules above.
  // Skips non-matching months, days and hours; a few microseconds per call at worst.
  TimeNs next(TimeNs after, const Zone& zone) const;
  // The next n fire instants after `after`, in order (fewer if kNever is reached).
  std::vector<TimeNs> next_n(TimeNs after, const Zone& zone, size_t n) const;

  // Whether a wall-clock time matches the fields (month 1-12, day 1-31, weekday 0-6 with 0 =
  // Sunday). The caller gives a real date; DST does not enter here.
  bool matches(unsigned month, unsigned day, unsigned weekday, unsigned hour,
               unsigned minute) const;

  // The sets the fields select (bit i set = value i selected; day-of-week bit 0 = Sunday, 7 is
  // folded into 0), and whether day-of-month/day-of-week were "*".
  struct Fields {
    uint64_t minutes = 0;   // bits 0-59
    uint32_t hours = 0;     // bits 0-23
    uint32_t days = 0;      // bits 1-31
    uint16_t months = 0;    // bits 1-12
    uint8_t weekdays = 0;   // bits 0-6
    bool any_day = false;      // day-of-month was "*"
    bool any_weekday = false;  // day-of-week was "*"
    bool operator==(const Fields&) const = default;
  };
  const Fields& fields() const { return fields_; }

 private:
  Cron(std::string text, Fields fields) : text_(std::move(text)), fields_(fields) {}
  std::string text_;
  Fields fields_;
};

}  // namespace haven::schedule

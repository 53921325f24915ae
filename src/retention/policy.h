// retention/policy.h — which snapshots a retention policy keeps (`haven forget`). Pure logic:
// no repository access, no clock; the caller lists snapshots, calls apply(), and removes what
// it says to remove.
//
// Semantics (restic-like), per group, with snapshots ordered newest first (same time: lower ID
// first, so every result is deterministic):
//   keep-last N      keeps the N newest snapshots.
//   keep-hourly N    each bucket rule keeps the newest snapshot of each of the N most recent
//   keep-daily N     distinct buckets that hold a snapshot (empty buckets do not count, so
//   keep-weekly N    a week without backups does not use up a "weekly"). Buckets, in the
//   keep-monthly N   policy's time zone:
//   keep-yearly N      hourly  = local date + hour + UTC offset: the hour repeated when DST
//                                ends (02:00-03:00 twice in Europe/Berlin) is two buckets;
//                      daily   = local date;
//                      weekly  = ISO 8601 week (Monday to Sunday; the week holding a year's
//                                first Thursday is week 1, so 2026-12-31 and 2027-01-01 are
//                                both 2026-W53);
//                      monthly = local year and month;   yearly = local year.
//   keep-within D    keeps snapshots whose time is at least (newest - D), where newest is the
//                    group's newest snapshot — not "now": a host that stopped backing up keeps
//                    its last D of history instead of losing it all.
//   keep-tag T       keeps snapshots carrying any of the listed tags.
// A snapshot kept by several rules lists every rule in Decision::reasons.
// Then the limits, in this order:
//   max-copies N     if more than N are kept, the oldest kept beyond the N newest kept are
//                    removed (reason "max-copies"); 0 = no cap.
//   min-copies N     if fewer than N are kept, the newest removed ones are kept again (reason
//                    "min-copies") until N are kept or none is left.
// validate() refuses min-copies > max-copies, so the two never fight.
//
// Durations (parse_duration): fixed lengths, not calendar units: h = 1 hour, d = 24 hours,
// w = 7 days, m = 30 days, y = 365 days; terms add up ("1y6m" = 545 days); a bare number is
// days ("30" = 30 days, the seeds' `days`).
//
// Thread-safety: everything here is safe to call from any thread, also with different zones at
// once. Nothing here reads the environment or changes process state: a TimeZone is a value that
// names its zone, and conversions go through the date library's copy of the system's time-zone
// database (/usr/share/zoneinfo, read once on first use; never downloaded).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "repo/ids.h"
#include "util/clock.h"
#include "util/error.h"

namespace haven::retention {

struct Policy {
  int keep_last = 0;
  int keep_hourly = 0, keep_daily = 0, keep_weekly = 0, keep_monthly = 0, keep_yearly = 0;
  TimeNs keep_within = 0;  // 0 = rule off
  std::vector<std::string> keep_tags;
  int min_copies = 0;  // 0 = no floor
  int max_copies = 0;  // 0 = no cap
  // True if no keep rule is given (min/max-copies are limits, not rules).
  bool empty() const;
};

// kInvalidArgument, naming the option and the fix, for: a negative count or duration, an empty
// tag, min-copies > max-copies (both set), and an empty policy (it would remove everything).
Status validate(const Policy& p);

// "30d", "2w", "6m", "1y6m", "72h", "30" (days); see the header comment for unit lengths.
// kInvalidArgument naming the value and the accepted forms for anything else, and for zero.
Result<TimeNs> parse_duration(const std::string& text);

// A local time of day in a zone.
struct CivilTime {
  int year = 1970, month = 1, day = 1;  // month 1-12, day 1-31
  int hour = 0, minute = 0, second = 0;
  int weekday = 4;                      // ISO: 1 = Monday ... 7 = Sunday
  int64_t utc_offset = 0;               // seconds east of UTC (incl. DST)
};

struct IsoWeek {
  int year = 0, week = 0;  // week 1-53
  bool operator==(const IsoWeek&) const = default;
};
// The ISO 8601 week a calendar date belongs to (e.g. 2027-01-01 → 2026-W53).
IsoWeek iso_week(int year, int month, int day);

class TimeZone {
 public:
  // "UTC" (also "utc"), or an IANA name such as "Europe/Berlin" from the system's time-zone
  // database (/usr/share/zoneinfo). There is no "local" here: the caller (the CLI) finds the
  // local zone's name and passes it. kInvalidArgument naming the zone and how to list the valid
  // ones for anything else, including "" and "local"; kNotFound if the database is missing.
  static Result<TimeZone> load(const std::string& name);
  static TimeZone utc();

  CivilTime civil(TimeNs t) const;
  // Same for many times at once (consecutive times in one DST period share one look-up).
  std::vector<CivilTime> civil(const std::vector<TimeNs>& times) const;
  // The name it was loaded with: "UTC", "Europe/Berlin", "US/Eastern" (a link keeps its name).
  const std::string& name() const { return name_; }

 private:
  struct Zone;  // the date library's zone and the rule for times after its last transition
  TimeZone() = default;
  std::shared_ptr<const Zone> zone_;  // null = UTC
  std::string name_ = "UTC";
};

struct SnapshotRef {
  repo::Id id{};
  TimeNs time = 0;
  std::string host;
  std::vector<std::string> paths;
  std::vector<std::string> tags;
};

struct Decision {
  repo::Id id{};
  TimeNs time = 0;
  bool keep = false;
  // Kept: "last", "hourly", "daily", "weekly", "monthly", "yearly", "within", "tag:T",
  // "min-copies". Removed: empty, or "max-copies" when the cap removed a kept one.
  std::vector<std::string> reasons;
};

// What snapshots are grouped by; each group gets the policy on its own.
struct GroupBy {
  bool host = true, paths = true, tags = false;
};
// "host,paths" (default), any comma-separated subset of host, paths, tags, or "" (one group).
Result<GroupBy> parse_group_by(const std::string& text);

struct Group {
  std::string host;                // set when grouping by host
  std::vector<std::string> paths;  // sorted; set when grouping by paths
  std::vector<std::string> tags;   // sorted; set when grouping by tags
  std::vector<Decision> decisions;  // newest first
};

// REQUIRES: validate(policy).ok(). Groups come sorted by (host, paths, tags).
std::vector<Group> apply(const Policy& policy, std::vector<SnapshotRef> snapshots,
                         const TimeZone& zone, const GroupBy& group_by = {});

}  // namespace haven::retention

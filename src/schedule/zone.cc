#include "schedule/zone.h"

#include <algorithm>
#include <chrono>
#include <exception>

#include <date/date.h>
#include <date/tz.h>

namespace haven::schedule {
namespace {

constexpr const char* kZoneInfoDir = "/usr/share/zoneinfo";

int64_t clamp_seconds(date::sys_seconds s) {
  return std::clamp<int64_t>(s.time_since_epoch().count(), Zone::kFarPast, Zone::kFarFuture);
}

std::string valid_names_hint() {
  return std::string("give UTC or an IANA name such as Europe/Berlin or America/New_York (the "
                     "zone files under ") +
         kZoneInfoDir + " name them; `timedatectl list-timezones` lists them)";
}

}  // namespace

Result<Zone> Zone::load(const std::string& name) {
  if (name == "UTC" || name == "utc") return Zone();
  if (name.empty()) {
    return Error(Error::Code::kInvalidArgument, "time zone name is empty: " + valid_names_hint());
  }
  try {
    (void)date::get_tzdb();  // scans the zone directory once per process
  } catch (const std::exception& e) {
    return Error(Error::Code::kNotFound, std::string("time zone database not found under ") +
                                             kZoneInfoDir + " (" + e.what() +
                                             "): install the tzdata package");
  }
  Zone z;
  try {
    z.tz_ = date::locate_zone(name);
    // Loads the zone file now, so that a name whose file is no zone file (or is unreadable) is
    // refused here and not at the first conversion, which must not fail.
    (void)z.tz_->get_info(date::sys_seconds{});
  } catch (const std::exception&) {
    return Error(Error::Code::kInvalidArgument,
                 "unknown time zone '" + name + "': " + valid_names_hint());
  }
  z.name_ = name;
  return z;
}

Zone::Period Zone::period_at(int64_t utc_seconds) const {
  if (tz_ == nullptr) return Period{kFarPast, kFarFuture, 0};
  const date::sys_info info = tz_->get_info(date::sys_seconds{std::chrono::seconds{utc_seconds}});
  return Period{clamp_seconds(info.begin), clamp_seconds(info.end),
                static_cast<int32_t>(info.offset.count())};
}

Zone::Local Zone::resolve(int64_t local_seconds) const {
  if (tz_ == nullptr) return Local{Local::Kind::kUnique, local_seconds, local_seconds};
  const date::local_seconds wall{std::chrono::seconds{local_seconds}};
  const date::local_info info = tz_->get_info(wall);
  switch (info.result) {
    case date::local_info::unique: {
      const int64_t t = local_seconds - info.first.offset.count();
      return Local{Local::Kind::kUnique, t, t};
    }
    case date::local_info::nonexistent: {
      // The gap ends where the second period begins: the first instant whose local time is
      // past the wall time.
      const int64_t t = info.second.begin.time_since_epoch().count();
      return Local{Local::Kind::kNonexistent, t, t};
    }
    case date::local_info::ambiguous:
      break;
  }
  return Local{Local::Kind::kAmbiguous, local_seconds - info.first.offset.count(),
               local_seconds - info.second.offset.count()};
}

}  // namespace haven::schedule

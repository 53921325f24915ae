// cli/timezone.h — the CLI's side of time zones. The library takes a zone by name
// (retention::TimeZone::load) and never looks at the environment; finding the name of the local
// zone, which means reading TZ and /etc/localtime, happens here.
#pragma once

#include <string>

#include "retention/policy.h"
#include "util/error.h"

namespace haven::cli {

// Where the local zone comes from; the defaults are the real ones (local_zone_sources()).
struct LocalZoneSources {
  bool tz_set = false;  // the TZ variable, if set
  std::string tz;
  std::string localtime = "/etc/localtime";
  std::string timezone_file = "/etc/timezone";  // Debian's plain-text copy of the name
};

// TZ from this process's environment, and the system's files.
LocalZoneSources local_zone_sources();

// The name of the local zone, as the C library would pick it:
//   TZ set and not empty: an IANA name ("Europe/Berlin"), the same with a leading ':'
//     (":Europe/Berlin"), or a path to a zone file under a zoneinfo directory
//     ("/usr/share/zoneinfo/Europe/Berlin", also through a link such as /etc/localtime);
//   otherwise /etc/localtime: the zone it links to, else the name in /etc/timezone;
//   "UTC" if /etc/localtime does not exist (the C library's default too).
// kInvalidArgument naming TZ or the file, and saying to give --timezone, when they name no zone
// the time-zone database has (e.g. a POSIX rule such as "CET-1CEST,M3.5.0,M10.5.0/3").
Result<std::string> local_zone_name(const LocalZoneSources& src);

struct ZoneChoice {
  retention::TimeZone zone;
  std::string display;  // "Asia/Tokyo", or "local (Europe/Berlin)" for the default
};

// What a --timezone option means: "" or "local" = the local zone (local_zone_name() of `src`);
// anything else is a zone name for retention::TimeZone::load.
Result<ZoneChoice> resolve_zone_option(const std::string& option,
                                       const LocalZoneSources& src = local_zone_sources());

}  // namespace haven::cli

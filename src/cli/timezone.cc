#include "cli/timezone.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>

namespace haven::cli {

namespace {

namespace fs = std::filesystem;

Error invalid(std::string msg) { return Error(Error::Code::kInvalidArgument, std::move(msg)); }

bool known_zone(const std::string& name) { return retention::TimeZone::load(name).ok(); }

// "Europe/Berlin" from ".../zoneinfo/Europe/Berlin" (also ".../zoneinfo/posix/Europe/Berlin"),
// if that is a zone the database has.
std::optional<std::string> zone_in_path(const std::string& path) {
  auto pos = path.find("zoneinfo/");
  if (pos == std::string::npos) return std::nullopt;
  std::string name = path.substr(pos + 9);
  if (name.rfind("posix/", 0) == 0) name = name.substr(6);
  if (name.empty() || !known_zone(name)) return std::nullopt;
  return name;
}

// The zone a path names: the path itself, where its link points (one step, as written: a link
// to ../America/New_York keeps the name it was given), or where all its links lead.
std::optional<std::string> zone_of_file(const std::string& path) {
  if (auto n = zone_in_path(path)) return n;
  std::error_code ec;
  if (fs::is_symlink(path, ec)) {
    fs::path target = fs::read_symlink(path, ec);
    if (!ec) {
      if (target.is_relative()) target = fs::path(path).parent_path() / target;
      if (auto n = zone_in_path(target.lexically_normal().string())) return n;
    }
  }
  fs::path real = fs::canonical(path, ec);
  if (!ec) return zone_in_path(real.string());
  return std::nullopt;
}

std::string first_line_of(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  line.erase(0, line.find_first_not_of(" \t"));
  line.erase(line.find_last_not_of(" \t\r") + 1);
  return line;
}

}  // namespace

LocalZoneSources local_zone_sources() {
  LocalZoneSources s;
  if (const char* tz = std::getenv("TZ")) {
    s.tz_set = true;
    s.tz = tz;
  }
  return s;
}

Result<std::string> local_zone_name(const LocalZoneSources& src) {
  if (src.tz_set && !src.tz.empty()) {
    std::string v = src.tz[0] == ':' ? src.tz.substr(1) : src.tz;
    if (!v.empty() && v[0] == '/') {
      if (auto n = zone_of_file(v)) return *n;
      return invalid("TZ='" + src.tz +
                     "' is not a zone file under a zoneinfo directory: set TZ to a zone name "
                     "such as Europe/Berlin, or give --timezone");
    }
    if (known_zone(v)) return v == "utc" ? std::string("UTC") : v;
    return invalid("TZ='" + src.tz +
                   "' names no zone in the time-zone database (POSIX rules such as "
                   "CET-1CEST,M3.5.0,M10.5.0/3 are not supported): set TZ to a zone name such as "
                   "Europe/Berlin, or give --timezone");
  }
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(src.localtime, ec)) || ec) return std::string("UTC");
  if (auto n = zone_of_file(src.localtime)) return *n;
  std::string named = first_line_of(src.timezone_file);
  if (!named.empty() && known_zone(named)) return named;
  return invalid("cannot tell the local time zone's name: " + src.localtime +
                 " is not a link into a zoneinfo directory and " + src.timezone_file +
                 " names no zone; give --timezone NAME (such as Europe/Berlin or UTC)");
}

Result<ZoneChoice> resolve_zone_option(const std::string& option, const LocalZoneSources& src) {
  if (option.empty() || option == "local") {
    HAVEN_ASSIGN(std::string name, local_zone_name(src));
    HAVEN_ASSIGN(retention::TimeZone zone, retention::TimeZone::load(name));
    return ZoneChoice{std::move(zone), "local (" + name + ")"};
  }
  HAVEN_ASSIGN(retention::TimeZone zone, retention::TimeZone::load(option));
  std::string display = zone.name();
  return ZoneChoice{std::move(zone), std::move(display)};
}

}  // namespace haven::cli

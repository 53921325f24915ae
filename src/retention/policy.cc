#include "retention/policy.h"

#include "retention/posix_rule.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <exception>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include <date/date.h>
#include <date/tz.h>

// Conversions read the system's zone files and nothing else: the date library must be the build
// on the OS database (Debian's libdate-tz is), which has no download code.
#if !USE_OS_TZDB || HAS_REMOTE_API
#error "retention needs the date library built with USE_OS_TZDB=1 (no remote API)"
#endif

namespace haven::retention {

namespace {

constexpr TimeNs kSecond = 1000000000;
constexpr TimeNs kHour = 3600 * kSecond;
constexpr TimeNs kDay = 24 * kHour;

Error invalid(std::string msg) { return Error(Error::Code::kInvalidArgument, std::move(msg)); }

int year_of_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return static_cast<int>(static_cast<int64_t>(yoe) + era * 400 + (m <= 2));
}

// Floor to whole seconds, so 1969 times land in the right second.
date::sys_seconds to_sys_seconds(TimeNs t) {
  TimeNs s = t / kSecond;
  if (t % kSecond < 0) s -= 1;
  return date::sys_seconds{std::chrono::seconds{s}};
}

// Calendar fields of a time seen at a given UTC offset.
CivilTime civil_at(date::sys_seconds t, std::chrono::seconds offset) {
  const date::local_seconds local{t.time_since_epoch() + offset};
  const date::local_days day = date::floor<date::days>(local);
  const date::year_month_day ymd{day};
  const date::hh_mm_ss<std::chrono::seconds> hms{local - day};
  CivilTime c;
  c.year = static_cast<int>(ymd.year());
  c.month = static_cast<int>(static_cast<unsigned>(ymd.month()));
  c.day = static_cast<int>(static_cast<unsigned>(ymd.day()));
  c.hour = static_cast<int>(hms.hours().count());
  c.minute = static_cast<int>(hms.minutes().count());
  c.second = static_cast<int>(hms.seconds().count());
  c.weekday = static_cast<int>(date::weekday{day}.iso_encoding());
  c.utc_offset = offset.count();
  return c;
}

// Where the date library finds the system's zone files (built with USE_OS_TZDB: it reads this
// directory and has no download code at all).
constexpr const char* kZoneInfoDir = "/usr/share/zoneinfo";

// The POSIX TZ rule at the end of a version 2+ zone file ("CET-1CEST,M3.5.0,M10.5.0/3"), which
// says what happens after the file's last listed transition; "" if there is none.
std::string zone_file_footer(const std::string& name) {
  std::ifstream in(std::string(kZoneInfoDir) + "/" + name, std::ios::binary);
  if (!in) return "";
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() < 2 || data.back() != '\n') return "";
  size_t start = data.rfind('\n', data.size() - 2);
  if (start == std::string::npos) return "";
  return data.substr(start + 1, data.size() - start - 2);
}

std::string unknown_zone_message(const std::string& name) {
  return "unknown time zone '" + name +
         "': give UTC or an IANA name such as Europe/Berlin (the zone files under " +
         kZoneInfoDir + "; `timedatectl list-timezones` lists them)";
}

}  // namespace

// --- policy ------------------------------------------------------------------------------------

bool Policy::empty() const {
  return keep_last == 0 && keep_hourly == 0 && keep_daily == 0 && keep_weekly == 0 &&
         keep_monthly == 0 && keep_yearly == 0 && keep_within == 0 && keep_tags.empty();
}

Status validate(const Policy& p) {
  const std::pair<const char*, int> counts[] = {
      {"--keep-last", p.keep_last},     {"--keep-hourly", p.keep_hourly},
      {"--keep-daily", p.keep_daily},   {"--keep-weekly", p.keep_weekly},
      {"--keep-monthly", p.keep_monthly}, {"--keep-yearly", p.keep_yearly},
      {"--min-copies", p.min_copies},   {"--max-copies", p.max_copies}};
  for (const auto& [name, n] : counts) {
    if (n < 0) {
      return invalid(std::string(name) + " " + std::to_string(n) +
                     " is negative: give a count of 0 or more");
    }
  }
  if (p.keep_within < 0) return invalid("--keep-within is negative: give a duration such as 30d");
  for (const auto& t : p.keep_tags) {
    if (t.empty()) return invalid("--keep-tag needs a tag name");
  }
  if (p.min_copies > 0 && p.max_copies > 0 && p.min_copies > p.max_copies) {
    return invalid("--min-copies " + std::to_string(p.min_copies) + " is more than --max-copies " +
                   std::to_string(p.max_copies) +
                   ": lower --min-copies or raise --max-copies");
  }
  if (p.empty()) {
    return invalid(
        "no keep rule given: refusing to remove every snapshot; give at least one --keep-* "
        "option");
  }
  return ok_status();
}

Result<TimeNs> parse_duration(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return invalid("bad duration '" + text + "'" + why +
                   ": give a number of days (30) or terms like 72h, 30d, 2w, 6m, 1y6m "
                   "(h hour, d day, w 7 days, m 30 days, y 365 days)");
  };
  if (text.empty()) return bad("");
  bool all_digits = std::all_of(text.begin(), text.end(),
                                [](char c) { return c >= '0' && c <= '9'; });
  std::string s = all_digits ? text + "d" : text;
  TimeNs total = 0;
  std::set<char> seen;
  size_t i = 0;
  while (i < s.size()) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return bad("");
    int64_t n = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (__builtin_mul_overflow(n, int64_t{10}, &n) ||
          __builtin_add_overflow(n, int64_t{s[i] - '0'}, &n)) {
        return bad(" (too long)");
      }
      i++;
    }
    if (i == s.size()) return bad("");  // a number without a unit after other terms
    char u = s[i++];
    TimeNs unit = 0;
    switch (u) {
      case 'h': unit = kHour; break;
      case 'd': unit = kDay; break;
      case 'w': unit = 7 * kDay; break;
      case 'm': unit = 30 * kDay; break;
      case 'y': unit = 365 * kDay; break;
      default: return bad("");
    }
    if (!seen.insert(u).second) return bad(std::string(" (unit '") + u + "' given twice)");
    TimeNs part;
    if (__builtin_mul_overflow(n, unit, &part) || __builtin_add_overflow(total, part, &total)) {
      return bad(" (too long)");
    }
  }
  if (total == 0) return bad(" (zero)");
  return total;
}

IsoWeek iso_week(int year, int month, int day) {
  int64_t d = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  // 1970-01-01 was a Thursday: (d + 3) mod 7 is 0 on Mondays.
  int64_t wd = ((d + 3) % 7 + 7) % 7;
  int64_t thursday = d - wd + 3;  // the week's Thursday decides its year
  int y = year_of_days(thursday);
  int week = static_cast<int>((thursday - days_from_civil(y, 1, 1)) / 7 + 1);
  return {y, week};
}

// --- time zones --------------------------------------------------------------------------------

// The date library's zone, plus the zone file's closing POSIX rule for times after the last
// transition the file lists (the files list them only up to 2037; without the rule the library
// would keep the last listed offset for ever, e.g. winter time in Berlin all year from 2038).
struct TimeZone::Zone {
  const date::time_zone* tz = nullptr;
  std::optional<PosixRule> rule;
};

TimeZone TimeZone::utc() { return TimeZone(); }

Result<TimeZone> TimeZone::load(const std::string& name) {
  TimeZone z;
  if (name == "UTC" || name == "utc") return z;
  if (name.empty() || name == "local") {
    return invalid("time zone '" + name +
                   "' is not a zone name: give UTC or an IANA name such as Europe/Berlin (the "
                   "caller resolves the local zone to its name)");
  }
  auto zone = std::make_shared<Zone>();
  try {
    const date::tzdb& db = date::get_tzdb();  // reads the directory once per process
    (void)db;
  } catch (const std::exception& e) {
    return Error(Error::Code::kNotFound,
                 std::string("time zone database not found under ") + kZoneInfoDir + " (" +
                     e.what() + "): install the tzdata package");
  }
  try {
    zone->tz = date::locate_zone(name);
    // Loads the zone file now, so that a file there that is no zone (or is unreadable) is
    // refused here and not at the first conversion.
    (void)zone->tz->get_info(date::sys_seconds{});
  } catch (const std::exception&) {
    return invalid(unknown_zone_message(name));
  }
  if (std::string footer = zone_file_footer(zone->tz->name()); !footer.empty()) {
    // A rule PosixRule does not know leaves the last listed offset in force after 2037, as
    // the library does on its own (the cross-check test over every zone would show one).
    zone->rule = PosixRule::parse(footer);
  }
  z.zone_ = std::move(zone);
  z.name_ = name;
  return z;
}

CivilTime TimeZone::civil(TimeNs t) const { return civil(std::vector<TimeNs>{t})[0]; }

std::vector<CivilTime> TimeZone::civil(const std::vector<TimeNs>& times) const {
  std::vector<CivilTime> out;
  out.reserve(times.size());
  if (!zone_) {
    for (TimeNs t : times) out.push_back(civil_at(to_sys_seconds(t), std::chrono::seconds{0}));
    return out;
  }
  // Snapshots come mostly in order: one look-up per period of constant offset.
  const date::sys_seconds forever = date::sys_days{date::year::max() / date::December / 31};
  date::sys_info info{};
  bool have = false;
  for (TimeNs t : times) {
    const date::sys_seconds s = to_sys_seconds(t);
    if (!have || s < info.begin || s >= info.end) {
      info = zone_->tz->get_info(s);
      if (info.end >= forever && zone_->rule) {
        // After the last listed transition: the zone file's own rule decides.
        const PosixRule::Period r = zone_->rule->at(s.time_since_epoch().count());
        info.offset = std::chrono::seconds{r.utc_offset};
        if (r.begin > info.begin.time_since_epoch().count()) {
          info.begin = date::sys_seconds{std::chrono::seconds{r.begin}};
        }
        info.end = r.end >= forever.time_since_epoch().count()
                       ? forever
                       : date::sys_seconds{std::chrono::seconds{r.end}};
      }
      have = true;
    }
    out.push_back(civil_at(s, info.offset));
  }
  return out;
}

// --- grouping and rules ------------------------------------------------------------------------

Result<GroupBy> parse_group_by(const std::string& text) {
  GroupBy g{false, false, false};
  size_t i = 0;
  while (i <= text.size() && !text.empty()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string f = text.substr(i, j - i);
    f.erase(0, f.find_first_not_of(' '));
    f.erase(f.find_last_not_of(' ') + 1);
    if (f == "host") g.host = true;
    else if (f == "paths") g.paths = true;
    else if (f == "tags") g.tags = true;
    else {
      return invalid("--group-by: unknown field '" + f +
                     "': give a comma-separated list of host, paths, tags, or '' for one group");
    }
    i = j + 1;
  }
  return g;
}

namespace {

struct Item {
  const SnapshotRef* ref;
  CivilTime civil;
  Decision d;
};

using Bucket = std::pair<int64_t, int64_t>;

// Keeps the newest snapshot of each of the n most recent distinct buckets. `items` is newest
// first. A set (not "differs from the previous one") so that a bucket reached again after a
// zone's clock went back (DST ending at midnight) is still one bucket.
template <typename KeyFn>
void keep_buckets(std::vector<Item>& items, int n, const char* reason, KeyFn key) {
  if (n <= 0) return;
  std::set<Bucket> seen;
  for (auto& it : items) {
    if (static_cast<int>(seen.size()) >= n) break;
    if (seen.insert(key(it.civil)).second) {
      it.d.keep = true;
      it.d.reasons.push_back(reason);
    }
  }
}

void apply_group(const Policy& p, std::vector<Item>& items) {
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.ref->time != b.ref->time) return a.ref->time > b.ref->time;
    return a.ref->id < b.ref->id;
  });
  for (int i = 0; i < static_cast<int>(items.size()) && i < p.keep_last; i++) {
    items[i].d.keep = true;
    items[i].d.reasons.push_back("last");
  }
  auto local_days = [](const CivilTime& c) {
    return days_from_civil(c.year, static_cast<unsigned>(c.month), static_cast<unsigned>(c.day));
  };
  keep_buckets(items, p.keep_hourly, "hourly", [&](const CivilTime& c) {
    return Bucket{local_days(c) * 24 + c.hour, c.utc_offset};
  });
  keep_buckets(items, p.keep_daily, "daily",
               [&](const CivilTime& c) { return Bucket{local_days(c), 0}; });
  keep_buckets(items, p.keep_weekly, "weekly", [&](const CivilTime& c) {
    IsoWeek w = iso_week(c.year, c.month, c.day);
    return Bucket{w.year, w.week};
  });
  keep_buckets(items, p.keep_monthly, "monthly",
               [&](const CivilTime& c) { return Bucket{c.year, c.month}; });
  keep_buckets(items, p.keep_yearly, "yearly",
               [&](const CivilTime& c) { return Bucket{c.year, 0}; });
  if (p.keep_within > 0 && !items.empty()) {
    TimeNs newest = items.front().ref->time;
    for (auto& it : items) {
      if (newest - it.ref->time <= p.keep_within) {
        it.d.keep = true;
        it.d.reasons.push_back("within");
      }
    }
  }
  for (auto& it : items) {
    for (const auto& want : p.keep_tags) {
      if (std::find(it.ref->tags.begin(), it.ref->tags.end(), want) != it.ref->tags.end()) {
        it.d.keep = true;
        it.d.reasons.push_back("tag:" + want);
      }
    }
  }
  if (p.max_copies > 0) {
    int kept = 0;
    for (auto& it : items) {
      if (!it.d.keep) continue;
      if (++kept > p.max_copies) {
        it.d.keep = false;
        it.d.reasons = {"max-copies"};
      }
    }
  }
  if (p.min_copies > 0) {
    int kept = static_cast<int>(
        std::count_if(items.begin(), items.end(), [](const Item& i) { return i.d.keep; }));
    for (auto& it : items) {
      if (kept >= p.min_copies) break;
      if (it.d.keep) continue;
      it.d.keep = true;
      it.d.reasons = {"min-copies"};
      kept++;
    }
  }
}

}  // namespace

std::vector<Group> apply(const Policy& policy, std::vector<SnapshotRef> snapshots,
                         const TimeZone& zone, const GroupBy& group_by) {
  std::vector<TimeNs> times;
  times.reserve(snapshots.size());
  for (const auto& s : snapshots) times.push_back(s.time);
  std::vector<CivilTime> civil = zone.civil(times);

  using Key = std::tuple<std::string, std::vector<std::string>, std::vector<std::string>>;
  std::map<Key, std::vector<Item>> groups;
  for (size_t i = 0; i < snapshots.size(); i++) {
    const SnapshotRef& s = snapshots[i];
    Key k;
    if (group_by.host) std::get<0>(k) = s.host;
    if (group_by.paths) {
      std::get<1>(k) = s.paths;
      std::sort(std::get<1>(k).begin(), std::get<1>(k).end());
    }
    if (group_by.tags) {
      std::get<2>(k) = s.tags;
      std::sort(std::get<2>(k).begin(), std::get<2>(k).end());
    }
    Item it{&s, civil[i], Decision{}};
    it.d.id = s.id;
    it.d.time = s.time;
    groups[k].push_back(std::move(it));
  }

  std::vector<Group> out;
  for (auto& [k, items] : groups) {
    apply_group(policy, items);
    Group g;
    std::tie(g.host, g.paths, g.tags) = k;
    for (auto& it : items) g.decisions.push_back(std::move(it.d));
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace haven::retention

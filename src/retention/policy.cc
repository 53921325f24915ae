#include "retention/policy.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

namespace haven::retention {

namespace {

constexpr TimeNs kSecond = 1000000000;
constexpr TimeNs kHour = 3600 * kSecond;
constexpr TimeNs kDay = 24 * kHour;

Error invalid(std::string msg) { return Error(Error::Code::kInvalidArgument, std::move(msg)); }

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

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

time_t to_seconds(TimeNs t) {
  TimeNs s = t / kSecond;
  if (t % kSecond < 0) s -= 1;  // floor, so 1969 times land in the right second
  return static_cast<time_t>(s);
}

CivilTime from_tm(const struct tm& tm) {
  CivilTime c;
  c.year = tm.tm_year + 1900;
  c.month = tm.tm_mon + 1;
  c.day = tm.tm_mday;
  c.hour = tm.tm_hour;
  c.minute = tm.tm_min;
  c.second = tm.tm_sec;
  c.weekday = tm.tm_wday == 0 ? 7 : tm.tm_wday;
  c.utc_offset = tm.tm_gmtoff;
  return c;
}

// Serialises every switch of the process's TZ variable.
std::mutex& tz_mutex() {
  static std::mutex mu;
  return mu;
}

std::string zoneinfo_dir() {
  const char* d = getenv("TZDIR");
  return d && *d ? d : "/usr/share/zoneinfo";
}

// True if `name` is a zone file: a regular file starting with the TZif magic.
bool is_zone_file(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "TZif", 4) == 0;
}

// The IANA name /etc/localtime points to ("Europe/Berlin"), or "" if it is not a link.
std::string local_zone_name() {
  char buf[4096];
  ssize_t n = ::readlink("/etc/localtime", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string target(buf, static_cast<size_t>(n));
  auto pos = target.find("zoneinfo/");
  return pos == std::string::npos ? "" : target.substr(pos + 9);
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

TimeZone TimeZone::utc() { return TimeZone(); }

Result<TimeZone> TimeZone::load(const std::string& name) {
  TimeZone z;
  if (name.empty()) {
    z.utc_ = false;
    const char* tz = getenv("TZ");
    if (tz && *tz) {
      z.set_tz_ = true;
      z.tz_ = tz;
      z.display_ = std::string("local (") + tz + ")";
    } else {
      std::string n = local_zone_name();
      z.display_ = n.empty() ? "local" : "local (" + n + ")";
    }
    return z;
  }
  if (name == "UTC" || name == "utc") return z;
  bool safe = name[0] != '/' && name.find("..") == std::string::npos &&
              std::all_of(name.begin(), name.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' ||
                       c == '-' || c == '+';
              });
  if (!safe || !is_zone_file(zoneinfo_dir() + "/" + name)) {
    return invalid("unknown time zone '" + name +
                   "': give an IANA name such as Europe/Berlin, or UTC");
  }
  z.utc_ = false;
  z.set_tz_ = true;
  z.tz_ = name;
  z.display_ = name;
  return z;
}

CivilTime TimeZone::civil(TimeNs t) const { return civil(std::vector<TimeNs>{t})[0]; }

std::vector<CivilTime> TimeZone::civil(const std::vector<TimeNs>& times) const {
  std::vector<CivilTime> out;
  out.reserve(times.size());
  struct tm tm;
  if (utc_) {
    for (TimeNs t : times) {
      time_t s = to_seconds(t);
      gmtime_r(&s, &tm);
      out.push_back(from_tm(tm));
    }
    return out;
  }
  // libstdc++ 12 has no std::chrono::tzdb: convert through the C library with TZ switched to
  // this zone, then put the process's TZ back as it was.
  std::lock_guard<std::mutex> g(tz_mutex());
  const char* old = getenv("TZ");
  std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
  if (set_tz_) setenv("TZ", tz_.c_str(), 1);
  else unsetenv("TZ");
  tzset();
  for (TimeNs t : times) {
    time_t s = to_seconds(t);
    localtime_r(&s, &tm);
    out.push_back(from_tm(tm));
  }
  if (saved) setenv("TZ", saved->c_str(), 1);
  else unsetenv("TZ");
  tzset();
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

// Tests of the retention policy (retention/policy.h): synthetic snapshot histories against
// keep sets worked out here by other means — explicit timestamps computed by hand, and a
// brute-force oracle for fixed-offset zones that buckets with gmtime/strftime instead of the
// code under test.
#include "retention/policy.h"

#include <algorithm>
#include <atomic>
#include <ctime>
#include <cstdlib>
#include <latch>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <date/tz.h>
#include <gtest/gtest.h>

#include "retention/posix_rule.h"

namespace haven::retention {
namespace {

constexpr TimeNs kSec = 1000000000;
constexpr TimeNs kHour = 3600 * kSec;
constexpr TimeNs kDay = 24 * kHour;

// A UTC wall-clock time.
TimeNs utc(int y, int mo, int d, int h = 0, int mi = 0) {
  struct tm tm = {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return static_cast<TimeNs>(timegm(&tm)) * kSec;
}

std::string show(TimeNs t) {
  time_t s = static_cast<time_t>(t / kSec);
  struct tm tm;
  gmtime_r(&s, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%MZ", &tm);
  return buf;
}

repo::Id id_of(uint32_t n) {
  repo::Id id{};
  id[0] = static_cast<uint8_t>(n >> 24);
  id[1] = static_cast<uint8_t>(n >> 16);
  id[2] = static_cast<uint8_t>(n >> 8);
  id[3] = static_cast<uint8_t>(n);
  return id;
}

std::vector<SnapshotRef> history(const std::vector<TimeNs>& times, const std::string& host = "h",
                                 std::vector<std::string> paths = {"/data"}) {
  std::vector<SnapshotRef> out;
  uint32_t n = 0;
  for (TimeNs t : times) out.push_back({id_of(++n), t, host, paths, {}});
  return out;
}

// Every hour on the hour, from..to inclusive.
std::vector<TimeNs> hourly(TimeNs from, TimeNs to) {
  std::vector<TimeNs> out;
  for (TimeNs t = from; t <= to; t += kHour) out.push_back(t);
  return out;
}

TimeZone zone(const std::string& name) {
  auto z = TimeZone::load(name);
  EXPECT_TRUE(z.ok()) << name << ": " << (z.ok() ? "" : z.error().message());
  return z.ok() ? *z : TimeZone::utc();
}

// The one group apply() returns (fails the test if there are several).
Group only_group(const Policy& p, const std::vector<SnapshotRef>& snaps, const TimeZone& z) {
  auto groups = apply(p, snaps, z);
  EXPECT_EQ(groups.size(), 1u);
  return groups.empty() ? Group{} : groups[0];
}

std::set<TimeNs> kept_times(const Group& g) {
  std::set<TimeNs> out;
  for (const auto& d : g.decisions) {
    if (d.keep) out.insert(d.time);
  }
  return out;
}

std::set<std::string> shown(const std::set<TimeNs>& ts) {
  std::set<std::string> out;
  for (TimeNs t : ts) out.insert(show(t));
  return out;
}

const Decision* at(const Group& g, TimeNs t) {
  for (const auto& d : g.decisions) {
    if (d.time == t) return &d;
  }
  return nullptr;
}

std::vector<std::string> reasons_at(const Group& g, TimeNs t) {
  const Decision* d = at(g, t);
  EXPECT_NE(d, nullptr) << show(t);
  return d ? d->reasons : std::vector<std::string>{"<missing>"};
}

using Strs = std::vector<std::string>;

// --- the oracle ------------------------------------------------------------------------------
// For a zone with a fixed UTC offset: shift the time, then take calendar fields from gmtime and
// the ISO week from strftime("%G %V"). For each rule, collect buckets with their newest
// snapshot, order buckets by that time, keep the first n. Different algorithm, different code.
std::set<TimeNs> oracle(const Policy& p, std::vector<TimeNs> times, int64_t offset_s) {
  std::set<TimeNs> keep;
  std::sort(times.rbegin(), times.rend());
  for (int i = 0; i < p.keep_last && i < static_cast<int>(times.size()); i++) keep.insert(times[i]);
  auto rule = [&](int n, const char* key_format) {
    std::map<std::string, TimeNs> newest;
    for (TimeNs t : times) {
      time_t s = static_cast<time_t>(t / kSec + offset_s);
      struct tm tm;
      gmtime_r(&s, &tm);
      char key[32];
      strftime(key, sizeof key, key_format, &tm);
      auto [it, fresh] = newest.emplace(key, t);
      if (!fresh && t > it->second) it->second = t;
    }
    std::vector<TimeNs> best;
    for (auto& [k, t] : newest) best.push_back(t);
    std::sort(best.rbegin(), best.rend());
    for (int i = 0; i < n && i < static_cast<int>(best.size()); i++) keep.insert(best[i]);
  };
  rule(p.keep_hourly, "%Y-%m-%d %H");
  rule(p.keep_daily, "%Y-%m-%d");
  rule(p.keep_weekly, "%G-W%V");
  rule(p.keep_monthly, "%Y-%m");
  rule(p.keep_yearly, "%Y");
  if (p.keep_within > 0 && !times.empty()) {
    for (TimeNs t : times) {
      if (times.front() - t <= p.keep_within) keep.insert(t);
    }
  }
  return keep;
}

Policy standard_policy() {
  Policy p;
  p.keep_hourly = 24;
  p.keep_daily = 7;
  p.keep_weekly = 4;
  p.keep_monthly = 12;
  p.keep_yearly = 3;
  return p;
}

// Two years of hourly snapshots: 2025-01-01T00:00Z .. 2026-12-31T23:00Z.
std::vector<TimeNs> two_years() { return hourly(utc(2025, 1, 1, 0), utc(2026, 12, 31, 23)); }

// --- two years of hourly snapshots -----------------------------------------------------------

TEST(RetentionTwoYears, HistoryHas17520Snapshots) { EXPECT_EQ(two_years().size(), 17520u); }

TEST(RetentionTwoYears, StandardPolicyInUtcKeepsExactlyTheHandComputedSet) {
  Policy p = standard_policy();
  ASSERT_TRUE(validate(p).ok());
  Group g = only_group(p, history(two_years()), TimeZone::utc());
  ASSERT_EQ(g.decisions.size(), 17520u);

  std::set<TimeNs> want;
  // hourly 24: the last day, every hour.
  for (int h = 0; h < 24; h++) want.insert(utc(2026, 12, 31, h));
  // daily 7: 23:00 of 2026-12-25 .. 2026-12-31.
  for (int d = 25; d <= 31; d++) want.insert(utc(2026, 12, d, 23));
  // weekly 4: ISO weeks end on Sunday; 2026-12-31 is a Thursday of 2026-W53, so the newest of
  // the three weeks before are Sundays 12-27, 12-20, 12-13 at 23:00.
  for (int d : {27, 20, 13}) want.insert(utc(2026, 12, d, 23));
  // monthly 12: the last hour of every month of 2026.
  const int month_end[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  for (int m = 1; m <= 12; m++) want.insert(utc(2026, m, month_end[m - 1], 23));
  // yearly 3: only two years exist.
  want.insert(utc(2026, 12, 31, 23));
  want.insert(utc(2025, 12, 31, 23));
  ASSERT_EQ(want.size(), 44u);

  EXPECT_EQ(shown(kept_times(g)), shown(want));
  EXPECT_EQ(kept_times(g), oracle(p, two_years(), 0));

  EXPECT_EQ(reasons_at(g, utc(2026, 12, 31, 23)),
            (Strs{"hourly", "daily", "weekly", "monthly", "yearly"}));
  EXPECT_EQ(reasons_at(g, utc(2026, 12, 31, 5)), (Strs{"hourly"}));
  EXPECT_EQ(reasons_at(g, utc(2026, 12, 27, 23)), (Strs{"daily", "weekly"}));
  EXPECT_EQ(reasons_at(g, utc(2026, 12, 13, 23)), (Strs{"weekly"}));
  EXPECT_EQ(reasons_at(g, utc(2026, 2, 28, 23)), (Strs{"monthly"}));
  EXPECT_EQ(reasons_at(g, utc(2025, 12, 31, 23)), (Strs{"yearly"}));
  EXPECT_TRUE(reasons_at(g, utc(2026, 12, 30, 22)).empty());
  EXPECT_FALSE(at(g, utc(2026, 12, 30, 22))->keep);

  // Newest first, and every removed one is reported.
  EXPECT_EQ(g.decisions.front().time, utc(2026, 12, 31, 23));
  EXPECT_EQ(g.decisions.back().time, utc(2025, 1, 1, 0));
}

TEST(RetentionTwoYears, StandardPolicyInTokyoFollowsLocalDaysWeeksAndYears) {
  Policy p = standard_policy();
  Group g = only_group(p, history(two_years()), zone("Asia/Tokyo"));
  EXPECT_EQ(kept_times(g), oracle(p, two_years(), 9 * 3600));
  // The newest snapshot is 2027-01-01 08:00 in Tokyo, so the local year 2027 exists and three
  // years are kept; the day ends at 14:00Z.
  std::set<std::string> yearly;
  for (const auto& d : g.decisions) {
    for (const auto& r : d.reasons) {
      if (r == "yearly") yearly.insert(show(d.time));
    }
  }
  EXPECT_EQ(yearly, (std::set<std::string>{"2026-12-31T23:00Z", "2026-12-31T14:00Z",
                                           "2025-12-31T14:00Z"}));
  EXPECT_EQ(reasons_at(g, utc(2026, 12, 27, 14)), (Strs{"daily", "weekly"}));
  EXPECT_EQ(reasons_at(g, utc(2026, 12, 20, 14)), (Strs{"weekly"}));
  EXPECT_FALSE(at(g, utc(2026, 12, 20, 23))->keep);  // 2026-12-21 08:00 in Tokyo: week 52
}

// Deterministic pseudo-random gaps: some days, weeks and a whole month without backups, where
// "the N most recent buckets that have snapshots" matters.
std::vector<TimeNs> gappy_history() {
  std::vector<TimeNs> out;
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (TimeNs t : two_years()) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if (x % 100 < 35) out.push_back(t + static_cast<TimeNs>(x % 3600) * kSec);
  }
  // No backups at all in 2026-11 and in the week of 2026-12-14.
  std::erase_if(out, [](TimeNs t) {
    return (t >= utc(2026, 11, 1) && t < utc(2026, 12, 1)) ||
           (t >= utc(2026, 12, 14) && t < utc(2026, 12, 21));
  });
  return out;
}

TEST(RetentionTwoYears, GappyHistoryMatchesOracleInFixedOffsetZones) {
  auto times = gappy_history();
  ASSERT_GT(times.size(), 5000u);
  Policy p = standard_policy();
  p.keep_last = 5;
  p.keep_within = 3 * kDay + 12 * kHour;
  // The newest snapshot is 2026-12-31 after 19:00Z: already 2027-01 in Tokyo and Kolkata.
  ASSERT_GT(times.back(), utc(2026, 12, 31, 19));
  struct Zone {
    const char* name;
    int64_t offset;
    const char* oldest_month;  // of the twelve monthly buckets, skipping the empty 2026-11
  };
  for (auto [name, off, oldest_month] : {Zone{"UTC", 0, "2025-12"},
                                         Zone{"Asia/Tokyo", 9 * 3600, "2026-02"},
                                         Zone{"Asia/Kolkata", 5 * 3600 + 1800, "2026-02"}}) {
    SCOPED_TRACE(name);
    Group g = only_group(p, history(times), zone(name));
    auto got = kept_times(g);
    EXPECT_EQ(shown(got), shown(oracle(p, times, off)));
    // An empty month uses up no "monthly": twelve are kept, reaching back past it.
    int monthly = 0;
    TimeNs oldest_monthly = 0;
    for (const auto& d : g.decisions) {
      if (std::find(d.reasons.begin(), d.reasons.end(), "monthly") != d.reasons.end()) {
        monthly++;
        oldest_monthly = d.time;
      }
    }
    EXPECT_EQ(monthly, 12);
    EXPECT_EQ(show(oldest_monthly).substr(0, 7), oldest_month);
  }
}

// --- single rules ----------------------------------------------------------------------------

std::vector<TimeNs> days(int n) {
  std::vector<TimeNs> out;
  for (int i = 1; i <= n; i++) out.push_back(utc(2020, 1, i, 12));
  return out;
}

TEST(RetentionRules, KeepLastKeepsTheNewest) {
  Policy p;
  p.keep_last = 2;
  Group g = only_group(p, history(days(5)), TimeZone::utc());
  EXPECT_EQ(kept_times(g), (std::set<TimeNs>{utc(2020, 1, 5, 12), utc(2020, 1, 4, 12)}));
  EXPECT_EQ(reasons_at(g, utc(2020, 1, 5, 12)), (Strs{"last"}));
  EXPECT_TRUE(reasons_at(g, utc(2020, 1, 3, 12)).empty());
}

TEST(RetentionRules, KeepWithinCountsFromTheNewestSnapshotNotNow) {
  Policy p;
  p.keep_within = 3 * kDay;  // 2020 is long before now: relative to now it would keep nothing
  Group g = only_group(p, history(days(10)), TimeZone::utc());
  // Inclusive: exactly 3 days before the newest is kept.
  EXPECT_EQ(shown(kept_times(g)), (std::set<std::string>{"2020-01-07T12:00Z", "2020-01-08T12:00Z",
                                                         "2020-01-09T12:00Z", "2020-01-10T12:00Z"}));
  EXPECT_EQ(reasons_at(g, utc(2020, 1, 7, 12)), (Strs{"within"}));
}

TEST(RetentionRules, KeepTagKeepsAnyListedTag) {
  auto snaps = history(days(4));
  snaps[0].tags = {"monthly-archive"};
  snaps[2].tags = {"other", "pinned"};
  Policy p;
  p.keep_tags = {"pinned", "monthly-archive"};
  Group g = only_group(p, snaps, TimeZone::utc());
  EXPECT_EQ(kept_times(g), (std::set<TimeNs>{utc(2020, 1, 1, 12), utc(2020, 1, 3, 12)}));
  EXPECT_EQ(reasons_at(g, utc(2020, 1, 1, 12)), (Strs{"tag:monthly-archive"}));
  EXPECT_EQ(reasons_at(g, utc(2020, 1, 3, 12)), (Strs{"tag:pinned"}));
}

TEST(RetentionRules, BucketsCountOnlyPeriodsThatHaveSnapshots) {
  // Three snapshots months apart: keep-daily 3 keeps all three (empty days don't count).
  std::vector<TimeNs> t = {utc(2024, 1, 5), utc(2024, 4, 5), utc(2024, 9, 5)};
  Policy p;
  p.keep_daily = 3;
  EXPECT_EQ(kept_times(only_group(p, history(t), TimeZone::utc())).size(), 3u);
  // Within one day only the newest counts.
  t.push_back(utc(2024, 9, 5, 18));
  p.keep_daily = 1;
  EXPECT_EQ(kept_times(only_group(p, history(t), TimeZone::utc())),
            (std::set<TimeNs>{utc(2024, 9, 5, 18)}));
}

TEST(RetentionRules, MinCopiesKeepsTheNewestRemovedOnesAgain) {
  auto snaps = history(days(5));
  snaps[0].tags = {"keep"};  // the oldest
  Policy p;
  p.keep_tags = {"keep"};
  p.min_copies = 3;
  Group g = only_group(p, snaps, TimeZone::utc());
  EXPECT_EQ(kept_times(g),
            (std::set<TimeNs>{utc(2020, 1, 1, 12), utc(2020, 1, 5, 12), utc(2020, 1, 4, 12)}));
  EXPECT_EQ(reasons_at(g, utc(2020, 1, 5, 12)), (Strs{"min-copies"}));
  EXPECT_EQ(reasons_at(g, utc(2020, 1, 4, 12)), (Strs{"min-copies"}));
  EXPECT_EQ(reasons_at(g, utc(2020, 1, 1, 12)), (Strs{"tag:keep"}));
  EXPECT_FALSE(at(g, utc(2020, 1, 3, 12))->keep);
}

TEST(RetentionRules, MinCopiesKeepsEverythingWhenThereAreFewer) {
  Policy p;
  p.keep_daily = 1;
  p.min_copies = 5;
  auto t = std::vector<TimeNs>{utc(2020, 1, 1, 1), utc(2020, 1, 1, 2)};  // same day
  Group g = only_group(p, history(t), TimeZone::utc());
  EXPECT_EQ(kept_times(g).size(), 2u);
  EXPECT_EQ(reasons_at(g, utc(2020, 1, 1, 1)), (Strs{"min-copies"}));
}

TEST(RetentionRules, MaxCopiesRemovesTheOldestKeptOnes) {
  Policy p;
  p.keep_daily = 10;
  p.max_copies = 4;
  Group g = only_group(p, history(days(10)), TimeZone::utc());
  EXPECT_EQ(shown(kept_times(g)), (std::set<std::string>{"2020-01-07T12:00Z", "2020-01-08T12:00Z",
                                                         "2020-01-09T12:00Z", "2020-01-10T12:00Z"}));
  for (int d = 1; d <= 6; d++) {
    EXPECT_EQ(reasons_at(g, utc(2020, 1, d, 12)), (Strs{"max-copies"})) << d;
  }
  // With min-copies equal to max-copies the count is exact.
  p.min_copies = 4;
  ASSERT_TRUE(validate(p).ok());
  EXPECT_EQ(kept_times(only_group(p, history(days(10)), TimeZone::utc())).size(), 4u);
}

TEST(RetentionRules, MaxCopiesAppliesToTheStandardPolicyOverTwoYears) {
  Policy p = standard_policy();
  p.max_copies = 30;
  Group g = only_group(p, history(two_years()), TimeZone::utc());
  auto kept = kept_times(g);
  ASSERT_EQ(kept.size(), 30u);
  // The 30 newest of the 44 the policy alone keeps: the 24 hours plus 12-25..12-30.
  EXPECT_EQ(*kept.begin(), utc(2026, 12, 25, 23));
  EXPECT_EQ(reasons_at(g, utc(2026, 12, 20, 23)), (Strs{"max-copies"}));
}

TEST(RetentionRules, SameTimeIsOrderedById) {
  std::vector<SnapshotRef> snaps = {{id_of(7), utc(2020, 1, 1), "h", {"/"}, {}},
                                    {id_of(3), utc(2020, 1, 1), "h", {"/"}, {}}};
  Policy p;
  p.keep_last = 1;
  for (int round = 0; round < 2; round++) {
    Group g = only_group(p, snaps, TimeZone::utc());
    ASSERT_EQ(g.decisions.size(), 2u);
    EXPECT_EQ(g.decisions[0].id, id_of(3));
    EXPECT_TRUE(g.decisions[0].keep);
    EXPECT_FALSE(g.decisions[1].keep);
    std::swap(snaps[0], snaps[1]);
  }
}

// --- groups ----------------------------------------------------------------------------------

TEST(RetentionGroups, HostAndPathsFormGroupsPathOrderDoesNotMatter) {
  std::vector<SnapshotRef> snaps = {
      {id_of(1), utc(2020, 1, 1), "a", {"/x", "/y"}, {}},
      {id_of(2), utc(2020, 1, 2), "a", {"/y", "/x"}, {}},
      {id_of(3), utc(2020, 1, 3), "a", {"/z"}, {"t"}},
      {id_of(4), utc(2020, 1, 4), "b", {"/x", "/y"}, {"t"}},
      {id_of(5), utc(2020, 1, 5), "b", {"/x", "/y"}, {}},
  };
  Policy p;
  p.keep_last = 1;
  auto groups = apply(p, snaps, TimeZone::utc());
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].host, "a");
  EXPECT_EQ(groups[0].paths, (Strs{"/x", "/y"}));
  ASSERT_EQ(groups[0].decisions.size(), 2u);
  EXPECT_EQ(groups[0].decisions[0].id, id_of(2));
  EXPECT_TRUE(groups[0].decisions[0].keep);
  EXPECT_FALSE(groups[0].decisions[1].keep);
  EXPECT_EQ(groups[1].paths, (Strs{"/z"}));
  EXPECT_EQ(groups[2].host, "b");
  EXPECT_TRUE(groups[2].decisions[0].keep);

  // One group for everything: only the newest of all is kept.
  auto gb = parse_group_by("");
  ASSERT_TRUE(gb.ok());
  auto one = apply(p, snaps, TimeZone::utc(), *gb);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(kept_times(one[0]), (std::set<TimeNs>{utc(2020, 1, 5)}));

  // By tags: untagged and "t".
  gb = parse_group_by("tags");
  ASSERT_TRUE(gb.ok());
  auto by_tags = apply(p, snaps, TimeZone::utc(), *gb);
  ASSERT_EQ(by_tags.size(), 2u);
  EXPECT_TRUE(by_tags[0].tags.empty());
  EXPECT_EQ(by_tags[1].tags, (Strs{"t"}));
  EXPECT_EQ(kept_times(by_tags[1]), (std::set<TimeNs>{utc(2020, 1, 4)}));
}

TEST(RetentionGroups, ParseGroupBy) {
  auto g = parse_group_by("host,paths");
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->host && g->paths && !g->tags);
  g = parse_group_by("host, tags");
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->host && !g->paths && g->tags);
  for (const char* bad : {"hosts", "host,", "host,,paths", "user"}) {
    auto r = parse_group_by(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument);
    EXPECT_NE(r.error().message().find("--group-by"), std::string::npos);
  }
}

// --- validation ------------------------------------------------------------------------------

TEST(RetentionValidate, MinCopiesAboveMaxCopiesIsRefused) {
  Policy p;
  p.keep_last = 3;
  p.min_copies = 5;
  p.max_copies = 3;
  Status s = validate(p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Error::Code::kInvalidArgument);
  EXPECT_NE(s.error().message().find("--min-copies 5"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find("--max-copies 3"), std::string::npos);
  p.max_copies = 0;  // no cap: fine
  EXPECT_TRUE(validate(p).ok());
}

TEST(RetentionValidate, EmptyPolicyIsRefused) {
  Policy p;
  EXPECT_TRUE(p.empty());
  Status s = validate(p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("no keep rule given"), std::string::npos);
  // Limits alone are not a rule.
  p.min_copies = 2;
  p.max_copies = 5;
  EXPECT_TRUE(p.empty());
  EXPECT_FALSE(validate(p).ok());
  p.keep_tags = {"x"};
  EXPECT_FALSE(p.empty());
  EXPECT_TRUE(validate(p).ok());
}

TEST(RetentionValidate, NegativeCountsAndEmptyTagsAreRefused) {
  Policy p;
  p.keep_daily = -1;
  Status s = validate(p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("--keep-daily"), std::string::npos);
  p.keep_daily = 1;
  p.keep_tags = {""};
  EXPECT_FALSE(validate(p).ok());
}

// --- durations -------------------------------------------------------------------------------

TEST(RetentionDuration, AcceptedForms) {
  struct Case {
    const char* text;
    TimeNs want;
  } cases[] = {
      {"30d", 30 * kDay},  {"30", 30 * kDay},          {"2w", 14 * kDay},
      {"6m", 180 * kDay},  {"1y6m", 545 * kDay},       {"72h", 72 * kHour},
      {"1y", 365 * kDay},  {"1y2m3w4d5h", (365 + 60 + 21 + 4) * kDay + 5 * kHour},
      {"1d12h", 36 * kHour}, {"007", 7 * kDay},
  };
  for (const auto& c : cases) {
    auto r = parse_duration(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.error().message();
    EXPECT_EQ(*r, c.want) << c.text;
  }
}

TEST(RetentionDuration, BadFormsNameTheValueAndTheAcceptedForms) {
  for (const char* bad : {"", "d", "3x", "-3d", "3d2", "0", "0d", "1.5d", "3 d", "3D", "1d1d",
                          "99999999999999999999d", "300000y"}) {
    auto r = parse_duration(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument);
    EXPECT_NE(r.error().message().find(std::string("'") + bad + "'"), std::string::npos)
        << r.error().message();
    EXPECT_NE(r.error().message().find("30d"), std::string::npos);
  }
}

// --- time zones ------------------------------------------------------------------------------

TEST(RetentionTimeZone, UnknownZonesAreRefused) {
  for (const char* bad : {"Mars/Olympus_Mons", "Europe/Berln", "../../etc/passwd",
                          "/usr/share/zoneinfo/Europe/Berlin", "zone.tab", "Europe", "CEST"}) {
    auto z = TimeZone::load(bad);
    ASSERT_FALSE(z.ok()) << bad;
    EXPECT_EQ(z.error().code(), Error::Code::kInvalidArgument);
    EXPECT_NE(z.error().message().find(std::string("unknown time zone '") + bad + "'"),
              std::string::npos)
        << z.error().message();
    EXPECT_NE(z.error().message().find("Europe/Berlin"), std::string::npos);
    // ... and says where the valid names are and how to list them.
    EXPECT_NE(z.error().message().find("/usr/share/zoneinfo"), std::string::npos);
    EXPECT_NE(z.error().message().find("timedatectl list-timezones"), std::string::npos);
  }
  auto ok = TimeZone::load("Europe/Berlin");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->name(), "Europe/Berlin");
  ASSERT_TRUE(TimeZone::load("UTC").ok());
  EXPECT_EQ(TimeZone::load("UTC")->name(), "UTC");
}

TEST(RetentionTimeZone, DailyBucketsFollowTheZone) {
  // 01:00Z, 12:00Z and 23:30Z on 2026-03-10: one day in UTC; in Tokyo (+9) the last one is
  // already 03-11; in New York (EDT, -4 since 03-08) the first one is still 03-09.
  std::vector<TimeNs> t = {utc(2026, 3, 10, 1), utc(2026, 3, 10, 12), utc(2026, 3, 10, 23, 30)};
  Policy p;
  p.keep_daily = 10;
  EXPECT_EQ(kept_times(only_group(p, history(t), TimeZone::utc())), (std::set<TimeNs>{t[2]}));
  EXPECT_EQ(kept_times(only_group(p, history(t), zone("Asia/Tokyo"))),
            (std::set<TimeNs>{t[1], t[2]}));
  EXPECT_EQ(kept_times(only_group(p, history(t), zone("America/New_York"))),
            (std::set<TimeNs>{t[0], t[2]}));
}

TEST(RetentionTimeZone, HourlyBucketsAreLocalHoursInHalfHourZones) {
  // 00:10Z and 00:40Z: one UTC hour, but 05:40 and 06:10 in Kolkata (+05:30).
  std::vector<TimeNs> t = {utc(2026, 5, 1, 0, 10), utc(2026, 5, 1, 0, 40)};
  Policy p;
  p.keep_hourly = 10;
  EXPECT_EQ(kept_times(only_group(p, history(t), TimeZone::utc())).size(), 1u);
  EXPECT_EQ(kept_times(only_group(p, history(t), zone("Asia/Kolkata"))).size(), 2u);
}

TEST(RetentionTimeZone, DstFallBackInBerlinCountsTheRepeatedHourTwice) {
  TimeZone berlin = zone("Europe/Berlin");
  // 2025-10-26: 03:00 CEST (01:00Z) becomes 02:00 CET; 02:00-03:00 local happens twice.
  CivilTime first = berlin.civil(utc(2025, 10, 26, 0, 30));
  CivilTime second = berlin.civil(utc(2025, 10, 26, 1, 30));
  EXPECT_EQ(first.hour, 2);
  EXPECT_EQ(first.minute, 30);
  EXPECT_EQ(first.utc_offset, 7200);
  EXPECT_EQ(second.hour, 2);
  EXPECT_EQ(second.minute, 30);
  EXPECT_EQ(second.utc_offset, 3600);

  std::vector<TimeNs> t = {utc(2025, 10, 25, 23, 0),   // 01:00 CEST
                           utc(2025, 10, 26, 0, 0),    // 02:00 CEST
                           utc(2025, 10, 26, 0, 30),   // 02:30 CEST
                           utc(2025, 10, 26, 1, 0),    // 02:00 CET
                           utc(2025, 10, 26, 1, 30),   // 02:30 CET
                           utc(2025, 10, 26, 2, 0)};   // 03:00 CET
  Policy p;
  p.keep_hourly = 3;
  Group g = only_group(p, history(t), berlin);
  // 03 CET, 02 CET and 02 CEST are three hours; 01 CEST is the fourth.
  EXPECT_EQ(shown(kept_times(g)), (std::set<std::string>{"2025-10-26T02:00Z", "2025-10-26T01:30Z",
                                                         "2025-10-26T00:30Z"}));
  p.keep_hourly = 100;
  EXPECT_EQ(kept_times(only_group(p, history(t), berlin)).size(), 4u);

  // The local day starts at 22:00Z in summer and at 23:00Z in winter.
  p = Policy();
  p.keep_daily = 10;
  std::vector<TimeNs> d = {utc(2025, 10, 25, 21, 30), utc(2025, 10, 25, 22, 30),
                           utc(2025, 12, 1, 22, 30), utc(2025, 12, 1, 23, 30)};
  EXPECT_EQ(kept_times(only_group(p, history(d), berlin)).size(), 4u);
  EXPECT_EQ(kept_times(only_group(p, history(d), TimeZone::utc())).size(), 2u);
}

TEST(RetentionTimeZone, IsoWeekAtYearBoundaries) {
  EXPECT_EQ(iso_week(2026, 12, 31), (IsoWeek{2026, 53}));
  EXPECT_EQ(iso_week(2027, 1, 1), (IsoWeek{2026, 53}));
  EXPECT_EQ(iso_week(2027, 1, 3), (IsoWeek{2026, 53}));
  EXPECT_EQ(iso_week(2027, 1, 4), (IsoWeek{2027, 1}));
  EXPECT_EQ(iso_week(2024, 12, 29), (IsoWeek{2024, 52}));
  EXPECT_EQ(iso_week(2024, 12, 30), (IsoWeek{2025, 1}));
  EXPECT_EQ(iso_week(2021, 1, 3), (IsoWeek{2020, 53}));
  EXPECT_EQ(iso_week(2026, 1, 1), (IsoWeek{2026, 1}));

  std::vector<TimeNs> t = {utc(2026, 12, 27, 12), utc(2026, 12, 28, 12), utc(2026, 12, 31, 12),
                           utc(2027, 1, 1, 12),   utc(2027, 1, 3, 12),   utc(2027, 1, 4, 12)};
  Policy p;
  p.keep_weekly = 10;
  Group g = only_group(p, history(t), TimeZone::utc());
  // 2026-12-28 .. 2027-01-03 is one week (2026-W53), whatever the calendar year.
  EXPECT_EQ(kept_times(g), (std::set<TimeNs>{t[0], t[4], t[5]}));
  p.keep_weekly = 2;
  EXPECT_EQ(kept_times(only_group(p, history(t), TimeZone::utc())),
            (std::set<TimeNs>{t[4], t[5]}));
}

// Restores TZ when a test changes it.
class TzGuard {
 public:
  TzGuard() {
    if (const char* v = getenv("TZ")) old_ = v;
  }
  ~TzGuard() {
    if (old_) setenv("TZ", old_->c_str(), 1);
    else unsetenv("TZ");
    tzset();
  }

 private:
  std::optional<std::string> old_;
};

TEST(RetentionTimeZone, ConversionPutsTheProcessZoneBack) {
  TzGuard guard;
  setenv("TZ", "America/New_York", 1);
  tzset();
  CivilTime c = zone("Asia/Tokyo").civil(utc(2026, 1, 1, 0));
  EXPECT_EQ(c.hour, 9);
  EXPECT_EQ(c.utc_offset, 9 * 3600);
  ASSERT_NE(getenv("TZ"), nullptr);
  EXPECT_STREQ(getenv("TZ"), "America/New_York");
  time_t s = static_cast<time_t>(utc(2026, 1, 1, 0) / kSec);
  struct tm tm;
  localtime_r(&s, &tm);
  EXPECT_EQ(tm.tm_hour, 19);  // New York again

  unsetenv("TZ");
  (void)zone("Asia/Tokyo").civil(utc(2026, 1, 1, 0));
  EXPECT_EQ(getenv("TZ"), nullptr);
}

// The library has no "local": the CLI resolves the local zone to a name (cli/timezone.h; its
// tests are ForgetLocalZone.* in test_cli).
TEST(RetentionTimeZone, EmptyAndLocalAreNoZoneNames) {
  TzGuard guard;
  setenv("TZ", "Asia/Tokyo", 1);  // not consulted
  for (const char* name : {"", "local"}) {
    auto z = TimeZone::load(name);
    ASSERT_FALSE(z.ok()) << name;
    EXPECT_EQ(z.error().code(), Error::Code::kInvalidArgument);
    EXPECT_NE(z.error().message().find(std::string("time zone '") + name + "'"),
              std::string::npos)
        << z.error().message();
    EXPECT_NE(z.error().message().find("Europe/Berlin"), std::string::npos);
  }
  EXPECT_EQ(TimeZone::load("utc")->civil(utc(2026, 1, 1, 0)).utc_offset, 0);
}

TEST(RetentionTimeZone, DstChangesAtTheExactSecond) {
  TimeZone berlin = zone("Europe/Berlin");
  // 2025-03-30 01:00Z: 02:00 CET becomes 03:00 CEST; 2025-10-26 01:00Z: back.
  EXPECT_EQ(berlin.civil(utc(2025, 3, 30, 1) - kSec).utc_offset, 3600);
  EXPECT_EQ(berlin.civil(utc(2025, 3, 30, 1) - kSec).hour, 1);
  EXPECT_EQ(berlin.civil(utc(2025, 3, 30, 1)).utc_offset, 7200);
  EXPECT_EQ(berlin.civil(utc(2025, 3, 30, 1)).hour, 3);
  EXPECT_EQ(berlin.civil(utc(2025, 10, 26, 1) - kSec).utc_offset, 7200);
  EXPECT_EQ(berlin.civil(utc(2025, 10, 26, 1)).utc_offset, 3600);
  // Before 1970 and within a second: floors, as the C library does.
  CivilTime c = TimeZone::utc().civil(-1);  // 1969-12-31 23:59:59.999999999
  EXPECT_EQ(c.year, 1969);
  EXPECT_EQ(c.second, 59);
  EXPECT_EQ(c.weekday, 3);
}

TEST(RetentionTimeZone, AfterTheLastListedTransitionTheZonesRuleApplies) {
  // Zone files list transitions up to 2037; after that their closing POSIX rule decides.
  struct Case {
    const char* zone;
    TimeNs t;
    int64_t offset;
  } cases[] = {
      {"Europe/Berlin", utc(2040, 1, 15, 12), 3600},
      {"Europe/Berlin", utc(2040, 7, 1, 12), 7200},
      {"Europe/Berlin", utc(2100, 7, 1, 12), 7200},
      {"America/New_York", utc(2045, 1, 1), -5 * 3600},
      {"America/New_York", utc(2100, 7, 1, 12), -4 * 3600},
      {"Australia/Sydney", utc(2045, 1, 1), 11 * 3600},  // southern summer
      {"Australia/Sydney", utc(2040, 7, 1, 12), 10 * 3600},
      {"America/Sao_Paulo", utc(2040, 1, 15, 12), -3 * 3600},
      {"Asia/Tokyo", utc(2090, 8, 1), 9 * 3600},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(zone(c.zone).civil(c.t).utc_offset, c.offset) << c.zone << " " << show(c.t);
  }
  // 2040-03-25 is the last Sunday of March: CET until 01:00Z, CEST from then.
  TimeZone berlin = zone("Europe/Berlin");
  EXPECT_EQ(berlin.civil(utc(2040, 3, 25, 1) - kSec).utc_offset, 3600);
  EXPECT_EQ(berlin.civil(utc(2040, 3, 25, 1)).utc_offset, 7200);
}

TEST(RetentionTimeZone, PosixRules) {
  EXPECT_FALSE(PosixRule::parse("").has_value());
  EXPECT_FALSE(PosixRule::parse("CET").has_value());
  EXPECT_FALSE(PosixRule::parse("CET-1CEST").has_value());  // DST without dates
  EXPECT_FALSE(PosixRule::parse("CET-1CEST,M3.5.0").has_value());
  EXPECT_FALSE(PosixRule::parse("CET-1CEST,M13.5.0,M10.5.0").has_value());
  EXPECT_FALSE(PosixRule::parse("CET-1CEST,M3.5.0,M10.5.0/3x").has_value());
  auto jst = PosixRule::parse("JST-9");
  ASSERT_TRUE(jst.has_value());
  EXPECT_EQ(jst->at(0).utc_offset, 9 * 3600);
  // Negative transition times (America/Nuuk): DST starts Saturday 23:00 local standard time
  // before the last Sunday of March = 2026-03-29 00:00Z... at -1 h: 2026-03-28T23:00-02 =
  // 2026-03-29T01:00Z.
  auto nuuk = PosixRule::parse("<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
  ASSERT_TRUE(nuuk.has_value());
  const int64_t start = utc(2026, 3, 29, 1) / kSec;
  EXPECT_EQ(nuuk->at(start - 1).utc_offset, -2 * 3600);
  EXPECT_EQ(nuuk->at(start).utc_offset, -3600);
  EXPECT_EQ(nuuk->at(start).begin, start);
  // Negative DST (Europe/Dublin: IST in summer is standard time, GMT in winter is "daylight").
  auto dublin = PosixRule::parse("IST-1GMT0,M10.5.0,M3.5.0/1");
  ASSERT_TRUE(dublin.has_value());
  EXPECT_EQ(dublin->at(utc(2050, 7, 1) / kSec).utc_offset, 3600);
  EXPECT_EQ(dublin->at(utc(2050, 1, 1) / kSec).utc_offset, 0);
  // All year daylight time.
  auto always = PosixRule::parse("EST5EDT,0/0,J365/25");
  ASSERT_TRUE(always.has_value());
  for (TimeNs t :
       {utc(2050, 1, 1, 0), utc(2050, 1, 1, 5), utc(2050, 6, 1), utc(2050, 12, 31, 23)}) {
    EXPECT_EQ(always->at(t / kSec).utc_offset, -4 * 3600) << show(t);
  }
}

// Every zone in the database, at a time about every four weeks from 1970 to 2100 (and at the
// exact seconds around each change of offset the C library reports), against glibc's
// localtime_r with TZ set to the zone: the same answer the old TZ-switching code gave.
TEST(RetentionTimeZone, EveryZoneAgreesWithTheCLibrary) {
  TzGuard guard;
  const auto& db = date::get_tzdb();
  ASSERT_GT(db.zones.size(), 300u);
  size_t zones = 0, compared = 0;
  for (const auto& z : db.zones) {
    const std::string name(z.name());
    auto tz = TimeZone::load(name);
    if (!tz.ok()) continue;  // a file the C library reads but the database does not list
    zones++;
    setenv("TZ", name.c_str(), 1);
    tzset();
    std::vector<TimeNs> times;
    int64_t prev_off = INT64_MIN;
    for (int64_t s = 0; s < 4102444800; s += 27 * 86400 + 3607) {
      time_t tt = static_cast<time_t>(s);
      struct tm tm;
      localtime_r(&tt, &tm);
      if (tm.tm_gmtoff != prev_off && prev_off != INT64_MIN) {
        // Narrow down to the exact second of the change.
        int64_t lo = s - 27 * 86400 - 3607, hi = s;
        while (hi - lo > 1) {
          int64_t mid = lo + (hi - lo) / 2;
          time_t mt = static_cast<time_t>(mid);
          struct tm mtm;
          localtime_r(&mt, &mtm);
          (mtm.tm_gmtoff == prev_off ? lo : hi) = mid;
        }
        times.push_back(lo * kSec);
        times.push_back(hi * kSec);
      }
      prev_off = tm.tm_gmtoff;
      times.push_back(s * kSec);
    }
    std::vector<CivilTime> got = tz->civil(times);
    int mismatches = 0;
    for (size_t i = 0; i < times.size(); i++) {
      time_t tt = static_cast<time_t>(times[i] / kSec);
      struct tm tm;
      localtime_r(&tt, &tm);
      const CivilTime& c = got[i];
      bool same = c.utc_offset == tm.tm_gmtoff && c.year == tm.tm_year + 1900 &&
                  c.month == tm.tm_mon + 1 && c.day == tm.tm_mday && c.hour == tm.tm_hour &&
                  c.minute == tm.tm_min && c.second == tm.tm_sec &&
                  c.weekday == (tm.tm_wday == 0 ? 7 : tm.tm_wday);
      if (!same && mismatches++ < 3) {
        ADD_FAILURE() << name << " at " << show(times[i]) << ": offset " << c.utc_offset
                      << " vs the C library's " << tm.tm_gmtoff;
      }
      compared++;
    }
  }
  EXPECT_GT(zones, 300u);
  RecordProperty("zones", static_cast<int>(zones));
  RecordProperty("compared", static_cast<int>(compared));
}

// Two threads convert in two different zones at the same moment, each many times over two
// years of hourly snapshots, while a third keeps reading the process's own zone. With the old
// code (switching TZ under a mutex) the third saw Tokyo or Berlin now and then; now nothing
// touches process state, and nothing waits for anything else.
TEST(RetentionTimeZone, TwoThreadsInTwoZonesAtOnce) {
  TzGuard guard;
  setenv("TZ", "America/New_York", 1);
  tzset();
  const std::vector<TimeNs> times = two_years();
  const Policy p = standard_policy();
  const std::set<TimeNs> tokyo_want = oracle(p, times, 9 * 3600);
  // Berlin's offsets by the EU rule, worked out here: CEST from 01:00Z on the last Sunday of
  // March to 01:00Z on the last Sunday of October.
  auto last_sunday_1utc = [](int y, int m) {
    TimeNs t = utc(y, m, 31, 1);
    time_t s = static_cast<time_t>(t / kSec);
    struct tm tm;
    gmtime_r(&s, &tm);
    return t - static_cast<TimeNs>(tm.tm_wday) * kDay;
  };
  auto berlin_offset = [&](TimeNs t) {
    int y = static_cast<int>(t / kDay / 365 + 1970);
    if (t >= utc(y + 1, 1, 1)) y++;
    if (t < utc(y, 1, 1)) y--;
    return t >= last_sunday_1utc(y, 3) && t < last_sunday_1utc(y, 10) ? 7200 : 3600;
  };

  constexpr int kRounds = 20;
  std::latch start(3);
  std::atomic<int> workers_done{0};
  std::atomic<int> tokyo_bad{0}, berlin_bad{0}, process_bad{0}, process_reads{0};
  std::thread tokyo([&] {
    TimeZone z = zone("Asia/Tokyo");
    start.arrive_and_wait();
    for (int r = 0; r < kRounds; r++) {
      Group g = apply(p, history(times), z)[0];
      if (kept_times(g) != tokyo_want) tokyo_bad++;
    }
    workers_done++;
  });
  std::thread berlin([&] {
    TimeZone z = zone("Europe/Berlin");
    start.arrive_and_wait();
    for (int r = 0; r < kRounds; r++) {
      std::vector<CivilTime> cs = z.civil(times);
      for (size_t i = 0; i < times.size(); i++) {
        int64_t off = berlin_offset(times[i]);
        time_t s = static_cast<time_t>(times[i] / kSec + off);
        struct tm tm;
        gmtime_r(&s, &tm);
        if (cs[i].utc_offset != off || cs[i].hour != tm.tm_hour || cs[i].day != tm.tm_mday) {
          berlin_bad++;
        }
      }
    }
    workers_done++;
  });
  start.arrive_and_wait();
  const time_t new_year = static_cast<time_t>(utc(2026, 1, 1, 0) / kSec);
  while (workers_done.load() < 2) {
    struct tm tm;
    localtime_r(&new_year, &tm);  // 19:00 the day before in New York
    const char* tz = getenv("TZ");
    if (tm.tm_gmtoff != -5 * 3600 || tm.tm_hour != 19 || !tz ||
        std::string(tz) != "America/New_York") {
      process_bad++;
    }
    process_reads++;
  }
  tokyo.join();
  berlin.join();
  EXPECT_EQ(tokyo_bad.load(), 0);
  EXPECT_EQ(berlin_bad.load(), 0);
  EXPECT_EQ(process_bad.load(), 0) << "of " << process_reads.load() << " reads";
  EXPECT_GT(process_reads.load(), 0);
}

}  // namespace
}  // namespace haven::retention

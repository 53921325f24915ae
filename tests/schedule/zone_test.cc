// Zones (schedule/zone.h): loading by name, the refusals, and the two lookups Cron::next()
// relies on, checked against offsets and transitions read from `zdump -v`.
#include "schedule/zone.h"

#include <string>

#include "schedule_test_util.h"

namespace haven::schedule {
namespace {

using testing::kSecond;
using testing::T;
using testing::zone;

int64_t S(const std::string& utc) { return T(utc) / kSecond; }

const std::string kHint =
    "give UTC or an IANA name such as Europe/Berlin or America/New_York (the zone files under "
    "/usr/share/zoneinfo name them; `timedatectl list-timezones` lists them)";

TEST(Zone, LoadsByName) {
  EXPECT_EQ(zone("Europe/Berlin").name(), "Europe/Berlin");
  EXPECT_EQ(zone("America/Argentina/Buenos_Aires").name(), "America/Argentina/Buenos_Aires");
  EXPECT_EQ(zone("Etc/UTC").name(), "Etc/UTC");
  EXPECT_EQ(zone("UTC").name(), "UTC");
  EXPECT_EQ(zone("utc").name(), "UTC");
  EXPECT_EQ(Zone::utc().name(), "UTC");
}

TEST(Zone, UnknownNamesAreRefusedWithWhereToFindValidOnes) {
  for (const std::string name : {"Mars/Olympus_Mons", "europe/berlin", "Europe/Berlin ",
                                 "../../etc/passwd", "/usr/share/zoneinfo/Europe/Berlin",
                                 "Local", "CEST"}) {
    Result<Zone> z = Zone::load(name);
    ASSERT_FALSE(z.ok()) << name;
    EXPECT_EQ(z.error().code(), Error::Code::kInvalidArgument);
    EXPECT_EQ(z.error().message(), "unknown time zone '" + name + "': " + kHint);
  }
  Result<Zone> empty = Zone::load("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code(), Error::Code::kInvalidArgument);
  EXPECT_EQ(empty.error().message(), "time zone name is empty: " + kHint);
}

TEST(Zone, OffsetsAndPeriods) {
  const Zone berlin = zone("Europe/Berlin");
  EXPECT_EQ(berlin.utc_offset(S("2026-01-15 12:00")), 3600);
  EXPECT_EQ(berlin.utc_offset(S("2026-07-15 12:00")), 7200);
  const Zone::Period summer = berlin.period_at(S("2026-07-15 12:00"));
  EXPECT_EQ(summer.begin, S("2026-03-29 01:00"));
  EXPECT_EQ(summer.end, S("2026-10-25 01:00"));
  // The transition instant belongs to the new period.
  EXPECT_EQ(berlin.utc_offset(S("2026-03-29 01:00")), 7200);
  EXPECT_EQ(berlin.utc_offset(S("2026-03-29 01:00") - 1), 3600);

  EXPECT_EQ(zone("Pacific/Chatham").utc_offset(S("2026-07-01 00:00")), 12 * 3600 + 45 * 60);
  EXPECT_EQ(zone("Pacific/Chatham").utc_offset(S("2026-01-01 00:00")), 13 * 3600 + 45 * 60);
  EXPECT_EQ(zone("Australia/Lord_Howe").utc_offset(S("2026-07-01 00:00")), 10 * 3600 + 1800);
  EXPECT_EQ(zone("Australia/Lord_Howe").utc_offset(S("2026-01-01 00:00")), 11 * 3600);
  EXPECT_EQ(zone("Asia/Kolkata").utc_offset(S("2026-01-01 00:00")), 5 * 3600 + 1800);
  EXPECT_EQ(zone("America/New_York").utc_offset(S("2026-01-01 00:00")), -5 * 3600);

  const Zone::Period utc = Zone::utc().period_at(S("2026-01-01 00:00"));
  EXPECT_EQ(utc.utc_offset, 0);
  EXPECT_EQ(utc.begin, Zone::kFarPast);
  EXPECT_EQ(utc.end, Zone::kFarFuture);
}

// Local wall times as seconds since 1970-01-01T00:00 local: the same arithmetic as UTC.
int64_t L(const std::string& wall) { return S(wall); }

TEST(Zone, ResolvesUniqueNonexistentAndAmbiguousWallTimes) {
  const Zone berlin = zone("Europe/Berlin");
  using Kind = Zone::Local::Kind;

  Zone::Local r = berlin.resolve(L("2026-03-29 01:59"));
  EXPECT_EQ(r.kind, Kind::kUnique);
  EXPECT_EQ(r.first, S("2026-03-29 00:59"));
  EXPECT_EQ(r.second, r.first);

  for (const char* gap : {"2026-03-29 02:00", "2026-03-29 02:30", "2026-03-29 02:59:59"}) {
    r = berlin.resolve(L(gap));
    EXPECT_EQ(r.kind, Kind::kNonexistent) << gap;
    EXPECT_EQ(r.first, S("2026-03-29 01:00")) << gap;  // the gap's end
  }
  r = berlin.resolve(L("2026-03-29 03:00"));
  EXPECT_EQ(r.kind, Kind::kUnique);
  EXPECT_EQ(r.first, S("2026-03-29 01:00"));

  r = berlin.resolve(L("2026-10-25 02:30"));
  EXPECT_EQ(r.kind, Kind::kAmbiguous);
  EXPECT_EQ(r.first, S("2026-10-25 00:30"));   // CEST
  EXPECT_EQ(r.second, S("2026-10-25 01:30"));  // CET
  r = berlin.resolve(L("2026-10-25 03:00"));
  EXPECT_EQ(r.kind, Kind::kUnique);
  EXPECT_EQ(r.first, S("2026-10-25 02:00"));

  // Lord Howe's half hour: 01:30-01:59 twice on 2026-04-05, 02:00-02:29 missing on 2026-10-04.
  const Zone lord_howe = zone("Australia/Lord_Howe");
  r = lord_howe.resolve(L("2026-04-05 01:30"));
  EXPECT_EQ(r.kind, Kind::kAmbiguous);
  EXPECT_EQ(r.first, S("2026-04-04 14:30"));
  EXPECT_EQ(r.second, S("2026-04-04 15:00"));
  EXPECT_EQ(lord_howe.resolve(L("2026-04-05 01:29")).kind, Kind::kUnique);
  EXPECT_EQ(lord_howe.resolve(L("2026-04-05 02:00")).kind, Kind::kUnique);
  r = lord_howe.resolve(L("2026-10-04 02:29"));
  EXPECT_EQ(r.kind, Kind::kNonexistent);
  EXPECT_EQ(r.first, S("2026-10-03 15:30"));
  EXPECT_EQ(lord_howe.resolve(L("2026-10-04 02:30")).kind, Kind::kUnique);

  r = Zone::utc().resolve(L("2026-03-29 02:30"));
  EXPECT_EQ(r.kind, Kind::kUnique);
  EXPECT_EQ(r.first, S("2026-03-29 02:30"));
}

TEST(Zone, CopiesShareTheZone) {
  const Zone a = zone("Pacific/Chatham");
  const Zone b = a;  // NOLINT: copy on purpose
  EXPECT_EQ(b.name(), "Pacific/Chatham");
  EXPECT_EQ(b.utc_offset(S("2026-07-01 00:00")), a.utc_offset(S("2026-07-01 00:00")));
}

}  // namespace
}  // namespace haven::schedule

// Tests of the CLI's local-zone resolution (cli/timezone.h): TZ in its usual forms, and
// /etc/localtime and /etc/timezone, here as files in a temporary directory. The suite is named
// for the command that uses it (`forget`'s default --timezone).
#include "cli/timezone.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace haven::cli {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSec = 1000000000;

class ForgetLocalZone : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/haven-localzone-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Sources with TZ as given (nullptr = unset) and this test's own /etc files (absent).
  LocalZoneSources src(const char* tz) {
    LocalZoneSources s;
    s.tz_set = tz != nullptr;
    s.tz = tz ? tz : "";
    s.localtime = dir_ + "/localtime";
    s.timezone_file = dir_ + "/timezone";
    return s;
  }

  std::string name_or_error(const LocalZoneSources& s) {
    auto r = local_zone_name(s);
    return r.ok() ? *r : "error: " + r.error().message();
  }

  std::string dir_;
};

TEST_F(ForgetLocalZone, TzInItsUsualForms) {
  fs::create_symlink("/usr/share/zoneinfo/Asia/Tokyo", dir_ + "/tokyo-link");
  for (const std::string& tz : std::vector<std::string>{
           "Asia/Tokyo", ":Asia/Tokyo", "/usr/share/zoneinfo/Asia/Tokyo",
           ":/usr/share/zoneinfo/Asia/Tokyo", "/usr/share/zoneinfo/posix/Asia/Tokyo",
           dir_ + "/tokyo-link"}) {
    EXPECT_EQ(name_or_error(src(tz.c_str())), "Asia/Tokyo") << tz;
  }
  EXPECT_EQ(name_or_error(src("UTC")), "UTC");
  EXPECT_EQ(name_or_error(src("Etc/UTC")), "Etc/UTC");
  // A link keeps the name it was given (the database has it as a zone of its own).
  EXPECT_EQ(name_or_error(src("US/Eastern")), "US/Eastern");
}

TEST_F(ForgetLocalZone, TzThatNamesNoZoneIsAClearError) {
  std::ofstream(dir_ + "/not-a-zone") << "hello\n";
  for (const std::string& tz :
       std::vector<std::string>{"CET-1CEST,M3.5.0,M10.5.0/3", "Mars/Olympus_Mons",
                                dir_ + "/not-a-zone", "/nonexistent/zoneinfo/Nowhere"}) {
    auto r = local_zone_name(src(tz.c_str()));
    ASSERT_FALSE(r.ok()) << tz;
    EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument);
    EXPECT_NE(r.error().message().find("TZ='" + tz + "'"), std::string::npos)
        << r.error().message();
    EXPECT_NE(r.error().message().find("--timezone"), std::string::npos);
  }
}

TEST_F(ForgetLocalZone, WithoutTzTheSystemsZone) {
  // No /etc/localtime: UTC, as the C library does.
  EXPECT_EQ(name_or_error(src(nullptr)), "UTC");
  EXPECT_EQ(name_or_error(src("")), "UTC");  // empty TZ is treated as unset, as before
  // A link into zoneinfo.
  fs::create_symlink("/usr/share/zoneinfo/Europe/Berlin", dir_ + "/localtime");
  EXPECT_EQ(name_or_error(src(nullptr)), "Europe/Berlin");
  EXPECT_EQ(name_or_error(src("")), "Europe/Berlin");
  EXPECT_EQ(name_or_error(src("Asia/Tokyo")), "Asia/Tokyo");  // TZ wins
  // A copied file: the name comes from /etc/timezone.
  fs::remove(dir_ + "/localtime");
  fs::copy_file("/usr/share/zoneinfo/Asia/Kolkata", dir_ + "/localtime");
  auto r = local_zone_name(src(nullptr));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("cannot tell the local time zone"), std::string::npos);
  EXPECT_NE(r.error().message().find("--timezone"), std::string::npos);
  std::ofstream(dir_ + "/timezone") << "Asia/Kolkata\n";
  EXPECT_EQ(name_or_error(src(nullptr)), "Asia/Kolkata");
}

TEST_F(ForgetLocalZone, OptionResolvesLocalAndPassesNamesThrough) {
  for (const char* option : {"", "local"}) {
    auto c = resolve_zone_option(option, src("Asia/Tokyo"));
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(c->display, "local (Asia/Tokyo)");
    EXPECT_EQ(c->zone.name(), "Asia/Tokyo");
    EXPECT_EQ(c->zone.civil(0).utc_offset, 9 * 3600);
  }
  auto berlin = resolve_zone_option("Europe/Berlin", src("Asia/Tokyo"));
  ASSERT_TRUE(berlin.ok());
  EXPECT_EQ(berlin->display, "Europe/Berlin");
  EXPECT_EQ(berlin->zone.civil(1750000000 * kSec).utc_offset, 7200);  // June 2025
  auto bad = resolve_zone_option("Mars/Olympus_Mons", src("Asia/Tokyo"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("unknown time zone 'Mars/Olympus_Mons'"),
            std::string::npos);
  // An explicit zone does not need the local one to be resolvable.
  EXPECT_TRUE(resolve_zone_option("UTC", src("CET-1CEST,M3.5.0,M10.5.0/3")).ok());
}

}  // namespace
}  // namespace haven::cli

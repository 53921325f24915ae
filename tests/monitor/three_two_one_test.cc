// Seed 002's 3-2-1 rule in the status: copies, kinds of media and offsite copies counted from
// the policy's location and its regions; a stopped region no longer counts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "catalog/sqlite_catalog.h"
#include "config/config.h"
#include "jobs/service.h"
#include "monitor/status.h"

namespace haven::monitor {
namespace {

TEST(ThreeTwoOne, CountsCopiesMediaAndOffsiteAndDropsStoppedRegions) {
  char tmpl[] = "/tmp/haven-321-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::ofstream(dir + "/pass") << "pw\n";
  std::ofstream(dir + "/key") << "KEY\n";
  const std::string text =
      "server: {catalog: " + dir + "/c.db}\n"
      "locations:\n"
      "  - {name: single, repository: " + dir + "/a, password_file: " + dir + "/pass}\n"
      "  - name: spread\n"
      "    repository: " + dir + "/b\n"
      "    password_file: " + dir + "/pass\n"
      "    secondary_regions:\n"
      "      - {region: us, repository: \"s3:https://s3.example.com/bucket/b\",\n"
      "         credentials: {AWS_ACCESS_KEY_ID: {file: " + dir + "/key}, AWS_SECRET_ACCESS_KEY: {file: " + dir + "/key}}}\n"
      "      - {region: north, repository: " + dir + "/c}\n"
      "policies:\n"
      "  - {name: p1, resource_type: files, sources: [/srv], location: single, schedules: []}\n"
      "  - {name: p2, resource_type: files, sources: [/srv], location: spread, schedules: []}\n";
  auto cfg = config::parse_config(text, "haven.yaml", [](const std::string&) { return std::nullopt; });
  ASSERT_TRUE(cfg.ok()) << cfg.error().message();
  auto shared = std::make_shared<const config::Config>(std::move(*cfg));
  auto cat = catalog::open_sqlite_catalog(dir + "/c.db");
  ASSERT_TRUE(cat.ok());
  NullSink sink;
  jobs::Service service(**cat, sink, {});
  ASSERT_TRUE(service.apply_config(shared).ok());
  StatusContext ctx{**cat, *shared, {}};
  auto r = compute_status(ctx, haven::now());
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->policies.size(), 2u);
  const ThreeTwoOne& one = r->policies[0].three_two_one;  // p1: the data and one repository
  EXPECT_EQ(one.copies, 2);
  EXPECT_EQ(one.media, std::vector<std::string>{"on_premise"});
  EXPECT_EQ(one.offsite, 0);
  EXPECT_FALSE(one.met());
  EXPECT_EQ(one.missing(), "2 copies of 3; 1 kind of media of 2; no copy offsite");
  const ThreeTwoOne& two = r->policies[1].three_two_one;  // p2: + S3 + another disk
  EXPECT_EQ(two.copies, 4);
  EXPECT_EQ(two.media, (std::vector<std::string>{"on_premise", "s3"}));
  EXPECT_EQ(two.offsite, 2);
  EXPECT_TRUE(two.met());
  EXPECT_EQ(to_json(r->policies[1])["three_two_one"]["met"], true);
  // The S3 region stopped: one kind of media left.
  ASSERT_TRUE((*cat)->set_replication_state("spread", "us", catalog::ReplicationState::kStopped,
                                            "test", 1).ok());
  auto after = compute_status(ctx, haven::now());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->policies[1].three_two_one.copies, 3);
  EXPECT_EQ(after->policies[1].three_two_one.media.size(), 1u);
  EXPECT_FALSE(after->policies[1].three_two_one.met());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace haven::monitor

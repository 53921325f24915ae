// haven.yaml's secondary_regions and replication: the issue's example decodes as written, and
// every mistake is named with its fix (a secret never quoted).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "config/config_test_util.h"

namespace haven::config {
namespace {

using test::env_of;
using test::lines_of;
using test::TempDir;

TEST(ConfigReplication, TheExampleDecodesAsWritten) {
  TempDir dir;
  const std::string pass = dir.write("pass", "pw\n");
  // The issue's example, with only the password file's path made real.
  std::string text = R"(locations:
  - name: local
    storage_type: on_premise
    repository: /srv/backup                      # the primary region's copy
    password_file: )" + pass + R"(
    primary_region: eu-west-1
    secondary_regions:
      - {region: us-east-1, repository: "s3:http://127.0.0.1:9000/haven-us/repo"}
      - {region: eu-north-1, repository: /mnt/offsite/backup}
    replication: {mode: async, rpo: {value: 5, unit: minutes}}   # or {mode: sync, quorum: 1}
)";
  auto c = check_config(text, "haven.yaml", env_of({}));
  ASSERT_TRUE(c.ok()) << lines_of(c.diagnostics).front();
  const Location& l = c.value.locations[0];
  EXPECT_EQ(l.primary_region_name(), "eu-west-1");
  ASSERT_EQ(l.secondary_regions.size(), 2u);
  EXPECT_EQ(l.secondary_regions[0].region, "us-east-1");
  EXPECT_EQ(l.secondary_regions[0].storage_type, StorageType::kS3);
  EXPECT_EQ(l.secondary_regions[1].repository, "/mnt/offsite/backup");
  EXPECT_EQ(l.secondary_regions[1].storage_type, StorageType::kOnPremise);
  EXPECT_EQ(l.replication.mode, ReplicationMode::kAsync);
  EXPECT_EQ(l.replication.rpo.seconds(), 300);
  EXPECT_EQ(l.find_region("eu-north-1"), &l.secondary_regions[1]);
  // The other form of the comment.
  std::string sync = text;
  sync.replace(sync.find("{mode: async, rpo: {value: 5, unit: minutes}}"),
               std::string("{mode: async, rpo: {value: 5, unit: minutes}}").size(),
               "{mode: sync, quorum: 1}");
  auto s = check_config(sync, "haven.yaml", env_of({}));
  ASSERT_TRUE(s.ok()) << lines_of(s.diagnostics).front();
  EXPECT_EQ(s.value.locations[0].replication.mode, ReplicationMode::kSync);
  EXPECT_EQ(s.value.locations[0].replication.quorum, 1);
  EXPECT_EQ(s.value.locations[0].replication.on_quorum_loss, QuorumLoss::kFail);
}

TEST(ConfigReplication, RegionCredentialsAreTheirOwn) {
  TempDir dir;
  const std::string pass = dir.write("pass", "pw\n");
  dir.write("azkey", "QUZFUkVUS0VZ\n");
  std::string text = R"(locations:
  - name: local
    repository: /srv/backup
    password_file: )" + pass + R"(
    secondary_regions:
      - region: west
        repository: azure:haven/repo
        settings: {AZURE_STORAGE_ACCOUNT: devstoreaccount1}
        credentials: {AZURE_STORAGE_KEY: {file: )" + dir.file("azkey") + R"(}}
)";
  auto c = check_config(text, "haven.yaml", env_of({}));
  ASSERT_TRUE(c.ok()) << lines_of(c.diagnostics).front();
  const SecondaryRegion& r = c.value.locations[0].secondary_regions[0];
  EXPECT_EQ(r.backend_setting("AZURE_STORAGE_ACCOUNT"), "devstoreaccount1");
  EXPECT_EQ(r.backend_setting("AZURE_STORAGE_KEY"), "QUZFUkVUS0VZ");
  EXPECT_EQ(c.value.locations[0].primary_region_name(), "primary");
  EXPECT_EQ(c.value.locations[0].replication.mode, ReplicationMode::kAsync);  // the default
  // The JSON view names the credential's source, never its value.
  const std::string json = nlohmann::json(c.value).dump();
  EXPECT_EQ(json.find("QUZFUkVUS0VZ"), std::string::npos);
  EXPECT_NE(json.find("secondaryRegions"), std::string::npos);
}

TEST(ConfigReplication, MistakesAreNamedWithTheFix) {
  TempDir dir;
  const std::string pass = dir.write("pass", "pw\n");
  std::string text = R"(locations:
  - name: a
    repository: /srv/a
    password_file: )" + pass + R"(
    primary_region: eu
    secondary_regions:
      - {region: eu, repository: /srv/a2}
      - {region: us, repository: /srv/a/}
      - {region: us2, repository: "ftp://x"}
      - {region: us3, repository: /srv/a3, settings: {AZURE_STORAGE_KEY: "SECRET-VALUE-1"}}
      - {region: us4}
      - {region: us5, repository: /srv/a5}
      - {region: us5, repository: /srv/a6}
    replication: {mode: sync, quorum: 9, on_quorum_loss: maybe}
  - name: b
    repository: /srv/b
    password_file: )" + pass + R"(
    replication: {mode: async, quorum: 1, rpo: {value: 0, unit: minutes}, interval_seconds: 0}
)";
  auto c = check_config(text, "haven.yaml", env_of({}));
  ASSERT_FALSE(c.ok());
  std::string all;
  for (const auto& l : lines_of(c.diagnostics)) all += l + "\n";
  auto has = [&](const std::string& s) { return all.find(s) != std::string::npos; };
  EXPECT_EQ(all.find("SECRET-VALUE-1"), std::string::npos) << all;
  EXPECT_TRUE(has("locations[0].secondary_regions[0].region: 'eu' is the primary region's name"))
      << all;
  EXPECT_TRUE(has("locations[0].secondary_regions[1].repository: '/srv/a/' is also the primary "
                  "region's repository")) << all;
  EXPECT_TRUE(has("locations[0].secondary_regions[2].repository: must be an absolute path"))
      << all;
  EXPECT_TRUE(has("locations[0].secondary_regions[3].settings: on_premise locations take no "
                  "settings")) << all;
  EXPECT_TRUE(has("locations[0].secondary_regions[4].repository: required, but missing")) << all;
  EXPECT_TRUE(has("locations[0].secondary_regions[6].region: 'us5' is already "
                  "locations[0].secondary_regions[5]")) << all;
  EXPECT_TRUE(has("locations[0].replication.on_quorum_loss: must be one of")) << all;
  EXPECT_TRUE(has("locations[1].replication: is given but the location has no "
                  "secondary_regions")) << all;
  EXPECT_TRUE(has("locations[1].replication.quorum: applies to mode: sync only")) << all;
  EXPECT_TRUE(has("locations[1].replication.rpo.value")) << all;
  EXPECT_TRUE(has("locations[1].replication.interval_seconds")) << all;
}

TEST(ConfigReplication, AQuorumLargerThanTheRegionsIsRefused) {
  TempDir dir;
  const std::string pass = dir.write("pass", "pw\n");
  std::string text = R"(locations:
  - name: a
    repository: /srv/a
    password_file: )" + pass + R"(
    secondary_regions: [{region: us, repository: /srv/b}]
    replication: {mode: sync, quorum: 2}
)";
  auto c = check_config(text, "haven.yaml", env_of({}));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(lines_of(c.diagnostics).front().find(
                "locations[0].replication.quorum: is 2, more than the 1 secondary regions (fix: "
                "make quorum at most the number of secondary_regions)"),
            std::string::npos)
      << lines_of(c.diagnostics).front();
}

}  // namespace
}  // namespace haven::config

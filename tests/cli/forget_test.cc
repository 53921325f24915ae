// End-to-end tests of `haven forget` through the real binary: snapshots with chosen times are
// written through the library (an empty tree, a fast KDF), then the CLI applies a policy and
// `haven snapshots --json` shows what is left.
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

// The shared helpers are many small functions in an anonymous namespace; this file uses few.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"
#pragma GCC diagnostic pop

namespace haven {
namespace {

TimeNs utc_time(int y, int mo, int d, int h = 0, int mi = 0) {
  struct tm tm = {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return static_cast<TimeNs>(timegm(&tm)) * 1000000000;
}

class ForgetCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::init();
    char tmpl[] = "/tmp/haven-forget-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    repo_path_ = dir_ + "/repo";
    auto repo = init_repo(repo_path_);
    ASSERT_NE(repo, nullptr);
    repo::Session session(*repo);
    auto tree = session.save_tree(repo::Tree{});
    ASSERT_TRUE(tree.ok()) << tree.error().message();
    ASSERT_TRUE(session.flush().ok());  // the snapshots below are written by sessions of their own
    tree_ = *tree;
    // h1 /data: one snapshot a day at noon, 2026-03-01 .. 2026-03-10.
    for (int d = 1; d <= 10; d++) add(*repo, "h1", {"/data"}, utc_time(2026, 3, d, 12));
    // h2 /data: two on different days, one tagged.
    add(*repo, "h2", {"/data"}, utc_time(2026, 2, 1, 12), {"pinned"});
    add(*repo, "h2", {"/data"}, utc_time(2026, 2, 2, 12));
    // h3 /etc: 01:00Z, 12:00Z and 23:30Z on 2026-03-10 — one UTC day, two days in Tokyo.
    for (auto [h, m] : {std::pair{1, 0}, {12, 0}, {23, 30}}) {
      add(*repo, "h3", {"/etc"}, utc_time(2026, 3, 10, h, m));
    }
  }
  void TearDown() override {
    if (dir_.empty()) return;
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void add(repo::Repository& repo, const std::string& host, std::vector<std::string> paths,
           TimeNs t, std::vector<std::string> tags = {}) {
    repo::Snapshot s;
    s.time = t;
    s.end_time = t + 1000000000;
    s.tree = tree_;
    s.paths = std::move(paths);
    s.hostname = host;
    s.username = "test";
    s.tags = std::move(tags);
    s.strategy = "full";
    auto id = repo::Session(repo).save_snapshot(s);
    ASSERT_TRUE(id.ok()) << id.error().message();
    by_time_[host + "@" + format_time(t).substr(0, 16)] = repo::hex(*id);
  }

  // "h1@2026-03-10T12:00" → snapshot ID.
  std::string id(const std::string& key) {
    EXPECT_TRUE(by_time_.count(key)) << key;
    return by_time_[key];
  }

  std::set<std::string> remaining() {
    std::set<std::string> out;
    for (const auto& s : cli_snapshots(repo_path_)) out.insert(s.value("id", std::string()));
    return out;
  }

  std::set<std::string> all_ids() {
    std::set<std::string> out;
    for (const auto& [k, v] : by_time_) out.insert(v);
    return out;
  }

  RunResult forget(std::vector<std::string> args) {
    args.insert(args.begin(), "forget");
    return cli(repo_path_, args);
  }

  std::string dir_, repo_path_;
  repo::Id tree_{};
  std::map<std::string, std::string> by_time_;
};

TEST_F(ForgetCliTest, DryRunChangesNothingAndListsReasons) {
  ASSERT_EQ(all_ids().size(), 15u);
  RunResult r = forget({"--keep-last", "2", "--keep-tag", "pinned", "--timezone", "UTC",
                        "--dry-run"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(remaining(), all_ids());
  EXPECT_TRUE(contains(r.out, "dry run")) << r.out;
  EXPECT_TRUE(contains(r.out, "host h1, paths /data:")) << r.out;
  // Each line: action, short ID, local time, reasons.
  EXPECT_TRUE(contains(r.out, "keep    " + id("h1@2026-03-10T12:00").substr(0, 8) +
                                  "  2026-03-10 12:00:00 +00:00  last"))
      << r.out;
  EXPECT_TRUE(contains(r.out, "remove  " + id("h1@2026-03-01T12:00").substr(0, 8))) << r.out;
  EXPECT_TRUE(contains(r.out, id("h2@2026-02-01T12:00").substr(0, 8) +
                                  "  2026-02-01 12:00:00 +00:00  last, tag:pinned"))
      << r.out;
  EXPECT_TRUE(contains(r.out, "would keep 6 and remove 9")) << r.out;
}

TEST_F(ForgetCliTest, RemovesExactlyTheSnapshotsThePolicyDoesNotKeep) {
  RunResult r = forget({"--keep-daily", "3", "--timezone", "UTC"});
  ASSERT_EQ(r.code, 0) << describe(r);
  std::set<std::string> want = {id("h1@2026-03-10T12:00"), id("h1@2026-03-09T12:00"),
                                id("h1@2026-03-08T12:00"), id("h2@2026-02-01T12:00"),
                                id("h2@2026-02-02T12:00"), id("h3@2026-03-10T23:30")};
  EXPECT_EQ(remaining(), want);
  EXPECT_TRUE(contains(r.out, "kept 6, removed 9")) << r.out;

  // Applying the same policy again removes nothing more.
  r = forget({"--keep-daily", "3", "--timezone", "UTC"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(remaining(), want);
}

TEST_F(ForgetCliTest, MinAndMaxCopiesAndWithin) {
  // within 2 days of each group's newest: h1 03-08..03-10, h2 both, h3 all three; at most 2 per
  // group drops the oldest kept; at least 2 brings back h3's newest removed one.
  RunResult r = forget({"--keep-within", "2d", "--max-copies", "2", "--timezone", "UTC"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(remaining(), (std::set<std::string>{id("h1@2026-03-10T12:00"), id("h1@2026-03-09T12:00"),
                                                id("h2@2026-02-01T12:00"), id("h2@2026-02-02T12:00"),
                                                id("h3@2026-03-10T23:30"), id("h3@2026-03-10T12:00")}));
  r = forget({"--keep-last", "1", "--min-copies", "2", "--timezone", "UTC"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(remaining().size(), 6u);  // every group has exactly two left, min-copies keeps both
}

TEST_F(ForgetCliTest, TimeZoneDecidesWhichDayASnapshotBelongsTo) {
  RunResult utc = forget({"--keep-daily", "5", "--timezone", "UTC", "--dry-run", "--json"});
  RunResult tokyo = forget({"--keep-daily", "5", "--timezone", "Asia/Tokyo", "--dry-run", "--json"});
  ASSERT_EQ(utc.code, 0) << describe(utc);
  ASSERT_EQ(tokyo.code, 0) << describe(tokyo);
  auto kept_h3 = [&](const RunResult& r) {
    std::set<std::string> out;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    if (j.is_discarded()) return out;
    for (const auto& g : j["groups"]) {
      if (g["host"] != "h3") continue;
      for (const auto& k : g["keep"]) out.insert(k["id"].get<std::string>());
    }
    return out;
  };
  EXPECT_EQ(kept_h3(utc), (std::set<std::string>{id("h3@2026-03-10T23:30")}));
  EXPECT_EQ(kept_h3(tokyo),
            (std::set<std::string>{id("h3@2026-03-10T23:30"), id("h3@2026-03-10T12:00")}));
  EXPECT_EQ(remaining(), all_ids());
}

TEST_F(ForgetCliTest, DefaultZoneIsTheLocalOneFromTZ) {
  if (getenv("TZ") != nullptr) GTEST_SKIP() << "TZ is set in the test's own environment";
  for (const char* tz : {"Asia/Tokyo", ":Asia/Tokyo", "/usr/share/zoneinfo/Asia/Tokyo"}) {
    SCOPED_TRACE(tz);
    RunOptions o;
    o.env.emplace_back("TZ", tz);
    RunResult r = cli(repo_path_, {"forget", "--keep-daily", "5", "--dry-run", "--json"}, o);
    ASSERT_EQ(r.code, 0) << describe(r);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["timezone"], "local (Asia/Tokyo)");
    std::set<std::string> kept;  // h3's snapshots fall on two Tokyo days
    for (const auto& g : j["groups"]) {
      if (g["host"] != "h3") continue;
      for (const auto& k : g["keep"]) kept.insert(k["id"].get<std::string>());
    }
    EXPECT_EQ(kept, (std::set<std::string>{id("h3@2026-03-10T23:30"), id("h3@2026-03-10T12:00")}));
  }
  // A TZ that names no zone: a usage error when the default is needed, and no matter with an
  // explicit --timezone.
  RunOptions o;
  o.env.emplace_back("TZ", "CET-1CEST,M3.5.0,M10.5.0/3");
  RunResult r = cli(repo_path_, {"forget", "--keep-daily", "5", "--dry-run"}, o);
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "TZ='CET-1CEST,M3.5.0,M10.5.0/3'")) << r.err;
  EXPECT_TRUE(contains(r.err, "--timezone")) << r.err;
  r = cli(repo_path_, {"forget", "--keep-daily", "5", "--dry-run", "--timezone", "UTC"}, o);
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(remaining(), all_ids());
}

TEST_F(ForgetCliTest, JsonOutputIsOneObjectWithGroupsAndReasons) {
  RunResult r = forget({"--keep-last", "1", "--keep-tag", "pinned", "--timezone", "Asia/Tokyo",
                        "--json"});
  ASSERT_EQ(r.code, 0) << describe(r);
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["dry_run"], false);
  EXPECT_EQ(j["timezone"], "Asia/Tokyo");
  EXPECT_EQ(j["keep"], 4);
  EXPECT_EQ(j["remove"], 11);
  EXPECT_EQ(j["removed"], 11);
  ASSERT_EQ(j["groups"].size(), 3u);
  const auto& h1 = j["groups"][0];
  EXPECT_EQ(h1["host"], "h1");
  EXPECT_EQ(h1["paths"], nlohmann::json::array({"/data"}));
  ASSERT_EQ(h1["keep"].size(), 1u);
  EXPECT_EQ(h1["keep"][0]["id"], id("h1@2026-03-10T12:00"));
  EXPECT_EQ(h1["keep"][0]["time"], "2026-03-10T12:00:00.000000000Z");
  EXPECT_EQ(h1["keep"][0]["local_time"], "2026-03-10 21:00:00 +09:00");
  EXPECT_EQ(h1["keep"][0]["reasons"], nlohmann::json::array({"last"}));
  EXPECT_EQ(h1["remove"].size(), 9u);
  const auto& h2 = j["groups"][1];
  ASSERT_EQ(h2["keep"].size(), 2u);
  EXPECT_EQ(h2["keep"][1]["reasons"], nlohmann::json::array({"tag:pinned"}));
  EXPECT_EQ(remaining().size(), 4u);
}

TEST_F(ForgetCliTest, NoKeepRuleIsRefusedAndNothingRemoved) {
  for (std::vector<std::string> args : {std::vector<std::string>{},
                                        {"--min-copies", "2"},
                                        {"--max-copies", "2"},
                                        {"--timezone", "UTC"}}) {
    RunResult r = forget(args);
    EXPECT_EQ(r.code, 2) << describe(r);
    EXPECT_TRUE(contains(r.err, "no keep rule given: refusing to remove every snapshot")) << r.err;
  }
  EXPECT_EQ(remaining(), all_ids());
}

TEST_F(ForgetCliTest, BadInputIsRefusedBeforeTheRepositoryIsOpened) {
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> want;  // in stderr
  } cases[] = {
      {{"--keep-within", "3x"}, {"--keep-within", "'3x'", "30d"}},
      {{"--keep-within", "0"}, {"--keep-within"}},
      {{"--keep-daily", "3", "--timezone", "Mars/Olympus_Mons"},
       {"--timezone", "unknown time zone 'Mars/Olympus_Mons'", "Europe/Berlin"}},
      {{"--keep-last", "2", "--min-copies", "5", "--max-copies", "3"},
       {"--min-copies 5", "--max-copies 3"}},
      {{"--keep-last", "-1"}, {"--keep-last"}},
      {{"--keep-daily", "many"}, {"--keep-daily"}},
      {{"--keep-last", "1", "--group-by", "hostname"}, {"--group-by", "hostname"}},
      {{"--keep-last", "1", "--max-unused", "50"}, {"--max-unused", "--prune"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(testing::PrintToString(c.args));
    RunResult r = forget(c.args);
    EXPECT_EQ(r.code, 2) << describe(r);
    for (const auto& w : c.want) EXPECT_TRUE(contains(r.err, w)) << w << "\n" << r.err;
    // Checked before opening: a location that is no repository gives the same usage error,
    // not "no repository" (exit 10).
    std::vector<std::string> args = c.args;
    args.insert(args.begin(), {"-r", dir_ + "/nothing-here", "forget"});
    RunResult nr = run_haven(args);
    EXPECT_EQ(nr.code, 2) << describe(nr);
  }
  EXPECT_EQ(remaining(), all_ids());
}

TEST_F(ForgetCliTest, RemovingNeedsTheExclusiveLock) {
  auto be = storage::open_backend(repo_path_);
  ASSERT_TRUE(be.ok());
  auto repo = repo::Repository::open(*be, kPw);
  ASSERT_TRUE(repo.ok()) << repo.error().message();
  repo::Session session(**repo);
  ASSERT_TRUE(session.lock(false).ok());  // a backup in progress, say
  RunResult r = forget({"--keep-last", "1"});
  EXPECT_EQ(r.code, 11) << describe(r);
  EXPECT_EQ(remaining(), all_ids());
  // A dry run changes nothing and shares the repository.
  r = forget({"--keep-last", "1", "--dry-run"});
  EXPECT_EQ(r.code, 0) << describe(r);
  ASSERT_TRUE(session.unlock().ok());
  r = forget({"--keep-last", "1"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(remaining().size(), 3u);
}

TEST_F(ForgetCliTest, PruneRunsAfterForgetUnlessDryRun) {
  RunResult dry = forget({"--keep-last", "1", "--prune", "--dry-run", "--timezone", "UTC"});
  ASSERT_EQ(dry.code, 0) << describe(dry);
  EXPECT_TRUE(contains(dry.out, "--prune skipped: dry run")) << dry.out;
  EXPECT_EQ(remaining(), all_ids());

  RunResult r = forget({"--keep-last", "1", "--prune", "--max-unused", "0", "--timezone", "UTC"});
  ASSERT_EQ(r.code, 0) << describe(r);
  // Forget removed first, then prune ran and reported.
  EXPECT_EQ(remaining().size(), 3u) << describe(r);
  EXPECT_TRUE(contains(r.out, "kept 3, removed 12")) << r.out;
  EXPECT_TRUE(contains(r.out, "prune: ")) << r.out;
  // What is left is intact.
  RunResult check = cli(repo_path_, {"check"});
  EXPECT_EQ(check.code, 0) << describe(check);
}

}  // namespace
}  // namespace haven

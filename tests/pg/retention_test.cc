// Tests of the point-in-time window's retention (pg/retention.h) and of `haven pg windows`
// without a server: base backups are snapshots carrying the meta `pg backup` writes (made here
// through the Repository API, with chosen times and WAL positions), WAL files are pushed
// with the real archive code.
#include "pg/retention.h"

#include <gtest/gtest.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"
#pragma GCC diagnostic pop

#include "pg/basebackup.h"
#include "pg/wal.h"

namespace haven {
namespace {

constexpr TimeNs kDay = 86400LL * 1000000000LL;
constexpr uint64_t kSeg = 16u << 20;

std::string seg_name(uint32_t tl, uint64_t segno) {
  char b[25];
  std::snprintf(b, sizeof b, "%08X%08X%08X", tl, static_cast<unsigned>(segno / 256), static_cast<unsigned>(segno % 256));
  return b;
}

class PgRetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::init();
    char tmpl[] = "/tmp/haven-pgret-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    repo_ = init_repo(dir_ + "/repo");
    ASSERT_TRUE(repo_);
    key_ = repo_->wal_key().value();
    now_ = haven::now();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A base backup on timeline 1 that started in segment `segno` and stopped `days_ago`.
  repo::Id base_backup(uint64_t segno, double days_ago) {
    repo::Session session(*repo_);
    auto tree = session.save_tree(repo::Tree{});
    EXPECT_TRUE(tree.ok());
    repo::Snapshot s;
    s.time = now_ - static_cast<TimeNs>(days_ago * kDay);
    s.end_time = s.time;
    s.tree = *tree;
    s.paths = {"/var/lib/postgresql/15/main"};
    s.tags = {"pg"};
    s.meta = {{"pg.backup_label", "START WAL LOCATION: ..."},
              {"pg.start_lsn", pg::format_lsn(segno * kSeg + 40)},
              {"pg.stop_lsn", pg::format_lsn(segno * kSeg + 300)},
              {"pg.timeline", "1"},
              {"pg.stop_time", std::to_string(s.time)},
              {"pg.wal_segment_size", std::to_string(kSeg)}};
    auto id = session.save_snapshot(s);
    EXPECT_TRUE(id.ok());
    return *id;
  }
  void push(const std::string& name) {
    std::string data = "wal " + name;
    ASSERT_OK(pg::push(repo_->backend(), key_, name, as_bytes(data)));
  }
  std::vector<std::string> wal() { return list_dir(dir_ + "/repo/wal"); }

  std::string dir_;
  std::unique_ptr<repo::Repository> repo_;
  pg::WalKey key_;
  TimeNs now_ = 0;
};

TEST_F(PgRetentionTest, KeepsWhatTheWindowNeedsAndRemovesOlderWal) {
  // Base backups 40, 20, 10 and 1 days ago, starting in segments 2, 10, 20 and 30; WAL 1..35
  // archived, with a history file and a .backup file on the way.
  repo::Id b40 = base_backup(2, 40), b20 = base_backup(10, 20), b10 = base_backup(20, 10), b1 = base_backup(30, 1);
  for (uint64_t s = 1; s <= 35; s++) push(seg_name(1, s));
  push("00000002.history");
  push(seg_name(1, 10) + ".00000028.backup");
  auto windows = pg::recoverable_windows(*repo_, *pg::list_base_backups(*repo_));
  ASSERT_OK(windows);
  ASSERT_EQ(windows->size(), 1u);
  EXPECT_EQ((*windows)[0].last_segment, seg_name(1, 35));
  EXPECT_EQ((*windows)[0].base_backups, 4u);

  // A 15-day window: the backups of 10 and 1 days ago, plus the one of 20 days ago (recovery
  // to 15 days ago starts there). The 40-day one goes, and WAL before segment 10.
  auto dry = pg::retain(*std::make_unique<repo::Session>(*repo_), 15 * kDay, now_, true);
  ASSERT_OK(dry);
  EXPECT_EQ(dry->forgotten.size(), 1u);
  EXPECT_EQ(dry->wal_removed.size(), 9u);  // segments 1..9
  EXPECT_EQ(wal().size(), 37u) << "a dry run removed something";

  auto r = pg::retain(*std::make_unique<repo::Session>(*repo_), 15 * kDay, now_, false);
  ASSERT_OK(r);
  ASSERT_EQ(r->forgotten.size(), 1u);
  EXPECT_EQ(r->forgotten[0].id, b40);
  ASSERT_EQ(r->kept.size(), 3u);
  EXPECT_EQ(r->kept[0].id, b20);
  EXPECT_EQ(r->oldest_needed_segment, seg_name(1, 10));
  auto left = wal();
  EXPECT_EQ(left.size(), 28u);  // 10..35, the history file, the .backup file
  for (uint64_t s = 1; s < 10; s++) EXPECT_EQ(std::count(left.begin(), left.end(), seg_name(1, s)), 0);
  for (uint64_t s = 10; s <= 35; s++) EXPECT_EQ(std::count(left.begin(), left.end(), seg_name(1, s)), 1) << s;
  EXPECT_EQ(std::count(left.begin(), left.end(), "00000002.history"), 1);
  auto ids = repo_->list_snapshots();
  ASSERT_OK(ids);
  EXPECT_EQ(ids->size(), 3u);

  // Every kept backup still has its window: recovery from the 20-day backup to now.
  windows = pg::recoverable_windows(*repo_, *pg::list_base_backups(*repo_));
  ASSERT_OK(windows);
  ASSERT_EQ(windows->size(), 1u);
  EXPECT_EQ((*windows)[0].from_lsn, 10 * kSeg + 300);
  (void)b10;
  (void)b1;
}

TEST_F(PgRetentionTest, AGapInTheArchiveEndsTheWindowAndAWindowIsRequired) {
  base_backup(5, 2);
  for (uint64_t s = 5; s <= 9; s++) push(seg_name(1, s));
  for (uint64_t s = 11; s <= 12; s++) push(seg_name(1, s));  // segment 10 is missing
  auto windows = pg::recoverable_windows(*repo_, *pg::list_base_backups(*repo_));
  ASSERT_OK(windows);
  ASSERT_EQ(windows->size(), 1u);
  EXPECT_EQ((*windows)[0].last_segment, seg_name(1, 9));
  EXPECT_EQ((*windows)[0].to_lsn, 10 * kSeg);
  auto zero = pg::retain(*std::make_unique<repo::Session>(*repo_), 0, now_, true);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error().code(), Error::Code::kInvalidArgument);
}

TEST_F(PgRetentionTest, CliRetainAndWindows) {
  // A 7-day window keeps the backup of 3 days ago and the one of 20 days ago (recovery to 7
  // days ago starts there); the 40-day one and WAL before segment 6 go.
  base_backup(2, 40);
  base_backup(6, 20);
  base_backup(10, 3);
  for (uint64_t s = 1; s <= 12; s++) push(seg_name(1, s));
  repo_.reset();
  RunResult w = cli(dir_ + "/repo", {"pg", "windows"});
  ASSERT_EQ(w.code, 0) << describe(w);
  EXPECT_NE(w.out.find("timeline 1"), std::string::npos) << w.out;
  EXPECT_NE(w.out.find(seg_name(1, 12)), std::string::npos) << w.out;
  RunResult bad = cli(dir_ + "/repo", {"pg", "retain", "--window", "soon"});
  EXPECT_EQ(bad.code, 2) << describe(bad);
  EXPECT_EQ(list_dir(dir_ + "/repo/wal").size(), 12u);
  RunResult r = cli(dir_ + "/repo", {"pg", "retain", "--window", "7d", "--prune"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("forgot base backup"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("removed 5 WAL file(s)"), std::string::npos) << r.out;
  EXPECT_EQ(list_dir(dir_ + "/repo/wal").size(), 7u);
  RunResult c = cli(dir_ + "/repo", {"check"});
  EXPECT_EQ(c.code, 0) << describe(c);
}

}  // namespace
}  // namespace haven

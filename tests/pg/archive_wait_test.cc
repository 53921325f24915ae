// pg backup's wait for a WAL segment to be archived (pg::wait_until_archived), against a real
// PostgreSQL 15 server whose archiver is made to lag or fail on purpose:
//   - a segment whose .done is in archive_status counts as archived even while pg_stat_archiver
//     names an older file (a backup history file archived after a later segment did that, and a
//     backup waited two minutes);
//   - pg_stat_archiver's last archived file counts when this process sees no .done;
//   - a segment not archived either way is waited for until the token is cancelled.
//
// Needs PostgreSQL 15 from Debian's packages (scripts/setup.sh) and root (to run it as nobody).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/fs_test_util.h"
#pragma GCC diagnostic pop

#include "pg/basebackup.h"
#include "pg/pg_cluster.h"
#include "pg/pgconn.h"

namespace haven {
namespace {

using haven::testing::PgCluster;
using haven::testing::PgTempDir;
using Clock = std::chrono::steady_clock;

class PgArchiveWaitTest : public ::testing::Test {
 protected:
  // archive_command copies each segment into dir/archive, unless dir/hold exists: then it
  // fails, and PostgreSQL keeps the segment .ready and retries.
  void SetUp() override {
    const std::string missing = haven::testing::pg_missing();
    ASSERT_TRUE(missing.empty()) << missing;
    HAVEN_SKIP_UNLESS_ROOT("runs PostgreSQL as nobody");
    tmp_ = std::make_unique<PgTempDir>();
    ASSERT_FALSE(tmp_->path().empty());
    dir_ = tmp_->path();
    ASSERT_EQ(::mkdir((dir_ + "/archive").c_str(), 0777), 0);
    ASSERT_EQ(::chmod((dir_ + "/archive").c_str(), 0777), 0);
    pg_ = PgCluster::create(dir_ + "/data", dir_,
                            "test ! -e " + dir_ + "/hold && cp %p " + dir_ + "/archive/%f");
    ASSERT_TRUE(pg_->ok());
    ASSERT_TRUE(pg_->start());
    auto conn = pg::Connection::open(pg_->conninfo());
    ASSERT_TRUE(conn.ok()) << conn.error().message();
    conn_ = std::make_unique<pg::Connection>(std::move(*conn));
  }

  void TearDown() override {
    conn_.reset();
    pg_.reset();
    tmp_.reset();
  }

  void hold_archiving() { std::ofstream(dir_ + "/hold") << "x"; }
  void release_archiving() { ::unlink((dir_ + "/hold").c_str()); }
  std::string status_file(const std::string& segment, const std::string& suffix) const {
    return dir_ + "/data/pg_wal/archive_status/" + segment + suffix;
  }
  std::string last_archived() const { return pg_->psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"); }

  // Runs the wait with a token a watchdog cancels after `limit`; the status and how long it took.
  std::pair<Status, Clock::duration> wait_for(const std::string& segment, std::chrono::milliseconds limit) {
    CancelToken token;
    NullSink sink;
    Reporter events(sink, OpKind::kPgBackup);
    std::thread watchdog([&] {
      if (!token.sleep_for(limit)) token.cancel();
    });
    const auto begin = Clock::now();
    Status st = pg::wait_until_archived(*conn_, dir_ + "/data", segment, token, events);
    const auto took = Clock::now() - begin;
    token.cancel();
    watchdog.join();
    return {st, took};
  }

  std::unique_ptr<PgTempDir> tmp_;
  std::string dir_;
  std::unique_ptr<PgCluster> pg_;
  std::unique_ptr<pg::Connection> conn_;
};

TEST_F(PgArchiveWaitTest, ASegmentWhoseDoneFileExistsIsArchivedWhateverTheStatisticsSay) {
  // The archiver has archived segment A; B and C wait behind a failing archive_command, so
  // pg_stat_archiver names A. C's .done appearing (as when PostgreSQL archived C and then a
  // history file named after A) is enough.
  const std::string a = pg_->switch_wal();
  ASSERT_TRUE(pg_->wait_archived(a));
  hold_archiving();
  pg_->psql("CREATE TABLE t(x int); INSERT INTO t VALUES (1)");
  const std::string b = pg_->switch_wal();
  pg_->psql("INSERT INTO t VALUES (2)");
  const std::string c = pg_->switch_wal();
  ASSERT_LT(b, c);
  // pg_switch_wal has returned; the segment's .ready may follow a moment later.
  for (int i = 0; i < 500 && ::access(status_file(c, ".ready").c_str(), F_OK) != 0; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(last_archived(), a);

  auto [before, before_took] = wait_for(c, std::chrono::milliseconds(400));
  ASSERT_FALSE(before.ok()) << "returned before " << c << " was archived";
  EXPECT_EQ(before.error().code(), Error::Code::kCancelled);
  EXPECT_GE(before_took, std::chrono::milliseconds(350));

  // What the archiver leaves once it has archived C (the .ready renamed to .done).
  ASSERT_EQ(::rename(status_file(c, ".ready").c_str(), status_file(c, ".done").c_str()), 0);
  auto [after, after_took] = wait_for(c, std::chrono::seconds(20));
  EXPECT_TRUE(after.ok()) << after.error().message();
  EXPECT_LT(after_took, std::chrono::seconds(2));
  EXPECT_EQ(last_archived(), a) << "the statistics moved on: the test no longer shows what it means to";
  release_archiving();
}

TEST_F(PgArchiveWaitTest, TheLastArchivedFileCountsWhenNoDoneFileIsSeen) {
  const std::string a = pg_->switch_wal();
  ASSERT_TRUE(pg_->wait_archived(a));
  // This process might not see archive_status (another host's mount): only the statistics say.
  ::unlink(status_file(a, ".done").c_str());
  auto [st, took] = wait_for(a, std::chrono::seconds(20));
  EXPECT_TRUE(st.ok()) << st.error().message();
  EXPECT_LT(took, std::chrono::seconds(2));
}

TEST_F(PgArchiveWaitTest, AFailingArchiveCommandIsWaitedForUntilCancelled) {
  hold_archiving();
  const std::string a = pg_->switch_wal();
  auto [st, took] = wait_for(a, std::chrono::milliseconds(500));
  ASSERT_FALSE(st.ok()) << "returned before " << a << " was archived";
  EXPECT_EQ(st.error().code(), Error::Code::kCancelled);
  EXPECT_GE(took, std::chrono::milliseconds(450));
  // Released, the archiver's next retry archives it and the wait ends (a new segment wakes the
  // archiver, which otherwise retries a minute after three failures).
  release_archiving();
  pg_->psql("CREATE TABLE t(x int)");
  pg_->switch_wal();
  auto [later, later_took] = wait_for(a, std::chrono::seconds(90));
  EXPECT_TRUE(later.ok()) << later.error().message();
}

}  // namespace
}  // namespace haven

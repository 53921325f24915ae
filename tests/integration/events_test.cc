// The event sequence of real operations: a backup and a restore (and a cancelled restore, a
// check, a prune) through the library, recorded as a server's sink would see them.
#include <chrono>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "backup/backup.h"
#include "check/check.h"
#include "restore/restore.h"
#include "retention/prune.h"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"

namespace haven {
namespace {

class EventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/haven-events-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    src_ = dir_ + "/src";
    make_dir(src_);
    for (int d = 0; d < 3; d++) {
      make_dir(src_ + "/d" + std::to_string(d));
      for (int i = 0; i < 20; i++) {
        std::string data = random_bytes(50000 + 1000 * i, 31 * d + i);
        bytes_ += data.size();
        files_++;
        write_file(src_ + "/d" + std::to_string(d) + "/f" + std::to_string(i), data);
      }
    }
    repo_ = init_repo(dir_ + "/repo", 1u << 20);
    ASSERT_TRUE(repo_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Checks what every operation's events share: one ID, sequence 1..n without gaps (a direct
  // sink sees every event), times that never go back, the start first and the end last.
  static void expect_well_formed(const std::vector<Event>& ev, const std::string& start,
                                 const std::string& end) {
    ASSERT_GE(ev.size(), 2u);
    EXPECT_EQ(ev.front().name(), start);
    EXPECT_EQ(ev.back().name(), end);
    for (size_t i = 0; i < ev.size(); i++) {
      EXPECT_EQ(ev[i].operation_id, ev[0].operation_id);
      EXPECT_EQ(ev[i].seq, i + 1);
      if (i > 0) {
      EXPECT_GE(ev[i].time, ev[i - 1].time);
    }
      if (i > 0 && i + 1 < ev.size()) {
        EXPECT_NE(ev[i].kind, EventKind::kStarted);
        EXPECT_NE(ev[i].kind, EventKind::kCompleted);
      }
    }
  }

  // A session of the repository under its token (as ops::lock opens them), without a lock.
  std::unique_ptr<repo::Session> session() {
    return std::make_unique<repo::Session>(*repo_, repo_->cancel_token());
  }

  std::string dir_, src_;
  uint64_t bytes_ = 0, files_ = 0;
  std::unique_ptr<repo::Repository> repo_;
};

TEST_F(EventsTest, BackupThenRestoreReportTheirWholeSequence) {
  RecordingSink bs;
  backup::Options bo;
  bo.paths = {src_};
  auto b = backup::run(*session(), bo, EventTarget(bs, "backup-1"));
  ASSERT_OK(b);
  auto ev = bs.events;
  expect_well_formed(ev, "backup:started", "backup:completed");
  EXPECT_EQ(ev.front().operation_id, "backup-1");
  EXPECT_EQ(ev.front().data["paths"], nlohmann::json({src_}));
  // Progress: one schema, counts that never go back, and a final report that matches the stats.
  uint64_t files = 0, bytes = 0;
  const Progress* last = nullptr;
  for (const auto& e : ev) {
    if (e.kind != EventKind::kProgress) continue;
    EXPECT_EQ(e.name(), "backup:progress");
    EXPECT_EQ(e.progress->phase, "files");
    EXPECT_GE(e.progress->files_done, files);
    EXPECT_GE(e.progress->bytes_done, bytes);
    EXPECT_LE(e.progress->bytes_done, e.progress->bytes_total);
    files = e.progress->files_done;
    bytes = e.progress->bytes_done;
    last = &*e.progress;
  }
  ASSERT_NE(last, nullptr) << "a backup reports progress";
  EXPECT_TRUE(last->final);
  EXPECT_EQ(last->files_done, files_);
  EXPECT_EQ(last->bytes_done, bytes_);
  EXPECT_EQ(last->bytes_total, bytes_);
  EXPECT_EQ(last->eta_seconds, 0);
  EXPECT_EQ(ev.back().data["snapshot_id"], repo::hex(b->snapshot_id));
  EXPECT_EQ(ev.back().data["stats"]["files_new"], files_);
  EXPECT_EQ(bs.of(EventKind::kWarning).size(), 0u);

  // A verified restore of the whole snapshot: totals known from the start.
  RecordingSink rs;
  auto choice = restore::choose_snapshot(*repo_, "latest");
  ASSERT_OK(choice);
  restore::Options ro;
  ro.target = dir_ + "/out";
  ro.verify = true;
  auto r = restore::run(*session(), *choice, ro, rs);
  ASSERT_OK(r);
  auto rev = rs.events;
  expect_well_formed(rev, "restore:initiated", "restore:completed");
  EXPECT_NE(rev.front().operation_id, ev.front().operation_id);
  EXPECT_EQ(rev.front().data["snapshot"], repo::hex(b->snapshot_id));
  std::vector<std::string> kinds;
  for (const auto& e : rev) {
    if (kinds.empty() || kinds.back() != e.name()) kinds.push_back(e.name());
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"restore:initiated", "restore:progress",
                                             "restore:validated", "restore:completed"}));
  const Progress lastr = *rs.of(EventKind::kProgress).back().progress;
  EXPECT_TRUE(lastr.final);
  EXPECT_EQ(lastr.files_done, files_);
  EXPECT_EQ(lastr.files_total, files_);
  EXPECT_EQ(lastr.bytes_done, bytes_);
  EXPECT_EQ(lastr.bytes_total, bytes_);
  for (const auto& e : rs.of(EventKind::kProgress)) {
    EXPECT_EQ(e.progress->bytes_total, bytes_) << "the total is known from the snapshot";
  }
  auto validated = rs.of(EventKind::kValidated);
  ASSERT_EQ(validated.size(), 1u);
  EXPECT_EQ(validated[0].data["verified"], files_);
  EXPECT_EQ(validated[0].data["errors"], 0);
  EXPECT_EQ(rev.back().data["files"], files_);
  EXPECT_EQ(rev.back().to_json()["message_type"], "summary");
  expect_same_tree(src_, ro.target + src_.substr(src_.rfind('/')));
}

TEST_F(EventsTest, AFailedAndACancelledOperationEndWithTheirEvent) {
  RecordingSink fs;
  backup::Options bad;
  bad.paths = {src_};
  bad.strategy = "weekly";
  EXPECT_FALSE(backup::run(*session(), bad, fs).ok());
  expect_well_formed(fs.events, "backup:started", "backup:failed");
  EXPECT_NE(fs.events.back().message.find("weekly"), std::string::npos);
  EXPECT_EQ(fs.events.back().data["code"], code_name(Error::Code::kInvalidArgument));

  backup::Options bo;
  bo.paths = {src_};
  NullSink none;
  ASSERT_OK(backup::run(*session(), bo, none));
  auto choice = restore::choose_snapshot(*repo_, "latest");
  ASSERT_OK(choice);
  CancelToken token;
  repo_->set_cancel_token(token);
  token.cancel(Error(Error::Code::kCancelled, "stopped by the test"));
  RecordingSink cs;
  restore::Options ro;
  ro.target = dir_ + "/out";
  auto r = restore::run(*session(), *choice, ro, cs);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kCancelled);
  expect_well_formed(cs.events, "restore:initiated", "restore:cancelled");
}

TEST_F(EventsTest, CheckAndPruneReportPhasesInTheSameSchema) {
  backup::Options bo;
  bo.paths = {src_};
  NullSink none;
  ASSERT_OK(backup::run(*session(), bo, none));
  RecordingSink cs;
  check::Options co;
  co.read_data = check::Options::ReadData::kAll;
  auto c = check::check(*session(), co, cs);
  ASSERT_OK(c);
  expect_well_formed(cs.events, "check:started", "check:completed");
  EXPECT_EQ(cs.events.back().data["damaged"], false);
  std::set<std::string> phases;
  for (const auto& e : cs.of(EventKind::kProgress)) {
    phases.insert(e.progress->phase);
    EXPECT_LE(e.progress->items_done, e.progress->items_total == 0 ? e.progress->items_done
                                                                  : e.progress->items_total);
  }
  EXPECT_TRUE(phases.count("read-data")) << "read-data reports progress";

  RecordingSink ps;
  retention::PruneOptions po;
  auto p = retention::prune(*session(), po, ps);
  ASSERT_OK(p);
  expect_well_formed(ps.events, "prune:started", "prune:completed");
  EXPECT_EQ(ps.events.back().data["dry_run"], false);
}

}  // namespace
}  // namespace haven

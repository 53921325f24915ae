// Cancellation and lock safety, end to end through the library and the CLI:
//  - backup, restore, check --read-data and prune cancelled at random moments return within 1 s,
//    a cancelled backup leaves no snapshot, and afterwards check finds nothing but what prune
//    removes, and every snapshot restores bit-exact;
//  - SIGINT and SIGTERM stop the CLI the same way: exit 130/143, the lock released;
//  - a backup whose lock can no longer be refreshed stops before a prune in another process may
//    judge the lock stale, so that prune never deletes data a live backup references.
//
// Latency is added to every storage call (as object storage has), so the operations last long
// enough to be cancelled in the middle; it wraps the real local backend.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "backup/backup.h"
#include "check/check.h"
#include "restore/restore.h"
#include "retention/prune.h"
#include "storage/local.h"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"

namespace haven {
namespace {

using Clock = std::chrono::steady_clock;

// The real local backend, each call `delay` later (object-storage latency); lock writes can be
// refused from a chosen moment.
class SlowBackend : public storage::BackendWrapper {
 public:
  SlowBackend(std::shared_ptr<storage::Backend> inner, std::chrono::milliseconds delay)
      : BackendWrapper(std::move(inner)), delay_(delay) {}
  std::atomic<bool> refuse_locks{false};
  Status save(const storage::ObjectName& n, ByteView d) override {
    if (refuse_locks && n.type == storage::ObjectType::kLock) {
      return Error(Error::Code::kPermissionDenied, "injected: lock writes refused");
    }
    wait();
    return BackendWrapper::save(n, d);
  }
  Result<Bytes> load(const storage::ObjectName& n, uint64_t off, uint64_t len) override {
    wait();
    return BackendWrapper::load(n, off, len);
  }
  Status remove(const storage::ObjectName& n) override {
    wait();
    return BackendWrapper::remove(n);
  }

 private:
  void wait() { std::this_thread::sleep_for(delay_); }
  std::chrono::milliseconds delay_;
};

class CancelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/haven-cancel-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    src_ = dir_ + "/src";
    repo_ = dir_ + "/repo";
    make_dir(src_);
    for (int d = 0; d < 4; d++) {
      make_dir(src_ + "/d" + std::to_string(d));
      for (int i = 0; i < 6; i++) {
        write_file(src_ + "/d" + std::to_string(d) + "/f" + std::to_string(i),
                   random_bytes(1500000 + 100000 * i, 7 * d + i));
      }
    }
    ASSERT_TRUE(init_repo(repo_, 1u << 20));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<repo::Repository> open(std::chrono::milliseconds delay = std::chrono::milliseconds(15)) {
    auto local = storage::open_backend(repo_);
    if (!local.ok()) return nullptr;
    slow_ = std::make_shared<SlowBackend>(*local, delay);
    auto r = repo::Repository::open(slow_, kPw);
    if (!r.ok()) {
      ADD_FAILURE() << r.error().message();
      return nullptr;
    }
    return std::move(*r);
  }

  size_t snapshots() {
    size_t n = 0;
    EXPECT_TRUE(storage::LocalBackend(repo_)
                    .list(storage::ObjectType::kSnapshot, [&](const storage::ObjectInfo&) { n++; })
                    .ok());
    return n;
  }
  size_t locks() {
    size_t n = 0;
    EXPECT_TRUE(storage::LocalBackend(repo_)
                    .list(storage::ObjectType::kLock, [&](const storage::ObjectInfo&) { n++; })
                    .ok());
    return n;
  }

  // Runs `op` on a fresh session and cancels it `after` into the run (if still running).
  // Returns how long the operation took to return after the cancel (negative: it finished
  // before), and its status.
  struct Outcome {
    double cancel_to_return_ms = -1;
    Status status;
  };
  Outcome run_cancelled(const std::function<Status(repo::Session&)>& op,
                        std::chrono::milliseconds after) {
    auto r = open();
    if (!r) return {};
    CancelToken token;
    repo::Session session(*r, token);
    std::atomic<bool> finished{false};
    Clock::time_point cancelled_at{};
    std::thread canceller([&] {
      auto until = Clock::now() + after;
      while (!finished && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (!finished) {
        cancelled_at = Clock::now();
        token.cancel();
      }
    });
    Outcome out;
    out.status = op(session);
    auto returned = Clock::now();
    finished = true;
    canceller.join();
    if (cancelled_at != Clock::time_point{}) {
      out.cancel_to_return_ms = std::chrono::duration<double, std::milli>(returned - cancelled_at).count();
    }
    (void)session.unlock();
    return out;
  }

  double timed(const std::function<Status(repo::Session&)>& op) {
    auto r = open();
    repo::Session session(*r);
    auto t0 = Clock::now();
    Status s = op(session);
    EXPECT_TRUE(s.ok()) << s.error().message();
    (void)session.unlock();
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  }

  std::string dir_, src_, repo_;
  std::shared_ptr<SlowBackend> slow_;
};

Status do_backup(repo::Session& session, const std::string& src, const std::string& strategy) {
  HAVEN_TRY(session.lock(false));
  HAVEN_TRY(session.repo().load_index());
  backup::Options o;
  o.paths = {src};
  o.strategy = strategy;
  NullSink sink;
  HAVEN_TRY(backup::run(session, o, sink));
  return ok_status();
}

TEST_F(CancelTest, OperationsCancelledAtRandomMomentsReturnWithinOneSecondAndLoseNothing) {
  std::mt19937_64 rng(20261202);
  auto backup_full = [&](repo::Session& session) { return do_backup(session, src_, "full"); };
  auto restore_latest = [&](repo::Session& session) -> Status {
    repo::Repository& r = session.repo();
    HAVEN_TRY(session.lock(false));
    HAVEN_TRY(r.load_index());
    HAVEN_ASSIGN(repo::Id id, r.resolve_snapshot("latest"));
    HAVEN_ASSIGN(repo::Snapshot s, r.load_snapshot(id));
    restore::Options o;
    o.target = dir_ + "/restore-" + std::to_string(rng());
    NullSink sink;
    HAVEN_TRY(restore::run(session, s.tree, o, sink));
    return ok_status();
  };
  auto check_all = [&](repo::Session& session) -> Status {
    HAVEN_TRY(session.lock(false));
    check::Options o;
    o.read_data = check::Options::ReadData::kAll;
    NullSink sink;
    HAVEN_ASSIGN(check::Report rep, check::check(session, o, sink));
    if (rep.damaged()) return Error(Error::Code::kCorrupt, "check found damage");
    return ok_status();
  };

  // A first snapshot, and how long each operation takes uncancelled.
  const double backup_ms = timed(backup_full);
  ASSERT_EQ(snapshots(), 1u);
  const std::string first = dir_ + "/first";
  const double restore_ms = timed([&](repo::Session& session) -> Status {
    repo::Repository& r = session.repo();
    HAVEN_TRY(r.load_index());
    HAVEN_ASSIGN(repo::Id id, r.resolve_snapshot("latest"));
    HAVEN_ASSIGN(repo::Snapshot s, r.load_snapshot(id));
    restore::Options o;
    o.target = first;
    NullSink sink;
    HAVEN_TRY(restore::run(session, s.tree, o, sink));
    return ok_status();
  });
  expect_same_tree(src_, first + "/src");
  const double check_ms = timed(check_all);
  std::cout << "[ cancel   ] uncancelled: backup " << backup_ms << " ms, restore " << restore_ms
            << " ms, check --read-data " << check_ms << " ms\n";

  struct Op {
    const char* name;
    std::function<Status(repo::Session&)> fn;
    double ms;
  };
  // A changed source makes every further backup write new data (d0's times are put back for
  // the final comparison).
  const TimeNs d0_mtime = mtime_of(src_ + "/d0");
  int change = 0;
  std::vector<Op> ops{{"backup", [&](repo::Session& session) {
                         write_file(src_ + "/d0/changed", random_bytes(3000000, 1000 + change++));
                         return backup_full(session);
                       }, backup_ms},
                      {"restore", restore_latest, restore_ms},
                      {"check", check_all, check_ms}};
  double worst = 0;
  int mid_work = 0;
  for (auto& op : ops) {
    int landed = 0;
    for (int trial = 0; trial < 4; trial++) {
      size_t before = snapshots();
      std::uniform_real_distribution<double> when(0.05, 0.8);
      auto after = std::chrono::milliseconds(static_cast<int64_t>(when(rng) * op.ms));
      Outcome o = run_cancelled(op.fn, after);
      if (o.cancel_to_return_ms < 0) {
        EXPECT_TRUE(o.status.ok()) << op.name << ": " << o.status.error().message();
        continue;  // finished before the cancel
      }
      worst = std::max(worst, o.cancel_to_return_ms);
      EXPECT_LT(o.cancel_to_return_ms, 1000) << op.name << " took long to stop";
      if (!o.status.ok()) {
        landed++;
        EXPECT_EQ(o.status.error().code(), Error::Code::kCancelled)
            << op.name << ": " << o.status.error().message();
        if (std::string(op.name) == "backup") {
          EXPECT_EQ(snapshots(), before) << "a cancelled backup left a snapshot";
        }
      }
      EXPECT_EQ(locks(), 0u) << op.name << " left its lock";
    }
    std::cout << "[ cancel   ] " << op.name << ": " << landed << " of 4 cancels landed mid-work\n";
    mid_work += landed;
  }
  std::cout << "[ cancel   ] slowest return after a cancel: " << worst << " ms\n";
  EXPECT_GE(mid_work, 6) << "too few cancels landed in the middle of the work to prove anything";

  // Prune, cancelled at random moments, after forgetting all but the first snapshot.
  {
    auto r = open();
    ASSERT_TRUE(r);
    auto all = r->list_snapshots();
    ASSERT_TRUE(all.ok());
    for (size_t i = 1; i < all->size(); i++) ASSERT_TRUE(r->remove_snapshot((*all)[i].first).ok());
  }
  auto prune = [&](repo::Session& session) -> Status {
    HAVEN_TRY(session.lock(true));
    retention::PruneOptions o;
    o.max_unused_percent = 0;
    NullSink sink;
    HAVEN_TRY(retention::prune(session, o, sink));
    return ok_status();
  };
  int prune_landed = 0;
  for (int trial = 0; trial < 3; trial++) {
    Outcome o = run_cancelled(prune, std::chrono::milliseconds(100 + 150 * trial));
    if (o.cancel_to_return_ms < 0) continue;
    EXPECT_LT(o.cancel_to_return_ms, 1000) << "prune took long to stop";
    if (!o.status.ok()) {
      prune_landed++;
      EXPECT_EQ(o.status.error().code(), Error::Code::kCancelled) << o.status.error().message();
    }
  }
  std::cout << "[ cancel   ] prune: " << prune_landed << " of 3 cancels landed mid-work\n";
  EXPECT_GE(prune_landed, 1);

  // Whatever was cancelled where: check finds nothing but what prune removes, and the first
  // snapshot restores bit-exact.
  {
    auto r = open(std::chrono::milliseconds(0));
    ASSERT_TRUE(r);
    repo::Session session(*r);
    check::Options o;
    o.read_data = check::Options::ReadData::kAll;
    NullSink sink;
    auto rep = check::check(session, o, sink);
    ASSERT_TRUE(rep.ok()) << rep.error().message();
    for (const auto& p : rep->problems) {
      EXPECT_FALSE(p.damage) << p.object << ": " << p.error;
    }
    ASSERT_TRUE(prune(session).ok());
    ASSERT_TRUE(session.unlock().ok());
  }
  ASSERT_EQ(snapshots(), 1u);
  const std::string again = dir_ + "/again";
  auto r = open(std::chrono::milliseconds(0));
  ASSERT_TRUE(r && r->load_index().ok());
  auto id = r->resolve_snapshot("latest");
  ASSERT_TRUE(id.ok());
  auto s = r->load_snapshot(*id);
  ASSERT_TRUE(s.ok());
  restore::Options o;
  o.target = again;
  NullSink sink;
  repo::Session session(*r);
  ASSERT_TRUE(restore::run(session, s->tree, o, sink).ok());
  fs::remove_all(src_ + "/d0/changed");
  set_times(src_ + "/d0", d0_mtime, d0_mtime);
  expect_same_tree(src_, again + "/src");
}

TEST_F(CancelTest, AStreamCommandIsStoppedWhenTheBackupIsCancelled) {
  auto r = open(std::chrono::milliseconds(0));
  ASSERT_TRUE(r);
  CancelToken token;
  repo::Session session(*r, token);
  ASSERT_TRUE(session.lock(false).ok());
  ASSERT_TRUE(r->load_index().ok());
  backup::Options o;
  o.from_stdin = true;
  o.stdin_filename = "stream";
  // A pipeline: stopping only the shell would leave `cat` holding the stream open.
  o.command = {"sh", "-c", "head -c 1000000 /dev/urandom; sleep 60 | cat"};
  NullSink sink;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    token.cancel();
  });
  auto t0 = Clock::now();
  auto res = backup::run(session, o, sink);
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  canceller.join();
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code(), Error::Code::kCancelled) << res.error().message();
  EXPECT_LT(ms, 1400) << "the command was not stopped";
  EXPECT_EQ(snapshots(), 0u);
  ASSERT_TRUE(session.unlock().ok());
}

// A plain --stdin backup whose producer has gone silent (the pipe stays open) is cancelled too.
TEST_F(CancelTest, ASilentStdinIsCancelled) {
  RunOptions ro;
  ro.env = {{"HAVEN_PASSWORD", kPw}};
  ro.feed_stdin = true;
  ro.input = std::string(2000000, 'x');  // then the pipe stays open without data
  ro.keep_stdin_open = true;
  ro.signal_after = std::chrono::milliseconds(1500);
  ro.signal = SIGINT;
  auto t0 = Clock::now();
  RunResult res = run_haven({"-r", repo_, "backup", "--stdin", "--stdin-filename", "s"}, ro);
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  EXPECT_EQ(res.code, 130) << describe(res);
  EXPECT_LT(ms, 1500 + 1000) << "the backup sat in read() after the signal";
  EXPECT_EQ(locks(), 0u);
  EXPECT_EQ(snapshots(), 0u);
}

// The CLI: SIGINT and SIGTERM cancel, release the lock and exit 130 / 143.
TEST_F(CancelTest, SigintAndSigtermStopTheCliReleasingTheLock) {
  for (int sig : {SIGINT, SIGTERM}) {
    RunOptions ro;
    ro.env = {{"HAVEN_PASSWORD", kPw}};
    // A stream that never ends: only the signal stops this backup.
    std::vector<std::string> args{"-r", repo_, "backup", "--stdin-from-command", "--stdin-filename",
                                  "s", "--", "sh", "-c", "head -c 3000000 /dev/urandom; exec sleep 60"};
    ro.signal_after = std::chrono::milliseconds(1500);
    ro.signal = sig;
    auto t0 = Clock::now();
    RunResult res = run_haven(args, ro);
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    EXPECT_EQ(res.code, 128 + sig) << describe(res);
    EXPECT_TRUE(contains(res.err, sig == SIGINT ? "SIGINT" : "SIGTERM")) << res.err;
    EXPECT_LT(ms, 1500 + 1000) << "did not stop within a second of the signal";
    EXPECT_EQ(locks(), 0u) << "the lock was left behind";
    EXPECT_EQ(snapshots(), 0u);
  }
}

// Two processes: a backup whose lock writes start failing, and a prune in another process that
// judges the backup's lock stale as soon as it may. The backup must have stopped by then; prune
// then deletes what the backup uploaded, and no snapshot references it.
TEST_F(CancelTest, PruneNeverDeletesDataALiveBackupReferences) {
  const TimeNs refresh = 100 * 1000000LL, stale = 1500 * 1000000LL;
  // An earlier snapshot that must survive.
  {
    auto r = open(std::chrono::milliseconds(0));
    repo::Session session(*r);
    ASSERT_TRUE(do_backup(session, src_ + "/d1", "full").ok());
  }
  // The prune process is forked before this process starts any thread.
  int go[2], result[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(result), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(go[1]);
    close(result[0]);
    char c;
    if (read(go[0], &c, 1) != 1) _exit(2);
    auto be = storage::open_backend(repo_);
    if (!be.ok()) _exit(3);
    auto r = repo::Repository::open(*be, kPw);
    if (!r.ok()) _exit(4);
    (*r)->set_lock_timing(refresh, stale);
    repo::Session session(**r);
    // Waits while the backup's lock is live, as a prune started by cron would be refused.
    Status locked = Error(Error::Code::kLocked, "");
    for (int i = 0; i < 100 && !(locked = session.lock(true)).ok(); i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!locked.ok()) _exit(5);
    retention::PruneOptions po;
    po.max_unused_percent = 0;
    NullSink sink;
    auto st = retention::prune(session, po, sink);
    if (!st.ok()) _exit(6);
    uint64_t deleted = st->packs_deleted + st->packs_unindexed;
    (void)!write(result[1], &deleted, sizeof deleted);
    (void)session.unlock();
    _exit(0);
  }
  close(go[0]);
  close(result[1]);

  auto r = open(std::chrono::milliseconds(150));  // slow uploads: the backup outlives its lock
  ASSERT_TRUE(r);
  r->set_lock_timing(refresh, stale);
  repo::Session session(*r);
  Status backup_status;
  std::thread backup([&] {
    backup_status = do_backup(session, src_, "full");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  slow_->refuse_locks = true;  // from now on the backup's lock cannot be refreshed
  ASSERT_EQ(write(go[1], "g", 1), 1);  // the prune starts trying
  backup.join();
  uint64_t deleted = 0;
  ASSERT_EQ(read(result[0], &deleted, sizeof deleted), static_cast<ssize_t>(sizeof deleted));
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "prune child status " << status;
  slow_->refuse_locks = false;
  ASSERT_TRUE(session.unlock().ok());

  ASSERT_FALSE(backup_status.ok()) << "the backup went on with a lock it could not refresh";
  EXPECT_EQ(backup_status.error().code(), Error::Code::kLocked) << backup_status.error().message();
  EXPECT_TRUE(contains(backup_status.error().message(), "could not be refreshed"))
      << backup_status.error().message();
  std::cout << "[ lock     ] prune deleted " << deleted << " packs the stopped backup had uploaded\n";
  EXPECT_GT(deleted, 0u) << "prune ran before the backup uploaded anything: the test proves nothing";
  EXPECT_EQ(snapshots(), 1u);

  auto c = open(std::chrono::milliseconds(0));
  check::Options o;
  o.read_data = check::Options::ReadData::kAll;
  NullSink sink;
  repo::Session check_session(*c);
  auto rep = check::check(check_session, o, sink);
  ASSERT_TRUE(rep.ok()) << rep.error().message();
  EXPECT_FALSE(rep->damaged()) << check::report_json(*rep).dump(2);
}

}  // namespace
}  // namespace haven

// Backup, restore and check through the retry decorator over a real local backend that a fault
// injector makes misbehave: with 10% of calls failing (before or after taking effect), stalling
// or cutting listings short, everything completes and verifies; with the backend gone for good,
// the command fails after bounded retries with a clear message and the repository stays valid.
#include <gtest/gtest.h>

#include "backup/backup.h"
#include "check/check.h"
#include "restore/restore.h"
#include "storage/local.h"
#include "storage/retry.h"
#include "support/fault_backend.h"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"

namespace haven {
namespace {

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/haven-faults-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    src_ = dir_ + "/src";
    make_dir(src_);
    for (int d = 0; d < 3; d++) make_dir(src_ + "/d" + std::to_string(d));
    for (int i = 0; i < 12; i++) {
      write_file(src_ + "/d" + std::to_string(i % 3) + "/f" + std::to_string(i),
                 random_bytes(50000 + i * 90000, 100 + i));
    }
    // The repository is created over the plain backend, then used through faults.
    auto r = init_repo(dir_ + "/repo", 1u << 20);
    ASSERT_TRUE(r);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::shared_ptr<testing::FaultBackend> faults(double rate, uint64_t seed) {
    testing::FaultPlan p;
    p.fail_before = rate / 2;
    p.fail_after = rate / 2;
    p.stall = rate;
    p.stall_time = std::chrono::milliseconds(2);
    p.seed = seed;
    return std::make_shared<testing::FaultBackend>(
        std::make_shared<storage::LocalBackend>(dir_ + "/repo"), p);
  }
  std::shared_ptr<storage::RetryBackend> retrying(std::shared_ptr<storage::Backend> inner,
                                                 int attempts = 12) {
    storage::RetryPolicy rp;
    rp.base_delay = std::chrono::milliseconds(1);
    rp.max_delay = std::chrono::milliseconds(20);
    rp.max_attempts = attempts;
    rp.max_elapsed = std::chrono::milliseconds(3000);
    return std::make_shared<storage::RetryBackend>(std::move(inner), rp);
  }
  std::unique_ptr<repo::Repository> open(std::shared_ptr<storage::Backend> be) {
    auto r = repo::Repository::open(std::move(be), kPw);
    if (!r.ok()) {
      ADD_FAILURE() << r.error().message();
      return nullptr;
    }
    return std::move(*r);
  }
  Result<backup::Summary> backup_once(repo::Repository& r) {
    repo::Session session(r);
    HAVEN_TRY(session.lock(false));
    HAVEN_TRY(r.load_index());
    backup::Options o;
    o.paths = {src_};
    NullSink sink;
    auto s = backup::run(session, o, sink);
    (void)session.unlock();
    return s;
  }
  void expect_restores(repo::Repository& r, const repo::Id& snap, const std::string& expected_src) {
    ASSERT_TRUE(r.load_index().ok());
    restore::Options o;
    o.target = dir_ + "/out-" + repo::short_hex(snap);
    o.verify = true;
    NullSink sink;
    repo::Session session(r);
    auto s = restore::run(session, r.load_snapshot(snap)->tree, o, sink);
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(s->errors, 0u);
    expect_same_tree(expected_src, o.target + "/src");  // a backed-up path restores under its name
  }
  check::Report check_read_data(std::shared_ptr<storage::Backend> be) {
    auto r = open(std::move(be));
    check::Options o;
    o.read_data = check::Options::ReadData::kAll;
    NullSink sink;
    repo::Session session(*r);
    auto rep = check::check(session, o, sink);
    EXPECT_TRUE(rep.ok()) << rep.error().message();
    return rep.ok() ? *rep : check::Report{};
  }

  std::string dir_, src_;
};

TEST_F(FaultsTest, TenPercentFailingCallsStillGiveAVerifiedBackupRestoreAndCheck) {
  auto f = faults(0.10, 7);
  auto be = retrying(f);
  auto r = open(be);
  ASSERT_TRUE(r);
  auto s = backup_once(*r);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_GT(f->injected(), 0u) << "no fault was injected: the test proves nothing";
  EXPECT_GT(be->retries(), 0u);
  expect_restores(*r, s->snapshot_id, src_);
  // check --read-data through the same faults, and through the plain backend.
  check::Report through = check_read_data(be);
  EXPECT_FALSE(through.damaged());
  EXPECT_GT(through.packs_read, 3u);
  check::Report plain = check_read_data(std::make_shared<storage::LocalBackend>(dir_ + "/repo"));
  EXPECT_FALSE(plain.damaged());
  for (const auto& p : plain.problems) EXPECT_TRUE(p.damage == false) << p.object << ": " << p.error;
}

TEST_F(FaultsTest, BackendGoneForGoodFailsClearlyAfterBoundedRetriesAndLeavesTheRepositoryValid) {
  // A first snapshot through a healthy path.
  auto healthy = open(std::make_shared<storage::LocalBackend>(dir_ + "/repo"));
  auto first = backup_once(*healthy);
  ASSERT_TRUE(first.ok()) << first.error().message();
  healthy.reset();
  ASSERT_EQ(std::system(("cp -a '" + src_ + "' '" + dir_ + "/src-at-first'").c_str()), 0);
  for (int i = 0; i < 6; i++) write_file(src_ + "/new" + std::to_string(i), random_bytes(400000, 900 + i));

  auto f = faults(0.0, 9);
  auto be = retrying(f, 5);
  auto r = open(be);
  ASSERT_TRUE(r);
  f->set_gone_after(6);  // a few calls in, the backend disappears
  auto start = std::chrono::steady_clock::now();
  auto s = backup_once(*r);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(s.ok()) << "a backup against a vanished backend must fail";
  EXPECT_TRUE(contains(s.error().message(), "gave up after 5 tries")) << s.error().message();
  EXPECT_TRUE(contains(s.error().message(), "backend gone")) << s.error().message();
  EXPECT_LT(took, std::chrono::seconds(20)) << "retries must be bounded in time";
  r.reset();

  // The repository, seen directly, is healthy and the first snapshot restores.
  auto plain = std::make_shared<storage::LocalBackend>(dir_ + "/repo");
  check::Report rep = check_read_data(plain);
  EXPECT_FALSE(rep.damaged());
  auto again = open(plain);
  auto snaps = again->list_snapshots();
  ASSERT_TRUE(snaps.ok());
  ASSERT_EQ(snaps->size(), 1u);
  expect_restores(*again, first->snapshot_id, dir_ + "/src-at-first");
}

TEST_F(FaultsTest, RetrySemantics) {
  auto local = std::make_shared<storage::LocalBackend>(dir_ + "/repo");
  // A non-retryable error is not retried.
  auto be = retrying(local);
  storage::ObjectName missing{storage::ObjectType::kSnapshot, std::string(64, 'a')};
  EXPECT_EQ(be->load(missing, 0, 0).error().code(), Error::Code::kNotFound);
  EXPECT_EQ(be->retries(), 0u);
  // A save whose response is lost after it took effect: the retry finds the same bytes.
  testing::FaultPlan lost;
  lost.fail_after = 1.0;
  auto always_lost = std::make_shared<testing::FaultBackend>(local, lost);
  auto be2 = retrying(always_lost, 3);
  storage::ObjectName n{storage::ObjectType::kIndex, std::string(64, 'b')};
  Status saved = be2->save(n, as_bytes(std::string("hello")));
  // Every try "loses" its response, so the last one fails, but the object is there intact.
  EXPECT_FALSE(saved.ok());
  EXPECT_EQ(*local->load(n, 0, 0), Bytes({'h', 'e', 'l', 'l', 'o'}));
  // With responses lost only sometimes, the retried save reports success.
  testing::FaultPlan half;
  half.fail_after = 0.5;
  half.seed = 3;
  auto be3 = retrying(std::make_shared<testing::FaultBackend>(local, half), 20);
  for (int i = 0; i < 20; i++) {
    storage::ObjectName m{storage::ObjectType::kIndex, std::string(63, 'c') + "0123456789abcdef"[i % 16]};
    if (i >= 16) break;
    EXPECT_TRUE(be3->save(m, as_bytes(std::string("x") + std::to_string(i))).ok());
  }
  EXPECT_GT(be3->retries(), 0u);
  // But a name taken by different bytes stays an error.
  storage::ObjectName c0{storage::ObjectType::kIndex, std::string(63, 'c') + "0"};
  Status clash = be3->save(c0, as_bytes(std::string("different")));
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code(), Error::Code::kAlreadyExists);
  // Bounded: a backend that always fails is given up on after max_attempts, with back-offs that
  // grow (exponential, jittered) up to the ceiling.
  auto gone = std::make_shared<testing::FaultBackend>(local, testing::FaultPlan{});
  gone->set_gone(true);
  storage::RetryPolicy rp;
  rp.max_attempts = 6;
  rp.base_delay = std::chrono::milliseconds(100);
  rp.max_delay = std::chrono::milliseconds(1000);
  auto be4 = std::make_shared<storage::RetryBackend>(gone, rp);
  std::vector<int64_t> sleeps;
  be4->set_sleep([&](std::chrono::milliseconds d) { sleeps.push_back(d.count()); });
  auto r = be4->stat(n);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().retryable());
  EXPECT_TRUE(contains(r.error().message(), "gave up after 6 tries")) << r.error().message();
  ASSERT_EQ(sleeps.size(), 5u);
  for (size_t i = 0; i < sleeps.size(); i++) {
    EXPECT_LE(sleeps[i], std::min<int64_t>(1000, 100 << i)) << "back-off " << i;
    EXPECT_GE(sleeps[i], 0);
  }
}

TEST_F(FaultsTest, CliBandwidthLimitAndConnectionsApply) {
  Env env{{"HAVEN_PASSWORD", kPw}};
  const std::string repo = dir_ + "/cli-repo";
  RunResult bad = run_haven({"-r", repo, "--bandwidth-limit-mbps", "-5", "init"}, {env});
  EXPECT_EQ(bad.code, 2) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "--bandwidth-limit-mbps")) << describe(bad);
  EXPECT_FALSE(exists(repo)) << "a refused command must change nothing";
  RunResult init = run_haven({"-r", repo, "init", "--kdf-memory", "8", "--kdf-iterations", "1"}, {env});
  ASSERT_EQ(init.code, 0) << describe(init);
  // About 2 MiB of incompressible data at 40 Mbit/s (5 MB/s): at least ~0.4 s.
  auto start = std::chrono::steady_clock::now();
  RunResult b = run_haven({"-r", repo, "--bandwidth-limit-mbps", "40", "--connections", "1",
                           "backup", src_ + "/d2"},
                          {env});
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(b.code, 0) << describe(b);
  EXPECT_GE(secs, 0.4) << "2 MiB went out at more than 40 Mbit/s";
  RunResult c = run_haven({"-r", repo, "check", "--read-data"}, {env});
  EXPECT_EQ(c.code, 0) << describe(c);
}

}  // namespace
}  // namespace haven

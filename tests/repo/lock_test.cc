// Tests of repository locks (repo/lock.h, held through repo/session.h: lock(), unlock(),
// ignored_stale_locks(), the refresher; Repository::remove_stale_locks()) and of what the CLI
// makes of them: exit 11 naming the holder, "notice: ignoring stale ...", `haven unlock`.
//
// Holders are this process, a forked child that keeps its lock until told to let go, or lock
// objects planted with chosen contents (another host, a PID that no longer exists, an old
// refresh time).
#include "repo/repository.h"
#include "repo/session.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

// The shared helpers are many small functions in an anonymous namespace; this file uses few.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"
#pragma GCC diagnostic pop

#include "storage/local.h"
#include "util/clock.h"
#include "util/sysinfo.h"

namespace haven {
namespace {

using repo::Lock;
using repo::Repository;
using storage::ObjectName;
using storage::ObjectType;

#define LK_EXPECT_OK(expr)                                                              \
  do {                                                                                  \
    const auto& lk_st_ = (expr);                                                        \
    EXPECT_TRUE(lk_st_.ok()) << #expr << ": " << lk_st_.error().message();              \
  } while (0)

constexpr TimeNs kLkSec = 1000000000;
constexpr TimeNs kLkMin = 60 * kLkSec;

template <typename T>
::testing::AssertionResult LkFails(const Result<T>& r, Error::Code code,
                                   std::initializer_list<std::string> parts = {}) {
  if (r.ok()) return ::testing::AssertionFailure() << "succeeded; expected " << code_name(code);
  if (r.error().code() != code) {
    return ::testing::AssertionFailure() << "failed with " << code_name(r.error().code()) << ": "
                                         << r.error().message() << "; expected "
                                         << code_name(code);
  }
  for (const auto& p : parts) {
    if (r.error().message().find(p) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "message '" << r.error().message() << "' does not contain '" << p << "'";
    }
  }
  return ::testing::AssertionSuccess();
}

bool lk_contains_all(const std::string& s, std::initializer_list<std::string> parts) {
  for (const auto& p : parts) {
    if (s.find(p) == std::string::npos) return false;
  }
  return true;
}

// A PID no process has: a child that has exited and been reaped.
pid_t lk_dead_pid() {
  pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  EXPECT_EQ(waitpid(child, &status, 0), child);
  EXPECT_NE(kill(child, 0), 0);
  return child;
}

class LockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::init();
    char tmpl[] = "/tmp/haven-lock-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    root_ = tmpl;
    repo_ = root_ + "/repo";
    ASSERT_NE(init_repo(repo_), nullptr);
  }
  void TearDown() override {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }

  std::unique_ptr<Repository> open() {
    auto be = storage::open_backend(repo_);
    EXPECT_TRUE(be.ok());
    if (!be.ok()) return nullptr;
    auto r = Repository::open(*be, kPw);
    EXPECT_TRUE(r.ok()) << r.error().message();
    if (!r.ok()) return nullptr;
    return std::move(*r);
  }

  std::vector<std::string> locks() const {
    std::vector<std::string> out;
    storage::LocalBackend be(repo_);
    Status s = be.list(ObjectType::kLock, [&](const storage::ObjectInfo& i) { out.push_back(i.name.name); });
    EXPECT_TRUE(s.ok());
    std::sort(out.begin(), out.end());
    return out;
  }

  Result<Lock> read(Repository& r, const std::string& name) {
    HAVEN_ASSIGN(Bytes body, r.load_object(ObjectType::kLock, name));
    return repo::decode_lock(body, "lock " + name);
  }

  std::string plant(Repository& r, const Lock& l) {
    auto id = r.save_object(ObjectType::kLock, repo::encode_lock(l));
    EXPECT_TRUE(id.ok()) << id.error().message();
    return id.ok() ? repo::hex(*id) : "";
  }

  static Lock lock_of(const std::string& host, int64_t pid, TimeNs refreshed, bool exclusive,
                      const std::string& user = "bob") {
    Lock l;
    l.hostname = host;
    l.username = user;
    l.pid = pid;
    l.exclusive = exclusive;
    l.time = refreshed - 10 * kLkMin;
    l.refreshed = refreshed;
    return l;
  }

  std::string root_, repo_;
};

// A forked child that opens the repository, takes a lock and holds it until release().
class LkChildHolder {
 public:
  LkChildHolder(const std::string& repo, bool exclusive) {
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0) {
      ADD_FAILURE() << "pipe";
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      close(up[0]);
      close(down[1]);
      auto be = storage::open_backend(repo);
      if (!be.ok()) _exit(2);
      auto r = Repository::open(*be, kPw);
      if (!r.ok()) _exit(3);
      repo::Session r_session(**r);
      char ok = r_session.lock(exclusive).ok() ? 'y' : 'n';
      (void)!write(up[1], &ok, 1);
      char c;
      (void)!read(down[0], &c, 1);  // until the parent says so (or dies)
      _exit(r_session.unlock().ok() ? 0 : 4);
    }
    close(up[1]);
    close(down[0]);
    release_fd_ = down[1];
    char ok = 0;
    if (read(up[0], &ok, 1) != 1 || ok != 'y') ADD_FAILURE() << "child could not lock";
    close(up[0]);
  }
  ~LkChildHolder() { release(); }
  pid_t pid() const { return pid_; }
  void release() {
    if (release_fd_ < 0) return;
    close(release_fd_);
    release_fd_ = -1;
    int status = 0;
    EXPECT_EQ(waitpid(pid_, &status, 0), pid_);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }

 private:
  pid_t pid_ = -1;
  int release_fd_ = -1;
};

// ---------------------------------------------------------------------------------------------
// Shared and exclusive

TEST_F(LockTest, SharedLocksCoexistExclusiveConflictsBothWays) {
  auto a = open(), b = open(), c = open();
  ASSERT_TRUE(a && b && c);
  repo::Session a_session(*a), b_session(*b), c_session(*c);
  const std::string pid = "PID " + std::to_string(getpid());
  const std::string host = hostname(), user = username();

  TimeNs t0 = now();
  ASSERT_OK(a_session.lock(false));
  TimeNs t1 = now();
  auto names = locks();
  ASSERT_EQ(names.size(), 1u);
  // The lock object says who holds it and since when.
  auto l = read(*a, names[0]);
  ASSERT_OK(l);
  EXPECT_EQ(l->pid, getpid());
  EXPECT_EQ(l->hostname, host);
  EXPECT_EQ(l->username, user);
  EXPECT_FALSE(l->exclusive);
  EXPECT_GE(l->time, t0);
  EXPECT_LE(l->time, t1);
  EXPECT_EQ(l->refreshed, l->time);

  ASSERT_OK(b_session.lock(false));  // shared + shared
  EXPECT_EQ(locks().size(), 2u);
  // Exclusive against shared: refused, naming the holder; nothing left behind.
  EXPECT_TRUE(LkFails(c_session.lock(true), Error::Code::kLocked,
                      {"repository is locked by " + pid, "on " + host, "(user " + user + ")", "haven unlock"}));
  EXPECT_EQ(locks().size(), 2u);
  ASSERT_OK(a_session.unlock());
  EXPECT_TRUE(LkFails(c_session.lock(true), Error::Code::kLocked, {pid}));  // b still holds one
  ASSERT_OK(b_session.unlock());
  EXPECT_TRUE(locks().empty());

  // Shared against exclusive, and exclusive against exclusive: refused.
  ASSERT_OK(c_session.lock(true));
  names = locks();
  ASSERT_EQ(names.size(), 1u);
  auto x = read(*c, names[0]);
  ASSERT_OK(x);
  EXPECT_TRUE(x->exclusive);
  EXPECT_TRUE(LkFails(a_session.lock(false), Error::Code::kLocked,
                      {"locked exclusively by " + pid, "on " + host, "(user " + user + ")"}));
  EXPECT_TRUE(LkFails(b_session.lock(true), Error::Code::kLocked, {"locked exclusively by " + pid}));
  EXPECT_EQ(locks(), names);
  ASSERT_OK(c_session.unlock());
  EXPECT_TRUE(locks().empty());
  ASSERT_OK(a_session.lock(true));
  EXPECT_TRUE(LkFails(b_session.lock(false), Error::Code::kLocked, {"exclusively"}));
  ASSERT_OK(a_session.unlock());
}

// The lock objects a backend is asked for, in order (a refresh would add to them: none comes
// within a test's time).
class LockCalls : public storage::BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  Status save(const ObjectName& n, ByteView d) override {
    note("save", n.type);
    return BackendWrapper::save(n, d);
  }
  Result<Bytes> load(const ObjectName& n, uint64_t off, uint64_t len) override {
    note("load", n.type);
    return BackendWrapper::load(n, off, len);
  }
  Status list(ObjectType t, const std::function<void(const storage::ObjectInfo&)>& fn) override {
    note("list", t);
    return BackendWrapper::list(t, fn);
  }
  Status remove(const ObjectName& n) override {
    note("remove", n.type);
    return BackendWrapper::remove(n);
  }
  std::vector<std::string> take() {
    std::lock_guard<std::mutex> g(mu_);
    return std::exchange(calls_, {});
  }

 private:
  void note(const char* what, ObjectType t) {
    std::lock_guard<std::mutex> g(mu_);
    if (t == ObjectType::kLock) calls_.push_back(what);
  }
  std::mutex mu_;
  std::vector<std::string> calls_;
};

// A lock is written first and the others are listed once after it (over object storage each
// call is a round trip): beside another shared lock, save, list, and a read of that one; an
// exclusive lock against it is written, finds it, and is removed again, nothing left behind.
TEST_F(LockTest, ALockIsWrittenFirstAndTheOthersAreListedOnceAfter) {
  auto other = open();
  ASSERT_TRUE(other);
  repo::Session holder(*other);
  ASSERT_OK(holder.lock(false));
  auto inner = storage::open_backend(repo_);
  ASSERT_TRUE(inner.ok());
  auto calls = std::make_shared<LockCalls>(*inner);
  auto r = Repository::open(calls, kPw);
  ASSERT_TRUE(r.ok()) << r.error().message();
  calls->take();
  {
    repo::Session shared(**r);
    ASSERT_OK(shared.lock(false));
    EXPECT_EQ(calls->take(), (std::vector<std::string>{"save", "list", "load"}));
    EXPECT_EQ(locks().size(), 2u);
    ASSERT_OK(shared.unlock());
    EXPECT_EQ(calls->take(), std::vector<std::string>{"remove"});
  }
  const auto before = locks();
  repo::Session exclusive(**r);
  EXPECT_TRUE(LkFails(exclusive.lock(true), Error::Code::kLocked, {"repository is locked by"}));
  EXPECT_EQ(calls->take(), (std::vector<std::string>{"save", "list", "load", "remove"}));
  EXPECT_EQ(locks(), before);
  ASSERT_OK(holder.unlock());
}

TEST_F(LockTest, ConflictNamesTheOtherProcessHoldingTheLock) {
  const std::string host = hostname();
  {
    LkChildHolder child(repo_, /*exclusive=*/true);
    ASSERT_FALSE(HasFailure());
    const std::string pid = "PID " + std::to_string(child.pid());
    auto a = open();
    ASSERT_TRUE(a);
    repo::Session a_session(*a);
    EXPECT_TRUE(LkFails(a_session.lock(false), Error::Code::kLocked,
                        {"locked exclusively by " + pid + " on " + host}));
    EXPECT_TRUE(LkFails(a_session.lock(true), Error::Code::kLocked, {pid}));
    EXPECT_EQ(locks().size(), 1u);
    child.release();
    EXPECT_TRUE(locks().empty()) << "the child's unlock left its lock";
    LK_EXPECT_OK(a_session.lock(true));
    LK_EXPECT_OK(a_session.unlock());
  }
  {
    LkChildHolder child(repo_, /*exclusive=*/false);
    ASSERT_FALSE(HasFailure());
    auto a = open();
    ASSERT_TRUE(a);
    repo::Session a_session(*a);
    auto r = a_session.lock(true);
    EXPECT_TRUE(LkFails(r, Error::Code::kLocked,
                        {"repository is locked by PID " + std::to_string(child.pid())}));
    LK_EXPECT_OK(a_session.lock(false));  // shared with the child's shared lock
    EXPECT_EQ(locks().size(), 2u);
    LK_EXPECT_OK(a_session.unlock());
  }
}

// ---------------------------------------------------------------------------------------------
// Stale locks

TEST_F(LockTest, LockOfDeadProcessOnThisHostIsIgnoredWithANotice) {
  auto r = open();
  ASSERT_TRUE(r);
  repo::Session r_session(*r);
  const pid_t dead = lk_dead_pid();
  const std::string stale = plant(*r, lock_of(hostname(), dead, now(), true, "ghost"));
  ASSERT_OK(r_session.lock(true));  // an exclusive lock, yet it does not conflict
  const auto& ignored = r_session.ignored_stale_locks();
  ASSERT_EQ(ignored.size(), 1u);
  EXPECT_TRUE(lk_contains_all(ignored[0], {"exclusive lock of PID " + std::to_string(dead),
                                           "on " + hostname(), "user ghost",
                                           "that process is gone"}))
      << ignored[0];
  auto names = locks();
  EXPECT_EQ(names.size(), 2u);
  EXPECT_TRUE(std::count(names.begin(), names.end(), stale)) << "lock() must not delete others' locks";
  ASSERT_OK(r_session.unlock());

  // A live process on this host (PID 1) that refreshed recently holds its lock (see
  // SameHostLockThatStoppedRefreshingIsStale for one that stopped refreshing).
  auto other = open();
  ASSERT_TRUE(other);
  repo::Session other_session(*other);
  plant(*r, lock_of(hostname(), 1, now(), true));
  EXPECT_TRUE(LkFails(other_session.lock(false), Error::Code::kLocked, {"PID 1 on " + hostname()}));
}

// The issue: "a lock whose process is gone (same host) or that stopped refreshing is stale".
// A lock on this host is stale when its process is gone, and also when it stopped refreshing:
// a lock left by a crash before a reboot whose PID now belongs to another, long-running
// process must not block the repository forever.
TEST_F(LockTest, SameHostLockThatStoppedRefreshingIsStale) {
  auto r = open();
  ASSERT_TRUE(r);
  repo::Session r_session(*r);
  plant(*r, lock_of(hostname(), 1, now() - 120 * kLkMin, true));
  LK_EXPECT_OK(r_session.lock(false));
  EXPECT_EQ(r_session.ignored_stale_locks().size(), 1u);
}

TEST_F(LockTest, LockFromOtherHostIsStaleOnlyWhenNotRefreshed) {
  auto r = open();
  ASSERT_TRUE(r);
  repo::Session r_session(*r);
  plant(*r, lock_of("other-host", 4242, now() - 31 * kLkMin, true));
  ASSERT_OK(r_session.lock(true));
  ASSERT_EQ(r_session.ignored_stale_locks().size(), 1u);
  EXPECT_TRUE(lk_contains_all(r_session.ignored_stale_locks()[0],
                              {"PID 4242 on other-host", "user bob", "not refreshed since"}))
      << r_session.ignored_stale_locks()[0];
  ASSERT_OK(r_session.unlock());

  // Refreshed a minute ago: live, whatever its PID means here.
  plant(*r, lock_of("other-host", 4243, now() - 1 * kLkMin, true, "carol"));
  EXPECT_TRUE(LkFails(r_session.lock(false), Error::Code::kLocked,
                      {"locked exclusively by PID 4243 on other-host (user carol)"}));
  auto fresh = open();
  ASSERT_TRUE(fresh);
  repo::Session fresh_session(*fresh);
  ASSERT_EQ(locks().size(), 2u);
  // With a shorter staleness limit (the test hook), the same lock counts as stale.
  fresh->set_lock_timing(5 * kLkMin, 30 * kLkSec);
  LK_EXPECT_OK(fresh_session.lock(true));
  EXPECT_EQ(fresh_session.ignored_stale_locks().size(), 2u);
  LK_EXPECT_OK(fresh_session.unlock());
}

TEST_F(LockTest, RemoveStaleLocksRemovesOnlyStaleOnes) {
  auto a = open(), b = open();
  ASSERT_TRUE(a && b);
  repo::Session a_session(*a), b_session(*b);
  ASSERT_OK(a_session.lock(false));
  const std::string live = locks().at(0);
  const std::string dead = plant(*a, lock_of(hostname(), lk_dead_pid(), now(), true));
  const std::string old_remote = plant(*a, lock_of("other-host", 7, now() - 31 * kLkMin, true));
  const std::string fresh_remote = plant(*a, lock_of("other-host", 8, now() - kLkMin, false));
  // A lock object that cannot be read (junk, damage): it blocks locking, named, until a plain
  // unlock removes it.
  const std::string damaged = repo::hex(repo::random_id());
  write_file(storage::LocalBackend(repo_).path_of({ObjectType::kLock, damaged}), "not a lock");
  ASSERT_EQ(locks().size(), 5u);
  EXPECT_TRUE(LkFails(b_session.lock(false), Error::Code::kLocked,
                      {"cannot be read", damaged, "haven unlock"}));

  auto n = b->remove_stale_locks(false);
  ASSERT_OK(n);
  ASSERT_EQ(n->size(), 3u);
  std::string said;
  for (const auto& l : *n) said += l + "\n";
  EXPECT_TRUE(lk_contains_all(said, {damaged.substr(0, 8), "unreadable", dead.substr(0, 8),
                                     old_remote.substr(0, 8), "other-host"}))
      << said;
  std::vector<std::string> expect{live, fresh_remote};
  std::sort(expect.begin(), expect.end());
  EXPECT_EQ(locks(), expect);
  auto again = b->remove_stale_locks(false);
  ASSERT_OK(again);
  EXPECT_EQ(again->size(), 0u);

  ASSERT_OK(b_session.lock(false));  // the shared locks left do not conflict
  ASSERT_OK(b_session.unlock());
  auto all = b->remove_stale_locks(true);
  ASSERT_OK(all);
  EXPECT_EQ(all->size(), 2u);
  EXPECT_TRUE(locks().empty());

  // "all" never removes the caller's own lock.
  ASSERT_OK(b_session.lock(false));
  const std::string mine = locks().at(0);
  plant(*a, lock_of("other-host", 9, now(), false));
  auto others = b->remove_stale_locks(true);
  ASSERT_OK(others);
  EXPECT_EQ(others->size(), 1u);
  EXPECT_EQ(locks(), std::vector<std::string>{mine});
  ASSERT_OK(b_session.unlock());
  EXPECT_TRUE(locks().empty());
}

// ---------------------------------------------------------------------------------------------
// Refreshing

TEST_F(LockTest, HeldLockIsRefreshedAndTheRepositoryIsNeverUnlockedMeanwhile) {
  auto a = open();
  auto reader = open();
  ASSERT_TRUE(a && reader);
  repo::Session a_session(*a);
  a->set_lock_timing(100 * 1000000LL, 30 * kLkMin);  // refresh every 100 ms
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK(a_session.lock(false));
  auto first = locks();
  ASSERT_EQ(first.size(), 1u);
  auto l0 = read(*reader, first[0]);
  ASSERT_OK(l0);

  // Sample the lock objects for 1 s.
  std::vector<std::string> order{first[0]};  // names in the order they appeared
  std::vector<Lock> seen{*l0};
  size_t samples = 0, twos = 0;
  double first_change_ms = -1;
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1000)) {
    auto names = locks();
    samples++;
    ASSERT_GE(names.size(), 1u) << "the repository was unlocked between two refreshes";
    ASSERT_LE(names.size(), 2u) << "old lock objects are left behind";
    if (names.size() == 2) twos++;
    for (const auto& n : names) {
      if (std::find(order.begin(), order.end(), n) != order.end()) continue;
      if (first_change_ms < 0) {
        first_change_ms = std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - start)
                              .count();
      }
      auto l = read(*reader, n);
      if (!l.ok()) continue;  // replaced again meanwhile
      order.push_back(n);
      seen.push_back(*l);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  std::cout << "[ refresh  ] " << order.size() - 1 << " refreshes read in 1 s, first after "
            << first_change_ms << " ms; " << samples << " samples, " << twos
            << " during a replacement\n";
  EXPECT_GE(order.size(), 4u) << "expected about 9 refreshes in 1 s";
  EXPECT_GT(first_change_ms, 0);
  EXPECT_LT(first_change_ms, 500);
  for (size_t i = 1; i < seen.size(); i++) {
    EXPECT_GT(seen[i].refreshed, seen[i - 1].refreshed);
    EXPECT_EQ(seen[i].time, l0->time) << "the lock's start time must not change";
    EXPECT_EQ(seen[i].pid, l0->pid);
    EXPECT_EQ(seen[i].hostname, l0->hostname);
    EXPECT_EQ(seen[i].exclusive, l0->exclusive);
  }
  // Exactly one object once a replacement is done, and it is one this session wrote.
  std::vector<std::string> now_names;
  for (int i = 0; i < 50; i++) {
    now_names = locks();
    if (now_names.size() == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_EQ(now_names.size(), 1u);
  EXPECT_NE(now_names[0], first[0]);
  ASSERT_OK(a_session.unlock());
  EXPECT_TRUE(locks().empty()) << "unlock left the refreshed lock";
}

// ---------------------------------------------------------------------------------------------
// Losing the lock: an operation whose lock cannot be refreshed stops before anyone else could
// consider the lock stale (and prune what the operation is writing).

// The real local backend, with lock writes refused from a chosen moment (a bucket policy
// changed, a full quota...).
class RefuseLockWrites : public storage::BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  std::atomic<bool> refuse{false};
  Status save(const ObjectName& n, ByteView d) override {
    if (refuse && n.type == ObjectType::kLock) {
      return Error(Error::Code::kPermissionDenied, "injected: writes to locks/ refused");
    }
    return BackendWrapper::save(n, d);
  }
};

TEST_F(LockTest, RefreshesThatKeepFailingStopTheOperationBeforeTheLockCouldLookStale) {
  auto local = storage::open_backend(repo_);
  ASSERT_OK(local);
  auto refusing = std::make_shared<RefuseLockWrites>(*local);
  auto opened = Repository::open(refusing, kPw);
  ASSERT_OK(opened);
  Repository& a = **opened;
  repo::Session a_session(a);
  const TimeNs refresh = 100 * 1000000LL, stale = 1500 * 1000000LL;
  a.set_lock_timing(refresh, stale);
  ASSERT_OK(a_session.lock(false));
  const std::string name = locks().at(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a few good refreshes
  ASSERT_TRUE(a_session.check_lock().ok());
  ASSERT_FALSE(a_session.cancel_token().cancelled());

  refusing->refuse = true;
  auto reader = open();
  ASSERT_TRUE(reader);
  const auto refused_at = std::chrono::steady_clock::now();
  TimeNs last_refreshed = 0;  // as others see it, while the operation still runs
  while (!a_session.cancel_token().cancelled() &&
         std::chrono::steady_clock::now() - refused_at < std::chrono::seconds(5)) {
    for (const auto& n : locks()) {
      auto l = read(*reader, n);
      if (l.ok()) last_refreshed = std::max(last_refreshed, l->refreshed);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const TimeNs stopped = now();
  const double after_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - refused_at).count();
  std::cout << "[ lock     ] refreshes refused; the operation was stopped after " << after_ms
            << " ms (stale after 1500 ms)\n";
  ASSERT_TRUE(a_session.cancel_token().cancelled()) << "the operation went on with a lock it cannot refresh";
  // Stopped before any other process could have judged the lock stale...
  EXPECT_LT(stopped - last_refreshed, stale);
  // ...but not at the first failed refresh: a passing outage is tolerated for a while.
  EXPECT_GT(after_ms, 500);
  Status why = a_session.cancel_token().check();
  ASSERT_FALSE(why.ok());
  EXPECT_EQ(why.error().code(), Error::Code::kLocked);
  EXPECT_TRUE(lk_contains_all(why.error().message(),
                              {"could not be refreshed", "writes to locks/ refused", "run it again"}))
      << why.error().message();
  EXPECT_TRUE(LkFails(a_session.check_lock(), Error::Code::kLocked, {"could not be refreshed"}));
  // Nothing can be committed any more: a snapshot would reference data a prune may delete.
  repo::Snapshot snap;
  snap.time = now();
  snap.hostname = "h";
  snap.paths = {"/x"};
  auto tree = a_session.save_tree(repo::Tree{});
  if (tree.ok()) snap.tree = *tree;
  EXPECT_TRUE(LkFails(a_session.save_snapshot(snap), Error::Code::kLocked));
  size_t snapshots = 0;
  ASSERT_OK(storage::LocalBackend(repo_).list(ObjectType::kSnapshot,
                                              [&](const storage::ObjectInfo&) { snapshots++; }));
  EXPECT_EQ(snapshots, 0u);
  (void)name;
  refusing->refuse = false;
  ASSERT_OK(a_session.unlock());
  EXPECT_TRUE(locks().empty());
}

TEST_F(LockTest, ALockRemovedByAnotherProcessStopsTheOperation) {
  auto a = open(), b = open();
  ASSERT_TRUE(a && b);
  repo::Session a_session(*a);
  a->set_lock_timing(50 * 1000000LL, 30 * kLkMin);
  ASSERT_OK(a_session.lock(false));
  auto removed = b->remove_stale_locks(true);  // 'haven unlock --remove-all' elsewhere
  ASSERT_OK(removed);
  ASSERT_EQ(removed->size(), 1u);
  for (int i = 0; i < 200 && !a_session.cancel_token().cancelled(); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(a_session.cancel_token().cancelled());
  EXPECT_TRUE(LkFails(a_session.check_lock(), Error::Code::kLocked, {"removed by another process"}));
  ASSERT_OK(a_session.unlock());
}

TEST_F(LockTest, ACheckAfterTheProcessSleptPastTheDeadlineFails) {
  // The watchdog thread cannot run while the process is stopped (SIGSTOP, a suspended VM);
  // check_lock() looks at the clock itself.
  auto a = open();
  ASSERT_TRUE(a);
  repo::Session a_session(*a);
  a->set_lock_timing(30 * kLkMin, 300 * 1000000LL);  // no refresh in time; stale after 300 ms
  ASSERT_OK(a_session.lock(true));
  ASSERT_TRUE(a_session.check_lock().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_FALSE(a_session.check_lock().ok());
  ASSERT_OK(a_session.unlock());
  EXPECT_TRUE(a_session.check_lock().ok()) << "no lock held: nothing to check";
}

// ---------------------------------------------------------------------------------------------
// The CLI

class LockCliTest : public LockTest {
 protected:
  void SetUp() override {
    LockTest::SetUp();
    src_ = root_ + "/src";
    make_dir(src_);
    write_file(src_ + "/hello.txt", "hello, locks\n");
  }
  size_t snapshots() const {
    size_t n = 0;
    storage::LocalBackend be(repo_);
    (void)be.list(ObjectType::kSnapshot, [&](const storage::ObjectInfo&) { n++; });
    return n;
  }
  std::string src_;
};

TEST_F(LockCliTest, LockedRepositoryExits11NamingTheHolder) {
  auto holder = open();
  ASSERT_TRUE(holder);
  repo::Session holder_session(*holder);
  ASSERT_OK(holder_session.lock(true));
  const auto held = locks();
  RunResult r = cli(repo_, {"backup", src_});
  EXPECT_EQ(r.code, 11) << describe(r);
  EXPECT_TRUE(contains(r.err, "locked exclusively by PID " + std::to_string(getpid()) + " on " +
                                  hostname()))
      << r.err;
  EXPECT_EQ(snapshots(), 0u);
  EXPECT_EQ(locks(), held);
  RunResult c = cli(repo_, {"check"});
  EXPECT_EQ(c.code, 11) << describe(c);
  // A live lock is not stale: unlock leaves it.
  RunResult u = cli(repo_, {"unlock"});
  EXPECT_EQ(u.code, 0) << describe(u);
  EXPECT_TRUE(contains(u.out, "removed 0 lock(s)")) << u.out;
  EXPECT_EQ(locks(), held);
  ASSERT_OK(holder_session.unlock());

  // Backup and check take shared locks: they run beside another shared lock.
  ASSERT_OK(holder_session.lock(false));
  RunResult b = cli(repo_, {"backup", src_});
  EXPECT_EQ(b.code, 0) << describe(b);
  EXPECT_EQ(snapshots(), 1u);
  RunResult c2 = cli(repo_, {"check"});
  EXPECT_EQ(c2.code, 0) << describe(c2);
  EXPECT_EQ(locks().size(), 1u) << "backup or check left a lock behind";
  ASSERT_OK(holder_session.unlock());

  // --remove-all removes a live lock too.
  ASSERT_OK(holder_session.lock(false));
  RunResult all = cli(repo_, {"unlock", "--remove-all"});
  EXPECT_EQ(all.code, 0) << describe(all);
  EXPECT_TRUE(contains(all.out, "removed 1 lock(s)")) << all.out;
  EXPECT_TRUE(locks().empty());
}

TEST_F(LockCliTest, StaleLockIsIgnoredWithNoticeAndUnlockRemovesIt) {
  auto r = open();
  ASSERT_TRUE(r);
  const pid_t dead = lk_dead_pid();
  const std::string stale = plant(*r, lock_of(hostname(), dead, now(), true));
  RunResult b = cli(repo_, {"backup", src_});
  ASSERT_EQ(b.code, 0) << describe(b);
  EXPECT_TRUE(contains(b.err, "notice: ignoring stale exclusive lock of PID " + std::to_string(dead)))
      << b.err;
  EXPECT_TRUE(contains(b.err, "that process is gone")) << b.err;
  EXPECT_TRUE(contains(b.err, "haven unlock")) << b.err;
  EXPECT_EQ(snapshots(), 1u);
  EXPECT_EQ(locks(), std::vector<std::string>{stale}) << "backup should leave the stale lock alone";

  // Another host's lock not refreshed for 31 minutes, too.
  plant(*r, lock_of("other-host", 77, now() - 31 * kLkMin, true));
  RunResult b2 = cli(repo_, {"backup", src_});
  ASSERT_EQ(b2.code, 0) << describe(b2);
  EXPECT_TRUE(contains(b2.err, "notice: ignoring stale exclusive lock of PID 77 on other-host")) << b2.err;
  EXPECT_EQ(snapshots(), 2u);

  RunResult u = cli(repo_, {"unlock"});
  ASSERT_EQ(u.code, 0) << describe(u);
  EXPECT_TRUE(contains(u.out, "removed 2 lock(s)")) << u.out;
  EXPECT_TRUE(locks().empty());
  RunResult u2 = cli(repo_, {"unlock"});
  EXPECT_TRUE(contains(u2.out, "removed 0 lock(s)")) << u2.out;
  // --quiet keeps the notice to itself.
  plant(*r, lock_of(hostname(), lk_dead_pid(), now(), false));
  RunResult quiet = cli(repo_, {"-q", "backup", src_});
  EXPECT_EQ(quiet.code, 0) << describe(quiet);
  EXPECT_FALSE(contains(quiet.err, "notice")) << quiet.err;
}

}  // namespace
}  // namespace haven

// The job runner's rules: the parallel limit, priority, per-repository exclusivity without
// starvation, cancellation of queued and running jobs, shutdown.
#include "jobs/runner.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <vector>

namespace haven::jobs {
namespace {

using namespace std::chrono_literals;

// A gate jobs wait at until the test opens it (or their token is cancelled).
class Gate {
 public:
  void open() {
    std::lock_guard<std::mutex> g(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // True if opened, false if cancelled.
  bool wait(const CancelToken& t) {
    std::unique_lock<std::mutex> g(mu_);
    while (!open_) {
      if (t.cancelled()) return false;
      cv_.wait_for(g, 5ms);
    }
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Records the order jobs start in and how many run at once.
struct Log {
  std::mutex mu;
  std::vector<std::string> started;
  std::atomic<int> now{0}, peak{0};
  void start(const std::string& id) {
    {
      std::lock_guard<std::mutex> g(mu);
      started.push_back(id);
    }
    int n = ++now;
    int p = peak.load();
    while (n > p && !peak.compare_exchange_weak(p, n)) {
    }
  }
  void end() { --now; }
  std::vector<std::string> order() {
    std::lock_guard<std::mutex> g(mu);
    return started;
  }
};

Job gated(const std::string& id, const std::string& resource, Access access, Gate& gate,
          Log& log, Priority prio = Priority::kNormal) {
  Job j;
  j.id = id;
  j.resource = resource;
  j.access = access;
  j.priority = prio;
  j.run = [&gate, &log, id](const CancelToken& t) {
    log.start(id);
    gate.wait(t);
    log.end();
  };
  return j;
}

bool eventually(const std::function<bool()>& f) {
  for (int i = 0; i < 500; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return f();
}

TEST(RunnerTest, NeverRunsMoreThanTheLimit) {
  Gate gate;
  Log log;
  Runner r(3);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(r.submit(gated("j" + std::to_string(i), "repo" + std::to_string(i), Access::kShared, gate, log)).ok());
  }
  ASSERT_TRUE(eventually([&] { return r.running_count() == 3 && log.now.load() == 3; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(r.running_count(), 3u);
  EXPECT_EQ(r.queued_count(), 7u);
  gate.open();
  r.wait_idle();
  EXPECT_EQ(log.order().size(), 10u);
  EXPECT_EQ(log.peak.load(), 3);
}

// The server lowers job threads' CPU priority through on_thread_start (server.job_nice): it
// runs on the job's own thread, before the job, and threads the job starts inherit it, while
// the thread that submitted is left alone.
TEST(RunnerTest, OnThreadStartRunsOnTheJobsThreadAndItsNicenessIsInherited) {
  auto nice_of_this_thread = [] {
    errno = 0;
    return ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
  };
  const int before = nice_of_this_thread();
  if (before >= 19) GTEST_SKIP() << "this process already runs at the lowest priority";
  const int target = std::min(before + 7, 19);
  Runner r(1, [target] { ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), target); });
  std::atomic<int> in_job{-100}, in_child{-100};
  Job j;
  j.id = "niced";
  j.resource = "repo";
  j.run = [&](const CancelToken&) {
    in_job = nice_of_this_thread();
    std::thread child([&] { in_child = nice_of_this_thread(); });
    child.join();
  };
  ASSERT_TRUE(r.submit(std::move(j)).ok());
  r.wait_idle();
  EXPECT_EQ(in_job.load(), target);
  EXPECT_EQ(in_child.load(), target);
  EXPECT_EQ(nice_of_this_thread(), before);
}

TEST(RunnerTest, HighPriorityStartsFirstThenSubmissionOrder) {
  Gate first, rest;
  Log log;
  Runner r(1);
  ASSERT_TRUE(r.submit(gated("busy", "a", Access::kShared, first, log)).ok());
  ASSERT_TRUE(eventually([&] { return r.running("busy"); }));
  ASSERT_TRUE(r.submit(gated("n1", "b", Access::kShared, rest, log)).ok());
  ASSERT_TRUE(r.submit(gated("n2", "c", Access::kShared, rest, log)).ok());
  ASSERT_TRUE(r.submit(gated("h1", "d", Access::kShared, rest, log, Priority::kHigh)).ok());
  ASSERT_TRUE(r.submit(gated("h2", "e", Access::kShared, rest, log, Priority::kHigh)).ok());
  rest.open();
  first.open();
  r.wait_idle();
  EXPECT_EQ(log.order(), (std::vector<std::string>{"busy", "h1", "h2", "n1", "n2"}));
}

TEST(RunnerTest, SharedJobsShareARepositoryAndAnExclusiveOneWaitsUnstarved) {
  Gate gate1, gate2;
  Log log;
  Runner r(8);
  ASSERT_TRUE(r.submit(gated("backup1", "repo", Access::kShared, gate1, log)).ok());
  ASSERT_TRUE(r.submit(gated("restore1", "repo", Access::kShared, gate1, log)).ok());
  ASSERT_TRUE(eventually([&] { return r.running_count() == 2; }));  // shared: together
  ASSERT_TRUE(r.submit(gated("prune", "repo", Access::kExclusive, gate2, log)).ok());
  ASSERT_TRUE(r.submit(gated("backup2", "repo", Access::kShared, gate2, log)).ok());
  ASSERT_TRUE(r.submit(gated("other", "elsewhere", Access::kShared, gate2, log)).ok());
  // The prune waits for the two; backup2 may not overtake it; another repository goes ahead.
  ASSERT_TRUE(eventually([&] { return r.running("other"); }));
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(r.queued("prune"));
  EXPECT_TRUE(r.queued("backup2"));
  gate1.open();
  ASSERT_TRUE(eventually([&] { return r.running("prune"); }));
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(r.queued("backup2")) << "a shared job ran beside the exclusive one";
  gate2.open();
  r.wait_idle();
  auto order = log.order();
  auto pos = [&](const std::string& id) { return std::find(order.begin(), order.end(), id) - order.begin(); };
  EXPECT_LT(pos("prune"), pos("backup2"));
  EXPECT_LT(pos("other"), pos("prune"));
}

TEST(RunnerTest, CancellingAQueuedJobDropsItAndARunningOneCancelsItsToken) {
  Gate gate;
  Log log;
  Runner r(1);
  std::promise<Status> seen;
  Job running;
  running.id = "running";
  running.resource = "repo";
  running.run = [&](const CancelToken& t) {
    log.start("running");
    bool opened = gate.wait(t);
    // The runner's token is this thread's current one: operations below see it.
    seen.set_value(opened ? ok_status() : current_cancel().check());
    log.end();
  };
  ASSERT_TRUE(r.submit(std::move(running)).ok());
  ASSERT_TRUE(eventually([&] { return r.running("running"); }));
  std::string dropped_why;
  Job waiting = gated("waiting", "repo2", Access::kShared, gate, log);
  waiting.on_dropped = [&](const Error& e) { dropped_why = e.message(); };
  ASSERT_TRUE(r.submit(std::move(waiting)).ok());

  EXPECT_EQ(r.cancel("waiting", Error(Error::Code::kCancelled, "cancelled by alice")),
            Runner::CancelOutcome::kDequeued);
  EXPECT_EQ(dropped_why, "cancelled by alice");
  EXPECT_EQ(r.cancel("running", Error(Error::Code::kCancelled, "cancelled by bob")),
            Runner::CancelOutcome::kSignalled);
  auto status = seen.get_future();
  ASSERT_EQ(status.wait_for(1s), std::future_status::ready);
  Status s = status.get();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "cancelled by bob");
  r.wait_idle();
  EXPECT_EQ(log.order(), std::vector<std::string>{"running"});  // "waiting" never ran
  EXPECT_EQ(r.cancel("nobody", Error(Error::Code::kCancelled, "x")), Runner::CancelOutcome::kNotFound);
}

TEST(RunnerTest, RefusesDuplicatesAndJobsWithoutWork) {
  Gate gate;
  Log log;
  Runner r(1);
  ASSERT_TRUE(r.submit(gated("a", "repo", Access::kShared, gate, log)).ok());
  ASSERT_TRUE(r.submit(gated("b", "repo", Access::kShared, gate, log)).ok());  // queued
  Status dup_running = r.submit(gated("a", "repo", Access::kShared, gate, log));
  Status dup_queued = r.submit(gated("b", "repo", Access::kShared, gate, log));
  ASSERT_FALSE(dup_running.ok());
  EXPECT_EQ(dup_running.error().code(), Error::Code::kAlreadyExists);
  ASSERT_FALSE(dup_queued.ok());
  EXPECT_EQ(dup_queued.error().code(), Error::Code::kAlreadyExists);
  Job empty;
  empty.id = "c";
  EXPECT_EQ(r.submit(std::move(empty)).error().code(), Error::Code::kInvalidArgument);
  gate.open();
  r.wait_idle();
  // Once finished, an id may be used again.
  Gate open_gate;
  open_gate.open();
  EXPECT_TRUE(r.submit(gated("a", "repo", Access::kShared, open_gate, log)).ok());
  r.wait_idle();
}

TEST(RunnerTest, ShutdownDropsTheQueueCancelsRunningJobsAndRefusesNewOnes) {
  Gate gate;
  Log log;
  Runner r(1);
  ASSERT_TRUE(r.submit(gated("a", "repo", Access::kShared, gate, log)).ok());
  ASSERT_TRUE(eventually([&] { return r.running("a"); }));
  int dropped = 0;
  Job b = gated("b", "repo", Access::kShared, gate, log);
  b.on_dropped = [&](const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kCancelled);
    ++dropped;
  };
  ASSERT_TRUE(r.submit(std::move(b)).ok());
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(r.shutdown(/*cancel_running=*/true, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_EQ(dropped, 1);
  EXPECT_EQ(r.running_count(), 0u);
  EXPECT_EQ(r.submit(gated("c", "repo", Access::kShared, gate, log)).error().code(),
            Error::Code::kCancelled);
  EXPECT_EQ(log.order(), std::vector<std::string>{"a"});
}

TEST(RunnerTest, ShutdownLetsRunningJobsFinishWhenAskedTo) {
  Log log;
  Runner r(2);
  std::atomic<bool> finished{false};
  Job j;
  j.id = "slow";
  j.resource = "repo";
  j.run = [&](const CancelToken& t) {
    std::this_thread::sleep_for(200ms);
    finished = !t.cancelled();
  };
  ASSERT_TRUE(r.submit(std::move(j)).ok());
  ASSERT_TRUE(eventually([&] { return r.running("slow"); }));
  EXPECT_TRUE(r.shutdown(/*cancel_running=*/false, 5s));
  EXPECT_TRUE(finished.load()) << "the job was cancelled instead of finishing";
}

TEST(RunnerTest, RaisingTheLimitStartsMoreAtOnce) {
  Gate gate;
  Log log;
  Runner r(1);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(r.submit(gated("j" + std::to_string(i), "r" + std::to_string(i), Access::kShared, gate, log)).ok());
  }
  ASSERT_TRUE(eventually([&] { return r.running_count() == 1; }));
  r.set_max_parallel(3);
  EXPECT_TRUE(eventually([&] { return r.running_count() == 3 && log.now.load() == 3; }));
  gate.open();
  r.wait_idle();
  EXPECT_EQ(log.peak.load(), 3);
}

}  // namespace
}  // namespace haven::jobs

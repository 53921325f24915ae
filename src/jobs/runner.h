// jobs/runner.h — runs jobs on threads of their own under the rules of a backup server:
// at most max_parallel at once, high priority before normal, and per resource (a repository)
// shared jobs together (backups, restores, checks) but an exclusive one (prune) alone.
//
// Order. The queue is ordered by priority, then by submission. A job starts when a slot is
// free and its resource allows it; a job never overtakes an earlier queued job on the same
// resource that is waiting for that resource (so a prune waiting for running backups to end
// is not starved by backups submitted after it). Jobs on other resources go ahead.
//
// Cancellation. Each job gets a token of its own, the current token (util/cancel.h
// CancelScope) of the thread it runs on, so the operations it calls (ops/ops.h
// OperationScope) stop when it is cancelled. cancel() on a queued job removes it (it never
// runs; on_dropped is called); on a running one cancels its token and the job decides what to
// record. shutdown() stops accepting, drops what is queued and waits for what runs (cancelling
// it first if asked).
//
// Thread-safety: every method may be called from any thread, including from inside a job
// (a job may submit another; it must not wait for it).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "util/cancel.h"
#include "util/error.h"

namespace haven::jobs {

enum class Access { kShared, kExclusive };
enum class Priority { kNormal, kHigh };

struct Job {
  std::string id;        // unique among queued and running jobs (a catalog execution's id)
  std::string resource;  // what exclusivity is about: a repository (its location's name)
  Access access = Access::kShared;
  Priority priority = Priority::kNormal;
  // The work, on a thread of its own with `token` current. Whatever it returns or records is
  // its own business: the runner only schedules.
  std::function<void(const CancelToken& token)> run;
  // Called (on the calling thread of cancel() or shutdown()) when the job is removed from the
  // queue before it ran. May be empty.
  std::function<void(const Error& why)> on_dropped;
};

class Runner {
 public:
  // `on_thread_start`, if set, runs first on each job's thread (the server lowers the thread's
  // CPU priority there; threads the job starts inherit it).
  explicit Runner(unsigned max_parallel, std::function<void()> on_thread_start = {});
  ~Runner();  // shutdown(cancel running, wait)
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Queues the job (and starts it if it may start now). kAlreadyExists if a job with this id
  // is queued or running; kCancelled once shutdown began; kInvalidArgument without run or id.
  Status submit(Job job);

  enum class CancelOutcome { kNotFound, kDequeued, kSignalled };
  // A queued job is removed (on_dropped(why)); a running one has its token cancelled.
  CancelOutcome cancel(const std::string& id, const Error& why);

  bool queued(const std::string& id) const;
  bool running(const std::string& id) const;
  size_t queued_count() const;
  size_t running_count() const;
  std::vector<std::string> running_ids() const;

  // A reload may change the limit (>= 1); more jobs start at once if it grew; running ones are
  // never stopped if it shrank.
  void set_max_parallel(unsigned n);
  unsigned max_parallel() const;

  // Stops accepting, drops the queue (on_dropped with kCancelled), cancels the running jobs if
  // `cancel_running`, and waits for them to return. After `deadline` the running ones are
  // cancelled anyway; returns false if some still ran at the end of a second deadline of
  // the same length (they are then abandoned to finish on their own; the destructor waits).
  bool shutdown(bool cancel_running, std::chrono::milliseconds deadline);

  // Blocks until no job is queued or running (tests, a CLI run of one policy).
  void wait_idle() const;

 private:
  struct Queued {
    uint64_t seq;
    Job job;
  };
  struct Running {
    Access access;
    std::string resource;
    CancelToken token;
    std::thread thread;
  };
  void dispatch_locked();  // starts whatever may start now
  void finished(const std::string& id);
  void reap_locked();  // joins threads of finished jobs

  mutable std::mutex mu_;
  mutable std::condition_variable idle_cv_;
  unsigned max_parallel_;
  bool accepting_ = true;
  uint64_t next_seq_ = 0;
  std::vector<Queued> queue_;  // kept ordered: priority, then seq
  std::map<std::string, Running> running_;
  std::vector<std::thread> finished_threads_;
  std::function<void()> on_thread_start_;
};

}  // namespace haven::jobs

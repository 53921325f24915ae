#include "jobs/runner.h"

#include <algorithm>
#include <set>

namespace haven::jobs {

Runner::Runner(unsigned max_parallel, std::function<void()> on_thread_start)
    : max_parallel_(std::max(1u, max_parallel)), on_thread_start_(std::move(on_thread_start)) {}

Runner::~Runner() {
  shutdown(/*cancel_running=*/true, std::chrono::seconds(5));
  std::unique_lock<std::mutex> g(mu_);
  idle_cv_.wait(g, [&] { return running_.empty(); });
  reap_locked();
}

Status Runner::submit(Job job) {
  if (job.id.empty() || !job.run) {
    return Error(Error::Code::kInvalidArgument, "a job needs an id and work to run");
  }
  std::lock_guard<std::mutex> g(mu_);
  if (!accepting_) return Error(Error::Code::kCancelled, "the server is shutting down");
  if (running_.count(job.id) != 0 ||
      std::any_of(queue_.begin(), queue_.end(), [&](const Queued& q) { return q.job.id == job.id; })) {
    return Error(Error::Code::kAlreadyExists, "job " + job.id + " is already queued or running");
  }
  Queued q{next_seq_++, std::move(job)};
  // Ordered by priority (high first), then submission.
  auto pos = std::find_if(queue_.begin(), queue_.end(), [&](const Queued& other) {
    return q.job.priority == Priority::kHigh && other.job.priority == Priority::kNormal;
  });
  queue_.insert(pos, std::move(q));
  reap_locked();
  dispatch_locked();
  return ok_status();
}

void Runner::dispatch_locked() {
  // Resources some earlier queued job waits for: later jobs on them wait behind it.
  std::set<std::string> waiting;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (running_.size() >= max_parallel_) return;
    const Job& job = it->job;
    if (waiting.count(job.resource) != 0) {
      ++it;
      continue;
    }
    bool allowed = true;
    for (const auto& [id, r] : running_) {
      if (r.resource != job.resource) continue;
      if (job.access == Access::kExclusive || r.access == Access::kExclusive) {
        allowed = false;
        break;
      }
    }
    if (!allowed) {
      waiting.insert(job.resource);
      ++it;
      continue;
    }
    Job j = std::move(it->job);
    it = queue_.erase(it);
    Running& r = running_[j.id];
    r.access = j.access;
    r.resource = j.resource;
    r.thread = std::thread([this, token = r.token, job = std::move(j)]() mutable {
      if (on_thread_start_) on_thread_start_();
      {
        CancelScope scope(token);
        job.run(token);
      }
      finished(job.id);
    });
  }
}

void Runner::finished(const std::string& id) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = running_.find(id);
  if (it != running_.end()) {
    finished_threads_.push_back(std::move(it->second.thread));
    running_.erase(it);
  }
  if (accepting_) dispatch_locked();
  idle_cv_.notify_all();
}

void Runner::reap_locked() {
  for (auto& t : finished_threads_) {
    if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
  }
  std::erase_if(finished_threads_, [](const std::thread& t) { return !t.joinable(); });
}

Runner::CancelOutcome Runner::cancel(const std::string& id, const Error& why) {
  std::function<void(const Error&)> dropped;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto r = running_.find(id);
    if (r != running_.end()) {
      r->second.token.cancel(why);
      return CancelOutcome::kSignalled;
    }
    auto q = std::find_if(queue_.begin(), queue_.end(),
                          [&](const Queued& x) { return x.job.id == id; });
    if (q == queue_.end()) return CancelOutcome::kNotFound;
    dropped = std::move(q->job.on_dropped);
    queue_.erase(q);
    dispatch_locked();  // a job behind it on the same resource may start now
    idle_cv_.notify_all();
  }
  if (dropped) dropped(why);
  return CancelOutcome::kDequeued;
}

bool Runner::queued(const std::string& id) const {
  std::lock_guard<std::mutex> g(mu_);
  return std::any_of(queue_.begin(), queue_.end(), [&](const Queued& q) { return q.job.id == id; });
}

bool Runner::running(const std::string& id) const {
  std::lock_guard<std::mutex> g(mu_);
  return running_.count(id) != 0;
}

size_t Runner::queued_count() const {
  std::lock_guard<std::mutex> g(mu_);
  return queue_.size();
}

size_t Runner::running_count() const {
  std::lock_guard<std::mutex> g(mu_);
  return running_.size();
}

std::vector<std::string> Runner::running_ids() const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<std::string> out;
  for (const auto& [id, r] : running_) out.push_back(id);
  return out;
}

void Runner::set_max_parallel(unsigned n) {
  std::lock_guard<std::mutex> g(mu_);
  max_parallel_ = std::max(1u, n);
  if (accepting_) dispatch_locked();
}

unsigned Runner::max_parallel() const {
  std::lock_guard<std::mutex> g(mu_);
  return max_parallel_;
}

bool Runner::shutdown(bool cancel_running, std::chrono::milliseconds deadline) {
  std::vector<Job> dropped;
  {
    std::lock_guard<std::mutex> g(mu_);
    accepting_ = false;
    for (auto& q : queue_) dropped.push_back(std::move(q.job));
    queue_.clear();
    if (cancel_running) {
      for (auto& [id, r] : running_) r.token.cancel(Error(Error::Code::kCancelled, "the server is shutting down"));
    }
  }
  Error why(Error::Code::kCancelled, "the server is shutting down");
  for (auto& j : dropped) {
    if (j.on_dropped) j.on_dropped(why);
  }
  std::unique_lock<std::mutex> g(mu_);
  if (!idle_cv_.wait_for(g, deadline, [&] { return running_.empty(); })) {
    for (auto& [id, r] : running_) {
      r.token.cancel(Error(Error::Code::kCancelled, "the server is shutting down (jobs did not finish in time)"));
    }
    idle_cv_.wait_for(g, deadline, [&] { return running_.empty(); });
  }
  reap_locked();
  return running_.empty();
}

void Runner::wait_idle() const {
  std::unique_lock<std::mutex> g(mu_);
  idle_cv_.wait(g, [&] { return running_.empty() && queue_.empty(); });
}

}  // namespace haven::jobs

#include "jobs/scheduler.h"

#include <algorithm>
#include <cstdlib>

#include "schedule/cron.h"
#include "schedule/zone.h"

namespace haven::jobs {

namespace {
constexpr TimeNs kSecond = 1'000'000'000;
constexpr TimeNs kJumpThreshold = 2 * kSecond;
constexpr size_t kKeptDelays = 10000;
}  // namespace

Scheduler::Scheduler(Service& service, catalog::Catalog& catalog, std::function<TimeNs()> clock)
    : service_(service), catalog_(catalog), clock_(std::move(clock)) {}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start() {
  TimeNs t = clock_();
  catch_up(t);
  {
    std::lock_guard<std::mutex> g(mu_);
    compute_plan_locked(t);
    stop_ = false;
  }
  thread_ = std::thread([this] { loop(); });
}

void Scheduler::stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void Scheduler::replan() {
  std::lock_guard<std::mutex> g(mu_);
  dirty_ = true;
  cv_.notify_all();
}

std::vector<Scheduler::Planned> Scheduler::plan() const {
  std::lock_guard<std::mutex> g(mu_);
  return plan_;
}

std::vector<TimeNs> Scheduler::fire_delays() const {
  std::lock_guard<std::mutex> g(mu_);
  return delays_;
}

uint64_t Scheduler::fires() const {
  std::lock_guard<std::mutex> g(mu_);
  return fires_;
}

int Scheduler::clock_jumps() const {
  std::lock_guard<std::mutex> g(mu_);
  return jumps_;
}

void Scheduler::catch_up(TimeNs t) {
  auto rows = catalog_.list_policies();
  if (!rows.ok()) return;
  for (const auto& row : *rows) {
    if (!row.is_active || !row.next_execution || *row.next_execution >= t) continue;
    auto policy = service_.policy_of(row);
    if (!policy.ok() || policy->schedules.empty()) continue;
    if (policy->catch_up != config::CatchUp::kOnce) continue;
    ExecuteRequest req;
    req.trigger = catalog::Trigger::kCatchUp;
    req.scheduled_for = row.next_execution;
    req.strategy = policy->schedules[0].strategy;
    (void)service_.execute(row.id, req);  // recorded, or skipped by the overlap rule
  }
}

void Scheduler::compute_plan_locked(TimeNs from) {
  plan_.clear();
  auto rows = catalog_.list_policies();
  if (!rows.ok()) return;
  for (const auto& row : *rows) {
    if (!row.is_active) continue;
    auto policy = service_.policy_of(row);
    if (!policy.ok()) continue;
    std::optional<Planned> best;
    for (const config::Schedule& s : policy->schedules) {
      auto cron = schedule::Cron::parse(s.cron);
      auto zone = schedule::Zone::load(s.timezone);
      if (!cron.ok() || !zone.ok()) continue;  // config checked both; a zone file may vanish
      TimeNs at = cron->next(from, *zone);
      if (at == schedule::Cron::kNever) continue;
      if (!best || at < best->at) best = Planned{row.id, row.name, at, s.strategy};
    }
    if (best) plan_.push_back(*best);
    std::optional<TimeNs> next = best ? std::optional<TimeNs>(best->at) : std::nullopt;
    if (row.next_execution != next) (void)catalog_.set_policy_schedule_times(row.id, row.last_execution, next);
  }
  std::sort(plan_.begin(), plan_.end(), [](const Planned& a, const Planned& b) { return a.at < b.at; });
}

void Scheduler::loop() {
  std::unique_lock<std::mutex> g(mu_);
  TimeNs wall_prev = clock_();
  auto steady_prev = std::chrono::steady_clock::now();
  while (!stop_) {
    TimeNs t = clock_();
    auto st = std::chrono::steady_clock::now();
    TimeNs wall_moved = t - wall_prev;
    TimeNs steady_moved = std::chrono::duration_cast<std::chrono::nanoseconds>(st - steady_prev).count();
    bool jumped = std::llabs(wall_moved - steady_moved) > kJumpThreshold;
    wall_prev = t;
    steady_prev = st;
    if (jumped) ++jumps_;
    if (dirty_ && !jumped) {
      compute_plan_locked(t);
      dirty_ = false;
    }
    // Due fires (after a forward jump: every policy whose fire was passed over, once).
    std::vector<Planned> due;
    for (const auto& p : plan_) {
      if (p.at <= t) due.push_back(p);
    }
    if (!due.empty() || jumped) {
      g.unlock();
      for (const auto& p : due) {
        ExecuteRequest req;
        req.trigger = catalog::Trigger::kSchedule;
        req.scheduled_for = p.at;
        req.strategy = p.strategy;
        TimeNs called = clock_();
        (void)service_.execute(p.policy_id, req);
        std::lock_guard<std::mutex> g2(mu_);
        delays_.push_back(called - p.at);
        ++fires_;
        if (delays_.size() > kKeptDelays) delays_.erase(delays_.begin());
      }
      g.lock();
      compute_plan_locked(clock_());  // strictly after now: a fire never repeats
      dirty_ = false;
      continue;
    }
    TimeNs wait = kSecond;
    if (!plan_.empty()) wait = std::clamp<TimeNs>(plan_.front().at - t, 0, kSecond);
    cv_.wait_for(g, std::chrono::nanoseconds(wait));
  }
}

}  // namespace haven::jobs

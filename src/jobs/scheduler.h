// jobs/scheduler.h — fires policies' schedules (schedule/cron.h, each in its own time zone) by
// asking the Service to execute them.
//
// Timing. The plan is the next fire instant of every schedule of every active policy. The
// loop sleeps until the earliest, at most one second at a time, so that it notices a clock
// step or a suspend: when wall-clock time moved more than 2 s away from the monotonic clock
// between two wake-ups, the plan is recomputed from the new time (a fire passed over by a
// forward jump counts as missed, below). A fire is late by (the moment execute() was called −
// the planned instant); the delays are kept for /metrics and the bench (fire_delays()).
//
// Missed fires and catch-up. The catalog keeps each policy's next_execution. At start (and
// after a clock jump), a policy whose recorded next_execution is in the past missed a run:
// with catch_up: once it runs once now (trigger catch_up), never several times however many
// fires were missed; with catch_up: none it does not. Either way the plan continues from now.
// Several schedules of one policy firing at the same instant make one run (the first
// schedule's strategy wins).
//
// Thread-safety: start/stop/replan from any thread; the loop runs on a thread of its own.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "jobs/service.h"

namespace haven::jobs {

class Scheduler {
 public:
  // `clock` is the wall clock (tests inject one); the loop still sleeps in real time.
  Scheduler(Service& service, catalog::Catalog& catalog,
            std::function<TimeNs()> clock = [] { return haven::now(); });
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs the catch-up pass, plans, and starts the loop.
  void start();
  void stop();
  // Recomputes the plan (policies changed: a reload, the API).
  void replan();

  struct Planned {
    std::string policy_id, policy_name;
    TimeNs at = 0;
    config::Strategy strategy = config::Strategy::kIncremental;
  };
  std::vector<Planned> plan() const;
  // How late each fire was, in nanoseconds, oldest first (the last 10,000).
  std::vector<TimeNs> fire_delays() const;
  // Fires since start (fire_delays() keeps only the last 10,000).
  uint64_t fires() const;
  // Clock steps or suspends noticed so far.
  int clock_jumps() const;

 private:
  void loop();
  void compute_plan_locked(TimeNs from);
  void catch_up(TimeNs now);

  Service& service_;
  catalog::Catalog& catalog_;
  std::function<TimeNs()> clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Planned> plan_;
  std::vector<TimeNs> delays_;
  int jumps_ = 0;
  uint64_t fires_ = 0;
  bool stop_ = false, dirty_ = false;
  std::thread thread_;
};

}  // namespace haven::jobs

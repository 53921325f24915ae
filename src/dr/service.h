// dr/service.h — disaster recovery in a long-running process (the server): the plans of
// haven.yaml and of the API in the catalog, runs started on request or on schedule, each on a
// thread of its own and recorded as a disaster_recovery_executions row, and the approval a
// real recovery waits for.
//
//   * Drills and planned tests run into a sandbox (dr/runner.h) at once. A real recovery
//     (disaster_recovery) waits for approval by a second principal unless its plan says
//     otherwise (approval: {required: false}): its row is pending, approval_status pending,
//     until approve() (by someone other than who asked) starts it or reject() cancels it.
//   * One run per plan at a time: another request while one runs is kAlreadyExists.
//   * Scheduled drills: a plan with test_frequency_days > 0 that is active is drilled when its
//     newest drill or planned test started that many days ago (a plan never drilled: that
//     many days after it was created). tick() decides; start() calls it every tick_interval.
//   * A success sets the plan's last_tested. Runs left running by a process that stopped are
//     marked interrupted at construction (other instances' rows), and their sandboxes removed
//     by the next run.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "catalog/catalog.h"
#include "config/config.h"
#include "dr/runner.h"
#include "util/cancel.h"
#include "util/events.h"

namespace haven::dr {

class FailoverWatch;

struct ServiceOptions {
  std::string instance;      // this process (server_instance of its rows)
  std::string sandbox_root;  // where runs make their directories
  std::string haven_program;
  std::function<Result<std::shared_ptr<repo::Repository>>(const config::Policy&)> open_repository;
  std::function<TimeNs()> clock = [] { return haven::now(); };
  std::chrono::milliseconds tick_interval{60000};
  // Events of the service itself: "dr:execution-requested", "dr:approval-required",
  // "dr:approved", "dr:rejected", "dr:scheduled".
  std::function<void(const std::string& kind, const nlohmann::json& payload)> note;
  std::chrono::milliseconds poll_interval{250};
  // Failover (dr/failover.h): a location's repository (leases, the standby's backups), and
  // who takes a lease ("<host>/<instance>").
  std::function<Result<std::shared_ptr<repo::Repository>>(const std::string& location)> open_location;
  std::string holder;
  catalog::Catalog* alerts = nullptr;  // where failover raises its alert; may be null
  std::chrono::milliseconds probe_interval{0};  // 0: each failover's own
};

class Service {
 public:
  // `events` receives each run's dr:* events under the execution's id.
  Service(catalog::Catalog& catalog, EventSink& events, ServiceOptions options);
  ~Service();  // stop()
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Stores haven.yaml's plans (source config); a plan that left the file becomes inactive.
  Status apply_config(std::shared_ptr<const config::Config> config);
  std::shared_ptr<const config::Config> config() const;

  // A plan from the API's JSON (config::check_plan_json), stored with source api. kInvalidArgument
  // with every diagnostic; kAlreadyExists when haven.yaml defines a plan of that name.
  Result<catalog::DrPlanRow> create_plan(const nlohmann::json& body);
  // The plan a row holds, checked against the current configuration's policies.
  Result<config::DrPlan> plan_of(const catalog::DrPlanRow& row) const;

  // Starts a run of the plan (id or name): drill and planned_test at once, disaster_recovery
  // once approved (unless the plan needs no approval). Returns the row as stored.
  // `approved`: a failover runs its plan without waiting (it was decided in haven.yaml).
  Result<catalog::DrExecutionRow> execute(const std::string& plan, catalog::DrExecutionType type,
                                          const std::string& reason, const std::string& by,
                                          bool approved = false);
  // The failovers of haven.yaml: state and standby, and failing one over by hand.
  nlohmann::json failover_status();
  Result<nlohmann::json> fail_over(const std::string& name, const std::string& by);
  Result<catalog::DrExecutionRow> approve(const std::string& execution, const std::string& by);
  Result<catalog::DrExecutionRow> reject(const std::string& execution, const std::string& by);
  // Cancels a running execution (its clean-up still runs). kNotFound if it is not running here.
  Status cancel(const std::string& execution);

  // Scheduled drills that are due at the clock's time: started. Returns how many.
  int tick();
  void start();
  // Stops the loop, cancels running executions and waits for them (their clean-up included).
  void stop();
  // Waits until no execution runs (tests).
  void wait_idle();

 private:
  Status launch(catalog::DrExecutionRow row, const config::DrPlan& plan, Mode mode);
  void note(const std::string& kind, const nlohmann::json& payload);

  catalog::Catalog& catalog_;
  EventSink& events_;
  ServiceOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const config::Config> config_;
  struct Running {
    std::string plan_id;
    CancelToken token;
    std::thread thread;
  };
  std::map<std::string, std::unique_ptr<Running>> running_;  // by execution id
  std::map<std::string, std::shared_ptr<FailoverWatch>> failovers_;  // by name
  bool started_ = false;
  std::vector<std::thread> finished_;  // joined at stop()
  bool stopping_ = false;
  std::thread loop_;
};

}  // namespace haven::dr

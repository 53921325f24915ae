// dr/runner.h — running a disaster-recovery plan (config::DrPlan): a drill into a sandbox, or a
// real recovery onto the plan's targets.
//
// A run checks the prerequisites, then runs the steps as their dependencies allow (steps whose
// dependencies are done run in parallel, each with its timeout; a failed step stops its
// dependants, which are recorded as not run), then the post-recovery validations. It measures:
//   * the actual RTO: from the start of the run to the moment every validation has passed
//     (to the end of the steps when the plan has none);
//   * the actual RPO: for each restore, the recovery target time (the run's start for
//     "latest", else the time asked for) minus the time of the newest data actually recovered
//     (a snapshot's time; for PostgreSQL the last replayed commit's timestamp, or the base
//     backup's end when no commit was replayed). The run's RPO is the worst of them.
//   * success: every step done (a drill skips switches), every validation passed, and both
//     objectives met.
//
// A drill never touches a production path or port: restores go into the sandbox and services
// get free ports, and a plan whose commands or checks name a production path (a policy's
// sources or data directory, a step's real target) or port (a database policy's, a step's real
// port) is refused before anything runs. Everything a drill started is stopped and its
// sandbox removed when it ends, also when it fails or is cancelled; a drill killed midway is
// cleaned up by the next run (clean_leftovers). A real recovery leaves its services running.
//
// Events: dr:started, dr:progress (phase "step:<name>" or "validation:<name>"), dr:warning (a
// step skipped), dr:error (a step failed, with its output), dr:validated (each validation),
// dr:completed (the result's JSON, success or not), dr:failed or dr:cancelled.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "repo/repository.h"
#include "util/clock.h"
#include "util/events.h"

namespace haven::dr {

enum class Mode { kDrill, kReal };

struct StepOutcome {
  std::string name;
  std::string kind;    // restore_files restore_postgres command sql checksum switch
  std::string status;  // completed failed skipped not_run cancelled
  TimeNs started_at = 0, finished_at = 0;
  double seconds = 0;
  std::string message;  // what happened; for a failure, why (naming the step)
  std::string output;   // a command's last lines of output
  std::string path;     // what a restore wrote into
  int port = 0;
  // Restores: the recovery target and the newest data recovered (for the RPO).
  std::optional<TimeNs> target_time, recovered_time;
  std::optional<double> restore_seconds, replay_seconds;  // restore_postgres: the two halves
  nlohmann::json details = nlohmann::json::object();      // snapshot, files, bytes…
  nlohmann::json to_json() const;
};

struct CheckResult {
  std::string check;  // config::describe()
  bool passed = false;
  std::string message;
};

struct ValidationOutcome {
  std::string name;
  bool passed = false;
  int passed_checks = 0, threshold = 0;
  double seconds = 0;          // until it passed, or its timeout
  TimeNs passed_at = 0;
  std::vector<CheckResult> checks;  // the last round
  nlohmann::json to_json() const;
};

struct RunResult {
  std::string plan;
  Mode mode = Mode::kDrill;
  TimeNs started_at = 0, finished_at = 0;
  std::vector<ValidationOutcome> prerequisites;
  std::vector<StepOutcome> steps;
  std::vector<ValidationOutcome> validations;
  std::optional<double> rto_seconds, rpo_seconds;
  int64_t rto_target_seconds = 0, rpo_target_seconds = 0;
  bool steps_ok = false, validations_ok = false, rto_met = false, rpo_met = false;
  bool success = false;  // success_criteria_met
  bool cancelled = false;
  std::string error;  // the first failure, naming the step or validation
  std::string sandbox;
  // Where the time went: restore, WAL replay, validation (seconds).
  double restore_seconds = 0, replay_seconds = 0, validation_seconds = 0;
  nlohmann::json to_json() const;
};

struct RunOptions {
  Mode mode = Mode::kDrill;
  // Drills: sandboxes go under this directory (created if absent).
  std::string sandbox_root;
  std::string run_id;  // the sandbox's name (the execution's id); "": random
  // The haven binary, for a restored cluster's restore_command (haven wal-fetch).
  std::string haven_program;
  // Opens the repository a policy backs up into (the front end knows how: credentials,
  // regions and read failover).
  std::function<Result<std::shared_ptr<repo::Repository>>(const config::Policy&)> open_repository;
  // Called once the sandbox exists (to record it), before any step runs.
  std::function<void(const std::string& sandbox)> on_sandbox;
  // Called with the sandboxes of killed drills that this run removed (to mark their runs
  // interrupted), before its own sandbox is made.
  std::function<void(const std::vector<std::string>& removed)> on_cleaned;
  int max_parallel = 4;  // steps at once
  // Between rounds of a validation's checks, and of a wait.
  std::chrono::milliseconds poll_interval{250};
};

// kInvalidArgument, naming the plan and what it would touch, when a drill of `plan` would use
// a production path or port (see above). Checks only; nothing runs.
Status check_drill_safe(const config::Config& config, const config::DrPlan& plan);

// Runs the plan. The Result is an Error only when the run could not start (a refused plan, a
// sandbox that cannot be made); a failed step or validation is a RunResult with success
// false. Cancellation (the current token) stops the run, cleans up, and returns a RunResult
// with cancelled set.
Result<RunResult> run_plan(const config::Config& config, const config::DrPlan& plan,
                           const RunOptions& options, const EventTarget& events);

}  // namespace haven::dr

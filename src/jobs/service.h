// jobs/service.h — what a backup server does with its policies: runs a policy's backup (files
// or PostgreSQL) on the Runner, then its integrity check and, once it succeeded, the policy's
// retention; runs restores; records every run in the catalog (seed 004's backup_executions and
// restore_operations) and sends its typed events, under the execution's ID, to the sink given.
//
// Rules:
//  * A run's row is created before it is queued (pending), marked running when it starts and
//    completed / failed / cancelled when it ends, with the seed's figures: backup_size_bytes
//    (bytes of the files backed up), compressed_size_bytes (what the run stored, after dedup
//    and compression), files_backed_up, duration_seconds, transfer_rate_mbps (bytes read per
//    second), backup_location, snapshot_id, integrity_check_status, error_message, retry_count.
//  * Overlap, per policy: while a run of the policy is queued or running, a new one is either
//    recorded as skipped with the reason (overlap: skip) or waits for it (overlap: queue).
//  * A failed run (not a cancelled one) is retried after retry_backoff_seconds, doubling each
//    time, up to retry_count times; each retry is an execution of its own (trigger retry).
//  * Retention runs after each successful backup of the policy, on that policy's snapshots
//    only (they carry the tag "policy:<name>"), as an exclusive job on the repository (forget
//    and prune); its outcome is an event, not an execution row.
//  * Per repository: backups, restores and checks share it; retention waits for exclusivity.
//
// Policies come from the catalog (backup_policies.spec, the policy as JSON: config/config.h),
// so policies created over the API and those of haven.yaml run the same way. Repositories are
// opened once per location (the password's key derivation is slow) and shared by the runs.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "config/config.h"
#include "jobs/runner.h"
#include "repo/memory.h"
#include "repo/repository.h"
#include "util/events.h"

namespace haven::jobs {

struct ServiceOptions {
  std::string server_instance;  // recorded on every row this service writes
  // How the repositories it opens hold their index (repo/index.h): the server bounds it and
  // spills to a directory beside its catalog. Default: all in memory.
  repo::IndexOptions index;
  unsigned max_parallel = 2;
  // Retries wait retry_backoff_seconds × 2^n; tests shorten it.
  double backoff_scale = 1.0;
  // Off: a failed run is not retried (the CLI's one-off run of a policy).
  bool retries = true;
  // Runs first on each job's thread (Runner's on_thread_start): the server sets the thread's
  // niceness there (server.job_nice).
  std::function<void()> on_job_thread;
  // The time rows are stamped with (tests inject one, with the catalog's and the monitors'
  // own, to move time by hand). Retries are timed by the real clock.
  std::function<TimeNs()> clock = [] { return haven::now(); };
  // The audit log (monitor/audit.h through the server): what the service does on its own or on
  // a caller's behalf — backup.execute (actor: the request's requested_by, else "scheduler"),
  // restore.request, restore.validate, retention.forget and retention.prune. May be empty.
  std::function<void(const std::string& actor, const std::string& action,
                     const std::string& target, const nlohmann::json& details)>
      audit;
  // Replication (jobs/replicator.h): every object saved into a location with secondary regions
  // is reported here; a sync location's quorum asks region_active and reports regions it
  // could not reach to on_region_failed. May be empty.
  std::function<void(const std::string& location, const storage::ObjectName& name, uint64_t size)>
      on_object_saved;
  std::function<bool(const std::string& location, const std::string& region)> region_active;
  std::function<void(const std::string& location, const std::string& region, const Error& error)>
      on_region_failed;
  // Reads of a location with secondary regions fail over to them (replication/failover.h);
  // each object read from a region instead of the primary is reported here. May be empty.
  std::function<void(const std::string& location, const storage::ObjectName& name,
                     const std::string& region, const Error& why)>
      on_read_failover;
};

struct ExecuteRequest {
  std::optional<config::Strategy> strategy;  // default: the policy's first schedule's
  std::optional<config::Priority> priority;  // default: the policy's
  catalog::Trigger trigger = catalog::Trigger::kManual;
  std::optional<TimeNs> scheduled_for;
  int retry_count = 0;
  std::string requested_by;  // for the audit log ("token:ops"); empty: "scheduler"
};

struct RestoreRequest {
  catalog::RestoreType type = catalog::RestoreType::kFullRestore;
  std::string source_backup_id;  // an execution's id or execution_id (its snapshot is restored)
  std::optional<TimeNs> point_in_time;  // point_in_time: the newest snapshot at or before it
  std::string target_location;          // an absolute directory
  std::vector<std::string> include;     // restoreScope.paths (partial / file recovery)
  bool overwrite_existing = false;
  bool verify = true;
  std::string requested_by;
  nlohmann::json request = nlohmann::json::object();  // as received, for the record
};

// The catalog row of a policy (seed 004's columns kept in step with the full spec).
catalog::PolicyRow policy_row(const config::Policy& policy, catalog::PolicySource source);
// The tag every snapshot of the policy carries: "policy:<name>".
std::string policy_tag(const std::string& policy_name);
// What one job may hold under server.memory_limit_mib: the limit shared equally by the
// max_parallel_jobs that may run at once (unlimited without one).
repo::MemoryBudget job_budget(const config::ServerSettings& server);

class Service {
 public:
  Service(catalog::Catalog& catalog, EventSink& events, ServiceOptions options);
  ~Service();  // shutdown(cancel running)
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // The configuration's locations (repositories, credentials) and the policies of the file,
  // written into the catalog (source config): new ones created, changed ones updated; a
  // policy that left the file is made inactive (its history stays). An API policy with the
  // name of one in the file is an error (kAlreadyExists), and nothing is changed.
  Status apply_config(std::shared_ptr<const config::Config> config);
  std::shared_ptr<const config::Config> config() const;

  // The policy of a catalog row, decoded and checked against the current locations.
  Result<config::Policy> policy_of(const catalog::PolicyRow& row) const;

  // Records an execution of the policy and queues it (or records it skipped, overlap rule).
  Result<catalog::ExecutionRow> execute(const std::string& policy_id, const ExecuteRequest& request);
  // kNotFound for an unknown execution; kAlreadyExists (a conflict) if it already ended.
  Status cancel_execution(const std::string& id);
  // True while a run of the policy is queued or running.
  bool policy_busy(const std::string& policy_id) const;

  Result<catalog::RestoreRow> restore(const RestoreRequest& request);
  Status cancel_restore(const std::string& id);
  // Validates a restore that ended (completed or failed): compares its target with the snapshot
  // it restored (ops::compare, reading only) as a job of its own on the location, with the
  // operation id "<request_id>:validate". The row's validation_results keeps the restore's own
  // summary and gets "validation": {"state": "running"}, then the comparison
  // (restore::comparison_json) with "state": "completed" (or "failed"/"cancelled" and "error")
  // and "validated_at"; integrity_validated is false while it runs, then whether everything
  // matched. kAlreadyExists (a conflict) while the restore or a validation of it is queued or
  // running, or if it restored nothing.
  // `actor`: who asked, for the audit log ("token:ops"; empty: "server").
  Result<catalog::RestoreRow> validate_restore(const std::string& id,
                                               const std::string& actor = "");

  // The snapshots of every location (GET /api/snapshots).
  struct SnapshotInfo {
    std::string location;
    std::string id;
    repo::Snapshot snapshot;
  };
  Result<std::vector<SnapshotInfo>> snapshots();

  // After a lost catalog: an execution (completed, trigger rebuild) for every snapshot of every
  // location that carries a policy's tag ("policy:<name>", a policy the catalog knows) and has
  // no execution yet. The repository is the truth; running it twice adds nothing.
  struct RebuildResult {
    size_t snapshots = 0;  // seen
    size_t added = 0;      // executions created
    size_t present = 0;    // already had one
    size_t unowned = 0;    // no policy tag, or a policy the catalog does not know
  };
  Result<RebuildResult> rebuild_catalog();

  // What a health check finds in a location's repository (monitor/service.h decides what it
  // means): reachable (its locks could be listed: how many, how many older than the
  // repository's stale threshold, 30 minutes, by the wall clock), writable (a shared lock was
  // taken and released), the bytes its packs take, and, when `read_data_subset` ("K/N") is
  // given, what check --read-data-subset found (damaged objects; an error if it could not
  // run). Runs on the calling thread.
  struct RepositoryProbe {
    bool reachable = false, writable = false;
    int64_t locks = 0, stale_locks = 0;
    std::optional<int64_t> pack_bytes;
    std::optional<int64_t> damaged;           // read-data: objects found damaged
    std::optional<std::string> read_error;    // read-data could not run
    std::vector<std::string> problems;        // for a person
  };
  RepositoryProbe probe_repository(const std::string& location, bool count_pack_bytes,
                                   const std::string& read_data_subset);
  // Reads a snapshot (hex id) and its root tree from the location's repository.
  Status read_snapshot(const std::string& location, const std::string& snapshot_id);

  // The location's repository, opened once and shared. With `paced` (a policy with a
  // bandwidth_limit_mbps) one of the policy's own, whose storage is paced at its limit.
  Result<std::shared_ptr<repo::Repository>> repository(const config::Location& location,
                                                       const config::Policy* paced = nullptr);
  // The same for a location of the current configuration, by name (kNotFound if it has none).
  Result<std::shared_ptr<repo::Repository>> repository_named(const std::string& location,
                                                             const config::Policy* paced = nullptr);

  Runner& runner() { return runner_; }
  // Blocks until nothing is queued, running or waiting for a retry.
  void wait_idle();
  // Stops: drops queued runs (recorded cancelled), cancels running ones if `cancel_running`
  // (else lets them finish for up to `deadline`, then cancels them).
  void shutdown(bool cancel_running, std::chrono::milliseconds deadline);

 private:
  struct Pending;  // a run queued behind a running one of the same policy (overlap: queue)
  void run_backup(const std::string& execution_id, const config::Policy& policy,
                  const CancelToken& token);
  void run_retention(const std::string& policy_id, const config::Policy& policy);
  void run_restore(const std::string& restore_id, const CancelToken& token);
  void audit(const std::string& actor, const std::string& action, const std::string& target,
             const nlohmann::json& details);
  void schedule_retry(const std::string& policy_id, const catalog::ExecutionRow& failed,
                      const config::Policy& policy);
  void policy_done(const std::string& policy_id);
  Status submit_backup(const catalog::ExecutionRow& row, const config::Policy& policy);
  void retry_loop();

  catalog::Catalog& catalog_;
  EventSink& events_;
  ServiceOptions options_;
  Runner runner_;

  mutable std::mutex mu_;
  std::mutex validate_mu_;  // validate_restore(): check, mark and submit as one
  std::condition_variable cv_;
  std::shared_ptr<const config::Config> config_;
  std::map<std::string, std::shared_ptr<repo::Repository>> repos_;  // by location (and paced policy)
  std::map<std::string, std::string> active_;  // policy id → execution id queued or running
  std::map<std::string, std::vector<std::string>> waiting_;  // policy id → execution ids (queue)
  struct Retry {
    TimeNs due;
    std::string policy_id;
    ExecuteRequest request;
  };
  std::vector<Retry> retries_;
  int retries_starting_ = 0;  // taken from retries_, execute() not yet returned
  int retention_jobs_ = 0;
  bool stopping_ = false;
  std::thread retry_thread_;
};

}  // namespace haven::jobs

// catalog/catalog.h — the operations database: backup policies, storage locations, backup
// executions, restore operations, the server's event log and API tokens (seed 004's tables).
//
// Who uses it: the server (REST handlers read; policies, tokens), the job runner (executions,
// restores, events) and the scheduler's wiring (policy schedule times). The catalog caches what
// happened; it never becomes the truth about snapshots: the repository is.
//
// The interface is narrow and typed so that a PostgreSQL catalog can implement it later; the
// SQLite one is open_sqlite_catalog() below. Rows are the plain structs of catalog/rows.h.
// Monitoring adds monitors (seed 004's backup_monitoring), alerts, their notifications (an
// outbox) and the hash-chained audit log; dr adds seed 004's disaster_recovery_plans and
// disaster_recovery_executions.
//
// Errors (haven::Error; every method):
//   kNotFound         an unknown id or name (the message names it)
//   kAlreadyExists    a unique name or ID is taken
//   kInvalidArgument  a bad value (empty name, negative count, malformed cursor, limit out of
//                     range, a JSON column that is not what it must be); nothing is written
//   kTransient        the database stayed locked by another process past the busy timeout
//   kIo, kNoSpace, kPermissionDenied, kCorrupt
//                     the database failed; the message names the file
// A method that fails changes nothing: every write is one transaction.
//
// Thread-safety: a Catalog may be called from any number of threads at once; it is destroyed
// only once every call has returned. Implementations must not let reads wait behind writes
// (the SQLite one: see open_sqlite_catalog below).
#pragma once

#include <chrono>
#include <cstdint>
#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "catalog/rows.h"
#include "util/clock.h"
#include "util/error.h"

namespace haven::catalog {

class Catalog {
 public:
  virtual ~Catalog() = default;

  // ---- Policies ----
  // Inserts `row` with a new id and created_at = updated_at = now; row.id, the times and
  // last/next_execution are ignored. Returns the stored row.
  // kAlreadyExists if a policy has this name; kNotFound if row.location_id names no location.
  virtual Result<PolicyRow> create_policy(const PolicyRow& row) = 0;
  // Replaces the policy with id row.id (name included) and sets updated_at = now; created_at and
  // last/next_execution are kept. Returns the stored row.
  // kNotFound (unknown id or location); kAlreadyExists if the new name is another policy's.
  virtual Result<PolicyRow> update_policy(const PolicyRow& row) = 0;
  virtual Result<PolicyRow> get_policy(const std::string& id) = 0;            // kNotFound
  virtual Result<PolicyRow> get_policy_by_name(const std::string& name) = 0;  // kNotFound
  // Every policy, by name.
  virtual Result<std::vector<PolicyRow>> list_policies() = 0;
  // Deletes the policy and, with it, its executions (ON DELETE CASCADE, as in the seed); restore
  // operations that came from those executions keep their snapshot_id and lose
  // source_backup_id. kNotFound for an unknown id.
  virtual Status delete_policy(const std::string& id) = 0;
  // Records the scheduler's times as given (nullopt stores NULL); updated_at is not changed.
  // kNotFound for an unknown id.
  virtual Status set_policy_schedule_times(const std::string& id,
                                           std::optional<TimeNs> last_execution,
                                           std::optional<TimeNs> next_execution) = 0;

  // ---- Storage locations ----
  // Inserts the location, or replaces the one with the same name (keeping its id and
  // created_at); updated_at = now. Returns the stored row.
  virtual Result<LocationRow> upsert_location(const LocationRow& row) = 0;
  virtual Result<LocationRow> get_location(const std::string& id) = 0;            // kNotFound
  virtual Result<LocationRow> get_location_by_name(const std::string& name) = 0;  // kNotFound
  virtual Result<std::vector<LocationRow>> list_locations() = 0;                  // by name
  // Records a health check's outcome (last_health_check, health_status). kNotFound.
  virtual Status set_location_health(const std::string& name, TimeNs at, HealthStatus status) = 0;

  // ---- Backup executions ----
  // Inserts `row` with a new id, created_at = now, started_at = now if 0, and a generated
  // execution_id if it is empty. Returns the stored row.
  // kNotFound if row.policy_id names no policy; kAlreadyExists if row.execution_id is taken.
  virtual Result<ExecutionRow> create_execution(const ExecutionRow& row) = 0;
  // Replaces the execution with id row.id; id, policy_id, execution_id and created_at are
  // kept. kNotFound for an unknown id.
  virtual Status update_execution(const ExecutionRow& row) = 0;
  // By id or by execution_id. kNotFound.
  virtual Result<ExecutionRow> get_execution(const std::string& id_or_execution_id) = 0;
  // One page, newest first, by keyset (started_at, id): rows inserted meanwhile never shift
  // later pages, and every row that matches the filters throughout is returned exactly once
  // across the pages. A cursor is opaque; it is only meaningful with the same filters.
  // kInvalidArgument for a limit outside 1..ExecutionQuery::kMaxLimit or a malformed cursor.
  virtual Result<ExecutionPage> query_executions(const ExecutionQuery& query) = 0;
  // The newest execution that produced `snapshot_id` (hex, any case). kNotFound.
  virtual Result<ExecutionRow> find_execution_by_snapshot(const std::string& snapshot_id) = 0;
  // At server start: every backup execution and restore operation still pending or running,
  // except those whose server_instance is `except_instance` (the starting server's own), becomes
  // interrupted, completed_at = now, with an error_message saying the server stopped while it
  // ran. Returns how many rows changed (executions and restores together).
  virtual Result<int64_t> mark_interrupted(const std::string& except_instance) = 0;
  // The completed execution of the policy with the newest started_at; nullopt if it has none.
  // kNotFound for an unknown policy.
  virtual Result<std::optional<ExecutionRow>> last_successful_execution(
      const std::string& policy_id) = 0;

  // ---- Restore operations ----
  // Like create_execution: new id, created_at = now, started_at = now if 0, request_id
  // generated if empty. kNotFound if source_backup_id names no execution; kAlreadyExists if
  // request_id is taken.
  virtual Result<RestoreRow> create_restore(const RestoreRow& row) = 0;
  // Replaces the restore with id row.id; id, request_id and created_at are kept. kNotFound.
  virtual Status update_restore(const RestoreRow& row) = 0;
  // By id or by request_id. kNotFound.
  virtual Result<RestoreRow> get_restore(const std::string& id_or_request_id) = 0;

  // Per policy: executions by status, the bytes of completed ones, and their durations as a
  // histogram (for /metrics). Rows of every policy that has executions.
  static constexpr std::array<int64_t, 9> kDurationBuckets = {10, 30, 60, 300, 900, 1800,
                                                              3600, 14400, 86400};  // seconds
  struct ExecutionStats {
    std::string policy_id;
    std::map<ExecStatus, int64_t> by_status;
    int64_t bytes_completed = 0;  // backup_size_bytes of completed runs, together
    // completed runs with a duration: cumulative counts per kDurationBuckets (<= bound), their
    // count and the sum of their durations
    std::array<int64_t, kDurationBuckets.size()> duration_le{};
    int64_t duration_count = 0;
    int64_t duration_sum = 0;
  };
  virtual Result<std::vector<ExecutionStats>> execution_stats() = 0;

  // What restores from a repository achieved: the newest `last_n` completed restores of
  // executions whose backup_location is `backup_location` that restored data.
  struct RestoreThroughput {
    double bytes = 0;    // restored, together
    double seconds = 0;  // their durations (started_at to completed_at), together
    int restores = 0;
  };
  virtual Result<RestoreThroughput> restore_throughput(const std::string& backup_location,
                                                       int last_n) = 0;
  // The newest completed restore of one of the policy's executions; nullopt if none.
  virtual Result<std::optional<RestoreRow>> last_completed_restore(
      const std::string& policy_id) = 0;

  // ---- Events (the server-sent-events log) ----
  // Appends the event (time = now if 0) and returns its id, greater than every id before.
  virtual Result<int64_t> append_event(const EventRow& row) = 0;
  // Events with id > after_id, ascending, at most `limit` (1..kMaxEventBatch).
  static constexpr int kMaxEventBatch = 10000;
  virtual Result<std::vector<EventRow>> events_after(int64_t after_id, int limit) = 0;
  // Deletes events older than `time`; returns how many.
  virtual Result<int64_t> prune_events_before(TimeNs time) = 0;
  // Deletes all but the newest `keep` events (keep >= 0); returns how many.
  virtual Result<int64_t> prune_events_keep_last(int64_t keep) = 0;

  // ---- API tokens ----
  // `token_hash` is a hash of the token (the server's choice, e.g. hex SHA-256); the catalog
  // never sees a clear token. kAlreadyExists if an unrevoked token has this name (a revoked
  // token's name may be used again; the revoked row stays for the record) or the hash is taken.
  virtual Result<TokenRow> create_token(const std::string& name, Role role,
                                        const std::string& token_hash) = 0;
  // The unrevoked token with this hash. kNotFound if none (unknown or revoked).
  virtual Result<TokenRow> find_token_by_hash(const std::string& token_hash) = 0;
  // Every token, revoked ones included, by name then id.
  virtual Result<std::vector<TokenRow>> list_tokens() = 0;
  // Revokes the unrevoked token with this name (revoked_at = now). kNotFound if none.
  virtual Status revoke_token(const std::string& name) = 0;
  // Sets last_used_at. A write: callers on a hot path should do it at most once a minute per
  // token. kNotFound for an unknown id.
  virtual Status touch_token(int64_t id, TimeNs time) = 0;

  // ---- Monitors (backup_monitoring) ----
  // Inserts the monitor, or replaces the one with the same monitor_name (keeping its id,
  // created_at and latest result); updated_at = now. Returns the stored row.
  virtual Result<MonitorRow> upsert_monitor(const MonitorRow& row) = 0;
  virtual Result<MonitorRow> get_monitor(const std::string& id_or_name) = 0;  // kNotFound
  virtual Result<std::vector<MonitorRow>> list_monitors() = 0;                // by name
  // Deletes the monitor; its alerts keep their history (monitor_id becomes NULL). kNotFound.
  virtual Status delete_monitor(const std::string& id) = 0;
  // Records a check's outcome: last_check, current_status and last_result. kNotFound.
  virtual Status record_monitor_result(const std::string& id, TimeNs at, HealthStatus status,
                                       const nlohmann::json& result) = 0;

  // ---- Alerts ----
  struct Raised {
    AlertRow alert;
    bool created = false;  // false: an unresolved alert with the key existed and was updated
    bool worse = false;    // it existed at warning and is critical now
  };
  // Raises the alert row.alert_key: if one with that key is unresolved (open or acknowledged),
  // its severity, summary, details and last_seen_at (now) are updated; otherwise a new alert
  // is opened (opened_at = last_seen_at = now, state open, level 0). One transaction.
  virtual Result<Raised> raise_alert(const AlertRow& row) = 0;
  virtual Result<AlertRow> get_alert(const std::string& id) = 0;  // kNotFound
  // The unresolved alert with this key, if any.
  virtual Result<std::optional<AlertRow>> find_unresolved_alert(const std::string& key) = 0;
  // Unresolved alerts (open and acknowledged), oldest first; or, with `unresolved_only` false,
  // the newest `limit` alerts of any state, newest first. limit 1..1000.
  virtual Result<std::vector<AlertRow>> list_alerts(bool unresolved_only, int limit) = 0;
  // Replaces the alert's state, severity, summary, details, times and escalation (alert_key and
  // opened_at are kept). kNotFound.
  virtual Status update_alert(const AlertRow& row) = 0;
  // The changes made while others may change the same row (another process acknowledging, the
  // server escalating), each one conditional UPDATE:
  // An open alert becomes acknowledged (by, at). kNotFound; kAlreadyExists (a conflict) if it
  // is acknowledged or resolved already.
  virtual Result<AlertRow> acknowledge_alert(const std::string& id, const std::string& by,
                                             TimeNs at) = 0;
  // An open alert below `level` is raised to it (escalated_at = at). False if it is not open
  // (acknowledged or resolved meanwhile) or already there.
  virtual Result<bool> escalate_alert(const std::string& id, int level, TimeNs at) = 0;
  // An unresolved alert becomes resolved at `at`, `details` merged into its details. The
  // resolved row, or nullopt if it was resolved already. kNotFound.
  virtual Result<std::optional<AlertRow>> resolve_alert(const std::string& id, TimeNs at,
                                                        const nlohmann::json& details) = 0;

  // ---- Notifications (the alerts' outbox) ----
  // Inserts the notification unless one with the same (alert_id, channel, action,
  // escalation_level) exists; returns the stored row, new or old (the old one unchanged).
  // next_attempt_at 0 means now. kNotFound for an unknown alert.
  virtual Result<NotificationRow> enqueue_notification(const NotificationRow& row) = 0;
  // Pending notifications with next_attempt_at <= `time`, oldest first, at most `limit`.
  virtual Result<std::vector<NotificationRow>> due_notifications(TimeNs time, int limit) = 0;
  // Writes state, attempts, next_attempt_at, delivered_at and last_error. kNotFound.
  virtual Status update_notification(const NotificationRow& row) = 0;
  // The same, only if the stored row is still pending; false if it is not (it was failed
  // meanwhile: its alert resolved while it was being sent).
  virtual Result<bool> update_pending_notification(const NotificationRow& row) = 0;
  // Every notification of an alert, by id.
  virtual Result<std::vector<NotificationRow>> notifications_of(const std::string& alert_id) = 0;

  // ---- Audit log ----
  // Appends a record at the end of the chain in one transaction: seq = the last seq + 1,
  // prev_hash = the last record's hash (64 zeros for the first), hash = audit_hash(row)
  // (catalog/audit.h); time = now if 0. Returns the stored record.
  // ---- replication_regions ----
  // Records what the replicator measured; the state (and who set it) is left as it is. A
  // region not yet recorded is created active.
  virtual Status record_replication(const ReplicationRow& row) = 0;
  // Sets a region's state (pause, resume, stop); creates its row if needed.
  virtual Result<ReplicationRow> set_replication_state(const std::string& location,
                                                       const std::string& region,
                                                       ReplicationState state,
                                                       const std::string& by, TimeNs at) = 0;
  virtual Result<std::vector<ReplicationRow>> list_replication() = 0;  // by location, region

  // ---- disaster_recovery_plans ----
  // Inserts the plan, or replaces the one with the same name (keeping its id, created_at and
  // last_tested); updated_at = now. Returns the stored row.
  virtual Result<DrPlanRow> upsert_dr_plan(const DrPlanRow& row) = 0;
  virtual Result<DrPlanRow> get_dr_plan(const std::string& id_or_name) = 0;  // kNotFound
  virtual Result<std::vector<DrPlanRow>> list_dr_plans() = 0;                 // by name
  // Deletes the plan and its executions (ON DELETE CASCADE). kNotFound.
  virtual Status delete_dr_plan(const std::string& id) = 0;
  virtual Status set_dr_plan_tested(const std::string& id, TimeNs at) = 0;  // kNotFound

  // ---- disaster_recovery_executions ----
  // Inserts with a new id; started_at = now if 0. kNotFound if plan_id names no plan.
  virtual Result<DrExecutionRow> create_dr_execution(const DrExecutionRow& row) = 0;
  // Replaces the execution with id row.id (plan_id and the approval are kept). kNotFound.
  virtual Status update_dr_execution(const DrExecutionRow& row) = 0;
  virtual Result<DrExecutionRow> get_dr_execution(const std::string& id) = 0;  // kNotFound
  // Newest first; `plan_id` "" for every plan; limit 1..1000.
  virtual Result<std::vector<DrExecutionRow>> list_dr_executions(const std::string& plan_id,
                                                                 int limit) = 0;
  // An execution waiting for approval becomes approved or rejected (by, at): one conditional
  // UPDATE. kNotFound; kAlreadyExists (a conflict) if it is not waiting any more;
  // kPermissionDenied if `by` is who asked for it (a second principal must decide).
  virtual Result<DrExecutionRow> decide_dr_approval(const std::string& id, bool approve,
                                                    const std::string& by, TimeNs at) = 0;
  // Executions still running that a server ran (server_instance set) and whose server_instance
  // is not `except_instance` become
  // interrupted (completed_at = now, error_message says so). Returns how many.
  virtual Result<int64_t> mark_dr_interrupted(const std::string& except_instance) = 0;

  virtual Result<AuditRow> append_audit(const AuditRow& row) = 0;
  // Records with seq > after_seq and time >= since, ascending by seq, at most `limit`
  // (1..kMaxEventBatch).
  virtual Result<std::vector<AuditRow>> audit_records(int64_t after_seq, TimeNs since,
                                                      int limit) = 0;
  // The last record's seq (0 for an empty log).
  virtual Result<int64_t> audit_length() = 0;
};

// The checks every implementation applies before it writes a row; callers (the server's
// request validation) may run them early. kInvalidArgument naming the field and the rule.
Status validate(const PolicyRow& row);
Status validate(const LocationRow& row);
Status validate(const ExecutionRow& row);
Status validate(const RestoreRow& row);
Status validate(const EventRow& row);
Status validate_token(const std::string& name, const std::string& token_hash);
Status validate(const MonitorRow& row);
Status validate(const AlertRow& row);

// A snapshot ID as the catalog stores it: lower-case hex, 1 to 64 digits. nullopt if `hex` is
// empty, longer, or not hex.
std::optional<std::string> normalize_snapshot_id(const std::string& hex);

struct SqliteOptions {
  // Read connections: how many reads run at once; more readers wait for a free one.
  int read_connections = 4;
  // How long a statement waits for a lock another process holds before kTransient.
  std::chrono::milliseconds busy_timeout{5000};
  // The time the catalog stamps rows with (tests inject one).
  std::function<TimeNs()> clock = [] { return haven::now(); };
};

// Opens (creating it if absent) the SQLite catalog at `path` and brings its schema to the
// version this binary knows, migrating an older one in one transaction.
//
// Errors: kInvalidArgument (empty path, a directory, a SQLite database that is not a Haven
// catalog), kNotFound (the parent directory does not exist), kPermissionDenied, kCorrupt (not
// a SQLite database, or damaged), kUnsupported (the catalog was written by a newer Haven: its
// schema version is above this binary's), each naming the file.
//
// The SQLite catalog:
//  * WAL journal, synchronous=FULL: a commit is in the WAL on disk before it returns, so a
//    process killed at any point loses no committed row, and a power cut none either (a
//    revoked token must stay revoked; writes are a few per job, and a commit's fsync took
//    0.4 to 2 ms here).
//  * A new file is created with mode 0600 (it holds token hashes and storage addresses).
//  * foreign_keys=ON on every connection; busy_timeout from the options.
//  * Threads: one writer connection behind a mutex (every write is one IMMEDIATE
//    transaction) and a pool of read connections (query_only). WAL lets readers run while the
//    writer writes, so a read never waits behind a write; a reader waits only for a free read
//    connection. Multi-statement reads run in one read transaction (one snapshot).
//  * Times are INTEGER nanoseconds since the Unix epoch, UTC (exact TimeNs); IDs are TEXT
//    UUIDs; JSON and arrays are TEXT holding JSON (checked by json_valid); enumerations are
//    TEXT with CHECK constraints. The schema is catalog/schema.cc.
Result<std::unique_ptr<Catalog>> open_sqlite_catalog(const std::string& path,
                                                     const SqliteOptions& options = {});

}  // namespace haven::catalog

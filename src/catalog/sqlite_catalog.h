// catalog/sqlite_catalog.h — the SQLite implementation of catalog::Catalog. Callers use
// open_sqlite_catalog() (catalog.h) and the Catalog interface; this header is for the
// implementation and its tests (connection settings, the query plans).
//
// Connections (see open_sqlite_catalog in catalog.h for the whole contract):
//   * one writer connection, guarded by write_mu_; every write method is one BEGIN IMMEDIATE
//     transaction on it, so writers in this process queue on the mutex, never on SQLITE_BUSY;
//   * a pool of read connections (PRAGMA query_only), each lent to one thread at a time. In WAL
//     mode a reader sees the last commit made before its read began and never waits for the
//     writer, nor the writer for it.
// Another process writing the same file (a second server, the sqlite3 shell) is waited for up
// to the busy timeout.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/sqlite.h"

namespace haven::catalog {

// The SQL query_executions runs, by which filters are set (`upper`: a cursor or `to`). Its
// parameters: ?1 policy_id, ?2 status, ?3 from, ?4/?5 the upper bound (started_at, id) that
// rows must be below, ?6 the limit. Exposed so that tests can check its query plan.
std::string execution_query_sql(bool policy, bool status, bool from, bool upper);

class SqliteCatalog final : public Catalog {
 public:
  // Use open_sqlite_catalog().
  static Result<std::unique_ptr<SqliteCatalog>> open(const std::string& path,
                                                     const SqliteOptions& options);
  ~SqliteCatalog() override;

  Result<PolicyRow> create_policy(const PolicyRow& row) override;
  Result<PolicyRow> update_policy(const PolicyRow& row) override;
  Result<PolicyRow> get_policy(const std::string& id) override;
  Result<PolicyRow> get_policy_by_name(const std::string& name) override;
  Result<std::vector<PolicyRow>> list_policies() override;
  Status delete_policy(const std::string& id) override;
  Status set_policy_schedule_times(const std::string& id, std::optional<TimeNs> last_execution,
                                   std::optional<TimeNs> next_execution) override;

  Result<LocationRow> upsert_location(const LocationRow& row) override;
  Result<LocationRow> get_location(const std::string& id) override;
  Result<LocationRow> get_location_by_name(const std::string& name) override;
  Result<std::vector<LocationRow>> list_locations() override;
  Status set_location_health(const std::string& name, TimeNs at, HealthStatus status) override;

  Result<ExecutionRow> create_execution(const ExecutionRow& row) override;
  Status update_execution(const ExecutionRow& row) override;
  Result<ExecutionRow> get_execution(const std::string& id_or_execution_id) override;
  Result<ExecutionPage> query_executions(const ExecutionQuery& query) override;
  Result<ExecutionRow> find_execution_by_snapshot(const std::string& snapshot_id) override;
  Result<int64_t> mark_interrupted(const std::string& except_instance) override;
  Result<std::optional<ExecutionRow>> last_successful_execution(
      const std::string& policy_id) override;

  Result<RestoreRow> create_restore(const RestoreRow& row) override;
  Status update_restore(const RestoreRow& row) override;
  Result<RestoreRow> get_restore(const std::string& id_or_request_id) override;

  Result<std::vector<ExecutionStats>> execution_stats() override;
  Result<RestoreThroughput> restore_throughput(const std::string& backup_location,
                                               int last_n) override;
  Result<std::optional<RestoreRow>> last_completed_restore(const std::string& policy_id) override;

  Result<int64_t> append_event(const EventRow& row) override;
  Result<std::vector<EventRow>> events_after(int64_t after_id, int limit) override;
  Result<int64_t> prune_events_before(TimeNs time) override;
  Result<int64_t> prune_events_keep_last(int64_t keep) override;

  Result<TokenRow> create_token(const std::string& name, Role role,
                                const std::string& token_hash) override;
  Result<TokenRow> find_token_by_hash(const std::string& token_hash) override;
  Result<std::vector<TokenRow>> list_tokens() override;
  Status revoke_token(const std::string& name) override;
  Status touch_token(int64_t id, TimeNs time) override;

  Result<MonitorRow> upsert_monitor(const MonitorRow& row) override;
  Result<MonitorRow> get_monitor(const std::string& id_or_name) override;
  Result<std::vector<MonitorRow>> list_monitors() override;
  Status delete_monitor(const std::string& id) override;
  Status record_monitor_result(const std::string& id, TimeNs at, HealthStatus status,
                               const nlohmann::json& result) override;

  Result<Raised> raise_alert(const AlertRow& row) override;
  Result<AlertRow> get_alert(const std::string& id) override;
  Result<std::optional<AlertRow>> find_unresolved_alert(const std::string& key) override;
  Result<std::vector<AlertRow>> list_alerts(bool unresolved_only, int limit) override;
  Status update_alert(const AlertRow& row) override;
  Result<AlertRow> acknowledge_alert(const std::string& id, const std::string& by, TimeNs at) override;
  Result<bool> escalate_alert(const std::string& id, int level, TimeNs at) override;
  Result<std::optional<AlertRow>> resolve_alert(const std::string& id, TimeNs at,
                                                const nlohmann::json& details) override;

  Result<NotificationRow> enqueue_notification(const NotificationRow& row) override;
  Result<std::vector<NotificationRow>> due_notifications(TimeNs time, int limit) override;
  Status update_notification(const NotificationRow& row) override;
  Result<bool> update_pending_notification(const NotificationRow& row) override;
  Result<std::vector<NotificationRow>> notifications_of(const std::string& alert_id) override;

  Status record_replication(const ReplicationRow& row) override;
  Result<ReplicationRow> set_replication_state(const std::string& location,
                                               const std::string& region, ReplicationState state,
                                               const std::string& by, TimeNs at) override;
  Result<std::vector<ReplicationRow>> list_replication() override;
  Result<DrPlanRow> upsert_dr_plan(const DrPlanRow& row) override;
  Result<DrPlanRow> get_dr_plan(const std::string& id_or_name) override;
  Result<std::vector<DrPlanRow>> list_dr_plans() override;
  Status delete_dr_plan(const std::string& id) override;
  Status set_dr_plan_tested(const std::string& id, TimeNs at) override;
  Result<DrExecutionRow> create_dr_execution(const DrExecutionRow& row) override;
  Status update_dr_execution(const DrExecutionRow& row) override;
  Result<DrExecutionRow> get_dr_execution(const std::string& id) override;
  Result<std::vector<DrExecutionRow>> list_dr_executions(const std::string& plan_id,
                                                         int limit) override;
  Result<DrExecutionRow> decide_dr_approval(const std::string& id, bool approve,
                                            const std::string& by, TimeNs at) override;
  Result<int64_t> mark_dr_interrupted(const std::string& except_instance) override;

  Result<AuditRow> append_audit(const AuditRow& row) override;
  Result<std::vector<AuditRow>> audit_records(int64_t after_seq, TimeNs since, int limit) override;
  Result<int64_t> audit_length() override;

  // For tests: the integer value of `PRAGMA <name>` on the writer connection or on a reader.
  Result<int64_t> connection_pragma(bool writer, const std::string& name);

 private:
  // Read connections, each lent to one thread at a time.
  class ReaderPool {
   public:
    class Lease {
     public:
      Lease(ReaderPool* pool, sqlite::Db* db) : pool_(pool), db_(db) {}
      Lease(const Lease&) = delete;
      ~Lease() { pool_->give_back(db_); }
      sqlite::Db& db() { return *db_; }

     private:
      ReaderPool* pool_;
      sqlite::Db* db_;
    };
    Status open(const std::string& path, int count, int busy_timeout_ms);
    Lease acquire();  // waits for a free connection

   private:
    void give_back(sqlite::Db* db);
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<sqlite::Db>> all_;
    std::vector<sqlite::Db*> free_;
  };

  SqliteCatalog(std::string path, SqliteOptions options)
      : path_(std::move(path)), options_(std::move(options)) {}

  // Runs `body(db)` on the writer inside one IMMEDIATE transaction; commits if it succeeded.
  template <typename F>
  auto write(F&& body) -> std::invoke_result_t<F, sqlite::Db&>;
  // Runs `body(db)` on a read connection; `snapshot`: inside one read transaction.
  template <typename F>
  auto read(F&& body, bool snapshot = false) -> std::invoke_result_t<F, sqlite::Db&>;

  TimeNs now() const { return options_.clock(); }

  std::string path_;
  SqliteOptions options_;
  std::mutex write_mu_;
  std::unique_ptr<sqlite::Db> writer_;
  ReaderPool readers_;
};

}  // namespace haven::catalog

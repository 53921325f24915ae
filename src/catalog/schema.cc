#include "catalog/schema.h"

#include <string>

namespace haven::catalog {
namespace {

// The DEFAULT for time columns written by hand (sqlite3 shell, a future step): now, in
// nanoseconds since the epoch (millisecond precision; the catalog itself always sets times).
#define HAVEN_NOW_NS "(CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) * 1000000)"
#define HAVEN_BOOL(col) " INTEGER NOT NULL DEFAULT 1 CHECK (" col " IN (0, 1))"
#define HAVEN_JSON(col) " TEXT CHECK (" col " IS NULL OR json_valid(" col "))"
#define HAVEN_JSON_ARRAY(col) \
  " TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(" col ") AND json_type(" col ") = 'array')"
#define HAVEN_STATUS(col)                                                                 \
  " TEXT NOT NULL DEFAULT 'pending' CHECK (" col " IN ('pending', 'running', 'completed', " \
  "'failed', 'cancelled', 'interrupted', 'skipped'))"
#define HAVEN_HEX(col)                                                             \
  " TEXT CHECK (" col " IS NULL OR (length(" col ") BETWEEN 1 AND 64 AND " col \
  " NOT GLOB '*[^0-9a-f]*'))"

// Version 1: seed 004's seven tables, with Haven's columns, and the indexes of the queries the
// catalog runs.
//  * backup_executions is read newest first by (started_at, id), alone or after an equality on
//    policy_id, status or both: one index for each, so each page is an index range scan (no
//    temporary B-tree for the ORDER BY, no OFFSET).
//  * Every foreign key's child columns are indexed, so deleting a parent (a policy cascading to
//    its executions, an execution setting restores' source_backup_id to NULL) never scans.
//  * restore_operations.source_backup_id is ON DELETE SET NULL (the seed has no action, which
//    would make deleting a policy fail once one of its executions was restored from).
constexpr const char* kV1 =
    "CREATE TABLE backup_storage_locations ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL UNIQUE CHECK (name <> ''),"
    " description TEXT,"
    " storage_type TEXT NOT NULL CHECK (storage_type IN ('s3', 'azure_blob', 'gcp_storage',"
    "   'on_premise', 'hybrid')),"
    " primary_region TEXT NOT NULL,"
    " secondary_regions" HAVEN_JSON_ARRAY("secondary_regions") ","
    " connection_config TEXT NOT NULL CHECK (json_valid(connection_config)),"
    " storage_class TEXT NOT NULL DEFAULT 'standard',"
    " total_capacity_gb INTEGER,"
    " used_capacity_gb INTEGER NOT NULL DEFAULT 0,"
    " max_throughput_mbps INTEGER,"
    " encryption_at_rest" HAVEN_BOOL("encryption_at_rest") ","
    " encryption_in_transit" HAVEN_BOOL("encryption_in_transit") ","
    " access_controls" HAVEN_JSON("access_controls") ","
    " data_residency_requirements" HAVEN_JSON_ARRAY("data_residency_requirements") ","
    " compliance_certifications" HAVEN_JSON_ARRAY("compliance_certifications") ","
    " is_active" HAVEN_BOOL("is_active") ","
    " last_health_check INTEGER,"
    " health_status TEXT NOT NULL DEFAULT 'healthy' CHECK (health_status IN ('healthy',"
    "   'warning', 'critical', 'unknown')),"
    " created_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " updated_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS
    ") STRICT;"

    "CREATE TABLE backup_policies ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL UNIQUE CHECK (name <> ''),"
    " description TEXT,"
    " resource_type TEXT NOT NULL CHECK (resource_type IN ('database', 'files', 'configuration',"
    "   'application', 'full_system')),"
    " resource_filters" HAVEN_JSON("resource_filters") ","
    " schedule_cron TEXT NOT NULL,"  // '' for a policy without a schedule
    " timezone TEXT NOT NULL DEFAULT 'UTC',"
    " retention_daily INTEGER NOT NULL DEFAULT 7 CHECK (retention_daily >= 0),"
    " retention_weekly INTEGER NOT NULL DEFAULT 4 CHECK (retention_weekly >= 0),"
    " retention_monthly INTEGER NOT NULL DEFAULT 12 CHECK (retention_monthly >= 0),"
    " retention_yearly INTEGER NOT NULL DEFAULT 7 CHECK (retention_yearly >= 0),"
    " backup_type TEXT NOT NULL DEFAULT 'incremental' CHECK (backup_type IN ('full',"
    "   'incremental', 'differential', 'snapshot')),"
    " compression_enabled" HAVEN_BOOL("compression_enabled") ","
    " encryption_enabled" HAVEN_BOOL("encryption_enabled") ","
    " max_parallel_jobs INTEGER NOT NULL DEFAULT 2 CHECK (max_parallel_jobs >= 1),"
    " bandwidth_limit_mbps INTEGER,"
    " is_active" HAVEN_BOOL("is_active") ","
    " last_execution INTEGER,"
    " next_execution INTEGER,"
    " created_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " updated_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " source TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('config', 'api')),"
    " spec TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(spec)),"
    " location_id TEXT REFERENCES backup_storage_locations(id)"
    ") STRICT;"
    "CREATE INDEX backup_policies_location ON backup_policies(location_id)"
    " WHERE location_id IS NOT NULL;"

    "CREATE TABLE backup_executions ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " policy_id TEXT REFERENCES backup_policies(id) ON DELETE CASCADE,"
    " execution_id TEXT NOT NULL UNIQUE CHECK (execution_id <> ''),"
    " backup_type TEXT NOT NULL CHECK (backup_type IN ('full', 'incremental', 'differential',"
    "   'snapshot')),"
    " status" HAVEN_STATUS("status") ","
    " started_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " completed_at INTEGER,"
    " backup_size_bytes INTEGER,"
    " compressed_size_bytes INTEGER,"
    " files_backed_up INTEGER,"
    " duration_seconds INTEGER,"
    " transfer_rate_mbps REAL,"
    " backup_location TEXT NOT NULL,"
    " storage_class TEXT NOT NULL DEFAULT 'standard',"
    " integrity_check_status TEXT CHECK (integrity_check_status IS NULL OR"
    "   integrity_check_status IN ('pending', 'passed', 'failed', 'skipped')),"
    " integrity_check_completed_at INTEGER,"
    " error_message TEXT,"
    " retry_count INTEGER NOT NULL DEFAULT 0 CHECK (retry_count >= 0),"
    " created_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " snapshot_id" HAVEN_HEX("snapshot_id") ","
    " \"trigger\" TEXT NOT NULL DEFAULT 'manual' CHECK (\"trigger\" IN ('schedule', 'manual',"
    "   'catch_up', 'cli', 'retry', 'rebuild')),"
    " priority TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('normal', 'high')),"
    " scheduled_for INTEGER,"
    " server_instance TEXT"
    ") STRICT;"
    "CREATE INDEX backup_executions_by_time ON backup_executions(started_at, id);"
    "CREATE INDEX backup_executions_by_policy ON backup_executions(policy_id, started_at, id);"
    "CREATE INDEX backup_executions_by_status ON backup_executions(status, started_at, id);"
    "CREATE INDEX backup_executions_by_policy_status"
    " ON backup_executions(policy_id, status, started_at, id);"
    "CREATE INDEX backup_executions_by_snapshot ON backup_executions(snapshot_id, started_at)"
    " WHERE snapshot_id IS NOT NULL;"

    "CREATE TABLE restore_operations ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " request_id TEXT NOT NULL UNIQUE CHECK (request_id <> ''),"
    " restore_type TEXT NOT NULL CHECK (restore_type IN ('full_restore', 'partial_restore',"
    "   'point_in_time', 'file_recovery')),"
    " source_backup_id TEXT REFERENCES backup_executions(id) ON DELETE SET NULL,"
    " point_in_time INTEGER,"
    " target_location TEXT NOT NULL,"
    " restore_scope" HAVEN_JSON("restore_scope") ","
    " restore_options" HAVEN_JSON("restore_options") ","
    " overwrite_existing INTEGER NOT NULL DEFAULT 0 CHECK (overwrite_existing IN (0, 1)),"
    " status" HAVEN_STATUS("status") ","
    " started_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " completed_at INTEGER,"
    " data_restored_gb REAL,"
    " duration_seconds INTEGER,"
    " restore_rate_mbps REAL,"
    " integrity_validated INTEGER NOT NULL DEFAULT 0 CHECK (integrity_validated IN (0, 1)),"
    " validation_results" HAVEN_JSON("validation_results") ","
    " requested_by TEXT,"  // auth.users in the seed: kept as text, no foreign key
    " approved_by TEXT,"
    " error_message TEXT,"
    " retry_count INTEGER NOT NULL DEFAULT 0 CHECK (retry_count >= 0),"
    " created_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " snapshot_id" HAVEN_HEX("snapshot_id") ","
    " request TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(request)),"
    " server_instance TEXT"
    ") STRICT;"
    "CREATE INDEX restore_operations_source ON restore_operations(source_backup_id)"
    " WHERE source_backup_id IS NOT NULL;"
    "CREATE INDEX restore_operations_by_status ON restore_operations(status);"

    "CREATE TABLE backup_monitoring ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " monitor_name TEXT NOT NULL,"
    " monitor_type TEXT NOT NULL CHECK (monitor_type IN ('backup_success', 'storage_capacity',"
    "   'restore_capability', 'integrity_check')),"
    " resource_filters" HAVEN_JSON("resource_filters") ","
    " check_frequency_minutes INTEGER NOT NULL DEFAULT 15 CHECK (check_frequency_minutes >= 1),"
    " warning_threshold" HAVEN_JSON("warning_threshold") ","
    " critical_threshold" HAVEN_JSON("critical_threshold") ","
    " alert_channels" HAVEN_JSON_ARRAY("alert_channels") ","
    " escalation_policy" HAVEN_JSON("escalation_policy") ","
    " is_active" HAVEN_BOOL("is_active") ","
    " last_check INTEGER,"
    " current_status TEXT NOT NULL DEFAULT 'healthy' CHECK (current_status IN ('healthy',"
    "   'warning', 'critical', 'unknown')),"
    " created_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " updated_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS
    ") STRICT;"

    "CREATE TABLE disaster_recovery_plans ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL UNIQUE CHECK (name <> ''),"
    " description TEXT NOT NULL,"
    " plan_type TEXT NOT NULL CHECK (plan_type IN ('hot_site', 'warm_site', 'cold_site',"
    "   'cloud_failover', 'data_only')),"
    " rto_hours REAL NOT NULL CHECK (rto_hours >= 0),"
    " rpo_minutes INTEGER NOT NULL CHECK (rpo_minutes >= 0),"
    " recovery_steps TEXT NOT NULL CHECK (json_valid(recovery_steps)),"
    " prerequisite_checks" HAVEN_JSON("prerequisite_checks") ","
    " post_recovery_validation" HAVEN_JSON("post_recovery_validation") ","
    " required_infrastructure" HAVEN_JSON("required_infrastructure") ","
    " required_personnel" HAVEN_JSON_ARRAY("required_personnel") ","
    " estimated_cost REAL,"
    " is_active" HAVEN_BOOL("is_active") ","
    " last_tested INTEGER,"
    " test_frequency_days INTEGER NOT NULL DEFAULT 90 CHECK (test_frequency_days >= 1),"
    " approved_by TEXT,"
    " approved_at INTEGER,"
    " created_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " updated_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS
    ") STRICT;"

    "CREATE TABLE disaster_recovery_executions ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " plan_id TEXT REFERENCES disaster_recovery_plans(id) ON DELETE CASCADE,"
    " execution_type TEXT NOT NULL CHECK (execution_type IN ('disaster_recovery',"
    "   'planned_test', 'drill', 'validation')),"
    " trigger_reason TEXT,"
    " status" HAVEN_STATUS("status") ","
    " started_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " completed_at INTEGER,"
    " actual_rto_hours REAL,"
    " actual_rpo_minutes INTEGER,"
    " data_loss_amount REAL,"
    " executed_steps" HAVEN_JSON("executed_steps") ","
    " failed_steps" HAVEN_JSON("failed_steps") ","
    " success_criteria_met INTEGER CHECK (success_criteria_met IS NULL OR"
    "   success_criteria_met IN (0, 1)),"
    " validation_results" HAVEN_JSON("validation_results") ","
    " executed_by TEXT,"
    " team_members" HAVEN_JSON_ARRAY("team_members") ","
    " execution_log TEXT,"
    " lessons_learned TEXT,"
    " improvement_recommendations TEXT,"
    " created_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS
    ") STRICT;"
    "CREATE INDEX disaster_recovery_executions_by_plan"
    " ON disaster_recovery_executions(plan_id, started_at);";

// Version 2: what the server adds.
//  * events.id is AUTOINCREMENT so an id is never handed out twice, even after the newest
//    events were pruned: a server-sent-events client's Last-Event-ID stays meaningful.
//  * api_tokens: a name is unique among unrevoked tokens (a partial index), so a revoked
//    token's row stays for the record and its name can be given to a new token.
constexpr const char* kV2 =
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " time INTEGER NOT NULL,"
    " operation_id TEXT,"
    " kind TEXT NOT NULL CHECK (kind <> ''),"
    " payload TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload))"
    ") STRICT;"
    "CREATE INDEX events_by_time ON events(time);"

    "CREATE TABLE api_tokens ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL CHECK (name <> ''),"
    " role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),"
    " token_hash TEXT NOT NULL UNIQUE CHECK (token_hash <> ''),"
    " created_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " last_used_at INTEGER,"
    " revoked_at INTEGER"
    ") STRICT;"
    "CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens(name) WHERE revoked_at IS NULL;";

// Version 3: monitoring.
//  * backup_monitoring is rebuilt, its rows kept: the monitor types Haven adds to the seed's
//    four, a unique name (monitors are configured by name, in haven.yaml and over the API),
//    where it comes from, and the latest result.
//  * alerts: an alert_key is unique among unresolved alerts (a partial index), which is what
//    deduplicates them; resolved ones stay for the record.
//  * alert_notifications is the outbox: (alert, channel, action, level) is unique, so a
//    notification is enqueued once however often it is asked for, and sent until delivered.
//  * audit_log is append-only in use; its hash chain (catalog/audit.h) makes any other change
//    visible. seq is the chain's order.
constexpr const char* kV3 =
    "CREATE TABLE backup_monitoring_v3 ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " monitor_name TEXT NOT NULL UNIQUE CHECK (monitor_name <> ''),"
    " monitor_type TEXT NOT NULL CHECK (monitor_type IN ('backup_success', 'storage_capacity',"
    "   'restore_capability', 'integrity_check', 'rpo', 'missed_schedule',"
    "   'backup_failure_rate', 'replication_lag')),"
    " resource_filters" HAVEN_JSON("resource_filters") ","
    " check_frequency_minutes INTEGER NOT NULL DEFAULT 15 CHECK (check_frequency_minutes >= 1),"
    " warning_threshold" HAVEN_JSON("warning_threshold") ","
    " critical_threshold" HAVEN_JSON("critical_threshold") ","
    " alert_channels" HAVEN_JSON_ARRAY("alert_channels") ","
    " escalation_policy" HAVEN_JSON("escalation_policy") ","
    " is_active" HAVEN_BOOL("is_active") ","
    " last_check INTEGER,"
    " current_status TEXT NOT NULL DEFAULT 'healthy' CHECK (current_status IN ('healthy',"
    "   'warning', 'critical', 'unknown')),"
    " created_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " updated_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " source TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('config', 'api')),"
    " last_result" HAVEN_JSON("last_result")
    ") STRICT;"
    // Rows written by hand before keep their columns (source api); names must be unique now, so
    // a catalog with two monitors of one name fails the migration, unchanged, saying so.
    "INSERT INTO backup_monitoring_v3 (id, monitor_name, monitor_type, resource_filters,"
    " check_frequency_minutes, warning_threshold, critical_threshold, alert_channels,"
    " escalation_policy, is_active, last_check, current_status, created_at, updated_at)"
    " SELECT id, monitor_name, monitor_type, resource_filters, check_frequency_minutes,"
    " warning_threshold, critical_threshold, alert_channels, escalation_policy, is_active,"
    " last_check, current_status, created_at, updated_at FROM backup_monitoring;"
    "DROP TABLE backup_monitoring;"
    "ALTER TABLE backup_monitoring_v3 RENAME TO backup_monitoring;"

    "CREATE TABLE alerts ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " alert_key TEXT NOT NULL CHECK (alert_key <> ''),"
    " kind TEXT NOT NULL CHECK (kind <> ''),"
    " monitor_id TEXT REFERENCES backup_monitoring(id) ON DELETE SET NULL,"
    " policy_id TEXT REFERENCES backup_policies(id) ON DELETE SET NULL,"
    " severity TEXT NOT NULL CHECK (severity IN ('warning', 'critical')),"
    " state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),"
    " summary TEXT NOT NULL,"
    " details TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details)),"
    " opened_at INTEGER NOT NULL,"
    " last_seen_at INTEGER NOT NULL,"
    " acknowledged_at INTEGER,"
    " acknowledged_by TEXT,"
    " resolved_at INTEGER,"
    " escalation_level INTEGER NOT NULL DEFAULT 0 CHECK (escalation_level >= 0),"
    " escalated_at INTEGER"
    ") STRICT;"
    "CREATE UNIQUE INDEX alerts_unresolved_key ON alerts(alert_key) WHERE state <> 'resolved';"
    "CREATE INDEX alerts_by_opened ON alerts(opened_at);"
    "CREATE INDEX alerts_by_monitor ON alerts(monitor_id);"
    "CREATE INDEX alerts_by_policy ON alerts(policy_id);"

    "CREATE TABLE alert_notifications ("
    " id INTEGER PRIMARY KEY,"
    " alert_id TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,"
    " channel TEXT NOT NULL CHECK (channel <> ''),"
    " action TEXT NOT NULL CHECK (action IN ('trigger', 'resolve')),"
    " escalation_level INTEGER NOT NULL CHECK (escalation_level >= 0),"
    " state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),"
    " attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),"
    " created_at INTEGER NOT NULL,"
    " next_attempt_at INTEGER NOT NULL,"
    " delivered_at INTEGER,"
    " last_error TEXT,"
    " UNIQUE (alert_id, channel, action, escalation_level)"
    ") STRICT;"
    "CREATE INDEX alert_notifications_due ON alert_notifications(state, next_attempt_at);"

    "CREATE TABLE audit_log ("
    " seq INTEGER PRIMARY KEY CHECK (seq >= 1),"
    " time INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL CHECK (action <> ''),"
    " target TEXT NOT NULL,"
    " details TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details)),"
    " prev_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL"
    ") STRICT;"
    "CREATE INDEX audit_log_by_time ON audit_log(time);";

// v4: each secondary region of a location, its state (pause, resume, stop: who and when) and
// what replication last measured there.
const char* const kV4 =
    "CREATE TABLE replication_regions ("
    " location TEXT NOT NULL CHECK (location <> ''),"
    " region TEXT NOT NULL CHECK (region <> ''),"
    " state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'stopped')),"
    " state_changed_at INTEGER,"
    " state_changed_by TEXT,"
    " status TEXT NOT NULL DEFAULT 'unknown'"
    "   CHECK (status IN ('ok', 'warning', 'critical', 'failed', 'unknown')),"
    " pending_objects INTEGER NOT NULL DEFAULT 0 CHECK (pending_objects >= 0),"
    " pending_bytes INTEGER NOT NULL DEFAULT 0 CHECK (pending_bytes >= 0),"
    " oldest_pending_at INTEGER,"
    " newest_snapshot_at INTEGER,"
    " last_pass_at INTEGER,"
    " last_success_at INTEGER,"
    " copied_objects INTEGER NOT NULL DEFAULT 0 CHECK (copied_objects >= 0),"
    " copied_bytes INTEGER NOT NULL DEFAULT 0 CHECK (copied_bytes >= 0),"
    " last_error TEXT,"
    " PRIMARY KEY (location, region)"
    ") STRICT;";

// v5: disaster recovery. The plans table is rebuilt (rows kept): priority, the objectives in
// seconds, the plan's whole definition, approval_required, where it came from, and a
// test_frequency_days of 0 (never on schedule). Executions gain the objectives and results in
// seconds, the approval (who asked, who decided), the running server and a drill's sandbox.
const char* const kV5 =
    "CREATE TABLE disaster_recovery_plans_v5 ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL UNIQUE CHECK (name <> ''),"
    " description TEXT NOT NULL,"
    " plan_type TEXT NOT NULL CHECK (plan_type IN ('hot_site', 'warm_site', 'cold_site',"
    "   'cloud_failover', 'data_only')),"
    " priority TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('critical', 'high', 'medium',"
    "   'low')),"
    " rto_hours REAL NOT NULL CHECK (rto_hours >= 0),"
    " rpo_minutes INTEGER NOT NULL CHECK (rpo_minutes >= 0),"
    " rto_seconds INTEGER NOT NULL DEFAULT 0 CHECK (rto_seconds >= 0),"
    " rpo_seconds INTEGER NOT NULL DEFAULT 0 CHECK (rpo_seconds >= 0),"
    " recovery_steps TEXT NOT NULL CHECK (json_valid(recovery_steps)),"
    " prerequisite_checks" HAVEN_JSON("prerequisite_checks") ","
    " post_recovery_validation" HAVEN_JSON("post_recovery_validation") ","
    " required_infrastructure" HAVEN_JSON("required_infrastructure") ","
    " required_personnel" HAVEN_JSON_ARRAY("required_personnel") ","
    " estimated_cost REAL,"
    " is_active" HAVEN_BOOL("is_active") ","
    " last_tested INTEGER,"
    " test_frequency_days INTEGER NOT NULL DEFAULT 90 CHECK (test_frequency_days >= 0),"
    " approval_required" HAVEN_BOOL("approval_required") ","
    " approved_by TEXT,"
    " approved_at INTEGER,"
    " definition TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(definition)),"
    " source TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('config', 'api')),"
    " created_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " updated_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS
    ") STRICT;"
    "INSERT INTO disaster_recovery_plans_v5 (id, name, description, plan_type, rto_hours,"
    " rpo_minutes, rto_seconds, rpo_seconds, recovery_steps, prerequisite_checks,"
    " post_recovery_validation, required_infrastructure, required_personnel, estimated_cost,"
    " is_active, last_tested, test_frequency_days, approved_by, approved_at, created_at,"
    " updated_at)"
    " SELECT id, name, description, plan_type, rto_hours, rpo_minutes,"
    " CAST(rto_hours * 3600 AS INTEGER), rpo_minutes * 60, recovery_steps, prerequisite_checks,"
    " post_recovery_validation, required_infrastructure, required_personnel, estimated_cost,"
    " is_active, last_tested, test_frequency_days, approved_by, approved_at, created_at,"
    " updated_at FROM disaster_recovery_plans;"
    "DROP TABLE disaster_recovery_plans;"
    "ALTER TABLE disaster_recovery_plans_v5 RENAME TO disaster_recovery_plans;"
    "ALTER TABLE disaster_recovery_executions ADD COLUMN plan_name TEXT;"
    "ALTER TABLE disaster_recovery_executions ADD COLUMN rto_target_seconds INTEGER;"
    "ALTER TABLE disaster_recovery_executions ADD COLUMN rpo_target_seconds INTEGER;"
    "ALTER TABLE disaster_recovery_executions ADD COLUMN actual_rto_seconds REAL;"
    "ALTER TABLE disaster_recovery_executions ADD COLUMN actual_rpo_seconds REAL;"
    "ALTER TABLE disaster_recovery_executions ADD COLUMN approval_status TEXT NOT NULL"
    " DEFAULT 'not_required' CHECK (approval_status IN ('not_required', 'pending', 'approved',"
    " 'rejected'));"
    "ALTER TABLE disaster_recovery_executions ADD COLUMN approved_by TEXT;"
    "ALTER TABLE disaster_recovery_executions ADD COLUMN approved_at INTEGER;"
    "ALTER TABLE disaster_recovery_executions ADD COLUMN error_message TEXT;"
    "ALTER TABLE disaster_recovery_executions ADD COLUMN server_instance TEXT;"
    "ALTER TABLE disaster_recovery_executions ADD COLUMN sandbox TEXT;"
    // backup_monitoring is rebuilt (rows kept) for the dr_drill monitor type.
    "CREATE TABLE backup_monitoring_v5 ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " monitor_name TEXT NOT NULL UNIQUE CHECK (monitor_name <> ''),"
    " monitor_type TEXT NOT NULL CHECK (monitor_type IN ('backup_success', 'storage_capacity',"
    "   'restore_capability', 'integrity_check', 'rpo', 'missed_schedule',"
    "   'backup_failure_rate', 'replication_lag', 'dr_drill')),"
    " resource_filters" HAVEN_JSON("resource_filters") ","
    " check_frequency_minutes INTEGER NOT NULL DEFAULT 15 CHECK (check_frequency_minutes >= 1),"
    " warning_threshold" HAVEN_JSON("warning_threshold") ","
    " critical_threshold" HAVEN_JSON("critical_threshold") ","
    " alert_channels" HAVEN_JSON_ARRAY("alert_channels") ","
    " escalation_policy" HAVEN_JSON("escalation_policy") ","
    " is_active" HAVEN_BOOL("is_active") ","
    " last_check INTEGER,"
    " current_status TEXT NOT NULL DEFAULT 'healthy' CHECK (current_status IN ('healthy',"
    "   'warning', 'critical', 'unknown')),"
    " created_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " updated_at INTEGER NOT NULL DEFAULT " HAVEN_NOW_NS ","
    " source TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('config', 'api')),"
    " last_result" HAVEN_JSON("last_result")
    ") STRICT;"
    "INSERT INTO backup_monitoring_v5 SELECT id, monitor_name, monitor_type, resource_filters,"
    " check_frequency_minutes, warning_threshold, critical_threshold, alert_channels,"
    " escalation_policy, is_active, last_check, current_status, created_at, updated_at, source,"
    " last_result FROM backup_monitoring;"
    "DROP TABLE backup_monitoring;"
    "ALTER TABLE backup_monitoring_v5 RENAME TO backup_monitoring;";

#undef HAVEN_NOW_NS
#undef HAVEN_BOOL
#undef HAVEN_JSON
#undef HAVEN_JSON_ARRAY
#undef HAVEN_STATUS
#undef HAVEN_HEX

Error with_path(const sqlite::Db& db, Error::Code code, const std::string& message) {
  return Error(code, "catalog " + db.path() + ": " + message);
}

}  // namespace

Status check_catalog_file(sqlite::Db& db) {
  HAVEN_ASSIGN(auto app_id, db.query_int("PRAGMA application_id"));
  HAVEN_ASSIGN(auto version_opt, db.query_int("PRAGMA user_version"));
  int64_t version = version_opt.value_or(0);
  if (app_id.value_or(0) != 0 && *app_id != kApplicationId) {
    return with_path(db, Error::Code::kInvalidArgument,
                     "a SQLite database of another program (application_id " +
                         std::to_string(*app_id) + "), not a Haven catalog: choose another path");
  }
  if (app_id.value_or(0) == 0 && version == 0) {
    // A new catalog is an empty file. Tables here without our mark belong to someone else.
    HAVEN_ASSIGN(auto tables, db.query_int("SELECT count(*) FROM sqlite_schema"));
    if (tables.value_or(0) != 0) {
      return with_path(db, Error::Code::kInvalidArgument,
                       "a SQLite database that is not a Haven catalog (it has tables but no "
                       "Haven mark): choose another path");
    }
  }
  const int latest = latest_schema_version();
  if (version > latest) {
    return with_path(db, Error::Code::kUnsupported,
                     "written by a newer Haven (schema version " + std::to_string(version) +
                         "; this binary knows versions up to " + std::to_string(latest) +
                         "): upgrade haven, or open the catalog with the version that wrote it");
  }
  if (version < 0) {
    return with_path(db, Error::Code::kCorrupt,
                     "schema version " + std::to_string(version) + " is not one Haven writes");
  }
  return ok_status();
}

namespace {

// The body of migrate() between BEGIN and COMMIT.
Status apply(sqlite::Db& db) {
  // Again under the write lock: another process may have migrated the file meanwhile.
  HAVEN_TRY(check_catalog_file(db));
  HAVEN_ASSIGN(auto app_id, db.query_int("PRAGMA application_id"));
  HAVEN_ASSIGN(auto version_opt, db.query_int("PRAGMA user_version"));
  const int64_t version = version_opt.value_or(0);
  const int latest = latest_schema_version();
  for (const Migration& m : migrations()) {
    if (m.version <= version) continue;
    Status s = db.exec(m.sql);
    if (!s.ok()) {
      return Error(s.error().code(), s.error().message() + " (while migrating to schema version " +
                                         std::to_string(m.version) + ", " + m.summary +
                                         "; the catalog is unchanged)");
    }
  }
  if (version < latest) {
    // A step that rebuilds a table runs with enforcement off: check what it left.
    HAVEN_ASSIGN(auto violation, db.query_text("PRAGMA foreign_key_check"));
    if (violation) {
      return with_path(db, Error::Code::kCorrupt,
                       "a migration left a row whose foreign key points nowhere (table " +
                           *violation + "); the catalog is unchanged");
    }
    HAVEN_TRY(db.exec("PRAGMA user_version = " + std::to_string(latest)));
  }
  if (app_id.value_or(0) == 0) {
    HAVEN_TRY(db.exec("PRAGMA application_id = " + std::to_string(kApplicationId)));
  }
  return ok_status();
}

}  // namespace

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> list = {
      {1, "seed 004's tables", kV1},
      {2, "events and API tokens", kV2},
      {3, "monitors, alerts, notifications and the audit log", kV3},
      {4, "replication regions", kV4},
      {5, "disaster-recovery plans and executions", kV5},
  };
  return list;
}

int latest_schema_version() { return migrations().back().version; }

Status migrate(sqlite::Db& db) {
  // foreign_keys cannot change inside a transaction: off before BEGIN, on again after.
  HAVEN_TRY(db.exec("PRAGMA foreign_keys = OFF"));
  Status result = [&]() -> Status {
    HAVEN_ASSIGN(auto txn, sqlite::Txn::begin(db, sqlite::Txn::Mode::kWrite));
    HAVEN_TRY(apply(db));
    return txn.commit();
  }();
  Status fk = db.exec("PRAGMA foreign_keys = ON");
  if (!result.ok()) return result;
  return fk;
}

}  // namespace haven::catalog

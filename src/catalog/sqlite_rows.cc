#include "catalog/sqlite_rows.h"

#include <limits>
#include <type_traits>

namespace haven::catalog::sqlite_rows {
namespace {

Error corrupt(const sqlite::Stmt& st, const std::string& column, const std::string& what) {
  return Error(Error::Code::kCorrupt,
               "catalog " + st.db().path() + ": column " + column + " " + what +
                   " (the catalog was changed by something other than Haven, or is damaged)");
}

// ---- binding ----

Status bind_value(sqlite::Stmt& st, int i, int64_t v, const std::string&) {
  st.bind_int64(i, v);
  return ok_status();
}
Status bind_value(sqlite::Stmt& st, int i, int v, const std::string&) {
  st.bind_int64(i, v);
  return ok_status();
}
Status bind_value(sqlite::Stmt& st, int i, bool v, const std::string&) {
  st.bind_int64(i, v ? 1 : 0);
  return ok_status();
}
Status bind_value(sqlite::Stmt& st, int i, double v, const std::string&) {
  st.bind_double(i, v);
  return ok_status();
}
Status bind_value(sqlite::Stmt& st, int i, const std::string& v, const std::string&) {
  st.bind_text(i, v);
  return ok_status();
}
template <CatalogEnum E>
Status bind_value(sqlite::Stmt& st, int i, E v, const std::string&) {
  st.bind_text(i, to_string(v));
  return ok_status();
}
Status bind_value(sqlite::Stmt& st, int i, const nlohmann::json& v, const std::string& what) {
  if (v.is_null()) {
    st.bind_null(i);
    return ok_status();
  }
  HAVEN_ASSIGN(std::string text, json_text(v, what));
  st.bind_text(i, text);
  return ok_status();
}
Status bind_value(sqlite::Stmt& st, int i, const std::vector<std::string>& v,
                  const std::string& what) {
  HAVEN_ASSIGN(std::string text, json_text(nlohmann::json(v), what));
  st.bind_text(i, text);
  return ok_status();
}
template <typename T>
Status bind_value(sqlite::Stmt& st, int i, const std::optional<T>& v, const std::string& what) {
  if (!v) {
    st.bind_null(i);
    return ok_status();
  }
  return bind_value(st, i, *v, what);
}

// ---- reading ----

Status read_value(const sqlite::Stmt& st, int c, int64_t& out, const std::string& col) {
  if (st.type(c) != SQLITE_INTEGER) return corrupt(st, col, "is not an integer");
  out = st.int64(c);
  return ok_status();
}
Status read_value(const sqlite::Stmt& st, int c, int& out, const std::string& col) {
  int64_t v = 0;
  HAVEN_TRY(read_value(st, c, v, col));
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    return corrupt(st, col, "holds " + std::to_string(v) + ", out of range");
  }
  out = static_cast<int>(v);
  return ok_status();
}
Status read_value(const sqlite::Stmt& st, int c, bool& out, const std::string& col) {
  int64_t v = 0;
  HAVEN_TRY(read_value(st, c, v, col));
  if (v != 0 && v != 1) return corrupt(st, col, "holds " + std::to_string(v) + ", not 0 or 1");
  out = v == 1;
  return ok_status();
}
Status read_value(const sqlite::Stmt& st, int c, double& out, const std::string& col) {
  if (st.type(c) != SQLITE_FLOAT && st.type(c) != SQLITE_INTEGER) {
    return corrupt(st, col, "is not a number");
  }
  out = st.real(c);
  return ok_status();
}
Status read_value(const sqlite::Stmt& st, int c, std::string& out, const std::string& col) {
  if (st.type(c) != SQLITE_TEXT) return corrupt(st, col, "is not text");
  out = st.text(c);
  return ok_status();
}
template <CatalogEnum E>
Status read_value(const sqlite::Stmt& st, int c, E& out, const std::string& col) {
  std::string s;
  HAVEN_TRY(read_value(st, c, s, col));
  auto v = parse_enum<E>(s);
  if (!v) return corrupt(st, col, "holds '" + s + "', not a " + std::string(EnumNames<E>::what));
  out = *v;
  return ok_status();
}
Status read_value(const sqlite::Stmt& st, int c, nlohmann::json& out, const std::string& col) {
  if (st.is_null(c)) {
    out = nullptr;
    return ok_status();
  }
  std::string s;
  HAVEN_TRY(read_value(st, c, s, col));
  out = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) return corrupt(st, col, "does not hold JSON");
  return ok_status();
}
Status read_value(const sqlite::Stmt& st, int c, std::vector<std::string>& out,
                  const std::string& col) {
  nlohmann::json j;
  HAVEN_TRY(read_value(st, c, j, col));
  if (!j.is_array()) return corrupt(st, col, "does not hold a JSON array");
  out.clear();
  for (const auto& e : j) {
    if (!e.is_string()) return corrupt(st, col, "holds an array entry that is not a string");
    out.push_back(e.get<std::string>());
  }
  return ok_status();
}
template <typename T>
Status read_value(const sqlite::Stmt& st, int c, std::optional<T>& out, const std::string& col) {
  if (st.is_null(c)) {
    out.reset();
    return ok_status();
  }
  T v{};
  HAVEN_TRY(read_value(st, c, v, col));
  out = std::move(v);
  return ok_status();
}

// One column for member `m`, named `name` in SQL; `table.name` in messages.
template <typename Row, typename T>
Column<Row> col(const std::string& table, const std::string& name, T Row::*m,
                bool updatable = true) {
  std::string qualified = table + "." + name;
  return Column<Row>{name, updatable,
                     [m, qualified](sqlite::Stmt& st, int i, const Row& r) {
                       return bind_value(st, i, r.*m, qualified);
                     },
                     [m, qualified](const sqlite::Stmt& st, int i, Row& r) {
                       return read_value(st, i, r.*m, qualified);
                     }};
}

// A column computed from the row when written (the seed's derived columns) and not read back.
template <typename Row, typename F>
Column<Row> derived(const std::string& table, const std::string& name, F value) {
  std::string qualified = table + "." + name;
  return Column<Row>{name, true,
                     [value, qualified](sqlite::Stmt& st, int i, const Row& r) {
                       return bind_value(st, i, value(r), qualified);
                     },
                     [](const sqlite::Stmt&, int, Row&) { return ok_status(); }};
}

}  // namespace

Result<std::string> json_text(const nlohmann::json& v, const std::string& what) {
  try {
    return v.dump();
  } catch (const nlohmann::json::exception& e) {
    return Error(Error::Code::kInvalidArgument,
                 what + ": cannot be stored as JSON (" + std::string(e.what()) + ")");
  }
}

template <typename Row>
Table<Row>::Table(std::string name, std::vector<Column<Row>> columns)
    : name_(std::move(name)), columns_(std::move(columns)) {
  std::string values, set;
  for (size_t i = 0; i < columns_.size(); i++) {
    const std::string p = "?" + std::to_string(i + 1);
    if (i > 0) {
      select_list_ += ", ";
      values += ", ";
    }
    select_list_ += columns_[i].name;
    values += p;
    if (i > 0 && columns_[i].updatable) {
      if (!set.empty()) set += ", ";
      set += columns_[i].name + " = " + p;
    }
  }
  insert_sql_ = "INSERT INTO " + name_ + " (" + select_list_ + ") VALUES (" + values + ")";
  update_sql_ = "UPDATE " + name_ + " SET " + set + " WHERE " + columns_[0].name + " = ?1";
}

template <typename Row>
std::string Table<Row>::upsert_sql(const std::string& conflict_column) const {
  std::string set;
  for (size_t i = 1; i < columns_.size(); i++) {
    if (!columns_[i].updatable) continue;
    if (!set.empty()) set += ", ";
    set += columns_[i].name + " = excluded." + columns_[i].name;
  }
  return insert_sql_ + " ON CONFLICT(" + conflict_column + ") DO UPDATE SET " + set +
         " RETURNING " + select_list_;
}

template <typename Row>
Status Table<Row>::bind(sqlite::Stmt& st, const Row& row, bool for_update) const {
  for (size_t i = 0; i < columns_.size(); i++) {
    if (for_update && i > 0 && !columns_[i].updatable) continue;
    HAVEN_TRY(columns_[i].bind(st, static_cast<int>(i + 1), row));
  }
  return ok_status();
}

template <typename Row>
Result<Row> Table<Row>::read(const sqlite::Stmt& st) const {
  Row row;
  for (size_t i = 0; i < columns_.size(); i++) {
    HAVEN_TRY(columns_[i].read(st, static_cast<int>(i), row));
  }
  return row;
}

template class Table<PolicyRow>;
template class Table<LocationRow>;
template class Table<ExecutionRow>;
template class Table<RestoreRow>;
template class Table<EventRow>;
template class Table<TokenRow>;
template class Table<MonitorRow>;
template class Table<AlertRow>;
template class Table<NotificationRow>;
template class Table<AuditRow>;
template class Table<DrPlanRow>;
template class Table<DrExecutionRow>;

// The tables. The key is first; `false` marks what an update keeps.
#define C(member, ...) col(t, #member, &Row::member __VA_OPT__(, ) __VA_ARGS__)

const Table<PolicyRow>& policies() {
  using Row = PolicyRow;
  static const Table<Row> table = [] {
    const std::string t = "backup_policies";
    return Table<Row>(
        t, {C(id), C(name), C(description), C(resource_type), C(resource_filters), C(schedule_cron),
            C(timezone), C(retention_daily), C(retention_weekly), C(retention_monthly),
            C(retention_yearly), C(backup_type), C(compression_enabled), C(encryption_enabled),
            C(max_parallel_jobs), C(bandwidth_limit_mbps), C(is_active),
            // Only set_policy_schedule_times writes these two.
            C(last_execution, false), C(next_execution, false), C(created_at, false), C(updated_at),
            C(source), C(spec), C(location_id)});
  }();
  return table;
}

const Table<LocationRow>& locations() {
  using Row = LocationRow;
  static const Table<Row> table = [] {
    const std::string t = "backup_storage_locations";
    return Table<Row>(t, {C(id),
                          C(name, false),
                          C(description),
                          C(storage_type),
                          C(primary_region),
                          C(secondary_regions),
                          C(connection_config),
                          C(storage_class),
                          C(total_capacity_gb),
                          C(used_capacity_gb),
                          C(max_throughput_mbps),
                          C(encryption_at_rest),
                          C(encryption_in_transit),
                          C(access_controls),
                          C(data_residency_requirements),
                          C(compliance_certifications),
                          C(is_active),
                          // Only set_location_health writes these two.
                          C(last_health_check, false),
                          C(health_status, false),
                          C(created_at, false),
                          C(updated_at)});
  }();
  return table;
}

const Table<ExecutionRow>& executions() {
  using Row = ExecutionRow;
  static const Table<Row> table = [] {
    const std::string t = "backup_executions";
    return Table<Row>(t, {C(id),
                          C(policy_id, false),
                          C(execution_id, false),
                          C(backup_type),
                          C(status),
                          C(started_at),
                          C(completed_at),
                          C(backup_size_bytes),
                          C(compressed_size_bytes),
                          C(files_backed_up),
                          C(duration_seconds),
                          C(transfer_rate_mbps),
                          C(backup_location),
                          C(storage_class),
                          C(integrity_check_status),
                          C(integrity_check_completed_at),
                          C(error_message),
                          C(retry_count),
                          C(created_at, false),
                          C(snapshot_id),
                          col(t, "\"trigger\"", &Row::trigger),
                          C(priority),
                          C(scheduled_for),
                          C(server_instance)});
  }();
  return table;
}

const Table<RestoreRow>& restores() {
  using Row = RestoreRow;
  static const Table<Row> table = [] {
    const std::string t = "restore_operations";
    return Table<Row>(t, {C(id),
                          C(request_id, false),
                          C(restore_type),
                          C(source_backup_id),
                          C(point_in_time),
                          C(target_location),
                          C(restore_scope),
                          C(restore_options),
                          C(overwrite_existing),
                          C(status),
                          C(started_at),
                          C(completed_at),
                          C(data_restored_gb),
                          C(duration_seconds),
                          C(restore_rate_mbps),
                          C(integrity_validated),
                          C(validation_results),
                          C(requested_by),
                          C(approved_by),
                          C(error_message),
                          C(retry_count),
                          C(created_at, false),
                          C(snapshot_id),
                          C(request),
                          C(server_instance)});
  }();
  return table;
}

const Table<EventRow>& events() {
  using Row = EventRow;
  static const Table<Row> table = [] {
    const std::string t = "events";
    return Table<Row>(t, {C(id), C(time), C(operation_id), C(kind), C(payload)});
  }();
  return table;
}

const Table<TokenRow>& tokens() {
  using Row = TokenRow;
  static const Table<Row> table = [] {
    const std::string t = "api_tokens";
    return Table<Row>(
        t, {C(id), C(name), C(role), C(token_hash), C(created_at), C(last_used_at), C(revoked_at)});
  }();
  return table;
}

const Table<MonitorRow>& monitors() {
  using Row = MonitorRow;
  static const Table<Row> table = [] {
    const std::string t = "backup_monitoring";
    return Table<Row>(t, {C(id), C(monitor_name, false), C(monitor_type), C(resource_filters),
                          C(check_frequency_minutes), C(warning_threshold),
                          C(critical_threshold), C(alert_channels), C(escalation_policy),
                          C(is_active),
                          // Only record_monitor_result writes these three.
                          C(last_check, false), C(current_status, false),
                          C(created_at, false), C(updated_at), C(source),
                          C(last_result, false)});
  }();
  return table;
}

const Table<AlertRow>& alerts() {
  using Row = AlertRow;
  static const Table<Row> table = [] {
    const std::string t = "alerts";
    return Table<Row>(t, {C(id), C(alert_key, false), C(kind), C(monitor_id), C(policy_id),
                          C(severity), C(state), C(summary), C(details), C(opened_at, false),
                          C(last_seen_at), C(acknowledged_at), C(acknowledged_by),
                          C(resolved_at), C(escalation_level), C(escalated_at)});
  }();
  return table;
}

const Table<NotificationRow>& notifications() {
  using Row = NotificationRow;
  static const Table<Row> table = [] {
    const std::string t = "alert_notifications";
    return Table<Row>(t, {C(id), C(alert_id, false), C(channel, false), C(action, false),
                          C(escalation_level, false), C(state), C(attempts),
                          C(created_at, false), C(next_attempt_at), C(delivered_at),
                          C(last_error)});
  }();
  return table;
}

const Table<AuditRow>& audit() {
  using Row = AuditRow;
  static const Table<Row> table = [] {
    const std::string t = "audit_log";
    return Table<Row>(t, {C(seq), C(time), C(actor), C(action), C(target), C(details),
                          C(prev_hash), C(hash)});
  }();
  return table;
}


}  // namespace haven::catalog::sqlite_rows

namespace haven::catalog::sqlite_rows {

const Table<DrPlanRow>& dr_plans() {
  using Row = DrPlanRow;
  static const Table<Row> table = [] {
    const std::string t = "disaster_recovery_plans";
    auto part = [](const char* key) {
      return [key](const Row& r) {
        return r.definition.contains(key) ? r.definition[key] : nlohmann::json::array();
      };
    };
    return Table<Row>(
        t, {C(id), C(name, false), C(description), C(plan_type), C(priority), C(rto_seconds),
            C(rpo_seconds),
            derived<Row>(t, "rto_hours", [](const Row& r) { return r.rto_seconds / 3600.0; }),
            derived<Row>(t, "rpo_minutes",
                         [](const Row& r) { return static_cast<int64_t>((r.rpo_seconds + 59) / 60); }),
            derived<Row>(t, "recovery_steps", part("steps")),
            derived<Row>(t, "prerequisite_checks", part("prerequisites")),
            derived<Row>(t, "post_recovery_validation", part("validation")),
            C(definition), C(required_personnel), C(is_active),
            // Only set_dr_plan_tested writes it.
            C(last_tested, false), C(test_frequency_days), C(approval_required), C(source),
            C(created_at, false), C(updated_at)});
  }();
  return table;
}

const Table<DrExecutionRow>& dr_executions() {
  using Row = DrExecutionRow;
  static const Table<Row> table = [] {
    const std::string t = "disaster_recovery_executions";
    return Table<Row>(
        t, {C(id), C(plan_id, false), C(plan_name, false), C(execution_type, false),
            C(trigger_reason), C(status), C(started_at), C(completed_at), C(actual_rto_seconds),
            C(actual_rpo_seconds),
            derived<Row>(t, "actual_rto_hours",
                         [](const Row& r) -> std::optional<double> {
                           if (!r.actual_rto_seconds) return std::nullopt;
                           return *r.actual_rto_seconds / 3600.0;
                         }),
            derived<Row>(t, "actual_rpo_minutes",
                         [](const Row& r) -> std::optional<int64_t> {
                           if (!r.actual_rpo_seconds) return std::nullopt;
                           return static_cast<int64_t>(*r.actual_rpo_seconds / 60.0 + 0.999999);
                         }),
            C(rto_target_seconds), C(rpo_target_seconds), C(executed_steps), C(failed_steps),
            C(success_criteria_met), C(validation_results), C(executed_by, false),
            // Only decide_dr_approval writes these three (create sets the first).
            C(approval_status, false), C(approved_by, false), C(approved_at, false),
            C(execution_log), C(lessons_learned), C(error_message), C(server_instance),
            C(sandbox)});
  }();
  return table;
}

}  // namespace haven::catalog::sqlite_rows
#undef C

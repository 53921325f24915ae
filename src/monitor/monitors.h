// monitor/monitors.h — what each monitor type checks, as a pure evaluation of the catalog (and
// of the facts the caller gathers: health results, whether the newest snapshot reads) at a given
// time, and the mapping between a monitor's configuration and its catalog row.
//
// A monitor yields one or more conditions, each with a level (ok, warning, critical, unknown)
// and a key: the monitor's name, or name/suffix for its further conditions. A warning or
// critical condition is an alert with that key; ok resolves it; unknown leaves it as it is.
//
//   backup_success       consecutive failed (or interrupted) runs, newest first, until a
//                        completed one                                   alert:backup-failure
//   rpo                  the policy's RPO now in percent of its target   alert:rpo-warning, then
//                                                                        alert:rpo-critical
//   missed_schedule      minutes since the first fire time after the newest completed run, if
//                        that fire time has passed; unknown while a run started since is
//                        queued or running (so an alert resolves when a run succeeds)
//                                                                        alert:missed-schedule
//   backup_failure_rate  percent of the last `window` finished runs that failed
//                                                                        alert:backup-failure-rate
//   storage_capacity     percent of the location's capacity used (the latest health check)
//                                                                        alert:storage-capacity
//   restore_capability   days since a restore of the policy's backups completed (never: a
//                        warning); the newest snapshot unreadable: critical
//                                                                        alert:restore-capability
//                        and, as name/rto, the RTO estimate against the target
//                        (status.h: warning from 80 %, critical from 100 %) alert:rto-warning,
//                                                                        alert:rto-critical
//   integrity_check      the newest integrity check failed: critical; else days since one
//                        passed                                          alert:integrity-check
//   replication_lag      each active or paused secondary region's lag (the age of the oldest
//                        object it does not hold yet), in seconds; a region that cannot be
//                        reached is critical; unknown when the location has no secondary
//                        regions                                         alert:replication-lag
//
// Thread-safety: reentrant.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "config/config.h"
#include "jobs/replicator.h"
#include "monitor/status.h"

namespace haven::monitor {

// A location's health, as the health check found it (monitor/health.h).
struct HealthResult {
  std::string location;
  TimeNs time = 0;
  catalog::HealthStatus status = catalog::HealthStatus::kUnknown;
  bool reachable = false, writable = false;
  int64_t locks = 0, stale_locks = 0;
  std::optional<int64_t> used_bytes, capacity_bytes;  // capacity known: both set
  std::optional<double> used_percent;
  std::optional<std::string> read_data_subset;  // "K/N" when this check read data
  std::optional<int64_t> read_data_problems;
  std::vector<std::string> problems;  // for a person
  nlohmann::json to_json() const;
};

struct Condition {
  std::string key_suffix;  // "" for the monitor's main condition, else e.g. "rto"
  std::string kind;        // the alert's event name
  Level level = Level::kUnknown;
  std::string summary;     // one line
  nlohmann::json details = nlohmann::json::object();
};

struct Evaluation {
  Level level = Level::kUnknown;  // the worst condition
  std::string message;            // the main condition's summary
  std::optional<std::string> policy_id;
  std::vector<Condition> conditions;
  nlohmann::json to_json() const;  // what backup_monitoring.last_result keeps
};

struct EvalContext {
  StatusContext status;
  // The latest health result of a location; nullopt before the first check.
  std::function<std::optional<HealthResult>(const std::string& location)> health;
  // Reads the snapshot (by hex id) and its root tree from the location's repository. Unset:
  // restore_capability does not read.
  std::function<Status(const config::Location&, const std::string& snapshot_id)> read_snapshot;
  // The secondary regions' replication status (jobs/replicator.h). Unset: replication_lag is
  // unknown.
  std::function<std::vector<jobs::RegionStatus>()> replication;
};

Result<Evaluation> evaluate(const EvalContext& ctx, const config::Monitor& monitor, TimeNs now);

// The catalog row of a monitor and back. resource_filters keeps {"policy"} or {"location"}
// (and "window"); thresholds {"value"}; escalation_policy {"steps": [{after_minutes,
// channels}]}.
catalog::MonitorRow monitor_row(const config::Monitor& m, catalog::PolicySource source);
Result<config::Monitor> monitor_of(const catalog::MonitorRow& row);
catalog::MonitorType monitor_type(config::MonitorKind k);

// The alert key of a condition of a monitor.
std::string alert_key(const std::string& monitor_name, const Condition& c);

}  // namespace haven::monitor

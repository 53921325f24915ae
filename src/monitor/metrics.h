// monitor/metrics.h — GET /metrics: the server's state in the Prometheus text exposition format
// (version 0.0.4), built from plain inputs the server gathers at the moment of the scrape, so
// the numbers are the ones /api/status shows at that moment.
//
// Families (every name prefixed haven_; labels policy="<name>", location="<name>"...):
//   haven_policy_last_success_timestamp_seconds{policy}    gauge: started_at of the newest completed run
//   haven_policy_rpo_seconds{policy}                        gauge: RPO now (absent while unknown)
//   haven_policy_rpo_target_seconds{policy}                 gauge (policies with a target)
//   haven_policy_rto_estimate_seconds{policy}               gauge
//   haven_policy_rto_target_seconds{policy}                 gauge
//   haven_policy_status{policy,level}                       gauge: 1 for the policy's level, 0 for the others
//   haven_backup_executions{policy,status}                  gauge: executions in the catalog by status
//   haven_backup_bytes{policy}                              gauge: backup_size_bytes of completed runs, together
//   haven_backup_duration_seconds{policy}                   histogram (le buckets, _sum, _count) of completed runs
//   haven_scheduler_fires_total                             counter
//   haven_scheduler_fire_delay_seconds{quantile}            summary (0.5, 0.99, 1) with _sum and _count over the kept delays
//   haven_scheduler_clock_jumps_total                       counter
//   haven_jobs_queued, haven_jobs_running, haven_jobs_max_parallel   gauges
//   haven_location_health{location,status}                  gauge: 1 for the location's status
//   haven_location_used_bytes{location}, haven_location_capacity_bytes{location}  gauges (when known)
//   haven_alerts_open{severity,state}                       gauge: unresolved alerts
//   haven_alert_notifications_total{outcome}                counter: delivered, retried, failed
//   haven_audit_records                                     gauge: the audit log's length
// Every family has # HELP and # TYPE lines; label values are escaped (\\, \", \n); the output
// passes `promtool check metrics`.
//
// Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "jobs/replicator.h"
#include "monitor/monitors.h"
#include "monitor/status.h"

namespace haven::monitor {

struct MetricsInput {
  StatusReport status;  // policies (with their RPO/RTO), unresolved alerts, locations
  // By policy id (status.policies gives the names).
  std::vector<catalog::Catalog::ExecutionStats> executions;
  uint64_t scheduler_fires = 0;
  std::vector<double> fire_delays_seconds;  // the kept delays, any order
  int clock_jumps = 0;
  size_t jobs_queued = 0, jobs_running = 0;
  unsigned jobs_max_parallel = 0;
  std::map<std::string, HealthResult> health;  // by location: used and capacity bytes
  uint64_t notifications_delivered = 0, notifications_retried = 0, notifications_failed = 0;
  int64_t audit_records = 0;
  std::vector<jobs::RegionStatus> replication;  // every secondary region (jobs/replicator.h)
  TimeNs now = 0;                               // for replication lag; 0: the wall clock
};

std::string render_metrics(const MetricsInput& in);

}  // namespace haven::monitor

// monitor/status.h — what `haven status`, GET /api/status and /metrics show: per policy the
// RPO now and the RTO estimate against their targets, the last and next run; the open alerts;
// each location's health.
//
// RPO now = now − the newest restorable point:
//   files     the start of the newest completed backup (its snapshot holds the data as read
//             from then on);
//   database  the later of that and the newest WAL object in the repository (its modification
//             time: when the segment was archived, so a cluster that archives every minute
//             has an RPO of about a minute); WAL counts only after a completed base backup.
//   No restorable point yet: the RPO is unknown and, with a target, critical.
// RTO estimate = the data a restore moves (the newest completed backup's backup_size_bytes)
//   ÷ the restore throughput measured on that repository (the last 10 completed restores from
//   it: bytes over seconds together), or monitoring.restore_mbps (default 100 MB/s) before any
//   was measured — which the status says (rto.basis "measured" or "default").
// Levels, for both: ok below 80 % of the target, warning from 80 %, critical from 100 %;
//   unknown without a target.
//
// Everything is computed from the catalog (and the WAL listing) at the time given, so the CLI,
// the API and the metrics agree when asked at the same moment.
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
#include "util/clock.h"
#include "util/error.h"

namespace haven::monitor {

enum class Level { kOk, kWarning, kCritical, kUnknown };
const char* level_name(Level l);  // "ok" "warning" "critical" "unknown"

// A duration for a person, as alerts and `haven status` write it: "35 s", "40 min",
// "2 h 05 min", "3 d 4 h" (negative counts as 0).
std::string format_span(double seconds);

// `value` against `target` (both > 0 meaningful): ok < 80 %, warning < 100 %, else critical.
Level objective_level(double value, double target);

struct ObjectiveStatus {
  std::optional<double> seconds;         // now (RPO) or estimated (RTO); nullopt: unknown
  std::optional<int64_t> target_seconds;  // the policy's rpo/rto; nullopt: none
  Level level = Level::kUnknown;
  std::string note;  // why unknown, or what it rests on
};

// Seed 002's 3-2-1 rule for a policy's data: 3 copies (the data itself and the repository's
// copies: the primary and each secondary region not stopped), on 2 kinds of media (the data's
// disk and each copy's storage type), 1 offsite (a secondary region, or object storage).
struct ThreeTwoOne {
  int copies = 0;
  std::vector<std::string> media;    // distinct: on_premise, s3, azure_blob, gcp_storage
  int offsite = 0;
  bool met() const { return copies >= 3 && media.size() >= 2 && offsite >= 1; }
  std::string missing() const;       // what is short, for a person; "" when met
};

struct PolicyStatus {
  std::string id, name, location, resource_type;
  ThreeTwoOne three_two_one;
  bool active = true;
  std::optional<catalog::ExecutionRow> last_run;      // the newest execution of any status
  std::optional<catalog::ExecutionRow> last_success;  // the newest completed one
  std::optional<TimeNs> next_run;                     // the scheduler's plan
  std::optional<TimeNs> restorable_point;             // see the header comment
  std::optional<TimeNs> newest_wal;                   // database policies
  ObjectiveStatus rpo, rto;
  int64_t restore_bytes = 0;   // what the RTO estimate restores
  double restore_mbps = 0;     // at this throughput (MB/s)
  bool restore_mbps_measured = false;
  Level level() const;  // the worse of rpo and rto (unknown counts as ok here)
};

struct LocationStatus {
  std::string name, repository;
  catalog::HealthStatus health = catalog::HealthStatus::kUnknown;
  std::optional<TimeNs> last_health_check;
};

struct StatusReport {
  TimeNs time = 0;
  std::vector<PolicyStatus> policies;   // by name
  std::vector<catalog::AlertRow> alerts;  // unresolved, oldest first
  std::vector<LocationStatus> locations;
};

struct StatusContext {
  catalog::Catalog& catalog;
  const config::Config& config;
  // The modification time of the newest WAL object in the location's repository; nullopt when
  // it has none. Unset: WAL is not looked at (then database RPO rests on base backups only).
  // A failure is noted in the policy's rpo.note, not fatal.
  std::function<Result<std::optional<TimeNs>>(const config::Location&)> newest_wal;
};

Result<StatusReport> compute_status(const StatusContext& ctx, TimeNs now);
// One policy's status (the rpo and missed-schedule monitors use it).
Result<PolicyStatus> policy_status(const StatusContext& ctx, const catalog::PolicyRow& row,
                                   TimeNs now);

nlohmann::json to_json(const PolicyStatus& p);
nlohmann::json to_json(const StatusReport& r);
nlohmann::json alert_json(const catalog::AlertRow& a);

}  // namespace haven::monitor

#include "monitor/status.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace haven::monitor {

namespace {

constexpr double kNsPerSecond = 1e9;
constexpr int kThroughputRestores = 10;

nlohmann::json opt_time(const std::optional<TimeNs>& t) {
  return t ? nlohmann::json(format_time(*t)) : nlohmann::json(nullptr);
}

template <typename T>
nlohmann::json opt(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json run_json(const std::optional<catalog::ExecutionRow>& r) {
  if (!r) return nullptr;
  return {{"id", r->id},
          {"execution_id", r->execution_id},
          {"status", std::string(catalog::to_string(r->status))},
          {"started_at", format_time(r->started_at)},
          {"completed_at", opt_time(r->completed_at)},
          {"backup_size_bytes", opt(r->backup_size_bytes)},
          {"snapshot_id", opt(r->snapshot_id)},
          {"error_message", opt(r->error_message)}};
}

nlohmann::json objective_json(const ObjectiveStatus& o) {
  nlohmann::json j = {{"seconds", o.seconds ? nlohmann::json(std::round(*o.seconds * 10) / 10)
                                            : nlohmann::json(nullptr)},
                      {"target_seconds", opt(o.target_seconds)},
                      {"level", level_name(o.level)}};
  if (o.seconds && o.target_seconds && *o.target_seconds > 0) {
    j["percent_of_target"] = std::round(*o.seconds / static_cast<double>(*o.target_seconds) * 1000) / 10;
  }
  if (!o.note.empty()) j["note"] = o.note;
  return j;
}

int rank(Level l) {
  switch (l) {
    case Level::kCritical: return 3;
    case Level::kWarning: return 2;
    default: return 1;
  }
}

}  // namespace

const char* level_name(Level l) {
  switch (l) {
    case Level::kOk: return "ok";
    case Level::kWarning: return "warning";
    case Level::kCritical: return "critical";
    case Level::kUnknown: return "unknown";
  }
  return "unknown";
}

std::string format_span(double seconds) {
  if (!(seconds > 0)) seconds = 0;
  if (seconds < 120) return std::to_string(static_cast<int64_t>(seconds)) + " s";
  const int64_t minutes = static_cast<int64_t>(seconds / 60);
  if (minutes < 120) return std::to_string(minutes) + " min";
  const int64_t hours = minutes / 60;
  if (hours < 48) {
    const int64_t m = minutes % 60;
    return std::to_string(hours) + " h " + (m < 10 ? "0" : "") + std::to_string(m) + " min";
  }
  return std::to_string(hours / 24) + " d " + std::to_string(hours % 24) + " h";
}

Level objective_level(double value, double target) {
  if (target <= 0) return Level::kUnknown;
  if (value >= target) return Level::kCritical;
  if (value >= 0.8 * target) return Level::kWarning;
  return Level::kOk;
}

Level PolicyStatus::level() const { return rank(rpo.level) >= rank(rto.level) ? rpo.level : rto.level; }

Result<PolicyStatus> policy_status(const StatusContext& ctx, const catalog::PolicyRow& row,
                                   TimeNs now) {
  PolicyStatus s;
  s.id = row.id;
  s.name = row.name;
  s.active = row.is_active;
  s.resource_type = std::string(catalog::to_string(row.resource_type));
  s.next_run = row.is_active ? row.next_execution : std::nullopt;
  // The targets come from the policy's own definition (the spec), decoded as the runner does.
  std::optional<config::Policy> policy;
  if (auto p = config::policy_from_json(row.spec, ctx.config.locations); p.ok()) {
    policy = std::move(*p);
    s.location = policy->location;
    if (policy->rpo) s.rpo.target_seconds = policy->rpo->seconds();
    if (policy->rto) s.rto.target_seconds = policy->rto->seconds();
  } else {
    s.rpo.note = s.rto.note = "the policy's definition does not load: " + p.error().message();
  }

  catalog::ExecutionQuery q;
  q.policy_id = row.id;
  q.limit = 1;
  HAVEN_ASSIGN(auto newest, ctx.catalog.query_executions(q));
  if (!newest.rows.empty()) s.last_run = newest.rows.front();
  HAVEN_ASSIGN(s.last_success, ctx.catalog.last_successful_execution(row.id));

  // RPO: the newest restorable point.
  if (s.last_success) s.restorable_point = s.last_success->started_at;
  const config::Location* loc = policy ? ctx.config.find_location(policy->location) : nullptr;
  if (policy && policy->resource_type == config::ResourceType::kDatabase && loc && ctx.newest_wal) {
    auto wal = ctx.newest_wal(*loc);
    if (!wal.ok()) {
      s.rpo.note = "the WAL archive could not be listed: " + wal.error().message();
    } else if (*wal) {
      s.newest_wal = **wal;
      // WAL restores only on top of a base backup: it counts once one completed before it.
      if (s.last_success && **wal > s.last_success->started_at) s.restorable_point = **wal;
    }
  }
  if (s.restorable_point) {
    s.rpo.seconds = std::max<double>(0, static_cast<double>(now - *s.restorable_point) / kNsPerSecond);
  } else if (s.rpo.note.empty()) {
    s.rpo.note = "no restorable point yet: the policy has no completed backup";
  }
  if (s.rpo.target_seconds) {
    s.rpo.level = s.rpo.seconds ? objective_level(*s.rpo.seconds, static_cast<double>(*s.rpo.target_seconds))
                                : Level::kCritical;
  }

  // RTO: what a restore moves at the throughput measured on this repository.
  const int default_mbps = ctx.config.monitoring.restore_mbps;
  s.restore_mbps = default_mbps;
  if (s.last_success) {
    HAVEN_ASSIGN(auto t, ctx.catalog.restore_throughput(s.last_success->backup_location,
                                                        kThroughputRestores));
    if (t.restores > 0 && t.seconds > 0 && t.bytes > 0) {
      s.restore_mbps = t.bytes / t.seconds / 1e6;
      s.restore_mbps_measured = true;
    }
    s.restore_bytes = s.last_success->backup_size_bytes.value_or(0);
    s.rto.seconds = static_cast<double>(s.restore_bytes) / (s.restore_mbps * 1e6);
    const std::string basis =
        s.restore_mbps_measured
            ? "measured: " + std::to_string(t.restores) + " restore(s) from this repository"
            : "default: monitoring.restore_mbps (no restore from this repository measured yet)";
    if (s.rto.note.empty()) s.rto.note = basis;
  } else if (s.rto.note.empty()) {
    s.rto.note = "nothing to restore yet";
  }
  if (s.rto.target_seconds && s.rto.seconds) {
    s.rto.level = objective_level(*s.rto.seconds, static_cast<double>(*s.rto.target_seconds));
  }
  return s;
}

std::string ThreeTwoOne::missing() const {
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : "; ") + s; };
  if (copies < 3) add(std::to_string(copies) + " copies of 3");
  if (media.size() < 2) add(std::to_string(media.size()) + " kind of media of 2");
  if (offsite < 1) add("no copy offsite");
  return out;
}

namespace {

ThreeTwoOne three_two_one(const config::Location& loc,
                          const std::vector<catalog::ReplicationRow>& states) {
  ThreeTwoOne t;
  std::set<std::string> media = {"on_premise"};  // the data itself, on a disk of its host
  t.copies = 2;                                   // the data and the primary repository
  media.insert(std::string(config::name(loc.storage_type)));
  if (loc.storage_type != config::StorageType::kOnPremise) t.offsite++;
  for (const auto& r : loc.secondary_regions) {
    bool stopped = false;
    for (const auto& st : states) {
      stopped = stopped || (st.location == loc.name && st.region == r.region &&
                            st.state == catalog::ReplicationState::kStopped);
    }
    if (stopped) continue;
    t.copies++;
    t.offsite++;
    media.insert(std::string(config::name(r.storage_type)));
  }
  t.media.assign(media.begin(), media.end());
  return t;
}

}  // namespace

Result<StatusReport> compute_status(const StatusContext& ctx, TimeNs now) {
  StatusReport r;
  r.time = now;
  HAVEN_ASSIGN(auto rows, ctx.catalog.list_policies());
  HAVEN_ASSIGN(auto states, ctx.catalog.list_replication());
  for (const auto& row : rows) {
    HAVEN_ASSIGN(PolicyStatus p, policy_status(ctx, row, now));
    if (const config::Location* loc = ctx.config.find_location(p.location)) {
      p.three_two_one = three_two_one(*loc, states);
    }
    r.policies.push_back(std::move(p));
  }
  HAVEN_ASSIGN(r.alerts, ctx.catalog.list_alerts(true, 1000));
  HAVEN_ASSIGN(auto locations, ctx.catalog.list_locations());
  for (const auto& l : locations) {
    if (!l.is_active || !ctx.config.find_location(l.name)) continue;
    LocationStatus ls;
    ls.name = l.name;
    ls.repository = ctx.config.find_location(l.name)->repository;
    ls.health = l.last_health_check ? l.health_status : catalog::HealthStatus::kUnknown;
    ls.last_health_check = l.last_health_check;
    r.locations.push_back(std::move(ls));
  }
  return r;
}

nlohmann::json to_json(const PolicyStatus& p) {
  return {{"id", p.id},
          {"name", p.name},
          {"location", p.location},
          {"three_two_one", {{"copies", p.three_two_one.copies},
                             {"media", p.three_two_one.media},
                             {"offsite", p.three_two_one.offsite},
                             {"met", p.three_two_one.met()},
                             {"missing", p.three_two_one.missing()}}},
          {"resource_type", p.resource_type},
          {"is_active", p.active},
          {"level", level_name(p.level())},
          {"last_run", run_json(p.last_run)},
          {"last_success", run_json(p.last_success)},
          {"next_run", opt_time(p.next_run)},
          {"restorable_point", opt_time(p.restorable_point)},
          {"newest_wal", opt_time(p.newest_wal)},
          {"rpo", objective_json(p.rpo)},
          {"rto", [&] {
             nlohmann::json j = objective_json(p.rto);
             j["restore_bytes"] = p.restore_bytes;
             j["restore_mbps"] = std::round(p.restore_mbps * 100) / 100;
             j["basis"] = p.restore_mbps_measured ? "measured" : "default";
             return j;
           }()}};
}

nlohmann::json alert_json(const catalog::AlertRow& a) {
  return {{"id", a.id},
          {"alert_key", a.alert_key},
          {"kind", a.kind},
          {"severity", std::string(catalog::to_string(a.severity))},
          {"state", std::string(catalog::to_string(a.state))},
          {"summary", a.summary},
          {"details", a.details},
          {"monitor_id", opt(a.monitor_id)},
          {"policy_id", opt(a.policy_id)},
          {"opened_at", format_time(a.opened_at)},
          {"last_seen_at", format_time(a.last_seen_at)},
          {"acknowledged_at", opt_time(a.acknowledged_at)},
          {"acknowledged_by", opt(a.acknowledged_by)},
          {"resolved_at", opt_time(a.resolved_at)},
          {"escalation_level", a.escalation_level}};
}

nlohmann::json to_json(const StatusReport& r) {
  nlohmann::json policies = nlohmann::json::array();
  for (const auto& p : r.policies) policies.push_back(to_json(p));
  nlohmann::json alerts = nlohmann::json::array();
  for (const auto& a : r.alerts) alerts.push_back(alert_json(a));
  nlohmann::json locations = nlohmann::json::array();
  for (const auto& l : r.locations) {
    locations.push_back({{"name", l.name},
                         {"repository", l.repository},
                         {"health", std::string(catalog::to_string(l.health))},
                         {"last_health_check", opt_time(l.last_health_check)}});
  }
  return {{"time", format_time(r.time)},
          {"policies", policies},
          {"alerts", alerts},
          {"locations", locations}};
}

}  // namespace haven::monitor

#include "monitor/monitors.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "schedule/cron.h"
#include "schedule/zone.h"

namespace haven::monitor {

namespace {

constexpr TimeNs kMinute = 60'000'000'000LL;
constexpr TimeNs kDay = 1440 * kMinute;

std::string num(double v) {
  char buf[32];
  if (std::fabs(v - std::round(v)) < 1e-9) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  }
  return buf;
}

// ok / warning / critical for a value measured against two thresholds (higher is worse).
Level against(double value, const config::Monitor& m) {
  if (value >= m.critical_or_default()) return Level::kCritical;
  if (value >= m.warning_or_default()) return Level::kWarning;
  return Level::kOk;
}

int rank(Level l) {
  switch (l) {
    case Level::kCritical: return 3;
    case Level::kWarning: return 2;
    case Level::kOk: return 1;
    case Level::kUnknown: return 0;
  }
  return 0;
}

bool finished(catalog::ExecStatus s) {
  return s == catalog::ExecStatus::kCompleted || s == catalog::ExecStatus::kFailed ||
         s == catalog::ExecStatus::kInterrupted;
}
bool failed(catalog::ExecStatus s) {
  return s == catalog::ExecStatus::kFailed || s == catalog::ExecStatus::kInterrupted;
}

// The newest executions of a policy, newest first.
Result<std::vector<catalog::ExecutionRow>> recent_runs(catalog::Catalog& c, const std::string& policy_id,
                                                       int limit) {
  catalog::ExecutionQuery q;
  q.policy_id = policy_id;
  q.limit = std::clamp(limit, 1, catalog::ExecutionQuery::kMaxLimit);
  HAVEN_ASSIGN(auto page, c.query_executions(q));
  return std::move(page.rows);
}

Condition unknown(std::string kind, std::string why);

// dr_drill: per plan, days its drill is overdue (key name/<plan>) and an RTO regression
// (key name/<plan>/rto): the newest drill's RTO more than 20 % above the median of the five
// drills before it.
Result<std::vector<Condition>> dr_drill(const EvalContext& ctx, const config::Monitor& m, TimeNs now) {
  constexpr TimeNs kDay = 86400'000'000'000LL;
  HAVEN_ASSIGN(auto plans, ctx.status.catalog.list_dr_plans());
  std::vector<Condition> out;
  for (const auto& p : plans) {
    if (!m.plan.empty() ? p.name != m.plan : (!p.is_active || p.test_frequency_days <= 0)) continue;
    Condition c;
    c.kind = "alert:dr-drill-overdue";
    c.key_suffix = p.name;
    if (p.test_frequency_days <= 0) {
      c.level = Level::kUnknown;
      c.summary = "plan " + p.name + " is not drilled on schedule (test_frequency_days 0)";
      out.push_back(std::move(c));
      continue;
    }
    const TimeNs since = p.last_tested.value_or(p.created_at);
    const TimeNs due = since + static_cast<TimeNs>(p.test_frequency_days) * kDay;
    const double over_days = static_cast<double>(now - due) / static_cast<double>(kDay);
    c.details = {{"plan", p.name},
                 {"last_tested", p.last_tested ? nlohmann::json(format_time(*p.last_tested)) : nlohmann::json(nullptr)},
                 {"due", format_time(due)},
                 {"overdue_days", std::max(0.0, over_days)}};
    if (over_days < 0) {
      c.level = Level::kOk;
      c.summary = "plan " + p.name + ": next drill due " + format_time(due);
    } else {
      c.level = against(over_days, m);
      c.summary = "plan " + p.name + ": its drill is " + format_span((now - due) / 1'000'000'000) +
                  " overdue (" + (p.last_tested ? "last passed " + format_time(*p.last_tested)
                                                : std::string("never passed")) +
                  ", every " + std::to_string(p.test_frequency_days) + " days)";
    }
    out.push_back(std::move(c));

    // RTO regression: the newest completed drill against the median of the five before it.
    HAVEN_ASSIGN(auto runs, ctx.status.catalog.list_dr_executions(p.id, 50));
    std::vector<double> rtos;
    for (const auto& e : runs) {
      if (e.execution_type == catalog::DrExecutionType::kDisasterRecovery) continue;
      if (e.actual_rto_seconds) rtos.push_back(*e.actual_rto_seconds);
      if (rtos.size() == 6) break;
    }
    Condition r;
    r.kind = "alert:dr-rto-regression";
    r.key_suffix = p.name + "/rto";
    if (rtos.size() < 2) {
      r.level = Level::kUnknown;
      r.summary = "plan " + p.name + ": too few measured drills to compare RTOs";
    } else {
      std::vector<double> before(rtos.begin() + 1, rtos.end());
      std::sort(before.begin(), before.end());
      const size_t n = before.size();
      const double median = n % 2 ? before[n / 2] : (before[n / 2 - 1] + before[n / 2]) / 2;
      const double worse = median > 0 ? (rtos[0] / median - 1) * 100 : 0;
      r.details = {{"plan", p.name}, {"rto_seconds", rtos[0]}, {"median_seconds", median},
                   {"drills_compared", n}, {"worse_percent", worse}};
      r.level = worse > 20 ? Level::kWarning : Level::kOk;
      char buf[160];
      std::snprintf(buf, sizeof buf, "RTO %.1f s, %+.0f %% against the median %.1f s of the %zu drills before",
                    rtos[0], worse, median, n);
      r.summary = "plan " + p.name + ": its last drill's " + buf;
    }
    out.push_back(std::move(r));
  }
  if (out.empty()) {
    out.push_back(unknown("alert:dr-drill-overdue",
                          m.plan.empty() ? "no plan is drilled on schedule"
                                         : "plan " + m.plan + " does not exist"));
  }
  return out;
}

Condition unknown(std::string kind, std::string why) {
  Condition c;
  c.kind = std::move(kind);
  c.level = Level::kUnknown;
  c.summary = std::move(why);
  return c;
}

Result<Condition> backup_success(const EvalContext& ctx, const config::Monitor& m,
                                 const catalog::PolicyRow& policy) {
  Condition c;
  c.kind = "alert:backup-failure";
  HAVEN_ASSIGN(auto runs, recent_runs(ctx.status.catalog, policy.id, 200));
  int failures = 0;
  const catalog::ExecutionRow* last_failed = nullptr;
  for (const auto& r : runs) {
    if (!finished(r.status)) continue;
    if (!failed(r.status)) break;
    if (!last_failed) last_failed = &r;
    failures++;
  }
  c.level = against(failures, m);
  c.details = {{"consecutive_failures", failures}};
  if (failures == 0) {
    c.summary = "policy " + policy.name + ": the last run succeeded";
  } else {
    c.details["execution_id"] = last_failed->execution_id;
    c.details["error"] = last_failed->error_message.value_or("");
    c.summary = "policy " + policy.name + ": " + std::to_string(failures) +
                " run(s) in a row failed; the last: " +
                last_failed->error_message.value_or("(no message)");
  }
  return c;
}

Result<Condition> rpo(const EvalContext& ctx, const config::Monitor& m,
                      const catalog::PolicyRow& policy, TimeNs now) {
  HAVEN_ASSIGN(PolicyStatus s, policy_status(ctx.status, policy, now));
  if (!s.rpo.target_seconds) {
    return unknown("alert:rpo-critical", "policy " + policy.name + " has no RPO target (rpo or sla_tier)");
  }
  Condition c;
  c.kind = "alert:rpo-critical";
  const double target = static_cast<double>(*s.rpo.target_seconds);
  c.details = {{"target_seconds", *s.rpo.target_seconds}};
  if (!s.rpo.seconds) {
    c.level = Level::kCritical;
    c.summary = "policy " + policy.name + ": " + s.rpo.note + " (RPO target " + format_span(target) + ")";
    return c;
  }
  const double percent = *s.rpo.seconds / target * 100;
  c.level = against(percent, m);
  // seed 003's event names: a warning before the target is reached, critical once it is.
  c.kind = c.level == Level::kCritical ? "alert:rpo-critical" : "alert:rpo-warning";
  c.details["rpo_seconds"] = std::round(*s.rpo.seconds);
  c.details["percent_of_target"] = std::round(percent * 10) / 10;
  c.summary = "policy " + policy.name + " could lose " + format_span(*s.rpo.seconds) +
              " of data now; the RPO target is " + format_span(target);
  return c;
}

Result<Condition> missed_schedule(const EvalContext& ctx, const config::Monitor& m,
                                  const catalog::PolicyRow& row, TimeNs now) {
  Condition c;
  c.kind = "alert:missed-schedule";
  auto policy = config::policy_from_json(row.spec, ctx.status.config.locations);
  if (!policy.ok()) return unknown(c.kind, "policy " + row.name + " does not load: " + policy.error().message());
  if (!row.is_active || policy->schedules.empty()) {
    c.level = Level::kOk;
    c.summary = "policy " + row.name + " has no active schedule";
    return c;
  }
  // The newest run that completed serves every fire time before it started. A run queued or
  // running since then may serve the next one: until it ends the monitor does not judge (an
  // open alert stays open; it resolves when a run succeeds).
  HAVEN_ASSIGN(auto runs, recent_runs(ctx.status.catalog, row.id, 200));
  TimeNs last_ok = row.created_at;
  std::optional<TimeNs> active_since;
  for (const auto& r : runs) {
    const TimeNs start = std::max(r.started_at, r.scheduled_for.value_or(r.started_at));
    if (r.status == catalog::ExecStatus::kPending || r.status == catalog::ExecStatus::kRunning) {
      if (!active_since) active_since = start;
    } else if (r.status == catalog::ExecStatus::kCompleted) {
      last_ok = start;
      break;
    }
  }
  // The first fire time after it, over every schedule.
  TimeNs first_due = schedule::Cron::kNever;
  for (const auto& s : policy->schedules) {
    auto cron = schedule::Cron::parse(s.cron);
    auto zone = schedule::Zone::load(s.timezone);
    if (!cron.ok() || !zone.ok()) continue;
    first_due = std::min(first_due, cron->next(last_ok, *zone));
  }
  if (first_due == schedule::Cron::kNever || first_due > now) {
    c.level = Level::kOk;
    c.summary = "policy " + row.name + " has run on schedule";
    return c;
  }
  if (active_since && *active_since + kMinute >= first_due) {
    c = unknown(c.kind, "policy " + row.name + "'s run due at " + format_time(first_due) +
                            " is in progress since " + format_time(*active_since));
    return c;
  }
  const double late_minutes = static_cast<double>(now - first_due) / static_cast<double>(kMinute);
  c.level = against(late_minutes, m);
  c.details = {{"due", format_time(first_due)}, {"late_minutes", std::floor(late_minutes)}};
  c.summary = c.level == Level::kOk
                  ? "policy " + row.name + "'s run due at " + format_time(first_due) +
                        " has not started yet (" + format_span(late_minutes * 60) + " late)"
                  : "policy " + row.name + " missed its run due at " + format_time(first_due) +
                        ": nothing started for " + format_span(late_minutes * 60);
  return c;
}

Result<Condition> failure_rate(const EvalContext& ctx, const config::Monitor& m,
                               const catalog::PolicyRow& policy) {
  Condition c;
  c.kind = "alert:backup-failure-rate";
  HAVEN_ASSIGN(auto runs, recent_runs(ctx.status.catalog, policy.id, std::max(m.window * 4, 50)));
  int seen = 0, bad = 0;
  for (const auto& r : runs) {
    if (!finished(r.status)) continue;
    seen++;
    if (failed(r.status)) bad++;
    if (seen == m.window) break;
  }
  if (seen == 0) return unknown(c.kind, "policy " + policy.name + " has no finished runs yet");
  const double percent = 100.0 * bad / seen;
  c.level = against(percent, m);
  c.details = {{"failed", bad}, {"runs", seen}, {"percent", std::round(percent * 10) / 10}};
  c.summary = "policy " + policy.name + ": " + std::to_string(bad) + " of the last " +
              std::to_string(seen) + " runs failed (" + num(percent) + " %)";
  return c;
}

Result<std::vector<Condition>> restore_capability(const EvalContext& ctx, const config::Monitor& m,
                                                  const catalog::PolicyRow& policy, TimeNs now) {
  std::vector<Condition> out;
  Condition c;
  c.kind = "alert:restore-capability";
  HAVEN_ASSIGN(auto last_success, ctx.status.catalog.last_successful_execution(policy.id));
  auto spec = config::policy_from_json(policy.spec, ctx.status.config.locations);
  const config::Location* loc = spec.ok() ? ctx.status.config.find_location(spec->location) : nullptr;
  std::string unreadable;
  if (last_success && last_success->snapshot_id && loc && ctx.read_snapshot) {
    if (Status st = ctx.read_snapshot(*loc, *last_success->snapshot_id); !st.ok()) {
      unreadable = st.error().message();
    }
  }
  HAVEN_ASSIGN(auto restored, ctx.status.catalog.last_completed_restore(policy.id));
  if (!unreadable.empty()) {
    c.level = Level::kCritical;
    c.summary = "policy " + policy.name + ": the newest snapshot cannot be read: " + unreadable;
  } else if (!last_success) {
    c = unknown(c.kind, "policy " + policy.name + " has nothing to restore yet");
  } else if (!restored) {
    c.level = Level::kWarning;
    c.summary = "policy " + policy.name + "'s backups were never restored: run a restore (or a "
                "drill) to prove they can be";
  } else {
    const TimeNs at = restored->completed_at.value_or(restored->started_at);
    const double days = static_cast<double>(now - at) / static_cast<double>(kDay);
    c.level = against(days, m);
    c.details = {{"last_restore", restored->request_id}, {"days_since", std::floor(days)}};
    c.summary = "policy " + policy.name + ": last restored " + format_span(days * 86400) + " ago";
  }
  out.push_back(std::move(c));

  HAVEN_ASSIGN(PolicyStatus s, policy_status(ctx.status, policy, now));
  Condition r;
  r.key_suffix = "rto";
  r.kind = "alert:rto-warning";
  if (!s.rto.target_seconds || !s.rto.seconds) {
    r = unknown(r.kind, "policy " + policy.name + ": no RTO estimate against a target (" +
                            (s.rto.target_seconds ? s.rto.note : "no rto target") + ")");
    r.key_suffix = "rto";
  } else {
    r.level = s.rto.level;
    r.kind = r.level == Level::kCritical ? "alert:rto-critical" : "alert:rto-warning";
    r.details = {{"rto_seconds", std::round(*s.rto.seconds)},
                 {"target_seconds", *s.rto.target_seconds},
                 {"restore_bytes", s.restore_bytes},
                 {"restore_mbps", std::round(s.restore_mbps * 100) / 100},
                 {"basis", s.restore_mbps_measured ? "measured" : "default"}};
    r.summary = "policy " + policy.name + ": a restore would take about " + format_span(*s.rto.seconds) +
                "; the RTO target is " + format_span(static_cast<double>(*s.rto.target_seconds));
  }
  out.push_back(std::move(r));
  return out;
}

Result<Condition> integrity(const EvalContext& ctx, const config::Monitor& m,
                            const catalog::PolicyRow& policy, TimeNs now) {
  Condition c;
  c.kind = "alert:integrity-check";
  HAVEN_ASSIGN(auto runs, recent_runs(ctx.status.catalog, policy.id, 500));
  for (const auto& r : runs) {
    if (!r.integrity_check_status) continue;
    const auto st = *r.integrity_check_status;
    if (st == catalog::IntegrityStatus::kFailed) {
      c.level = Level::kCritical;
      c.details = {{"execution_id", r.execution_id}};
      c.summary = "policy " + policy.name + ": the integrity check after " + r.execution_id +
                  " failed";
      return c;
    }
    if (st == catalog::IntegrityStatus::kPassed) {
      const TimeNs at = r.integrity_check_completed_at.value_or(r.started_at);
      const double days = static_cast<double>(now - at) / static_cast<double>(kDay);
      c.level = against(days, m);
      c.details = {{"execution_id", r.execution_id}, {"days_since", std::floor(days)}};
      c.summary = "policy " + policy.name + ": the last integrity check passed " +
                  format_span(days * 86400) + " ago";
      return c;
    }
  }
  return unknown(c.kind, "policy " + policy.name + " has no integrity check result yet");
}

Condition capacity(const EvalContext& ctx, const config::Monitor& m) {
  Condition c;
  c.kind = "alert:storage-capacity";
  auto h = ctx.health ? ctx.health(m.location) : std::nullopt;
  if (!h) return unknown(c.kind, "location " + m.location + " was not health-checked yet");
  if (!h->used_percent) {
    return unknown(c.kind, "location " + m.location + " has no known capacity: give it capacity_gb");
  }
  c.level = against(*h->used_percent, m);
  c.details = {{"used_bytes", *h->used_bytes},
               {"capacity_bytes", *h->capacity_bytes},
               {"used_percent", std::round(*h->used_percent * 10) / 10}};
  c.summary = "location " + m.location + " is " + num(*h->used_percent) + " % full";
  return c;
}

}  // namespace

nlohmann::json HealthResult::to_json() const {
  nlohmann::json j = {{"location", location},
                      {"time", format_time(time)},
                      {"status", std::string(catalog::to_string(status))},
                      {"reachable", reachable},
                      {"writable", writable},
                      {"locks", locks},
                      {"stale_locks", stale_locks},
                      {"problems", problems}};
  if (used_bytes) j["used_bytes"] = *used_bytes;
  if (capacity_bytes) j["capacity_bytes"] = *capacity_bytes;
  if (used_percent) j["used_percent"] = std::round(*used_percent * 10) / 10;
  if (read_data_subset) {
    j["read_data_subset"] = *read_data_subset;
    j["read_data_problems"] = read_data_problems.value_or(0);
  }
  return j;
}

nlohmann::json Evaluation::to_json() const {
  nlohmann::json conds = nlohmann::json::array();
  for (const auto& c : conditions) {
    conds.push_back({{"key_suffix", c.key_suffix},
                     {"kind", c.kind},
                     {"level", level_name(c.level)},
                     {"summary", c.summary},
                     {"details", c.details}});
  }
  return {{"level", level_name(level)}, {"message", message}, {"conditions", conds}};
}

std::string alert_key(const std::string& monitor_name, const Condition& c) {
  return c.key_suffix.empty() ? monitor_name : monitor_name + "/" + c.key_suffix;
}

Result<Evaluation> evaluate(const EvalContext& ctx, const config::Monitor& m, TimeNs now) {
  Evaluation e;
  std::optional<catalog::PolicyRow> policy;
  if (!m.policy.empty()) {
    auto row = ctx.status.catalog.get_policy_by_name(m.policy);
    if (!row.ok() && row.error().code() != Error::Code::kNotFound) return row.error();
    if (row.ok()) {
      policy = std::move(*row);
      e.policy_id = policy->id;
    }
  }
  auto one = [&](Result<Condition> c) -> Status {
    if (!c.ok()) return c.error();
    e.conditions.push_back(std::move(*c));
    return ok_status();
  };
  const bool needs_policy = m.type != config::MonitorKind::kStorageCapacity &&
                            m.type != config::MonitorKind::kReplicationLag &&
                            m.type != config::MonitorKind::kDrDrill;
  if (needs_policy && !policy) {
    // Nothing to judge: the alerts it raised about the policy are over (the service resolves
    // alerts of conditions a monitor no longer reports).
    e.message = "policy " + m.policy + " does not exist";
  } else {
    switch (m.type) {
      case config::MonitorKind::kBackupSuccess:
        HAVEN_TRY(one(backup_success(ctx, m, *policy)));
        break;
      case config::MonitorKind::kRpo:
        HAVEN_TRY(one(rpo(ctx, m, *policy, now)));
        break;
      case config::MonitorKind::kMissedSchedule:
        HAVEN_TRY(one(missed_schedule(ctx, m, *policy, now)));
        break;
      case config::MonitorKind::kBackupFailureRate:
        HAVEN_TRY(one(failure_rate(ctx, m, *policy)));
        break;
      case config::MonitorKind::kRestoreCapability: {
        HAVEN_ASSIGN(auto conds, restore_capability(ctx, m, *policy, now));
        for (auto& c : conds) e.conditions.push_back(std::move(c));
        break;
      }
      case config::MonitorKind::kIntegrityCheck:
        HAVEN_TRY(one(integrity(ctx, m, *policy, now)));
        break;
      case config::MonitorKind::kStorageCapacity:
        e.conditions.push_back(capacity(ctx, m));
        break;
      case config::MonitorKind::kDrDrill: {
        HAVEN_ASSIGN(auto conds, dr_drill(ctx, m, now));
        for (auto& c : conds) e.conditions.push_back(std::move(c));
        break;
      }
      case config::MonitorKind::kReplicationLag: {
        const config::Location* loc = ctx.status.config.find_location(m.location);
        if (loc == nullptr || loc->secondary_regions.empty() || !ctx.replication) {
          e.conditions.push_back(unknown(
              "alert:replication-lag",
              "location " + m.location +
                  (loc == nullptr ? " is not configured"
                                  : " has no secondary regions: replication is not configured, "
                                    "so there is no lag to measure")));
          break;
        }
        for (const auto& r : ctx.replication()) {
          if (r.location != m.location) continue;
          Condition c;
          c.kind = "alert:replication-lag";
          c.key_suffix = r.region;
          const int64_t lag = r.lag_seconds(now);
          c.details = r.to_json(now);
          if (r.state == catalog::ReplicationState::kStopped) {
            c.level = Level::kUnknown;
            c.summary = "location " + m.location + ", region " + r.region +
                        ": replication is stopped";
          } else if (r.status == "failed") {
            c.level = Level::kCritical;
            c.summary = "location " + m.location + ", region " + r.region +
                        " cannot be reached: " + r.last_error + " (" +
                        std::to_string(r.pending_objects) + " object(s) behind)";
          } else {
            c.level = against(static_cast<double>(lag), m);
            c.summary = "location " + m.location + ", region " + r.region + " is " +
                        format_span(lag) + " behind (" + std::to_string(r.pending_objects) +
                        " object(s), " + std::to_string(r.pending_bytes) + " bytes" +
                        (r.state == catalog::ReplicationState::kPaused ? "; paused" : "") + ")";
          }
          e.conditions.push_back(std::move(c));
        }
        if (e.conditions.empty()) {
          e.conditions.push_back(unknown("alert:replication-lag",
                                         "location " + m.location + ": no region measured yet"));
        }
        break;
      }
    }
  }
  e.level = Level::kUnknown;
  for (const auto& c : e.conditions) {
    if (rank(c.level) > rank(e.level)) e.level = c.level;
  }
  if (!e.conditions.empty()) e.message = e.conditions.front().summary;
  return e;
}

catalog::MonitorType monitor_type(config::MonitorKind k) {
  return static_cast<catalog::MonitorType>(static_cast<int>(k));
}

catalog::MonitorRow monitor_row(const config::Monitor& m, catalog::PolicySource source) {
  catalog::MonitorRow r;
  r.monitor_name = m.name;
  r.monitor_type = monitor_type(m.type);
  r.resource_filters = nlohmann::json::object();
  if (!m.policy.empty()) r.resource_filters["policy"] = m.policy;
  if (!m.location.empty()) r.resource_filters["location"] = m.location;
  if (!m.plan.empty()) r.resource_filters["plan"] = m.plan;
  if (m.type == config::MonitorKind::kBackupFailureRate) r.resource_filters["window"] = m.window;
  r.check_frequency_minutes = m.check_frequency_minutes;
  r.warning_threshold = {{"value", m.warning_or_default()}};
  r.critical_threshold = {{"value", m.critical_or_default()}};
  r.alert_channels = m.channels;
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : m.escalation) {
    steps.push_back({{"after_minutes", s.after_minutes}, {"channels", s.channels}});
  }
  r.escalation_policy = {{"steps", steps}};
  r.is_active = m.is_active;
  r.source = source;
  return r;
}

Result<config::Monitor> monitor_of(const catalog::MonitorRow& r) {
  config::Monitor m;
  m.name = r.monitor_name;
  m.type = static_cast<config::MonitorKind>(static_cast<int>(r.monitor_type));
  try {
    if (r.resource_filters.is_object()) {
      m.policy = r.resource_filters.value("policy", "");
      m.location = r.resource_filters.value("location", "");
      m.plan = r.resource_filters.value("plan", "");
      m.window = r.resource_filters.value("window", 10);
    }
    if (r.warning_threshold.is_object() && r.warning_threshold.contains("value")) {
      m.warning = r.warning_threshold["value"].get<double>();
    }
    if (r.critical_threshold.is_object() && r.critical_threshold.contains("value")) {
      m.critical = r.critical_threshold["value"].get<double>();
    }
    if (r.escalation_policy.is_object() && r.escalation_policy.contains("steps")) {
      for (const auto& s : r.escalation_policy["steps"]) {
        config::EscalationStep step;
        step.after_minutes = s.at("after_minutes").get<int>();
        step.channels = s.at("channels").get<std::vector<std::string>>();
        m.escalation.push_back(std::move(step));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return Error(Error::Code::kCorrupt, "monitor " + r.monitor_name +
                                            ": its catalog row does not decode (" + e.what() + ")");
  }
  m.check_frequency_minutes = r.check_frequency_minutes;
  m.channels = r.alert_channels;
  m.is_active = r.is_active;
  return m;
}

}  // namespace haven::monitor

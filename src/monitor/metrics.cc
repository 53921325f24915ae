// monitor/metrics.cc — the Prometheus text exposition of MetricsInput (metrics.h).
//
// Layout: one family after the other, in the header's order, each opened by its # HELP and
// # TYPE lines; inside a family the series go by policy name (then id), location name, or the
// enumerations' order, so two scrapes of the same state are byte-identical. A family without
// series keeps its HELP and TYPE lines (valid for the parser and for promtool).
#include "monitor/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string_view>
#include <tuple>
#include <utility>

namespace haven::monitor {
namespace {

using catalog::AlertSeverity;
using catalog::AlertState;
using catalog::ExecStatus;
using catalog::HealthStatus;

using Label = std::pair<std::string_view, std::string_view>;
using Labels = std::vector<Label>;

// A label value, escaped as the text format wants it: backslash, double quote and line feed.
void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

// HELP text escapes only backslash and line feed.
void append_help(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

std::string format_int(int64_t v) { return std::to_string(v); }

// A finite double: integral values as integers (no exponent, no ".0"), others as the shortest
// text that reads back to the same double. nullopt for NaN and infinities, which are never
// exposed (a series is left out instead).
std::optional<std::string> format_double(double v) {
  if (!std::isfinite(v)) return std::nullopt;
  // 2^63 is exact as a double; below it every integral double fits an int64_t.
  if (v == std::trunc(v) && std::fabs(v) < 9223372036854775808.0) {
    return format_int(static_cast<int64_t>(v));
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// Nanoseconds since the epoch as seconds, splitting off whole seconds first so the fraction
// keeps its precision.
double to_seconds(TimeNs t) {
  constexpr int64_t kNs = 1'000'000'000;
  int64_t sec = t / kNs, rem = t % kNs;
  if (rem < 0) {
    sec -= 1;
    rem += kNs;
  }
  return static_cast<double>(sec) + static_cast<double>(rem) / 1e9;
}

class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    append_help(out_, help);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  void sample(std::string_view name, const Labels& labels, int64_t value) {
    line(name, labels, format_int(value));
  }
  // Left out when the value is not finite.
  void sample(std::string_view name, const Labels& labels, double value) {
    if (auto text = format_double(value)) line(name, labels, *text);
  }

  std::string take() { return std::move(out_); }

 private:
  void line(std::string_view name, const Labels& labels, const std::string& value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += k;
        out_ += "=\"";
        append_label_value(out_, v);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }

  std::string out_;
};

// Nearest-rank quantile of sorted, non-empty values: the smallest value with at least q·n
// values at or below it.
double nearest_rank(const std::vector<double>& sorted, double q) {
  const auto n = sorted.size();
  auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(n)));
  rank = std::clamp<size_t>(rank, 1, n);
  return sorted[rank - 1];
}

void policy_families(Exposition& e, const MetricsInput& in) {
  std::vector<const PolicyStatus*> policies;
  for (const auto& p : in.status.policies) policies.push_back(&p);
  std::sort(policies.begin(), policies.end(), [](const PolicyStatus* a, const PolicyStatus* b) {
    return std::tie(a->name, a->id) < std::tie(b->name, b->id);
  });

  e.family("haven_policy_last_success_timestamp_seconds", "gauge",
           "Start time of the policy's newest completed backup (Unix seconds).");
  for (const auto* p : policies) {
    if (p->last_success) {
      e.sample("haven_policy_last_success_timestamp_seconds", {{"policy", p->name}},
               to_seconds(p->last_success->started_at));
    }
  }

  e.family("haven_policy_rpo_seconds", "gauge",
           "RPO now: seconds since the newest restorable point (absent while unknown).");
  for (const auto* p : policies) {
    if (p->rpo.seconds) {
      e.sample("haven_policy_rpo_seconds", {{"policy", p->name}}, *p->rpo.seconds);
    }
  }

  e.family("haven_policy_rpo_target_seconds", "gauge", "The policy's RPO target in seconds.");
  for (const auto* p : policies) {
    if (p->rpo.target_seconds) {
      e.sample("haven_policy_rpo_target_seconds", {{"policy", p->name}}, *p->rpo.target_seconds);
    }
  }

  e.family("haven_policy_rto_estimate_seconds", "gauge",
           "Estimated recovery time: seconds to restore the newest completed backup.");
  for (const auto* p : policies) {
    if (p->rto.seconds) {
      e.sample("haven_policy_rto_estimate_seconds", {{"policy", p->name}}, *p->rto.seconds);
    }
  }

  e.family("haven_policy_rto_target_seconds", "gauge", "The policy's RTO target in seconds.");
  for (const auto* p : policies) {
    if (p->rto.target_seconds) {
      e.sample("haven_policy_rto_target_seconds", {{"policy", p->name}}, *p->rto.target_seconds);
    }
  }

  e.family("haven_policy_status", "gauge",
           "1 for the policy's level (the worse of RPO and RTO), 0 for the other levels.");
  for (const auto* p : policies) {
    const Level current = p->level();
    for (Level l : {Level::kOk, Level::kWarning, Level::kCritical, Level::kUnknown}) {
      e.sample("haven_policy_status", {{"policy", p->name}, {"level", level_name(l)}},
               int64_t{l == current ? 1 : 0});
    }
  }

  // Every known policy gets its series (zeros before its first run), so that a series does
  // not appear out of nothing; statistics of a policy the status does not know are left out.
  std::map<std::string_view, const catalog::Catalog::ExecutionStats*> stats;
  for (const auto& s : in.executions) stats.emplace(s.policy_id, &s);
  const catalog::Catalog::ExecutionStats empty;
  auto stats_of = [&](const PolicyStatus* p) {
    auto it = stats.find(p->id);
    return it == stats.end() ? &empty : it->second;
  };

  e.family("haven_backup_executions", "gauge", "Backup executions in the catalog by status.");
  for (const auto* p : policies) {
    const auto* s = stats_of(p);
    for (ExecStatus st : catalog::all_values<ExecStatus>()) {
      auto it = s->by_status.find(st);
      e.sample("haven_backup_executions", {{"policy", p->name}, {"status", catalog::to_string(st)}},
               it == s->by_status.end() ? int64_t{0} : it->second);
    }
  }

  e.family("haven_backup_bytes", "gauge", "Backup size in bytes of the completed runs, together.");
  for (const auto* p : policies) {
    e.sample("haven_backup_bytes", {{"policy", p->name}}, stats_of(p)->bytes_completed);
  }

  e.family("haven_backup_duration_seconds", "histogram", "Durations of completed backup runs.");
  constexpr auto& kBounds = catalog::Catalog::kDurationBuckets;
  for (const auto* p : policies) {
    const auto* s = stats_of(p);
    for (size_t i = 0; i < kBounds.size(); i++) {
      const std::string le = format_int(kBounds[i]);
      e.sample("haven_backup_duration_seconds_bucket", {{"policy", p->name}, {"le", le}},
               s->duration_le[i]);
    }
    e.sample("haven_backup_duration_seconds_bucket", {{"policy", p->name}, {"le", "+Inf"}},
             s->duration_count);
    e.sample("haven_backup_duration_seconds_sum", {{"policy", p->name}}, s->duration_sum);
    e.sample("haven_backup_duration_seconds_count", {{"policy", p->name}}, s->duration_count);
  }
}

void scheduler_families(Exposition& e, const MetricsInput& in) {
  e.family("haven_scheduler_fires_total", "counter", "Schedule fires since the server started.");
  e.sample("haven_scheduler_fires_total", {}, static_cast<int64_t>(in.scheduler_fires));

  e.family("haven_scheduler_fire_delay_seconds", "summary",
           "Delay between a schedule's fire time and the job's start, over the kept delays.");
  std::vector<double> delays;
  double sum = 0;
  for (double d : in.fire_delays_seconds) {
    if (!std::isfinite(d)) continue;
    delays.push_back(d);
    sum += d;
  }
  std::sort(delays.begin(), delays.end());
  if (!delays.empty()) {  // no quantiles of nothing (they would be NaN)
    for (auto [q, text] : {std::pair{0.5, "0.5"}, std::pair{0.99, "0.99"}, std::pair{1.0, "1"}}) {
      e.sample("haven_scheduler_fire_delay_seconds", {{"quantile", text}}, nearest_rank(delays, q));
    }
  }
  e.sample("haven_scheduler_fire_delay_seconds_sum", {}, sum);
  e.sample("haven_scheduler_fire_delay_seconds_count", {}, static_cast<int64_t>(delays.size()));

  e.family("haven_scheduler_clock_jumps_total", "counter",
           "Wall-clock jumps the scheduler noticed since the server started.");
  e.sample("haven_scheduler_clock_jumps_total", {}, int64_t{in.clock_jumps});

  e.family("haven_jobs_queued", "gauge", "Jobs waiting for a slot.");
  e.sample("haven_jobs_queued", {}, static_cast<int64_t>(in.jobs_queued));
  e.family("haven_jobs_running", "gauge", "Jobs running now.");
  e.sample("haven_jobs_running", {}, static_cast<int64_t>(in.jobs_running));
  e.family("haven_jobs_max_parallel", "gauge", "Jobs that may run at once.");
  e.sample("haven_jobs_max_parallel", {}, static_cast<int64_t>(in.jobs_max_parallel));
}

void location_families(Exposition& e, const MetricsInput& in) {
  std::vector<const LocationStatus*> locations;
  for (const auto& l : in.status.locations) locations.push_back(&l);
  std::sort(locations.begin(), locations.end(),
            [](const LocationStatus* a, const LocationStatus* b) { return a->name < b->name; });

  e.family("haven_location_health", "gauge",
           "1 for the storage location's health status (the latest check), 0 for the others.");
  for (const auto* l : locations) {
    for (HealthStatus st : catalog::all_values<HealthStatus>()) {
      e.sample("haven_location_health",
               {{"location", l->name}, {"status", catalog::to_string(st)}},
               int64_t{st == l->health ? 1 : 0});
    }
  }

  // in.health is a std::map: by location name already.
  e.family("haven_location_used_bytes", "gauge",
           "Bytes used at the storage location (when known).");
  for (const auto& [name, h] : in.health) {
    if (h.used_bytes) e.sample("haven_location_used_bytes", {{"location", name}}, *h.used_bytes);
  }
  e.family("haven_location_capacity_bytes", "gauge",
           "Capacity of the storage location in bytes (when known).");
  for (const auto& [name, h] : in.health) {
    if (h.capacity_bytes) {
      e.sample("haven_location_capacity_bytes", {{"location", name}}, *h.capacity_bytes);
    }
  }
}

void alert_families(Exposition& e, const MetricsInput& in) {
  e.family("haven_alerts_open", "gauge", "Unresolved alerts by severity and state.");
  for (AlertSeverity sev : catalog::all_values<AlertSeverity>()) {
    for (AlertState st : {AlertState::kOpen, AlertState::kAcknowledged}) {
      const auto n = std::count_if(in.status.alerts.begin(), in.status.alerts.end(),
                                   [&](const catalog::AlertRow& a) {
                                     return a.severity == sev && a.state == st;
                                   });
      e.sample("haven_alerts_open",
               {{"severity", catalog::to_string(sev)}, {"state", catalog::to_string(st)}},
               static_cast<int64_t>(n));
    }
  }

  e.family("haven_alert_notifications_total", "counter",
           "Alert notification attempts by outcome since the server started.");
  e.sample("haven_alert_notifications_total", {{"outcome", "delivered"}},
           static_cast<int64_t>(in.notifications_delivered));
  e.sample("haven_alert_notifications_total", {{"outcome", "retried"}},
           static_cast<int64_t>(in.notifications_retried));
  e.sample("haven_alert_notifications_total", {{"outcome", "failed"}},
           static_cast<int64_t>(in.notifications_failed));

  e.family("haven_audit_records", "gauge", "Records in the audit log.");
  e.sample("haven_audit_records", {}, in.audit_records);
}

void replication_families(Exposition& e, const MetricsInput& in) {
  if (in.replication.empty()) return;
  const TimeNs now = in.now != 0 ? in.now : haven::now();
  auto labels = [](const jobs::RegionStatus& r) {
    return Labels{{"location", r.location}, {"region", r.region}};
  };
  e.family("haven_replication_lag_seconds", "gauge",
           "Age of the oldest object a secondary region does not hold yet (0 when in step).");
  for (const auto& r : in.replication) e.sample("haven_replication_lag_seconds", labels(r), r.lag_seconds(now));
  e.family("haven_replication_rpo_target_seconds", "gauge",
           "The location's replication RPO target (replication.rpo).");
  for (const auto& r : in.replication) {
    e.sample("haven_replication_rpo_target_seconds", labels(r), r.rpo_target_seconds);
  }
  e.family("haven_replication_pending_objects", "gauge", "Objects a region does not hold yet.");
  for (const auto& r : in.replication) e.sample("haven_replication_pending_objects", labels(r), r.pending_objects);
  e.family("haven_replication_pending_bytes", "gauge", "Bytes a region does not hold yet.");
  for (const auto& r : in.replication) e.sample("haven_replication_pending_bytes", labels(r), r.pending_bytes);
  e.family("haven_replication_copied_bytes_total", "counter",
           "Bytes copied to a region since the server started.");
  for (const auto& r : in.replication) {
    e.sample("haven_replication_copied_bytes_total", labels(r), r.copied_bytes);
  }
  e.family("haven_replication_newest_snapshot_timestamp_seconds", "gauge",
           "Time of the newest snapshot a region holds.");
  for (const auto& r : in.replication) {
    if (r.newest_snapshot_at) {
      e.sample("haven_replication_newest_snapshot_timestamp_seconds", labels(r),
               static_cast<double>(*r.newest_snapshot_at) / 1e9);
    }
  }
  e.family("haven_replication_status", "gauge",
           "1 for the region's replication status (ok, warning, critical, failed, unknown), 0 "
           "for the others.");
  for (const auto& r : in.replication) {
    for (const char* st : {"ok", "warning", "critical", "failed", "unknown"}) {
      Labels l = labels(r);
      l.push_back({"status", st});
      e.sample("haven_replication_status", l, int64_t{r.status == st ? 1 : 0});
    }
  }
  e.family("haven_replication_state", "gauge",
           "1 for the region's state as operators set it (active, paused, stopped).");
  for (const auto& r : in.replication) {
    for (auto st : {catalog::ReplicationState::kActive, catalog::ReplicationState::kPaused,
                    catalog::ReplicationState::kStopped}) {
      Labels l = labels(r);
      l.push_back({"state", catalog::to_string(st)});
      e.sample("haven_replication_state", l, int64_t{r.state == st ? 1 : 0});
    }
  }
}

}  // namespace

std::string render_metrics(const MetricsInput& in) {
  Exposition e;
  policy_families(e, in);
  scheduler_families(e, in);
  location_families(e, in);
  alert_families(e, in);
  replication_families(e, in);
  return e.take();
}

}  // namespace haven::monitor

// server/api_monitor.cc — the monitoring part of the REST API: GET /api/status, GET /metrics
// (Prometheus), monitors, alerts (list, acknowledge) and the audit log (records, verify).
#include <algorithm>
#include <cmath>

#include "catalog/audit.h"
#include "monitor/metrics.h"
#include "server/api.h"

namespace haven::server {

namespace {

Error bad(const std::string& field, const std::string& why) {
  return Error(Error::Code::kInvalidArgument, field + ": " + why);
}

Error no_monitoring() {
  return Error(Error::Code::kNotFound, "monitoring is not running in this server");
}

Result<int> query_limit(const ApiRequest& r, int def, int max) {
  auto v = r.query_value("limit");
  if (!v) return def;
  char* end = nullptr;
  long n = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || n < 1 || n > max) {
    return bad("limit", "must be a whole number from 1 to " + std::to_string(max));
  }
  return static_cast<int>(n);
}

nlohmann::json monitor_json(const catalog::MonitorRow& row) {
  nlohmann::json j = {{"id", row.id},
                      {"monitor_name", row.monitor_name},
                      {"monitor_type", std::string(catalog::to_string(row.monitor_type))},
                      {"resource_filters", row.resource_filters},
                      {"check_frequency_minutes", row.check_frequency_minutes},
                      {"warning_threshold", row.warning_threshold},
                      {"critical_threshold", row.critical_threshold},
                      {"alert_channels", row.alert_channels},
                      {"escalation_policy", row.escalation_policy},
                      {"is_active", row.is_active},
                      {"last_check", row.last_check ? nlohmann::json(format_time(*row.last_check))
                                                    : nlohmann::json(nullptr)},
                      {"current_status", std::string(catalog::to_string(row.current_status))},
                      {"source", std::string(catalog::to_string(row.source))},
                      {"last_result", row.last_result},
                      {"created_at", format_time(row.created_at)},
                      {"updated_at", format_time(row.updated_at)}};
  return j;
}

}  // namespace

void add_monitoring_routes(HttpServer& http, std::shared_ptr<ApiContext> c) {
  auto ok = [](nlohmann::json body, int status = 200) { return ApiResponse{status, std::move(body)}; };

  http.add({"GET", "/api/status", Role::kViewer,
            "per policy RPO now and RTO estimate against target, last and next run; open alerts; "
            "locations' health",
            [c, ok](const ApiRequest&) -> Result<ApiResponse> {
              if (c->monitor == nullptr) return no_monitoring();
              HAVEN_ASSIGN(auto report, c->monitor->status());
              nlohmann::json out = monitor::to_json(report);
              // Each location's latest health check in full (what was found, and why).
              for (auto& l : out["locations"]) {
                auto h = c->monitor->health(l["name"].get<std::string>());
                l["health_check"] = h ? h->to_json() : nlohmann::json(nullptr);
              }
              return ok(out);
            }, {}});

  http.add({"GET", "/metrics", Role::kViewer, "Prometheus metrics (text exposition format)",
            [c](const ApiRequest&) -> Result<ApiResponse> {
              if (c->monitor == nullptr) return no_monitoring();
              monitor::MetricsInput in;
              HAVEN_ASSIGN(in.status, c->monitor->status());
              HAVEN_ASSIGN(in.executions, c->catalog.execution_stats());
              if (c->scheduler != nullptr) {
                in.scheduler_fires = c->scheduler->fires();
                in.clock_jumps = c->scheduler->clock_jumps();
                for (TimeNs d : c->scheduler->fire_delays()) {
                  in.fire_delays_seconds.push_back(static_cast<double>(d) / 1e9);
                }
              }
              in.jobs_queued = c->service.runner().queued_count();
              in.jobs_running = c->service.runner().running_count();
              in.jobs_max_parallel = c->service.runner().max_parallel();
              for (const auto& l : in.status.locations) {
                if (auto h = c->monitor->health(l.name)) in.health[l.name] = *h;
              }
              auto counters = c->monitor->counters();
              in.notifications_delivered = counters.delivered;
              in.notifications_retried = counters.retried;
              in.notifications_failed = counters.failed;
              HAVEN_ASSIGN(in.audit_records, c->catalog.audit_length());
              if (c->replicator != nullptr) in.replication = c->replicator->status();
              ApiResponse res;
              res.content_type = "text/plain; version=0.0.4; charset=utf-8";
              res.text = monitor::render_metrics(in);
              return res;
            }, {}});

  // --- monitors ---
  http.add({"GET", "/api/monitors", Role::kViewer, "monitors and their latest results",
            [c, ok](const ApiRequest&) -> Result<ApiResponse> {
              HAVEN_ASSIGN(auto rows, c->catalog.list_monitors());
              nlohmann::json out = nlohmann::json::array();
              for (const auto& row : rows) out.push_back(monitor_json(row));
              return ok({{"monitors", out}});
            }, {}});
  http.add({"PUT", "/api/monitors", Role::kAdmin, "create or replace a monitor of the API by name",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->monitor == nullptr) return no_monitoring();
              HAVEN_ASSIGN(nlohmann::json body, r.json());
              auto cfg = c->monitor->config();
              HAVEN_ASSIGN(auto policies, c->catalog.list_policies());
              std::vector<std::string> names;
              for (const auto& p : policies) names.push_back(p.name);
              auto checked = config::check_monitor_json(body, *cfg, names);
              if (!checked.ok()) {
                const config::Diagnostic& d = checked.diagnostics.front();
                std::string msg = (d.path.empty() ? std::string("monitor") : d.path) + ": " + d.message;
                if (!d.fix.empty()) msg += " (fix: " + d.fix + ")";
                return Error(Error::Code::kInvalidArgument, msg);
              }
              auto existing = c->catalog.get_monitor(checked.value.name);
              if (existing.ok() && existing->source == catalog::PolicySource::kConfig) {
                return Error(Error::Code::kAlreadyExists,
                             "monitor '" + existing->monitor_name + "' is defined in haven.yaml: "
                             "change it there and reload, or give the API's monitor another name");
              }
              HAVEN_ASSIGN(auto stored, c->catalog.upsert_monitor(
                                            monitor::monitor_row(checked.value, catalog::PolicySource::kApi)));
              audit(*c, r, "monitor.update", stored.monitor_name, {{"monitor", body}});
              return ok(monitor_json(stored), existing.ok() ? 200 : 201);
            }, {}});
  http.add({"DELETE", "/api/monitors/{id}", Role::kAdmin, "delete a monitor of the API",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              HAVEN_ASSIGN(auto row, c->catalog.get_monitor(r.params.at("id")));
              if (row.source == catalog::PolicySource::kConfig) {
                return Error(Error::Code::kAlreadyExists,
                             "monitor '" + row.monitor_name + "' is defined in haven.yaml: remove it there and reload");
              }
              if (c->monitor != nullptr) {
                HAVEN_TRY(c->monitor->remove_monitor(row.id));
              } else {
                HAVEN_TRY(c->catalog.delete_monitor(row.id));
              }
              audit(*c, r, "monitor.delete", row.monitor_name);
              return ok({{"deleted", row.id}});
            }, {}});
  http.add({"POST", "/api/monitors/{id}/check", Role::kOperator, "run a monitor's check now",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->monitor == nullptr) return no_monitoring();
              HAVEN_ASSIGN(auto row, c->catalog.get_monitor(r.params.at("id")));
              HAVEN_ASSIGN(auto e, c->monitor->check_now(row.monitor_name));
              return ok(e.to_json());
            }, {}});

  // --- alerts ---
  http.add({"GET", "/api/alerts", Role::kViewer, "alerts: unresolved (default) or all (?state=all)",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              bool all = false;
              if (auto s = r.query_value("state")) {
                if (*s == "all") all = true;
                else if (*s != "unresolved") return bad("state", "must be unresolved or all, not '" + *s + "'");
              }
              HAVEN_ASSIGN(int limit, query_limit(r, 100, 1000));
              HAVEN_ASSIGN(auto rows, c->catalog.list_alerts(!all, limit));
              nlohmann::json out = nlohmann::json::array();
              for (const auto& a : rows) {
                nlohmann::json j = monitor::alert_json(a);
                HAVEN_ASSIGN(auto sent, c->catalog.notifications_of(a.id));
                nlohmann::json notes = nlohmann::json::array();
                for (const auto& n : sent) {
                  notes.push_back({{"channel", n.channel},
                                   {"action", std::string(catalog::to_string(n.action))},
                                   {"escalation_level", n.escalation_level},
                                   {"state", std::string(catalog::to_string(n.state))},
                                   {"attempts", n.attempts},
                                   {"delivered_at", n.delivered_at ? nlohmann::json(format_time(*n.delivered_at))
                                                                   : nlohmann::json(nullptr)},
                                   {"last_error", n.last_error ? nlohmann::json(*n.last_error)
                                                               : nlohmann::json(nullptr)}});
                }
                j["notifications"] = notes;
                out.push_back(std::move(j));
              }
              return ok({{"alerts", out}});
            }, {}});
  http.add({"POST", "/api/alerts/{id}/acknowledge", Role::kOperator,
            "acknowledge an alert (its escalation stops)",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->monitor == nullptr) return no_monitoring();
              HAVEN_ASSIGN(auto a, c->monitor->acknowledge(r.params.at("id"), r.who.name));
              audit(*c, r, "alert.acknowledge", a.alert_key, {{"alert_id", a.id}});
              return ok(monitor::alert_json(a));
            }, {}});

  // --- audit ---
  http.add({"GET", "/api/audit", Role::kAdmin,
            "audit records in chain order (?since=RFC3339, ?after=SEQ, ?limit=)",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              TimeNs since = 0;
              if (auto v = r.query_value("since")) {
                auto t = parse_time(*v);
                if (!t) return bad("since", "'" + *v + "' is not an RFC 3339 time");
                since = *t;
              }
              int64_t after = 0;
              if (auto v = r.query_value("after")) {
                char* end = nullptr;
                long long n = std::strtoll(v->c_str(), &end, 10);
                if (v->empty() || *end != '\0' || n < 0) return bad("after", "must be a record's seq");
                after = n;
              }
              HAVEN_ASSIGN(int limit, query_limit(r, 1000, catalog::Catalog::kMaxEventBatch));
              HAVEN_ASSIGN(auto rows, c->catalog.audit_records(after, since, limit));
              nlohmann::json out = nlohmann::json::array();
              for (const auto& a : rows) out.push_back(monitor::audit_json(a));
              return ok({{"records", out},
                         {"next_after", rows.size() == static_cast<size_t>(limit)
                                            ? nlohmann::json(rows.back().seq)
                                            : nlohmann::json(nullptr)}});
            }, {}});
  http.add({"GET", "/api/audit/verify", Role::kAdmin, "check the audit log's hash chain",
            [c, ok](const ApiRequest&) -> Result<ApiResponse> {
              HAVEN_ASSIGN(auto v, catalog::verify_audit(c->catalog));
              nlohmann::json problems = nlohmann::json::array();
              for (const auto& p : v.problems) problems.push_back({{"seq", p.seq}, {"problem", p.what}});
              return ok({{"intact", v.ok()},
                         {"records", v.records},
                         {"last_seq", v.last_seq},
                         {"last_hash", v.last_hash},
                         {"problems", problems}});
            }, {}});
}

}  // namespace haven::server

#include "server/api.h"

#include <algorithm>
#include <cmath>

#include "catalog/tokens.h"
#include "server/openapi_doc.h"

namespace haven::server {

namespace {

template <typename T>
nlohmann::json opt(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}
nlohmann::json opt_time(const std::optional<TimeNs>& t) {
  return t ? nlohmann::json(format_time(*t)) : nlohmann::json(nullptr);
}
template <typename E>
nlohmann::json opt_enum(const std::optional<E>& v) {
  return v ? nlohmann::json(std::string(catalog::to_string(*v))) : nlohmann::json(nullptr);
}
std::string str(std::string_view s) { return std::string(s); }

Error bad(const std::string& field, const std::string& why) {
  return Error(Error::Code::kInvalidArgument, field + ": " + why);
}

Result<TimeNs> query_time(const ApiRequest& r, const std::string& name) {
  auto v = r.query_value(name);
  auto t = parse_time(*v);
  if (!t) return bad(name, "'" + *v + "' is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)");
  return *t;
}

// A policy by id or by name.
Result<catalog::PolicyRow> find_policy(catalog::Catalog& c, const std::string& key) {
  auto byid = c.get_policy(key);
  if (byid.ok()) return byid;
  auto byname = c.get_policy_by_name(key);
  if (byname.ok()) return byname;
  return Error(Error::Code::kNotFound, "no policy with id or name '" + key + "'");
}

Error from_config_file(const catalog::PolicyRow& row) {
  return Error(Error::Code::kAlreadyExists,
               "policy '" + row.name + "' is defined in haven.yaml: change it there and reload "
               "(SIGHUP), or give the API's policy another name");
}

Result<config::Policy> parse_policy_body(jobs::Service& service, const ApiRequest& r) {
  HAVEN_ASSIGN(nlohmann::json body, r.json());
  auto cfg = service.config();
  config::Checked<config::Policy> checked = config::check_policy_json(body, cfg->locations);
  if (!checked.ok()) {
    const config::Diagnostic& d = checked.diagnostics.front();
    std::string msg = d.path + ": " + d.message;
    if (!d.fix.empty()) msg += " (fix: " + d.fix + ")";
    if (checked.diagnostics.size() > 1) {
      msg += " (and " + std::to_string(checked.diagnostics.size() - 1) + " more problem(s))";
    }
    return Error(Error::Code::kInvalidArgument, msg);
  }
  return checked.value;
}

Result<std::string> location_id(catalog::Catalog& c, const std::string& name) {
  HAVEN_ASSIGN(catalog::LocationRow l, c.get_location_by_name(name));
  return l.id;
}

}  // namespace

std::string actor_of(const ApiRequest& r) { return "token:" + r.who.name; }

void audit(const ApiContext& c, const ApiRequest& r, const std::string& action,
           const std::string& target, nlohmann::json details) {
  if (c.audit != nullptr) (void)c.audit->record(actor_of(r), action, target, std::move(details));
}

nlohmann::json execution_json(const catalog::ExecutionRow& r) {
  return {{"id", r.id},
          {"policy_id", opt(r.policy_id)},
          {"execution_id", r.execution_id},
          {"backup_type", str(catalog::to_string(r.backup_type))},
          {"status", str(catalog::to_string(r.status))},
          {"started_at", format_time(r.started_at)},
          {"completed_at", opt_time(r.completed_at)},
          {"backup_size_bytes", opt(r.backup_size_bytes)},
          {"compressed_size_bytes", opt(r.compressed_size_bytes)},
          {"files_backed_up", opt(r.files_backed_up)},
          {"duration_seconds", opt(r.duration_seconds)},
          {"transfer_rate_mbps", opt(r.transfer_rate_mbps)},
          {"backup_location", r.backup_location},
          {"storage_class", r.storage_class},
          {"integrity_check_status", opt_enum(r.integrity_check_status)},
          {"integrity_check_completed_at", opt_time(r.integrity_check_completed_at)},
          {"error_message", opt(r.error_message)},
          {"retry_count", r.retry_count},
          {"created_at", format_time(r.created_at)},
          {"snapshot_id", opt(r.snapshot_id)},
          {"trigger", str(catalog::to_string(r.trigger))},
          {"priority", str(catalog::to_string(r.priority))},
          {"scheduled_for", opt_time(r.scheduled_for)}};
}

nlohmann::json restore_json(const catalog::RestoreRow& r) {
  return {{"id", r.id},
          {"request_id", r.request_id},
          {"restore_type", str(catalog::to_string(r.restore_type))},
          {"source_backup_id", opt(r.source_backup_id)},
          {"snapshot_id", opt(r.snapshot_id)},
          {"point_in_time", opt_time(r.point_in_time)},
          {"target_location", r.target_location},
          {"restore_scope", r.restore_scope},
          {"overwrite_existing", r.overwrite_existing},
          {"status", str(catalog::to_string(r.status))},
          {"started_at", format_time(r.started_at)},
          {"completed_at", opt_time(r.completed_at)},
          {"data_restored_gb", opt(r.data_restored_gb)},
          {"duration_seconds", opt(r.duration_seconds)},
          {"restore_rate_mbps", opt(r.restore_rate_mbps)},
          {"integrity_validated", r.integrity_validated},
          {"validation_results", r.validation_results},
          {"requested_by", opt(r.requested_by)},
          {"error_message", opt(r.error_message)},
          {"created_at", format_time(r.created_at)}};
}

nlohmann::json policy_json(const catalog::PolicyRow& r) {
  return {{"id", r.id},
          {"name", r.name},
          {"description", opt(r.description)},
          {"resource_type", str(catalog::to_string(r.resource_type))},
          {"schedule_cron", r.schedule_cron},
          {"timezone", r.timezone},
          {"retention_daily", r.retention_daily},
          {"retention_weekly", r.retention_weekly},
          {"retention_monthly", r.retention_monthly},
          {"retention_yearly", r.retention_yearly},
          {"backup_type", str(catalog::to_string(r.backup_type))},
          {"compression_enabled", r.compression_enabled},
          {"encryption_enabled", r.encryption_enabled},
          {"max_parallel_jobs", r.max_parallel_jobs},
          {"bandwidth_limit_mbps", opt(r.bandwidth_limit_mbps)},
          {"is_active", r.is_active},
          {"last_execution", opt_time(r.last_execution)},
          {"next_execution", opt_time(r.next_execution)},
          {"created_at", format_time(r.created_at)},
          {"updated_at", format_time(r.updated_at)},
          {"source", str(catalog::to_string(r.source))},
          {"spec", r.spec}};
}

const std::string& openapi_document() {
  static const std::string doc(kOpenApiJson);
  return doc;
}

void add_api_routes(HttpServer& http, ApiContext ctx) {
  auto c = std::make_shared<ApiContext>(ctx);
  add_monitoring_routes(http, c);
  add_replication_routes(http, c);
  add_dr_routes(http, c);
  auto ok = [](nlohmann::json body, int status = 200) { return ApiResponse{status, std::move(body)}; };

  http.add({"GET", "/health", std::nullopt, "liveness and job counts (no token)",
            [c, ok](const ApiRequest&) -> Result<ApiResponse> {
              return ok({{"status", "ok"},
                         {"version", c->version},
                         {"running_jobs", c->service.runner().running_count()},
                         {"queued_jobs", c->service.runner().queued_count()}});
            }, {}});

  http.add({"GET", "/api/scheduler", Role::kViewer, "the scheduler's plan and fire delays",
            [c, ok](const ApiRequest&) -> Result<ApiResponse> {
              nlohmann::json out = {{"running", c->scheduler != nullptr}};
              if (c->scheduler == nullptr) return ok(out);
              std::vector<TimeNs> d = c->scheduler->fire_delays();
              out["fires"] = c->scheduler->fires();
              out["clock_jumps"] = c->scheduler->clock_jumps();
              if (!d.empty()) {
                std::vector<TimeNs> sorted = d;
                std::sort(sorted.begin(), sorted.end());
                auto ms = [](TimeNs ns) { return static_cast<double>(ns) / 1e6; };
                auto pct = [&](double q) {
                  size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size()))) - 1;
                  return ms(sorted[std::min(i, sorted.size() - 1)]);
                };
                out["fire_delay_ms"] = {{"p50", pct(0.50)}, {"p99", pct(0.99)},
                                        {"max", ms(sorted.back())}, {"last", ms(d.back())}};
              }
              nlohmann::json plan = nlohmann::json::array();
              for (const auto& p : c->scheduler->plan()) {
                plan.push_back({{"policy_id", p.policy_id},
                                {"policy_name", p.policy_name},
                                {"at", format_time(p.at)},
                                {"strategy", str(config::name(p.strategy))}});
              }
              out["plan"] = plan;
              return ok(out);
            }, {}});

  http.add({"GET", "/api/openapi.json", Role::kViewer, "this document",
            [ok](const ApiRequest&) -> Result<ApiResponse> {
              return ok(nlohmann::json::parse(openapi_document()));
            }, {}});

  // --- policies ---
  auto create_or_replace = [c, ok](const ApiRequest& r, bool replace) -> Result<ApiResponse> {
    HAVEN_ASSIGN(config::Policy p, parse_policy_body(c->service, r));
    catalog::PolicyRow row = jobs::policy_row(p, catalog::PolicySource::kApi);
    HAVEN_ASSIGN(row.location_id, location_id(c->catalog, p.location));
    auto existing = c->catalog.get_policy_by_name(p.name);
    if (existing.ok()) {
      if (existing->source == catalog::PolicySource::kConfig) return from_config_file(*existing);
      if (!replace) {
        return Error(Error::Code::kAlreadyExists,
                     "name: a policy named '" + p.name + "' exists (PUT replaces it)");
      }
      row.id = existing->id;
      HAVEN_ASSIGN(catalog::PolicyRow stored, c->catalog.update_policy(row));
      if (c->scheduler) c->scheduler->replan();
      audit(*c, r, "policy.update", stored.name, {{"id", stored.id}, {"spec", stored.spec}});
      return ok(policy_json(stored), 200);
    }
    HAVEN_ASSIGN(catalog::PolicyRow stored, c->catalog.create_policy(row));
    if (c->scheduler) c->scheduler->replan();
    audit(*c, r, "policy.create", stored.name, {{"id", stored.id}, {"spec", stored.spec}});
    return ok(policy_json(stored), 201);
  };
  http.add({"POST", "/api/backup/policies", Role::kAdmin, "create a policy",
            [create_or_replace](const ApiRequest& r) { return create_or_replace(r, false); }, {}});
  http.add({"PUT", "/api/backup/policies", Role::kAdmin, "create or replace a policy by name",
            [create_or_replace](const ApiRequest& r) { return create_or_replace(r, true); }, {}});
  http.add({"GET", "/api/backup/policies", Role::kViewer, "list policies",
            [c, ok](const ApiRequest&) -> Result<ApiResponse> {
              HAVEN_ASSIGN(auto rows, c->catalog.list_policies());
              nlohmann::json out = nlohmann::json::array();
              for (const auto& row : rows) out.push_back(policy_json(row));
              return ok({{"policies", out}});
            }, {}});
  http.add({"GET", "/api/backup/policies/{id}", Role::kViewer, "one policy (id or name)",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              HAVEN_ASSIGN(auto row, find_policy(c->catalog, r.params.at("id")));
              return ok(policy_json(row));
            }, {}});
  http.add({"DELETE", "/api/backup/policies/{id}", Role::kAdmin, "delete a policy of the API",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              HAVEN_ASSIGN(auto row, find_policy(c->catalog, r.params.at("id")));
              if (row.source == catalog::PolicySource::kConfig) return from_config_file(row);
              if (c->service.policy_busy(row.id)) {
                return Error(Error::Code::kAlreadyExists,
                             "policy '" + row.name + "' has a run queued or running: cancel it first");
              }
              HAVEN_TRY(c->catalog.delete_policy(row.id));
              if (c->scheduler) c->scheduler->replan();
              audit(*c, r, "policy.delete", row.name, {{"id", row.id}});
              return ok({{"deleted", row.id}});
            }, {}});

  // --- executions ---
  http.add({"POST", "/api/backup/execute/{policyId}", Role::kOperator, "run a policy now",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              HAVEN_ASSIGN(nlohmann::json body, r.json());
              HAVEN_ASSIGN(auto row, find_policy(c->catalog, r.params.at("policyId")));
              jobs::ExecuteRequest req;
              req.trigger = catalog::Trigger::kManual;
              if (body.contains("backupType")) {
                const auto& t = body["backupType"];
                if (t == "full") req.strategy = config::Strategy::kFull;
                else if (t == "incremental") req.strategy = config::Strategy::kIncremental;
                else if (t == "differential") req.strategy = config::Strategy::kDifferential;
                else return bad("backupType", "must be full, incremental or differential, not " + t.dump());
              }
              if (body.contains("priority")) {
                const auto& p = body["priority"];
                if (p == "normal") req.priority = config::Priority::kNormal;
                else if (p == "high") req.priority = config::Priority::kHigh;
                else return bad("priority", "must be normal or high, not " + p.dump());
              }
              for (const auto& [k, v] : body.items()) {
                if (k != "backupType" && k != "priority") {
                  return bad(k, "unknown field (give backupType and/or priority)");
                }
              }
              req.requested_by = actor_of(r);
              HAVEN_ASSIGN(auto e, c->service.execute(row.id, req));
              return ok(execution_json(e), 202);
            }, {}});
  http.add({"GET", "/api/backup/executions", Role::kViewer, "executions, newest first, paged",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              catalog::ExecutionQuery q;
              if (auto v = r.query_value("policyId")) {
                HAVEN_ASSIGN(auto row, find_policy(c->catalog, *v));
                q.policy_id = row.id;
              }
              if (auto v = r.query_value("status")) {
                auto s = catalog::parse_enum<catalog::ExecStatus>(*v);
                if (!s) {
                  return bad("status", "'" + *v + "' is not one of pending, running, completed, "
                                       "failed, cancelled, interrupted, skipped");
                }
                q.status = *s;
              }
              if (r.query_value("from")) {
                HAVEN_ASSIGN(q.from, query_time(r, "from"));
              }
              if (r.query_value("to")) {
                HAVEN_ASSIGN(q.to, query_time(r, "to"));
              }
              if (auto v = r.query_value("limit")) {
                char* end = nullptr;
                long n = std::strtol(v->c_str(), &end, 10);
                if (v->empty() || *end != '\0' || n < 1 || n > catalog::ExecutionQuery::kMaxLimit) {
                  return bad("limit", "must be a whole number from 1 to " +
                                          std::to_string(catalog::ExecutionQuery::kMaxLimit));
                }
                q.limit = static_cast<int>(n);
              }
              if (auto v = r.query_value("cursor")) q.cursor = *v;
              auto page = c->catalog.query_executions(q);
              if (!page.ok()) {
                if (page.error().code() == Error::Code::kInvalidArgument) {
                  return bad("cursor", page.error().message());
                }
                return page.error();
              }
              nlohmann::json rows = nlohmann::json::array();
              for (const auto& e : page->rows) rows.push_back(execution_json(e));
              return ok({{"executions", rows},
                         {"next_cursor", page->next_cursor.empty() ? nlohmann::json(nullptr)
                                                                   : nlohmann::json(page->next_cursor)}});
            }, {}});
  http.add({"GET", "/api/backup/executions/{id}", Role::kViewer, "one execution",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              HAVEN_ASSIGN(auto e, c->catalog.get_execution(r.params.at("id")));
              return ok(execution_json(e));
            }, {}});
  http.add({"POST", "/api/backup/executions/{id}/cancel", Role::kOperator, "cancel an execution",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              HAVEN_TRY(c->service.cancel_execution(r.params.at("id")));
              HAVEN_ASSIGN(auto e, c->catalog.get_execution(r.params.at("id")));
              audit(*c, r, "backup.cancel", e.execution_id);
              return ok(execution_json(e), 202);
            }, {}});

  // --- restores ---
  http.add({"POST", "/api/restore/request", Role::kOperator, "restore a backup",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              HAVEN_ASSIGN(nlohmann::json body, r.json());
              static const std::set<std::string> known = {"restoreType", "sourceBackupId", "pointInTime",
                                                          "targetLocation", "restoreScope",
                                                          "overwriteExisting", "verify"};
              for (const auto& [k, v] : body.items()) {
                if (!known.count(k)) return bad(k, "unknown field");
              }
              jobs::RestoreRequest req;
              std::string type = body.value("restoreType", "");
              auto t = catalog::parse_enum<catalog::RestoreType>(type);
              if (!t) {
                return bad("restoreType", "must be full_restore, partial_restore, point_in_time or "
                                          "file_recovery, not '" + type + "'");
              }
              req.type = *t;
              if (!body.contains("sourceBackupId") || !body["sourceBackupId"].is_string()) {
                return bad("sourceBackupId", "required: the id or execution_id of a completed "
                                             "execution (GET /api/backup/executions)");
              }
              req.source_backup_id = body["sourceBackupId"];
              if (!body.contains("targetLocation") || !body["targetLocation"].is_string()) {
                return bad("targetLocation", "required: the absolute directory to restore into");
              }
              req.target_location = body["targetLocation"];
              if (body.contains("pointInTime")) {
                auto pit = body["pointInTime"].is_string()
                               ? parse_time(body["pointInTime"].get<std::string>())
                               : std::nullopt;
                if (!pit) return bad("pointInTime", "must be an RFC 3339 time");
                req.point_in_time = *pit;
              } else if (req.type == catalog::RestoreType::kPointInTime) {
                return bad("pointInTime", "required for a point_in_time restore");
              }
              if (body.contains("restoreScope")) {
                const auto& scope = body["restoreScope"];
                if (!scope.is_object() || (scope.contains("paths") && !scope["paths"].is_array())) {
                  return bad("restoreScope", "must be {\"paths\": [\"/path/as/backed/up\", ...]}");
                }
                for (const auto& p : scope.value("paths", nlohmann::json::array())) {
                  if (!p.is_string()) return bad("restoreScope.paths", "must be strings");
                  req.include.push_back(p);
                }
              }
              if ((req.type == catalog::RestoreType::kPartialRestore ||
                   req.type == catalog::RestoreType::kFileRecovery) && req.include.empty()) {
                return bad("restoreScope.paths", "a " + type + " needs the paths to restore");
              }
              if (body.contains("overwriteExisting")) {
                if (!body["overwriteExisting"].is_boolean()) return bad("overwriteExisting", "must be true or false");
                req.overwrite_existing = body["overwriteExisting"];
              }
              if (body.contains("verify")) {
                if (!body["verify"].is_boolean()) return bad("verify", "must be true or false");
                req.verify = body["verify"];
              }
              req.requested_by = r.who.name;
              req.request = body;
              auto e = c->catalog.get_execution(req.source_backup_id);
              if (!e.ok()) return bad("sourceBackupId", e.error().message());
              HAVEN_ASSIGN(auto row, c->service.restore(req));
              return ok(restore_json(row), 202);
            }, {}});
  http.add({"GET", "/api/restore/operations/{id}/status", Role::kViewer, "a restore's status",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              HAVEN_ASSIGN(auto row, c->catalog.get_restore(r.params.at("id")));
              return ok(restore_json(row));
            }, {}});

  http.add({"POST", "/api/restore/operations/{id}/validate", Role::kOperator,
            "compare a restore's target with its snapshot",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              HAVEN_ASSIGN(auto row, c->service.validate_restore(r.params.at("id"), actor_of(r)));
              return ok(restore_json(row), 202);
            }, {}});

  // --- tokens and the server ---
  auto token_json = [](const catalog::TokenRow& t) {
    auto when = [](const std::optional<TimeNs>& x) {
      return x ? nlohmann::json(format_time(*x)) : nlohmann::json(nullptr);
    };
    return nlohmann::json{{"name", t.name},
                          {"role", str(catalog::to_string(t.role))},
                          {"created_at", format_time(t.created_at)},
                          {"last_used_at", when(t.last_used_at)},
                          {"revoked_at", when(t.revoked_at)}};
  };
  http.add({"GET", "/api/tokens", Role::kAdmin, "API tokens (never their values)",
            [c, ok, token_json](const ApiRequest&) -> Result<ApiResponse> {
              HAVEN_ASSIGN(auto rows, c->catalog.list_tokens());
              nlohmann::json out = nlohmann::json::array();
              for (const auto& t : rows) out.push_back(token_json(t));
              return ok({{"tokens", out}});
            }, {}});
  http.add({"POST", "/api/tokens", Role::kAdmin, "create a token (its value is shown once)",
            [c, ok, token_json](const ApiRequest& r) -> Result<ApiResponse> {
              HAVEN_ASSIGN(nlohmann::json body, r.json());
              for (const auto& [k, v] : body.items()) {
                if (k != "name" && k != "role") return bad(k, "unknown field (the fields are name and role)");
              }
              if (!body.contains("name") || !body["name"].is_string() || body["name"].get<std::string>().empty()) {
                return bad("name", "required: a name for the token (who or what uses it)");
              }
              if (!body.contains("role") || !body["role"].is_string()) {
                return bad("role", "required: viewer, operator or admin");
              }
              std::string role_text = body["role"];
              auto role = catalog::parse_enum<catalog::Role>(role_text);
              if (!role) return bad("role", "must be viewer, operator or admin, not '" + role_text + "'");
              std::string name = body["name"];
              std::string token = catalog::new_token();
              auto row = c->catalog.create_token(name, *role, catalog::token_hash(token));
              if (!row.ok()) {
                if (row.error().code() == Error::Code::kAlreadyExists) {
                  return Error(Error::Code::kAlreadyExists, "name: a token named '" + name +
                                                                "' exists: pick another name, or revoke it first");
                }
                return row.error();
              }
              audit(*c, r, "token.create", name, {{"role", role_text}});
              nlohmann::json out = token_json(*row);
              out["token"] = token;  // the only time it is shown; the catalog keeps its hash
              return ok(out, 201);
            }, {}});
  http.add({"DELETE", "/api/tokens/{name}", Role::kAdmin, "revoke a token",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              const std::string& name = r.params.at("name");
              Status s = c->catalog.revoke_token(name);
              if (!s.ok()) {
                if (s.error().code() == Error::Code::kNotFound) {
                  return Error(Error::Code::kNotFound, "no active token named '" + name + "'");
                }
                return s.error();
              }
              audit(*c, r, "token.revoke", name);
              return ok({{"name", name}, {"revoked", true}});
            }, {}});
  http.add({"POST", "/api/server/reload", Role::kAdmin, "reload haven.yaml",
            [c, ok](const ApiRequest& r) -> Result<ApiResponse> {
              if (!c->reload) return Error(Error::Code::kNotFound, "this server has no configuration file to reload");
              HAVEN_TRY(c->reload());
              audit(*c, r, "server.reload", "haven.yaml");
              auto cfg = c->service.config();
              return ok({{"reloaded", true},
                         {"locations", cfg ? cfg->locations.size() : 0},
                         {"policies", cfg ? cfg->policies.size() : 0}});
            }, {}});

  // --- snapshots ---
  http.add({"GET", "/api/snapshots", Role::kViewer, "every location's snapshots",
            [c, ok](const ApiRequest&) -> Result<ApiResponse> {
              HAVEN_ASSIGN(auto snaps, c->service.snapshots());
              nlohmann::json out = nlohmann::json::array();
              for (const auto& s : snaps) {
                out.push_back({{"location", s.location},
                               {"id", s.id},
                               {"time", format_time(s.snapshot.time)},
                               {"hostname", s.snapshot.hostname},
                               {"paths", s.snapshot.paths},
                               {"tags", s.snapshot.tags},
                               {"strategy", s.snapshot.strategy}});
              }
              return ok({{"snapshots", out}});
            }, {}});

  // --- events ---
  http.add({"GET", "/api/events", Role::kViewer, "server-sent events (Last-Event-ID resumes)", {},
            [c](const ApiRequest& r, const StreamWriter& write, const CancelToken& stop) -> Status {
              int64_t after = c->bus.last_id();
              auto from = r.header("last-event-id");
              if (!from) from = r.query_value("after");
              if (from) {
                char* end = nullptr;
                long long n = std::strtoll(from->c_str(), &end, 10);
                if (!from->empty() && *end == '\0' && n >= 0) after = n;
              }
              if (!write("retry: 2000\n\n")) return ok_status();
              while (!stop.cancelled()) {
                HAVEN_ASSIGN(auto rows, c->catalog.events_after(after, 500));
                for (const auto& e : rows) {
                  std::string chunk = "id: " + std::to_string(e.id) + "\nevent: " + e.kind +
                                      "\ndata: " + e.payload.dump() + "\n\n";
                  if (!write(chunk)) return ok_status();
                  after = e.id;
                }
                if (rows.size() == 500) continue;
                if (!write(": keep-alive\n\n")) return ok_status();
                c->bus.wait_after(after, std::chrono::seconds(15), stop);
              }
              return ok_status();
            }});
}

}  // namespace haven::server

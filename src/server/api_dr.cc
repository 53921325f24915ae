// server/api_dr.cc — the disaster-recovery part of the REST API (seed 004): plans, executions
// (drills, planned tests, real recoveries with their approval), their status and report.
// dr::Service does the work; this file maps requests and rows.
#include "dr/record.h"
#include "server/api.h"

namespace haven::server {

namespace {

Error no_dr() { return Error(Error::Code::kNotFound, "disaster recovery is not running in this server"); }

nlohmann::json opt(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }
nlohmann::json opt_time(const std::optional<TimeNs>& t) {
  return t ? nlohmann::json(format_time(*t)) : nlohmann::json(nullptr);
}

nlohmann::json plan_json(const catalog::DrPlanRow& p) {
  nlohmann::json j = p.definition;
  j["id"] = p.id;
  j["source"] = catalog::to_string(p.source);
  j["isActive"] = p.is_active;
  j["lastTested"] = opt_time(p.last_tested);
  j["rto_hours"] = static_cast<double>(p.rto_seconds) / 3600.0;
  j["rpo_minutes"] = (p.rpo_seconds + 59) / 60;
  j["created_at"] = format_time(p.created_at);
  j["updated_at"] = format_time(p.updated_at);
  return j;
}

}  // namespace

nlohmann::json dr_execution_json(const catalog::DrExecutionRow& e) {
  return {{"id", e.id},
          {"plan_id", e.plan_id},
          {"plan_name", e.plan_name},
          {"execution_type", catalog::to_string(e.execution_type)},
          {"trigger_reason", e.trigger_reason},
          {"status", catalog::to_string(e.status)},
          {"started_at", format_time(e.started_at)},
          {"completed_at", opt_time(e.completed_at)},
          {"actual_rto_seconds", opt(e.actual_rto_seconds)},
          {"actual_rpo_seconds", opt(e.actual_rpo_seconds)},
          {"actual_rto_hours", e.actual_rto_seconds ? nlohmann::json(*e.actual_rto_seconds / 3600.0) : nlohmann::json(nullptr)},
          {"actual_rpo_minutes", e.actual_rpo_seconds ? nlohmann::json(*e.actual_rpo_seconds / 60.0) : nlohmann::json(nullptr)},
          {"rto_target_seconds", e.rto_target_seconds},
          {"rpo_target_seconds", e.rpo_target_seconds},
          {"executed_steps", e.executed_steps},
          {"failed_steps", e.failed_steps},
          {"success_criteria_met", e.success_criteria_met ? nlohmann::json(*e.success_criteria_met) : nlohmann::json(nullptr)},
          {"validation_results", e.validation_results},
          {"executed_by", e.executed_by},
          {"approval_status", catalog::to_string(e.approval_status)},
          {"approved_by", e.approved_by},
          {"approved_at", opt_time(e.approved_at)},
          {"error_message", e.error_message},
          {"execution_log", e.execution_log}};
}

void add_dr_routes(HttpServer& http, std::shared_ptr<ApiContext> c) {
  const std::string base = "/api/disaster-recovery";
  http.add({"GET", base + "/plans", Role::kViewer,
            "every disaster-recovery plan (haven.yaml's and the API's) with when it was last tested",
            [c](const ApiRequest&) -> Result<ApiResponse> {
              if (c->dr == nullptr) return no_dr();
              HAVEN_ASSIGN(auto rows, c->catalog.list_dr_plans());
              nlohmann::json all = nlohmann::json::array();
              for (const auto& p : rows) all.push_back(plan_json(p));
              return ApiResponse{200, {{"plans", all}}};
            }, {}});
  http.add({"POST", base + "/plans", Role::kAdmin,
            "create (or replace) a plan: name, planType, rto, rpo, steps, prerequisites, "
            "validation… as in haven.yaml's dr_plans, in camelCase",
            [c](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->dr == nullptr) return no_dr();
              HAVEN_ASSIGN(auto body, r.json());
              HAVEN_ASSIGN(auto row, c->dr->create_plan(body));
              audit(*c, r, "dr.plan.create", row.name, {{"plan", body}});
              return ApiResponse{201, plan_json(row)};
            }, {}});
  http.add({"GET", base + "/plans/{planId}", Role::kViewer, "one plan, by id or name",
            [c](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->dr == nullptr) return no_dr();
              HAVEN_ASSIGN(auto row, c->catalog.get_dr_plan(r.params.at("planId")));
              return ApiResponse{200, plan_json(row)};
            }, {}});
  http.add({"DELETE", base + "/plans/{planId}", Role::kAdmin,
            "delete a plan the API created, and its executions",
            [c](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->dr == nullptr) return no_dr();
              HAVEN_ASSIGN(auto row, c->catalog.get_dr_plan(r.params.at("planId")));
              if (row.source == catalog::PolicySource::kConfig) {
                return Error(Error::Code::kAlreadyExists,
                             "plan '" + row.name + "' is defined in haven.yaml: remove it there");
              }
              HAVEN_TRY(c->catalog.delete_dr_plan(row.id));
              audit(*c, r, "dr.plan.delete", row.name);
              return ApiResponse{200, {{"deleted", row.id}}};
            }, {}});
  http.add({"POST", base + "/execute/{planId}", Role::kOperator,
            "run a plan: executionType drill or planned_test (into a sandbox, at once) or "
            "disaster_recovery (on the real targets, once a second principal approves unless the "
            "plan says otherwise); triggerReason",
            [c](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->dr == nullptr) return no_dr();
              nlohmann::json body = nlohmann::json::object();
              if (!r.body.empty()) {
                HAVEN_ASSIGN(body, r.json());
              }
              const std::string type_s = body.value("executionType", std::string("drill"));
              auto type = catalog::parse_enum<catalog::DrExecutionType>(type_s);
              if (!type) {
                return Error(Error::Code::kInvalidArgument,
                             "executionType: must be drill, planned_test or disaster_recovery, not '" +
                                 type_s + "'");
              }
              std::string reason = body.value("triggerReason", std::string());
              if (*type == catalog::DrExecutionType::kDisasterRecovery && reason.empty()) {
                return Error(Error::Code::kInvalidArgument,
                             "triggerReason: a real recovery needs a reason (it is audited)");
              }
              HAVEN_ASSIGN(auto e, c->dr->execute(r.params.at("planId"), *type, reason, actor_of(r)));
              audit(*c, r, "dr.execute", e.plan_name,
                    {{"execution", e.id}, {"execution_type", type_s}, {"reason", reason}});
              nlohmann::json out = dr_execution_json(e);
              if (e.approval_status == catalog::ApprovalStatus::kPending) {
                out["message"] = "waiting for approval by another principal: POST " + std::string("/api/disaster-recovery/executions/") + e.id + "/approve";
              }
              return ApiResponse{202, out};
            }, {}});
  for (const bool approve : {true, false}) {
    http.add({"POST", base + "/executions/{executionId}/" + (approve ? "approve" : "reject"),
              Role::kOperator,
              approve ? "approve a real recovery another principal asked for: it starts"
                      : "reject a real recovery waiting for approval: it is cancelled",
              [c, approve](const ApiRequest& r) -> Result<ApiResponse> {
                if (c->dr == nullptr) return no_dr();
                const std::string& id = r.params.at("executionId");
                HAVEN_ASSIGN(auto e, approve ? c->dr->approve(id, actor_of(r)) : c->dr->reject(id, actor_of(r)));
                audit(*c, r, approve ? "dr.approve" : "dr.reject", e.plan_name, {{"execution", id}});
                return ApiResponse{200, dr_execution_json(e)};
              }, {}});
  }
  http.add({"POST", base + "/executions/{executionId}/cancel", Role::kOperator,
            "cancel a running execution (its clean-up still runs)",
            [c](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->dr == nullptr) return no_dr();
              const std::string& id = r.params.at("executionId");
              HAVEN_TRY(c->dr->cancel(id));
              audit(*c, r, "dr.cancel", id);
              return ApiResponse{202, {{"id", id}, {"status", "cancelling"}}};
            }, {}});
  http.add({"GET", base + "/executions", Role::kViewer,
            "recorded executions, newest first (planId, limit)",
            [c](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->dr == nullptr) return no_dr();
              std::string plan_id;
              if (auto p = r.query_value("planId")) {
                HAVEN_ASSIGN(auto row, c->catalog.get_dr_plan(*p));
                plan_id = row.id;
              }
              int limit = 50;
              if (auto l = r.query_value("limit")) {
                try {
                  limit = std::stoi(*l);
                } catch (...) {
                  return Error(Error::Code::kInvalidArgument, "limit: must be a number from 1 to 1000");
                }
              }
              HAVEN_ASSIGN(auto rows, c->catalog.list_dr_executions(plan_id, limit));
              nlohmann::json all = nlohmann::json::array();
              for (const auto& e : rows) all.push_back(dr_execution_json(e));
              return ApiResponse{200, {{"executions", all}}};
            }, {}});
  http.add({"GET", base + "/failover", Role::kViewer,
            "each failover of haven.yaml: mode, probes, consecutive failures, whether the primary "
            "was declared failed and this region failed over (with the report), and the warm "
            "standby's replay position and lag",
            [c](const ApiRequest&) -> Result<ApiResponse> {
              if (c->dr == nullptr) return no_dr();
              return ApiResponse{200, {{"failovers", c->dr->failover_status()}}};
            }, {}});
  http.add({"POST", base + "/failover/{name}", Role::kOperator,
            "fail over now (an operator's decision): take the lease, promote the warm standby, "
            "run the failover plan and the DNS hook. 409 names the region holding the lease",
            [c](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->dr == nullptr) return no_dr();
              const std::string& name = r.params.at("name");
              HAVEN_ASSIGN(auto report, c->dr->fail_over(name, actor_of(r)));
              audit(*c, r, "dr.failover", name, report);
              return ApiResponse{200, report};
            }, {}});
  http.add({"GET", base + "/executions/{executionId}/status", Role::kViewer,
            "an execution: status, actual RTO and RPO against the targets, steps, validations",
            [c](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->dr == nullptr) return no_dr();
              HAVEN_ASSIGN(auto e, c->catalog.get_dr_execution(r.params.at("executionId")));
              return ApiResponse{200, dr_execution_json(e)};
            }, {}});
  http.add({"GET", base + "/executions/{executionId}/report", Role::kViewer,
            "an execution's report: timeline, RTO and RPO against targets, the DR test checklist "
            "(format=markdown, the default, or html)",
            [c](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->dr == nullptr) return no_dr();
              HAVEN_ASSIGN(auto e, c->catalog.get_dr_execution(r.params.at("executionId")));
              const std::string format = r.query_value("format").value_or("markdown");
              if (format == "html") return ApiResponse{200, {}, "text/html; charset=utf-8", dr::report_html(e)};
              if (format != "markdown") {
                return Error(Error::Code::kInvalidArgument, "format: markdown or html, not '" + format + "'");
              }
              return ApiResponse{200, {}, "text/markdown; charset=utf-8", dr::report_markdown(e)};
            }, {}});
}

}  // namespace haven::server

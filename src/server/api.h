// server/api.h — the REST API of seed 004 on an HttpServer: policies, executions, restores,
// snapshots, the event stream, health and the OpenAPI document (docs/openapi.json, embedded).
//
// JSON rows use the seed's column names (backup_executions' "backup_size_bytes" ...), times
// RFC 3339 UTC. Requests use the seed's camelCase fields (backupType, sourceBackupId ...).
// Roles: viewer reads; operator executes, cancels and restores; admin changes policies and
// tokens and reloads the configuration.
// Policies from haven.yaml are read-only over the API (409 names the file); the API's own
// policies live in the catalog and survive restarts.
#pragma once

#include <functional>
#include <string>

#include "catalog/catalog.h"
#include "dr/service.h"
#include "jobs/replicator.h"
#include "jobs/scheduler.h"
#include "jobs/service.h"
#include "monitor/audit.h"
#include "monitor/service.h"
#include "server/bus.h"
#include "server/http.h"

namespace haven::server {

struct ApiContext {
  catalog::Catalog& catalog;
  jobs::Service& service;
  jobs::Scheduler* scheduler;  // may be null (no schedules: the CLI's one-off runs)
  EventBus& bus;
  std::string version;
  // POST /api/server/reload: Server::reload (empty: the route answers 404).
  std::function<Status()> reload;
  monitor::MonitorService* monitor = nullptr;  // status, monitors, alerts, /metrics
  monitor::AuditLog* audit = nullptr;          // every change and data access; may be null
  jobs::Replicator* replicator = nullptr;      // secondary regions; may be null
  dr::Service* dr = nullptr;                   // disaster-recovery plans and runs; may be null
};

void add_api_routes(HttpServer& http, ApiContext ctx);
// GET /api/status, GET /metrics, monitors, alerts and the audit log (server/api_monitor.cc).
void add_monitoring_routes(HttpServer& http, std::shared_ptr<ApiContext> ctx);
// GET /api/replication, sync now, pause / resume / stop a region (server/api_replication.cc).
void add_replication_routes(HttpServer& http, std::shared_ptr<ApiContext> ctx);
// Plans, execute (drill, planned test, real recovery with approval), executions' status and
// report (server/api_dr.cc).
void add_dr_routes(HttpServer& http, std::shared_ptr<ApiContext> ctx);
nlohmann::json dr_execution_json(const catalog::DrExecutionRow& row);
// The audit actor of a request: "token:<name>".
std::string actor_of(const ApiRequest& r);
// Records what the request did in the audit log (nothing if the context has none).
void audit(const ApiContext& c, const ApiRequest& r, const std::string& action,
           const std::string& target, nlohmann::json details = nlohmann::json::object());

// The OpenAPI document the server serves (docs/openapi.json).
const std::string& openapi_document();

// JSON views of catalog rows.
nlohmann::json execution_json(const catalog::ExecutionRow& row);
nlohmann::json restore_json(const catalog::RestoreRow& row);
nlohmann::json policy_json(const catalog::PolicyRow& row);

}  // namespace haven::server

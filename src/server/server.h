// server/server.h — `haven server`: one process that loads haven.yaml, opens the catalog,
// marks what a previous process left running as interrupted, writes the file's locations and
// policies into the catalog, runs the scheduler and the job service, and serves the REST API.
//
// The process side (signals, the environment, printing) stays with the caller (cli): reload()
// is SIGHUP's (and POST /api/server/reload's), stop() is SIGTERM's. A reload that fails keeps
// the running configuration, returns why and notes it as a "server:reload-failed" event (the
// server's listen address and catalog are read at start only).
//
// Thread-safety: reload() and stop() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "catalog/catalog.h"
#include "config/config.h"
#include "dr/service.h"
#include "jobs/replicator.h"
#include "jobs/scheduler.h"
#include "jobs/service.h"
#include "monitor/audit.h"
#include "monitor/service.h"
#include "server/bus.h"
#include "server/http.h"

namespace haven::server {

struct ServerOptions {
  std::string config_path;
  config::EnvLookup env;         // the environment (the CLI's)
  std::string instance;          // recorded on the rows this process writes
  std::string version;           // reported by /health
  std::optional<int> port;       // overrides server.listen's port (tests: 0 = any free one)
  // The monitors' clock (tests inject one; the scheduler keeps the real one).
  std::function<TimeNs()> monitor_clock;
  // How often scheduled drills are looked for (dr::ServiceOptions::tick_interval).
  std::chrono::milliseconds dr_tick{60000};
};

class Server {
 public:
  // Starts everything or nothing: an invalid configuration, a catalog that cannot be opened
  // or an address that cannot be bound is an error and nothing keeps running.
  static Result<std::unique_ptr<Server>> start(const ServerOptions& options);
  ~Server();

  int port() const { return http_.port(); }
  Status reload();
  // Stops accepting requests, stops the scheduler and ends the jobs as server.shutdown says
  // (finish: wait up to shutdown_timeout_seconds, then cancel; cancel: at once), recording
  // each. Idempotent.
  void stop();

  catalog::Catalog& catalog() { return *catalog_; }
  jobs::Service& service() { return *service_; }
  jobs::Scheduler& scheduler() { return *scheduler_; }
  monitor::MonitorService& monitor() { return *monitor_; }
  monitor::AuditLog& audit() { return *audit_; }
  int64_t interrupted_at_start() const { return interrupted_; }

 private:
  Server(ServerOptions options, std::unique_ptr<catalog::Catalog> catalog);
  ServerOptions options_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<EventBus> bus_;
  // Between the jobs and the bus: a job never waits for the catalog's commit of its events
  // (progress coalesced, nothing else dropped; emitting waits only past 65536 queued).
  std::unique_ptr<AsyncSink> async_;
  // Declared before the job service so that they are destroyed after it: a job still running
  // at the end (a health check, a retention recording in the audit log) may use them.
  std::unique_ptr<monitor::AuditLog> audit_;
  std::unique_ptr<monitor::MonitorService> monitor_;
  std::unique_ptr<jobs::Service> service_;
  std::unique_ptr<jobs::Scheduler> scheduler_;
  // After service_: its passes run on the service's runner, and it stops first.
  std::unique_ptr<jobs::Replicator> replicator_;
  std::unique_ptr<dr::Service> dr_;
  HttpServer http_;
  std::mutex mu_;
  std::mutex reload_mu_;
  std::atomic<int> job_nice_{10};  // server.job_nice, for job threads started from now on
  bool stopped_ = false;
  int64_t interrupted_ = 0;
};

}  // namespace haven::server

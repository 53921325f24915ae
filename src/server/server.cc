#include "server/server.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>

#include "catalog/tokens.h"
#include "repo/index.h"
#include "server/api.h"
#include "util/sysinfo.h"

namespace haven::server {

namespace {
Authenticator token_auth(catalog::Catalog& c) {
  // last_used_at is written at most once a minute per token: a write (and its fsync) on every
  // request would put each one behind the catalog's writer.
  struct Touched {
    std::mutex mu;
    std::map<int64_t, std::chrono::steady_clock::time_point> at;  // steady: immune to clock steps
  };
  auto touched = std::make_shared<Touched>();
  return [&c, touched](const std::string& token) -> std::optional<Principal> {
    auto row = catalog::authenticate(c, token);
    if (!row.ok()) return std::nullopt;
    const auto mono = std::chrono::steady_clock::now();
    bool touch = false;
    {
      std::lock_guard<std::mutex> g(touched->mu);
      auto [it, fresh] = touched->at.try_emplace(row->id, mono);
      if (fresh || mono - it->second >= std::chrono::minutes(1)) {
        it->second = mono;
        touch = true;
      }
    }
    if (touch) (void)c.touch_token(row->id, now());
    Principal p;
    p.name = row->name;
    p.role = row->role == catalog::Role::kAdmin      ? Role::kAdmin
             : row->role == catalog::Role::kOperator ? Role::kOperator
                                                     : Role::kViewer;
    return p;
  };
}
// Refused requests into the audit log: at most 60 records a minute (a flood of bad tokens must
// not become a flood of synchronous catalog writes); the next record says how many were left
// out meanwhile.
RefusalObserver refusal_auditor(monitor::AuditLog& audit) {
  struct State {
    std::mutex mu;
    std::chrono::steady_clock::time_point window = std::chrono::steady_clock::now();
    int in_window = 0;
    int64_t suppressed = 0;
  };
  auto st = std::make_shared<State>();
  return [&audit, st](const ApiRequest& r, int status, const std::string& who) {
    int64_t suppressed = 0;
    {
      std::lock_guard<std::mutex> g(st->mu);
      const auto now = std::chrono::steady_clock::now();
      if (now - st->window >= std::chrono::minutes(1)) {
        st->window = now;
        st->in_window = 0;
      }
      if (++st->in_window > 60) {
        st->suppressed++;
        return;
      }
      suppressed = st->suppressed;
      st->suppressed = 0;
    }
    nlohmann::json details = {{"status", status}, {"remote_addr", r.remote_addr}};
    if (suppressed > 0) details["suppressed_before"] = suppressed;
    (void)audit.record(who.empty() ? "anonymous" : "token:" + who, "auth.refused",
                       r.method + " " + r.path, details);
  };
}

}  // namespace

Server::Server(ServerOptions options, std::unique_ptr<catalog::Catalog> catalog)
    : options_(std::move(options)), catalog_(std::move(catalog)), http_(token_auth(*catalog_)) {}

Server::~Server() { stop(); }

Result<std::unique_ptr<Server>> Server::start(const ServerOptions& options) {
  HAVEN_ASSIGN(config::Config cfg, config::load_config_file(options.config_path, options.env));
  auto shared = std::make_shared<const config::Config>(std::move(cfg));
  auto cat = catalog::open_sqlite_catalog(shared->server.catalog);
  if (!cat.ok()) return cat.error().with_context("server.catalog");
  std::unique_ptr<Server> s(new Server(options, std::move(*cat)));
  // What a previous process left pending or running did not finish.
  HAVEN_ASSIGN(s->interrupted_, s->catalog_->mark_interrupted(options.instance));
  // The event log keeps server.events_retention_days (pruned at start and at each reload).
  HAVEN_TRY(s->catalog_->prune_events_before(now() - static_cast<TimeNs>(shared->server.events_retention_days) * 86400'000'000'000LL));
  s->bus_ = std::make_unique<EventBus>(*s->catalog_);
  s->async_ = std::make_unique<AsyncSink>(*s->bus_);
  jobs::ServiceOptions so;
  so.server_instance = options.instance;
  // The index of each repository keeps its default bound in memory (as the CLI's), the rest
  // sorted on disk beside the catalog (an unlinked file): memory does not grow with the
  // repositories.
  so.index.memory_bytes = repo::kDefaultIndexMemory;
  so.index.spill_dir = std::filesystem::path(shared->server.catalog).parent_path().string();
  so.max_parallel = static_cast<unsigned>(std::max(1, shared->server.max_parallel_jobs));
  s->job_nice_ = shared->server.job_nice;
  Server* raw = s.get();
  so.on_job_thread = [raw] {
    // This thread's niceness (Linux keeps it per thread; threads it starts inherit it). Best
    // effort: lowering it again after a reload needs CAP_SYS_NICE.
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), raw->job_nice_.load());
  };
  // The audit log's "audit:logged" events and the monitors' alerts go into the event stream.
  auto note = [raw](const std::string& kind, const nlohmann::json& payload) {
    raw->bus_->note(kind, payload);
  };
  s->audit_ = std::make_unique<monitor::AuditLog>(*s->catalog_, note);
  so.audit = [raw](const std::string& actor, const std::string& action, const std::string& target,
                   const nlohmann::json& details) {
    (void)raw->audit_->record(actor, action, target, details);
  };
  // Replication: the service reports every object its jobs save; sync locations ask which
  // regions take part and report the ones their writes could not reach.
  so.on_object_saved = [raw](const std::string& location, const storage::ObjectName& name,
                             uint64_t size) {
    if (raw->replicator_) raw->replicator_->object_saved(location, name, size);
  };
  so.region_active = [raw](const std::string& location, const std::string& region) {
    return raw->replicator_ ? raw->replicator_->region_active(location, region) : true;
  };
  so.on_region_failed = [raw](const std::string& location, const std::string& region,
                              const Error& e) {
    if (raw->replicator_) raw->replicator_->region_failed(location, region, e);
  };
  so.on_read_failover = [raw](const std::string& location, const storage::ObjectName& name,
                              const std::string& region, const Error& why) {
    raw->bus_->note("replication:read-failover", {{"location", location},
                                                  {"object", name.describe()},
                                                  {"read_from", region},
                                                  {"because", why.message()}});
  };
  s->service_ = std::make_unique<jobs::Service>(*s->catalog_, *s->async_, so);
  HAVEN_TRY(s->service_->apply_config(shared));
  jobs::ReplicatorOptions ro;
  ro.note = note;
  ro.audit = so.audit;
  s->replicator_ = std::make_unique<jobs::Replicator>(*s->catalog_, *s->service_, *s->async_, ro);
  s->replicator_->apply_config(shared);
  s->scheduler_ = std::make_unique<jobs::Scheduler>(*s->service_, *s->catalog_);
  monitor::MonitorOptions mo;
  if (options.monitor_clock) mo.clock = options.monitor_clock;
  mo.note = note;
  mo.source = hostname();
  mo.replication = [raw] { return raw->replicator_->status(); };
  s->monitor_ = std::make_unique<monitor::MonitorService>(*s->catalog_, s->service_.get(), mo);
  HAVEN_TRY(s->monitor_->apply_config(shared));
  // Disaster recovery: plans, drills (on schedule too) and real recoveries, in sandboxes beside
  // the catalog.
  dr::ServiceOptions dro;
  dro.instance = options.instance;
  dro.sandbox_root = std::filesystem::path(shared->server.catalog).parent_path().string() + "/drills";
  {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    dro.haven_program = ec ? "haven" : self.string();
  }
  dro.open_repository = [raw](const config::Policy& p) {
    return raw->service_->repository_named(p.location);
  };
  dro.open_location = [raw](const std::string& location) {
    return raw->service_->repository_named(location);
  };
  dro.holder = hostname() + "/" + options.instance;
  dro.alerts = s->catalog_.get();
  if (options.monitor_clock) dro.clock = options.monitor_clock;
  dro.tick_interval = options.dr_tick;
  dro.note = note;
  s->dr_ = std::make_unique<dr::Service>(*s->catalog_, *s->async_, dro);
  HAVEN_TRY(s->dr_->apply_config(shared));
  ApiContext api{*s->catalog_, *s->service_, s->scheduler_.get(), *s->bus_, options.version,
                 [raw] { return raw->reload(); }};
  api.monitor = s->monitor_.get();
  api.replicator = s->replicator_.get();
  api.dr = s->dr_.get();
  api.audit = s->audit_.get();
  add_api_routes(s->http_, api);
  s->http_.on_refused(refusal_auditor(*s->audit_));
  std::optional<TlsFiles> tls;
  if (shared->server.tls) tls = TlsFiles{shared->server.tls->cert_file, shared->server.tls->key_file};
  HAVEN_TRY(s->http_.start(shared->server.listen_host, options.port.value_or(shared->server.listen_port), tls));
  // Streams without a Last-Event-ID start after this event.
  s->bus_->note("server:started", {{"instance", options.instance},
                                    {"interrupted", s->interrupted_},
                                    {"version", options.version}});
  s->scheduler_->start();
  s->replicator_->start();
  s->monitor_->start();
  s->dr_->start();
  return s;
}

Status Server::reload() {
  std::lock_guard<std::mutex> g(reload_mu_);  // SIGHUP and the API, one at a time
  auto failed = [this](const Error& e) {
    bus_->note("server:reload-failed", {{"error", e.message()}});
    return e;
  };
  auto cfg = config::load_config_file(options_.config_path, options_.env);
  if (!cfg.ok()) return failed(cfg.error());
  auto shared = std::make_shared<const config::Config>(std::move(*cfg));
  // Everything that can refuse the new configuration is asked before any part is applied.
  if (Status st = monitor_->check_config(*shared); !st.ok()) return failed(st.error());
  if (Status st = service_->apply_config(shared); !st.ok()) return failed(st.error());
  if (Status st = monitor_->apply_config(shared); !st.ok()) return failed(st.error());
  replicator_->apply_config(shared);
  if (Status st = dr_->apply_config(shared); !st.ok()) return failed(st.error());
  job_nice_ = shared->server.job_nice;
  scheduler_->replan();
  (void)catalog_->prune_events_before(now() - static_cast<TimeNs>(shared->server.events_retention_days) * 86400'000'000'000LL);
  bus_->note("server:reloaded", {{"policies", shared->policies.size()},
                                  {"locations", shared->locations.size()}});
  return ok_status();
}

void Server::stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  http_.stop();
  if (monitor_) monitor_->stop();
  if (scheduler_) scheduler_->stop();
  if (replicator_) replicator_->stop();
  if (dr_) dr_->stop();  // cancels running drills; their clean-up runs
  if (service_) {
    auto cfg = service_->config();
    bool cancel = cfg && cfg->server.shutdown == config::ShutdownMode::kCancel;
    int timeout = cfg ? cfg->server.shutdown_timeout_seconds : 0;
    service_->shutdown(cancel, std::chrono::seconds(timeout));
  }
  if (async_) async_->flush();  // every event of the jobs recorded before the stop
  if (bus_) bus_->note("server:stopped", {{"instance", options_.instance}});
}

}  // namespace haven::server

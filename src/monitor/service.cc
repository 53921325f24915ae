#include "monitor/service.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "storage/backend.h"

namespace haven::monitor {

namespace {

constexpr TimeNs kSecond = 1'000'000'000LL;
constexpr TimeNs kMinute = 60 * kSecond;
constexpr TimeNs kDay = 1440 * kMinute;
// How long a listing of the WAL archive is reused (status, metrics and the rpo monitors ask
// often; the archive grows by one object a segment).
constexpr TimeNs kWalCacheFor = 30 * kSecond;
// A tick stops delivering after this long; what is left goes out at the next tick.
constexpr TimeNs kDeliveryBudget = 20 * kSecond;

catalog::AlertSeverity severity_of(Level l) {
  return l == Level::kCritical ? catalog::AlertSeverity::kCritical : catalog::AlertSeverity::kWarning;
}

catalog::HealthStatus health_of(Level l) {
  switch (l) {
    case Level::kOk: return catalog::HealthStatus::kHealthy;
    case Level::kWarning: return catalog::HealthStatus::kWarning;
    case Level::kCritical: return catalog::HealthStatus::kCritical;
    case Level::kUnknown: return catalog::HealthStatus::kUnknown;
  }
  return catalog::HealthStatus::kUnknown;
}

// A local repository's directory, or "" for object storage.
std::string local_path(const std::string& repository) {
  if (repository.starts_with("local:")) return repository.substr(6);
  if (repository.starts_with("/")) return repository;
  return "";
}

// The channels a resolved alert's triggers reached (its escalation steps' included): each gets
// one resolve notice. A trigger still undelivered is dropped (it would announce what is over)
// and its channel gets no resolve.
Result<std::vector<std::string>> reached_channels(catalog::Catalog& catalog,
                                                  const std::string& alert_id) {
  HAVEN_ASSIGN(auto sent, catalog.notifications_of(alert_id));
  std::set<std::string> reached;
  for (auto n : sent) {
    if (n.action != catalog::NotifyAction::kTrigger) continue;
    if (n.state == catalog::DeliveryState::kDelivered) {
      reached.insert(n.channel);
    } else if (n.state == catalog::DeliveryState::kPending) {
      n.state = catalog::DeliveryState::kFailed;
      n.last_error = "the alert resolved before the trigger could be delivered";
      // Conditional: if a delivery recorded it meanwhile, it reached its channel after all.
      HAVEN_ASSIGN(bool dropped, catalog.update_pending_notification(n));
      if (!dropped) reached.insert(n.channel);
    }
  }
  return std::vector<std::string>(reached.begin(), reached.end());
}

}  // namespace

ChannelConfig channel_config(const config::AlertChannel& c) {
  ChannelConfig out;
  out.name = c.name;
  out.type = static_cast<ChannelType>(static_cast<int>(c.type));
  out.url = c.url;
  out.routing_key = c.routing_key;
  out.smtp_url = c.smtp_url;
  out.starttls = c.starttls;
  out.ca_file = c.ca_file;
  out.username = c.username;
  out.password = c.password;
  out.from = c.from;
  out.to = c.to;
  out.command = c.command;
  out.timeout = std::chrono::seconds(c.timeout_seconds);
  return out;
}

Result<std::optional<TimeNs>> newest_wal(const config::Location& location) {
  storage::BackendSettings settings;
  settings.lookup = [location](const std::string& name) { return location.backend_setting(name); };
  HAVEN_ASSIGN(auto backend, storage::open_backend(location.repository, settings));
  std::optional<TimeNs> newest;
  HAVEN_TRY(backend->list(storage::ObjectType::kWal, [&](const storage::ObjectInfo& info) {
    if (!newest || info.modified > *newest) newest = info.modified;
  }));
  return newest;
}

MonitorService::MonitorService(catalog::Catalog& catalog, jobs::Service* jobs,
                               MonitorOptions options)
    : catalog_(catalog), jobs_(jobs), options_(std::move(options)) {}

MonitorService::~MonitorService() { stop(); }

std::shared_ptr<const config::Config> MonitorService::config() const {
  std::lock_guard<std::mutex> g(mu_);
  return config_;
}

void MonitorService::note(const std::string& kind, const nlohmann::json& payload) {
  if (options_.note) options_.note(kind, payload);
}

Status MonitorService::check_config(const config::Config& cfg) {
  HAVEN_ASSIGN(auto rows, catalog_.list_monitors());
  for (const auto& m : cfg.monitoring.monitors) {
    for (const auto& r : rows) {
      if (r.monitor_name == m.name && r.source == catalog::PolicySource::kApi) {
        return Error(Error::Code::kAlreadyExists,
                     "monitor '" + m.name + "' of " + cfg.file +
                         " has the name of a monitor created over the API: rename one of them");
      }
    }
  }
  return ok_status();
}

Status MonitorService::apply_config(std::shared_ptr<const config::Config> cfg) {
  // Not while an evaluation pass runs: it could raise an alert of a monitor removed here.
  std::lock_guard<std::mutex> tick(tick_mu_);
  HAVEN_TRY(check_config(*cfg));
  HAVEN_ASSIGN(auto rows, catalog_.list_monitors());
  for (const auto& m : cfg->monitoring.monitors) {
    HAVEN_TRY(catalog_.upsert_monitor(monitor_row(m, catalog::PolicySource::kConfig)));
  }
  const TimeNs now = options_.clock();
  for (const auto& r : rows) {
    if (r.source != catalog::PolicySource::kConfig) continue;
    bool kept = std::any_of(cfg->monitoring.monitors.begin(), cfg->monitoring.monitors.end(),
                            [&](const config::Monitor& m) { return m.name == r.monitor_name; });
    if (kept) continue;
    HAVEN_TRY(resolve_alerts_of(r.id, {}, "monitor removed from the configuration", now));
    HAVEN_TRY(catalog_.delete_monitor(r.id));
  }
  std::lock_guard<std::mutex> g(mu_);
  config_ = std::move(cfg);
  return ok_status();
}

Status MonitorService::resolve(const catalog::AlertRow& a, const nlohmann::json& details, TimeNs now) {
  HAVEN_ASSIGN(auto resolved, catalog_.resolve_alert(a.id, now, details));
  if (!resolved) return ok_status();  // resolved meanwhile, by someone else
  {
    std::lock_guard<std::mutex> g(mu_);
    counters_.resolved++;
  }
  // A resolve notice to every channel a trigger reached (the escalation steps' included).
  HAVEN_ASSIGN(auto reached, reached_channels(catalog_, a.id));
  HAVEN_TRY(enqueue(*resolved, reached, catalog::NotifyAction::kResolve, 0, now));
  note("alert:resolved", alert_json(*resolved));
  return ok_status();
}

Status MonitorService::resolve_alerts_of(const std::string& monitor_id,
                                         const std::set<std::string>& keep_keys,
                                         const std::string& why, TimeNs now) {
  HAVEN_ASSIGN(auto alerts, catalog_.list_alerts(true, 1000));
  for (const auto& a : alerts) {
    if (a.monitor_id != monitor_id || keep_keys.count(a.alert_key)) continue;
    HAVEN_TRY(resolve(a, {{"resolved_because", why}}, now));
  }
  return ok_status();
}

Status MonitorService::remove_monitor(const std::string& id_or_name) {
  std::lock_guard<std::mutex> tick(tick_mu_);
  HAVEN_ASSIGN(auto row, catalog_.get_monitor(id_or_name));
  HAVEN_TRY(resolve_alerts_of(row.id, {}, "monitor deleted", options_.clock()));
  return catalog_.delete_monitor(row.id);
}

void MonitorService::start() {
  std::lock_guard<std::mutex> g(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  stop_token_ = CancelToken();
  thread_ = std::thread([this, token = stop_token_] {
    // A delivery in flight (HTTP, a command) stops within a second of stop().
    CancelScope scope(token);
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
      lk.unlock();
      (void)tick();
      lk.lock();
      cv_.wait_for(lk, std::chrono::seconds(1), [this] { return stop_; });
    }
  });
}

void MonitorService::stop() {
  std::thread t;
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
    t = std::move(thread_);
  }
  stop_token_.cancel(Error(Error::Code::kCancelled, "the server is stopping"));
  cv_.notify_all();
  if (t.joinable()) t.join();
}

bool MonitorService::stopping() const {
  std::lock_guard<std::mutex> g(mu_);
  return stop_;
}

StatusContext MonitorService::status_context(const config::Config& cfg) {
  StatusContext ctx{catalog_, cfg, {}};
  ctx.newest_wal = [this](const config::Location& l) -> Result<std::optional<TimeNs>> {
    const TimeNs t = options_.clock();
    {
      std::lock_guard<std::mutex> g(mu_);
      auto it = wal_cache_.find(l.repository);
      if (it != wal_cache_.end() && t - it->second.first < kWalCacheFor && t >= it->second.first) {
        return it->second.second;
      }
    }
    HAVEN_ASSIGN(auto newest, newest_wal(l));
    std::lock_guard<std::mutex> g(mu_);
    wal_cache_[l.repository] = {t, newest};
    return newest;
  };
  return ctx;
}

EvalContext MonitorService::eval_context(const config::Config& cfg) {
  EvalContext ctx{status_context(cfg), {}, {}, {}};
  ctx.health = [this](const std::string& location) { return health(location); };
  ctx.replication = options_.replication;
  if (jobs_ != nullptr) {
    ctx.read_snapshot = [this](const config::Location& l, const std::string& hex) {
      return jobs_->read_snapshot(l.name, hex);
    };
  }
  return ctx;
}

Result<StatusReport> MonitorService::status() {
  auto cfg = config();
  if (!cfg) return Error(Error::Code::kInternal, "monitoring is not configured yet");
  return compute_status(status_context(*cfg), options_.clock());
}

std::optional<HealthResult> MonitorService::health(const std::string& location) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = health_.find(location);
  if (it == health_.end()) return std::nullopt;
  return it->second;
}

MonitorService::Counters MonitorService::counters() const {
  std::lock_guard<std::mutex> g(mu_);
  return counters_;
}

Status MonitorService::enqueue(const catalog::AlertRow& a, const std::vector<std::string>& channels,
                               catalog::NotifyAction action, int level, TimeNs now) {
  for (const auto& ch : channels) {
    catalog::NotificationRow n;
    n.alert_id = a.id;
    n.channel = ch;
    n.action = action;
    n.escalation_level = level;
    n.next_attempt_at = now;
    HAVEN_TRY(catalog_.enqueue_notification(n));
  }
  return ok_status();
}

Status MonitorService::apply_evaluation(const catalog::MonitorRow& row, const config::Monitor& m,
                                        const Evaluation& e, TimeNs now, Tick& t) {
  HAVEN_TRY(catalog_.record_monitor_result(row.id, now, health_of(e.level), e.to_json()));
  std::set<std::string> keys;
  for (const Condition& c : e.conditions) {
    const std::string key = alert_key(m.name, c);
    keys.insert(key);
    if (c.level == Level::kWarning || c.level == Level::kCritical) {
      catalog::AlertRow a;
      a.alert_key = key;
      a.kind = c.kind;
      a.monitor_id = row.id;
      a.policy_id = e.policy_id;
      a.severity = severity_of(c.level);
      a.summary = c.summary;
      a.details = c.details;
      a.details["monitor"] = m.name;
      HAVEN_ASSIGN(auto raised, catalog_.raise_alert(a));
      if (raised.created) {
        t.raised++;
        {
          std::lock_guard<std::mutex> g(mu_);
          counters_.raised++;
        }
        // Exactly one trigger per channel of the first step, however the severity moves.
        HAVEN_TRY(enqueue(raised.alert, m.channels, catalog::NotifyAction::kTrigger, 0, now));
        note(c.kind, alert_json(raised.alert));
      } else if (raised.worse) {
        // Warning became critical: the event says so (alert:rpo-critical after
        // alert:rpo-warning); the channels were paged once and are not paged again.
        note(c.kind, alert_json(raised.alert));
      }
    } else if (c.level == Level::kOk) {
      HAVEN_ASSIGN(auto open, catalog_.find_unresolved_alert(key));
      if (!open) continue;
      // The summary stays what went wrong (a resolve notice says that is over); how it
      // cleared goes beside it.
      HAVEN_TRY(resolve(*open, {{"resolution", c.summary}}, now));
      t.resolved++;
    }
  }
  // Alerts of this monitor whose condition it no longer checks (its type or policy changed, its
  // policy was deleted) cannot clear any more: resolved, saying why.
  HAVEN_ASSIGN(auto open, catalog_.list_alerts(true, 1000));
  for (const auto& a : open) {
    if (a.monitor_id != row.id || keys.count(a.alert_key)) continue;
    HAVEN_TRY(resolve(a, {{"resolved_because", e.message.empty() ? "the monitor no longer checks this"
                                                                   : e.message}},
                      now));
    t.resolved++;
  }
  return ok_status();
}

Result<Evaluation> MonitorService::check_now(const std::string& name) {
  auto cfg = config();
  if (!cfg) return Error(Error::Code::kInternal, "monitoring is not configured yet");
  HAVEN_ASSIGN(auto row, catalog_.get_monitor(name));
  HAVEN_ASSIGN(config::Monitor m, monitor_of(row));
  std::lock_guard<std::mutex> g(tick_mu_);
  const TimeNs now = options_.clock();
  HAVEN_ASSIGN(Evaluation e, evaluate(eval_context(*cfg), m, now));
  Tick t;
  HAVEN_TRY(apply_evaluation(row, m, e, now, t));
  return e;
}

void MonitorService::escalate(const config::Config& cfg, TimeNs now, Tick& t) {
  (void)cfg;
  auto alerts = catalog_.list_alerts(true, 1000);
  if (!alerts.ok()) return;
  for (const auto& a : *alerts) {
    if (a.state != catalog::AlertState::kOpen || !a.monitor_id) continue;
    auto row = catalog_.get_monitor(*a.monitor_id);
    if (!row.ok() || !row->is_active) continue;  // a disabled monitor's alerts do not escalate
    auto m = monitor_of(*row);
    if (!m.ok()) continue;
    // Every step whose time has come, in order (a step missed while the server was down is
    // still taken, once). Each is a conditional update: an alert acknowledged meanwhile, by the
    // API or by another process (the CLI), is not escalated.
    for (int level = a.escalation_level; level < static_cast<int>(m->escalation.size()); level++) {
      const auto& step = m->escalation[level];
      if (now - a.opened_at < static_cast<TimeNs>(step.after_minutes) * kMinute) break;
      auto applied = catalog_.escalate_alert(a.id, level + 1, now);
      if (!applied.ok() || !*applied) break;
      if (!enqueue(a, step.channels, catalog::NotifyAction::kTrigger, level + 1, now).ok()) break;
      t.escalated++;
      catalog::AlertRow shown = a;
      shown.escalation_level = level + 1;
      shown.escalated_at = now;
      note("alert:escalated", {{"alert", alert_json(shown)}, {"channels", step.channels},
                               {"after_minutes", step.after_minutes}});
    }
  }
}

void MonitorService::deliver_due(const config::Config& cfg, TimeNs now, Tick& t) {
  auto due = catalog_.due_notifications(now, 100);
  if (!due.ok()) return;
  const auto started = std::chrono::steady_clock::now();
  for (auto n : *due) {
    if (stopping() || std::chrono::steady_clock::now() - started >
                          std::chrono::nanoseconds(kDeliveryBudget)) {
      break;  // the rest at the next tick
    }
    auto alert = catalog_.get_alert(n.alert_id);
    if (!alert.ok()) continue;
    const config::AlertChannel* ch = cfg.monitoring.find_channel(n.channel);
    Status outcome = ok_status();
    if (ch == nullptr) {
      outcome = Error(Error::Code::kInvalidArgument,
                      "alert channel '" + n.channel + "' is no longer configured");
    } else {
      Notification msg;
      // The same id on every attempt: receivers can fold a repeat (Idempotency-Key).
      msg.id = "haven-" + alert->id + "-" + std::to_string(n.id);
      msg.alert_key = alert->alert_key;
      // PagerDuty's incident: this alert (a later alert with the same key is a new incident,
      // which an old resolve still in back-off must not close).
      msg.dedup_key = "haven-" + alert->id;
      msg.action = n.action == catalog::NotifyAction::kTrigger ? NotifyAction::kTrigger
                                                               : NotifyAction::kResolve;
      msg.severity = std::string(catalog::to_string(alert->severity));
      msg.kind = alert->kind;
      msg.summary = alert->summary;
      msg.time = n.action == catalog::NotifyAction::kTrigger
                     ? alert->opened_at
                     : alert->resolved_at.value_or(now);
      msg.escalation_level = n.escalation_level;
      msg.details = alert->details;
      msg.source = options_.source;
      outcome = deliver(channel_config(*ch), msg);
    }
    if (!outcome.ok() && outcome.error().code() == Error::Code::kCancelled) break;  // stopping
    n.attempts++;
    if (outcome.ok()) {
      n.state = catalog::DeliveryState::kDelivered;
      n.delivered_at = now;
      n.last_error.reset();
      t.delivered++;
      std::lock_guard<std::mutex> g(mu_);
      counters_.delivered++;
    } else if (outcome.error().code() == Error::Code::kTransient &&
               now - n.created_at < options_.give_up) {
      TimeNs wait = options_.retry_initial;
      for (int i = 1; i < n.attempts && wait < options_.retry_max; i++) wait *= 2;
      n.next_attempt_at = now + std::min(wait, options_.retry_max);
      n.last_error = outcome.error().message();
      t.retried++;
      std::lock_guard<std::mutex> g(mu_);
      counters_.retried++;
    } else {
      n.state = catalog::DeliveryState::kFailed;
      n.last_error = outcome.error().message();
      t.failed++;
      {
        std::lock_guard<std::mutex> g(mu_);
        counters_.failed++;
      }
      note("alert:notification-failed", {{"alert_id", n.alert_id},
                                         {"channel", n.channel},
                                         {"action", std::string(catalog::to_string(n.action))},
                                         {"attempts", n.attempts},
                                         {"error", *n.last_error}});
    }
    // Recorded before the next one is sent: a delivered notification is never sent again. The
    // write is conditional: if the alert resolved while this trigger was on its way (the
    // resolution dropped it as undelivered), it is recorded as delivered after all and its
    // channel gets the resolve it is now owed.
    auto applied = catalog_.update_pending_notification(n);
    if (applied.ok() && !*applied && outcome.ok() && n.action == catalog::NotifyAction::kTrigger) {
      (void)catalog_.update_notification(n);
      auto fresh = catalog_.get_alert(n.alert_id);
      if (fresh.ok() && fresh->state == catalog::AlertState::kResolved) {
        (void)enqueue(*fresh, {n.channel}, catalog::NotifyAction::kResolve, 0, now);
      }
    }
  }
}

Result<HealthResult> MonitorService::health_check(const std::string& location) {
  auto cfg = config();
  if (!cfg || jobs_ == nullptr) return Error(Error::Code::kInternal, "no repositories to check");
  const config::Location* loc = cfg->find_location(location);
  if (loc == nullptr) return Error(Error::Code::kNotFound, "location '" + location + "' is not configured");
  const TimeNs now = options_.clock();
  // The day's share of the data, once per (UTC) day: group day mod N + 1 of N, so every pack is
  // read once every N days.
  const int n = cfg->monitoring.read_data_days;
  const int64_t day = now / kDay;
  std::string subset;
  if (n > 0) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = read_data_day_.find(location);
    if (it == read_data_day_.end() || it->second != day) {
      subset = std::to_string(day % n + 1) + "/" + std::to_string(n);
    }
  }
  jobs::Service::RepositoryProbe p =
      jobs_->probe_repository(location, loc->capacity_gb.has_value(), subset);
  HealthResult h;
  h.location = location;
  h.reachable = p.reachable;
  h.writable = p.writable;
  h.locks = p.locks;
  h.stale_locks = p.stale_locks;
  h.problems = p.problems;
  if (p.damaged || p.read_error) {
    h.read_data_subset = subset;
    h.read_data_problems = p.damaged;
  }
  if (p.damaged) {
    std::lock_guard<std::mutex> g(mu_);
    read_data_day_[location] = day;
  }
  // Capacity: what the location may use (capacity_gb) against its packs, else a local disk's
  // own size against what is used on it.
  const std::string path = local_path(loc->repository);
  if (loc->capacity_gb) {
    if (p.pack_bytes) {
      h.used_bytes = *p.pack_bytes;
      h.capacity_bytes = *loc->capacity_gb * 1'000'000'000LL;
    }
  } else if (!path.empty() && p.reachable) {
    struct statvfs vfs;
    if (::statvfs(path.c_str(), &vfs) == 0 && vfs.f_blocks > 0) {
      const int64_t total = static_cast<int64_t>(vfs.f_blocks) * static_cast<int64_t>(vfs.f_frsize);
      const int64_t avail = static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
      h.capacity_bytes = total;
      h.used_bytes = total - avail;
    }
  }
  if (h.used_bytes && h.capacity_bytes && *h.capacity_bytes > 0) {
    h.used_percent = 100.0 * static_cast<double>(*h.used_bytes) / static_cast<double>(*h.capacity_bytes);
  }
  Level level = Level::kOk;
  if (!h.reachable || !h.writable || p.damaged.value_or(0) > 0) {
    level = Level::kCritical;
  } else if (h.stale_locks > 0 || p.read_error || (h.used_percent && *h.used_percent >= 90)) {
    level = Level::kWarning;
  }
  h.status = health_of(level);
  h.time = now;
  {
    std::lock_guard<std::mutex> g(mu_);
    health_[location] = h;
  }
  (void)catalog_.set_location_health(location, now, h.status);
  note("health-check:completed", h.to_json());
  return h;
}

void MonitorService::start_health_checks(const config::Config& cfg, TimeNs now, Tick& t) {
  if (jobs_ == nullptr || !options_.health_checks) return;
  const TimeNs every = static_cast<TimeNs>(cfg.monitoring.health_check_minutes) * kMinute;
  for (const auto& l : cfg.locations) {
    {
      std::lock_guard<std::mutex> g(mu_);
      auto it = health_started_.find(l.name);
      if (it != health_started_.end() && now - it->second < every) continue;
      health_started_[l.name] = now;
    }
    jobs::Job job;
    // One id per location: while one check of it is queued or running, no second one starts.
    job.id = "health:" + l.name;
    job.resource = l.name;
    job.access = jobs::Access::kShared;
    const std::string name = l.name;
    job.run = [this, name](const CancelToken&) { (void)health_check(name); };
    if (jobs_->runner().submit(std::move(job)).ok()) t.health_checks++;
  }
}

MonitorService::Tick MonitorService::tick() {
  Tick t;
  auto cfg = config();
  if (!cfg) return t;
  const TimeNs now = options_.clock();
  {
    std::lock_guard<std::mutex> g(tick_mu_);
    evaluate_due(*cfg, now, t);
    escalate(*cfg, now, t);
  }
  // Deliveries wait on receivers (each up to its channel's timeout, a tick at most
  // kDeliveryBudget): outside the lock a reload takes, under their own, so one notification is
  // never sent by two ticks at once.
  std::lock_guard<std::mutex> d(deliver_mu_);
  deliver_due(*cfg, now, t);
  start_health_checks(*cfg, now, t);
  return t;
}

void MonitorService::evaluate_due(const config::Config& cfg, TimeNs now, Tick& t) {
  auto rows = catalog_.list_monitors();
  if (!rows.ok()) return;
  const EvalContext ctx = eval_context(cfg);
  for (const auto& row : *rows) {
    if (!row.is_active) {
      // A disabled monitor judges nothing: what it raised is over.
      (void)resolve_alerts_of(row.id, {}, "monitor disabled", now);
      continue;
    }
    if (row.last_check &&
        now - *row.last_check < static_cast<TimeNs>(row.check_frequency_minutes) * kMinute) {
      continue;
    }
    auto m = monitor_of(row);
    if (!m.ok()) continue;
    auto e = evaluate(ctx, *m, now);
    if (!e.ok()) {
      (void)catalog_.record_monitor_result(row.id, now, catalog::HealthStatus::kUnknown,
                                           {{"error", e.error().message()}});
      continue;
    }
    t.checked++;
    (void)apply_evaluation(row, *m, *e, now, t);
  }
}

Result<catalog::AlertRow> MonitorService::acknowledge(const std::string& id, const std::string& by) {
  // One conditional update: an escalation or a resolution written meanwhile (by this server or
  // another process) is never overwritten, nor does it overwrite this.
  HAVEN_ASSIGN(auto a, catalog_.acknowledge_alert(id, by, options_.clock()));
  note("alert:acknowledged", alert_json(a));
  return a;
}

}  // namespace haven::monitor

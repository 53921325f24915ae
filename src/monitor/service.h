// monitor/service.h — the server's monitoring: runs each monitor at its check frequency, turns
// its conditions into alerts (raised once per key, resolved when the condition clears),
// escalates unacknowledged alerts along their monitor's steps, delivers notifications through
// the channels (an outbox in the catalog: retried with back-off while a receiver is down, never
// sent twice once delivered), and checks each location's health.
//
// Time. Every decision uses the injected clock (tests move it by hand and call tick()); the
// background loop (start()) only wakes once a second of real time to call tick().
//
// Health checks (every monitoring.health_check_minutes per location, on the job runner as a
// shared job on the location, so a prune is never disturbed): the repository is reachable
// (its locks are listed: how many, how many stale), writable (a shared lock is taken and
// released), its capacity (local disks: statvfs of the repository's file system, or
// capacity_gb against the bytes its objects take; object storage: capacity_gb), and once a day
// the day's share of its data is read and verified (check --read-data-subset K/N with
// N = read_data_days, K = the day number mod N + 1, so all of it every N days). The result goes
// to the location row (last_health_check, health_status), to storage_capacity monitors, and
// out as a "health-check:completed" event.
//
// Events (the `note` callback: the server's event stream): the alert's kind ("alert:rpo-critical",
// "alert:missed-schedule", ...) when one is raised, "alert:resolved", "alert:escalated",
// "alert:acknowledged", "alert:notification-failed", "health-check:completed".
//
// Thread-safety: every method may be called from any thread. A tick's evaluation runs one at a
// time (with reloads), its deliveries one at a time apart from that (at most 20 s a tick), so an
// acknowledgement or a reload never waits for a slow receiver. Changes to an alert that others
// may make at the same time — acknowledging (the API, or the CLI in another process),
// escalating, resolving, recording a delivery — are each one conditional update in the catalog,
// so none overwrites another.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "catalog/catalog.h"
#include "config/config.h"
#include "jobs/service.h"
#include "monitor/channels.h"
#include "monitor/monitors.h"
#include "monitor/status.h"

namespace haven::monitor {

using Note = std::function<void(const std::string& kind, const nlohmann::json& payload)>;

struct MonitorOptions {
  std::function<TimeNs()> clock = [] { return haven::now(); };
  Note note;                 // events; may be empty
  std::string source = "haven";  // who sends (PagerDuty's payload.source): the host name
  bool health_checks = true;     // off: tests that drive health checks themselves
  // Notification retries: after retry_initial, doubling up to retry_max; a notification still
  // undelivered give_up after it was queued is failed (with an event).
  TimeNs retry_initial = 30'000'000'000LL;
  TimeNs retry_max = 600'000'000'000LL;
  TimeNs give_up = 86400'000'000'000LL;
  // The secondary regions' replication status (jobs::Replicator::status); may be empty.
  std::function<std::vector<jobs::RegionStatus>()> replication;
};

// The ChannelConfig channels.h sends through, from haven.yaml's channel.
ChannelConfig channel_config(const config::AlertChannel& c);

// The modification time of the newest WAL object in the location's repository (opens its
// backend with the location's settings; no password is needed).
Result<std::optional<TimeNs>> newest_wal(const config::Location& location);

class MonitorService {
 public:
  // `jobs` may be null: then no health checks run and snapshots are not read.
  MonitorService(catalog::Catalog& catalog, jobs::Service* jobs, MonitorOptions options);
  ~MonitorService();
  MonitorService(const MonitorService&) = delete;
  MonitorService& operator=(const MonitorService&) = delete;

  // The configuration's monitors into the catalog (source config): new ones created, changed
  // ones replaced, those that left the file deleted (their unresolved alerts are resolved then,
  // "monitor removed from the configuration", with resolve notices). An API monitor with the name of
  // one in the file is an error (kAlreadyExists) and nothing is changed.
  Status apply_config(std::shared_ptr<const config::Config> config);
  // What apply_config() would refuse, checked without changing anything (a reload checks every
  // part of the new configuration before applying any).
  Status check_config(const config::Config& config);
  std::shared_ptr<const config::Config> config() const;

  // The background loop: tick() once a second. stop() waits for it.
  void start();
  void stop();

  struct Tick {
    int checked = 0, raised = 0, resolved = 0, escalated = 0;
    int delivered = 0, retried = 0, failed = 0, health_checks = 0;
  };
  // One pass at the clock's time: the monitors that are due, escalations, due notifications,
  // health checks that are due (started on the runner; their results arrive later).
  Tick tick();

  // Deletes a monitor (id or name); its unresolved alerts are resolved ("monitor deleted") with
  // resolve notices to the channels they reached. kNotFound.
  Status remove_monitor(const std::string& id_or_name);
  // Checks one monitor now (by name), whatever its frequency, and applies the outcome.
  Result<Evaluation> check_now(const std::string& monitor_name);
  // Acknowledges an unresolved alert: its escalation stops. kNotFound; kAlreadyExists (a
  // conflict) if it is resolved or already acknowledged.
  Result<catalog::AlertRow> acknowledge(const std::string& alert_id, const std::string& by);

  StatusContext status_context(const config::Config& config);
  Result<StatusReport> status();

  // A location's health check, now, on the calling thread (the runner's job calls it).
  Result<HealthResult> health_check(const std::string& location);
  std::optional<HealthResult> health(const std::string& location) const;

  struct Counters {
    uint64_t delivered = 0, failed = 0, retried = 0, raised = 0, resolved = 0;
  };
  Counters counters() const;

 private:
  Status apply_evaluation(const catalog::MonitorRow& row, const config::Monitor& m,
                          const Evaluation& e, TimeNs now, Tick& t);
  void evaluate_due(const config::Config& cfg, TimeNs now, Tick& t);
  void escalate(const config::Config& cfg, TimeNs now, Tick& t);
  void deliver_due(const config::Config& cfg, TimeNs now, Tick& t);
  void start_health_checks(const config::Config& cfg, TimeNs now, Tick& t);
  void note(const std::string& kind, const nlohmann::json& payload);
  // Resolves an alert (unless it is already) with `details` merged in, and sends the resolve
  // notices it is owed.
  Status resolve(const catalog::AlertRow& alert, const nlohmann::json& details, TimeNs now);
  // Every unresolved alert of the monitor whose key is not in `keep_keys`.
  Status resolve_alerts_of(const std::string& monitor_id, const std::set<std::string>& keep_keys,
                           const std::string& why, TimeNs now);
  bool stopping() const;
  EvalContext eval_context(const config::Config& cfg);
  Status enqueue(const catalog::AlertRow& a, const std::vector<std::string>& channels,
                 catalog::NotifyAction action, int level, TimeNs now);

  catalog::Catalog& catalog_;
  jobs::Service* jobs_;
  MonitorOptions options_;

  mutable std::mutex mu_;
  std::shared_ptr<const config::Config> config_;
  std::map<std::string, HealthResult> health_;           // by location
  std::map<std::string, TimeNs> health_started_;         // by location: the last one started
  std::map<std::string, int64_t> read_data_day_;         // by location: the UTC day last read
  // by repository: when the WAL archive was listed and its newest object's time
  std::map<std::string, std::pair<TimeNs, std::optional<TimeNs>>> wal_cache_;
  Counters counters_;

  std::mutex tick_mu_;     // one evaluation pass at a time (and apply_config, check_now)
  std::mutex deliver_mu_;  // one delivery pass at a time
  CancelToken stop_token_;  // the loop's current token: stop() cancels a delivery in flight
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace haven::monitor

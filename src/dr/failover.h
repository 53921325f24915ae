// dr/failover.h — seed 000's FailoverConfig at work (config::Failover): probing the primary,
// declaring it failed after exactly failure_threshold consecutive failed probes, the lease that
// lets only one region act, the warm standby Haven keeps, and failing over.
//
//   * probe(): one health check of the primary (http, tcp, sql or a command). A failure adds one
//     to the count, a success resets it to zero; the probe that brings the count to exactly
//     failure_threshold declares the primary failed: the event "failover:primary-failed", an
//     alert (alert:failover-primary-failed, key failover/<name>, to the failover's channels),
//     and, with auto_failover, fail_over() at once. Later failed probes declare nothing more.
//     A success after a declaration resolves the alert (the primary is back) unless this
//     region failed over.
//   * fail_over(): takes the lease — leases/<name> in the lease location's storage, created
//     only if absent (the backends' create-only save), holding who took it and when — and
//     only the holder goes on; then warm_standby promotes the standby (pg_ctl promote; it
//     accepts writes), and the plan (if any) runs as a real recovery, and the DNS hook runs.
//     The report says what the standby had replayed: its last replayed commit and the newest
//     WAL segment in the archive, so the data lost is bounded by the archive's last segment.
//   * Warm standby: ensure_standby() restores the policy's newest base backup into the standby's
//     data directory as a standby (standby.signal, restore_command = haven wal-fetch; the
//     cluster retries it and so replays each segment as it is archived), and starts it.
//     standby_status() reports its replay position and lag.
//
// Thread-safety: every method may be called from any thread; start() probes on a thread of
// its own every health_check_interval.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "config/config.h"
#include "dr/checks.h"
#include "repo/repository.h"

namespace haven::dr {

struct FailoverOptions {
  std::string holder;  // who takes the lease: "<host>/<instance>"
  std::string haven_program;
  // The repository of a location (the lease's storage; the standby policy's backups).
  std::function<Result<std::shared_ptr<repo::Repository>>(const std::string& location)> open_location;
  // Runs a plan as a real recovery without approval; returns the execution's id.
  std::function<Result<std::string>(const std::string& plan, const std::string& reason)> run_plan;
  std::function<void(const std::string& kind, const nlohmann::json& payload)> note;
  catalog::Catalog* catalog = nullptr;  // alerts; may be null
  // The probe interval; 0: the failover's health_check_interval (tests shorten it).
  std::chrono::milliseconds interval{0};
  std::function<TimeNs()> clock = [] { return haven::now(); };
};

struct StandbyStatus {
  bool running = false;
  bool in_recovery = false;
  std::string replay_lsn;                 // pg_last_wal_replay_lsn()
  std::optional<TimeNs> last_replayed;    // pg_last_xact_replay_timestamp()
  std::string replayed_segment;           // the WAL segment holding replay_lsn
  std::string newest_archived;            // the newest segment in the archive
  std::optional<double> lag_seconds;      // now - last_replayed
  std::string error;
  nlohmann::json to_json() const;
};

class FailoverWatch {
 public:
  FailoverWatch(std::shared_ptr<const config::Config> config, config::Failover failover,
                FailoverOptions options);
  ~FailoverWatch();  // stop()
  FailoverWatch(const FailoverWatch&) = delete;
  FailoverWatch& operator=(const FailoverWatch&) = delete;

  const config::Failover& failover() const { return failover_; }
  CheckOutcome probe();
  // Fails over now (an operator, or auto_failover). kAlreadyExists naming the holder when
  // another region holds the lease.
  Result<nlohmann::json> fail_over(const std::string& by);
  Status ensure_standby();
  StandbyStatus standby_status();
  // Counts, state and the last failover's report.
  nlohmann::json state() const;

  // Probes every interval on a thread of its own; a warm standby is first made sure of
  // (ensure_standby(); a failure is the event failover:standby-failed and is tried again
  // every interval until it succeeds).
  void start();
  void stop();

 private:
  Status take_lease(const std::string& by);
  std::string standby_conninfo() const;

  std::shared_ptr<const config::Config> config_;
  config::Failover failover_;
  FailoverOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int consecutive_ = 0, probes_ = 0, failures_total_ = 0;
  bool declared_ = false, failed_over_ = false, failing_over_ = false;
  std::string last_message_;
  std::optional<TimeNs> declared_at_;
  nlohmann::json report_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace haven::dr

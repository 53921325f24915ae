// jobs/replicator.h — the server's replication (seed 003's ReplicationEngine): keeps every
// secondary region of every location in step with its primary.
//
//  * Continuous: each object the server's jobs save into a location (Service's repositories
//    report every save, object_saved()) is queued and copied to each active region at once,
//    in the order it landed, packs several at a time, index files and snapshots only after
//    the packs before them (replication::replicate's order).
//  * Passes: every replication.interval_seconds, and at once after a failure clears or on
//    sync_now(), a catch-up pass (replication::replicate) per active region, as a shared job on
//    the location (Runner): it finds what other processes wrote (the CLI, PostgreSQL's
//    archive_command) and what a failed region missed, and mirrors forget and prune.
//  * State per region, in the catalog's replication_regions: active, paused (nothing copied,
//    lag still measured and alerted), stopped (out of replication: not copied, not measured,
//    not in a sync quorum). set_state() is what the API calls; the CLI writes the catalog and
//    the replicator reads it before each round.
//  * Lag per region: objects and bytes not yet copied and the age of the oldest of them (from
//    the queue, and from each pass's listing of both sides), the newest snapshot the region
//    holds, and a level against the location's replication.rpo: warning from 80 %, critical
//    from 100 %, failed when the region cannot be reached. Recorded in the catalog each round.
//  * Events (the `note` callback: the server's event stream): replication:started, :progress,
//    :completed, :failed (passes that did something, through the events sink),
//    replication:rpo-warning, replication:rpo-violation (when a region's level rises),
//    replication:region-failed (a region that stops answering; once until it recovers),
//    replication:region-recovered, replication:state-changed.
//
// Memory: the per-region record of objects not yet copied keeps at most kMaxTracked entries;
// past that only the oldest time is kept and the next pass counts the rest.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "config/config.h"
#include "jobs/service.h"
#include "replication/replication.h"
#include "storage/backend.h"
#include "util/events.h"

namespace haven::jobs {

struct ReplicatorOptions {
  std::function<TimeNs()> clock = [] { return haven::now(); };
  std::function<void(const std::string& kind, const nlohmann::json& payload)> note;
  std::function<void(const std::string& actor, const std::string& action,
                     const std::string& target, const nlohmann::json& details)>
      audit;
  unsigned parallel = 4;  // objects copied at once per region
};

// One region of one location, as GET /api/replication shows it.
struct RegionStatus {
  std::string location, region, repository;  // repository: its address (never credentials)
  std::string mode;                          // async | sync
  catalog::ReplicationState state = catalog::ReplicationState::kActive;
  std::string status = "unknown";            // ok warning critical failed unknown
  int64_t pending_objects = 0, pending_bytes = 0;
  std::optional<TimeNs> oldest_pending_at;
  std::optional<TimeNs> newest_snapshot_at;
  std::optional<TimeNs> last_pass_at, last_success_at;
  int64_t copied_objects = 0, copied_bytes = 0;
  std::string last_error;
  int64_t rpo_target_seconds = 0;
  // The age of the oldest object not yet copied (0 when none).
  int64_t lag_seconds(TimeNs now) const;
  nlohmann::json to_json(TimeNs now) const;
};

class Replicator {
 public:
  static constexpr size_t kMaxTracked = 100000;

  Replicator(catalog::Catalog& catalog, Service& service, EventSink& events,
             ReplicatorOptions options);
  ~Replicator();  // stop()
  Replicator(const Replicator&) = delete;
  Replicator& operator=(const Replicator&) = delete;

  // The locations with secondary regions get a worker each (kept across reloads when their
  // regions are unchanged; restarted otherwise; stopped when they are gone).
  void apply_config(std::shared_ptr<const config::Config> config);
  void start();
  void stop();

  // An object landed in the location's primary (called by the Service's repositories).
  void object_saved(const std::string& location, const storage::ObjectName& name, uint64_t size);
  // A catch-up pass for every region of the location now (kNotFound: no such location with
  // secondary regions).
  Status sync_now(const std::string& location);
  // pause / resume / stop a region: recorded in the catalog and the audit log.
  Result<catalog::ReplicationRow> set_state(const std::string& location, const std::string& region,
                                            catalog::ReplicationState state,
                                            const std::string& actor);
  // A sync write could not reach a region (on_quorum_loss: degrade, or a quorum met without
  // it): the region counts as failed — its status, the replication_lag monitor's alert, a
  // region-failed event — until a pass reaches it again.
  void region_failed(const std::string& location, const std::string& region, const Error& error);
  // Whether a region takes part in replication now (sync mode's quorum asks).
  bool region_active(const std::string& location, const std::string& region) const;
  std::vector<RegionStatus> status() const;
  // Waits until no location has objects queued or a pass due now (tests, make demo).
  bool wait_idle(std::chrono::milliseconds timeout) const;

 private:
  struct Worker;
  void run(Worker& w);
  void copy_batch(Worker& w, const std::vector<std::pair<replication::ObjectKey, uint64_t>>& batch);
  void pass(Worker& w, bool forced);
  void evaluate(Worker& w);
  void note(const std::string& kind, const nlohmann::json& payload);

  catalog::Catalog& catalog_;
  Service& service_;
  EventSink& events_;
  ReplicatorOptions options_;

  mutable std::mutex mu_;
  mutable std::condition_variable idle_cv_;
  std::map<std::string, std::unique_ptr<Worker>> workers_;  // by location
  bool started_ = false;
  bool stopping_ = false;
};

}  // namespace haven::jobs

#include "jobs/replicator.h"

#include <algorithm>
#include <future>
#include <set>

#include "jobs/regions.h"
#include "repo/ids.h"
#include "util/cancel.h"

namespace haven::jobs {

using catalog::ReplicationState;
using replication::ObjectKey;

namespace {

constexpr TimeNs kSecond = 1'000'000'000;

std::string level_of(int64_t lag_seconds, int64_t target_seconds) {
  if (target_seconds <= 0) return "unknown";
  if (lag_seconds >= target_seconds) return "critical";
  if (lag_seconds * 10 >= target_seconds * 8) return "warning";
  return "ok";
}

// Holds a pass's events and hands them on only when the pass did something (copied, deleted,
// failed): a pass that finds every region in step every 30 seconds is not news.
class PassSink : public EventSink {
 public:
  void emit(const Event& e) override {
    std::lock_guard<std::mutex> g(mu_);
    if (e.kind == EventKind::kProgress && !events_.empty() &&
        events_.back().kind == EventKind::kProgress && !(e.progress && e.progress->final)) {
      events_.back() = e;  // the latest progress is enough
      return;
    }
    events_.push_back(e);
  }
  void forward(EventSink& to) {
    std::lock_guard<std::mutex> g(mu_);
    for (const auto& e : events_) to.emit(e);
    events_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<Event> events_;
};

}  // namespace

int64_t RegionStatus::lag_seconds(TimeNs now) const {
  if (!oldest_pending_at || pending_objects == 0) return 0;
  return std::max<TimeNs>(0, now - *oldest_pending_at) / kSecond;
}

nlohmann::json RegionStatus::to_json(TimeNs now) const {
  auto time = [](const std::optional<TimeNs>& t) {
    return t ? nlohmann::json(format_time(*t)) : nlohmann::json(nullptr);
  };
  nlohmann::json j = {{"location", location},
                      {"region", region},
                      {"repository", repository},
                      {"mode", mode},
                      {"state", catalog::to_string(state)},
                      {"status", status},
                      {"pending_objects", pending_objects},
                      {"pending_bytes", pending_bytes},
                      {"lag_seconds", lag_seconds(now)},
                      {"rpo_target_seconds", rpo_target_seconds},
                      {"oldest_pending_at", time(oldest_pending_at)},
                      {"newest_snapshot_at", time(newest_snapshot_at)},
                      {"last_pass_at", time(last_pass_at)},
                      {"last_success_at", time(last_success_at)},
                      {"copied_objects", copied_objects},
                      {"copied_bytes", copied_bytes},
                      {"last_error", last_error}};
  j["snapshot_age_seconds"] = newest_snapshot_at
                                  ? nlohmann::json(std::max<TimeNs>(0, now - *newest_snapshot_at) / kSecond)
                                  : nlohmann::json(nullptr);
  return j;
}

struct Track {
  replication::Region region;
  RegionStatus st;
  // Objects known to be missing in the region: landed here (size, time) and not copied yet.
  std::map<ObjectKey, std::pair<uint64_t, TimeNs>> pending;
  std::optional<TimeNs> overflow_oldest;  // pending past kMaxTracked: only the oldest time
  // What the last listing found missing beyond `pending` (objects other processes wrote).
  int64_t listed_objects = 0, listed_bytes = 0;
  std::optional<TimeNs> listed_oldest;
  bool failed = false;
  std::string noted_level = "ok";
  TimeNs recorded_at = 0;
  std::string recorded_key;
};

struct Replicator::Worker {
  config::Location location;
  std::vector<Track> regions;
  std::deque<std::tuple<ObjectKey, uint64_t, TimeNs>> queue;
  bool wake = true;  // a pass at start
  bool stop = false;
  bool busy = false;
  TimeNs next_pass = 0;
  uint64_t passes = 0;
  std::string job_id;  // the pass job queued or running (stop() cancels it)
  std::map<std::string, TimeNs> snapshot_times;  // snapshot name → its time (immutable)
  std::condition_variable cv;
  std::thread thread;
};

Replicator::Replicator(catalog::Catalog& catalog, Service& service, EventSink& events,
                       ReplicatorOptions options)
    : catalog_(catalog), service_(service), events_(events), options_(std::move(options)) {}

Replicator::~Replicator() { stop(); }

void Replicator::note(const std::string& kind, const nlohmann::json& payload) {
  if (options_.note) options_.note(kind, payload);
}

void Replicator::apply_config(std::shared_ptr<const config::Config> config) {
  std::vector<std::unique_ptr<Worker>> retired;
  std::vector<std::string> retired_jobs;
  {
    std::lock_guard<std::mutex> g(mu_);
    std::set<std::string> wanted;
    for (const auto& loc : config->locations) {
      if (loc.secondary_regions.empty()) continue;
      wanted.insert(loc.name);
      auto it = workers_.find(loc.name);
      if (it != workers_.end() && it->second->location == loc) continue;
      if (it != workers_.end()) {
        retired.push_back(std::move(it->second));
        workers_.erase(it);
      }
      auto w = std::make_unique<Worker>();
      w->location = loc;
      for (const auto& r : loc.secondary_regions) {
        Track t;
        auto be = storage::open_backend(r.repository, region_settings(r));
        t.region.name = r.region;
        if (be.ok()) {
          t.region.backend = *be;
        } else {
          t.failed = true;
          t.st.last_error = be.error().message();
        }
        t.st.location = loc.name;
        t.st.region = r.region;
        t.st.repository = r.repository;
        t.st.mode = std::string(config::name(loc.replication.mode));
        t.st.rpo_target_seconds = loc.replication.rpo.seconds();
        w->regions.push_back(std::move(t));
      }
      workers_[loc.name] = std::move(w);
    }
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (wanted.count(it->first)) {
        ++it;
        continue;
      }
      retired.push_back(std::move(it->second));
      it = workers_.erase(it);
    }
    for (auto& w : retired) {
      w->stop = true;
      w->cv.notify_all();
      if (!w->job_id.empty()) retired_jobs.push_back(w->job_id);
    }
    if (started_ && !stopping_) {
      for (auto& [name, w] : workers_) {
        if (!w->thread.joinable()) w->thread = std::thread([this, p = w.get()] { run(*p); });
      }
    }
  }
  for (const auto& id : retired_jobs) {
    (void)service_.runner().cancel(id, Error(Error::Code::kCancelled, "the location changed"));
  }
  for (auto& w : retired) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void Replicator::start() {
  std::lock_guard<std::mutex> g(mu_);
  if (started_) return;
  started_ = true;
  for (auto& [name, w] : workers_) {
    if (!w->thread.joinable()) w->thread = std::thread([this, p = w.get()] { run(*p); });
  }
}

void Replicator::stop() {
  std::vector<Worker*> all;
  std::vector<std::string> jobs;
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
    for (auto& [name, w] : workers_) {
      w->stop = true;
      w->cv.notify_all();
      all.push_back(w.get());
      if (!w->job_id.empty()) jobs.push_back(w->job_id);
    }
  }
  // A pass waiting in the queue (behind a long backup) or running: dropped or cancelled.
  for (const auto& id : jobs) {
    (void)service_.runner().cancel(id, Error(Error::Code::kCancelled, "the server is stopping"));
  }
  for (Worker* w : all) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void Replicator::object_saved(const std::string& location, const storage::ObjectName& name,
                              uint64_t size) {
  if (name.type == storage::ObjectType::kLock || name.type == storage::ObjectType::kLease) return;
  std::lock_guard<std::mutex> g(mu_);
  auto it = workers_.find(location);
  if (it == workers_.end()) return;
  Worker& w = *it->second;
  const TimeNs now = options_.clock();
  const ObjectKey key{name.type, name.name};
  w.queue.emplace_back(key, size, now);
  for (auto& t : w.regions) {
    if (t.st.state == ReplicationState::kStopped) continue;
    if (t.pending.size() < kMaxTracked) {
      t.pending.emplace(key, std::make_pair(size, now));
    } else if (!t.overflow_oldest) {
      t.overflow_oldest = now;
    }
  }
  w.cv.notify_all();
}

Status Replicator::sync_now(const std::string& location) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = workers_.find(location);
  if (it == workers_.end()) {
    return Error(Error::Code::kNotFound,
                 "location '" + location + "' has no secondary regions to replicate to");
  }
  it->second->wake = true;
  it->second->cv.notify_all();
  return ok_status();
}

Result<catalog::ReplicationRow> Replicator::set_state(const std::string& location,
                                                      const std::string& region,
                                                      ReplicationState state,
                                                      const std::string& actor) {
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = workers_.find(location);
    if (it == workers_.end()) {
      return Error(Error::Code::kNotFound,
                   "location '" + location + "' has no secondary regions");
    }
    bool found = false;
    std::string names;
    for (const auto& t : it->second->regions) {
      names += (names.empty() ? "" : ", ") + t.region.name;
      found = found || t.region.name == region;
    }
    if (!found) {
      return Error(Error::Code::kNotFound, "location '" + location + "' has no secondary region '" +
                                               region + "' (its secondary regions: " + names + ")");
    }
  }
  HAVEN_ASSIGN(catalog::ReplicationRow row,
               catalog_.set_replication_state(location, region, state, actor, options_.clock()));
  if (options_.audit) {
    options_.audit(actor, std::string("replication.") + (state == ReplicationState::kActive ? "resume"
                                                         : state == ReplicationState::kPaused ? "pause"
                                                                                              : "stop"),
                   location + "/" + region, {{"state", catalog::to_string(state)}});
  }
  note("replication:state-changed", {{"location", location},
                                     {"region", region},
                                     {"state", catalog::to_string(state)},
                                     {"by", actor}});
  std::lock_guard<std::mutex> g(mu_);
  auto it = workers_.find(location);
  if (it != workers_.end()) {
    for (auto& t : it->second->regions) {
      if (t.region.name != region) continue;
      t.st.state = state;
      if (state == ReplicationState::kStopped) {
        t.pending.clear();
        t.overflow_oldest.reset();
      }
    }
    it->second->wake = state == ReplicationState::kActive || it->second->wake;
    it->second->cv.notify_all();
  }
  return row;
}

void Replicator::region_failed(const std::string& location, const std::string& region,
                               const Error& error) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = workers_.find(location);
  if (it == workers_.end()) return;
  for (auto& t : it->second->regions) {
    if (t.region.name != region) continue;
    t.st.last_error = error.message();
    if (!t.failed) {
      t.failed = true;
      note("replication:region-failed", {{"location", location},
                                         {"region", region},
                                         {"error", error.message()},
                                         {"mode", "sync"}});
    }
  }
  it->second->wake = true;  // a pass soon: it finds what the region missed
  it->second->cv.notify_all();
}

bool Replicator::region_active(const std::string& location, const std::string& region) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = workers_.find(location);
  if (it == workers_.end()) return true;  // not known yet: take part
  for (const auto& t : it->second->regions) {
    if (t.region.name == region) return t.st.state == ReplicationState::kActive;
  }
  return true;
}

std::vector<RegionStatus> Replicator::status() const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<RegionStatus> out;
  for (const auto& [name, w] : workers_) {
    for (const auto& t : w->regions) out.push_back(t.st);
  }
  return out;
}

bool Replicator::wait_idle(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lk(mu_);
  return idle_cv_.wait_for(lk, timeout, [&] {
    for (const auto& [name, w] : workers_) {
      if (!w->queue.empty() || w->busy || w->wake) return false;
    }
    return true;
  });
}

void Replicator::run(Worker& w) {
  std::unique_lock<std::mutex> lk(mu_);
  while (!w.stop) {
    w.cv.wait_for(lk, std::chrono::seconds(1), [&] {
      return w.stop || !w.queue.empty() || w.wake || options_.clock() >= w.next_pass;
    });
    if (w.stop) break;
    // What operators set (the CLI writes the catalog directly).
    lk.unlock();
    auto rows = catalog_.list_replication();
    lk.lock();
    if (rows.ok()) {
      for (const auto& r : *rows) {
        if (r.location != w.location.name) continue;
        for (auto& t : w.regions) {
          if (t.region.name != r.region) continue;
          if (t.st.state != ReplicationState::kActive && r.state == ReplicationState::kActive) {
            w.wake = true;  // resumed: catch up at once
          }
          if (r.state == ReplicationState::kStopped) {
            t.pending.clear();
            t.overflow_oldest.reset();
          }
          t.st.state = r.state;
        }
      }
    }
    if (!w.queue.empty()) {
      std::vector<std::pair<ObjectKey, uint64_t>> batch;
      while (!w.queue.empty() && batch.size() < 10000) {
        batch.emplace_back(std::get<0>(w.queue.front()), std::get<1>(w.queue.front()));
        w.queue.pop_front();
      }
      w.busy = true;
      lk.unlock();
      copy_batch(w, batch);
      lk.lock();
      w.busy = false;
    }
    if (w.wake || options_.clock() >= w.next_pass) {
      const bool forced = w.wake;
      w.wake = false;
      w.busy = true;
      lk.unlock();
      pass(w, forced);
      lk.lock();
      w.busy = false;
      w.next_pass = options_.clock() + static_cast<TimeNs>(w.location.replication.interval_seconds) * kSecond;
    }
    lk.unlock();
    evaluate(w);
    lk.lock();
    idle_cv_.notify_all();
  }
}

void Replicator::copy_batch(Worker& w,
                            const std::vector<std::pair<ObjectKey, uint64_t>>& batch) {
  auto primary = service_.repository_named(w.location.name);
  if (!primary.ok()) return;  // the pass reports it
  std::vector<ObjectKey> keys;
  for (const auto& [key, size] : batch) keys.push_back(key);
  for (size_t i = 0; i < w.regions.size(); i++) {
    Track& t = w.regions[i];
    {
      std::lock_guard<std::mutex> g(mu_);
      if (t.st.state != ReplicationState::kActive || t.failed || !t.region.backend) continue;
    }
    uint64_t objects = 0, bytes = 0;
    Status s = replication::copy_objects(
        (*primary)->backend(), *t.region.backend, keys, options_.parallel,
        [&](const ObjectKey& key, uint64_t n) {
          std::lock_guard<std::mutex> g(mu_);
          t.pending.erase(key);
          if (n > 0) {
            objects++;
            bytes += n;
            t.st.copied_objects++;
            t.st.copied_bytes += static_cast<int64_t>(n);
          }
        });
    std::lock_guard<std::mutex> g(mu_);
    if (!s.ok()) {
      t.st.last_error = s.error().message();
      if (!t.failed) {
        t.failed = true;
        note("replication:region-failed", {{"location", w.location.name},
                                           {"region", t.region.name},
                                           {"error", s.error().message()}});
      }
      continue;
    }
    if (objects > 0) {
      // The snapshots now in the region: a snapshot is there, with all it references.
      nlohmann::json snapshots = nlohmann::json::array();
      for (const auto& key : keys) {
        if (key.first == storage::ObjectType::kSnapshot) snapshots.push_back(key.second);
      }
      note("replication:progress", {{"location", w.location.name},
                                    {"region", t.region.name},
                                    {"objects", objects},
                                    {"bytes", bytes},
                                    {"snapshots", snapshots},
                                    {"pending_objects", t.pending.size()}});
    }
  }
}

void Replicator::pass(Worker& w, bool forced) {
  auto primary = service_.repository_named(w.location.name);
  for (size_t i = 0; i < w.regions.size(); i++) {
    Track& t = w.regions[i];
    ReplicationState state;
    {
      std::lock_guard<std::mutex> g(mu_);
      state = t.st.state;
      if (w.stop) return;
    }
    if (state == ReplicationState::kStopped || !t.region.backend) continue;
    const TimeNs started = options_.clock();
    std::optional<Error> failure;
    std::vector<std::string> region_snapshots;
    bool listed = false;
    int64_t listed_objects = 0, listed_bytes = 0;
    std::optional<TimeNs> listed_oldest;
    if (!primary.ok()) {
      failure = primary.error();
    } else if (state == ReplicationState::kActive) {
      // A shared job on the location: a prune waits for it, and it for a prune.
      auto done = std::make_shared<std::promise<Result<replication::PassResult>>>();
      auto future = done->get_future();
      auto sink = std::make_shared<PassSink>();
      std::shared_ptr<repo::Repository> repo = *primary;
      replication::Region region = t.region;
      const unsigned parallel = options_.parallel;
      const std::string op_id = "replicate-" + w.location.name + "-" + region.name + "-" +
                                std::to_string(++w.passes);
      Job job;
      job.id = op_id;
      job.resource = w.location.name;
      job.access = Access::kShared;
      job.run = [done, sink, repo, region, parallel, op_id](const CancelToken& token) {
        CancelScope scope(token);
        replication::PassOptions po;
        po.parallel = parallel;
        done->set_value(replication::replicate(*repo, region, po, EventTarget(*sink, op_id)));
      };
      job.on_dropped = [done](const Error& why) { done->set_value(why); };
      {
        std::lock_guard<std::mutex> g(mu_);
        if (w.stop) return;
        w.job_id = op_id;
      }
      Status submitted = service_.runner().submit(std::move(job));
      bool stopping;
      {
        std::lock_guard<std::mutex> g(mu_);
        stopping = w.stop;
      }
      if (submitted.ok() && stopping) {
        // stop() came between recording the job and queueing it: it could not cancel it.
        (void)service_.runner().cancel(op_id, Error(Error::Code::kCancelled, "replication stopped"));
      }
      if (!submitted.ok()) {
        failure = submitted.error();
      } else {
        auto r = future.get();
        {
          std::lock_guard<std::mutex> g(mu_);
          w.job_id.clear();
        }
        if (r.ok()) {
          if (r->copied_objects > 0 || r->deleted_objects > 0 || forced) sink->forward(events_);
          region_snapshots = r->region_snapshots;
          listed = true;
          listed_objects = static_cast<int64_t>(r->lag.objects);
          listed_bytes = static_cast<int64_t>(r->lag.bytes);
          listed_oldest = r->lag.oldest;
          if (!r->differing.empty() || !r->kept.empty()) {
            // Copies that disagree (size), or objects the primary lost: damage somewhere.
            note("replication:validation-failed", {{"location", w.location.name},
                                                   {"region", region.name},
                                                   {"differing", r->differing},
                                                   {"kept", r->kept}});
          }
          std::lock_guard<std::mutex> g(mu_);
          t.st.copied_objects += static_cast<int64_t>(r->copied_objects);
          t.st.copied_bytes += static_cast<int64_t>(r->copied_bytes);
        } else {
          if (r.error().code() != Error::Code::kCancelled) sink->forward(events_);
          failure = r.error();
        }
      }
    } else {
      // Paused: measured, not copied.
      auto src = replication::inventory((*primary)->backend());
      auto dst = src.ok() ? replication::inventory(*t.region.backend) : src;
      if (!src.ok() || !dst.ok()) {
        failure = src.ok() ? dst.error() : src.error();
      } else {
        listed = true;
        for (const auto& [key, info] : *src) {
          if (dst->count(key)) continue;
          listed_objects++;
          listed_bytes += static_cast<int64_t>(info.size);
          if (!listed_oldest || info.modified < *listed_oldest) listed_oldest = info.modified;
        }
        for (const auto& [key, info] : *dst) {
          if (key.first == storage::ObjectType::kSnapshot) region_snapshots.push_back(key.second);
        }
      }
    }
    if (failure && primary.ok()) {
      // What may be missing: whatever landed in the primary since the last success.
      auto src = replication::inventory((*primary)->backend());
      std::optional<TimeNs> since;
      {
        std::lock_guard<std::mutex> g(mu_);
        since = t.st.last_success_at;
      }
      if (src.ok()) {
        for (const auto& [key, info] : *src) {
          if (since && info.modified < *since) continue;
          listed_objects++;
          listed_bytes += static_cast<int64_t>(info.size);
          if (!listed_oldest || info.modified < *listed_oldest) listed_oldest = info.modified;
        }
        listed = true;
      }
    }
    // The newest snapshot the region holds, by the snapshots' own times.
    std::optional<TimeNs> newest;
    if (primary.ok()) {
      for (const auto& name : region_snapshots) {
        auto known = w.snapshot_times.find(name);
        if (known == w.snapshot_times.end()) {
          auto id = repo::parse_id(name);
          if (!id) continue;
          auto snap = (*primary)->load_snapshot(*id);
          if (!snap.ok()) continue;
          known = w.snapshot_times.emplace(name, snap->time).first;
        }
        if (!newest || known->second > *newest) newest = known->second;
      }
    }
    std::lock_guard<std::mutex> g(mu_);
    t.st.last_pass_at = started;
    if (!region_snapshots.empty() || listed) t.st.newest_snapshot_at = newest;
    if (listed) {
      // The listing saw the region as of `started`: what was pending before is counted there.
      for (auto it = t.pending.begin(); it != t.pending.end();) {
        it = it->second.second < started ? t.pending.erase(it) : std::next(it);
      }
      if (t.pending.size() < kMaxTracked) t.overflow_oldest.reset();
      t.listed_objects = listed_objects;
      t.listed_bytes = listed_bytes;
      t.listed_oldest = listed_oldest;
    }
    if (failure) {
      if (failure->code() == Error::Code::kCancelled) continue;
      t.st.last_error = failure->message();
      if (!t.failed) {
        t.failed = true;
        note("replication:region-failed", {{"location", w.location.name},
                                           {"region", t.region.name},
                                           {"error", failure->message()}});
      }
      continue;
    }
    if (state == ReplicationState::kActive) {
      t.st.last_success_at = started;
      if (t.failed) {
        note("replication:region-recovered", {{"location", w.location.name},
                                              {"region", t.region.name}});
      }
      t.failed = false;
      t.st.last_error.clear();
    }
  }
}

void Replicator::evaluate(Worker& w) {
  const TimeNs now = options_.clock();
  std::vector<catalog::ReplicationRow> rows;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& t : w.regions) {
      RegionStatus& st = t.st;
      st.pending_objects = static_cast<int64_t>(t.pending.size()) + t.listed_objects;
      st.pending_bytes = t.listed_bytes;
      std::optional<TimeNs> oldest = t.listed_oldest;
      for (const auto& [key, v] : t.pending) {
        st.pending_bytes += static_cast<int64_t>(v.first);
        if (!oldest || v.second < *oldest) oldest = v.second;
      }
      if (t.overflow_oldest && (!oldest || *t.overflow_oldest < *oldest)) oldest = t.overflow_oldest;
      st.oldest_pending_at = st.pending_objects > 0 ? oldest : std::nullopt;
      std::string level;
      if (st.state == ReplicationState::kStopped) {
        level = "unknown";
        st.pending_objects = st.pending_bytes = 0;
        st.oldest_pending_at.reset();
      } else if (t.failed) {
        level = "failed";
      } else {
        level = level_of(st.lag_seconds(now), st.rpo_target_seconds);
      }
      // A region whose lag rises past a threshold: once per rise. A failed one is measured too.
      const std::string lag_level = st.state == ReplicationState::kStopped
                                        ? "unknown"
                                        : level_of(st.lag_seconds(now), st.rpo_target_seconds);
      auto rank = [](const std::string& l) { return l == "critical" ? 2 : l == "warning" ? 1 : 0; };
      if (rank(lag_level) > rank(t.noted_level)) {
        note(lag_level == "critical" ? "replication:rpo-violation" : "replication:rpo-warning",
             {{"location", st.location},
              {"region", st.region},
              {"lag_seconds", st.lag_seconds(now)},
              {"rpo_target_seconds", st.rpo_target_seconds},
              {"pending_objects", st.pending_objects},
              {"pending_bytes", st.pending_bytes}});
      }
      t.noted_level = lag_level;
      st.status = level;
      // To the catalog when something changed, and at least every 10 s while behind.
      const std::string key = st.status + "|" + std::to_string(st.pending_objects) + "|" +
                              std::to_string(st.last_pass_at.value_or(0)) + "|" + st.last_error;
      if (key == t.recorded_key && (st.pending_objects == 0 || now - t.recorded_at < 10 * kSecond)) {
        continue;
      }
      t.recorded_key = key;
      t.recorded_at = now;
      catalog::ReplicationRow r;
      r.location = st.location;
      r.region = st.region;
      r.status = st.status;
      r.pending_objects = st.pending_objects;
      r.pending_bytes = st.pending_bytes;
      r.oldest_pending_at = st.oldest_pending_at;
      r.newest_snapshot_at = st.newest_snapshot_at;
      r.last_pass_at = st.last_pass_at;
      r.last_success_at = st.last_success_at;
      r.copied_objects = st.copied_objects;
      r.copied_bytes = st.copied_bytes;
      r.last_error = st.last_error;
      rows.push_back(std::move(r));
    }
  }
  for (const auto& r : rows) (void)catalog_.record_replication(r);
}

}  // namespace haven::jobs

#include "jobs/service.h"

#include "jobs/regions.h"
#include "replication/failover.h"
#include "replication/quorum.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "jobs/regions.h"
#include "ops/backup.h"
#include "ops/check.h"
#include "ops/forget.h"
#include "ops/inspect.h"
#include "ops/lock.h"
#include "ops/pg.h"
#include "ops/restore.h"
#include "replication/failover.h"
#include "replication/quorum.h"
#include "repo/ids.h"
#include "storage/backend.h"
#include "storage/limit.h"

namespace haven::jobs {

namespace {

catalog::BackupType backup_type(config::Strategy s) {
  switch (s) {
    case config::Strategy::kFull: return catalog::BackupType::kFull;
    case config::Strategy::kDifferential: return catalog::BackupType::kDifferential;
    case config::Strategy::kIncremental: break;
  }
  return catalog::BackupType::kIncremental;
}

catalog::StorageType storage_type(config::StorageType t) {
  switch (t) {
    case config::StorageType::kS3: return catalog::StorageType::kS3;
    case config::StorageType::kAzureBlob: return catalog::StorageType::kAzureBlob;
    case config::StorageType::kGcpStorage: return catalog::StorageType::kGcpStorage;
    case config::StorageType::kOnPremise: break;
  }
  return catalog::StorageType::kOnPremise;
}

std::string one_line(const std::string& s) {
  std::string out = s;
  std::replace(out.begin(), out.end(), '\n', ' ');
  return out;
}

int64_t seconds_between(TimeNs a, TimeNs b) { return std::max<int64_t>(0, (b - a) / 1000000000); }

// The seed's figures of a backup, from its snapshot's statistics.
void set_figures(catalog::ExecutionRow& row, const repo::Snapshot& snap) {
  auto stat = [&](const char* k) -> uint64_t {
    auto it = snap.stats.find(k);
    return it == snap.stats.end() ? 0 : it->second;
  };
  row.backup_size_bytes = static_cast<int64_t>(stat("bytes_total"));
  row.compressed_size_bytes = static_cast<int64_t>(stat("bytes_added"));
  row.files_backed_up =
      static_cast<int64_t>(stat("files_new") + stat("files_changed") + stat("files_unchanged"));
  double secs = static_cast<double>(stat("duration_ms")) / 1000.0;
  row.duration_seconds = static_cast<int64_t>(std::llround(secs));
  row.transfer_rate_mbps =
      secs > 0 ? std::round(static_cast<double>(stat("bytes_read")) / 1e6 / secs * 100) / 100 : 0.0;
}

}  // namespace

std::string policy_tag(const std::string& policy_name) { return "policy:" + policy_name; }

catalog::PolicyRow policy_row(const config::Policy& p, catalog::PolicySource source) {
  catalog::PolicyRow row;
  row.name = p.name;
  if (!p.description.empty()) row.description = p.description;
  row.resource_type = p.resource_type == config::ResourceType::kDatabase
                          ? catalog::ResourceType::kDatabase
                          : catalog::ResourceType::kFiles;
  if (p.resource_type == config::ResourceType::kFiles) {
    row.resource_filters = {{"sources", p.sources}, {"excludes", p.excludes}};
  } else if (p.database) {
    row.resource_filters = {{"pgdata", p.database->pgdata}};
  }
  if (!p.schedules.empty()) {
    row.schedule_cron = p.schedules[0].cron;
    row.timezone = p.schedules[0].timezone;
    row.backup_type = backup_type(p.schedules[0].strategy);
  }
  row.retention_daily = p.retention.daily;
  row.retention_weekly = p.retention.weekly;
  row.retention_monthly = p.retention.monthly;
  row.retention_yearly = p.retention.yearly;
  row.compression_enabled = !(p.compression && *p.compression == config::Compression::kNone);
  row.encryption_enabled = true;
  row.max_parallel_jobs = p.max_parallel_jobs;
  row.bandwidth_limit_mbps = p.bandwidth_limit_mbps;
  row.is_active = p.is_active;
  row.source = source;
  row.spec = p;
  return row;
}

Service::Service(catalog::Catalog& catalog, EventSink& events, ServiceOptions options)
    : catalog_(catalog), events_(events), options_(std::move(options)), runner_(options_.max_parallel, options_.on_job_thread) {
  retry_thread_ = std::thread([this] { retry_loop(); });
}

Service::~Service() { shutdown(/*cancel_running=*/true, std::chrono::seconds(5)); }

Status Service::apply_config(std::shared_ptr<const config::Config> cfg) {
  HAVEN_ASSIGN(std::vector<catalog::PolicyRow> existing, catalog_.list_policies());
  std::map<std::string, catalog::PolicyRow> by_name;
  for (auto& r : existing) by_name[r.name] = r;
  for (const config::Policy& p : cfg->policies) {
    auto it = by_name.find(p.name);
    if (it != by_name.end() && it->second.source == catalog::PolicySource::kApi) {
      return Error(Error::Code::kAlreadyExists,
                   "policies: '" + p.name + "' is also a policy created over the API: rename one "
                   "of them, or delete the API's (DELETE /api/backup/policies/" + it->second.id + ")");
    }
  }
  std::map<std::string, std::string> location_ids;
  for (const config::Location& l : cfg->locations) {
    catalog::LocationRow row;
    row.name = l.name;
    if (!l.description.empty()) row.description = l.description;
    row.storage_type = storage_type(l.storage_type);
    // The seed's column is NOT NULL; a location of haven.yaml may leave its region out.
    row.primary_region = l.primary_region.empty() ? "unspecified" : l.primary_region;
    row.connection_config = {{"repository", l.repository}};  // never a credential
    HAVEN_ASSIGN(catalog::LocationRow stored, catalog_.upsert_location(row));
    location_ids[l.name] = stored.id;
  }
  for (const config::Policy& p : cfg->policies) {
    catalog::PolicyRow row = policy_row(p, catalog::PolicySource::kConfig);
    row.location_id = location_ids[p.location];
    auto it = by_name.find(p.name);
    if (it == by_name.end()) {
      HAVEN_TRY(catalog_.create_policy(row));
    } else {
      row.id = it->second.id;
      HAVEN_TRY(catalog_.update_policy(row));
      by_name.erase(it);
    }
  }
  // Policies of the file that left it: inactive, history kept.
  for (auto& [name, row] : by_name) {
    if (row.source == catalog::PolicySource::kConfig && row.is_active) {
      row.is_active = false;
      HAVEN_TRY(catalog_.update_policy(row));
    }
  }
  std::lock_guard<std::mutex> g(mu_);
  config_ = std::move(cfg);
  repos_.clear();  // locations may have changed; running jobs keep the repository they hold
  runner_.set_max_parallel(std::max(1, config_->server.max_parallel_jobs));
  return ok_status();
}

std::shared_ptr<const config::Config> Service::config() const {
  std::lock_guard<std::mutex> g(mu_);
  return config_;
}

Result<config::Policy> Service::policy_of(const catalog::PolicyRow& row) const {
  auto cfg = config();
  if (cfg == nullptr) return Error(Error::Code::kInternal, "no configuration applied");
  Result<config::Policy> p = config::policy_from_json(row.spec, cfg->locations);
  if (!p.ok()) return p.error().with_context("policy '" + row.name + "'");
  return p;
}

repo::MemoryBudget job_budget(const config::ServerSettings& server) {
  static_assert(uint64_t{config::ServerSettings::kMinJobMemoryMib} << 20 == repo::MemoryBudget::kMinimum,
                "the configuration's per-job minimum is the engines'");
  repo::MemoryBudget b;
  if (server.memory_limit_mib > 0) {
    b.limit = (uint64_t(server.memory_limit_mib) << 20) / static_cast<uint64_t>(std::max(1, server.max_parallel_jobs));
  }
  return b;
}

Result<std::shared_ptr<repo::Repository>> Service::repository(const config::Location& location,
                                                              const config::Policy* paced) {
  const int limit = paced != nullptr ? paced->bandwidth_limit_mbps.value_or(0) : 0;
  std::string key = location.name;
  if (limit > 0) key += "\npolicy " + paced->name + "\n" + std::to_string(limit);
  std::lock_guard<std::mutex> g(mu_);
  // Only the current configuration's locations are cached: a job that read the configuration
  // before a reload gets a repository of its own, and the cache never keeps the old one.
  const bool current = config_ != nullptr && config_->find_location(location.name) == &location;
  auto it = current ? repos_.find(key) : repos_.end();
  if (it != repos_.end()) return it->second;
  auto be = storage::open_backend(location.repository, location_settings(location));
  if (!be.ok()) return be.error().with_context("location '" + location.name + "'");
  std::shared_ptr<storage::Backend> backend = *be;
  if (!location.secondary_regions.empty() &&
      location.replication.mode == config::ReplicationMode::kSync) {
    // Sync: every object written reaches the primary and the quorum of regions at once.
    HAVEN_ASSIGN(auto regions, open_secondary_regions(location));
    // A region that has no repository yet gets its keys and config first (the replicator's
    // passes copy the older objects); one that cannot be reached now is left to the quorum.
    for (const auto& r : regions) {
      Status prepared = replication::prepare_region(*backend, *r.backend);
      if (!prepared.ok() && options_.on_region_failed) {
        options_.on_region_failed(location.name, r.name, prepared.error());
      }
    }
    replication::QuorumOptions qo;
    qo.quorum = location.replication.quorum;
    qo.degrade = location.replication.on_quorum_loss == config::QuorumLoss::kDegrade;
    const std::string name = location.name;
    auto active = options_.region_active;
    auto failed = options_.on_region_failed;
    if (active) qo.active = [active, name](const std::string& r) { return active(name, r); };
    if (failed) {
      qo.on_region_failed = [failed, name](const std::string& r, const Error& e) { failed(name, r, e); };
    }
    backend = std::make_shared<replication::QuorumBackend>(backend, std::move(regions), qo);
  }
  if (!location.secondary_regions.empty()) {
    // Reads: a missing, unreachable or damaged object is read from a region instead.
    HAVEN_ASSIGN(auto regions, open_secondary_regions(location));
    auto report = options_.on_read_failover;
    const std::string name = location.name;
    backend = std::make_shared<replication::FailoverBackend>(
        backend, std::move(regions),
        [report, name](const storage::ObjectName& n, const std::string& region, const Error& why) {
          if (report) report(name, n, region, why);
        });
  }
  if (!location.secondary_regions.empty() && options_.on_object_saved) {
    auto saved = options_.on_object_saved;
    const std::string name = location.name;
    backend = std::make_shared<replication::ObservedBackend>(
        backend, [saved, name](const storage::ObjectName& n, uint64_t size) { saved(name, n, size); });
  }
  if (limit > 0) {
    // The policy's own pace: its runs' uploads and downloads together (storage/limit.h).
    backend = std::make_shared<storage::LimitBackend>(backend, storage::Limits{static_cast<double>(limit), 0});
  }
  // server.memory_limit_mib: each job that may run at once gets an equal share, and the
  // repository sizes what its jobs hold (workers, packs, the index's table) to it.
  const repo::MemoryBudget budget = config_ != nullptr ? job_budget(config_->server) : repo::MemoryBudget{};
  repo::OpenOptions open;
  if (budget.limited()) open.max_kdf_memory = budget.limit - repo::MemoryBudget::kReserve;
  auto r = repo::Repository::open(backend, location.password.value.reveal(), open);
  if (!r.ok()) return r.error().with_context("location '" + location.name + "'");
  std::shared_ptr<repo::Repository> shared(std::move(*r));
  shared->set_memory_budget(budget);
  repo::IndexOptions index = options_.index;
  if (budget.limited()) index.memory_bytes = budget.index_bytes();
  shared->set_index_options(index);
  if (current) repos_[key] = shared;
  return shared;
}

Result<std::shared_ptr<repo::Repository>> Service::repository_named(const std::string& location,
                                                                    const config::Policy* paced) {
  auto cfg = config();  // keeps the Location alive while it is opened
  const config::Location* loc = cfg ? cfg->find_location(location) : nullptr;
  if (loc == nullptr) return Error(Error::Code::kNotFound, "location '" + location + "' is not configured");
  return repository(*loc, paced);
}

Result<catalog::ExecutionRow> Service::execute(const std::string& policy_id,
                                                const ExecuteRequest& request) {
  HAVEN_ASSIGN(catalog::PolicyRow prow, catalog_.get_policy(policy_id));
  HAVEN_ASSIGN(config::Policy policy, policy_of(prow));
  auto cfg = config();
  const config::Location* loc = cfg->find_location(policy.location);
  catalog::ExecutionRow row;
  row.policy_id = prow.id;
  config::Strategy strategy = request.strategy.value_or(
      policy.schedules.empty() ? config::Strategy::kIncremental : policy.schedules[0].strategy);
  row.backup_type = backup_type(strategy);
  row.trigger = request.trigger;
  config::Priority prio = request.priority.value_or(policy.priority);
  row.priority = prio == config::Priority::kHigh ? catalog::Priority::kHigh : catalog::Priority::kNormal;
  row.scheduled_for = request.scheduled_for;
  row.retry_count = request.retry_count;
  row.backup_location = loc != nullptr ? loc->repository : policy.location;
  if (!options_.server_instance.empty()) row.server_instance = options_.server_instance;
  row.status = catalog::ExecStatus::kPending;
  // Remember the strategy the run uses (the row's backup_type says it too).
  std::unique_lock<std::mutex> g(mu_);
  if (stopping_) return Error(Error::Code::kCancelled, "the server is shutting down");
  auto active = active_.find(prow.id);
  if (active != active_.end()) {
    if (policy.overlap == config::Overlap::kSkip) {
      row.status = catalog::ExecStatus::kSkipped;
      row.completed_at = options_.clock();
      row.error_message = "skipped: run " + active->second + " of policy '" + policy.name +
                          "' is still queued or running (overlap: skip; set overlap: queue to "
                          "run it afterwards)";
      return catalog_.create_execution(row);
    }
    HAVEN_ASSIGN(catalog::ExecutionRow stored, catalog_.create_execution(row));
    waiting_[prow.id].push_back(stored.id);
    return stored;
  }
  HAVEN_ASSIGN(catalog::ExecutionRow stored, catalog_.create_execution(row));
  active_[prow.id] = stored.id;
  g.unlock();
  audit(request.requested_by.empty() ? "scheduler" : request.requested_by, "backup.execute",
        policy.name, {{"execution_id", stored.execution_id},
                      {"trigger", std::string(catalog::to_string(stored.trigger))},
                      {"backup_type", std::string(catalog::to_string(stored.backup_type))}});
  if (Status s = submit_backup(stored, policy); !s.ok()) {
    stored.status = catalog::ExecStatus::kFailed;
    stored.completed_at = options_.clock();
    stored.error_message = s.error().message();
    (void)catalog_.update_execution(stored);
    policy_done(prow.id);
    return s.error();
  }
  return stored;
}

Status Service::submit_backup(const catalog::ExecutionRow& row, const config::Policy& policy) {
  Job job;
  job.id = row.id;
  job.resource = policy.location;
  job.access = Access::kShared;
  job.priority = row.priority == catalog::Priority::kHigh ? Priority::kHigh : Priority::kNormal;
  std::string id = row.id;
  std::string policy_id = row.policy_id.value_or("");
  job.run = [this, id, policy](const CancelToken& token) { run_backup(id, policy, token); };
  job.on_dropped = [this, id, policy_id](const Error& why) {
    auto r = catalog_.get_execution(id);
    if (r.ok()) {
      r->status = catalog::ExecStatus::kCancelled;
      r->completed_at = options_.clock();
      r->error_message = why.message();
      (void)catalog_.update_execution(*r);
    }
    policy_done(policy_id);
  };
  return runner_.submit(std::move(job));
}

void Service::run_backup(const std::string& id, const config::Policy& policy,
                         const CancelToken& token) {
  auto got = catalog_.get_execution(id);
  if (!got.ok()) return;
  catalog::ExecutionRow row = *got;
  const std::string policy_id = row.policy_id.value_or("");
  row.status = catalog::ExecStatus::kRunning;
  row.started_at = options_.clock();
  (void)catalog_.update_execution(row);
  EventTarget target(events_, row.execution_id);

  Status outcome = ok_status();
  std::shared_ptr<repo::Repository> repo;
  if (auto r = repository_named(policy.location, &policy); !r.ok()) {
    outcome = r.error();
  } else {
    repo = *r;
  }
  std::vector<std::string> tags = policy.tags;
  tags.push_back(policy_tag(policy.name));
  std::string strategy = std::string(catalog::to_string(row.backup_type));
  if (outcome.ok()) {
    repo::Snapshot snap;
    repo::Id snap_id{};
    if (policy.resource_type == config::ResourceType::kFiles) {
      ops::BackupRequest req;
      req.paths = policy.sources;
      req.excludes = policy.excludes;
      req.one_file_system = policy.one_file_system;
      req.strategy = strategy;
      req.tags = tags;
      req.threads = static_cast<unsigned>(policy.max_parallel_jobs);
      if (policy.compression) req.compression = std::string(config::name(*policy.compression));
      auto r = ops::backup(*repo, req, target);
      if (r.ok()) {
        snap = r->snapshot;
        snap_id = r->snapshot_id;
      } else {
        outcome = r.error();
      }
    } else {
      ops::PgBackupRequest req;
      req.pgdata = policy.database ? policy.database->pgdata : "";
      req.conninfo = policy.database ? policy.database->conninfo : "";
      req.strategy = strategy;
      req.tags = tags;
      req.threads = static_cast<unsigned>(policy.max_parallel_jobs);
      if (policy.compression) req.compression = std::string(config::name(*policy.compression));
      auto r = ops::pg_backup(*repo, req, target);
      if (r.ok()) {
        snap = r->summary.snapshot;
        snap_id = r->snapshot;
      } else {
        outcome = r.error();
      }
    }
    if (outcome.ok()) {
      row.snapshot_id = repo::hex(snap_id);
      set_figures(row, snap);
      if (policy.integrity_check == config::IntegrityCheck::kNone) {
        row.integrity_check_status = catalog::IntegrityStatus::kSkipped;
      } else {
        ops::CheckRequest creq;
        creq.read_data = policy.integrity_check == config::IntegrityCheck::kReadData;
        auto report = ops::check(*repo, creq, target);
        row.integrity_check_completed_at = options_.clock();
        if (!report.ok()) {
          if (report.error().code() == Error::Code::kCancelled) {
            outcome = report.error();
          } else {
            row.integrity_check_status = catalog::IntegrityStatus::kFailed;
            row.error_message = "integrity check could not run: " + one_line(report.error().message());
          }
        } else {
          row.integrity_check_status = report->damaged() ? catalog::IntegrityStatus::kFailed
                                                         : catalog::IntegrityStatus::kPassed;
          if (report->damaged()) {
            row.error_message = "integrity check found damage: run 'haven check' on " +
                                row.backup_location;
          }
        }
      }
    }
  }
  row.completed_at = options_.clock();
  if (!row.duration_seconds) row.duration_seconds = seconds_between(row.started_at, *row.completed_at);
  bool retry = false;
  if (outcome.ok()) {
    row.status = catalog::ExecStatus::kCompleted;
  } else if (outcome.error().code() == Error::Code::kCancelled || token.cancelled()) {
    row.status = catalog::ExecStatus::kCancelled;
    row.error_message = one_line(outcome.error().message());
  } else {
    row.status = catalog::ExecStatus::kFailed;
    row.error_message = one_line(outcome.error().message());
    retry = options_.retries && row.retry_count < policy.retry_count;
  }
  (void)catalog_.update_execution(row);
  if (row.status == catalog::ExecStatus::kCompleted) {
    auto prow = catalog_.get_policy(policy_id);  // keep the scheduler's next_execution
    (void)catalog_.set_policy_schedule_times(policy_id, row.started_at,
                                             prow.ok() ? prow->next_execution : std::nullopt);
    run_retention(policy_id, policy);
  }
  if (retry) schedule_retry(policy_id, row, policy);
  policy_done(policy_id);
}

void Service::run_retention(const std::string& policy_id, const config::Policy& policy) {
  Job job;
  job.id = "retention:" + policy_id;
  job.resource = policy.location;
  job.access = Access::kExclusive;
  job.run = [this, policy](const CancelToken&) {
    auto repo = repository_named(policy.location);
    if (!repo.ok()) return;
    ops::ForgetRequest req;
    const config::Retention& r = policy.retention;
    req.keep_within = r.days > 0 ? r.keep_within() : "";
    req.keep_last = r.last;
    req.keep_hourly = r.hourly;
    req.keep_daily = r.daily;
    req.keep_weekly = r.weekly;
    req.keep_monthly = r.monthly;
    req.keep_yearly = r.yearly;
    req.min_copies = r.min_copies;
    req.max_copies = r.max_copies;
    req.timezone = r.timezone;
    req.group_by = "";
    req.only_tags = {policy_tag(policy.name)};
    req.prune = true;
    // The outcome is in the events (forget's and prune's, under this job's id) and, for the
    // record, in the audit log.
    auto res = ops::forget(**repo, req, EventTarget(events_, "retention-" + policy.name));
    if (!res.ok()) {
      audit("scheduler", "retention.forget", policy.name, {{"error", res.error().message()}});
      return;
    }
    nlohmann::json removed = nlohmann::json::array();
    for (const auto& g : res->groups) {
      for (const auto& d : g.decisions) {
        if (!d.keep) removed.push_back(repo::hex(d.id));
      }
    }
    audit("scheduler", "retention.forget", policy.name,
          {{"kept", res->keep}, {"removed", res->removed}, {"snapshots", removed}});
    if (res->prune) {
      audit("scheduler", "retention.prune", policy.location,
            {{"packs_deleted", res->prune->packs_deleted},
             {"packs_repacked", res->prune->packs_repacked},
             {"bytes_deleted", res->prune->bytes_deleted}});
    }
  };
  (void)runner_.submit(std::move(job));  // one already queued or running covers this one too
}

void Service::audit(const std::string& actor, const std::string& action,
                    const std::string& target, const nlohmann::json& details) {
  if (options_.audit) options_.audit(actor, action, target, details);
}

void Service::schedule_retry(const std::string& policy_id, const catalog::ExecutionRow& failed,
                             const config::Policy& policy) {
  double delay_s = policy.retry_backoff_seconds * std::pow(2.0, failed.retry_count) *
                   options_.backoff_scale;
  Retry r;
  r.due = now() + static_cast<TimeNs>(delay_s * 1e9);
  r.policy_id = policy_id;
  r.request.trigger = catalog::Trigger::kRetry;
  r.request.retry_count = failed.retry_count + 1;
  r.request.scheduled_for = failed.scheduled_for;
  r.request.priority = failed.priority == catalog::Priority::kHigh ? config::Priority::kHigh
                                                                   : config::Priority::kNormal;
  switch (failed.backup_type) {
    case catalog::BackupType::kFull: r.request.strategy = config::Strategy::kFull; break;
    case catalog::BackupType::kDifferential: r.request.strategy = config::Strategy::kDifferential; break;
    default: r.request.strategy = config::Strategy::kIncremental; break;
  }
  std::lock_guard<std::mutex> g(mu_);
  if (stopping_) return;
  retries_.push_back(std::move(r));
  cv_.notify_all();
}

void Service::retry_loop() {
  std::unique_lock<std::mutex> g(mu_);
  while (!stopping_) {
    TimeNs t = now();
    auto due = std::find_if(retries_.begin(), retries_.end(), [t](const Retry& r) { return r.due <= t; });
    if (due != retries_.end()) {
      Retry r = std::move(*due);
      retries_.erase(due);
      ++retries_starting_;  // wait_idle() must not see "nothing to do" before it is queued
      g.unlock();
      (void)execute(r.policy_id, r.request);  // recorded (or skipped) like any run
      g.lock();
      --retries_starting_;
      cv_.notify_all();
      continue;
    }
    TimeNs next = INT64_MAX;
    for (const auto& r : retries_) next = std::min(next, r.due);
    if (next == INT64_MAX) {
      cv_.wait(g);
    } else {
      cv_.wait_for(g, std::chrono::nanoseconds(next - t));
    }
  }
}

void Service::policy_done(const std::string& policy_id) {
  std::unique_lock<std::mutex> g(mu_);
  active_.erase(policy_id);
  auto w = waiting_.find(policy_id);
  if (w != waiting_.end() && !w->second.empty() && !stopping_) {
    std::string next = w->second.front();
    w->second.erase(w->second.begin());
    if (w->second.empty()) waiting_.erase(w);
    active_[policy_id] = next;
    g.unlock();
    auto row = catalog_.get_execution(next);
    auto prow = catalog_.get_policy(policy_id);
    Result<config::Policy> policy = prow.ok() ? policy_of(*prow) : Result<config::Policy>(prow.error());
    if (row.ok() && policy.ok() && submit_backup(*row, *policy).ok()) return;
    if (row.ok()) {
      row->status = catalog::ExecStatus::kFailed;
      row->completed_at = options_.clock();
      row->error_message = policy.ok() ? "could not be queued" : policy.error().message();
      (void)catalog_.update_execution(*row);
    }
    policy_done(policy_id);
    return;
  }
  cv_.notify_all();
}

bool Service::policy_busy(const std::string& policy_id) const {
  std::lock_guard<std::mutex> g(mu_);
  return active_.count(policy_id) != 0;
}

Status Service::cancel_execution(const std::string& id) {
  HAVEN_ASSIGN(catalog::ExecutionRow row, catalog_.get_execution(id));
  Error why(Error::Code::kCancelled, "cancelled over the API");
  if (row.status != catalog::ExecStatus::kPending && row.status != catalog::ExecStatus::kRunning) {
    return Error(Error::Code::kAlreadyExists, "execution " + row.execution_id + " already ended (" +
                                                  std::string(catalog::to_string(row.status)) + ")");
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& [pid, ids] : waiting_) {
      auto it = std::find(ids.begin(), ids.end(), row.id);
      if (it != ids.end()) {
        ids.erase(it);
        row.status = catalog::ExecStatus::kCancelled;
        row.completed_at = options_.clock();
        row.error_message = why.message();
        return catalog_.update_execution(row);
      }
    }
  }
  if (runner_.cancel(row.id, why) == Runner::CancelOutcome::kNotFound) {
    return Error(Error::Code::kAlreadyExists,
                 "execution " + row.execution_id + " is not queued or running in this server");
  }
  return ok_status();
}

Result<catalog::RestoreRow> Service::restore(const RestoreRequest& request) {
  if (request.target_location.empty() || request.target_location[0] != '/') {
    return Error(Error::Code::kInvalidArgument,
                 "targetLocation: must be an absolute directory path, not '" +
                     request.target_location + "'");
  }
  HAVEN_ASSIGN(catalog::ExecutionRow exec, catalog_.get_execution(request.source_backup_id));
  if (!exec.snapshot_id) {
    return Error(Error::Code::kInvalidArgument,
                 "sourceBackupId: execution " + exec.execution_id + " has no snapshot (" +
                     std::string(catalog::to_string(exec.status)) + "): pick a completed one");
  }
  if (!exec.policy_id) {
    return Error(Error::Code::kInvalidArgument, "sourceBackupId: execution " + exec.execution_id +
                                                    " belongs to no policy");
  }
  HAVEN_ASSIGN(catalog::PolicyRow prow, catalog_.get_policy(*exec.policy_id));
  HAVEN_ASSIGN(config::Policy policy, policy_of(prow));
  catalog::RestoreRow row;
  row.restore_type = request.type;
  row.source_backup_id = exec.id;
  row.snapshot_id = exec.snapshot_id;
  row.point_in_time = request.point_in_time;
  row.target_location = request.target_location;
  if (!request.include.empty()) row.restore_scope = {{"paths", request.include}};
  row.overwrite_existing = request.overwrite_existing;
  row.request = request.request;
  if (!request.requested_by.empty()) row.requested_by = request.requested_by;
  if (!options_.server_instance.empty()) row.server_instance = options_.server_instance;
  row.restore_options = {{"verify", request.verify}};
  HAVEN_ASSIGN(catalog::RestoreRow stored, catalog_.create_restore(row));
  // Who restored what, where: a data access, for the record.
  audit(request.requested_by.empty() ? "server" : "token:" + request.requested_by, "restore.request",
        stored.snapshot_id.value_or(""),
        {{"request_id", stored.request_id},
         {"policy", policy.name},
         {"execution_id", exec.execution_id},
         {"target_location", stored.target_location},
         {"paths", request.include},
         {"point_in_time", stored.point_in_time ? nlohmann::json(format_time(*stored.point_in_time))
                                                : nlohmann::json(nullptr)}});
  Job job;
  job.id = stored.id;
  job.resource = policy.location;
  job.access = Access::kShared;
  job.priority = Priority::kHigh;  // a restore is someone waiting
  std::string id = stored.id;
  job.run = [this, id, policy](const CancelToken& token) {
    auto got = catalog_.get_restore(id);
    if (!got.ok()) return;
    catalog::RestoreRow r = *got;
    r.status = catalog::ExecStatus::kRunning;
    r.started_at = options_.clock();
    (void)catalog_.update_restore(r);
    Status outcome = ok_status();
    if (auto repo = repository_named(policy.location); !repo.ok()) {
      outcome = repo.error();
    } else {
      ops::RestoreRequest req;
      if (r.point_in_time && r.restore_type == catalog::RestoreType::kPointInTime) {
        req.at = format_time(*r.point_in_time);
      } else {
        req.snapshot = r.snapshot_id.value_or("");
      }
      req.target = r.target_location;
      if (r.restore_scope.is_object() && r.restore_scope.contains("paths")) {
        req.includes = r.restore_scope["paths"].get<std::vector<std::string>>();
      }
      req.verify = r.restore_options.value("verify", true);
      req.overwrite = r.overwrite_existing ? "always" : "never";
      auto res = ops::restore(**repo, req, EventTarget(events_, r.request_id));
      if (res.ok()) {
        r.snapshot_id = repo::hex(res->snapshot_id);
        r.data_restored_gb = static_cast<double>(res->summary.bytes) / 1e9;
        r.integrity_validated = req.verify && res->summary.errors == 0;
        r.validation_results = {{"files", res->summary.files},
                                {"bytes", res->summary.bytes},
                                {"verified", res->summary.verified},
                                {"errors", res->summary.errors},
                                {"skipped", res->summary.skipped}};
        if (!res->summary.substitution.empty()) r.validation_results["substitution"] = res->summary.substitution;
        if (res->summary.errors > 0) {
          outcome = Error(Error::Code::kIo, std::to_string(res->summary.errors) +
                                                " file(s) could not be restored (see the events)");
        }
      } else {
        outcome = res.error();
      }
    }
    r.completed_at = options_.clock();
    r.duration_seconds = seconds_between(r.started_at, *r.completed_at);
    double secs = static_cast<double>(*r.completed_at - r.started_at) / 1e9;
    if (r.data_restored_gb && secs > 0) {
      r.restore_rate_mbps = std::round(*r.data_restored_gb * 1000.0 / secs * 100) / 100;
    }
    if (outcome.ok()) {
      r.status = catalog::ExecStatus::kCompleted;
    } else {
      r.status = (outcome.error().code() == Error::Code::kCancelled || token.cancelled())
                     ? catalog::ExecStatus::kCancelled
                     : catalog::ExecStatus::kFailed;
      r.error_message = one_line(outcome.error().message());
    }
    (void)catalog_.update_restore(r);
  };
  job.on_dropped = [this, id](const Error& why) {
    auto r = catalog_.get_restore(id);
    if (!r.ok()) return;
    r->status = catalog::ExecStatus::kCancelled;
    r->completed_at = options_.clock();
    r->error_message = why.message();
    (void)catalog_.update_restore(*r);
  };
  if (Status s = runner_.submit(std::move(job)); !s.ok()) {
    stored.status = catalog::ExecStatus::kFailed;
    stored.error_message = s.error().message();
    stored.completed_at = options_.clock();
    (void)catalog_.update_restore(stored);
    return s.error();
  }
  return stored;
}

Status Service::cancel_restore(const std::string& id) {
  HAVEN_ASSIGN(catalog::RestoreRow row, catalog_.get_restore(id));
  if (row.status != catalog::ExecStatus::kPending && row.status != catalog::ExecStatus::kRunning) {
    return Error(Error::Code::kAlreadyExists, "restore " + row.request_id + " already ended");
  }
  if (runner_.cancel(row.id, Error(Error::Code::kCancelled, "cancelled over the API")) ==
      Runner::CancelOutcome::kNotFound) {
    return Error(Error::Code::kAlreadyExists, "restore " + row.request_id + " is not running here");
  }
  return ok_status();
}

Result<catalog::RestoreRow> Service::validate_restore(const std::string& id,
                                                      const std::string& actor) {
  // One validation of a restore at a time: the check, the "running" mark and the submission
  // happen under this lock, so two requests never overwrite each other's result.
  std::lock_guard<std::mutex> serial(validate_mu_);
  HAVEN_ASSIGN(catalog::RestoreRow row, catalog_.get_restore(id));
  if (row.status == catalog::ExecStatus::kPending || row.status == catalog::ExecStatus::kRunning) {
    return Error(Error::Code::kAlreadyExists,
                 "restore " + row.request_id + " is still " + std::string(catalog::to_string(row.status)) +
                     ": validate it when it has ended");
  }
  // A restore writes its summary ("files", ...) into validation_results when it ran; one
  // cancelled in the queue or failed before restoring anything has none.
  if (!row.snapshot_id || !row.source_backup_id || !row.validation_results.is_object() ||
      !row.validation_results.contains("files")) {
    return Error(Error::Code::kAlreadyExists,
                 "restore " + row.request_id + " restored nothing (" +
                     std::string(catalog::to_string(row.status)) + "): nothing to validate; restore again");
  }
  HAVEN_ASSIGN(catalog::ExecutionRow exec, catalog_.get_execution(*row.source_backup_id));
  if (!exec.policy_id) {
    return Error(Error::Code::kAlreadyExists, "restore " + row.request_id + "'s backup belongs to no policy");
  }
  HAVEN_ASSIGN(catalog::PolicyRow prow, catalog_.get_policy(*exec.policy_id));
  HAVEN_ASSIGN(config::Policy policy, policy_of(prow));
  Job job;
  job.id = row.id + "/validate";
  if (runner_.queued(job.id) || runner_.running(job.id)) {
    return Error(Error::Code::kAlreadyExists, "restore " + row.request_id + " is being validated already");
  }
  job.resource = policy.location;
  job.access = Access::kShared;
  job.priority = Priority::kHigh;
  std::string location = policy.location;
  // Writes the validation's outcome into the row, next to the restore's own summary.
  auto record = [this, id](nlohmann::json validation, std::optional<bool> clean) {
    auto got = catalog_.get_restore(id);
    if (!got.ok()) return;
    validation["validated_at"] = format_time(options_.clock());
    got->validation_results["validation"] = std::move(validation);
    got->integrity_validated = clean.value_or(false);
    (void)catalog_.update_restore(*got);
  };
  job.run = [this, id, location, record](const CancelToken& token) {
    auto got = catalog_.get_restore(id);
    if (!got.ok()) return;
    const catalog::RestoreRow& r = *got;
    Status outcome = ok_status();
    if (auto repo = repository_named(location); !repo.ok()) {
      outcome = repo.error();
    } else {
      ops::RestoreRequest req;
      req.snapshot = r.snapshot_id.value_or("");
      req.target = r.target_location;
      if (r.restore_scope.is_object() && r.restore_scope.contains("paths")) {
        req.includes = r.restore_scope["paths"].get<std::vector<std::string>>();
      }
      // Its own operation id: the restore's events end with its restore:completed.
      auto res = ops::compare(**repo, req, EventTarget(events_, r.request_id + ":validate"));
      if (res.ok()) {
        nlohmann::json v = restore::comparison_json(res->comparison);
        v["state"] = "completed";
        record(std::move(v), res->comparison.clean());
        return;
      }
      outcome = res.error();
    }
    bool cancelled = outcome.error().code() == Error::Code::kCancelled || token.cancelled();
    record({{"state", cancelled ? "cancelled" : "failed"}, {"error", one_line(outcome.error().message())}},
           std::nullopt);
  };
  job.on_dropped = [record](const Error& why) {
    record({{"state", "cancelled"}, {"error", why.message()}}, std::nullopt);
  };
  catalog::RestoreRow marked = row;
  marked.validation_results["validation"] = {{"state", "running"}};
  marked.integrity_validated = false;  // until this validation says otherwise
  HAVEN_TRY(catalog_.update_restore(marked));
  if (Status s = runner_.submit(std::move(job)); !s.ok()) {
    (void)catalog_.update_restore(row);  // as it was (nothing else validates it: the lock)
    return s.error();
  }
  audit(actor.empty() ? "server" : actor, "restore.validate", row.request_id,
        {{"target_location", row.target_location}, {"snapshot_id", row.snapshot_id.value_or("")}});
  return marked;
}

Result<std::vector<Service::SnapshotInfo>> Service::snapshots() {
  auto cfg = config();
  std::vector<SnapshotInfo> out;
  if (cfg == nullptr) return out;
  NullSink quiet;
  for (const config::Location& l : cfg->locations) {
    HAVEN_ASSIGN(auto repo, repository(l));
    HAVEN_ASSIGN(auto list, ops::snapshots(*repo, {}, quiet));
    for (auto& s : list) out.push_back({l.name, repo::hex(s.id), s.snapshot});
  }
  return out;
}

Result<Service::RebuildResult> Service::rebuild_catalog() {
  auto cfg = config();
  RebuildResult out;
  if (cfg == nullptr) return out;
  HAVEN_ASSIGN(std::vector<catalog::PolicyRow> policies, catalog_.list_policies());
  std::map<std::string, std::string> by_name;
  for (const auto& p : policies) by_name[p.name] = p.id;
  NullSink quiet;
  for (const config::Location& l : cfg->locations) {
    HAVEN_ASSIGN(auto repo, repository(l));
    HAVEN_ASSIGN(auto list, ops::snapshots(*repo, {}, quiet));
    for (const auto& s : list) {
      ++out.snapshots;
      std::string hex = repo::hex(s.id);
      std::optional<std::string> policy_id;
      for (const auto& t : s.snapshot.tags) {
        if (t.rfind("policy:", 0) == 0 && by_name.count(t.substr(7))) policy_id = by_name[t.substr(7)];
      }
      if (!policy_id) {
        ++out.unowned;
        continue;
      }
      auto existing = catalog_.find_execution_by_snapshot(hex);
      if (existing.ok()) {
        ++out.present;
        continue;
      }
      if (existing.error().code() != Error::Code::kNotFound) return existing.error();
      catalog::ExecutionRow row;
      row.policy_id = policy_id;
      auto bt = catalog::parse_enum<catalog::BackupType>(s.snapshot.strategy);
      row.backup_type = bt.value_or(catalog::BackupType::kIncremental);
      row.status = catalog::ExecStatus::kCompleted;
      row.trigger = catalog::Trigger::kRebuild;
      row.started_at = s.snapshot.time;
      row.completed_at = s.snapshot.end_time > 0 ? s.snapshot.end_time : s.snapshot.time;
      row.snapshot_id = hex;
      row.backup_location = l.repository;
      set_figures(row, s.snapshot);
      if (!options_.server_instance.empty()) row.server_instance = options_.server_instance;
      HAVEN_TRY(catalog_.create_execution(row));
      ++out.added;
    }
  }
  return out;
}

void Service::wait_idle() {
  for (;;) {
    runner_.wait_idle();
    std::unique_lock<std::mutex> g(mu_);
    if (retries_.empty() && retries_starting_ == 0 && active_.empty() && waiting_.empty() &&
        runner_.queued_count() == 0 &&
        runner_.running_count() == 0) {
      return;
    }
    cv_.wait_for(g, std::chrono::milliseconds(20));
  }
}

void Service::shutdown(bool cancel_running, std::chrono::milliseconds deadline) {
  std::vector<std::string> waiting_ids;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (stopping_ && !retry_thread_.joinable()) return;
    stopping_ = true;
    retries_.clear();
    for (auto& [pid, ids] : waiting_) waiting_ids.insert(waiting_ids.end(), ids.begin(), ids.end());
    waiting_.clear();
    cv_.notify_all();
  }
  for (const auto& id : waiting_ids) {
    auto r = catalog_.get_execution(id);
    if (!r.ok()) continue;
    r->status = catalog::ExecStatus::kCancelled;
    r->completed_at = options_.clock();
    r->error_message = "the server is shutting down";
    (void)catalog_.update_execution(*r);
  }
  if (retry_thread_.joinable()) retry_thread_.join();
  runner_.shutdown(cancel_running, deadline);
}

Service::RepositoryProbe Service::probe_repository(const std::string& location,
                                                   bool count_pack_bytes,
                                                   const std::string& read_data_subset) {
  RepositoryProbe p;
  auto repo = repository_named(location);
  if (!repo.ok()) {
    p.problems.push_back("unreachable: " + repo.error().message());
    return p;
  }
  const TimeNs wall = haven::now();  // lock ages are real time, whatever clock the rows use
  const TimeNs stale = (*repo)->lock_stale_ns();  // the threshold the repository's locks use
  Status listed = (*repo)->backend().list(storage::ObjectType::kLock, [&](const storage::ObjectInfo& i) {
    p.locks++;
    if (wall - i.modified > stale) p.stale_locks++;
  });
  if (!listed.ok()) {
    p.problems.push_back("unreachable: " + listed.error().message());
    return p;
  }
  p.reachable = true;
  if (p.stale_locks > 0) {
    p.problems.push_back(std::to_string(p.stale_locks) + " stale lock(s): a process died holding "
                         "it; `haven unlock` removes stale locks");
  }
  NullSink quiet;
  auto held = ops::lock(**repo, ops::LockMode::kShared, quiet);
  if (held.ok()) {
    p.writable = true;
    (void)held->release();
  } else {
    p.problems.push_back("not writable: " + held.error().message());
  }
  if (count_pack_bytes) {
    int64_t used = 0;
    if ((*repo)->backend().list(storage::ObjectType::kData, [&](const storage::ObjectInfo& i) {
          used += static_cast<int64_t>(i.size);
        }).ok()) {
      p.pack_bytes = used;
    }
  }
  if (!read_data_subset.empty() && p.writable) {
    ops::CheckRequest req;
    req.read_data_subset = read_data_subset;
    auto report = ops::check(**repo, req, EventTarget(quiet, "health:" + location));
    if (report.ok()) {
      // Notices (an unused blob, a pack an interrupted backup left) leave it healthy.
      p.damaged = std::count_if(report->problems.begin(), report->problems.end(),
                                [](const check::Problem& x) { return x.damage; });
      if (*p.damaged > 0) {
        p.problems.push_back("check --read-data-subset " + read_data_subset + " found " +
                             std::to_string(*p.damaged) + " damaged object(s): run "
                             "`haven check --read-data` on it");
      }
    } else {
      p.read_error = report.error().message();
      p.problems.push_back("check --read-data-subset " + read_data_subset + " failed: " +
                           report.error().message());
    }
  }
  return p;
}

Status Service::read_snapshot(const std::string& location, const std::string& snapshot_id) {
  HAVEN_ASSIGN(auto repo, repository_named(location));
  auto id = repo::parse_id(snapshot_id);
  if (!id) return Error(Error::Code::kInvalidArgument, "snapshot id '" + snapshot_id + "' is not one");
  HAVEN_ASSIGN(auto snap, repo->load_snapshot(*id));
  HAVEN_ASSIGN(auto tree, repo->load_tree(snap.tree));
  (void)tree;
  return ok_status();
}

}  // namespace haven::jobs

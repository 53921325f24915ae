#include "dr/service.h"

#include "dr/failover.h"
#include "dr/record.h"

namespace haven::dr {

namespace {

constexpr TimeNs kDay = 86400'000'000'000LL;

Error conflict(const std::string& m) { return Error(Error::Code::kAlreadyExists, m); }

}  // namespace

Service::Service(catalog::Catalog& catalog, EventSink& events, ServiceOptions options)
    : catalog_(catalog), events_(events), options_(std::move(options)) {
  (void)catalog_.mark_dr_interrupted(options_.instance);
}

Service::~Service() { stop(); }

void Service::note(const std::string& kind, const nlohmann::json& payload) {
  if (options_.note) options_.note(kind, payload);
}

Status Service::apply_config(std::shared_ptr<const config::Config> config) {
  HAVEN_ASSIGN(auto stored, sync_plans(catalog_, *config));
  (void)stored;
  HAVEN_ASSIGN(auto all, catalog_.list_dr_plans());
  for (auto row : all) {
    if (row.source != catalog::PolicySource::kConfig || !row.is_active) continue;
    if (config->find_plan(row.name) != nullptr) continue;
    row.is_active = false;  // left the file: kept for its history, never drilled
    HAVEN_ASSIGN(auto kept, catalog_.upsert_dr_plan(row));
    (void)kept;
  }
  // Failovers: one watch each, kept across reloads while its entry is unchanged.
  std::map<std::string, std::shared_ptr<FailoverWatch>> keep, drop;
  {
    std::lock_guard lock(mu_);
    for (auto& [name, w] : failovers_) {
      bool same = false;
      for (const auto& f : config->failover) same = same || (f.name == name && f == w->failover());
      (same ? keep : drop)[name] = w;
    }
  }
  for (auto& [name, w] : drop) w->stop();
  for (const auto& f : config->failover) {
    if (keep.contains(f.name)) continue;
    FailoverOptions fo;
    fo.holder = options_.holder.empty() ? options_.instance : options_.holder;
    fo.haven_program = options_.haven_program;
    fo.open_location = options_.open_location;
    fo.catalog = options_.alerts;
    fo.note = options_.note;
    fo.clock = options_.clock;
    fo.interval = options_.probe_interval;
    fo.run_plan = [this](const std::string& plan, const std::string& reason) -> Result<std::string> {
      HAVEN_ASSIGN(auto e, execute(plan, catalog::DrExecutionType::kDisasterRecovery, reason, "failover", true));
      return e.id;
    };
    keep[f.name] = std::make_shared<FailoverWatch>(config, f, fo);
  }
  bool started;
  {
    std::lock_guard lock(mu_);
    config_ = std::move(config);
    failovers_ = keep;
    started = started_;
  }
  if (started) {
    for (auto& [name, w] : keep) w->start();
  }
  return ok_status();
}

nlohmann::json Service::failover_status() {
  std::map<std::string, std::shared_ptr<FailoverWatch>> all;
  {
    std::lock_guard lock(mu_);
    all = failovers_;
  }
  nlohmann::json out = nlohmann::json::array();
  for (auto& [name, w] : all) {
    nlohmann::json j = w->state();
    if (w->failover().standby) j["standby"] = w->standby_status().to_json();
    out.push_back(j);
  }
  return out;
}

Result<nlohmann::json> Service::fail_over(const std::string& name, const std::string& by) {
  std::shared_ptr<FailoverWatch> w;
  {
    std::lock_guard lock(mu_);
    auto it = failovers_.find(name);
    if (it == failovers_.end()) {
      return Error(Error::Code::kNotFound, "no failover '" + name + "' in the configuration");
    }
    w = it->second;
  }
  return w->fail_over(by);
}

std::shared_ptr<const config::Config> Service::config() const {
  std::lock_guard lock(mu_);
  return config_;
}

Result<config::DrPlan> Service::plan_of(const catalog::DrPlanRow& row) const {
  auto cfg = config();
  if (!cfg) return Error(Error::Code::kInternal, "dr: no configuration applied");
  auto checked = config::check_plan_json(row.definition, cfg->policies);
  if (!checked.ok()) {
    return Error(Error::Code::kInvalidArgument,
                 "plan '" + row.name + "' no longer fits the configuration: " +
                     config::config_error(checked.diagnostics).message());
  }
  return std::move(checked.value);
}

Result<catalog::DrPlanRow> Service::create_plan(const nlohmann::json& body) {
  auto cfg = config();
  if (!cfg) return Error(Error::Code::kInternal, "dr: no configuration applied");
  auto checked = config::check_plan_json(body, cfg->policies);
  if (!checked.ok()) return config::config_error(checked.diagnostics);
  if (cfg->find_plan(checked.value.name) != nullptr) {
    return conflict("plan '" + checked.value.name + "' is defined in " + cfg->file +
                    ": change it there");
  }
  return catalog_.upsert_dr_plan(plan_row(checked.value, catalog::PolicySource::kApi));
}

Result<catalog::DrExecutionRow> Service::execute(const std::string& plan_key,
                                                 catalog::DrExecutionType type,
                                                 const std::string& reason, const std::string& by,
                                                 bool approved) {
  if (type == catalog::DrExecutionType::kValidation) {
    return Error(Error::Code::kInvalidArgument,
                 "executionType validation is not a run Haven makes: use drill or planned_test "
                 "(a sandboxed run with its validations) or disaster_recovery");
  }
  HAVEN_ASSIGN(auto row, catalog_.get_dr_plan(plan_key));
  HAVEN_ASSIGN(config::DrPlan plan, plan_of(row));
  const bool real = type == catalog::DrExecutionType::kDisasterRecovery;
  if (!real) {
    auto cfg = config();
    HAVEN_TRY(check_drill_safe(*cfg, plan));
  }
  catalog::DrExecutionRow e = start_row(row, type, reason, by);
  e.server_instance = options_.instance;
  if (real && row.approval_required && !approved) {
    e.status = catalog::ExecStatus::kPending;
    e.approval_status = catalog::ApprovalStatus::kPending;
    HAVEN_ASSIGN(e, catalog_.create_dr_execution(e));
    note("dr:approval-required", {{"execution", e.id}, {"plan", row.name}, {"requested_by", by},
                                  {"reason", reason}});
    return e;
  }
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Error(Error::Code::kCancelled, "the server is stopping");
    for (const auto& [id, r] : running_) {
      if (r->plan_id == row.id) return conflict("plan '" + row.name + "' is running (execution " + id + ")");
    }
  }
  HAVEN_ASSIGN(e, catalog_.create_dr_execution(e));
  note("dr:execution-requested", {{"execution", e.id}, {"plan", row.name},
                                  {"execution_type", catalog::to_string(type)}, {"by", by}});
  HAVEN_TRY(launch(e, plan, real ? Mode::kReal : Mode::kDrill));
  return e;
}

Result<catalog::DrExecutionRow> Service::approve(const std::string& id, const std::string& by) {
  HAVEN_ASSIGN(auto e, catalog_.decide_dr_approval(id, true, by, options_.clock()));
  note("dr:approved", {{"execution", id}, {"plan", e.plan_name}, {"by", by}});
  HAVEN_ASSIGN(auto row, catalog_.get_dr_plan(e.plan_id));
  auto plan = plan_of(row);
  Status started = plan.ok() ? launch(e, *plan, Mode::kReal) : Status(plan.error());
  if (!started.ok()) {
    e.status = catalog::ExecStatus::kFailed;
    e.completed_at = options_.clock();
    e.error_message = started.error().message();
    (void)catalog_.update_dr_execution(e);
    return started.error();
  }
  return e;
}

Result<catalog::DrExecutionRow> Service::reject(const std::string& id, const std::string& by) {
  HAVEN_ASSIGN(auto e, catalog_.decide_dr_approval(id, false, by, options_.clock()));
  note("dr:rejected", {{"execution", id}, {"plan", e.plan_name}, {"by", by}});
  return e;
}

Status Service::cancel(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = running_.find(id);
  if (it == running_.end()) return Error(Error::Code::kNotFound, "execution '" + id + "' is not running");
  it->second->token.cancel();
  return ok_status();
}

Status Service::launch(catalog::DrExecutionRow row, const config::DrPlan& plan, Mode mode) {
  auto cfg = config();
  std::lock_guard lock(mu_);
  if (stopping_) return Error(Error::Code::kCancelled, "the server is stopping");
  for (const auto& [id, r] : running_) {
    if (r->plan_id == row.plan_id) return conflict("plan '" + plan.name + "' is running (execution " + id + ")");
  }
  row.status = catalog::ExecStatus::kRunning;
  row.started_at = options_.clock();
  HAVEN_TRY(catalog_.update_dr_execution(row));
  auto run = std::make_unique<Running>();
  run->plan_id = row.plan_id;
  CancelToken token = run->token;
  Running* raw = run.get();
  running_[row.id] = std::move(run);
  raw->thread = std::thread([this, row, plan, mode, cfg, token]() mutable {
    CancelScope scope(token);
    RunOptions o;
    o.mode = mode;
    o.sandbox_root = options_.sandbox_root;
    o.run_id = row.id;
    o.haven_program = options_.haven_program;
    o.open_repository = options_.open_repository;
    o.poll_interval = options_.poll_interval;
    o.on_sandbox = [&](const std::string& dir) {
      row.sandbox = dir;
      (void)catalog_.update_dr_execution(row);
    };
    o.on_cleaned = [&](const std::vector<std::string>& removed) {
      auto list = catalog_.list_dr_executions("", 1000);
      if (!list.ok()) return;
      for (auto& e : *list) {
        if (e.status != catalog::ExecStatus::kRunning || e.id == row.id) continue;
        if (std::find(removed.begin(), removed.end(), e.sandbox) == removed.end()) continue;
        e.status = catalog::ExecStatus::kInterrupted;
        e.completed_at = options_.clock();
        e.error_message = "interrupted: the process running it stopped; its sandbox was cleaned up";
        (void)catalog_.update_dr_execution(e);
      }
    };
    auto result = run_plan(*cfg, plan, o, EventTarget(events_, row.id));
    if (result.ok()) {
      fill_row(row, *result);
      if (result->success) (void)catalog_.set_dr_plan_tested(row.plan_id, row.completed_at.value_or(now()));
    } else {
      row.status = result.error().code() == Error::Code::kCancelled ? catalog::ExecStatus::kCancelled
                                                                    : catalog::ExecStatus::kFailed;
      row.completed_at = options_.clock();
      row.error_message = result.error().message();
    }
    (void)catalog_.update_dr_execution(row);
    std::lock_guard l(mu_);
    auto it = running_.find(row.id);
    if (it != running_.end()) {
      finished_.push_back(std::move(it->second->thread));
      running_.erase(it);
    }
    cv_.notify_all();
  });
  return ok_status();
}

int Service::tick() {
  auto cfg = config();
  if (!cfg) return 0;
  auto plans = catalog_.list_dr_plans();
  if (!plans.ok()) return 0;
  const TimeNs now = options_.clock();
  int started = 0;
  for (const auto& p : *plans) {
    if (!p.is_active || p.test_frequency_days <= 0) continue;
    {
      std::lock_guard lock(mu_);
      bool busy = false;
      for (const auto& [id, r] : running_) busy = busy || r->plan_id == p.id;
      if (busy || stopping_) continue;
    }
    TimeNs since = p.created_at;
    auto runs = catalog_.list_dr_executions(p.id, 50);
    if (!runs.ok()) continue;
    for (const auto& e : *runs) {
      if (e.execution_type == catalog::DrExecutionType::kDrill ||
          e.execution_type == catalog::DrExecutionType::kPlannedTest) {
        since = std::max(since, e.started_at);
        break;  // newest first
      }
    }
    if (now - since < static_cast<TimeNs>(p.test_frequency_days) * kDay) continue;
    auto e = execute(p.id, catalog::DrExecutionType::kDrill,
                     "scheduled: every " + std::to_string(p.test_frequency_days) + " days", "scheduler");
    if (e.ok()) {
      started++;
      note("dr:scheduled", {{"plan", p.name}, {"execution", e->id}});
    } else {
      note("dr:schedule-failed", {{"plan", p.name}, {"error", e.error().message()}});
    }
  }
  return started;
}

void Service::start() {
  std::lock_guard lock(mu_);
  if (loop_.joinable()) return;
  started_ = true;
  for (auto& [name, w] : failovers_) w->start();
  loop_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      lock.unlock();
      tick();
      lock.lock();
      for (auto& t : finished_) t.join();
      finished_.clear();
      cv_.wait_for(lock, options_.tick_interval, [this] { return stopping_; });
    }
  });
}

void Service::stop() {
  std::map<std::string, std::shared_ptr<FailoverWatch>> watches;
  {
    std::lock_guard lock(mu_);
    watches = failovers_;
  }
  for (auto& [name, w] : watches) w->stop();
  std::unique_lock lock(mu_);
  stopping_ = true;
  for (auto& [id, r] : running_) r->token.cancel(Error(Error::Code::kCancelled, "the server is stopping"));
  cv_.notify_all();
  cv_.wait(lock, [this] { return running_.empty(); });
  std::vector<std::thread> done = std::move(finished_);
  std::thread loop = std::move(loop_);
  lock.unlock();
  for (auto& t : done) t.join();
  if (loop.joinable()) loop.join();
}

void Service::wait_idle() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return running_.empty(); });
  std::vector<std::thread> done = std::move(finished_);
  lock.unlock();
  for (auto& t : done) t.join();
}

}  // namespace haven::dr

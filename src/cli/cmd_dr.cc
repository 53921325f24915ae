// haven dr plans|drill|executions|report — disaster-recovery plans of haven.yaml (dr/): a drill
// into a sandbox that measures the real RTO and RPO, recorded in the server's catalog, with a
// report in Markdown or HTML.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <tuple>

#include "catalog/sqlite_catalog.h"
#include "cli/cli.h"
#include "config/config.h"
#include "dr/failover.h"
#include "dr/record.h"
#include "dr/runner.h"
#include "monitor/audit.h"
#include "util/sysinfo.h"

namespace haven::cli {

namespace {

std::string actor() { return "cli:" + username() + "@" + hostname(); }

std::string self_program() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("haven") : p.string();
}

// The drills' sandboxes: beside the catalog, unless --sandbox says otherwise.
std::string sandbox_root(const config::Config& cfg, const std::string& flag) {
  if (!flag.empty()) return flag;
  return std::filesystem::path(cfg.server.catalog).parent_path().string() + "/drills";
}

Result<config::Config> load(const std::string& flag) {
  HAVEN_ASSIGN(std::string path, config_path(flag));
  return config::load_config_file(path, environment_value);
}

Result<const config::DrPlan*> find_plan(const config::Config& cfg, const std::string& name) {
  if (const auto* p = cfg.find_plan(name)) return p;
  std::string names;
  for (const auto& p : cfg.dr_plans) names += (names.empty() ? "" : ", ") + p.name;
  return Error(Error::Code::kInvalidArgument,
               "plan '" + name + "' is not in " + cfg.file +
                   (names.empty() ? " (it has no dr_plans)" : " (it has: " + names + ")"));
}

Status write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Error(Error::Code::kIo, "cannot write " + path);
  return ok_status();
}

void print_result(const dr::RunResult& r) {
  std::cout << (r.mode == dr::Mode::kDrill ? "drill" : "recovery") << " of plan " << r.plan << ": "
            << (r.success ? "success criteria met" : "success criteria NOT met") << "\n";
  for (const auto& s : r.steps) {
    std::cout << "  step " << s.name << " (" << s.kind << "): " << s.status << ", "
              << dr::human_seconds(s.seconds);
    if (s.status != "completed") std::cout << " — " << s.message;
    std::cout << "\n";
  }
  for (const auto& v : r.validations) {
    std::cout << "  validation " << v.name << ": " << (v.passed ? "passed" : "FAILED") << " ("
              << v.passed_checks << " of " << v.threshold << " checks needed)\n";
  }
  std::cout << "  RTO " << (r.rto_seconds ? dr::human_seconds(*r.rto_seconds) : "not measured")
            << " (target " << dr::human_seconds(static_cast<double>(r.rto_target_seconds)) << ", "
            << (r.rto_met ? "met" : "NOT met") << ")\n";
  std::cout << "  RPO " << (r.rpo_seconds ? dr::human_seconds(*r.rpo_seconds) : "not measured")
            << " (target " << dr::human_seconds(static_cast<double>(r.rpo_target_seconds)) << ", "
            << (r.rpo_met ? "met" : "NOT met") << ")\n";
  std::cout << "  time: restore " << dr::human_seconds(r.restore_seconds) << ", WAL replay "
            << dr::human_seconds(r.replay_seconds) << ", validation "
            << dr::human_seconds(r.validation_seconds) << "\n";
}

struct DrillArgs {
  std::string config, plan, sandbox, report, html;
};

// Runs `plan` (a drill, or a real recovery) and records it in `row` when there is a catalog.
CommandResult run_recorded(App& app, const config::Config& cfg, const config::DrPlan& plan,
                           catalog::Catalog* cat, std::optional<catalog::DrExecutionRow> row,
                           dr::Mode mode, const DrillArgs& a) {
  const char* what = mode == dr::Mode::kDrill ? "drill" : "recovery";
  CommandSink sink(app.globals());
  dr::RunOptions o;
  o.mode = mode;
  o.sandbox_root = sandbox_root(cfg, a.sandbox);
  o.run_id = row ? row->id : "";
  o.haven_program = self_program();
  o.open_repository = [&](const config::Policy& p) -> Result<std::shared_ptr<repo::Repository>> {
    HAVEN_ASSIGN(auto r, open_with_regions(app, LocationArgs{cfg.file, p.location, ""}, sink));
    return std::shared_ptr<repo::Repository>(std::move(r));
  };
  o.on_sandbox = [&](const std::string& dir) {
    if (!row || !cat) return;
    row->sandbox = dir;
    (void)cat->update_dr_execution(*row);
  };
  o.on_cleaned = [&](const std::vector<std::string>& removed) {
    if (!cat) return;
    // Runs whose sandbox a killed drill left behind: interrupted.
    auto list = cat->list_dr_executions("", 1000);
    if (!list.ok()) return;
    for (auto& e : *list) {
      if (e.status != catalog::ExecStatus::kRunning) continue;
      if (std::find(removed.begin(), removed.end(), e.sandbox) == removed.end()) continue;
      e.status = catalog::ExecStatus::kInterrupted;
      e.completed_at = now();
      e.error_message = "interrupted: the process running the drill stopped; its sandbox was "
                        "cleaned up by the next drill";
      (void)cat->update_dr_execution(e);
    }
  };
  CancelScope scope(app.cancel());
  auto result = dr::run_plan(cfg, plan, o, sink);
  sink.clear_line();
  if (!result.ok()) {
    if (row && cat) {
      row->status = catalog::ExecStatus::kFailed;
      row->completed_at = now();
      row->error_message = result.error().message();
      (void)cat->update_dr_execution(*row);
    }
    return result.error();
  }
  catalog::DrExecutionRow report_row =
      row ? *row
          : dr::start_row(dr::plan_row(plan, catalog::PolicySource::kConfig),
                          catalog::DrExecutionType::kDrill, "drill from the command line", actor());
  dr::fill_row(report_row, *result);
  if (row && cat) {
    Status s = cat->update_dr_execution(report_row);
    if (!s.ok()) std::cerr << "warning: the " << what << "'s result is not recorded: " << s.error().message() << "\n";
    if (result->success && mode == dr::Mode::kDrill) {
      (void)cat->set_dr_plan_tested(report_row.plan_id, report_row.completed_at.value_or(now()));
    }
  } else {
    report_row.validation_results["recorded_in_catalog"] = false;
  }
  if (!a.report.empty()) HAVEN_TRY(write_file(a.report, dr::report_markdown(report_row)));
  if (!a.html.empty()) HAVEN_TRY(write_file(a.html, dr::report_html(report_row)));
  if (app.globals().json) {
    nlohmann::json j = result->to_json();
    j["execution_id"] = row ? nlohmann::json(row->id) : nlohmann::json(nullptr);
    std::cout << j.dump() << "\n";
  } else if (!app.globals().quiet) {
    print_result(*result);
    if (row) std::cout << "  execution " << row->id << " (haven dr report " << row->id << ")\n";
  }
  if (result->cancelled) return Error(Error::Code::kCancelled, std::string("the ") + what + " was cancelled");
  if (!result->success) {
    std::cerr << "error: " << what << " of plan " << plan.name << " did not meet its success criteria: "
              << result->error << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

CommandResult run_drill(App& app, const DrillArgs& a) {
  HAVEN_ASSIGN(config::Config cfg, load(a.config));
  HAVEN_ASSIGN(const config::DrPlan* plan, find_plan(cfg, a.plan));
  HAVEN_TRY(dr::check_drill_safe(cfg, *plan));
  // The run is recorded in the server's catalog when it can be opened.
  std::unique_ptr<catalog::Catalog> cat;
  std::optional<catalog::DrExecutionRow> row;
  if (auto c = catalog::open_sqlite_catalog(cfg.server.catalog); c.ok()) {
    cat = std::move(*c);
    auto plans = dr::sync_plans(*cat, cfg);
    auto stored = plans.ok() ? cat->get_dr_plan(plan->name) : Result<catalog::DrPlanRow>(plans.error());
    if (stored.ok()) {
      auto created = cat->create_dr_execution(
          dr::start_row(*stored, catalog::DrExecutionType::kDrill, "drill from the command line",
                        actor()));
      if (created.ok()) row = *created;
    }
    if (!row) std::cerr << "warning: the drill is not recorded in the catalog\n";
  } else {
    std::cerr << "warning: the drill is not recorded: " << c.error().message() << "\n";
  }
  return run_recorded(app, cfg, *plan, cat.get(), row, dr::Mode::kDrill, a);
}

void audit_dr(catalog::Catalog& cat, const std::string& action, const std::string& target,
              const nlohmann::json& details) {
  monitor::AuditLog log(cat);
  if (auto r = log.record(actor(), action, target, details); !r.ok()) {
    std::cerr << "warning: " << action << " was not recorded in the audit log: " << r.error().message() << "\n";
  }
}

// haven dr execute PLAN --reason R: a real recovery. It waits for another principal's approval
// (haven dr approve) unless the plan says approval: {required: false}.
CommandResult run_execute(App& app, const DrillArgs& a, const std::string& reason) {
  if (reason.empty()) {
    return Error(Error::Code::kInvalidArgument, "--reason: a real recovery needs a reason (it is audited)");
  }
  HAVEN_ASSIGN(config::Config cfg, load(a.config));
  HAVEN_ASSIGN(const config::DrPlan* plan, find_plan(cfg, a.plan));
  HAVEN_ASSIGN(auto cat, catalog::open_sqlite_catalog(cfg.server.catalog));
  HAVEN_ASSIGN(auto plans, dr::sync_plans(*cat, cfg));
  (void)plans;
  HAVEN_ASSIGN(auto stored, cat->get_dr_plan(plan->name));
  catalog::DrExecutionRow row =
      dr::start_row(stored, catalog::DrExecutionType::kDisasterRecovery, reason, actor());
  if (stored.approval_required) {
    row.status = catalog::ExecStatus::kPending;
    row.approval_status = catalog::ApprovalStatus::kPending;
  }
  HAVEN_ASSIGN(row, cat->create_dr_execution(row));
  audit_dr(*cat, "dr.execute", plan->name, {{"execution", row.id}, {"reason", reason}});
  if (stored.approval_required) {
    std::cout << "execution " << row.id << " of plan " << plan->name
              << " waits for approval by another principal: haven dr approve " << row.id
              << " (or haven dr reject " << row.id << ")\n";
    return kExitOk;
  }
  return run_recorded(app, cfg, *plan, cat.get(), row, dr::Mode::kReal, a);
}

// haven dr approve|reject ID: decided by someone other than who asked; approving runs it here.
CommandResult run_decide(App& app, const DrillArgs& a, const std::string& id, bool approve) {
  HAVEN_ASSIGN(config::Config cfg, load(a.config));
  HAVEN_ASSIGN(auto cat, catalog::open_sqlite_catalog(cfg.server.catalog));
  HAVEN_ASSIGN(auto row, cat->decide_dr_approval(id, approve, actor(), now()));
  audit_dr(*cat, approve ? "dr.approve" : "dr.reject", row.plan_name, {{"execution", id}});
  if (!approve) {
    std::cout << "execution " << id << " of plan " << row.plan_name << " rejected\n";
    return kExitOk;
  }
  HAVEN_ASSIGN(const config::DrPlan* plan, find_plan(cfg, row.plan_name));
  row.status = catalog::ExecStatus::kRunning;
  row.started_at = now();
  HAVEN_TRY(cat->update_dr_execution(row));
  return run_recorded(app, cfg, *plan, cat.get(), row, dr::Mode::kReal, a);
}

// A failover of haven.yaml, watched from the command line (its lease taken as cli:<user>@<host>).
Result<std::unique_ptr<dr::FailoverWatch>> failover_watch(App& app, const std::string& flag,
                                                          const std::string& name,
                                                          std::shared_ptr<CommandSink> sink) {
  HAVEN_ASSIGN(config::Config cfg, load(flag));
  auto shared = std::make_shared<const config::Config>(std::move(cfg));
  const config::Failover* f = nullptr;
  for (const auto& x : shared->failover) {
    if (x.name == name) f = &x;
  }
  if (f == nullptr) {
    std::string names;
    for (const auto& x : shared->failover) names += (names.empty() ? "" : ", ") + x.name;
    return Error(Error::Code::kInvalidArgument,
                 "failover '" + name + "' is not in " + shared->file +
                     (names.empty() ? " (it has none)" : " (it has: " + names + ")"));
  }
  dr::FailoverOptions o;
  o.holder = actor();
  o.haven_program = self_program();
  o.open_location = [&app, shared, sink](const std::string& location) -> Result<std::shared_ptr<repo::Repository>> {
    HAVEN_ASSIGN(auto r, open_with_regions(app, LocationArgs{shared->file, location, ""}, *sink));
    return std::shared_ptr<repo::Repository>(std::move(r));
  };
  return std::make_unique<dr::FailoverWatch>(shared, *f, o);
}

}  // namespace

void register_dr(App& app) {
  auto* dr = app.root().add_subcommand("dr", "disaster-recovery plans: drills, reports");
  dr->require_subcommand(1);

  auto cfg_plans = std::make_shared<std::string>();
  auto* plans = dr->add_subcommand("plans", "list the plans of haven.yaml and when each was last tested");
  plans->add_option("--config", *cfg_plans, "haven.yaml (default: $HAVEN_CONFIG)");
  app.on(plans, [&app, cfg_plans]() -> CommandResult {
    HAVEN_ASSIGN(config::Config cfg, load(*cfg_plans));
    std::map<std::string, catalog::DrPlanRow> stored;
    if (auto c = catalog::open_sqlite_catalog(cfg.server.catalog); c.ok()) {
      if (auto rows = (*c)->list_dr_plans(); rows.ok()) {
        for (auto& r : *rows) stored[r.name] = r;
      }
    }
    nlohmann::json all = nlohmann::json::array();
    for (const auto& p : cfg.dr_plans) {
      nlohmann::json j = p;
      auto it = stored.find(p.name);
      const bool tested = it != stored.end() && it->second.last_tested;
      j["lastTested"] = tested ? nlohmann::json(format_time(*it->second.last_tested)) : nlohmann::json(nullptr);
      all.push_back(j);
      if (app.globals().json) continue;
      std::cout << p.name << " (" << config::name(p.plan_type) << ", " << config::name(p.priority)
                << "): " << p.steps.size() << " steps, RTO "
                << dr::human_seconds(static_cast<double>(p.rto.seconds())) << ", RPO "
                << dr::human_seconds(static_cast<double>(p.rpo.seconds())) << ", last tested "
                << (tested ? format_time(*it->second.last_tested) : std::string("never")) << "\n";
    }
    if (app.globals().json) std::cout << all.dump() << "\n";
    return kExitOk;
  });

  auto a = std::make_shared<DrillArgs>();
  auto* drill = dr->add_subcommand(
      "drill", "run a plan into a sandbox (temporary directories, free ports) and measure its RTO and RPO");
  drill->add_option("plan", a->plan, "the plan's name")->required();
  drill->add_option("--config", a->config, "haven.yaml (default: $HAVEN_CONFIG)");
  drill->add_option("--sandbox", a->sandbox,
                    "where drills run (default: a drills directory beside the catalog)");
  drill->add_option("--report", a->report, "write the report in Markdown to this file");
  drill->add_option("--html", a->html, "write the report in HTML to this file");
  app.on(drill, [&app, a]() { return run_drill(app, *a); });

  auto ea = std::make_shared<DrillArgs>();
  auto reason = std::make_shared<std::string>();
  auto* execute = dr->add_subcommand(
      "execute", "a real recovery: run a plan on its real targets (after another principal's approval, "
                 "unless the plan needs none)");
  execute->add_option("plan", ea->plan, "the plan's name")->required();
  execute->add_option("--reason", *reason, "why (recorded and audited)")->required();
  execute->add_option("--config", ea->config, "haven.yaml (default: $HAVEN_CONFIG)");
  execute->add_option("--sandbox", ea->sandbox, "where the run keeps its directory");
  execute->add_option("--report", ea->report, "write the report in Markdown to this file");
  execute->add_option("--html", ea->html, "write the report in HTML to this file");
  app.on(execute, [&app, ea, reason]() { return run_execute(app, *ea, *reason); });
  for (const bool approve : {true, false}) {
    auto da = std::make_shared<DrillArgs>();
    auto id = std::make_shared<std::string>();
    auto* decide = dr->add_subcommand(
        approve ? "approve" : "reject",
        approve ? "approve a real recovery another principal asked for, and run it here"
                : "reject a real recovery waiting for approval");
    decide->add_option("execution", *id, "the execution's id")->required();
    decide->add_option("--config", da->config, "haven.yaml (default: $HAVEN_CONFIG)");
    if (approve) {
      decide->add_option("--report", da->report, "write the report in Markdown to this file");
      decide->add_option("--html", da->html, "write the report in HTML to this file");
    }
    app.on(decide, [&app, da, id, approve]() { return run_decide(app, *da, *id, approve); });
  }

  auto ex = std::make_shared<std::pair<std::string, std::string>>();  // config, plan
  auto* execs = dr->add_subcommand("executions", "the recorded drills and recoveries, newest first");
  execs->add_option("plan", ex->second, "only this plan's");
  execs->add_option("--config", ex->first, "haven.yaml (default: $HAVEN_CONFIG)");
  app.on(execs, [&app, ex]() -> CommandResult {
    HAVEN_ASSIGN(config::Config cfg, load(ex->first));
    HAVEN_ASSIGN(auto cat, catalog::open_sqlite_catalog(cfg.server.catalog));
    std::string plan_id;
    if (!ex->second.empty()) {
      HAVEN_ASSIGN(auto p, cat->get_dr_plan(ex->second));
      plan_id = p.id;
    }
    HAVEN_ASSIGN(auto rows, cat->list_dr_executions(plan_id, 100));
    nlohmann::json all = nlohmann::json::array();
    for (const auto& r : rows) {
      all.push_back({{"id", r.id},
                     {"plan", r.plan_name},
                     {"executionType", catalog::to_string(r.execution_type)},
                     {"status", catalog::to_string(r.status)},
                     {"startedAt", format_time(r.started_at)},
                     {"actualRtoSeconds", r.actual_rto_seconds ? nlohmann::json(*r.actual_rto_seconds) : nlohmann::json(nullptr)},
                     {"actualRpoSeconds", r.actual_rpo_seconds ? nlohmann::json(*r.actual_rpo_seconds) : nlohmann::json(nullptr)},
                     {"successCriteriaMet", r.success_criteria_met ? nlohmann::json(*r.success_criteria_met) : nlohmann::json(nullptr)}});
      if (app.globals().json) continue;
      std::cout << r.id << "  " << r.plan_name << "  " << catalog::to_string(r.execution_type) << "  "
                << format_time(r.started_at) << "  " << catalog::to_string(r.status) << "  RTO "
                << (r.actual_rto_seconds ? dr::human_seconds(*r.actual_rto_seconds) : "-") << "  RPO "
                << (r.actual_rpo_seconds ? dr::human_seconds(*r.actual_rpo_seconds) : "-") << "  "
                << (r.success_criteria_met.value_or(false) ? "met" : "not met") << "\n";
    }
    if (app.globals().json) std::cout << all.dump() << "\n";
    return kExitOk;
  });

  auto fo = std::make_shared<std::pair<std::string, std::string>>();  // config, name
  auto* failover = dr->add_subcommand(
      "failover", "fail over now: take the lease, promote the warm standby, run the plan and the DNS hook");
  failover->add_option("name", fo->second, "the failover's name (haven.yaml's failover)")->required();
  failover->add_option("--config", fo->first, "haven.yaml (default: $HAVEN_CONFIG)");
  app.on(failover, [&app, fo]() -> CommandResult {
    auto sink = std::make_shared<CommandSink>(app.globals());
    HAVEN_ASSIGN(auto w, failover_watch(app, fo->first, fo->second, sink));
    CancelScope scope(app.cancel());
    HAVEN_ASSIGN(auto report, w->fail_over(actor()));
    std::cout << (app.globals().json ? report.dump() : report.dump(2)) << "\n";
    return kExitOk;
  });
  auto sb = std::make_shared<std::pair<std::string, std::string>>();  // config, name
  auto* standby = dr->add_subcommand(
      "standby", "make sure a failover's warm standby exists and runs, and show its replay position");
  standby->add_option("name", sb->second, "the failover's name (haven.yaml's failover)")->required();
  standby->add_option("--config", sb->first, "haven.yaml (default: $HAVEN_CONFIG)");
  app.on(standby, [&app, sb]() -> CommandResult {
    auto sink = std::make_shared<CommandSink>(app.globals());
    HAVEN_ASSIGN(auto w, failover_watch(app, sb->first, sb->second, sink));
    CancelScope scope(app.cancel());
    HAVEN_TRY(w->ensure_standby());
    dr::StandbyStatus s = w->standby_status();
    if (app.globals().json) {
      std::cout << s.to_json().dump() << "\n";
    } else {
      std::cout << "standby of " << sb->second << ": " << (s.running ? "running" : "not running")
                << (s.in_recovery ? ", replaying" : "") << "; replayed up to " << s.replay_lsn << " ("
                << s.replayed_segment << "), newest archived segment " << s.newest_archived;
      if (s.lag_seconds) std::cout << "; last replayed commit " << dr::human_seconds(*s.lag_seconds) << " ago";
      std::cout << "\n";
    }
    return kExitOk;
  });

  auto rp = std::make_shared<std::tuple<std::string, std::string, bool>>();  // config, id, html
  auto* report = dr->add_subcommand("report", "the report of a recorded drill or recovery");
  report->add_option("execution", std::get<1>(*rp), "the execution's id")->required();
  report->add_option("--config", std::get<0>(*rp), "haven.yaml (default: $HAVEN_CONFIG)");
  report->add_flag("--html", std::get<2>(*rp), "HTML instead of Markdown");
  app.on(report, [rp]() -> CommandResult {
    HAVEN_ASSIGN(config::Config cfg, load(std::get<0>(*rp)));
    HAVEN_ASSIGN(auto cat, catalog::open_sqlite_catalog(cfg.server.catalog));
    HAVEN_ASSIGN(auto row, cat->get_dr_execution(std::get<1>(*rp)));
    std::cout << (std::get<2>(*rp) ? dr::report_html(row) : dr::report_markdown(row));
    return kExitOk;
  });
}

}  // namespace haven::cli

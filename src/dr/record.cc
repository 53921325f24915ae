#include "dr/record.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace haven::dr {

using catalog::DrExecutionRow;

catalog::DrPlanRow plan_row(const config::DrPlan& plan, catalog::PolicySource source) {
  catalog::DrPlanRow r;
  r.name = plan.name;
  r.description = plan.description;
  r.plan_type = std::string(config::name(plan.plan_type));
  r.priority = std::string(config::name(plan.priority));
  r.rto_seconds = plan.rto.seconds();
  r.rpo_seconds = plan.rpo.seconds();
  r.definition = plan;
  r.required_personnel = plan.required_personnel;
  r.is_active = plan.is_active;
  r.test_frequency_days = plan.test_frequency_days;
  r.approval_required = plan.approval_required;
  r.source = source;
  return r;
}

Result<std::vector<catalog::DrPlanRow>> sync_plans(catalog::Catalog& catalog,
                                                   const config::Config& config) {
  std::vector<catalog::DrPlanRow> out;
  for (const auto& p : config.dr_plans) {
    HAVEN_ASSIGN(auto row, catalog.upsert_dr_plan(plan_row(p, catalog::PolicySource::kConfig)));
    out.push_back(std::move(row));
  }
  return out;
}

DrExecutionRow start_row(const catalog::DrPlanRow& plan, catalog::DrExecutionType type,
                         const std::string& reason, const std::string& by) {
  DrExecutionRow r;
  r.plan_id = plan.id;
  r.plan_name = plan.name;
  r.execution_type = type;
  r.trigger_reason = reason;
  r.status = catalog::ExecStatus::kRunning;
  r.rto_target_seconds = plan.rto_seconds;
  r.rpo_target_seconds = plan.rpo_seconds;
  r.executed_by = by;
  return r;
}

void fill_row(DrExecutionRow& row, const RunResult& result) {
  row.completed_at = result.finished_at ? result.finished_at : now();
  row.actual_rto_seconds = result.rto_seconds;
  row.actual_rpo_seconds = result.rpo_seconds;
  row.rto_target_seconds = result.rto_target_seconds;
  row.rpo_target_seconds = result.rpo_target_seconds;
  row.executed_steps = nlohmann::json::array();
  row.failed_steps = nlohmann::json::array();
  for (const auto& s : result.steps) {
    row.executed_steps.push_back(s.to_json());
    if (s.status == "failed" || s.status == "cancelled") {
      row.failed_steps.push_back({{"name", s.name}, {"message", s.message}, {"output", s.output}});
    }
  }
  nlohmann::json pre = nlohmann::json::array(), val = nlohmann::json::array();
  for (const auto& v : result.prerequisites) pre.push_back(v.to_json());
  for (const auto& v : result.validations) val.push_back(v.to_json());
  row.validation_results = {{"prerequisites", pre},
                            {"validations", val},
                            {"steps_ok", result.steps_ok},
                            {"validations_ok", result.validations_ok},
                            {"rto_met", result.rto_met},
                            {"rpo_met", result.rpo_met},
                            {"restore_seconds", result.restore_seconds},
                            {"replay_seconds", result.replay_seconds},
                            {"validation_seconds", result.validation_seconds},
                            {"recorded_in_catalog", true}};
  row.success_criteria_met = result.success;
  row.sandbox = result.sandbox;
  row.error_message = result.error;
  if (result.cancelled) {
    row.status = catalog::ExecStatus::kCancelled;
  } else if (!result.steps_ok || !result.validations_ok) {
    row.status = catalog::ExecStatus::kFailed;
  } else {
    row.status = catalog::ExecStatus::kCompleted;
  }
  std::ostringstream log;
  for (const auto& s : result.steps) {
    log << (s.started_at ? format_time(s.started_at) : std::string("-")) << " step " << s.name
        << " " << s.status << ": " << s.message << "\n";
  }
  for (const auto& v : result.validations) {
    log << "validation " << v.name << (v.passed ? " passed" : " failed") << " ("
        << v.passed_checks << "/" << v.threshold << ")\n";
  }
  if (!result.error.empty()) log << "error: " << result.error << "\n";
  row.execution_log = log.str();
}

std::string human_seconds(double s) {
  char buf[64];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  } else if (s < 3600) {
    const int m = static_cast<int>(s) / 60, sec = static_cast<int>(s) % 60;
    if (sec == 0) std::snprintf(buf, sizeof buf, "%d min", m);
    else std::snprintf(buf, sizeof buf, "%d min %d s", m, sec);
  } else {
    const int h = static_cast<int>(s) / 3600, m = (static_cast<int>(s) % 3600) / 60;
    if (m == 0) std::snprintf(buf, sizeof buf, "%d h", h);
    else std::snprintf(buf, sizeof buf, "%d h %d min", h, m);
  }
  return buf;
}

namespace {

std::string type_word(const DrExecutionRow& r) {
  switch (r.execution_type) {
    case catalog::DrExecutionType::kDisasterRecovery: return "Disaster recovery";
    case catalog::DrExecutionType::kPlannedTest: return "Planned test";
    case catalog::DrExecutionType::kDrill: return "Drill";
    case catalog::DrExecutionType::kValidation: return "Validation";
  }
  return "Run";
}

std::string objective_line(const char* what, const std::optional<double>& actual, int64_t target,
                           bool met) {
  std::string s = std::string(what) + ": ";
  s += actual ? human_seconds(*actual) : std::string("not measured");
  s += " (target " + human_seconds(static_cast<double>(target)) + ") — ";
  s += met ? "met" : "NOT met";
  return s;
}

double offset(const nlohmann::json& step, TimeNs start) {
  if (!step["started_at"].is_string()) return 0;
  auto t = parse_time(step["started_at"].get<std::string>());
  return t ? static_cast<double>(*t - start) / 1e9 : 0;
}

}  // namespace

std::vector<ChecklistItem> checklist(const DrExecutionRow& row) {
  const nlohmann::json& v = row.validation_results.is_object() ? row.validation_results
                                                                : nlohmann::json::object();
  std::vector<ChecklistItem> out;
  int restores = 0, restored = 0, services = 0, services_up = 0, logs = 0, logs_read = 0;
  for (const auto& s : row.executed_steps) {
    const std::string kind = s.value("kind", "");
    const std::string status = s.value("status", "");
    if (kind == "restore_files" || kind == "restore_postgres") {
      restores++;
      if (status == "completed") restored++;
    }
    if (kind == "command" && s.value("details", nlohmann::json::object()).contains("ready")) {
      services++;
      if (status == "completed") services_up++;
    }
    if (kind == "command" && status != "not_run") {
      logs++;
      if (status == "completed" || !s.value("output", "").empty()) logs_read++;
    }
  }
  out.push_back({"Backup restoration successful",
                 restores > 0 ? std::optional<bool>(restored == restores) : std::nullopt,
                 std::to_string(restored) + " of " + std::to_string(restores) +
                     " restore steps completed"});
  out.push_back({"RTO met (< " + human_seconds(static_cast<double>(row.rto_target_seconds)) + ")",
                 v.value("rto_met", false),
                 row.actual_rto_seconds ? "measured " + human_seconds(*row.actual_rto_seconds)
                                        : "not measured: the run did not reach a validated state"});
  out.push_back({"RPO met (< " + human_seconds(static_cast<double>(row.rpo_target_seconds)) + " data loss)",
                 v.value("rpo_met", false),
                 row.actual_rpo_seconds ? "measured " + human_seconds(*row.actual_rpo_seconds)
                                        : "not measured"});
  const bool validations_ok = v.value("validations_ok", false);
  out.push_back({"All services operational", validations_ok && services_up == services,
                 std::to_string(services_up) + " of " + std::to_string(services) +
                     " services passed their health checks; post-recovery validation " +
                     (validations_ok ? "passed" : "did not pass")});
  out.push_back({"Monitoring functional", v.value("recorded_in_catalog", false),
                 v.value("recorded_in_catalog", false)
                     ? "the run and its events were recorded in the catalog monitoring reads"
                     : "the run was not recorded in a catalog"});
  out.push_back({"Logs accessible", logs_read == logs,
                 std::to_string(logs_read) + " of " + std::to_string(logs) +
                     " command logs were read back"});
  for (const char* item : {"Team communication effective", "Runbooks accurate",
                           "Action items documented"}) {
    out.push_back({item, std::nullopt, "not measured by a drill: for the team to fill in"});
  }
  return out;
}

std::string report_markdown(const DrExecutionRow& row) {
  const nlohmann::json& v = row.validation_results.is_object() ? row.validation_results
                                                                : nlohmann::json::object();
  std::ostringstream o;
  o << "# " << type_word(row) << " report: " << row.plan_name << "\n\n";
  o << "- Execution: `" << row.id << "` (" << catalog::to_string(row.execution_type) << ")\n";
  o << "- Status: " << catalog::to_string(row.status)
    << (row.success_criteria_met.value_or(false) ? ", success criteria met"
                                                 : ", success criteria NOT met")
    << "\n";
  o << "- Started: " << format_time(row.started_at) << "\n";
  if (row.completed_at) o << "- Finished: " << format_time(*row.completed_at) << "\n";
  if (!row.trigger_reason.empty()) o << "- Reason: " << row.trigger_reason << "\n";
  if (!row.executed_by.empty()) o << "- Requested by: " << row.executed_by << "\n";
  if (!row.approved_by.empty()) {
    o << "- " << (row.approval_status == catalog::ApprovalStatus::kRejected ? "Rejected" : "Approved")
      << " by: " << row.approved_by << "\n";
  }
  o << "- " << objective_line("RTO", row.actual_rto_seconds, row.rto_target_seconds, v.value("rto_met", false)) << "\n";
  o << "- " << objective_line("RPO", row.actual_rpo_seconds, row.rpo_target_seconds, v.value("rpo_met", false)) << "\n";
  if (!row.error_message.empty()) o << "- First failure: " << row.error_message << "\n";
  o << "\n## Where the time went\n\n";
  o << "| restore | WAL replay | validation |\n|---|---|---|\n";
  o << "| " << human_seconds(v.value("restore_seconds", 0.0)) << " | "
    << human_seconds(v.value("replay_seconds", 0.0)) << " | "
    << human_seconds(v.value("validation_seconds", 0.0)) << " |\n";
  o << "\n## Timeline\n\n";
  o << "| step | kind | starts at | takes | status | notes |\n|---|---|---|---|---|---|\n";
  for (const auto& s : row.executed_steps) {
    std::string note = s.value("message", "");
    for (auto& ch : note) {
      if (ch == '|' || ch == '\n') ch = ' ';
    }
    o << "| " << s.value("name", "") << " | " << s.value("kind", "") << " | +"
      << human_seconds(offset(s, row.started_at)) << " | " << human_seconds(s.value("seconds", 0.0))
      << " | " << s.value("status", "") << " | " << note << " |\n";
  }
  for (const char* part : {"prerequisites", "validations"}) {
    const auto list = v.value(part, nlohmann::json::array());
    if (list.empty()) continue;
    o << "\n## " << (std::string(part) == "validations" ? "Post-recovery validation" : "Prerequisites")
      << "\n\n";
    for (const auto& val : list) {
      o << "- **" << val.value("name", "") << "**: " << (val.value("passed", false) ? "passed" : "FAILED")
        << " (" << val.value("passed_checks", 0) << " checks passed, " << val.value("threshold", 0)
        << " needed, " << human_seconds(val.value("seconds", 0.0)) << ")\n";
      for (const auto& c : val.value("checks", nlohmann::json::array())) {
        o << "  - " << (c.value("passed", false) ? "[x] " : "[ ] ") << c.value("check", "") << ": "
          << c.value("message", "") << "\n";
      }
    }
  }
  if (!row.failed_steps.empty()) {
    o << "\n## Failed steps\n";
    for (const auto& f : row.failed_steps) {
      o << "\n### " << f.value("name", "") << "\n\n" << f.value("message", "") << "\n";
      const std::string out = f.value("output", "");
      if (!out.empty()) o << "\n```\n" << out << "```\n";
    }
  }
  o << "\n## DR test checklist\n\n";
  for (const auto& c : checklist(row)) {
    o << "- " << (c.passed.value_or(false) ? "[x] " : "[ ] ") << c.item << " — " << c.evidence << "\n";
  }
  if (!row.lessons_learned.empty()) o << "\n## Lessons learned\n\n" << row.lessons_learned << "\n";
  return o.str();
}

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

}  // namespace

std::string report_html(const DrExecutionRow& row) {
  const nlohmann::json& v = row.validation_results.is_object() ? row.validation_results
                                                                : nlohmann::json::object();
  const bool ok = row.success_criteria_met.value_or(false);
  std::ostringstream o;
  o << "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
    << esc(type_word(row) + " report: " + row.plan_name) << "</title>\n<style>"
    << "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}"
    << "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
    << ".ok{color:#176b2c}.bad{color:#a61b1b}pre{background:#f4f4f4;padding:.5em}</style></head><body>\n";
  o << "<h1>" << esc(type_word(row) + " report: " + row.plan_name) << "</h1>\n";
  o << "<p id=\"verdict\" class=\"" << (ok ? "ok" : "bad") << "\">"
    << (ok ? "Success criteria met" : "Success criteria NOT met") << " — status "
    << esc(std::string(catalog::to_string(row.status))) << "</p>\n<ul>\n";
  o << "<li>Execution <code>" << esc(row.id) << "</code> ("
    << esc(std::string(catalog::to_string(row.execution_type))) << ")</li>\n";
  o << "<li>Started " << esc(format_time(row.started_at)) << "</li>\n";
  o << "<li id=\"rto\">" << esc(objective_line("RTO", row.actual_rto_seconds, row.rto_target_seconds, v.value("rto_met", false))) << "</li>\n";
  o << "<li id=\"rpo\">" << esc(objective_line("RPO", row.actual_rpo_seconds, row.rpo_target_seconds, v.value("rpo_met", false))) << "</li>\n";
  if (!row.error_message.empty()) o << "<li>First failure: " << esc(row.error_message) << "</li>\n";
  o << "</ul>\n<h2>Where the time went</h2>\n<table><tr><th>restore</th><th>WAL replay</th><th>validation</th></tr><tr><td>"
    << esc(human_seconds(v.value("restore_seconds", 0.0))) << "</td><td>"
    << esc(human_seconds(v.value("replay_seconds", 0.0))) << "</td><td>"
    << esc(human_seconds(v.value("validation_seconds", 0.0))) << "</td></tr></table>\n";
  o << "<h2>Timeline</h2>\n<table id=\"timeline\"><tr><th>step</th><th>kind</th><th>starts at</th><th>takes</th><th>status</th><th>notes</th></tr>\n";
  for (const auto& s : row.executed_steps) {
    o << "<tr><td>" << esc(s.value("name", "")) << "</td><td>" << esc(s.value("kind", ""))
      << "</td><td>+" << esc(human_seconds(offset(s, row.started_at))) << "</td><td>"
      << esc(human_seconds(s.value("seconds", 0.0))) << "</td><td>" << esc(s.value("status", ""))
      << "</td><td>" << esc(s.value("message", "")) << "</td></tr>\n";
  }
  o << "</table>\n";
  for (const char* part : {"prerequisites", "validations"}) {
    const auto list = v.value(part, nlohmann::json::array());
    if (list.empty()) continue;
    o << "<h2>" << (std::string(part) == "validations" ? "Post-recovery validation" : "Prerequisites")
      << "</h2>\n<ul>\n";
    for (const auto& val : list) {
      o << "<li><b>" << esc(val.value("name", "")) << "</b>: "
        << (val.value("passed", false) ? "passed" : "FAILED") << "<ul>";
      for (const auto& c : val.value("checks", nlohmann::json::array())) {
        o << "<li class=\"" << (c.value("passed", false) ? "ok" : "bad") << "\">"
          << esc(c.value("check", "")) << ": " << esc(c.value("message", "")) << "</li>";
      }
      o << "</ul></li>\n";
    }
    o << "</ul>\n";
  }
  for (const auto& f : row.failed_steps) {
    o << "<h3>Failed: " << esc(f.value("name", "")) << "</h3><p>" << esc(f.value("message", ""))
      << "</p>";
    if (!f.value("output", "").empty()) o << "<pre>" << esc(f.value("output", "")) << "</pre>";
    o << "\n";
  }
  o << "<h2>DR test checklist</h2>\n<ul id=\"checklist\">\n";
  for (const auto& c : checklist(row)) {
    o << "<li><input type=\"checkbox\" disabled" << (c.passed.value_or(false) ? " checked" : "")
      << "> " << esc(c.item) << " — " << esc(c.evidence) << "</li>\n";
  }
  o << "</ul>\n</body></html>\n";
  return o.str();
}

}  // namespace haven::dr

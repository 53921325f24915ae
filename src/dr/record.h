// dr/record.h — plans and runs in the catalog (seed 004's disaster_recovery_plans and
// disaster_recovery_executions), and the report of a run in Markdown and HTML, made from its
// catalog row so that the CLI and the API give the same report for the same execution.
#pragma once

#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "config/config.h"
#include "dr/runner.h"

namespace haven::dr {

// The catalog row of a plan (its definition is the plan's JSON).
catalog::DrPlanRow plan_row(const config::DrPlan& plan, catalog::PolicySource source);

// Upserts every plan of haven.yaml (source config). Returns the stored rows.
Result<std::vector<catalog::DrPlanRow>> sync_plans(catalog::Catalog& catalog,
                                                   const config::Config& config);

// A new execution row for a run about to start (status running, or pending when it waits for
// approval).
catalog::DrExecutionRow start_row(const catalog::DrPlanRow& plan, catalog::DrExecutionType type,
                                  const std::string& reason, const std::string& by);

// Writes a run's results into its row: status (completed when the run went through, whether
// or not the criteria were met; failed when a step or validation failed; cancelled),
// completed_at, actual RTO and RPO (started_at stays as the row has it), executed and failed steps, validation results,
// success_criteria_met and the execution log.
void fill_row(catalog::DrExecutionRow& row, const RunResult& result);

// seed 002's DR test checklist, filled in from what a run measured: (item, passed, how it was
// judged). Items that need people are listed as not measured (passed = false, "—").
struct ChecklistItem {
  std::string item;
  std::optional<bool> passed;  // nullopt: not measured by a drill
  std::string evidence;
};
std::vector<ChecklistItem> checklist(const catalog::DrExecutionRow& row);

std::string report_markdown(const catalog::DrExecutionRow& row);
std::string report_html(const catalog::DrExecutionRow& row);

// "12.3 s", "4 min 5 s", "2 h 3 min": a duration for people.
std::string human_seconds(double s);

}  // namespace haven::dr

// The dr_drill monitor: a plan whose drill is overdue is a warning, then critical; a drill whose
// RTO is more than 20 % worse than the median of the five before it is a warning of its own.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "catalog/sqlite_catalog.h"
#include "config/config.h"
#include "monitor/monitors.h"

namespace haven::monitor {
namespace {

constexpr TimeNs kDay = 86400'000'000'000LL;

TEST(DrDrillMonitor, OverdueDrillsAndRtoRegressions) {
  char tmpl[] = "/tmp/haven-drmon-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::ofstream(dir + "/pass") << "pw\n";
  const std::string text =
      "server: {catalog: " + dir + "/c.db}\n"
      "locations:\n"
      "  - {name: local, repository: " + dir + "/r, password_file: " + dir + "/pass}\n"
      "monitoring:\n"
      "  monitors:\n"
      "    - {name: drills, type: dr_drill}\n"
      "dr_plans:\n"
      "  - name: weekly\n"
      "    rto: {value: 1, unit: hours}\n"
      "    rpo: {value: 1, unit: hours}\n"
      "    test_frequency_days: 7\n"
      "    steps: [{name: a, command: \"true\"}]\n";
  auto cfg = config::parse_config(text, "haven.yaml", [](const std::string&) { return std::nullopt; });
  ASSERT_TRUE(cfg.ok()) << cfg.error().message();
  EXPECT_EQ(cfg->monitoring.monitors[0].type, config::MonitorKind::kDrDrill);
  auto cat = catalog::open_sqlite_catalog(dir + "/c.db");
  ASSERT_TRUE(cat.ok());
  catalog::DrPlanRow row;
  row.name = "weekly";
  row.description = "";
  row.rto_seconds = row.rpo_seconds = 3600;
  row.test_frequency_days = 7;
  row.definition = nlohmann::json::object();
  auto plan = (*cat)->upsert_dr_plan(row);
  ASSERT_TRUE(plan.ok());
  EvalContext ctx{{**cat, *cfg, {}}, {}, {}, {}};
  const config::Monitor& m = cfg->monitoring.monitors[0];
  auto at = [&](TimeNs t) {
    auto e = evaluate(ctx, m, t);
    EXPECT_TRUE(e.ok()) << e.error().message();
    return *e;
  };
  const TimeNs created = plan->created_at;
  // Not yet due; then a day overdue (warning); then two weeks (critical).
  auto e = at(created + 6 * kDay);
  ASSERT_EQ(e.conditions.size(), 2u);
  EXPECT_EQ(e.conditions[0].level, Level::kOk) << e.conditions[0].summary;
  EXPECT_EQ(e.conditions[0].key_suffix, "weekly");
  EXPECT_EQ(e.conditions[1].level, Level::kUnknown);  // no drills to compare
  e = at(created + 8 * kDay + kDay / 2);
  EXPECT_EQ(e.conditions[0].level, Level::kWarning) << e.conditions[0].summary;
  EXPECT_EQ(e.conditions[0].kind, "alert:dr-drill-overdue");
  EXPECT_NE(e.conditions[0].summary.find("never passed"), std::string::npos) << e.conditions[0].summary;
  e = at(created + 22 * kDay);
  EXPECT_EQ(e.conditions[0].level, Level::kCritical);
  // A drill passed: no longer overdue.
  ASSERT_TRUE((*cat)->set_dr_plan_tested(plan->id, created + 21 * kDay).ok());
  e = at(created + 22 * kDay);
  EXPECT_EQ(e.conditions[0].level, Level::kOk) << e.conditions[0].summary;

  // Five drills at 10 s, then one at 13 s: 30 % worse than their median.
  auto drill = [&](double rto, TimeNs t) {
    catalog::DrExecutionRow x;
    x.plan_id = plan->id;
    x.status = catalog::ExecStatus::kCompleted;
    x.started_at = t;
    x.actual_rto_seconds = rto;
    ASSERT_TRUE((*cat)->create_dr_execution(x).ok());
  };
  for (int i = 0; i < 5; i++) drill(10 + (i % 2), created + i * kDay);  // 10 11 10 11 10
  drill(11.5, created + 10 * kDay);
  e = at(created + 22 * kDay);
  EXPECT_EQ(e.conditions[1].level, Level::kOk) << e.conditions[1].summary;  // +15 %
  drill(13.5, created + 11 * kDay);  // against 11.5 11 10 11 10: median 11 → +23 %
  e = at(created + 22 * kDay);
  EXPECT_EQ(e.conditions[1].level, Level::kWarning) << e.conditions[1].summary;
  EXPECT_EQ(e.conditions[1].kind, "alert:dr-rto-regression");
  EXPECT_EQ(alert_key(m.name, e.conditions[1]), "drills/weekly/rto");
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace haven::monitor

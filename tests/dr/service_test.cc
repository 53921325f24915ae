// dr::Service without a server: scheduled drills start when a plan's test_frequency_days have
// passed since its last drill (or its creation), once; a drill is recorded with its results.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "catalog/sqlite_catalog.h"
#include "config/config.h"
#include "dr/service.h"

namespace haven::dr {
namespace {

constexpr TimeNs kDay = 86400'000'000'000LL;

TEST(DrService, ScheduledDrillsRunWhenDueAndOnce) {
  char tmpl[] = "/tmp/haven-drsvc-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::ofstream(dir + "/pass") << "pw\n";
  const std::string text =
      "server: {catalog: " + dir + "/c.db}\n"
      "locations:\n"
      "  - {name: local, repository: " + dir + "/r, password_file: " + dir + "/pass}\n"
      "dr_plans:\n"
      "  - name: daily\n"
      "    rto: {value: 1, unit: hours}\n"
      "    rpo: {value: 1, unit: hours}\n"
      "    test_frequency_days: 1\n"
      "    steps:\n"
      "      - {name: a, command: \"echo drilled > ${sandbox}/out\"}\n"
      "      - {name: b, depends_on: [a], command: \"grep -q drilled ${sandbox}/out\"}\n"
      "  - name: never\n"
      "    rto: {value: 1, unit: hours}\n"
      "    rpo: {value: 1, unit: hours}\n"
      "    test_frequency_days: 0\n"
      "    steps: [{name: a, command: \"true\"}]\n";
  auto cfg = config::parse_config(text, "haven.yaml", [](const std::string&) { return std::nullopt; });
  ASSERT_TRUE(cfg.ok()) << cfg.error().message();
  auto cat = catalog::open_sqlite_catalog(dir + "/c.db");
  ASSERT_TRUE(cat.ok());
  NullSink sink;
  std::atomic<TimeNs> clock{now()};
  ServiceOptions o;
  o.instance = "test";
  o.sandbox_root = dir + "/drills";
  o.clock = [&] { return clock.load(); };
  o.open_repository = [](const config::Policy&) -> Result<std::shared_ptr<repo::Repository>> {
    return Error(Error::Code::kNotFound, "no repository in this test");
  };
  {
    Service s(**cat, sink, o);
    ASSERT_TRUE(s.apply_config(std::make_shared<const config::Config>(*cfg)).ok());
    EXPECT_EQ(s.tick(), 0);  // created just now: not due
    clock += kDay + 60'000'000'000LL;
    EXPECT_EQ(s.tick(), 1);  // only "daily"
    s.wait_idle();
    EXPECT_EQ(s.tick(), 0);  // drilled at this time: due again a day later
    auto runs = (*cat)->list_dr_executions("", 10);
    ASSERT_TRUE(runs.ok());
    ASSERT_EQ(runs->size(), 1u);
    const auto& r = (*runs)[0];
    EXPECT_EQ(r.plan_name, "daily");
    EXPECT_EQ(r.execution_type, catalog::DrExecutionType::kDrill);
    EXPECT_EQ(r.executed_by, "scheduler");
    EXPECT_EQ(r.status, catalog::ExecStatus::kCompleted) << r.error_message;
    EXPECT_EQ(r.success_criteria_met, std::optional<bool>(true)) << r.error_message;
    ASSERT_EQ(r.executed_steps.size(), 2u);
    EXPECT_EQ(r.executed_steps[1]["status"], "completed");
    EXPECT_TRUE((*cat)->get_dr_plan("daily")->last_tested.has_value());
    EXPECT_TRUE(std::filesystem::is_empty(dir + "/drills"));
    clock += kDay + 60'000'000'000LL;
    EXPECT_EQ(s.tick(), 1);
    s.wait_idle();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace haven::dr

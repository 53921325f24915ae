// dr::Service without a server: scheduled drills start when a plan's test_frequency_days have
// passed since its last drill (or its creation), once; a drill is recorded with its results.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "catalog/sqlite_catalog.h"
#include "config/config.h"
#include "dr/service.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/repo_test_util.h"
#pragma GCC diagnostic pop

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

// pilot_light: the server's probes find the primary down three times in a row and fail over on
// their own: the lease is taken and the failover plan runs as a real recovery, without waiting
// for approval (auto_failover decided that), recorded in the catalog.
TEST(DrService, AutomaticFailoverRunsItsPlanWithoutApproval) {
  char tmpl[] = "/tmp/haven-drsvc-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_NE(init_repo(dir + "/repo"), nullptr);
  std::ofstream(dir + "/pass") << "pw\n";
  std::ofstream(dir + "/up") << "";
  const std::string text =
      "server: {catalog: " + dir + "/c.db}\n"
      "locations:\n"
      "  - {name: local, repository: " + dir + "/repo, password_file: " + dir + "/pass}\n"
      "dr_plans:\n"
      "  - name: bring-up\n"
      "    rto: {value: 1, unit: hours}\n"
      "    rpo: {value: 1, unit: hours}\n"
      "    test_frequency_days: 0\n"
      "    steps: [{name: start, command: \"touch " + dir + "/standby-up\"}]\n"
      "failover:\n"
      "  - name: app\n"
      "    mode: pilot_light\n"
      "    auto_failover: true\n"
      "    failure_threshold: 3\n"
      "    probe: {command: \"test -f " + dir + "/up\"}\n"
      "    regions: [primary, standby]\n"
      "    plan: bring-up\n";
  auto cfg = config::parse_config(text, "haven.yaml", [](const std::string&) { return std::nullopt; });
  ASSERT_TRUE(cfg.ok()) << cfg.error().message();
  auto cat = catalog::open_sqlite_catalog(dir + "/c.db");
  ASSERT_TRUE(cat.ok());
  NullSink sink;
  ServiceOptions o;
  o.instance = "test";
  o.holder = "host/test";
  o.sandbox_root = dir + "/drills";
  o.probe_interval = std::chrono::milliseconds(50);
  o.alerts = cat->get();
  o.open_repository = [](const config::Policy&) -> Result<std::shared_ptr<repo::Repository>> {
    return Error(Error::Code::kNotFound, "no policy in this test");
  };
  o.open_location = [dir](const std::string&) -> Result<std::shared_ptr<repo::Repository>> {
    HAVEN_ASSIGN(auto be, storage::open_backend(dir + "/repo"));
    HAVEN_ASSIGN(auto r, repo::Repository::open(be, kPw));
    return std::shared_ptr<repo::Repository>(std::move(r));
  };
  {
    Service s(**cat, sink, o);
    ASSERT_TRUE(s.apply_config(std::make_shared<const config::Config>(*cfg)).ok());
    s.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(s.failover_status()[0]["failed_over"].get<bool>());
    std::filesystem::remove(dir + "/up");
    bool done = false;
    for (int i = 0; i < 200 && !done; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      done = std::filesystem::exists(dir + "/standby-up");
    }
    ASSERT_TRUE(done) << s.failover_status().dump(1);
    s.wait_idle();
    nlohmann::json st = s.failover_status()[0];
    EXPECT_TRUE(st["failed_over"].get<bool>()) << st.dump(1);
    auto runs = (*cat)->list_dr_executions("", 10);
    ASSERT_TRUE(runs.ok());
    ASSERT_EQ(runs->size(), 1u);
    EXPECT_EQ((*runs)[0].execution_type, catalog::DrExecutionType::kDisasterRecovery);
    EXPECT_EQ((*runs)[0].approval_status, catalog::ApprovalStatus::kNotRequired);
    EXPECT_EQ((*runs)[0].executed_by, "failover");
    EXPECT_EQ((*runs)[0].status, catalog::ExecStatus::kCompleted) << (*runs)[0].error_message;
    EXPECT_TRUE(std::filesystem::exists(dir + "/repo/leases/app"));
    auto alert = (*cat)->find_unresolved_alert("failover/app");
    ASSERT_TRUE(alert.ok() && alert->has_value());
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace haven::dr

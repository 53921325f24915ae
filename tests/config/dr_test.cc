// haven.yaml's dr_plans: the issue's example decodes as written; a cycle is refused naming it;
// variables must name steps run before; restore steps must name policies of their kind; the
// JSON form goes through the same decoder and round-trips.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "config/config_test_util.h"

namespace haven::config {
namespace {

using test::env_of;
using test::lines_of;
using test::TempDir;

std::string head(const std::string& pass) {
  return R"(locations:
  - {name: local, repository: /srv/backup, password_file: )" + pass + R"(}
policies:
  - {name: etc, resource_type: files, sources: [/etc], location: local, schedules: []}
  - name: db
    resource_type: database
    database: {pgdata: /var/lib/postgresql/15/main}
    location: local
    schedules: []
)";
}

const char* kExample = R"(dr_plans:
  - name: files-drill
    description: restore the etc policy and serve it over HTTP
    plan_type: data_only
    priority: high
    rto: {value: 30, unit: minutes}
    rpo: {value: 60, unit: minutes}
    test_frequency_days: 90
    steps:
      - name: restore-etc
        restore_files: {policy: etc, snapshot: latest}
      - name: serve
        depends_on: [restore-etc]
        command: "python3 -m http.server ${port} --bind 127.0.0.1 --directory ${restore-etc.path}"
        wait: {http: "http://127.0.0.1:${port}/", timeout: 30}
    validation:
      - name: content
        checks:
          - {http: "http://127.0.0.1:${serve.port}/", expect_status: 200}
          - {checksum: restore-etc}
        threshold: 2
        timeout: 60
)";

TEST(ConfigDr, TheExampleDecodesAsWritten) {
  TempDir dir;
  auto c = check_config(head(dir.write("pass", "pw\n")) + kExample, "haven.yaml", env_of({}));
  ASSERT_TRUE(c.ok()) << lines_of(c.diagnostics).front();
  ASSERT_EQ(c.value.dr_plans.size(), 1u);
  const DrPlan& p = c.value.dr_plans[0];
  EXPECT_EQ(p.name, "files-drill");
  EXPECT_EQ(p.plan_type, PlanType::kDataOnly);
  EXPECT_EQ(p.priority, PlanPriority::kHigh);
  EXPECT_EQ(p.rto.seconds(), 1800);
  EXPECT_EQ(p.rpo.seconds(), 3600);
  EXPECT_EQ(p.test_frequency_days, 90);
  EXPECT_TRUE(p.approval_required);
  ASSERT_EQ(p.steps.size(), 2u);
  EXPECT_EQ(p.steps[0].kind, PlanStep::Kind::kRestoreFiles);
  EXPECT_EQ(p.steps[0].policy, "etc");
  EXPECT_EQ(p.steps[0].snapshot, "latest");
  EXPECT_EQ(p.steps[1].kind, PlanStep::Kind::kCommand);
  EXPECT_EQ(p.steps[1].depends_on, std::vector<std::string>{"restore-etc"});
  ASSERT_TRUE(p.steps[1].wait.has_value());
  EXPECT_EQ(p.steps[1].wait->kind, HealthCheck::Kind::kHttp);
  EXPECT_EQ(p.steps[1].wait_timeout_seconds, 30);
  ASSERT_EQ(p.validation.size(), 1u);
  EXPECT_EQ(p.validation[0].threshold, 2);
  EXPECT_EQ(p.validation[0].timeout_seconds, 60);
  ASSERT_EQ(p.validation[0].checks.size(), 2u);
  EXPECT_EQ(p.validation[0].checks[0].expect_status, 200);
  EXPECT_EQ(p.validation[0].checks[1].kind, HealthCheck::Kind::kChecksum);
  EXPECT_EQ(p.validation[0].checks[1].target, "restore-etc");

  // The API's JSON goes through the same decoder and gives the same plan back.
  nlohmann::json j = p;
  auto back = check_plan_json(j, c.value.policies);
  ASSERT_TRUE(back.ok()) << lines_of(back.diagnostics).front() << "\n" << j.dump(1);
  EXPECT_EQ(back.value, p);
}

// Replaces the first `from` in `text` with `to`.
std::string edit(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

std::string first_problem(const std::string& pass, const std::string& plans) {
  auto c = check_config(head(pass) + plans, "haven.yaml", env_of({}));
  if (c.ok()) return "(no diagnostic)";
  return lines_of(c.diagnostics).front();
}

TEST(ConfigDr, ACycleIsRefusedNamingIt) {
  TempDir dir;
  const std::string pass = dir.write("pass", "pw\n");
  std::string cyc = edit(kExample, "restore_files: {policy: etc, snapshot: latest}",
                         "restore_files: {policy: etc, snapshot: latest}\n        depends_on: [serve]");
  std::string msg = first_problem(pass, cyc);
  EXPECT_NE(msg.find("cycle: "), std::string::npos) << msg;
  EXPECT_TRUE(msg.find("restore-etc → serve → restore-etc") != std::string::npos ||
              msg.find("serve → restore-etc → serve") != std::string::npos)
      << msg;
}

TEST(ConfigDr, MistakesAreNamedWithTheirFix) {
  TempDir dir;
  const std::string pass = dir.write("pass", "pw\n");
  struct Case {
    std::string from, to, expect;
  };
  const std::vector<Case> cases = {
      // A variable naming a step the user of it does not depend on.
      {"        depends_on: [restore-etc]\n", "", "does not depend on 'restore-etc'"},
      {"${restore-etc.path}", "${restore-etc.dir}", "a step has no 'dir'"},
      {"${restore-etc.path}", "${nosuch.path}", "no step 'nosuch'"},
      {"{checksum: restore-etc}", "{checksum: serve}", "not a restore_files step"},
      {"threshold: 2", "threshold: 3", "only 2 checks"},
      {"{policy: etc, snapshot: latest}", "{policy: db}", "a database policy"},
      {"{policy: etc, snapshot: latest}", "{policy: nope}", "'nope', which is not defined"},
      {"depends_on: [restore-etc]", "depends_on: [restore-etx]", "'restore-etx', which the plan does not have"},
      {"plan_type: data_only", "plan_type: lukewarm", "hot_site"},
      {"    rto: {value: 30, unit: minutes}\n", "", "rto"},
      {"{http: \"http://127.0.0.1:${serve.port}/\", expect_status: 200}",
       "{http: \"http://127.0.0.1:${serve.port}/\", tcp: \"127.0.0.1:1\"}", "names 2 checks"},
      {"command: \"python3", "sql: \"select 1\"\n        command: \"python3", "2 things to do"},
  };
  for (const auto& c : cases) {
    std::string msg = first_problem(pass, edit(kExample, c.from, c.to));
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.from << " → " << c.to << ": " << msg;
  }
}

TEST(ConfigDr, SqlStepsAndPostgresRestores) {
  TempDir dir;
  const std::string pass = dir.write("pass", "pw\n");
  const std::string plan = R"(dr_plans:
  - name: db-drill
    plan_type: warm_site
    rto: {value: 1, unit: hours}
    rpo: {value: 15, unit: minutes}
    approval: {required: false}
    steps:
      - name: pg
        restore_postgres: {policy: db, port: 5499}
      - name: rows
        depends_on: [pg]
        sql: "select count(*) from t"
        conninfo: "${pg.conninfo} user=postgres dbname=app"
        expect: ">= 1000"
      - name: dns
        depends_on: [rows]
        switch: {command: "echo switch", kind: dns}
)";
  auto c = check_config(head(pass) + plan, "haven.yaml", env_of({}));
  ASSERT_TRUE(c.ok()) << lines_of(c.diagnostics).front();
  const DrPlan& p = c.value.dr_plans[0];
  EXPECT_FALSE(p.approval_required);
  EXPECT_EQ(p.steps[0].kind, PlanStep::Kind::kRestorePostgres);
  EXPECT_EQ(p.steps[0].port, 5499);
  ASSERT_TRUE(p.steps[1].check.has_value());
  EXPECT_EQ(p.steps[1].check->expect, ">= 1000");
  EXPECT_EQ(p.steps[2].kind, PlanStep::Kind::kSwitch);
  nlohmann::json j = p;
  auto back = check_plan_json(j, c.value.policies);
  ASSERT_TRUE(back.ok()) << lines_of(back.diagnostics).front() << "\n" << j.dump(1);
  EXPECT_EQ(back.value, p);
  // A password in a conninfo is refused and never quoted.
  std::string msg = first_problem(pass, edit(plan, "user=postgres", "password=hunter2 user=postgres"));
  EXPECT_NE(msg.find("holds a password"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("hunter2"), std::string::npos) << msg;
}

}  // namespace
}  // namespace haven::config

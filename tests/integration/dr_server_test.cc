// Disaster recovery through `haven server` (real HTTP on loopback): a drill started over the
// API restores a policy's backup into a sandbox, serves it with a small HTTP service, validates
// it and is recorded with its RTO, RPO and report; a real recovery waits for a second
// principal (the one who asked cannot approve it), runs once approved, and everything is in
// the audit log; a plan posted with a cycle is refused, naming it.
#include <httplib.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "integration/server_process.h"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"

namespace haven {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

class DrServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/haven-dr-server-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    write_file(dir_ + "/pass", "dr-pw\n");
    make_dir(dir_ + "/src");
    write_file(dir_ + "/src/index.html", "recovered page\n");
    write_file(dir_ + "/src/b.bin", random_bytes(200000, 3));
    RunResult init = run_haven({"init", "--repo", dir_ + "/repo", "--password-file", dir_ + "/pass"});
    ASSERT_EQ(init.code, 0) << describe(init);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string config() {
    const std::string path = dir_ + "/haven.yaml";
    write_file(path,
               "server: {catalog: " + dir_ + "/catalog.db}\n"
               "locations:\n"
               "  - {name: local, repository: " + dir_ + "/repo, password_file: " + dir_ + "/pass}\n"
               "policies:\n"
               "  - {name: site, resource_type: files, sources: [" + dir_ + "/src], location: local, schedules: []}\n"
               "dr_plans:\n"
               "  - name: site-drill\n"
               "    rto: {value: 5, unit: minutes}\n"
               "    rpo: {value: 1, unit: days}\n"
               "    test_frequency_days: 0\n"
               "    steps:\n"
               "      - name: restore\n"
               "        restore_files: {policy: site}\n"
               "      - name: serve\n"
               "        depends_on: [restore]\n"
               "        command: \"exec python3 -m http.server ${port} --bind 127.0.0.1 --directory ${restore.path}/src\"\n"
               "        wait: {http: \"http://127.0.0.1:${port}/\", timeout: 30}\n"
               "    validation:\n"
               "      - name: page\n"
               "        checks:\n"
               "          - {http: \"http://127.0.0.1:${serve.port}/index.html\", expect_body: recovered page}\n"
               "          - {checksum: restore}\n"
               "        timeout: 30\n"
               "  - name: site-recovery\n"
               "    rto: {value: 5, unit: minutes}\n"
               "    rpo: {value: 1, unit: days}\n"
               "    test_frequency_days: 0\n"
               "    steps:\n"
               "      - name: restore\n"
               "        restore_files: {policy: site, target: " + dir_ + "/recovered}\n"
               "      - name: check\n"
               "        depends_on: [restore]\n"
               "        checksum: restore\n");
    return path;
  }

  std::string token(const std::string& cfg, const std::string& name, const std::string& role) {
    RunResult t = run_haven({"server", "token", "create", "--config", cfg, "--name", name, "--role", role});
    EXPECT_EQ(t.code, 0) << describe(t);
    return t.out.substr(0, t.out.find('\n'));
  }

  std::string dir_;
};

TEST_F(DrServerTest, DrillsRealRecoveriesWithApprovalReportsAndAudit) {
  const std::string cfg = config();
  const std::string admin = token(cfg, "admin", "admin");
  const std::string alice = token(cfg, "alice", "operator");
  const std::string bob = token(cfg, "bob", "operator");
  ServerProcess srv(cfg, dir_ + "/server.log");
  ASSERT_NE(srv.port(), 0) << srv.log();
  httplib::Client http("127.0.0.1", srv.port());
  auto as = [](const std::string& tok) { return httplib::Headers{{"Authorization", "Bearer " + tok}}; };
  auto call = [&](const std::string& method, const std::string& path, const std::string& tok,
                  const std::string& body, int expect) {
    auto r = method == "GET" ? http.Get(path, as(tok)) : http.Post(path, as(tok), body, "application/json");
    EXPECT_TRUE(r && r->status == expect) << method << " " << path << ": "
                                          << (r ? std::to_string(r->status) + " " + r->body : "no response");
    return r ? json::parse(r->body, nullptr, false) : json();
  };
  auto wait_done = [&](const std::string& id) {
    json e;
    for (int i = 0; i < 600; i++) {
      e = call("GET", "/api/disaster-recovery/executions/" + id + "/status", admin, "", 200);
      const std::string s = e.value("status", "");
      if (s != "running" && s != "pending") break;
      std::this_thread::sleep_for(100ms);
    }
    return e;
  };
  // A backup of the policy, through the API.
  const std::string policy = call("GET", "/api/backup/policies", admin, "", 200)["policies"][0]["id"];
  json b = call("POST", "/api/backup/execute/" + policy, alice, "{}", 202);
  for (int i = 0; i < 300; i++) {
    std::string s = call("GET", "/api/backup/executions/" + b["id"].get<std::string>(), admin, "", 200)["status"];
    if (s == "completed") break;
    std::this_thread::sleep_for(100ms);
  }

  // A drill.
  json plans = call("GET", "/api/disaster-recovery/plans", admin, "", 200);
  ASSERT_EQ(plans["plans"].size(), 2u);
  json d = call("POST", "/api/disaster-recovery/execute/site-drill", alice,
                R"({"executionType": "drill", "triggerReason": "quarterly"})", 202);
  ASSERT_TRUE(d.contains("id")) << d.dump();
  // One run per plan at a time.
  call("POST", "/api/disaster-recovery/execute/site-drill", alice, R"({"executionType": "drill"})", 409);
  json done = wait_done(d["id"]);
  EXPECT_EQ(done["status"], "completed") << done.dump(1);
  EXPECT_EQ(done["success_criteria_met"], true) << done.dump(1);
  EXPECT_TRUE(done["actual_rto_seconds"].is_number());
  EXPECT_TRUE(done["actual_rpo_seconds"].is_number());
  EXPECT_EQ(done["executed_steps"].size(), 2u);
  auto rep = http.Get("/api/disaster-recovery/executions/" + d["id"].get<std::string>() + "/report", as(admin));
  ASSERT_TRUE(rep && rep->status == 200);
  EXPECT_NE(rep->get_header_value("Content-Type").find("text/markdown"), std::string::npos);
  EXPECT_NE(rep->body.find("- [x] RTO met"), std::string::npos) << rep->body;
  rep = http.Get("/api/disaster-recovery/executions/" + d["id"].get<std::string>() + "/report?format=html", as(admin));
  ASSERT_TRUE(rep && rep->status == 200);
  EXPECT_NE(rep->body.find("<ul id=\"checklist\">"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(dir_ + "/drills")) << "the drill's sandbox was left";

  // A real recovery: needs a reason, then waits for someone other than alice.
  call("POST", "/api/disaster-recovery/execute/site-recovery", alice,
       R"({"executionType": "disaster_recovery"})", 400);
  json real = call("POST", "/api/disaster-recovery/execute/site-recovery", alice,
                   R"({"executionType": "disaster_recovery", "triggerReason": "primary disk lost"})", 202);
  EXPECT_EQ(real["approval_status"], "pending");
  EXPECT_EQ(real["status"], "pending");
  const std::string rid = real["id"];
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(fs::exists(dir_ + "/recovered")) << "a real recovery ran without approval";
  call("POST", "/api/disaster-recovery/executions/" + rid + "/approve", alice, "{}", 403);
  json approved = call("POST", "/api/disaster-recovery/executions/" + rid + "/approve", bob, "{}", 200);
  EXPECT_EQ(approved["approved_by"], "token:bob");
  json rdone = wait_done(rid);
  EXPECT_EQ(rdone["status"], "completed") << rdone.dump(1);
  EXPECT_EQ(rdone["execution_type"], "disaster_recovery");
  EXPECT_EQ(read_file(dir_ + "/recovered/src/index.html"), "recovered page\n");
  // Decided once.
  call("POST", "/api/disaster-recovery/executions/" + rid + "/reject", admin, "{}", 409);

  // Everything is in the audit log.
  json audit = call("GET", "/api/audit", admin, "", 200);
  std::string actions;
  for (const auto& a : audit["records"]) actions += a.value("action", "") + "/" + a.value("actor", "") + " ";
  EXPECT_NE(actions.find("dr.execute/token:alice"), std::string::npos) << actions;
  EXPECT_NE(actions.find("dr.approve/token:bob"), std::string::npos) << actions;

  // A plan with a cycle is refused, named.
  auto bad = http.Post("/api/disaster-recovery/plans", as(admin),
                       R"({"name": "loop", "rto": {"value": 1, "unit": "hours"}, "rpo": {"value": 1, "unit": "hours"},
                           "steps": [{"name": "a", "dependsOn": ["b"], "command": "true"},
                                     {"name": "b", "dependsOn": ["a"], "command": "true"}]})",
                       "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_TRUE(bad->body.find("a → b → a") != std::string::npos || bad->body.find("b → a → b") != std::string::npos)
      << bad->body;
  // A good one is stored, and listed.
  auto good = http.Post("/api/disaster-recovery/plans", as(admin),
                        R"({"name": "api-plan", "rto": {"value": 1, "unit": "hours"}, "rpo": {"value": 1, "unit": "hours"},
                            "steps": [{"name": "a", "command": "true"}]})",
                        "application/json");
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 201) << good->body;
  EXPECT_EQ(call("GET", "/api/disaster-recovery/plans", admin, "", 200)["plans"].size(), 3u);
}

}  // namespace
}  // namespace haven

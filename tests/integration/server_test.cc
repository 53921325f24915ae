// `haven server` over real HTTP on loopback, as a separate process: tokens and roles on every
// route of the OpenAPI document, a policy created, run and restored over the API, SIGKILL in
// the middle of a backup, catch-up after downtime, a schedule firing on time twice, reloads and
// bad configurations.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <httplib.h>
#include <sqlite3.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <regex>
#include <thread>

#include "catalog/catalog.h"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"
#include "util/subprocess.h"
#include "integration/server_process.h"

namespace haven {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/haven-server-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    write_file(dir_ + "/pass", "server-test-pw\n");
    make_dir(dir_ + "/src");
    write_file(dir_ + "/src/a.txt", "alpha\n");
    write_file(dir_ + "/src/b.bin", random_bytes(200 << 10, 3));
    RunResult init = run_haven({"init", "--repo", dir_ + "/repo", "--password-file", dir_ + "/pass"});
    ASSERT_EQ(init.code, 0) << describe(init);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string write_config(const std::string& policies, const std::string& server_extra = "") {
    std::string path = dir_ + "/haven.yaml";
    write_file(path, "server:\n  listen: 127.0.0.1:8420\n  catalog: " + dir_ + "/catalog.db\n" +
                         server_extra + "locations:\n  - name: local\n    storage_type: on_premise\n"
                         "    repository: " + dir_ + "/repo\n    password_file: " + dir_ +
                         "/pass\n    primary_region: eu-west-1\npolicies:\n" + policies);
    return path;
  }
  std::string token(const std::string& name, const std::string& role) {
    RunResult r = run_haven({"server", "token", "create", "--config", dir_ + "/haven.yaml", "--name", name, "--role", role});
    EXPECT_EQ(r.code, 0) << describe(r);
    std::string t = r.out.substr(0, r.out.find('\n'));
    EXPECT_EQ(t.size(), 68u);
    EXPECT_EQ(r.err.find(t), std::string::npos) << "the token reached stderr";
    return t;
  }
  static httplib::Headers bearer(const std::string& t) { return {{"Authorization", "Bearer " + t}}; }

  json get(httplib::Client& c, const std::string& path, const std::string& tok, int expect = 200) {
    auto r = c.Get(path, bearer(tok));
    EXPECT_TRUE(r) << path;
    if (!r) return json();
    EXPECT_EQ(r->status, expect) << path << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }
  json post(httplib::Client& c, const std::string& path, const std::string& tok, const json& body,
            int expect) {
    auto r = c.Post(path, bearer(tok), body.dump(), "application/json");
    EXPECT_TRUE(r) << path;
    if (!r) return json();
    EXPECT_EQ(r->status, expect) << path << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }
  json wait_execution(httplib::Client& c, const std::string& id, const std::string& tok) {
    for (int i = 0; i < 1500; ++i) {
      json e = get(c, "/api/backup/executions/" + id, tok);
      std::string s = e.value("status", "");
      if (s != "pending" && s != "running") return e;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "execution " << id << " did not end";
    return json();
  }

  std::string dir_;
};

std::string files_policy(const std::string& name, const std::string& src, const std::string& extra = "") {
  return "  - name: " + name + "\n    resource_type: files\n    sources: [" + src +
         "]\n    location: local\n" + extra;
}

TEST_F(ServerTest, EveryRouteRefusesWithoutATokenAndWithTooSmallARole) {
  write_config(files_policy("docs", dir_ + "/src", "    schedules: []\n"));
  std::string viewer = token("v", "viewer"), op = token("o", "operator"), admin = token("a", "admin");
  ServerProcess srv(dir_ + "/haven.yaml", dir_ + "/server.log");
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client c("127.0.0.1", srv.port());
  json doc = get(c, "/api/openapi.json", viewer);
  ASSERT_TRUE(doc.contains("paths"));
  const std::map<std::string, int> rank = {{"viewer", 0}, {"operator", 1}, {"admin", 2}};
  const std::vector<std::pair<std::string, std::string>> tokens = {{"viewer", viewer}, {"operator", op}, {"admin", admin}};
  int checked = 0;
  for (const auto& [path_tmpl, methods] : doc["paths"].items()) {
    std::string path = std::regex_replace(path_tmpl, std::regex(R"(\{[^}]+\})"), "no-such-id");
    for (const auto& [method, spec] : methods.items()) {
      std::string role = spec["x-haven-role"];
      auto call = [&](const httplib::Headers& h) {
        if (method == "get") return c.Get(path, h);
        if (method == "delete") return c.Delete(path, h);
        if (method == "put") return c.Put(path, h, "{}", "application/json");
        return c.Post(path, h, "{}", "application/json");
      };
      if (role == "none") {
        auto r = call({});
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200) << method << " " << path;
        continue;
      }
      if (path == "/api/events") continue;  // a stream: checked below without waiting on it
      auto none = call({});
      ASSERT_TRUE(none);
      EXPECT_EQ(none->status, 401) << method << " " << path;
      auto bad = call(bearer("hvn_" + std::string(64, '0')));
      EXPECT_EQ(bad->status, 401) << method << " " << path;
      for (const auto& [name, tok] : tokens) {
        auto r = call(bearer(tok));
        ASSERT_TRUE(r);
        if (rank.at(name) < rank.at(role)) {
          EXPECT_EQ(r->status, 403) << method << " " << path << " as " << name;
        } else {
          EXPECT_NE(r->status, 401) << method << " " << path << " as " << name;
          EXPECT_NE(r->status, 403) << method << " " << path << " as " << name;
        }
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 12);
  auto ev = c.Get("/api/events");
  EXPECT_EQ(ev->status, 401);
  // A revoked token stops working at once.
  RunResult rv = run_haven({"server", "token", "revoke", "--config", dir_ + "/haven.yaml", "--name", "v"});
  ASSERT_EQ(rv.code, 0) << describe(rv);
  EXPECT_EQ(c.Get("/api/backup/policies", bearer(viewer))->status, 401);
}

TEST_F(ServerTest, APolicyCreatedOverTheApiRunsAndItsBackupIsRestored) {
  write_config("  []\n");
  std::string admin = token("a", "admin");
  ServerProcess srv(dir_ + "/haven.yaml", dir_ + "/server.log");
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client c("127.0.0.1", srv.port());
  json policy = {{"name", "api-docs"}, {"resourceType", "files"}, {"sources", {dir_ + "/src"}},
                 {"location", "local"}, {"schedules", json::array()}};
  json created = post(c, "/api/backup/policies", admin, policy, 201);
  EXPECT_EQ(created["source"], "api");
  // The same name again: 409; a bad field: 400 naming it.
  post(c, "/api/backup/policies", admin, policy, 409);
  json bad = policy;
  bad["name"] = "other";
  bad["retention"] = {{"daily", "seven"}};
  json err = post(c, "/api/backup/policies", admin, bad, 400);
  EXPECT_EQ(err["error"]["field"], "retention.daily") << err.dump();

  json e = post(c, "/api/backup/execute/api-docs", admin, {{"backupType", "full"}}, 202);
  json done = wait_execution(c, e["id"], admin);
  ASSERT_EQ(done["status"], "completed") << done.dump();
  EXPECT_EQ(done["backup_type"], "full");
  EXPECT_EQ(done["files_backed_up"], 2);
  EXPECT_EQ(done["integrity_check_status"], "passed");
  json list = get(c, "/api/backup/executions?policyId=api-docs&status=completed", admin);
  ASSERT_EQ(list["executions"].size(), 1u);
  EXPECT_EQ(get(c, "/api/backup/executions?status=bogus", admin, 400)["error"]["field"], "status");
  EXPECT_EQ(get(c, "/api/backup/executions/nope", admin, 404)["error"]["code"], "not_found");

  json r = post(c, "/api/restore/request", admin,
                {{"restoreType", "full_restore"}, {"sourceBackupId", done["execution_id"]},
                 {"targetLocation", dir_ + "/restored"}}, 202);
  json status;
  for (int i = 0; i < 500; ++i) {
    status = get(c, "/api/restore/operations/" + r["request_id"].get<std::string>() + "/status", admin);
    if (status["status"] != "pending" && status["status"] != "running") break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(status["status"], "completed") << status.dump();
  EXPECT_TRUE(status["integrity_validated"].get<bool>());
  expect_same_tree(dir_ + "/src", dir_ + "/restored/src");
  // Validation over the API: the target compared with the snapshot, then again after a
  // restored file was changed.
  const std::string rid = r["request_id"];
  auto validate = [&] {
    json v = post(c, "/api/restore/operations/" + rid + "/validate", admin, json::object(), 202);
    EXPECT_EQ(v["validation_results"]["validation"]["state"], "running") << v.dump();
    json s;
    for (int i = 0; i < 500; ++i) {
      s = get(c, "/api/restore/operations/" + rid + "/status", admin);
      if (s["validation_results"]["validation"].value("state", "") != "running") break;
      std::this_thread::sleep_for(20ms);
    }
    return s;
  };
  json valid = validate();
  EXPECT_EQ(valid["validation_results"]["validation"]["state"], "completed") << valid.dump();
  EXPECT_EQ(valid["validation_results"]["validation"]["matched"], 3) << valid.dump();  // src and its two files
  EXPECT_EQ(valid["validation_results"]["files"], 2) << valid.dump();  // the restore's own summary
  EXPECT_TRUE(valid["integrity_validated"].get<bool>());
  write_file(dir_ + "/restored/src/a.txt", "tampered\n");
  json tampered = validate();
  EXPECT_FALSE(tampered["integrity_validated"].get<bool>()) << tampered.dump();
  EXPECT_EQ(tampered["validation_results"]["validation"]["differences"][0]["path"], "src/a.txt") << tampered.dump();
  EXPECT_EQ(post(c, "/api/restore/operations/nope/validate", admin, json::object(), 404)["error"]["code"], "not_found");
  json snaps = get(c, "/api/snapshots", admin);
  ASSERT_EQ(snaps["snapshots"].size(), 1u);
  EXPECT_EQ(snaps["snapshots"][0]["id"], done["snapshot_id"]);

  // The events of the run, replayed from the start, in order and without a gap.
  httplib::Client sse("127.0.0.1", srv.port());
  sse.set_read_timeout(2, 0);
  std::string stream;
  sse.Get("/api/events", {{"Authorization", "Bearer " + admin}, {"Last-Event-ID", "0"}},
          [&](const char* data, size_t n) {
            stream.append(data, n);
            return stream.find("restore:completed") == std::string::npos;
          });
  EXPECT_NE(stream.find("event: backup:started"), std::string::npos);
  EXPECT_NE(stream.find("event: backup:completed"), std::string::npos);
  EXPECT_NE(stream.find("\"operation_id\":\"" + done["execution_id"].get<std::string>() + "\""), std::string::npos);
  std::vector<long> ids;
  std::regex id_re("(^|\n)id: ([0-9]+)\n");
  for (auto it = std::sregex_iterator(stream.begin(), stream.end(), id_re); it != std::sregex_iterator(); ++it) {
    ids.push_back(std::stol((*it)[2]));
  }
  ASSERT_GT(ids.size(), 3u);
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_EQ(ids[i], ids[i - 1] + 1);
  // Resuming after an id gives what follows it.
  std::string resumed;
  sse.Get("/api/events", {{"Authorization", "Bearer " + admin}, {"Last-Event-ID", std::to_string(ids[1])}},
          [&](const char* data, size_t n) {
            resumed.append(data, n);
            return resumed.find("id: ") == std::string::npos || resumed.find("\n\n", resumed.find("id: ")) == std::string::npos;
          });
  EXPECT_NE(resumed.find("id: " + std::to_string(ids[2]) + "\n"), std::string::npos) << resumed.substr(0, 300);
}

TEST_F(ServerTest, ASigkilledServerMarksTheRunInterruptedOnRestartAndTheNextRunSucceeds) {
  // 30 MiB paced at 100 Mbit/s: about 2.5 s, so the kill lands mid-backup however fast the
  // machine is (unpaced, 120 MiB once finished within the 300 ms).
  for (int i = 0; i < 10; ++i) write_file(dir_ + "/src/big" + std::to_string(i), random_bytes(3 << 20, 10 + i));
  write_config(files_policy("big", dir_ + "/src", "    schedules: []\n    bandwidth_limit_mbps: 100\n"));
  std::string admin = token("a", "admin");
  std::string exec_id;
  {
    ServerProcess srv(dir_ + "/haven.yaml", dir_ + "/server.log");
    ASSERT_GT(srv.port(), 0) << srv.log();
    httplib::Client c("127.0.0.1", srv.port());
    json e = post(c, "/api/backup/execute/big", admin, json::object(), 202);
    exec_id = e["id"];
    for (int i = 0; i < 500 && get(c, "/api/backup/executions/" + exec_id, admin)["status"] != "running"; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    std::this_thread::sleep_for(300ms);  // in the middle of writing packs
    srv.signal(SIGKILL);
    EXPECT_EQ(srv.wait(), 128 + SIGKILL);
  }
  auto t0 = std::chrono::steady_clock::now();
  ServerProcess srv(dir_ + "/haven.yaml", dir_ + "/server2.log");
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client c("127.0.0.1", srv.port());
  json e = get(c, "/api/backup/executions/" + exec_id, admin);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_EQ(e["status"], "interrupted") << e.dump();
  EXPECT_NE(e["error_message"].get<std::string>().find("server"), std::string::npos);
  EXPECT_NE(srv.log().find("marked interrupted"), std::string::npos) << srv.log();
  // The repository: the dead server's lock is stale, and a check finds only what prune removes.
  RunResult check = run_haven({"check", "--repo", dir_ + "/repo", "--password-file", dir_ + "/pass"});
  EXPECT_EQ(check.code, 0) << describe(check);
  json next = post(c, "/api/backup/execute/big", admin, json::object(), 202);
  json done = wait_execution(c, next["id"], admin);
  EXPECT_EQ(done["status"], "completed") << done.dump();
}

TEST_F(ServerTest, CatchUpAfterDowntimeRunsOnceAndSigtermStopsCleanly) {
  write_config(files_policy("nightly", dir_ + "/src", "    schedules: [{cron: \"0 3 * * *\"}]\n"));
  std::string viewer = token("v", "viewer");
  {
    auto cat = catalog::open_sqlite_catalog(dir_ + "/catalog.db");
    ASSERT_TRUE(cat.ok());
  }
  {
    ServerProcess srv(dir_ + "/haven.yaml", dir_ + "/server.log");
    ASSERT_GT(srv.port(), 0) << srv.log();
    srv.signal(SIGTERM);
    EXPECT_EQ(srv.wait(), 0) << srv.log();
  }
  // The server was down while three nightly runs were due.
  {
    auto cat = catalog::open_sqlite_catalog(dir_ + "/catalog.db");
    ASSERT_TRUE(cat.ok());
    auto p = (*cat)->get_policy_by_name("nightly");
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE(p->next_execution.has_value()) << "the scheduler recorded no next run";
    ASSERT_TRUE((*cat)->set_policy_schedule_times(p->id, std::nullopt, now() - 3 * 86400'000'000'000LL).ok());
    // An event older than events_retention_days (90 by default) is pruned at start.
    catalog::EventRow old;
    old.kind = "test:ancient";
    old.time = now() - 100 * 86400'000'000'000LL;
    ASSERT_TRUE((*cat)->append_event(old).ok());
  }
  ServerProcess srv(dir_ + "/haven.yaml", dir_ + "/server2.log");
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client c("127.0.0.1", srv.port());
  json list;
  for (int i = 0; i < 500; ++i) {
    list = get(c, "/api/backup/executions?policyId=nightly", viewer);
    if (!list["executions"].empty() && list["executions"][0]["status"] == "completed") break;
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(300ms);
  list = get(c, "/api/backup/executions?policyId=nightly", viewer);
  ASSERT_EQ(list["executions"].size(), 1u) << list.dump();
  EXPECT_EQ(list["executions"][0]["trigger"], "catch_up");
  {
    auto cat = catalog::open_sqlite_catalog(dir_ + "/catalog.db");
    ASSERT_TRUE(cat.ok());
    auto events = (*cat)->events_after(0, 10000);
    ASSERT_TRUE(events.ok());
    bool server_started = false;
    for (const auto& e : *events) {
      EXPECT_NE(e.kind, "test:ancient") << "an event past the retention was kept";
      server_started |= e.kind == "server:started";
    }
    EXPECT_TRUE(server_started);
  }
  EXPECT_EQ(list["executions"][0]["status"], "completed");
}

TEST_F(ServerTest, BadConfigurationsAreRefusedAndAFailedReloadKeepsTheRunningOne) {
  write_config(files_policy("docs", dir_ + "/src", "    schedules: [{cron: \"0 25 * * *\"}]\n"));
  RunResult check = run_haven({"config", "check", "--config", dir_ + "/haven.yaml"});
  EXPECT_EQ(check.code, 2);
  EXPECT_NE(check.err.find("haven.yaml:15:"), std::string::npos) << check.err;
  EXPECT_NE(check.err.find("policies[0].schedules[0].cron"), std::string::npos) << check.err;
  EXPECT_NE(check.err.find("hour field '25': must be 0-23"), std::string::npos) << check.err;
  RunResult refused = run_haven({"server", "--config", dir_ + "/haven.yaml", "--port", "0"}, {.timeout_ms = 10000});
  EXPECT_EQ(refused.code, 2) << describe(refused);
  EXPECT_NE(refused.err.find("hour field '25'"), std::string::npos) << describe(refused);
  EXPECT_FALSE(exists(dir_ + "/catalog.db")) << "a refused start created the catalog";

  write_config(files_policy("docs", dir_ + "/src", "    schedules: []\n"));
  std::string viewer = token("v", "viewer");
  ServerProcess srv(dir_ + "/haven.yaml", dir_ + "/server.log");
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client c("127.0.0.1", srv.port());
  write_config(files_policy("docs", dir_ + "/src", "    schedules: []\n") +
               files_policy("more", dir_ + "/src", "    schedules: []\n    compression: medum\n"));
  srv.signal(SIGHUP);
  for (int i = 0; i < 200 && srv.log().find("reload failed") == std::string::npos; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_NE(srv.log().find("did you mean 'medium'?"), std::string::npos) << srv.log();
  EXPECT_EQ(get(c, "/api/backup/policies", viewer)["policies"].size(), 1u);
  write_config(files_policy("docs", dir_ + "/src", "    schedules: []\n") +
               files_policy("more", dir_ + "/src", "    schedules: []\n"));
  srv.signal(SIGHUP);
  for (int i = 0; i < 200 && srv.log().find("configuration reloaded") == std::string::npos; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(get(c, "/api/backup/policies", viewer)["policies"].size(), 2u) << srv.log();

  // The same over the API (admin only): refused with the file's problem, nothing changed...
  std::string admin = token("a", "admin");
  write_config(files_policy("docs", dir_ + "/src", "    schedules: []\n") +
               files_policy("more", dir_ + "/src", "    schedules: []\n") +
               files_policy("third", dir_ + "/src", "    schedules: []\n    retention: {daily: seven}\n"));
  post(c, "/api/server/reload", viewer, json::object(), 403);
  json err = post(c, "/api/server/reload", admin, json::object(), 400);
  EXPECT_NE(err["error"]["message"].get<std::string>().find("policies[2].retention.daily"), std::string::npos) << err.dump();
  EXPECT_EQ(get(c, "/api/backup/policies", viewer)["policies"].size(), 2u);
  // ...and taken once the file is right.
  write_config(files_policy("docs", dir_ + "/src", "    schedules: []\n") +
               files_policy("more", dir_ + "/src", "    schedules: []\n") +
               files_policy("third", dir_ + "/src", "    schedules: []\n    retention: {daily: 7}\n"));
  json ok = post(c, "/api/server/reload", admin, json::object(), 200);
  EXPECT_EQ(ok["policies"], 3) << ok.dump();
  EXPECT_EQ(get(c, "/api/backup/policies", viewer)["policies"].size(), 3u);
}

TEST_F(ServerTest, TokensAreCreatedListedAndRevokedOverTheApi) {
  write_config(files_policy("docs", dir_ + "/src", "    schedules: []\n"));
  std::string admin = token("a", "admin"), viewer = token("v", "viewer");
  ServerProcess srv(dir_ + "/haven.yaml", dir_ + "/server.log");
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client c("127.0.0.1", srv.port());
  post(c, "/api/tokens", viewer, {{"name", "x"}, {"role", "viewer"}}, 403);
  EXPECT_EQ(post(c, "/api/tokens", admin, {{"name", "ci"}, {"role", "boss"}}, 400)["error"]["field"], "role");
  EXPECT_EQ(post(c, "/api/tokens", admin, {{"role", "viewer"}}, 400)["error"]["field"], "name");
  EXPECT_EQ(post(c, "/api/tokens", admin, {{"name", "ci"}, {"role", 3}}, 400)["error"]["field"], "role");
  json made = post(c, "/api/tokens", admin, {{"name", "ci"}, {"role", "operator"}}, 201);
  const std::string tok = made["token"];
  EXPECT_EQ(tok.rfind("hvn_", 0), 0u);
  EXPECT_EQ(made["role"], "operator");
  post(c, "/api/tokens", admin, {{"name", "ci"}, {"role", "viewer"}}, 409);
  // The new token works at once with its role; the list never shows a value.
  EXPECT_EQ(get(c, "/api/backup/executions", tok)["executions"].size(), 0u);
  post(c, "/api/tokens", tok, {{"name", "y"}, {"role", "viewer"}}, 403);
  json list = get(c, "/api/tokens", admin);
  ASSERT_EQ(list["tokens"].size(), 3u);
  int seen = 0;
  for (const auto& t : list["tokens"]) {
    if (t["name"] != "ci") continue;
    ++seen;
    EXPECT_FALSE(t["last_used_at"].is_null()) << t.dump();  // used above
  }
  EXPECT_EQ(seen, 1) << list.dump();
  EXPECT_EQ(list.dump().find(tok), std::string::npos);
  EXPECT_EQ(list.dump().find("hash"), std::string::npos);
  // Revoked: refused at once; revoking again is 404; the CLI sees the same catalog.
  EXPECT_EQ(c.Delete("/api/tokens/ci", bearer(admin))->status, 200);
  EXPECT_EQ(c.Get("/api/backup/executions", bearer(tok))->status, 401);
  EXPECT_EQ(c.Delete("/api/tokens/ci", bearer(admin))->status, 404);
  RunResult cli = run_haven({"server", "token", "list", "--config", dir_ + "/haven.yaml"});
  ASSERT_EQ(cli.code, 0) << describe(cli);
  EXPECT_NE(cli.out.find("ci\toperator"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("revoked"), std::string::npos) << cli.out;
  // No token value reached the server's log.
  EXPECT_EQ(srv.log().find(tok), std::string::npos);
}

// borgmatic users expect to run a policy from the command line: recorded like a server's run.
TEST_F(ServerTest, BackupWithConfigAndPolicyRunsThePolicyOnceAndRecordsIt) {
  write_config(files_policy("docs", dir_ + "/src", "    schedules: []\n    retention: {last: 1}\n"));
  RunResult a = run_haven({"backup", "--config", dir_ + "/haven.yaml", "--policy", "docs"});
  ASSERT_EQ(a.code, 0) << describe(a);
  EXPECT_NE(a.out.find("policy 'docs': run exec-"), std::string::npos) << a.out;
  write_file(dir_ + "/src/a.txt", "changed\n");
  RunResult b = run_haven({"backup", "--config", dir_ + "/haven.yaml", "--policy", "docs"});
  ASSERT_EQ(b.code, 0) << describe(b);
  auto cat = catalog::open_sqlite_catalog(dir_ + "/catalog.db");
  ASSERT_TRUE(cat.ok());
  catalog::ExecutionQuery q;
  auto page = (*cat)->query_executions(q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->rows.size(), 2u);
  for (const auto& e : page->rows) {
    EXPECT_EQ(e.trigger, catalog::Trigger::kCli);
    EXPECT_EQ(e.status, catalog::ExecStatus::kCompleted);
  }
  // Its retention ran too: one snapshot kept, the newest.
  RunResult ls = run_haven({"snapshots", "--json", "--repo", dir_ + "/repo", "--password-file", dir_ + "/pass"});
  ASSERT_EQ(ls.code, 0) << describe(ls);
  nlohmann::json snaps = nlohmann::json::parse(ls.out);
  ASSERT_EQ(snaps.size(), 1u) << snaps.dump();
  EXPECT_EQ(snaps[0]["id"], *page->rows[0].snapshot_id);

  RunResult unknown = run_haven({"backup", "--config", dir_ + "/haven.yaml", "--policy", "nope"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("has no policy 'nope' (it has: docs)"), std::string::npos) << unknown.err;
  RunResult both = run_haven({"backup", "--config", dir_ + "/haven.yaml", "--policy", "docs", dir_ + "/src"});
  EXPECT_EQ(both.code, 2);
}

// server.memory_limit_mib leaves a job less than the location's password needs for Argon2id
// (the fixture's repository: 64 MiB): the run is refused before deriving, saying what to do,
// and stores no snapshot; a limit that leaves room runs it.
TEST_F(ServerTest, AMemoryLimitTooSmallForThePasswordsKeyDerivationIsRefusedWithTheFix) {
  const std::string policy = files_policy("docs", dir_ + "/src", "    schedules: []\n    retention: {last: 1}\n");
  write_config(policy, "  max_parallel_jobs: 1\n  memory_limit_mib: 48\n");
  RunResult small = run_haven({"backup", "--config", dir_ + "/haven.yaml", "--policy", "docs"});
  EXPECT_NE(small.code, 0) << describe(small);
  EXPECT_NE((small.out + small.err).find("the memory limit leaves 28 MiB for deriving the key"), std::string::npos)
      << describe(small);
  EXPECT_NE((small.out + small.err).find("access key"), std::string::npos) << describe(small);
  RunResult none = run_haven({"snapshots", "--json", "--repo", dir_ + "/repo", "--password-file", dir_ + "/pass"});
  ASSERT_EQ(none.code, 0) << describe(none);
  EXPECT_EQ(json::parse(none.out).size(), 0u);

  write_config(policy, "  max_parallel_jobs: 1\n  memory_limit_mib: 96\n");
  RunResult room = run_haven({"backup", "--config", dir_ + "/haven.yaml", "--policy", "docs"});
  EXPECT_EQ(room.code, 0) << describe(room);
}

// The real thing, in real time: a policy scheduled every minute runs on time twice (this test
// waits up to two minutes and a half; the others run beside it).
TEST_F(ServerTest, APolicyScheduledEveryMinuteRunsOnTimeTwice) {
  write_config(files_policy("minutely", dir_ + "/src", "    schedules: [{cron: \"* * * * *\", timezone: Europe/Berlin}]\n"));
  std::string viewer = token("v", "viewer");
  ServerProcess srv(dir_ + "/haven.yaml", dir_ + "/server.log");
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client c("127.0.0.1", srv.port());
  json list;
  auto deadline = std::chrono::steady_clock::now() + 150s;
  while (std::chrono::steady_clock::now() < deadline) {
    list = get(c, "/api/backup/executions?policyId=minutely&status=completed", viewer);
    if (list["executions"].size() >= 2) break;
    std::this_thread::sleep_for(500ms);
  }
  ASSERT_GE(list["executions"].size(), 2u) << list.dump() << srv.log();
  std::vector<TimeNs> planned;
  for (const auto& e : list["executions"]) {
    EXPECT_EQ(e["trigger"], "schedule");
    TimeNs at = *parse_time(e["scheduled_for"].get<std::string>());
    TimeNs created = *parse_time(e["created_at"].get<std::string>());
    EXPECT_EQ(at % 60'000'000'000LL, 0) << "not on a minute";
    EXPECT_GE(created, at);
    EXPECT_LT(created - at, 1'000'000'000LL) << "fired more than a second late";
    planned.push_back(at);
  }
  EXPECT_EQ(planned[0] - planned[1], 60'000'000'000LL);  // newest first: consecutive minutes
  // The scheduler exports its fire delays and its plan.
  json sched = get(c, "/api/scheduler", viewer);
  EXPECT_GE(sched["fires"].get<int>(), 2) << sched.dump();
  EXPECT_LT(sched["fire_delay_ms"]["p99"].get<double>(), 1000.0) << sched.dump();
  EXPECT_GE(sched["fire_delay_ms"]["max"].get<double>(), sched["fire_delay_ms"]["p50"].get<double>());
  ASSERT_EQ(sched["plan"].size(), 1u) << sched.dump();
  EXPECT_EQ(sched["plan"][0]["policy_name"], "minutely");
  EXPECT_GT(*parse_time(sched["plan"][0]["at"].get<std::string>()), planned[0]);
}

namespace monitoring {

// A webhook receiver on loopback: every POST body, in order.
class Receiver {
 public:
  Receiver() {
    srv_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> g(mu_);
      bodies_.push_back(json::parse(req.body, nullptr, false));
      res.status = 200;
    });
    port_ = srv_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { srv_.listen_after_bind(); });
  }
  ~Receiver() {
    srv_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<json> bodies() {
    std::lock_guard<std::mutex> g(mu_);
    return bodies_;
  }
  // Waits up to 20 s for `n` bodies.
  std::vector<json> wait_for(size_t n) {
    for (int i = 0; i < 2000 && bodies().size() < n; ++i) std::this_thread::sleep_for(10ms);
    return bodies();
  }

 private:
  httplib::Server srv_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<json> bodies_;
  int port_ = 0;
};

// promtool check metrics on `text`: its exit status and what it printed.
std::pair<int, std::string> promtool(const std::string& dir, const std::string& text) {
  write_file(dir + "/metrics.txt", text);
  int in = ::open((dir + "/metrics.txt").c_str(), O_RDONLY);
  int out = ::open((dir + "/promtool.out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  SpawnOptions o;
  o.argv = {"/usr/bin/promtool", "check", "metrics"};
  o.stdin_fd = in;
  o.stdout_fd = out;
  o.stderr_fd = out;
  auto p = Subprocess::spawn(o);
  ::close(in);
  ::close(out);
  if (!p.ok()) return {-1, p.error().message()};
  auto rc = p->wait(CancelToken());
  return {rc.ok() ? *rc : -1, read_file(dir + "/promtool.out")};
}

// The value of the sample `name{labels}` in a Prometheus exposition.
std::optional<double> sample(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return std::nullopt;
}

}  // namespace monitoring

// Monitoring end to end over real HTTP: an RPO alert raised at start (nothing backed up yet)
// and delivered to a webhook, resolved by a backup (a resolve notice delivered); a failed run's
// alert acknowledged; /metrics passes promtool and agrees with /api/status; refused requests,
// runs and acknowledgements are in the audit log, whose chain verifies, and `haven audit verify`
// names a record changed behind its back; `haven status` shows the policies.
TEST_F(ServerTest, MonitoringAlertsMetricsStatusAndAuditOverHttp) {
  monitoring::Receiver hook;
  write_config(files_policy("docs", dir_ + "/src",
                            "    schedules: []\n    rpo: {value: 1, unit: hours}\n"
                            "    rto: {value: 1, unit: hours}\n") +
                   files_policy("broken", dir_ + "/missing", "    schedules: []\n    retry_count: 0\n") +
                   "monitoring:\n  channels:\n    - {name: hook, type: webhook, url: \"http://127.0.0.1:" +
                   std::to_string(hook.port()) + "/hook\"}\n  monitors:\n"
                   "    - {name: docs-rpo, type: rpo, policy: docs, check_frequency_minutes: 1, channels: [hook]}\n"
                   "    - {name: broken-runs, type: backup_success, policy: broken, check_frequency_minutes: 1}\n");
  std::string admin = token("a", "admin");
  ServerProcess srv(dir_ + "/haven.yaml", dir_ + "/server.log");
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client c("127.0.0.1", srv.port());

  // Nothing backed up: the RPO is unknown and critical; the first pass raises it, the webhook
  // gets one trigger.
  auto got = hook.wait_for(1);
  ASSERT_EQ(got.size(), 1u) << srv.log();
  EXPECT_EQ(got[0]["action"], "trigger");
  EXPECT_EQ(got[0]["kind"], "alert:rpo-critical");
  EXPECT_EQ(got[0]["alert_key"], "docs-rpo");
  EXPECT_EQ(got[0]["severity"], "critical");
  json alerts = get(c, "/api/alerts", admin);
  ASSERT_EQ(alerts["alerts"].size(), 1u) << alerts.dump();
  json first = alerts["alerts"][0];
  EXPECT_EQ(first["notifications"][0]["state"], "delivered") << first.dump();

  // A backup, then the monitor checked at once: resolved, one resolve notice.
  json e = post(c, "/api/backup/execute/docs", admin, json::object(), 202);
  ASSERT_EQ(wait_execution(c, e["id"], admin)["status"], "completed");
  json checked = post(c, "/api/monitors/docs-rpo/check", admin, json::object(), 200);
  EXPECT_EQ(checked["level"], "ok") << checked.dump();
  got = hook.wait_for(2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1]["action"], "resolve");
  EXPECT_EQ(got[1]["alert_key"], "docs-rpo");
  EXPECT_EQ(get(c, "/api/alerts", admin)["alerts"].size(), 0u);

  // A failed run: backup_success warns (one failure); acknowledged over the API, once.
  json b = post(c, "/api/backup/execute/broken", admin, json::object(), 202);
  EXPECT_EQ(wait_execution(c, b["id"], admin)["status"], "failed");
  json bc = post(c, "/api/monitors/broken-runs/check", admin, json::object(), 200);
  EXPECT_EQ(bc["level"], "warning") << bc.dump();
  alerts = get(c, "/api/alerts", admin);
  ASSERT_EQ(alerts["alerts"].size(), 1u) << alerts.dump();
  const std::string alert_id = alerts["alerts"][0]["id"];
  EXPECT_EQ(alerts["alerts"][0]["kind"], "alert:backup-failure");
  json acked = post(c, "/api/alerts/" + alert_id + "/acknowledge", admin, json::object(), 200);
  EXPECT_EQ(acked["state"], "acknowledged");
  EXPECT_EQ(acked["acknowledged_by"], "a");
  post(c, "/api/alerts/" + alert_id + "/acknowledge", admin, json::object(), 409);

  // Monitors over the API: created and replaced by name, checked as haven.yaml's are; those of
  // the file are read-only here.
  json mon = {{"name", "api-rate"}, {"type", "backup_failure_rate"}, {"policy", "broken"},
              {"window", 5}, {"channels", {"hook"}}, {"escalation", {{{"afterMinutes", 30}, {"channels", {"hook"}}}}}};
  auto put = [&](const json& body, int expect) {
    auto r = c.Put("/api/monitors", bearer(admin), body.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return json();
    EXPECT_EQ(r->status, expect) << r->body;
    return json::parse(r->body, nullptr, false);
  };
  json created = put(mon, 201);
  EXPECT_EQ(created["source"], "api");
  EXPECT_EQ(created["resource_filters"]["window"], 5);
  mon["critical"] = 80;
  EXPECT_EQ(put(mon, 200)["critical_threshold"]["value"], 80);
  json rate = post(c, "/api/monitors/api-rate/check", admin, json::object(), 200);
  EXPECT_EQ(rate["level"], "critical") << rate.dump();  // 1 of 1 finished runs failed: 100 %
  got = hook.wait_for(3);  // its trigger, delivered by the server's next pass
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2]["alert_key"], "api-rate");
  EXPECT_EQ(got[2]["action"], "trigger");
  json wrong = mon;
  wrong["channels"] = {"nobody"};
  EXPECT_EQ(put(wrong, 400)["error"]["field"], "channels");
  json clash = mon;
  clash["name"] = "docs-rpo";
  put(clash, 409);
  auto del_file = c.Delete("/api/monitors/docs-rpo", bearer(admin));
  EXPECT_EQ(del_file->status, 409);
  auto del = c.Delete("/api/monitors/api-rate", bearer(admin));
  EXPECT_EQ(del->status, 200) << del->body;
  bool still = false;
  const json monitors = get(c, "/api/monitors", admin);
  for (const auto& m2 : monitors["monitors"]) still |= m2["monitor_name"] == "api-rate";
  EXPECT_FALSE(still);
  // Its alert (the failure rate was critical) is resolved with the monitor, saying why.
  bool resolved = false;
  const json all_alerts = get(c, "/api/alerts?state=all", admin);
  for (const auto& a : all_alerts["alerts"]) {
    if (a["alert_key"] == "api-rate") {
      EXPECT_EQ(a["state"], "resolved") << a.dump();
      EXPECT_EQ(a["details"]["resolved_because"], "monitor deleted") << a.dump();
      resolved = true;
    }
  }
  EXPECT_TRUE(resolved) << all_alerts.dump();
  // The webhook hears that it is over.
  got = hook.wait_for(4);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[3]["alert_key"], "api-rate");
  EXPECT_EQ(got[3]["action"], "resolve");

  // /metrics: valid for promtool, and the numbers /api/status gives.
  auto m = c.Get("/metrics", bearer(admin));
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  EXPECT_NE(m->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  json status = get(c, "/api/status", admin);
  auto [rc, out] = monitoring::promtool(dir_, m->body);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "") << out;
  json docs;
  for (const auto& p : status["policies"]) {
    if (p["name"] == "docs") docs = p;
  }
  ASSERT_TRUE(docs.is_object()) << status.dump();
  EXPECT_EQ(monitoring::sample(m->body, "haven_policy_rpo_target_seconds{policy=\"docs\"}"), 3600.0);
  EXPECT_EQ(docs["rpo"]["target_seconds"], 3600);
  auto rpo = monitoring::sample(m->body, "haven_policy_rpo_seconds{policy=\"docs\"}");
  ASSERT_TRUE(rpo);
  EXPECT_NEAR(*rpo, docs["rpo"]["seconds"].get<double>(), 2.0);
  EXPECT_EQ(monitoring::sample(m->body, "haven_backup_executions{policy=\"docs\",status=\"completed\"}"), 1.0);
  EXPECT_EQ(monitoring::sample(m->body, "haven_backup_executions{policy=\"broken\",status=\"failed\"}"), 1.0);
  EXPECT_EQ(monitoring::sample(m->body, "haven_alerts_open{severity=\"warning\",state=\"acknowledged\"}"), 1.0);
  EXPECT_EQ(monitoring::sample(m->body, "haven_policy_status{policy=\"docs\",level=\"ok\"}"), 1.0);
  EXPECT_EQ(docs["level"], "ok");
  auto last = monitoring::sample(m->body, "haven_policy_last_success_timestamp_seconds{policy=\"docs\"}");
  ASSERT_TRUE(last);
  EXPECT_NEAR(*last, static_cast<double>(*parse_time(docs["last_success"]["started_at"])) / 1e9, 0.001);

  // The audit log: who ran what, who acknowledged, who was refused; the chain verifies.
  EXPECT_EQ(c.Get("/api/status", bearer("hvn_" + std::string(64, '1')))->status, 401);
  json records = get(c, "/api/audit", admin)["records"];
  std::map<std::string, std::string> actor_of;
  for (const auto& r : records) actor_of[r["action"].get<std::string>() + " " + r["target"].get<std::string>()] = r["actor"];
  EXPECT_EQ(actor_of["backup.execute docs"], "token:a") << records.dump();
  EXPECT_EQ(actor_of["alert.acknowledge broken-runs"], "token:a") << records.dump();
  EXPECT_EQ(actor_of["auth.refused GET /api/status"], "anonymous") << records.dump();
  EXPECT_EQ(actor_of["token.create a"].substr(0, 4), "cli:") << records.dump();
  // A key added from the command line on the server's host ($HAVEN_CONFIG) is recorded too.
  write_file(dir_ + "/pass2", "second-pw\n");
  RunOptions ko;
  ko.env = {{"HAVEN_CONFIG", dir_ + "/haven.yaml"}};
  RunResult ka = run_haven({"key", "add", "--repo", dir_ + "/repo", "--password-file", dir_ + "/pass",
                            "--new-password-file", dir_ + "/pass2"}, ko);
  ASSERT_EQ(ka.code, 0) << describe(ka);
  records = get(c, "/api/audit", admin)["records"];
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.back()["action"], "key.add") << records.back().dump();
  EXPECT_EQ(records.back()["target"], dir_ + "/repo");
  EXPECT_EQ(records.back()["actor"].get<std::string>().substr(0, 4), "cli:");
  json verified = get(c, "/api/audit/verify", admin);
  EXPECT_EQ(verified["intact"], true) << verified.dump();

  // The CLI sees the same.
  RunResult st = run_haven({"status", "--config", dir_ + "/haven.yaml"});
  EXPECT_EQ(st.code, 0) << describe(st);
  EXPECT_NE(st.out.find("docs"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("/ 60 min ok"), std::string::npos) << st.out;
  RunResult ok = run_haven({"audit", "verify", "--config", dir_ + "/haven.yaml"});
  EXPECT_EQ(ok.code, 0) << describe(ok);
  EXPECT_NE(ok.out.find("the chain is intact"), std::string::npos) << ok.out;
  srv.signal(SIGTERM);
  EXPECT_EQ(srv.wait(), 0);
  // A record changed behind the log's back is named.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/catalog.db").c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, "UPDATE audit_log SET actor = 'token:someone-else' WHERE seq = 2",
                           nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  RunResult bad = run_haven({"audit", "verify", "--config", dir_ + "/haven.yaml"});
  EXPECT_EQ(bad.code, 1) << describe(bad);
  EXPECT_NE(bad.out.find("record 2: changed after it was written"), std::string::npos) << bad.out;
  RunResult exported = run_haven({"audit", "export", "--config", dir_ + "/haven.yaml", "--since", "2000-01-01"});
  EXPECT_EQ(exported.code, 0);
  EXPECT_GE(std::count(exported.out.begin(), exported.out.end(), '\n'), 5);
}

}  // namespace
}  // namespace haven

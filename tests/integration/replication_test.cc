// Replication across three kinds of region — local disk, s3rver and Azurite — through the CLI
// and through `haven server`: replicas restore bit-exact alone, a region that fails in the
// middle (behind the fault proxy) catches up with nothing lost, lag is measured and alerts,
// pause/resume reach the catalog and the audit log, and damage in the primary is repaired
// from a replica.
#include <httplib.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "integration/azurite_server.h"
#include "integration/http_fault_proxy.h"
#include "integration/s3_server.h"
#include "integration/server_process.h"
#include "replication/replication.h"
#include "storage/s3.h"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"

namespace haven {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

// One server per kind for the whole binary (integration/s3_server.h, azurite_server.h).
using testing::azurite_server;
using testing::s3_server;

class ReplicationIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    s3_ = s3_server();
    az_ = azurite_server();
    ASSERT_NE(s3_, nullptr) << "s3rver did not start (scripts/setup.sh installs it)";
    ASSERT_NE(az_, nullptr) << "azurite did not start (scripts/setup.sh installs it)";
    char tmpl[] = "/tmp/haven-replication-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // Each test its own bucket and container.
    static int n = 0;
    suffix_ = std::to_string(::getpid()) + "-" + std::to_string(++n);
    write_file(dir_ + "/pass", "replication-pw\n");
    write_file(dir_ + "/s3key", std::string(testing::S3rverServer::kAccessKey) + "\n");
    write_file(dir_ + "/s3secret", std::string(testing::S3rverServer::kSecretKey) + "\n");
    write_file(dir_ + "/azconn", az_->connection_string() + "\n");
    make_dir(dir_ + "/src");
    write_file(dir_ + "/src/a.bin", random_bytes(3 << 20, 11));
    write_file(dir_ + "/src/b.txt", std::string(300000, 'b'));
    RunResult init = run_haven({"init", "--repo", dir_ + "/primary", "--password-file",
                                dir_ + "/pass"});
    ASSERT_EQ(init.code, 0) << describe(init);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string s3_repository(int port = 0) const {
    return "s3:http://127.0.0.1:" + std::to_string(port != 0 ? port : s3_->port()) + "/us-" +
           suffix_ + "/repo";
  }
  std::string azure_repository() const { return "azure:west-" + suffix_ + "/repo"; }

  // haven.yaml with three regions: the primary on disk, us-east-1 on s3rver (optionally through
  // a proxy's port), west-europe on Azurite.
  std::string write_config(int s3_port = 0, const std::string& extra_location = "",
                           const std::string& rest = "") {
    const std::string path = dir_ + "/haven.yaml";
    write_file(path,
               "server:\n  listen: 127.0.0.1:8420\n  catalog: " + dir_ + "/catalog.db\n"
               "locations:\n"
               "  - name: local\n"
               "    repository: " + dir_ + "/primary\n"
               "    password_file: " + dir_ + "/pass\n"
               "    primary_region: eu-north-1\n"
               "    secondary_regions:\n"
               "      - region: us-east-1\n"
               "        repository: \"" + s3_repository(s3_port) + "\"\n"
               "        settings: {HAVEN_S3_PATH_STYLE: \"1\"}\n"
               "        credentials: {AWS_ACCESS_KEY_ID: {file: " + dir_ + "/s3key}, "
               "AWS_SECRET_ACCESS_KEY: {file: " + dir_ + "/s3secret}}\n"
               "      - region: west-europe\n"
               "        repository: " + azure_repository() + "\n"
               "        credentials: {AZURE_STORAGE_CONNECTION_STRING: {file: " + dir_ +
               "/azconn}}\n" + extra_location + rest);
    return path;
  }

  RunOptions region_env() const {
    RunOptions o;
    o.env = {{"AWS_ACCESS_KEY_ID", testing::S3rverServer::kAccessKey},
             {"AWS_SECRET_ACCESS_KEY", testing::S3rverServer::kSecretKey},
             {"HAVEN_S3_PATH_STYLE", "1"},
             {"AZURE_STORAGE_CONNECTION_STRING", az_->connection_string()}};
    return o;
  }

  // Restores the latest snapshot from `repository` alone and compares it with the source.
  void restore_alone(const std::string& repository, const std::string& name) {
    const std::string target = dir_ + "/restore-" + name;
    RunResult r = run_haven({"-r", repository, "--password-file", dir_ + "/pass", "restore",
                             "latest", "--target", target, "--verify"},
                            region_env());
    ASSERT_EQ(r.code, 0) << describe(r);
    expect_same_tree(dir_ + "/src", target + "/src");
  }

  testing::S3rverServer* s3_ = nullptr;
  testing::AzuriteServer* az_ = nullptr;
  std::string dir_, suffix_;
};

TEST_F(ReplicationIntegration, ThreeRegionsReplicateValidateRestoreAloneAndRepairThePrimary) {
  const std::string cfg = write_config();
  RunResult b = run_haven({"-r", dir_ + "/primary", "--password-file", dir_ + "/pass", "backup",
                           dir_ + "/src"});
  ASSERT_EQ(b.code, 0) << describe(b);
  RunResult rep = run_haven({"replicate", "--config", cfg, "--location", "local"});
  ASSERT_EQ(rep.code, 0) << describe(rep);
  EXPECT_NE(rep.out.find("region us-east-1: copied"), std::string::npos) << rep.out;
  EXPECT_NE(rep.out.find("region west-europe: copied"), std::string::npos) << rep.out;
  RunResult chk = run_haven({"check", "--config", cfg, "--location", "local", "--regions",
                             "--read-data"});
  ASSERT_EQ(chk.code, 0) << describe(chk);
  EXPECT_NE(chk.out.find("region us-east-1:"), std::string::npos);
  EXPECT_NE(chk.out.find("same as eu-north-1"), std::string::npos) << chk.out;
  // Each region restores bit-exact on its own, with the repository's password.
  restore_alone(s3_repository(), "s3");
  restore_alone(azure_repository(), "azure");
  // Damage in the primary: a pack deleted, another truncated.
  std::vector<std::string> packs;
  for (const auto& shard : list_dir(dir_ + "/primary/data")) {
    for (const auto& f : list_dir(dir_ + "/primary/data/" + shard)) {
      packs.push_back(dir_ + "/primary/data/" + shard + "/" + f);
    }
  }
  ASSERT_GE(packs.size(), 1u);
  ASSERT_EQ(unlink(packs[0].c_str()), 0);
  RunResult bad = run_haven({"check", "--config", cfg, "--location", "local", "--regions"});
  EXPECT_EQ(bad.code, 1) << describe(bad);
  EXPECT_NE(bad.out.find("missing in eu-north-1, whose index names it; only in us-east-1: "
                         "haven repair --from us-east-1"),
            std::string::npos)
      << bad.out;
  // And the index file flipped in place: same size, other bytes.
  const auto idx = list_dir(dir_ + "/primary/index");
  ASSERT_EQ(idx.size(), 1u);
  std::string ib = read_file(dir_ + "/primary/index/" + idx[0]);
  ib[ib.size() / 2] ^= 0x10;
  chmod((dir_ + "/primary/index/" + idx[0]).c_str(), 0644);
  write_file(dir_ + "/primary/index/" + idx[0], ib);
  // Read failover: a restore through the location reads both from a region, and says so.
  RunResult fo = run_haven({"restore", "latest", "--config", cfg, "--location", "local",
                            "--target", dir_ + "/restore-failover", "--verify"});
  ASSERT_EQ(fo.code, 0) << describe(fo);
  expect_same_tree(dir_ + "/src", dir_ + "/restore-failover/src");
  EXPECT_NE(fo.err.find("index " + idx[0] + ": read from region us-east-1"), std::string::npos)
      << fo.err;
  EXPECT_NE(fo.err.find(": read from region us-east-1 (in eu-north-1: "), std::string::npos);
  EXPECT_NE(fo.err.find(fs::path(packs[0]).filename().string() + ": read from region"),
            std::string::npos)
      << fo.err;
  // Without the regions, the same restore fails.
  RunResult plain = run_haven({"-r", dir_ + "/primary", "--password-file", dir_ + "/pass",
                               "restore", "latest", "--target", dir_ + "/restore-plain"});
  EXPECT_NE(plain.code, 0);
  RunResult fix = run_haven({"repair", "--config", cfg, "--location", "local", "--from",
                             "west-europe"});
  ASSERT_EQ(fix.code, 0) << describe(fix);
  EXPECT_NE(fix.out.find("1 missing object(s) restored, 1 damaged object(s) replaced from "
                         "west-europe"),
            std::string::npos)
      << fix.out;
  RunResult after = run_haven({"-r", dir_ + "/primary", "--password-file", dir_ + "/pass",
                               "check", "--read-data"});
  EXPECT_EQ(after.code, 0) << describe(after);
  RunResult same = run_haven({"check", "--config", cfg, "--location", "local", "--regions",
                              "--read-data"});
  EXPECT_EQ(same.code, 0) << describe(same);
  // Bad input: one clear error, nothing changed.
  RunResult unknown = run_haven({"repair", "--config", cfg, "--location", "local", "--from",
                                 "mars"});
  EXPECT_NE(unknown.code, 0);
  EXPECT_NE(unknown.err.find("has no region 'mars' (its regions: eu-north-1 (primary), "
                             "us-east-1, west-europe)"),
            std::string::npos)
      << unknown.err;
  RunResult nor = run_haven({"replicate", "--config", cfg, "--location", "elsewhere"});
  EXPECT_EQ(nor.code, 2);
  EXPECT_NE(nor.err.find("has no location 'elsewhere' (it has: local)"), std::string::npos)
      << nor.err;
}

TEST_F(ReplicationIntegration, ARegionFailingMidReplicationBehindTheProxyCatchesUpWithNothingLost) {
  // Directly through the S3 API, without retries, so that the fault is seen at once.
  testing::HttpFaultProxy proxy(s3_->port(), 5);
  ASSERT_EQ(proxy.start(), "");
  std::atomic<int> puts{0};
  std::atomic<bool> down{false};
  proxy.set_rule([&](const testing::ProxyRequest& r) {
    if (r.method == "PUT" && ++puts > 3) down = true;  // the bucket, the key, the config
    return down ? testing::ProxyFault::kFail503 : testing::ProxyFault::kNone;
  });
  RunResult b = run_haven({"-r", dir_ + "/primary", "--password-file", dir_ + "/pass", "backup",
                           dir_ + "/src"});
  ASSERT_EQ(b.code, 0) << describe(b);
  auto primary_be = storage::open_backend(dir_ + "/primary");
  ASSERT_TRUE(primary_be.ok());
  auto repo = repo::Repository::open(*primary_be, "replication-pw");
  ASSERT_TRUE(repo.ok());
  storage::S3Config c;
  c.scheme = "http";
  c.host = "127.0.0.1:" + std::to_string(proxy.port());
  c.bucket = "mid-" + suffix_;
  c.prefix = "repo";
  c.path_style = true;
  c.creds = {testing::S3rverServer::kAccessKey, testing::S3rverServer::kSecretKey, ""};
  replication::Region region{"us-east-1", std::make_shared<storage::S3Backend>(c)};
  RecordingSink sink;
  replication::PassOptions po;
  po.parallel = 1;
  auto failed = replication::replicate(**repo, region, po, sink);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message().find("region us-east-1"), std::string::npos);
  EXPECT_GT(proxy.injected(testing::ProxyFault::kFail503), 0u);
  // The proxy heals; the next pass copies what is missing, and the copy is whole.
  down = false;
  puts = -1000000;
  auto ok = replication::replicate(**repo, region, po, sink);
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_GT(ok->copied_objects, 0u);
  EXPECT_EQ(ok->lag.objects, 0u);
  auto reports = replication::validate(
      **repo, replication::Region{"eu-north-1", *primary_be}, {region}, true, sink);
  ASSERT_TRUE(reports.ok());
  EXPECT_TRUE((*reports)[0].ok()) << (*reports)[0].to_json().dump();
  restore_alone("s3:http://127.0.0.1:" + std::to_string(s3_->port()) + "/mid-" + suffix_ +
                    "/repo",
                "mid");
}

TEST_F(ReplicationIntegration, TheServerReplicatesAsObjectsLandMeasuresLagAlertsAndCatchesUp) {
  testing::HttpFaultProxy proxy(s3_->port(), 9);
  ASSERT_EQ(proxy.start(), "");
  const std::string monitors =
      "monitoring:\n"
      "  monitors:\n"
      "    - {name: lag, type: replication_lag, location: local, warning: 1, critical: 2}\n";
  const std::string cfg = write_config(
      proxy.port(),
      "    replication: {mode: async, rpo: {value: 2, unit: seconds}, interval_seconds: 1}\n",
      "policies:\n  - name: files\n    resource_type: files\n    sources: [" + dir_ +
          "/src]\n    location: local\n    schedules: []\n" + monitors);
  RunResult t = run_haven({"server", "token", "create", "--config", cfg, "--name", "ops",
                           "--role", "admin"});
  ASSERT_EQ(t.code, 0) << describe(t);
  const std::string tok = t.out.substr(0, t.out.find('\n'));
  ServerProcess srv(cfg, dir_ + "/server.log");
  ASSERT_NE(srv.port(), 0) << srv.log();
  httplib::Client http("127.0.0.1", srv.port());
  const httplib::Headers auth = {{"Authorization", "Bearer " + tok}};
  auto get = [&](const std::string& path) {
    auto r = http.Get(path, auth);
    EXPECT_TRUE(r && r->status == 200) << path << ": " << (r ? r->body : "no response");
    return r ? json::parse(r->body, nullptr, false) : json();
  };
  auto post = [&](const std::string& path, int expect) {
    auto r = http.Post(path, auth, "{}", "application/json");
    EXPECT_TRUE(r && r->status == expect) << path << ": " << (r ? r->body : "no response");
    return r ? json::parse(r->body, nullptr, false) : json();
  };
  auto region_of = [&](const std::string& name) {
    const json all = get("/api/replication");
    for (const auto& r : all["locations"][0]["regions"]) {
      if (r["region"] == name) return r;
    }
    return json();
  };
  auto wait_for = [&](const std::function<bool()>& cond, std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (cond()) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  };
  const std::string policy = get("/api/backup/policies")["policies"][0]["id"];
  auto backup = [&] {
    json e = post("/api/backup/execute/" + policy, 202);
    const std::string id = e["id"];
    EXPECT_TRUE(wait_for([&] {
      std::string s = get("/api/backup/executions/" + id)["status"];
      return s == "completed" || s == "failed";
    }, 60s));
    return get("/api/backup/executions/" + id);
  };
  // 1. A backup lands and reaches both regions.
  json run = backup();
  ASSERT_EQ(run["status"], "completed") << run.dump();
  const std::string snap = run["snapshot_id"];
  EXPECT_TRUE(wait_for([&] {
    return region_of("us-east-1")["pending_objects"] == 0 &&
           region_of("west-europe")["pending_objects"] == 0 &&
           !region_of("us-east-1")["newest_snapshot_at"].is_null() &&
           !region_of("west-europe")["newest_snapshot_at"].is_null();
  }, 30s)) << get("/api/replication").dump();
  // 2. Paused: the next backup is not copied there, the lag grows, the alert fires.
  json paused = post("/api/replication/local/regions/us-east-1/pause", 200);
  EXPECT_EQ(paused["state"], "paused");
  EXPECT_EQ(paused["state_changed_by"], "token:ops");
  write_file(dir_ + "/src/c.bin", random_bytes(1 << 20, 12));
  run = backup();
  ASSERT_EQ(run["status"], "completed");
  EXPECT_TRUE(wait_for([&] {
    json r = region_of("us-east-1");
    return r["pending_objects"].get<int>() > 0 && r["status"] == "critical";
  }, 30s)) << get("/api/replication").dump();
  EXPECT_TRUE(wait_for([&] { return region_of("west-europe")["pending_objects"] == 0; }, 30s));
  json monitors_list = get("/api/monitors");
  const std::string mid = monitors_list["monitors"][0]["id"];
  post("/api/monitors/" + mid + "/check", 200);
  auto lag_alert = [&]() -> json {
    const json all = get("/api/alerts");  // kept: the loop must not outlive it
    for (const auto& a : all["alerts"]) {
      if (a["kind"] == "alert:replication-lag" && a["alert_key"] == "lag/us-east-1") return a;
    }
    return json();
  };
  EXPECT_TRUE(wait_for([&] { json a = lag_alert();
    return a.is_object() && a["severity"] == "critical"; }, 10s))
      << get("/api/alerts").dump();
  auto metrics = http.Get("/metrics", auth);
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("haven_replication_lag_seconds{location=\"local\",region=\"us-east-1\"}"),
            std::string::npos);
  // 3. Resumed while the region is unreachable: failed, with the reason; then it heals.
  proxy.fail_everything();
  post("/api/replication/local/regions/us-east-1/resume", 200);
  EXPECT_TRUE(wait_for([&] { return region_of("us-east-1")["status"] == "failed"; }, 60s))
      << region_of("us-east-1").dump();
  EXPECT_FALSE(region_of("us-east-1")["last_error"].get<std::string>().empty());
  proxy.set_plan(testing::ProxyPlan{});
  EXPECT_TRUE(wait_for([&] {
    json r = region_of("us-east-1");
    return r["status"] == "ok" && r["pending_objects"] == 0;
  }, 120s)) << region_of("us-east-1").dump();
  json second = post("/api/monitors/" + mid + "/check", 200);
  EXPECT_TRUE(wait_for([&] { return lag_alert().is_null(); }, 10s))  // resolved
      << get("/api/alerts").dump() << second.dump();
  // The audit log has the pause and the resume; the catalog the region's state.
  json audit = get("/api/audit");
  std::string actions;
  for (const auto& r : audit["records"]) actions += r["action"].get<std::string>() + " ";
  EXPECT_NE(actions.find("replication.pause"), std::string::npos) << actions;
  EXPECT_NE(actions.find("replication.resume"), std::string::npos) << actions;
  RunResult st = run_haven({"replication", "status", "--config", cfg});
  EXPECT_EQ(st.code, 0) << describe(st);
  EXPECT_NE(st.out.find("us-east-1: active, ok"), std::string::npos) << st.out;
  // Nothing lost: every region is the primary, and restores alone.
  RunResult chk = run_haven({"check", "--config", write_config(), "--location", "local",
                             "--regions", "--read-data"});
  EXPECT_EQ(chk.code, 0) << describe(chk);
  restore_alone(s3_repository(), "s3");
  restore_alone(azure_repository(), "azure");
}

}  // namespace
}  // namespace haven

// Drills end to end (haven dr drill), on real parts: a PostgreSQL 15 cluster archiving its WAL
// into a Haven repository, a file tree backed up into the same repository, and a small HTTP
// service (python3) that reads both. A drill restores the tree and recovers the cluster into a
// sandbox, starts the service on a free port, validates it over HTTP, SQL and checksums,
// measures RTO and RPO, records the run in the catalog and writes its reports; it leaves
// nothing behind. A broken validation fails and names itself; a drill naming a production
// path or port is refused before anything runs; a drill killed midway is cleaned up by the
// next one.
//
// Needs PostgreSQL 15 (scripts/setup.sh) and root (PostgreSQL runs as nobody).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"
#pragma GCC diagnostic pop

#include "catalog/catalog.h"
#include "dr/checks.h"
#include "pg/pg_cluster.h"

namespace haven {
namespace {

using haven::testing::CmdResult;
using haven::testing::kNobody;
using haven::testing::PgCluster;
using haven::testing::PgTempDir;

namespace fs = std::filesystem;

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// The service the drill starts: answers /health, and / with what it reads from the restored
// tree and the restored cluster.
const char* kApp = R"(import http.server, subprocess, sys
port, tree, sock, pgport = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b"ok"
        else:
            rows = subprocess.run(["psql", "-qAtX", "-h", sock, "-p", pgport, "-U", "postgres",
                                   "-d", "postgres", "-c", "select count(*) from pgbench_accounts"],
                                  capture_output=True, text=True).stdout.strip()
            etc = open(tree + "/conf/app.conf").read().strip()
            body = ("rows=%s etc=%s" % (rows, etc)).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
)";

class DrillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = haven::testing::pg_missing();
    ASSERT_TRUE(missing.empty()) << missing;
    HAVEN_SKIP_UNLESS_ROOT("runs PostgreSQL as nobody");
    tmp_ = std::make_unique<PgTempDir>();
    dir_ = tmp_->path();
    haven_ = binary_for(kNobody);
    ASSERT_NE(haven_, std::string(HAVEN_BINARY)) << "no world-executable copy of haven in /tmp";
    RunResult r = hv({"init", "--kdf-memory", "8", "--kdf-iterations", "1"});
    ASSERT_EQ(r.code, 0) << describe(r);
    r = hv({"pg", "archive-key", "--output", dir_ + "/wal.key"});
    ASSERT_EQ(r.code, 0) << describe(r);
    const std::string archive = "if [ \"$(pwd -P)\" != \"" + data() + "\" ]; then exit 0; fi; exec " +
                                haven_ + " -r " + repo() + " wal-push --wal-key-file " + dir_ +
                                "/wal.key %p";
    pg_ = PgCluster::create(data(), dir_, archive);
    ASSERT_TRUE(pg_->ok());
    ASSERT_TRUE(pg_->start());
    auto b = pg_->pgbench({"-i", "-s", "1", "-q"});
    ASSERT_EQ(b.code, 0) << b.describe();
    r = hv({"pg", "backup", "--pgdata", data(), "--conninfo", pg_->conninfo()});
    ASSERT_EQ(r.code, 0) << describe(r);
    // Commits after the base backup: recovered only by replaying the archived WAL.
    pg_->psql("CREATE TABLE after_backup(x int); INSERT INTO after_backup VALUES (1)");
    last_commit_ = pg_->psql("SELECT extract(epoch FROM now())");
    ASSERT_TRUE(pg_->wait_archived(pg_->switch_wal()));

    fs::create_directories(tree() + "/conf");
    write(tree() + "/conf/app.conf", "hello\n");
    write(tree() + "/data.bin", std::string(300000, 'x'));
    r = hv({"backup", tree()});
    ASSERT_EQ(r.code, 0) << describe(r);
    write(dir_ + "/pass", "pw\n");
    write(dir_ + "/app.py", kApp);
  }

  void TearDown() override {
    pg_.reset();
    tmp_.reset();
  }

  std::string repo() const { return dir_ + "/repo"; }
  std::string data() const { return dir_ + "/data"; }
  std::string tree() const { return dir_ + "/tree"; }
  std::string catalog() const { return dir_ + "/catalog.db"; }
  std::string drills() const { return dir_ + "/drills"; }

  RunResult hv(const std::vector<std::string>& args, int timeout_ms = 120000) {
    RunOptions o;
    o.uid = kNobody;
    o.env = {{"HOME", dir_}, {"LC_ALL", "C"}};
    o.timeout_ms = timeout_ms;
    return cli(repo(), args, o);
  }

  // haven.yaml with `plan` appended (a dr_plans item, indented as one).
  std::string config(const std::string& plan) {
    const std::string path = dir_ + "/haven.yaml";
    write(path, "server: {catalog: " + catalog() + "}\n"
                "locations:\n"
                "  - {name: local, repository: " + repo() + ", password_file: " + dir_ + "/pass}\n"
                "policies:\n"
                "  - {name: etc, resource_type: files, sources: [" + tree() + "], location: local, schedules: []}\n"
                "  - name: db\n"
                "    resource_type: database\n"
                "    database: {pgdata: " + data() + ", conninfo: \"" + pg_->conninfo() + "\"}\n"
                "    location: local\n"
                "    schedules: []\n"
                "dr_plans:\n" + plan);
    return path;
  }

  std::string plan(const std::string& body_check, int validation_timeout = 20) {
    return R"(  - name: full-drill
    description: the tree, the cluster and the service that reads both
    plan_type: warm_site
    priority: critical
    rto: {value: 10, unit: minutes}
    rpo: {value: 60, unit: minutes}
    steps:
      - name: restore-etc
        restore_files: {policy: etc, snapshot: latest}
      - name: db
        restore_postgres: {policy: db}
        timeout: 300
      - name: serve
        depends_on: [restore-etc, db]
        command: "exec python3 )" + dir_ + R"(/app.py ${port} ${restore-etc.path}/tree ${db.host} ${db.port}"
        wait: {http: "http://127.0.0.1:${port}/health", timeout: 30}
      - name: dns
        depends_on: [serve]
        switch: {command: "echo switching", kind: dns}
    validation:
      - name: content
        checks:
          - {http: "http://127.0.0.1:${serve.port}/", expect_status: 200, expect_body: ")" +
           body_check + R"("}
          - {checksum: restore-etc}
          - {sql: "select count(*) from after_backup", conninfo: "${db.conninfo}", expect: "= 1"}
        threshold: 3
        timeout: )" + std::to_string(validation_timeout) + R"(
)";
  }

  // haven dr <args> as root, with the world-executable copy (the restored cluster's
  // restore_command runs it as nobody).
  CmdResult dr(const std::vector<std::string>& args, int timeout_ms = 300000) {
    std::vector<std::string> a{haven_, "dr"};
    a.insert(a.end(), args.begin(), args.end());
    return haven::testing::run_cmd(a, {{"LC_ALL", "C"}}, -1, timeout_ms);
  }

  std::unique_ptr<PgTempDir> tmp_;
  std::string dir_, haven_, last_commit_;
  std::unique_ptr<PgCluster> pg_;
};

TEST_F(DrillTest, ADrillRestoresServesValidatesMeasuresAndLeavesNothing) {
  // The tree lands in <sandbox>/restore-etc/tree (its top-level name): the service reads it there.
  const std::string cfg = config(plan("rows=100000 etc=hello"));
  const std::string md = dir_ + "/report.md", html = dir_ + "/report.html";
  const auto t0 = std::chrono::system_clock::now();
  CmdResult r = dr({"drill", "full-drill", "--config", cfg, "--report", md, "--html", html, "--json"});
  ASSERT_EQ(r.code, 0) << r.describe();
  nlohmann::json j;
  {
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      auto x = nlohmann::json::parse(line, nullptr, false);
      if (x.is_object() && x.contains("execution_id")) j = x;
    }
  }
  ASSERT_TRUE(j.is_object()) << r.describe();
  EXPECT_TRUE(j["success"].get<bool>()) << j.dump(1);
  ASSERT_EQ(j["steps"].size(), 4u);
  EXPECT_EQ(j["steps"][0]["status"], "completed");
  EXPECT_EQ(j["steps"][1]["status"], "completed");
  EXPECT_EQ(j["steps"][2]["status"], "completed");
  EXPECT_EQ(j["steps"][3]["status"], "skipped") << "a drill never switches DNS";
  // RTO: from the start to the validation passing; inside the run's wall time.
  const double wall = std::chrono::duration<double>(std::chrono::system_clock::now() - t0).count();
  ASSERT_TRUE(j["rto_seconds"].is_number());
  EXPECT_GT(j["rto_seconds"].get<double>(), 0.1);
  EXPECT_LT(j["rto_seconds"].get<double>(), wall);
  // RPO: the drill's start minus the newest data recovered. The cluster's last replayed
  // commit is the one made after the base backup.
  const auto& db = j["steps"][1];
  ASSERT_TRUE(db["details"]["last_replayed_commit"].is_string()) << db.dump(1);
  auto replayed = parse_time(db["details"]["last_replayed_commit"].get<std::string>());
  ASSERT_TRUE(replayed.has_value());
  EXPECT_NEAR(static_cast<double>(*replayed) / 1e9, std::stod(last_commit_), 1.0);
  ASSERT_TRUE(j["rpo_seconds"].is_number());
  EXPECT_GT(j["rpo_seconds"].get<double>(), 0.0);
  EXPECT_LT(j["rpo_seconds"].get<double>(), 600.0);
  EXPECT_GT(j["restore_seconds"].get<double>(), 0.0);
  EXPECT_GT(j["replay_seconds"].get<double>(), 0.0);
  const auto& val = j["validations"][0];
  EXPECT_TRUE(val["passed"].get<bool>());
  EXPECT_EQ(val["passed_checks"], 3);

  // Nothing is left: no sandbox, no server, no service.
  ASSERT_TRUE(exists(drills()));
  EXPECT_TRUE(fs::is_empty(drills())) << "the sandbox was not removed";
  const int serve_port = j["steps"][2]["port"];
  config::HealthCheck probe;
  probe.kind = config::HealthCheck::Kind::kTcp;
  probe.target = "127.0.0.1:" + std::to_string(serve_port);
  EXPECT_FALSE(dr::run_check(probe, std::chrono::seconds(2), {}, "/").passed) << "the service still answers";

  // Recorded in the catalog, with the reports.
  auto cat = catalog::open_sqlite_catalog(catalog());
  ASSERT_TRUE(cat.ok());
  auto row = (*cat)->get_dr_execution(j["execution_id"].get<std::string>());
  ASSERT_TRUE(row.ok()) << row.error().message();
  EXPECT_EQ(row->status, catalog::ExecStatus::kCompleted);
  EXPECT_EQ(row->success_criteria_met, std::optional<bool>(true));
  EXPECT_EQ(row->execution_type, catalog::DrExecutionType::kDrill);
  EXPECT_TRUE(row->failed_steps.empty());
  auto p = (*cat)->get_dr_plan("full-drill");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->last_tested.has_value());
  const std::string report = haven::testing::slurp(md);
  EXPECT_NE(report.find("- [x] RTO met"), std::string::npos) << report;
  EXPECT_NE(report.find("- [x] RPO met"), std::string::npos) << report;
  EXPECT_NE(report.find("- [x] Backup restoration successful"), std::string::npos) << report;
  EXPECT_NE(report.find("| serve | command |"), std::string::npos) << report;
  EXPECT_NE(haven::testing::slurp(html).find("id=\"checklist\""), std::string::npos);
  if (getenv("SHOW_REPORT")) std::cerr << report;
  // The same report from the catalog.
  CmdResult again = dr({"report", row->id, "--config", cfg});
  ASSERT_EQ(again.code, 0) << again.describe();
  EXPECT_EQ(again.out, report);
}

TEST_F(DrillTest, ABrokenValidationFailsAndNamesItself) {
  const std::string cfg = config(plan("rows=999 etc=hello", 3));
  CmdResult r = dr({"drill", "full-drill", "--config", cfg});
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_NE(r.err.find("validation 'content' failed"), std::string::npos) << r.describe();
  EXPECT_NE(r.err.find("without 'rows=999 etc=hello'"), std::string::npos) << r.describe();
  EXPECT_TRUE(fs::is_empty(drills()));
  auto cat = catalog::open_sqlite_catalog(catalog());
  ASSERT_TRUE(cat.ok());
  auto rows = (*cat)->list_dr_executions("", 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].status, catalog::ExecStatus::kFailed);
  EXPECT_EQ((*rows)[0].success_criteria_met, std::optional<bool>(false));
  EXPECT_FALSE((*cat)->get_dr_plan("full-drill")->last_tested.has_value());
}

TEST_F(DrillTest, ProductionPathsAndPortsAreRefused) {
  std::string p = plan("x");
  // A command naming the production data directory.
  std::string bad = std::regex_replace(p, std::regex("exec python3"), "ls " + data() + "; exec python3");
  CmdResult r = dr({"drill", "full-drill", "--config", config(bad)});
  EXPECT_EQ(r.code, 2) << r.describe();
  EXPECT_NE(r.err.find("names the production path " + data()), std::string::npos) << r.describe();
  // A check naming the production cluster's port.
  bad = std::regex_replace(p, std::regex("\\$\\{db\\.conninfo\\}"),
                           "host=" + dir_ + " port=" + std::to_string(pg_->port()));
  r = dr({"drill", "full-drill", "--config", config(bad)});
  EXPECT_EQ(r.code, 2) << r.describe();
  EXPECT_NE(r.err.find("names the production port " + std::to_string(pg_->port())), std::string::npos)
      << r.describe();
  EXPECT_FALSE(exists(drills())) << "a refused drill made a sandbox";
}

TEST_F(DrillTest, AKilledDrillIsCleanedUpByTheNext) {
  // The service never becomes healthy: the drill waits on it while everything runs.
  std::string p = plan("rows=100000 etc=hello");
  p = std::regex_replace(p, std::regex("/health\", timeout: 30"), "/nothing\", expect_status: 299, timeout: 120");
  const std::string cfg = config(p);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::execl(haven_.c_str(), haven_.c_str(), "dr", "drill", "full-drill", "--config", cfg.c_str(),
            static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until the service runs (its log exists) with the cluster up.
  std::string sandbox;
  for (int i = 0; i < 600 && sandbox.empty(); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (!exists(drills())) continue;
    for (const auto& e : fs::directory_iterator(drills())) {
      if (exists(e.path().string() + "/serve.log")) sandbox = e.path().string();
    }
  }
  ASSERT_FALSE(sandbox.empty()) << "the drill never started its service";
  const std::string pidfile = sandbox + "/db/data/postmaster.pid";
  ASSERT_TRUE(exists(pidfile));
  pid_t postmaster = 0;
  {
    std::ifstream in(pidfile);
    in >> postmaster;
  }
  ASSERT_GT(postmaster, 0);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(exists(sandbox)) << "nothing was left to clean up";
  EXPECT_EQ(::kill(postmaster, 0), 0) << "the killed drill's cluster should still run";

  // The next drill removes the leftovers first (and, here, fails on its own broken check).
  config(std::regex_replace(p, std::regex("expect_status: 299, timeout: 120"), "expect_status: 299, timeout: 1"));
  CmdResult r = dr({"drill", "full-drill", "--config", cfg}, 400000);
  EXPECT_NE(r.code, 0);
  EXPECT_FALSE(exists(sandbox)) << r.describe();
  EXPECT_NE(::kill(postmaster, 0), 0) << "the killed drill's cluster still runs";
  EXPECT_TRUE(fs::is_empty(drills()));
  auto cat = catalog::open_sqlite_catalog(catalog());
  ASSERT_TRUE(cat.ok());
  auto rows = (*cat)->list_dr_executions("", 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[1].status, catalog::ExecStatus::kInterrupted) << (*rows)[1].error_message;
}

}  // namespace
}  // namespace haven

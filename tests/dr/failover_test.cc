// Failover (dr/failover.h): the primary is declared failed after exactly failure_threshold
// consecutive failed probes (a success resets the count), once, with an alert that resolves
// when it answers again; the lease lets only one region fail over; and with a real
// PostgreSQL 15 primary archiving into Haven, the warm standby Haven keeps replays the archive,
// is promoted after exactly N failed probes, accepts writes, and has lost only what the
// primary committed after its last archived segment.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"
#pragma GCC diagnostic pop

#include "catalog/sqlite_catalog.h"
#include "config/config.h"
#include "dr/failover.h"
#include "pg/pg_cluster.h"
#include "storage/backend.h"

namespace haven::dr {
namespace {

using haven::testing::kNobody;
using haven::testing::PgCluster;
using haven::testing::PgTempDir;
namespace fs = std::filesystem;

config::Config parse(const std::string& text) {
  auto c = config::parse_config(text, "haven.yaml", [](const std::string&) { return std::nullopt; });
  EXPECT_TRUE(c.ok()) << c.error().message();
  return c.ok() ? *c : config::Config{};
}

// Opens the local repository at `dir` with the tests' password.
std::function<Result<std::shared_ptr<repo::Repository>>(const std::string&)> opener(const std::string& dir) {
  return [dir](const std::string&) -> Result<std::shared_ptr<repo::Repository>> {
    HAVEN_ASSIGN(auto be, storage::open_backend(dir));
    HAVEN_ASSIGN(auto r, repo::Repository::open(be, kPw));
    return std::shared_ptr<repo::Repository>(std::move(r));
  };
}

struct ScratchDir {
  ScratchDir() {
    char tmpl[] = "/tmp/haven-failover-XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string path_;
};

TEST(Failover, DeclaredAfterExactlyNConsecutiveFailuresOnceWithAnAlertThatResolves) {
  ScratchDir dir;
  ASSERT_NE(init_repo(dir.path() + "/repo"), nullptr);
  write_file(dir.path() + "/pass", "pw\n");
  write_file(dir.path() + "/up", "");
  const std::string base =
      "server: {catalog: " + dir.path() + "/c.db}\n"
      "locations:\n  - {name: local, repository: " + dir.path() + "/repo, password_file: " + dir.path() + "/pass}\n";
  auto cfg = std::make_shared<const config::Config>(parse(base +
      "failover:\n"
      "  - name: web\n"
      "    mode: active_active\n"
      "    failure_threshold: 3\n"
      "    health_check_interval: 1\n"
      "    probe: {command: \"test -f " + dir.path() + "/up\"}\n"
      "    regions: [eu-west, eu-north]\n"
      "    dns: {command: \"true\"}\n"));
  ASSERT_EQ(cfg->failover.size(), 1u);
  // Fewer than two regions is refused.
  auto one = config::parse_config(base + "failover:\n  - {name: x, mode: active_active, probe: {tcp: \"h:1\"}, regions: [a]}\n",
                                  "haven.yaml", [](const std::string&) { return std::nullopt; });
  ASSERT_FALSE(one.ok());
  EXPECT_NE(one.error().message().find("a failover needs at least two"), std::string::npos) << one.error().message();

  auto cat = catalog::open_sqlite_catalog(dir.path() + "/c.db");
  ASSERT_TRUE(cat.ok());
  std::vector<std::string> events;
  FailoverOptions o;
  o.holder = "host-a/1";
  o.open_location = opener(dir.path() + "/repo");
  o.catalog = cat->get();
  o.note = [&](const std::string& k, const nlohmann::json&) { events.push_back(k); };
  FailoverWatch w(cfg, cfg->failover[0], o);
  EXPECT_TRUE(w.probe().passed);
  fs::remove(dir.path() + "/up");
  EXPECT_FALSE(w.probe().passed);
  EXPECT_FALSE(w.probe().passed);
  write_file(dir.path() + "/up", "");  // a success resets the count
  EXPECT_TRUE(w.probe().passed);
  fs::remove(dir.path() + "/up");
  w.probe();
  w.probe();
  EXPECT_FALSE(w.state()["primary_failed"].get<bool>()) << "declared after two failures";
  w.probe();  // the third in a row
  EXPECT_TRUE(w.state()["primary_failed"].get<bool>());
  EXPECT_EQ(w.state()["consecutive_failures"], 3);
  w.probe();
  EXPECT_EQ(std::count(events.begin(), events.end(), "failover:primary-failed"), 1);
  EXPECT_EQ(std::count(events.begin(), events.end(), "failover:completed"), 0) << "no auto_failover";
  auto alert = (*cat)->find_unresolved_alert("failover/web");
  ASSERT_TRUE(alert.ok() && alert->has_value());
  EXPECT_EQ((*alert)->severity, catalog::AlertSeverity::kCritical);
  EXPECT_NE((*alert)->summary.find("failed 3 probes in a row"), std::string::npos) << (*alert)->summary;
  write_file(dir.path() + "/up", "");
  EXPECT_TRUE(w.probe().passed);
  EXPECT_FALSE((*cat)->find_unresolved_alert("failover/web")->has_value());

  // The lease: one region fails over; another is told who holds it.
  auto r = w.fail_over("operator");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ((*r)["dns"], "command exited with status 0");
  EXPECT_TRUE(w.fail_over("operator").ok()) << "the holder may repeat it";
  FailoverOptions other = o;
  other.holder = "host-b/1";
  FailoverWatch w2(cfg, cfg->failover[0], other);
  auto refused = w2.fail_over("operator");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), Error::Code::kAlreadyExists);
  EXPECT_NE(refused.error().message().find("host-a/1"), std::string::npos) << refused.error().message();
  EXPECT_TRUE(fs::exists(dir.path() + "/repo/leases/web"));
}

class WarmStandbyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = haven::testing::pg_missing();
    ASSERT_TRUE(missing.empty()) << missing;
    HAVEN_SKIP_UNLESS_ROOT("runs PostgreSQL as nobody");
    tmp_ = std::make_unique<PgTempDir>();
    dir_ = tmp_->path();
    haven_ = binary_for(kNobody);
    RunOptions ro;
    ro.uid = kNobody;
    ro.env = {{"HOME", dir_}};
    RunResult r = cli(dir_ + "/repo", {"init", "--kdf-memory", "8", "--kdf-iterations", "1"}, ro);
    ASSERT_EQ(r.code, 0) << describe(r);
    r = cli(dir_ + "/repo", {"pg", "archive-key", "--output", dir_ + "/wal.key"}, ro);
    ASSERT_EQ(r.code, 0) << describe(r);
    const std::string data = dir_ + "/data";
    const std::string archive = "if [ \"$(pwd -P)\" != \"" + data + "\" ]; then exit 0; fi; exec " + haven_ +
                                " -r " + dir_ + "/repo wal-push --wal-key-file " + dir_ + "/wal.key %p";
    pg_ = PgCluster::create(data, dir_, archive);
    ASSERT_TRUE(pg_->ok());
    ASSERT_TRUE(pg_->start());
    pg_->psql("CREATE TABLE t(x int)");
    r = cli(dir_ + "/repo", {"pg", "backup", "--pgdata", data, "--conninfo", pg_->conninfo()}, ro);
    ASSERT_EQ(r.code, 0) << describe(r);
    write_file(dir_ + "/pass", "pw\n");
  }
  void TearDown() override {
    standby_.reset();
    pg_.reset();
    tmp_.reset();
  }
  std::unique_ptr<PgTempDir> tmp_;
  std::string dir_, haven_;
  std::unique_ptr<PgCluster> pg_, standby_;
};

TEST_F(WarmStandbyTest, TheStandbyReplaysIsPromotedAfterExactlyNFailuresAndAcceptsWrites) {
  const int port = PgCluster::free_port();
  auto cfg = std::make_shared<const config::Config>(parse(
      "server: {catalog: " + dir_ + "/c.db}\n"
      "locations:\n  - {name: local, repository: " + dir_ + "/repo, password_file: " + dir_ + "/pass}\n"
      "policies:\n"
      "  - name: db\n"
      "    resource_type: database\n"
      "    database: {pgdata: " + dir_ + "/data}\n"
      "    location: local\n"
      "    schedules: []\n"
      "failover:\n"
      "  - name: db-failover\n"
      "    mode: warm_standby\n"
      "    auto_failover: true\n"
      "    health_check_interval: 1\n"
      "    failure_threshold: 3\n"
      "    probe: {sql: \"select 1\", conninfo: \"" + pg_->conninfo() + "\", expect: \"1\"}\n"
      "    regions: [eu-west, eu-north]\n"
      "    standby: {policy: db, data_directory: " + dir_ + "/standby, port: " + std::to_string(port) + "}\n"));
  ASSERT_EQ(cfg->failover.size(), 1u);
  std::vector<std::pair<std::string, nlohmann::json>> events;
  std::mutex mu;
  FailoverOptions o;
  o.holder = "test/1";
  o.haven_program = haven_;
  o.open_location = opener(dir_ + "/repo");
  o.note = [&](const std::string& k, const nlohmann::json& j) {
    std::lock_guard l(mu);
    events.emplace_back(k, j);
  };
  FailoverWatch w(cfg, cfg->failover[0], o);
  Status st = w.ensure_standby();
  standby_ = PgCluster::attach(dir_ + "/standby", dir_, port);  // stopped at the end
  ASSERT_TRUE(st.ok()) << st.error().message() << "\n" << haven::testing::slurp(dir_ + "/standby/haven-recovery.log");
  EXPECT_TRUE(w.probe().passed);

  // Row 1 reaches the archive and the standby replays it; row 2 is committed but never archived.
  pg_->psql("INSERT INTO t VALUES (1)");
  ASSERT_TRUE(pg_->wait_archived(pg_->switch_wal()));
  bool replayed = false;
  for (int i = 0; i < 300 && !replayed; i++) {
    replayed = standby_->psql_result("SELECT count(*) FROM t").out.find('1') != std::string::npos;
    if (!replayed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(replayed) << haven::testing::slurp(dir_ + "/standby/haven-recovery.log");
  StandbyStatus s = w.standby_status();
  EXPECT_TRUE(s.running);
  EXPECT_TRUE(s.in_recovery);
  EXPECT_FALSE(s.newest_archived.empty());
  EXPECT_TRUE(s.last_replayed.has_value()) << s.to_json().dump();
  pg_->psql("INSERT INTO t VALUES (2)");
  pg_->stop();  // the primary fails

  EXPECT_FALSE(w.probe().passed);
  EXPECT_FALSE(w.probe().passed);
  EXPECT_FALSE(w.state()["failed_over"].get<bool>()) << "failed over before the third failure";
  EXPECT_EQ(standby_->psql_result("SELECT pg_is_in_recovery()").out.substr(0, 1), "t");
  EXPECT_FALSE(w.probe().passed);  // the third: declared, and failed over at once
  nlohmann::json state = w.state();
  ASSERT_TRUE(state["failed_over"].get<bool>()) << state.dump(1);
  EXPECT_EQ(state["consecutive_failures"], 3);
  // The promoted standby accepts writes; it has row 1 and not row 2 (never archived).
  EXPECT_EQ(standby_->psql("SELECT pg_is_in_recovery()"), "f");
  standby_->psql("INSERT INTO t VALUES (3)");
  EXPECT_EQ(standby_->psql("SELECT string_agg(x::text, ',' ORDER BY x) FROM t"), "1,3");
  const nlohmann::json& report = state["report"];
  EXPECT_TRUE(report["data_loss_window_seconds"].is_number()) << report.dump(1);
  EXPECT_GE(report["data_loss_window_seconds"].get<double>(), 0.0);
  EXPECT_FALSE(report["newest_archived_segment"].get<std::string>().empty());
  std::cerr << "[failover] promoted in " << report["promote_seconds"] << " s; data loss window "
            << report["data_loss_window_seconds"] << " s (last replayed commit "
            << report["last_replayed_commit"] << ", newest archived segment "
            << report["newest_archived_segment"] << ")\n";
  std::lock_guard l(mu);
  int failed_probes_before = 0;
  for (const auto& [k, j] : events) {
    if (k == "failover:primary-failed") break;
    if (k == "failover:probe-failed") failed_probes_before++;
  }
  EXPECT_EQ(failed_probes_before, 3);
}

}  // namespace
}  // namespace haven::dr

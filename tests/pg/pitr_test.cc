// Point-in-time recovery under a real PostgreSQL 15 server (tests/pg/pg_cluster.h): the haven
// CLI runs as the unprivileged user PostgreSQL runs as, archive_command is `haven wal-push` with
// a WAL key file, base backups are `haven pg backup`, restores are `haven pg restore --start`.
//
//   - recovery to a timestamp gives exactly the state committed before it, and --latest the
//     state at the end of the archive; `pg windows` names the window;
//   - a target outside the window is refused before anything is written, naming the window;
//   - wal-push/wal-fetch on segments the server archived: identical re-push succeeds, different
//     bytes under a taken name fail loudly and change nothing, a missing name is a quiet exit 1;
//   - a second base backup stores only what changed (incremental reads little, full reads all);
//   - an incremental keeps a relation's unchanged pages as slices of its parent's blobs and
//     restores exactly, also when taken while pgbench writes.
//
// Needs PostgreSQL 15 from Debian's packages (scripts/setup.sh) and root (to run as nobody).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"
#pragma GCC diagnostic pop

#include "pg/pg_cluster.h"
#include "pg/wal.h"
#include "pg/wal_pages.h"

namespace haven {
namespace {

using haven::testing::kNobody;
using haven::testing::PgCluster;
using haven::testing::PgTempDir;

bool path_exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

std::string file_bytes(const std::string& p) { return haven::testing::slurp(p); }

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// A UTC timestamp in RFC 3339 with microseconds, from the server's clock (`expr`: a timestamptz).
std::string utc_sql(const std::string& expr) {
  return "SELECT to_char((" + expr + ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

class PgPitrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = haven::testing::pg_missing();
    ASSERT_TRUE(missing.empty()) << missing;
    HAVEN_SKIP_UNLESS_ROOT("runs PostgreSQL and haven as nobody");
    tmp_ = std::make_unique<PgTempDir>();
    ASSERT_FALSE(tmp_->path().empty());
    dir_ = tmp_->path();
    haven_ = binary_for(kNobody);
    ASSERT_NE(haven_, std::string(HAVEN_BINARY)) << "no world-executable copy of the haven binary in /tmp";

    RunResult r = hv({"init", "--kdf-memory", "8", "--kdf-iterations", "1"});
    ASSERT_EQ(r.code, 0) << describe(r);
    r = hv({"pg", "archive-key", "--output", key()});
    ASSERT_EQ(r.code, 0) << describe(r);

    // archive_command runs in the data directory. Clusters restored from a base backup carry
    // the same postgresql.conf: they skip archiving (as one does for a test restore), so that
    // their new timelines never enter the original's archive.
    const std::string archive_command = "if [ \"$(pwd -P)\" != \"" + data() + "\" ]; then exit 0; fi; exec " +
                                        haven_ + " -r " + repo() + " wal-push --wal-key-file " + key() + " %p";
    pg_ = PgCluster::create(data(), dir_, archive_command);
    ASSERT_TRUE(pg_->ok());
    ASSERT_TRUE(pg_->start());
    auto b = pg_->pgbench({"-i", "-s", "1", "-q"});
    ASSERT_EQ(b.code, 0) << b.describe();
  }

  void TearDown() override {
    restored_.clear();
    pg_.reset();
    tmp_.reset();  // removes the directory unless the test failed
  }

  std::string repo() const { return dir_ + "/repo"; }
  std::string key() const { return dir_ + "/wal.key"; }
  std::string data() const { return dir_ + "/data"; }

  RunResult hv(const std::vector<std::string>& args, int timeout_ms = 120000) {
    RunOptions o;
    o.uid = kNobody;
    o.env = {{"HOME", dir_}, {"LC_ALL", "C"}};
    o.timeout_ms = timeout_ms;
    return cli(repo(), args, o);
  }

  RunResult pg_backup(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a{"pg", "backup", "--pgdata", data(), "--conninfo", pg_->conninfo()};
    a.insert(a.end(), extra.begin(), extra.end());
    return hv(a);
  }

  // The "summary" event of a --json run.
  static nlohmann::json summary_of(const RunResult& r) {
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("message_type", "") == "summary") return j;
    }
    ADD_FAILURE() << "no summary line in --json output:\n" << describe(r);
    return nlohmann::json::object();
  }

  // Everything the tests write, in one comparable line.
  static std::string state(const PgCluster& c) {
    std::string s = c.psql(
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || '/' || (SELECT count(*) FROM pgbench_accounts) || '/' || "
        "(SELECT sum(bbalance) FROM pgbench_branches) || '/' || (SELECT sum(tbalance) FROM pgbench_tellers) || '/' || "
        "(SELECT count(*) FROM pgbench_history) || '/' || "
        "(SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class "
        " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace)");
    if (c.psql("SELECT to_regclass('public.t1') IS NOT NULL") == "t") {
      s += "/t1:" + c.psql("SELECT count(*) || ':' || md5(string_agg(x || '=' || y, ';' ORDER BY x)) FROM t1");
    }
    return s;
  }

  // `pg restore … --start` into dir_/<name> on a fresh port; the running server, or null.
  PgCluster* restore_and_start(const std::string& name, const std::vector<std::string>& target_args) {
    const int port = PgCluster::free_port();
    std::vector<std::string> a{"pg", "restore", "--target", dir_ + "/" + name, "--port", std::to_string(port),
                               "--start", "--wait", "90"};
    a.insert(a.end(), target_args.begin(), target_args.end());
    RunResult r = hv(a, 150000);
    // Attach first: a server left running after a failure is stopped at the end too.
    restored_.push_back(PgCluster::attach(dir_ + "/" + name, dir_, port));
    EXPECT_EQ(r.code, 0) << describe(r) << "\n--- recovery log ---\n"
                         << PgCluster::tail(file_bytes(dir_ + "/" + name + "/haven-recovery.log"), 6000);
    if (r.code != 0) return nullptr;
    EXPECT_TRUE(contains(r.out, "recovery finished")) << describe(r);
    return restored_.back().get();
  }

  // Archives what the server has written, restores the latest point into dir_/restored and
  // expects it to hold the server's state, every account row included; the restored server.
  PgCluster* restore_latest_and_compare() {
    const std::string accounts =
        "SELECT md5(string_agg(aid || ':' || bid || ':' || abalance || ':' || filler, ',' ORDER BY aid)) "
        "FROM pgbench_accounts";
    const std::string want = state(*pg_), want_accounts = pg_->psql(accounts);
    EXPECT_TRUE(pg_->wait_archived(pg_->switch_wal()));
    PgCluster* restored = restore_and_start("restored", {"--latest"});
    if (restored == nullptr) return nullptr;
    EXPECT_EQ(state(*restored), want);
    EXPECT_EQ(restored->psql(accounts), want_accounts);
    return restored;
  }

  std::unique_ptr<PgTempDir> tmp_;
  std::string dir_, haven_;
  std::unique_ptr<PgCluster> pg_;
  std::vector<std::unique_ptr<PgCluster>> restored_;
};

TEST_F(PgPitrTest, PointInTimeRecoveryToATimestampAndToTheLatest) {
  RunResult r = pg_backup({"--row-counts"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "base backup ") && contains(r.out, "timeline 1")) << describe(r);

  // Before the target: committed transactions of several kinds.
  auto b = pg_->pgbench({"-n", "-t", "50", "-c", "2"});
  ASSERT_EQ(b.code, 0) << b.describe();
  pg_->psql("CREATE TABLE t1 (x int PRIMARY KEY, y text)");
  pg_->psql("INSERT INTO t1 SELECT g, md5(g::text) FROM generate_series(1, 1000) g");
  pg_->psql("UPDATE t1 SET y = 'early' WHERE x % 10 = 0");
  pg_->psql("UPDATE pgbench_accounts SET abalance = abalance - 3 WHERE aid <= 500");
  const std::string s1 = state(*pg_);
  ASSERT_TRUE(contains(s1, "/t1:1000:")) << s1;

  sleep_ms(1100);
  const std::string t = pg_->psql(utc_sql("now()"));
  ASSERT_FALSE(t.empty());
  sleep_ms(1100);

  // After it: each write its own committed transaction.
  pg_->psql("UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid <= 100");
  pg_->psql("INSERT INTO t1 VALUES (5000, 'late')");
  b = pg_->pgbench({"-n", "-t", "20", "-c", "2"});
  ASSERT_EQ(b.code, 0) << b.describe();
  pg_->psql("DROP TABLE t1");
  pg_->psql("UPDATE pgbench_branches SET bbalance = bbalance + 11");
  const std::string final_state = state(*pg_);
  ASSERT_NE(final_state, s1);
  ASSERT_FALSE(contains(final_state, "t1")) << final_state;
  // The switch in its own statement, after the commits: the last one must be archived.
  const std::string seg = pg_->switch_wal();
  ASSERT_TRUE(pg_->wait_archived(seg));

  r = hv({"pg", "windows"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "timeline 1:")) << describe(r);
  EXPECT_TRUE(contains(r.out, "1 base backup(s)")) << describe(r);
  r = hv({"--json", "pg", "windows"});
  ASSERT_EQ(r.code, 0) << describe(r);
  auto wj = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(wj.is_array() && wj.size() == 1) << describe(r);
  EXPECT_EQ(wj[0].value("timeline", 0), 1);
  EXPECT_EQ(wj[0].value("base_backups", 0), 1);
  EXPECT_GE(wj[0].value("last_segment", std::string()), seg) << describe(r);

  // To the timestamp: exactly the state committed before it.
  PgCluster* at_t = restore_and_start("at-t", {"--time", t});
  ASSERT_NE(at_t, nullptr);
  EXPECT_EQ(at_t->psql("SELECT pg_is_in_recovery()"), "f") << "the restored server should have been promoted";
  EXPECT_EQ(state(*at_t), s1) << "recovered to " << t;
  EXPECT_EQ(at_t->psql("SELECT y FROM t1 WHERE x = 10"), "early");
  EXPECT_EQ(at_t->psql("SELECT count(*) FROM t1 WHERE x = 5000"), "0");
  // A copy never archives into the original's repository unless asked to.
  EXPECT_EQ(at_t->psql("SHOW archive_mode"), "off");
  // Its start made the restored files durable with one syncfs, not a pass fsyncing each file,
  // and only for that start: the configuration does not keep it.
  EXPECT_EQ(at_t->psql("SHOW recovery_init_sync_method"), "syncfs");
  EXPECT_FALSE(contains(file_bytes(dir_ + "/at-t/postgresql.auto.conf"), "recovery_init_sync_method"));
  // Validation: sound, and its row counts match what the backup recorded where nothing changed.
  r = hv({"pg", "validate", "--conninfo", at_t->conninfo(), "--against", "latest"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "validation: connected")) << describe(r);
  EXPECT_TRUE(contains(r.out, "index(es) checked with amcheck")) << describe(r);
  EXPECT_TRUE(contains(r.out, "row counts vs backup time")) << describe(r);
  // Rows that break a foreign key (inserted with triggers off) fail it, named.
  at_t->psql("CREATE TABLE parent (id int PRIMARY KEY)");
  at_t->psql("CREATE TABLE child (pid int REFERENCES parent (id))");
  at_t->psql("INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1)");
  at_t->psql("SET session_replication_role = replica; INSERT INTO child VALUES (42), (43)");
  r = hv({"pg", "validate", "--conninfo", at_t->conninfo()});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "foreign key child_pid_fkey") && contains(r.err, "2 row(s)")) << describe(r);
  at_t->stop();
  // The original is untouched by the restore.
  EXPECT_EQ(state(*pg_), final_state);

  // To the end of the archive: the original's current state.
  PgCluster* latest = restore_and_start("latest", {"--latest"});
  ASSERT_NE(latest, nullptr);
  EXPECT_EQ(latest->psql("SELECT pg_is_in_recovery()"), "f");
  EXPECT_EQ(state(*latest), final_state);
  EXPECT_EQ(latest->psql("SELECT to_regclass('public.t1') IS NULL"), "t") << "t1 was dropped before the end";
  latest->stop();
}

TEST_F(PgPitrTest, ATimeOutsideTheWindowIsRefused) {
  RunResult r = pg_backup();
  ASSERT_EQ(r.code, 0) << describe(r);
  pg_->psql("CREATE TABLE t2 AS SELECT 1 AS x");
  ASSERT_TRUE(pg_->wait_archived(pg_->switch_wal()));

  const std::string before = pg_->psql(utc_sql("now() - interval '1 hour'"));
  const std::string target = dir_ + "/refused";
  r = hv({"pg", "restore", "--target", target, "--time", before, "--start", "--wait", "30"});
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_EQ(r.code, 2) << "a target outside the window is a usage error: " << describe(r);
  EXPECT_FALSE(path_exists(target)) << "a refused restore must create nothing";
  EXPECT_TRUE(contains(r.err, "recoverable")) << describe(r);
  EXPECT_TRUE(contains(r.err, "timeline 1")) << describe(r);

  const std::string future = pg_->psql(utc_sql("now() + interval '1 hour'"));
  r = hv({"pg", "restore", "--target", target, "--time", future, "--start", "--wait", "30"});
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_FALSE(path_exists(target)) << "a refused restore must create nothing";
  EXPECT_TRUE(contains(r.err, "recoverable")) << describe(r);
  EXPECT_TRUE(contains(r.err, "timeline 1")) << describe(r);
  EXPECT_TRUE(contains(r.err, "future")) << describe(r);

  r = hv({"pg", "restore", "--target", target, "--lsn", "zz"});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "LSN")) << describe(r);
  EXPECT_FALSE(path_exists(target));

  // A repository given by a relative path: restore_command (run by PostgreSQL inside the data
  // directory) must name it absolutely.
  {
    // Run from the test directory (the build tree may be closed to nobody, e.g. under /root).
    const std::string rel = fs::relative(repo(), dir_).string();
    ASSERT_NE(rel[0], '/') << rel;
    RunOptions o;
    o.uid = kNobody;
    o.cwd = dir_;
    o.env = {{"HOME", dir_}, {"LC_ALL", "C"}};
    RunResult rr = cli(rel, {"pg", "restore", "--target", dir_ + "/relative", "--latest"}, o);
    ASSERT_EQ(rr.code, 0) << describe(rr);
    const std::string conf = file_bytes(dir_ + "/relative/postgresql.auto.conf");
    EXPECT_TRUE(contains(conf, "-r ''" + repo() + "''")) << conf;
    EXPECT_TRUE(contains(conf, "archive_mode = 'off'")) << conf;
  }

  // Nothing of the refusals reached the repository or the server.
  EXPECT_EQ(pg_->psql("SELECT count(*) FROM t2"), "1");
}

TEST_F(PgPitrTest, WalPushIsIdempotentAndRefusesDifferentContents) {
  RunResult r = pg_backup();
  ASSERT_EQ(r.code, 0) << describe(r);
  pg_->psql("CREATE TABLE t3 AS SELECT g AS x FROM generate_series(1, 5000) g");
  const std::string seg = pg_->switch_wal();
  ASSERT_TRUE(pg_->wait_archived(seg));
  ASSERT_TRUE(path_exists(repo() + "/wal/" + seg)) << "archived by the server through wal-push";

  auto nobody_dir = [&](const std::string& name) {
    std::string d = dir_ + "/" + name;
    EXPECT_EQ(::mkdir(d.c_str(), 0755), 0) << d;
    EXPECT_EQ(::chown(d.c_str(), kNobody, kNobody), 0) << d;
    return d;
  };
  const std::string same = nobody_dir("same"), diff = nobody_dir("diff"), again = nobody_dir("again");

  r = hv({"wal-fetch", "--wal-key-file", key(), seg, same + "/" + seg});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string original = file_bytes(same + "/" + seg);
  ASSERT_EQ(original.size(), 16u << 20) << "a whole WAL segment";
  const std::string in_pg_wal = data() + "/pg_wal/" + seg;
  if (path_exists(in_pg_wal)) {
    EXPECT_TRUE(file_bytes(in_pg_wal) == original) << "the fetched segment differs from the server's " << in_pg_wal;
  }
  r = hv({"wal-fetch", "--wal-key-file", key(), seg, again + "/" + seg});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(file_bytes(again + "/" + seg) == original);
  ASSERT_EQ(::unlink((again + "/" + seg).c_str()), 0);

  // The identical bytes again: success (PostgreSQL retries archive_command after a crash).
  const std::string stored_before = file_bytes(repo() + "/wal/" + seg);
  r = hv({"wal-push", "--wal-key-file", key(), same + "/" + seg});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(file_bytes(repo() + "/wal/" + seg) == stored_before) << "an identical re-push rewrote the object";

  // Different bytes under the taken name: a loud failure that changes nothing.
  std::string changed = original;
  changed[8192 + 100] = static_cast<char>(changed[8192 + 100] ^ 0x5a);
  {
    std::ofstream out(diff + "/" + seg, std::ios::binary);
    out.write(changed.data(), static_cast<std::streamsize>(changed.size()));
  }
  ASSERT_EQ(::chown((diff + "/" + seg).c_str(), kNobody, kNobody), 0);
  r = hv({"wal-push", "--wal-key-file", key(), diff + "/" + seg});
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "different contents")) << describe(r);
  EXPECT_TRUE(file_bytes(repo() + "/wal/" + seg) == stored_before) << "a conflicting push changed the object";
  r = hv({"wal-fetch", "--wal-key-file", key(), seg, again + "/" + seg});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(file_bytes(again + "/" + seg) == original) << "the archive no longer returns the original segment";

  // A name past the end of the archive: exit 1, nothing on stderr, no file.
  const std::string missing = "00000001000000000000007F";
  ASSERT_FALSE(path_exists(repo() + "/wal/" + missing));
  r = hv({"wal-fetch", "--wal-key-file", key(), missing, again + "/" + missing});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_EQ(r.err, "") << describe(r);
  EXPECT_FALSE(path_exists(again + "/" + missing));

  // The server keeps archiving normally after all this.
  pg_->psql("INSERT INTO t3 VALUES (0)");
  ASSERT_TRUE(pg_->wait_archived(pg_->switch_wal()));
}

TEST_F(PgPitrTest, AnIncrementalBaseBackupStoresOnlyChangedData) {
  RunResult r = hv({"--json", "pg", "backup", "--pgdata", data(), "--conninfo", pg_->conninfo()});
  ASSERT_EQ(r.code, 0) << describe(r);
  auto first = summary_of(r)["stats"];
  ASSERT_TRUE(first.is_object()) << describe(r);
  EXPECT_EQ(first.value("bytes_read", uint64_t{0}), first.value("bytes_total", uint64_t{1})) << first.dump();
  EXPECT_GT(first.value("bytes_added", uint64_t{0}), 1u << 20) << first.dump();

  // A little change, then the second one (default strategy: incremental).
  pg_->psql("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 10");

  r = hv({"--json", "pg", "backup", "--pgdata", data(), "--conninfo", pg_->conninfo()});
  ASSERT_EQ(r.code, 0) << describe(r);
  auto inc = summary_of(r)["stats"];
  ASSERT_TRUE(inc.is_object()) << describe(r);
  const uint64_t total = inc.value("bytes_total", uint64_t{0});
  EXPECT_GT(total, 10u << 20) << "a scale-1 pgbench cluster holds more than 10 MiB: " << inc.dump();
  EXPECT_LT(inc.value("bytes_added", total), total / 5) << inc.dump();
  EXPECT_LT(inc.value("bytes_read", total), total / 2) << "incremental should skip unchanged files: " << inc.dump();

  r = hv({"--json", "pg", "backup", "--strategy", "full", "--pgdata", data(), "--conninfo", pg_->conninfo()});
  ASSERT_EQ(r.code, 0) << describe(r);
  auto full = summary_of(r)["stats"];
  ASSERT_TRUE(full.is_object()) << describe(r);
  const uint64_t ftotal = full.value("bytes_total", uint64_t{0});
  EXPECT_GT(ftotal, 10u << 20) << full.dump();
  EXPECT_EQ(full.value("bytes_read", uint64_t{0}), ftotal) << "full reads every file: " << full.dump();
  EXPECT_LT(full.value("bytes_added", ftotal), ftotal / 5) << "full still deduplicates: " << full.dump();

  // Every base backup is a snapshot tagged "pg" and they all make one window.
  RunResult s = hv({"--json", "snapshots"});
  ASSERT_EQ(s.code, 0) << describe(s);
  auto snaps = nlohmann::json::parse(s.out, nullptr, false);
  ASSERT_TRUE(snaps.is_array()) << describe(s);
  EXPECT_EQ(snaps.size(), 3u) << describe(s);
  for (const auto& sn : snaps) {
    auto tags = sn.value("tags", nlohmann::json::array());
    EXPECT_NE(std::find(tags.begin(), tags.end(), "pg"), tags.end()) << sn.dump();
  }
  r = hv({"pg", "windows"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "timeline 1:") && contains(r.out, "3 base backup(s)")) << describe(r);
}

// An incremental base backup reads a changed relation against its parent: only pages whose LSN
// is at or after the parent's start are stored, the rest are slices of the parent's blobs. The
// incremental restores (with the WAL after it) to exactly the server's state.
TEST_F(PgPitrTest, AnIncrementalKeepsUnchangedPagesAndRestoresExactly) {
  RunResult r = hv({"--json", "pg", "backup", "--pgdata", data(), "--conninfo", pg_->conninfo()});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(summary_of(r)["stats"].count("pages_changed"), 0u) << "a backup without a parent read pages against one";

  // A few scattered rows change, and a new table is created (a new file: read whole).
  pg_->psql("UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid % 20000 = 1 OR aid <= 5");
  pg_->psql("CREATE TABLE t1 (x int PRIMARY KEY, y text)");
  pg_->psql("INSERT INTO t1 SELECT g, md5(g::text) FROM generate_series(1, 1000) g");
  r = hv({"--json", "pg", "backup", "--pgdata", data(), "--conninfo", pg_->conninfo()});
  ASSERT_EQ(r.code, 0) << describe(r);
  auto inc = summary_of(r)["stats"];
  const uint64_t changed = inc.value("pages_changed", uint64_t{0}), reused = inc.value("pages_reused", uint64_t{0});
  // pgbench_accounts alone holds over 1,600 pages at scale 1; a handful of them changed (with
  // their index pages and the catalog's).
  EXPECT_GT(reused, 1600u) << inc.dump();
  EXPECT_GT(changed, 0u) << inc.dump();
  EXPECT_LT(changed, reused / 10) << inc.dump();
  EXPECT_LT(inc.value("bytes_added", uint64_t{0}), 4u << 20) << inc.dump();
  // The changed pages came from the WAL: the relations' other pages were not even read.
  EXPECT_LT(inc.value("bytes_read", uint64_t{0}), inc.value("bytes_total", uint64_t{0}) / 4) << inc.dump();

  // More changes after the incremental, then a restore of the latest point.
  pg_->psql("UPDATE pgbench_accounts SET abalance = abalance - 3 WHERE aid % 30000 = 2");
  pg_->psql("INSERT INTO t1 SELECT g, 'late ' || g FROM generate_series(1001, 1100) g");
  PgCluster* restored = restore_latest_and_compare();
  ASSERT_NE(restored, nullptr);
  // Every index agrees with its table (an index page taken from the wrong backup would not).
  EXPECT_EQ(restored->psql("SELECT count(*) FROM pgbench_accounts WHERE aid BETWEEN 1 AND 100000"), "100000");
  EXPECT_EQ(restored->psql("SET enable_seqscan = off; SELECT count(*) FROM t1 WHERE x > 0"), "1100");
}

// Pages that change while an incremental reads them (pgbench runs through the backup) come
// back from the WAL replayed after it: the restore equals the server once the load stopped.
TEST_F(PgPitrTest, AnIncrementalTakenUnderLoadRestoresExactly) {
  RunResult r = pg_backup();
  ASSERT_EQ(r.code, 0) << describe(r);
  auto before = pg_->pgbench({"-n", "-c", "2", "-t", "300"});
  ASSERT_EQ(before.code, 0) << before.describe();
  haven::testing::CmdResult during;
  std::thread load([&] { during = pg_->pgbench({"-n", "-c", "2", "-T", "4"}); });
  sleep_ms(500);
  r = hv({"--json", "pg", "backup", "--pgdata", data(), "--conninfo", pg_->conninfo()});
  load.join();
  ASSERT_EQ(r.code, 0) << describe(r);
  ASSERT_EQ(during.code, 0) << during.describe();
  auto inc = summary_of(r)["stats"];
  EXPECT_GT(inc.value("pages_reused", uint64_t{0}), 0u) << inc.dump();
  EXPECT_GT(inc.value("pages_changed", uint64_t{0}), 0u) << inc.dump();

  EXPECT_NE(restore_latest_and_compare(), nullptr);
}

// The block references Haven reads from real WAL are exactly those PostgreSQL's own reader
// (pg_waldump) lists, for the main forks, between a checkpoint's redo position and a later one.
TEST_F(PgPitrTest, TheBlocksReadFromRealWalAreWhatPgWaldumpLists) {
  pg_->psql("CHECKPOINT");
  const std::string from_text = pg_->psql("SELECT redo_lsn FROM pg_control_checkpoint()");
  auto b = pg_->pgbench({"-n", "-c", "2", "-t", "200"});
  ASSERT_EQ(b.code, 0) << b.describe();
  pg_->psql("CREATE TABLE t9 AS SELECT g AS x FROM generate_series(1, 5000) g");
  pg_->psql("VACUUM pgbench_accounts");
  const std::string to_text = pg_->psql("SELECT pg_current_wal_insert_lsn()");
  ASSERT_TRUE(pg_->wait_archived(pg_->switch_wal()));
  const uint64_t from = *pg::parse_lsn(from_text), to = *pg::parse_lsn(to_text);
  const uint64_t seg = std::stoull(pg_->psql("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"));

  auto blocks = pg::wal_changed_blocks(from, to, 1, seg, [&](const std::string& name) -> Result<Bytes> {
    std::string bytes = file_bytes(data() + "/pg_wal/" + name);
    if (bytes.empty()) return Error(Error::Code::kNotFound, name);
    return Bytes(bytes.begin(), bytes.end());
  });
  ASSERT_OK(blocks);
  std::set<std::string> ours;
  for (const auto& [rel, list] : blocks->blocks) {
    for (uint32_t blk : list) {
      ours.insert(std::to_string(rel.spc) + "/" + std::to_string(rel.db) + "/" + std::to_string(rel.rel) + " " +
                  std::to_string(blk));
    }
  }
  auto dump = haven::testing::run_cmd({haven::testing::kPgBin + "/pg_waldump", "-p", data() + "/pg_wal", "-s", from_text,
                                       "-e", to_text});
  ASSERT_EQ(dump.code, 0) << dump.describe();
  std::set<std::string> theirs;
  static const std::regex ref(R"(blkref #\d+: rel (\d+)/(\d+)/(\d+)( fork (\w+))? blk (\d+))");
  for (auto it = std::sregex_iterator(dump.out.begin(), dump.out.end(), ref); it != std::sregex_iterator(); ++it) {
    const auto& m = *it;
    if (m[5].matched && m[5].str() != "main") continue;
    theirs.insert(m[1].str() + "/" + m[2].str() + "/" + m[3].str() + " " + m[6].str());
  }
  EXPECT_GT(theirs.size(), 100u) << "pg_waldump listed few block references:\n" << dump.out.substr(0, 2000);
  EXPECT_EQ(ours, theirs);
  // CREATE TABLE t9 created a relation (its file is read whole, not by its block references).
  const uint32_t t9 = static_cast<uint32_t>(std::stoul(pg_->psql("SELECT relfilenode FROM pg_class WHERE relname = 't9'")));
  EXPECT_TRUE(std::any_of(blocks->created_or_truncated.begin(), blocks->created_or_truncated.end(),
                          [&](const pg::RelationId& r) { return r.rel == t9; }));
  // A segment that is not there, or WAL of another timeline, is an error (the caller then
  // reads the relations), never a shorter list.
  auto missing = pg::wal_changed_blocks(from, to, 1, seg, [](const std::string& name) -> Result<Bytes> {
    return Error(Error::Code::kNotFound, name);
  });
  EXPECT_FALSE(missing.ok());
  auto other = pg::wal_changed_blocks(from, to, 2, seg, [&](const std::string& name) -> Result<Bytes> {
    std::string bytes = file_bytes(data() + "/pg_wal/" + "00000001" + name.substr(8));
    return Bytes(bytes.begin(), bytes.end());
  });
  EXPECT_FALSE(other.ok());
}

}  // namespace
}  // namespace haven

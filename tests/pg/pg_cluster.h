// tests/pg/pg_cluster.h — a real PostgreSQL 15 cluster for the tests (Debian's packages, as
// scripts/setup.sh installs them): a fresh temporary directory owned by the unprivileged user
// "nobody" (PostgreSQL refuses to run as root), initdb, a few postgresql.conf settings (a free
// port, no TCP listener, the socket in the temp directory, fsync off, archiving with the
// test's archive_command), pg_ctl start/stop as nobody, psql as the postgres superuser over the
// socket, and a wait for the archiver. A second instance attaches to an existing data directory
// (a cluster `haven pg restore --start` started) so that it can be queried and is stopped at
// the end too. Header-only, test-only.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "integration/loopback.h"

extern char** environ;

namespace haven::testing {

inline constexpr int kNobody = 65534;  // uid and gid of "nobody"/"nogroup" on Debian
inline const std::string kPgBin = "/usr/lib/postgresql/15/bin";

// Where psql is: the version's own binary, else Debian's wrapper.
inline std::string pg_psql() {
  if (::access((kPgBin + "/psql").c_str(), X_OK) == 0) return kPgBin + "/psql";
  return "/usr/bin/psql";
}
inline std::string pg_pgbench() {
  if (::access((kPgBin + "/pgbench").c_str(), X_OK) == 0) return kPgBin + "/pgbench";
  return "/usr/bin/pgbench";
}

// "" if everything the tests need is installed, else what is missing and how to get it.
inline std::string pg_missing() {
  std::string missing;
  for (const std::string& b : {kPgBin + "/initdb", kPgBin + "/pg_ctl", kPgBin + "/postgres", pg_psql(), pg_pgbench()}) {
    if (::access(b.c_str(), X_OK) != 0) missing += " " + b;
  }
  if (::access("/usr/bin/setpriv", X_OK) != 0 && ::geteuid() != 0) missing += " (not root: cannot switch to nobody)";
  if (missing.empty()) return "";
  return "PostgreSQL 15 is not installed (missing:" + missing +
         "): run scripts/setup.sh, which installs postgresql-15 and libpq, then re-run test_pg";
}

struct CmdResult {
  int code = -1;
  std::string out, err;
  bool timed_out = false;
  std::string describe() const {
    std::ostringstream os;
    os << "exit " << code << (timed_out ? " (timed out)" : "") << "\n--- stdout ---\n"
       << out.substr(0, 4000) << "\n--- stderr ---\n"
       << err.substr(0, 4000);
    return os.str();
  }
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// Runs argv (argv[0] an absolute path) as `uid` (-1: as the caller), with the caller's
// environment minus PG* and HAVEN_* plus `env`. Output goes to temporary files, not pipes: pg_ctl
// leaves a server running that must not hold our end open.
inline CmdResult run_cmd(const std::vector<std::string>& args,
                         const std::vector<std::pair<std::string, std::string>>& env = {}, int uid = -1,
                         int timeout_ms = 120000) {
  CmdResult r;
  char out_t[] = "/tmp/haven-pgcmd-out-XXXXXX";
  char err_t[] = "/tmp/haven-pgcmd-err-XXXXXX";
  int out_fd = ::mkstemp(out_t), err_fd = ::mkstemp(err_t);
  if (out_fd < 0 || err_fd < 0) {
    r.err = std::string("mkstemp: ") + std::strerror(errno);
    return r;
  }
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string s = *e;
    if (s.rfind("PG", 0) == 0 || s.rfind("HAVEN_", 0) == 0) continue;
    env_s.push_back(s);
  }
  for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
  std::vector<std::string> argv_s = args;
  std::vector<char*> argv, envp;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    r.err = std::string("fork: ") + std::strerror(errno);
    return r;
  }
  if (pid == 0) {
    ::setsid();
    int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    if (uid >= 0) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(static_cast<gid_t>(uid)) != 0 ||
          ::setuid(static_cast<uid_t>(uid)) != 0) {
        _exit(125);
      }
    }
    // Everything else closed: a server started from here must not keep our descriptors.
    for (int fd = 3; fd < 1024; fd++) ::close(fd);
    ::execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (std::chrono::steady_clock::now() > deadline) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(status)) r.code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) r.code = 128 + WTERMSIG(status);
  r.out = slurp(out_t);
  r.err = slurp(err_t);
  ::unlink(out_t);
  ::unlink(err_t);
  return r;
}

inline std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == '\n' || s[i] == ' ' || s[i] == '\t')) i++;
  return s.substr(i);
}

// A temporary directory owned by nobody (mode 0755). Removed at the end unless the test
// failed: then it stays, and its path is printed.
class PgTempDir {
 public:
  PgTempDir() {
    char tmpl[] = "/tmp/haven-pg-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
      return;
    }
    path_ = tmpl;
    ::chmod(path_.c_str(), 0755);
    if (::chown(path_.c_str(), kNobody, kNobody) != 0) {
      ADD_FAILURE() << "chown " << path_ << " to nobody: " << std::strerror(errno) << " (run the tests as root)";
    }
  }
  ~PgTempDir() {
    if (path_.empty()) return;
    if (::testing::Test::HasFailure() || keep_) {
      std::cerr << "[pg] kept the test directory " << path_ << " (server logs: data.log, <restore target>/haven-recovery.log)\n";
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  PgTempDir(const PgTempDir&) = delete;
  PgTempDir& operator=(const PgTempDir&) = delete;
  const std::string& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

// One PostgreSQL server: either created here (create(): initdb + start()) or attached to a data
// directory a command started (attach()). The destructor stops it (immediate mode).
class PgCluster {
 public:
  // initdb in `datadir` (absent; its parent owned by nobody) with the socket in `sockdir`, a free
  // port and `archive_command`; does not start it. Failures are gtest failures; check ok().
  static std::unique_ptr<PgCluster> create(const std::string& datadir, const std::string& sockdir,
                                           const std::string& archive_command) {
    auto c = std::unique_ptr<PgCluster>(new PgCluster(datadir, sockdir, free_port()));
    CmdResult r = c->as_nobody({kPgBin + "/initdb", "-D", datadir, "-U", "postgres", "--auth=trust", "-N",
                                "-E", "UTF8", "--locale=C"});
    if (r.code != 0) {
      ADD_FAILURE() << "initdb failed: " << r.describe();
      return c;
    }
    std::ofstream conf(datadir + "/postgresql.conf", std::ios::app);
    conf << "\n# haven tests\n"
         << "port = " << c->port_ << "\n"
         << "listen_addresses = ''\n"
         << "unix_socket_directories = '" << sockdir << "'\n"
         << "fsync = off\n"
         << "full_page_writes = on\n"
         << "wal_level = replica\n"
         << "archive_mode = on\n"
         << "archive_command = '" << conf_escape(archive_command) << "'\n"
         << "archive_timeout = 0\n"
         << "max_wal_senders = 2\n"
         << "shared_buffers = 32MB\n"
         << "log_min_messages = info\n";
    conf.close();
    if (!conf) {
      ADD_FAILURE() << "cannot append to " << datadir << "/postgresql.conf";
      return c;
    }
    c->initialized_ = true;
    return c;
  }

  // A server on an existing data directory at `port` (already running, or to be started).
  static std::unique_ptr<PgCluster> attach(const std::string& datadir, const std::string& sockdir, int port) {
    auto c = std::unique_ptr<PgCluster>(new PgCluster(datadir, sockdir, port));
    c->initialized_ = true;
    c->attached_ = true;
    c->running_ = true;  // stop() in the destructor; harmless if it is not running
    return c;
  }

  ~PgCluster() { stop(); }
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  bool ok() const { return initialized_; }
  int port() const { return port_; }
  const std::string& datadir() const { return datadir_; }
  const std::string& sockdir() const { return sockdir_; }
  // The server log: <datadir>.log for a cluster started here, haven's log for an attached one.
  std::string log_path() const { return attached_ ? datadir_ + "/haven-recovery.log" : datadir_ + ".log"; }
  std::string conninfo() const {
    return "host=" + sockdir_ + " port=" + std::to_string(port_) + " user=postgres dbname=postgres";
  }

  ::testing::AssertionResult start() {
    CmdResult r = as_nobody({kPgBin + "/pg_ctl", "-D", datadir_, "-l", log_path(), "-w", "-t", "60", "start"});
    if (r.code != 0) {
      return ::testing::AssertionFailure() << "pg_ctl start failed: " << r.describe() << "\n--- server log ---\n"
                                           << slurp(log_path()).substr(0, 6000);
    }
    running_ = true;
    return ::testing::AssertionSuccess();
  }

  // Immediate stop (no shutdown checkpoint: the tests do not need one). Idempotent.
  void stop() {
    if (!running_) return;
    running_ = false;
    struct stat st;
    if (::stat((datadir_ + "/postmaster.pid").c_str(), &st) != 0) return;
    CmdResult r = as_nobody({kPgBin + "/pg_ctl", "-D", datadir_, "-m", "immediate", "-w", "-t", "30", "stop"});
    if (r.code != 0 && ::stat((datadir_ + "/postmaster.pid").c_str(), &st) == 0) {
      std::cerr << "[pg] pg_ctl stop " << datadir_ << ": " << r.describe() << "\n";
    }
  }

  // psql -qAtX: runs `sql` (one -c: one implicit transaction), returns the trimmed output.
  CmdResult psql_result(const std::string& sql) const {
    return run_cmd({pg_psql(), "-qAtX", "-v", "ON_ERROR_STOP=1", "-h", sockdir_, "-p", std::to_string(port_), "-U",
                    "postgres", "-d", "postgres", "-c", sql});
  }
  std::string psql(const std::string& sql) const {
    CmdResult r = psql_result(sql);
    EXPECT_EQ(r.code, 0) << "psql -p " << port_ << " -c \"" << sql << "\": " << r.describe();
    return trim(r.out);
  }

  // pgbench with `args` against this server (as root over the socket).
  CmdResult pgbench(const std::vector<std::string>& args) const {
    std::vector<std::string> a{pg_pgbench(), "-h", sockdir_, "-p", std::to_string(port_), "-U", "postgres"};
    a.insert(a.end(), args.begin(), args.end());
    a.push_back("postgres");
    return run_cmd(a);
  }

  // Switches to a new WAL segment; returns the name of the one it finished.
  std::string switch_wal() const { return psql("SELECT pg_walfile_name(pg_switch_wal())"); }

  // Waits until the archiver has archived `segment` (or a later segment of the same timeline).
  ::testing::AssertionResult wait_archived(const std::string& segment, int timeout_ms = 30000) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::string last;
    for (;;) {
      CmdResult r = psql_result(
          "SELECT coalesce(last_archived_wal, '') || '|' || failed_count || '|' || coalesce(last_failed_wal, '') "
          "FROM pg_stat_archiver");
      last = trim(r.out);
      std::string wal = last.substr(0, last.find('|'));
      // A .backup or .history file names no finished segment: only plain names count.
      if (wal.size() >= 24) {
        std::string seg = wal.substr(0, 24);
        if (seg > segment || (seg == segment && wal.size() == 24)) return ::testing::AssertionSuccess();
      }
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return ::testing::AssertionFailure() << segment << " not archived within " << timeout_ms
                                         << " ms; pg_stat_archiver (last|failed|last failed): " << last
                                         << "\n--- server log ---\n" << tail(slurp(log_path()), 6000);
  }

  static std::string tail(const std::string& s, size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }

  // Runs argv as nobody with HOME set to the socket directory.
  CmdResult as_nobody(const std::vector<std::string>& args, int timeout_ms = 120000) const {
    return run_cmd(args, {{"HOME", sockdir_}, {"LC_ALL", "C"}}, ::geteuid() == 0 ? kNobody : -1, timeout_ms);
  }

  // A free port: free on the loopback interface (the server listens on its socket only, but
  // the socket's name carries the port, and other test servers use TCP).
  static int free_port() {
    for (int i = 0; i < 50; i++) {
      int p = loopback_free_port();
      if (p > 1024 && p < 65000) return p;
    }
    return 0;
  }

 private:
  PgCluster(std::string datadir, std::string sockdir, int port)
      : datadir_(std::move(datadir)), sockdir_(std::move(sockdir)), port_(port) {}

  // postgresql.conf strings: quotes doubled, backslashes escaped.
  static std::string conf_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c == '\'') out += "''";
      else if (c == '\\') out += "\\\\";
      else out += c;
    }
    return out;
  }

  std::string datadir_, sockdir_;
  int port_ = 0;
  bool initialized_ = false, running_ = false, attached_ = false;
};

}  // namespace haven::testing

#include "pg/server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "util/cancel.h"
#include "util/subprocess.h"

namespace haven::pg {

namespace {

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

std::string log_tail(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);) all.push_back(l);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); i++) out += "\n  " + all[i];
  return out;
}

// Runs argv as `uid`/`gid` (when root), waits; returns the exit status. Honours the calling
// thread's cancel token (the child is stopped).
Result<int> run_as(const std::vector<std::string>& args, uid_t uid, gid_t gid) {
  SpawnOptions so;
  so.argv = args;
  so.uid = uid;
  so.gid = gid;
  HAVEN_ASSIGN(Subprocess child, Subprocess::spawn(so));
  return child.wait(current_cancel());
}

// The postmaster's status, line 8 of postmaster.pid ("starting", "standby", "ready",
// "stopping"; PostgreSQL pads it with spaces), or "" if there is none yet.
std::string postmaster_status(const std::string& datadir) {
  std::ifstream in(datadir + "/postmaster.pid");
  std::string line;
  for (int i = 0; i < 8 && std::getline(in, line); i++) {
    if (i == 7) return line.substr(0, line.find(' '));
  }
  return "";
}

// The cluster state recorded in global/pg_control: ControlFileData.state, a 4-byte enum after
// the 8-byte system identifier and two 4-byte version numbers (PostgreSQL 9.x to 17; host byte
// order). 6 is DB_IN_PRODUCTION. nullopt if the file cannot be read.
std::optional<uint32_t> control_state(const std::string& datadir) {
  std::ifstream in(datadir + "/global/pg_control", std::ios::binary);
  char buf[20];
  if (!in.read(buf, sizeof(buf))) return std::nullopt;
  uint32_t state;
  std::memcpy(&state, buf + 16, sizeof(state));
  return state;
}
constexpr uint32_t kDbInProduction = 6;

// The first line of the cluster's PG_VERSION ("15", or "9.6"), empty if unreadable.
std::string pg_version(const std::string& datadir) {
  std::ifstream in(datadir + "/PG_VERSION");
  std::string major;
  std::getline(in, major);
  return major;
}

// The major version as a number ("9.6" as 9), 0 if unreadable.
int major_version(const std::string& datadir) { return std::atoi(pg_version(datadir).c_str()); }

}  // namespace

Result<std::string> find_pg_bin(const std::string& datadir, const std::string& bin_dir) {
  if (!bin_dir.empty()) {
    if (!exists(bin_dir + "/pg_ctl")) {
      return Error(Error::Code::kInvalidArgument, bin_dir + " has no pg_ctl: pass PostgreSQL's bin directory");
    }
    return bin_dir;
  }
  const std::string major = pg_version(datadir);
  std::string dir = "/usr/lib/postgresql/" + major + "/bin";
  if (!major.empty() && exists(dir + "/pg_ctl")) return dir;
  return Error(Error::Code::kNotFound, "cannot find pg_ctl for PostgreSQL " + major +
                                           " (looked in " + dir + "): pass --pg-bin DIR");
}

Status start_and_wait_for_recovery(const std::string& datadir, const std::string& bin_dir,
                                   std::chrono::seconds timeout) {
  struct stat st;
  if (::stat(datadir.c_str(), &st) != 0) return errno_error(datadir, errno);
  const std::string log = datadir + "/haven-recovery.log";
  // -w: returns once the server accepts connections (during recovery, hot standby allows it).
  std::vector<std::string> args = {bin_dir + "/pg_ctl", "-D", datadir, "-l", log, "-w", "-t",
                                   std::to_string(timeout.count())};
  // A restored cluster starts as after a crash, so PostgreSQL first makes the whole data
  // directory durable, by default opening and fsyncing every file on one process (~1,000 files:
  // 40-100 ms here, and more where the prefetch is writing WAL into pg_wal meanwhile, which it
  // then waits for). The restore has already made every file it wrote durable; one syncfs(2)
  // covers the rest (PostgreSQL 14 and later; given for this start, not written into the
  // configuration, though `pg_ctl restart` repeats it from postmaster.opts).
  if (major_version(datadir) >= 14) args.insert(args.end(), {"-o", "-c recovery_init_sync_method=syncfs"});
  args.push_back("start");
  HAVEN_ASSIGN(int rc, run_as(args, st.st_uid, st.st_gid));
  if (rc != 0) {
    return Error(Error::Code::kIo, "pg_ctl start failed (exit " + std::to_string(rc) + "); the server log " + log +
                                       " ends with:" + log_tail(log, 15));
  }
  return wait_for_recovery(datadir, timeout);
}

Status wait_for_recovery(const std::string& datadir, std::chrono::seconds timeout) {
  const std::string log = datadir + "/haven-recovery.log";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Done when all three say so. recovery.signal goes before the end-of-recovery checkpoint;
  // the postmaster reports "ready" already while it serves read-only connections in hot
  // standby; pg_control says "in production" only once recovery is over (PostgreSQL marks
  // recovery done in shared memory just before it writes that state), so from then on the
  // server accepts writes and pg_is_in_recovery() is false.
  while (exists(datadir + "/recovery.signal") || postmaster_status(datadir) != "ready" ||
         control_state(datadir) != kDbInProduction) {
    if (!exists(datadir + "/postmaster.pid")) {
      return Error(Error::Code::kIo, "the server stopped during recovery; " + log + " ends with:" + log_tail(log, 15));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Error(Error::Code::kTransient, "recovery did not finish within " + std::to_string(timeout.count()) +
                                                " s; the server is still running (see " + log + ")");
    }
    // Every 20 ms (three small reads): the caller learns the server is up within 20 ms of it,
    // not within pg_ctl's 100.
    if (current_cancel().sleep_for(std::chrono::milliseconds(20))) {
      return current_cancel().check().error().with_context(
          "waiting for recovery (the server is still running: stop it with pg_ctl -D " + datadir +
          " stop)");
    }
  }
  return ok_status();
}

Status start_server(const std::string& datadir, const std::string& bin_dir,
                    std::chrono::seconds timeout) {
  struct stat st;
  if (::stat(datadir.c_str(), &st) != 0) return errno_error(datadir, errno);
  HAVEN_ASSIGN(std::string bin, find_pg_bin(datadir, bin_dir));
  const std::string log = datadir + "/haven-recovery.log";
  HAVEN_ASSIGN(int rc, run_as({bin + "/pg_ctl", "-D", datadir, "-l", log, "-w", "-t",
                               std::to_string(timeout.count()), "start"},
                              st.st_uid, st.st_gid));
  if (rc != 0) {
    return Error(Error::Code::kIo, "pg_ctl start failed (exit " + std::to_string(rc) + "); the server log " + log +
                                       " ends with:" + log_tail(log, 15));
  }
  return ok_status();
}

Status promote(const std::string& datadir, const std::string& bin_dir, std::chrono::seconds timeout) {
  struct stat st;
  if (::stat(datadir.c_str(), &st) != 0) return errno_error(datadir, errno);
  HAVEN_ASSIGN(std::string bin, find_pg_bin(datadir, bin_dir));
  HAVEN_ASSIGN(int rc, run_as({bin + "/pg_ctl", "-D", datadir, "-w", "-t",
                               std::to_string(timeout.count()), "promote"},
                              st.st_uid, st.st_gid));
  if (rc != 0) {
    return Error(Error::Code::kIo, "pg_ctl promote failed (exit " + std::to_string(rc) + "); the server log ends with:" +
                                       log_tail(datadir + "/haven-recovery.log", 15));
  }
  return wait_for_recovery(datadir, timeout);
}

std::optional<pid_t> running_postmaster(const std::string& datadir) {
  std::ifstream in(datadir + "/postmaster.pid");
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return std::nullopt;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return std::nullopt;
  return static_cast<pid_t>(pid);
}

Status stop_server(const std::string& datadir, const std::string& bin_dir,
                   std::chrono::seconds timeout) {
  UncancellableScope clean_up;
  auto pid = running_postmaster(datadir);
  if (!pid) return ok_status();
  struct stat st;
  if (::stat(datadir.c_str(), &st) != 0) return errno_error(datadir, errno);
  auto bin = find_pg_bin(datadir, bin_dir);
  if (bin.ok()) {
    (void)run_as({*bin + "/pg_ctl", "-D", datadir, "-m", "fast", "-w", "-t",
                  std::to_string(timeout.count()), "stop"},
                 st.st_uid, st.st_gid);
  }
  for (int sig : {SIGQUIT, SIGKILL}) {
    if (!running_postmaster(datadir)) return ok_status();
    ::kill(*pid, sig);
    for (int i = 0; i < 50 && ::kill(*pid, 0) == 0; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (::kill(*pid, 0) == 0) {
    return Error(Error::Code::kIo, "the PostgreSQL server on " + datadir + " (pid " +
                                       std::to_string(*pid) + ") would not stop");
  }
  return ok_status();
}

}  // namespace haven::pg

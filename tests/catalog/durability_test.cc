// A process killed with SIGKILL loses no committed row. A child process opens the catalog and
// writes in a loop (create an execution, complete it, append an event), reporting each commit
// through a pipe only after the call returned; the parent kills it at a random moment, reopens
// the catalog, and finds every reported write, with the database passing integrity_check.
//
// The child is this test binary, forked and exec'd with HAVEN_CATALOG_DURABILITY_CHILD set: it
// enters its write loop before main() (see kIsChild), so it is a fresh single-threaded process
// whatever threads the parent has (a sanitizer's, another test's).
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "catalog_test_util.h"

extern char** environ;

namespace haven::catalog {
namespace {

constexpr const char* kChildEnv = "HAVEN_CATALOG_DURABILITY_CHILD";

void write_line(int fd, const std::string& s) {
  std::string line = s + "\n";  // shorter than PIPE_BUF: one atomic write
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(fd, line.data() + off, line.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(4);
    }
    off += static_cast<size_t>(n);
  }
}

// The child: writes until killed. Reports "E <id>" (created), "U <id>" (completed),
// "V <event id>" (appended) once each call has returned; "X <message>" on an error.
[[noreturn]] void child(const std::string& path, const std::string& policy_id, int fd) {
  auto opened = SqliteCatalog::open(path, {});
  if (!opened.ok()) {
    write_line(fd, "X " + opened.error().message());
    _exit(3);
  }
  auto& c = *opened;
  for (int i = 0;; i++) {
    auto e = c->create_execution(sample_execution(policy_id));
    if (!e.ok()) {
      write_line(fd, "X " + e.error().message());
      _exit(3);
    }
    write_line(fd, "E " + e->id);
    if (i % 2 == 0) {
      ExecutionRow done = *e;
      done.status = ExecStatus::kCompleted;
      done.snapshot_id = std::string(64, 'a');
      Status s = c->update_execution(done);
      if (!s.ok()) {
        write_line(fd, "X " + s.error().message());
        _exit(3);
      }
      write_line(fd, "U " + e->id);
    }
    if (i % 3 == 0) {
      auto id = c->append_event(event("backup:completed", e->execution_id, {{"i", i}}));
      if (!id.ok()) {
        write_line(fd, "X " + id.error().message());
        _exit(3);
      }
      write_line(fd, "V " + std::to_string(*id));
    }
  }
}

// In the exec'd child, before main(): "<fd> <policy id> <path>" from the environment.
const bool kIsChild = [] {
  const char* spec = getenv(kChildEnv);
  if (spec == nullptr) return false;
  std::istringstream in(spec);
  int fd = -1;
  std::string policy_id, path;
  in >> fd >> policy_id;
  std::getline(in >> std::ws, path);
  if (fd < 0 || policy_id.empty() || path.empty()) _exit(2);
  child(path, policy_id, fd);
}();

TEST(Durability, SigkillLosesNoCommittedRow) {
  ASSERT_FALSE(kIsChild);
  TempDir dir;
  std::string path = dir.file("catalog.db");
  std::string policy_id;
  {
    auto c = open_or_die(path);
    ASSERT_TRUE(c);
    auto p = c->create_policy(sample_policy("web"));
    ASSERT_TRUE(p.ok());
    policy_id = p->id;
  }  // no SQLite connection may be carried across fork()

  std::mt19937 rng(std::random_device{}());
  std::vector<std::string> created, completed;
  std::vector<int64_t> events;
  int killed_mid_loop = 0, wal_present = 0;
  constexpr int kRounds = 5;
  for (int round = 0; round < kRounds; round++) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    // Everything the child needs is made before fork(): after it, only exec.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; e++) env_strings.emplace_back(*e);
    env_strings.push_back(std::string(kChildEnv) + "=" + std::to_string(fds[1]) + " " +
                          policy_id + " " + path);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe";
    char* argv[] = {exe.data(), nullptr};
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      ::execve(exe.c_str(), argv, envp.data());
      _exit(127);
    }
    ::close(fds[1]);

    // Let it commit a random number of rows, then kill it wherever it is.
    const size_t kill_after = 20 + rng() % 200;
    std::string buf;
    std::vector<std::string> lines;
    bool killed = false;
    char chunk[4096];
    while (true) {
      ssize_t n = ::read(fds[0], chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EOF: the child is gone and everything it wrote has been read
      buf.append(chunk, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        lines.push_back(buf.substr(0, nl));
        buf.erase(0, nl + 1);
      }
      if (!killed && lines.size() >= kill_after) {
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
        ASSERT_EQ(::kill(pid, SIGKILL), 0);
        killed = true;
      }
    }
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    for (const auto& l : lines) ASSERT_NE(l[0], 'X') << "child failed: " << l;
    // It was still writing when the signal came: it never exits on its own.
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) killed_mid_loop++;
    struct stat st;
    if (::stat((path + "-wal").c_str(), &st) == 0 && st.st_size > 0) wal_present++;

    for (const auto& l : lines) {
      if (l[0] == 'E') created.push_back(l.substr(2));
      if (l[0] == 'U') completed.push_back(l.substr(2));
      if (l[0] == 'V') events.push_back(std::stoll(l.substr(2)));
    }

    // Reopen (recovering the WAL a killed process left) and look for every reported write.
    auto c = open_or_die(path);
    ASSERT_TRUE(c);
    for (const auto& id : created) {
      auto e = c->get_execution(id);
      ASSERT_TRUE(e.ok()) << "round " << round << ": committed execution " << id << " lost";
    }
    for (const auto& id : completed) {
      auto e = c->get_execution(id);
      ASSERT_TRUE(e.ok());
      EXPECT_EQ(e->status, ExecStatus::kCompleted)
          << "round " << round << ": update of " << id << " lost";
      EXPECT_EQ(e->snapshot_id, std::string(64, 'a'));
    }
    auto evs = c->events_after(0, Catalog::kMaxEventBatch);
    ASSERT_TRUE(evs.ok());
    std::set<int64_t> have;
    for (const auto& e : *evs) have.insert(e.id);
    for (int64_t id : events)
      EXPECT_TRUE(have.count(id)) << "round " << round << ": event " << id << " lost";
    // At most the one commit per round that was made but not yet reported is extra.
    RawDb raw(path);
    int64_t rows = raw.count("backup_executions");
    EXPECT_GE(rows, static_cast<int64_t>(created.size()));
    EXPECT_LE(rows, static_cast<int64_t>(created.size()) + round + 1);
    EXPECT_EQ(raw.one("PRAGMA integrity_check"), "ok");
    EXPECT_EQ(raw.one("PRAGMA foreign_key_check"), "<no row>");
  }
  EXPECT_EQ(killed_mid_loop, kRounds) << "too few kills landed while the child was writing";
  EXPECT_GE(wal_present, kRounds - 1) << "the kills should leave commits in the WAL to recover";
  EXPECT_GE(created.size(), static_cast<size_t>(kRounds * 20));
}

}  // namespace
}  // namespace haven::catalog

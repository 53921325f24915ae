// tests/support/repo_test_util.h — helpers shared by the backup and restore tests: fast
// repositories through the library, and running the haven binary (clean environment, optional
// other user, captured output) through the CLI. Test-only, one copy per test binary.
#pragma once

// Shared helpers, one copy per test binary: a test uses some of them, not all.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

#include <fstream>

#include "crypto/crypto.h"
#include "repo/repository.h"
#include "repo/session.h"
#include "storage/backend.h"
#include "util/events.h"
#include "support/fs_test_util.h"

namespace haven {
namespace {

const std::string kPw = "pw";

// Records every event, for checks on warnings.
class RecordingSink : public EventSink {
 public:
  void emit(const Event& e) override {
    std::lock_guard<std::mutex> g(mu_);
    events.push_back(e);
  }
  // By the short type of --json lines ("progress", "warning", "error", "summary", ...).
  std::vector<Event> of(const std::string& type) {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<Event> out;
    for (const auto& e : events) {
      if (e.message_type() == type) out.push_back(e);
    }
    return out;
  }
  std::vector<Event> of(EventKind kind) {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<Event> out;
    for (const auto& e : events) {
      if (e.kind == kind) out.push_back(e);
    }
    return out;
  }
  std::vector<Event> events;

 private:
  std::mutex mu_;
};

// --- repositories and the CLI ----------------------------------------------------------------

std::unique_ptr<repo::Repository> init_repo(const std::string& dir, uint32_t pack_size = 16u << 20) {
  crypto::init();
  auto be = storage::open_backend(dir);
  if (!be.ok()) {
    ADD_FAILURE() << be.error().message();
    return nullptr;
  }
  repo::InitOptions o;
  o.kdf = {1, 8 << 20};
  o.pack_size = pack_size;
  auto r = repo::Repository::init(*be, kPw, o);
  if (!r.ok()) {
    ADD_FAILURE() << r.error().message();
    return nullptr;
  }
  return std::move(*r);
}

struct RunResult {
  int code = -1;
  std::string out, err;
  bool timed_out = false;
  uint64_t peak_rss_kib = 0;  // with RunOptions::measure_memory: the command's peak resident set
};

std::string describe(const RunResult& r) {
  std::ostringstream os;
  os << "exit " << r.code << (r.timed_out ? " (timed out)" : "") << "\n--- stdout ---\n"
     << r.out.substr(0, 4000) << "\n--- stderr ---\n"
     << r.err.substr(0, 4000);
  return os.str();
}

struct RunOptions {
  Env env{};
  bool feed_stdin = false;  // connect stdin to a pipe fed with `input`, else /dev/null
  std::string input{};
  bool keep_stdin_open = false;  // after `input`, keep the pipe open (a silent producer)
  int uid = -1;  // run as this user (root only)
  int timeout_ms = 60000;
  std::string cwd{};  // working directory of the command (default: the test's)
  int signal = 0;   // sent to the command `signal_after` after it started
  std::chrono::milliseconds signal_after{0};
  bool measure_memory = false;  // run through peak_rss and fill RunResult::peak_rss_kib
};

// The build tree may sit under a directory other users cannot enter (a clone in /root): a
// command run as another user gets a world-executable copy of the binary in /tmp.
static std::string binary_for(int uid) {
  if (uid < 0) return HAVEN_BINARY;
  struct PublicCopy {
    std::string dir, path = HAVEN_BINARY;
    PublicCopy() {
      char tmpl[] = "/tmp/haven-bin-XXXXXX";
      if (mkdtemp(tmpl) == nullptr) return;
      dir = tmpl;
      chmod(dir.c_str(), 0755);
      std::string dst = dir + "/haven";
      std::string cmd = std::string("cp '") + HAVEN_BINARY + "' '" + dst + "' && chmod 0755 '" + dst + "'";
      if (system(cmd.c_str()) == 0) path = dst;
    }
    ~PublicCopy() {
      if (!dir.empty()) {
        unlink((dir + "/haven").c_str());
        rmdir(dir.c_str());
      }
    }
  };
  static PublicCopy copy;
  return copy.path;
}

// Runs HAVEN_BINARY with `args` and a clean environment (no inherited HAVEN_*).
RunResult run_haven(const std::vector<std::string>& args, const RunOptions& o = {}) {
  signal(SIGPIPE, SIG_IGN);  // a child that stops reading stdin must not kill the test
  RunResult r;
  std::vector<std::string> argv_s{binary_for(o.uid)};
  std::string peak_file;
  if (o.measure_memory) {
    char tmpl[] = "/tmp/haven-peak-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd >= 0) close(fd);
    peak_file = tmpl;
    argv_s.insert(argv_s.begin(), {PEAK_RSS_BINARY, peak_file});
  }
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string s = *e;
    if (s.rfind("HAVEN_", 0) == 0) continue;
    env_s.push_back(s);
  }
  for (const auto& [k, v] : o.env) env_s.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);

  int out_pipe[2], err_pipe[2], in_pipe[2] = {-1, -1};
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
      (o.feed_stdin && pipe2(in_pipe, O_CLOEXEC) != 0)) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return r;
  }
  pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return r;
  }
  if (pid == 0) {
    setsid();  // no controlling terminal: never a password prompt
    struct sigaction sa{};
    sa.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &sa, nullptr);
    int in = o.feed_stdin ? in_pipe[0] : open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    if (o.uid >= 0) {
      if (setgroups(0, nullptr) != 0 || setgid(static_cast<gid_t>(o.uid)) != 0 ||
          setuid(static_cast<uid_t>(o.uid)) != 0) {
        _exit(125);
      }
    }
    if (!o.cwd.empty() && chdir(o.cwd.c_str()) != 0) _exit(124);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  int in_fd = -1;
  size_t in_done = 0;
  if (o.feed_stdin) {
    close(in_pipe[0]);
    in_fd = in_pipe[1];
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
    if (o.input.empty()) {
      close(in_fd);
      in_fd = -1;
    }
  }
  int held_open = -1;
  std::string* sinks[2] = {&r.out, &r.err};
  int fds[2] = {out_pipe[0], err_pipe[0]};
  bool open_[2] = {true, true};
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + std::chrono::milliseconds(o.timeout_ms);
  bool signalled = false;
  while (open_[0] || open_[1]) {
    if (o.signal != 0 && !signalled && std::chrono::steady_clock::now() - started >= o.signal_after) {
      kill(pid, o.signal);
      signalled = true;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    std::vector<pollfd> pfds;
    std::vector<int> which;
    for (int i = 0; i < 2; i++) {
      if (open_[i]) {
        pfds.push_back({fds[i], POLLIN, 0});
        which.push_back(i);
      }
    }
    if (in_fd >= 0) {
      pfds.push_back({in_fd, POLLOUT, 0});
      which.push_back(2);
    }
    int n = poll(pfds.data(), pfds.size(), o.signal != 0 && !signalled ? 5 : 100);
    if (n < 0 && errno != EINTR) break;
    for (size_t i = 0; n > 0 && i < pfds.size(); i++) {
      if (pfds[i].revents == 0) continue;
      if (which[i] == 2) {
        ssize_t w = write(in_fd, o.input.data() + in_done, o.input.size() - in_done);
        if (w > 0) in_done += static_cast<size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_done == o.input.size()) {
          if (o.keep_stdin_open && in_done == o.input.size()) {
            held_open = in_fd;  // closed when the command is done
          } else {
            close(in_fd);
          }
          in_fd = -1;
        }
        continue;
      }
      char buf[65536];
      ssize_t got = read(pfds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[which[i]]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        open_[which[i]] = false;
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  if (held_open >= 0) close(held_open);
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!peak_file.empty()) {
    std::ifstream in(peak_file);
    in >> r.peak_rss_kib;
    unlink(peak_file.c_str());
  }
  if (WIFEXITED(status)) r.code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) r.code = 128 + WTERMSIG(status);
  return r;
}

// Runs haven against `repo` with HAVEN_PASSWORD set in the child only.
RunResult cli(const std::string& repo, std::vector<std::string> args, RunOptions o = {}) {
  args.insert(args.begin(), {"-r", repo});
  o.env.emplace_back("HAVEN_PASSWORD", kPw);
  return run_haven(args, o);
}

void cli_init(const std::string& repo, RunOptions o = {}) {
  RunResult r = cli(repo, {"init", "--kdf-memory", "8", "--kdf-iterations", "1"}, o);
  ASSERT_EQ(r.code, 0) << describe(r);
}

nlohmann::json cli_snapshots(const std::string& repo) {
  RunResult r = cli(repo, {"snapshots", "--json"});
  EXPECT_EQ(r.code, 0) << describe(r);
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_TRUE(j.is_array()) << r.out;
  return j.is_array() ? j : nlohmann::json::array();
}


}  // namespace
}  // namespace haven

#pragma GCC diagnostic pop

#include "util/subprocess.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;

namespace haven {

namespace {

// Child side: only async-signal-safe calls from here to exec.
[[noreturn]] void child_fail(int report_fd, int err) {
  (void)!::write(report_fd, &err, sizeof err);
  ::_exit(127);
}

void reap(pid_t pid, int* status) {
  while (::waitpid(pid, status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

Result<Subprocess> Subprocess::spawn(const SpawnOptions& o) {
  if (o.argv.empty() || o.argv[0].empty()) {
    return Error(Error::Code::kInvalidArgument, "no program to run");
  }
  // Everything the child uses, prepared now.
  std::vector<std::string> args = o.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> candidates;
  if (args[0].find('/') != std::string::npos) {
    candidates.push_back(args[0]);
  } else {
    const char* path = nullptr;
    for (char** e = environ; e && *e; e++) {
      if (std::strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
    }
    std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find(':', start);
      if (end == std::string::npos) end = p.size();
      std::string dir = p.substr(start, end - start);
      candidates.push_back((dir.empty() ? "." : dir) + "/" + args[0]);
      start = end + 1;
    }
  }
  std::vector<const char*> paths;
  for (auto& c : candidates) paths.push_back(c.c_str());
  std::vector<std::string> env_strings;
  std::vector<char*> envp;
  if (o.env) {
    env_strings = *o.env;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  char** child_env = o.env ? envp.data() : environ;
  const bool drop = o.uid && ::geteuid() == 0;
  const bool group = o.own_process_group;
  const uid_t uid = o.uid.value_or(0);
  const gid_t gid = o.gid.value_or(0);

  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return errno_error("pipe", errno);
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) {
    int err = errno;
    ::close(report[0]);
    ::close(report[1]);
    return errno_error("/dev/null", err);
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(report[0]);
    ::close(report[1]);
    ::close(devnull);
    return errno_error("fork", err);
  }
  if (pid == 0) {
    if (group) ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT}) ::sigaction(s, &dfl, nullptr);
    int in = o.stdin_fd == -1 ? devnull : o.stdin_fd;
    int out = o.stdout_fd == -1 ? devnull : o.stdout_fd;
    int err = o.stderr_fd == -1 ? devnull : o.stderr_fd;
    if (::dup2(in, 0) < 0) child_fail(report[1], errno);
    if (out != -2 && ::dup2(out, 1) < 0) child_fail(report[1], errno);
    if (err != -2 && ::dup2(err, 2) < 0) child_fail(report[1], errno);
    if (drop) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
        child_fail(report[1], errno);
      }
    }
    int last = ENOENT;
    for (const char* p : paths) {
      ::execve(p, argv.data(), child_env);
      if (errno != ENOENT && errno != ENOTDIR) last = errno;
    }
    child_fail(report[1], last);
  }
  ::close(report[1]);
  ::close(devnull);
  int child_errno = 0;
  ssize_t n;
  while ((n = ::read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int status = 0;
    reap(pid, &status);
    Error e = errno_error("cannot run " + args[0], child_errno);
    return Error(Error::Code::kNotFound, e.message());
  }
  if (group) ::setpgid(pid, pid);  // also here: no race with send_signal() before the child runs
  return Subprocess(pid, args[0], group);
}

void Subprocess::send_signal(int sig) const {
  if (pid_ <= 0) return;
  ::kill(group_ ? -pid_ : pid_, sig);
}

Subprocess::~Subprocess() {
  if (pid_ <= 0) return;
  send_signal(SIGKILL);
  int status = 0;
  reap(pid_, &status);
}

Result<int> Subprocess::wait(const CancelToken& cancel, std::chrono::milliseconds grace) {
  if (pid_ <= 0) return Error(Error::Code::kInternal, "no process to wait for");
  int status = 0;
  std::optional<std::chrono::steady_clock::time_point> killed_at;
  while (true) {
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (r < 0 && errno != EINTR) return errno_error("waitpid", errno);
    if (cancel.cancelled()) {
      auto t = std::chrono::steady_clock::now();
      if (!killed_at) {
        send_signal(SIGTERM);
        killed_at = t;
      } else if (t - *killed_at > grace) {
        send_signal(SIGKILL);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  if (killed_at) return cancel.check().error();
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::optional<int> Subprocess::try_wait() {
  if (pid_ <= 0) return std::nullopt;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r != pid_) return std::nullopt;
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string describe_exit(int status) {
  if (status > 128) return "was killed by signal " + std::to_string(status - 128);
  return "exited with status " + std::to_string(status);
}

}  // namespace haven

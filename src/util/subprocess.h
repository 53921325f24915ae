// util/subprocess.h — running another program from a threaded process, cancellably.
//
// Everything the child needs (argv, the environment, file descriptors, credentials) is built
// before fork(); between fork() and exec the child makes only async-signal-safe system calls
// (a threaded parent may have held the allocator's lock at the moment of the fork). The child
// starts with no blocked signals and default handlers, whatever the parent had (the CLI blocks
// SIGINT/SIGTERM to take them on a thread of its own).
//
// wait() honours a cancel token: when it fires the child gets SIGTERM, then SIGKILL after a
// grace period, and wait() returns the token's error once the child is gone.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "util/cancel.h"
#include "util/error.h"

namespace haven {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH unless it contains '/'
  int stdin_fd = -1;              // -1: /dev/null
  int stdout_fd = -1;             // -1: /dev/null; -2: inherit
  int stderr_fd = -2;             // -1: /dev/null; -2: inherit
  std::optional<uid_t> uid;       // run as this user (and group) when the caller is root
  std::optional<gid_t> gid;
  // Starts the child in a process group of its own, so that stopping it (cancellation) stops
  // what it started too (a shell's pipeline).
  bool own_process_group = false;
  // The child's environment ("NAME=value" each); unset: the parent's. An alert command gets a
  // small one of its own, not the server's (which may hold credentials).
  std::optional<std::vector<std::string>> env;
};

class Subprocess {
 public:
  // Starts the program. kNotFound if it cannot be found or executed (the child reports the
  // exec failure through a close-on-exec pipe, so this is known before spawn() returns).
  static Result<Subprocess> spawn(const SpawnOptions& options);

  Subprocess(Subprocess&& o) noexcept : pid_(o.pid_), name_(std::move(o.name_)), group_(o.group_) {
    o.pid_ = -1;
  }
  Subprocess& operator=(Subprocess&&) = delete;
  // A child still running is killed and reaped.
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // Sends `sig` to the child (and its group, if it has its own). Only while not yet reaped.
  void send_signal(int sig) const;
  // Waits for the child to exit: its exit status, or 128 + the signal that killed it. On
  // cancellation: SIGTERM, SIGKILL after `grace`, and the token's error.
  Result<int> wait(const CancelToken& cancel,
                   std::chrono::milliseconds grace = std::chrono::milliseconds(500));
  // Its exit status (as wait()) if it has exited (then it is reaped), else nullopt.
  std::optional<int> try_wait();
  // Lets the child run on after this object is gone (a service a recovery started); returns
  // its PID. The caller no longer waits for it.
  pid_t release() {
    pid_t p = pid_;
    pid_ = -1;
    return p;
  }

 private:
  Subprocess(pid_t pid, std::string name, bool group)
      : pid_(pid), name_(std::move(name)), group_(group) {}
  pid_t pid_ = -1;
  std::string name_;
  bool group_ = false;
};

// "exited with status 3" / "was killed by signal 9", for messages.
std::string describe_exit(int status);

}  // namespace haven

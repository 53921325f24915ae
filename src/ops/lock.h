// ops/lock.h — the one place operations take the repository's lock. Every operation that locks
// goes through lock() here: it opens the operation's repo::Session (repo/session.h) and takes
// the session's lock, so each operation runs in a session of its own — its lock, its cancel
// token, its pack writer and statistics — and several operations may run on one Repository at
// once.
//
// HeldLock is the session with its lock, as a value: the engines run in session(); release()
// removes the lock and says whether that worked; if it is destroyed still held (an operation
// failed or was cancelled), the destructor removes it, uncancellably, and drops the error (the
// lock then goes stale and others ignore it). Either way the session ends with it: packs it has
// not flushed are dropped (engines flush before they write a snapshot).
//
// Cancellation: the session's token is a child of Repository::cancel_token() (or of the
// `parent` given): cancelling that stops every operation on the repository; a lost lock cancels
// only its own session (kLocked) and no other operation.
//
// Thread-safety: lock() from any thread (each call opens a session of its own); a HeldLock from
// the operation's thread, as Session::lock()/unlock().
#pragma once

#include <chrono>
#include <memory>
#include <utility>

#include "repo/repository.h"
#include "repo/session.h"
#include "util/cancel.h"
#include "util/error.h"
#include "util/events.h"

namespace haven::ops {

enum class LockMode {
  kShared,     // reading, adding data (backup, restore, check, a dry run)
  kExclusive,  // deleting (forget, prune, repair, pg retain)
};

class [[nodiscard]] HeldLock {
 public:
  HeldLock(HeldLock&& other) noexcept = default;
  HeldLock& operator=(HeldLock&&) = delete;
  HeldLock(const HeldLock&) = delete;
  ~HeldLock();

  // The operation's session: pass it to the engines. REQUIRES: not released.
  repo::Session& session() const { return *session_; }

  // Removes the lock and ends the session. Idempotent: a second call is OK.
  Status release();

 private:
  friend Result<HeldLock> lock(repo::Repository& repo, LockMode mode, const EventTarget& events,
                               const CancelToken& parent, std::chrono::seconds wait);
  explicit HeldLock(std::unique_ptr<repo::Session> session) : session_(std::move(session)) {}
  std::unique_ptr<repo::Session> session_;
};

// Opens a session of `repo` whose token is a child of `parent` and takes its lock: kLocked
// naming the holder if a conflicting live lock exists (also another session's of this process;
// see Session::lock). Each stale lock it ignored is reported as a notice ("ignoring stale …").
// With `wait` above zero, a conflicting lock is waited out for up to that long (tried again
// 0.75-1.25 s, one notice naming the holder; cancelling `parent` stops the wait): an operation
// started beside a prune then runs after it instead of failing. The repository's own
// lock_wait() (the CLI's --retry-lock) applies where it is longer.
Result<HeldLock> lock(repo::Repository& repo, LockMode mode, const EventTarget& events,
                      const CancelToken& parent, std::chrono::seconds wait = std::chrono::seconds(0));
// The same, under the repository's token (Repository::cancel_token()).
Result<HeldLock> lock(repo::Repository& repo, LockMode mode, const EventTarget& events);

}  // namespace haven::ops

// ops/lock.h — the one place operations take the repository's lock. Every operation that locks
// goes through lock() here, so that how a lock is taken (today Repository::lock(); later a
// per-operation session that owns it) changes in one place.
//
// HeldLock is the lock as a value: release() removes it and says whether that worked; if it is
// destroyed still held (an operation failed or was cancelled), the destructor removes it,
// uncancellably, and drops the error (the lock then goes stale and others ignore it).
//
// Thread-safety: as the Repository's lock()/unlock(): from the operation's thread.
#pragma once

#include <utility>

#include "repo/repository.h"
#include "util/error.h"
#include "util/events.h"

namespace haven::ops {

enum class LockMode {
  kShared,     // reading, adding data (backup, restore, check, a dry run)
  kExclusive,  // deleting (forget, prune, repair, pg retain)
};

class [[nodiscard]] HeldLock {
 public:
  HeldLock(HeldLock&& other) noexcept : repo_(std::exchange(other.repo_, nullptr)) {}
  HeldLock& operator=(HeldLock&&) = delete;
  HeldLock(const HeldLock&) = delete;
  ~HeldLock();

  // Removes the lock. Idempotent: a second call is OK.
  Status release();

 private:
  friend Result<HeldLock> lock(repo::Repository& repo, LockMode mode, EventSink& events);
  explicit HeldLock(repo::Repository* repo) : repo_(repo) {}
  repo::Repository* repo_;
};

// Takes the lock: kLocked naming the holder if a conflicting live lock exists (see
// Repository::lock). Each stale lock it ignored is reported as a notice ("ignoring stale …").
Result<HeldLock> lock(repo::Repository& repo, LockMode mode, EventSink& events);

}  // namespace haven::ops

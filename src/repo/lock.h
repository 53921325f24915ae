// repo/lock.h — repository locks (docs/FORMAT.md §8) as this process holds and judges them.
//
// A HeldLock is one session's lock (repo/session.h). Taking it: kLocked naming the holder if a
// conflicting live lock exists, or naming a lock object that cannot be read (junk or damage:
// only 'haven unlock' may judge it). Locks whose process is gone (same host) or that stopped
// refreshing are ignored (ignored_stale() describes them). Locks of other sessions of this
// process count like anyone's: two shared locks coexist, an exclusive one excludes the rest.
//
// While held, the lock is refreshed every `refresh` interval (5 min) by a new lock object
// (then the old one is removed: the repository is never unlocked in between). Others judge a
// lock stale when it is `stale` (30 min) old, and a prune may then delete data this session
// uploaded but has not yet referenced. So if the lock cannot be refreshed for
// `stale - max(refresh, stale/6)` (25 min), or another process removed it, the lock is *lost*:
// the token given at construction (the session's) is cancelled with a kLocked error naming the
// lock, and check() (which save_snapshot() and prune's deletions call) fails from then on, also
// after the process was stopped (it looks at the clock itself). Only this lock's session is
// cancelled; other sessions of the process go on under their own locks.
//
// Thread-safety: acquire() and release() from the session's thread; check(), held() and name()
// from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "repo/ids.h"
#include "repo/snapshot.h"
#include "util/cancel.h"
#include "util/clock.h"
#include "util/error.h"

namespace haven::repo {

class Repository;

// A lock is stale when it has not been refreshed for `stale_ns` (holders refresh more often),
// or, on this host (`me`), as soon as its process is gone.
bool lock_is_stale(const Lock& l, const std::string& me, TimeNs stale_ns);

class HeldLock {
 public:
  // `on_loss` is cancelled with the kLocked error when the lock is lost.
  HeldLock(Repository& repo, CancelToken on_loss);
  ~HeldLock();  // releases the lock
  HeldLock(const HeldLock&) = delete;
  HeldLock& operator=(const HeldLock&) = delete;

  // Takes a shared (or exclusive) lock with the repository's timing (Repository::
  // set_lock_timing). kInternal if this lock is already held.
  Status acquire(bool exclusive);
  // Stops refreshing and removes the lock object (and older ones a refresh failed to remove).
  // Harmless when nothing is held. Runs even when the operation was cancelled.
  Status release();
  // OK while nothing is held or the held lock is fresh; the kLocked error of a lost lock.
  Status check() const;
  bool held() const { return held_; }
  // The current lock object's name (it changes at each refresh); "" when nothing is held.
  std::string name() const;
  // The stale locks the last acquire() ignored, described for a notice.
  const std::vector<std::string>& ignored_stale() const { return stale_ignored_; }

 private:
  void refresh_loop();
  void watch();
  void lose(Error why);
  TimeNs deadline_ns() const;

  Repository& repo_;
  CancelToken on_loss_;
  TimeNs refresh_ns_ = 0;
  TimeNs stale_ns_ = 0;
  mutable std::mutex mu_;                    // guards lock_id_ and superseded_; held by a refresh
  std::condition_variable refresh_cv_;
  std::thread refresher_, watchdog_;
  bool stop_refresh_ = false;
  Lock lock_;
  std::optional<Id> lock_id_;
  std::vector<Id> superseded_;               // our older lock objects a refresh failed to remove
  std::atomic<bool> held_{false};
  std::atomic<TimeNs> ok_at_{0};             // when our lock object was last written
  CancelToken stop_;                         // stops the watchdog (release)
  CancelToken refresh_cancel_;               // stops a refresh that hangs once the lock is lost
  mutable std::mutex lost_mu_;
  std::optional<Error> lost_;
  std::string last_refresh_error_;           // guarded by lost_mu_
  std::string held_name_;                    // guarded by lost_mu_
  std::vector<std::string> stale_ignored_;
};

// Removes locks whose holder is gone and lock objects that cannot be read (or every other lock
// with all=true), never those named in `keep` (the locks this process holds). Returns the locks
// removed, described. A lock object that cannot be read for another reason than damage
// (permissions, I/O) is an error, never removed.
Result<std::vector<std::string>> remove_stale_locks(Repository& repo, bool all,
                                                    const std::set<std::string>& keep);

}  // namespace haven::repo

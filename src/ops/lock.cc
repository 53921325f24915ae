#include "ops/lock.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <string>

#include "ops/ops.h"

namespace haven::ops {

// The session's destructor stops its uploaders first, then removes the lock (uncancellably,
// dropping the error): no upload of this operation goes on once its lock is gone.
HeldLock::~HeldLock() = default;

Status HeldLock::release() {
  std::unique_ptr<repo::Session> s = std::move(session_);
  if (s == nullptr) return ok_status();
  return s->unlock();
}

namespace {
// About a second between tries, drawn from 0.75-1.25 s: two processes that collided (each wrote
// its lock, saw the other's and took its own back) would otherwise try again in step, every
// second, as long as both wait: two jobs started by cron in the same second, over object
// storage, where writing a lock and listing the others spans two round trips.
std::chrono::milliseconds retry_pause() {
  thread_local std::mt19937 rng(std::random_device{}());
  return std::chrono::milliseconds(std::uniform_int_distribution<int>(750, 1250)(rng));
}
}  // namespace

Result<HeldLock> lock(repo::Repository& repo, LockMode mode, const EventTarget& events,
                      const CancelToken& parent, std::chrono::seconds wait) {
  auto session = std::make_unique<repo::Session>(repo, parent);
  wait = std::max(wait, repo.lock_wait());
  const auto until = std::chrono::steady_clock::now() + wait;
  bool told = false;
  while (true) {
    Status locked = session->lock(mode == LockMode::kExclusive);
    if (locked.ok()) break;
    const auto left = until - std::chrono::steady_clock::now();
    if (locked.error().code() != Error::Code::kLocked || left <= std::chrono::seconds(0)) return locked.error();
    if (!told) {
      notice(events, NoticeLevel::kNotice,
             "waiting up to " + std::to_string(wait.count()) + " s for the lock: " + locked.error().message());
      told = true;
    }
    if (parent.sleep_for(std::min<std::chrono::steady_clock::duration>(left, retry_pause()))) {
      return parent.check().error();
    }
  }
  for (const auto& l : session->ignored_stale_locks()) {
    notice(events, NoticeLevel::kNotice,
           "ignoring stale " + l + " (remove it with 'haven unlock')");
  }
  return HeldLock(std::move(session));
}

Result<HeldLock> lock(repo::Repository& repo, LockMode mode, const EventTarget& events) {
  return lock(repo, mode, events, repo.cancel_token());
}

}  // namespace haven::ops

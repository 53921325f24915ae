#include "ops/lock.h"

#include <algorithm>
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
    if (parent.sleep_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::seconds(1)))) {
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

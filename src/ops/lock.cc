#include "ops/lock.h"

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
                      const CancelToken& parent) {
  auto session = std::make_unique<repo::Session>(repo, parent);
  HAVEN_TRY(session->lock(mode == LockMode::kExclusive));
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

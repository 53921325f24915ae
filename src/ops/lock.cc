#include "ops/lock.h"

#include "ops/ops.h"

namespace haven::ops {

HeldLock::~HeldLock() {
  // Session::unlock() runs uncancellably; the session's destructor would release it too.
  if (session_ != nullptr) (void)session_->unlock();
}

Status HeldLock::release() {
  std::unique_ptr<repo::Session> s = std::move(session_);
  if (s == nullptr) return ok_status();
  return s->unlock();
}

Result<HeldLock> lock(repo::Repository& repo, LockMode mode, EventSink& events,
                      const CancelToken& parent) {
  auto session = std::make_unique<repo::Session>(repo, parent);
  HAVEN_TRY(session->lock(mode == LockMode::kExclusive));
  for (const auto& l : session->ignored_stale_locks()) {
    notice(events, NoticeLevel::kNotice,
           "ignoring stale " + l + " (remove it with 'haven unlock')");
  }
  return HeldLock(std::move(session));
}

Result<HeldLock> lock(repo::Repository& repo, LockMode mode, EventSink& events) {
  return lock(repo, mode, events, repo.cancel_token());
}

}  // namespace haven::ops

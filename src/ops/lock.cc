#include "ops/lock.h"

#include "ops/ops.h"

namespace haven::ops {

HeldLock::~HeldLock() {
  if (repo_ != nullptr) (void)repo_->unlock();  // unlock() runs uncancellably
}

Status HeldLock::release() {
  repo::Repository* r = std::exchange(repo_, nullptr);
  if (r == nullptr) return ok_status();
  return r->unlock();
}

Result<HeldLock> lock(repo::Repository& repo, LockMode mode, EventSink& events) {
  HAVEN_TRY(repo.lock(mode == LockMode::kExclusive));
  for (const auto& l : repo.ignored_stale_locks()) {
    notice(events, NoticeLevel::kNotice,
           "ignoring stale " + l + " (remove it with 'haven unlock')");
  }
  return HeldLock(&repo);
}

}  // namespace haven::ops

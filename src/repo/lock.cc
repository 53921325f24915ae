#include "repo/lock.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "repo/repository.h"
#include "util/sysinfo.h"

namespace haven::repo {

using storage::ObjectType;

bool lock_is_stale(const Lock& l, const std::string& me, TimeNs stale_ns) {
  if (now() - l.refreshed > stale_ns) return true;  // its holder stopped refreshing
  return l.hostname == me && kill(static_cast<pid_t>(l.pid), 0) != 0 && errno == ESRCH;
}

namespace {
std::string describe_stale(const Lock& l, TimeNs stale_ns) {
  return std::string(l.exclusive ? "exclusive" : "shared") + " lock of PID " +
         std::to_string(l.pid) + " on " + l.hostname + " (user " + l.username + ", since " +
         format_time(l.time) + "): " +
         (now() - l.refreshed > stale_ns ? "not refreshed since " + format_time(l.refreshed)
                                         : std::string("that process is gone"));
}
}  // namespace

HeldLock::HeldLock(Repository& repo, CancelToken on_loss)
    : repo_(repo), on_loss_(std::move(on_loss)) {}

HeldLock::~HeldLock() { (void)release(); }

std::string HeldLock::name() const {
  std::lock_guard<std::mutex> g(mu_);  // a refresh replaces lock_id_ under it
  return lock_id_ ? hex(*lock_id_) : std::string();
}

Status HeldLock::acquire(bool exclusive) {
  if (!name().empty()) return Error(Error::Code::kInternal, "this session already holds a lock");
  refresh_ns_ = repo_.lock_refresh_ns();
  stale_ns_ = repo_.lock_stale_ns();
  std::string me = hostname();
  stale_ignored_.clear();
  auto check = [&](const std::string& own) -> Status {
    std::vector<std::string> names;
    HAVEN_TRY(repo_.backend().list(ObjectType::kLock, [&](const storage::ObjectInfo& i) {
      names.push_back(i.name.name);
    }));
    for (const auto& n : names) {
      if (n == own) continue;
      auto body = repo_.load_object(ObjectType::kLock, n);
      Result<Lock> l = body.ok() ? decode_lock(*body, "lock " + n) : Result<Lock>(body.error());
      if (!l.ok()) {
        if (l.error().code() == Error::Code::kNotFound) continue;  // removed meanwhile
        // Only a lock that was read and does not decode or authenticate is junk; failing to
        // read it (permissions, I/O, a newer format) says nothing about it.
        if (l.error().code() != Error::Code::kCorrupt) return l.error().with_context("reading locks");
        // Junk or damage: it cannot be told from a live lock, so only a person may remove it.
        return Error(Error::Code::kLocked,
                     "the repository holds a lock that cannot be read: " + l.error().message() +
                         "; if no other haven process is using the repository, remove it with "
                         "'haven unlock'");
      }
      if (lock_is_stale(*l, me, stale_ns_)) {
        stale_ignored_.push_back(describe_stale(*l, stale_ns_));
        continue;
      }
      if (exclusive || l->exclusive) {
        return Error(Error::Code::kLocked,
                     std::string("repository is locked ") + (l->exclusive ? "exclusively " : "") +
                         "by PID " + std::to_string(l->pid) + " on " + l->hostname + " (user " +
                         l->username + ") since " + format_time(l->time) +
                         "; if that process is gone, run 'haven unlock'");
      }
    }
    return ok_status();
  };
  // Ours is written first and the others are read once, after: a lock written at the same
  // moment as ours sees ours, or we see it (or both do, and both give way). Reading them before
  // as well would only spare a lock object that is removed again at once, for a round trip
  // more on every lock taken over object storage.
  lock_.time = lock_.refreshed = now();
  lock_.hostname = me;
  lock_.username = username();
  lock_.pid = getpid();
  lock_.exclusive = exclusive;
  HAVEN_ASSIGN(Id id, repo_.save_object(ObjectType::kLock, encode_lock(lock_)));
  {
    std::lock_guard<std::mutex> g(mu_);
    lock_id_ = id;
  }
  repo_.register_lock(this);  // from now on remove_stale_locks() of this process spares it
  Status again = check(hex(id));
  if (!again.ok()) {
    (void)release();
    return again;
  }
  {
    std::lock_guard<std::mutex> g(lost_mu_);
    lost_.reset();
    last_refresh_error_.clear();
    held_name_ = hex(id);
  }
  ok_at_ = lock_.refreshed;
  held_ = true;
  stop_refresh_ = false;
  stop_ = CancelToken();
  refresh_cancel_ = CancelToken();
  refresher_ = std::thread([this] { refresh_loop(); });
  watchdog_ = std::thread([this] { watch(); });
  return ok_status();
}

TimeNs HeldLock::deadline_ns() const {
  // Give up one refresh interval (at least a sixth of the stale age) before others may call
  // the lock stale, so the operation has stopped before anyone acts on that.
  TimeNs margin = std::max(refresh_ns_, stale_ns_ / 6);
  return std::max(stale_ns_ - margin, stale_ns_ / 2);
}

void HeldLock::refresh_loop() {
  // A refresh that hangs in retries once the lock is lost must not hold release() up.
  CancelScope scope(refresh_cancel_);
  TimeNs interval = refresh_ns_;
  std::unique_lock<std::mutex> lk(mu_);
  while (!refresh_cv_.wait_for(lk, std::chrono::nanoseconds(interval),
                               [&] { return stop_refresh_ || refresh_cancel_.cancelled(); })) {
    // A new lock object first, then the old one goes: the repository is never unlocked between.
    Lock l = lock_;
    l.refreshed = now();
    auto id = repo_.save_object(ObjectType::kLock, encode_lock(l));
    if (!id.ok()) {
      // Try again soon; the old lock stays valid meanwhile, and the watchdog gives up in time.
      std::lock_guard<std::mutex> g(lost_mu_);
      last_refresh_error_ = id.error().message();
      interval = std::max<TimeNs>(refresh_ns_ / 5, 1000000);
      continue;
    }
    Status removed = repo_.backend().remove({ObjectType::kLock, hex(*lock_id_)});
    Id old = *lock_id_;
    lock_id_ = *id;
    // Older lock objects whose removal failed before: try again now.
    std::vector<Id> left;
    for (const Id& earlier : superseded_) {
      Status st = repo_.backend().remove({ObjectType::kLock, hex(earlier)});
      if (!st.ok() && st.error().code() != Error::Code::kNotFound) left.push_back(earlier);
    }
    superseded_ = std::move(left);
    if (!removed.ok() && removed.error().code() != Error::Code::kNotFound) {
      superseded_.push_back(old);  // left behind for now: removed at the next refresh or release
    }
    ok_at_ = l.refreshed;
    {
      std::lock_guard<std::mutex> g(lost_mu_);
      held_name_ = hex(*id);
    }
    interval = refresh_ns_;
    if (!removed.ok() && removed.error().code() == Error::Code::kNotFound) {
      // Someone removed our lock ('haven unlock --remove-all', or a process that judged it
      // stale): from then on an exclusive holder may have deleted what we were writing.
      lose(Error(Error::Code::kLocked,
                 "lock " + hex(old).substr(0, 8) +
                     " of this operation was removed by another process (a 'haven unlock "
                     "--remove-all', or a process that judged it stale); the operation "
                     "stopped so that nothing it wrote is referenced: run it again"));
      return;
    }
  }
}

void HeldLock::watch() {
  while (true) {
    TimeNs left = ok_at_.load() + deadline_ns() - now();
    if (left <= 0) {
      std::string last, name;
      {
        std::lock_guard<std::mutex> g(lost_mu_);
        last = last_refresh_error_;
        name = held_name_;
      }
      lose(Error(
          Error::Code::kLocked,
          "lock " + name.substr(0, 8) + " could not be refreshed since " +
              format_time(ok_at_.load()) + (last.empty() ? "" : " (last error: " + last + ")") +
              "; the operation stopped before other processes could consider the lock stale and "
              "delete data it is writing: make the repository's storage writable and run it "
              "again"));
      return;
    }
    if (stop_.sleep_for(std::chrono::nanoseconds(left))) return;
  }
}

void HeldLock::lose(Error why) {
  {
    std::lock_guard<std::mutex> g(lost_mu_);
    if (lost_) return;
    lost_ = why;
  }
  refresh_cancel_.cancel(why);
  on_loss_.cancel(why);
}

Status HeldLock::check() const {
  if (!held_) return ok_status();
  {
    std::lock_guard<std::mutex> g(lost_mu_);
    if (lost_) return *lost_;
  }
  // The watchdog may not have run yet (the process was stopped, the machine slept).
  if (now() - ok_at_.load() > deadline_ns()) {
    return Error(Error::Code::kLocked,
                 "the repository lock of this operation was last refreshed at " +
                     format_time(ok_at_.load()) +
                     ", too long ago to rely on it: run the operation again");
  }
  return ok_status();
}

Status HeldLock::release() {
  // Clean-up runs even when the operation was cancelled.
  UncancellableScope scope;
  if (refresher_.joinable()) {
    // A refresh hanging in retries must not hold the operation's end up; if its new lock
    // object was written after all, it is stale as soon as this process is gone.
    refresh_cancel_.cancel(Error(Error::Code::kCancelled, "unlocking"));
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_refresh_ = true;
    }
    refresh_cv_.notify_all();
    refresher_.join();
  }
  if (watchdog_.joinable()) {
    stop_.cancel();
    watchdog_.join();
  }
  held_ = false;
  std::optional<Id> id;
  std::vector<Id> superseded;
  {
    std::lock_guard<std::mutex> g(mu_);
    id = lock_id_;
    superseded = std::move(superseded_);
    superseded_.clear();
  }
  for (const Id& old : superseded) (void)repo_.backend().discard({ObjectType::kLock, hex(old)});
  if (!id) return ok_status();
  // Gone already (removed by 'haven unlock') is as good as removed.
  Status st = repo_.backend().discard({ObjectType::kLock, hex(*id)});
  {
    std::lock_guard<std::mutex> g(mu_);
    lock_id_.reset();
  }
  repo_.unregister_lock(this);
  return st;
}

Result<std::vector<std::string>> remove_stale_locks(Repository& repo, bool all,
                                                    const std::set<std::string>& keep) {
  std::string me = hostname();
  std::vector<std::string> names;
  HAVEN_TRY(repo.backend().list(ObjectType::kLock, [&](const storage::ObjectInfo& i) {
    names.push_back(i.name.name);
  }));
  std::vector<std::string> removed;
  for (const auto& n : names) {
    if (keep.count(n)) continue;
    std::string what = "lock " + n.substr(0, 8);
    bool remove = all;
    auto body = repo.load_object(ObjectType::kLock, n);
    if (!body.ok() && body.error().code() == Error::Code::kNotFound) continue;
    if (!body.ok() && body.error().code() != Error::Code::kCorrupt) {
      return body.error().with_context("reading lock " + n.substr(0, 8));  // says nothing about it
    }
    Result<Lock> l = body.ok() ? decode_lock(*body, "lock " + n) : Result<Lock>(body.error());
    if (!l.ok() && l.error().code() != Error::Code::kCorrupt) return l.error();
    if (!l.ok()) {
      remove = true;  // junk or damage: nobody can hold it
      what += " (unreadable: " + l.error().message() + ")";
    } else {
      what = std::string(l->exclusive ? "exclusive" : "shared") + " lock " + n.substr(0, 8) +
             " of PID " + std::to_string(l->pid) + " on " + l->hostname;
      remove = remove || lock_is_stale(*l, me, repo.lock_stale_ns());
    }
    if (remove) {
      Status st = repo.backend().remove({ObjectType::kLock, n});
      if (st.ok()) removed.push_back(what);
      else if (st.error().code() != Error::Code::kNotFound) return st.error();
    }
  }
  return removed;
}

}  // namespace haven::repo

#include "ops/restore.h"

#include <optional>
#include <utility>
#include <vector>

#include "ops/lock.h"
#include "ops/ops.h"

namespace haven::ops {

namespace {

struct Parsed {
  restore::Overwrite overwrite = restore::Overwrite::kNever;
  std::optional<TimeNs> at;
};

Result<Parsed> parse(const RestoreRequest& r) {
  Parsed p;
  HAVEN_ASSIGN(p.overwrite, restore::parse_overwrite(r.overwrite));
  if (r.snapshot.empty() && r.at.empty()) {
    return invalid("name a snapshot (an ID prefix or 'latest') or give --at TIME");
  }
  if (!r.snapshot.empty() && !r.at.empty()) {
    return invalid("give either a snapshot or --at, not both");
  }
  if (!r.at.empty()) {
    p.at = parse_time(r.at);
    if (!p.at) {
      return invalid("--at: cannot read time '" + r.at +
                     "': use RFC 3339 (2026-11-21T10:00:00Z) or 'YYYY-MM-DD HH:MM[:SS]' local time");
    }
  }
  if (r.target.empty()) return invalid("no target given: use --target DIR");
  return p;
}

}  // namespace

Status validate(const RestoreRequest& request) {
  HAVEN_TRY(parse(request));
  return ok_status();
}

namespace {

// What restore and compare share: the shared lock, the snapshot chosen (the library says when a
// damaged one may have been the one asked for), the index, the engine's options; then `run`
// with them, and the lock released.
template <typename F>
auto with_chosen_snapshot(repo::Repository& repo, const RestoreRequest& request,
                          const EventTarget& events, F&& run)
    -> decltype(run(std::declval<repo::Session&>(), std::declval<restore::Choice&>(),
                    std::declval<const restore::Options&>(), std::declval<const Parsed&>())) {
  OperationScope scope(repo);
  HAVEN_ASSIGN(Parsed p, parse(request));
  HAVEN_ASSIGN(HeldLock held, lock(repo, LockMode::kShared, events, scope.token(), request.lock_wait));
  CancelScope session_scope(held.session().cancel_token());  // a lost lock stops this one
  std::optional<restore::Choice> chosen;
  HAVEN_TRY(load_index_while(repo, events, held.session().cancel_token(), [&]() -> Status {
    HAVEN_ASSIGN(chosen, restore::choose_snapshot(repo, request.snapshot, p.at));
    return ok_status();
  }));
  restore::Choice choice = std::move(*chosen);
  restore::Options o;
  o.target = request.target;
  o.includes = request.includes;
  o.excludes = request.excludes;
  o.verify = request.verify;
  o.overwrite = p.overwrite;
  o.threads = request.threads;
  auto result = run(held.session(), choice, o, p);
  if (result.ok()) HAVEN_TRY(held.release());
  return result;
}

}  // namespace

Result<RestoreResult> restore(repo::Repository& repo, const RestoreRequest& request,
                              const EventTarget& events) {
  return with_chosen_snapshot(
      repo, request, events,
      [&](repo::Session& session, restore::Choice& choice, const restore::Options& o,
          const Parsed& p) -> Result<RestoreResult> {
        HAVEN_ASSIGN(restore::Summary s, restore::run(session, choice, o, events));
        RestoreResult r;
        r.snapshot_id = choice.id;
        r.snapshot = std::move(choice.snapshot);
        r.overwrite = p.overwrite;
        r.summary = std::move(s);
        return r;
      });
}

Result<CompareResult> compare(repo::Repository& repo, const RestoreRequest& request,
                              const EventTarget& events) {
  return with_chosen_snapshot(
      repo, request, events,
      [&](repo::Session& session, restore::Choice& choice, const restore::Options& o,
          const Parsed&) -> Result<CompareResult> {
        HAVEN_ASSIGN(restore::Comparison c, restore::compare(session, choice, o, events));
        CompareResult r;
        r.snapshot_id = choice.id;
        r.snapshot = std::move(choice.snapshot);
        r.comparison = std::move(c);
        r.substitution = std::move(choice.substitution);
        return r;
      });
}

}  // namespace haven::ops

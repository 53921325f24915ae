#include "ops/restore.h"

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

Result<RestoreResult> restore(repo::Repository& repo, const RestoreRequest& request,
                              const EventTarget& events) {
  OperationScope scope(repo);
  HAVEN_ASSIGN(Parsed p, parse(request));
  HAVEN_ASSIGN(HeldLock held, lock(repo, LockMode::kShared, events, scope.token()));
  CancelScope session_scope(held.session().cancel_token());  // a lost lock stops this one
  // The library picks the snapshot, and says when a damaged one may have been the one asked for.
  HAVEN_ASSIGN(restore::Choice choice, restore::choose_snapshot(repo, request.snapshot, p.at));
  HAVEN_TRY(load_index(repo, events));
  restore::Options o;
  o.target = request.target;
  o.includes = request.includes;
  o.excludes = request.excludes;
  o.verify = request.verify;
  o.overwrite = p.overwrite;
  o.threads = request.threads;
  HAVEN_ASSIGN(restore::Summary s, restore::run(held.session(), choice, o, events));
  HAVEN_TRY(held.release());
  RestoreResult r;
  r.snapshot_id = choice.id;
  r.snapshot = std::move(choice.snapshot);
  r.overwrite = p.overwrite;
  r.summary = std::move(s);
  return r;
}

Result<CompareResult> compare(repo::Repository& repo, const RestoreRequest& request,
                              const EventTarget& events) {
  OperationScope scope(repo);
  HAVEN_ASSIGN(Parsed p, parse(request));
  HAVEN_ASSIGN(HeldLock held, lock(repo, LockMode::kShared, events, scope.token()));
  CancelScope session_scope(held.session().cancel_token());
  HAVEN_ASSIGN(restore::Choice choice, restore::choose_snapshot(repo, request.snapshot, p.at));
  HAVEN_TRY(load_index(repo, events));
  restore::Options o;
  o.target = request.target;
  o.includes = request.includes;
  o.excludes = request.excludes;
  HAVEN_ASSIGN(restore::Comparison c, restore::compare(held.session(), choice, o, events));
  HAVEN_TRY(held.release());
  CompareResult r;
  r.snapshot_id = choice.id;
  r.snapshot = std::move(choice.snapshot);
  r.comparison = std::move(c);
  r.substitution = std::move(choice.substitution);
  return r;
}

}  // namespace haven::ops

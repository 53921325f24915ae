#include "ops/check.h"

#include "ops/lock.h"
#include "ops/ops.h"
#include "pg/archive_check.h"

namespace haven::ops {

namespace {

Result<check::Options> parse(const CheckRequest& r) {
  check::Options o;
  if (r.threads < 1 || r.threads > 64) {
    return invalid("--threads " + std::to_string(r.threads) +
                   ": packs verified at once must be between 1 and 64");
  }
  o.threads = r.threads;
  if (r.read_data && !r.read_data_subset.empty()) {
    return invalid("give either --read-data or --read-data-subset, not both");
  }
  if (r.read_data) o.read_data = check::Options::ReadData::kAll;
  if (!r.read_data_subset.empty()) HAVEN_TRY(check::parse_subset(r.read_data_subset, o));
  return o;
}

}  // namespace

Status validate(const CheckRequest& request) {
  HAVEN_TRY(parse(request));
  return ok_status();
}

Result<check::Report> check(repo::Repository& repo, const CheckRequest& request,
                            const EventTarget& events) {
  OperationScope scope(repo);
  HAVEN_ASSIGN(check::Options o, parse(request));
  HAVEN_ASSIGN(HeldLock held, lock(repo, LockMode::kShared, events, scope.token()));
  CancelScope session_scope(held.session().cancel_token());  // a lost lock stops this one
  HAVEN_ASSIGN(check::Report report, check::check(held.session(), o, events));
  HAVEN_TRY(pg::check_archive(repo, o.read_data != check::Options::ReadData::kNone, report));
  HAVEN_TRY(held.release());
  return report;
}

Result<check::RepairStats> repair_index(repo::Repository& repo, const RepairIndexRequest&,
                                        const EventTarget& events) {
  OperationScope scope(repo);
  HAVEN_ASSIGN(HeldLock held, lock(repo, LockMode::kExclusive, events, scope.token()));
  HAVEN_ASSIGN(check::RepairStats st, check::repair_index(held.session(), events));
  HAVEN_TRY(held.release());
  return st;
}

Result<UnlockResult> unlock(repo::Repository& repo, const UnlockRequest& request) {
  OperationScope scope(repo);
  HAVEN_ASSIGN(auto removed, repo.remove_stale_locks(request.remove_all));
  return UnlockResult{std::move(removed)};
}

}  // namespace haven::ops

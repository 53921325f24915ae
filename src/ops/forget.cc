#include "ops/forget.h"

#include <algorithm>

#include "ops/lock.h"
#include "ops/ops.h"

namespace haven::ops {

namespace {

struct ParsedForget {
  retention::Policy policy;
  retention::TimeZone zone = retention::TimeZone::utc();
  retention::GroupBy group_by;
  PruneRequest prune;
};

Result<ParsedForget> parse(const ForgetRequest& r) {
  ParsedForget p;
  retention::Policy& policy = p.policy;
  policy.keep_last = r.keep_last;
  policy.keep_hourly = r.keep_hourly;
  policy.keep_daily = r.keep_daily;
  policy.keep_weekly = r.keep_weekly;
  policy.keep_monthly = r.keep_monthly;
  policy.keep_yearly = r.keep_yearly;
  policy.keep_tags = r.keep_tags;
  policy.min_copies = r.min_copies;
  policy.max_copies = r.max_copies;
  if (!r.keep_within.empty()) {
    auto d = retention::parse_duration(r.keep_within);
    if (!d.ok()) return d.error().with_context("--keep-within");
    policy.keep_within = *d;
  }
  HAVEN_TRY(retention::validate(policy));
  auto zone = retention::TimeZone::load(r.timezone);
  if (!zone.ok()) return zone.error().with_context("--timezone");
  p.zone = std::move(*zone);
  HAVEN_ASSIGN(p.group_by, retention::parse_group_by(r.group_by));
  if (r.max_unused_percent) {
    if (!r.prune) return invalid("--max-unused applies to the prune: give --prune too");
    p.prune.max_unused_percent = *r.max_unused_percent;
  }
  HAVEN_TRY(validate(p.prune));
  return p;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

}  // namespace

Status validate(const PruneRequest& r) {
  if (!(r.max_unused_percent >= 0 && r.max_unused_percent <= 100)) {
    return invalid("--max-unused " + std::to_string(r.max_unused_percent) +
                   ": give a percentage from 0 (repack every pack with unused data) to 100 "
                   "(never repack)");
  }
  return ok_status();
}

Result<retention::PruneStats> prune(repo::Repository& repo, const PruneRequest& request,
                                    const EventTarget& events) {
  OperationScope scope(repo);
  HAVEN_TRY(validate(request));
  HAVEN_ASSIGN(HeldLock held, lock(repo, LockMode::kExclusive, events, scope.token()));
  CancelScope session_scope(held.session().cancel_token());  // a lost lock stops this one
  retention::PruneOptions o;
  o.max_unused_percent = request.max_unused_percent;
  o.dry_run = request.dry_run;
  HAVEN_ASSIGN(retention::PruneStats st, retention::prune(held.session(), o, events));
  HAVEN_TRY(held.release());
  return st;
}

Status validate(const ForgetRequest& request) {
  HAVEN_TRY(parse(request));
  return ok_status();
}

std::string describe_policy(const ForgetRequest& r) {
  std::vector<std::string> rules;
  if (r.keep_last) rules.push_back("last " + std::to_string(r.keep_last));
  const std::pair<const char*, int> buckets[] = {{"hourly", r.keep_hourly}, {"daily", r.keep_daily},
                                                 {"weekly", r.keep_weekly}, {"monthly", r.keep_monthly},
                                                 {"yearly", r.keep_yearly}};
  for (const auto& [name, n] : buckets) {
    if (n) rules.push_back(std::to_string(n) + " " + name);
  }
  if (!r.keep_within.empty()) rules.push_back("within " + r.keep_within);
  for (const auto& t : r.keep_tags) rules.push_back("tag " + t);
  std::string s = "keep " + join(rules, ", ");
  std::vector<std::string> limits;
  if (r.min_copies) limits.push_back("at least " + std::to_string(r.min_copies));
  if (r.max_copies) limits.push_back("at most " + std::to_string(r.max_copies));
  if (!limits.empty()) s += "; " + join(limits, ", ") + " per group";
  return s;
}

Result<ForgetResult> forget(repo::Repository& repo, const ForgetRequest& request,
                            const EventTarget& events) {
  OperationScope scope(repo);
  // Everything the request says is checked before the repository is touched.
  HAVEN_ASSIGN(ParsedForget p, parse(request));
  // Removing snapshots needs the exclusive lock (no backup may pick a parent we delete, no
  // prune may run at the same time); a dry run changes nothing and shares.
  HAVEN_ASSIGN(HeldLock held,
               lock(repo, request.dry_run ? LockMode::kShared : LockMode::kExclusive, events,
                    scope.token()));
  CancelScope session_scope(held.session().cancel_token());  // a lost lock stops this one
  HAVEN_ASSIGN(auto all, list_snapshots(repo, events));
  std::vector<retention::SnapshotRef> refs;
  refs.reserve(all.size());
  for (const auto& [id, s] : all) {
    bool selected = std::all_of(request.only_tags.begin(), request.only_tags.end(),
                                [&s](const std::string& t) {
                                  return std::find(s.tags.begin(), s.tags.end(), t) != s.tags.end();
                                });
    if (selected) refs.push_back({id, s.time, s.hostname, s.paths, s.tags});
  }
  std::vector<retention::Group> groups = retention::apply(p.policy, refs, p.zone, p.group_by);

  ForgetResult out;
  out.policy = describe_policy(request);
  out.timezone = p.zone.name();
  out.group_by = p.group_by;
  out.dry_run = request.dry_run;
  std::vector<repo::Id> to_remove;
  for (auto& g : groups) {
    std::vector<TimeNs> times;
    for (const auto& d : g.decisions) times.push_back(d.time);
    std::vector<retention::CivilTime> local = p.zone.civil(times);
    ForgetGroup fg{std::move(g.host), std::move(g.paths), std::move(g.tags), {}};
    for (size_t i = 0; i < g.decisions.size(); i++) {
      auto& d = g.decisions[i];
      (d.keep ? out.keep : out.remove)++;
      if (!d.keep) to_remove.push_back(d.id);
      fg.decisions.push_back({d.id, d.time, local[i], d.keep, std::move(d.reasons)});
    }
    out.groups.push_back(std::move(fg));
  }
  if (!request.dry_run) {
    for (const auto& id : to_remove) {
      Status st = repo.remove_snapshot(id);
      if (!st.ok()) {
        out.removal_error = st.error().with_context(
            "removing snapshots (" + std::to_string(out.removed) + " of " +
            std::to_string(to_remove.size()) + " removed)");
        break;
      }
      out.removed++;
    }
  }
  if (request.prune && !request.dry_run && !out.removal_error) {
    retention::PruneOptions po;
    po.max_unused_percent = p.prune.max_unused_percent;
    HAVEN_ASSIGN(retention::PruneStats st, retention::prune(held.session(), po, events));
    out.prune = st;
  }
  HAVEN_TRY(held.release());
  return out;
}

}  // namespace haven::ops

// ops/forget.h — `forget` (remove the snapshots a retention policy does not keep, then
// optionally prune) and `prune` (delete unreferenced data, repack partly used packs). Engines:
// retention/policy.h, retention/prune.h. Conventions: ops/ops.h.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "repo/repository.h"
#include "retention/policy.h"
#include "retention/prune.h"
#include "util/events.h"

namespace haven::ops {

struct PruneRequest {
  // Repack packs whose unused share exceeds this percentage (0 to 100).
  double max_unused_percent = retention::PruneOptions{}.max_unused_percent;
  bool dry_run = false;  // plan and report only; change nothing
};

Status validate(const PruneRequest& request);

// Exclusive lock; retention::prune.
Result<retention::PruneStats> prune(repo::Repository& repo, const PruneRequest& request,
                                    const EventTarget& events);

struct ForgetRequest {
  // The policy (retention/policy.h): counts of 0 are off.
  int keep_last = 0;
  int keep_hourly = 0, keep_daily = 0, keep_weekly = 0, keep_monthly = 0, keep_yearly = 0;
  std::string keep_within;  // a duration: 30d, 2w, 6m, 1y6m, 72h; a bare number is days
  std::vector<std::string> keep_tags;
  int min_copies = 0, max_copies = 0;
  // The zone hours, days, weeks, months and years are counted in: "UTC" or an IANA name. The
  // library has no "local": the front end finds the local zone's name (the CLI:
  // cli/timezone.h).
  std::string timezone = "UTC";
  std::string group_by = "host,paths";  // comma-separated host, paths, tags; "" = one group
  // Only snapshots carrying every one of these tags are considered (kept or removed); the
  // others are left alone (a server applies each policy's retention to its own snapshots).
  std::vector<std::string> only_tags;
  bool dry_run = false;  // decide and report only (takes the lock shared)
  bool prune = false;    // prune afterwards, under the same lock (not with dry_run)
  std::optional<double> max_unused_percent;  // for the prune; only with `prune`
};

Status validate(const ForgetRequest& request);

// "keep 7 daily, 4 weekly, within 30d, tag pinned; at least 3, at most 50 per group".
// REQUIRES: validate(request).ok().
std::string describe_policy(const ForgetRequest& request);

struct ForgetDecision {
  repo::Id id{};
  TimeNs time = 0;
  retention::CivilTime local;  // `time` in the request's zone
  bool keep = false;
  std::vector<std::string> reasons;  // retention::Decision::reasons
};

struct ForgetGroup {
  std::string host;                 // set when grouping by host
  std::vector<std::string> paths;   // set when grouping by paths
  std::vector<std::string> tags;    // set when grouping by tags
  std::vector<ForgetDecision> decisions;  // newest first
};

struct ForgetResult {
  std::string policy;    // describe_policy()
  std::string timezone;  // the zone's name
  retention::GroupBy group_by;
  bool dry_run = false;
  std::vector<ForgetGroup> groups;  // sorted by (host, paths, tags)
  size_t keep = 0, remove = 0;      // decisions
  size_t removed = 0;               // snapshot objects removed (0 in a dry run)
  // Removing stops at the first failure: then `removed` says how many went, this says why, and
  // no prune runs. The caller reports the decisions and then this error.
  std::optional<Error> removal_error;
  std::optional<retention::PruneStats> prune;  // when the request asked for one and it ran
};

// Lock exclusive (shared for a dry run); lists the snapshots (skipping damaged ones with a
// warning notice), applies the policy per group, removes what it does not keep, then prunes if
// asked (prune's events follow).
Result<ForgetResult> forget(repo::Repository& repo, const ForgetRequest& request,
                            const EventTarget& events);

}  // namespace haven::ops

// ops/restore.h — `restore`: a snapshot, chosen by reference or by time, or part of it, back
// into a directory (the engine: restore/restore.h). Conventions: ops/ops.h.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "repo/repository.h"
#include "restore/restore.h"
#include "util/clock.h"
#include "util/events.h"

namespace haven::ops {

struct RestoreRequest {
  // Which snapshot: `snapshot` ("latest", an ID or a unique prefix), or `at`, the newest
  // snapshot at or before a time (RFC 3339, or 'YYYY-MM-DD HH:MM[:SS]' local time). One of
  // the two.
  std::string snapshot;
  std::string at;
  std::string target;                 // the directory to restore into
  std::vector<std::string> includes;  // paths as backed up (/srv/app/etc) or stored (app/etc)
  std::vector<std::string> excludes;  // paths or globs, either form
  bool verify = false;                // re-read restored files and check their content
  std::string overwrite = "never";    // never | if-changed | always
  unsigned threads = 0;               // readers; 0: one per core, at least 4
  // How long a conflicting (exclusive) lock is waited out before failing; 0: fail at once.
  std::chrono::seconds lock_wait{0};
};

struct RestoreResult {
  repo::Id snapshot_id{};
  repo::Snapshot snapshot;
  restore::Overwrite overwrite = restore::Overwrite::kNever;
  // files, dirs, bytes, skipped (existing files left alone), verified, errors (files that
  // failed, each an "error" event), substitution (non-empty: a damaged snapshot may have been
  // the one asked for; see restore::choose_snapshot — never present the restore as plainly the
  // one asked for).
  restore::Summary summary;
};

// Also parses: `at` and `overwrite`.
Status validate(const RestoreRequest& request);

// Shared lock; chooses the snapshot (restore::choose_snapshot), loads the index and restores.
// Files that fail are counted in summary.errors, not an Error.
Result<RestoreResult> restore(repo::Repository& repo, const RestoreRequest& request,
                              const EventTarget& events);

struct CompareResult {
  repo::Id snapshot_id{};
  repo::Snapshot snapshot;
  restore::Comparison comparison;  // clean(): everything selected is in the target as stored
  // Non-empty: a damaged snapshot may have been the one asked for (restore::Choice); the
  // comparison is with the one named in snapshot_id.
  std::string substitution;
};

// The validation of a restore: the same request (snapshot or time, target, includes,
// excludes; verify and overwrite are ignored) compared with what is in the target, writing
// nothing (restore::compare). Shared lock. Differences are counted, not an Error.
Result<CompareResult> compare(repo::Repository& repo, const RestoreRequest& request,
                              const EventTarget& events);

}  // namespace haven::ops

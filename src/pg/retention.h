// pg/retention.h — keeping what a point-in-time window needs, and no more.
//
// For a window W (seed: up to 30 days): every base backup that stopped within W is kept, plus
// the newest one that stopped before it (recovery to the window's start begins there). Older
// base backups are forgotten (their snapshot objects removed; prune reclaims their data). WAL
// segments before the oldest kept base backup's first segment are removed — on every timeline,
// since recovery from a kept backup only reads WAL from its start on. Timeline history files
// are always kept (they are tiny and recovery across timelines needs them); .backup files and
// .partial segments go with the segments they follow.
#pragma once

#include <string>
#include <vector>

#include "pg/recovery.h"
#include "repo/repository.h"
#include "repo/session.h"

namespace haven::pg {

struct RetainResult {
  std::vector<BaseBackup> kept, forgotten;
  std::vector<std::string> wal_removed;  // names
  uint64_t wal_bytes_removed = 0;
  std::string oldest_needed_segment;     // "" if no base backup is kept
};

// Applies the window as of `now` in `session`, which holds the exclusive lock (checked live
// before anything is deleted). With dry_run, changes nothing.
Result<RetainResult> retain(repo::Session& session, TimeNs window, TimeNs now, bool dry_run);

}  // namespace haven::pg

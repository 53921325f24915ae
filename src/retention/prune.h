// retention/prune.h — deletes what no snapshot references and repacks packs that are mostly
// unused (docs/FORMAT.md §9 "Prune").
//
// Crash-safe ordering: (1) repacked blobs go into new packs, which are durable; (2) new index
// files naming every pack that stays (and the new ones) are durable; (3) only then the old
// index files are deleted; (4) last, the packs nothing names any more. A crash between any two
// steps leaves every snapshot readable; at worst packs no index names, which the next prune
// deletes.
//
// Memory: the repository index (about 60 bytes per blob) plus one bit per blob for "used",
// plus one index file and two packs at a time — never proportional to the data.
#pragma once

#include <cstdint>

#include "repo/repository.h"
#include "repo/session.h"
#include "util/events.h"

namespace haven::retention {

struct PruneOptions {
  // A pack whose unused share (bytes) is above this percentage is repacked; at or below it is
  // kept as it is. 0 repacks every pack with any unused blob; 100 never repacks.
  double max_unused_percent = 10.0;
  bool dry_run = false;  // plan and report only; change nothing
};

struct PruneStats {
  uint64_t snapshots = 0;
  uint64_t packs_total = 0, packs_deleted = 0, packs_repacked = 0, packs_written = 0;
  uint64_t packs_unindexed = 0;  // packs no index names (left by interrupted backups), deleted
  uint64_t blobs_total = 0, blobs_used = 0, blobs_removed = 0, blobs_repacked = 0;
  uint64_t bytes_total = 0;      // size of all packs before
  uint64_t bytes_unused = 0;     // of blobs nothing references (before)
  uint64_t bytes_deleted = 0;    // pack bytes deleted
  uint64_t bytes_written = 0;    // pack bytes written by repacking (estimated by a dry run)
  uint64_t bytes_unused_kept = 0;  // unused bytes left in packs under the threshold
  uint64_t index_files_written = 0, index_files_deleted = 0;
  uint64_t leftovers = 0, leftover_bytes = 0;  // temporary files of interrupted saves, removed
  uint64_t duration_ms = 0;
  int64_t reclaimed() const { return static_cast<int64_t>(bytes_deleted) - static_cast<int64_t>(bytes_written); }
};

// `session` holds the repository's exclusive lock (each deletion checks it is still live); the
// prune runs under its token. Reads the index files into an index of its own; new index files
// are batched by repo::IndexWriter; afterwards the repository's shared index, if loaded, is read
// again. Refuses (kCorrupt, changing nothing) when a snapshot references a tree or blob that
// cannot be read or is not in the index: deleting data then could lose what the damaged part
// still needs.
// Events: prune:started, prune:progress (phases "snapshots", "index", "repack", "delete"),
// prune:completed (stats_json), prune:failed or prune:cancelled.
Result<PruneStats> prune(repo::Session& session, const PruneOptions& options,
                         const EventTarget& events);

// The statistics as the "summary" event and `--json` show them.
nlohmann::json stats_json(const PruneStats& s, bool dry_run);

}  // namespace haven::retention

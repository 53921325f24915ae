// ops/inspect.h — looking into a repository without changing it: `snapshots`, `ls`, `find`,
// `diff` and `stats`. Paths inside snapshots: repo/paths.h (as backed up, "/srv/app/etc", or as
// stored, "/app/etc"). Conventions: ops/ops.h; these take no lock (they only read, and a
// snapshot's data stays until a prune, which needs the exclusive lock).
//
// ls, find and diff can be long: each either collects what it finds in its result or, given a
// visitor, hands each item to it as it is found (and collects nothing).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "repo/repository.h"
#include "util/events.h"

namespace haven::ops {

struct SnapshotEntry {
  repo::Id id{};
  repo::Snapshot snapshot;
};

// --- snapshots ---
struct SnapshotsRequest {};
// Every readable snapshot, oldest first (a damaged one is skipped with a warning notice).
Result<std::vector<SnapshotEntry>> snapshots(repo::Repository& repo, const SnapshotsRequest& request,
                                             const EventTarget& events);

// A node of a snapshot's tree and its stored path with a leading '/' ("/app/etc/hosts").
struct TreeEntry {
  std::string path;
  repo::Node node;
};
using TreeEntryVisitor = std::function<void(const TreeEntry&)>;

// --- ls ---
struct LsRequest {
  std::string snapshot;   // "latest", an ID or a unique prefix
  std::string path = "/";  // a directory (listed with everything under it) or a file
};
struct LsResult {
  repo::Id snapshot_id{};
  repo::Snapshot snapshot;
  uint64_t count = 0;
  std::vector<TreeEntry> entries;  // depth first, in name order (empty with a visitor)
};
Status validate(const LsRequest& request);
// Loads the index. kNotFound naming the path and the snapshot's top-level paths if the path
// names nothing.
Result<LsResult> ls(repo::Repository& repo, const LsRequest& request, const EventTarget& events,
                    const TreeEntryVisitor& visit = {});

// --- find ---
struct FindRequest {
  // A glob (fnmatch), matched against each name, each stored path and each original path.
  std::string pattern;
};
struct FindMatch {
  repo::Id snapshot_id{};
  TimeNs snapshot_time = 0;
  TreeEntry entry;
};
using FindVisitor = std::function<void(const FindMatch&)>;
struct FindResult {
  uint64_t snapshots = 0;  // searched
  uint64_t count = 0;      // matches
  std::vector<FindMatch> matches;  // snapshots oldest first (empty with a visitor)
};
Status validate(const FindRequest& request);
// In every readable snapshot. Loads the index.
Result<FindResult> find(repo::Repository& repo, const FindRequest& request, const EventTarget& events,
                        const FindVisitor& visit = {});

// --- diff ---
struct DiffRequest {
  std::string snapshot_a;  // the older
  std::string snapshot_b;  // the newer
  // Compare only these paths (either form); each must be in at least one of the two snapshots.
  std::vector<std::string> paths;
};
struct Change {
  // '+' added, '-' removed, 'M' content, 'T' type, 'U' metadata changed.
  char kind = '+';
  std::string path;  // stored form with a leading '/'
};
using ChangeVisitor = std::function<void(const Change&)>;
struct DiffResult {
  repo::Id snapshot_a{}, snapshot_b{};
  uint64_t added = 0, removed = 0, modified = 0, type_changed = 0, metadata_changed = 0;
  std::vector<Change> changes;  // in tree order (empty with a visitor)
};
Status validate(const DiffRequest& request);
// Loads the index. Identical subtrees are not read.
Result<DiffResult> diff(repo::Repository& repo, const DiffRequest& request, const EventTarget& events,
                        const ChangeVisitor& visit = {});

// --- stats ---
struct StatsRequest {};
struct StatsResult {
  uint64_t snapshots = 0;
  uint64_t packs = 0;
  uint64_t blobs = 0;                 // in the index
  uint64_t stored_bytes = 0;          // packs, as stored (compressed, encrypted)
  uint64_t unique_raw_bytes = 0;      // the blobs' raw lengths
  uint64_t snapshot_bytes_total = 0;  // every snapshot's bytes_total added up
  uint64_t index_memory_bytes = 0;    // memory the loaded index holds
  uint64_t index_blobs_on_disk = 0;   // index entries kept in the cache directory instead
  // snapshot_bytes_total / stored_bytes (0 if nothing is stored).
  double dedup_ratio() const;
};
// Loads the index and lists the packs.
Result<StatsResult> stats(repo::Repository& repo, const StatsRequest& request, const EventTarget& events);

}  // namespace haven::ops

// check/repair.h — `haven repair index`: rebuilds the index from the packs themselves.
//
// Every pack in storage is asked for its trailer (its own encrypted list of blobs; only the
// pack's first 44 bytes and its tail are fetched). A pack whose trailer is damaged keeps the
// entries an old, readable index file had for it. New index files are written first; only
// when they are durable are the old ones deleted, so a crash leaves the old index in place
// (plus duplicates, which are harmless).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "repo/repository.h"
#include "repo/session.h"
#include "util/events.h"

namespace haven::check {

struct RepairStats {
  uint64_t packs = 0;               // packs in storage
  uint64_t packs_indexed = 0;       // packs the new index names
  uint64_t packs_added = 0;         // of those, no old index named them
  uint64_t packs_from_old_index = 0;  // trailer damaged, entries taken from the old index
  uint64_t packs_dropped = 0;       // named by the old index but missing from storage
  uint64_t blobs = 0;
  uint64_t index_files_written = 0, index_files_deleted = 0, index_files_unreadable = 0;
  std::vector<std::string> unreadable_packs;  // trailer damaged and no index entries: data lost
  uint64_t duration_ms = 0;
};

// `session` holds the exclusive lock; the repair runs under its token and deletes the old index
// files only while that lock is live. New index files are batched by repo::IndexWriter.
// Events: repair:started, repair:progress (phase "packs"), repair:warning (a pack whose trailer
// cannot be read), repair:completed (repair_json), repair:failed or repair:cancelled.
Result<RepairStats> repair_index(repo::Session& session, const EventTarget& events);

nlohmann::json repair_json(const RepairStats& s);

}  // namespace haven::check

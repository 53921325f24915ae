// replication/replication.h — copies of a repository in other regions (docs/FORMAT.md §12).
//
// A replica is the repository itself, object for object and byte for byte: the same config,
// key files, packs, index files, snapshots and WAL objects under the same names, so it opens
// alone with the repository's password and nothing is decrypted or sealed again to copy it.
// Locks are the only objects each copy keeps for itself.
//
// What this file does, for any two backends holding the repository:
//   inventory()   lists the objects that are replicated, with sizes and times;
//   compare()     the lag of one copy behind another: objects and bytes missing, the age of
//                 the oldest of them, objects held with another size, objects only it holds;
//   replicate()   one catch-up pass: copies what a region lacks in an order that keeps it a
//                 valid repository at every moment (keys, config, WAL, packs, index files,
//                 snapshots), then mirrors deletions (forget, prune, key remove) without ever
//                 removing what a snapshot the region still holds needs;
//   validate()    `haven check --regions`: names what is missing in, differs in, or is extra
//                 in each region, by names and sizes or, with read_data, by contents, and which
//                 copy of a differing object authenticates;
//   repair()      `haven repair --from REGION`: replaces missing or damaged objects in one copy
//                 with sound ones from another, each authenticated before it is written.
//
// Library code: no printing, no environment; long work runs under the calling thread's cancel
// token (util/cancel.h) and reports replication:* events through the EventTarget.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "repo/repository.h"
#include "storage/backend.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/events.h"

namespace haven::replication {

// One copy of a repository: the region's label and its backend.
struct Region {
  std::string name;
  std::shared_ptr<storage::Backend> backend;
};

// The object types a replica holds, in the order a pass copies them (locks are never copied).
const std::vector<storage::ObjectType>& replicated_types();

// Every replicated object of a backend, by (type, name).
using ObjectKey = std::pair<storage::ObjectType, std::string>;
using Inventory = std::map<ObjectKey, storage::ObjectInfo>;
// Lists snapshots first and packs last, so that whatever a listed snapshot or index file
// references was already durable when its type was listed (FORMAT.md §9).
Result<Inventory> inventory(storage::Backend& backend);

std::string describe(const ObjectKey& key);  // "pack 3fa9…", "WAL file 0000…"

// How far `copy` is behind `source`.
struct Lag {
  uint64_t objects = 0, bytes = 0;     // in source, not in copy
  std::optional<TimeNs> oldest;        // the source's time of the oldest of them
  uint64_t differing = 0;              // in both, with different sizes
  uint64_t extra = 0;                  // in copy only (deletions not mirrored yet)
  nlohmann::json to_json(TimeNs now) const;
};
Lag compare(const Inventory& source, const Inventory& copy);

struct PassOptions {
  unsigned parallel = 4;         // objects copied at once (memory: parallel × the largest pack)
  bool mirror_deletions = true;  // forget, prune and key remove on the primary apply here too
  // Objects in the region younger than this are never deleted (a sync write may land in a
  // region moments before the primary), nor taken for damage.
  TimeNs deletion_grace = 15LL * 60 * 1'000'000'000;
  TimeNs now = 0;  // 0: the wall clock
};

struct PassResult {
  std::string region;
  uint64_t copied_objects = 0, copied_bytes = 0;
  uint64_t deleted_objects = 0;
  // Deletions were not made this pass (the region's exclusive lock is held by a reader, or the
  // pass did not copy everything): the reason. They are made by a later pass.
  std::string deletions_deferred;
  // Objects held with another size in the region (damage in one copy: check --regions tells
  // which, repair --from fixes it); never overwritten by a pass.
  std::vector<std::string> differing;
  // Objects the region holds that the primary lacks although its own index still names them:
  // damage in the primary, kept (haven repair --from this region restores them there).
  std::vector<std::string> kept;
  Lag lag;  // what is left after the pass (objects that appeared meanwhile)
  std::vector<std::string> region_snapshots;  // the snapshots the region holds after the pass
  uint64_t duration_ms = 0;
  nlohmann::json to_json(TimeNs now) const;
};

// One catch-up pass from `primary` (the repository, open on the primary's backend) to `region`.
// Takes a shared lock on the primary for the pass (so no prune deletes what it is copying) and,
// for deletions, an exclusive lock on the region. Events: replication:started,
// replication:progress (objects and bytes), replication:completed (to_json) or
// replication:failed. A region that cannot be reached fails the pass (kTransient, kIo...) with
// what was copied before kept: the next pass carries on from there.
Result<PassResult> replicate(repo::Repository& primary, const Region& region,
                             const PassOptions& options, const EventTarget& events);

// Copies one object from `source` to `region` (the server's continuous replication: each
// object as soon as it lands). An object already there with the same size counts as copied;
// one missing in `source` (pruned meanwhile) is kNotFound.
Result<uint64_t> copy_object(storage::Backend& source, storage::Backend& region,
                             const storage::ObjectName& name);

// Copies `keys` from `source` to `region` in replicated_types() order, each type wholly before
// the next (packs are durable before an index file naming them is written, index files before
// a snapshot), `parallel` at a time within a type, calling on_copied(key, bytes written; 0 when
// it was there already) for each. An object missing in `source` (pruned meanwhile) is skipped;
// one the region holds with another size goes to on_differing when given (never overwritten),
// else it fails the copy. The first failure stops it.
Status copy_objects(storage::Backend& source, storage::Backend& region,
                    std::vector<ObjectKey> keys, unsigned parallel,
                    const std::function<void(const ObjectKey&, uint64_t)>& on_copied,
                    const std::function<void(const ObjectKey&)>& on_differing = {});

// Makes `region` ready to receive the repository's new objects (sync mode writes them there
// directly): its place created (directory, bucket, container) and the key files and config
// copied when it has no config yet. The region is a full copy only once a pass copied the rest.
Status prepare_region(storage::Backend& primary, storage::Backend& region);

// Authenticates an object's bytes as the repository's (a pack's every record, an encrypted
// object, a WAL object, a key file's checksum): OK or kCorrupt naming the object.
Status verify_object(const repo::Repository& repo, const storage::ObjectName& name,
                     ByteView bytes);

// --- check --regions ---
struct Difference {
  std::string object;  // described
  storage::ObjectType type = storage::ObjectType::kData;
  std::string name;
  std::string kind;    // "missing" (not in the region), "extra" (only in the region: a
                       // deletion not mirrored yet), "missing_in_primary" (only in the region,
                       // and the primary's index names it: damage in the primary), "size"
                       // (sizes differ), "content" (same size, other bytes)
  uint64_t primary_size = 0, region_size = 0;
  // With read_data, for "size" and "content": which copies authenticate.
  std::optional<bool> primary_sound, region_sound;
};

struct RegionReport {
  std::string region;
  uint64_t objects = 0, bytes = 0;   // what the region holds
  uint64_t compared = 0;             // objects compared by content (read_data)
  std::vector<Difference> differences;
  std::string error;                 // the region could not be listed or read
  bool ok() const;
  nlohmann::json to_json() const;
};

// Compares every region with the primary (the caller reports replication:validation-failed
// for a region whose report is not ok()).
Result<std::vector<RegionReport>> validate(repo::Repository& primary, const Region& primary_region,
                                           const std::vector<Region>& regions, bool read_data,
                                           const EventTarget& events);

// --- repair --from ---
struct RepairOptions {
  bool read_data = false;  // also compare contents of objects of equal size
  // The target is the primary: an object it lacks is restored only if it still references it
  // (a pack its index names, an index file naming a pack it holds unindexed, a WAL segment
  // inside the range it holds, the config, its keys when none is left). Snapshots and pruned
  // objects the source still holds are named in only_in_source, not copied: the primary may
  // have forgotten them on purpose. For a secondary target everything missing is copied.
  bool referenced_only = false;
};

struct RepairResult {
  std::string target, source;
  uint64_t replaced = 0, added = 0, bytes = 0;
  std::vector<std::string> repaired;        // described, with what was wrong
  std::vector<std::string> unrepaired;      // damaged or missing in both: named, with why
  std::vector<std::string> only_in_source;  // snapshots the target lacks (referenced_only)
  nlohmann::json to_json() const;
};

// Writes into `target` the objects of `source` it lacks (see RepairOptions), and replaces
// objects whose copy in the target fails authentication where the source's passes: index
// files, snapshots, keys and the config are always authenticated; packs and WAL files when
// their size differs or, with read_data, their content. Every object written is authenticated first. `repo`
// is the repository open on any copy (its master key). Takes an exclusive lock on the target.
// Events: repair:started, repair:completed (to_json) or repair:failed.
Result<RepairResult> repair(repo::Repository& repo, const Region& target, const Region& source,
                            const RepairOptions& options, const EventTarget& events);

}  // namespace haven::replication

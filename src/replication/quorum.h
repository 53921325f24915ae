// replication/quorum.h — synchronous replication: a backend that writes each object to the
// primary and to the secondary regions at once, and reports success only when the primary and
// `quorum` secondaries hold it durably (their save() returned). The bytes are in memory once
// and sent to every region: the source (files, WAL) is read once however many regions there are.
//
// What becomes visible when the quorum is not met:
//   - snapshots, WAL files, key files and the config — the objects that make data visible — are
//     written to the secondaries first and to the primary only once the quorum holds them; when
//     it does not, the copies that landed are removed again and save() fails: nothing of the
//     operation is visible anywhere (a backup fails before its snapshot exists; PostgreSQL keeps
//     the WAL file and retries archive_command);
//   - packs and index files go to every region at once (nothing references them until a
//     snapshot does); without the quorum save() fails and what landed is unreferenced data
//     that prune (and the regions' deletion mirroring) removes.
// With `degrade`, a missing quorum is reported (on_region_failed) and save() succeeds once the
// primary holds the object; the asynchronous replicator brings the other regions up to date.
//
// Deletions (prune, forget) and locks touch the primary only: each region's deletions are made
// by the replicator's passes under that region's own exclusive lock (replication.h), so a
// restore reading a replica never loses a pack under it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "replication/replication.h"
#include "storage/backend.h"

namespace haven::replication {

struct QuorumOptions {
  int quorum = 1;        // secondaries that must hold each object (1..regions)
  bool degrade = false;  // on_quorum_loss: degrade
  // Called for each region a save could not reach (degraded or failed), off the lock.
  std::function<void(const std::string& region, const Error& error)> on_region_failed;
  // Whether a region takes part now (paused and stopped regions do not, and count as missing).
  std::function<bool(const std::string& region)> active;
};

class QuorumBackend : public storage::ReadThroughWrapper {
 public:
  QuorumBackend(std::shared_ptr<storage::Backend> primary, std::vector<Region> secondaries,
                QuorumOptions options);
  Status save(const storage::ObjectName& name, ByteView data) override;

 private:
  // Saves to each of `regions` in parallel; returns one status per region, and in `fresh`
  // whether each save wrote the object (rather than finding it there).
  std::vector<Status> save_to(const std::vector<const Region*>& regions,
                              const storage::ObjectName& name, ByteView data,
                              std::vector<char>* fresh = nullptr);
  std::vector<Region> secondaries_;
  QuorumOptions options_;
};

// Reports each object saved through it (after the save succeeded): the server's continuous
// replication learns of new objects the moment they land.
class ObservedBackend : public storage::ReadThroughWrapper {
 public:
  using Observer = std::function<void(const storage::ObjectName& name, uint64_t size)>;
  ObservedBackend(std::shared_ptr<storage::Backend> inner, Observer observer)
      : ReadThroughWrapper(std::move(inner)), observer_(std::move(observer)) {}
  Status save(const storage::ObjectName& name, ByteView data) override {
    Status s = BackendWrapper::save(name, data);
    if (s.ok() && observer_) observer_(name, data.size());
    return s;
  }

 private:
  Observer observer_;
};

}  // namespace haven::replication

// repo/index_writer.h — the one place that decides when an index file is written (docs/FORMAT.md
// §5, §9). Backup sessions (through their pack writer), prune and repair index hand it packs
// that are already durable; it writes them out in index files.
//
// Batching policy: an index file is written as soon as the packs waiting for one hold
// kIndexFileBlobs (10,000) blobs, and at flush(). So a file names about 10,000 blobs (at most
// that plus one pack's; under a memory limit, fewer: file_blobs()), memory for waiting packs
// is bounded, and a crash loses at most that
// many blobs' index entries (the packs stay; `repair index` recovers them, prune deletes them).
// Why 10,000: a waiting blob costs ~160 bytes (its record here and the pack writer's lookup
// entry) until its file is written, and the file ~41 bytes more while it is sealed; at 50,000
// that was ~10 MB a million-file backup held beside its workers and a 50,000-file one did not
// (peaks 38 / 43 / 46 MiB at 50,000 / 200,000 / 1,000,000 files; 33 / 35 / 36 at 10,000).
// More files cost more reads when the index is loaded, which fetches four at a time.
//
// A file that fails to be written keeps its packs waiting: the next add() or flush() tries again.
// `on_written` (optional) is called with the packs of each file once it is durable, with the
// writer's mutex held (so files are announced in the order they were written).
//
// Thread-safety: add() and flush() may be called from many threads at once (a session's
// uploader threads); a file is written by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "repo/index.h"
#include "util/error.h"

namespace haven::repo {

class Repository;

constexpr size_t kIndexFileBlobs = 10000;

class IndexWriter {
 public:
  using OnWritten = std::function<void(const std::vector<PackRecord>&)>;
  explicit IndexWriter(Repository& repo, OnWritten on_written = {});

  // Adds one durable pack; writes an index file when the waiting packs reach kIndexFileBlobs.
  Status add(PackRecord pack);
  // Writes the waiting packs (if any) as one index file.
  Status flush();

  // Blobs that make the waiting packs an index file: kIndexFileBlobs, or under the repository's
  // memory limit as many as a tenth of its working share holds (~160 bytes each while waiting:
  // the records here and the pack writer's own lookup table), at least 1,000.
  size_t file_blobs() const { return file_blobs_; }
  uint64_t files_written() const;
  size_t waiting_blobs() const;

 private:
  Status write_locked();

  Repository& repo_;
  OnWritten on_written_;
  mutable std::mutex mu_;
  std::vector<PackRecord> waiting_;
  size_t waiting_blobs_ = 0;
  size_t file_blobs_ = kIndexFileBlobs;
  uint64_t files_written_ = 0;
};

}  // namespace haven::repo

// repo/pack_writer.h — one session's blob writer: packs being filled, the uploader threads,
// the blobs it has in flight, and the index file writer for the packs it uploaded.
//
// Data path: add() compresses and encrypts the blob on the calling thread into a pack builder
// of its own (up to max_packers builders are open at once, so memory for pending data is
// bounded by max_packers × pack_size); a full pack goes to an uploader thread (as many as the
// backend's concurrent_saves(): one for a local disk, two for object storage), so a slow save
// (fsync, network) does not stall the threads that compress. Memory: the open packs and one
// pack per uploader in flight, none waiting.
//
// Trees go into packs of their own (one tree pack open at a time, besides the data packers):
// a snapshot's directory trees then lie together in a pack or a few, and whoever walks them
// (restore, ls, diff, check, the next backup reading its parent) reads many with one request
// instead of one request per directory from packs full of file data.
//
// Visibility (docs/FORMAT.md §9): a blob is found by this writer (contains()) from the moment it
// is added: in an open or uploading pack, then in an uploaded pack no index file names yet.
// It enters the repository's shared index — where other sessions find it — only once an index
// file naming its pack is durable. So another session never references a blob whose pack no
// index file names, whatever becomes of this one (a crash, a lost lock), and a snapshot written
// after its own flush() references only indexed data. Two sessions may therefore store one blob
// twice (each in its own pack); prune removes the duplicate.
//
// Thread-safety: add() and contains() from many threads at once; flush() once the threads that
// add have finished; the destructor stops the uploaders (packs not flushed are dropped, and
// uploaded packs no index file names are left for prune).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "repo/blob_set.h"
#include "repo/compress.h"
#include "repo/index.h"
#include "repo/index_writer.h"
#include "repo/pack.h"
#include "util/cancel.h"

namespace haven::repo {

class Repository;

class PackWriter {
 public:
  // What this writer stored (a session's statistics).
  struct Stats {
    uint64_t blobs = 0, raw_bytes = 0, stored_bytes = 0, packs = 0, index_files = 0;
  };

  // Uploads run under `cancel` (the session's token).
  PackWriter(Repository& repo, CancelToken cancel);
  ~PackWriter();
  PackWriter(const PackWriter&) = delete;
  PackWriter& operator=(const PackWriter&) = delete;

  // Compression of new blobs (default: the config's). Set before adding.
  void set_compression(Compression c) { compression_ = c; }
  Compression compression() const { return compression_; }
  // Upper bound on packs being filled at once (memory: packers × pack_size; default one per
  // core, fewer under the repository's memory limit). Set before adding.
  void set_max_packers(size_t n) { max_packers_ = n < 1 ? 1 : n; }

  // Whether the repository's index or this writer has the blob.
  bool contains(BlobType type, const Id& id);
  // Stores a blob unless the repository's index or this writer already has it. Returns true if
  // it was stored, false if it was there; an error if an upload failed.
  Result<bool> add(BlobType type, const Id& id, ByteView data);
  // The same at compression `c` instead of the writer's.
  Result<bool> add(BlobType type, const Id& id, ByteView data, Compression c);
  // Uploads the open packs, waits for every upload, then writes an index file for every pack
  // not yet named by one (through the IndexWriter).
  Status flush();

  Stats stats() const;

 private:
  // Hands a full pack to the uploader threads; blocks until one of them is free.
  Status enqueue_upload(std::unique_ptr<PackBuilder> packer);
  void uploader();
  Status upload_pack(std::unique_ptr<PackBuilder> packer);
  Status wait_uploads();
  // An index file named these packs: they are in the shared index now.
  void indexed(const std::vector<PackRecord>& packs);
  // A new pack builder (mu_ not held); nullptr and the error if its file could not be opened.
  Result<std::unique_ptr<PackBuilder>> new_packer(bool tree);
  // Adds the blob to the tree pack (tree blobs only).
  Result<bool> add_tree(const Id& id, ByteView data, Compression c);

  Repository& repo_;
  CancelToken cancel_;
  Compression compression_;
  IndexWriter index_writer_;

  std::mutex mu_;
  std::condition_variable packer_cv_;
  // Blobs in open or uploading packs, and in uploaded packs no index file names yet: one key
  // each (the records of uploaded packs wait in the index writer only).
  BlobSet pending_;
  std::vector<std::unique_ptr<PackBuilder>> idle_packers_;
  size_t packers_out_ = 0;                             // packers being filled by threads
  // The tree pack being filled (null when none is open or a thread is adding to it).
  std::unique_ptr<PackBuilder> tree_packer_;
  bool tree_packer_out_ = false;  // a thread is adding to the tree pack
  size_t max_packers_ = 2;
  uint64_t pack_target_ = 0;  // a pack is closed at this size: the config's, or less under a memory limit
  uint64_t tree_pack_target_ = 0;  // kTreePackTarget, or pack_target_ if less
  size_t buffer_size_ = 0;    // a new packer's buffer

  std::condition_variable upload_cv_;
  std::deque<std::unique_ptr<PackBuilder>> upload_queue_;
  std::vector<std::thread> uploaders_;
  size_t uploads_active_ = 0;
  size_t upload_threads_ = 2;                        // the backend's concurrent_saves()
  std::vector<Bytes> free_buffers_;  // pack buffers to reuse (at most max_packers_)
  bool stop_uploaders_ = false;
  std::optional<Error> upload_error_;

  std::atomic<uint64_t> blobs_{0}, raw_bytes_{0}, stored_bytes_{0}, packs_{0};
  std::atomic<size_t> last_pack_blobs_{0};  // blobs in the last pack closed full
};

}  // namespace haven::repo

// repo/session.h — one operation on a repository: its lock, its cancel token, its pack writer
// and what it wrote. A backup, a restore, a check or a prune each run in a session of their
// own; several sessions of one Repository (the shared handle: config, keys, index) may run at
// once in one process, each with its own lock and statistics.
//
//   repo::Session s(*repo, app_token);   // a token of its own, cancelled when app_token is
//   HAVEN_TRY(s.lock(false));            // shared (or exclusive) repository lock
//   HAVEN_ASSIGN(auto summary, backup::run(s, options, sink));
//   HAVEN_TRY(s.unlock());               // also done by the destructor
//
// Write order (what makes a crash harmless, docs/FORMAT.md §9):
//   1. save_blob() packs blobs; a full pack is uploaded before this session's lookups find its
//      blobs there, and an index file names it before other sessions find them (pack_writer.h).
//   2. flush() uploads the open packs, then writes an index file naming every pack this session
//      uploaded that none names yet.
//   3. save_snapshot() calls flush() first, so a snapshot object is written only after every
//      pack and index entry it references is durable; and only while the lock is live.
//
// Cancellation: the session's token is cancelled when the parent token given at construction
// is (a signal, the server's job), or with a kLocked error when this session's lock is lost —
// then this session stops and no other. Operations run under it (CancelScope), and so do the
// session's uploader threads.
//
// Thread-safety: save_blob(), save_blob_with_id(), save_tree(), has_blob(), stats(),
// check_lock() and cancel_token() from many threads at once; lock(), unlock(), flush() and
// save_snapshot() from the operation's thread, once the threads that save blobs have finished.
// A session serves one operation at a time; its statistics are that operation's.
#pragma once

#include <string>
#include <vector>

#include "repo/lock.h"
#include "repo/pack_writer.h"
#include "repo/repository.h"
#include "util/cancel.h"

namespace haven::repo {

class Session {
 public:
  using Stats = PackWriter::Stats;

  explicit Session(Repository& repo, const CancelToken& parent = CancelToken());
  // Stops the uploaders (packs not flushed are dropped) and releases the lock.
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  Repository& repo() const { return repo_; }

  // --- lock (repo/lock.h) ---
  // Takes a shared (or exclusive) lock. kLocked naming the holder if a conflicting live lock
  // exists (another session's of this process too), or naming a lock object that cannot be
  // read. kInternal if this session already holds one.
  Status lock(bool exclusive);
  // Releases the lock; harmless when none is held.
  Status unlock();
  // OK while no lock is held or the held one is fresh; the kLocked error of a lost lock.
  Status check_lock() const { return lock_.check(); }
  // The stale locks the last lock() ignored, described for a notice.
  const std::vector<std::string>& ignored_stale_locks() const { return lock_.ignored_stale(); }
  // The lock object this session holds now ("" if none; it changes at each refresh).
  std::string lock_name() const { return lock_.name(); }

  // --- cancellation ---
  const CancelToken& cancel_token() const { return cancel_; }

  // --- writing (repo/pack_writer.h) ---
  // Compression of new blobs (default: the config's); packs filled at once (default:
  // max(2, cores)). Set before saving.
  void set_compression(Compression c) { writer_.set_compression(c); }
  Compression compression() const { return writer_.compression(); }
  void set_max_packers(size_t n) { writer_.set_max_packers(n); }
  // Whether the repository's index or this session's packs have the blob.
  bool has_blob(BlobType type, const Id& id) { return writer_.contains(type, id); }
  // Stores a blob unless the index or this session already has it. Returns its ID.
  Result<Id> save_blob(BlobType type, ByteView data);
  // Same, when the caller already hashed the data (the backup pipeline hashes once).
  // Returns true if the blob was new (stored), false if it was already there.
  Result<bool> save_blob_with_id(BlobType type, const Id& id, ByteView data);
  // The same at compression `c` instead of the session's (a file that compresses as well, or
  // almost, at a cheaper one: probe_compression()).
  Result<bool> save_blob_with_id(BlobType type, const Id& id, ByteView data, Compression c);
  Result<Id> save_tree(const Tree& t);
  // Uploads open packs, then writes an index file for everything not yet indexed.
  Status flush();
  // flush(), check_lock(), then writes the snapshot object (filling in program_version).
  Result<Id> save_snapshot(const Snapshot& s);

  // What this session stored: blobs, their raw and stored bytes, packs and index files written.
  // Other sessions' writes never count here.
  Stats stats() const { return writer_.stats(); }

 private:
  Repository& repo_;
  CancelToken cancel_;
  CancelToken::Registration parent_link_;
  HeldLock lock_;
  PackWriter writer_;  // destroyed first: uploads stop before the lock goes
};

}  // namespace haven::repo

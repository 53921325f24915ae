// repo/repository.h — an open Haven repository: keys, config, blobs in packs, the index,
// snapshots and locks, over one storage backend (docs/FORMAT.md). The config codec is
// config.h, single-record objects object.h, WAL objects and the WAL key wal_object.h.
//
// Write order (what makes a crash harmless, docs/FORMAT.md §9):
//   1. save_blob() packs blobs; a full pack is uploaded before its blobs enter the index.
//   2. flush() uploads the open packs, then writes an index file naming them.
//   3. save_snapshot() calls flush() first, so a snapshot object is written only after every
//      pack and index entry it references is durable.
// A crash anywhere leaves at worst packs no index names (prune deletes them later).
//
// Thread-safety: save_blob(), load_blob() and has_blob() may be called from many threads at
// once; everything else from one thread at a time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <string>
#include <unordered_set>
#include <vector>

#include "chunker/chunker.h"
#include "repo/compress.h"
#include "repo/config.h"
#include "repo/index.h"
#include "repo/keys.h"
#include "repo/object.h"
#include "repo/pack.h"
#include "repo/snapshot.h"
#include "repo/wal_object.h"
#include "storage/backend.h"
#include "util/cancel.h"

namespace haven::repo {

struct InitOptions {
  crypto::KdfParams kdf;
  chunker::Params chunker;
  uint32_t pack_size = 16u << 20;
  Compression compression = Compression::kMedium;
  // Default: HMAC-SHA256 where the CPU has SHA extensions (2.5x faster there), else BLAKE2b.
  std::optional<BlobIdFunction> id_hash;
};

struct KeyListEntry {
  std::string id;
  KeyFileInfo info;
  bool current = false;  // the key this session opened the repository with
  std::string problem;   // non-empty if the key file could not be read or is foreign
  bool foreign = false;  // opens with the session's password but belongs to another repository
};

struct OpenOptions {
  // Try the password on every key file, not only until one opens, so that list_keys() can name
  // key files that open with it but belong to another repository (`check`, `key list`). Costs
  // one Argon2id run per key file.
  bool try_all_keys = false;
};

class Repository {
 public:
  // Creates a repository at an empty location. Refuses a location that holds anything.
  static Result<std::unique_ptr<Repository>> init(std::shared_ptr<storage::Backend> backend,
                                                   const std::string& password,
                                                   const InitOptions& options);
  // Opens an existing repository: kRepoNotFound if there is none, kUnsupported for a newer
  // format, kWrongPassword if no key opens with the password. Does not load the index.
  // Checks, without a password, that a repository of a supported version is there.
  static Status probe(storage::Backend& backend);
  // A key file that is damaged, or that opens but whose master key does not authenticate the
  // config (another repository's key), is skipped; if no key opens, the error names them.
  static Result<std::unique_ptr<Repository>> open(std::shared_ptr<storage::Backend> backend,
                                                   const std::string& password,
                                                   const OpenOptions& options = {});
  ~Repository();

  const Config& config() const { return config_; }
  storage::Backend& backend() { return *backend_; }
  chunker::Chunker make_chunker() const;
  Id blob_id(ByteView data) const;
  // The repository's fingerprint (hex of the config object's salt, docs/FORMAT.md §11).
  const std::string& fingerprint() const { return fingerprint_; }
  // The WAL key of the master key's current generation (or `generation`), repo/wal_object.h.
  Result<WalKey> wal_key(std::optional<uint32_t> generation = std::nullopt) const;
  // Opens the object stored as WAL file `name` with the WAL key of the generation its header
  // names (check reads every WAL object this way).
  Result<Bytes> open_wal_object(const std::string& name, ByteView object) const;
  // Compression used for new blobs (defaults to the config's).
  void set_compression(Compression c) { compression_ = c; }

  // --- index ---
  Status load_index();
  // Loads every readable index file; calls on_bad(name, error) for each one that is not, and
  // goes on (check and repair). With on_bad empty, the first bad file fails the load.
  Status load_index(const std::function<void(const std::string&, const Error&)>& on_bad);
  Result<std::vector<std::string>> list_index_files();
  Result<std::vector<PackRecord>> load_index_file(const std::string& name);
  // Writes one index file for `packs`; returns its name.
  Result<std::string> save_index_file(const std::vector<PackRecord>& packs);
  // Reads a pack's own list of blobs from its trailer, fetching only its head and tail.
  Result<PackRecord> read_pack_trailer(const Id& pack_id, uint64_t pack_size);
  // The in-memory index, for maintenance (check, prune) that runs while this session is not
  // saving blobs.
  const Index& index() const { return index_; }
  bool has_blob(BlobType type, const Id& id);
  size_t index_blob_count();
  std::optional<uint32_t> blob_raw_length(BlobType type, const Id& id);
  template <typename Fn>
  void for_each_blob(Fn&& fn) {
    std::lock_guard<std::mutex> g(mu_);
    index_.for_each([&](const IndexEntry& e, const Id&) { fn(e); });
  }

  // --- blobs ---
  // Stores a blob unless the index or an open pack already has it. Returns its ID.
  Result<Id> save_blob(BlobType type, ByteView data);
  // Same, when the caller already hashed the data (the backup pipeline hashes once).
  // Returns true if the blob was new (stored), false if it was already there.
  Result<bool> save_blob_with_id(BlobType type, const Id& id, ByteView data);
  Result<Bytes> load_blob(BlobType type, const Id& id);
  // For readers that fetch many blobs of a pack in one ranged read (restore): where a blob is
  // stored, and the decryption of one sealed record cut out of such a range. Thread-safe.
  std::optional<BlobLocation> locate_blob(BlobType type, const Id& id);
  Result<Bytes> open_located_blob(BlobType type, const Id& id, const BlobLocation& loc,
                                  ByteView sealed) const;
  // Uploads open packs, then writes an index file for everything not yet indexed.
  Status flush();

  // --- encrypted single-record objects (config, index, snapshot, lock) ---
  Result<Bytes> load_object(storage::ObjectType type, const std::string& name);
  Result<Id> save_object(storage::ObjectType type, ByteView body);

  // --- snapshots ---
  Result<Id> save_snapshot(const Snapshot& s);
  Result<Snapshot> load_snapshot(const Id& id);
  // All snapshots, oldest first. With `damaged` given, a snapshot object that cannot be read is
  // skipped and its error appended there (so one damaged snapshot does not hide the others);
  // without it, the first such error fails the call.
  Result<std::vector<std::pair<Id, Snapshot>>> list_snapshots(std::vector<Error>* damaged = nullptr);
  // "latest", a full ID, or a unique prefix. kNotFound / kInvalidArgument (ambiguous).
  // `damaged` as for list_snapshots (used by "latest").
  Result<Id> resolve_snapshot(const std::string& ref, std::vector<Error>* damaged = nullptr);
  // Deletes a snapshot object (its data stays until prune). kNotFound if it is not there.
  Status remove_snapshot(const Id& id);
  Result<Tree> load_tree(const Id& id);
  Result<Id> save_tree(const Tree& t);

  // --- keys ---
  Result<std::vector<KeyListEntry>> list_keys();
  Result<std::string> add_key(const std::string& password, const crypto::KdfParams& kdf);
  // Refuses to remove the last key that opens, and the key in use (use passwd for that).
  Status remove_key(const std::string& id_prefix);
  // Adds a key for the new password, then removes the key in use. Returns the new key ID.
  Result<std::string> change_password(const std::string& new_password,
                                      const crypto::KdfParams& kdf);
  const std::string& current_key_id() const { return key_id_; }

  // --- locks ---
  // Takes a shared (or exclusive) lock. kLocked naming the holder if a conflicting live lock
  // exists, or naming a lock object that cannot be read (junk or damage: only 'haven unlock'
  // may judge it). Locks whose process is gone (same host) or that stopped refreshing are
  // ignored.
  //
  // While held, the lock is refreshed every `refresh` interval (5 min) by a new lock object.
  // Others judge a lock stale when it is `stale` (30 min) old, and a prune may then delete
  // data this session uploaded but has not yet referenced. So if the lock cannot be refreshed
  // for `stale - max(refresh, stale/6)` (25 min), or another process removed it, the lock is
  // *lost*: this session's cancel token is cancelled with a kLocked error naming the lock,
  // and check_lock() (which save_snapshot() and prune's deletions call) fails from then on.
  Status lock(bool exclusive);
  Status unlock();
  // OK while no lock is held or the held one is fresh; the kLocked error of a lost lock.
  Status check_lock() const;
  // Removes locks whose holder is gone and lock objects that cannot be read (or every other
  // lock with all=true). Returns the locks removed, described.
  Result<std::vector<std::string>> remove_stale_locks(bool all);
  // The stale locks the last lock() ignored, described for a notice.
  const std::vector<std::string>& ignored_stale_locks() const { return stale_ignored_; }
  // Test hook: how often the held lock is refreshed and when an unrefreshed lock of another
  // host counts as stale (defaults: 5 and 30 minutes).
  void set_lock_timing(TimeNs refresh, TimeNs stale) {
    lock_refresh_ns_ = refresh;
    lock_stale_ns_ = stale;
  }

  // --- cancellation ---
  // The token of the operation this session serves: a lost lock cancels it; the operation's
  // caller may cancel it too (a signal, the server). Operations run under it (CancelScope).
  void set_cancel_token(CancelToken t) { cancel_ = std::move(t); }
  const CancelToken& cancel_token() const { return cancel_; }

  // What this session added (for snapshot statistics).
  struct WriteStats {
    std::atomic<uint64_t> blobs{0}, raw_bytes{0}, stored_bytes{0}, packs{0};
  };
  const WriteStats& write_stats() const { return write_stats_; }
  // Upper bound on packs being filled at once (memory: packers × pack_size).
  void set_max_packers(size_t n) { max_packers_ = n < 1 ? 1 : n; }

  // Readers for `haven cat`.
  const MasterKey& master_key() const { return master_; }

 private:
  Repository(std::shared_ptr<storage::Backend> backend, MasterKey master, std::string key_id);
  Result<Bytes> seal_object(ObjectKind kind, ByteView body) const;
  Result<Bytes> seal_object_with_salt(ObjectKind kind, const Id& salt, ByteView body) const;
  Result<Bytes> open_object(ObjectKind kind, const storage::ObjectName& name, ByteView object) const;
  Status upload_pack(std::unique_ptr<PackBuilder> packer);
  // Hands a full pack to the uploader threads; blocks until one of them is free.
  Status enqueue_upload(std::unique_ptr<PackBuilder> packer);
  void uploader();
  Status wait_uploads();
  Status write_index_locked(std::unique_lock<std::mutex>& lk);
  Result<Bytes> load_key_file(const std::string& id);

  std::shared_ptr<storage::Backend> backend_;
  MasterKey master_;
  std::string key_id_;
  std::set<std::string> foreign_keys_;  // key files open() found to belong to another repository
  Config config_;
  std::string fingerprint_;
  Compression compression_ = Compression::kMedium;

  std::mutex mu_;
  std::condition_variable packer_cv_;
  Index index_;
  struct TypedId {
    BlobType type;
    Id id;
    bool operator==(const TypedId&) const = default;
  };
  struct TypedIdHash {
    size_t operator()(const TypedId& t) const { return IdHash{}(t.id) ^ static_cast<size_t>(t.type); }
  };
  std::unordered_set<TypedId, TypedIdHash> in_flight_;  // blobs in open or uploading packs
  std::vector<std::unique_ptr<PackBuilder>> idle_packers_;
  size_t packers_out_ = 0;                             // packers being filled by threads
  size_t max_packers_ = 2;
  std::vector<PackRecord> unindexed_;                  // uploaded packs not yet in an index file
  // Lock held by this session, refreshed by a background thread (see lock()); a watchdog
  // thread declares it lost when it has not been refreshed in time.
  void refresh_loop();
  void watch_lock();
  void lose_lock(Error why);
  TimeNs lock_deadline_ns() const;
  std::mutex lock_mu_;
  std::condition_variable refresh_cv_;
  std::thread refresher_, watchdog_;
  bool stop_refresh_ = false;
  Lock lock_;
  std::optional<Id> lock_id_;
  std::vector<Id> superseded_;               // our older lock objects a refresh failed to remove
  std::atomic<bool> lock_held_{false};
  std::atomic<TimeNs> lock_ok_at_{0};        // when our lock object was last written
  CancelToken lock_stop_;                    // stops the watchdog (unlock)
  CancelToken refresh_cancel_;               // stops a refresh that hangs once the lock is lost
  mutable std::mutex lost_mu_;
  std::optional<Error> lock_lost_;
  std::string last_refresh_error_;           // guarded by lost_mu_
  std::string held_lock_name_;               // guarded by lost_mu_
  std::vector<std::string> stale_ignored_;
  TimeNs lock_refresh_ns_;
  TimeNs lock_stale_ns_;
  CancelToken cancel_;
  WriteStats write_stats_;

  // Uploads run on their own threads so that a slow save (fsync, network) never stalls the
  // threads that compress and encrypt. Memory: one pack per uploader in flight, none waiting.
  std::condition_variable upload_cv_;
  std::deque<std::unique_ptr<PackBuilder>> upload_queue_;
  std::vector<std::thread> uploaders_;
  size_t uploads_active_ = 0;
  size_t upload_threads_ = 2;
  std::vector<Bytes> free_buffers_;  // pack buffers to reuse (at most max_packers_)
  bool stop_uploaders_ = false;
  std::optional<Error> upload_error_;
};

}  // namespace haven::repo

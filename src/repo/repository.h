// repo/repository.h — an open Haven repository, shared by the operations that use it: the
// storage backend, the config, the master key and key files, the in-memory index, snapshots
// and trees (docs/FORMAT.md). What one operation owns — its lock, its cancel token, its packs
// being written and its statistics — is a Session (repo/session.h); several sessions of one
// Repository may run at once (two backups and a restore, say), each with its own lock.
//
// The index. The in-memory index is the union of the index files when load_index() ran, plus
// every index file a session of this Repository wrote since (a session's blobs enter it only
// once an index file names their pack, repo/pack_writer.h). It is only as current as the locks
// held since it was loaded: load it after taking a lock, and again after a time when this
// process held none (a prune elsewhere may have deleted packs meanwhile). Maintenance that must
// see one consistent index (check, prune) reads its own copy with read_index().
//
// Files: config.h (the config codec), object.h (single-record objects), lock.h (locks),
// pack_writer.h and index_writer.h (writing blobs and index files), session.h, wal_object.h
// (the WAL key and WAL objects).
//
// Thread-safety: every method may be called from many threads at once (several sessions),
// except init/open, the key management methods (add_key, remove_key, change_password) and
// set_lock_timing, which run alone. load_index() may run while sessions write.
#pragma once

#include <atomic>
#include <functional>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "chunker/chunker.h"
#include "repo/compress.h"
#include "repo/config.h"
#include "repo/index.h"
#include "repo/keys.h"
#include "repo/memory.h"
#include "repo/object.h"
#include "repo/pack.h"
#include "repo/snapshot.h"
#include "repo/wal_object.h"
#include "storage/backend.h"
#include "util/cancel.h"
#include "util/clock.h"

namespace haven::repo {

class HeldLock;

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

// A key file as probe() found it: its name, and its bytes (or why they could not be read)
// when probe() read it ahead.
struct ProbedKey {
  std::string id;
  std::optional<Result<Bytes>> file;  // nullopt: not read ahead
};

// What probe() read: the config object as stored, and the repository's key files, listed and
// (the first few, in name order) read beside it; or why they could not be listed.
struct Probe {
  Bytes config;
  Result<std::vector<ProbedKey>> keys = std::vector<ProbedKey>{};
};

struct OpenOptions {
  // Try the password on every key file, not only until one opens, so that list_keys() can name
  // key files that open with it but belong to another repository (`check`, `key list`). Costs
  // one Argon2id run per key file.
  bool try_all_keys = false;
  // Password key files whose Argon2id needs more memory than this (bytes; 0: any) are not
  // tried: under a memory limit (repo/memory.h) the key derivation must fit too. If no key
  // opens and some were left untried, open() fails with kInvalidArgument naming them and the
  // way out (an access key, which costs no memory to derive).
  uint64_t max_kdf_memory = 0;
  // The config object as probe() read it: open() then does not read it again (one request, on
  // object storage a round trip, fewer for every command that probes first). Its header is
  // checked again and its body authenticated with the key, as if open() had read it.
  std::optional<Bytes> config = std::nullopt;
  // The key files as probe() listed them (and read the first few of them): open() then does not
  // list them again, and reads only those probe() did not (on object storage the listing and
  // the first key file are round trips that went beside the config's).
  std::optional<Result<std::vector<ProbedKey>>> keys = std::nullopt;
};

class Repository {
 public:
  // Creates a repository at an empty location. Refuses a location that holds anything.
  static Result<std::unique_ptr<Repository>> init(std::shared_ptr<storage::Backend> backend,
                                                   const std::string& password,
                                                   const InitOptions& options);
  // Checks, without a password, that a repository of a supported version is there, and returns
  // its config object as stored and its key files (for OpenOptions::config and ::keys), read
  // side by side. `key_hint`: the ID of the key file that opened last time (the CLI remembers
  // it in its cache directory); read beside the config and the key listing instead of after the
  // listing (on object storage one round trip less), and put first if it is still listed. Any
  // other value (empty, unknown, a removed key) only costs a request that goes unused.
  static Result<Probe> probe(storage::Backend& backend, const std::string& key_hint = "");
  // Opens an existing repository: kRepoNotFound if there is none, kUnsupported for a newer
  // format, kWrongPassword if no key opens with the password. Does not load the index.
  // A key file that is damaged, or that opens but whose master key does not authenticate the
  // config (another repository's key), is skipped; if no key opens, the error names them.
  static Result<std::unique_ptr<Repository>> open(std::shared_ptr<storage::Backend> backend,
                                                   const std::string& password,
                                                   const OpenOptions& options = {});
  // Opens a copy of `original`'s repository (a replica in another region, replication/): the
  // same config object, opened with `original`'s master key, so no password or key derivation
  // is needed. kRepoNotFound if the backend holds no repository, kCorrupt if its config does
  // not authenticate, kInvalidArgument if it is another repository (another config salt).
  static Result<std::unique_ptr<Repository>> open_copy(std::shared_ptr<storage::Backend> backend,
                                                        const Repository& original);
  // REQUIRES: no Session of this repository is left.
  ~Repository();

  const Config& config() const { return config_; }
  storage::Backend& backend() { return *backend_; }
  chunker::Chunker make_chunker() const;
  Id blob_id(ByteView data) const;
  // blob_id() of two blobs at once: with HMAC-SHA256 on a CPU with the SHA extensions the two
  // are hashed side by side, ~1.8x the rate of one after the other (crypto::hmac_sha256_many).
  std::pair<Id, Id> blob_ids(ByteView a, ByteView b) const;
  // blob_id() of each of `data` into ids[i] (ids as long as data), two side by side at a time
  // (crypto::hmac_sha256_many: unequal lengths still pair up).
  void blob_ids(std::span<const ByteView> data, std::span<Id> ids) const;
  // The repository's fingerprint (hex of the config object's salt, docs/FORMAT.md §11).
  const std::string& fingerprint() const { return fingerprint_; }
  // The WAL key of the master key's current generation (or `generation`), repo/wal_object.h.
  Result<WalKey> wal_key(std::optional<uint32_t> generation = std::nullopt) const;
  // Opens the object stored as WAL file `name` with the WAL key of the generation its header
  // names (check reads every WAL object this way).
  Result<Bytes> open_wal_object(const std::string& name, ByteView object) const;

  // The memory limit the engines fit their buffers into (repo/memory.h; default: none). Set
  // before work starts; open_copy() carries it over.
  void set_memory_budget(MemoryBudget budget) { memory_ = budget; }
  const MemoryBudget& memory_budget() const { return memory_; }

  // --- index ---
  // How indexes loaded from now on hold their entries (repo/index.h): a bound on memory and the
  // directory the rest spills to. Default: all in memory.
  void set_index_options(IndexOptions options);
  const IndexOptions& index_options() const { return index_options_; }
  Status load_index();
  // Loads every readable index file; calls on_bad(name, error) for each one that is not, and
  // goes on (check and repair). With on_bad empty, the first bad file fails the load. Replaces
  // the shared index; index files sessions write meanwhile are kept.
  Status load_index(const std::function<void(const std::string&, const Error&)>& on_bad);
  // The union of the index files as a new Index of the caller's own (the shared one is left
  // alone): for maintenance that walks one consistent index while sessions may write (check,
  // prune).
  Result<std::unique_ptr<Index>> read_index(
      const std::function<void(const std::string&, const Error&)>& on_bad = {});
  // Whether load_index() has run (and unload_index() has not since).
  bool index_loaded() const;
  // Empties the shared index (after a prune that could not read it again): lookups then find
  // nothing, so sessions store again what they need rather than reference what may be gone.
  void unload_index();
  Result<std::vector<std::string>> list_index_files();
  Result<std::vector<PackRecord>> load_index_file(const std::string& name);
  // Writes one index file for `packs`; returns its name. Writers batch through IndexWriter.
  Result<std::string> save_index_file(const std::vector<PackRecord>& packs);
  // Adds packs an index file now names to the shared index (IndexWriter's sessions call it).
  void add_indexed_packs(const std::vector<PackRecord>& packs);
  // Reads a pack's own list of blobs from its trailer, fetching only its head and tail.
  Result<PackRecord> read_pack_trailer(const Id& pack_id, uint64_t pack_size);
  // Lookups in the shared index.
  bool has_blob(BlobType type, const Id& id) const;
  size_t index_blob_count() const;
  // The shared index's size: blobs, bytes of memory it holds, blobs kept on disk (repo/index.h).
  struct IndexFootprint {
    size_t blobs = 0, memory_bytes = 0, on_disk = 0;
  };
  IndexFootprint index_footprint() const;
  std::optional<uint32_t> blob_raw_length(BlobType type, const Id& id) const;
  template <typename Fn>
  void for_each_blob(Fn&& fn) const {
    std::shared_lock<std::shared_mutex> g(index_mu_);
    index_.for_each([&](size_t, const IndexEntry& e) { fn(e); });
  }

  // --- blobs (reading; sessions write) ---
  // Through the shared index, or through `index` (a copy from read_index()).
  Result<Bytes> load_blob(BlobType type, const Id& id);
  Result<Bytes> load_blob(BlobType type, const Id& id, const Index& index);
  // For readers that fetch many blobs of a pack in one ranged read (restore): where a blob is
  // stored, and the decryption of one sealed record cut out of such a range.
  std::optional<BlobLocation> locate_blob(BlobType type, const Id& id) const;
  // The blobs of `type` the shared index places in pack `pack_id`, by offset (a scan of the
  // whole index: for readers that take along what lies near a blob they need, such as the
  // directory trees a restore will want next).
  std::vector<std::pair<Id, BlobLocation>> blobs_in_pack(BlobType type, const Id& pack_id) const;
  // The same in `index` (not the shared one).
  static std::vector<std::pair<Id, BlobLocation>> blobs_in_pack(const Index& index, BlobType type,
                                                               const Id& pack_id);
  Result<Bytes> open_located_blob(BlobType type, const Id& id, const BlobLocation& loc,
                                  ByteView sealed) const;
  // The same in place (no allocation on the hot path): `sealed` is decrypted over itself and
  // the view returned points into it or into `scratch`; `keys` keeps the pack's key for the
  // reader's next blob of the same pack.
  Result<ByteView> open_located_blob_in_place(BlobType type, const Id& id, const BlobLocation& loc,
                                              std::span<uint8_t> sealed, PackKeys& keys,
                                              Scratch& scratch) const;

  // --- encrypted single-record objects (config, index, snapshot, lock) ---
  Result<Bytes> load_object(storage::ObjectType type, const std::string& name);
  // Loads the objects `names` of `type` as load_object does, a few ahead of the one handed over
  // on threads of their own (the backend's loads_ahead(): on object storage each costs a round
  // trip; two at most under a memory limit), and hands each to `fn` in order with its name. An
  // error `fn` returns ends the loop and is returned (loads in flight are waited for first).
  Status load_objects(storage::ObjectType type, const std::vector<std::string>& names,
                      const std::function<Status(const std::string&, Result<Bytes>)>& fn);
  Result<Id> save_object(storage::ObjectType type, ByteView body);

  // --- snapshots and trees (Session::save_snapshot writes them) ---
  Result<Snapshot> load_snapshot(const Id& id);
  // Every snapshot object to `fn` with its name, its ID and the snapshot or why it cannot be
  // read: first the names that are not snapshot IDs (unread, nullopt), then the others in name
  // order, loaded ahead as load_objects() does. `listed` (optional) learns how many objects
  // `fn` will be handed, once, before the first.
  Status for_each_snapshot(
      const std::function<Status(const std::string&, std::optional<Id>, Result<Snapshot>&)>& fn,
      const std::function<void(size_t)>& listed = {});
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
  Result<Tree> load_tree(const Id& id, const Index& index);

  // --- keys ---
  Result<std::vector<KeyListEntry>> list_keys();
  Result<std::string> add_key(const std::string& password, const crypto::KdfParams& kdf);
  // Stores a key file that opens with `access_key` (from generate_access_key(), repo/keys.h).
  Result<std::string> add_access_key(const std::string& access_key);
  // Refuses to remove the last key that opens, and the key in use (use passwd for that).
  Status remove_key(const std::string& id_prefix);
  // Adds a key for the new password, then removes the key in use. Returns the new key ID.
  Result<std::string> change_password(const std::string& new_password,
                                      const crypto::KdfParams& kdf);
  const std::string& current_key_id() const { return key_id_; }

  // --- locks (held by sessions, repo/lock.h) ---
  // Removes locks whose holder is gone and lock objects that cannot be read (or every other
  // lock with all=true), never one a session of this Repository holds. Returns the locks
  // removed, described.
  Result<std::vector<std::string>> remove_stale_locks(bool all);
  // How often a session's lock is refreshed and when an unrefreshed lock of another host
  // counts as stale (defaults: 5 and 30 minutes). A test hook; applies to locks taken after.
  void set_lock_timing(TimeNs refresh, TimeNs stale) {
    lock_refresh_ns_ = refresh;
    lock_stale_ns_ = stale;
  }
  TimeNs lock_refresh_ns() const { return lock_refresh_ns_; }
  TimeNs lock_stale_ns() const { return lock_stale_ns_; }
  // How long an operation waits out a conflicting lock before it fails, unless it asks for
  // longer itself (ops::lock; the CLI's --retry-lock; default 0: it fails at once). Set before
  // work starts; open_copy() carries it over.
  void set_lock_wait(std::chrono::seconds wait) { lock_wait_ = wait; }
  std::chrono::seconds lock_wait() const { return lock_wait_; }

  // --- cancellation ---
  // The token of the operations on this handle (a signal, the server stopping one job's
  // repository): the sessions they open (ops/lock.h) have tokens of their own that are
  // cancelled with it, and operations that take no lock run under it directly. A lost lock
  // cancels only its own session, never this token. Set before any session starts.
  void set_cancel_token(CancelToken t) { cancel_ = std::move(t); }
  const CancelToken& cancel_token() const { return cancel_; }

  // The master key: for `haven cat`, check and prune, which read records themselves.
  const MasterKey& master_key() const { return master_; }
  // Whether the master key's pages are locked against swapping (crypto::lock_in_memory; they
  // are for as long as this handle lives, which in the server is as long as its location).
  bool keys_locked() const { return keys_locked_; }

 private:
  friend class HeldLock;
  Repository(std::shared_ptr<storage::Backend> backend, MasterKey master, std::string key_id);
  Result<Bytes> seal_object(ObjectKind kind, ByteView body) const;
  Result<Bytes> seal_object_with_salt(ObjectKind kind, const Id& salt, ByteView body) const;
  Result<Bytes> open_object(ObjectKind kind, const storage::ObjectName& name, ByteView object) const;
  Result<Bytes> load_located_blob(BlobType type, const Id& id, const std::optional<BlobLocation>& loc);
  void register_lock(const HeldLock* l);
  void unregister_lock(const HeldLock* l);

  std::shared_ptr<storage::Backend> backend_;
  MasterKey master_;
  bool keys_locked_ = false;
  std::string key_id_;
  std::set<std::string> foreign_keys_;  // key files open() found to belong to another repository
  Config config_;
  std::string fingerprint_;

  // The shared index: lookups share, additions and reloads exclude.
  mutable std::shared_mutex index_mu_;
  IndexOptions index_options_;
  MemoryBudget memory_;
  Index index_;
  bool index_loaded_ = false;
  int reloads_ = 0;                                   // load_index() calls running
  std::vector<PackRecord> indexed_during_reload_;     // what add_indexed_packs() saw meanwhile

  std::mutex locks_mu_;
  std::set<const HeldLock*> held_locks_;  // locks sessions of this Repository hold
  std::atomic<TimeNs> lock_refresh_ns_;
  std::atomic<TimeNs> lock_stale_ns_;
  std::chrono::seconds lock_wait_{0};
  CancelToken cancel_;
};

}  // namespace haven::repo

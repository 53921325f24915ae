// storage/backend.h — the one storage interface every backend implements (local disk, S3,
// Azure Blob), the wrapper base that retry, limits and fault injection stack on, and
// open_backend(), which opens a repository's location with that repository's own settings.
//
// A repository is a flat set of immutable objects, each named by (type, name). Names are
// lower-case hex strings (64 characters for data/index/snapshot/key/lock objects) or the fixed
// name "config". Backends decide the physical layout (the local backend shards data objects
// into 256 sub-directories by the name's first two characters).
//
// Contract, common to every backend:
//   - save() is atomic: after it returns OK the whole object is durable and visible; after it
//     fails, or the process dies during it, no partial object is visible under that name.
//     save() of a name that already exists fails with kAlreadyExists (objects are immutable).
//   - load() returns exactly the bytes saved, or the requested range of them. A range that
//     reaches past the end fails with kCorrupt (the caller's index disagrees with the object).
//     A missing object fails with kNotFound.
//     Two saves of one name racing each other: one wins, the other fails with kAlreadyExists
//     and the object holds the winner's bytes whole (the local backend by link(), Azure and
//     S3 by a create-only request; an S3-compatible server that ignores If-None-Match leaves a
//     window, see s3.h). Through RetryBackend a save that finds its own bytes already there
//     succeeds (storage/retry.h), so identical concurrent saves may all succeed.
//   - stat() returns the size and modification time, or kNotFound.
//   - list() calls `fn` once per object of a type, in no particular order, with the same size
//     and modification time stat() gives; objects saved concurrently may or may not be
//     listed. A missing type directory lists nothing. Object stores list in pages (S3 max-keys,
//     Azure maxresults; BackendSettings::list_page_size); every object is still listed once.
//   - Modification times (ObjectInfo::modified): when the object was saved, by the storage's
//     clock — the file's mtime (nanoseconds) on local disk, Last-Modified (whole seconds) on
//     S3 and Azure. Listings and stat() agree to within a second (S3 lists milliseconds
//     and HEAD gives seconds).
//   - remove() deletes; removing a missing object fails with kNotFound.
//   - Failures: kPermissionDenied (access, read-only), kNoSpace (disk or quota full), kIo,
//     kTransient (timeouts, resets, throttling: the only retryable kind; see Error::retryable),
//     kNotFound, kAlreadyExists, kCorrupt.
//   - Cancellation: every call first checks this thread's cancel token (util/cancel.h) and,
//     when it has fired, returns its error (kCancelled) without touching storage; an HTTP
//     transfer in flight is aborted within about a second of the cancel, also when the
//     network has stalled it (storage/http.h).
//   - Thread-safety: every method may be called concurrently from several threads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "util/bytes.h"
#include "util/clock.h"
#include "util/error.h"

namespace haven::storage {

// kLease: a failover's lease (dr/failover.h): a small create-only object in plain JSON, never
// replicated, like locks each copy's own.
enum class ObjectType { kConfig, kKey, kData, kIndex, kSnapshot, kLock, kWal, kLease };

// Directory/prefix name of a type: "config" (a single object), "keys", "data", "index",
// "snapshots", "locks", "wal" (PostgreSQL WAL files, named as PostgreSQL names them).
const char* type_dir(ObjectType t);
const char* type_label(ObjectType t);  // singular, for messages: "pack", "index", "key"...

struct ObjectName {
  ObjectType type;
  std::string name;  // hex id, or "config"
  std::string describe() const;  // e.g. "pack 3fa9c2..."; used in error messages
  bool operator==(const ObjectName&) const = default;
};

// Refuses names that are not "config" (for the config) or a plain name without '/', NUL or a
// leading '.' (which could escape a directory or collide with temporary files); data names need
// two characters for their shard. Every backend calls it before touching storage.
Status check_object_name(const ObjectName& name);
// Where an object lives under a repository's root or prefix, the same for every backend:
// "config", "keys/<id>", "data/<id[0:2]>/<id>", "index/<id>", "snapshots/<id>", "locks/<id>".
std::string object_path(const ObjectName& name);
// The inverse of object_path() for a key an object store listed: the object of `type` that
// `key` names under `base` (the repository's prefix with its trailing '/', or empty), or nullopt
// for a key that names none (outside the type's directory, a data object outside its shard,
// a name check_object_name() refuses). The S3 and Azure backends map every listed key with it,
// so whatever a server lists, only loadable names reach the caller.
std::optional<ObjectName> object_name_of_key(ObjectType type, std::string_view base,
                                             std::string_view key);

struct ObjectInfo {
  ObjectName name;
  uint64_t size = 0;
  TimeNs modified = 0;  // when it was saved (see the contract above)
};

// An object written piece by piece (a pack as it is built): append() its bytes in order, then
// commit() makes it visible under its name exactly as save() would (create-only, durable once
// commit() returns). Destroying a writer that has not committed leaves nothing visible.
// One thread at a time.
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  virtual Status append(ByteView data) = 0;
  virtual uint64_t size() const = 0;
  virtual Status commit() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // A human-readable location, e.g. "local:/srv/repo". Never contains credentials.
  virtual std::string location() const = 0;
  // How many large saves (packs) at once pay off. A remote store hides its latency behind
  // several; a local disk gains nothing from a second (each save ends in an fsync the disk
  // serialises) while every save in flight holds a whole pack in memory.
  virtual size_t concurrent_saves() const { return 2; }
  // How many small whole-object loads (index files) to keep in flight ahead of the one in use:
  // enough to hide a remote store's round trips. A local disk answers before the one in use is
  // decoded, so one is enough there, and each held ahead costs its size in memory.
  virtual size_t loads_ahead() const { return 4; }

  virtual Status save(const ObjectName& name, ByteView data) = 0;
  // save() of an object whose name the caller has just drawn at random (256 bits): no object
  // can have it yet, so a backend may leave out the work it does only to refuse an existing
  // one (S3: the HEAD before the PUT, for servers that ignore If-None-Match; the conditional
  // PUT stays). Still create-only wherever that costs nothing. The default is save(); so is
  // BackendWrapper's, so a decorator that overrides save() sees these saves too. Decorators
  // that pass saves on unchanged in kind (retry, limits) override it to forward.
  virtual Status save_new(const ObjectName& name, ByteView data) { return save(name, data); }
  // A writer for the object `name`. The default collects the bytes in memory and save()s them
  // at commit (so decorators' save() applies); a backend that streams_writes() writes them as
  // they come and holds no copy (the local disk: a temporary file, renamed at commit).
  virtual Result<std::unique_ptr<ObjectWriter>> open_writer(const ObjectName& name);
  virtual bool streams_writes() const { return false; }
  // length == 0 means "to the end of the object".
  virtual Result<Bytes> load(const ObjectName& name, uint64_t offset = 0, uint64_t length = 0) = 0;
  // Reads exactly out.size() bytes from `offset` into `out` (a range that does not fit the
  // object is kCorrupt, as for load). The default loads and copies; LocalBackend reads straight
  // into `out`, so a reader reusing one buffer allocates nothing per range.
  virtual Status load_into(const ObjectName& name, uint64_t offset, std::span<uint8_t> out);
  // load_into() that reports the bytes as they come: `arrived(n)` says out[0, n) is in place
  // and will not change (n only grows; after a successful read the last call had n ==
  // out.size()). A caller can work on the first bytes while the rest are in transit. On a
  // failure part of `out` may have arrived (and been reported). The default: a backend that
  // streams_reads() copies each piece of load_pieces() into `out` as it comes (so RetryBackend
  // resumes an interrupted read after the bytes already reported); any other reads the whole
  // range with load_into() and reports it once.
  virtual Status load_streaming(const ObjectName& name, uint64_t offset, std::span<uint8_t> out,
                                const std::function<void(size_t)>& arrived);
  // Whether load_pieces() hands a range over as it arrives and keeps no copy of it (object
  // stores pass the response body on piece by piece). Then a reader needs no buffer the size of
  // its range: requests for large ranges can wait out their round trips side by side within
  // the memory of what the reader keeps. Otherwise load_pieces() holds the whole range first.
  virtual bool streams_reads() const { return false; }
  // Reads [offset, offset + length) and hands it to `piece` front to back: each call gets the
  // next bytes of the range, valid during the call only, and all calls together at most
  // `length` bytes. A range that does not fit the object is kCorrupt, as for load; on a
  // failure the pieces already handed over stay handed over (RetryBackend resumes after them).
  // length == 0 reads nothing. The default loads the range and hands it over as one piece.
  virtual Status load_pieces(const ObjectName& name, uint64_t offset, uint64_t length,
                             const std::function<void(ByteView)>& piece);
  virtual Result<ObjectInfo> stat(const ObjectName& name) = 0;
  virtual Status list(ObjectType type, const std::function<void(const ObjectInfo&)>& fn) = 0;
  virtual Status remove(const ObjectName& name) = 0;
  // Removes the object if it is there: a missing one is no error (a lock going at the end of an
  // operation). The default remove()s and takes kNotFound for done; S3, whose DELETE succeeds on
  // a missing key, sends only the DELETE (remove() looks first). BackendWrapper does not pass it
  // on: a decorator that changes remove() gets this default, so its remove() applies.
  virtual Status discard(const ObjectName& name);

  // What interrupted saves left behind for objects of `type` (the local backend's ".tmp-"
  // files; object stores, whose uploads are atomic, have none: the default finds nothing),
  // counting only leftovers at least `min_age_seconds` old. Removes them unless `dry_run`.
  // Callers hold the repository's exclusive lock, so no save of that type is in progress.
  struct Leftovers {
    uint64_t files = 0, bytes = 0;
  };
  virtual Result<Leftovers> remove_leftovers(ObjectType type, int64_t min_age_seconds,
                                             bool dry_run) {
    return Leftovers{};
  }
  // The age from which a temporary file counts as a leftover: keys, locks and WAL are written without
  // the exclusive lock, so a young one may belong to a save still running; under the exclusive
  // lock nobody saves packs, index files or snapshots, so theirs count at any age.
  static int64_t leftover_min_age(ObjectType type) {
    return type == ObjectType::kKey || type == ObjectType::kLock || type == ObjectType::kWal ||
                   type == ObjectType::kLease
               ? 3600
               : 0;
  }

  // Another copy of an object whose bytes from load() were found damaged (they failed
  // authentication): a repository with copies in other regions reads it from one of them
  // (replication/failover.h). `why` is the damage found. Default: there is no other copy, and
  // the answer is `why` itself.
  virtual Result<Bytes> load_other_copy(const ObjectName& name, uint64_t offset, uint64_t length,
                                        const Error& why) {
    return why;
  }

  // Whether the location holds anything at all (used by init to refuse a non-empty place
  // and by open to say "not a repository").
  virtual Result<bool> is_empty() = 0;
  // Creates the location (directories, bucket) for a new repository.
  virtual Status create() = 0;
};

// Forwards every call to an inner backend. Decorators (retry, concurrency and bandwidth limits,
// fault injection) derive from this and override only what they change.
class BackendWrapper : public Backend {
 public:
  explicit BackendWrapper(std::shared_ptr<Backend> inner) : inner_(std::move(inner)) {}

  std::string location() const override { return inner_->location(); }
  size_t concurrent_saves() const override { return inner_->concurrent_saves(); }
  size_t loads_ahead() const override { return inner_->loads_ahead(); }
  Status save(const ObjectName& n, ByteView d) override { return inner_->save(n, d); }
  Result<Bytes> load(const ObjectName& n, uint64_t off, uint64_t len) override {
    return inner_->load(n, off, len);
  }
  // streams_reads() stays false and load_pieces() goes through load(): a decorator that
  // changes loads (fault injection, read failover) sees every one. Decorators that pass ranges
  // on as they come (retry, limits, failover) override both; ReadThroughWrapper (below) passes
  // every read on.
  Result<ObjectInfo> stat(const ObjectName& n) override { return inner_->stat(n); }
  Result<Bytes> load_other_copy(const ObjectName& n, uint64_t off, uint64_t len,
                                const Error& why) override {
    return inner_->load_other_copy(n, off, len, why);
  }
  Status list(ObjectType t, const std::function<void(const ObjectInfo&)>& fn) override {
    return inner_->list(t, fn);
  }
  Status remove(const ObjectName& n) override { return inner_->remove(n); }
  Result<bool> is_empty() override { return inner_->is_empty(); }
  Status create() override { return inner_->create(); }
  Result<Leftovers> remove_leftovers(ObjectType t, int64_t min_age_seconds, bool dry_run) override {
    return inner_->remove_leftovers(t, min_age_seconds, dry_run);
  }

 protected:
  Backend& inner() { return *inner_; }
  const Backend& inner() const { return *inner_; }

 private:
  std::shared_ptr<Backend> inner_;
};

// A decorator that changes only what is written (sync mode's quorum, the server's save
// observer): reads go to the inner backend as they are, ranges in pieces from object storage
// and straight into the caller's buffer from a local disk.
class ReadThroughWrapper : public BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  bool streams_reads() const override { return inner().streams_reads(); }
  Status load_pieces(const ObjectName& n, uint64_t off, uint64_t len,
                     const std::function<void(ByteView)>& piece) override {
    return inner().load_pieces(n, off, len, piece);
  }
  Status load_into(const ObjectName& n, uint64_t off, std::span<uint8_t> out) override {
    return inner().load_into(n, off, out);
  }
};

// The credentials and options of one repository's backend. The library never reads the
// environment: the CLI fills `lookup` from its environment (so every variable README
// documents works as documented), a server from each repository's own configuration, so one
// process can hold several repositories with different credentials.
//
// Names looked up (the environment variables' names):
//   S3     AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE,
//          AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, HOME (for ~/.aws), AWS_REGION,
//          AWS_DEFAULT_REGION, HAVEN_S3_REGION, HAVEN_S3_PATH_STYLE, HAVEN_S3_CA_FILE,
//          AWS_CA_BUNDLE (s3.h)
//   Azure  AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY,
//          AZURE_STORAGE_SAS_TOKEN (azure.h)
// Holds secrets: never print it. Backends keep what they need and never put a secret into a
// message or location().
struct BackendSettings {
  // The value of a setting, or nullopt when it is not set (an empty value counts as unset).
  std::function<std::optional<std::string>(const std::string& name)> lookup;
  // Objects per listing page on object stores (S3 max-keys, Azure maxresults, 1..1000);
  // 0: the service's default (1000). Tests use small pages; the local backend ignores it.
  int list_page_size = 0;

  // The value of `name`, "" when unset.
  std::string get(const std::string& name) const;
  // Settings from fixed values (a server's per-repository configuration, tests).
  static BackendSettings from_map(std::map<std::string, std::string> values);
};

// Opens a backend from a repository location string: a plain path, "local:/path",
// "s3:..." (s3.h) or "azure:..." (azure.h), with `settings` as the source of credentials and
// options. Object stores come wrapped in RetryBackend. Unknown schemes fail with
// kInvalidArgument naming the supported ones; missing or malformed credentials with
// kInvalidArgument naming the settings to give (never their values).
Result<std::shared_ptr<Backend>> open_backend(const std::string& location,
                                              const BackendSettings& settings = {});

}  // namespace haven::storage

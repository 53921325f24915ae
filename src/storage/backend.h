// storage/backend.h — the one storage interface every backend implements (local disk now;
// S3 and Azure Blob later) and the wrapper base that retry, limits and fault injection stack on.
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
//   - stat() returns the size, or kNotFound.
//   - list() calls `fn` once per object of a type, in no particular order; objects saved
//     concurrently may or may not be listed. A missing type directory lists nothing.
//   - remove() deletes; removing a missing object fails with kNotFound.
//   - Failures: kPermissionDenied (access, read-only), kNoSpace (disk or quota full), kIo,
//     kTransient (timeouts, resets, throttling: the only retryable kind; see Error::retryable),
//     kNotFound, kAlreadyExists, kCorrupt.
//   - Thread-safety: every method may be called concurrently from several threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "util/bytes.h"
#include "util/error.h"

namespace haven::storage {

enum class ObjectType { kConfig, kKey, kData, kIndex, kSnapshot, kLock, kWal };

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
};

class Backend {
 public:
  virtual ~Backend() = default;

  // A human-readable location, e.g. "local:/srv/repo". Never contains credentials.
  virtual std::string location() const = 0;

  virtual Status save(const ObjectName& name, ByteView data) = 0;
  // length == 0 means "to the end of the object".
  virtual Result<Bytes> load(const ObjectName& name, uint64_t offset = 0, uint64_t length = 0) = 0;
  virtual Result<ObjectInfo> stat(const ObjectName& name) = 0;
  virtual Status list(ObjectType type, const std::function<void(const ObjectInfo&)>& fn) = 0;
  virtual Status remove(const ObjectName& name) = 0;

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
    return type == ObjectType::kKey || type == ObjectType::kLock || type == ObjectType::kWal ? 3600 : 0;
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
  Status save(const ObjectName& n, ByteView d) override { return inner_->save(n, d); }
  Result<Bytes> load(const ObjectName& n, uint64_t off, uint64_t len) override {
    return inner_->load(n, off, len);
  }
  Result<ObjectInfo> stat(const ObjectName& n) override { return inner_->stat(n); }
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

 private:
  std::shared_ptr<Backend> inner_;
};

// Opens a backend from a repository location string: a plain path or "local:/path".
// Unknown schemes fail with kInvalidArgument naming the supported ones.
Result<std::shared_ptr<Backend>> open_backend(const std::string& location);

}  // namespace haven::storage

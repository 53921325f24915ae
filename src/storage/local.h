// storage/local.h — the local-disk backend.
//
// Layout under the root directory:
//   config                 the repository config object
//   keys/<id>              key files
//   data/<id[0:2]>/<id>    packs, sharded into 256 directories so no directory grows huge
//   index/<id>, snapshots/<id>, locks/<id>
//
// Durability: save() writes to a temporary file "<dir>/.tmp-<random>" in the target directory,
// fsyncs it, renames it over the final name (link()+unlink() so an existing name is never
// replaced), and fsyncs the directory so the rename itself survives a power cut. A crash before
// the rename leaves only a ".tmp-" file, which list() never reports and create()/is_empty()
// ignore, and remove_leftovers() (called by prune under the exclusive lock) deletes.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <string>

#include "storage/backend.h"

namespace haven::storage {

// How many times this process has fsynced a "data" directory to make a shard durable for a save
// into it (for tests: shards found existing cost one fsync together; none happens before the
// object itself is published).
size_t shard_fsyncs();

class LocalBackend : public Backend {
 public:
  explicit LocalBackend(std::string root);

  std::string location() const override { return "local:" + root_; }
  size_t concurrent_saves() const override { return 1; }
  size_t loads_ahead() const override { return 1; }
  Status save(const ObjectName& name, ByteView data) override;
  // Streams into the temporary file save() would write, published (fsync, link, directory
  // fsync) at commit; an uncommitted writer removes its temporary file.
  Result<std::unique_ptr<ObjectWriter>> open_writer(const ObjectName& name) override;
  bool streams_writes() const override { return true; }
  Result<Bytes> load(const ObjectName& name, uint64_t offset, uint64_t length) override;
  Status load_into(const ObjectName& name, uint64_t offset, std::span<uint8_t> out) override;
  Result<ObjectInfo> stat(const ObjectName& name) override;
  Status list(ObjectType type, const std::function<void(const ObjectInfo&)>& fn) override;
  Status remove(const ObjectName& name) override;
  Result<bool> is_empty() override;
  Status create() override;
  Result<Leftovers> remove_leftovers(ObjectType type, int64_t min_age_seconds, bool dry_run) override;

  // A temporary file in an object's directory, not yet published under its name.
  struct TempFile {
    int fd = -1;
    std::string tmp, dir, final_path;
    bool shard = false;  // dir is a shard of data/ (made on demand; publish() makes it durable)
    TempFile() = default;
    TempFile(TempFile&& o) noexcept : fd(o.fd), tmp(std::move(o.tmp)), dir(std::move(o.dir)),
                                      final_path(std::move(o.final_path)), shard(o.shard) {
      o.fd = -1;
      o.tmp.clear();
    }
    TempFile& operator=(TempFile&&) = delete;
    ~TempFile() { discard(); }
    void discard();  // closes and removes it (nothing once published)
  };
  Result<TempFile> create_temp(const ObjectName& name);
  // fsync, link under the final name (never replacing one), directory fsync; on failure the
  // temporary file is gone and nothing is visible.
  Status publish(TempFile& t);

  // The file that holds an object (tests use it to tamper with objects on disk).
  std::string path_of(const ObjectName& name) const;

  // Test hook: when set, save() calls it after the temporary file is written and synced but
  // before the rename. A test makes it kill the process to simulate a crash at that point.
  void set_before_rename_hook(std::function<void()> hook) { before_rename_ = std::move(hook); }

 private:
  std::string dir_of(const ObjectName& name) const;
  std::string root_;
  std::function<void()> before_rename_;
};

}  // namespace haven::storage

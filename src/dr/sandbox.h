// dr/sandbox.h — where a drill runs: a directory of its own under a root (temporary
// directories for its restores, sockets and logs), free ports, and a manifest of what it
// started (process groups, PostgreSQL data directories), so that a drill killed midway is
// cleaned up at the next start: clean_leftovers() stops what the manifest names and removes
// the directory.
//
// Thread-safety: a Sandbox may be used from several threads (the steps of one run).
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "util/error.h"

namespace haven::dr {

class Sandbox {
 public:
  // Creates <root>/<id> (root is created if absent, mode 0711 so that PostgreSQL, running as
  // its own user, reaches its data directory inside) and writes the manifest.
  static Result<Sandbox> create(const std::string& root, const std::string& id);
  Sandbox(Sandbox&&) noexcept;
  ~Sandbox();

  const std::string& path() const { return path_; }
  // A new directory <path>/<name> (mode 0755).
  Result<std::string> make_dir(const std::string& name);
  // Records a process group to stop, and a PostgreSQL data directory whose server to stop,
  // when the run ends (or at the next start if this process dies).
  Status add_process_group(pid_t pgid);
  Status remove_process_group(pid_t pgid);
  Status add_postgres(const std::string& datadir);

  // Stops what was recorded and removes the directory. Idempotent; never cancelled.
  Status destroy();
  // Keeps the directory and what runs from it (a real recovery's): the manifest goes, so
  // clean_leftovers() leaves it alone.
  void release();

 private:
  Sandbox(std::string path) : path_(std::move(path)) {}
  Status write_manifest();

  std::string path_;
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();
  std::set<pid_t> groups_;
  std::vector<std::string> postgres_;
  bool destroyed_ = false;
};

// Writes (or appends) `text` to `path` (created with `mode`) and, when running as root, gives
// it to uid/gid: the files Haven adds to a restored cluster belong to the cluster's user.
Status write_owned_file(const std::string& path, const std::string& text, bool append, uid_t uid,
                        gid_t gid, mode_t mode);

// A free TCP port on 127.0.0.1 (the kernel's choice), never one in `avoid`.
Result<int> free_port(const std::set<int>& avoid);

// For every sandbox under `root` whose process is gone (a killed drill): stops the process
// groups and PostgreSQL servers its manifest names and removes it. Returns what was removed.
Result<std::vector<std::string>> clean_leftovers(const std::string& root);

}  // namespace haven::dr

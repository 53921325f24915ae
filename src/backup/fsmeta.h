// backup/fsmeta.h — reads what Haven records about a file system entry: type, mode, owner
// (numbers and names), times, size, identity (inode/device/links), device numbers, symlink
// target, and extended attributes (POSIX ACLs are the system.posix_acl_* attributes).
//
// Thread-safety: NameCache is internally locked; read_node may run on several threads.
#pragma once

#include <sys/stat.h>

#include <mutex>
#include <string>
#include <unordered_map>

#include "repo/snapshot.h"
#include "util/clock.h"
#include "util/error.h"

namespace haven::backup {

class NameCache {
 public:
  std::string user(uint32_t uid);
  std::string group(uint32_t gid);

 private:
  std::mutex mu_;
  std::unordered_map<uint32_t, std::string> users_, groups_;
};

// Fills a Node from lstat data and the entry at `path` (xattrs, link target). `name` is the
// entry's name in its directory.
//
// `before`: the same entry in the previous snapshot, if any. When it is the same inode with the
// same type, size, mtime and ctime, its extended attributes and link target are taken from it
// instead of read again: changing either (or the mode or owner) sets the ctime, so they are
// unchanged. This saves an unchanged file two system calls and a path lookup each.
Result<repo::Node> read_node(const std::string& path, const std::string& name,
                             const struct stat& st, NameCache& names,
                             const repo::Node* before = nullptr);

inline TimeNs ts_ns(const struct timespec& ts) {
  return static_cast<TimeNs>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace haven::backup

// repo/snapshot.h — snapshot, tree and lock objects and their CBOR encodings
// (docs/FORMAT.md §6–8).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "repo/ids.h"
#include "util/clock.h"
#include "util/error.h"

namespace haven::repo {

struct Snapshot {
  TimeNs time = 0;        // when the backup started
  TimeNs end_time = 0;    // when it finished
  Id tree{};              // root tree blob
  std::vector<std::string> paths;  // what was backed up: absolute, as given (cleaned)
  // The top-level name in the root tree of each path, in the same order (repo/paths.h). Empty
  // in snapshots written before it was recorded: then each path's last component.
  std::vector<std::string> names;
  std::string hostname;
  std::string username;
  std::vector<std::string> tags;
  std::string strategy;   // full | incremental | differential
  std::optional<Id> parent;
  std::map<std::string, uint64_t> stats;  // files_new, bytes_read, ...
  std::string program_version;
  // What a kind of backup records beside the files (docs/FORMAT.md §6): PostgreSQL base
  // backups keep their backup_label, WAL positions and timeline here ("pg.*").
  std::map<std::string, std::string> meta;
};

// A stretch of a file's content (docs/FORMAT.md §6): a whole data blob, or `length` bytes of
// one from `offset`. PostgreSQL incremental backups keep a relation's unchanged pages as slices
// of the blobs an earlier backup stored.
struct ContentRef {
  Id id{};
  uint32_t offset = 0;
  uint32_t length = 0;  // 0: the whole blob
  ContentRef() = default;
  ContentRef(const Id& blob) : id(blob) {}  // NOLINT(google-explicit-constructor): a whole blob
  ContentRef(const Id& blob, uint32_t off, uint32_t len) : id(blob), offset(off), length(len) {}
  bool whole() const { return length == 0; }
  friend bool operator==(const ContentRef&, const ContentRef&) = default;
};

// One entry of a directory tree.
struct Node {
  enum class Type { kFile, kDir, kSymlink, kFifo, kCharDev, kBlockDev, kSocket };
  std::string name;  // raw bytes, never contains '/' or NUL
  Type type = Type::kFile;
  uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky
  uint32_t uid = 0, gid = 0;
  std::string user, group;
  TimeNs mtime = 0, atime = 0, ctime = 0;
  uint64_t size = 0;
  uint64_t inode = 0, device = 0, links = 0, rdev = 0;
  std::string link_target;  // symlinks
  std::vector<std::pair<std::string, std::string>> xattrs;  // name -> raw value (incl. ACLs)
  std::vector<ContentRef> content;  // data blobs or slices of them, in order (files)
  std::optional<Id> subtree;  // dirs
};

const char* node_type_name(Node::Type t);
// The type of a file system entry from its st_mode (S_IFREG ...); nullopt for an unknown one.
std::optional<Node::Type> node_type_of_mode(uint32_t st_mode);

struct Tree {
  std::vector<Node> nodes;  // sorted by name
};

struct Lock {
  TimeNs time = 0;
  TimeNs refreshed = 0;
  std::string hostname;
  std::string username;
  int64_t pid = 0;
  bool exclusive = false;
};

Bytes encode_snapshot(const Snapshot& s);
Result<Snapshot> decode_snapshot(ByteView body, const std::string& what);
Bytes encode_tree(const Tree& t);
Result<Tree> decode_tree(ByteView body, const std::string& what);
Bytes encode_lock(const Lock& l);
Result<Lock> decode_lock(ByteView body, const std::string& what);

// Renders any CBOR object body as JSON for `haven cat` (byte strings as hex; names that are
// valid UTF-8 as text).
std::string cbor_to_json_text(ByteView body);

}  // namespace haven::repo

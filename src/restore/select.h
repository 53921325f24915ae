// restore/select.h — what restore and compare share (internal to the restore module): which
// entries of a snapshot the includes and excludes select, the user's paths turned into the
// snapshot's stored forms, and the content check of one file on disk.
#pragma once

#include <string>
#include <vector>

#include "repo/repository.h"
#include "restore/restore.h"

namespace haven::restore::detail {

// Includes and excludes in stored form ("app/etc", relative to the root tree); excludes may
// also be glob patterns (fnmatch), matched against the whole path or, without a '/', the
// last name.
class Selection {
 public:
  Selection(const std::vector<std::string>& includes, const std::vector<std::string>& excludes);
  // Inside an included path, or a directory on the way to one (true when nothing is included).
  bool wanted(const std::string& rel, bool is_dir) const;
  bool excluded(const std::string& rel) const;
  bool selected(const std::string& rel, bool is_dir) const { return wanted(rel, is_dir) && !excluded(rel); }

 private:
  std::vector<std::string> includes_;
  std::vector<std::string> excludes_;
};

// `options` with its includes and excludes turned into the snapshot's stored forms
// (repo/paths.h). kNotFound for an include that names nothing in the snapshot, naming it.
Result<Options> stored_paths(repo::Repository& repo, const Choice& choice, const Options& options);

// The file at `path` (opened without following a symlink) against the node's content: each
// blob's bytes re-read and their ID recomputed. kCorrupt names the first offset that differs
// (a short file too); reads at most one blob's bytes at a time.
Status verify_content(repo::Repository& repo, const std::string& path, const repo::Node& node);

// What progress reports as totals for `choice` taken with `o` (stored forms): the snapshot's
// statistics when it is taken whole, else 0 (not known).
struct Totals {
  uint64_t files = 0, bytes = 0;
};
Totals totals(const Choice& choice, const Options& o);

std::string strip_slashes(std::string p);

}  // namespace haven::restore::detail

// restore/restore.h — writes a snapshot's tree (or part of it) back to a directory: content
// (holes stay holes: all-zero chunks become holes), types (files, dirs, symlinks, hard links,
// fifos, devices), mode, owner, times, extended attributes and ACLs.
//
// Safety: every entry name is checked before use (no "", ".", "..", "/" or NUL; no duplicate
// names in a directory), files are opened with O_NOFOLLOW and directories are never entered
// through a symlink, so a hostile snapshot cannot write outside the target. A blob that fails
// authentication makes its file fail (the partial file is removed); other files still restore.
//
// Reading: the walker gathers files into batches (bounded by batch_files and batch_blobs); a
// batch's blobs are grouped by pack and neighbours are fetched in one ranged read (gaps up to
// max_gap are read and dropped, a read is at most max_range), on parallel reader threads. A
// blob shared by several files is read once. Memory: the batch plan plus one range per reader.
#pragma once

#include <string>
#include <vector>

#include "repo/repository.h"
#include "util/events.h"

namespace haven::restore {

enum class Overwrite { kNever, kIfChanged, kAlways };
Result<Overwrite> parse_overwrite(const std::string& s);

struct Options {
  std::string target;
  std::vector<std::string> includes;  // snapshot paths ("etc/hosts" or "/etc/hosts"); empty = all
  std::vector<std::string> excludes;  // snapshot paths or glob patterns
  bool verify = false;                // re-read written files and check them against blob IDs
  bool sync = false;                  // fdatasync each file when its last blob is written
  Overwrite overwrite = Overwrite::kNever;
  unsigned threads = 0;               // reader threads; 0: one per core, at least 4
  size_t batch_files = 4096;          // files open at once (also capped by the open-file limit)
  size_t batch_blobs = 65536;         // blob placements planned at once
  uint64_t max_gap = 256 << 10;       // bytes between two blobs still read in one request
  uint64_t max_range = 16 << 20;      // bytes per request at most
};

struct Summary {
  uint64_t files = 0, dirs = 0, others = 0, bytes = 0;
  uint64_t skipped = 0;   // existing files left alone (overwrite never / unchanged)
  uint64_t verified = 0;  // files re-read and checked
  uint64_t errors = 0;    // files that failed (damaged data, I/O)
};

// Restores tree `root` into options.target. Events: "progress", "warning" (a file skipped),
// "error" (a file failed), "summary". Returns an Error only for failures that stop the whole
// restore (bad options, an unsafe name, the target unusable); per-file failures are counted.
Result<Summary> run(repo::Repository& repo, const repo::Id& root, const Options& options,
                    EventSink& events);

// Checks one entry name from a snapshot (see the file comment).
Status check_name(const std::string& name);

}  // namespace haven::restore

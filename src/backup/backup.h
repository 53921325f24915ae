// backup/backup.h — Haven's main job: walk file trees (or read a stream), chunk, hash once,
// deduplicate, compress, encrypt, pack and store, then write a snapshot.
//
// Pipeline: the calling thread walks the tree and queues file jobs into a bounded queue; worker
// threads read, chunk, hash and hand chunks to Session::save_blob_with_id (which compresses
// and encrypts on the same worker). A directory's tree blob is written by whichever thread
// finishes its last child, so the walker never waits for a directory. Memory is bounded by
// `queue_depth` jobs, one read buffer (2 × max chunk) and one for small files (1 MiB) per
// worker, and the session's open packs — never by the size or number of files.
//
// Strategies (seed 000): full reads every file; incremental reuses a file's chunk list when
// size, mtime, ctime, inode and device match the newest snapshot of the same host and paths;
// differential does the same against the newest full snapshot of the same host and paths.
// With Options::page_delta, a changed page-structured file is read against the parent's copy
// and only its changed pages are stored (PostgreSQL base backups).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "repo/repository.h"
#include "repo/session.h"
#include "util/events.h"

namespace haven::backup {

// Page-structured files that tell by themselves which of their pages changed since a snapshot
// (PostgreSQL relations: a page whose LSN is older than the snapshot's start has not changed).
struct PageDelta {
  size_t page_size = 8192;
  std::function<bool(const std::string& path)> applies;  // which files are such
  std::function<bool(ByteView page)> changed;            // a page changed since the snapshot
  // Optional: a file's changed pages by number (sorted), known without reading it (PostgreSQL:
  // from the WAL). Then only those pages, and any past the parent's copy, are read; nullopt
  // (or a file replaced since the parent: another inode) reads every page and asks `changed`.
  std::function<std::optional<std::vector<uint32_t>>(const std::string& path)> listed;
};

struct Options {
  std::vector<std::string> paths;
  std::string strategy = "incremental";  // full | incremental | differential
  std::vector<std::string> tags;
  std::string host;                      // default: this host's name
  std::vector<std::string> excludes;     // glob patterns (fnmatch) on the full path or the name
  bool one_file_system = false;
  // Stream input instead of paths: fd 0, or the stdout of `command` when it is non-empty.
  bool from_stdin = false;
  std::string stdin_filename;
  std::vector<std::string> command;
  // Called after every file is stored and before the snapshot is written: may add to the
  // snapshot (PostgreSQL's pg_backup_stop goes here, so its label is in the snapshot) or fail
  // the backup (then no snapshot is written).
  std::function<Status(repo::Snapshot&)> before_snapshot;
  // Incremental and differential backups: given the parent snapshot, how to tell changed pages
  // (or nullopt). A changed file that the parent has and that the delta applies to is then read
  // page by page: unchanged pages are kept as slices of the parent's blobs, changed pages are
  // stored in new blobs. Anything else is read and chunked whole.
  std::function<std::optional<PageDelta>(const repo::Snapshot& parent)> page_delta;
  unsigned threads = 0;      // 0: one per core (at least 2)
  size_t queue_depth = 64;   // file jobs waiting for a worker
};

struct Summary {
  repo::Id snapshot_id{};
  repo::Snapshot snapshot;
  uint64_t warnings = 0;
};

// kInvalidArgument for options that cannot work: an unknown strategy, paths and a stream at
// once, a stream file name with a '/', nothing to back up. Touches nothing.
Status validate(const Options& options);

// Validates options (kInvalidArgument), runs the backup and writes the snapshot. Files that
// vanish, change while read, or cannot be read are reported as "warning" events and counted in
// Summary::warnings; the backup still completes. Events (util/events.h): backup:started (the
// request), backup:progress (phase "files": files and bytes read, bytes found so far),
// backup:warning (path, message), then backup:completed (snapshot_id, stats, warnings),
// backup:failed or backup:cancelled.
//
// Writes through `session` (which holds the shared lock, and whose token it runs under); other
// sessions may write into the same repository at the same time. The snapshot's bytes_added and
// blobs_added are what this session stored during the backup (a session serves one operation
// at a time; other sessions' writes never count).
Result<Summary> run(repo::Session& session, const Options& options, const EventTarget& events);

// Reads glob patterns from a file: one per line; blank lines and lines starting with '#'
// are ignored.
Result<std::vector<std::string>> read_exclude_file(const std::string& path);

// Finds the snapshot a new backup compares against (see the file comment); nullopt if none.
Result<std::optional<std::pair<repo::Id, repo::Snapshot>>> find_parent(
    repo::Repository& repo, const std::string& strategy, const std::string& host,
    const std::vector<std::string>& paths);

}  // namespace haven::backup

// ops/backup.h — `backup`: files and directories, standard input, or a command's output, into
// a new snapshot (the engine: backup/backup.h). Conventions: ops/ops.h.
#pragma once

#include <string>
#include <vector>

#include "backup/backup.h"
#include "repo/repository.h"
#include "util/events.h"

namespace haven::ops {

struct BackupRequest {
  enum class Source {
    kPaths,    // `paths`
    kStdin,    // this process's standard input, as one file
    kCommand,  // the standard output of `command` (argv), as one file; fails if it exits non-zero
  };
  Source source = Source::kPaths;
  std::vector<std::string> paths;
  std::vector<std::string> command;
  std::string stdin_filename;  // the stream's file name in the snapshot; default "stdin"
  std::string strategy = "incremental";  // full | incremental | differential
  std::vector<std::string> tags;
  std::string host;                        // default: this host's name
  std::vector<std::string> excludes;       // globs
  std::vector<std::string> exclude_files;  // files of globs, one per line ('#' comments)
  bool one_file_system = false;
  unsigned threads = 0;  // 0: one per core
  // none | low | medium | high for this backup's new packs; empty: the repository's setting.
  std::string compression;
};

struct BackupResult {
  repo::Id snapshot_id{};
  repo::Snapshot snapshot;  // with its stats: files_new, bytes_read, bytes_added, duration_ms…
  uint64_t warnings = 0;    // files not backed up as they were (each one a "warning" event)
  // snapshot.stats[key], 0 if absent.
  uint64_t stat(const std::string& key) const;
};

Status validate(const BackupRequest& request);

// Shared lock; loads the index; runs the backup and writes the snapshot.
Result<BackupResult> backup(repo::Repository& repo, const BackupRequest& request,
                            const EventTarget& events);

}  // namespace haven::ops

// ops/pg.h — PostgreSQL: `pg backup` (a base backup), `pg windows` (what is recoverable),
// `pg validate` (is a cluster sound), `pg retain` (keep what a point-in-time window needs),
// `pg restore` (a base backup with recovery settings, then optionally start it and wait for
// recovery). Engines: pg/basebackup.h, pg/recovery.h, pg/retention.h, pg/server.h,
// pg/validate.h. Conventions: ops/ops.h.
#pragma once

#include <map>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "pg/basebackup.h"
#include "pg/recovery.h"
#include "pg/retention.h"
#include "pg/validate.h"
#include "repo/repository.h"
#include "retention/prune.h"
#include "util/events.h"

namespace haven::ops {

// --- pg backup ---
struct PgBackupRequest {
  std::string pgdata;    // the cluster's data directory, as this host sees it
  std::string conninfo;  // libpq connection string; "": libpq's defaults (PG* variables)
  std::string strategy = "incremental";  // full | incremental | differential
  std::vector<std::string> tags;
  unsigned threads = 0;
  // none | low | medium | high. Low (zstd 1) by default: base backups are the biggest job, and
  // on PostgreSQL pages level 1 measured 1.7× faster than level 3 and no larger.
  std::string compression = "low";
  bool row_counts = false;  // record every table's row count, for pg_validate's `against`
};
Status validate(const PgBackupRequest& request);
// Shared lock; loads the index; pg::base_backup.
Result<pg::BaseBackupResult> pg_backup(repo::Repository& repo, const PgBackupRequest& request,
                                       const EventTarget& events);

// --- pg windows ---
struct PgWindowsRequest {};
struct PgWindowsResult {
  std::vector<pg::BaseBackup> base_backups;  // oldest first
  std::vector<pg::Window> windows;           // per timeline
  std::string description;                   // pg::describe_windows
};
Result<PgWindowsResult> pg_windows(repo::Repository& repo, const PgWindowsRequest& request,
                                   const EventTarget& events);

// --- pg validate ---
struct PgValidateRequest {
  std::string conninfo;  // the cluster to validate; "": libpq's defaults
  std::string against;   // compare row counts with this base backup ("latest", ID, prefix)
};
struct PgValidateResult {
  pg::Validation validation;  // validation.ok(): no failures
  std::optional<repo::Id> against;
};
Status validate(const PgValidateRequest& request);
// `repo` is needed for `against` (may be null without it).
Result<PgValidateResult> pg_validate(repo::Repository* repo, const PgValidateRequest& request,
                                     const EventTarget& events);

// Row counts a base backup recorded (pg backup with row_counts); empty if none.
std::map<std::string, uint64_t> recorded_row_counts(const repo::Snapshot& base_backup);

// --- pg retain ---
struct PgRetainRequest {
  std::string window;           // how far back recovery must reach: 30d, 2w, 72h…
  bool dry_run = false;         // decide and report only (shared lock)
  bool prune = false;           // prune afterwards if base backups were forgotten
  std::optional<TimeNs> as_of;  // the window ends here; default: now
};
struct PgRetainResult {
  pg::RetainResult retain;
  std::optional<retention::PruneStats> prune;  // when it ran
};
Status validate(const PgRetainRequest& request);
// Exclusive lock (shared for a dry run); pg::retain, then the prune under the same lock.
Result<PgRetainResult> pg_retain(repo::Repository& repo, const PgRetainRequest& request,
                                 const EventTarget& events);

// --- pg restore ---
// Segments restore_command fetches ahead of recovery (pgBackRest's archive-get-queue-max is
// 128 MiB: the same), into the spool prefetch_spool() names.
constexpr unsigned kPrefetchSegments = 8;
std::string prefetch_spool(const std::string& data_directory);
struct PgRestoreRequest {
  std::string target;  // the new data directory (absent or empty); absolute
  // The recovery target: exactly one (pg::parse_recovery_target).
  bool latest = false;
  std::string time, lsn, xid;
  int port = 0;                 // written into postgresql.auto.conf if set (1 to 65535)
  bool keep_archiving = false;  // default: archive_mode off in the restored cluster
  unsigned threads = 0;
  // restore_command, which the restored server runs to fetch WAL:
  //   '<wal_fetch_program>' -r '<repository>' wal-fetch --wal-key-file '<key file>'
  //       --spool '<target>/pg_wal/haven-prefetch' --prefetch 8 %f %p
  // (segments fetched ahead in the background while the server replays, pg/wal_spool.h)
  // PostgreSQL runs it in the data directory, so every path here is absolute.
  std::string wal_fetch_program;  // the haven binary, absolute
  std::string repository;         // "s3:…", "azure:…", or an absolute path (local:/… too)
  // The WAL key file the command reads, absolute. "": the restore writes one,
  // <target>/haven-wal.key, owned by the data directory's owner.
  std::string wal_key_file;
  // Starting the restored cluster (pg_start(), after pg_restore()):
  bool start = false;
  std::string pg_bin;             // PostgreSQL's bin directory; "": from PG_VERSION
  int wait_seconds = 3600;        // for recovery to reach the target
  // How long a conflicting (exclusive) lock is waited out before failing; 0: fail at once.
  std::chrono::seconds lock_wait{0};
  bool validate_cluster = false;  // then validate it (needs start)
  std::string conninfo;           // how to connect to it for the validation
};
struct PgRestoreResult {
  pg::RecoveryTarget recovery;
  pg::PgRestoreResult restored;  // the base backup, files, bytes
  std::string target;            // the data directory
  std::string wal_key_file;      // the key file restore_command reads
  bool wrote_wal_key_file = false;
  std::string restore_command;
};
Status validate(const PgRestoreRequest& request);
// Shared lock; loads the index; restores the base backup the target needs (refusing a target
// outside every window before anything is written), writes the recovery settings and, if none
// was given, the WAL key file. Does not start the server: pg_start() does.
Result<PgRestoreResult> pg_restore(repo::Repository& repo, const PgRestoreRequest& request,
                                   const EventTarget& events);

struct PgStartResult {
  std::string pg_bin;
  std::optional<pg::Validation> validation;  // with validate_cluster
  // The segments a prefetch was started for as the server started ("" if none could be).
  std::vector<std::string> fetched_ahead;
};
// The second half of a restore with `start`: pg_ctl start as the data directory's owner, wait
// (up to wait_seconds) until recovery has reached the target and the server accepts writes,
// then, with validate_cluster, validate it against the row counts the base backup recorded.
// As the server starts (pg_ctl, then its pass over the data directory before it asks for WAL),
// '<wal_fetch_program> wal-prefetch' fetches the first kPrefetchSegments segments recovery needs
// into the spool, where restore_command finds them or waits for them (pg/wal_spool.h).
// Needs no repository. `restored` is what pg_restore() returned for `request`.
Result<PgStartResult> pg_start(const PgRestoreRequest& request, const PgRestoreResult& restored);

}  // namespace haven::ops

// pg/basebackup.h — a PostgreSQL base backup through the file pipeline (docs/FORMAT.md §10).
//
// Non-exclusive: one libpq session calls pg_backup_start(label, fast), the data directory and
// every tablespace go through backup::run (deduplicated like any files; what PostgreSQL
// documents as safe to skip is skipped), and pg_backup_stop(wait_for_archive) runs from the
// backup's before_snapshot hook, so the snapshot is written only once PostgreSQL has archived
// the WAL the backup needs. Its backup_label, tablespace_map, start/stop positions, timeline
// and times are kept in the snapshot's meta ("pg.*"), with the tag "pg".
//
// Incremental and differential: files are compared with the parent snapshot as usual, and a
// changed relation file is read against the parent's copy when the parent is a base backup of
// the same cluster on the same timeline: only pages whose LSN is at or after the parent's start
// LSN are stored, the others stay slices of the parent's blobs (backup::PageDelta). That is
// safe: pg_backup_start's checkpoint wrote every page changed before the parent's start to disk
// before the parent read it, and a page changed after the new start is restored by its
// full-page image in the WAL replayed from there.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "pg/wal.h"  // parse_lsn, format_lsn
#include "repo/repository.h"
#include "util/cancel.h"
#include "util/events.h"

namespace haven::pg {

class Connection;  // pg/pgconn.h

struct BaseBackupOptions {
  std::string conninfo;  // libpq connection string; empty: PG* environment variables
  std::string pgdata;    // the cluster's data directory, as this host sees it
  std::string strategy = "incremental";
  std::vector<std::string> tags;
  unsigned threads = 0;
  bool row_counts = false;  // count every table's rows before pg_backup_stop (for validation)
};

struct BaseBackupResult {
  repo::Id snapshot{};
  std::string start_lsn, stop_lsn, start_wal, stop_wal;
  uint32_t timeline = 0;
  backup::Summary summary;
};

// Backs up through backup::run in `session` (which holds the shared lock).
// Events: pg_backup:started, pg_backup:progress (phase "pg_backup_start" once PostgreSQL has
// begun the backup), then the files as a backup operation of its own (backup:*), then
// pg_backup:completed (snapshot_id, LSNs, WAL files, timeline), :failed or :cancelled.
Result<BaseBackupResult> base_backup(repo::Session& session, const BaseBackupOptions& options,
                                     const EventTarget& events);

// Whether `page` (one of `page_size` bytes of a relation file) changed at or after `since` (an
// LSN): its header's LSN says so. A page whose header is not a valid one (all zeros, a page
// being initialised, another page size) counts as changed.
bool page_changed_since(ByteView page, uint64_t since);

// Whether `path` is the main fork of a relation (or one of its 1 GB segments): base/<db>/<n>,
// global/<n> or <tablespace>/PG_*/<db>/<n>, with <n>[.<segment>] all digits. Its pages carry the
// LSN of their last change. Free space maps (_fsm) and visibility maps (_vm) do not qualify:
// their pages change without a WAL record that sets their LSN.
bool is_relation_file(const std::string& path, const std::string& pgdata,
                      const std::vector<std::string>& tablespaces);

// Waits until PostgreSQL has archived WAL segment `segment` (a 24-digit file name), as
// pg_backup_stop(true) would, but looking every 10 ms instead of once a second: the segment's
// `.done` in `<pgdata>/pg_wal/archive_status` (what PostgreSQL itself looks for), or
// pg_stat_archiver's last archived file at or after it. The archiver takes segments oldest first
// and retries a failing one until it succeeds, so every segment before that one is archived
// too; WAL file names of one timeline sort in WAL order. The last archived file alone is not
// enough: a backup history file ("…05.00000028.backup") may be archived after a later segment,
// and then it names the older file until the next segment (seen: an incremental waited two
// minutes for a segment archived long before). The statistics are for when this process may not
// see archive_status (another user, another mount). Warns through `events` every minute it
// waits; returns the token's error once it is cancelled.
Status wait_until_archived(Connection& conn, const std::string& pgdata, const std::string& segment,
                           const CancelToken& token, Reporter& events);

// What base backups skip inside the data directory (patterns for backup::Options::excludes):
// PostgreSQL's documented list — the contents of pg_wal, pg_replslot, pg_dynshmem, pg_notify,
// pg_serial, pg_snapshots, pg_stat_tmp and pg_subtrans (the directories stay), postmaster.pid
// and .opts, pgsql_tmp*, pg_internal.init, and backup_label/tablespace_map left by an old
// exclusive backup.
std::vector<std::string> skipped_paths(const std::string& pgdata);

}  // namespace haven::pg

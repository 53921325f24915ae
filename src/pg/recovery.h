// pg/recovery.h — point-in-time recovery: which base backups and WAL the repository holds, the
// windows they make recoverable, and restoring a base backup with recovery settings.
//
// A base backup B on timeline t is recoverable from its stop position (where it becomes
// consistent) to the end of the unbroken run of archived segments of timeline t that starts
// with B's first segment. A target is recovered from the newest base backup that stopped
// before it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "repo/repository.h"
#include "repo/session.h"
#include "util/events.h"

namespace haven::pg {

struct BaseBackup {
  repo::Id id{};
  repo::Snapshot snapshot;
  uint32_t timeline = 0;
  uint64_t start_lsn = 0, stop_lsn = 0;
  TimeNs stop_time = 0;
  uint64_t wal_segment_size = 16u << 20;
};

// Every base backup in the repository, oldest first.
Result<std::vector<BaseBackup>> list_base_backups(repo::Repository& repo);

struct Window {
  uint32_t timeline = 0;
  uint64_t from_lsn = 0, to_lsn = 0;  // to_lsn: the end of the last archived segment
  TimeNs from_time = 0;               // the oldest base backup's stop time
  std::string last_segment;
  size_t base_backups = 0;
};
// The recoverable windows, per timeline (base backups whose WAL is incomplete make none).
Result<std::vector<Window>> recoverable_windows(repo::Repository& repo,
                                                const std::vector<BaseBackup>& backups);
std::string describe_windows(const std::vector<Window>& windows);

struct RecoveryTarget {
  enum class Kind { kLatest, kTime, kLsn, kXid } kind = Kind::kLatest;
  TimeNs time = 0;
  uint64_t lsn = 0;
  uint64_t xid = 0;
  // As PostgreSQL reads it in recovery_target_*: a time in its own form (UTC, microseconds:
  // format_pg_time), an LSN X/Y, a transaction ID; "latest".
  std::string text;
};

// A recovery target as a user gives it: exactly one of these.
struct RecoveryTargetText {
  bool latest = false;
  std::string time;  // RFC 3339, or 'YYYY-MM-DD HH:MM[:SS]' local time
  std::string lsn;   // X/Y, as PostgreSQL writes it
  std::string xid;   // a transaction ID (a number)
};
// kInvalidArgument naming the option (--time, --lsn, --xid) and the form it takes, or asking
// for exactly one target.
Result<RecoveryTarget> parse_recovery_target(const RecoveryTargetText& given);
// kInvalidArgument unless `target` is consistent (its text says what its typed field says), as
// parse_recovery_target() makes it. restore_for_recovery() checks this first.
Status validate(const RecoveryTarget& target);
// "2026-11-21 10:00:00.000000+00": PostgreSQL's timestamp form, in UTC with microseconds.
std::string format_pg_time(TimeNs t);
// The WAL segments a recovery from `base` to `target` asks for first, in order: from the one
// holding the backup's start on, at most `count`, none past the one holding an LSN target.
std::vector<std::string> first_recovery_segments(const BaseBackup& base, const RecoveryTarget& target,
                                                 unsigned count);

struct PgRestoreOptions {
  std::string target;           // the new data directory (absent or empty)
  RecoveryTarget recovery;
  std::string restore_command;  // written into postgresql.auto.conf
  int port = 0;                 // if set, written into postgresql.auto.conf
  // A restored cluster archives nothing unless asked: with the original's archive_command it
  // would add its new timeline to the same archive, and a later --latest recovery of the
  // original (recovery_target_timeline 'latest') could follow the copy's branch.
  bool keep_archiving = false;
  unsigned threads = 0;
};

struct PgRestoreResult {
  BaseBackup base;
  uint64_t files = 0, bytes = 0;
};

// Validates the options (the target, validate() above; kInvalidArgument), picks the base
// backup (refusing a target outside every window, naming the windows), restores
// it into options.target with its backup_label and tablespace_map, and writes the recovery
// settings and recovery.signal. Restores in `session` (which holds the shared lock).
// Events: pg_restore:started, pg_restore:progress (phase "base_backup": one is chosen), the files as
// restore operations of their own (restore:*), then pg_restore:completed, :failed or
// :cancelled.
Result<PgRestoreResult> restore_for_recovery(repo::Session& session, const PgRestoreOptions& options,
                                             const EventTarget& events);

}  // namespace haven::pg

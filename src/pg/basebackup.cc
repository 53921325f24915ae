#include "pg/basebackup.h"

#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <memory>

#include <nlohmann/json.hpp>

#include "pg/pgconn.h"
#include "pg/validate.h"

namespace haven::pg {

std::vector<std::string> skipped_paths(const std::string& pgdata) {
  std::string d = pgdata;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  std::vector<std::string> out;
  // Directories whose contents PostgreSQL rebuilds or does not need (they are kept, empty).
  for (const char* dir : {"pg_wal", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial",
                          "pg_snapshots", "pg_stat_tmp", "pg_subtrans"}) {
    out.push_back(d + "/" + dir + "/*");
  }
  for (const char* file : {"postmaster.pid", "postmaster.opts", "backup_label", "backup_label.old",
                           "tablespace_map", "tablespace_map.old", "recovery.signal",
                           "standby.signal", "haven-wal.key"}) {
    out.push_back(d + "/" + file);
  }
  out.push_back("pgsql_tmp*");        // temporary files, anywhere (by name)
  out.push_back("pg_internal.init");  // relation cache init files, rebuilt at start
  return out;
}

namespace {

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  if (::realpath(p.c_str(), buf) == nullptr) return p;
  return buf;
}

}  // namespace

namespace {

Result<BaseBackupResult> run_base_backup(repo::Session& session, const BaseBackupOptions& o,
                                         Reporter& events) {
  if (o.pgdata.empty()) {
    return Error(Error::Code::kInvalidArgument, "no data directory given: pass --pgdata DIR");
  }
  struct stat st;
  if (::stat((o.pgdata + "/PG_VERSION").c_str(), &st) != 0) {
    return Error(Error::Code::kInvalidArgument,
                 o.pgdata + " is not a PostgreSQL data directory (it has no PG_VERSION): pass the "
                 "cluster's data directory with --pgdata");
  }
  // Absolute and without symlinks, as the walker sees the files (the skip patterns are paths).
  const std::string pgdata = real_path(o.pgdata);
  HAVEN_ASSIGN(auto conn, Connection::open(o.conninfo));
  HAVEN_ASSIGN(auto version, conn.value("SHOW server_version_num"));
  if (std::atoi(version.c_str()) < 150000) {
    return Error(Error::Code::kUnsupported,
                 "PostgreSQL " + version + " is too old: haven pg backup needs PostgreSQL 15 or newer");
  }
  HAVEN_ASSIGN(auto data_dir, conn.value("SHOW data_directory"));
  if (::stat(data_dir.c_str(), &st) == 0 && real_path(data_dir) != pgdata) {
    return Error(Error::Code::kInvalidArgument,
                 "the server's data directory is " + data_dir + ", not " + o.pgdata +
                     ": pass --pgdata " + data_dir + " (or connect to the right server)");
  }
  HAVEN_ASSIGN(auto in_recovery, conn.value("SELECT pg_is_in_recovery()"));
  if (in_recovery == "t") {
    return Error(Error::Code::kUnsupported,
                 "the server is a standby (in recovery): back up the primary");
  }
  HAVEN_ASSIGN(auto sysid, conn.value("SELECT system_identifier::text FROM pg_control_system()"));
  HAVEN_ASSIGN(auto seg_size, conn.value("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"));

  // Tablespaces: each location is backed up as one more path; restore maps them back.
  HAVEN_ASSIGN(auto spcs, conn.rows("SELECT oid::text, spcname, pg_tablespace_location(oid) FROM pg_tablespace "
                                    "WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid"));
  nlohmann::json tablespaces = nlohmann::json::array();
  backup::Options bo;
  bo.paths = {pgdata};
  for (const auto& r : spcs) {
    tablespaces.push_back({{"oid", r[0]}, {"name", r[1]}, {"location", r[2]}});
    bo.paths.push_back(r[2]);
  }
  bo.strategy = o.strategy;
  bo.tags = o.tags;
  bo.tags.push_back("pg");
  bo.excludes = skipped_paths(pgdata);
  bo.threads = o.threads;

  BaseBackupResult res;
  const std::string label = "haven " + format_time(now());
  HAVEN_ASSIGN(auto start, conn.rows(
      "SELECT lsn::text, pg_walfile_name(lsn), (SELECT timeline_id::text FROM pg_control_checkpoint()) "
      "FROM pg_backup_start($1, true) AS lsn", {label}));
  res.start_lsn = start[0][0];
  res.start_wal = start[0][1];
  res.timeline = static_cast<uint32_t>(std::stoul(start[0][2]));
  Progress started;
  started.phase = "pg_backup_start";
  started.final = true;
  events.progress(std::move(started));

  bo.before_snapshot = [&](repo::Snapshot& snap) -> Status {
    if (o.row_counts) {
      // What validation after a restore compares with (the connected database's tables).
      HAVEN_ASSIGN(auto counts, count_rows(conn));
      HAVEN_ASSIGN(auto db, conn.value("SELECT current_database()"));
      snap.meta["pg.database"] = db;
      snap.meta["pg.row_counts"] = nlohmann::json(counts).dump();
    }
    // Waits until PostgreSQL has archived the last WAL segment the backup needs.
    HAVEN_ASSIGN(auto stop, conn.rows(
        "SELECT lsn::text, labelfile, spcmapfile, pg_walfile_name(lsn) FROM pg_backup_stop(true) AS r(lsn, labelfile, spcmapfile)"));
    res.stop_lsn = stop[0][0];
    HAVEN_ASSIGN(auto next_xid, conn.value("SELECT pg_snapshot_xmax(pg_current_snapshot())::text"));
    snap.meta["pg.stop_next_xid"] = next_xid;
    snap.meta["pg.wal_segment_size"] = seg_size;
    res.stop_wal = stop[0][3];
    snap.meta["pg.backup_label"] = stop[0][1];
    snap.meta["pg.tablespace_map"] = stop[0][2];
    snap.meta["pg.start_lsn"] = res.start_lsn;
    snap.meta["pg.stop_lsn"] = res.stop_lsn;
    snap.meta["pg.start_wal"] = res.start_wal;
    snap.meta["pg.stop_wal"] = res.stop_wal;
    snap.meta["pg.timeline"] = std::to_string(res.timeline);
    snap.meta["pg.stop_time"] = std::to_string(now());
    snap.meta["pg.system_identifier"] = sysid;
    snap.meta["pg.version"] = version;
    snap.meta["pg.data_directory"] = pgdata;
    snap.meta["pg.tablespaces"] = tablespaces.dump();
    return ok_status();
  };
  // The files go as a backup operation of its own (backup:* events, its own ID).
  HAVEN_ASSIGN(res.summary, backup::run(session, bo, events.sink()));
  res.snapshot = res.summary.snapshot_id;
  return res;
}

}  // namespace

Result<BaseBackupResult> base_backup(repo::Session& session, const BaseBackupOptions& o,
                                     const EventTarget& target) {
  CancelScope scope(session.cancel_token());
  Reporter events(target, OpKind::kPgBackup);
  events.started({{"pgdata", o.pgdata}, {"strategy", o.strategy}});
  return events.finish(run_base_backup(session, o, events), [](const BaseBackupResult& r) {
    return nlohmann::json{{"snapshot_id", repo::hex(r.snapshot)}, {"start_lsn", r.start_lsn},
                          {"stop_lsn", r.stop_lsn},               {"start_wal", r.start_wal},
                          {"stop_wal", r.stop_wal},               {"timeline", r.timeline}};
  });
}

}  // namespace haven::pg

// haven pg … — PostgreSQL: base backups, point-in-time restores, recoverable windows (pg/), and
// the archive key (cmd_wal.cc).
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
#include "pg/basebackup.h"
#include "pg/recovery.h"
#include "pg/retention.h"
#include "retention/policy.h"
#include "retention/prune.h"
#include "pg/server.h"
#include "pg/validate.h"
#include "pg/wal.h"

namespace haven::cli {

void register_pg_archive_key(App& app, CLI::App* pg);

namespace {

struct PgBackupOptions {
  pg::BaseBackupOptions o;
  bool row_counts = false;
  // zstd level 1: base backups are the biggest job, and on PostgreSQL pages level 1 measured
  // 1.7× faster than level 3 and no larger (bench/pg.sh data: 75 vs 83 MB per 200 MB).
  std::string compression = "low";
};

struct PgRestoreCliOptions {
  std::string target, time, lsn, xid, key_file, pg_bin;
  bool latest = false, start = false, validate = false, keep_archiving = false;
  std::string conninfo;
  int port = 0;
  unsigned threads = 0;
  int wait_seconds = 3600;
};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("haven");
}

Result<pg::RecoveryTarget> parse_target(const PgRestoreCliOptions& o) {
  return pg::parse_recovery_target({o.latest, o.time, o.lsn, o.xid});
}

// Row counts a base backup recorded (empty if it recorded none).
std::map<std::string, uint64_t> recorded_rows(const repo::Snapshot& s) {
  std::map<std::string, uint64_t> out;
  auto it = s.meta.find("pg.row_counts");
  if (it == s.meta.end()) return out;
  auto j = nlohmann::json::parse(it->second, nullptr, false);
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      if (v.is_number_unsigned()) out[k] = v.get<uint64_t>();
    }
  }
  return out;
}

// Validates the cluster behind `conninfo` and prints the report; returns the exit code.
Result<int> run_validation(App& app, const std::string& conninfo, const std::map<std::string, uint64_t>& recorded) {
  HAVEN_ASSIGN(auto conn, pg::Connection::open(conninfo));
  HAVEN_ASSIGN(pg::Validation v, pg::validate(conn, recorded));
  if (app.globals().json) {
    nlohmann::json j = {{"ok", v.ok()}, {"rows", v.rows}, {"failures", v.failures}, {"notes", v.notes},
                        {"foreign_keys", v.foreign_keys}, {"indexes_checked", v.indexes_checked},
                        {"tables_compared", v.tables_compared}, {"tables_differing", v.tables_differing}};
    std::cout << j.dump() << "\n";
  } else if (!app.globals().quiet) {
    uint64_t total = 0;
    for (const auto& [t, n] : v.rows) total += n;
    std::cout << "validation: connected; " << v.rows.size() << " table(s), " << total << " row(s); "
              << v.foreign_keys << " foreign key(s) checked; " << v.indexes_checked << " index(es) checked with amcheck";
    if (v.tables_compared) {
      std::cout << "; row counts vs backup time: " << v.tables_compared - v.tables_differing << " of "
                << v.tables_compared << " equal";
    }
    std::cout << "\n";
    for (const auto& n : v.notes) std::cout << "  note: " << n << "\n";
    for (const auto& f : v.failures) std::cerr << "  FAILED: " << f << "\n";
  }
  return v.ok() ? kExitOk : kExitFailure;
}

}  // namespace

void register_pg(App& app) {
  auto* pg = app.root().add_subcommand("pg", "PostgreSQL base backups, WAL archive and point-in-time recovery");
  pg->require_subcommand(1);
  register_pg_archive_key(app, pg);

  // --- pg backup ---
  auto b = std::make_shared<PgBackupOptions>();
  auto* bs = pg->add_subcommand("backup", "take a base backup of a running PostgreSQL cluster");
  bs->add_option("--pgdata", b->o.pgdata, "the cluster's data directory")->required()->envname("PGDATA");
  bs->add_option("--conninfo", b->o.conninfo, "libpq connection string (default: the PG* environment variables)");
  bs->add_option("--strategy", b->o.strategy, "full | incremental (default) | differential")
      ->check(CLI::IsMember({"full", "incremental", "differential"}));
  bs->add_option("--tag", b->o.tags, "tag the snapshot (repeatable)")->allow_extra_args(false);
  bs->add_option("--threads", b->o.threads, "worker threads (default: one per core)");
  bs->add_option("--compression", b->compression, "none | low (default: zstd 1) | medium | high");
  bs->add_flag("--row-counts", b->row_counts,
               "record every table's row count (a scan of each) for 'pg validate --against'");
  app.on(bs, [&app, b]() -> CommandResult {
    b->o.row_counts = b->row_counts;
    HAVEN_ASSIGN(repo::Compression compression, repo::parse_compression(b->compression));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    repo->set_compression(compression);
    HAVEN_TRY(app.lock(*repo, false));
    HAVEN_TRY(app.load_index(*repo));
    CliSink sink(app.globals().json, app.globals().quiet);
    HAVEN_ASSIGN(pg::BaseBackupResult r, pg::base_backup(*repo, b->o, sink));
    sink.clear_line();
    if (!app.globals().json && !app.globals().quiet) {
      const auto& st = r.summary.snapshot.stats;
      auto get = [&](const char* k) { auto it = st.find(k); return it == st.end() ? uint64_t{0} : it->second; };
      std::cout << "base backup " << repo::short_hex(r.snapshot) << " (" << b->o.strategy << "): timeline "
                << r.timeline << ", WAL " << r.start_lsn << " (" << r.start_wal << ") to " << r.stop_lsn << " ("
                << r.stop_wal << "); read " << human_bytes(get("bytes_read")) << " of "
                << human_bytes(get("bytes_total")) << ", added " << human_bytes(get("bytes_added")) << "\n";
      if (r.summary.warnings) {
        std::cout << r.summary.warnings << " file(s) changed or vanished while read (normal for a running "
                     "cluster: WAL replay repairs them)\n";
      }
    }
    HAVEN_TRY(repo->unlock());
    return kExitOk;
  });

  // --- pg windows ---
  auto* ws = pg->add_subcommand("windows", "the recoverable point-in-time windows per timeline");
  app.on(ws, [&app]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_ASSIGN(auto backups, pg::list_base_backups(*repo));
    HAVEN_ASSIGN(auto windows, pg::recoverable_windows(*repo, backups));
    if (app.globals().json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& w : windows) {
        j.push_back({{"timeline", w.timeline}, {"from_time", format_time(w.from_time)},
                     {"from_lsn", pg::format_lsn(w.from_lsn)}, {"to_lsn", pg::format_lsn(w.to_lsn)},
                     {"last_segment", w.last_segment}, {"base_backups", w.base_backups}});
      }
      std::cout << j.dump() << "\n";
      return kExitOk;
    }
    if (windows.empty()) std::cout << pg::describe_windows(windows) << "\n";
    for (const auto& w : windows) {
      std::cout << "timeline " << w.timeline << ": " << format_time(w.from_time) << " (LSN "
                << pg::format_lsn(w.from_lsn) << ") to the end of " << w.last_segment << " (LSN "
                << pg::format_lsn(w.to_lsn) << "), " << w.base_backups << " base backup(s)\n";
    }
    return kExitOk;
  });

  // --- pg validate ---
  struct ValidateOpts {
    std::string conninfo, against;
  };
  auto vo = std::make_shared<ValidateOpts>();
  auto* vs = pg->add_subcommand("validate", "check a (restored) cluster: connect, rows, foreign keys, indexes, checksums");
  vs->add_option("--conninfo", vo->conninfo, "libpq connection string (default: the PG* environment variables)");
  vs->add_option("--against", vo->against, "compare row counts with this base backup (ID prefix or 'latest')");
  app.on(vs, [&app, vo]() -> CommandResult {
    std::map<std::string, uint64_t> recorded;
    if (!vo->against.empty()) {
      HAVEN_ASSIGN(auto repo, app.open_repository());
      HAVEN_ASSIGN(repo::Id id, app.resolve_snapshot(*repo, vo->against));
      HAVEN_ASSIGN(repo::Snapshot snap, repo->load_snapshot(id));
      recorded = recorded_rows(snap);
    }
    return run_validation(app, vo->conninfo, recorded);
  });

  // --- pg retain ---
  struct RetainOpts {
    std::string window;
    bool dry_run = false, prune = false;
  };
  auto ro = std::make_shared<RetainOpts>();
  auto* rt = pg->add_subcommand("retain", "keep the base backups and WAL a point-in-time window needs; remove older ones");
  rt->add_option("--window", ro->window, "how far back recovery must reach: 30d, 2w, 72h…")->required();
  rt->add_flag("--dry-run", ro->dry_run, "show what would go, change nothing");
  rt->add_flag("--prune", ro->prune, "prune afterwards (frees the forgotten base backups' data)");
  app.on(rt, [&app, ro]() -> CommandResult {
    HAVEN_ASSIGN(TimeNs window, retention::parse_duration(ro->window));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_TRY(app.lock(*repo, !ro->dry_run));
    HAVEN_ASSIGN(pg::RetainResult r, pg::retain(*repo, window, now(), ro->dry_run));
    const bool quiet = app.globals().quiet || app.globals().json;
    if (!quiet) {
      for (const auto& b : r.forgotten) {
        std::cout << (ro->dry_run ? "would forget" : "forgot") << " base backup " << repo::short_hex(b.id)
                  << " (stopped " << format_time(b.stop_time) << ")\n";
      }
      std::cout << "kept " << r.kept.size() << " base backup(s)";
      if (!r.oldest_needed_segment.empty()) std::cout << "; oldest WAL needed: " << r.oldest_needed_segment;
      std::cout << "; " << (ro->dry_run ? "would remove " : "removed ") << r.wal_removed.size()
                << " WAL file(s), " << human_bytes(r.wal_bytes_removed) << "\n";
    }
    if (app.globals().json) {
      nlohmann::json j = {{"kept", r.kept.size()}, {"forgotten", r.forgotten.size()},
                          {"wal_removed", r.wal_removed.size()}, {"wal_bytes_removed", r.wal_bytes_removed},
                          {"oldest_needed_segment", r.oldest_needed_segment}, {"dry_run", ro->dry_run}};
      std::cout << j.dump() << "\n";
    }
    if (ro->prune && !ro->dry_run && !r.forgotten.empty()) {
      CliSink sink(app.globals().json, app.globals().quiet);
      HAVEN_ASSIGN(retention::PruneStats ps, retention::prune(*repo, retention::PruneOptions{}, sink));
      sink.clear_line();
      if (!quiet) std::cout << "prune: deleted " << human_bytes(ps.bytes_deleted) << "\n";
    }
    HAVEN_TRY(repo->unlock());
    return kExitOk;
  });

  // --- pg restore ---
  auto r = std::make_shared<PgRestoreCliOptions>();
  auto* rs = pg->add_subcommand("restore", "restore a base backup and recover to a point in time");
  rs->add_option("--target", r->target, "the new data directory (absent or empty)")->required();
  rs->add_option("--time", r->time, "recover to this time (RFC 3339, or local 'YYYY-MM-DD HH:MM:SS')");
  rs->add_option("--lsn", r->lsn, "recover to this WAL position");
  rs->add_option("--xid", r->xid, "recover to this transaction");
  rs->add_flag("--latest", r->latest, "recover to the end of the archived WAL");
  rs->add_flag("--start", r->start, "start the server and wait until recovery reaches the target");
  rs->add_option("--port", r->port, "port for the restored server (written to postgresql.auto.conf)")
      ->check(CLI::Range(1, 65535));
  rs->add_option("--wal-key-file", r->key_file,
                 "WAL key file for restore_command (default: write <target>/haven-wal.key)");
  rs->add_option("--pg-bin", r->pg_bin, "PostgreSQL's bin directory (default: from PG_VERSION)");
  rs->add_option("--wait", r->wait_seconds, "seconds to wait for recovery with --start (default 3600)");
  rs->add_flag("--keep-archiving", r->keep_archiving,
               "leave archive_mode as it was (default: off in the restored cluster, so a copy never "
               "writes its timeline into the original's archive)");
  rs->add_flag("--validate", r->validate, "with --start: validate the recovered cluster (see 'pg validate')");
  rs->add_option("--conninfo", r->conninfo, "with --validate: how to connect to the restored server");
  rs->add_option("--threads", r->threads, "reader threads (default: one per core, at least 4)");
  app.on(rs, [&app, r]() -> CommandResult {
    HAVEN_ASSIGN(pg::RecoveryTarget target, parse_target(*r));
    if (r->validate && !r->start) {
      return Error(Error::Code::kInvalidArgument, "--validate needs --start (the server must run to be validated)");
    }
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_TRY(app.lock(*repo, false));
    HAVEN_TRY(app.load_index(*repo));
    std::string target_dir = r->target;
    while (target_dir.size() > 1 && target_dir.back() == '/') target_dir.pop_back();
    std::string key_file = r->key_file;
    if (key_file.empty()) key_file = target_dir + "/haven-wal.key";
    if (key_file[0] != '/') {
      char cwd[PATH_MAX];
      if (::getcwd(cwd, sizeof cwd) != nullptr) key_file = std::string(cwd) + "/" + key_file;
    }
    pg::PgRestoreOptions o;
    o.target = target_dir;
    o.recovery = target;
    o.port = r->port;
    o.keep_archiving = r->keep_archiving;
    o.threads = r->threads;
    // PostgreSQL runs restore_command in the data directory: a relative local path would point
    // elsewhere there.
    std::string location = app.globals().repo;
    const bool remote = location.rfind("s3:", 0) == 0 || location.rfind("azure:", 0) == 0;
    if (!remote) {
      std::string path = location.rfind("local:", 0) == 0 ? location.substr(6) : location;
      char real[PATH_MAX];
      if (::realpath(path.c_str(), real) != nullptr) location = real;
    }
    o.restore_command = shell_quote(self_exe()) + " -r " + shell_quote(location) +
                        " wal-fetch --wal-key-file " + shell_quote(key_file) + " %f %p";
    CliSink sink(app.globals().json, app.globals().quiet);
    HAVEN_ASSIGN(pg::PgRestoreResult res, pg::restore_for_recovery(*repo, o, sink));
    sink.clear_line();
    if (r->key_file.empty()) {
      HAVEN_ASSIGN(std::string fp, pg::repository_fingerprint(repo->backend()));
      HAVEN_ASSIGN(pg::WalKey wal_key, pg::derive_wal_key(repo->master_key(), fp));
      HAVEN_TRY(pg::write_wal_key_file(key_file, wal_key, true));
      struct stat st;
      if (::geteuid() == 0 && ::stat(target_dir.c_str(), &st) == 0) (void)::chown(key_file.c_str(), st.st_uid, st.st_gid);
    }
    HAVEN_TRY(repo->unlock());
    if (!app.globals().quiet) {
      std::cout << "restored base backup " << repo::short_hex(res.base.id) << " (stopped "
                << format_time(res.base.stop_time) << ", LSN " << pg::format_lsn(res.base.stop_lsn) << ") to "
                << target_dir << ": " << res.files << " files, " << human_bytes(res.bytes)
                << "; recovery target: " << target.text << "\n";
    }
    if (!r->start) {
      if (!app.globals().quiet) std::cout << "start the server to recover (or pass --start)\n";
      return kExitOk;
    }
    HAVEN_ASSIGN(std::string bin, pg::find_pg_bin(target_dir, r->pg_bin));
    HAVEN_TRY(pg::start_and_wait_for_recovery(target_dir, bin, std::chrono::seconds(r->wait_seconds)));
    if (!app.globals().quiet) std::cout << "recovery finished: the server is running and accepts writes\n";
    if (r->validate) return run_validation(app, r->conninfo, recorded_rows(res.base.snapshot));
    return kExitOk;
  });
}

}  // namespace haven::cli

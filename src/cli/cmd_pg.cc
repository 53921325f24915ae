// haven pg … — PostgreSQL: base backups, point-in-time restores, recoverable windows,
// validation and retention (ops/pg.h), and the archive key (cmd_wal.cc).
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
#include "ops/pg.h"

namespace haven::cli {

void register_pg_archive_key(App& app, CLI::App* pg);

namespace {

// A path as the user typed it, relative to the working directory, made absolute.
std::string absolute_path(const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  char cwd[PATH_MAX];
  if (::getcwd(cwd, sizeof cwd) == nullptr) return p;
  return std::string(cwd) + "/" + p;
}

// The repository location for restore_command, which PostgreSQL runs in the data directory:
// a local path resolved to an absolute one.
std::string absolute_location(const std::string& location) {
  if (location.rfind("s3:", 0) == 0 || location.rfind("azure:", 0) == 0) return location;
  std::string path = location.rfind("local:", 0) == 0 ? location.substr(6) : location;
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) != nullptr) return real;
  return absolute_path(path);
}

// Prints a validation report; returns the exit code.
int print_validation(App& app, const pg::Validation& v) {
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
  auto b = std::make_shared<ops::PgBackupRequest>();
  auto* bs = pg->add_subcommand("backup", "take a base backup of a running PostgreSQL cluster");
  bs->add_option("--pgdata", b->pgdata, "the cluster's data directory")->required()->envname("PGDATA");
  bs->add_option("--conninfo", b->conninfo, "libpq connection string (default: the PG* environment variables)");
  bs->add_option("--strategy", b->strategy, "full | incremental (default) | differential")
      ->check(CLI::IsMember({"full", "incremental", "differential"}));
  bs->add_option("--tag", b->tags, "tag the snapshot (repeatable)")->allow_extra_args(false);
  bs->add_option("--threads", b->threads, "worker threads (default: one per core)");
  bs->add_option("--compression", b->compression, "none | low (default: zstd 1) | medium | high");
  bs->add_flag("--row-counts", b->row_counts,
               "record every table's row count (a scan of each) for 'pg validate --against'");
  app.on(bs, [&app, b]() -> CommandResult {
    HAVEN_TRY(ops::validate(*b));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    HAVEN_ASSIGN(pg::BaseBackupResult r, ops::pg_backup(*repo, *b, sink));
    sink.clear_line();
    if (!app.globals().json && !app.globals().quiet) {
      const auto& st = r.summary.snapshot.stats;
      auto get = [&](const char* k) { auto it = st.find(k); return it == st.end() ? uint64_t{0} : it->second; };
      std::cout << "base backup " << repo::short_hex(r.snapshot) << " (" << b->strategy << "): timeline "
                << r.timeline << ", WAL " << r.start_lsn << " (" << r.start_wal << ") to " << r.stop_lsn << " ("
                << r.stop_wal << "); read " << human_bytes(get("bytes_read")) << " of "
                << human_bytes(get("bytes_total")) << ", added " << human_bytes(get("bytes_added")) << "\n";
      if (r.summary.warnings) {
        std::cout << r.summary.warnings << " file(s) changed or vanished while read (normal for a running "
                     "cluster: WAL replay repairs them)\n";
      }
    }
    return kExitOk;
  });

  // --- pg windows ---
  auto* ws = pg->add_subcommand("windows", "the recoverable point-in-time windows per timeline");
  app.on(ws, [&app]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    HAVEN_ASSIGN(ops::PgWindowsResult res, ops::pg_windows(*repo, ops::PgWindowsRequest{}, sink));
    const auto& windows = res.windows;
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
    if (windows.empty()) std::cout << res.description << "\n";
    for (const auto& w : windows) {
      std::cout << "timeline " << w.timeline << ": " << format_time(w.from_time) << " (LSN "
                << pg::format_lsn(w.from_lsn) << ") to the end of " << w.last_segment << " (LSN "
                << pg::format_lsn(w.to_lsn) << "), " << w.base_backups << " base backup(s)\n";
    }
    return kExitOk;
  });

  // --- pg validate ---
  auto vo = std::make_shared<ops::PgValidateRequest>();
  auto* vs = pg->add_subcommand("validate", "check a (restored) cluster: connect, rows, foreign keys, indexes, checksums");
  vs->add_option("--conninfo", vo->conninfo, "libpq connection string (default: the PG* environment variables)");
  vs->add_option("--against", vo->against, "compare row counts with this base backup (ID prefix or 'latest')");
  app.on(vs, [&app, vo]() -> CommandResult {
    HAVEN_TRY(ops::validate(*vo));
    std::unique_ptr<repo::Repository> repo;
    if (!vo->against.empty()) {
      HAVEN_ASSIGN(repo, app.open_repository());
    }
    CommandSink sink(app.globals());
    HAVEN_ASSIGN(ops::PgValidateResult res, ops::pg_validate(repo.get(), *vo, sink));
    return print_validation(app, res.validation);
  });

  // --- pg retain ---
  auto ro = std::make_shared<ops::PgRetainRequest>();
  auto* rt = pg->add_subcommand("retain", "keep the base backups and WAL a point-in-time window needs; remove older ones");
  rt->add_option("--window", ro->window, "how far back recovery must reach: 30d, 2w, 72h…")->required();
  rt->add_flag("--dry-run", ro->dry_run, "show what would go, change nothing");
  rt->add_flag("--prune", ro->prune, "prune afterwards (frees the forgotten base backups' data)");
  app.on(rt, [&app, ro]() -> CommandResult {
    HAVEN_TRY(ops::validate(*ro));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    HAVEN_ASSIGN(ops::PgRetainResult res, ops::pg_retain(*repo, *ro, sink));
    sink.clear_line();
    const pg::RetainResult& r = res.retain;
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
    if (res.prune && !quiet) std::cout << "prune: deleted " << human_bytes(res.prune->bytes_deleted) << "\n";
    return kExitOk;
  });

  // --- pg restore ---
  auto r = std::make_shared<ops::PgRestoreRequest>();
  auto* rs = pg->add_subcommand("restore", "restore a base backup and recover to a point in time");
  rs->add_option("--target", r->target, "the new data directory (absent or empty)")->required();
  rs->add_option("--time", r->time, "recover to this time (RFC 3339, or local 'YYYY-MM-DD HH:MM:SS')");
  rs->add_option("--lsn", r->lsn, "recover to this WAL position");
  rs->add_option("--xid", r->xid, "recover to this transaction");
  rs->add_flag("--latest", r->latest, "recover to the end of the archived WAL");
  rs->add_flag("--start", r->start, "start the server and wait until recovery reaches the target");
  rs->add_option("--port", r->port, "port for the restored server (written to postgresql.auto.conf)")
      ->check(CLI::Range(1, 65535));
  rs->add_option("--wal-key-file", r->wal_key_file,
                 "WAL key file for restore_command (default: write <target>/haven-wal.key)");
  rs->add_option("--pg-bin", r->pg_bin, "PostgreSQL's bin directory (default: from PG_VERSION)");
  rs->add_option("--wait", r->wait_seconds, "seconds to wait for recovery with --start (default 3600)");
  rs->add_flag("--keep-archiving", r->keep_archiving,
               "leave archive_mode as it was (default: off in the restored cluster, so a copy never "
               "writes its timeline into the original's archive)");
  rs->add_flag("--validate", r->validate_cluster, "with --start: validate the recovered cluster (see 'pg validate')");
  rs->add_option("--conninfo", r->conninfo, "with --validate: how to connect to the restored server");
  rs->add_option("--threads", r->threads, "reader threads (default: one per core, at least 4)");
  app.on(rs, [&app, r]() -> CommandResult {
    // Paths the user typed are relative to this directory; PostgreSQL runs restore_command in
    // the data directory, so everything it names becomes absolute here.
    ops::PgRestoreRequest req = *r;
    req.target = absolute_path(req.target);
    req.wal_key_file = absolute_path(req.wal_key_file);
    req.repository = absolute_location(app.globals().repo);
    req.wal_fetch_program = self_exe();
    HAVEN_TRY(ops::validate(req));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    HAVEN_ASSIGN(ops::PgRestoreResult res, ops::pg_restore(*repo, req, sink));
    sink.clear_line();
    repo.reset();
    if (!app.globals().quiet) {
      const pg::BaseBackup& base = res.restored.base;
      std::cout << "restored base backup " << repo::short_hex(base.id) << " (stopped "
                << format_time(base.stop_time) << ", LSN " << pg::format_lsn(base.stop_lsn) << ") to "
                << res.target << ": " << res.restored.files << " files, " << human_bytes(res.restored.bytes)
                << "; recovery target: " << res.recovery.text << "\n";
    }
    if (!req.start) {
      if (!app.globals().quiet) std::cout << "start the server to recover (or pass --start)\n";
      return kExitOk;
    }
    std::cout << std::flush;
    HAVEN_ASSIGN(ops::PgStartResult started, ops::pg_start(req, res));
    if (!app.globals().quiet) std::cout << "recovery finished: the server is running and accepts writes\n";
    if (started.validation) return print_validation(app, *started.validation);
    return kExitOk;
  });
}

}  // namespace haven::cli

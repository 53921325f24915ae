#include "ops/pg.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include <nlohmann/json.hpp>

#include "ops/lock.h"
#include "ops/ops.h"
#include "pg/pgconn.h"
#include "pg/server.h"
#include "pg/wal.h"
#include "pg/wal_spool.h"
#include "util/subprocess.h"
#include "retention/policy.h"

namespace haven::ops {

namespace {

// For a POSIX shell: single quotes, with ' written as '\''.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string strip_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

bool absolute(const std::string& p) { return !p.empty() && p[0] == '/'; }

Result<pg::Validation> validate_cluster(const std::string& conninfo,
                                        const std::map<std::string, uint64_t>& recorded) {
  HAVEN_ASSIGN(auto conn, pg::Connection::open(conninfo));
  return pg::validate(conn, recorded);
}

}  // namespace

// --- pg backup ---

Status validate(const PgBackupRequest& r) {
  if (r.pgdata.empty()) return invalid("no data directory given: pass --pgdata DIR");
  if (r.strategy != "full" && r.strategy != "incremental" && r.strategy != "differential") {
    return invalid("unknown --strategy '" + r.strategy + "': use full, incremental or differential");
  }
  HAVEN_TRY(repo::parse_compression(r.compression));
  return ok_status();
}

Result<pg::BaseBackupResult> pg_backup(repo::Repository& repo, const PgBackupRequest& request,
                                       const EventTarget& events) {
  OperationScope scope(repo);
  HAVEN_TRY(validate(request));
  HAVEN_ASSIGN(repo::Compression compression, repo::parse_compression(request.compression));
  pg::BaseBackupOptions o;
  o.conninfo = request.conninfo;
  o.pgdata = request.pgdata;
  o.strategy = request.strategy;
  o.tags = request.tags;
  o.threads = request.threads;
  o.row_counts = request.row_counts;
  HAVEN_ASSIGN(HeldLock held, lock(repo, LockMode::kShared, events, scope.token()));
  CancelScope session_scope(held.session().cancel_token());  // a lost lock stops this one
  held.session().set_compression(compression);  // this backup's packs only
  HAVEN_TRY(load_index(repo, events));
  HAVEN_ASSIGN(pg::BaseBackupResult r, pg::base_backup(held.session(), o, events));
  HAVEN_TRY(held.release());
  return r;
}

// --- pg windows ---

Result<PgWindowsResult> pg_windows(repo::Repository& repo, const PgWindowsRequest&, const EventTarget&) {
  OperationScope scope(repo);
  PgWindowsResult out;
  HAVEN_ASSIGN(out.base_backups, pg::list_base_backups(repo));
  HAVEN_ASSIGN(out.windows, pg::recoverable_windows(repo, out.base_backups));
  out.description = pg::describe_windows(out.windows);
  return out;
}

// --- pg validate ---

std::map<std::string, uint64_t> recorded_row_counts(const repo::Snapshot& s) {
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

Status validate(const PgValidateRequest&) { return ok_status(); }

Result<PgValidateResult> pg_validate(repo::Repository* repo, const PgValidateRequest& request,
                                     const EventTarget& events) {
  HAVEN_TRY(validate(request));
  PgValidateResult out;
  std::map<std::string, uint64_t> recorded;
  if (!request.against.empty()) {
    if (repo == nullptr) {
      return invalid("--against " + request.against +
                     ": comparing with a base backup needs its repository (give --repo)");
    }
    OperationScope scope(*repo);
    HAVEN_ASSIGN(repo::Id id, resolve_snapshot(*repo, request.against, events));
    HAVEN_ASSIGN(repo::Snapshot snap, repo->load_snapshot(id));
    out.against = id;
    recorded = recorded_row_counts(snap);
  }
  HAVEN_ASSIGN(out.validation, validate_cluster(request.conninfo, recorded));
  return out;
}

// --- pg retain ---

Status validate(const PgRetainRequest& r) {
  if (r.window.empty()) return invalid("--window: give how far back recovery must reach, e.g. 30d");
  auto w = retention::parse_duration(r.window);
  if (!w.ok()) return w.error().with_context("--window");
  return ok_status();
}

Result<PgRetainResult> pg_retain(repo::Repository& repo, const PgRetainRequest& request,
                                 const EventTarget& events) {
  OperationScope scope(repo);
  HAVEN_TRY(validate(request));
  HAVEN_ASSIGN(TimeNs window, retention::parse_duration(request.window));
  HAVEN_ASSIGN(HeldLock held,
               lock(repo, request.dry_run ? LockMode::kShared : LockMode::kExclusive, events,
                    scope.token()));
  PgRetainResult out;
  HAVEN_ASSIGN(out.retain, pg::retain(held.session(), window, request.as_of.value_or(now()), request.dry_run));
  if (request.prune && !request.dry_run && !out.retain.forgotten.empty()) {
    HAVEN_ASSIGN(out.prune, retention::prune(held.session(), retention::PruneOptions{}, events));
  }
  HAVEN_TRY(held.release());
  return out;
}

// --- pg restore ---

Status validate(const PgRestoreRequest& r) {
  HAVEN_TRY(pg::parse_recovery_target({r.latest, r.time, r.lsn, r.xid}));
  if (r.validate_cluster && !r.start) {
    return invalid("--validate needs --start (the server must run to be validated)");
  }
  if (r.target.empty()) return invalid("no target given: use --target DIR");
  if (!absolute(r.target)) {
    return invalid("--target " + r.target + ": give the data directory as an absolute path");
  }
  if (r.port < 0 || r.port > 65535) {
    return invalid("--port " + std::to_string(r.port) + ": give a port from 1 to 65535");
  }
  if (r.start && r.wait_seconds <= 0) {
    return invalid("--wait " + std::to_string(r.wait_seconds) +
                   ": give the seconds to wait for recovery, more than 0");
  }
  if (!absolute(r.wal_fetch_program)) {
    return invalid("the program for restore_command ('" + r.wal_fetch_program +
                   "') must be an absolute path: PostgreSQL runs it in the data directory");
  }
  if (!r.wal_key_file.empty() && !absolute(r.wal_key_file)) {
    return invalid("--wal-key-file " + r.wal_key_file +
                   ": give an absolute path (PostgreSQL runs restore_command in the data directory)");
  }
  const std::string& loc = r.repository;
  const bool remote = loc.rfind("s3:", 0) == 0 || loc.rfind("azure:", 0) == 0;
  const std::string path = loc.rfind("local:", 0) == 0 ? loc.substr(6) : loc;
  if (!remote && !absolute(path)) {
    return invalid("repository '" + loc +
                   "': restore_command needs it as an absolute path (PostgreSQL runs it in the "
                   "data directory)");
  }
  return ok_status();
}

std::string prefetch_spool(const std::string& data_directory) {
  return data_directory + "/pg_wal/haven-prefetch";
}

Result<PgRestoreResult> pg_restore(repo::Repository& repo, const PgRestoreRequest& request,
                                   const EventTarget& events) {
  OperationScope scope(repo);
  HAVEN_TRY(validate(request));
  PgRestoreResult out;
  HAVEN_ASSIGN(out.recovery, pg::parse_recovery_target({request.latest, request.time, request.lsn,
                                                        request.xid}));
  out.target = strip_trailing_slashes(request.target);
  out.wal_key_file = request.wal_key_file.empty() ? out.target + "/haven-wal.key" : request.wal_key_file;
  // Segments are fetched ahead into a spool in pg_wal, which base backups leave out.
  out.restore_command = shell_quote(request.wal_fetch_program) + " -r " +
                        shell_quote(request.repository) + " wal-fetch --wal-key-file " +
                        shell_quote(out.wal_key_file) + " --spool " +
                        shell_quote(prefetch_spool(out.target)) + " --prefetch " +
                        std::to_string(kPrefetchSegments) + " %f %p";
  HAVEN_ASSIGN(HeldLock held, lock(repo, LockMode::kShared, events, scope.token(), request.lock_wait));
  CancelScope session_scope(held.session().cancel_token());  // a lost lock stops this one
  HAVEN_TRY(load_index(repo, events));
  pg::PgRestoreOptions o;
  o.target = out.target;
  o.recovery = out.recovery;
  o.port = request.port;
  o.keep_archiving = request.keep_archiving;
  o.threads = request.threads;
  o.restore_command = out.restore_command;
  HAVEN_ASSIGN(out.restored, pg::restore_for_recovery(held.session(), o, events));
  if (request.wal_key_file.empty()) {
    // The restored server's user reads it: it gets the data directory's owner.
    HAVEN_ASSIGN(pg::WalKey wal_key, repo.wal_key());
    HAVEN_TRY(pg::write_wal_key_file(out.wal_key_file, wal_key, true));
    struct stat st;
    if (::geteuid() == 0 && ::stat(out.target.c_str(), &st) == 0) {
      (void)::chown(out.wal_key_file.c_str(), st.st_uid, st.st_gid);
    }
    out.wrote_wal_key_file = true;
  }
  HAVEN_TRY(held.release());
  return out;
}

namespace {

// 'haven wal-prefetch' for the first segments recovery asks for, as the data directory's owner
// (it creates the spool, whose files the server renames into pg_wal); stopped and reaped when
// the returned process goes, if it has not ended by then. nullopt if it could not start: each
// segment is then fetched when it is asked for.
std::optional<Subprocess> start_prefetch(const PgRestoreRequest& request, const PgRestoreResult& restored,
                                         std::vector<std::string>& names) {
  names = pg::first_recovery_segments(restored.restored.base, restored.recovery, kPrefetchSegments);
  struct stat st;
  if (names.empty() || ::stat(restored.target.c_str(), &st) != 0) return std::nullopt;
  SpawnOptions so;
  so.argv = {request.wal_fetch_program, "-q", "-r", request.repository, "wal-prefetch",
             "--wal-key-file", restored.wal_key_file, "--spool", prefetch_spool(restored.target)};
  so.argv.insert(so.argv.end(), names.begin(), names.end());
  so.uid = st.st_uid;
  so.gid = st.st_gid;
  so.stderr_fd = -1;
  so.own_process_group = true;
  auto child = Subprocess::spawn(so);
  if (!child.ok()) {
    names.clear();
    return std::nullopt;
  }
  return std::move(*child);
}

}  // namespace

Result<PgStartResult> pg_start(const PgRestoreRequest& request, const PgRestoreResult& restored) {
  HAVEN_TRY(validate(request));
  if (!request.start) return invalid("pg_start: the request does not ask to --start the server");
  PgStartResult out;
  HAVEN_ASSIGN(out.pg_bin, pg::find_pg_bin(restored.target, request.pg_bin));
  std::optional<Subprocess> prefetch = start_prefetch(request, restored, out.fetched_ahead);
  HAVEN_TRY(pg::start_and_wait_for_recovery(restored.target, out.pg_bin,
                                            std::chrono::seconds(request.wait_seconds)));
  // It ended long ago unless the archive is slow; spool.clear() below waits for it either way.
  if (prefetch) (void)prefetch->wait(current_cancel());
  // Recovery is over: segments fetched ahead and never asked for go.
  pg::WalSpool spool(prefetch_spool(restored.target));
  HAVEN_TRY(spool.clear());
  if (request.validate_cluster) {
    HAVEN_ASSIGN(out.validation,
                 validate_cluster(request.conninfo,
                                  recorded_row_counts(restored.restored.base.snapshot)));
  }
  return out;
}

}  // namespace haven::ops

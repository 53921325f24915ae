#include "pg/basebackup.h"

#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <cstdlib>
#include <memory>

#include <nlohmann/json.hpp>

#include "pg/pgconn.h"
#include "pg/validate.h"
#include "pg/wal_pages.h"
#include "repo/format.h"
#include "repo/wal_object.h"

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

bool page_changed_since(ByteView page, uint64_t since) {
  // PageHeaderData: pd_lsn (two uint32: high, low), pd_checksum, pd_flags, pd_lower, pd_upper,
  // pd_special, pd_pagesize_version (uint16 each), pd_prune_xid; host byte order.
  constexpr size_t kHeader = 24;
  if (page.size() < kHeader) return true;
  uint32_t hi, lo;
  uint16_t lower, upper, special, size_version;
  std::memcpy(&hi, page.data(), 4);
  std::memcpy(&lo, page.data() + 4, 4);
  std::memcpy(&lower, page.data() + 12, 2);
  std::memcpy(&upper, page.data() + 14, 2);
  std::memcpy(&special, page.data() + 16, 2);
  std::memcpy(&size_version, page.data() + 18, 2);
  if (upper == 0) return true;  // a new page (PageIsNew): never trust its LSN
  if (lower < kHeader || lower > upper || upper > special || special > page.size() ||
      (size_version & 0xFF00) != page.size()) {
    return true;  // not a page header: cannot tell, so store it
  }
  return ((uint64_t{hi} << 32) | lo) >= since;
}

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Splits off the last component: "a/b/c" -> ("a/b", "c").
std::pair<std::string_view, std::string_view> split_last(std::string_view p) {
  size_t slash = p.rfind('/');
  if (slash == std::string_view::npos) return {std::string_view(), p};
  return {p.substr(0, slash), p.substr(slash + 1)};
}

std::string_view without_trailing_slashes(std::string_view p) {
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  return p;
}

}  // namespace

bool is_relation_file(const std::string& path, const std::string& pgdata,
                      const std::vector<std::string>& tablespaces) {
  auto [dir, name] = split_last(path);
  size_t dot = name.find('.');
  if (!all_digits(name.substr(0, dot)) || (dot != std::string_view::npos && !all_digits(name.substr(dot + 1)))) {
    return false;
  }
  const std::string_view data = without_trailing_slashes(pgdata);
  auto [parent, db] = split_last(dir);
  if (parent == data && db == "global") return true;
  if (!all_digits(db)) return false;
  auto [grand, version] = split_last(parent);
  if (grand == data && version == "base") return true;
  if (version.rfind("PG_", 0) != 0) return false;
  for (const auto& t : tablespaces) {
    if (grand == without_trailing_slashes(t)) return true;
  }
  return false;
}

Status wait_until_archived(Connection& conn, const std::string& pgdata, const std::string& segment,
                           const CancelToken& token, Reporter& events) {
  const auto begin = std::chrono::steady_clock::now();
  auto warned = begin;
  const std::string done = pgdata + "/pg_wal/archive_status/" + segment + ".done";
  while (true) {
    struct stat st;
    if (::stat(done.c_str(), &st) == 0) return ok_status();
    HAVEN_ASSIGN(auto last, conn.value("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"));
    if (last >= segment) return ok_status();
    const auto now = std::chrono::steady_clock::now();
    if (now - warned >= std::chrono::minutes(1)) {
      warned = now;
      events.warning("", "still waiting for WAL segment " + segment + " to be archived (" +
                             std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - begin).count()) +
                             " s): check that archive_command succeeds (the server log says why not)");
    }
    if (token.sleep_for(std::chrono::milliseconds(10))) return token.check();
  }
}

namespace {

// The relation and 1 GB segment number of a file is_relation_file accepts.
std::optional<std::pair<RelationId, uint32_t>> relation_file_id(
    const std::string& path, std::string_view data,
    const std::vector<std::pair<uint32_t, std::string>>& tablespaces) {
  auto [dir, name] = split_last(path);
  const size_t dot = name.find('.');
  const uint32_t rel = static_cast<uint32_t>(std::strtoul(std::string(name.substr(0, dot)).c_str(), nullptr, 10));
  const uint32_t seg = dot == std::string_view::npos
                           ? 0
                           : static_cast<uint32_t>(std::strtoul(std::string(name.substr(dot + 1)).c_str(), nullptr, 10));
  auto [parent, db] = split_last(dir);
  if (parent == data && db == "global") return std::make_pair(RelationId{1664, 0, rel}, seg);
  const uint32_t dboid = static_cast<uint32_t>(std::strtoul(std::string(db).c_str(), nullptr, 10));
  auto [grand, version] = split_last(parent);
  if (grand == data && version == "base") return std::make_pair(RelationId{1663, dboid, rel}, seg);
  for (const auto& [oid, location] : tablespaces) {
    if (grand == without_trailing_slashes(location)) return std::make_pair(RelationId{oid, dboid, rel}, seg);
  }
  return std::nullopt;
}

// One archived WAL file's bytes, opened with the key generation it was sealed with.
Result<Bytes> fetch_archived(repo::Repository& repo, const std::string& name) {
  HAVEN_ASSIGN(Bytes object, repo.backend().load({storage::ObjectType::kWal, name}));
  HAVEN_ASSIGN(repo::Header h, repo::parse_header(object, "WAL file " + name));
  HAVEN_ASSIGN(WalKey key, repo.wal_key(h.key_generation));
  return repo::open_wal_object(key, name, object);
}

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
  HAVEN_ASSIGN(auto block_size, conn.value("SHOW block_size"));
  HAVEN_ASSIGN(auto archive_mode, conn.value("SHOW archive_mode"));
  const bool archiving = archive_mode != "off";
  const size_t page_size = std::strtoul(block_size.c_str(), nullptr, 10);
  // Blocks per relation segment file (1 GB by default).
  HAVEN_ASSIGN(auto relseg, conn.value("SELECT setting FROM pg_settings WHERE name = 'segment_size'"));
  const uint64_t relseg_blocks = std::strtoull(relseg.c_str(), nullptr, 10);

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
  std::vector<std::string> spc_locations(bo.paths.begin() + 1, bo.paths.end());

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

  // Changed pages, against a parent that is a base backup of this cluster on this timeline
  // (whose start is then in this one's past): pages at or after its start LSN.
  const uint64_t start_lsn = parse_lsn(res.start_lsn).value_or(0);
  std::string page_changes;  // how changed pages were found: "wal", "lsn (why not the WAL)"
  std::vector<std::pair<uint32_t, std::string>> spcs_by_oid;
  for (const auto& r : spcs) spcs_by_oid.emplace_back(static_cast<uint32_t>(std::stoul(r[0])), r[2]);
  bo.page_delta = [&, spc_locations](const repo::Snapshot& parent) -> std::optional<backup::PageDelta> {
    auto meta = [&](const char* key) {
      auto it = parent.meta.find(key);
      return it == parent.meta.end() ? std::string() : it->second;
    };
    auto since = parse_lsn(meta("pg.start_lsn"));
    if (!since || *since > start_lsn || meta("pg.system_identifier") != sysid ||
        meta("pg.timeline") != std::to_string(res.timeline) || meta("pg.data_directory") != pgdata ||
        meta("pg.block_size") != block_size || page_size == 0) {
      return std::nullopt;
    }
    backup::PageDelta d;
    d.page_size = page_size;
    d.applies = [pgdata, spc_locations](const std::string& path) {
      return is_relation_file(path, pgdata, spc_locations);
    };
    d.changed = [s = *since](ByteView page) { return page_changed_since(page, s); };
    // Which pages changed, from the WAL between the parent's start and this backup's (this
    // backup's start segment is switched out and archived first, as pg_probackup's PAGE mode
    // does): then only those pages are read. Any doubt about the WAL (a segment missing, not
    // this timeline, a record that does not check out) reads every page of the changed files.
    page_changes = "lsn";
    if (!archiving || relseg_blocks == 0) return d;
    // WAL positions since the parent beyond twice the data (the padding of switched segments
    // counts too, but costs little to skip): reading the relations is the cheaper way.
    auto data_bytes = conn.value("SELECT sum(pg_database_size(oid))::text FROM pg_database");
    if (!data_bytes.ok() || start_lsn - *since > 2 * std::strtoull(data_bytes->c_str(), nullptr, 10)) {
      page_changes = "lsn (more WAL since the parent than twice the data)";
      return d;
    }
    auto changes = [&]() -> Result<WalChanges> {
      HAVEN_TRY(conn.value("SELECT pg_switch_wal()::text"));
      HAVEN_TRY(wait_until_archived(conn, pgdata, res.start_wal, session.cancel_token(), events));
      return wal_changed_blocks(*since, start_lsn, res.timeline, std::stoull(seg_size),
                                [&](const std::string& name) { return fetch_archived(session.repo(), name); });
    }();
    if (!changes.ok()) {
      page_changes = "lsn (" + changes.error().message() + ")";
      return d;
    }
    page_changes = "wal";
    auto wal = std::make_shared<WalChanges>(std::move(*changes));
    d.listed = [wal, pgdata, spcs_by_oid, relseg = relseg_blocks](const std::string& path)
        -> std::optional<std::vector<uint32_t>> {
      auto id = relation_file_id(path, pgdata, spcs_by_oid);
      if (!id || wal->created_or_truncated.count(id->first) || wal->created_databases.count(id->first.db)) {
        return std::nullopt;
      }
      std::vector<uint32_t> pages;
      auto it = wal->blocks.find(id->first);
      if (it == wal->blocks.end()) return pages;
      const uint64_t first = uint64_t{id->second} * relseg, end = first + relseg;
      for (auto b = std::lower_bound(it->second.begin(), it->second.end(), first);
           b != it->second.end() && *b < end; ++b) {
        pages.push_back(static_cast<uint32_t>(*b - first));
      }
      return pages;
    };
    return d;
  };

  bo.before_snapshot = [&](repo::Snapshot& snap) -> Status {
    if (o.row_counts) {
      // What validation after a restore compares with (the connected database's tables).
      HAVEN_ASSIGN(auto counts, count_rows(conn));
      HAVEN_ASSIGN(auto db, conn.value("SELECT current_database()"));
      snap.meta["pg.database"] = db;
      snap.meta["pg.row_counts"] = nlohmann::json(counts).dump();
    }
    // PostgreSQL's own wait for the archive (wait_for_archive) looks once a second; this one
    // looks every 10 ms (wait_until_archived).
    HAVEN_ASSIGN(auto stop, conn.rows(
        "SELECT lsn::text, labelfile, spcmapfile, pg_walfile_name(lsn) FROM pg_backup_stop(false) AS r(lsn, labelfile, spcmapfile)"));
    if (archiving) HAVEN_TRY(wait_until_archived(conn, pgdata, stop[0][3], session.cancel_token(), events));
    res.stop_lsn = stop[0][0];
    HAVEN_ASSIGN(auto next_xid, conn.value("SELECT pg_snapshot_xmax(pg_current_snapshot())::text"));
    snap.meta["pg.stop_next_xid"] = next_xid;
    snap.meta["pg.wal_segment_size"] = seg_size;
    snap.meta["pg.block_size"] = block_size;
    if (!page_changes.empty()) snap.meta["pg.page_changes"] = page_changes;
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

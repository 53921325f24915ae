#include "pg/recovery.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "pg/basebackup.h"
#include "pg/wal.h"
#include "pg/wal_pages.h"
#include "pg/wal_spool.h"
#include "repo/paths.h"
#include "restore/restore.h"

namespace haven::pg {

namespace {

uint64_t meta_u64(const repo::Snapshot& s, const std::string& k, uint64_t dflt = 0) {
  auto it = s.meta.find(k);
  if (it == s.meta.end()) return dflt;
  try {
    return std::stoull(it->second);
  } catch (...) {
    return dflt;
  }
}

std::string meta_str(const repo::Snapshot& s, const std::string& k) {
  auto it = s.meta.find(k);
  return it == s.meta.end() ? std::string() : it->second;
}

Status write_text_file(const std::string& path, const std::string& text, bool append, uid_t uid, gid_t gid) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0600);
  if (fd < 0) return errno_error(path, errno);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int err = errno;
  if (ok && geteuid() == 0 && ::fchown(fd, uid, gid) != 0) {
    ok = false;
    err = errno;
  }
  ::close(fd);
  if (!ok) return errno_error(path, err);
  return ok_status();
}

// Single quotes doubled, as postgresql.conf wants them inside '…'.
std::string conf_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

}  // namespace

Result<std::vector<BaseBackup>> list_base_backups(repo::Repository& repo) {
  std::vector<Error> damaged;
  HAVEN_ASSIGN(auto all, repo.list_snapshots(&damaged));
  std::vector<BaseBackup> out;
  for (auto& [id, s] : all) {
    if (!s.meta.count("pg.stop_lsn") || !s.meta.count("pg.backup_label")) continue;
    BaseBackup b;
    b.id = id;
    b.timeline = static_cast<uint32_t>(meta_u64(s, "pg.timeline"));
    b.start_lsn = parse_lsn(meta_str(s, "pg.start_lsn")).value_or(0);
    b.stop_lsn = parse_lsn(meta_str(s, "pg.stop_lsn")).value_or(0);
    b.stop_time = static_cast<TimeNs>(meta_u64(s, "pg.stop_time", static_cast<uint64_t>(s.end_time)));
    b.wal_segment_size = meta_u64(s, "pg.wal_segment_size", 16u << 20);
    if (b.wal_segment_size == 0) b.wal_segment_size = 16u << 20;
    b.snapshot = std::move(s);
    out.push_back(std::move(b));
  }
  std::sort(out.begin(), out.end(), [](const BaseBackup& a, const BaseBackup& b) { return a.stop_time < b.stop_time; });
  return out;
}

Result<std::vector<Window>> recoverable_windows(repo::Repository& repo, const std::vector<BaseBackup>& backups) {
  // Archived segments per timeline, as segment numbers.
  std::map<uint32_t, std::set<std::pair<uint64_t, uint64_t>>> segs;  // timeline -> (log, seg)
  HAVEN_TRY(repo.backend().list(storage::ObjectType::kWal, [&](const storage::ObjectInfo& i) {
    if (auto s = parse_segment_name(i.name.name)) segs[s->timeline].insert({s->log, s->seg});
  }));
  std::map<uint32_t, Window> by_tl;
  for (const auto& b : backups) {
    const uint64_t per_log = (uint64_t{1} << 32) / b.wal_segment_size;
    auto segno = [&](uint64_t lsn) { return lsn / b.wal_segment_size; };
    auto& have = segs[b.timeline];
    // The unbroken run from the backup's first segment on.
    uint64_t n = segno(b.start_lsn);
    if (!have.count({n / per_log, n % per_log})) continue;
    while (have.count({(n + 1) / per_log, (n + 1) % per_log})) n++;
    uint64_t end_lsn = (n + 1) * b.wal_segment_size;
    if (end_lsn < b.stop_lsn) continue;  // the WAL to make it consistent is not all there
    char name[25];
    std::snprintf(name, sizeof name, "%08X%08X%08X", b.timeline, static_cast<unsigned>(n / per_log),
                  static_cast<unsigned>(n % per_log));
    auto [it, fresh] = by_tl.try_emplace(b.timeline);
    Window& w = it->second;
    if (fresh) {
      w.timeline = b.timeline;
      w.from_lsn = b.stop_lsn;
      w.from_time = b.stop_time;
    }
    if (end_lsn > w.to_lsn) {
      w.to_lsn = end_lsn;
      w.last_segment = name;
    }
    w.base_backups++;
  }
  std::vector<Window> out;
  for (auto& [tl, w] : by_tl) out.push_back(w);
  return out;
}

std::string describe_windows(const std::vector<Window>& windows) {
  if (windows.empty()) return "no recoverable window (no base backup with its WAL archived)";
  std::string s;
  for (const auto& w : windows) {
    if (!s.empty()) s += "; ";
    s += "timeline " + std::to_string(w.timeline) + ": from " + format_time(w.from_time) + " (LSN " +
         format_lsn(w.from_lsn) + ") to the end of WAL segment " + w.last_segment + " (LSN " +
         format_lsn(w.to_lsn) + ")";
  }
  return s;
}

namespace {

const char* const kTimeForms = "use RFC 3339 (2026-11-21T10:00:00Z) or 'YYYY-MM-DD HH:MM[:SS]' local time";

// A transaction ID: decimal digits only, at most 19 of them (so it fits 64 bits).
std::optional<uint64_t> parse_xid(const std::string& s) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

}  // namespace

std::string format_pg_time(TimeNs t) {
  time_t secs = static_cast<time_t>(t / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%06d+00", buf, static_cast<int>((t % 1000000000) / 1000));
  return out;
}

std::vector<std::string> first_recovery_segments(const BaseBackup& b, const RecoveryTarget& rt, unsigned count) {
  const uint64_t size = b.wal_segment_size;
  if (count == 0 || size == 0) return {};
  uint64_t more = count - 1;  // after the one holding the start
  if (rt.kind == RecoveryTarget::Kind::kLsn) {
    more = std::min(more, rt.lsn / size > b.start_lsn / size ? rt.lsn / size - b.start_lsn / size : 0);
  }
  std::vector<std::string> out{segment_file_name(b.timeline, b.start_lsn, size)};
  for (auto& n : next_segment_names(out.front(), size, static_cast<unsigned>(more))) out.push_back(std::move(n));
  return out;
}

Result<RecoveryTarget> parse_recovery_target(const RecoveryTargetText& o) {
  int given = (o.latest ? 1 : 0) + (o.time.empty() ? 0 : 1) + (o.lsn.empty() ? 0 : 1) + (o.xid.empty() ? 0 : 1);
  if (given != 1) {
    return Error(Error::Code::kInvalidArgument,
                 "give exactly one recovery target: --time T, --lsn L, --xid X or --latest");
  }
  RecoveryTarget t;
  if (o.latest) {
    t.kind = RecoveryTarget::Kind::kLatest;
    t.text = "latest";
  } else if (!o.time.empty()) {
    auto tm = parse_time(o.time);
    if (!tm) {
      return Error(Error::Code::kInvalidArgument,
                   "--time: cannot read time '" + o.time + "': " + kTimeForms);
    }
    t.kind = RecoveryTarget::Kind::kTime;
    t.time = *tm;
    t.text = format_pg_time(*tm);
  } else if (!o.lsn.empty()) {
    auto l = parse_lsn(o.lsn);
    if (!l) {
      return Error(Error::Code::kInvalidArgument,
                   "--lsn: '" + o.lsn + "' is not an LSN: write it as PostgreSQL does, e.g. 0/16B3740");
    }
    t.kind = RecoveryTarget::Kind::kLsn;
    t.lsn = *l;
    t.text = format_lsn(*l);
  } else {
    auto x = parse_xid(o.xid);
    if (!x) return Error(Error::Code::kInvalidArgument, "--xid: '" + o.xid + "' is not a transaction ID (a number)");
    t.kind = RecoveryTarget::Kind::kXid;
    t.xid = *x;
    t.text = o.xid;
  }
  return t;
}

Status validate(const RecoveryTarget& t) {
  auto bad = [&](const std::string& why) {
    return Error(Error::Code::kInvalidArgument, "recovery target '" + t.text + "': " + why);
  };
  switch (t.kind) {
    case RecoveryTarget::Kind::kLatest: break;
    case RecoveryTarget::Kind::kTime:
      if (t.text.empty()) return bad("a time target needs its text (format_pg_time)");
      break;
    case RecoveryTarget::Kind::kLsn:
      if (parse_lsn(t.text) != std::optional<uint64_t>(t.lsn)) {
        return bad("not the LSN " + format_lsn(t.lsn) + " (write it as PostgreSQL does, e.g. 0/16B3740)");
      }
      break;
    case RecoveryTarget::Kind::kXid:
      if (parse_xid(t.text) != std::optional<uint64_t>(t.xid)) {
        return bad("not the transaction ID " + std::to_string(t.xid) + " (a number)");
      }
      break;
  }
  return ok_status();
}

namespace {

Result<PgRestoreResult> run_restore_for_recovery(repo::Session& session, const PgRestoreOptions& o,
                                                 Reporter& events) {
  repo::Repository& repo = session.repo();
  if (o.target.empty()) return Error(Error::Code::kInvalidArgument, "no target given: use --target DIR");
  HAVEN_TRY(validate(o.recovery));
  HAVEN_ASSIGN(auto backups, list_base_backups(repo));
  if (backups.empty()) {
    return Error(Error::Code::kNotFound, "the repository holds no PostgreSQL base backup: run 'haven pg backup' first");
  }
  HAVEN_ASSIGN(auto windows, recoverable_windows(repo, backups));
  const auto& rt = o.recovery;
  auto refuse = [&](const std::string& why) {
    return Error(Error::Code::kInvalidArgument,
                 why + ": recoverable: " + describe_windows(windows));
  };
  // The newest base backup that stopped before the target and whose WAL is archived.
  const BaseBackup* base = nullptr;
  for (const auto& b : backups) {
    auto w = std::find_if(windows.begin(), windows.end(), [&](const Window& x) { return x.timeline == b.timeline; });
    if (w == windows.end()) continue;
    bool before = true;
    switch (rt.kind) {
      case RecoveryTarget::Kind::kLatest: break;
      case RecoveryTarget::Kind::kTime: before = b.stop_time <= rt.time; break;
      case RecoveryTarget::Kind::kLsn: before = b.stop_lsn <= rt.lsn; break;
      case RecoveryTarget::Kind::kXid:
        before = meta_u64(b.snapshot, "pg.stop_next_xid") <= rt.xid;
        break;
    }
    if (before) base = &b;
  }
  if (base == nullptr) return refuse("target " + rt.text + " is before every recoverable base backup");
  if (rt.kind == RecoveryTarget::Kind::kTime && rt.time > now()) {
    return refuse("target time " + rt.text + " is in the future");
  }
  if (rt.kind == RecoveryTarget::Kind::kLsn) {
    auto w = std::find_if(windows.begin(), windows.end(), [&](const Window& x) { return x.timeline == base->timeline; });
    if (rt.lsn > w->to_lsn) return refuse("target LSN " + rt.text + " is past the archived WAL");
  }

  // The data directory (the snapshot's first path) restores into the target itself.
  // (Top-level names: repo/paths.h; two paths with one last component get distinct names.)
  std::string data_name = repo::root_names(base->snapshot).at(0);
  HAVEN_ASSIGN(repo::Tree root, repo.load_tree(base->snapshot.tree));
  const repo::Node* data = nullptr;
  for (const auto& n : root.nodes) {
    if (n.name == data_name && n.subtree) data = &n;
  }
  if (data == nullptr) {
    return Error(Error::Code::kCorrupt, "base backup " + repo::short_hex(base->id) + " holds no data directory");
  }
  struct stat st;
  if (::stat(o.target.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return Error(Error::Code::kInvalidArgument, o.target + " is not a directory");
    if (::rmdir(o.target.c_str()) != 0 && errno == ENOTEMPTY) {
      return Error(Error::Code::kInvalidArgument,
                   o.target + " is not empty: restore a cluster into a new or empty directory");
    }
  }
  if (::mkdir(o.target.c_str(), 0700) != 0) return errno_error(o.target, errno);
  if (geteuid() == 0 && ::chown(o.target.c_str(), data->uid, data->gid) != 0) {
    return errno_error(o.target, errno);
  }
  ::chmod(o.target.c_str(), data->mode & 0750);
  Progress chosen;  // the base backup is chosen: its files come next
  chosen.phase = "base_backup";
  chosen.final = true;
  events.progress(std::move(chosen));
  restore::Options ro;
  ro.target = o.target;
  ro.threads = o.threads;
  ro.sync = true;
  ro.keep_cached = true;  // PostgreSQL reads the data directory as soon as it starts
  HAVEN_ASSIGN(restore::Summary rs, restore::run(session, *data->subtree, ro, events.sink()));
  if (rs.errors > 0) {
    return Error(Error::Code::kCorrupt, std::to_string(rs.errors) +
                                            " file(s) of the base backup could not be restored: the cluster is incomplete");
  }
  // Tablespaces go back where they were (they must be absent or empty there).
  auto spcs = nlohmann::json::parse(meta_str(base->snapshot, "pg.tablespaces"), nullptr, false);
  if (spcs.is_array()) {
    for (const auto& t : spcs) {
      std::string loc = t.value("location", "");
      const repo::Node* node = nullptr;
      for (const auto& n : root.nodes) {
        if (n.name == repo::stored_forms(base->snapshot, loc).front() && n.subtree) node = &n;
      }
      if (node == nullptr || loc.empty()) continue;
      restore::Options to;
      to.target = loc;
      to.threads = o.threads;
      to.sync = true;
      HAVEN_ASSIGN(restore::Summary ts, restore::run(session, *node->subtree, to, events.sink()));
      if (ts.errors > 0 || ts.skipped > 0) {
        return Error(Error::Code::kIo, "tablespace " + t.value("name", "") + " could not be restored to " + loc +
                                           " (it must be absent or empty)");
      }
      if (geteuid() == 0) (void)::chown(loc.c_str(), node->uid, node->gid);
      ::chmod(loc.c_str(), 0700);
    }
  }
  const uid_t uid = data->uid;
  const gid_t gid = data->gid;
  HAVEN_TRY(write_text_file(o.target + "/backup_label", meta_str(base->snapshot, "pg.backup_label"), false, uid, gid));
  if (!meta_str(base->snapshot, "pg.tablespace_map").empty()) {
    HAVEN_TRY(write_text_file(o.target + "/tablespace_map", meta_str(base->snapshot, "pg.tablespace_map"), false, uid, gid));
  }
  std::string conf = "\n# Added by haven pg restore (base backup " + repo::short_hex(base->id) + ", " +
                     format_time(now()) + ")\n";
  conf += "restore_command = " + conf_quote(o.restore_command) + "\n";
  switch (rt.kind) {
    case RecoveryTarget::Kind::kLatest: break;
    case RecoveryTarget::Kind::kTime: conf += "recovery_target_time = " + conf_quote(rt.text) + "\n"; break;
    case RecoveryTarget::Kind::kLsn: conf += "recovery_target_lsn = " + conf_quote(rt.text) + "\n"; break;
    case RecoveryTarget::Kind::kXid: conf += "recovery_target_xid = " + conf_quote(rt.text) + "\n"; break;
  }
  if (rt.kind != RecoveryTarget::Kind::kLatest) conf += "recovery_target_action = 'promote'\n";
  if (o.port > 0) conf += "port = " + std::to_string(o.port) + "\n";
  if (!o.keep_archiving) conf += "archive_mode = 'off'\n";
  HAVEN_TRY(write_text_file(o.target + "/postgresql.auto.conf", conf, true, uid, gid));
  HAVEN_TRY(write_text_file(o.target + "/recovery.signal", "", false, uid, gid));
  PgRestoreResult res;
  res.base = *base;
  res.files = rs.files;
  res.bytes = rs.bytes;
  return res;
}

}  // namespace

Result<PgRestoreResult> restore_for_recovery(repo::Session& session, const PgRestoreOptions& o,
                                             const EventTarget& target) {
  CancelScope scope(session.cancel_token());
  Reporter events(target, OpKind::kPgRestore);
  events.started({{"target", o.target}});
  return events.finish(run_restore_for_recovery(session, o, events), [](const PgRestoreResult& r) {
    return nlohmann::json{{"base_backup", repo::hex(r.base.id)}, {"files", r.files},
                          {"bytes", r.bytes}};
  });
}

}  // namespace haven::pg

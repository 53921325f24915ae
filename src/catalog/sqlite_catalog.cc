#include "catalog/sqlite_catalog.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <limits>
#include <set>

#include "catalog/audit.h"
#include "catalog/ids.h"
#include "catalog/schema.h"
#include "catalog/sqlite_rows.h"

namespace haven::catalog {
namespace {

using sqlite::Db;
using sqlite::Stmt;
using sqlite::Txn;
namespace rows = sqlite_rows;

Error not_found(const std::string& what) {
  return Error(Error::Code::kNotFound, what + " not found");
}
Error invalid(const std::string& what) { return Error(Error::Code::kInvalidArgument, what); }
std::string in_quotes(const std::string& s) { return "'" + s.substr(0, 300) + "'"; }

// Every row `sql` (which selects t.select_list()) returns, after `bind(stmt)`.
template <typename Row, typename Bind>
Result<std::vector<Row>> fetch_sql(Db& db, const rows::Table<Row>& t, const std::string& sql,
                                   Bind&& bind) {
  HAVEN_ASSIGN(Stmt st, db.prepare(sql));
  bind(st);
  std::vector<Row> out;
  while (true) {
    HAVEN_ASSIGN(bool more, st.step());
    if (!more) break;
    HAVEN_ASSIGN(Row r, t.read(st));
    out.push_back(std::move(r));
  }
  return out;
}

// Every row of `t.select() + rest`.
template <typename Row, typename Bind>
Result<std::vector<Row>> fetch(Db& db, const rows::Table<Row>& t, const std::string& rest,
                               Bind&& bind) {
  return fetch_sql(db, t, t.select() + rest, std::forward<Bind>(bind));
}

// The first row, or nullopt.
template <typename Row, typename Bind>
Result<std::optional<Row>> fetch_first(Db& db, const rows::Table<Row>& t, const std::string& rest,
                                       Bind&& bind) {
  HAVEN_ASSIGN(Stmt st, db.prepare(t.select() + rest));
  bind(st);
  HAVEN_ASSIGN(bool more, st.step());
  if (!more) return std::optional<Row>();
  HAVEN_ASSIGN(Row r, t.read(st));
  return std::optional<Row>(std::move(r));
}

// The first row with column `column` equal to `key`; kNotFound naming `what` if none.
template <typename Row>
Result<Row> fetch_by(Db& db, const rows::Table<Row>& t, const std::string& column,
                     const std::string& key, const std::string& what) {
  HAVEN_ASSIGN(auto row, fetch_first(db, t, "WHERE " + column + " = ?1",
                                     [&](Stmt& st) { st.bind_text(1, key); }));
  if (!row) return not_found(what + " " + in_quotes(key));
  return std::move(*row);
}

// Whether a row of `table` has `column` = `key`.
Result<bool> exists(Db& db, const std::string& table, const std::string& column,
                    const std::string& key) {
  HAVEN_ASSIGN(Stmt st, db.prepare("SELECT 1 FROM " + table + " WHERE " + column + " = ?1"));
  st.bind_text(1, key);
  return st.step();
}

// Runs a bound INSERT/UPDATE/DELETE; returns the rows it changed.
Result<int64_t> execute(Stmt& st) {
  HAVEN_TRY(st.run());
  return st.db().changes();
}

// ---- Cursors: "<started_at>.<id>" of the last row of a page ----

std::string encode_cursor(const ExecutionRow& r) {
  return std::to_string(r.started_at) + "." + r.id;
}

Result<std::pair<TimeNs, std::string>> decode_cursor(const std::string& c) {
  auto bad = [&] {
    return invalid("malformed cursor " + in_quotes(c) +
                   ": pass back a next_cursor exactly as a previous page returned it");
  };
  size_t dot = c.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 >= c.size() || c.size() > 128) return bad();
  TimeNs t = 0;
  auto [p, ec] = std::from_chars(c.data(), c.data() + dot, t);
  if (ec != std::errc() || p != c.data() + dot) return bad();
  return std::make_pair(t, c.substr(dot + 1));
}

// ---- Paths ----

// Refuses a path SQLite would fail on with a vague message, and creates a missing file with
// mode 0600 (the catalog holds token hashes and storage addresses; SQLite gives its -wal and
// -shm files the main file's mode).
Status prepare_path(const std::string& path) {
  if (path.empty()) return invalid("the catalog path is empty");
  std::filesystem::path p(path);
  std::string dir = p.parent_path().empty() ? "." : p.parent_path().string();
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return Error(Error::Code::kNotFound,
                   "catalog " + path + ": directory " + dir +
                       " does not exist (create it, or choose another path)");
    }
    return errno_error("catalog " + path + ": directory " + dir, err);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error(Error::Code::kNotFound, "catalog " + path + ": " + dir + " is not a directory");
  }
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      return invalid("catalog " + path + " is a directory: give the path of a file in it");
    }
    return ok_status();
  }
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return ok_status();  // created meanwhile by someone else
    return errno_error("catalog " + path, errno);
  }
  ::close(fd);
  // The new name must survive a power cut along with the first commit: sync the directory.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int rc = ::fsync(dfd);
    int err = errno;
    ::close(dfd);
    if (rc != 0) return errno_error("catalog " + path + ": syncing directory " + dir, err);
  }
  return ok_status();
}

// Explains a failure to open: SQLite says only "unable to open database file".
Error open_error(const std::string& path, const Error& e) {
  if (::access(path.c_str(), R_OK | W_OK) != 0 && errno == EACCES) {
    return errno_error("catalog " + path, EACCES);
  }
  return e;
}

constexpr int kReadConnectionsMax = 64;

}  // namespace

// ---- Query SQL ----

std::string execution_query_sql(bool policy, bool status, bool from, bool upper) {
  // INDEXED BY pins the plan: with every filter combination the rows come out of one index in
  // the ORDER BY order, so a page costs `limit` index steps however many rows there are.
  const char* index = policy && status ? "backup_executions_by_policy_status"
                      : policy         ? "backup_executions_by_policy"
                      : status         ? "backup_executions_by_status"
                                       : "backup_executions_by_time";
  std::string sql = rows::executions().select() + "INDEXED BY " + index + " WHERE 1";
  if (policy) sql += " AND policy_id = ?1";
  if (status) sql += " AND status = ?2";
  if (from) sql += " AND started_at >= ?3";
  if (upper) sql += " AND (started_at, id) < (?4, ?5)";
  sql += " ORDER BY started_at DESC, id DESC LIMIT ?6";
  return sql;
}

// ---- Connections ----

Status SqliteCatalog::ReaderPool::open(const std::string& path, int count, int busy_timeout_ms) {
  for (int i = 0; i < count; i++) {
    HAVEN_ASSIGN(auto db, Db::open(path, SQLITE_OPEN_READWRITE, busy_timeout_ms));
    // Read connections never write: query_only makes a mistake an error instead of a write
    // that bypasses the writer's mutex.
    HAVEN_TRY(db->exec("PRAGMA foreign_keys = ON; PRAGMA query_only = ON"));
    free_.push_back(db.get());
    all_.push_back(std::move(db));
  }
  return ok_status();
}

SqliteCatalog::ReaderPool::Lease SqliteCatalog::ReaderPool::acquire() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return !free_.empty(); });
  sqlite::Db* db = free_.back();
  free_.pop_back();
  return Lease(this, db);
}

void SqliteCatalog::ReaderPool::give_back(sqlite::Db* db) {
  {
    std::lock_guard<std::mutex> g(mu_);
    free_.push_back(db);
  }
  cv_.notify_one();
}

template <typename F>
auto SqliteCatalog::write(F&& body) -> std::invoke_result_t<F, sqlite::Db&> {
  std::lock_guard<std::mutex> g(write_mu_);
  auto txn = Txn::begin(*writer_, Txn::Mode::kWrite);
  if (!txn.ok()) return txn.error();
  auto result = body(*writer_);
  if (!result.ok()) return result;  // ~Txn rolls back
  Status committed = txn->commit();
  if (!committed.ok()) return committed.error();
  return result;
}

template <typename F>
auto SqliteCatalog::read(F&& body, bool snapshot) -> std::invoke_result_t<F, sqlite::Db&> {
  auto lease = readers_.acquire();
  if (!snapshot) return body(lease.db());
  auto txn = Txn::begin(lease.db(), Txn::Mode::kRead);
  if (!txn.ok()) return txn.error();
  return body(lease.db());  // ~Txn ends the read transaction
}

Result<std::unique_ptr<SqliteCatalog>> SqliteCatalog::open(const std::string& path,
                                                           const SqliteOptions& options) {
  if (options.read_connections < 1 || options.read_connections > kReadConnectionsMax) {
    return invalid("catalog read_connections must be 1.." + std::to_string(kReadConnectionsMax));
  }
  if (!options.clock) return invalid("catalog clock is not set");
  const auto busy_ms =
      std::clamp<int64_t>(options.busy_timeout.count(), 0, std::numeric_limits<int>::max());
  HAVEN_TRY(prepare_path(path));
  std::unique_ptr<SqliteCatalog> c(new SqliteCatalog(path, options));

  auto writer =
      Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, static_cast<int>(busy_ms));
  if (!writer.ok()) return open_error(path, writer.error());
  c->writer_ = std::move(writer).value();
  Db& w = *c->writer_;
  // Before anything is written: refuse another program's database, a newer catalog, a file
  // that is not SQLite (the first read of its header fails).
  HAVEN_TRY(check_catalog_file(w));

  // WAL: readers and the writer do not block each other, and a commit is one append to the
  // WAL. The mode is persistent in the file.
  HAVEN_ASSIGN(auto mode, w.query_text("PRAGMA journal_mode = WAL"));
  if (!mode || *mode != "wal") {
    return Error(Error::Code::kUnsupported,
                 "catalog " + path + ": SQLite cannot use WAL mode here (journal mode '" +
                     mode.value_or("?") +
                     "'); put the catalog on a local file system that supports shared memory");
  }
  // synchronous=FULL: the WAL is fsynced at every commit, so a committed row survives a power
  // cut as well as a killed process (NORMAL would survive only the latter: an API token revoked
  // just before a power cut would come back). Writes are a few per job, not per file.
  // journal_size_limit: the WAL is truncated back to 64 MiB after a checkpoint.
  HAVEN_TRY(w.exec("PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 67108864"));
  HAVEN_TRY(migrate(w));
  HAVEN_ASSIGN(auto fk, w.query_int("PRAGMA foreign_keys"));
  if (fk.value_or(0) != 1) {
    return Error(Error::Code::kUnsupported,
                 "catalog " + path + ": this SQLite library does not enforce foreign keys");
  }
  HAVEN_TRY(c->readers_.open(path, options.read_connections, static_cast<int>(busy_ms)));
  return c;
}

SqliteCatalog::~SqliteCatalog() = default;

Result<std::unique_ptr<Catalog>> open_sqlite_catalog(const std::string& path,
                                                     const SqliteOptions& options) {
  HAVEN_ASSIGN(auto c, SqliteCatalog::open(path, options));
  return std::unique_ptr<Catalog>(std::move(c));
}

Result<int64_t> SqliteCatalog::connection_pragma(bool writer, const std::string& name) {
  auto get = [&](Db& db) -> Result<int64_t> {
    HAVEN_ASSIGN(auto v, db.query_int("PRAGMA " + name));
    if (!v) return not_found("PRAGMA " + name);
    return *v;
  };
  if (writer) {
    std::lock_guard<std::mutex> g(write_mu_);
    return get(*writer_);
  }
  return read(get);
}

// ---- Policies ----

Result<PolicyRow> SqliteCatalog::create_policy(const PolicyRow& in) {
  HAVEN_TRY(validate(in));
  PolicyRow row = in;
  HAVEN_ASSIGN(row.id, new_uuid());
  row.created_at = row.updated_at = now();
  row.last_execution.reset();
  row.next_execution.reset();
  return write([&](Db& db) -> Result<PolicyRow> {
    if (row.location_id) {
      HAVEN_ASSIGN(bool found, exists(db, "backup_storage_locations", "id", *row.location_id));
      if (!found) return not_found("storage location " + in_quotes(*row.location_id));
    }
    HAVEN_ASSIGN(bool taken, exists(db, "backup_policies", "name", row.name));
    if (taken) {
      return Error(Error::Code::kAlreadyExists,
                   "policy " + in_quotes(row.name) + " already exists");
    }
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::policies().insert_sql()));
    HAVEN_TRY(rows::policies().bind(st, row, false));
    HAVEN_TRY(st.run());
    return row;
  });
}

Result<PolicyRow> SqliteCatalog::update_policy(const PolicyRow& in) {
  HAVEN_TRY(validate(in));
  PolicyRow row = in;
  row.updated_at = now();
  return write([&](Db& db) -> Result<PolicyRow> {
    HAVEN_ASSIGN(auto current, fetch_first(db, rows::policies(), "WHERE id = ?1",
                                           [&](Stmt& st) { st.bind_text(1, row.id); }));
    if (!current) return not_found("policy " + in_quotes(row.id));
    if (row.location_id) {
      HAVEN_ASSIGN(bool found, exists(db, "backup_storage_locations", "id", *row.location_id));
      if (!found) return not_found("storage location " + in_quotes(*row.location_id));
    }
    if (row.name != current->name) {
      HAVEN_ASSIGN(bool taken, exists(db, "backup_policies", "name", row.name));
      if (taken) {
        return Error(Error::Code::kAlreadyExists, "cannot rename policy " +
                                                      in_quotes(current->name) + ": policy " +
                                                      in_quotes(row.name) + " already exists");
      }
    }
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::policies().update_sql()));
    HAVEN_TRY(rows::policies().bind(st, row, true));
    HAVEN_TRY(st.run());
    row.created_at = current->created_at;
    row.last_execution = current->last_execution;
    row.next_execution = current->next_execution;
    return row;
  });
}

Result<PolicyRow> SqliteCatalog::get_policy(const std::string& id) {
  return read([&](Db& db) { return fetch_by(db, rows::policies(), "id", id, "policy"); });
}

Result<PolicyRow> SqliteCatalog::get_policy_by_name(const std::string& name) {
  return read([&](Db& db) { return fetch_by(db, rows::policies(), "name", name, "policy"); });
}

Result<std::vector<PolicyRow>> SqliteCatalog::list_policies() {
  return read([&](Db& db) { return fetch(db, rows::policies(), "ORDER BY name", [](Stmt&) {}); });
}

Status SqliteCatalog::delete_policy(const std::string& id) {
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare("DELETE FROM backup_policies WHERE id = ?1"));
    st.bind_text(1, id);
    HAVEN_ASSIGN(int64_t n, execute(st));  // the executions go by ON DELETE CASCADE
    if (n == 0) return not_found("policy " + in_quotes(id));
    return ok_status();
  });
}

Status SqliteCatalog::set_policy_schedule_times(const std::string& id,
                                                std::optional<TimeNs> last_execution,
                                                std::optional<TimeNs> next_execution) {
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare("UPDATE backup_policies SET last_execution = ?2, "
                                     "next_execution = ?3 WHERE id = ?1"));
    st.bind_text(1, id);
    last_execution ? st.bind_int64(2, *last_execution) : st.bind_null(2);
    next_execution ? st.bind_int64(3, *next_execution) : st.bind_null(3);
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("policy " + in_quotes(id));
    return ok_status();
  });
}

// ---- Storage locations ----

Result<LocationRow> SqliteCatalog::upsert_location(const LocationRow& in) {
  HAVEN_TRY(validate(in));
  LocationRow row = in;
  HAVEN_ASSIGN(row.id, new_uuid());  // used only if the name is new
  row.created_at = row.updated_at = now();
  return write([&](Db& db) -> Result<LocationRow> {
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::locations().upsert_sql("name")));
    HAVEN_TRY(rows::locations().bind(st, row, false));
    HAVEN_ASSIGN(bool returned, st.step());
    if (!returned)
      return Error(Error::Code::kInternal, "catalog " + path_ + ": upsert returned no row");
    HAVEN_ASSIGN(LocationRow stored, rows::locations().read(st));
    HAVEN_TRY(st.run());
    return stored;
  });
}

Result<LocationRow> SqliteCatalog::get_location(const std::string& id) {
  return read(
      [&](Db& db) { return fetch_by(db, rows::locations(), "id", id, "storage location"); });
}

Result<LocationRow> SqliteCatalog::get_location_by_name(const std::string& name) {
  return read(
      [&](Db& db) { return fetch_by(db, rows::locations(), "name", name, "storage location"); });
}

Result<std::vector<LocationRow>> SqliteCatalog::list_locations() {
  return read([&](Db& db) { return fetch(db, rows::locations(), "ORDER BY name", [](Stmt&) {}); });
}

Status SqliteCatalog::set_location_health(const std::string& name, TimeNs at,
                                          HealthStatus status) {
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare("UPDATE backup_storage_locations SET last_health_check = ?2, "
                                     "health_status = ?3 WHERE name = ?1"));
    st.bind_text(1, name);
    st.bind_int64(2, at);
    st.bind_text(3, to_string(status));
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("storage location " + in_quotes(name));
    return ok_status();
  });
}

// ---- Backup executions ----

Result<ExecutionRow> SqliteCatalog::create_execution(const ExecutionRow& in) {
  HAVEN_TRY(validate(in));
  ExecutionRow row = in;
  if (row.snapshot_id) row.snapshot_id = normalize_snapshot_id(*row.snapshot_id);
  row.created_at = now();
  if (row.started_at == 0) row.started_at = row.created_at;
  const bool generate_run_id = row.execution_id.empty();
  return write([&](Db& db) -> Result<ExecutionRow> {
    if (row.policy_id) {
      HAVEN_ASSIGN(bool found, exists(db, "backup_policies", "id", *row.policy_id));
      if (!found) return not_found("policy " + in_quotes(*row.policy_id));
    }
    if (!generate_run_id) {
      HAVEN_ASSIGN(bool taken, exists(db, "backup_executions", "execution_id", row.execution_id));
      if (taken) {
        return Error(Error::Code::kAlreadyExists,
                     "backup execution " + in_quotes(row.execution_id) + " already exists");
      }
    }
    // A collision of the random parts (a UUID, or two run IDs in one second) is retried with
    // new ones; anything else is returned.
    for (int attempt = 0;; attempt++) {
      HAVEN_ASSIGN(row.id, new_uuid());
      if (generate_run_id) {
        HAVEN_ASSIGN(row.execution_id, new_run_id("exec", row.started_at));
      }
      HAVEN_ASSIGN(Stmt st, db.prepare(rows::executions().insert_sql()));
      HAVEN_TRY(rows::executions().bind(st, row, false));
      Status s = st.run();
      if (s.ok()) return row;
      if (s.error().code() != Error::Code::kAlreadyExists || attempt == 3) return s.error();
    }
  });
}

Status SqliteCatalog::update_execution(const ExecutionRow& in) {
  HAVEN_TRY(validate(in));
  ExecutionRow row = in;
  if (row.snapshot_id) row.snapshot_id = normalize_snapshot_id(*row.snapshot_id);
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::executions().update_sql()));
    HAVEN_TRY(rows::executions().bind(st, row, true));
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("backup execution " + in_quotes(row.id));
    return ok_status();
  });
}

Result<ExecutionRow> SqliteCatalog::get_execution(const std::string& key) {
  return read([&](Db& db) -> Result<ExecutionRow> {
    for (const char* column : {"id", "execution_id"}) {
      HAVEN_ASSIGN(auto row,
                   fetch_first(db, rows::executions(), std::string("WHERE ") + column + " = ?1",
                               [&](Stmt& st) { st.bind_text(1, key); }));
      if (row) return std::move(*row);
    }
    return not_found("backup execution " + in_quotes(key));
  });
}

Result<ExecutionPage> SqliteCatalog::query_executions(const ExecutionQuery& q) {
  if (q.limit < 1 || q.limit > ExecutionQuery::kMaxLimit) {
    return invalid("limit must be 1.." + std::to_string(ExecutionQuery::kMaxLimit) + ", not " +
                   std::to_string(q.limit));
  }
  if (q.from && q.to && *q.from >= *q.to) {
    return ExecutionPage{};  // an empty range
  }
  // The upper bound: rows strictly below (started_at, id) in the page order. `to` alone is
  // (to, ""), since every id sorts after ""; with a cursor too, the lower of the two.
  std::optional<std::pair<TimeNs, std::string>> upper;
  if (!q.cursor.empty()) {
    HAVEN_ASSIGN(upper, decode_cursor(q.cursor));
  }
  if (q.to) {
    std::pair<TimeNs, std::string> to_bound(*q.to, "");
    if (!upper || to_bound < *upper) upper = to_bound;
  }
  const std::string sql = execution_query_sql(q.policy_id.has_value(), q.status.has_value(),
                                              q.from.has_value(), upper.has_value());
  auto bind = [&](Stmt& st) {
    if (q.policy_id) st.bind_text(1, *q.policy_id);
    if (q.status) st.bind_text(2, to_string(*q.status));
    if (q.from) st.bind_int64(3, *q.from);
    if (upper) {
      st.bind_int64(4, upper->first);
      st.bind_text(5, upper->second);
    }
    st.bind_int64(6, q.limit + 1);  // one more than asked: is there a next page?
  };
  HAVEN_ASSIGN(std::vector<ExecutionRow> found,
               read([&](Db& db) { return fetch_sql(db, rows::executions(), sql, bind); }));
  ExecutionPage page;
  if (static_cast<int>(found.size()) > q.limit) {
    found.resize(static_cast<size_t>(q.limit));
    page.next_cursor = encode_cursor(found.back());
  }
  page.rows = std::move(found);
  return page;
}

Result<ExecutionRow> SqliteCatalog::find_execution_by_snapshot(const std::string& snapshot_id) {
  auto id = normalize_snapshot_id(snapshot_id);
  if (!id) {
    return invalid("snapshot ID " + in_quotes(snapshot_id) + " is not 1 to 64 hex digits");
  }
  return read([&](Db& db) -> Result<ExecutionRow> {
    HAVEN_ASSIGN(auto row, fetch_first(db, rows::executions(),
                                       "WHERE snapshot_id = ?1 ORDER BY started_at DESC LIMIT 1",
                                       [&](Stmt& st) { st.bind_text(1, *id); }));
    if (!row) return not_found("backup execution for snapshot " + in_quotes(*id));
    return std::move(*row);
  });
}

Result<int64_t> SqliteCatalog::mark_interrupted(const std::string& except_instance) {
  const TimeNs t = now();
  return write([&](Db& db) -> Result<int64_t> {
    int64_t total = 0;
    for (const char* table : {"backup_executions", "restore_operations"}) {
      HAVEN_ASSIGN(
          Stmt st,
          db.prepare(
              std::string("UPDATE ") + table +
              " SET status = 'interrupted', completed_at = ?1, error_message = CASE status"
              " WHEN 'pending' THEN 'interrupted: the Haven server stopped before this started'"
              " ELSE 'interrupted: the Haven server stopped while this was running' END"
              " WHERE status IN ('pending', 'running')"
              " AND (server_instance IS NULL OR server_instance <> ?2)"));
      st.bind_int64(1, t);
      st.bind_text(2, except_instance);
      HAVEN_ASSIGN(int64_t n, execute(st));
      total += n;
    }
    return total;
  });
}

Result<std::optional<ExecutionRow>> SqliteCatalog::last_successful_execution(
    const std::string& policy_id) {
  return read(
      [&](Db& db) -> Result<std::optional<ExecutionRow>> {
        HAVEN_ASSIGN(bool found, exists(db, "backup_policies", "id", policy_id));
        if (!found) return not_found("policy " + in_quotes(policy_id));
        return fetch_first(db, rows::executions(),
                           "INDEXED BY backup_executions_by_policy_status WHERE policy_id = ?1 AND "
                           "status = 'completed' ORDER BY started_at DESC, id DESC LIMIT 1",
                           [&](Stmt& st) { st.bind_text(1, policy_id); });
      },
      /*snapshot=*/true);
}

// ---- Restore operations ----

Result<RestoreRow> SqliteCatalog::create_restore(const RestoreRow& in) {
  HAVEN_TRY(validate(in));
  RestoreRow row = in;
  if (row.snapshot_id) row.snapshot_id = normalize_snapshot_id(*row.snapshot_id);
  row.created_at = now();
  if (row.started_at == 0) row.started_at = row.created_at;
  const bool generate_request_id = row.request_id.empty();
  return write([&](Db& db) -> Result<RestoreRow> {
    if (row.source_backup_id) {
      HAVEN_ASSIGN(bool found, exists(db, "backup_executions", "id", *row.source_backup_id));
      if (!found) return not_found("backup execution " + in_quotes(*row.source_backup_id));
    }
    if (!generate_request_id) {
      HAVEN_ASSIGN(bool taken, exists(db, "restore_operations", "request_id", row.request_id));
      if (taken) {
        return Error(Error::Code::kAlreadyExists,
                     "restore request " + in_quotes(row.request_id) + " already exists");
      }
    }
    for (int attempt = 0;; attempt++) {
      HAVEN_ASSIGN(row.id, new_uuid());
      if (generate_request_id) {
        HAVEN_ASSIGN(row.request_id, new_run_id("restore", row.started_at));
      }
      HAVEN_ASSIGN(Stmt st, db.prepare(rows::restores().insert_sql()));
      HAVEN_TRY(rows::restores().bind(st, row, false));
      Status s = st.run();
      if (s.ok()) return row;
      if (s.error().code() != Error::Code::kAlreadyExists || attempt == 3) return s.error();
    }
  });
}

Status SqliteCatalog::update_restore(const RestoreRow& in) {
  HAVEN_TRY(validate(in));
  RestoreRow row = in;
  if (row.snapshot_id) row.snapshot_id = normalize_snapshot_id(*row.snapshot_id);
  return write([&](Db& db) -> Status {
    if (row.source_backup_id) {
      HAVEN_ASSIGN(bool found, exists(db, "backup_executions", "id", *row.source_backup_id));
      if (!found) return not_found("backup execution " + in_quotes(*row.source_backup_id));
    }
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::restores().update_sql()));
    HAVEN_TRY(rows::restores().bind(st, row, true));
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("restore " + in_quotes(row.id));
    return ok_status();
  });
}

Result<RestoreRow> SqliteCatalog::get_restore(const std::string& key) {
  return read([&](Db& db) -> Result<RestoreRow> {
    for (const char* column : {"id", "request_id"}) {
      HAVEN_ASSIGN(auto row,
                   fetch_first(db, rows::restores(), std::string("WHERE ") + column + " = ?1",
                               [&](Stmt& st) { st.bind_text(1, key); }));
      if (row) return std::move(*row);
    }
    return not_found("restore " + in_quotes(key));
  });
}

Result<std::vector<Catalog::ExecutionStats>> SqliteCatalog::execution_stats() {
  return read([&](Db& db) -> Result<std::vector<ExecutionStats>> {
    std::string buckets;
    for (int64_t b : kDurationBuckets) {
      buckets += ", sum(status = 'completed' AND duration_seconds IS NOT NULL AND duration_seconds <= " +
                 std::to_string(b) + ")";
    }
    HAVEN_ASSIGN(Stmt st,
                 db.prepare("SELECT policy_id, status, count(*), "
                            "coalesce(sum(CASE WHEN status = 'completed' THEN backup_size_bytes END), 0), "
                            "sum(status = 'completed' AND duration_seconds IS NOT NULL), "
                            "coalesce(sum(CASE WHEN status = 'completed' THEN duration_seconds END), 0)" +
                            buckets +
                            " FROM backup_executions WHERE policy_id IS NOT NULL "
                            "GROUP BY policy_id, status ORDER BY policy_id"));
    std::vector<ExecutionStats> out;
    while (true) {
      HAVEN_ASSIGN(bool more, st.step());
      if (!more) break;
      const std::string policy = st.text(0);
      if (out.empty() || out.back().policy_id != policy) {
        out.emplace_back();
        out.back().policy_id = policy;
      }
      ExecutionStats& e = out.back();
      auto status = parse_enum<ExecStatus>(st.text(1));
      if (!status) continue;
      e.by_status[*status] = st.int64(2);
      e.bytes_completed += st.int64(3);
      e.duration_count += st.int64(4);
      e.duration_sum += st.int64(5);
      for (size_t i = 0; i < kDurationBuckets.size(); i++) {
        e.duration_le[i] += st.int64(static_cast<int>(6 + i));
      }
    }
    return out;
  }, true);
}

Result<Catalog::RestoreThroughput> SqliteCatalog::restore_throughput(
    const std::string& backup_location, int last_n) {
  if (last_n < 1 || last_n > 1000) return invalid("restores to look at must be 1..1000");
  return read([&](Db& db) -> Result<RestoreThroughput> {
    HAVEN_ASSIGN(Stmt st,
                 db.prepare("SELECT r.data_restored_gb, r.completed_at - r.started_at "
                            "FROM restore_operations r JOIN backup_executions e "
                            "ON e.id = r.source_backup_id WHERE e.backup_location = ?1 AND "
                            "r.status = 'completed' AND r.data_restored_gb > 0 AND "
                            "r.completed_at > r.started_at ORDER BY r.completed_at DESC LIMIT ?2"));
    st.bind_text(1, backup_location);
    st.bind_int64(2, last_n);
    RestoreThroughput t;
    while (true) {
      HAVEN_ASSIGN(bool more, st.step());
      if (!more) break;
      t.bytes += st.real(0) * 1e9;
      t.seconds += static_cast<double>(st.int64(1)) / 1e9;
      t.restores++;
    }
    return t;
  }, true);
}

Result<std::optional<RestoreRow>> SqliteCatalog::last_completed_restore(
    const std::string& policy_id) {
  return read([&](Db& db) {
    return fetch_first(db, rows::restores(),
                       "WHERE status = 'completed' AND source_backup_id IN (SELECT id FROM "
                       "backup_executions WHERE policy_id = ?1) ORDER BY completed_at DESC LIMIT 1",
                       [&](Stmt& st) { st.bind_text(1, policy_id); });
  });
}

// ---- Events ----

Result<int64_t> SqliteCatalog::append_event(const EventRow& in) {
  HAVEN_TRY(validate(in));
  EventRow row = in;
  if (row.time == 0) row.time = now();
  HAVEN_ASSIGN(std::string payload,
               rows::json_text(row.payload, "event " + in_quotes(row.kind) + " payload"));
  return write([&](Db& db) -> Result<int64_t> {
    HAVEN_ASSIGN(Stmt st, db.prepare("INSERT INTO events (time, operation_id, kind, payload) "
                                     "VALUES (?1, ?2, ?3, ?4)"));
    st.bind_int64(1, row.time);
    row.operation_id ? st.bind_text(2, *row.operation_id) : st.bind_null(2);
    st.bind_text(3, row.kind);
    st.bind_text(4, payload);
    HAVEN_TRY(st.run());
    return db.last_insert_rowid();
  });
}

Result<std::vector<EventRow>> SqliteCatalog::events_after(int64_t after_id, int limit) {
  if (limit < 1 || limit > kMaxEventBatch) {
    return invalid("event limit must be 1.." + std::to_string(kMaxEventBatch) + ", not " +
                   std::to_string(limit));
  }
  return read([&](Db& db) {
    return fetch(db, rows::events(), "WHERE id > ?1 ORDER BY id LIMIT ?2", [&](Stmt& st) {
      st.bind_int64(1, after_id);
      st.bind_int64(2, limit);
    });
  });
}

Result<int64_t> SqliteCatalog::prune_events_before(TimeNs time) {
  return write([&](Db& db) -> Result<int64_t> {
    HAVEN_ASSIGN(Stmt st, db.prepare("DELETE FROM events WHERE time < ?1"));
    st.bind_int64(1, time);
    return execute(st);
  });
}

Result<int64_t> SqliteCatalog::prune_events_keep_last(int64_t keep) {
  if (keep < 0) return invalid("events to keep must be >= 0, not " + std::to_string(keep));
  return write([&](Db& db) -> Result<int64_t> {
    // The keep-th newest id is the oldest kept; NULL (keep nothing deleted) if there are fewer.
    HAVEN_ASSIGN(Stmt st, db.prepare(keep == 0 ? "DELETE FROM events"
                                               : "DELETE FROM events WHERE id < (SELECT id FROM "
                                                 "events ORDER BY id DESC LIMIT 1 OFFSET ?1)"));
    if (keep > 0) st.bind_int64(1, keep - 1);
    return execute(st);
  });
}

// ---- API tokens ----

Result<TokenRow> SqliteCatalog::create_token(const std::string& name, Role role,
                                             const std::string& token_hash) {
  HAVEN_TRY(validate_token(name, token_hash));
  TokenRow row;
  row.name = name;
  row.role = role;
  row.token_hash = token_hash;
  row.created_at = now();
  return write([&](Db& db) -> Result<TokenRow> {
    HAVEN_ASSIGN(Stmt check,
                 db.prepare("SELECT 1 FROM api_tokens WHERE name = ?1 AND revoked_at IS NULL"));
    check.bind_text(1, name);
    HAVEN_ASSIGN(bool taken, check.step());
    if (taken) {
      return Error(
          Error::Code::kAlreadyExists,
          "API token " + in_quotes(name) + " already exists (revoke it first to reuse the name)");
    }
    HAVEN_ASSIGN(bool hash_taken, exists(db, "api_tokens", "token_hash", token_hash));
    if (hash_taken) {
      // Never quote the hash: it is as good as the token to anyone who can look it up.
      return Error(Error::Code::kAlreadyExists,
                   "API token " + in_quotes(name) + ": another token has the same hash");
    }
    HAVEN_ASSIGN(Stmt st, db.prepare("INSERT INTO api_tokens (name, role, token_hash, created_at) "
                                     "VALUES (?1, ?2, ?3, ?4)"));
    st.bind_text(1, row.name);
    st.bind_text(2, to_string(row.role));
    st.bind_text(3, row.token_hash);
    st.bind_int64(4, row.created_at);
    HAVEN_TRY(st.run());
    row.id = db.last_insert_rowid();
    return row;
  });
}

Result<TokenRow> SqliteCatalog::find_token_by_hash(const std::string& token_hash) {
  return read([&](Db& db) -> Result<TokenRow> {
    HAVEN_ASSIGN(auto row,
                 fetch_first(db, rows::tokens(), "WHERE token_hash = ?1 AND revoked_at IS NULL",
                             [&](Stmt& st) { st.bind_text(1, token_hash); }));
    if (!row) return not_found("API token");  // never echo the hash
    return std::move(*row);
  });
}

Result<std::vector<TokenRow>> SqliteCatalog::list_tokens() {
  return read([&](Db& db) { return fetch(db, rows::tokens(), "ORDER BY name, id", [](Stmt&) {}); });
}

Status SqliteCatalog::revoke_token(const std::string& name) {
  const TimeNs t = now();
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare("UPDATE api_tokens SET revoked_at = ?2 "
                                     "WHERE name = ?1 AND revoked_at IS NULL"));
    st.bind_text(1, name);
    st.bind_int64(2, t);
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("API token " + in_quotes(name) + " (unrevoked)");
    return ok_status();
  });
}

Status SqliteCatalog::touch_token(int64_t id, TimeNs time) {
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare("UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1"));
    st.bind_int64(1, id);
    st.bind_int64(2, time);
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("API token #" + std::to_string(id));
    return ok_status();
  });
}

// ---- Monitors ----

Result<MonitorRow> SqliteCatalog::upsert_monitor(const MonitorRow& in) {
  HAVEN_TRY(validate(in));
  MonitorRow row = in;
  HAVEN_ASSIGN(row.id, new_uuid());  // used only if the name is new
  row.created_at = row.updated_at = now();
  row.last_check.reset();
  row.current_status = HealthStatus::kHealthy;
  row.last_result = nullptr;
  return write([&](Db& db) -> Result<MonitorRow> {
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::monitors().upsert_sql("monitor_name")));
    HAVEN_TRY(rows::monitors().bind(st, row, false));
    HAVEN_ASSIGN(bool returned, st.step());
    if (!returned)
      return Error(Error::Code::kInternal, "catalog " + path_ + ": upsert returned no row");
    HAVEN_ASSIGN(MonitorRow stored, rows::monitors().read(st));
    HAVEN_TRY(st.run());
    return stored;
  });
}

Result<MonitorRow> SqliteCatalog::get_monitor(const std::string& key) {
  return read([&](Db& db) -> Result<MonitorRow> {
    for (const char* column : {"id", "monitor_name"}) {
      HAVEN_ASSIGN(auto row,
                   fetch_first(db, rows::monitors(), std::string("WHERE ") + column + " = ?1",
                               [&](Stmt& st) { st.bind_text(1, key); }));
      if (row) return std::move(*row);
    }
    return not_found("monitor " + in_quotes(key));
  });
}

Result<std::vector<MonitorRow>> SqliteCatalog::list_monitors() {
  return read(
      [&](Db& db) { return fetch(db, rows::monitors(), "ORDER BY monitor_name", [](Stmt&) {}); });
}

Status SqliteCatalog::delete_monitor(const std::string& id) {
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare("DELETE FROM backup_monitoring WHERE id = ?1"));
    st.bind_text(1, id);
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("monitor " + in_quotes(id));
    return ok_status();
  });
}

Status SqliteCatalog::record_monitor_result(const std::string& id, TimeNs at,
                                            HealthStatus status, const nlohmann::json& result) {
  HAVEN_ASSIGN(std::string text, rows::json_text(result, "monitor result"));
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare("UPDATE backup_monitoring SET last_check = ?2, "
                                     "current_status = ?3, last_result = ?4 WHERE id = ?1"));
    st.bind_text(1, id);
    st.bind_int64(2, at);
    st.bind_text(3, to_string(status));
    result.is_null() ? st.bind_null(4) : st.bind_text(4, text);
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("monitor " + in_quotes(id));
    return ok_status();
  });
}

// ---- Alerts ----

namespace {
constexpr const char* kUnresolved = "WHERE alert_key = ?1 AND state <> 'resolved'";
}

Result<Catalog::Raised> SqliteCatalog::raise_alert(const AlertRow& in) {
  HAVEN_TRY(validate(in));
  const TimeNs t = now();
  return write([&](Db& db) -> Result<Raised> {
    HAVEN_ASSIGN(auto existing, fetch_first(db, rows::alerts(), kUnresolved,
                                            [&](Stmt& st) { st.bind_text(1, in.alert_key); }));
    Raised out;
    if (existing) {
      AlertRow row = std::move(*existing);
      out.worse = row.severity == AlertSeverity::kWarning && in.severity == AlertSeverity::kCritical;
      row.severity = in.severity;
      row.summary = in.summary;
      row.details = in.details;
      row.kind = in.kind;
      row.last_seen_at = t;
      HAVEN_ASSIGN(Stmt st, db.prepare(rows::alerts().update_sql()));
      HAVEN_TRY(rows::alerts().bind(st, row, true));
      HAVEN_TRY(st.run());
      out.alert = std::move(row);
      return out;
    }
    AlertRow row = in;
    HAVEN_ASSIGN(row.id, new_uuid());
    row.state = AlertState::kOpen;
    row.opened_at = row.last_seen_at = t;
    row.acknowledged_at.reset();
    row.acknowledged_by.reset();
    row.resolved_at.reset();
    row.escalation_level = 0;
    row.escalated_at = t;
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::alerts().insert_sql()));
    HAVEN_TRY(rows::alerts().bind(st, row, false));
    HAVEN_TRY(st.run());
    out.alert = std::move(row);
    out.created = true;
    return out;
  });
}

Result<AlertRow> SqliteCatalog::get_alert(const std::string& id) {
  return read([&](Db& db) { return fetch_by(db, rows::alerts(), "id", id, "alert"); });
}

Result<std::optional<AlertRow>> SqliteCatalog::find_unresolved_alert(const std::string& key) {
  return read([&](Db& db) {
    return fetch_first(db, rows::alerts(), kUnresolved, [&](Stmt& st) { st.bind_text(1, key); });
  });
}

Result<std::vector<AlertRow>> SqliteCatalog::list_alerts(bool unresolved_only, int limit) {
  if (limit < 1 || limit > 1000) {
    return invalid("alert limit must be 1..1000, not " + std::to_string(limit));
  }
  return read([&](Db& db) {
    return fetch(db, rows::alerts(),
                 unresolved_only ? "WHERE state <> 'resolved' ORDER BY opened_at, id LIMIT ?1"
                                 : "ORDER BY opened_at DESC, id DESC LIMIT ?1",
                 [&](Stmt& st) { st.bind_int64(1, limit); });
  });
}

Status SqliteCatalog::update_alert(const AlertRow& row) {
  HAVEN_TRY(validate(row));
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::alerts().update_sql()));
    HAVEN_TRY(rows::alerts().bind(st, row, true));
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("alert " + in_quotes(row.id));
    return ok_status();
  });
}

Result<AlertRow> SqliteCatalog::acknowledge_alert(const std::string& id, const std::string& by,
                                                 TimeNs at) {
  return write([&](Db& db) -> Result<AlertRow> {
    HAVEN_ASSIGN(Stmt st, db.prepare("UPDATE alerts SET state = 'acknowledged', acknowledged_at = ?2,"
                                     " acknowledged_by = ?3 WHERE id = ?1 AND state = 'open'"));
    st.bind_text(1, id);
    st.bind_int64(2, at);
    by.empty() ? st.bind_null(3) : st.bind_text(3, by);
    HAVEN_ASSIGN(int64_t n, execute(st));
    HAVEN_ASSIGN(AlertRow row, fetch_by(db, rows::alerts(), "id", id, "alert"));
    if (n == 0) {
      return Error(Error::Code::kAlreadyExists,
                   "alert " + id + " is " + std::string(to_string(row.state)) +
                       ": only an open alert can be acknowledged");
    }
    return row;
  });
}

Result<bool> SqliteCatalog::escalate_alert(const std::string& id, int level, TimeNs at) {
  return write([&](Db& db) -> Result<bool> {
    HAVEN_ASSIGN(Stmt st, db.prepare("UPDATE alerts SET escalation_level = ?2, escalated_at = ?3"
                                     " WHERE id = ?1 AND state = 'open' AND escalation_level < ?2"));
    st.bind_text(1, id);
    st.bind_int64(2, level);
    st.bind_int64(3, at);
    HAVEN_ASSIGN(int64_t n, execute(st));
    return n > 0;
  });
}

Result<std::optional<AlertRow>> SqliteCatalog::resolve_alert(const std::string& id, TimeNs at,
                                                             const nlohmann::json& details) {
  return write([&](Db& db) -> Result<std::optional<AlertRow>> {
    HAVEN_ASSIGN(AlertRow row, fetch_by(db, rows::alerts(), "id", id, "alert"));
    if (row.state == AlertState::kResolved) return std::optional<AlertRow>();
    row.state = AlertState::kResolved;
    row.resolved_at = at;
    if (details.is_object()) {
      for (const auto& [k, v] : details.items()) row.details[k] = v;
    }
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::alerts().update_sql()));
    HAVEN_TRY(rows::alerts().bind(st, row, true));
    HAVEN_TRY(st.run());
    return std::optional<AlertRow>(std::move(row));
  });
}

// ---- Notifications ----

Result<NotificationRow> SqliteCatalog::enqueue_notification(const NotificationRow& in) {
  if (in.channel.empty()) return invalid("notification: channel must not be empty");
  if (in.escalation_level < 0) return invalid("notification: escalation_level must be >= 0");
  NotificationRow row = in;
  row.state = DeliveryState::kPending;
  row.attempts = 0;
  row.created_at = now();
  if (row.next_attempt_at == 0) row.next_attempt_at = row.created_at;
  row.delivered_at.reset();
  row.last_error.reset();
  return write([&](Db& db) -> Result<NotificationRow> {
    HAVEN_ASSIGN(bool alert, exists(db, "alerts", "id", row.alert_id));
    if (!alert) return not_found("alert " + in_quotes(row.alert_id));
    auto bind_key = [&](Stmt& st) {
      st.bind_text(1, row.alert_id);
      st.bind_text(2, row.channel);
      st.bind_text(3, to_string(row.action));
      st.bind_int64(4, row.escalation_level);
    };
    const std::string where =
        "WHERE alert_id = ?1 AND channel = ?2 AND action = ?3 AND escalation_level = ?4";
    HAVEN_ASSIGN(auto existing, fetch_first(db, rows::notifications(), where, bind_key));
    if (existing) return std::move(*existing);
    HAVEN_ASSIGN(Stmt st, db.prepare("INSERT INTO alert_notifications (alert_id, channel, action, "
                                     "escalation_level, state, attempts, created_at, "
                                     "next_attempt_at) VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?6)"));
    bind_key(st);
    st.bind_int64(5, row.created_at);
    st.bind_int64(6, row.next_attempt_at);
    HAVEN_TRY(st.run());
    row.id = db.last_insert_rowid();
    return row;
  });
}

Result<std::vector<NotificationRow>> SqliteCatalog::due_notifications(TimeNs time, int limit) {
  if (limit < 1 || limit > 1000) {
    return invalid("notification limit must be 1..1000, not " + std::to_string(limit));
  }
  return read([&](Db& db) {
    return fetch(db, rows::notifications(),
                 "WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id "
                 "LIMIT ?2",
                 [&](Stmt& st) {
                   st.bind_int64(1, time);
                   st.bind_int64(2, limit);
                 });
  });
}

Status SqliteCatalog::update_notification(const NotificationRow& row) {
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::notifications().update_sql()));
    HAVEN_TRY(rows::notifications().bind(st, row, true));
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("notification #" + std::to_string(row.id));
    return ok_status();
  });
}

Result<bool> SqliteCatalog::update_pending_notification(const NotificationRow& row) {
  return write([&](Db& db) -> Result<bool> {
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::notifications().update_sql() + " AND state = 'pending'"));
    HAVEN_TRY(rows::notifications().bind(st, row, true));
    HAVEN_ASSIGN(int64_t n, execute(st));
    return n > 0;
  });
}

Result<std::vector<NotificationRow>> SqliteCatalog::notifications_of(const std::string& alert_id) {
  return read([&](Db& db) {
    return fetch(db, rows::notifications(), "WHERE alert_id = ?1 ORDER BY id",
                 [&](Stmt& st) { st.bind_text(1, alert_id); });
  });
}

// ---- Replication regions ----

const char* to_string(ReplicationState s) {
  switch (s) {
    case ReplicationState::kActive: return "active";
    case ReplicationState::kPaused: return "paused";
    case ReplicationState::kStopped: return "stopped";
  }
  return "active";
}

std::optional<ReplicationState> replication_state_from(std::string_view s) {
  if (s == "active") return ReplicationState::kActive;
  if (s == "paused") return ReplicationState::kPaused;
  if (s == "stopped") return ReplicationState::kStopped;
  return std::nullopt;
}

namespace {

constexpr const char* kReplicationColumns =
    "location, region, state, state_changed_at, state_changed_by, status, pending_objects, "
    "pending_bytes, oldest_pending_at, newest_snapshot_at, last_pass_at, last_success_at, "
    "copied_objects, copied_bytes, last_error";

void bind_opt(Stmt& st, int i, const std::optional<TimeNs>& v) {
  if (v) {
    st.bind_int64(i, *v);
  } else {
    st.bind_null(i);
  }
}

std::optional<TimeNs> opt_col(const Stmt& st, int c) {
  if (st.is_null(c)) return std::nullopt;
  return st.int64(c);
}

ReplicationRow replication_row(const Stmt& st) {
  ReplicationRow r;
  r.location = st.text(0);
  r.region = st.text(1);
  r.state = replication_state_from(st.text(2)).value_or(ReplicationState::kActive);
  r.state_changed_at = opt_col(st, 3);
  r.state_changed_by = st.is_null(4) ? "" : st.text(4);
  r.status = st.text(5);
  r.pending_objects = st.int64(6);
  r.pending_bytes = st.int64(7);
  r.oldest_pending_at = opt_col(st, 8);
  r.newest_snapshot_at = opt_col(st, 9);
  r.last_pass_at = opt_col(st, 10);
  r.last_success_at = opt_col(st, 11);
  r.copied_objects = st.int64(12);
  r.copied_bytes = st.int64(13);
  r.last_error = st.is_null(14) ? "" : st.text(14);
  return r;
}

}  // namespace

Status SqliteCatalog::record_replication(const ReplicationRow& row) {
  static const std::set<std::string> statuses = {"ok", "warning", "critical", "failed", "unknown"};
  if (row.location.empty() || row.region.empty()) {
    return invalid("replication: location and region must not be empty");
  }
  if (!statuses.count(row.status)) return invalid("replication: unknown status '" + row.status + "'");
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare(
        "INSERT INTO replication_regions (location, region, status, pending_objects, "
        "pending_bytes, oldest_pending_at, newest_snapshot_at, last_pass_at, last_success_at, "
        "copied_objects, copied_bytes, last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
        "?10, ?11, ?12) ON CONFLICT (location, region) DO UPDATE SET status = excluded.status, "
        "pending_objects = excluded.pending_objects, pending_bytes = excluded.pending_bytes, "
        "oldest_pending_at = excluded.oldest_pending_at, newest_snapshot_at = "
        "excluded.newest_snapshot_at, last_pass_at = excluded.last_pass_at, last_success_at = "
        "excluded.last_success_at, copied_objects = excluded.copied_objects, copied_bytes = "
        "excluded.copied_bytes, last_error = excluded.last_error"));
    st.bind_text(1, row.location);
    st.bind_text(2, row.region);
    st.bind_text(3, row.status);
    st.bind_int64(4, std::max<int64_t>(0, row.pending_objects));
    st.bind_int64(5, std::max<int64_t>(0, row.pending_bytes));
    bind_opt(st, 6, row.oldest_pending_at);
    bind_opt(st, 7, row.newest_snapshot_at);
    bind_opt(st, 8, row.last_pass_at);
    bind_opt(st, 9, row.last_success_at);
    st.bind_int64(10, std::max<int64_t>(0, row.copied_objects));
    st.bind_int64(11, std::max<int64_t>(0, row.copied_bytes));
    if (row.last_error.empty()) {
      st.bind_null(12);
    } else {
      st.bind_text(12, row.last_error);
    }
    return st.run();
  });
}

Result<ReplicationRow> SqliteCatalog::set_replication_state(const std::string& location,
                                                            const std::string& region,
                                                            ReplicationState state,
                                                            const std::string& by, TimeNs at) {
  if (location.empty() || region.empty()) {
    return invalid("replication: location and region must not be empty");
  }
  return write([&](Db& db) -> Result<ReplicationRow> {
    HAVEN_ASSIGN(Stmt st, db.prepare(
        "INSERT INTO replication_regions (location, region, state, state_changed_at, "
        "state_changed_by) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (location, region) DO UPDATE "
        "SET state = excluded.state, state_changed_at = excluded.state_changed_at, "
        "state_changed_by = excluded.state_changed_by"));
    st.bind_text(1, location);
    st.bind_text(2, region);
    st.bind_text(3, to_string(state));
    st.bind_int64(4, at);
    st.bind_text(5, by);
    HAVEN_TRY(st.run());
    HAVEN_ASSIGN(Stmt q, db.prepare(std::string("SELECT ") + kReplicationColumns +
                                    " FROM replication_regions WHERE location = ?1 AND region = ?2"));
    q.bind_text(1, location);
    q.bind_text(2, region);
    HAVEN_ASSIGN(bool any, q.step());
    if (!any) return not_found("replication region " + location + "/" + region);
    return replication_row(q);
  });
}

Result<std::vector<ReplicationRow>> SqliteCatalog::list_replication() {
  return read([&](Db& db) -> Result<std::vector<ReplicationRow>> {
    HAVEN_ASSIGN(Stmt q, db.prepare(std::string("SELECT ") + kReplicationColumns +
                                    " FROM replication_regions ORDER BY location, region"));
    std::vector<ReplicationRow> out;
    for (;;) {
      HAVEN_ASSIGN(bool any, q.step());
      if (!any) break;
      out.push_back(replication_row(q));
    }
    return out;
  });
}

// ---- Audit log ----

Result<AuditRow> SqliteCatalog::append_audit(const AuditRow& in) {
  if (in.action.empty()) return invalid("audit record: action must not be empty");
  if (!in.details.is_object()) return invalid("audit record: details must be a JSON object");
  AuditRow row = in;
  if (row.time == 0) row.time = now();
  return write([&](Db& db) -> Result<AuditRow> {
    HAVEN_ASSIGN(Stmt last, db.prepare("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"));
    HAVEN_ASSIGN(bool any, last.step());
    row.seq = any ? last.int64(0) + 1 : 1;
    row.prev_hash = any ? last.text(1) : kAuditGenesis;
    row.hash = audit_hash(row);
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::audit().insert_sql()));
    HAVEN_TRY(rows::audit().bind(st, row, false));
    HAVEN_TRY(st.run());
    return row;
  });
}

Result<std::vector<AuditRow>> SqliteCatalog::audit_records(int64_t after_seq, TimeNs since,
                                                           int limit) {
  if (limit < 1 || limit > kMaxEventBatch) {
    return invalid("audit limit must be 1.." + std::to_string(kMaxEventBatch) + ", not " +
                   std::to_string(limit));
  }
  return read([&](Db& db) {
    return fetch(db, rows::audit(), "WHERE seq > ?1 AND time >= ?2 ORDER BY seq LIMIT ?3",
                 [&](Stmt& st) {
                   st.bind_int64(1, after_seq);
                   st.bind_int64(2, since);
                   st.bind_int64(3, limit);
                 });
  });
}

Result<int64_t> SqliteCatalog::audit_length() {
  return read([&](Db& db) -> Result<int64_t> {
    HAVEN_ASSIGN(auto n, db.query_int("SELECT coalesce(max(seq), 0) FROM audit_log"));
    return n.value_or(0);
  });
}

}  // namespace haven::catalog

// ---- Disaster recovery ----

namespace haven::catalog {

namespace {

Status validate_plan(const DrPlanRow& row) {
  if (row.name.empty()) return invalid("dr plan: name must not be empty");
  if (row.rto_seconds < 0 || row.rpo_seconds < 0) {
    return invalid("dr plan " + in_quotes(row.name) + ": rto and rpo must not be negative");
  }
  if (row.test_frequency_days < 0) {
    return invalid("dr plan " + in_quotes(row.name) + ": test_frequency_days must be >= 0");
  }
  if (!row.definition.is_object()) {
    return invalid("dr plan " + in_quotes(row.name) + ": definition must be a JSON object");
  }
  return ok_status();
}

}  // namespace

Result<DrPlanRow> SqliteCatalog::upsert_dr_plan(const DrPlanRow& in) {
  HAVEN_TRY(validate_plan(in));
  DrPlanRow row = in;
  HAVEN_ASSIGN(row.id, new_uuid());  // used only if the name is new
  row.created_at = row.updated_at = now();
  row.last_tested.reset();
  return write([&](Db& db) -> Result<DrPlanRow> {
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::dr_plans().upsert_sql("name")));
    HAVEN_TRY(rows::dr_plans().bind(st, row, false));
    HAVEN_ASSIGN(bool returned, st.step());
    if (!returned)
      return Error(Error::Code::kInternal, "catalog " + path_ + ": upsert returned no row");
    HAVEN_ASSIGN(DrPlanRow stored, rows::dr_plans().read(st));
    HAVEN_TRY(st.run());
    return stored;
  });
}

Result<DrPlanRow> SqliteCatalog::get_dr_plan(const std::string& key) {
  return read([&](Db& db) -> Result<DrPlanRow> {
    for (const char* column : {"id", "name"}) {
      HAVEN_ASSIGN(auto row,
                   fetch_first(db, rows::dr_plans(), std::string("WHERE ") + column + " = ?1",
                               [&](Stmt& st) { st.bind_text(1, key); }));
      if (row) return std::move(*row);
    }
    return not_found("dr plan " + in_quotes(key));
  });
}

Result<std::vector<DrPlanRow>> SqliteCatalog::list_dr_plans() {
  return read([&](Db& db) { return fetch(db, rows::dr_plans(), "ORDER BY name", [](Stmt&) {}); });
}

Status SqliteCatalog::delete_dr_plan(const std::string& id) {
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare("DELETE FROM disaster_recovery_plans WHERE id = ?1"));
    st.bind_text(1, id);
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("dr plan " + in_quotes(id));
    return ok_status();
  });
}

Status SqliteCatalog::set_dr_plan_tested(const std::string& id, TimeNs at) {
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st,
                 db.prepare("UPDATE disaster_recovery_plans SET last_tested = ?2 WHERE id = ?1"));
    st.bind_text(1, id);
    st.bind_int64(2, at);
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("dr plan " + in_quotes(id));
    return ok_status();
  });
}

Result<DrExecutionRow> SqliteCatalog::create_dr_execution(const DrExecutionRow& in) {
  DrExecutionRow row = in;
  HAVEN_ASSIGN(row.id, new_uuid());
  if (row.started_at == 0) row.started_at = now();
  return write([&](Db& db) -> Result<DrExecutionRow> {
    HAVEN_ASSIGN(bool found, exists(db, "disaster_recovery_plans", "id", row.plan_id));
    if (!found) return not_found("dr plan " + in_quotes(row.plan_id));
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::dr_executions().insert_sql()));
    HAVEN_TRY(rows::dr_executions().bind(st, row, false));
    HAVEN_TRY(st.run());
    return row;
  });
}

Status SqliteCatalog::update_dr_execution(const DrExecutionRow& row) {
  return write([&](Db& db) -> Status {
    HAVEN_ASSIGN(Stmt st, db.prepare(rows::dr_executions().update_sql()));
    HAVEN_TRY(rows::dr_executions().bind(st, row, true));
    HAVEN_ASSIGN(int64_t n, execute(st));
    if (n == 0) return not_found("dr execution " + in_quotes(row.id));
    return ok_status();
  });
}

Result<DrExecutionRow> SqliteCatalog::get_dr_execution(const std::string& id) {
  return read([&](Db& db) -> Result<DrExecutionRow> {
    HAVEN_ASSIGN(auto row, fetch_first(db, rows::dr_executions(), "WHERE id = ?1",
                                       [&](Stmt& st) { st.bind_text(1, id); }));
    if (!row) return not_found("dr execution " + in_quotes(id));
    return std::move(*row);
  });
}

Result<std::vector<DrExecutionRow>> SqliteCatalog::list_dr_executions(const std::string& plan_id,
                                                                      int limit) {
  if (limit < 1 || limit > 1000) return invalid("dr executions: limit must be 1 to 1000");
  return read([&](Db& db) {
    if (plan_id.empty()) {
      return fetch(db, rows::dr_executions(), "ORDER BY started_at DESC, id DESC LIMIT ?1",
                   [&](Stmt& st) { st.bind_int64(1, limit); });
    }
    return fetch(db, rows::dr_executions(),
                 "WHERE plan_id = ?1 ORDER BY started_at DESC, id DESC LIMIT ?2", [&](Stmt& st) {
                   st.bind_text(1, plan_id);
                   st.bind_int64(2, limit);
                 });
  });
}

Result<DrExecutionRow> SqliteCatalog::decide_dr_approval(const std::string& id, bool approve,
                                                         const std::string& by, TimeNs at) {
  if (by.empty()) return invalid("dr approval: who decides must be named");
  return write([&](Db& db) -> Result<DrExecutionRow> {
    HAVEN_ASSIGN(auto row, fetch_first(db, rows::dr_executions(), "WHERE id = ?1",
                                       [&](Stmt& st) { st.bind_text(1, id); }));
    if (!row) return not_found("dr execution " + in_quotes(id));
    if (row->approval_status != ApprovalStatus::kPending) {
      return Error(Error::Code::kAlreadyExists,
                   "dr execution " + in_quotes(id) + " is not waiting for approval (it is " +
                       std::string(to_string(row->approval_status)) + ")");
    }
    if (row->executed_by == by) {
      return Error(Error::Code::kPermissionDenied,
                   in_quotes(by) + " asked for dr execution " + in_quotes(id) +
                       ": a second principal must approve or reject it");
    }
    HAVEN_ASSIGN(Stmt st, db.prepare(
        "UPDATE disaster_recovery_executions SET approval_status = ?2, approved_by = ?3, "
        "approved_at = ?4, status = CASE WHEN ?5 THEN status ELSE 'cancelled' END, "
        "completed_at = CASE WHEN ?5 THEN completed_at ELSE ?4 END "
        "WHERE id = ?1 AND approval_status = 'pending'"));
    st.bind_text(1, id);
    st.bind_text(2, approve ? "approved" : "rejected");
    st.bind_text(3, by);
    st.bind_int64(4, at);
    st.bind_int64(5, approve ? 1 : 0);
    HAVEN_TRY(st.run());
    HAVEN_ASSIGN(auto stored, fetch_first(db, rows::dr_executions(), "WHERE id = ?1",
                                          [&](Stmt& q) { q.bind_text(1, id); }));
    return std::move(*stored);
  });
}

Result<int64_t> SqliteCatalog::mark_dr_interrupted(const std::string& except_instance) {
  const TimeNs t = now();
  return write([&](Db& db) -> Result<int64_t> {
    HAVEN_ASSIGN(Stmt st, db.prepare(
        "UPDATE disaster_recovery_executions SET status = 'interrupted', completed_at = ?1, "
        "error_message = 'interrupted: the process running it stopped before it ended' "
        "WHERE status = 'running' AND server_instance IS NOT NULL AND server_instance <> '' "
        "AND server_instance <> ?2"));
    st.bind_int64(1, t);
    st.bind_text(2, except_instance);
    return execute(st);
  });
}

}  // namespace haven::catalog

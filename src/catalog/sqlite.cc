#include "catalog/sqlite.h"

#include <utility>

namespace haven::catalog::sqlite {

Error sqlite_error(int rc, const std::string& path, const std::string& message) {
  using C = Error::Code;
  C code = C::kInternal;
  std::string hint;
  switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      code = C::kAlreadyExists;
      break;
    default:
      switch (rc & 0xff) {
        case SQLITE_CONSTRAINT:
          code = C::kInvalidArgument;
          break;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
          code = C::kTransient;
          hint = " (another process holds the catalog's lock; try again)";
          break;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
          code = C::kCorrupt;
          hint = " (restore the catalog from a copy, or move it aside to start a new one)";
          break;
        case SQLITE_FULL:
          code = C::kNoSpace;
          break;
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
          code = C::kPermissionDenied;
          hint = " (check the permissions of the file and its directory)";
          break;
        case SQLITE_IOERR:
        case SQLITE_CANTOPEN:
        case SQLITE_PROTOCOL:
          code = C::kIo;
          break;
        case SQLITE_INTERRUPT:
          code = C::kCancelled;
          break;
        default:
          code = C::kInternal;
          break;
      }
  }
  return Error(code, "catalog " + path + ": " + message + hint);
}

// ---- Stmt ----

Stmt::Stmt(Stmt&& o) noexcept : db_(o.db_), s_(o.s_), cached_(o.cached_), bind_rc_(o.bind_rc_) {
  o.s_ = nullptr;
}

Stmt::~Stmt() {
  if (s_ == nullptr) return;
  if (cached_) {
    db_->release(s_);
  } else {
    sqlite3_finalize(s_);
  }
}

void Stmt::bind_int64(int i, int64_t v) {
  int rc = sqlite3_bind_int64(s_, i, v);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}
void Stmt::bind_double(int i, double v) {
  int rc = sqlite3_bind_double(s_, i, v);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}
void Stmt::bind_text(int i, std::string_view v) {
  int rc = sqlite3_bind_text64(s_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}
void Stmt::bind_null(int i) {
  int rc = sqlite3_bind_null(s_, i);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

Result<bool> Stmt::step() {
  if (bind_rc_ != SQLITE_OK) return db_->error(bind_rc_, "binding a parameter");
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  // sqlite3_step's code is the extended one (extended result codes are on).
  return db_->error(rc);
}

Status Stmt::run() {
  while (true) {
    HAVEN_ASSIGN(bool row, step());
    if (!row) return ok_status();
  }
}

bool Stmt::is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
int64_t Stmt::int64(int col) const { return sqlite3_column_int64(s_, col); }
double Stmt::real(int col) const { return sqlite3_column_double(s_, col); }
std::string Stmt::text(int col) const {
  const unsigned char* p = sqlite3_column_text(s_, col);
  int n = sqlite3_column_bytes(s_, col);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
}
int Stmt::type(int col) const { return sqlite3_column_type(s_, col); }

// ---- Db ----

Result<std::unique_ptr<Db>> Db::open(const std::string& path, int flags, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    int ext = raw ? sqlite3_extended_errcode(raw) : rc;
    sqlite3_close_v2(raw);  // a no-op for nullptr
    return sqlite_error(ext, path, msg);
  }
  std::unique_ptr<Db> db(new Db(path, raw));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  return db;
}

Db::~Db() {
  for (auto& [sql, c] : cache_) sqlite3_finalize(c.stmt);
  // close_v2: never fails for unfinalized statements (there are none left anyway).
  sqlite3_close_v2(db_);
}

Result<Stmt> Db::prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return Stmt(this, it->second.stmt, true);
  }
  sqlite3_stmt* s = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &s, &tail);
  if (rc != SQLITE_OK) return error(rc, "preparing a statement");
  if (s == nullptr) return Error(Error::Code::kInternal, "catalog " + path_ + ": empty statement");
  if (it != cache_.end()) return Stmt(this, s, false);  // the cached one is busy: a one-off
  cache_.emplace(sql, Cached{s, true});
  return Stmt(this, s, true);
}

void Db::release(sqlite3_stmt* s) {
  sqlite3_reset(s);  // ends the statement's read, whatever happened; its error was reported
  sqlite3_clear_bindings(s);
  for (auto& [sql, c] : cache_) {
    if (c.stmt == s) {
      c.in_use = false;
      return;
    }
  }
  sqlite3_finalize(s);  // not ours: cannot happen
}

Status Db::exec(const std::string& sql) {
  char* msg = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg);
  if (rc != SQLITE_OK) {
    std::string m = msg ? msg : sqlite3_errstr(rc);
    sqlite3_free(msg);
    return sqlite_error(sqlite3_extended_errcode(db_), path_, m);
  }
  return ok_status();
}

Result<std::optional<int64_t>> Db::query_int(const std::string& sql) {
  HAVEN_ASSIGN(Stmt st, prepare(sql));
  HAVEN_ASSIGN(bool row, st.step());
  if (!row || st.is_null(0)) return std::optional<int64_t>();
  return std::optional<int64_t>(st.int64(0));
}

Result<std::optional<std::string>> Db::query_text(const std::string& sql) {
  HAVEN_ASSIGN(Stmt st, prepare(sql));
  HAVEN_ASSIGN(bool row, st.step());
  if (!row || st.is_null(0)) return std::optional<std::string>();
  return std::optional<std::string>(st.text(0));
}

int64_t Db::changes() const { return sqlite3_changes64(db_); }
int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

Error Db::error(int rc, std::string_view doing) const {
  std::string msg = sqlite3_errmsg(db_);
  if (msg.empty() || msg == "not an error") msg = sqlite3_errstr(rc);
  if (!doing.empty()) msg = std::string(doing) + ": " + msg;
  return sqlite_error(rc, path_, msg);
}

// ---- Txn ----

Result<Txn> Txn::begin(Db& db, Mode mode) {
  HAVEN_TRY(db.exec(mode == Mode::kWrite ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED"));
  return Txn(&db);
}

Txn::~Txn() {
  if (db_ == nullptr) return;
  // Rolls back whatever the failed transaction did. A failure here leaves nothing to do: if
  // SQLite already rolled back (some errors do), there is no transaction left.
  if (!sqlite3_get_autocommit(db_->handle())) (void)db_->exec("ROLLBACK");
}

Status Txn::commit() {
  HAVEN_TRY(db_->exec("COMMIT"));
  db_ = nullptr;
  return ok_status();
}

}  // namespace haven::catalog::sqlite

// catalog/sqlite.h — small RAII wrappers over the SQLite C API: a connection (Db) with a cache
// of prepared statements, a statement (Stmt) and a transaction (Txn). Errors become
// haven::Error in one place (sqlite_error) with the database file named.
//
// Thread-safety: none here. A Db and its statements are used by one thread at a time; the
// catalog guarantees it (a mutex for the writer, a pool lease for each reader). SQLite runs
// in multi-thread mode (SQLITE_OPEN_NOMUTEX) accordingly.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/error.h"

namespace haven::catalog::sqlite {

// The Error for SQLite result code `rc` (extended codes understood): unique and primary-key
// conflicts are kAlreadyExists, other constraint failures kInvalidArgument, BUSY/LOCKED
// kTransient, CORRUPT/NOTADB kCorrupt, FULL kNoSpace, READONLY/PERM/AUTH kPermissionDenied,
// IOERR/CANTOPEN/PROTOCOL kIo, INTERRUPT kCancelled, anything else kInternal.
// The message is "catalog <path>: <message>".
Error sqlite_error(int rc, const std::string& path, const std::string& message);

class Db;

// A prepared statement. Bind errors are kept and reported by the next step(), so binding is
// not a chain of checks. A statement from the connection's cache is reset (releasing its read
// snapshot) and returned to the cache when this object is destroyed.
class Stmt {
 public:
  Stmt(Stmt&& o) noexcept;
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;
  ~Stmt();

  // Parameters are 1-based, as in SQLite.
  void bind_int64(int i, int64_t v);
  void bind_double(int i, double v);
  void bind_text(int i, std::string_view v);
  void bind_null(int i);

  // Advances: true if a row is available, false when done.
  Result<bool> step();
  // Steps until done (a statement that returns no rows, or whose rows do not matter).
  Status run();

  // Columns are 0-based, as in SQLite.
  bool is_null(int col) const;
  int64_t int64(int col) const;
  double real(int col) const;
  std::string text(int col) const;
  int type(int col) const;  // SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL

  Db& db() const { return *db_; }

 private:
  friend class Db;
  Stmt(Db* db, sqlite3_stmt* s, bool cached) : db_(db), s_(s), cached_(cached) {}
  Db* db_;
  sqlite3_stmt* s_;
  bool cached_;
  int bind_rc_ = SQLITE_OK;
};

// One connection.
class Db {
 public:
  // `flags`: SQLITE_OPEN_* (SQLITE_OPEN_NOMUTEX is added). Sets the busy timeout and extended
  // result codes.
  static Result<std::unique_ptr<Db>> open(const std::string& path, int flags, int busy_timeout_ms);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // A statement for `sql` (one statement), from the cache when it is not already in use.
  Result<Stmt> prepare(const std::string& sql);
  // Runs one or more statements that return no rows (schema, pragmas, BEGIN/COMMIT).
  Status exec(const std::string& sql);
  // The first column of the first row of `sql` as an integer (PRAGMA user_version...);
  // nullopt if there is no row or it is NULL.
  Result<std::optional<int64_t>> query_int(const std::string& sql);
  // The same as text.
  Result<std::optional<std::string>> query_text(const std::string& sql);

  // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  int64_t changes() const;
  int64_t last_insert_rowid() const;

  // The Error for `rc` with this connection's last message, and `doing` as context.
  Error error(int rc, std::string_view doing = {}) const;
  const std::string& path() const { return path_; }
  sqlite3* handle() { return db_; }

 private:
  friend class Stmt;
  Db(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  void release(sqlite3_stmt* s);

  struct Cached {
    sqlite3_stmt* stmt;
    bool in_use;
  };
  std::string path_;
  sqlite3* db_;
  std::unordered_map<std::string, Cached> cache_;
};

// A transaction on one connection; rolled back when destroyed uncommitted.
class Txn {
 public:
  enum class Mode {
    kRead,   // BEGIN DEFERRED: one consistent snapshot for several reads
    kWrite,  // BEGIN IMMEDIATE: takes the write lock at once (never a BUSY upgrade later)
  };
  static Result<Txn> begin(Db& db, Mode mode);
  Txn(Txn&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Txn& operator=(Txn&&) = delete;
  ~Txn();

  Status commit();

 private:
  explicit Txn(Db* db) : db_(db) {}
  Db* db_;
};

}  // namespace haven::catalog::sqlite

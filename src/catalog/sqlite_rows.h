// catalog/sqlite_rows.h — how each row struct maps to its SQLite table: one list of columns per
// table (name, member, whether an update writes it), from which the SELECT list, the INSERT,
// the UPDATE and the upsert are made, so a column is named in exactly one place.
//
// Value conversions (bind_value/read_value): TimeNs and other integers as INTEGER, bool as
// 0/1, double as REAL, enumerations as their names, JSON as its text (null as SQL NULL), string
// arrays as a JSON array, std::optional as NULL when empty. A stored value that does not
// convert back (an unknown enumeration name, JSON that does not parse) is kCorrupt, naming the
// table and column.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "catalog/rows.h"
#include "catalog/sqlite.h"

namespace haven::catalog::sqlite_rows {

template <typename Row>
struct Column {
  std::string name;  // as written in SQL ("trigger" quoted)
  bool updatable;    // written by UPDATE and by an upsert's DO UPDATE
  std::function<Status(sqlite::Stmt&, int, const Row&)> bind;
  std::function<Status(const sqlite::Stmt&, int, Row&)> read;
};

// A table whose first column is its key (`id`). Parameters are numbered by column position:
// column i (0-based) is ?(i+1) in every statement made here.
template <typename Row>
class Table {
 public:
  Table(std::string name, std::vector<Column<Row>> columns);

  const std::string& name() const { return name_; }
  // "id, name, ...": the SELECT list read() expects.
  const std::string& select_list() const { return select_list_; }
  // "SELECT <list> FROM <table> "
  std::string select() const { return "SELECT " + select_list_ + " FROM " + name_ + " "; }
  // INSERT of every column.
  const std::string& insert_sql() const { return insert_sql_; }
  // UPDATE of the updatable columns WHERE id = ?1.
  const std::string& update_sql() const { return update_sql_; }
  // INSERT ... ON CONFLICT(<key>) DO UPDATE of the updatable columns, RETURNING every column.
  std::string upsert_sql(const std::string& conflict_column) const;

  // Binds every column (for_update: the key and the updatable ones).
  Status bind(sqlite::Stmt& st, const Row& row, bool for_update) const;
  // The row at the statement's current position (columns in select_list order).
  Result<Row> read(const sqlite::Stmt& st) const;

 private:
  std::string name_;
  std::vector<Column<Row>> columns_;
  std::string select_list_, insert_sql_, update_sql_;
};

const Table<PolicyRow>& policies();
const Table<LocationRow>& locations();
const Table<ExecutionRow>& executions();
const Table<RestoreRow>& restores();
const Table<EventRow>& events();
const Table<TokenRow>& tokens();
const Table<MonitorRow>& monitors();
const Table<AlertRow>& alerts();
const Table<NotificationRow>& notifications();
const Table<AuditRow>& audit();
const Table<DrPlanRow>& dr_plans();
const Table<DrExecutionRow>& dr_executions();

// The JSON text stored for `v` (kInvalidArgument if it cannot be serialised: invalid UTF-8).
Result<std::string> json_text(const nlohmann::json& v, const std::string& what);

}  // namespace haven::catalog::sqlite_rows

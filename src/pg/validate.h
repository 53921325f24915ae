// pg/validate.h — is a (restored) cluster sound? Connect, count the rows of every table,
// look for rows that break a foreign key, check every B-tree index with amcheck (where the
// extension is available), read the checksum-failure counters, and compare the row counts with
// those recorded when the base backup was taken.
//
// Row counts recorded at backup time describe the moment just before pg_backup_stop; a cluster
// recovered to another point in time differs where it should, so differences are reported,
// not failed. Broken foreign keys, corrupt indexes and checksum failures fail the validation.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "pg/pgconn.h"

namespace haven::pg {

// "schema.table" -> rows, for the tables of the connected database.
Result<std::map<std::string, uint64_t>> count_rows(Connection& conn);

struct Validation {
  std::map<std::string, uint64_t> rows;
  std::vector<std::string> failures;  // foreign keys, indexes, checksums
  std::vector<std::string> notes;     // amcheck unavailable, row counts that differ…
  size_t foreign_keys = 0, indexes_checked = 0;
  size_t tables_compared = 0, tables_differing = 0;
  bool ok() const { return failures.empty(); }
};

// `recorded`: row counts from the base backup (empty: no comparison).
Result<Validation> validate(Connection& conn, const std::map<std::string, uint64_t>& recorded);

}  // namespace haven::pg

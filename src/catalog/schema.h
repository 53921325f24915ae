// catalog/schema.h — the SQLite catalog's schema as an ordered list of migrations, and the one
// function that brings a database up to date.
//
// PRAGMA user_version is the number of the last migration applied (0: a new, empty file).
// A migration is never edited once released: a change to the schema is a new step at the end.
// PRAGMA application_id marks the file as a Haven catalog, so that a path pointing at some
// other program's SQLite database is refused instead of being filled with our tables.
//
// Column conventions (schema.cc): times are INTEGER nanoseconds since the Unix epoch, UTC;
// IDs are TEXT UUIDs; JSONB and arrays are TEXT holding JSON, checked with json_valid;
// booleans are INTEGER 0/1; enumerations are TEXT with a CHECK listing the seed's values.
// Every table is STRICT, so a value of the wrong type is refused rather than converted.
#pragma once

#include <cstdint>
#include <vector>

#include "catalog/sqlite.h"
#include "util/error.h"

namespace haven::catalog {

struct Migration {
  int version;          // 1, 2, ...: the user_version once applied
  const char* summary;  // for error messages
  const char* sql;      // one or more statements
};

// The migrations in order; migrations()[i].version == i + 1.
const std::vector<Migration>& migrations();
int latest_schema_version();

// "HVNC": PRAGMA application_id of a Haven catalog.
constexpr int32_t kApplicationId = 0x48564E43;

// Refuses, before anything is written, a file that is not a Haven catalog this binary can
// open: a SQLite database of another program (kInvalidArgument), a catalog written by a newer
// Haven (kUnsupported), a file that is not SQLite (kCorrupt, from SQLite). Read-only.
Status check_catalog_file(sqlite::Db& db);

// Brings the database on `db` (a read-write connection with no transaction open) to
// latest_schema_version(): the missing migrations run in one IMMEDIATE transaction, with
// foreign-key enforcement suspended while they run and checked (PRAGMA foreign_key_check)
// before the commit, so a step may rebuild a table. A failure rolls back every step.
// Restores PRAGMA foreign_keys=ON before returning.
// kUnsupported if the database's version is newer than this binary's; kInvalidArgument if it
// is a SQLite database of another program.
Status migrate(sqlite::Db& db);

}  // namespace haven::catalog

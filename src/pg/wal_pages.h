// pg/wal_pages.h — which relation pages the WAL says changed (pg_probackup's PAGE mode).
//
// Every change PostgreSQL makes to a relation page is a WAL record that names the page (a
// block reference: tablespace, database, relation, fork, block number). Reading the WAL
// between two positions therefore tells which pages changed between them without reading
// the relations. The reader checks what it reads: each WAL page's address and timeline, each
// record's CRC-32C and its link to the record before; anything else is an error, and the
// caller then reads the relations instead.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "util/bytes.h"
#include "util/error.h"

namespace haven::pg {

// A relation's storage: tablespace OID (1663 pg_default, 1664 pg_global), database OID (0 for
// shared relations), relation file number.
struct RelationId {
  uint32_t spc = 0, db = 0, rel = 0;
  friend auto operator<=>(const RelationId&, const RelationId&) = default;
};

// Block numbers of each relation's main fork, sorted, each once.
using ChangedBlocks = std::map<RelationId, std::vector<uint32_t>>;

// What the WAL between two positions changed. Pages can also change without a block reference:
// a relation created (its file may replace a dropped one of the same name, whose pages are
// not this relation's), truncated (and extended again with zeroed pages, which are not
// logged), or a database created by copying files. Their files must be read whole.
struct WalChanges {
  ChangedBlocks blocks;
  std::set<RelationId> created_or_truncated;
  std::set<uint32_t> created_databases;
};

// The main-fork blocks named by the records that start in [from, to) on `timeline`. `from`
// must be where a record starts (a checkpoint's redo position is). `segment(name)` returns
// one whole WAL segment of `segment_size` bytes by file name.
Result<WalChanges> wal_changed_blocks(uint64_t from, uint64_t to, uint32_t timeline,
                                         uint64_t segment_size,
                                         const std::function<Result<Bytes>(const std::string&)>& segment);

// The name of the segment holding `lsn` on `timeline` (TTTTTTTTLLLLLLLLSSSSSSSS).
std::string segment_file_name(uint32_t timeline, uint64_t lsn, uint64_t segment_size);

// CRC-32C (Castagnoli), as PostgreSQL checks WAL records with: `crc` continues a running
// value (start with crc32c_init()), crc32c_final() finishes it.
uint32_t crc32c_init();
uint32_t crc32c_update(uint32_t crc, ByteView data);
uint32_t crc32c_final(uint32_t crc);

}  // namespace haven::pg

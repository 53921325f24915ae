// check/check.h — integrity validation of a repository: its structure always, and every byte
// (or a sample of packs) when asked. Every problem names the object at fault and what it
// affects: which snapshots and which files in them.
//
// Structure: every key file parses; every index file decrypts; every pack an index names exists
// and is long enough; every snapshot decrypts; every tree of every snapshot is in the index and
// decrypts; every data blob a file references is in the index. Packs no index names are a
// notice (an interrupted backup leaves them; prune deletes them), not damage.
// Read data: each selected pack is downloaded whole; its header, its trailer and every blob the
// index places in it are authenticated, decompressed, and hashed again to compare with the
// blob's ID; the trailer must agree with the index.
//
// Memory: the repository index, one bit per blob ("seen"), the damage found (capped per tree),
// and one pack per reading thread — never proportional to the data.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "repo/repository.h"
#include "repo/session.h"
#include "util/events.h"

namespace haven::check {

struct Options {
  enum class ReadData { kNone, kAll, kPercent, kGroup };
  ReadData read_data = ReadData::kNone;
  double percent = 0;          // kPercent: this share of packs, chosen at random
  uint32_t group = 0, groups = 0;  // kGroup: packs whose ID falls in group K of N (1-based)
  size_t threads = 2;          // packs read and verified at once
  // read-data gathers the index positions of this many blobs at a time (4 bytes each), one
  // pass over the index per batch of packs (a pack bigger than that is a batch of its own).
  size_t read_batch_blobs = size_t{1} << 18;
  size_t max_paths = 20;       // affected paths listed per problem and snapshot
};

// Parses "--read-data-subset": "N%" (0 < N <= 100) or "K/N" (1 <= K <= N). Fills `o`.
Status parse_subset(const std::string& spec, Options& o);

struct Problem {
  std::string object;  // "pack 3fa9…", "index …", "snapshot …", "key …", "tree …", "data blob …"
  std::string error;   // what is wrong with it
  bool damage = true;  // false: a notice that leaves the repository healthy
  // Affected snapshots (full ID) → paths inside them ("/" = the whole snapshot).
  std::map<std::string, std::vector<std::string>> affected;
  std::map<std::string, uint64_t> affected_count;  // paths per snapshot, also those not listed
};

struct Report {
  std::vector<Problem> problems;
  uint64_t keys = 0, index_files = 0, snapshots = 0, trees = 0, data_blobs = 0;
  uint64_t packs = 0, packs_unindexed = 0, packs_read = 0, blobs_read = 0, bytes_read = 0;
  uint64_t blobs_unused = 0, bytes_unused = 0;  // in the index, referenced by no snapshot
  uint64_t wal_files = 0, wal_read = 0;         // PostgreSQL WAL archive (filled in by pg/)
  uint64_t duration_ms = 0;
  bool damaged() const;
};

// `session` holds (at least) a shared lock; the check runs under its token. Reads the index
// files into an index of its own (Repository::read_index), so sessions that write meanwhile do
// not disturb it. Fails only when the repository cannot be examined at all (e.g. the backend
// is unreachable); damage is reported in the Report.
// Events: check:started, check:progress (phases "index", "packs", "snapshots", "trees",
// "read-data"; items are index files, packs, snapshots, trees), then check:completed
// ({damaged, problems}) — damage is a completed check with damaged=true — check:failed or
// check:cancelled.
Result<Report> check(repo::Session& session, const Options& options, const EventTarget& events);

nlohmann::json report_json(const Report& r);

}  // namespace haven::check

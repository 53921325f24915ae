// ops/check.h — `check` (structure, data with read_data, and the PostgreSQL WAL archive),
// `repair index`, and `unlock`. Engines: check/check.h, check/repair.h, pg/archive_check.h.
// Conventions: ops/ops.h.
#pragma once

#include <string>
#include <vector>

#include "check/check.h"
#include "check/repair.h"
#include "repo/repository.h"
#include "util/events.h"

namespace haven::ops {

// Open the repository for check with repo::OpenOptions{.try_all_keys = true}: then a key file
// of another repository is named in the report.
struct CheckRequest {
  bool read_data = false;        // read, decrypt and verify every blob and WAL file
  std::string read_data_subset;  // or only some packs: "N%" at random, or group "K/N"
  size_t threads = 2;            // packs verified at once, 1 to 64
};

Status validate(const CheckRequest& request);

// Shared lock; the repository's structure (and data), then the WAL archive (pg/archive_check.h)
// into the same report. Damage is in the Report (Report::damaged()), not an Error; an Error
// means the repository could not be examined (or the check was cancelled).
Result<check::Report> check(repo::Repository& repo, const CheckRequest& request,
                            const EventTarget& events);

struct RepairIndexRequest {};

// Exclusive lock; rebuilds the index from the packs' trailers. Packs whose data is lost are in
// RepairStats::unreadable_packs.
Result<check::RepairStats> repair_index(repo::Repository& repo, const RepairIndexRequest& request,
                                        const EventTarget& events);

struct UnlockRequest {
  bool remove_all = false;  // also live locks (make sure nothing runs)
};

struct UnlockResult {
  std::vector<std::string> removed;  // the locks removed, described
};

// Removes locks whose holder is gone and lock objects that cannot be read (takes no lock).
Result<UnlockResult> unlock(repo::Repository& repo, const UnlockRequest& request);

}  // namespace haven::ops

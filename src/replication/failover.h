// replication/failover.h — read failover: a repository's primary backend, with its secondary
// regions behind it for reading. A load() that fails in the primary (a pack or WAL file is
// missing, or the region cannot be reached) is served by the first region that has the
// object (a missing snapshot or index file is not: forget and prune delete those on purpose,
// and a region's copy not yet mirrored must not bring one back); a reader
// that finds the primary's bytes damaged (they fail authentication) asks load_other_copy() and
// gets the first region's copy. Each substitution is reported through `on_failover` (what,
// from where, and why), so the reader says so; the primary is never changed (haven repair
// --from does that). Writes, listings and deletions go to the primary alone.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "replication/replication.h"
#include "storage/backend.h"

namespace haven::replication {

class FailoverBackend : public storage::BackendWrapper {
 public:
  using Report = std::function<void(const storage::ObjectName& name, const std::string& region,
                                     const Error& why)>;
  FailoverBackend(std::shared_ptr<storage::Backend> primary, std::vector<Region> others,
                  Report on_failover)
      : BackendWrapper(std::move(primary)),
        others_(std::move(others)),
        report_(std::move(on_failover)) {}

  Result<Bytes> load(const storage::ObjectName& name, uint64_t offset, uint64_t length) override;
  // Ranges come in pieces when the primary's do (object storage): a read that fails in the
  // primary takes the rest of the range, after the pieces already handed over, from a region
  // (as load() would take all of it; the copies are the same bytes).
  bool streams_reads() const override { return inner().streams_reads(); }
  Status load_pieces(const storage::ObjectName& name, uint64_t offset, uint64_t length,
                     const std::function<void(ByteView)>& piece) override;
  Result<Bytes> load_other_copy(const storage::ObjectName& name, uint64_t offset, uint64_t length,
                                const Error& why) override;

 private:
  // Whether a failed read of `name` in the primary is taken from a region instead.
  static bool fails_over(const storage::ObjectName& name, const Error& e);
  std::vector<Region> others_;
  Report report_;
};

}  // namespace haven::replication

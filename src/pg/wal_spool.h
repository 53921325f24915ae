// pg/wal_spool.h — WAL segments fetched ahead of a recovering server. restore_command asks for
// one segment at a time and replays it before asking for the next; with a spool, wal-fetch
// hands the server a segment a background prefetch already fetched and decrypted (as
// pgBackRest's asynchronous archive-get does), and the prefetch fetches the next ones in
// parallel while the server replays.
//
// Layout of the spool directory (one per restored cluster: <data>/pg_wal/haven-prefetch):
//   <NAME>               a whole segment, ready to be taken (written as <NAME>.haven-<pid>,
//                        then renamed, so a taker never sees a partial file)
//   .lock                held (flock) by the one prefetch running
//   .plan                the names that prefetch is fetching, one per line
// A file is taken by renaming it to where PostgreSQL asked for it. The spool is a cache: losing
// it only costs fetching again.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "util/bytes.h"
#include "util/error.h"

namespace haven::pg {

class WalSpool {
 public:
  explicit WalSpool(std::string dir) : dir_(std::move(dir)) {}
  WalSpool(const WalSpool&) = delete;
  WalSpool& operator=(const WalSpool&) = delete;
  ~WalSpool();

  // Creates the directory (mode 0700) if it is missing.
  Status create() const;
  bool has(const std::string& name) const;
  // Moves the spooled `name` to `dest` (replacing it): its size, or nullopt if not spooled.
  Result<std::optional<uint64_t>> take(const std::string& name, const std::string& dest) const;
  // Whether a prefetch is running, and whether `name` is among what it is fetching.
  bool prefetch_running() const;
  bool planned(const std::string& name) const;
  // Removes the spooled segments named below `segment` (the server has gone past them: lower
  // segments of its timeline, or of earlier timelines).
  void drop_before(const std::string& segment) const;
  // Removes every spooled file (after recovery), waiting for a running prefetch to end.
  Status clear();

  // For the prefetch: takes the lock (false: another prefetch holds it), records the plan,
  // adds a segment.
  Result<bool> lock();
  Status write_plan(const std::vector<std::string>& names) const;
  Status put(const std::string& name, ByteView data) const;

 private:
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
  int lock_fd_ = -1;
};

// The `count` segment names that follow `segment` on its timeline, for segments of
// `segment_size` bytes (a power of two from 1 MiB to 1 GiB); empty if either is not valid.
std::vector<std::string> next_segment_names(const std::string& segment, uint64_t segment_size,
                                            unsigned count);

}  // namespace haven::pg

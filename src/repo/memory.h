// repo/memory.h — one memory limit for the work a process does on a repository, and how the
// engines share it out.
//
// Without a limit every engine uses its own defaults (memory then depends on settings, never on
// the amount of data: ~50 MiB for a backup, ~80 MiB for check --read-data). With one, what
// those settings size is fitted into it:
//   - the index's in-memory table: limit / 16 (the rest spills to disk, repo/index.h);
//   - a fixed reserve for the program itself: code, libraries, thread stacks, the allocator's
//     slack, trees and plans in flight (kReserve);
//   - the rest, the working share, bounds the buffers of whatever runs: backup workers (each
//     holds up to three chunks), pack builders, restore's ranges in flight and directory trees
//     loaded ahead, check's readers (each holds one pack and two blobs, each sealed and opened).
// Engines never go below one worker, so the limit has a floor (kMinimum); a key derivation
// (Argon2id's memory is the key file's) comes on top and is the caller's to refuse.
#pragma once

#include <algorithm>
#include <cstdint>

namespace haven::repo {

struct MemoryBudget {
  static constexpr uint64_t kReserve = 20u << 20;
  static constexpr uint64_t kMinimum = 48u << 20;

  uint64_t limit = 0;  // bytes; 0: no limit (every engine's defaults)
  uint64_t index = 0;  // the index's table when set by hand (bytes); 0: limit / 16

  bool limited() const { return limit != 0; }
  // The index's in-memory table (0 when unlimited: the caller's own default applies).
  uint64_t index_bytes() const {
    if (!limited()) return 0;
    return index != 0 ? index : std::max<uint64_t>(limit / 16, 64u << 10);
  }
  // What buffers may hold at once, after the reserve and the index.
  uint64_t work_bytes() const {
    if (!limited()) return UINT64_MAX;
    uint64_t fixed = kReserve + index_bytes();
    return limit > fixed ? limit - fixed : 0;
  }
  // How many of `wanted` threads fit in `share` of the working bytes when each holds
  // `per_thread` bytes; never fewer than one.
  unsigned threads(unsigned wanted, uint64_t per_thread, double share = 1.0) const {
    if (!limited() || per_thread == 0) return wanted;
    uint64_t fit = static_cast<uint64_t>(static_cast<double>(work_bytes()) * share) / per_thread;
    return static_cast<unsigned>(std::clamp<uint64_t>(fit, 1, std::max(1u, wanted)));
  }
  // `wanted` bytes, or `share` of the working bytes if that is less (at least `floor`).
  uint64_t bytes(uint64_t wanted, double share, uint64_t floor = 0) const {
    if (!limited()) return wanted;
    uint64_t fit = static_cast<uint64_t>(static_cast<double>(work_bytes()) * share);
    return std::min(wanted, std::max(fit, floor));
  }
};

}  // namespace haven::repo

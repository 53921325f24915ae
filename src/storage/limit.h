// storage/limit.h — caps on what a backend may use: concurrent calls ("connections") and
// bandwidth (the seeds' bandwidth_limit_mbps), shared by every thread of the process.
//
// Bandwidth is paced, not burst: each save or load reserves the time its bytes take at the
// configured rate on one shared timeline and waits until its slot ends, so the average rate
// over any stretch of transfers stays at or below the limit. Uploads and downloads share it.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "storage/backend.h"

namespace haven::storage {

struct Limits {
  double bandwidth_mbps = 0;  // megabits per second; 0 = unlimited
  int connections = 0;        // concurrent backend calls; 0 = unlimited
  bool any() const { return bandwidth_mbps > 0 || connections > 0; }
};

class LimitBackend : public BackendWrapper {
 public:
  LimitBackend(std::shared_ptr<Backend> inner, Limits limits);

  Status save(const ObjectName& n, ByteView d) override;
  Status save_new(const ObjectName& n, ByteView d) override;
  Result<Bytes> load(const ObjectName& n, uint64_t off, uint64_t len) override;
  Status load_into(const ObjectName& n, uint64_t off, std::span<uint8_t> out) override;
  bool streams_reads() const override { return inner().streams_reads(); }
  Status load_pieces(const ObjectName& n, uint64_t off, uint64_t len,
                     const std::function<void(ByteView)>& piece) override;
  Result<ObjectInfo> stat(const ObjectName& n) override;
  Status list(ObjectType t, const std::function<void(const ObjectInfo&)>& fn) override;
  Status remove(const ObjectName& n) override;
  Status discard(const ObjectName& n) override;

 private:
  class Slot;  // holds one connection for its lifetime
  void pace(uint64_t bytes);

  Limits limits_;
  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0;
  std::chrono::steady_clock::time_point next_free_{};
};

// Checks user-given limits: kInvalidArgument naming the option otherwise.
Status validate_limits(const Limits& l);

}  // namespace haven::storage

// tests/support/slow_loads.h — a decorator around a REAL backend that delays every load of one
// object type (a round trip to object storage) and counts how many such loads were in flight at
// once; it reports `ahead` as its loads_ahead() (0: the inner backend's own). For tests of what
// is fetched ahead, and how far.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "storage/backend.h"

namespace haven::testing {

class SlowLoads : public storage::BackendWrapper {
 public:
  SlowLoads(std::shared_ptr<storage::Backend> inner, storage::ObjectType type, size_t ahead = 0)
      : BackendWrapper(std::move(inner)), type_(type), ahead_(ahead) {}

  size_t loads_ahead() const override { return ahead_ != 0 ? ahead_ : BackendWrapper::loads_ahead(); }

  Result<Bytes> load(const storage::ObjectName& n, uint64_t off, uint64_t len) override {
    if (n.type != type_) return BackendWrapper::load(n, off, len);
    size_t now = ++in_flight_;
    size_t seen = most_.load();
    while (now > seen && !most_.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    auto r = BackendWrapper::load(n, off, len);
    --in_flight_;
    return r;
  }

  // The most loads in flight at once since the last call (or since it was made).
  size_t take_most_in_flight() { return most_.exchange(0); }

 private:
  storage::ObjectType type_;
  size_t ahead_;
  std::atomic<size_t> in_flight_{0}, most_{0};
};

}  // namespace haven::testing

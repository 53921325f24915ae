// tests/support/fault_backend.h — a fault-injecting decorator around a REAL backend (the only
// kind of fake the project allows): per call, at random, it fails before doing anything
// (a 503), does the work and then loses the response (a connection reset after the request),
// stalls before doing it, or cuts a listing short after some names. `gone` makes every call
// fail, as a backend that went away for good.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include "storage/backend.h"

namespace haven::testing {

struct FaultPlan {
  double fail_before = 0;     // probability per call
  double fail_after = 0;      // the call takes effect, then fails
  double stall = 0;           // the call waits stall_time first
  std::chrono::milliseconds stall_time{30};
  uint64_t seed = 1;
};

class FaultBackend : public storage::BackendWrapper {
 public:
  FaultBackend(std::shared_ptr<storage::Backend> inner, FaultPlan plan)
      : BackendWrapper(std::move(inner)), plan_(plan), rng_(plan.seed) {}

  void set_gone(bool gone) { gone_ = gone; }
  // The backend goes away for good once this many more calls have been made.
  void set_gone_after(uint64_t calls) { gone_after_ = static_cast<int64_t>(calls); }
  uint64_t injected() const { return injected_.load(); }
  uint64_t calls() const { return calls_.load(); }  // saves, loads, stats and removes

  Status save(const storage::ObjectName& n, ByteView d) override {
    return apply<void>([&] { return inner().save(n, d); });
  }
  Result<Bytes> load(const storage::ObjectName& n, uint64_t off, uint64_t len) override {
    return apply<Bytes>([&] { return inner().load(n, off, len); });
  }
  Result<storage::ObjectInfo> stat(const storage::ObjectName& n) override {
    return apply<storage::ObjectInfo>([&] { return inner().stat(n); });
  }
  Status remove(const storage::ObjectName& n) override {
    return apply<void>([&] { return inner().remove(n); });
  }
  Status list(storage::ObjectType t,
              const std::function<void(const storage::ObjectInfo&)>& fn) override {
    if (gone_) return transient("backend gone");
    if (roll() < plan_.fail_before) return transient("injected 503 before listing");
    if (roll() < plan_.fail_after) {
      // A reset in the middle of a paginated listing: some names were delivered already.
      size_t n = 0;
      Status s = inner().list(t, [&](const storage::ObjectInfo& i) {
        if (n++ % 2 == 0) fn(i);
      });
      (void)s;
      return transient("injected reset in the middle of a listing");
    }
    return inner().list(t, fn);
  }

 private:
  double roll() {
    std::lock_guard<std::mutex> g(mu_);
    return std::uniform_real_distribution<double>(0, 1)(rng_);
  }
  Error transient(const std::string& why) {
    injected_++;
    return Error(Error::Code::kTransient, why);
  }
  template <typename T>
  Result<T> apply(const std::function<Result<T>()>& op) {
    calls_++;
    if (gone_after_.load() >= 0 && gone_after_-- <= 0) gone_ = true;
    if (gone_) return transient("backend gone");
    if (roll() < plan_.fail_before) return transient("injected 503");
    if (roll() < plan_.stall) std::this_thread::sleep_for(plan_.stall_time);
    Result<T> r = op();
    if (roll() < plan_.fail_after) return transient("injected connection reset after the request");
    return r;
  }

  FaultPlan plan_;
  std::mutex mu_;
  std::mt19937_64 rng_;
  std::atomic<bool> gone_{false};
  std::atomic<int64_t> gone_after_{-1};
  std::atomic<uint64_t> injected_{0};
  std::atomic<uint64_t> calls_{0};
};

}  // namespace haven::testing

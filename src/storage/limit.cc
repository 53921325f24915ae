#include "storage/limit.h"

#include <cmath>
#include <thread>
#include <vector>

namespace haven::storage {

class LimitBackend::Slot {
 public:
  explicit Slot(LimitBackend& b) : b_(b) {
    if (b_.limits_.connections <= 0) return;
    std::unique_lock<std::mutex> lk(b_.mu_);
    b_.cv_.wait(lk, [&] { return b_.active_ < b_.limits_.connections; });
    b_.active_++;
    held_ = true;
  }
  ~Slot() {
    if (!held_) return;
    std::lock_guard<std::mutex> g(b_.mu_);
    b_.active_--;
    b_.cv_.notify_one();
  }

 private:
  LimitBackend& b_;
  bool held_ = false;
};

LimitBackend::LimitBackend(std::shared_ptr<Backend> inner, Limits limits)
    : BackendWrapper(std::move(inner)), limits_(limits) {}

void LimitBackend::pace(uint64_t bytes) {
  if (limits_.bandwidth_mbps <= 0 || bytes == 0) return;
  const double bytes_per_second = limits_.bandwidth_mbps * 1e6 / 8;
  auto takes = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(static_cast<double>(bytes) / bytes_per_second));
  std::chrono::steady_clock::time_point until;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto now = std::chrono::steady_clock::now();
    if (next_free_ < now) next_free_ = now;
    next_free_ += takes;
    until = next_free_;
  }
  std::this_thread::sleep_until(until);
}

Status LimitBackend::save(const ObjectName& n, ByteView d) {
  Slot s(*this);
  pace(d.size());
  return inner().save(n, d);
}

Status LimitBackend::save_new(const ObjectName& n, ByteView d) {
  Slot s(*this);
  pace(d.size());
  return inner().save_new(n, d);
}

Result<Bytes> LimitBackend::load(const ObjectName& n, uint64_t off, uint64_t len) {
  Slot s(*this);
  auto r = inner().load(n, off, len);
  if (r.ok()) pace(r->size());
  return r;
}

Status LimitBackend::load_into(const ObjectName& n, uint64_t off, std::span<uint8_t> out) {
  Slot s(*this);
  Status r = inner().load_into(n, off, out);
  if (r.ok()) pace(out.size());
  return r;
}

Status LimitBackend::load_pieces(const ObjectName& n, uint64_t off, uint64_t len,
                                 const std::function<void(ByteView)>& piece) {
  Slot s(*this);
  Status r = inner().load_pieces(n, off, len, piece);
  if (r.ok()) pace(len);
  return r;
}

Result<ObjectInfo> LimitBackend::stat(const ObjectName& n) {
  Slot s(*this);
  return inner().stat(n);
}

Status LimitBackend::list(ObjectType t, const std::function<void(const ObjectInfo&)>& fn) {
  // The caller's callback may call back into this backend: collect first, then hand over, so a
  // listing never holds a connection the callback needs.
  std::vector<ObjectInfo> all;
  {
    Slot s(*this);
    HAVEN_TRY(inner().list(t, [&](const ObjectInfo& i) { all.push_back(i); }));
  }
  for (const auto& i : all) fn(i);
  return ok_status();
}

Status LimitBackend::remove(const ObjectName& n) {
  Slot s(*this);
  return inner().remove(n);
}

Status LimitBackend::discard(const ObjectName& n) {
  Slot s(*this);
  return inner().discard(n);
}

Status validate_limits(const Limits& l) {
  if (!(l.bandwidth_mbps >= 0) || std::isinf(l.bandwidth_mbps)) {
    return Error(Error::Code::kInvalidArgument,
                 "--bandwidth-limit-mbps must be a positive number of megabits per second (0 = "
                 "unlimited)");
  }
  if (l.connections < 0 || l.connections > 1024) {
    return Error(Error::Code::kInvalidArgument,
                 "--connections must be between 1 and 1024 (0 = unlimited)");
  }
  return ok_status();
}

}  // namespace haven::storage

#include "server/bus.h"

#include <nlohmann/json.hpp>

namespace haven::server {

void EventBus::emit(const Event& e) {
  if (e.kind == EventKind::kProgress && !(e.progress && e.progress->final)) {
    std::lock_guard<std::mutex> g(mu_);
    TimeNs& last = last_progress_[e.operation_id];
    if (e.time - last < 1'000'000'000) return;
    last = e.time;
  }
  if (e.kind == EventKind::kCompleted || e.kind == EventKind::kFailed ||
      e.kind == EventKind::kCancelled) {
    std::lock_guard<std::mutex> g(mu_);
    last_progress_.erase(e.operation_id);
  }
  catalog::EventRow row;
  row.time = e.time;
  if (!e.operation_id.empty()) row.operation_id = e.operation_id;
  row.kind = e.name();
  row.payload = e.to_json();
  Result<int64_t> id = catalog_.append_event(row);
  if (!id.ok()) {
    dropped_.fetch_add(1);
    return;
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    if (*id > last_id_.load()) last_id_.store(*id);
  }
  cv_.notify_all();
}

void EventBus::note(const std::string& kind, nlohmann::json payload) {
  catalog::EventRow row;
  row.kind = kind;
  row.payload = std::move(payload);
  row.payload["event"] = kind;
  Result<int64_t> id = catalog_.append_event(row);
  if (!id.ok()) {
    dropped_.fetch_add(1);
    return;
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    if (*id > last_id_.load()) last_id_.store(*id);
  }
  cv_.notify_all();
}

void EventBus::wait_after(int64_t after, std::chrono::milliseconds timeout, const CancelToken& stop) {
  auto reg = stop.on_cancel([this] {
    std::lock_guard<std::mutex> g(mu_);
    cv_.notify_all();
  });
  std::unique_lock<std::mutex> g(mu_);
  cv_.wait_for(g, timeout, [&] { return last_id_.load() > after || stop.cancelled(); });
}

}  // namespace haven::server

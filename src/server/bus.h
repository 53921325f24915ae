// server/bus.h — the server's end of the one event path: every typed event of every job goes
// into the catalog's events table (the record, and what GET /api/events replays after a
// Last-Event-ID), and wakes the streams waiting for new events.
//
// Progress events are recorded at most once a second per operation (and always the final
// one): a stream that resumes sees the latest progress, not every 100 ms step. Everything
// else is recorded as it comes. A failed write is counted (dropped()), never blocks the job.
//
// Thread-safety: emit() from any thread; wait_after() from the stream threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "util/cancel.h"
#include "util/events.h"

namespace haven::server {

class EventBus : public EventSink {
 public:
  explicit EventBus(catalog::Catalog& catalog) : catalog_(catalog) {}
  void emit(const Event& e) override;
  // Waits until an event with an id above `after` exists, `timeout` passes or `stop` fires.
  void wait_after(int64_t after, std::chrono::milliseconds timeout, const CancelToken& stop);
  int64_t last_id() const { return last_id_.load(); }
  // Records a server event of its own ("server:started", ...) and wakes the streams.
  void note(const std::string& kind, nlohmann::json payload);
  uint64_t dropped() const { return dropped_.load(); }

 private:
  catalog::Catalog& catalog_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, TimeNs> last_progress_;  // by operation id
  std::atomic<int64_t> last_id_{0};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace haven::server

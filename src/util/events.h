// util/events.h — the one event path. Long operations (backup, restore, check...) report
// progress, warnings and summaries as Events to an EventSink; the CLI renders them as a live
// terminal line or JSON lines, and later the server's event stream, metrics and audit log
// consume the same events.
//
// Thread-safety: emit() may be called from any thread; sinks serialise internally.
#pragma once

#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace haven {

struct Event {
  std::string type;       // "progress", "warning", "summary", ...
  nlohmann::json data;    // fields, by type (documented where emitted)
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void emit(const Event& e) = 0;
};

// Discards everything (library callers that don't care).
class NullSink : public EventSink {
 public:
  void emit(const Event&) override {}
};

}  // namespace haven

// util/events.h — the one event path. A long operation (backup, restore, check, prune, repair,
// a PostgreSQL base backup or restore) reports what happens to it as typed Events, through a
// Reporter, to an EventSink. The CLI renders them as a live terminal line or JSON lines; the
// server's catalog, event stream, metrics and audit log are further sinks of the same events.
//
// Every event carries one envelope: the operation's ID, a sequence number that increases
// strictly within the operation (each sink sees one operation's events in that order), the
// wall-clock time, and its kind: the operation (backup, restore, ...) and the stage
// (started, progress, warning, error, validated, completed, failed, cancelled). event_name()
// spells the pair the way the seeds do: "backup:started", "restore:initiated",
// "restore:cancelled", "check:completed", "pg_backup:failed"...
//
// Progress has one schema for every operation (Progress): the phase, bytes, files and items
// (packs, snapshots, ...) done and total, the rate and the ETA. A Reporter sends progress at
// most every `progress_interval` (and always when the phase changes or the work is done), so
// a pipeline thread that reports per file costs one clock read most of the time.
//
// Sinks compose: TeeSink sends each event to several sinks; AsyncSink puts a thread between
// the operation and a slow sink (a terminal, a pipe, a database) so emitting never waits for
// it. AsyncSink coalesces progress (a newer progress event of an operation replaces one still
// queued) and never drops anything else.
//
// Thread-safety: Reporter and every sink here may be used from many threads at once.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/clock.h"
#include "util/error.h"

namespace haven {

// The operations that report events.
// kRepository: what is noticed about the repository outside any one operation (a stale lock
// ignored, a damaged snapshot skipped while listing); such events have no operation ID and
// sequence number 0.
enum class OpKind : uint8_t {
  kBackup, kRestore, kCheck, kPrune, kRepair, kPgBackup, kPgRestore, kRepository, kReplication,
  kDr  // a disaster-recovery plan run: a drill or a real recovery (dr/)
};

// The stage an event reports.
enum class EventKind : uint8_t {
  kStarted,    // the operation began ("restore:initiated" for a restore)
  kProgress,   // Event::progress is set
  kWarning,    // something was skipped or substituted; the operation goes on
  kError,      // one item failed (a file not restored); the operation goes on and fails at the end
  kValidated,  // a validation result (a restore's verification, a restored cluster's checks)
  kCompleted,  // success: Event::data is the operation's summary
  kFailed,     // the operation failed: Event::message and data.code
  kCancelled,  // the operation was cancelled (its error has code kCancelled)
  kNotice,     // for a person, not part of any result: data.level is "notice" or "warning"
};

const char* op_name(OpKind op);            // "backup", "restore", "check", "prune", "repair",
                                           // "pg_backup", "pg_restore", "repository",
                                           // "replication", "dr"
const char* stage_name(OpKind op, EventKind kind);  // "started" ("initiated" for a restore), ...
std::string event_name(OpKind op, EventKind kind);  // "backup:started"

// One schema for every operation's progress. A total of 0 means "not known (yet)".
struct Progress {
  std::string phase;  // backup/restore: "files"; check, prune, repair: their phase names
  uint64_t bytes_done = 0, bytes_total = 0;
  uint64_t files_done = 0, files_total = 0;
  uint64_t items_done = 0, items_total = 0;  // packs, snapshots, indexes: named by the phase
  // Filled in by the Reporter: seconds since the phase began, bytes per second over the phase
  // (items per second when the phase counts no bytes), and the estimated seconds left (-1 when
  // no total is known).
  double elapsed_seconds = 0;
  double rate = 0;
  double eta_seconds = -1;
  bool final = false;  // the phase's last report

  nlohmann::json to_json() const;
};

struct Event {
  std::string operation_id;
  uint64_t seq = 0;
  TimeNs time = 0;
  OpKind op = OpKind::kBackup;
  EventKind kind = EventKind::kProgress;
  std::optional<Progress> progress;  // kProgress
  std::string path;                  // kWarning, kError: the file concerned, if any
  std::string message;               // kWarning, kError, kFailed, kCancelled
  nlohmann::json data = nlohmann::json::object();  // kStarted: the request; kCompleted: the
                                                   // summary; others: extra fields

  std::string name() const { return event_name(op, kind); }
  // The legacy short type of --json lines: "started", "progress", "warning", "error",
  // "validated", "summary" (completed), "failed", "cancelled", "notice".
  const char* message_type() const;
  // One JSON object: the envelope ("event", "operation_id", "seq", "time", "message_type"),
  // then data's fields, the progress fields, and "path"/"message" where set.
  nlohmann::json to_json() const;
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

// Sends every event to each of its sinks, in the order given.
class TeeSink : public EventSink {
 public:
  explicit TeeSink(std::vector<EventSink*> sinks) : sinks_(std::move(sinks)) {}
  void emit(const Event& e) override {
    for (auto* s : sinks_) s->emit(e);
  }

 private:
  std::vector<EventSink*> sinks_;
};

// Delivers events to `downstream` on a thread of its own, in the order emitted. emit() only
// queues: a progress event replaces a queued, undelivered progress event of the same operation
// (so a slow sink sees fewer, newer progress reports); every other event is kept. Memory is
// bounded by `max_queued`: past it, emit() waits for the sink (back-pressure instead of loss).
// flush() returns once everything emitted before it was delivered.
class AsyncSink : public EventSink {
 public:
  explicit AsyncSink(EventSink& downstream, size_t max_queued = 65536);
  ~AsyncSink() override;  // flushes, then stops the thread
  void emit(const Event& e) override;
  void flush();
  // Events replaced by newer progress before delivery (for tests and metrics).
  uint64_t coalesced() const { return coalesced_.load(); }

 private:
  void run();

  EventSink& downstream_;
  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;       // work queued, or stopping
  std::condition_variable idle_cv_;  // delivered something (flush, back-pressure)
  std::deque<std::optional<Event>> queue_;  // a coalesced progress event leaves an empty slot
  std::map<std::string, size_t> queued_progress_;  // operation -> its queued progress (absolute)
  size_t popped_ = 0;     // absolute index of queue_.front()
  size_t live_ = 0;       // events queued and not coalesced away
  bool delivering_ = false;
  bool stopping_ = false;
  std::atomic<uint64_t> coalesced_{0};
  std::thread thread_;
};

// Where an operation reports: the sink and, optionally, the ID the caller gave the operation
// (a server's job ID). Converts from a plain sink, so `backup::run(repo, opts, sink)` works.
struct EventTarget {
  EventTarget(EventSink& s) : sink(&s) {}  // NOLINT: implicit on purpose
  EventTarget(EventSink& s, std::string id) : sink(&s), operation_id(std::move(id)) {}
  EventSink* sink;
  std::string operation_id;
};

// An operation's side of the event path: stamps the envelope, numbers the events and paces
// progress. Create one per operation; started() first, then finish() with the result.
class Reporter {
 public:
  // An empty ID in `target` gets a random one (16 hex digits).
  Reporter(const EventTarget& target, OpKind op,
           std::chrono::milliseconds progress_interval = std::chrono::milliseconds(100));

  const std::string& operation_id() const { return id_; }
  OpKind op() const { return op_; }
  EventSink& sink() const { return *sink_; }

  void started(nlohmann::json request = nlohmann::json::object());
  // True when a progress report now would be sent (the interval has passed): lets a caller
  // skip building one. progress() itself checks again.
  bool progress_due() const;
  void progress(Progress p);
  void warning(const std::string& path, const std::string& message,
               nlohmann::json extra = nlohmann::json::object());
  void error(const std::string& path, const std::string& message);
  void validated(nlohmann::json result);
  void completed(nlohmann::json summary);
  // kCancelled errors report "cancelled", others "failed".
  void failed(const Error& e);
  // completed(summary(value)) or failed(error), then returns the result unchanged.
  template <typename T, typename F>
  Result<T> finish(Result<T> r, F&& summary) {
    if (r.ok()) {
      completed(summary(*r));
    } else {
      failed(r.error());
    }
    return r;
  }

 private:
  void send(Event e);

  EventSink* sink_;
  std::string id_;
  OpKind op_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;  // numbering and delivery in one order
  uint64_t seq_ = 0;
  std::atomic<int64_t> last_progress_{0};  // steady-clock ns of the last progress sent
  std::string phase_;
  std::chrono::steady_clock::time_point phase_start_ = std::chrono::steady_clock::now();
  bool phase_final_sent_ = false;
};

}  // namespace haven

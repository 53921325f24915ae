#include "util/events.h"

#include <random>

namespace haven {

const char* op_name(OpKind op) {
  switch (op) {
    case OpKind::kBackup: return "backup";
    case OpKind::kRestore: return "restore";
    case OpKind::kCheck: return "check";
    case OpKind::kPrune: return "prune";
    case OpKind::kRepair: return "repair";
    case OpKind::kPgBackup: return "pg_backup";
    case OpKind::kPgRestore: return "pg_restore";
    case OpKind::kRepository: return "repository";
    case OpKind::kReplication: return "replication";
    case OpKind::kDr: return "dr";
  }
  return "operation";
}

const char* stage_name(OpKind op, EventKind kind) {
  switch (kind) {
    case EventKind::kStarted: return op == OpKind::kRestore ? "initiated" : "started";
    case EventKind::kProgress: return "progress";
    case EventKind::kWarning: return "warning";
    case EventKind::kError: return "error";
    case EventKind::kValidated: return "validated";
    case EventKind::kCompleted: return "completed";
    case EventKind::kFailed: return "failed";
    case EventKind::kCancelled: return "cancelled";
    case EventKind::kNotice: return "notice";
  }
  return "event";
}

std::string event_name(OpKind op, EventKind kind) {
  return std::string(op_name(op)) + ":" + stage_name(op, kind);
}

nlohmann::json Progress::to_json() const {
  nlohmann::json j = {{"phase", phase},
                      {"bytes_done", bytes_done},
                      {"bytes_total", bytes_total},
                      {"files_done", files_done},
                      {"files_total", files_total},
                      {"items_done", items_done},
                      {"items_total", items_total},
                      {"elapsed_seconds", elapsed_seconds},
                      {"rate", rate},
                      {"final", final}};
  if (eta_seconds >= 0) {
    j["eta_seconds"] = eta_seconds;
  } else {
    j["eta_seconds"] = nullptr;
  }
  return j;
}

const char* Event::message_type() const {
  switch (kind) {
    case EventKind::kStarted: return "started";
    case EventKind::kCompleted: return "summary";
    default: return stage_name(op, kind);
  }
}

nlohmann::json Event::to_json() const {
  nlohmann::json j = {{"event", name()},
                      {"message_type", message_type()},
                      {"operation_id", operation_id},
                      {"seq", seq},
                      {"time", format_time(time)}};
  if (data.is_object()) {
    for (const auto& [k, v] : data.items()) {
      if (!j.contains(k)) j[k] = v;
    }
  }
  if (progress) {
    const nlohmann::json pj = progress->to_json();  // (items() of a temporary would dangle)
    for (const auto& [k, v] : pj.items()) j[k] = v;
  }
  if (!path.empty()) j["path"] = path;
  if (!message.empty()) j["message"] = message;
  return j;
}

// --- AsyncSink -------------------------------------------------------------------------------

AsyncSink::AsyncSink(EventSink& downstream, size_t max_queued)
    : downstream_(downstream), max_queued_(max_queued == 0 ? 1 : max_queued) {
  thread_ = std::thread([this] { run(); });
}

AsyncSink::~AsyncSink() {
  flush();
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void AsyncSink::emit(const Event& e) {
  std::unique_lock<std::mutex> lk(mu_);
  if (e.kind == EventKind::kProgress) {
    auto it = queued_progress_.find(e.operation_id);
    if (it != queued_progress_.end()) {
      // The older report was not delivered yet: the newer one takes its place (at the end, so
      // the order of sequence numbers holds).
      queue_[it->second - popped_].reset();
      live_--;
      coalesced_++;
      queued_progress_.erase(it);
    }
  }
  idle_cv_.wait(lk, [&] { return live_ < max_queued_; });
  if (e.kind == EventKind::kProgress) queued_progress_[e.operation_id] = popped_ + queue_.size();
  queue_.emplace_back(e);
  live_++;
  cv_.notify_one();
}

void AsyncSink::flush() {
  std::unique_lock<std::mutex> lk(mu_);
  idle_cv_.wait(lk, [&] { return queue_.empty() && !delivering_; });
}

void AsyncSink::run() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything was delivered
    std::optional<Event> e = std::move(queue_.front());
    queue_.pop_front();
    popped_++;
    if (!e) continue;  // coalesced away
    if (e->kind == EventKind::kProgress) {
      auto it = queued_progress_.find(e->operation_id);
      if (it != queued_progress_.end() && it->second == popped_ - 1) queued_progress_.erase(it);
    }
    live_--;
    delivering_ = true;
    lk.unlock();
    downstream_.emit(*e);
    lk.lock();
    delivering_ = false;
    idle_cv_.notify_all();
  }
}

// --- Reporter --------------------------------------------------------------------------------

namespace {

std::string random_operation_id() {
  std::random_device rd;
  uint64_t v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  char buf[17];
  static const char* kHex = "0123456789abcdef";
  for (int i = 15; i >= 0; i--) {
    buf[i] = kHex[v & 15];
    v >>= 4;
  }
  buf[16] = 0;
  return buf;
}

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Reporter::Reporter(const EventTarget& target, OpKind op, std::chrono::milliseconds progress_interval)
    : sink_(target.sink),
      id_(target.operation_id.empty() ? random_operation_id() : target.operation_id),
      op_(op),
      interval_(progress_interval) {}

void Reporter::send(Event e) {
  e.operation_id = id_;
  e.op = op_;
  std::lock_guard<std::mutex> g(mu_);
  e.seq = ++seq_;
  e.time = now();
  sink_->emit(e);
}

void Reporter::started(nlohmann::json request) {
  Event e;
  e.kind = EventKind::kStarted;
  e.data = std::move(request);
  send(std::move(e));
}

bool Reporter::progress_due() const {
  int64_t last = last_progress_.load(std::memory_order_relaxed);
  return last == 0 || steady_ns() - last >= std::chrono::nanoseconds(interval_).count();
}

void Reporter::progress(Progress p) {
  auto now_tp = std::chrono::steady_clock::now();
  const int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now_tp.time_since_epoch()).count();
  {
    std::lock_guard<std::mutex> g(mu_);
    bool new_phase = p.phase != phase_;
    if (new_phase) {
      phase_ = p.phase;
      phase_start_ = now_tp;
      phase_final_sent_ = false;
    }
    if (p.final) {
      if (phase_final_sent_) return;  // several threads may finish a phase at once
      phase_final_sent_ = true;
    } else {
      if (phase_final_sent_) return;  // stale report after the phase's last one
      int64_t last = last_progress_.load(std::memory_order_relaxed);
      if (!new_phase && last != 0 && now_ns - last < std::chrono::nanoseconds(interval_).count()) {
        return;
      }
    }
    last_progress_.store(now_ns, std::memory_order_relaxed);
    p.elapsed_seconds = std::chrono::duration<double>(now_tp - phase_start_).count();
  }
  double secs = p.elapsed_seconds;
  // Bytes are what takes the time where they are counted; otherwise items, then files.
  auto pace = [&](uint64_t done, uint64_t total) {
    p.rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    if (total > 0 && done >= total) {
      p.eta_seconds = 0;
    } else if (total > 0 && p.rate > 0) {
      p.eta_seconds = static_cast<double>(total - done) / p.rate;
    }
  };
  if (p.bytes_done > 0 || p.bytes_total > 0) {
    pace(p.bytes_done, p.bytes_total);
  } else if (p.items_done > 0 || p.items_total > 0) {
    pace(p.items_done, p.items_total);
  } else {
    pace(p.files_done, p.files_total);
  }
  Event e;
  e.kind = EventKind::kProgress;
  e.progress = std::move(p);
  send(std::move(e));
}

void Reporter::warning(const std::string& path, const std::string& message, nlohmann::json extra) {
  Event e;
  e.kind = EventKind::kWarning;
  e.path = path;
  e.message = message;
  e.data = std::move(extra);
  send(std::move(e));
}

void Reporter::error(const std::string& path, const std::string& message) {
  Event e;
  e.kind = EventKind::kError;
  e.path = path;
  e.message = message;
  send(std::move(e));
}

void Reporter::validated(nlohmann::json result) {
  Event e;
  e.kind = EventKind::kValidated;
  e.data = std::move(result);
  send(std::move(e));
}

void Reporter::completed(nlohmann::json summary) {
  Event e;
  e.kind = EventKind::kCompleted;
  e.data = std::move(summary);
  send(std::move(e));
}

void Reporter::failed(const Error& err) {
  Event e;
  e.kind = err.code() == Error::Code::kCancelled ? EventKind::kCancelled : EventKind::kFailed;
  e.message = err.message();
  e.data = {{"code", code_name(err.code())}};
  send(std::move(e));
}

}  // namespace haven

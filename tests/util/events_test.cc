// The event path's parts: the envelope and names (Reporter), pacing of progress, and the sinks
// (AsyncSink never blocks on a slow sink, coalesces only progress, keeps order; TeeSink).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "util/events.h"

namespace haven {
namespace {

using namespace std::chrono_literals;

class Recorder : public EventSink {
 public:
  void emit(const Event& e) override {
    std::lock_guard<std::mutex> g(mu_);
    events.push_back(e);
  }
  std::vector<Event> snapshot() {
    std::lock_guard<std::mutex> g(mu_);
    return events;
  }
  std::vector<Event> events;

 private:
  std::mutex mu_;
};

// A sink that delivers nothing until opened, then records.
class GatedSink : public EventSink {
 public:
  void emit(const Event& e) override {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return open_; });
    events.push_back(e);
  }
  void open() {
    std::lock_guard<std::mutex> g(mu_);
    open_ = true;
    cv_.notify_all();
  }
  std::vector<Event> events;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

TEST(EventNames, AreTheSeedsNames) {
  EXPECT_EQ(event_name(OpKind::kBackup, EventKind::kStarted), "backup:started");
  EXPECT_EQ(event_name(OpKind::kBackup, EventKind::kProgress), "backup:progress");
  EXPECT_EQ(event_name(OpKind::kBackup, EventKind::kCompleted), "backup:completed");
  EXPECT_EQ(event_name(OpKind::kBackup, EventKind::kFailed), "backup:failed");
  EXPECT_EQ(event_name(OpKind::kBackup, EventKind::kValidated), "backup:validated");
  EXPECT_EQ(event_name(OpKind::kRestore, EventKind::kStarted), "restore:initiated");
  EXPECT_EQ(event_name(OpKind::kRestore, EventKind::kCancelled), "restore:cancelled");
  EXPECT_EQ(event_name(OpKind::kRestore, EventKind::kValidated), "restore:validated");
  EXPECT_EQ(event_name(OpKind::kCheck, EventKind::kCompleted), "check:completed");
  EXPECT_EQ(event_name(OpKind::kPrune, EventKind::kStarted), "prune:started");
  EXPECT_EQ(event_name(OpKind::kPgBackup, EventKind::kFailed), "pg_backup:failed");
  EXPECT_EQ(event_name(OpKind::kPgRestore, EventKind::kCompleted), "pg_restore:completed");
}

TEST(Reporter, StampsOneEnvelopeAndNumbersEventsStrictlyAcrossThreads) {
  Recorder rec;
  Reporter r(EventTarget(rec, "job-42"), OpKind::kBackup, 0ms);
  r.started({{"paths", {"/srv"}}});
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 250; i++) r.warning("f" + std::to_string(t), "w" + std::to_string(i));
    });
  }
  for (auto& t : ts) t.join();
  r.completed({{"snapshot_id", "abc"}});
  auto ev = rec.snapshot();
  ASSERT_EQ(ev.size(), 1002u);
  for (size_t i = 0; i < ev.size(); i++) {
    EXPECT_EQ(ev[i].operation_id, "job-42");
    EXPECT_EQ(ev[i].seq, i + 1) << "sequence numbers must arrive in order, without gaps here";
    if (i > 0) {
      EXPECT_GE(ev[i].time, ev[i - 1].time);
    }
  }
  EXPECT_EQ(ev.front().name(), "backup:started");
  EXPECT_EQ(ev.back().name(), "backup:completed");
  auto j = ev.back().to_json();
  EXPECT_EQ(j["event"], "backup:completed");
  EXPECT_EQ(j["message_type"], "summary");
  EXPECT_EQ(j["operation_id"], "job-42");
  EXPECT_EQ(j["seq"], 1002);
  EXPECT_EQ(j["snapshot_id"], "abc");
}

TEST(Reporter, GivesEachOperationItsOwnRandomId) {
  Recorder rec;
  Reporter a(rec, OpKind::kCheck), b(rec, OpKind::kCheck);
  EXPECT_EQ(a.operation_id().size(), 16u);
  EXPECT_NE(a.operation_id(), b.operation_id());
}

TEST(Reporter, PacesProgressButAlwaysSendsPhaseChangesAndTheFinalReport) {
  Recorder rec;
  Reporter r(rec, OpKind::kCheck, 1h);
  for (uint64_t i = 1; i <= 1000; i++) {
    Progress p;
    p.phase = "packs";
    p.items_done = i;
    p.items_total = 1000;
    p.final = i == 1000;
    r.progress(p);
  }
  Progress s;
  s.phase = "snapshots";
  s.items_done = 1;
  s.items_total = 3;
  r.progress(s);
  auto ev = rec.snapshot();
  ASSERT_EQ(ev.size(), 3u) << "first report, the phase's final one, the next phase's first";
  EXPECT_EQ(ev[0].progress->items_done, 1u);
  EXPECT_EQ(ev[1].progress->items_done, 1000u);
  EXPECT_TRUE(ev[1].progress->final);
  EXPECT_EQ(ev[1].progress->eta_seconds, 0);
  EXPECT_EQ(ev[2].progress->phase, "snapshots");
  EXPECT_FALSE(r.progress_due());
}

TEST(Reporter, ComputesRateAndEtaFromThePhase) {
  Recorder rec;
  Reporter r(rec, OpKind::kRestore, 0ms);
  Progress p;
  p.phase = "files";
  p.bytes_done = 0;
  p.bytes_total = 1000;
  r.progress(p);
  std::this_thread::sleep_for(50ms);
  p.bytes_done = 500;
  r.progress(p);
  auto ev = rec.snapshot();
  ASSERT_EQ(ev.size(), 2u);
  const Progress& q = *ev[1].progress;
  EXPECT_GE(q.elapsed_seconds, 0.05);
  EXPECT_NEAR(q.rate, 500 / q.elapsed_seconds, 1e-6);
  EXPECT_NEAR(q.eta_seconds, 500 / q.rate, 1e-6);
  EXPECT_EQ(ev[0].progress->eta_seconds, -1) << "no rate yet: no ETA";
  auto j = ev[1].to_json();
  EXPECT_EQ(j["event"], "restore:progress");
  EXPECT_EQ(j["bytes_done"], 500);
  EXPECT_EQ(j["bytes_total"], 1000);
  EXPECT_TRUE(j.contains("eta_seconds"));
}

TEST(Reporter, ReportsCancellationAsCancelledAndOtherErrorsAsFailed) {
  Recorder rec;
  Reporter a(rec, OpKind::kRestore), b(rec, OpKind::kBackup);
  a.failed(Error(Error::Code::kCancelled, "cancelled by SIGINT"));
  Result<int> r = Error(Error::Code::kIo, "disk on fire");
  auto back = b.finish(std::move(r), [](int) { return nlohmann::json::object(); });
  EXPECT_FALSE(back.ok());
  auto ev = rec.snapshot();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].name(), "restore:cancelled");
  EXPECT_EQ(ev[0].message, "cancelled by SIGINT");
  EXPECT_EQ(ev[1].name(), "backup:failed");
  EXPECT_EQ(ev[1].message, "disk on fire");
  EXPECT_EQ(ev[1].data["code"], code_name(Error::Code::kIo));
}

// A sink that does not read at all: emitting goes on; once it reads, it gets every warning in
// order, fewer progress reports than were emitted, and the newest one last.
TEST(AsyncSink, NeverBlocksOnASlowSinkAndCoalescesOnlyProgress) {
  GatedSink slow;
  std::atomic<bool> emitted_all{false};
  {
    AsyncSink async(slow);
    Reporter r(async, OpKind::kBackup, 0ms);
    std::thread producer([&] {
      r.started();
      for (uint64_t i = 1; i <= 5000; i++) {
        Progress p;
        p.phase = "files";
        p.files_done = i;
        r.progress(p);
        if (i % 10 == 0) r.warning("file" + std::to_string(i), "changed while read");
      }
      r.completed({});
      emitted_all = true;
    });
    producer.join();  // returns although the sink has not taken a single event
    EXPECT_TRUE(emitted_all);
    EXPECT_TRUE(slow.events.empty());
    slow.open();
    async.flush();
    EXPECT_GT(async.coalesced(), 4000u);
  }
  const auto& ev = slow.events;
  size_t warnings = 0, progress = 0;
  for (size_t i = 0; i < ev.size(); i++) {
    if (i > 0) {
      EXPECT_GT(ev[i].seq, ev[i - 1].seq) << "delivered out of order at " << i;
    }
    warnings += ev[i].kind == EventKind::kWarning;
    progress += ev[i].kind == EventKind::kProgress;
  }
  EXPECT_EQ(warnings, 500u) << "warnings are never dropped";
  EXPECT_LT(progress, 5000u);
  EXPECT_GE(progress, 1u);
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev.front().kind, EventKind::kStarted);
  EXPECT_EQ(ev.back().kind, EventKind::kCompleted);
  const Event* last_progress = nullptr;
  for (const auto& e : ev) {
    if (e.kind == EventKind::kProgress) last_progress = &e;
  }
  ASSERT_NE(last_progress, nullptr);
  EXPECT_EQ(last_progress->progress->files_done, 5000u) << "the newest progress survives";
}

// Memory is bounded: past max_queued, emit() waits for the sink instead of growing or dropping.
TEST(AsyncSink, PushesBackPastItsBoundInsteadOfDropping) {
  GatedSink slow;
  AsyncSink async(slow, 8);
  Reporter r(async, OpKind::kCheck);
  std::atomic<int> sent{0};
  std::thread producer([&] {
    for (int i = 0; i < 20; i++) {
      r.warning("", "w" + std::to_string(i));
      sent++;
    }
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_LE(sent.load(), 9) << "at most the bound (plus the one being delivered) was accepted";
  slow.open();
  producer.join();
  async.flush();
  EXPECT_EQ(slow.events.size(), 20u);
}

TEST(TeeSink, SendsEveryEventToEachSink) {
  Recorder a, b;
  TeeSink tee({&a, &b});
  Reporter r(tee, OpKind::kPrune);
  r.started();
  r.completed({{"packs_deleted", 2}});
  ASSERT_EQ(a.events.size(), 2u);
  ASSERT_EQ(b.events.size(), 2u);
  EXPECT_EQ(b.events[1].name(), "prune:completed");
  EXPECT_EQ(b.events[1].data["packs_deleted"], 2);
}

}  // namespace
}  // namespace haven

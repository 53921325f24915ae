// The job service end to end, in process: a policy of haven.yaml runs against a real
// repository on disk, recorded in a real SQLite catalog; overlap, retries, cancellation,
// retention on the policy's own snapshots, restores.
#include "jobs/service.h"
#include "jobs/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "crypto/crypto.h"
#include "ops/keys.h"
#include "ops/inspect.h"
#include "storage/backend.h"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"

namespace haven::jobs {
namespace {

using namespace std::chrono_literals;
constexpr const char* kPw = "service-test-pw";

// Events in memory, with a hook that may block or cancel.
class HookSink : public EventSink {
 public:
  void emit(const Event& e) override {
    std::function<void(const Event&)> h;
    {
      std::lock_guard<std::mutex> g(mu_);
      events.push_back(e);
      h = hook_;  // set from the test's thread while jobs emit
    }
    if (h) h(e);
  }
  void set_hook(std::function<void(const Event&)> h) {
    std::lock_guard<std::mutex> g(mu_);
    hook_ = std::move(h);
  }
  std::vector<Event> of(const std::string& op_id) {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<Event> out;
    for (const auto& e : events) {
      if (e.operation_id == op_id) out.push_back(e);
    }
    return out;
  }
  std::vector<Event> events;

 private:
  std::mutex mu_;
  std::function<void(const Event&)> hook_;
};

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::init();
    char tmpl[] = "/tmp/haven-service-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto be = storage::open_backend(dir_ + "/repo");
    ASSERT_TRUE(be.ok());
    ops::InitRequest init;
    init.password = kPw;
    init.kdf = {8, 1};
    ASSERT_TRUE(ops::init(*be, init).ok());
    write_file(dir_ + "/pass", std::string(kPw) + "\n");
    make_dir(dir_ + "/src");
    make_dir(dir_ + "/other");
    write_file(dir_ + "/src/a.txt", "alpha\n");
    write_file(dir_ + "/src/b.bin", random_bytes(300 << 10, 7));
    write_file(dir_ + "/other/c.txt", "other\n");
    auto cat = catalog::open_sqlite_catalog(dir_ + "/catalog.db");
    ASSERT_TRUE(cat.ok()) << cat.error().message();
    catalog_ = std::move(*cat);
  }
  void TearDown() override {
    service_.reset();
    catalog_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start(const std::string& policies, double backoff_scale = 1.0) {
    std::string text = "server:\n  catalog: " + dir_ + "/catalog.db\nlocations:\n"
                       "  - {name: local, repository: " + dir_ + "/repo, password_file: " + dir_ +
                       "/pass}\npolicies:\n" + policies;
    auto cfg = config::parse_config(text, "haven.yaml", [](const std::string&) { return std::nullopt; });
    ASSERT_TRUE(cfg.ok()) << cfg.error().message();
    ServiceOptions o;
    o.server_instance = "test-1";
    o.backoff_scale = backoff_scale;
    service_ = std::make_unique<Service>(*catalog_, sink_, o);
    Status s = service_->apply_config(std::make_shared<const config::Config>(std::move(*cfg)));
    ASSERT_TRUE(s.ok()) << s.error().message();
  }
  std::string policy_id(const std::string& name) {
    auto p = catalog_->get_policy_by_name(name);
    EXPECT_TRUE(p.ok());
    return p.ok() ? p->id : "";
  }
  catalog::ExecutionRow wait_done(const std::string& id) {
    for (int i = 0; i < 1000; ++i) {
      auto r = catalog_->get_execution(id);
      if (r.ok() && r->status != catalog::ExecStatus::kPending &&
          r->status != catalog::ExecStatus::kRunning) {
        return *r;
      }
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "execution " << id << " did not end";
    return {};
  }
  std::vector<ops::SnapshotEntry> snapshots() {
    auto be = storage::open_backend(dir_ + "/repo");
    auto repo = repo::Repository::open(*be, kPw);
    EXPECT_TRUE(repo.ok());
    NullSink quiet;
    auto s = ops::snapshots(**repo, {}, quiet);
    EXPECT_TRUE(s.ok());
    return s.ok() ? *s : std::vector<ops::SnapshotEntry>{};
  }

  std::string dir_;
  std::unique_ptr<catalog::Catalog> catalog_;
  HookSink sink_;
  std::unique_ptr<Service> service_;
};

std::string policy(const std::string& name, const std::string& src, const std::string& extra = "") {
  std::string schedules = extra.find("schedules:") == std::string::npos ? ", schedules: []" : "";
  return "  - {name: " + name + ", resource_type: files, sources: [" + src +
         "], location: local" + schedules + extra + "}\n";
}

TEST_F(ServiceTest, APolicyRunIsRecordedWithTheSeedsFiguresAndItsEvents) {
  start(policy("docs", dir_ + "/src"));
  auto e = service_->execute(policy_id("docs"), {});
  ASSERT_TRUE(e.ok()) << e.error().message();
  EXPECT_EQ(e->status, catalog::ExecStatus::kPending);
  catalog::ExecutionRow done = wait_done(e->id);
  ASSERT_EQ(done.status, catalog::ExecStatus::kCompleted) << done.error_message.value_or("");
  ASSERT_TRUE(done.snapshot_id.has_value());
  EXPECT_EQ(done.files_backed_up.value_or(-1), 2);
  EXPECT_EQ(done.backup_size_bytes.value_or(-1), (300 << 10) + 6);
  EXPECT_GT(done.compressed_size_bytes.value_or(0), 0);
  EXPECT_EQ(done.integrity_check_status, catalog::IntegrityStatus::kPassed);
  EXPECT_EQ(done.backup_location, dir_ + "/repo");
  EXPECT_EQ(done.server_instance.value_or(""), "test-1");
  EXPECT_TRUE(done.completed_at.has_value());
  auto snaps = snapshots();
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_EQ(repo::hex(snaps[0].id), *done.snapshot_id);
  EXPECT_NE(std::find(snaps[0].snapshot.tags.begin(), snaps[0].snapshot.tags.end(), "policy:docs"),
            snaps[0].snapshot.tags.end());
  // The run's events carry its execution id: backup started ... completed, then the check.
  auto events = sink_.of(done.execution_id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front().name(), "backup:started");
  bool completed = false, checked = false;
  for (const auto& ev : events) {
    completed |= ev.name() == "backup:completed";
    checked |= ev.name() == "check:completed";
  }
  EXPECT_TRUE(completed);
  EXPECT_TRUE(checked);
  service_->wait_idle();  // the policy's times are written after the row ends
  auto prow = catalog_->get_policy(policy_id("docs"));
  EXPECT_EQ(prow->last_execution, done.started_at);
}

// The server keeps the repositories it opened: a second run (an unchanged re-backup and its
// check) derives no key (Argon2id, 64 MiB and a fraction of a second each time), and the key it
// keeps is locked against swapping.
TEST_F(ServiceTest, ASecondRunDerivesNoKeyAndTheKeptKeyIsLockedInMemory) {
  start(policy("docs", dir_ + "/src"));
  const uint64_t at_start = crypto::kdf_runs();
  auto first = service_->execute(policy_id("docs"), {});
  ASSERT_TRUE(first.ok()) << first.error().message();
  ASSERT_EQ(wait_done(first->id).status, catalog::ExecStatus::kCompleted);
  service_->wait_idle();  // else the second run may be skipped as an overlap
  const uint64_t after_first = crypto::kdf_runs();
  EXPECT_GE(after_first, at_start + 1) << "the first run opens the repository";
  auto second = service_->execute(policy_id("docs"), {});
  ASSERT_TRUE(second.ok()) << second.error().message();
  catalog::ExecutionRow done = wait_done(second->id);
  ASSERT_EQ(done.status, catalog::ExecStatus::kCompleted) << done.error_message.value_or("");
  EXPECT_EQ(done.integrity_check_status, catalog::IntegrityStatus::kPassed);
  EXPECT_EQ(crypto::kdf_runs(), after_first) << "the second run derived the key again";
  auto repo = service_->repository_named("local");
  ASSERT_TRUE(repo.ok()) << repo.error().message();
  EXPECT_TRUE((*repo)->keys_locked());
  EXPECT_EQ(crypto::kdf_runs(), after_first);
  // The process has locked memory (VmLck), which is what keeps the key out of swap.
  std::ifstream status("/proc/self/status");
  std::string line;
  long locked_kb = -1;
  while (std::getline(status, line)) {
    if (line.rfind("VmLck:", 0) == 0) locked_kb = std::stol(line.substr(6));
  }
  EXPECT_GT(locked_kb, 0);
}

TEST_F(ServiceTest, RetentionKeepsThePolicysOwnSnapshotsOnly) {
  start(policy("docs", dir_ + "/src", ", retention: {last: 2}") +
        policy("other", dir_ + "/other", ", retention: {last: 1}"));
  auto o = service_->execute(policy_id("other"), {});
  ASSERT_TRUE(o.ok());
  ASSERT_EQ(wait_done(o->id).status, catalog::ExecStatus::kCompleted);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    write_file(dir_ + "/src/a.txt", "version " + std::to_string(i) + "\n");
    auto e = service_->execute(policy_id("docs"), {});
    ASSERT_TRUE(e.ok()) << e.error().message();
    catalog::ExecutionRow done = wait_done(e->id);
    ASSERT_EQ(done.status, catalog::ExecStatus::kCompleted);
    ids.push_back(*done.snapshot_id);
    service_->wait_idle();  // its retention too
  }
  std::set<std::string> left;
  for (const auto& s : snapshots()) left.insert(repo::hex(s.id));
  // docs keeps its newest two; other's one snapshot is untouched by docs' retention.
  EXPECT_EQ(left.size(), 3u);
  EXPECT_TRUE(left.count(ids[2]) && left.count(ids[3]));
  EXPECT_FALSE(left.count(ids[0]) || left.count(ids[1]));
}

TEST_F(ServiceTest, OverlapSkipRecordsTheSkippedRunAndQueueRunsItAfterwards) {
  std::atomic<bool> release{false};
  sink_.set_hook([&](const Event& e) {
    if (e.name() == "backup:started") {
      while (!release.load()) std::this_thread::sleep_for(5ms);
    }
  });
  start(policy("skipper", dir_ + "/src") + policy("queuer", dir_ + "/other", ", overlap: queue"));
  auto first = service_->execute(policy_id("skipper"), {});
  ASSERT_TRUE(first.ok());
  auto second = service_->execute(policy_id("skipper"), {});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->status, catalog::ExecStatus::kSkipped);
  EXPECT_NE(second->error_message.value_or("").find("overlap: skip"), std::string::npos);
  auto q1 = service_->execute(policy_id("queuer"), {});
  auto q2 = service_->execute(policy_id("queuer"), {});
  ASSERT_TRUE(q1.ok() && q2.ok());
  EXPECT_EQ(q2->status, catalog::ExecStatus::kPending);
  release = true;
  EXPECT_EQ(wait_done(first->id).status, catalog::ExecStatus::kCompleted);
  catalog::ExecutionRow a = wait_done(q1->id), b = wait_done(q2->id);
  EXPECT_EQ(a.status, catalog::ExecStatus::kCompleted);
  EXPECT_EQ(b.status, catalog::ExecStatus::kCompleted);
  EXPECT_GE(b.started_at, *a.completed_at) << "the queued run overlapped the first";
}

TEST_F(ServiceTest, AFailedRunIsRetriedWithBackoffUpToRetryCount) {
  // The source vanishes: every run fails.
  start(policy("gone", dir_ + "/missing", ", retry_count: 2, retry_backoff_seconds: 1"),
        /*backoff_scale=*/0.2);
  auto e = service_->execute(policy_id("gone"), {});
  ASSERT_TRUE(e.ok());
  service_->wait_idle();
  catalog::ExecutionQuery q;
  q.policy_id = policy_id("gone");
  auto page = catalog_->query_executions(q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->rows.size(), 3u);  // the run and two retries, newest first
  EXPECT_EQ(page->rows[0].retry_count, 2);
  EXPECT_EQ(page->rows[0].trigger, catalog::Trigger::kRetry);
  EXPECT_EQ(page->rows[2].retry_count, 0);
  for (const auto& r : page->rows) {
    EXPECT_EQ(r.status, catalog::ExecStatus::kFailed);
    EXPECT_NE(r.error_message.value_or("").find("missing"), std::string::npos) << *r.error_message;
  }
  // Back-off: 0.2 s, then 0.4 s (scaled), measured between the end of one and the next start.
  EXPECT_GE(page->rows[1].started_at - *page->rows[2].completed_at, 180'000'000);
  EXPECT_GE(page->rows[0].started_at - *page->rows[1].completed_at, 380'000'000);
}

TEST_F(ServiceTest, ACancelledRunStopsWithinASecondAndLeavesNoSnapshot) {
  for (int i = 0; i < 30; ++i) write_file(dir_ + "/src/big" + std::to_string(i), random_bytes(2 << 20, 50 + i));
  std::atomic<bool> progressed{false};
  sink_.set_hook([&](const Event& e) {
    if (e.kind == EventKind::kProgress && e.op == OpKind::kBackup) progressed = true;
  });
  start(policy("big", dir_ + "/src"));
  auto e = service_->execute(policy_id("big"), {});
  ASSERT_TRUE(e.ok());
  for (int i = 0; i < 500 && !progressed; ++i) std::this_thread::sleep_for(5ms);
  auto t0 = std::chrono::steady_clock::now();
  Status c = service_->cancel_execution(e->id);
  ASSERT_TRUE(c.ok()) << c.error().message();
  catalog::ExecutionRow done = wait_done(e->id);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_EQ(done.status, catalog::ExecStatus::kCancelled);
  EXPECT_TRUE(snapshots().empty());
  // A second cancel is a conflict: the run has ended.
  Status again = service_->cancel_execution(e->id);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Error::Code::kAlreadyExists);
}

TEST_F(ServiceTest, RestoreOfAnExecutionIsRecordedAndVerified) {
  start(policy("docs", dir_ + "/src"));
  auto e = service_->execute(policy_id("docs"), {});
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(wait_done(e->id).status, catalog::ExecStatus::kCompleted);
  RestoreRequest rr;
  rr.source_backup_id = e->execution_id;
  rr.target_location = dir_ + "/restored";
  auto r = service_->restore(rr);
  ASSERT_TRUE(r.ok()) << r.error().message();
  service_->wait_idle();
  auto done = catalog_->get_restore(r->id);
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->status, catalog::ExecStatus::kCompleted) << done->error_message.value_or("");
  EXPECT_TRUE(done->integrity_validated);
  EXPECT_EQ(done->validation_results["files"], 2);
  EXPECT_EQ(done->validation_results["errors"], 0);
  expect_same_tree(dir_ + "/src", dir_ + "/restored/src");  // under its top-level name
  // A relative target is refused, naming the field; nothing is recorded.
  rr.target_location = "relative/dir";
  auto bad = service_->restore(rr);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message().rfind("targetLocation: ", 0), 0u);
}

TEST_F(ServiceTest, ARestoreIsValidatedAgainstItsSnapshotWritingNothing) {
  start(policy("docs", dir_ + "/src"));
  auto e = service_->execute(policy_id("docs"), {});
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(wait_done(e->id).status, catalog::ExecStatus::kCompleted);
  RestoreRequest rr;
  rr.source_backup_id = e->execution_id;
  rr.target_location = dir_ + "/restored";
  rr.verify = false;
  // The restore is held at its start: while it runs, a validation is a conflict.
  std::atomic<bool> release{false}, held{false};
  sink_.set_hook([&](const Event& ev) {
    if (ev.op == OpKind::kRestore && ev.kind == EventKind::kStarted && !release) {
      held = true;
      while (!release) std::this_thread::sleep_for(5ms);
    }
  });
  auto r = service_->restore(rr);
  ASSERT_TRUE(r.ok()) << r.error().message();
  while (!held) std::this_thread::sleep_for(5ms);
  auto early = service_->validate_restore(r->id);
  release = true;
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code(), Error::Code::kAlreadyExists);
  EXPECT_NE(early.error().message().find("still running"), std::string::npos) << early.error().message();
  service_->wait_idle();
  sink_.set_hook(nullptr);
  auto v = service_->validate_restore(r->request_id);
  ASSERT_TRUE(v.ok()) << v.error().message();
  EXPECT_EQ(v->validation_results["validation"]["state"], "running");
  EXPECT_FALSE(v->integrity_validated);
  EXPECT_EQ(v->validation_results["files"], 2);  // the restore's own summary stays
  service_->wait_idle();
  auto done = catalog_->get_restore(r->id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->status, catalog::ExecStatus::kCompleted);  // the restore's own status stays
  EXPECT_TRUE(done->integrity_validated);
  const auto& val = done->validation_results["validation"];
  EXPECT_EQ(val["state"], "completed");
  EXPECT_EQ(val["clean"], true);
  EXPECT_EQ(val["files"], 2);
  EXPECT_TRUE(val.contains("validated_at"));
  EXPECT_EQ(done->validation_results["verified"], 0);  // the restore's (verify off) is kept
  // Someone edits a restored file: the next validation says which, and changes nothing.
  const std::string a = dir_ + "/restored/src/a.txt";
  write_file(a, "ALPHA\n");
  v = service_->validate_restore(r->id);
  ASSERT_TRUE(v.ok()) << v.error().message();
  service_->wait_idle();
  done = catalog_->get_restore(r->id);
  ASSERT_TRUE(done.ok());
  EXPECT_FALSE(done->integrity_validated);
  EXPECT_EQ(done->validation_results["validation"]["differ"], 1);
  EXPECT_EQ(done->validation_results["validation"]["differences"][0]["path"], "src/a.txt");
  EXPECT_EQ(read_file(a), "ALPHA\n");
  // The validation's events have an operation id of their own, next to the restore's.
  bool validated = false;
  for (const auto& ev : sink_.of(r->request_id + ":validate")) validated |= ev.kind == EventKind::kValidated;
  EXPECT_TRUE(validated);
  for (const auto& ev : sink_.of(r->request_id)) EXPECT_NE(ev.kind, EventKind::kValidated);
  // An unknown restore is kNotFound.
  auto unknown = service_->validate_restore("no-such-restore");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), Error::Code::kNotFound);
  // A restore that failed before restoring anything (its target is under a file) has nothing
  // to validate.
  rr.target_location = dir_ + "/src/a.txt/below";
  auto failed = service_->restore(rr);
  ASSERT_TRUE(failed.ok()) << failed.error().message();
  service_->wait_idle();
  ASSERT_EQ(catalog_->get_restore(failed->id)->status, catalog::ExecStatus::kFailed);
  auto nothing = service_->validate_restore(failed->id);
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.error().code(), Error::Code::kAlreadyExists);
  EXPECT_NE(nothing.error().message().find("restored nothing"), std::string::npos) << nothing.error().message();
}

TEST_F(ServiceTest, APolicysCompressionAndBandwidthLimitApplyToItsRuns) {
  make_dir(dir_ + "/plain");
  make_dir(dir_ + "/packed");
  make_dir(dir_ + "/paced");
  auto text = [](int seed) {
    std::string t;
    for (int i = 0; t.size() < (1u << 20); ++i) t += "line " + std::to_string(i * seed) + " of a log file\n";
    return t;
  };
  write_file(dir_ + "/plain/log", text(3));
  write_file(dir_ + "/packed/log", text(5));
  write_file(dir_ + "/paced/data", random_bytes(1u << 20, 99));
  start(policy("plain", dir_ + "/plain", ", compression: none") +
        policy("packed", dir_ + "/packed", ", compression: high") +
        policy("paced", dir_ + "/paced", ", bandwidth_limit_mbps: 4"));
  auto run = [&](const std::string& name) {
    auto e = service_->execute(policy_id(name), {});
    EXPECT_TRUE(e.ok());
    return e.ok() ? wait_done(e->id) : catalog::ExecutionRow{};
  };
  catalog::ExecutionRow plain = run("plain"), packed = run("packed");
  ASSERT_EQ(plain.status, catalog::ExecStatus::kCompleted) << plain.error_message.value_or("");
  ASSERT_EQ(packed.status, catalog::ExecStatus::kCompleted) << packed.error_message.value_or("");
  // Stored as is versus squeezed: the repository's own default (medium) is used by neither.
  EXPECT_GE(plain.compressed_size_bytes.value_or(0), 1 << 20);
  EXPECT_LT(packed.compressed_size_bytes.value_or(1 << 30), (1 << 20) / 5);
  // 1 MiB of new data at 4 Mbit/s takes at least 2 s; without the limit it takes milliseconds.
  auto t0 = std::chrono::steady_clock::now();
  catalog::ExecutionRow paced = run("paced");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(paced.status, catalog::ExecStatus::kCompleted) << paced.error_message.value_or("");
  EXPECT_GE(secs, 1.9);
  EXPECT_LT(secs, 30.0);
}

TEST_F(ServiceTest, APolicyOfTheFileCannotShadowOneOfTheApi) {
  start(policy("docs", dir_ + "/src"));
  catalog::PolicyRow api = policy_row(*service_->policy_of(*catalog_->get_policy_by_name("docs")),
                                      catalog::PolicySource::kApi);
  api.name = "from-api";
  api.spec["name"] = "from-api";
  ASSERT_TRUE(catalog_->create_policy(api).ok());
  auto cfg = std::make_shared<config::Config>(*service_->config());
  config::Policy clash = cfg->policies[0];
  clash.name = "from-api";
  cfg->policies.push_back(clash);
  Status s = service_->apply_config(cfg);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Error::Code::kAlreadyExists);
  EXPECT_EQ(service_->config()->policies.size(), 1u) << "a refused configuration was applied";
}

std::vector<catalog::ExecutionRow> executions_of(catalog::Catalog& c, const std::string& policy_id);

TEST_F(ServiceTest, ALostCatalogIsRebuiltFromTheRepositorysSnapshots) {
  // (keep-last: the default retention, daily 7, would keep one of two runs on one day)
  start(policy("docs", dir_ + "/src", ", retention: {last: 10}") + policy("other", dir_ + "/other"));
  std::vector<std::string> snaps;
  for (const char* name : {"docs", "docs", "other"}) {
    write_file(dir_ + "/src/a.txt", std::string("v") + name + std::to_string(snaps.size()));
    auto e = service_->execute(policy_id(name), {});
    ASSERT_TRUE(e.ok());
    catalog::ExecutionRow done = wait_done(e->id);
    ASSERT_EQ(done.status, catalog::ExecStatus::kCompleted);
    snaps.push_back(*done.snapshot_id);
    // The run's row ends before its policy is free again (its times are written after): the
    // next run of the same policy would be skipped as an overlap (seen under a loaded ctest).
    service_->wait_idle();
  }
  service_->wait_idle();
  auto cfg = service_->config();
  service_.reset();
  catalog_.reset();
  fs::remove(dir_ + "/catalog.db");
  fs::remove(dir_ + "/catalog.db-wal");
  fs::remove(dir_ + "/catalog.db-shm");
  auto fresh = catalog::open_sqlite_catalog(dir_ + "/catalog.db");
  ASSERT_TRUE(fresh.ok());
  catalog_ = std::move(*fresh);
  service_ = std::make_unique<Service>(*catalog_, sink_, ServiceOptions{});
  ASSERT_TRUE(service_->apply_config(cfg).ok());
  auto r = service_->rebuild_catalog();
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->snapshots, 3u);
  EXPECT_EQ(r->added, 3u);
  auto docs = executions_of(*catalog_, policy_id("docs"));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(*docs[0].snapshot_id, snaps[1]);  // newest first, at the snapshots' times
  EXPECT_EQ(*docs[1].snapshot_id, snaps[0]);
  EXPECT_EQ(docs[0].trigger, catalog::Trigger::kRebuild);
  EXPECT_EQ(docs[0].status, catalog::ExecStatus::kCompleted);
  EXPECT_EQ(docs[0].files_backed_up, 2);
  ASSERT_EQ(executions_of(*catalog_, policy_id("other")).size(), 1u);
  // Again: nothing new.
  auto again = service_->rebuild_catalog();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->added, 0u);
  EXPECT_EQ(again->present, 3u);
}

// --- the scheduler -------------------------------------------------------------------------

// A wall clock the test can move: real time plus an offset.
struct MovableClock {
  std::atomic<TimeNs> offset{0};
  TimeNs operator()() const { return now() + offset.load(); }
};

std::vector<catalog::ExecutionRow> executions_of(catalog::Catalog& c, const std::string& policy_id) {
  catalog::ExecutionQuery q;
  q.policy_id = policy_id;
  auto page = c.query_executions(q);
  EXPECT_TRUE(page.ok());
  return page.ok() ? page->rows : std::vector<catalog::ExecutionRow>{};
}

TEST_F(ServiceTest, SchedulerFiresOnTimeAndFiresAPassedOverMinuteOnceAfterAClockJump) {
  start(policy("minutely", dir_ + "/src", R"(, schedules: [{cron: "* * * * *", strategy: full}])"));
  auto clock = std::make_shared<MovableClock>();
  // The next minute boundary 1.5 s from now.
  TimeNs real = now();
  TimeNs boundary = (real / 60'000'000'000 + 1) * 60'000'000'000;
  clock->offset = boundary - real - 1'500'000'000;
  Scheduler sched(*service_, *catalog_, [clock] { return (*clock)(); });
  sched.start();
  auto plan = sched.plan();
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].at, boundary);
  EXPECT_EQ(catalog_->get_policy(policy_id("minutely"))->next_execution, boundary);
  for (int i = 0; i < 400 && executions_of(*catalog_, policy_id("minutely")).empty(); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  auto runs = executions_of(*catalog_, policy_id("minutely"));
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].trigger, catalog::Trigger::kSchedule);
  EXPECT_EQ(runs[0].scheduled_for, boundary);
  EXPECT_EQ(runs[0].backup_type, catalog::BackupType::kFull);
  auto delays = sched.fire_delays();
  ASSERT_EQ(delays.size(), 1u);
  EXPECT_GE(delays[0], 0);
  EXPECT_LT(delays[0], 1'000'000'000) << "fired more than a second late";
  service_->wait_idle();

  // The clock jumps 3 minutes ahead: the passed-over minutes make one run, not three.
  clock->offset += 180'000'000'000;
  for (int i = 0; i < 400 && executions_of(*catalog_, policy_id("minutely")).size() < 2; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  service_->wait_idle();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(executions_of(*catalog_, policy_id("minutely")).size(), 2u);
  EXPECT_GE(sched.clock_jumps(), 1);
  sched.stop();
}

TEST_F(ServiceTest, CatchUpRunsAMissedScheduleOnceOrNotAtAll) {
  start(policy("once", dir_ + "/src", R"(, schedules: [{cron: "0 3 * * *"}], catch_up: once)") +
        policy("never", dir_ + "/other", R"(, schedules: [{cron: "0 3 * * *"}], catch_up: none)"));
  // Both were due three days ago (the server was down since): several fires missed.
  TimeNs missed = now() - 3 * 86400'000'000'000LL;
  ASSERT_TRUE(catalog_->set_policy_schedule_times(policy_id("once"), std::nullopt, missed).ok());
  ASSERT_TRUE(catalog_->set_policy_schedule_times(policy_id("never"), std::nullopt, missed).ok());
  Scheduler sched(*service_, *catalog_);
  sched.start();
  service_->wait_idle();
  auto once = executions_of(*catalog_, policy_id("once"));
  ASSERT_EQ(once.size(), 1u);
  EXPECT_EQ(once[0].trigger, catalog::Trigger::kCatchUp);
  EXPECT_EQ(once[0].scheduled_for, missed);
  EXPECT_EQ(once[0].status, catalog::ExecStatus::kCompleted);
  EXPECT_TRUE(executions_of(*catalog_, policy_id("never")).empty());
  // The plan continues from now: the next 03:00 UTC, recorded in the catalog.
  auto row = catalog_->get_policy(policy_id("never"));
  ASSERT_TRUE(row->next_execution.has_value());
  EXPECT_GT(*row->next_execution, now());
  EXPECT_EQ(*row->next_execution % 86400'000'000'000LL, 3 * 3600'000'000'000LL);
  sched.stop();
}

}  // namespace
}  // namespace haven::jobs

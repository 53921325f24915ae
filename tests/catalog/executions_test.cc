// Backup executions and restore operations: every method and its error codes, the generated
// IDs, snapshot lookups, the last successful run, mark_interrupted, and query_executions'
// keyset pagination (every matching row exactly once, newest first) and its query plans.
#include <algorithm>
#include <map>
#include <random>
#include <regex>
#include <set>

#include "catalog_test_util.h"

namespace haven::catalog {
namespace {

class ExecutionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("catalog.db");
    c_ = open_or_die(path_, clock_.options());
    ASSERT_TRUE(c_);
    auto p = c_->create_policy(sample_policy("web"));
    ASSERT_TRUE(p.ok());
    policy_ = p->id;
  }
  ExecutionRow make(ExecutionRow e) {
    auto r = c_->create_execution(e);
    EXPECT_TRUE(r.ok()) << describe(r.error());
    return r.ok() ? *r : ExecutionRow{};
  }
  TempDir dir_;
  std::string path_;
  FakeClock clock_;
  std::unique_ptr<SqliteCatalog> c_;
  std::string policy_;
};

const std::regex kUuid("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");

TEST_F(ExecutionsTest, CreateFillsIdsAndTimes) {
  auto e = make(sample_execution(policy_));
  EXPECT_TRUE(std::regex_match(e.id, kUuid)) << e.id;
  EXPECT_TRUE(std::regex_match(e.execution_id, std::regex("^exec-20261202T070101Z-[0-9a-f]{8}$")))
      << e.execution_id;
  EXPECT_EQ(e.created_at, FakeClock::kStart);
  EXPECT_EQ(e.started_at, FakeClock::kStart);  // 0 means now

  ExecutionRow given = sample_execution(policy_, 12345);
  given.execution_id = "job-77";
  auto g = make(given);
  EXPECT_EQ(g.execution_id, "job-77");
  EXPECT_EQ(g.started_at, 12345);
}

TEST_F(ExecutionsTest, RunIdsMadeInTheSameSecondDiffer) {
  std::set<std::string> ids, exec_ids;
  for (int i = 0; i < 300; i++) {  // one fake second: every run ID has the same time stamp
    auto e = make(sample_execution(policy_));
    ids.insert(e.id);
    exec_ids.insert(e.execution_id);
  }
  EXPECT_EQ(ids.size(), 300u);
  EXPECT_EQ(exec_ids.size(), 300u);
}

TEST_F(ExecutionsTest, EveryFieldRoundTrips) {
  ExecutionRow e = sample_execution(policy_, FakeClock::kStart - kSecond, ExecStatus::kCompleted);
  e.completed_at = FakeClock::kStart;
  e.backup_size_bytes = int64_t{5} << 40;
  e.compressed_size_bytes = 123456789;
  e.files_backed_up = 52000;
  e.duration_seconds = 61;
  e.transfer_rate_mbps = 412.25;
  e.storage_class = "cold";
  e.integrity_check_status = IntegrityStatus::kPassed;
  e.integrity_check_completed_at = FakeClock::kStart + 1;
  e.error_message = "warning: 2 files vanished";
  e.retry_count = 2;
  e.snapshot_id = "ABCDEF0123";
  e.trigger = Trigger::kCatchUp;
  e.priority = Priority::kHigh;
  e.scheduled_for = FakeClock::kStart - 2 * kSecond;
  e.server_instance = "server-B";
  auto made = make(e);
  for (const auto& key : {made.id, made.execution_id}) {
    auto got = c_->get_execution(key);
    ASSERT_TRUE(got.ok()) << describe(got.error());
    EXPECT_EQ(got->id, made.id);
    EXPECT_EQ(got->policy_id, policy_);
    EXPECT_EQ(got->execution_id, made.execution_id);
    EXPECT_EQ(got->backup_type, BackupType::kFull);
    EXPECT_EQ(got->status, ExecStatus::kCompleted);
    EXPECT_EQ(got->started_at, FakeClock::kStart - kSecond);
    EXPECT_EQ(got->completed_at, FakeClock::kStart);
    EXPECT_EQ(got->backup_size_bytes, int64_t{5} << 40);
    EXPECT_EQ(got->compressed_size_bytes, 123456789);
    EXPECT_EQ(got->files_backed_up, 52000);
    EXPECT_EQ(got->duration_seconds, 61);
    EXPECT_EQ(got->transfer_rate_mbps, 412.25);
    EXPECT_EQ(got->backup_location, e.backup_location);
    EXPECT_EQ(got->storage_class, "cold");
    EXPECT_EQ(got->integrity_check_status, IntegrityStatus::kPassed);
    EXPECT_EQ(got->integrity_check_completed_at, FakeClock::kStart + 1);
    EXPECT_EQ(got->error_message, "warning: 2 files vanished");
    EXPECT_EQ(got->retry_count, 2);
    EXPECT_EQ(got->created_at, FakeClock::kStart);
    EXPECT_EQ(got->snapshot_id, "abcdef0123");  // stored in lower case
    EXPECT_EQ(got->trigger, Trigger::kCatchUp);
    EXPECT_EQ(got->priority, Priority::kHigh);
    EXPECT_EQ(got->scheduled_for, FakeClock::kStart - 2 * kSecond);
    EXPECT_EQ(got->server_instance, "server-B");
  }
  // A CLI backup recorded without a policy.
  ExecutionRow cli = sample_execution(std::nullopt);
  cli.trigger = Trigger::kCli;
  auto c = make(cli);
  auto got = c_->get_execution(c.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->policy_id, std::nullopt);
  EXPECT_EQ(got->completed_at, std::nullopt);
  EXPECT_EQ(got->integrity_check_status, std::nullopt);
}

TEST_F(ExecutionsTest, CreateErrors) {
  ExecutionRow e = sample_execution(policy_);
  e.execution_id = "job-1";
  make(e);
  auto dup = c_->create_execution(e);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), Error::Code::kAlreadyExists) << describe(dup.error());
  EXPECT_NE(dup.error().message().find("job-1"), std::string::npos);

  auto orphan = c_->create_execution(sample_execution("no-such-policy"));
  ASSERT_FALSE(orphan.ok());
  EXPECT_EQ(orphan.error().code(), Error::Code::kNotFound) << describe(orphan.error());

  struct Case {
    const char* field;
    std::function<void(ExecutionRow&)> spoil;
  };
  std::vector<Case> cases = {
      {"backup_location", [](ExecutionRow& r) { r.backup_location = ""; }},
      {"snapshot_id", [](ExecutionRow& r) { r.snapshot_id = "not-hex"; }},
      {"snapshot_id", [](ExecutionRow& r) { r.snapshot_id = std::string(65, 'a'); }},
      {"backup_size_bytes", [](ExecutionRow& r) { r.backup_size_bytes = -1; }},
      {"retry_count", [](ExecutionRow& r) { r.retry_count = -1; }},
      {"transfer_rate_mbps", [](ExecutionRow& r) { r.transfer_rate_mbps = -0.5; }},
      {"started_at", [](ExecutionRow& r) { r.started_at = -5; }},
      {"policy_id", [](ExecutionRow& r) { r.policy_id = ""; }},
  };
  for (const auto& k : cases) {
    ExecutionRow bad = sample_execution(policy_);
    k.spoil(bad);
    auto r = c_->create_execution(bad);
    ASSERT_FALSE(r.ok()) << k.field;
    EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument) << describe(r.error());
    EXPECT_NE(r.error().message().find(k.field), std::string::npos) << describe(r.error());
  }
  EXPECT_EQ(RawDb(path_).count("backup_executions"), 1);

  auto missing = c_->get_execution("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Error::Code::kNotFound);
}

TEST_F(ExecutionsTest, UpdateReplacesAndKeepsIdentity) {
  auto e = make(sample_execution(policy_));
  ExecutionRow u = e;
  u.status = ExecStatus::kCompleted;
  u.completed_at = FakeClock::kStart + 90 * kSecond;
  u.snapshot_id = std::string(64, 'F');
  u.files_backed_up = 10;
  u.policy_id = std::nullopt;  // kept
  u.execution_id = "renamed";  // kept
  u.created_at = 7;            // kept
  ASSERT_TRUE(c_->update_execution(u).ok());
  auto got = c_->get_execution(e.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, ExecStatus::kCompleted);
  EXPECT_EQ(got->completed_at, FakeClock::kStart + 90 * kSecond);
  EXPECT_EQ(got->snapshot_id, std::string(64, 'f'));
  EXPECT_EQ(got->files_backed_up, 10);
  EXPECT_EQ(got->policy_id, policy_);
  EXPECT_EQ(got->execution_id, e.execution_id);
  EXPECT_EQ(got->created_at, e.created_at);

  ExecutionRow ghost = e;
  ghost.id = "nope";
  auto r = c_->update_execution(ghost);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kNotFound);
  ExecutionRow bad = e;
  bad.duration_seconds = -1;
  EXPECT_EQ(c_->update_execution(bad).error().code(), Error::Code::kInvalidArgument);
}

TEST_F(ExecutionsTest, FindBySnapshotReturnsTheNewest) {
  const std::string snap(64, 'c');
  ExecutionRow older = sample_execution(policy_, 100, ExecStatus::kCompleted);
  older.snapshot_id = snap;
  ExecutionRow newer = sample_execution(std::nullopt, 200, ExecStatus::kCompleted);
  newer.snapshot_id = snap;
  newer.trigger = Trigger::kRebuild;
  make(older);
  auto n = make(newer);
  make(sample_execution(policy_, 300));  // no snapshot
  auto got = c_->find_execution_by_snapshot(std::string(64, 'C'));
  ASSERT_TRUE(got.ok()) << describe(got.error());
  EXPECT_EQ(got->id, n.id);
  auto none = c_->find_execution_by_snapshot(std::string(64, 'd'));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), Error::Code::kNotFound);
  EXPECT_EQ(c_->find_execution_by_snapshot("zz").error().code(), Error::Code::kInvalidArgument);
}

TEST_F(ExecutionsTest, LastSuccessfulExecution) {
  auto none = c_->last_successful_execution(policy_);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, std::nullopt);

  auto other = c_->create_policy(sample_policy("other"));
  ASSERT_TRUE(other.ok());
  make(sample_execution(policy_, 100, ExecStatus::kCompleted));
  auto best = make(sample_execution(policy_, 200, ExecStatus::kCompleted));
  make(sample_execution(policy_, 300, ExecStatus::kFailed));
  make(sample_execution(policy_, 400, ExecStatus::kRunning));
  make(sample_execution(other->id, 500, ExecStatus::kCompleted));
  auto last = c_->last_successful_execution(policy_);
  ASSERT_TRUE(last.ok());
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ((*last)->id, best.id);

  auto unknown = c_->last_successful_execution("nope");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), Error::Code::kNotFound);
}

TEST_F(ExecutionsTest, MarkInterruptedAtServerStart) {
  auto make_in = [&](ExecStatus s, std::optional<std::string> instance) {
    ExecutionRow e = sample_execution(policy_, 0, s);
    e.server_instance = std::move(instance);
    return make(e).id;
  };
  std::string old_running = make_in(ExecStatus::kRunning, "old");
  std::string old_pending = make_in(ExecStatus::kPending, "old");
  std::string no_instance = make_in(ExecStatus::kRunning, std::nullopt);
  std::string ours = make_in(ExecStatus::kRunning, "new");
  std::string done = make_in(ExecStatus::kCompleted, "old");
  std::string failed = make_in(ExecStatus::kFailed, "old");
  RestoreRow r;
  r.target_location = "/r";
  r.status = ExecStatus::kRunning;
  r.server_instance = "old";
  auto restore = c_->create_restore(r);
  ASSERT_TRUE(restore.ok());

  clock_.advance(60 * kSecond);
  auto n = c_->mark_interrupted("new");
  ASSERT_TRUE(n.ok()) << describe(n.error());
  EXPECT_EQ(*n, 4);  // three executions and one restore

  for (const auto& id : {old_running, old_pending, no_instance}) {
    auto e = c_->get_execution(id);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->status, ExecStatus::kInterrupted);
    EXPECT_EQ(e->completed_at, FakeClock::kStart + 60 * kSecond);
    ASSERT_TRUE(e->error_message.has_value());
    EXPECT_NE(e->error_message->find("server stopped"), std::string::npos) << *e->error_message;
  }
  EXPECT_NE(c_->get_execution(old_pending)->error_message->find("before"), std::string::npos);
  EXPECT_EQ(c_->get_execution(ours)->status, ExecStatus::kRunning);
  EXPECT_EQ(c_->get_execution(done)->status, ExecStatus::kCompleted);
  EXPECT_EQ(c_->get_execution(done)->error_message, std::nullopt);
  EXPECT_EQ(c_->get_execution(failed)->status, ExecStatus::kFailed);
  EXPECT_EQ(c_->get_restore(restore->id)->status, ExecStatus::kInterrupted);

  auto again = c_->mark_interrupted("new");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
}

// ---- query_executions ----

// Collects every page of `q` (limit as given); fails the test on an error or too many pages.
std::vector<ExecutionRow> all_pages(Catalog& c, ExecutionQuery q, int* pages = nullptr) {
  std::vector<ExecutionRow> out;
  for (int i = 0; i < 100000; i++) {
    auto page = c.query_executions(q);
    if (!page.ok()) {
      ADD_FAILURE() << describe(page.error());
      return out;
    }
    EXPECT_LE(static_cast<int>(page->rows.size()), q.limit);
    out.insert(out.end(), page->rows.begin(), page->rows.end());
    if (pages) (*pages)++;
    if (page->next_cursor.empty()) return out;
    EXPECT_EQ(static_cast<int>(page->rows.size()), q.limit);  // only the last page is short
    q.cursor = page->next_cursor;
  }
  ADD_FAILURE() << "pagination does not end";
  return out;
}

std::vector<std::string> ids_of(const std::vector<ExecutionRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.id);
  return out;
}

TEST_F(ExecutionsTest, QueryPagesEveryMatchingRowOnceNewestFirst) {
  auto other = c_->create_policy(sample_policy("db"));
  ASSERT_TRUE(other.ok());
  const std::vector<std::string> policies = {policy_, other->id};
  const std::vector<ExecStatus> statuses = {ExecStatus::kCompleted, ExecStatus::kFailed,
                                            ExecStatus::kRunning, ExecStatus::kSkipped};
  std::mt19937 rng(7);
  std::vector<ExecutionRow> all;
  for (int i = 0; i < 600; i++) {
    // Few distinct times, so many rows tie on started_at and the id breaks the tie.
    TimeNs t = FakeClock::kStart + static_cast<TimeNs>(rng() % 40) * kSecond;
    ExecutionRow e = sample_execution(policies[rng() % 2], t, statuses[rng() % statuses.size()]);
    all.push_back(make(e));
  }
  auto expected = [&](const ExecutionQuery& q) {
    std::vector<ExecutionRow> m;
    for (const auto& r : all) {
      if (q.policy_id && r.policy_id != q.policy_id) continue;
      if (q.status && r.status != *q.status) continue;
      if (q.from && r.started_at < *q.from) continue;
      if (q.to && r.started_at >= *q.to) continue;
      m.push_back(r);
    }
    std::sort(m.begin(), m.end(), [](const ExecutionRow& a, const ExecutionRow& b) {
      return std::tie(a.started_at, a.id) > std::tie(b.started_at, b.id);
    });
    return ids_of(m);
  };
  const TimeNs from = FakeClock::kStart + 10 * kSecond, to = FakeClock::kStart + 30 * kSecond;
  int combos = 0;
  for (int mask = 0; mask < 16; mask++) {
    for (int limit : {1, 7, 50, 1000}) {
      ExecutionQuery q;
      q.limit = limit;
      if (mask & 1) q.policy_id = policy_;
      if (mask & 2) q.status = ExecStatus::kFailed;
      if (mask & 4) q.from = from;
      if (mask & 8) q.to = to;
      if (limit == 1 && mask != 3) continue;  // one row a page: once is enough (slow)
      int pages = 0;
      auto got = ids_of(all_pages(*c_, q, &pages));
      auto want = expected(q);
      ASSERT_FALSE(want.empty());
      EXPECT_EQ(got, want) << "mask " << mask << " limit " << limit;
      EXPECT_EQ(pages, std::max<int>(1, (static_cast<int>(want.size()) + limit - 1) / limit));
      combos++;
    }
  }
  EXPECT_EQ(combos, 49);
}

TEST_F(ExecutionsTest, QueryBoundsAndDefaults) {
  for (int i = 0; i < 60; i++) make(sample_execution(policy_, 1000 + i));
  ExecutionQuery q;
  EXPECT_EQ(q.limit, 50);
  auto page = c_->query_executions(q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->rows.size(), 50u);
  EXPECT_EQ(page->rows.front().started_at, 1059);
  EXPECT_FALSE(page->next_cursor.empty());

  q.from = 1010;  // inclusive
  q.to = 1020;    // exclusive
  page = c_->query_executions(q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->rows.size(), 10u);
  EXPECT_EQ(page->rows.front().started_at, 1019);
  EXPECT_EQ(page->rows.back().started_at, 1010);
  EXPECT_TRUE(page->next_cursor.empty());

  q.from = 1020;
  page = c_->query_executions(q);  // an empty range
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->rows.empty());

  ExecutionQuery unknown;
  unknown.policy_id = "nope";
  page = c_->query_executions(unknown);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->rows.empty());
  EXPECT_TRUE(page->next_cursor.empty());
}

TEST_F(ExecutionsTest, QueryRefusesBadLimitsAndCursors) {
  for (int limit : {0, -1, 1001}) {
    ExecutionQuery q;
    q.limit = limit;
    auto r = c_->query_executions(q);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument);
    EXPECT_NE(r.error().message().find("limit"), std::string::npos);
  }
  ExecutionQuery max;
  max.limit = 1000;
  EXPECT_TRUE(c_->query_executions(max).ok());
  for (const char* cursor : {"garbage", ".x", "12.", "x12.abc", "12"}) {
    ExecutionQuery q;
    q.cursor = cursor;
    auto r = c_->query_executions(q);
    ASSERT_FALSE(r.ok()) << cursor;
    EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument);
    EXPECT_NE(r.error().message().find("cursor"), std::string::npos);
  }
}

// Every filter combination reads one index in ORDER BY order: no temporary B-tree, no full
// table scan.
TEST_F(ExecutionsTest, QueryPlansUseAnIndexAndNoSort) {
  RawDb raw(path_);
  for (int mask = 0; mask < 16; mask++) {
    std::string sql = execution_query_sql(mask & 1, mask & 2, mask & 4, mask & 8);
    auto plan = raw.rows("EXPLAIN QUERY PLAN " + sql);
    std::string joined;
    for (const auto& line : plan) joined += line + "\n";
    EXPECT_NE(joined.find("USING INDEX backup_executions_by_"), std::string::npos) << sql << "\n"
                                                                                   << joined;
    EXPECT_EQ(joined.find("TEMP B-TREE"), std::string::npos) << sql << "\n" << joined;
    if (mask != 0) {
      EXPECT_NE(joined.find("SEARCH"), std::string::npos) << sql << "\n" << joined;
    }
  }
  auto last = raw.rows(
      "EXPLAIN QUERY PLAN SELECT id FROM backup_executions WHERE snapshot_id = 'ab' "
      "ORDER BY started_at DESC LIMIT 1");
  ASSERT_FALSE(last.empty());
  EXPECT_NE(last.back().find("backup_executions_by_snapshot"), std::string::npos) << last.back();
}

// ---- Restores ----

TEST_F(ExecutionsTest, RestoreCreateGetUpdate) {
  auto src = make(sample_execution(policy_, 0, ExecStatus::kCompleted));
  RestoreRow r;
  r.restore_type = RestoreType::kPointInTime;
  r.source_backup_id = src.id;
  r.snapshot_id = "0123abcd";
  r.point_in_time = FakeClock::kStart - 3600 * kSecond;
  r.target_location = "/srv/restore";
  r.restore_scope = {{"paths", {"/srv/web"}}};
  r.restore_options = {{"overwrite", "if-newer"}};
  r.overwrite_existing = true;
  r.requested_by = "alice";
  r.request = {{"restoreType", "point_in_time"}, {"targetLocation", "/srv/restore"}};
  auto made = c_->create_restore(r);
  ASSERT_TRUE(made.ok()) << describe(made.error());
  EXPECT_TRUE(std::regex_match(made->id, kUuid));
  EXPECT_TRUE(
      std::regex_match(made->request_id, std::regex("^restore-20261202T070101Z-[0-9a-f]{8}$")))
      << made->request_id;
  EXPECT_EQ(made->started_at, FakeClock::kStart);

  RestoreRow u = *made;
  u.status = ExecStatus::kCompleted;
  u.completed_at = FakeClock::kStart + kSecond;
  u.data_restored_gb = 1.5;
  u.duration_seconds = 1;
  u.restore_rate_mbps = 1536.0;
  u.integrity_validated = true;
  u.validation_results = {{"files", 10}, {"ok", true}};
  u.approved_by = "bob";
  u.request_id = "changed";  // kept
  ASSERT_TRUE(c_->update_restore(u).ok());
  for (const auto& key : {made->id, made->request_id}) {
    auto got = c_->get_restore(key);
    ASSERT_TRUE(got.ok()) << describe(got.error());
    EXPECT_EQ(got->request_id, made->request_id);
    EXPECT_EQ(got->restore_type, RestoreType::kPointInTime);
    EXPECT_EQ(got->source_backup_id, src.id);
    EXPECT_EQ(got->snapshot_id, "0123abcd");
    EXPECT_EQ(got->point_in_time, r.point_in_time);
    EXPECT_EQ(got->target_location, "/srv/restore");
    EXPECT_EQ(got->restore_scope, r.restore_scope);
    EXPECT_EQ(got->restore_options, r.restore_options);
    EXPECT_TRUE(got->overwrite_existing);
    EXPECT_EQ(got->status, ExecStatus::kCompleted);
    EXPECT_EQ(got->completed_at, FakeClock::kStart + kSecond);
    EXPECT_EQ(got->data_restored_gb, 1.5);
    EXPECT_EQ(got->duration_seconds, 1);
    EXPECT_EQ(got->restore_rate_mbps, 1536.0);
    EXPECT_TRUE(got->integrity_validated);
    EXPECT_EQ(got->validation_results, u.validation_results);
    EXPECT_EQ(got->requested_by, "alice");
    EXPECT_EQ(got->approved_by, "bob");
    EXPECT_EQ(got->request, r.request);
    EXPECT_EQ(got->created_at, FakeClock::kStart);
  }
}

TEST_F(ExecutionsTest, RestoreErrors) {
  RestoreRow r;
  r.target_location = "/r";
  r.request_id = "req-1";
  ASSERT_TRUE(c_->create_restore(r).ok());
  auto dup = c_->create_restore(r);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), Error::Code::kAlreadyExists) << describe(dup.error());

  RestoreRow orphan;
  orphan.target_location = "/r";
  orphan.source_backup_id = "no-such-execution";
  auto o = c_->create_restore(orphan);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.error().code(), Error::Code::kNotFound) << describe(o.error());

  RestoreRow bad;
  EXPECT_EQ(c_->create_restore(bad).error().code(), Error::Code::kInvalidArgument);  // no target
  bad.target_location = "/r";
  bad.request = nullptr;
  EXPECT_EQ(c_->create_restore(bad).error().code(), Error::Code::kInvalidArgument);

  RestoreRow ghost;
  ghost.id = "nope";
  ghost.target_location = "/r";
  auto u = c_->update_restore(ghost);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().code(), Error::Code::kNotFound);
  auto g = c_->get_restore("nope");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), Error::Code::kNotFound);
  EXPECT_EQ(RawDb(path_).count("restore_operations"), 1);
}

}  // namespace
}  // namespace haven::catalog

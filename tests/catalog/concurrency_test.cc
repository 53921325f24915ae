// Many threads at once: readers never fail (no SQLITE_BUSY surfacing) and never wait for a
// write in progress; writers from many threads all land; pagination stays exact while rows are
// inserted and updated.
#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "catalog_test_util.h"

namespace haven::catalog {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Records the first few errors seen by any thread.
class Errors {
 public:
  void add(const Error& e) {
    std::lock_guard<std::mutex> g(mu_);
    count_++;
    if (first_.size() < 5) first_.push_back(describe(e));
  }
  template <typename T>
  bool check(const Result<T>& r) {
    if (!r.ok()) add(r.error());
    return r.ok();
  }
  int count() {
    std::lock_guard<std::mutex> g(mu_);
    return count_;
  }
  std::string first() {
    std::lock_guard<std::mutex> g(mu_);
    std::string out;
    for (const auto& s : first_) out += s + "\n";
    return out;
  }

 private:
  std::mutex mu_;
  int count_ = 0;
  std::vector<std::string> first_;
};

TEST(Concurrency, ReadersNeverFailWhileOneThreadWrites) {
  TempDir dir;
  SqliteOptions opts;
  opts.read_connections = 3;  // fewer than the reader threads: some wait for a connection
  auto c = open_or_die(dir.file("catalog.db"), opts);
  ASSERT_TRUE(c);
  auto p = c->create_policy(sample_policy("web"));
  ASSERT_TRUE(p.ok());
  Errors errors;
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0}, reads{0};

  std::thread writer([&] {
    while (!stop) {
      auto e = c->create_execution(sample_execution(p->id));
      if (!errors.check(e)) continue;
      ExecutionRow done = *e;
      done.status = ExecStatus::kCompleted;
      done.files_backed_up = writes.load();
      Status s = c->update_execution(done);
      if (!s.ok()) errors.add(s.error());
      errors.check(c->append_event(event("backup:completed", e->execution_id)));
      writes++;
    }
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 6; t++) {
    readers.emplace_back([&, t] {
      int64_t last_event = 0;
      size_t seen_rows = 0;
      while (!stop) {
        ExecutionQuery q;
        if (t % 2) q.policy_id = p->id;
        if (t % 3 == 0) q.status = ExecStatus::kCompleted;
        auto page = c->query_executions(q);
        if (errors.check(page) && !page->rows.empty()) {
          errors.check(c->get_execution(page->rows[0].execution_id));
        }
        // Events come in id order and a reader never sees fewer than it saw before.
        auto evs = c->events_after(last_event, 100);
        if (errors.check(evs)) {
          for (const auto& e : *evs) {
            if (e.id <= last_event) errors.add(Error(Error::Code::kInternal, "event order"));
            last_event = e.id;
          }
        }
        auto all = c->list_policies();
        if (errors.check(all) && all->size() != 1) {
          errors.add(Error(Error::Code::kInternal, "policy count"));
        }
        if (page.ok()) {
          if (page->rows.size() < seen_rows && page->next_cursor.empty() && !q.status) {
            errors.add(Error(Error::Code::kInternal, "rows went missing"));
          }
          seen_rows = std::max(seen_rows, page->rows.size());
        }
        reads++;
      }
    });
  }
  std::this_thread::sleep_for(1500ms);
  stop = true;
  writer.join();
  for (auto& t : readers) t.join();
  EXPECT_EQ(errors.count(), 0) << errors.first();
  EXPECT_GT(writes.load(), 20);
  EXPECT_GT(reads.load(), 100);
}

// Another process holds the write lock in the middle of a transaction, and one of our threads
// is stuck behind it in a write (holding the catalog's writer): the catalog's reads go on at
// once (and do not see the uncommitted row); the write waits up to the busy timeout and then
// reports a retryable kTransient; once the lock is released, writes go through.
TEST(Concurrency, ReadsDoNotWaitForAWriteInProgress) {
  TempDir dir;
  std::string path = dir.file("catalog.db");
  SqliteOptions opts;
  opts.busy_timeout = 1500ms;
  auto c = open_or_die(path, opts);
  ASSERT_TRUE(c);
  auto p = c->create_policy(sample_policy("web"));
  ASSERT_TRUE(p.ok());

  RawDb other(path);
  other.must("BEGIN IMMEDIATE");
  other.must("INSERT INTO events (time, kind, payload) VALUES (1, 'other:write', '{}')");

  std::optional<Result<ExecutionRow>> blocked;
  Clock::duration waited{};
  std::atomic<bool> writing{false};
  std::thread writer([&] {
    writing = true;
    auto t0 = Clock::now();
    blocked = c->create_execution(sample_execution(p->id));
    waited = Clock::now() - t0;
  });
  while (!writing) std::this_thread::yield();
  std::this_thread::sleep_for(100ms);  // the writer is now waiting for the lock

  for (int i = 0; i < 20; i++) {
    auto t0 = Clock::now();
    auto evs = c->events_after(0, 10);
    auto pol = c->get_policy(p->id);
    auto page = c->query_executions({});
    auto took = Clock::now() - t0;
    ASSERT_TRUE(evs.ok() && pol.ok() && page.ok());
    EXPECT_TRUE(evs->empty());  // uncommitted: invisible
    EXPECT_LT(took, 500ms) << "a read waited for a write";
  }
  writer.join();

  ASSERT_TRUE(blocked.has_value());
  ASSERT_FALSE(blocked->ok());
  EXPECT_EQ(blocked->error().code(), Error::Code::kTransient) << describe(blocked->error());
  EXPECT_TRUE(blocked->error().retryable());
  EXPECT_GE(waited, 1400ms);

  other.must("COMMIT");
  auto after = c->create_execution(sample_execution(p->id));
  ASSERT_TRUE(after.ok()) << describe(after.error());
  auto evs = c->events_after(0, 10);
  ASSERT_TRUE(evs.ok());
  ASSERT_EQ(evs->size(), 1u);
  EXPECT_EQ((*evs)[0].kind, "other:write");
}

TEST(Concurrency, WritesFromManyThreadsAllLand) {
  TempDir dir;
  std::string path = dir.file("catalog.db");
  auto c = open_or_die(path);
  ASSERT_TRUE(c);
  auto p = c->create_policy(sample_policy("web"));
  ASSERT_TRUE(p.ok());
  Errors errors;
  std::vector<std::thread> ts;
  std::mutex mu;
  std::set<std::string> ids;
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 100; i++) {
        auto e = c->create_execution(sample_execution(p->id));
        if (!errors.check(e)) continue;
        {
          std::lock_guard<std::mutex> g(mu);
          ids.insert(e->id);
        }
        if (i % 10 == 0) {
          errors.check(c->create_token("t" + std::to_string(t) + "-" + std::to_string(i),
                                       Role::kViewer,
                                       "h" + std::to_string(t) + "-" + std::to_string(i)));
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(errors.count(), 0) << errors.first();
  EXPECT_EQ(ids.size(), 400u);
  RawDb raw(path);
  EXPECT_EQ(raw.count("backup_executions"), 400);
  EXPECT_EQ(raw.count("api_tokens"), 40);
}

// Readers page through one policy's executions while a writer adds newer rows, backdated rows
// and updates existing ones: every row that existed before is returned exactly once, every
// page is in order, and no row ever comes twice.
TEST(Concurrency, PaginationIsExactWhileRowsAreInserted) {
  TempDir dir;
  FakeClock clock;
  auto c = open_or_die(dir.file("catalog.db"), clock.options());
  ASSERT_TRUE(c);
  auto p = c->create_policy(sample_policy("web"));
  auto other = c->create_policy(sample_policy("other"));
  ASSERT_TRUE(p.ok() && other.ok());
  std::set<std::string> before;
  std::vector<ExecutionRow> existing;
  for (int i = 0; i < 1500; i++) {
    // Pairs of rows share a started_at: the id orders them.
    auto e = c->create_execution(sample_execution(i % 5 == 4 ? other->id : p->id,
                                                  FakeClock::kStart - (i / 2) * 1000,
                                                  ExecStatus::kCompleted));
    ASSERT_TRUE(e.ok());
    if (e->policy_id == p->id) before.insert(e->id);
    existing.push_back(*e);
  }
  Errors errors;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int k = 0; !stop; k++) {
      TimeNs t = k % 3 == 0 ? FakeClock::kStart - int64_t{1000000000000} - k  // older than all
                            : FakeClock::kStart + k;                          // newer than all
      errors.check(c->create_execution(
          sample_execution(k % 2 ? p->id : other->id, t, ExecStatus::kCompleted)));
      ExecutionRow u = existing[static_cast<size_t>(k) % existing.size()];
      u.files_backed_up = k;
      u.error_message = "touched";
      Status s = c->update_execution(u);
      if (!s.ok()) errors.add(s.error());
    }
  });
  std::atomic<int> passes{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; r++) {
    readers.emplace_back([&] {
      for (int pass = 0; pass < 4; pass++) {
        ExecutionQuery q;
        q.policy_id = p->id;
        q.limit = 50;
        std::set<std::string> seen;
        std::optional<std::pair<TimeNs, std::string>> prev;
        while (true) {
          auto page = c->query_executions(q);
          if (!errors.check(page)) return;
          for (const auto& row : page->rows) {
            if (!seen.insert(row.id).second)
              errors.add(Error(Error::Code::kInternal, "duplicate " + row.id));
            auto key = std::make_pair(row.started_at, row.id);
            if (prev && !(key < *prev)) errors.add(Error(Error::Code::kInternal, "out of order"));
            prev = key;
            if (row.policy_id != p->id) errors.add(Error(Error::Code::kInternal, "wrong policy"));
          }
          if (page->next_cursor.empty()) break;
          q.cursor = page->next_cursor;
        }
        for (const auto& id : before) {
          if (!seen.count(id)) errors.add(Error(Error::Code::kInternal, "missing " + id));
        }
        passes++;
      }
    });
  }
  for (auto& t : readers) t.join();
  stop = true;
  writer.join();
  EXPECT_EQ(errors.count(), 0) << errors.first();
  EXPECT_EQ(passes.load(), 8);
}

}  // namespace
}  // namespace haven::catalog

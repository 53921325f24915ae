// The event log (ids increasing and never reused, events_after, both prunes) and API tokens
// (lookup by hash, duplicates, revocation, reuse of a revoked name, last use).
#include "catalog_test_util.h"

namespace haven::catalog {
namespace {

class EventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("catalog.db");
    c_ = open_or_die(path_, clock_.options());
    ASSERT_TRUE(c_);
  }
  int64_t append(const std::string& kind, TimeNs time = 0) {
    EventRow e;
    e.kind = kind;
    e.time = time;
    e.operation_id = "job-1";
    e.payload = {{"kind", kind}, {"n", 1}};
    auto id = c_->append_event(e);
    EXPECT_TRUE(id.ok()) << describe(id.error());
    return id.ok() ? *id : -1;
  }
  std::vector<int64_t> ids_after(int64_t after, int limit = 1000) {
    auto evs = c_->events_after(after, limit);
    EXPECT_TRUE(evs.ok());
    std::vector<int64_t> out;
    if (evs.ok()) {
      for (const auto& e : *evs) out.push_back(e.id);
    }
    return out;
  }
  TempDir dir_;
  std::string path_;
  FakeClock clock_;
  std::unique_ptr<SqliteCatalog> c_;
};

TEST_F(EventsTest, AppendAndReadAfterInOrder) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 20; i++) ids.push_back(append("backup:progress"));
  for (size_t i = 1; i < ids.size(); i++) EXPECT_GT(ids[i], ids[i - 1]);

  auto first = c_->events_after(0, 5);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 5u);
  EXPECT_EQ((*first)[0].id, ids[0]);
  EXPECT_EQ((*first)[0].kind, "backup:progress");
  EXPECT_EQ((*first)[0].operation_id, "job-1");
  EXPECT_EQ((*first)[0].payload, nlohmann::json({{"kind", "backup:progress"}, {"n", 1}}));
  EXPECT_EQ((*first)[0].time, FakeClock::kStart);

  EXPECT_EQ(ids_after(ids[4]), std::vector<int64_t>(ids.begin() + 5, ids.end()));
  EXPECT_TRUE(ids_after(ids.back()).empty());

  EventRow bare;
  bare.kind = "server:started";
  bare.time = 77;
  auto id = c_->append_event(bare);
  ASSERT_TRUE(id.ok());
  auto evs = c_->events_after(*id - 1, 1);
  ASSERT_TRUE(evs.ok());
  ASSERT_EQ(evs->size(), 1u);
  EXPECT_EQ((*evs)[0].operation_id, std::nullopt);
  EXPECT_EQ((*evs)[0].time, 77);
  EXPECT_EQ((*evs)[0].payload, nlohmann::json::object());
}

TEST_F(EventsTest, BadArgumentsAreRefused) {
  EXPECT_EQ(c_->append_event(EventRow{}).error().code(), Error::Code::kInvalidArgument);  // no kind
  EventRow bad;
  bad.kind = "x:y";
  bad.payload = {{"s", std::string("\xc3\x28")}};  // invalid UTF-8
  EXPECT_EQ(c_->append_event(bad).error().code(), Error::Code::kInvalidArgument);
  EXPECT_EQ(c_->events_after(0, 0).error().code(), Error::Code::kInvalidArgument);
  EXPECT_EQ(c_->events_after(0, Catalog::kMaxEventBatch + 1).error().code(),
            Error::Code::kInvalidArgument);
  EXPECT_EQ(c_->prune_events_keep_last(-1).error().code(), Error::Code::kInvalidArgument);
  EXPECT_EQ(RawDb(path_).count("events"), 0);
}

TEST_F(EventsTest, PruneBeforeATime) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 10; i++) ids.push_back(append("e", FakeClock::kStart + i * kSecond));
  auto n = c_->prune_events_before(FakeClock::kStart + 4 * kSecond);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 4);
  EXPECT_EQ(ids_after(0), std::vector<int64_t>(ids.begin() + 4, ids.end()));
  EXPECT_EQ(*c_->prune_events_before(FakeClock::kStart), 0);
}

TEST_F(EventsTest, PruneKeepsTheNewest) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 10; i++) ids.push_back(append("e"));
  auto n = c_->prune_events_keep_last(3);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 7);
  EXPECT_EQ(ids_after(0), std::vector<int64_t>(ids.end() - 3, ids.end()));
  EXPECT_EQ(*c_->prune_events_keep_last(3), 0);
  EXPECT_EQ(*c_->prune_events_keep_last(100), 0);
  EXPECT_EQ(*c_->prune_events_keep_last(0), 3);
  EXPECT_TRUE(ids_after(0).empty());
}

// A client that saw id N must never be handed a different event with id N: ids are not reused
// after the newest events were pruned, nor after the catalog is reopened.
TEST_F(EventsTest, IdsAreNeverReused) {
  int64_t last = 0;
  for (int i = 0; i < 5; i++) last = append("e");
  ASSERT_EQ(*c_->prune_events_keep_last(0), 5);
  int64_t next = append("e");
  EXPECT_GT(next, last);
  c_.reset();
  c_ = open_or_die(path_, clock_.options());
  ASSERT_TRUE(c_);
  ASSERT_EQ(*c_->prune_events_keep_last(0), 1);
  EXPECT_GT(append("e"), next);
}

class TokensTest : public EventsTest {};

TEST_F(TokensTest, CreateFindByHashAndList) {
  auto t = c_->create_token("ci", Role::kOperator, "hash-ci");
  ASSERT_TRUE(t.ok()) << describe(t.error());
  EXPECT_GT(t->id, 0);
  EXPECT_EQ(t->created_at, FakeClock::kStart);
  auto found = c_->find_token_by_hash("hash-ci");
  ASSERT_TRUE(found.ok()) << describe(found.error());
  EXPECT_EQ(found->id, t->id);
  EXPECT_EQ(found->name, "ci");
  EXPECT_EQ(found->role, Role::kOperator);
  EXPECT_EQ(found->last_used_at, std::nullopt);
  EXPECT_EQ(found->revoked_at, std::nullopt);

  auto unknown = c_->find_token_by_hash("hash-other");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), Error::Code::kNotFound);
  EXPECT_EQ(unknown.error().message().find("hash-other"), std::string::npos);  // not echoed

  ASSERT_TRUE(c_->create_token("admin", Role::kAdmin, "hash-admin").ok());
  auto all = c_->list_tokens();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "admin");
  EXPECT_EQ((*all)[1].name, "ci");
}

TEST_F(TokensTest, DuplicatesAreAlreadyExists) {
  ASSERT_TRUE(c_->create_token("ci", Role::kViewer, "h1").ok());
  auto same_name = c_->create_token("ci", Role::kAdmin, "h2");
  ASSERT_FALSE(same_name.ok());
  EXPECT_EQ(same_name.error().code(), Error::Code::kAlreadyExists) << describe(same_name.error());
  auto same_hash = c_->create_token("other", Role::kAdmin, "h1");
  ASSERT_FALSE(same_hash.ok());
  EXPECT_EQ(same_hash.error().code(), Error::Code::kAlreadyExists);
  EXPECT_EQ(same_hash.error().message().find("h1"), std::string::npos);
  EXPECT_EQ(c_->create_token("", Role::kAdmin, "h3").error().code(), Error::Code::kInvalidArgument);
  EXPECT_EQ(c_->create_token("x", Role::kAdmin, "").error().code(), Error::Code::kInvalidArgument);
  EXPECT_EQ(RawDb(path_).count("api_tokens"), 1);
}

TEST_F(TokensTest, RevokedTokensNoLongerAuthenticate) {
  ASSERT_TRUE(c_->create_token("ci", Role::kOperator, "h1").ok());
  clock_.advance(kSecond);
  ASSERT_TRUE(c_->revoke_token("ci").ok());
  auto found = c_->find_token_by_hash("h1");
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.error().code(), Error::Code::kNotFound);
  auto again = c_->revoke_token("ci");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Error::Code::kNotFound);
  EXPECT_EQ(c_->revoke_token("nobody").error().code(), Error::Code::kNotFound);

  // The name may be given to a new token; the revoked row stays for the record.
  auto fresh = c_->create_token("ci", Role::kViewer, "h2");
  ASSERT_TRUE(fresh.ok()) << describe(fresh.error());
  EXPECT_TRUE(c_->find_token_by_hash("h2").ok());
  EXPECT_FALSE(c_->find_token_by_hash("h1").ok());
  // The old hash stays taken: a revoked token can never be brought back by re-adding it.
  EXPECT_EQ(c_->create_token("again", Role::kAdmin, "h1").error().code(),
            Error::Code::kAlreadyExists);
  auto all = c_->list_tokens();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].revoked_at, FakeClock::kStart + kSecond);
  EXPECT_EQ((*all)[1].revoked_at, std::nullopt);
}

TEST_F(TokensTest, TouchRecordsLastUse) {
  auto t = c_->create_token("ci", Role::kOperator, "h1");
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(c_->touch_token(t->id, FakeClock::kStart + 42).ok());
  EXPECT_EQ(c_->find_token_by_hash("h1")->last_used_at, FakeClock::kStart + 42);
  auto missing = c_->touch_token(t->id + 100, 1);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Error::Code::kNotFound);
}

}  // namespace
}  // namespace haven::catalog

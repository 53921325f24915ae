// Policies and storage locations: every method, its error codes, the fields round-tripping,
// and the foreign keys (a policy's executions go with it; a restore outlives its source).
#include "catalog_test_util.h"

namespace haven::catalog {
namespace {

class PoliciesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("catalog.db");
    c_ = open_or_die(path_, clock_.options());
    ASSERT_TRUE(c_);
  }
  TempDir dir_;
  std::string path_;
  FakeClock clock_;
  std::unique_ptr<SqliteCatalog> c_;
};

TEST_F(PoliciesTest, CreateStoresEveryFieldAndGetsByIdAndName) {
  auto loc = c_->upsert_location(sample_location("primary"));
  ASSERT_TRUE(loc.ok()) << describe(loc.error());
  PolicyRow p = sample_policy("web");
  p.location_id = loc->id;
  p.resource_type = ResourceType::kDatabase;
  p.backup_type = BackupType::kDifferential;
  p.compression_enabled = false;
  p.max_parallel_jobs = 3;
  p.retention_weekly = 0;
  p.is_active = false;
  p.last_execution = 42;  // ignored: only set_policy_schedule_times writes these
  p.next_execution = 43;
  auto made = c_->create_policy(p);
  ASSERT_TRUE(made.ok()) << describe(made.error());
  EXPECT_EQ(made->id.size(), 36u);
  EXPECT_EQ(made->created_at, FakeClock::kStart);
  EXPECT_EQ(made->updated_at, FakeClock::kStart);
  EXPECT_EQ(made->last_execution, std::nullopt);

  for (auto got : {c_->get_policy(made->id), c_->get_policy_by_name("web")}) {
    ASSERT_TRUE(got.ok()) << describe(got.error());
    EXPECT_EQ(got->id, made->id);
    EXPECT_EQ(got->name, "web");
    EXPECT_EQ(got->description, p.description);
    EXPECT_EQ(got->resource_type, ResourceType::kDatabase);
    EXPECT_EQ(got->resource_filters, p.resource_filters);
    EXPECT_EQ(got->schedule_cron, "0 3 * * *");
    EXPECT_EQ(got->timezone, "Europe/Berlin");
    EXPECT_EQ(got->retention_daily, 14);
    EXPECT_EQ(got->retention_weekly, 0);
    EXPECT_EQ(got->retention_monthly, 12);
    EXPECT_EQ(got->backup_type, BackupType::kDifferential);
    EXPECT_FALSE(got->compression_enabled);
    EXPECT_TRUE(got->encryption_enabled);
    EXPECT_EQ(got->max_parallel_jobs, 3);
    EXPECT_EQ(got->bandwidth_limit_mbps, 100);
    EXPECT_FALSE(got->is_active);
    EXPECT_EQ(got->last_execution, std::nullopt);
    EXPECT_EQ(got->next_execution, std::nullopt);
    EXPECT_EQ(got->source, PolicySource::kConfig);
    EXPECT_EQ(got->spec, p.spec);
    EXPECT_EQ(got->location_id, loc->id);
    EXPECT_EQ(got->created_at, FakeClock::kStart);
  }
}

TEST_F(PoliciesTest, NullableFieldsStayNull) {
  PolicyRow p;
  p.name = "bare";
  auto made = c_->create_policy(p);
  ASSERT_TRUE(made.ok()) << describe(made.error());
  auto got = c_->get_policy(made->id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->description, std::nullopt);
  EXPECT_TRUE(got->resource_filters.is_null());
  EXPECT_EQ(got->bandwidth_limit_mbps, std::nullopt);
  EXPECT_EQ(got->location_id, std::nullopt);
  EXPECT_EQ(got->spec, nlohmann::json::object());
  EXPECT_EQ(got->schedule_cron, "");
  RawDb raw(path_);
  EXPECT_EQ(raw.one("SELECT description IS NULL, resource_filters IS NULL FROM backup_policies"),
            "1|1");
}

TEST_F(PoliciesTest, DuplicateNameIsAlreadyExistsAndWritesNothing) {
  ASSERT_TRUE(c_->create_policy(sample_policy("web")).ok());
  auto again = c_->create_policy(sample_policy("web"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Error::Code::kAlreadyExists) << describe(again.error());
  EXPECT_NE(again.error().message().find("'web'"), std::string::npos);
  EXPECT_EQ(RawDb(path_).count("backup_policies"), 1);
}

TEST_F(PoliciesTest, UnknownLocationIsNotFound) {
  PolicyRow p = sample_policy("web");
  p.location_id = "no-such-location";
  auto r = c_->create_policy(p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kNotFound) << describe(r.error());
  EXPECT_NE(r.error().message().find("no-such-location"), std::string::npos);
  EXPECT_EQ(RawDb(path_).count("backup_policies"), 0);
}

TEST_F(PoliciesTest, BadValuesAreInvalidArgumentNamingTheField) {
  struct Case {
    const char* field;
    std::function<void(PolicyRow&)> spoil;
  };
  std::vector<Case> cases = {
      {"name", [](PolicyRow& p) { p.name = ""; }},
      {"name", [](PolicyRow& p) { p.name = std::string(300, 'n'); }},
      {"retention_daily", [](PolicyRow& p) { p.retention_daily = -1; }},
      {"max_parallel_jobs", [](PolicyRow& p) { p.max_parallel_jobs = 0; }},
      {"bandwidth_limit_mbps", [](PolicyRow& p) { p.bandwidth_limit_mbps = 0; }},
      {"spec", [](PolicyRow& p) { p.spec = nlohmann::json::array(); }},
      {"spec", [](PolicyRow& p) { p.spec = nullptr; }},
      {"resource_filters", [](PolicyRow& p) { p.resource_filters = 7; }},
      {"timezone", [](PolicyRow& p) { p.timezone = ""; }},
      {"schedule_cron", [](PolicyRow& p) { p.schedule_cron = std::string(101, '*'); }},
      {"spec",
       [](PolicyRow& p) {
         p.spec = {{"name", std::string("\xff\xfe")}};
       }},  // not UTF-8
  };
  for (const auto& k : cases) {
    PolicyRow p = sample_policy("web");
    k.spoil(p);
    auto r = c_->create_policy(p);
    ASSERT_FALSE(r.ok()) << k.field;
    EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument) << describe(r.error());
    EXPECT_NE(r.error().message().find(k.field), std::string::npos) << describe(r.error());
  }
  EXPECT_EQ(RawDb(path_).count("backup_policies"), 0);
}

TEST_F(PoliciesTest, UpdateReplacesTheDefinitionAndKeepsScheduleTimes) {
  auto made = c_->create_policy(sample_policy("web"));
  ASSERT_TRUE(made.ok());
  ASSERT_TRUE(c_->set_policy_schedule_times(made->id, 100, 200).ok());
  clock_.advance(5 * kSecond);

  PolicyRow edit = *made;  // a stale copy: its schedule times are unset
  edit.name = "website";
  edit.schedule_cron = "0 4 * * *";
  edit.spec["schedule"] = "0 4 * * *";
  edit.source = PolicySource::kApi;
  edit.created_at = 1;  // ignored
  auto updated = c_->update_policy(edit);
  ASSERT_TRUE(updated.ok()) << describe(updated.error());
  EXPECT_EQ(updated->updated_at, FakeClock::kStart + 5 * kSecond);
  EXPECT_EQ(updated->created_at, FakeClock::kStart);
  EXPECT_EQ(updated->last_execution, 100);

  auto got = c_->get_policy(made->id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "website");
  EXPECT_EQ(got->schedule_cron, "0 4 * * *");
  EXPECT_EQ(got->spec["schedule"], "0 4 * * *");
  EXPECT_EQ(got->source, PolicySource::kApi);
  EXPECT_EQ(got->created_at, FakeClock::kStart);
  EXPECT_EQ(got->updated_at, FakeClock::kStart + 5 * kSecond);
  EXPECT_EQ(got->last_execution, 100);  // the stale copy did not overwrite them
  EXPECT_EQ(got->next_execution, 200);
  EXPECT_FALSE(c_->get_policy_by_name("web").ok());
}

TEST_F(PoliciesTest, UpdateErrors) {
  auto a = c_->create_policy(sample_policy("a"));
  auto b = c_->create_policy(sample_policy("b"));
  ASSERT_TRUE(a.ok() && b.ok());

  PolicyRow ghost = *a;
  ghost.id = "no-such-id";
  auto r1 = c_->update_policy(ghost);
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.error().code(), Error::Code::kNotFound);

  PolicyRow clash = *a;
  clash.name = "b";
  auto r2 = c_->update_policy(clash);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code(), Error::Code::kAlreadyExists) << describe(r2.error());

  PolicyRow bad = *a;
  bad.retention_yearly = -3;
  auto r3 = c_->update_policy(bad);
  ASSERT_FALSE(r3.ok());
  EXPECT_EQ(r3.error().code(), Error::Code::kInvalidArgument);

  PolicyRow lost = *a;
  lost.location_id = "nowhere";
  auto r4 = c_->update_policy(lost);
  ASSERT_FALSE(r4.ok());
  EXPECT_EQ(r4.error().code(), Error::Code::kNotFound);

  EXPECT_EQ(c_->get_policy(a->id)->name, "a");  // nothing changed
}

TEST_F(PoliciesTest, GetAndListAndMissing) {
  for (const char* n : {"zeta", "alpha", "mid"})
    ASSERT_TRUE(c_->create_policy(sample_policy(n)).ok());
  auto all = c_->list_policies();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].name, "alpha");
  EXPECT_EQ((*all)[1].name, "mid");
  EXPECT_EQ((*all)[2].name, "zeta");

  auto g = c_->get_policy("nope");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), Error::Code::kNotFound);
  EXPECT_NE(g.error().message().find("'nope'"), std::string::npos);
  auto n = c_->get_policy_by_name("nope");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code(), Error::Code::kNotFound);
}

// Foreign keys are on: deleting a policy deletes its executions (the seed's ON DELETE
// CASCADE); a restore made from one of them stays, keeping its snapshot ID.
TEST_F(PoliciesTest, DeletingAPolicyDeletesItsExecutions) {
  auto keep = c_->create_policy(sample_policy("keep"));
  auto gone = c_->create_policy(sample_policy("gone"));
  ASSERT_TRUE(keep.ok() && gone.ok());
  std::vector<std::string> gone_ids;
  for (int i = 0; i < 3; i++) {
    ExecutionRow e = sample_execution(gone->id, FakeClock::kStart + i, ExecStatus::kCompleted);
    e.snapshot_id = std::string(64, 'a' + i);
    auto made = c_->create_execution(e);
    ASSERT_TRUE(made.ok());
    gone_ids.push_back(made->id);
  }
  auto kept_exec = c_->create_execution(sample_execution(keep->id));
  ASSERT_TRUE(kept_exec.ok());
  RestoreRow r;
  r.source_backup_id = gone_ids[0];
  r.snapshot_id = std::string(64, 'a');
  r.target_location = "/restore/here";
  auto restore = c_->create_restore(r);
  ASSERT_TRUE(restore.ok()) << describe(restore.error());

  ASSERT_TRUE(c_->delete_policy(gone->id).ok());
  for (const auto& id : gone_ids) {
    auto e = c_->get_execution(id);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().code(), Error::Code::kNotFound);
  }
  EXPECT_TRUE(c_->get_execution(kept_exec->id).ok());
  EXPECT_EQ(RawDb(path_).count("backup_executions"), 1);
  auto after = c_->get_restore(restore->id);
  ASSERT_TRUE(after.ok()) << describe(after.error());
  EXPECT_EQ(after->source_backup_id, std::nullopt);
  EXPECT_EQ(after->snapshot_id, std::string(64, 'a'));
  EXPECT_FALSE(c_->get_policy(gone->id).ok());

  auto again = c_->delete_policy(gone->id);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Error::Code::kNotFound);
  EXPECT_EQ(RawDb(path_).one("PRAGMA foreign_key_check"), "<no row>");
}

TEST_F(PoliciesTest, ScheduleTimes) {
  auto made = c_->create_policy(sample_policy("web"));
  ASSERT_TRUE(made.ok());
  clock_.advance(kSecond);
  ASSERT_TRUE(c_->set_policy_schedule_times(made->id, 1000, 2000).ok());
  auto got = c_->get_policy(made->id);
  EXPECT_EQ(got->last_execution, 1000);
  EXPECT_EQ(got->next_execution, 2000);
  EXPECT_EQ(got->updated_at, FakeClock::kStart);  // a schedule time is not an edit
  ASSERT_TRUE(c_->set_policy_schedule_times(made->id, 3000, std::nullopt).ok());
  got = c_->get_policy(made->id);
  EXPECT_EQ(got->last_execution, 3000);
  EXPECT_EQ(got->next_execution, std::nullopt);
  auto missing = c_->set_policy_schedule_times("nope", 1, 2);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Error::Code::kNotFound);
}

TEST_F(PoliciesTest, UpsertLocationInsertsThenReplacesByName) {
  auto first = c_->upsert_location(sample_location("primary"));
  ASSERT_TRUE(first.ok()) << describe(first.error());
  EXPECT_EQ(first->created_at, FakeClock::kStart);
  EXPECT_EQ(first->secondary_regions, (std::vector<std::string>{"eu-west-1", "us-east-1"}));

  clock_.advance(10 * kSecond);
  LocationRow changed = sample_location("primary");
  changed.storage_type = StorageType::kOnPremise;
  changed.secondary_regions.clear();
  changed.connection_config = {{"path", "/mnt/backup"}};
  changed.total_capacity_gb.reset();
  changed.access_controls = {{"writers", {"ops"}}};
  ASSERT_TRUE(c_->set_location_health("primary", FakeClock::kStart + 9 * kSecond,
                                      HealthStatus::kWarning).ok());
  // An upsert (the configuration written again) keeps what the health check recorded.
  changed.health_status = HealthStatus::kCritical;
  changed.last_health_check.reset();
  auto second = c_->upsert_location(changed);
  ASSERT_TRUE(second.ok()) << describe(second.error());
  EXPECT_EQ(second->id, first->id);
  EXPECT_EQ(second->created_at, FakeClock::kStart);
  EXPECT_EQ(second->updated_at, FakeClock::kStart + 10 * kSecond);

  for (auto got : {c_->get_location_by_name("primary"), c_->get_location(first->id)}) {
    ASSERT_TRUE(got.ok()) << describe(got.error());
    EXPECT_EQ(got->id, first->id);
    EXPECT_EQ(got->storage_type, StorageType::kOnPremise);
    EXPECT_TRUE(got->secondary_regions.empty());
    EXPECT_EQ(got->connection_config, changed.connection_config);
    EXPECT_EQ(got->health_status, HealthStatus::kWarning);
    EXPECT_EQ(got->last_health_check, FakeClock::kStart + 9 * kSecond);
    EXPECT_EQ(got->total_capacity_gb, std::nullopt);
    EXPECT_EQ(got->used_capacity_gb, 12);
    EXPECT_EQ(got->access_controls, changed.access_controls);
    EXPECT_EQ(got->compliance_certifications, (std::vector<std::string>{"ISO 27001", "SOC 2"}));
    EXPECT_EQ(got->data_residency_requirements, std::vector<std::string>{"EU"});
    EXPECT_EQ(got->created_at, FakeClock::kStart);
  }
  EXPECT_EQ(RawDb(path_).count("backup_storage_locations"), 1);
}

TEST_F(PoliciesTest, LocationListMissingAndInvalid) {
  ASSERT_TRUE(c_->upsert_location(sample_location("b-site")).ok());
  ASSERT_TRUE(c_->upsert_location(sample_location("a-site")).ok());
  auto all = c_->list_locations();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "a-site");

  auto m = c_->get_location_by_name("c-site");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), Error::Code::kNotFound);
  auto m2 = c_->get_location("nope");
  ASSERT_FALSE(m2.ok());
  EXPECT_EQ(m2.error().code(), Error::Code::kNotFound);

  LocationRow bad = sample_location("bad");
  bad.connection_config = "s3://bucket";  // a string, not an object
  auto r = c_->upsert_location(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("connection_config"), std::string::npos);
  LocationRow bad2 = sample_location("bad");
  bad2.secondary_regions = {""};
  EXPECT_EQ(c_->upsert_location(bad2).error().code(), Error::Code::kInvalidArgument);
  LocationRow bad3 = sample_location("bad");
  bad3.used_capacity_gb = -1;
  EXPECT_EQ(c_->upsert_location(bad3).error().code(), Error::Code::kInvalidArgument);
  EXPECT_EQ(RawDb(path_).count("backup_storage_locations"), 2);
}

}  // namespace
}  // namespace haven::catalog

// The catalog's disaster_recovery_plans and disaster_recovery_executions: plans by name with
// the seed's derived columns, executions with their results, the approval by a second
// principal (one conditional update), and interrupted runs marked at the next start.
#include <gtest/gtest.h>

#include "catalog/catalog_test_util.h"
#include "catalog/sqlite.h"

namespace haven::catalog {
namespace {

DrPlanRow plan(const std::string& name) {
  DrPlanRow p;
  p.name = name;
  p.description = "restore etc";
  p.plan_type = "data_only";
  p.priority = "high";
  p.rto_seconds = 1800;
  p.rpo_seconds = 3600;
  p.definition = {{"name", name},
                  {"steps", {{{"name", "restore-etc"}}}},
                  {"validation", nlohmann::json::array()}};
  p.test_frequency_days = 90;
  p.source = PolicySource::kConfig;
  return p;
}

TEST(DrCatalog, PlansAndExecutions) {
  TempDir dir;
  FakeClock clock;
  auto c = open_or_die(dir.file("c.db"), clock.options());
  auto p = c->upsert_dr_plan(plan("files-drill"));
  ASSERT_TRUE(p.ok()) << p.error().message();
  // The same name again replaces it, keeping the id.
  DrPlanRow changed = plan("files-drill");
  changed.rto_seconds = 600;
  auto p2 = c->upsert_dr_plan(changed);
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(p2->id, p->id);
  EXPECT_EQ(p2->rto_seconds, 600);
  auto by_name = c->get_dr_plan("files-drill");
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->definition["steps"][0]["name"], "restore-etc");
  EXPECT_EQ(c->get_dr_plan("nope").error().code(), Error::Code::kNotFound);

  DrExecutionRow e;
  e.plan_id = p->id;
  e.plan_name = "files-drill";
  e.execution_type = DrExecutionType::kDrill;
  e.status = ExecStatus::kRunning;
  e.rto_target_seconds = 600;
  e.server_instance = "other";
  auto created = c->create_dr_execution(e);
  ASSERT_TRUE(created.ok()) << created.error().message();
  created->status = ExecStatus::kCompleted;
  created->actual_rto_seconds = 12.5;
  created->actual_rpo_seconds = 61;
  created->success_criteria_met = true;
  created->executed_steps = {{{"name", "restore-etc"}, {"status", "completed"}}};
  ASSERT_TRUE(c->update_dr_execution(*created).ok());
  auto got = c->get_dr_execution(created->id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, ExecStatus::kCompleted);
  EXPECT_DOUBLE_EQ(got->actual_rto_seconds.value_or(0), 12.5);
  EXPECT_EQ(got->success_criteria_met, std::optional<bool>(true));
  EXPECT_EQ(got->executed_steps[0]["name"], "restore-etc");
  ASSERT_TRUE(c->set_dr_plan_tested(p->id, 5000).ok());
  EXPECT_EQ(c->get_dr_plan(p->id)->last_tested, std::optional<TimeNs>(5000));

  // The seed's columns are derived: hours and minutes.
  auto db = sqlite::Db::open(dir.file("c.db"), SQLITE_OPEN_READONLY, 1000);
  ASSERT_TRUE(db.ok());
  auto hours = (*db)->query_text("SELECT actual_rto_hours || '/' || actual_rpo_minutes || '/' || "
                                 "(SELECT rto_hours FROM disaster_recovery_plans) FROM "
                                 "disaster_recovery_executions");
  ASSERT_TRUE(hours.ok());
  EXPECT_EQ(hours->value_or(""), "0.00347222222222222/2/0.166666666666667");

  auto list = c->list_dr_executions(p->id, 10);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);
  // Deleting the plan deletes its executions.
  ASSERT_TRUE(c->delete_dr_plan(p->id).ok());
  EXPECT_EQ(c->get_dr_execution(created->id).error().code(), Error::Code::kNotFound);
}

TEST(DrCatalog, ApprovalNeedsASecondPrincipal) {
  TempDir dir;
  FakeClock clock;
  auto c = open_or_die(dir.file("c.db"), clock.options());
  auto p = c->upsert_dr_plan(plan("real"));
  ASSERT_TRUE(p.ok());
  DrExecutionRow e;
  e.plan_id = p->id;
  e.execution_type = DrExecutionType::kDisasterRecovery;
  e.executed_by = "token:alice";
  e.approval_status = ApprovalStatus::kPending;
  auto created = c->create_dr_execution(e);
  ASSERT_TRUE(created.ok());
  auto self = c->decide_dr_approval(created->id, true, "token:alice", 100);
  ASSERT_FALSE(self.ok());
  EXPECT_EQ(self.error().code(), Error::Code::kPermissionDenied);
  auto ok = c->decide_dr_approval(created->id, true, "token:bob", 200);
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(ok->approval_status, ApprovalStatus::kApproved);
  EXPECT_EQ(ok->approved_by, "token:bob");
  EXPECT_EQ(ok->approved_at, std::optional<TimeNs>(200));
  // Decided once: a second decision is a conflict.
  auto again = c->decide_dr_approval(created->id, false, "token:carol", 300);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Error::Code::kAlreadyExists);
  // An update by the runner keeps the approval.
  ok->status = ExecStatus::kRunning;
  ok->approval_status = ApprovalStatus::kPending;
  ASSERT_TRUE(c->update_dr_execution(*ok).ok());
  EXPECT_EQ(c->get_dr_execution(created->id)->approval_status, ApprovalStatus::kApproved);
  // A rejection cancels.
  auto second = c->create_dr_execution(e);
  ASSERT_TRUE(second.ok());
  auto rejected = c->decide_dr_approval(second->id, false, "token:bob", 400);
  ASSERT_TRUE(rejected.ok());
  EXPECT_EQ(rejected->status, ExecStatus::kCancelled);
  EXPECT_EQ(rejected->approval_status, ApprovalStatus::kRejected);
}

TEST(DrCatalog, RunningExecutionsOfAnotherProcessAreInterrupted) {
  TempDir dir;
  FakeClock clock;
  auto c = open_or_die(dir.file("c.db"), clock.options());
  auto p = c->upsert_dr_plan(plan("x"));
  ASSERT_TRUE(p.ok());
  DrExecutionRow e;
  e.plan_id = p->id;
  e.status = ExecStatus::kRunning;
  e.server_instance = "old";
  auto old = c->create_dr_execution(e);
  e.server_instance = "mine";
  auto mine = c->create_dr_execution(e);
  ASSERT_TRUE(old.ok() && mine.ok());
  auto n = c->mark_dr_interrupted("mine");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(c->get_dr_execution(old->id)->status, ExecStatus::kInterrupted);
  EXPECT_EQ(c->get_dr_execution(mine->id)->status, ExecStatus::kRunning);
}

}  // namespace
}  // namespace haven::catalog

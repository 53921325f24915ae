// The catalog's replication_regions: what the replicator measures and what an operator sets
// (pause, resume, stop) are written separately, so neither overwrites the other.
#include <gtest/gtest.h>

#include "catalog/catalog_test_util.h"

namespace haven::catalog {
namespace {

TEST(ReplicationCatalog, MeasurementsAndStateAreKeptApart) {
  TempDir dir;
  FakeClock clock;
  auto c = open_or_die(dir.file("c.db"), clock.options());
  ReplicationRow m;
  m.location = "local";
  m.region = "us-east-1";
  m.status = "warning";
  m.pending_objects = 3;
  m.pending_bytes = 4096;
  m.oldest_pending_at = 1000;
  m.newest_snapshot_at = 900;
  m.copied_objects = 7;
  m.last_error = "HTTP 503";
  ASSERT_TRUE(c->record_replication(m).ok());
  auto paused = c->set_replication_state("local", "us-east-1", ReplicationState::kPaused,
                                         "cli:root@host", 2000);
  ASSERT_TRUE(paused.ok()) << paused.error().message();
  EXPECT_EQ(paused->state, ReplicationState::kPaused);
  EXPECT_EQ(paused->pending_objects, 3);  // the measurement stays
  // A later measurement leaves the state as the operator set it.
  m.pending_objects = 0;
  m.status = "ok";
  m.last_error.clear();
  ASSERT_TRUE(c->record_replication(m).ok());
  auto all = c->list_replication();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].state, ReplicationState::kPaused);
  EXPECT_EQ((*all)[0].state_changed_by, "cli:root@host");
  EXPECT_EQ((*all)[0].state_changed_at, 2000);
  EXPECT_EQ((*all)[0].pending_objects, 0);
  EXPECT_EQ((*all)[0].status, "ok");
  EXPECT_EQ((*all)[0].last_error, "");
  EXPECT_EQ((*all)[0].newest_snapshot_at, 900);
  // A state set first creates the row, active measurements come later.
  auto stopped = c->set_replication_state("local", "eu-north-1", ReplicationState::kStopped,
                                          "token:ops", 3000);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->status, "unknown");
  EXPECT_EQ(c->list_replication()->size(), 2u);
  // Bad input changes nothing.
  m.status = "great";
  EXPECT_EQ(c->record_replication(m).error().code(), Error::Code::kInvalidArgument);
  EXPECT_EQ((*c->list_replication())[1].status, "ok");
}

}  // namespace
}  // namespace haven::catalog

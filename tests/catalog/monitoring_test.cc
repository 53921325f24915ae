// The catalog's monitoring tables: monitors and their results, alerts deduplicated by key,
// the notification outbox, and the audit log's hash chain (every kind of tampering named).
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "catalog/audit.h"
#include "catalog/catalog_test_util.h"

namespace haven::catalog {
namespace {

MonitorRow sample_monitor(const std::string& name, MonitorType type = MonitorType::kRpo) {
  MonitorRow m;
  m.monitor_name = name;
  m.monitor_type = type;
  m.resource_filters = {{"policy", "nightly"}};
  m.check_frequency_minutes = 5;
  m.warning_threshold = {{"percent", 80}};
  m.alert_channels = {"oncall"};
  m.escalation_policy = {{"steps", {{{"after_minutes", 0}, {"channels", {"oncall"}}}}}};
  m.source = PolicySource::kConfig;
  return m;
}

AlertRow sample_alert(const std::string& key) {
  AlertRow a;
  a.alert_key = key;
  a.kind = "alert:missed-schedule";
  a.severity = AlertSeverity::kWarning;
  a.summary = "policy nightly missed its 02:00 run";
  a.details = {{"due", "2026-12-02T02:00:00Z"}};
  return a;
}

TEST(MonitoringCatalog, MonitorUpsertKeepsItsIdAndLatestResult) {
  TempDir dir;
  FakeClock clock;
  auto c = open_or_die(dir.file("c.db"), clock.options());
  ASSERT_TRUE(c);
  auto first = c->upsert_monitor(sample_monitor("rpo-nightly"));
  ASSERT_TRUE(first.ok()) << describe(first.error());
  ASSERT_TRUE(c->record_monitor_result(first->id, clock.now(), HealthStatus::kCritical,
                                       {{"rpo_seconds", 4000}})
                  .ok());
  clock.advance(kSecond);
  MonitorRow changed = sample_monitor("rpo-nightly");
  changed.check_frequency_minutes = 1;
  auto second = c->upsert_monitor(changed);
  ASSERT_TRUE(second.ok()) << describe(second.error());
  EXPECT_EQ(second->id, first->id);
  EXPECT_EQ(second->check_frequency_minutes, 1);
  EXPECT_EQ(second->current_status, HealthStatus::kCritical);
  EXPECT_EQ(second->last_result["rpo_seconds"], 4000);
  EXPECT_EQ(second->last_check, FakeClock::kStart);
  EXPECT_EQ(second->created_at, FakeClock::kStart);
  EXPECT_EQ(second->updated_at, FakeClock::kStart + kSecond);
  auto by_name = c->get_monitor("rpo-nightly");
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->escalation_policy, changed.escalation_policy);
  for (MonitorType t : all_values<MonitorType>()) {
    auto r = c->upsert_monitor(sample_monitor("m-" + std::string(to_string(t)), t));
    EXPECT_TRUE(r.ok()) << to_string(t);
  }
  EXPECT_EQ(c->list_monitors()->size(), all_values<MonitorType>().size() + 1);
  ASSERT_TRUE(c->delete_monitor(first->id).ok());
  EXPECT_EQ(c->get_monitor("rpo-nightly").error().code(), Error::Code::kNotFound);
  MonitorRow bad = sample_monitor("bad");
  bad.check_frequency_minutes = 0;
  EXPECT_EQ(c->upsert_monitor(bad).error().code(), Error::Code::kInvalidArgument);
}

TEST(MonitoringCatalog, AlertsAreDeduplicatedByKeyUntilResolved) {
  TempDir dir;
  FakeClock clock;
  auto c = open_or_die(dir.file("c.db"), clock.options());
  ASSERT_TRUE(c);
  auto a = c->raise_alert(sample_alert("missed_schedule/nightly"));
  ASSERT_TRUE(a.ok()) << describe(a.error());
  EXPECT_TRUE(a->created);
  EXPECT_EQ(a->alert.state, AlertState::kOpen);
  clock.advance(60 * kSecond);
  AlertRow worse = sample_alert("missed_schedule/nightly");
  worse.severity = AlertSeverity::kCritical;
  auto b = c->raise_alert(worse);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->created);
  EXPECT_EQ(b->alert.id, a->alert.id);
  EXPECT_EQ(b->alert.severity, AlertSeverity::kCritical);
  EXPECT_EQ(b->alert.opened_at, FakeClock::kStart);
  EXPECT_EQ(b->alert.last_seen_at, FakeClock::kStart + 60 * kSecond);
  EXPECT_EQ(c->list_alerts(true, 100)->size(), 1u);

  AlertRow resolved = b->alert;
  resolved.state = AlertState::kResolved;
  resolved.resolved_at = clock.now();
  ASSERT_TRUE(c->update_alert(resolved).ok());
  EXPECT_FALSE(c->find_unresolved_alert("missed_schedule/nightly")->has_value());
  EXPECT_TRUE(c->list_alerts(true, 100)->empty());
  // The same condition again is a new alert; the resolved one stays for the record.
  auto again = c->raise_alert(sample_alert("missed_schedule/nightly"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->created);
  EXPECT_NE(again->alert.id, a->alert.id);
  EXPECT_EQ(c->list_alerts(false, 100)->size(), 2u);
}

TEST(MonitoringCatalog, ANotificationIsEnqueuedOnce) {
  TempDir dir;
  FakeClock clock;
  auto c = open_or_die(dir.file("c.db"), clock.options());
  ASSERT_TRUE(c);
  auto a = c->raise_alert(sample_alert("k"));
  ASSERT_TRUE(a.ok());
  NotificationRow n;
  n.alert_id = a->alert.id;
  n.channel = "oncall";
  auto first = c->enqueue_notification(n);
  ASSERT_TRUE(first.ok()) << describe(first.error());
  auto second = c->enqueue_notification(n);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(first->id, second->id);
  n.action = NotifyAction::kResolve;
  ASSERT_TRUE(c->enqueue_notification(n).ok());
  n.action = NotifyAction::kTrigger;
  n.escalation_level = 1;
  n.next_attempt_at = clock.now() + 900 * kSecond;
  ASSERT_TRUE(c->enqueue_notification(n).ok());
  EXPECT_EQ(c->notifications_of(a->alert.id)->size(), 3u);
  auto due = c->due_notifications(clock.now(), 100);
  ASSERT_TRUE(due.ok());
  EXPECT_EQ(due->size(), 2u);  // the level-1 one is not due yet
  NotificationRow done = (*due)[0];
  done.state = DeliveryState::kDelivered;
  done.attempts = 1;
  done.delivered_at = clock.now();
  ASSERT_TRUE(c->update_notification(done).ok());
  // Delivered: asking for it again changes nothing and it is never due again.
  auto re = c->enqueue_notification(n.escalation_level == 0 ? n : NotificationRow{(*due)[0]});
  ASSERT_TRUE(re.ok());
  EXPECT_EQ(re->state, DeliveryState::kDelivered);
  EXPECT_EQ(c->due_notifications(clock.now() + 1000 * kSecond, 100)->size(), 2u);
  n.alert_id = "no-such-alert";
  EXPECT_EQ(c->enqueue_notification(n).error().code(), Error::Code::kNotFound);
}

// The writes others may make at the same moment are conditional: none overwrites another.
TEST(MonitoringCatalog, AlertChangesAreConditionalSoNoneIsLost) {
  TempDir dir;
  FakeClock clock;
  const std::string path = dir.file("c.db");
  auto server = open_or_die(path, clock.options());
  auto cli = open_or_die(path, clock.options());  // another process: the CLI acknowledging
  ASSERT_TRUE(server && cli);
  auto a = server->raise_alert(sample_alert("k"));
  ASSERT_TRUE(a.ok());
  const std::string id = a->alert.id;
  // The server listed the alert open; the CLI acknowledges; the server's escalation then finds
  // it acknowledged and changes nothing.
  auto acked = cli->acknowledge_alert(id, "alice", clock.now());
  ASSERT_TRUE(acked.ok()) << describe(acked.error());
  EXPECT_EQ(acked->state, AlertState::kAcknowledged);
  auto escalated = server->escalate_alert(id, 1, clock.now());
  ASSERT_TRUE(escalated.ok());
  EXPECT_FALSE(*escalated);
  auto row = server->get_alert(id);
  EXPECT_EQ(row->state, AlertState::kAcknowledged);
  EXPECT_EQ(row->acknowledged_by, "alice");
  EXPECT_EQ(row->escalation_level, 0);
  EXPECT_EQ(cli->acknowledge_alert(id, "bob", clock.now()).error().code(), Error::Code::kAlreadyExists);
  EXPECT_EQ(cli->acknowledge_alert("nope", "bob", clock.now()).error().code(), Error::Code::kNotFound);
  // Escalation of an open alert goes one way only.
  auto b = server->raise_alert(sample_alert("k2"));
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(*server->escalate_alert(b->alert.id, 2, clock.now()));
  EXPECT_FALSE(*server->escalate_alert(b->alert.id, 1, clock.now()));
  EXPECT_EQ(server->get_alert(b->alert.id)->escalation_level, 2);
  // Resolving keeps the acknowledgement and merges the details; a second resolve is a no-op.
  auto resolved = server->resolve_alert(id, clock.now() + kSecond, {{"resolution", "fine again"}});
  ASSERT_TRUE(resolved.ok());
  ASSERT_TRUE(resolved->has_value());
  EXPECT_EQ((*resolved)->acknowledged_by, "alice");
  EXPECT_EQ((*resolved)->details["resolution"], "fine again");
  EXPECT_EQ((*resolved)->details["due"], "2026-12-02T02:00:00Z");
  EXPECT_FALSE(server->resolve_alert(id, clock.now(), {})->has_value());
  // A delivery recorded after a resolution failed the trigger is told so.
  NotificationRow n;
  n.alert_id = b->alert.id;
  n.channel = "oncall";
  auto stored = server->enqueue_notification(n);
  ASSERT_TRUE(stored.ok());
  NotificationRow failed = *stored;
  failed.state = DeliveryState::kFailed;
  ASSERT_TRUE(server->update_notification(failed).ok());
  NotificationRow delivered = *stored;
  delivered.state = DeliveryState::kDelivered;
  auto applied = server->update_pending_notification(delivered);
  ASSERT_TRUE(applied.ok());
  EXPECT_FALSE(*applied);
  EXPECT_EQ(server->notifications_of(b->alert.id)->at(0).state, DeliveryState::kFailed);
  // A warning raised to critical says so.
  AlertRow worse = sample_alert("k2");
  worse.severity = AlertSeverity::kCritical;
  auto w = server->raise_alert(worse);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w->worse);
  EXPECT_FALSE(server->raise_alert(worse)->worse);
}

// Fills a catalog with `n` audit records.
void fill_audit(SqliteCatalog& c, int n) {
  for (int i = 0; i < n; i++) {
    AuditRow r;
    r.actor = i % 3 == 0 ? "token:admin" : "scheduler";
    r.action = i % 2 == 0 ? "policy.update" : "backup.execute";
    r.target = "policy-" + std::to_string(i % 7);
    r.details = {{"i", i}, {"note", "record " + std::to_string(i)}};
    ASSERT_TRUE(c.append_audit(r).ok());
  }
}

TEST(MonitoringCatalog, AuditRecordsFormAChain) {
  TempDir dir;
  FakeClock clock;
  auto c = open_or_die(dir.file("c.db"), clock.options());
  ASSERT_TRUE(c);
  fill_audit(*c, 5);
  auto all = c->audit_records(0, 0, 100);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[0].seq, 1);
  EXPECT_EQ((*all)[0].prev_hash, kAuditGenesis);
  for (size_t i = 1; i < all->size(); i++) {
    EXPECT_EQ((*all)[i].seq, static_cast<int64_t>(i + 1));
    EXPECT_EQ((*all)[i].prev_hash, (*all)[i - 1].hash);
    EXPECT_EQ((*all)[i].hash, audit_hash((*all)[i]));
  }
  auto v = verify_audit(*c);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
  EXPECT_EQ(v->records, 5);
  EXPECT_EQ(v->last_hash, all->back().hash);
  // --since: by time.
  clock.advance(10 * kSecond);
  fill_audit(*c, 2);
  EXPECT_EQ(c->audit_records(0, FakeClock::kStart + kSecond, 100)->size(), 2u);
}

// Every kind of tampering, at random records, is caught and the record named.
TEST(MonitoringCatalog, EveryAuditMutationIsCaughtAndNamed) {
  std::mt19937 rng(20261202);
  enum Kind { kEdit, kEditTime, kDelete, kInsert, kSwap, kKinds };
  const char* names[] = {"edit", "edit time", "delete", "insert", "swap"};
  for (int trial = 0; trial < 40; trial++) {
    TempDir dir;
    const std::string path = dir.file("c.db");
    const int n = 20;
    {
      auto c = open_or_die(path);
      ASSERT_TRUE(c);
      fill_audit(*c, n);
    }
    const Kind kind = static_cast<Kind>(trial % kKinds);
    const int victim = std::uniform_int_distribution<int>(1, n - 1)(rng);  // not the last
    {
      RawDb raw(path);
      const std::string v = std::to_string(victim);
      switch (kind) {
        case kEdit:
          raw.must("UPDATE audit_log SET actor = 'token:intruder' WHERE seq = " + v);
          break;
        case kEditTime:
          raw.must("UPDATE audit_log SET time = time + 1 WHERE seq = " + v);
          break;
        case kDelete:
          raw.must("DELETE FROM audit_log WHERE seq = " + v);
          break;
        case kInsert:
          // Make room and put a forged record in, with a hash that is right for its content.
          raw.must("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= " + v);
          raw.must("UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000");
          {
            AuditRow forged;
            forged.seq = victim;
            forged.time = 1;
            forged.actor = "token:intruder";
            forged.action = "policy.delete";
            forged.target = "nightly";
            forged.prev_hash = raw.one("SELECT hash FROM audit_log WHERE seq = " +
                                       std::to_string(victim - 1));
            if (victim == 1) forged.prev_hash = kAuditGenesis;
            forged.hash = audit_hash(forged);
            raw.must("INSERT INTO audit_log VALUES (" + v + ", 1, 'token:intruder', "
                     "'policy.delete', 'nightly', '{}', '" + forged.prev_hash + "', '" +
                     forged.hash + "')");
          }
          break;
        case kSwap:
          raw.must("UPDATE audit_log SET seq = 100000 WHERE seq = " + v);
          raw.must("UPDATE audit_log SET seq = " + v + " WHERE seq = " + std::to_string(victim + 1));
          raw.must("UPDATE audit_log SET seq = " + std::to_string(victim + 1) +
                   " WHERE seq = 100000");
          break;
        default:
          break;
      }
    }
    auto c = open_or_die(path);
    ASSERT_TRUE(c);
    auto v = verify_audit(*c);
    ASSERT_TRUE(v.ok());
    ASSERT_FALSE(v->ok()) << names[kind] << " of record " << victim << " went unnoticed";
    std::set<int64_t> named;
    for (const auto& p : v->problems) named.insert(p.seq);
    // The first problem is at the record tampered with; a deletion is noticed at the record
    // after the gap, a forged record with a right hash at the record it pushed down.
    const int64_t expected = kind == kDelete || kind == kInsert ? victim + 1 : victim;
    EXPECT_EQ(v->problems.front().seq, expected) << names[kind] << ": " << v->problems.front().what;
  }
}

}  // namespace
}  // namespace haven::catalog

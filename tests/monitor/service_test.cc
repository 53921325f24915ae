// MonitorService (monitor/service.h) end to end, in fake time: haven.yaml parsed with a real
// repository on disk, a real SQLite catalog and a real jobs::Service running real backups; the
// catalog, the job service and the monitors share one clock the test moves by hand, and
// tick() is called directly (never start()). Every channel type delivers to a real receiver on
// loopback (receivers.h): httplib servers for webhook, Slack and PagerDuty, aiosmtpd with
// STARTTLS and AUTH for e-mail, and a script that appends its stdin to a file.
//
// What is proved: a missed schedule raises its alert within one check interval, escalates
// after the configured delay and resolves when a run succeeds; the RPO crosses warning, then
// critical; every channel receives exactly one trigger and one resolve; a receiver that is
// down for a while is retried with back-off and gets the notification exactly once; an
// acknowledged alert does not escalate.
#include "monitor/service.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "crypto/crypto.h"
#include "monitor/receivers.h"
#include "ops/keys.h"
#include "storage/backend.h"

namespace haven::monitor {
namespace {

using catalog::AlertState;
using catalog::DeliveryState;
using catalog::HealthStatus;
using test::closed_port;
using test::mail_header;
using test::read_file;
using test::Receiver;
using test::SmtpServer;
using test::TempDir;
using test::write_script;
using test::write_text;

constexpr TimeNs kSecond = 1'000'000'000LL;
constexpr TimeNs kMinute = 60 * kSecond;
constexpr const char* kRepoPassword = "monitor-service-test-pw";
constexpr const char* kRoutingKey = "R0123456789abcdef0123456789abcde";

TimeNs at(const std::string& rfc3339) {
  auto t = parse_time(rfc3339);
  if (!t) std::abort();
  return *t;
}

// Notifications a receiver got: (triggers, resolves).
using Tally = std::pair<int, int>;

Tally tally_json_actions(const std::vector<nlohmann::json>& docs, const std::string& field) {
  Tally t{0, 0};
  for (const auto& j : docs) {
    const std::string a = j.value(field, "");
    if (a == "trigger") t.first++;
    if (a == "resolve") t.second++;
  }
  return t;
}

std::vector<nlohmann::json> bodies(Receiver& rx) {
  std::vector<nlohmann::json> out;
  for (const auto& r : rx.requests()) out.push_back(nlohmann::json::parse(r.body));
  return out;
}

// A generic webhook's (or the command's) documents.
Tally webhook_tally(Receiver& rx) { return tally_json_actions(bodies(rx), "action"); }
Tally pagerduty_tally(Receiver& rx) { return tally_json_actions(bodies(rx), "event_action"); }
Tally slack_tally(Receiver& rx) {
  Tally t{0, 0};
  for (const auto& j : bodies(rx)) {
    const std::string text = j.value("text", "");
    (text.ends_with(" (resolved)") ? t.second : t.first)++;
  }
  return t;
}
Tally email_tally(const SmtpServer& smtp) {
  Tally t{0, 0};
  for (const auto& [env, msg] : smtp.messages()) {
    (mail_header(msg, "Subject").starts_with("[Haven] RESOLVED: ") ? t.second : t.first)++;
  }
  return t;
}
// The command channel's script appends each notification (one JSON line) to a file.
std::vector<nlohmann::json> command_docs(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

class MonitorServiceTest : public ::testing::Test {
 protected:
  // 2026-12-02T09:50:00Z: ten minutes before an hourly schedule fires.
  static constexpr const char* kStart = "2026-12-02T09:50:00Z";

  void SetUp() override {
    crypto::init();
    clock_ = at(kStart);
    auto be = storage::open_backend(dir_ / "repo");
    ASSERT_TRUE(be.ok()) << be.error().message();
    ops::InitRequest init;
    init.password = kRepoPassword;
    init.kdf = {8, 1};
    ASSERT_TRUE(ops::init(*be, init).ok());
    write_text(dir_ / "pass", std::string(kRepoPassword) + "\n");
    std::filesystem::create_directories(dir_ / "src");
    write_text(dir_ / "src/a.txt", "alpha\n", 0644);
    write_text(dir_ / "src/b.txt", std::string(64 << 10, 'b'), 0644);

    catalog::SqliteOptions co;
    co.clock = [this] { return clock_.load(); };
    auto cat = catalog::open_sqlite_catalog(dir_ / "catalog.db", co);
    ASSERT_TRUE(cat.ok()) << cat.error().message();
    catalog_ = std::move(*cat);
    jobs::ServiceOptions jo;
    jo.server_instance = "monitor-test";
    jo.retries = false;  // a failed backup fails the test at once
    jo.clock = [this] { return clock_.load(); };
    jobs_ = std::make_unique<jobs::Service>(*catalog_, sink_, jo);
  }
  void TearDown() override {
    monitor_.reset();
    jobs_.reset();
    catalog_.reset();
  }

  TimeNs now() const { return clock_.load(); }
  void set_time(const std::string& rfc3339) { clock_ = at(rfc3339); }
  void advance(TimeNs d) { clock_ += d; }

  // haven.yaml: one local location, `policies` (YAML list items) and `monitoring` (the
  // section's body).
  std::shared_ptr<const config::Config> parse(const std::string& policies,
                                              const std::string& monitoring) {
    const std::string text = "server:\n  catalog: " + (dir_ / "catalog.db") +
                             "\nlocations:\n  - {name: local, repository: " + (dir_ / "repo") +
                             ", password_file: " + (dir_ / "pass") + "}\npolicies:\n" + policies +
                             "monitoring:\n" + monitoring;
    auto cfg = config::parse_config(text, "haven.yaml",
                                    [](const std::string&) { return std::nullopt; });
    EXPECT_TRUE(cfg.ok()) << (cfg.ok() ? "" : cfg.error().message()) << "\n" << text;
    if (!cfg.ok()) return nullptr;
    return std::make_shared<const config::Config>(std::move(*cfg));
  }
  // The configuration applied to the job service and then to a new MonitorService.
  void apply(const std::string& policies, const std::string& monitoring,
             MonitorOptions options = {}) {
    config_ = parse(policies, monitoring);
    ASSERT_TRUE(config_);
    Status st = jobs_->apply_config(config_);
    ASSERT_TRUE(st.ok()) << st.error().message();
    options.clock = [this] { return clock_.load(); };
    options.health_checks = false;
    options.source = "backup-test-01";
    options.note = [this](const std::string& kind, const nlohmann::json& payload) {
      std::function<void(const std::string&)> hook;
      {
        std::lock_guard<std::mutex> g(notes_mu_);
        notes_.emplace_back(kind, payload);
        hook = on_note_;
      }
      if (hook) hook(kind);
    };
    monitor_ = std::make_unique<MonitorService>(*catalog_, jobs_.get(), std::move(options));
    st = monitor_->apply_config(config_);
    ASSERT_TRUE(st.ok()) << st.error().message();
  }
  // A new configuration for the running services (a reload).
  void reload(const std::string& policies, const std::string& monitoring) {
    config_ = parse(policies, monitoring);
    ASSERT_TRUE(config_);
    Status st = jobs_->apply_config(config_);
    ASSERT_TRUE(st.ok()) << st.error().message();
    st = monitor_->apply_config(config_);
    ASSERT_TRUE(st.ok()) << st.error().message();
  }
  // Called (outside any lock of the test) with each event's kind, on the service's thread.
  void on_note(std::function<void(const std::string&)> hook) {
    std::lock_guard<std::mutex> g(notes_mu_);
    on_note_ = std::move(hook);
  }

  std::string policy_id(const std::string& name) {
    auto p = catalog_->get_policy_by_name(name);
    EXPECT_TRUE(p.ok());
    return p.ok() ? p->id : "";
  }

  // A real backup of the policy, stamped at the fake time (which stands still meanwhile);
  // waits in real time for it, its check and its retention.
  catalog::ExecutionRow backup(const std::string& policy) {
    auto e = jobs_->execute(policy_id(policy), {});
    EXPECT_TRUE(e.ok()) << e.error().message();
    if (!e.ok()) return {};
    jobs_->wait_idle();
    auto done = catalog_->get_execution(e->id);
    EXPECT_TRUE(done.ok());
    if (!done.ok()) return {};
    EXPECT_EQ(done->status, catalog::ExecStatus::kCompleted) << done->error_message.value_or("");
    EXPECT_EQ(done->started_at, now()) << "the run is stamped with the fake clock";
    return *done;
  }

  std::vector<catalog::AlertRow> unresolved() {
    auto a = catalog_->list_alerts(true, 1000);
    EXPECT_TRUE(a.ok());
    return a.ok() ? *a : std::vector<catalog::AlertRow>{};
  }
  catalog::AlertRow alert(const std::string& id) {
    auto a = catalog_->get_alert(id);
    EXPECT_TRUE(a.ok());
    return a.ok() ? *a : catalog::AlertRow{};
  }
  catalog::MonitorRow monitor_row(const std::string& name) {
    auto m = catalog_->get_monitor(name);
    EXPECT_TRUE(m.ok());
    return m.ok() ? *m : catalog::MonitorRow{};
  }
  std::vector<catalog::NotificationRow> outbox(const std::string& alert_id) {
    auto n = catalog_->notifications_of(alert_id);
    EXPECT_TRUE(n.ok());
    return n.ok() ? *n : std::vector<catalog::NotificationRow>{};
  }
  // How many events of this kind the service sent.
  int notes(const std::string& kind) {
    std::lock_guard<std::mutex> g(notes_mu_);
    int n = 0;
    for (const auto& [k, p] : notes_) n += k == kind ? 1 : 0;
    return n;
  }

  TempDir dir_;
  std::atomic<TimeNs> clock_{0};
  std::unique_ptr<catalog::Catalog> catalog_;
  NullSink sink_;
  std::unique_ptr<jobs::Service> jobs_;
  std::unique_ptr<MonitorService> monitor_;
  std::shared_ptr<const config::Config> config_;
  std::mutex notes_mu_;
  std::vector<std::pair<std::string, nlohmann::json>> notes_;
  std::function<void(const std::string&)> on_note_;
};

// ---- a missed schedule: raised, escalated, resolved; five channels and an escalation ---------

TEST_F(MonitorServiceTest, MissedScheduleRaisesEscalatesAndResolvesOnEveryChannelOnce) {
  Receiver hook, chat, pager, boss;
  ASSERT_TRUE(hook.start());
  ASSERT_TRUE(chat.start());
  ASSERT_TRUE(pager.start());
  ASSERT_TRUE(boss.start());
  pager.respond(202, R"({"status":"success","message":"Event processed"})");
  SmtpServer smtp;
  ASSERT_EQ(smtp.start(true), "");
  write_text(dir_ / "routing_key", std::string(kRoutingKey) + "\n");
  write_text(dir_ / "smtp_password", std::string(SmtpServer::kPassword) + "\n");
  write_script(dir_ / "notify.sh", "#!/bin/sh\ncat >> \"$1\"\necho >> \"$1\"\n");
  const std::string script_out = dir_ / "notified.jsonl";

  apply("  - {name: hourly, resource_type: files, sources: [" + (dir_ / "src") +
            "], location: local, schedules: [{cron: \"0 * * * *\", timezone: UTC}], "
            "retention: {last: 5}}\n",
        "  channels:\n"
        "    - {name: hook, type: webhook, url: \"" + hook.url("/hook") + "\"}\n"
        "    - {name: chat, type: slack, url: \"" + chat.url("/services/T0/B0/XYZ") + "\"}\n"
        "    - {name: pager, type: pagerduty, url: \"" + pager.url("/v2/enqueue") +
        "\", routing_key: {file: " + (dir_ / "routing_key") + "}}\n"
        "    - name: mail\n"
        "      type: email\n"
        "      smtp_url: " + smtp.url() + "\n"
        "      starttls: true\n"
        "      ca_file: " + smtp.cert() + "\n"
        "      username: " + SmtpServer::kUser + "\n"
        "      password: {file: " + (dir_ / "smtp_password") + "}\n"
        "      from: haven@example.com\n"
        "      to: [ops@example.com]\n"
        "    - {name: script, type: command, command: [" + (dir_ / "notify.sh") + ", " +
        script_out + "]}\n"
        "    - {name: boss, type: webhook, url: \"" + boss.url("/boss") + "\"}\n"
        "  monitors:\n"
        "    - name: hourly-missed\n"
        "      type: missed_schedule\n"
        "      policy: hourly\n"
        "      check_frequency_minutes: 5\n"
        "      channels: [hook, chat, pager, mail, script]\n"
        "      escalation: [{after_minutes: 15, channels: [boss]}]\n");
  if (HasFatalFailure()) return;

  auto tallies = [&] {
    return std::map<std::string, Tally>{
        {"hook", webhook_tally(hook)},
        {"chat", slack_tally(chat)},
        {"pager", pagerduty_tally(pager)},
        {"mail", email_tally(smtp)},
        {"script", tally_json_actions(command_docs(script_out), "action")},
        {"boss", webhook_tally(boss)}};
  };
  using Tallies = std::map<std::string, Tally>;
  const Tallies none = {{"hook", {0, 0}}, {"chat", {0, 0}}, {"pager", {0, 0}},
                        {"mail", {0, 0}}, {"script", {0, 0}}, {"boss", {0, 0}}};

  // 09:50: the policy was just created; its first run is due at 10:00.
  MonitorService::Tick t = monitor_->tick();
  EXPECT_EQ(t.checked, 1);
  EXPECT_EQ(t.raised, 0);
  EXPECT_EQ(monitor_row("hourly-missed").current_status, HealthStatus::kHealthy);
  // 10:03: three minutes late, under the 5-minute warning threshold.
  set_time("2026-12-02T10:03:00Z");
  t = monitor_->tick();
  EXPECT_EQ(t.checked, 1);
  EXPECT_EQ(t.raised, 0);
  EXPECT_TRUE(unresolved().empty());
  // 10:06: over the threshold (since 10:05), but the monitor is not due until 10:08.
  set_time("2026-12-02T10:06:00Z");
  t = monitor_->tick();
  EXPECT_EQ(t.checked, 0);
  EXPECT_EQ(t.raised, 0);
  EXPECT_TRUE(unresolved().empty());
  EXPECT_EQ(tallies(), none);
  // 10:08: due: raised, 3 minutes after the threshold was crossed (within one interval).
  set_time("2026-12-02T10:08:00Z");
  const TimeNs opened = now();
  t = monitor_->tick();
  EXPECT_EQ(t.checked, 1);
  EXPECT_EQ(t.raised, 1);
  EXPECT_EQ(t.delivered, 5);
  EXPECT_EQ(t.retried, 0);
  EXPECT_EQ(t.failed, 0);
  auto open = unresolved();
  ASSERT_EQ(open.size(), 1u);
  const catalog::AlertRow raised = open[0];
  EXPECT_EQ(raised.kind, "alert:missed-schedule");
  EXPECT_EQ(raised.alert_key, "hourly-missed");
  EXPECT_EQ(raised.severity, catalog::AlertSeverity::kWarning);
  EXPECT_EQ(raised.state, AlertState::kOpen);
  EXPECT_EQ(raised.opened_at, opened);
  EXPECT_EQ(raised.policy_id.value_or(""), policy_id("hourly"));
  EXPECT_EQ(raised.details.value("due", ""), format_time(at("2026-12-02T10:00:00Z")));
  EXPECT_EQ(raised.details.value("late_minutes", -1.0), 8.0);
  EXPECT_EQ(notes("alert:missed-schedule"), 1);
  EXPECT_EQ(monitor_row("hourly-missed").current_status, HealthStatus::kWarning);
  Tallies expect = {{"hook", {1, 0}}, {"chat", {1, 0}}, {"pager", {1, 0}},
                    {"mail", {1, 0}}, {"script", {1, 0}}, {"boss", {0, 0}}};
  EXPECT_EQ(tallies(), expect);
  // What each receiver got.
  {
    auto h = hook.requests();
    ASSERT_EQ(h.size(), 1u);
    auto j = nlohmann::json::parse(h[0].body);
    EXPECT_EQ(j["kind"], "alert:missed-schedule");
    EXPECT_EQ(j["alert_key"], "hourly-missed");
    EXPECT_EQ(j["severity"], "warning");
    EXPECT_EQ(j["escalation_level"], 0);
    EXPECT_EQ(j["time"], format_time(opened));
    EXPECT_EQ(j["source"], "backup-test-01");
    EXPECT_EQ(h[0].header("Idempotency-Key"), j["id"].get<std::string>());
    auto s = nlohmann::json::parse(chat.requests()[0].body);
    EXPECT_TRUE(s.value("text", "").starts_with("[WARNING] policy hourly missed its run")) << s;
    auto p = nlohmann::json::parse(pager.requests()[0].body);
    EXPECT_EQ(p["routing_key"], kRoutingKey);
    // The incident is this alert (its id), so a later alert with the same key is a new one.
    EXPECT_EQ(p["dedup_key"], "haven-" + unresolved().at(0).id);
    EXPECT_EQ(p["payload"]["severity"], "warning");
    EXPECT_EQ(p["payload"]["source"], "backup-test-01");
    auto mails = smtp.messages();
    ASSERT_EQ(mails.size(), 1u);
    EXPECT_EQ(mails[0].first, "from haven@example.com\nto ops@example.com\ntls yes\nauth alice\n");
    EXPECT_TRUE(mail_header(mails[0].second, "Subject").starts_with("[Haven] WARNING: policy hourly"))
        << mails[0].second;
    auto c = command_docs(script_out);
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0]["kind"], "alert:missed-schedule");
    EXPECT_NE(c[0]["id"], j["id"]) << "one notification id per channel";
  }
  for (const auto& n : outbox(raised.id)) {
    EXPECT_EQ(n.state, DeliveryState::kDelivered) << n.channel;
    EXPECT_EQ(n.attempts, 1) << n.channel;
  }

  // 10:10: less than a check interval later: nothing is checked, nothing is sent.
  set_time("2026-12-02T10:10:00Z");
  t = monitor_->tick();
  EXPECT_EQ(t.checked, 0);
  EXPECT_EQ(t.delivered, 0);
  EXPECT_EQ(tallies(), expect);
  // 10:22 (opened + 14 min): checked again, still the same alert, not escalated yet.
  set_time("2026-12-02T10:22:00Z");
  t = monitor_->tick();
  EXPECT_EQ(t.checked, 1);
  EXPECT_EQ(t.raised, 0);
  EXPECT_EQ(t.escalated, 0);
  EXPECT_EQ(t.delivered, 0);
  EXPECT_EQ(tallies(), expect);
  // 10:23 (opened + 15 min): the escalation step reaches boss, and only boss.
  clock_ = opened + 15 * kMinute;
  t = monitor_->tick();
  EXPECT_EQ(t.escalated, 1);
  EXPECT_EQ(t.delivered, 1);
  expect["boss"] = {1, 0};
  EXPECT_EQ(tallies(), expect);
  {
    auto b = boss.requests();
    ASSERT_EQ(b.size(), 1u);
    auto j = nlohmann::json::parse(b[0].body);
    EXPECT_EQ(j["escalation_level"], 1);
    EXPECT_EQ(j["alert_key"], "hourly-missed");
  }
  EXPECT_EQ(alert(raised.id).escalation_level, 1);
  EXPECT_EQ(alert(raised.id).escalated_at.value_or(0), now());
  EXPECT_EQ(notes("alert:escalated"), 1);
  // 10:30: checked, still late; no step is left to take.
  set_time("2026-12-02T10:30:00Z");
  t = monitor_->tick();
  EXPECT_EQ(t.checked, 1);
  EXPECT_EQ(t.escalated, 0);
  EXPECT_EQ(t.delivered, 0);
  EXPECT_EQ(tallies(), expect);

  // A real backup of the policy at 10:30 serves the missed run.
  catalog::ExecutionRow run = backup("hourly");
  ASSERT_EQ(run.status, catalog::ExecStatus::kCompleted);
  // 10:33: not due yet (checked at 10:30), so not resolved yet.
  set_time("2026-12-02T10:33:00Z");
  t = monitor_->tick();
  EXPECT_EQ(t.checked, 0);
  EXPECT_EQ(t.resolved, 0);
  // 10:36: due: resolved, and every channel the trigger reached (boss too) hears of it once.
  set_time("2026-12-02T10:36:00Z");
  t = monitor_->tick();
  EXPECT_EQ(t.checked, 1);
  EXPECT_EQ(t.resolved, 1);
  EXPECT_EQ(t.delivered, 6);
  EXPECT_EQ(t.retried + t.failed, 0);
  expect = {{"hook", {1, 1}}, {"chat", {1, 1}}, {"pager", {1, 1}},
            {"mail", {1, 1}}, {"script", {1, 1}}, {"boss", {1, 1}}};
  EXPECT_EQ(tallies(), expect);
  {
    auto p = pager.requests();
    ASSERT_EQ(p.size(), 2u);
    auto trig = nlohmann::json::parse(p[0].body), res = nlohmann::json::parse(p[1].body);
    EXPECT_EQ(res["event_action"], "resolve");
    EXPECT_EQ(res["dedup_key"], trig["dedup_key"]);
    EXPECT_EQ(res["routing_key"], kRoutingKey);
    auto mails = smtp.messages();
    ASSERT_EQ(mails.size(), 2u);
    EXPECT_TRUE(mail_header(mails[1].second, "Subject").starts_with("[Haven] RESOLVED: "))
        << mails[1].second;
    EXPECT_NE(mail_header(mails[1].second, "Message-ID"), mail_header(mails[0].second, "Message-ID"));
    auto h = hook.requests();
    ASSERT_EQ(h.size(), 2u);
    auto j = nlohmann::json::parse(h[1].body);
    EXPECT_EQ(j["action"], "resolve");
    EXPECT_EQ(j["time"], format_time(now()));
    EXPECT_NE(h[1].header("Idempotency-Key"), h[0].header("Idempotency-Key"));
    EXPECT_TRUE(nlohmann::json::parse(chat.requests()[1].body).value("text", "").ends_with(" (resolved)"));
  }
  catalog::AlertRow resolved = alert(raised.id);
  EXPECT_EQ(resolved.state, AlertState::kResolved);
  EXPECT_EQ(resolved.resolved_at.value_or(0), now());
  EXPECT_TRUE(unresolved().empty());
  EXPECT_EQ(notes("alert:resolved"), 1);
  catalog::MonitorRow row = monitor_row("hourly-missed");
  EXPECT_EQ(row.current_status, HealthStatus::kHealthy);
  EXPECT_EQ(row.last_check.value_or(0), now());
  EXPECT_EQ(row.last_result.value("level", ""), "ok") << row.last_result;
  auto all = outbox(raised.id);
  EXPECT_EQ(all.size(), 12u) << "5 triggers, 1 escalation, 6 resolves";
  for (const auto& n : all) EXPECT_EQ(n.state, DeliveryState::kDelivered) << n.channel;

  // Later ticks (before 11:05, when the next run would be late) send nothing more.
  for (const char* time : {"2026-12-02T10:42:00Z", "2026-12-02T10:50:00Z", "2026-12-02T11:04:00Z"}) {
    set_time(time);
    t = monitor_->tick();
    EXPECT_EQ(t.raised + t.resolved + t.escalated + t.delivered + t.retried, 0) << time;
  }
  EXPECT_EQ(tallies(), expect);
  EXPECT_EQ(monitor_->counters().delivered, 12u);
  EXPECT_EQ(monitor_->counters().raised, 1u);
  EXPECT_EQ(monitor_->counters().resolved, 1u);
}

// ---- RPO: warning, then critical, then resolved ---------------------------------------------

TEST_F(MonitorServiceTest, RpoCrossesWarningThenCriticalAndResolvesAfterABackup) {
  Receiver hook;
  ASSERT_TRUE(hook.start());
  apply("  - {name: hourly, resource_type: files, sources: [" + (dir_ / "src") +
            "], location: local, schedules: [], rpo: {value: 1, unit: hours}, "
            "retention: {last: 5}}\n",
        "  channels:\n"
        "    - {name: hook, type: webhook, url: \"" + hook.url("/hook") + "\"}\n"
        "  monitors:\n"
        "    - {name: hourly-rpo, type: rpo, policy: hourly, check_frequency_minutes: 1, "
        "channels: [hook]}\n");
  if (HasFatalFailure()) return;

  const TimeNs t0 = now();
  ASSERT_EQ(backup("hourly").status, catalog::ExecStatus::kCompleted);

  // t0 + 30 min: 50 % of the target: ok.
  clock_ = t0 + 30 * kMinute;
  MonitorService::Tick t = monitor_->tick();
  EXPECT_EQ(t.checked, 1);
  EXPECT_EQ(t.raised, 0);
  EXPECT_TRUE(unresolved().empty());
  catalog::MonitorRow row = monitor_row("hourly-rpo");
  EXPECT_EQ(row.current_status, HealthStatus::kHealthy);
  EXPECT_EQ(row.last_result["conditions"][0]["details"].value("rpo_seconds", -1.0), 1800.0)
      << row.last_result;
  EXPECT_TRUE(hook.requests().empty());

  // t0 + 50 min: 83.3 %: a warning, one trigger.
  clock_ = t0 + 50 * kMinute;
  t = monitor_->tick();
  EXPECT_EQ(t.raised, 1);
  EXPECT_EQ(t.delivered, 1);
  auto open = unresolved();
  ASSERT_EQ(open.size(), 1u);
  const std::string id = open[0].id;
  EXPECT_EQ(open[0].kind, "alert:rpo-warning");
  EXPECT_EQ(open[0].severity, catalog::AlertSeverity::kWarning);
  EXPECT_EQ(open[0].details.value("rpo_seconds", -1.0), 3000.0);
  EXPECT_EQ(open[0].details.value("percent_of_target", -1.0), 83.3);
  EXPECT_EQ(open[0].details.value("target_seconds", -1), 3600);
  EXPECT_EQ(monitor_row("hourly-rpo").current_status, HealthStatus::kWarning);
  EXPECT_EQ(webhook_tally(hook), Tally(1, 0));
  EXPECT_EQ(nlohmann::json::parse(hook.requests()[0].body)["severity"], "warning");
  EXPECT_EQ(notes("alert:rpo-warning"), 1);
  EXPECT_EQ(notes("alert:rpo-critical"), 0);

  // t0 + 61 min: 101.7 %: the same alert, now critical; no second trigger.
  clock_ = t0 + 61 * kMinute;
  t = monitor_->tick();
  EXPECT_EQ(t.checked, 1);
  EXPECT_EQ(t.raised, 0);
  EXPECT_EQ(t.delivered, 0);
  open = unresolved();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].id, id);
  EXPECT_EQ(open[0].severity, catalog::AlertSeverity::kCritical);
  EXPECT_EQ(open[0].kind, "alert:rpo-critical");
  EXPECT_EQ(notes("alert:rpo-critical"), 1);  // the event says it got worse; nobody is paged twice
  EXPECT_EQ(open[0].last_seen_at, now());
  EXPECT_EQ(open[0].details.value("rpo_seconds", -1.0), 3660.0);
  EXPECT_EQ(open[0].details.value("percent_of_target", -1.0), 101.7);
  EXPECT_EQ(monitor_row("hourly-rpo").current_status, HealthStatus::kCritical);
  EXPECT_EQ(webhook_tally(hook), Tally(1, 0));
  // The status (haven status, /api/status, /metrics) says the same at that moment.
  auto report = compute_status(monitor_->status_context(*config_), now());
  ASSERT_TRUE(report.ok()) << report.error().message();
  ASSERT_EQ(report->policies.size(), 1u);
  const PolicyStatus& ps = report->policies[0];
  EXPECT_EQ(ps.name, "hourly");
  EXPECT_EQ(ps.rpo.level, Level::kCritical);
  ASSERT_TRUE(ps.rpo.seconds.has_value());
  EXPECT_NEAR(*ps.rpo.seconds, 3660.0, 1e-6);
  EXPECT_EQ(ps.rpo.target_seconds.value_or(0), 3600);
  EXPECT_EQ(ps.restorable_point.value_or(0), t0);
  ASSERT_EQ(report->alerts.size(), 1u);
  EXPECT_EQ(report->alerts[0].id, id);
  auto via_service = monitor_->status();
  ASSERT_TRUE(via_service.ok());
  EXPECT_EQ(via_service->policies[0].rpo.level, Level::kCritical);

  // A backup at t0 + 61 min; a minute later the RPO is 60 s: resolved, one resolve.
  ASSERT_EQ(backup("hourly").status, catalog::ExecStatus::kCompleted);
  advance(kMinute);
  t = monitor_->tick();
  EXPECT_EQ(t.checked, 1);
  EXPECT_EQ(t.resolved, 1);
  EXPECT_EQ(t.delivered, 1);
  EXPECT_EQ(alert(id).state, AlertState::kResolved);
  EXPECT_EQ(monitor_row("hourly-rpo").current_status, HealthStatus::kHealthy);
  EXPECT_EQ(webhook_tally(hook), Tally(1, 1));
  auto after = compute_status(monitor_->status_context(*config_), now());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->policies[0].rpo.level, Level::kOk);
  EXPECT_NEAR(after->policies[0].rpo.seconds.value_or(-1), 60.0, 1e-6);
  EXPECT_TRUE(after->alerts.empty());
  // And no more.
  for (int i = 0; i < 3; i++) {
    advance(2 * kMinute);
    t = monitor_->tick();
    EXPECT_EQ(t.checked, 1);
    EXPECT_EQ(t.raised + t.resolved + t.delivered, 0);
  }
  EXPECT_EQ(webhook_tally(hook), Tally(1, 1));
}

// ---- a receiver down for a while: retried with back-off, delivered exactly once -------------

TEST_F(MonitorServiceTest, DownReceiverIsRetriedWithBackoffAndGetsItExactlyOnce) {
  const int port = closed_port();
  ASSERT_GT(port, 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hook";
  MonitorOptions o;
  o.retry_initial = 30 * kSecond;
  o.retry_max = 10 * kMinute;
  // No backup and an RPO target: critical at the first check.
  apply("  - {name: hourly, resource_type: files, sources: [" + (dir_ / "src") +
            "], location: local, schedules: [], rpo: {value: 1, unit: hours}}\n",
        "  channels:\n"
        "    - {name: hook, type: webhook, url: \"" + url + "\", timeout_seconds: 5}\n"
        "  monitors:\n"
        "    - {name: hourly-rpo, type: rpo, policy: hourly, check_frequency_minutes: 60, "
        "channels: [hook]}\n",
        o);
  if (HasFatalFailure()) return;

  const TimeNs t0 = now();
  MonitorService::Tick t = monitor_->tick();
  EXPECT_EQ(t.raised, 1);
  EXPECT_EQ(t.delivered, 0);
  EXPECT_EQ(t.retried, 1);
  EXPECT_EQ(monitor_->counters().retried, 1u);
  auto open = unresolved();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].severity, catalog::AlertSeverity::kCritical);
  const std::string alert_id = open[0].id;
  auto rows = outbox(alert_id);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, DeliveryState::kPending);
  EXPECT_EQ(rows[0].attempts, 1);
  EXPECT_EQ(rows[0].next_attempt_at, t0 + 30 * kSecond);
  ASSERT_TRUE(rows[0].last_error.has_value());
  EXPECT_NE(rows[0].last_error->find("alert channel 'hook' (webhook): POST http://127.0.0.1:" +
                                     std::to_string(port)),
            std::string::npos)
      << *rows[0].last_error;

  // 20 s later: within the back-off, no attempt.
  clock_ = t0 + 20 * kSecond;
  t = monitor_->tick();
  EXPECT_EQ(t.retried + t.delivered + t.failed, 0);
  EXPECT_EQ(outbox(alert_id)[0].attempts, 1);
  // 30 s: the second attempt, still refused; the back-off doubles (next at 30 + 60 s).
  clock_ = t0 + 30 * kSecond;
  t = monitor_->tick();
  EXPECT_EQ(t.retried, 1);
  EXPECT_EQ(t.delivered, 0);
  rows = outbox(alert_id);
  EXPECT_EQ(rows[0].state, DeliveryState::kPending);
  EXPECT_EQ(rows[0].attempts, 2);
  EXPECT_EQ(rows[0].next_attempt_at, t0 + 90 * kSecond);

  // The receiver comes up; still within the back-off: it hears nothing yet.
  Receiver rx;
  ASSERT_TRUE(rx.start(port));
  clock_ = t0 + 60 * kSecond;
  t = monitor_->tick();
  EXPECT_EQ(t.retried + t.delivered, 0);
  EXPECT_TRUE(rx.requests().empty());
  // 90 s: the third attempt delivers.
  clock_ = t0 + 90 * kSecond;
  t = monitor_->tick();
  EXPECT_EQ(t.delivered, 1);
  EXPECT_EQ(t.retried, 0);
  auto got = rx.requests();
  ASSERT_EQ(got.size(), 1u);
  auto j = nlohmann::json::parse(got[0].body);
  EXPECT_EQ(j["action"], "trigger");
  EXPECT_EQ(j["alert_key"], "hourly-rpo");
  EXPECT_EQ(got[0].header("Idempotency-Key"), j["id"].get<std::string>());
  rows = outbox(alert_id);
  EXPECT_EQ(rows[0].state, DeliveryState::kDelivered);
  EXPECT_EQ(rows[0].attempts, 3);
  EXPECT_EQ(rows[0].delivered_at.value_or(0), now());
  EXPECT_FALSE(rows[0].last_error.has_value());

  // Never again, however many ticks follow (the monitor is checked again meanwhile).
  for (int i = 0; i < 5; i++) {
    advance(30 * kMinute);
    t = monitor_->tick();
    EXPECT_EQ(t.delivered + t.retried + t.raised, 0);
  }
  EXPECT_EQ(rx.requests().size(), 1u);
  EXPECT_EQ(monitor_->counters().delivered, 1u);
  EXPECT_EQ(monitor_->counters().failed, 0u);
  EXPECT_EQ(notes("alert:notification-failed"), 0);
}

// ---- acknowledging stops the escalation -----------------------------------------------------

TEST_F(MonitorServiceTest, AcknowledgedAlertIsNotEscalated) {
  Receiver hook, boss;
  ASSERT_TRUE(hook.start());
  ASSERT_TRUE(boss.start());
  apply("  - {name: hourly, resource_type: files, sources: [" + (dir_ / "src") +
            "], location: local, schedules: [], rpo: {value: 1, unit: hours}, "
            "retention: {last: 5}}\n",
        "  channels:\n"
        "    - {name: hook, type: webhook, url: \"" + hook.url("/hook") + "\"}\n"
        "    - {name: boss, type: webhook, url: \"" + boss.url("/boss") + "\"}\n"
        "  monitors:\n"
        "    - name: hourly-rpo\n"
        "      type: rpo\n"
        "      policy: hourly\n"
        "      check_frequency_minutes: 5\n"
        "      channels: [hook]\n"
        "      escalation: [{after_minutes: 15, channels: [boss]}]\n");
  if (HasFatalFailure()) return;

  const TimeNs t0 = now();
  MonitorService::Tick t = monitor_->tick();
  EXPECT_EQ(t.raised, 1);
  EXPECT_EQ(t.delivered, 1);
  auto open = unresolved();
  ASSERT_EQ(open.size(), 1u);
  const std::string id = open[0].id;

  // Acknowledged 5 minutes in, before the 15-minute step.
  clock_ = t0 + 5 * kMinute;
  auto acked = monitor_->acknowledge(id, "token:ops");
  ASSERT_TRUE(acked.ok()) << acked.error().message();
  EXPECT_EQ(acked->state, AlertState::kAcknowledged);
  EXPECT_EQ(alert(id).state, AlertState::kAcknowledged);
  EXPECT_EQ(alert(id).acknowledged_by.value_or(""), "token:ops");
  EXPECT_EQ(alert(id).acknowledged_at.value_or(0), now());
  EXPECT_EQ(notes("alert:acknowledged"), 1);
  auto again = monitor_->acknowledge(id, "token:ops");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Error::Code::kAlreadyExists);
  auto unknown = monitor_->acknowledge("00000000-0000-0000-0000-000000000000", "token:ops");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), Error::Code::kNotFound);

  // Past the step, and long after: still checked, still critical, never escalated.
  for (TimeNs m : {16, 30, 90}) {
    clock_ = t0 + m * kMinute;
    t = monitor_->tick();
    EXPECT_EQ(t.checked, 1) << m;
    EXPECT_EQ(t.escalated, 0) << m;
    EXPECT_EQ(t.raised, 0) << m;
    EXPECT_EQ(t.delivered, 0) << m;
  }
  EXPECT_TRUE(boss.requests().empty());
  EXPECT_EQ(alert(id).escalation_level, 0);
  EXPECT_EQ(alert(id).state, AlertState::kAcknowledged) << "raising it again keeps the acknowledgement";
  EXPECT_EQ(webhook_tally(hook), Tally(1, 0));

  // Resolved by a backup: the resolve reaches hook (which had the trigger), not boss.
  ASSERT_EQ(backup("hourly").status, catalog::ExecStatus::kCompleted);
  advance(5 * kMinute);
  t = monitor_->tick();
  EXPECT_EQ(t.resolved, 1);
  EXPECT_EQ(t.delivered, 1);
  EXPECT_EQ(alert(id).state, AlertState::kResolved);
  EXPECT_EQ(webhook_tally(hook), Tally(1, 1));
  EXPECT_TRUE(boss.requests().empty());
  auto late = monitor_->acknowledge(id, "token:ops");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code(), Error::Code::kAlreadyExists);
}

// ---- a missed schedule resolves when a run succeeds: not when one fails, nor while one runs ----

TEST_F(MonitorServiceTest, MissedScheduleStaysOpenThroughAFailedRunAndResolvesOnSuccess) {
  Receiver hook;
  ASSERT_TRUE(hook.start());
  apply("  - {name: hourly, resource_type: files, sources: [" + (dir_ / "src") +
            "], location: local, schedules: [{cron: \"0 * * * *\"}], retention: {last: 5}}\n"
            "  - {name: broken, resource_type: files, sources: [" + (dir_ / "missing") +
            "], location: local, schedules: [{cron: \"0 * * * *\"}], retention: {last: 5}}\n",
        "  channels:\n"
        "    - {name: hook, type: webhook, url: \"" + hook.url("/hook") + "\"}\n"
        "  monitors:\n"
        "    - {name: broken-missed, type: missed_schedule, policy: broken, check_frequency_minutes: 1, channels: [hook]}\n");
  if (HasFatalFailure()) return;
  set_time("2026-12-02T10:06:00Z");
  MonitorService::Tick t = monitor_->tick();
  EXPECT_EQ(t.raised, 1);
  ASSERT_EQ(unresolved().size(), 1u);
  const std::string id = unresolved()[0].id;
  // A run that fails serves nothing: the alert stays open, and no second one is raised.
  auto failed = jobs_->execute(policy_id("broken"), {});
  ASSERT_TRUE(failed.ok());
  jobs_->wait_idle();
  EXPECT_EQ(catalog_->get_execution(failed->id)->status, catalog::ExecStatus::kFailed);
  advance(2 * kMinute);
  t = monitor_->tick();
  EXPECT_EQ(t.checked, 1);
  EXPECT_EQ(t.resolved, 0);
  EXPECT_EQ(t.raised, 0);
  EXPECT_EQ(alert(id).state, AlertState::kOpen);
  // A run queued (its row pending) since the missed fire: the monitor does not judge meanwhile.
  catalog::ExecutionRow queued;
  queued.policy_id = policy_id("broken");
  queued.backup_location = dir_ / "repo";
  queued.status = catalog::ExecStatus::kRunning;
  auto row = catalog_->create_execution(queued);
  ASSERT_TRUE(row.ok());
  advance(2 * kMinute);
  auto e = monitor_->check_now("broken-missed");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->level, Level::kUnknown) << e->message;
  EXPECT_NE(e->message.find("in progress"), std::string::npos) << e->message;
  EXPECT_EQ(alert(id).state, AlertState::kOpen);
  // It succeeds: resolved, one trigger and one resolve in all.
  row->status = catalog::ExecStatus::kCompleted;
  row->completed_at = now();
  ASSERT_TRUE(catalog_->update_execution(*row).ok());
  advance(2 * kMinute);
  t = monitor_->tick();
  EXPECT_EQ(t.resolved, 1);
  EXPECT_EQ(alert(id).state, AlertState::kResolved);
  EXPECT_EQ(alert(id).details.value("resolution", ""), "policy broken has run on schedule");
  EXPECT_NE(alert(id).summary.find("missed its run due at 2026-12-02T10:00:00"), std::string::npos)
      << alert(id).summary;
  EXPECT_EQ(webhook_tally(hook), Tally(1, 1));
}

// ---- a monitor removed from haven.yaml: its alert is resolved, and its channels are told ------

TEST_F(MonitorServiceTest, RemovedMonitorResolvesItsAlertWithAResolveNotice) {
  Receiver hook;
  ASSERT_TRUE(hook.start());
  const std::string policies =
      "  - {name: hourly, resource_type: files, sources: [" + (dir_ / "src") +
      "], location: local, schedules: [], rpo: {value: 1, unit: hours}}\n";
  const std::string channels =
      "  channels:\n"
      "    - {name: hook, type: webhook, url: \"" + hook.url("/hook") + "\"}\n";
  apply(policies, channels +
                      "  monitors:\n"
                      "    - {name: hourly-rpo, type: rpo, policy: hourly, channels: [hook]}\n");
  if (HasFatalFailure()) return;
  MonitorService::Tick t = monitor_->tick();
  EXPECT_EQ(t.raised, 1);
  EXPECT_EQ(t.delivered, 1);
  auto open = unresolved();
  ASSERT_EQ(open.size(), 1u);
  const std::string id = open[0].id;
  EXPECT_EQ(webhook_tally(hook), Tally(1, 0));

  // The monitor leaves the file (the channel stays): the alert can never clear by itself, so
  // it is resolved now, and the receiver that was paged hears of it, once.
  advance(kMinute);
  reload(policies, channels);
  if (HasFatalFailure()) return;
  catalog::AlertRow a = alert(id);
  EXPECT_EQ(a.state, AlertState::kResolved);
  EXPECT_EQ(a.resolved_at.value_or(0), now());
  EXPECT_EQ(a.details.value("resolved_because", ""), "monitor removed from the configuration");
  EXPECT_FALSE(catalog_->get_monitor("hourly-rpo").ok());
  t = monitor_->tick();
  EXPECT_EQ(t.delivered, 1);
  EXPECT_EQ(webhook_tally(hook), Tally(1, 1));
  auto got = hook.requests();
  ASSERT_EQ(got.size(), 2u);
  auto j = nlohmann::json::parse(got[1].body);
  EXPECT_EQ(j["action"], "resolve");
  EXPECT_EQ(j["alert_key"], "hourly-rpo");
  EXPECT_EQ(notes("alert:resolved"), 1);
  for (int i = 0; i < 3; i++) {
    advance(10 * kMinute);
    t = monitor_->tick();
    EXPECT_EQ(t.delivered + t.raised, 0);
  }
  EXPECT_EQ(webhook_tally(hook), Tally(1, 1));
}

}  // namespace
}  // namespace haven::monitor

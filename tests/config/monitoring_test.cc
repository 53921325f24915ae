// The monitoring section of haven.yaml: channels of every type, monitors with their thresholds
// and escalation, and every mistake named at its line with the fix (secrets never quoted).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "config_test_util.h"

namespace haven::config {
namespace {

using test::env_of;
using test::lines_of;
using test::TempDir;
using test::with_dir;

const char* kHead = R"(locations:
  - name: local
    repository: /srv/backup
    password_file: @DIR@/pass
policies:
  - name: nightly
    resource_type: files
    sources: [/etc]
    location: local
    schedules: [{cron: "0 2 * * *"}]
    rpo: {value: 1, unit: days}
)";

TEST(ConfigMonitoring, AWholeSectionDecodes) {
  TempDir dir;
  dir.write("pass", "pw\n");
  dir.write("pd", "ROUTING-KEY-1234\n");
  std::string text = std::string(kHead) + R"(monitoring:
  health_check_minutes: 10
  read_data_days: 7
  restore_mbps: 250
  channels:
    - {name: hook, type: webhook, url: "http://127.0.0.1:9/hook"}
    - {name: chat, type: slack, url: {env: SLACK_URL}}
    - {name: pager, type: pagerduty, routing_key: {file: @DIR@/pd}}
    - name: mail
      type: email
      smtp_url: smtp://127.0.0.1:2525
      username: haven
      password: {env: SMTP_PASSWORD}
      from: haven@example.com
      to: [ops@example.com]
    - {name: script, type: command, command: [/usr/local/bin/page, --team, ops]}
  monitors:
    - name: nightly-missed
      type: missed_schedule
      policy: nightly
      check_frequency_minutes: 1
      warning: 2
      channels: [hook, mail]
      escalation:
        - {after_minutes: 15, channels: [pager]}
        - {after_minutes: 60, channels: [script]}
    - {name: nightly-rpo, type: rpo, policy: nightly, channels: [chat]}
    - {name: disk, type: storage_capacity, location: local, critical: 95}
)";
  auto c = check_config(with_dir(text, dir.path()), "haven.yaml",
                        env_of({{"SLACK_URL", "https://hooks.slack.example/T/B/XYZ"},
                                {"SMTP_PASSWORD", "smtp-pw"}}));
  ASSERT_TRUE(c.ok()) << lines_of(c.diagnostics)[0];
  const MonitoringSettings& m = c.value.monitoring;
  EXPECT_EQ(m.health_check_minutes, 10);
  EXPECT_EQ(m.read_data_days, 7);
  EXPECT_EQ(m.restore_mbps, 250);
  ASSERT_EQ(m.channels.size(), 5u);
  EXPECT_EQ(m.channels[1].url.reveal(), "https://hooks.slack.example/T/B/XYZ");
  EXPECT_EQ(m.channels[2].routing_key.reveal(), "ROUTING-KEY-1234");
  EXPECT_EQ(m.channels[2].url.reveal(), "https://events.pagerduty.com/v2/enqueue");
  EXPECT_EQ(m.channels[3].password.reveal(), "smtp-pw");
  EXPECT_TRUE(m.channels[3].starttls);
  EXPECT_EQ(m.channels[4].command.size(), 3u);
  ASSERT_EQ(m.monitors.size(), 3u);
  EXPECT_EQ(m.monitors[0].type, MonitorKind::kMissedSchedule);
  EXPECT_EQ(m.monitors[0].warning_or_default(), 2);
  EXPECT_EQ(m.monitors[0].critical_or_default(), 60);
  ASSERT_EQ(m.monitors[0].escalation.size(), 2u);
  EXPECT_EQ(m.monitors[0].escalation[1].after_minutes, 60);
  EXPECT_EQ(m.monitors[1].warning_or_default(), 80);
  EXPECT_EQ(m.monitors[2].location, "local");
  EXPECT_EQ(m.monitors[2].critical_or_default(), 95);
  // Secrets never show in the JSON forms.
  std::string shown;
  for (const auto& ch : m.channels) shown += nlohmann::json(ch).dump();
  EXPECT_EQ(shown.find("XYZ"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("ROUTING-KEY"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("smtp-pw"), std::string::npos) << shown;
}

TEST(ConfigMonitoring, MistakesAreNamedWithTheFix) {
  TempDir dir;
  dir.write("pass", "pw\n");
  std::string text = std::string(kHead) + R"(monitoring:
  channels:
    - {name: pager, type: pagerduty, routing_key: "CLEAR-KEY-5678"}
    - {name: mail, type: email, smtp_url: "ftp://x", to: [a@b]}
  monitors:
    - {name: a, type: rpo, policy: nightly, channels: [nobody]}
    - {name: b, type: rpo, policy: daily}
    - {name: c, type: storage_capacity, policy: nightly, location: local}
    - {name: d, type: backup_failure_rate, policy: nightly, warning: 60, critical: 40}
    - name: e
      type: missed_schedule
      policy: nightly
      escalation: [{after_minutes: 30, channels: [pager]}, {after_minutes: 10, channels: [pager]}]
    - {name: f, type: fast, policy: nightly}
)";
  auto c = check_config(with_dir(text, dir.path()), "haven.yaml", env_of({}));
  auto lines = lines_of(c.diagnostics);
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  EXPECT_EQ(all.find("CLEAR-KEY"), std::string::npos) << all;
  auto has = [&](const std::string& s) { return all.find(s) != std::string::npos; };
  EXPECT_TRUE(has("haven.yaml:14:51: monitoring.channels[0].routing_key: must be {env: VARIABLE} "
                  "or {file: PATH}")) << all;
  EXPECT_TRUE(has("monitoring.channels[1].smtp_url: must be smtp://HOST:PORT")) << all;
  EXPECT_TRUE(has("monitoring.channels[1].from: required, but missing")) << all;
  EXPECT_TRUE(has("monitoring.monitors[0].channels: names channel 'nobody', which "
                  "monitoring.channels does not define (fix: use one of: pager, mail)")) << all;
  EXPECT_TRUE(has("monitoring.monitors[1].policy: names policy 'daily', which is not defined"))
      << all;
  EXPECT_TRUE(has("monitoring.monitors[2].policy: does not apply to storage_capacity monitors"))
      << all;
  EXPECT_TRUE(has("monitoring.monitors[3]: has a warning threshold (60) above its "
                  "critical one (40)")) << all;
  EXPECT_TRUE(has("monitoring.monitors[4].escalation[1].after_minutes: must be later than the "
                  "step before (30 minutes)")) << all;
  EXPECT_TRUE(has("monitoring.monitors[5].type: must be one of")) << all;
}

TEST(ConfigMonitoring, AMonitorFromTheApiGoesThroughTheSameChecks) {
  TempDir dir;
  dir.write("pass", "pw\n");
  std::string text = std::string(kHead) + R"(monitoring:
  channels: [{name: hook, type: webhook, url: "http://127.0.0.1:9/"}]
)";
  auto c = check_config(with_dir(text, dir.path()), "haven.yaml", env_of({}));
  ASSERT_TRUE(c.ok());
  auto good = check_monitor_json(
      nlohmann::json::parse(R"({"name": "api-rpo", "type": "rpo", "policy": "from-api",
                                "checkFrequencyMinutes": 2, "channels": ["hook"],
                                "escalation": [{"afterMinutes": 5, "channels": ["hook"]}]})"),
      c.value, {"nightly", "from-api"});
  ASSERT_TRUE(good.ok()) << lines_of(good.diagnostics)[0];
  EXPECT_EQ(good.value.check_frequency_minutes, 2);
  nlohmann::json back = good.value;
  auto again = check_monitor_json(back, c.value, {"nightly", "from-api"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value.escalation, good.value.escalation);
  auto bad = check_monitor_json(nlohmann::json::parse(R"({"name": "x", "type": "rpo",
                                                          "policy": "nightly", "warning": -1})"),
                                c.value, {"nightly"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(lines_of(bad.diagnostics)[0], "warning: must be >= 0, not -1 (fix: write a threshold "
                                          "of 0 or more)");
}

}  // namespace
}  // namespace haven::config

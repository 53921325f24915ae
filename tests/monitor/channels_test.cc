// Tests of the alert channels (monitor/channels.h) against real receivers on loopback: an
// httplib server standing in for a webhook, Slack and PagerDuty; a real SMTP server
// (aiosmtpd, tests/monitor/smtp_server.py) with STARTTLS and AUTH; shell scripts as commands.
#include "monitor/channels.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "monitor/receivers.h"
#include "util/cancel.h"

namespace haven::monitor {
namespace {

namespace fs = std::filesystem;
using Code = Error::Code;
using Clock = std::chrono::steady_clock;
using test::closed_port;
using test::mail_header;
using test::read_file;
using test::Receiver;
using test::TempDir;
using test::write_script;

// ---- helpers ---------------------------------------------------------------------------------

Notification sample(const std::string& id = "n-0001") {
  Notification n;
  n.id = id;
  n.alert_key = "missed_schedule/nightly";
  n.action = NotifyAction::kTrigger;
  n.severity = "critical";
  n.kind = "alert:missed-schedule";
  n.summary = "Nightly backup of db1 missed its 02:00 run";
  n.time = 1767225600123000000;  // 2026-01-01T00:00:00.123Z
  n.escalation_level = 1;
  n.details = {{"policy", "nightly"}, {"missed_runs", 2}};
  n.source = "backup-01";
  return n;
}

ChannelConfig http_channel(ChannelType type, const std::string& url) {
  ChannelConfig c;
  c.name = "oncall";
  c.type = type;
  c.url = config::Secret(url);
  c.timeout = std::chrono::milliseconds(5000);
  return c;
}

// ---- webhook, Slack, PagerDuty ---------------------------------------------------------------

TEST(ChannelWebhook, PostsTheNotificationJsonWithItsIdempotencyKey) {
  Receiver rx;
  ASSERT_TRUE(rx.start());
  ChannelConfig c = http_channel(ChannelType::kWebhook, rx.url("/hooks/haven"));
  Notification n = sample("n-webhook-1");
  Status st = deliver(c, n);
  ASSERT_TRUE(st.ok()) << st.error().message();

  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].path, "/hooks/haven");
  EXPECT_EQ(reqs[0].header("Idempotency-Key"), "n-webhook-1");
  EXPECT_EQ(reqs[0].header("Content-Type"), "application/json");
  auto j = nlohmann::json::parse(reqs[0].body);
  EXPECT_EQ(j, n.to_json());
  EXPECT_EQ(j["id"], "n-webhook-1");
  EXPECT_EQ(j["alert_key"], "missed_schedule/nightly");
  EXPECT_EQ(j["action"], "trigger");
  EXPECT_EQ(j["severity"], "critical");
  EXPECT_EQ(j["kind"], "alert:missed-schedule");
  EXPECT_EQ(j["summary"], "Nightly backup of db1 missed its 02:00 run");
  EXPECT_EQ(j["time"], "2026-01-01T00:00:00.123000000Z");
  EXPECT_EQ(j["escalation_level"], 1);
  EXPECT_EQ(j["details"]["missed_runs"], 2);
  EXPECT_EQ(j["details"]["policy"], "nightly");
  EXPECT_EQ(j["source"], "backup-01");

  // A resolve is the same document with action "resolve" and its own id.
  n.id = "n-webhook-2";
  n.action = NotifyAction::kResolve;
  ASSERT_TRUE(deliver(c, n).ok());
  reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].header("Idempotency-Key"), "n-webhook-2");
  EXPECT_EQ(nlohmann::json::parse(reqs[1].body)["action"], "resolve");
}

TEST(ChannelSlack, PostsOneLineOfTextWithFields) {
  Receiver rx;
  ASSERT_TRUE(rx.start());
  ChannelConfig c = http_channel(ChannelType::kSlack, rx.url("/services/T000/B000/XXXXXXXX"));
  Notification n = sample("n-slack-1");
  n.summary = "db1 <prod> & db2\nsecond line";
  ASSERT_TRUE(deliver(c, n).ok());
  n.id = "n-slack-2";
  n.action = NotifyAction::kResolve;
  ASSERT_TRUE(deliver(c, n).ok());

  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].header("Idempotency-Key"), "n-slack-1");
  EXPECT_EQ(reqs[1].header("Idempotency-Key"), "n-slack-2");
  EXPECT_EQ(reqs[0].header("Content-Type"), "application/json");
  auto trig = nlohmann::json::parse(reqs[0].body);
  auto res = nlohmann::json::parse(reqs[1].body);
  // One line, Slack's control characters escaped.
  EXPECT_EQ(trig["text"], "[CRITICAL] db1 &lt;prod&gt; &amp; db2 second line");
  EXPECT_EQ(res["text"], "[CRITICAL] db1 &lt;prod&gt; &amp; db2 second line (resolved)");
  ASSERT_TRUE(trig["attachments"].is_array());
  bool alert_field = false, detail_field = false;
  for (const auto& f : trig["attachments"][0]["fields"]) {
    alert_field |= f["title"] == "Alert" && f["value"] == "missed_schedule/nightly";
    detail_field |= f["title"] == "missed_runs" && f["value"] == "2";
  }
  EXPECT_TRUE(alert_field) << trig.dump();
  EXPECT_TRUE(detail_field) << trig.dump();
  EXPECT_NE(trig["attachments"][0]["color"], res["attachments"][0]["color"]);
}

TEST(ChannelPagerDuty, TriggerThenResolveWithTheSameDedupKey) {
  Receiver rx;
  ASSERT_TRUE(rx.start());
  rx.respond(202, R"({"status":"success","message":"Event processed","dedup_key":"x"})");
  ChannelConfig c = http_channel(ChannelType::kPagerDuty, rx.url("/v2/enqueue"));
  c.routing_key = config::Secret("R0123456789abcdef0123456789abcde");
  Notification n = sample("n-pd-1");
  n.details = {{"rpo_seconds", 90000}, {"location", "s3-eu"}};
  ASSERT_TRUE(deliver(c, n).ok());
  Notification r = n;
  r.id = "n-pd-2";
  r.action = NotifyAction::kResolve;
  ASSERT_TRUE(deliver(c, r).ok());

  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].path, "/v2/enqueue");
  EXPECT_EQ(reqs[0].header("Content-Type"), "application/json");
  auto t = nlohmann::json::parse(reqs[0].body);
  EXPECT_EQ(t["routing_key"], "R0123456789abcdef0123456789abcde");
  EXPECT_EQ(t["event_action"], "trigger");
  EXPECT_EQ(t["dedup_key"], "missed_schedule/nightly");
  EXPECT_EQ(t["payload"]["summary"], "Nightly backup of db1 missed its 02:00 run");
  EXPECT_EQ(t["payload"]["source"], "backup-01");
  EXPECT_EQ(t["payload"]["severity"], "critical");
  EXPECT_EQ(t["payload"]["timestamp"], "2026-01-01T00:00:00.123Z");
  EXPECT_EQ(t["payload"]["custom_details"]["rpo_seconds"], 90000);
  EXPECT_EQ(t["payload"]["custom_details"]["location"], "s3-eu");

  auto z = nlohmann::json::parse(reqs[1].body);
  EXPECT_EQ(z["routing_key"], "R0123456789abcdef0123456789abcde");
  EXPECT_EQ(z["event_action"], "resolve");
  EXPECT_EQ(z["dedup_key"], t["dedup_key"]);
  EXPECT_FALSE(z.contains("payload")) << "a resolve carries only the key";

  // PagerDuty's severities pass through; one it does not know becomes "error".
  n.severity = "warning";
  ASSERT_TRUE(deliver(c, n).ok());
  n.severity = "page-me";
  ASSERT_TRUE(deliver(c, n).ok());
  reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(nlohmann::json::parse(reqs[2].body)["payload"]["severity"], "warning");
  EXPECT_EQ(nlohmann::json::parse(reqs[3].body)["payload"]["severity"], "error");
}

TEST(ChannelHttp, StatusesAreClassified) {
  Receiver rx;
  ASSERT_TRUE(rx.start());
  ChannelConfig hook = http_channel(ChannelType::kWebhook, rx.url("/hook"));
  ChannelConfig pd = http_channel(ChannelType::kPagerDuty, rx.url("/v2/enqueue"));
  pd.routing_key = config::Secret("R0123456789abcdef0123456789abcde");
  const Notification n = sample();

  rx.respond(500, "internal trouble");
  Status st = deliver(hook, n);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kTransient);
  EXPECT_EQ(st.error().message(), "alert channel 'oncall' (webhook): POST http://127.0.0.1:" +
                                      std::to_string(rx.port()) + ": HTTP 500: internal trouble");

  rx.respond(503, "", false, {{"Retry-After", "30"}});
  st = deliver(hook, n);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kTransient);
  EXPECT_NE(st.error().message().find("Retry-After: 30"), std::string::npos) << st.error().message();

  rx.respond(429, R"({"status":"throttle exceeded"})");
  st = deliver(pd, n);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kTransient);
  EXPECT_NE(st.error().message().find("alert channel 'oncall' (pagerduty)"), std::string::npos);

  rx.respond(400, R"({"status":"invalid event","message":"Event object is invalid"})");
  st = deliver(pd, n);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  EXPECT_NE(st.error().message().find("HTTP 400: {\"status\":\"invalid event\""), std::string::npos)
      << st.error().message();

  rx.respond(400, "bad");
  st = deliver(hook, n);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);

  rx.respond(404, "no such hook");
  st = deliver(hook, n);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);

  rx.respond(302, "", false, {{"Location", "http://elsewhere/"}});
  st = deliver(hook, n);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument) << "redirects are not followed";

  rx.respond(204);
  EXPECT_TRUE(deliver(hook, n).ok()) << "any 2xx delivers";
  EXPECT_EQ(rx.requests().size(), 8u) << "one request per deliver(), no retries inside";
}

TEST(ChannelHttp, DownReceiverIsTransientThenDeliveredExactlyOnce) {
  const int port = closed_port();
  ASSERT_GT(port, 0);
  ChannelConfig c = http_channel(ChannelType::kWebhook,
                                 "http://127.0.0.1:" + std::to_string(port) + "/hook");
  const Notification n = sample("n-retry-1");
  Status st = deliver(c, n);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kTransient) << st.error().message();
  EXPECT_EQ(st.error().message().rfind("alert channel 'oncall' (webhook): POST http://127.0.0.1:" +
                                           std::to_string(port),
                                       0),
            0u)
      << st.error().message();

  Receiver rx;
  ASSERT_TRUE(rx.start(port));
  st = deliver(c, n);
  ASSERT_TRUE(st.ok()) << st.error().message();
  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].header("Idempotency-Key"), "n-retry-1");
}

TEST(ChannelHttp, SlowReceiverTimesOutAsTransient) {
  Receiver rx;
  ASSERT_TRUE(rx.start());
  rx.hold();
  ChannelConfig c = http_channel(ChannelType::kWebhook, rx.url("/hook"));
  c.timeout = std::chrono::milliseconds(300);
  const auto t0 = Clock::now();
  Status st = deliver(c, sample());
  const auto took = Clock::now() - t0;
  rx.release();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kTransient) << st.error().message();
  EXPECT_LT(took, std::chrono::seconds(3));
  EXPECT_GE(took, std::chrono::milliseconds(250));
}

TEST(ChannelHttp, CancelledTokenSendsNothing) {
  Receiver rx;
  ASSERT_TRUE(rx.start());
  ChannelConfig c = http_channel(ChannelType::kWebhook, rx.url("/hook"));
  CancelToken token;
  token.cancel();
  {
    CancelScope scope(token);
    Status st = deliver(c, sample());
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code(), Code::kCancelled);
  }
  EXPECT_TRUE(rx.requests().empty());
}

TEST(ChannelHttp, RefusesBadConfiguration) {
  const Notification n = sample();
  ChannelConfig c = http_channel(ChannelType::kWebhook, "");
  Status st = deliver(c, n);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);

  c.url = config::Secret("ftp://127.0.0.1/hook");
  st = deliver(c, n);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  EXPECT_NE(st.error().message().find("https:// or http://"), std::string::npos);

  ChannelConfig pd = http_channel(ChannelType::kPagerDuty, "http://127.0.0.1:1/v2/enqueue");
  st = deliver(pd, n);  // no routing key
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  EXPECT_NE(st.error().message().find("routing_key"), std::string::npos);

  ChannelConfig hook = http_channel(ChannelType::kWebhook, "http://127.0.0.1:1/hook");
  Notification bad = n;
  bad.id = "a\r\nX-Injected: 1";
  st = deliver(hook, bad);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument) << "an id that would break its header";
}

// ---- e-mail ----------------------------------------------------------------------------------

// smtp_server.py (receivers.h), and the e-mail channel that sends to it.
class SmtpServer : public test::SmtpServer {
 public:
  ChannelConfig channel() const {
    ChannelConfig c;
    c.name = "mail";
    c.type = ChannelType::kEmail;
    c.smtp_url = url();
    c.starttls = true;
    c.ca_file = tls() ? cert() : "";
    c.username = kUser;
    c.password = config::Secret(kPassword);
    c.from = "haven@example.com";
    c.to = {"ops@example.com", "dba@example.com"};
    c.timeout = std::chrono::milliseconds(10000);
    return c;
  }
};

// One TLS server for the suite (starting Python and making a certificate take a second).
class ChannelEmail : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new SmtpServer();
    start_error_ = server_->start(true);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_EQ(start_error_, ""); }

  static SmtpServer* server_;
  static std::string start_error_;
};
SmtpServer* ChannelEmail::server_ = nullptr;
std::string ChannelEmail::start_error_;

TEST_F(ChannelEmail, DeliversOverStarttlsWithAuth) {
  const size_t before = server_->messages().size();
  const size_t auth_before = server_->auth_log().size();  // the suite shares the server
  ChannelConfig c = server_->channel();
  Notification n = sample("n-mail-1");
  n.details = {{"rpo_seconds", 90000}, {"location", "s3-eu"}};
  Status st = deliver(c, n);
  ASSERT_TRUE(st.ok()) << st.error().message() << "\n" << server_->server_stderr();

  auto msgs = server_->messages();
  ASSERT_EQ(msgs.size(), before + 1) << "exactly one message";
  const auto& [env, msg] = msgs.back();
  EXPECT_EQ(env,
            "from haven@example.com\nto ops@example.com\nto dba@example.com\ntls yes\nauth alice\n");
  EXPECT_EQ(mail_header(msg, "Subject"), "[Haven] CRITICAL: Nightly backup of db1 missed its 02:00 run");
  EXPECT_EQ(mail_header(msg, "From"), "haven@example.com");
  EXPECT_EQ(mail_header(msg, "To"), "ops@example.com, dba@example.com");
  EXPECT_EQ(mail_header(msg, "Message-ID"), "<n-mail-1@haven>");
  const std::string date = mail_header(msg, "Date");
  EXPECT_EQ(date.size(), 31u) << date;  // "Thu, 01 Jan 2026 00:00:00 +0000"
  EXPECT_EQ(date.substr(date.size() - 5), "+0000") << date;
  EXPECT_NE(msg.find("\r\n\r\n"), std::string::npos);
  const std::string body = msg.substr(msg.find("\r\n\r\n") + 4);
  EXPECT_NE(body.find("rpo_seconds: 90000"), std::string::npos) << body;
  EXPECT_NE(body.find("location: s3-eu"), std::string::npos) << body;
  EXPECT_NE(body.find("missed_schedule/nightly"), std::string::npos) << body;
  EXPECT_EQ(server_->auth_log().substr(auth_before), "ok alice\n") << server_->auth_log();

  // The resolve has its own subject.
  n.id = "n-mail-2";
  n.action = NotifyAction::kResolve;
  ASSERT_TRUE(deliver(c, n).ok());
  msgs = server_->messages();
  ASSERT_EQ(msgs.size(), before + 2);
  EXPECT_EQ(mail_header(msgs.back().second, "Subject"),
            "[Haven] RESOLVED: Nightly backup of db1 missed its 02:00 run");
  EXPECT_EQ(mail_header(msgs.back().second, "Message-ID"), "<n-mail-2@haven>");
}

TEST_F(ChannelEmail, NonAsciiSummaryIsEncoded) {
  const size_t before = server_->messages().size();
  Notification n = sample("n-mail-utf8");
  n.summary = "Sauvegarde «nuit» manquée";
  ASSERT_TRUE(deliver(server_->channel(), n).ok());
  auto msgs = server_->messages();
  ASSERT_EQ(msgs.size(), before + 1);
  const std::string& msg = msgs.back().second;
  // RFC 2047 for the header, base64 for the body: the message itself stays 7-bit.
  EXPECT_EQ(mail_header(msg, "Subject").rfind("=?UTF-8?B?", 0), 0u) << msg;
  EXPECT_EQ(mail_header(msg, "Content-Transfer-Encoding"), "base64");
  for (char ch : msg) ASSERT_LT(static_cast<unsigned char>(ch), 0x80u) << msg;
}

TEST_F(ChannelEmail, WrongPasswordIsRefusedAndNeverQuoted) {
  const size_t before = server_->messages().size();
  ChannelConfig c = server_->channel();
  c.password = config::Secret("wrong-PASSWORD-7731");
  Status st = deliver(c, sample("n-mail-bad"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kPermissionDenied) << st.error().message();
  EXPECT_EQ(st.error().message().rfind("alert channel 'mail' (email): smtp://127.0.0.1:", 0), 0u)
      << st.error().message();
  EXPECT_EQ(st.error().message().find("wrong-PASSWORD-7731"), std::string::npos);
  EXPECT_EQ(server_->messages().size(), before) << "nothing sent";
  EXPECT_NE(server_->auth_log().find("refused alice"), std::string::npos);
}

TEST_F(ChannelEmail, UntrustedCertificateFails) {
  const size_t before = server_->messages().size();
  ChannelConfig c = server_->channel();
  c.ca_file = "";  // the system's CAs do not know the test's self-signed certificate
  Status st = deliver(c, sample("n-mail-untrusted"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kIo) << st.error().message();
  EXPECT_EQ(server_->messages().size(), before);
}

TEST_F(ChannelEmail, BadAddressesAreRefusedBeforeConnecting) {
  const size_t before = server_->messages().size();
  ChannelConfig c = server_->channel();
  c.to = {"ops@example.com", "x@example.com\r\nBcc: evil@example.com"};
  Status st = deliver(c, sample());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  c = server_->channel();
  c.to.clear();
  st = deliver(c, sample());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  c = server_->channel();
  c.smtp_url = "http://127.0.0.1:25";
  st = deliver(c, sample());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(server_->messages().size(), before);
}

TEST(ChannelEmailPlain, StarttlsRequiredButNotOfferedRefusesToSend) {
  SmtpServer server;
  ASSERT_EQ(server.start(false), "");
  ChannelConfig c = server.channel();  // starttls = true, with a password
  Status st = deliver(c, sample("n-mail-clear"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument) << st.error().message();
  EXPECT_NE(st.error().message().find("STARTTLS"), std::string::npos) << st.error().message();
  EXPECT_EQ(st.error().message().find(SmtpServer::kPassword), std::string::npos);
  EXPECT_TRUE(server.messages().empty()) << "nothing sent in clear";
  EXPECT_EQ(server.auth_log(), "") << "no login attempted in clear";

  // The same server is fine for a channel that allows clear text (so the refusal above was
  // the channel's, not a broken server).
  c.starttls = false;
  Status ok = deliver(c, sample("n-mail-clear-2"));
  ASSERT_TRUE(ok.ok()) << ok.error().message() << "\n" << server.server_stderr();
  ASSERT_EQ(server.messages().size(), 1u);
  EXPECT_NE(server.messages()[0].first.find("tls no"), std::string::npos);
}

TEST(ChannelEmailPlain, ClosedPortIsTransient) {
  ChannelConfig c;
  c.name = "mail";
  c.type = ChannelType::kEmail;
  c.smtp_url = "smtp://127.0.0.1:" + std::to_string(closed_port());
  c.from = "haven@example.com";
  c.to = {"ops@example.com"};
  c.username = "alice";
  c.password = config::Secret("pw-SECRET-5521");
  Status st = deliver(c, sample());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kTransient) << st.error().message();
  EXPECT_EQ(st.error().message().find("pw-SECRET-5521"), std::string::npos);
}

// ---- command ---------------------------------------------------------------------------------

ChannelConfig command_channel(std::vector<std::string> argv) {
  ChannelConfig c;
  c.name = "script";
  c.type = ChannelType::kCommand;
  c.command = std::move(argv);
  c.timeout = std::chrono::milliseconds(10000);
  return c;
}

TEST(ChannelCommand, GetsTheJsonOnStdin) {
  TempDir dir;
  write_script(dir / "notify.sh", "#!/bin/sh\ncat > \"$1\"\n");
  Notification n = sample("n-cmd-1");
  Status st = deliver(command_channel({dir / "notify.sh", dir / "got.json"}), n);
  ASSERT_TRUE(st.ok()) << st.error().message();
  auto j = nlohmann::json::parse(read_file(dir.path() / "got.json"));
  EXPECT_EQ(j, n.to_json());
  EXPECT_EQ(j["id"], "n-cmd-1");
}

TEST(ChannelCommand, NonZeroExitIsTransientAndNamed) {
  TempDir dir;
  write_script(dir / "fail.sh", "#!/bin/sh\ncat >/dev/null\necho 'gateway said no' >&2\nexit 3\n");
  Status st = deliver(command_channel({dir / "fail.sh", "--token=ARGSECRET99"}), sample());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kTransient);
  EXPECT_EQ(st.error().message(), "alert channel 'script' (command): " + (dir / "fail.sh") +
                                      " exited with status 3: gateway said no");
}

TEST(ChannelCommand, RunsWithAnEnvironmentOfItsOwnAndItsArgumentsAreNeverQuoted) {
  TempDir dir;
  // The server's environment may hold credentials: the command never sees it.
  ::setenv("HAVEN_TEST_SERVER_SECRET", "ENVSECRET42", 1);
  write_script(dir / "env.sh", "#!/bin/sh\ncat >/dev/null\nenv > \"$1\"\n");
  ASSERT_TRUE(deliver(command_channel({dir / "env.sh", dir / "env.txt"}), sample()).ok());
  ::unsetenv("HAVEN_TEST_SERVER_SECRET");
  const std::string env = read_file(dir.path() / "env.txt");
  EXPECT_EQ(env.find("ENVSECRET42"), std::string::npos) << env;
  EXPECT_NE(env.find("PATH=/usr/local/sbin"), std::string::npos) << env;
  EXPECT_NE(env.find("HAVEN_ALERT=1"), std::string::npos) << env;
  // A command that echoes its (secret) argument on stderr: the message redacts it.
  write_script(dir / "echo.sh", "#!/bin/sh\ncat >/dev/null\necho \"refused $1\" >&2\nexit 1\n");
  Status st = deliver(command_channel({dir / "echo.sh", "--token=ARGSECRET77"}), sample());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message().find("ARGSECRET77"), std::string::npos) << st.error().message();
  EXPECT_NE(st.error().message().find("refused ***"), std::string::npos) << st.error().message();
}

TEST(ChannelCommand, TimeoutStopsItAsTransient) {
  TempDir dir;
  // A shell that starts a child: the whole process group is stopped.
  write_script(dir / "slow.sh", "#!/bin/sh\nsleep 30\necho late > \"$1\"\n");
  ChannelConfig c = command_channel({dir / "slow.sh", dir / "late"});
  c.timeout = std::chrono::milliseconds(300);
  const auto t0 = Clock::now();
  Status st = deliver(c, sample());
  const auto took = Clock::now() - t0;
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kTransient);
  EXPECT_NE(st.error().message().find("timed out"), std::string::npos) << st.error().message();
  EXPECT_LT(took, std::chrono::seconds(3));
  EXPECT_FALSE(fs::exists(dir.path() / "late"));
}

TEST(ChannelCommand, IgnoringStdinIsFine) {
  // A command that never reads a large input and exits 0: the write fails with EPIPE (never a
  // SIGPIPE killing the test) and the exit status decides.
  TempDir dir;
  write_script(dir / "ignore.sh", "#!/bin/sh\nexit 0\n");
  Notification n = sample();
  n.details["blob"] = std::string(1 << 20, 'x');
  Status st = deliver(command_channel({dir / "ignore.sh"}), n);
  EXPECT_TRUE(st.ok()) << st.error().message();
}

TEST(ChannelCommand, MissingProgramIsInvalid) {
  Status st = deliver(command_channel({"/nonexistent/haven-notify"}), sample());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  EXPECT_NE(st.error().message().find("alert channel 'script' (command)"), std::string::npos);
}

TEST(ChannelCommand, CancelledTokenStopsIt) {
  TempDir dir;
  write_script(dir / "slow.sh", "#!/bin/sh\nsleep 30\n");
  CancelToken token;
  std::thread canceller([token] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    token.cancel();
  });
  Status st = [&] {
    CancelScope scope(token);
    return deliver(command_channel({dir / "slow.sh"}), sample());
  }();
  canceller.join();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kCancelled) << st.error().message();
}

// ---- secrets ---------------------------------------------------------------------------------

TEST(ChannelSecrets, NeverInAnyMessage) {
  const std::vector<std::string> secrets = {
      "USERINFO-SECRET-1", "PATH-SECRET-TOKEN-2", "QUERY-SECRET-3", "ROUTING-SECRET-KEY-4",
      "Ym9iOlVTRVJJTkZPLVNFQ1JFVC0x",  // base64("bob:USERINFO-SECRET-1"): Basic auth
      "ROUTING-SEC"};  // a prefix: no excerpt cuts a secret in half and shows the rest
  std::vector<std::string> messages;
  auto collect = [&](const Status& st) {
    ASSERT_FALSE(st.ok());
    messages.push_back(st.error().message());
  };

  Receiver rx;
  ASSERT_TRUE(rx.start());
  rx.respond(400, "", /*echo=*/true);  // a receiver quoting the request in its error page
  const std::string authority = "127.0.0.1:" + std::to_string(rx.port());
  const std::string secret_url = "http://bob:USERINFO-SECRET-1@" + authority +
                                 "/services/PATH-SECRET-TOKEN-2?token=QUERY-SECRET-3";
  const Notification n = sample();

  collect(deliver(http_channel(ChannelType::kWebhook, secret_url), n));
  collect(deliver(http_channel(ChannelType::kSlack, secret_url), n));
  ChannelConfig pd = http_channel(ChannelType::kPagerDuty, secret_url);
  pd.routing_key = config::Secret("ROUTING-SECRET-KEY-4");
  collect(deliver(pd, n));
  rx.respond(503, "", true);
  collect(deliver(pd, n));
  // The routing key right where a 200-byte excerpt of the answer would be cut.
  rx.respond(400, std::string(185, '.') + "ROUTING-SECRET-KEY-4");
  collect(deliver(pd, n));
  // The receiver did get what it was sent: the secrets were there to leak.
  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_NE(reqs[2].body.find("ROUTING-SECRET-KEY-4"), std::string::npos);
  EXPECT_EQ(reqs[0].path, "/services/PATH-SECRET-TOKEN-2");
  EXPECT_EQ(reqs[0].header("Authorization"), "Basic Ym9iOlVTRVJJTkZPLVNFQ1JFVC0x");
  EXPECT_NE(messages[0].find("POST http://" + authority + ": HTTP 400"), std::string::npos)
      << messages[0];
  rx.stop();

  // No answer at all.
  const std::string down = "http://bob:USERINFO-SECRET-1@127.0.0.1:" +
                           std::to_string(closed_port()) +
                           "/services/PATH-SECRET-TOKEN-2?token=QUERY-SECRET-3";
  collect(deliver(http_channel(ChannelType::kWebhook, down), n));
  pd.url = config::Secret(down);
  collect(deliver(pd, n));
  // Not a URL at all.
  collect(deliver(http_channel(ChannelType::kWebhook, "ht tp://PATH-SECRET-TOKEN-2"), n));
  collect(deliver(http_channel(ChannelType::kSlack, "ftp://h/PATH-SECRET-TOKEN-2"), n));

  ASSERT_EQ(messages.size(), 9u);
  for (const auto& m : messages) {
    EXPECT_EQ(m.rfind("alert channel 'oncall' (", 0), 0u) << m;
    for (const auto& s : secrets) EXPECT_EQ(m.find(s), std::string::npos) << s << " in: " << m;
  }
}

}  // namespace
}  // namespace haven::monitor

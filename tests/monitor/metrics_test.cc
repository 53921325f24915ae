// Tests of the /metrics exposition (monitor/metrics.h): the text passes the real
// `promtool check metrics` (Debian's prometheus package, /usr/bin/promtool) with no lint
// problem, and parsed back it carries exactly the numbers it was given.
#include "monitor/metrics.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "util/cancel.h"
#include "util/subprocess.h"

namespace haven::monitor {
namespace {

namespace fs = std::filesystem;
using catalog::AlertSeverity;
using catalog::AlertState;
using catalog::ExecStatus;
using catalog::HealthStatus;

constexpr const char* kPromtool = "/usr/bin/promtool";

// ---- promtool --------------------------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "haven-metrics-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

struct CheckResult {
  int status = -1;     // promtool's exit status; -1: it could not be run
  std::string output;  // its stdout and stderr together (the problems it found)
};

// Runs `promtool check metrics` with `text` on its standard input. A missing promtool is a
// failure (status -1), never a skip.
CheckResult promtool_check(const std::string& text) {
  CheckResult r;
  TempDir dir;
  const std::string in_path = dir / "metrics.txt", out_path = dir / "promtool.out";
  std::ofstream(in_path, std::ios::binary) << text;
  const int in_fd = ::open(in_path.c_str(), O_RDONLY | O_CLOEXEC);
  const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (in_fd < 0 || out_fd < 0) {
    r.output = "cannot open the temporary files";
  } else {
    SpawnOptions o;
    o.argv = {kPromtool, "check", "metrics"};
    o.stdin_fd = in_fd;
    o.stdout_fd = out_fd;
    o.stderr_fd = out_fd;
    auto p = Subprocess::spawn(o);
    if (!p.ok()) {
      r.output = "cannot run promtool: " + p.error().message();
    } else if (auto st = p->wait(CancelToken()); !st.ok()) {
      r.output = "waiting for promtool: " + st.error().message();
    } else {
      r.status = *st;
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  if (out_fd >= 0) ::close(out_fd);
  if (r.status >= 0) {
    std::ifstream f(out_path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    r.output = ss.str();
  }
  return r;
}

// ---- a small parser of the text format -------------------------------------------------------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped values
  std::string value_text;
  double value = 0;
};

struct Parsed {
  std::map<std::string, std::string> help, type;  // by family name
  std::vector<std::string> family_order;          // as the TYPE lines come
  std::vector<Sample> samples;
  std::vector<std::string> errors;
};

Parsed parse(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    n++;
    auto fail = [&](const std::string& why) {
      p.errors.push_back("line " + std::to_string(n) + ": " + why + ": " + line);
    };
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const std::string rest = line.substr(7);
      const auto sp = rest.find(' ');
      if (sp == std::string::npos) {
        fail("no text");
        continue;
      }
      auto& m = line[2] == 'H' ? p.help : p.type;
      const std::string name = rest.substr(0, sp);
      if (m.count(name)) fail("repeated");
      m[name] = rest.substr(sp + 1);
      if (line[2] == 'T') p.family_order.push_back(name);
      continue;
    }
    if (line[0] == '#') continue;
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') i++;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      i++;
      bool ok = true;
      while (ok && i < line.size() && line[i] != '}') {
        const auto eq = line.find("=\"", i);
        if (eq == std::string::npos) {
          ok = false;
          break;
        }
        const std::string key = line.substr(i, eq - i);
        i = eq + 2;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            const char c = line[i + 1];
            if (c == 'n') {
              value += '\n';
            } else if (c == '\\' || c == '"') {
              value += c;
            } else {
              ok = false;
            }
            i += 2;
          } else {
            value += line[i++];
          }
        }
        if (i >= line.size()) {
          ok = false;
          break;
        }
        i++;  // the closing quote
        s.labels[key] = value;
        if (i < line.size() && line[i] == ',') i++;
      }
      if (!ok || i >= line.size()) {
        fail("bad labels");
        continue;
      }
      i++;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') {
      fail("no value");
      continue;
    }
    s.value_text = line.substr(i + 1);
    char* end = nullptr;
    s.value = std::strtod(s.value_text.c_str(), &end);
    if (s.value_text.empty() || *end != '\0') {
      fail("bad value");
      continue;
    }
    p.samples.push_back(std::move(s));
  }
  return p;
}

using LabelSet = std::map<std::string, std::string>;

std::vector<const Sample*> find_all(const Parsed& p, const std::string& name) {
  std::vector<const Sample*> out;
  for (const auto& s : p.samples) {
    if (s.name == name) out.push_back(&s);
  }
  return out;
}

// The value of the one sample with this name and exactly these labels; nullopt if none (a
// repeated series is a failure).
std::optional<double> value(const Parsed& p, const std::string& name, const LabelSet& labels = {}) {
  std::optional<double> v;
  int found = 0;
  for (const auto& s : p.samples) {
    if (s.name == name && s.labels == labels) {
      v = s.value;
      found++;
    }
  }
  EXPECT_LE(found, 1) << name << " repeated";
  return v;
}

// ---- the input -------------------------------------------------------------------------------

const std::string kOddName = "db \"main\" \\ prod\nEU";  // a quote, a backslash, a line feed
constexpr TimeNs kLastSuccess = 1767225600123000000;       // 2026-01-01T00:00:00.123Z

// 200 delays 0.5, 1.0 ... 100 in a scrambled order: nearest rank gives 50 (p50), 99 (p99),
// 100 (max); the sum is 10050.
std::vector<double> scrambled_delays() {
  std::vector<double> d;
  for (int i = 0; i < 200; i++) d.push_back(0.5 * ((i * 7) % 200 + 1));
  return d;
}

catalog::AlertRow alert(AlertSeverity sev, AlertState st) {
  catalog::AlertRow a;
  a.severity = sev;
  a.state = st;
  return a;
}

MetricsInput sample_input() {
  MetricsInput in;
  in.status.time = kLastSuccess + 3000'000'000'000;

  PolicyStatus files;  // no targets, no completed run: RPO and RTO unknown
  files.id = "p-2";
  files.name = "files-home";
  files.rpo.level = Level::kUnknown;
  files.rto.level = Level::kUnknown;

  PolicyStatus db;
  db.id = "p-1";
  db.name = kOddName;
  catalog::ExecutionRow last;
  last.started_at = kLastSuccess;
  last.status = ExecStatus::kCompleted;
  db.last_success = last;
  db.rpo.seconds = 3000.25;  // 83 % of the target: warning
  db.rpo.target_seconds = 3600;
  db.rpo.level = Level::kWarning;
  db.rto.seconds = 120;
  db.rto.target_seconds = 600;
  db.rto.level = Level::kOk;
  // Not sorted by name on purpose: the output must be.
  in.status.policies = {files, db};

  catalog::Catalog::ExecutionStats s1;
  s1.policy_id = "p-1";
  s1.by_status = {{ExecStatus::kCompleted, 6}, {ExecStatus::kFailed, 2}, {ExecStatus::kRunning, 1}};
  s1.bytes_completed = 123456789012345;
  s1.duration_le = {0, 1, 2, 2, 4, 5, 5, 5, 5};  // one run longer than a day
  s1.duration_count = 6;
  s1.duration_sum = 91234;
  catalog::Catalog::ExecutionStats s2;
  s2.policy_id = "p-2";
  s2.by_status = {{ExecStatus::kFailed, 3}};
  catalog::Catalog::ExecutionStats gone;  // a policy the status does not know
  gone.policy_id = "p-gone";
  gone.by_status = {{ExecStatus::kCompleted, 77}};
  gone.bytes_completed = 777;
  in.executions = {gone, s2, s1};

  in.scheduler_fires = 17;
  in.fire_delays_seconds = scrambled_delays();
  in.clock_jumps = 1;
  in.jobs_queued = 2;
  in.jobs_running = 1;
  in.jobs_max_parallel = 4;

  LocationStatus a, b;
  a.name = "local-a";
  a.health = HealthStatus::kWarning;
  b.name = "s3-b";
  b.health = HealthStatus::kHealthy;
  in.status.locations = {b, a};
  HealthResult ha, hb;
  ha.location = "local-a";
  ha.status = HealthStatus::kWarning;
  ha.used_bytes = 850'000'000'000;
  ha.capacity_bytes = 1'000'000'000'000;
  hb.location = "s3-b";
  hb.status = HealthStatus::kHealthy;  // capacity unknown
  in.health = {{"local-a", ha}, {"s3-b", hb}};

  in.status.alerts = {alert(AlertSeverity::kCritical, AlertState::kOpen),
                      alert(AlertSeverity::kWarning, AlertState::kOpen),
                      alert(AlertSeverity::kCritical, AlertState::kAcknowledged),
                      alert(AlertSeverity::kCritical, AlertState::kOpen)};

  in.notifications_delivered = 10;
  in.notifications_retried = 3;
  in.notifications_failed = 1;
  in.audit_records = 42;
  return in;
}

// Every family of the header, with its type.
const std::map<std::string, std::string> kFamilies = {
    {"haven_policy_last_success_timestamp_seconds", "gauge"},
    {"haven_policy_rpo_seconds", "gauge"},
    {"haven_policy_rpo_target_seconds", "gauge"},
    {"haven_policy_rto_estimate_seconds", "gauge"},
    {"haven_policy_rto_target_seconds", "gauge"},
    {"haven_policy_status", "gauge"},
    {"haven_backup_executions", "gauge"},
    {"haven_backup_bytes", "gauge"},
    {"haven_backup_duration_seconds", "histogram"},
    {"haven_scheduler_fires_total", "counter"},
    {"haven_scheduler_fire_delay_seconds", "summary"},
    {"haven_scheduler_clock_jumps_total", "counter"},
    {"haven_jobs_queued", "gauge"},
    {"haven_jobs_running", "gauge"},
    {"haven_jobs_max_parallel", "gauge"},
    {"haven_location_health", "gauge"},
    {"haven_location_used_bytes", "gauge"},
    {"haven_location_capacity_bytes", "gauge"},
    {"haven_alerts_open", "gauge"},
    {"haven_alert_notifications_total", "counter"},
    {"haven_audit_records", "gauge"},
};

Parsed parse_ok(const std::string& text) {
  Parsed p = parse(text);
  for (const auto& e : p.errors) ADD_FAILURE() << e;
  return p;
}

// ---- promtool --------------------------------------------------------------------------------

TEST(MetricsPromtool, FullExpositionPassesCheckWithoutProblems) {
  const std::string text = render_metrics(sample_input());
  const CheckResult r = promtool_check(text);
  EXPECT_EQ(r.status, 0) << r.output << "\n---\n" << text;
  EXPECT_EQ(r.output, "") << text;
}

TEST(MetricsPromtool, EmptyInputPassesCheckWithoutProblems) {
  // No policies, no locations, no delays: families without series, a summary without
  // quantiles.
  const std::string text = render_metrics(MetricsInput{});
  const CheckResult r = promtool_check(text);
  EXPECT_EQ(r.status, 0) << r.output << "\n---\n" << text;
  EXPECT_EQ(r.output, "") << text;
}

TEST(MetricsPromtool, HarnessDetectsBrokenExpositions) {
  // The harness passes a good text...
  const CheckResult good = promtool_check(
      "# HELP haven_x_total Fine.\n# TYPE haven_x_total counter\nhaven_x_total 1\n");
  EXPECT_EQ(good.status, 0) << good.output;
  EXPECT_EQ(good.output, "");
  // ... fails a duplicate HELP line (a parse error) ...
  const CheckResult dup = promtool_check("# HELP haven_x Once.\n# HELP haven_x Twice.\n"
                                         "# TYPE haven_x gauge\nhaven_x 1\n");
  EXPECT_NE(dup.status, 0);
  EXPECT_NE(dup.output.find("HELP"), std::string::npos) << dup.output;
  // ... and a lint problem (a counter without _total), which is what the checks above rule out.
  const CheckResult lint = promtool_check("# HELP haven_fires Fires.\n# TYPE haven_fires counter\n"
                                          "haven_fires 1\n");
  EXPECT_NE(lint.status, 0);
  EXPECT_NE(lint.output.find("_total"), std::string::npos) << lint.output;
  // The harness on the real renderer's output with one family damaged also fails.
  std::string text = render_metrics(sample_input());
  text += "# HELP haven_audit_records Again.\n";
  const CheckResult damaged = promtool_check(text);
  EXPECT_NE(damaged.status, 0);
  EXPECT_NE(damaged.output, "");
}

// ---- the numbers -----------------------------------------------------------------------------

TEST(MetricsRender, EveryFamilyHasHelpAndTypeOnce) {
  const Parsed p = parse_ok(render_metrics(sample_input()));
  EXPECT_EQ(p.family_order.size(), kFamilies.size());
  for (const auto& [name, type] : kFamilies) {
    ASSERT_TRUE(p.type.count(name)) << name;
    EXPECT_EQ(p.type.at(name), type) << name;
    ASSERT_TRUE(p.help.count(name)) << name;
    EXPECT_FALSE(p.help.at(name).empty()) << name;
  }
  // Every sample belongs to a declared family (with the suffixes of its type).
  for (const auto& s : p.samples) {
    std::string family = s.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string suf = suffix;
      if (!kFamilies.count(family) && family.size() > suf.size() &&
          family.compare(family.size() - suf.size(), suf.size(), suf) == 0) {
        family = family.substr(0, family.size() - suf.size());
      }
    }
    EXPECT_TRUE(kFamilies.count(family)) << s.name;
    EXPECT_TRUE(std::isfinite(s.value)) << s.name;
  }
}

TEST(MetricsRender, PolicyObjectives) {
  const Parsed p = parse_ok(render_metrics(sample_input()));
  const LabelSet db = {{"policy", kOddName}}, files = {{"policy", "files-home"}};
  EXPECT_EQ(value(p, "haven_policy_last_success_timestamp_seconds", db), 1767225600.123);
  EXPECT_EQ(value(p, "haven_policy_rpo_seconds", db), 3000.25);
  EXPECT_EQ(value(p, "haven_policy_rpo_target_seconds", db), 3600);
  EXPECT_EQ(value(p, "haven_policy_rto_estimate_seconds", db), 120);
  EXPECT_EQ(value(p, "haven_policy_rto_target_seconds", db), 600);
  // Unknown RPO and RTO, no targets, no completed run: no series at all.
  for (const char* name :
       {"haven_policy_last_success_timestamp_seconds", "haven_policy_rpo_seconds",
        "haven_policy_rpo_target_seconds", "haven_policy_rto_estimate_seconds",
        "haven_policy_rto_target_seconds"}) {
    EXPECT_EQ(value(p, name, files), std::nullopt) << name;
    EXPECT_EQ(find_all(p, name).size(), 1u) << name;
  }
  // Integers print as integers.
  for (const auto* s : find_all(p, "haven_policy_rpo_target_seconds")) {
    EXPECT_EQ(s->value_text, "3600");
  }
  // One level set per policy: db is warning (the worse of RPO warning and RTO ok); files-home
  // has neither objective known, and level() keeps unknown then.
  const std::map<std::string, double> db_levels = {
      {"ok", 0}, {"warning", 1}, {"critical", 0}, {"unknown", 0}};
  const std::map<std::string, double> files_levels = {
      {"ok", 0}, {"warning", 0}, {"critical", 0}, {"unknown", 1}};
  for (const auto& [level, v] : db_levels) {
    EXPECT_EQ(value(p, "haven_policy_status", {{"policy", kOddName}, {"level", level}}), v)
        << level;
  }
  for (const auto& [level, v] : files_levels) {
    EXPECT_EQ(value(p, "haven_policy_status", {{"policy", "files-home"}, {"level", level}}), v)
        << level;
  }
  EXPECT_EQ(find_all(p, "haven_policy_status").size(), 8u);
}

TEST(MetricsRender, ExecutionsBytesAndDurationHistogram) {
  const Parsed p = parse_ok(render_metrics(sample_input()));
  auto exec = [&](const std::string& policy, const char* status) {
    return value(p, "haven_backup_executions", {{"policy", policy}, {"status", status}});
  };
  EXPECT_EQ(exec(kOddName, "completed"), 6);
  EXPECT_EQ(exec(kOddName, "failed"), 2);
  EXPECT_EQ(exec(kOddName, "running"), 1);
  EXPECT_EQ(exec(kOddName, "pending"), 0);
  EXPECT_EQ(exec("files-home", "failed"), 3);
  EXPECT_EQ(exec("files-home", "completed"), 0);
  // Every status of every known policy; nothing of the unknown one.
  EXPECT_EQ(find_all(p, "haven_backup_executions").size(),
            2 * catalog::all_values<ExecStatus>().size());
  for (const auto& s : p.samples) {
    if (s.labels.count("policy")) {
      EXPECT_TRUE(s.labels.at("policy") == kOddName || s.labels.at("policy") == "files-home")
          << s.name << " " << s.labels.at("policy");
    }
    EXPECT_NE(s.value, 77) << s.name;
    EXPECT_NE(s.value, 777) << s.name;
  }

  EXPECT_EQ(value(p, "haven_backup_bytes", {{"policy", kOddName}}), 123456789012345.0);
  for (const auto* s : find_all(p, "haven_backup_bytes")) {
    if (s->labels.at("policy") == kOddName) {
      EXPECT_EQ(s->value_text, "123456789012345");
    }
  }
  EXPECT_EQ(value(p, "haven_backup_bytes", {{"policy", "files-home"}}), 0);

  // The buckets in order, cumulative, +Inf last and equal to the count.
  std::vector<std::pair<std::string, double>> buckets;
  for (const auto* s : find_all(p, "haven_backup_duration_seconds_bucket")) {
    if (s->labels.at("policy") == kOddName) buckets.emplace_back(s->labels.at("le"), s->value);
  }
  const std::vector<std::pair<std::string, double>> want = {
      {"10", 0}, {"30", 1},    {"60", 2},    {"300", 2},   {"900", 4},
      {"1800", 5}, {"3600", 5}, {"14400", 5}, {"86400", 5}, {"+Inf", 6}};
  EXPECT_EQ(buckets, want);
  for (size_t i = 1; i < buckets.size(); i++) EXPECT_GE(buckets[i].second, buckets[i - 1].second);
  EXPECT_EQ(value(p, "haven_backup_duration_seconds_count", {{"policy", kOddName}}), 6);
  EXPECT_EQ(value(p, "haven_backup_duration_seconds_sum", {{"policy", kOddName}}), 91234);
  EXPECT_EQ(value(p, "haven_backup_duration_seconds_bucket",
                  {{"policy", "files-home"}, {"le", "+Inf"}}),
            0);
  EXPECT_EQ(value(p, "haven_backup_duration_seconds_count", {{"policy", "files-home"}}), 0);
}

TEST(MetricsRender, SchedulerAndJobs) {
  const Parsed p = parse_ok(render_metrics(sample_input()));
  EXPECT_EQ(value(p, "haven_scheduler_fires_total"), 17);
  EXPECT_EQ(value(p, "haven_scheduler_clock_jumps_total"), 1);
  // Nearest rank over 0.5 ... 100: p50 = the 100th value, p99 = the 198th, max = the 200th.
  EXPECT_EQ(value(p, "haven_scheduler_fire_delay_seconds", {{"quantile", "0.5"}}), 50);
  EXPECT_EQ(value(p, "haven_scheduler_fire_delay_seconds", {{"quantile", "0.99"}}), 99);
  EXPECT_EQ(value(p, "haven_scheduler_fire_delay_seconds", {{"quantile", "1"}}), 100);
  EXPECT_EQ(find_all(p, "haven_scheduler_fire_delay_seconds").size(), 3u);
  EXPECT_EQ(value(p, "haven_scheduler_fire_delay_seconds_sum"), 10050);
  EXPECT_EQ(value(p, "haven_scheduler_fire_delay_seconds_count"), 200);
  EXPECT_EQ(value(p, "haven_jobs_queued"), 2);
  EXPECT_EQ(value(p, "haven_jobs_running"), 1);
  EXPECT_EQ(value(p, "haven_jobs_max_parallel"), 4);

  // Few delays: nearest rank, not interpolation (p50 of {1, 2, 10, 40} is 2, p99 is 40).
  MetricsInput in;
  in.fire_delays_seconds = {40, 1, 10, 2};
  const Parsed q = parse_ok(render_metrics(in));
  EXPECT_EQ(value(q, "haven_scheduler_fire_delay_seconds", {{"quantile", "0.5"}}), 2);
  EXPECT_EQ(value(q, "haven_scheduler_fire_delay_seconds", {{"quantile", "0.99"}}), 40);
  EXPECT_EQ(value(q, "haven_scheduler_fire_delay_seconds", {{"quantile", "1"}}), 40);
  EXPECT_EQ(value(q, "haven_scheduler_fire_delay_seconds_sum"), 53);
}

TEST(MetricsRender, LocationsAlertsNotificationsAudit) {
  const Parsed p = parse_ok(render_metrics(sample_input()));
  auto health = [&](const char* loc, const char* status) {
    return value(p, "haven_location_health", {{"location", loc}, {"status", status}});
  };
  EXPECT_EQ(health("local-a", "warning"), 1);
  EXPECT_EQ(health("local-a", "healthy"), 0);
  EXPECT_EQ(health("local-a", "critical"), 0);
  EXPECT_EQ(health("local-a", "unknown"), 0);
  EXPECT_EQ(health("s3-b", "healthy"), 1);
  EXPECT_EQ(health("s3-b", "warning"), 0);
  EXPECT_EQ(value(p, "haven_location_used_bytes", {{"location", "local-a"}}), 850e9);
  EXPECT_EQ(value(p, "haven_location_capacity_bytes", {{"location", "local-a"}}), 1e12);
  EXPECT_EQ(find_all(p, "haven_location_used_bytes").size(), 1u);  // s3-b: unknown
  EXPECT_EQ(find_all(p, "haven_location_capacity_bytes").size(), 1u);

  auto open = [&](const char* sev, const char* state) {
    return value(p, "haven_alerts_open", {{"severity", sev}, {"state", state}});
  };
  EXPECT_EQ(open("critical", "open"), 2);
  EXPECT_EQ(open("critical", "acknowledged"), 1);
  EXPECT_EQ(open("warning", "open"), 1);
  EXPECT_EQ(open("warning", "acknowledged"), 0);

  EXPECT_EQ(value(p, "haven_alert_notifications_total", {{"outcome", "delivered"}}), 10);
  EXPECT_EQ(value(p, "haven_alert_notifications_total", {{"outcome", "retried"}}), 3);
  EXPECT_EQ(value(p, "haven_alert_notifications_total", {{"outcome", "failed"}}), 1);
  EXPECT_EQ(value(p, "haven_audit_records"), 42);
}

TEST(MetricsRender, LabelValuesAreEscaped) {
  const std::string text = render_metrics(sample_input());
  // On the wire: \" for the quote, \\ for the backslash, \n for the line feed...
  EXPECT_NE(text.find("haven_backup_bytes{policy=\"db \\\"main\\\" \\\\ prod\\nEU\"} "),
            std::string::npos)
      << text;
  // ... so no line is broken by the name, and parsed back the label is the name.
  const Parsed p = parse_ok(text);
  EXPECT_EQ(value(p, "haven_policy_rpo_seconds", {{"policy", kOddName}}), 3000.25);
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    EXPECT_TRUE(line.rfind("# ", 0) == 0 || line.rfind("haven_", 0) == 0) << line;
  }
}

TEST(MetricsRender, DeterministicAndSortedByName) {
  MetricsInput in = sample_input();
  const std::string first = render_metrics(in);
  std::reverse(in.status.policies.begin(), in.status.policies.end());
  std::reverse(in.status.locations.begin(), in.status.locations.end());
  std::reverse(in.executions.begin(), in.executions.end());
  EXPECT_EQ(render_metrics(in), first);

  // Policies go by name: "db ..." before "files-home"; locations too.
  const Parsed p = parse_ok(first);
  std::vector<std::string> order;
  for (const auto* s : find_all(p, "haven_backup_bytes")) order.push_back(s->labels.at("policy"));
  EXPECT_EQ(order, (std::vector<std::string>{kOddName, "files-home"}));
  std::vector<std::string> locs;
  for (const auto* s : find_all(p, "haven_location_health")) {
    const std::string& loc = s->labels.at("location");
    if (locs.empty() || locs.back() != loc) locs.push_back(loc);
  }
  EXPECT_EQ(locs, (std::vector<std::string>{"local-a", "s3-b"}));
}

TEST(MetricsRender, NonFiniteValuesAreLeftOut) {
  MetricsInput in = sample_input();
  in.status.policies[1].rpo.seconds = std::numeric_limits<double>::infinity();
  in.status.policies[1].rto.seconds = std::numeric_limits<double>::quiet_NaN();
  in.fire_delays_seconds.push_back(std::numeric_limits<double>::quiet_NaN());
  in.fire_delays_seconds.push_back(std::numeric_limits<double>::infinity());
  const std::string text = render_metrics(in);
  for (const char* bad : {"NaN", " Inf", "+Inf\n", "nan", "inf\n"}) {
    EXPECT_EQ(text.find(bad), std::string::npos) << bad << "\n" << text;
  }
  const Parsed p = parse_ok(text);
  EXPECT_EQ(value(p, "haven_policy_rpo_seconds", {{"policy", kOddName}}), std::nullopt);
  EXPECT_EQ(value(p, "haven_policy_rto_estimate_seconds", {{"policy", kOddName}}), std::nullopt);
  EXPECT_EQ(value(p, "haven_scheduler_fire_delay_seconds_count"), 200);  // the two are dropped
  EXPECT_EQ(value(p, "haven_scheduler_fire_delay_seconds", {{"quantile", "1"}}), 100);
  const CheckResult r = promtool_check(text);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "");
}

}  // namespace
}  // namespace haven::monitor

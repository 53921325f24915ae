// Tests of the haven.yaml model (config/config.h): the issue's example read into exactly the
// model it describes, every default, PostgreSQL and files policies with every key set, the SLA
// tiers and their overrides, the retention mapping, and the marks a later cron check reports
// with.
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

Schedule schedule(std::string cron, Strategy strategy, std::string timezone) {
  Schedule s;
  s.cron = std::move(cron);
  s.strategy = strategy;
  s.timezone = std::move(timezone);
  return s;
}

// retention(days, minCopies, maxCopies, last, hourly, daily, weekly, monthly, yearly, timezone)
Retention retention(int days, int min_copies, int max_copies, int last, int hourly, int daily,
                    int weekly, int monthly, int yearly, std::string timezone) {
  Retention r;
  r.days = days;
  r.min_copies = min_copies;
  r.max_copies = max_copies;
  r.last = last;
  r.hourly = hourly;
  r.daily = daily;
  r.weekly = weekly;
  r.monthly = monthly;
  r.yearly = yearly;
  r.timezone = std::move(timezone);
  return r;
}

// The issue's example, as written, with the password file in a temporary directory.
constexpr const char* kIssueExample = R"(server:
  listen: 127.0.0.1:8420
  catalog: /var/lib/haven/catalog.db
locations:
  - name: local
    storage_type: on_premise          # s3 | azure_blob | gcp_storage | on_premise (seed 004)
    repository: /srv/backup
    password_file: @DIR@/pass
    primary_region: eu-west-1
policies:
  - name: etc
    resource_type: files              # files | database
    sources: [/etc]
    location: local
    schedules:
      - {cron: "0 * * * *", strategy: incremental, timezone: Europe/Berlin}
      - {cron: "0 2 * * 0", strategy: full, timezone: Europe/Berlin}
    retention: {days: 30, minCopies: 3, maxCopies: 60, daily: 7, weekly: 4, monthly: 12, yearly: 7}
    compression: medium               # none | low | medium | high
    encryption: {enabled: true, algorithm: AES-256-GCM}
    rpo: {value: 15, unit: minutes}
    rto: {value: 4, unit: hours}
)";

TEST(ConfigModel, IssueExampleParsesToExactlyTheModel) {
  TempDir dir;
  dir.write("pass", "correct horse battery staple\nsecond line is not the password\n");
  const std::string path = dir.write("haven.yaml", with_dir(kIssueExample, dir.path()));

  Result<Config> loaded = load_config_file(path, env_of({}));
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  const Config& c = *loaded;
  EXPECT_EQ(c.file, path);

  // server
  EXPECT_EQ(c.server.listen_host, "127.0.0.1");
  EXPECT_EQ(c.server.listen_port, 8420);
  EXPECT_EQ(c.server.catalog, "/var/lib/haven/catalog.db");
  EXPECT_FALSE(c.server.tls.has_value());
  EXPECT_EQ(c.server.max_parallel_jobs, 2);
  EXPECT_EQ(c.server.shutdown, ShutdownMode::kFinish);
  EXPECT_EQ(c.server.shutdown_timeout_seconds, 300);
  EXPECT_EQ(c.server.events_retention_days, 90);
  EXPECT_EQ(c.server.mark.line, 2);  // the server mapping starts at its first key
  EXPECT_EQ(c.server.mark.path, "server");

  // locations
  ASSERT_EQ(c.locations.size(), 1u);
  const Location& l = c.locations[0];
  EXPECT_EQ(l.name, "local");
  EXPECT_EQ(l.description, "");
  EXPECT_EQ(l.storage_type, StorageType::kOnPremise);
  EXPECT_EQ(l.repository, "/srv/backup");
  EXPECT_EQ(l.password.kind, SecretRef::Kind::kFile);
  EXPECT_EQ(l.password.source, dir.file("pass"));
  EXPECT_EQ(l.password.value.reveal(), "correct horse battery staple");  // the first line only
  EXPECT_EQ(l.primary_region, "eu-west-1");
  EXPECT_TRUE(l.settings.empty());
  EXPECT_TRUE(l.credentials.empty());
  EXPECT_EQ(l.mark.line, 5);
  EXPECT_EQ(l.mark.column, 5);
  EXPECT_EQ(l.mark.path, "locations[0]");

  // policies
  ASSERT_EQ(c.policies.size(), 1u);
  const Policy& p = c.policies[0];
  EXPECT_EQ(p.name, "etc");
  EXPECT_EQ(p.description, "");
  EXPECT_EQ(p.resource_type, ResourceType::kFiles);
  EXPECT_EQ(p.sources, std::vector<std::string>{"/etc"});
  EXPECT_TRUE(p.excludes.empty());
  EXPECT_FALSE(p.one_file_system);
  EXPECT_FALSE(p.database.has_value());
  EXPECT_EQ(p.location, "local");
  ASSERT_EQ(p.schedules.size(), 2u);
  EXPECT_EQ(p.schedules[0].cron, "0 * * * *");
  EXPECT_EQ(p.schedules[0].strategy, Strategy::kIncremental);
  EXPECT_EQ(p.schedules[0].timezone, "Europe/Berlin");
  EXPECT_EQ(p.schedules[1].cron, "0 2 * * 0");
  EXPECT_EQ(p.schedules[1].strategy, Strategy::kFull);
  EXPECT_EQ(p.schedules[1].timezone, "Europe/Berlin");
  EXPECT_EQ(p.retention.days, 30);
  EXPECT_EQ(p.retention.min_copies, 3);
  EXPECT_EQ(p.retention.max_copies, 60);
  EXPECT_EQ(p.retention.last, 0);
  EXPECT_EQ(p.retention.hourly, 0);
  EXPECT_EQ(p.retention.daily, 7);
  EXPECT_EQ(p.retention.weekly, 4);
  EXPECT_EQ(p.retention.monthly, 12);
  EXPECT_EQ(p.retention.yearly, 7);
  EXPECT_EQ(p.retention.timezone, "Europe/Berlin");  // the first schedule's
  EXPECT_EQ(p.retention.keep_within(), "30d");
  EXPECT_EQ(p.compression, Compression::kMedium);
  EXPECT_FALSE(p.sla_tier.has_value());
  ASSERT_TRUE(p.rpo.has_value());
  EXPECT_EQ(*p.rpo, (Objective{15, TimeUnit::kMinutes}));
  EXPECT_EQ(p.rpo->seconds(), 15 * 60);
  ASSERT_TRUE(p.rto.has_value());
  EXPECT_EQ(*p.rto, (Objective{4, TimeUnit::kHours}));
  EXPECT_EQ(p.rto->seconds(), 4 * 3600);
  EXPECT_EQ(p.max_parallel_jobs, 2);
  EXPECT_FALSE(p.bandwidth_limit_mbps.has_value());
  EXPECT_TRUE(p.is_active);
  EXPECT_EQ(p.catch_up, CatchUp::kOnce);
  EXPECT_EQ(p.overlap, Overlap::kSkip);
  EXPECT_EQ(p.retry_count, 2);
  EXPECT_EQ(p.retry_backoff_seconds, 30);
  EXPECT_EQ(p.priority, Priority::kNormal);
  EXPECT_EQ(p.integrity_check, IntegrityCheck::kQuick);
  EXPECT_TRUE(p.tags.empty());

  // And the whole of it, so that a field added to the model without a check here still has to
  // come out as expected.
  Policy expected;
  expected.name = "etc";
  expected.resource_type = ResourceType::kFiles;
  expected.sources = {"/etc"};
  expected.location = "local";
  expected.schedules = {schedule("0 * * * *", Strategy::kIncremental, "Europe/Berlin"),
                        schedule("0 2 * * 0", Strategy::kFull, "Europe/Berlin")};
  expected.retention = retention(30, 3, 60, 0, 0, 7, 4, 12, 7, "Europe/Berlin");
  expected.compression = Compression::kMedium;
  expected.rpo = Objective{15, TimeUnit::kMinutes};
  expected.rto = Objective{4, TimeUnit::kHours};
  EXPECT_TRUE(p == expected);
  Config expected_config;
  expected_config.file = path;
  expected_config.locations.push_back(l);
  expected_config.policies.push_back(expected);
  EXPECT_TRUE(c == expected_config);
  EXPECT_EQ(c.find_location("local"), &c.locations[0]);
  EXPECT_EQ(c.find_location("remote"), nullptr);
  EXPECT_EQ(c.find_policy("etc"), &c.policies[0]);
  EXPECT_EQ(c.find_policy("local"), nullptr);
}

TEST(ConfigModel, SchedulesKeepTheirTextAndMarksForTheCronCheck) {
  TempDir dir;
  dir.write("pass", "pw\n");
  Checked<Config> c = check_config(with_dir(kIssueExample, dir.path()), "haven.yaml", env_of({}));
  ASSERT_TRUE(c.ok()) << test::lines_of(c.diagnostics)[0];
  const Policy& p = c.value.policies[0];
  // Line 16: `      - {cron: "0 * * * *", strategy: incremental, timezone: Europe/Berlin}`
  const Schedule& s0 = p.schedules[0];
  EXPECT_EQ(s0.mark.file, "haven.yaml");
  EXPECT_EQ(s0.mark.line, 16);
  EXPECT_EQ(s0.mark.column, 9);
  EXPECT_EQ(s0.mark.path, "policies[0].schedules[0]");
  EXPECT_EQ(s0.cron_mark.line, 16);
  EXPECT_EQ(s0.cron_mark.column, 16);
  EXPECT_EQ(s0.cron_mark.path, "policies[0].schedules[0].cron");
  EXPECT_EQ(s0.timezone_mark.line, 16);
  EXPECT_EQ(s0.timezone_mark.column, 62);
  EXPECT_EQ(s0.timezone_mark.path, "policies[0].schedules[0].timezone");
  const Schedule& s1 = p.schedules[1];
  EXPECT_EQ(s1.cron_mark.line, 17);
  EXPECT_EQ(s1.cron_mark.path, "policies[0].schedules[1].cron");
  // The retention's zone came from the first schedule: a bad zone is reported there.
  EXPECT_EQ(p.retention.timezone_mark.line, 16);
  EXPECT_EQ(p.retention.timezone_mark.column, 62);

  // What the schedule module's caller does with a refused cron expression.
  Diagnostic d = diagnostic_at(s1.cron_mark, "not a cron expression: day-of-week 9 is out of range",
                               "use 0-7 (0 and 7 are Sunday)");
  EXPECT_EQ(d.format(),
            "haven.yaml:17:16: policies[0].schedules[1].cron: not a cron expression: day-of-week 9 "
            "is out of range (fix: use 0-7 (0 and 7 are Sunday))");
}

TEST(ConfigModel, DefaultsOfEveryOptionalKey) {
  TempDir dir;
  dir.write("pass", "pw");  // no line break at all: still the first line
  const std::string text = with_dir(R"(locations:
  - name: local
    repository: /srv/backup
    password_file: @DIR@/pass
policies:
  - name: etc
    resource_type: files
    sources: [/etc]
    location: local
    schedules:
      - cron: "0 3 * * *"
)",
                                    dir.path());
  Result<Config> r = parse_config(text, "haven.yaml", env_of({}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Config& c = *r;
  EXPECT_TRUE(c.server == ServerSettings{});
  EXPECT_EQ(c.server.listen_host, "127.0.0.1");
  EXPECT_EQ(c.server.listen_port, 8420);
  EXPECT_EQ(c.server.catalog, "/var/lib/haven/catalog.db");
  EXPECT_EQ(c.server.shutdown, ShutdownMode::kFinish);
  EXPECT_EQ(c.server.shutdown_timeout_seconds, 300);
  EXPECT_EQ(c.server.events_retention_days, 90);
  EXPECT_EQ(c.server.max_parallel_jobs, 2);
  EXPECT_EQ(c.server.job_nice, 10);

  const Location& l = c.locations[0];
  EXPECT_EQ(l.storage_type, StorageType::kOnPremise);  // inferred from the path
  EXPECT_EQ(l.password.value.reveal(), "pw");
  EXPECT_EQ(l.primary_region, "");

  const Policy& p = c.policies[0];
  EXPECT_EQ(p.schedules[0].strategy, Strategy::kIncremental);
  EXPECT_EQ(p.schedules[0].timezone, "UTC");
  EXPECT_EQ(p.schedules[0].timezone_mark.path, "policies[0].schedules[0].timezone");
  EXPECT_EQ(p.schedules[0].timezone_mark.line, 11);  // where the schedule is written
  // The seeds' retention defaults.
  EXPECT_TRUE(p.retention == retention(0, 0, 0, 0, 0, 7, 4, 12, 7, "UTC"));
  EXPECT_EQ(p.retention.keep_within(), "");
  EXPECT_FALSE(p.compression.has_value());
  EXPECT_FALSE(p.sla_tier.has_value());
  EXPECT_FALSE(p.rpo.has_value());
  EXPECT_FALSE(p.rto.has_value());
  Policy defaults;
  EXPECT_EQ(p.max_parallel_jobs, defaults.max_parallel_jobs);
  EXPECT_EQ(p.max_parallel_jobs, 2);
  EXPECT_FALSE(p.bandwidth_limit_mbps.has_value());
  EXPECT_TRUE(p.is_active);
  EXPECT_EQ(p.catch_up, CatchUp::kOnce);
  EXPECT_EQ(p.overlap, Overlap::kSkip);
  EXPECT_EQ(p.retry_count, 2);
  EXPECT_EQ(p.retry_backoff_seconds, 30);
  EXPECT_EQ(p.priority, Priority::kNormal);
  EXPECT_EQ(p.integrity_check, IntegrityCheck::kQuick);
  EXPECT_TRUE(p.tags.empty());
  EXPECT_TRUE(p.excludes.empty());
  EXPECT_FALSE(p.one_file_system);
}

TEST(ConfigModel, EveryKeySetOnServerLocationsAndPolicies) {
  TempDir dir;
  dir.write("s3-secret", "s3 secret value\n");
  dir.write("cert.pem", "-----BEGIN CERTIFICATE-----\n");
  dir.write("key.pem", "-----BEGIN PRIVATE KEY-----\n");
  const std::string text = with_dir(R"(server:
  listen: "[::1]:9443"
  catalog: /srv/haven/catalog.db
  tls: {cert_file: @DIR@/cert.pem, key_file: @DIR@/key.pem}
  max_parallel_jobs: 6
  shutdown: finish
  shutdown_timeout_seconds: 45
  events_retention_days: 30
locations:
  - name: s3-eu
    description: offsite copy
    storage_type: s3
    repository: s3:https://minio.example:9000/bucket/pg
    password_env: HAVEN_PW
    primary_region: eu-central-1
    settings: {HAVEN_S3_REGION: eu-central-1, HAVEN_S3_PATH_STYLE: 1}
    credentials:
      AWS_ACCESS_KEY_ID: {env: PROD_KEY_ID}
      AWS_SECRET_ACCESS_KEY: {file: @DIR@/s3-secret}
  - name: gcs
    repository: s3:https://storage.googleapis.com/bucket/prefix
    password_env: HAVEN_PW
  - name: blob
    repository: azure:container/host1
    password_env: HAVEN_PW
    settings: {AZURE_STORAGE_ACCOUNT: acct}
    credentials: {AZURE_STORAGE_KEY: {env: AZ_KEY}}
policies:
  - name: pg-main
    description: the main cluster
    resource_type: database
    database:
      pgdata: /var/lib/postgresql/15/main
      conninfo: host=/var/run/postgresql port=5432 user=postgres
    location: s3-eu
    schedules: [{cron: "*/30 * * * *", strategy: differential, timezone: America/New_York}]
    retention: {last: 10, hourly: 24, timezone: UTC}
    sla_tier: CRITICAL
    compression: low
    max_parallel_jobs: 4
    bandwidth_limit_mbps: 200
    is_active: false
    catch_up: none
    overlap: queue
    retry_count: 5
    retry_backoff_seconds: 10
    priority: high
    integrity_check: read-data
    tags: [pg, prod]
  - name: home
    resource_type: files
    sources: [/home, /srv/app]
    excludes: ["*.tmp", /home/*/.cache]
    one_file_system: true
    location: blob
    schedules: []
)",
                                    dir.path());
  Result<Config> r = parse_config(
      text, "haven.yaml",
      env_of({{"HAVEN_PW", "repo password"}, {"PROD_KEY_ID", "AKIDEXAMPLE"}, {"AZ_KEY", "a2V5"}}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Config& c = *r;

  EXPECT_EQ(c.server.listen_host, "::1");
  EXPECT_EQ(c.server.listen_port, 9443);
  EXPECT_EQ(c.server.catalog, "/srv/haven/catalog.db");
  ASSERT_TRUE(c.server.tls.has_value());
  EXPECT_EQ(c.server.tls->cert_file, dir.file("cert.pem"));
  EXPECT_EQ(c.server.tls->key_file, dir.file("key.pem"));
  EXPECT_EQ(c.server.max_parallel_jobs, 6);
  EXPECT_EQ(c.server.shutdown_timeout_seconds, 45);
  EXPECT_EQ(c.server.events_retention_days, 30);

  ASSERT_EQ(c.locations.size(), 3u);
  const Location& s3 = c.locations[0];
  EXPECT_EQ(s3.description, "offsite copy");
  EXPECT_EQ(s3.storage_type, StorageType::kS3);
  EXPECT_EQ(s3.password.kind, SecretRef::Kind::kEnv);
  EXPECT_EQ(s3.password.source, "HAVEN_PW");
  EXPECT_EQ(s3.password.value.reveal(), "repo password");
  EXPECT_EQ(s3.primary_region, "eu-central-1");
  const std::map<std::string, std::string> settings = {{"HAVEN_S3_PATH_STYLE", "1"},
                                                        {"HAVEN_S3_REGION", "eu-central-1"}};
  EXPECT_EQ(s3.settings, settings);
  ASSERT_EQ(s3.credentials.size(), 2u);
  EXPECT_EQ(s3.credentials.at("AWS_ACCESS_KEY_ID").kind, SecretRef::Kind::kEnv);
  EXPECT_EQ(s3.credentials.at("AWS_ACCESS_KEY_ID").source, "PROD_KEY_ID");
  EXPECT_EQ(s3.credentials.at("AWS_SECRET_ACCESS_KEY").kind, SecretRef::Kind::kFile);
  EXPECT_EQ(s3.credentials.at("AWS_SECRET_ACCESS_KEY").source, dir.file("s3-secret"));
  // What the server hands storage::BackendSettings::lookup.
  EXPECT_EQ(s3.backend_setting("AWS_ACCESS_KEY_ID"), "AKIDEXAMPLE");
  EXPECT_EQ(s3.backend_setting("AWS_SECRET_ACCESS_KEY"), "s3 secret value");
  EXPECT_EQ(s3.backend_setting("HAVEN_S3_REGION"), "eu-central-1");
  EXPECT_EQ(s3.backend_setting("AWS_SESSION_TOKEN"), std::nullopt);
  EXPECT_EQ(c.locations[1].storage_type, StorageType::kGcpStorage);  // inferred
  EXPECT_EQ(c.locations[2].storage_type, StorageType::kAzureBlob);
  EXPECT_EQ(c.locations[2].backend_setting("AZURE_STORAGE_KEY"), "a2V5");
  EXPECT_EQ(c.locations[2].backend_setting("AZURE_STORAGE_ACCOUNT"), "acct");

  ASSERT_EQ(c.policies.size(), 2u);
  const Policy& pg = c.policies[0];
  EXPECT_EQ(pg.description, "the main cluster");
  EXPECT_EQ(pg.resource_type, ResourceType::kDatabase);
  ASSERT_TRUE(pg.database.has_value());
  EXPECT_EQ(pg.database->pgdata, "/var/lib/postgresql/15/main");
  EXPECT_EQ(pg.database->conninfo, "host=/var/run/postgresql port=5432 user=postgres");
  EXPECT_TRUE(pg.sources.empty());
  EXPECT_EQ(pg.schedules[0].strategy, Strategy::kDifferential);
  EXPECT_EQ(pg.schedules[0].timezone, "America/New_York");
  EXPECT_TRUE(pg.retention == retention(0, 0, 0, 10, 24, 0, 0, 0, 0, "UTC"));
  EXPECT_EQ(pg.sla_tier, SlaTier::kCritical);
  EXPECT_EQ(pg.compression, Compression::kLow);
  EXPECT_EQ(pg.max_parallel_jobs, 4);
  EXPECT_EQ(pg.bandwidth_limit_mbps, 200);
  EXPECT_FALSE(pg.is_active);
  EXPECT_EQ(pg.catch_up, CatchUp::kNone);
  EXPECT_EQ(pg.overlap, Overlap::kQueue);
  EXPECT_EQ(pg.retry_count, 5);
  EXPECT_EQ(pg.retry_backoff_seconds, 10);
  EXPECT_EQ(pg.priority, Priority::kHigh);
  EXPECT_EQ(pg.integrity_check, IntegrityCheck::kReadData);
  EXPECT_EQ(pg.tags, (std::vector<std::string>{"pg", "prod"}));

  const Policy& home = c.policies[1];
  EXPECT_EQ(home.sources, (std::vector<std::string>{"/home", "/srv/app"}));
  EXPECT_EQ(home.excludes, (std::vector<std::string>{"*.tmp", "/home/*/.cache"}));
  EXPECT_TRUE(home.one_file_system);
  EXPECT_TRUE(home.schedules.empty());  // runs only when started by hand
  EXPECT_EQ(home.retention.timezone, "UTC");  // no schedule to take it from
}

TEST(ConfigModel, SlaTiersPresetRpoAndRto) {
  struct Case {
    const char* tier;
    SlaTier value;
    int64_t rpo_seconds, rto_seconds;
  };
  // seed 003: CRITICAL RTO 15 min RPO 1 min; HIGH RTO 1 h RPO 5 min; STANDARD RTO 2 h RPO 15
  // min; LOWER RTO 24 h RPO 1 h.
  const Case cases[] = {{"CRITICAL", SlaTier::kCritical, 60, 15 * 60},
                        {"HIGH", SlaTier::kHigh, 5 * 60, 3600},
                        {"STANDARD", SlaTier::kStandard, 15 * 60, 2 * 3600},
                        {"LOWER", SlaTier::kLower, 3600, 24 * 3600}};
  TempDir dir;
  dir.write("pass", "pw\n");
  for (const auto& k : cases) {
    SCOPED_TRACE(k.tier);
    const std::string text = with_dir(
        R"(locations: [{name: l, repository: /r, password_file: @DIR@/pass}]
policies:
  - {name: p, resource_type: files, sources: [/etc], location: l, schedules: [], sla_tier: )",
                                      dir.path()) +
                             k.tier + "}\n";
    Result<Config> r = parse_config(text, "haven.yaml", env_of({}));
    ASSERT_TRUE(r.ok()) << r.error().message();
    const Policy& p = r->policies[0];
    EXPECT_EQ(p.sla_tier, k.value);
    ASSERT_TRUE(p.rpo && p.rto);
    EXPECT_EQ(p.rpo->seconds(), k.rpo_seconds);
    EXPECT_EQ(p.rto->seconds(), k.rto_seconds);
    EXPECT_EQ(tier_rpo(k.value).seconds(), k.rpo_seconds);
    EXPECT_EQ(tier_rto(k.value).seconds(), k.rto_seconds);
  }
}

TEST(ConfigModel, ExplicitRpoOrRtoOverridesTheTier) {
  TempDir dir;
  dir.write("pass", "pw\n");
  const std::string head = with_dir(
        R"(locations: [{name: l, repository: /r, password_file: @DIR@/pass}]
policies:
  - name: p
    resource_type: files
    sources: [/etc]
    location: l
    schedules: []
    sla_tier: HIGH
)",
                                    dir.path());
  {
    Result<Config> r = parse_config(head + "    rpo: {value: 2, unit: minutes}\n", "h.yaml", {});
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(*r->policies[0].rpo, (Objective{2, TimeUnit::kMinutes}));  // explicit
    EXPECT_EQ(*r->policies[0].rto, (Objective{1, TimeUnit::kHours}));    // the tier's
  }
  {
    Result<Config> r = parse_config(head + "    rto: {value: 30, unit: seconds}\n", "h.yaml", {});
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(*r->policies[0].rpo, (Objective{5, TimeUnit::kMinutes}));
    EXPECT_EQ(*r->policies[0].rto, (Objective{30, TimeUnit::kSeconds}));
    EXPECT_EQ(r->policies[0].rto->seconds(), 30);
  }
  {
    Result<Config> r = parse_config(
        head + "    rpo: {value: 1, unit: days}\n    rto: {value: 3, unit: days}\n", "h.yaml", {});
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->policies[0].rpo->seconds(), 86400);
    EXPECT_EQ(r->policies[0].rto->seconds(), 3 * 86400);
    EXPECT_EQ(r->policies[0].sla_tier, SlaTier::kHigh);  // kept for display
  }
}

TEST(ConfigModel, RetentionGivenKeepsOnlyWhatItSays) {
  TempDir dir;
  dir.write("pass", "pw\n");
  const std::string text = with_dir(
        R"(locations: [{name: l, repository: /r, password_file: @DIR@/pass}]
policies:
  - name: p
    resource_type: files
    sources: [/etc]
    location: l
    schedules: [{cron: "0 * * * *", timezone: Asia/Tokyo}]
    retention: {days: 7}
)",
                                    dir.path());
  Result<Config> r = parse_config(text, "haven.yaml", {});
  ASSERT_TRUE(r.ok()) << r.error().message();
  // Not the seeds' daily/weekly/monthly/yearly on top: only what was written.
  EXPECT_TRUE(r->policies[0].retention == retention(7, 0, 0, 0, 0, 0, 0, 0, 0, "Asia/Tokyo"));
  EXPECT_EQ(r->policies[0].retention.keep_within(), "7d");
}

TEST(ConfigModel, EnumSpellings) {
  EXPECT_EQ(name(StorageType::kAzureBlob), "azure_blob");
  EXPECT_EQ(name(StorageType::kOnPremise), "on_premise");
  EXPECT_EQ(name(StorageType::kGcpStorage), "gcp_storage");
  EXPECT_EQ(name(IntegrityCheck::kReadData), "read-data");
  EXPECT_EQ(name(SlaTier::kStandard), "STANDARD");
  EXPECT_EQ(name(Strategy::kDifferential), "differential");
  EXPECT_EQ(name(ShutdownMode::kCancel), "cancel");
  EXPECT_EQ(name(CatchUp::kOnce), "once");
  EXPECT_EQ(name(Overlap::kQueue), "queue");
  EXPECT_EQ(name(TimeUnit::kHours), "hours");
  EXPECT_EQ(name(Priority::kHigh), "high");
  EXPECT_EQ(name(Compression::kNone), "none");
  EXPECT_EQ(name(ResourceType::kDatabase), "database");
}

TEST(ConfigModel, BackendSettingNamesFollowStorageBackendH) {
  auto names_of = [](StorageType t) {
    std::map<std::string, bool> out;
    for (const auto& n : backend_setting_names(t)) out[std::string(n.name)] = n.secret;
    return out;
  };
  auto s3 = names_of(StorageType::kS3);
  EXPECT_EQ(s3.size(), 13u);
  EXPECT_TRUE(s3.at("AWS_SECRET_ACCESS_KEY"));
  EXPECT_TRUE(s3.at("AWS_SESSION_TOKEN"));
  EXPECT_FALSE(s3.at("HAVEN_S3_REGION"));
  EXPECT_FALSE(s3.at("AWS_CA_BUNDLE"));
  EXPECT_EQ(names_of(StorageType::kGcpStorage), s3);
  auto az = names_of(StorageType::kAzureBlob);
  EXPECT_EQ(az.size(), 4u);
  EXPECT_TRUE(az.at("AZURE_STORAGE_CONNECTION_STRING"));
  EXPECT_TRUE(az.at("AZURE_STORAGE_SAS_TOKEN"));
  EXPECT_FALSE(az.at("AZURE_STORAGE_ACCOUNT"));
  EXPECT_TRUE(names_of(StorageType::kOnPremise).empty());
}

TEST(ConfigModel, ConfigJsonShowsTheModelInCamelCase) {
  TempDir dir;
  dir.write("pass", "pw\n");
  Result<Config> r = parse_config(with_dir(kIssueExample, dir.path()), "haven.yaml", {});
  ASSERT_TRUE(r.ok()) << r.error().message();
  nlohmann::json j = *r;
  EXPECT_EQ(j["server"]["listen"], "127.0.0.1:8420");
  EXPECT_EQ(j["server"]["catalog"], "/var/lib/haven/catalog.db");
  EXPECT_TRUE(j["server"]["tls"].is_null());
  EXPECT_EQ(j["server"]["shutdown"], "finish");
  EXPECT_EQ(j["server"]["shutdownTimeoutSeconds"], 300);
  EXPECT_EQ(j["locations"][0]["storageType"], "on_premise");
  EXPECT_EQ(j["locations"][0]["primaryRegion"], "eu-west-1");
  EXPECT_EQ(j["locations"][0]["password"],
            (nlohmann::json{{"file", dir.file("pass")}, {"value", "***"}}));
  EXPECT_EQ(j["policies"][0]["name"], "etc");
  EXPECT_EQ(j["policies"][0]["retention"]["minCopies"], 3);
}

TEST(ConfigModel, JobNiceIsZeroToNineteen) {
  const std::string base = "locations: [{name: local, repository: /srv/backup, password_env: PW}]\n";
  Result<Config> set = parse_config("server: {job_nice: 3}\n" + base, "haven.yaml", env_of({{"PW", "x"}}));
  ASSERT_TRUE(set.ok()) << set.error().message();
  EXPECT_EQ(set->server.job_nice, 3);
  Result<Config> high = parse_config("server: {job_nice: 20}\n" + base, "haven.yaml", env_of({{"PW", "x"}}));
  ASSERT_FALSE(high.ok());
  EXPECT_NE(high.error().message().find("haven.yaml:1:20: server.job_nice:"), std::string::npos)
      << high.error().message();
}

TEST(ConfigModel, MemoryLimitGivesEachParallelJobItsMinimum) {
  const std::string base = "locations: [{name: local, repository: /srv/backup, password_env: PW}]\n";
  auto parse = [&](const std::string& server) {
    return parse_config("server: " + server + "\n" + base, "haven.yaml", env_of({{"PW", "x"}}));
  };
  Result<Config> none = parse("{max_parallel_jobs: 2}");
  ASSERT_TRUE(none.ok()) << none.error().message();
  EXPECT_EQ(none->server.memory_limit_mib, 0);
  Result<Config> set = parse("{max_parallel_jobs: 3, memory_limit_mib: 144}");
  ASSERT_TRUE(set.ok()) << set.error().message();
  EXPECT_EQ(set->server.memory_limit_mib, 144);
  Result<Config> small = parse("{max_parallel_jobs: 3, memory_limit_mib: 143}");
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.error().message().find(
                "haven.yaml:1:50: server.memory_limit_mib: gives each of the 3 jobs that may run at "
                "once (server.max_parallel_jobs) less than the 48 MiB one job needs (fix: give at "
                "least 144, lower max_parallel_jobs, or write 0 for no limit)"),
            std::string::npos)
      << small.error().message();
  Result<Config> negative = parse("{memory_limit_mib: -1}");
  ASSERT_FALSE(negative.ok());
}

}  // namespace
}  // namespace haven::config

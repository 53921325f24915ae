// Tests of a policy's JSON form (the REST API's): its exact shape, the round trip from
// haven.yaml through JSON and back, and validation that is haven.yaml's — the same checks and
// messages, with JSON key paths.
#include <cctype>
#include <set>

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

using json = nlohmann::json;
using Lines = std::vector<std::string>;

class PolicyJson : public ::testing::Test {
 protected:
  PolicyJson() {
    dir_.write("pass", "pw\n");
    Location local;
    local.name = "local";
    Location offsite;
    offsite.name = "offsite";
    locations_ = {local, offsite};
  }

  Config load(const std::string& policies) {
    Result<Config> r = parse_config(
        with_dir("locations:\n  - {name: local, repository: /srv/backup, password_file: "
                 "@DIR@/pass}\n  - {name: offsite, repository: /srv/offsite, password_file: "
                 "@DIR@/pass}\npolicies:\n" + policies,
                 dir_.path()),
        "haven.yaml", env_of({}));
    if (!r.ok()) ADD_FAILURE() << r.error().message();
    return r.ok() ? *r : Config{};
  }

  Lines json_lines(const json& j) { return lines_of(check_policy_json(j, locations_).diagnostics); }

  TempDir dir_;
  std::vector<Location> locations_;
};

constexpr const char* kEtc = R"(  - name: etc
    resource_type: files
    sources: [/etc]
    location: local
    schedules:
      - {cron: "0 * * * *", strategy: incremental, timezone: Europe/Berlin}
      - {cron: "0 2 * * 0", strategy: full, timezone: Europe/Berlin}
    retention: {days: 30, minCopies: 3, maxCopies: 60, daily: 7, weekly: 4, monthly: 12, yearly: 7}
    compression: medium
    encryption: {enabled: true, algorithm: AES-256-GCM}
    rpo: {value: 15, unit: minutes}
    rto: {value: 4, unit: hours}
)";

constexpr const char* kPg = R"(  - name: pg-main
    description: the main cluster
    resource_type: database
    database: {pgdata: /var/lib/postgresql/15/main, conninfo: "host=/var/run/postgresql"}
    location: offsite
    schedules: [{cron: "*/30 * * * *", strategy: differential}]
    retention: {last: 10, hourly: 24, timezone: UTC}
    sla_tier: HIGH
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
)";

TEST_F(PolicyJson, ShapeMirrorsTheYamlInCamelCase) {
  Config c = load(kEtc);
  ASSERT_EQ(c.policies.size(), 1u);
  const json expected = json::parse(R"({
    "name": "etc",
    "description": "",
    "resourceType": "files",
    "sources": ["/etc"],
    "excludes": [],
    "oneFileSystem": false,
    "location": "local",
    "schedules": [
      {"cron": "0 * * * *", "strategy": "incremental", "timezone": "Europe/Berlin"},
      {"cron": "0 2 * * 0", "strategy": "full", "timezone": "Europe/Berlin"}
    ],
    "retention": {"days": 30, "minCopies": 3, "maxCopies": 60, "last": 0, "hourly": 0,
                  "daily": 7, "weekly": 4, "monthly": 12, "yearly": 7,
                  "timezone": "Europe/Berlin"},
    "compression": "medium",
    "encryption": {"enabled": true, "algorithm": "AES-256-GCM"},
    "rpo": {"value": 15, "unit": "minutes"},
    "rto": {"value": 4, "unit": "hours"},
    "maxParallelJobs": 2,
    "isActive": true,
    "catchUp": "once",
    "overlap": "skip",
    "retryCount": 2,
    "retryBackoffSeconds": 30,
    "priority": "normal",
    "integrityCheck": "quick",
    "tags": []
  })");
  EXPECT_EQ(json(c.policies[0]), expected) << json(c.policies[0]).dump(2);

  Config pg = load(kPg);
  json j = pg.policies[0];
  EXPECT_EQ(j["database"], (json{{"pgdata", "/var/lib/postgresql/15/main"},
                                 {"conninfo", "host=/var/run/postgresql"}}));
  EXPECT_FALSE(j.contains("sources"));  // a database policy has none
  EXPECT_FALSE(j.contains("compression"));  // not set: the operation's default
  EXPECT_EQ(j["slaTier"], "HIGH");
  EXPECT_EQ(j["rpo"], (json{{"value", 5}, {"unit", "minutes"}}));  // the tier's
  EXPECT_EQ(j["rto"], (json{{"value", 1}, {"unit", "hours"}}));
  EXPECT_EQ(j["bandwidthLimitMbps"], 200);
  EXPECT_EQ(j["integrityCheck"], "read-data");
  EXPECT_EQ(j["isActive"], false);
  EXPECT_EQ(j["tags"], (json{"pg", "prod"}));
}

TEST_F(PolicyJson, RoundTripFromYamlThroughJsonGivesThePolicyBack) {
  Config c = load(std::string(kEtc) + kPg);
  ASSERT_EQ(c.policies.size(), 2u);
  for (const Policy& p : c.policies) {
    SCOPED_TRACE(p.name);
    const json j = p;
    Checked<Policy> back = check_policy_json(j, locations_);
    ASSERT_TRUE(back.ok()) << format_diagnostics(back.diagnostics);
    EXPECT_TRUE(back.value == p);
    EXPECT_EQ(json(back.value), j);
    // And through text, as a request body arrives.
    Checked<Policy> from_text = check_policy_json_text(j.dump(), locations_);
    ASSERT_TRUE(from_text.ok()) << format_diagnostics(from_text.diagnostics);
    EXPECT_TRUE(from_text.value == p);
    Result<Policy> r = policy_from_json(j, locations_);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_TRUE(*r == p);
  }
  // JSON positions are unknown; key paths are the JSON's.
  Checked<Policy> back = check_policy_json(json(c.policies[0]), locations_);
  EXPECT_EQ(back.value.schedules[1].cron_mark.path, "schedules[1].cron");
  EXPECT_EQ(back.value.schedules[1].cron_mark.line, 0);
  EXPECT_EQ(back.value.schedules[1].cron_mark.file, "");
  EXPECT_EQ(diagnostic_at(back.value.schedules[1].cron_mark, "bad cron").format(),
            "schedules[1].cron: bad cron");
}

TEST_F(PolicyJson, DefaultsApplyToJsonAsToYaml) {
  Checked<Policy> c = check_policy_json(
      json::parse(R"({"name": "etc", "resourceType": "files", "sources": ["/etc"],
                      "location": "local", "schedules": [{"cron": "0 3 * * *"}]})"),
      locations_);
  ASSERT_TRUE(c.ok()) << format_diagnostics(c.diagnostics);
  Config y = load("  - {name: etc, resource_type: files, sources: [/etc], location: local, "
                  "schedules: [{cron: \"0 3 * * *\"}]}\n");
  EXPECT_TRUE(c.value == y.policies[0]);
  EXPECT_EQ(c.value.retention.daily, 7);
  EXPECT_EQ(c.value.schedules[0].timezone, "UTC");
  EXPECT_EQ(c.value.retry_backoff_seconds, 30);
}

TEST_F(PolicyJson, ValidationIsTheYamlValidationWithJsonKeyPaths) {
  // One policy with the same problems, written once as YAML and once as JSON.
  const std::string yaml = R"(  - name: etc
    resource_type: files
    sources: ["etc"]
    location: lcoal
    schedules: [{cron: "", strategy: snapshot}]
    retention: {daily: -1, minCopies: "3"}
    encryption: {enabled: false}
    max_parallel_jobs: 0
    sla_tier: high
    retry_count: 2.5
    colour: blue
)";
  const json j = json::parse(R"({
    "name": "etc", "resourceType": "files", "sources": ["etc"], "location": "lcoal",
    "schedules": [{"cron": "", "strategy": "snapshot"}],
    "retention": {"daily": -1, "minCopies": "3"},
    "encryption": {"enabled": false}, "maxParallelJobs": 0, "slaTier": "high",
    "retryCount": 2.5, "colour": "blue"})");

  Checked<Config> from_yaml = check_config(
      with_dir("locations:\n  - {name: local, repository: /srv/backup, password_file: "
               "@DIR@/pass}\n  - {name: offsite, repository: /srv/offsite, password_file: "
               "@DIR@/pass}\npolicies:\n" + yaml,
               dir_.path()),
      "haven.yaml", env_of({}));
  Checked<Policy> from_json = check_policy_json(j, locations_);

  // In the order the decoder reads the keys (JSON objects keep no order of their own).
  EXPECT_EQ(lines_of(from_json.diagnostics),
            (Lines{
                "sources[0]: must be an absolute path, not 'etc' (fix: write the whole path, "
                "e.g. /etc)",
                "location: no location is named 'lcoal' (fix: did you mean 'local'?)",
                "schedules[0].cron: is empty (fix: give a cron expression, e.g. \"0 2 * * *\" "
                "(every day at 02:00))",
                "schedules[0].strategy: must be one of full|incremental|differential, not "
                "'snapshot' (fix: write one of the values listed)",
                "retention.minCopies: must be a whole number >= 0, not the string \"3\" (fix: "
                "remove the quotes)",
                "retention.daily: must be a whole number >= 0, not '-1'",
                "encryption.enabled: cannot be false: Haven repositories are always encrypted "
                "(AES-256-GCM, keys wrapped by the repository password) (fix: remove the "
                "encryption key, or write enabled: true)",
                "slaTier: must be one of CRITICAL|HIGH|STANDARD|LOWER, not 'high' (fix: did you "
                "mean 'HIGH'?)",
                "maxParallelJobs: must be a whole number from 1 to 256, not '0'",
                "retryCount: must be a whole number from 0 to 100, not '2.5'",
                "colour: unknown key 'colour' (fix: remove it; the keys here are name, "
                "description, resourceType, sources, excludes, oneFileSystem, database, "
                "location, schedules, retention, compression, encryption, slaTier, rpo, rto, "
                "maxParallelJobs, bandwidthLimitMbps, isActive, catchUp, overlap, retryCount, "
                "retryBackoffSeconds, priority, integrityCheck, tags)",
            }));

  // The same problems from haven.yaml: the same messages and fixes, at the same key paths
  // written the YAML way (document order there, decoding order in JSON: compare as sets).
  ASSERT_EQ(from_yaml.diagnostics.size(), from_json.diagnostics.size())
      << format_diagnostics(from_yaml.diagnostics);
  auto snake = [](const std::string& camel) {
    std::string out;
    for (char ch : camel) {
      if (std::isupper(static_cast<unsigned char>(ch)) && out != "retention.min" &&
          out != "retention.max") {
        out += '_';
        out += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      } else {
        out += ch;
      }
    }
    return out;
  };
  std::multiset<std::string> yaml_set, json_set;
  for (const auto& d : from_yaml.diagnostics) {
    EXPECT_EQ(d.file, "haven.yaml");
    EXPECT_GT(d.line, 0);
    yaml_set.insert(d.path + " | " + d.message + " | " + d.fix);
  }
  for (const auto& d : from_json.diagnostics) {
    std::string path = "policies[0]." + snake(d.path);
    std::string fix = d.fix;
    if (fix == "did you mean 'HIGH'?" || fix.find("keys here") == std::string::npos) {
      json_set.insert(path + " | " + d.message + " | " + fix);
    } else {
      // The list of keys is spelled the YAML way there.
      json_set.insert(path + " | " + d.message + " | " + snake(fix));
    }
  }
  EXPECT_EQ(yaml_set, json_set);
}

TEST_F(PolicyJson, JsonSpecificProblems) {
  EXPECT_EQ(json_lines(json::array({1, 2})),
            Lines{"must be an object of keys and values, not an array"});
  EXPECT_EQ(json_lines(json::parse(R"({"name": "x", "resource_type": "files",
      "sources": ["/etc"], "location": "local", "schedules": []})")),
            (Lines{"resourceType: required, but missing (fix: write resourceType: files or "
                   "resourceType: database (PostgreSQL))",
                   "resource_type: unknown key 'resource_type' (fix: did you mean "
                   "'resourceType'?)"}));
  EXPECT_EQ(json_lines(json::parse(R"({"name": "x", "resourceType": "database",
      "sources": ["/etc"], "location": "local", "schedules": null})")),
            (Lines{"sources: does not apply: a database policy backs up database.pgdata (fix: "
                   "remove sources)",
                   "database: required, but missing (fix: add database: {pgdata: "
                   "/var/lib/postgresql/15/main} (and conninfo if libpq's defaults do not reach "
                   "the cluster))",
                   "schedules: has no value (fix: list the schedules, or write schedules: [] "
                   "for a policy that runs only when started by hand)"}));
  EXPECT_EQ(json_lines(json::parse(R"({"name": "x", "resourceType": "files",
      "sources": "/etc", "location": "local", "schedules": {"cron": "* * * * *"},
      "isActive": "true"})")),
            (Lines{"sources: must be an array of strings, not the string \"/etc\" (fix: write it "
                   "as an array: [\"/etc\"])",
                   "schedules: must be an array of {cron, strategy, timezone}, not an object "
                   "(fix: write \"schedules\": [{\"cron\": \"0 2 * * *\"}])",
                   "isActive: must be true or false, not the string \"true\" (fix: remove the "
                   "quotes)"}));
  // A password in conninfo: refused, and never repeated.
  Checked<Policy> pw = check_policy_json(
      json::parse(R"({"name": "x", "resourceType": "database", "location": "local",
          "schedules": [], "database": {"pgdata": "/pg",
          "conninfo": "host=db password=PLANTED-SECRET-7f3a9c"}})"),
      locations_);
  EXPECT_EQ(lines_of(pw.diagnostics),
            Lines{"database.conninfo: holds a password, which would then sit in the "
                  "configuration and be shown by the API (fix: remove it and give the password "
                  "in the server user's ~/.pgpass (or the file PGPASSFILE names))"});

  // Not JSON at all.
  Checked<Policy> text = check_policy_json_text("{\"name\": \"x\",", locations_);
  ASSERT_EQ(text.diagnostics.size(), 1u);
  EXPECT_EQ(text.diagnostics[0].format(),
            "not valid JSON: parse error at line 1, column 14: syntax error while parsing object "
            "key - unexpected end of input; expected string literal (fix: send one JSON object "
            "describing the policy)");
  // A number too large for a double (the fuzzer's find: it used to escape as an exception).
  Checked<Policy> huge = check_policy_json_text("{\"retryCount\": 5.5e77277}", locations_);
  ASSERT_EQ(huge.diagnostics.size(), 1u);
  EXPECT_EQ(huge.diagnostics[0].format(),
            "not valid JSON: number overflow parsing '5.5e77277' (fix: send one JSON object "
            "describing the policy)");

  // As a Result, every diagnostic on its own line; as JSON for an API error body.
  Result<Policy> r = policy_from_json(json::parse(R"({"name": "x"})"), locations_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument);
  EXPECT_EQ(r.error().message(),
            "resourceType: required, but missing (fix: write resourceType: files or "
            "resourceType: database (PostgreSQL))\n"
            "location: required, but missing (fix: name the location the policy backs up to)\n"
            "schedules: required, but missing (fix: list when the policy runs, e.g. schedules: "
            "[{cron: \"0 2 * * *\"}], or [] to run it only by hand)");
  Checked<Policy> c = check_policy_json(json::parse(R"({"name": "x"})"), locations_);
  EXPECT_EQ(json(c.diagnostics[0]),
            (json{{"file", ""},
                  {"line", 0},
                  {"column", 0},
                  {"path", "resourceType"},
                  {"message", "required, but missing"},
                  {"fix", "write resourceType: files or resourceType: database (PostgreSQL)"}}));
}

TEST_F(PolicyJson, PasswordsInConninfoAreFoundInEveryForm) {
  auto refused = [&](const std::string& conninfo) {
    json j = {{"name", "x"},        {"resourceType", "database"},
              {"location", "local"}, {"schedules", json::array()},
              {"database", {{"pgdata", "/pg"}, {"conninfo", conninfo}}}};
    Checked<Policy> c = check_policy_json(j, locations_);
    return !c.ok() && c.diagnostics[0].path == "database.conninfo";
  };
  EXPECT_TRUE(refused("password=x"));
  EXPECT_TRUE(refused("host=db PASSWORD = x"));
  EXPECT_TRUE(refused("host=db\tpassword='a b'"));
  EXPECT_TRUE(refused("postgresql://app:x@db:5432/app"));
  EXPECT_TRUE(refused("postgres://db/app?sslmode=require&password=x"));
  EXPECT_FALSE(refused("host=db user=password dbname=app"));  // a user called "password"
  EXPECT_FALSE(refused("postgresql://app@db/app"));
  EXPECT_FALSE(refused("host=/var/run/postgresql passfile=/etc/haven/pgpass"));
  EXPECT_FALSE(refused(""));
}

TEST_F(PolicyJson, NoLocationsMeansEveryLocationIsUnknown) {
  Checked<Policy> c = check_policy_json(
      json::parse(R"({"name": "x", "resourceType": "files", "sources": ["/etc"],
                      "location": "local", "schedules": []})"),
      {});
  EXPECT_EQ(lines_of(c.diagnostics),
            Lines{"location: no location is named 'local' (fix: define the location under "
                  "locations first)"});
}

}  // namespace
}  // namespace haven::config

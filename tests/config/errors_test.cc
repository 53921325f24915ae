// Tests of haven.yaml's diagnostics: every class of problem, each with its exact
// file:line:column, key path, message and fix, several reported at once in document order,
// and the Result/Error a caller gets.
#include <gtest/gtest.h>

#include "config/config.h"
#include "config_test_util.h"

namespace haven::config {
namespace {

using test::env_of;
using test::lines_of;
using test::TempDir;
using test::with_dir;

using Lines = std::vector<std::string>;

class ConfigErrors : public ::testing::Test {
 protected:
  ConfigErrors() { dir_.write("pass", "pw\n"); }

  // The diagnostics of `text` (with @DIR@ the temporary directory) as printed lines.
  Lines check(const std::string& text) {
    Checked<Config> c = check_config(with_dir(text, dir_.path()), "haven.yaml", env_of({}));
    return lines_of(c.diagnostics);
  }
  // A file whose policies start on line 4.
  Lines check_policies(const std::string& policies) {
    return check("locations:\n  - {name: local, repository: /srv/backup, password_file: "
                 "@DIR@/pass}\npolicies:\n" + policies);
  }

  TempDir dir_;
};

TEST_F(ConfigErrors, YamlSyntaxErrorAtYamlCppsMark) {
  EXPECT_EQ(check("locations:\n  - name: local\n    repository: [/srv\npolicies: []\n"),
            (Lines{"haven.yaml:4:9: YAML syntax error: end of sequence flow not found (fix: check "
                   "the indentation (spaces, not tabs), the ':' after each key and the closing "
                   "brackets and quotes near this point)"}));
  EXPECT_EQ(check("server:\n  listen: 1.2.3.4:80\n   catalog: /x\n"),
            (Lines{"haven.yaml:3:11: YAML syntax error: illegal map value (fix: check the "
                   "indentation (spaces, not tabs), the ':' after each key and the closing "
                   "brackets and quotes near this point)"}));
  EXPECT_EQ(check("policies:\n  - schedules:\n      - cron: */30 * * * *\n"),
            (Lines{"haven.yaml:3:15: YAML syntax error: the referenced anchor is not defined (fix: "
                   "a value starting with '*' must be quoted, e.g. cron: \"*/30 * * * *\" (an "
                   "unquoted * starts a YAML alias))"}));
  EXPECT_EQ(check("server:\n\tlisten: 1.2.3.4:80\n"),
            (Lines{"haven.yaml:2:8: YAML syntax error: illegal map value (fix: indent with "
                   "spaces: line 2 is indented with a tab)"}));
  EXPECT_EQ(check("locations: []\n---\npolicies: []\n"),
            (Lines{"haven.yaml:2:1: a second YAML document: haven.yaml holds one (fix: remove "
                   "the '---' line and merge what follows into the first document)"}));
  // yaml-cpp 0.7's LoadAll() loops for ever on these (its parser repeats an empty document
  // without moving on); the fuzzer found it. A syntax error instead, at once.
  for (const char* text : {",", ",erver:\n  listen: 00.0.0:9000\n", ",a: 1\n"}) {
    EXPECT_EQ(check(text),
              (Lines{"haven.yaml:1:1: YAML syntax error: unexpected text that starts no value (fix: "
                     "check for a stray ',' or bracket near this point; a value starting with ',' "
                     "must be quoted)"}))
        << text;
  }
  EXPECT_EQ(check(""), (Lines{"haven.yaml: is empty: haven.yaml needs at least a locations "
                              "section (fix: see the haven.yaml section of README.md)"}));
  EXPECT_EQ(check("- a\n- b\n"),
            (Lines{"haven.yaml:1:1: must be a mapping of keys and values, not a list"}));
}

TEST_F(ConfigErrors, UnknownKeysWithDidYouMean) {
  EXPECT_EQ(check_policies(R"(  - name: etc
    resource_type: files
    sources: [/etc]
    location: local
    schedule: [{cron: "0 * * * *"}]
    retension: {days: 3}
    retention: {dayly: 7, daily: 7}
    oneFileSystem: true
    colour: blue
polices: []
)"),
            (Lines{
                "haven.yaml:4:5: policies[0].schedules: required, but missing (fix: list when the "
                "policy runs, e.g. schedules: [{cron: \"0 2 * * *\"}], or [] to run it only by "
                "hand)",
                "haven.yaml:8:5: policies[0].schedule: unknown key 'schedule' (fix: did you mean "
                "'schedules'?)",
                "haven.yaml:9:5: policies[0].retension: unknown key 'retension' (fix: did you "
                "mean 'retention'?)",
                "haven.yaml:10:17: policies[0].retention.dayly: unknown key 'dayly' (fix: did you "
                "mean 'daily'?)",
                "haven.yaml:11:5: policies[0].oneFileSystem: unknown key 'oneFileSystem' (fix: "
                "did you mean 'one_file_system'?)",
                "haven.yaml:12:5: policies[0].colour: unknown key 'colour' (fix: remove it; the "
                "keys here are name, description, resource_type, sources, excludes, "
                "one_file_system, database, location, schedules, retention, compression, "
                "encryption, sla_tier, rpo, rto, max_parallel_jobs, bandwidth_limit_mbps, "
                "is_active, catch_up, overlap, retry_count, retry_backoff_seconds, priority, "
                "integrity_check, tags)",
                "haven.yaml:13:1: polices: unknown key 'polices' (fix: did you mean 'policies'?)",
            }));
  EXPECT_EQ(check("server: {listen_address: 1.2.3.4:80}\nlocations: []\n"),
            (Lines{"haven.yaml:1:10: server.listen_address: unknown key 'listen_address' (fix: "
                   "remove it; the keys here are listen, catalog, tls, max_parallel_jobs, "
                   "shutdown, shutdown_timeout_seconds, events_retention_days, job_nice, "
                   "memory_limit_mib)",
                   "haven.yaml:2:12: locations: is empty: policies need a location to back up "
                   "to (fix: add at least one location)"}));
}

TEST_F(ConfigErrors, WrongTypes) {
  EXPECT_EQ(check_policies(R"(  - name: [etc]
    resource_type: files
    sources: /etc
    location: local
    schedules: [{cron: "0 * * * *"}]
    retention: {daily: seven, weekly: 4.5, monthly: "12"}
    is_active: yes
    max_parallel_jobs: "4"
    tags: {a: b}
    description:
    encryption: true
    schedules: {cron: x}
)"),
            (Lines{
                "haven.yaml:4:11: policies[0].name: must be a string, not a list",
                "haven.yaml:6:14: policies[0].sources: must be a list of strings, not '/etc' "
                "(fix: write it as a list: [/etc])",
                "haven.yaml:9:24: policies[0].retention.daily: must be a whole number >= 0, not "
                "'seven'",
                "haven.yaml:9:39: policies[0].retention.weekly: must be a whole number >= 0, not "
                "'4.5'",
                "haven.yaml:9:53: policies[0].retention.monthly: must be a whole number >= 0, not "
                "the string \"12\" (fix: remove the quotes)",
                "haven.yaml:10:16: policies[0].is_active: must be true or false, not 'yes'",
                "haven.yaml:11:24: policies[0].max_parallel_jobs: must be a whole number from 1 "
                "to 256, not the string \"4\" (fix: remove the quotes)",
                "haven.yaml:12:11: policies[0].tags: must be a list of strings, not a mapping",
                "haven.yaml:13:5: policies[0].description: has no value (fix: give a value, or "
                "remove the key to take the default)",
                "haven.yaml:14:17: policies[0].encryption: must be a mapping of keys and values, "
                "not 'true'",
                "haven.yaml:15:5: policies[0].schedules: duplicate key 'schedules' (first given "
                "at line 8) (fix: keep one of them)",
            }));
}

TEST_F(ConfigErrors, MissingRequiredKeys) {
  EXPECT_EQ(check("server: {}\n"),
            (Lines{"haven.yaml:1:1: locations: required, but missing (fix: add a locations list: "
                   "where backups go, e.g. [{name: local, repository: /srv/backup, "
                   "password_file: /etc/haven/pass}])"}));
  EXPECT_EQ(check(R"(locations:
  - description: no name, no repository, no password
policies:
  - description: nothing else
  - name: p
    resource_type: files
    sources: [/etc]
    location: local
    schedules: [{strategy: full}]
)"),
            (Lines{
                "haven.yaml:2:5: locations[0].name: required, but missing (fix: give the location "
                "a name policies refer to, e.g. name: local)",
                "haven.yaml:2:5: locations[0].repository: required, but missing (fix: give where "
                "the backups go, e.g. repository: /srv/backup, s3:BUCKET/PREFIX or "
                "azure:CONTAINER/PREFIX)",
                "haven.yaml:2:5: locations[0].password_file: a location needs its repository's "
                "password: neither password_file nor password_env is given (fix: add "
                "password_file: PATH (its first line is the password) or password_env: VARIABLE; "
                "Haven repositories are always encrypted)",
                "haven.yaml:4:5: policies[0].name: required, but missing (fix: give the policy a "
                "name, e.g. name: etc-hourly)",
                "haven.yaml:4:5: policies[0].resource_type: required, but missing (fix: write "
                "resource_type: files or resource_type: database (PostgreSQL))",
                "haven.yaml:4:5: policies[0].location: required, but missing (fix: name the "
                "location the policy backs up to)",
                "haven.yaml:4:5: policies[0].schedules: required, but missing (fix: list when the "
                "policy runs, e.g. schedules: [{cron: \"0 2 * * *\"}], or [] to run it only by "
                "hand)",
                "haven.yaml:8:15: policies[1].location: no location is named 'local' (fix: "
                "define the location under locations first)",
                "haven.yaml:9:17: policies[1].schedules[0].cron: required, but missing (fix: add "
                "the cron expression (minute hour day-of-month month day-of-week), e.g. cron: "
                "\"0 2 * * *\")",
            }));
}

TEST_F(ConfigErrors, PlainScalarsAreTypedByYamlsCoreSchema) {
  // Numbers and booleans where strings go are read as written; strings, floats, hex and
  // YAML 1.1's yes/no where numbers or booleans go are refused.
  EXPECT_EQ(check_policies(R"(  - name: 2024
    description: 1.5e3
    resource_type: files
    sources: [/etc]
    location: local
    schedules: []
    tags: [true, 7, .inf]
    retry_count: 1e1
    retry_backoff_seconds: 0x10
    max_parallel_jobs: +3
    bandwidth_limit_mbps: .5
    one_file_system: no
    is_active: True
)"),
            (Lines{
                "haven.yaml:11:18: policies[0].retry_count: must be a whole number from 0 to "
                "100, not '1e1'",
                "haven.yaml:12:28: policies[0].retry_backoff_seconds: must be a whole number "
                "from 1 to 86400, not '0x10'",
                "haven.yaml:14:27: policies[0].bandwidth_limit_mbps: must be a whole number from "
                "1 to 1000000, not '.5'",
                "haven.yaml:15:22: policies[0].one_file_system: must be true or false, not 'no'",
            }));
  Checked<Config> c = check_config(
      with_dir("locations: [{name: l, repository: /r, password_file: @DIR@/pass}]\n"
               "policies:\n  - {name: 2024, description: 1.5e3, resource_type: files, sources: "
               "[/etc], location: l, schedules: [], tags: [true, 7, .inf], max_parallel_jobs: +3, "
               "is_active: False}\n",
               dir_.path()),
      "haven.yaml", env_of({}));
  ASSERT_TRUE(c.ok()) << format_diagnostics(c.diagnostics);
  const Policy& p = c.value.policies[0];
  EXPECT_EQ(p.name, "2024");
  EXPECT_EQ(p.description, "1.5e3");
  EXPECT_EQ(p.tags, (std::vector<std::string>{"true", "7", ".inf"}));
  EXPECT_EQ(p.max_parallel_jobs, 3);
  EXPECT_FALSE(p.is_active);
}

TEST_F(ConfigErrors, EnumerationsListTheirValues) {
  EXPECT_EQ(check_policies(R"(  - name: etc
    resource_type: file
    sources: [/etc]
    location: local
    schedules: [{cron: "0 * * * *", strategy: snapshot}]
    compression: maximum
    sla_tier: high
    integrity_check: read_data
    catch_up: all
    overlap: Queue
    priority: urgent
)"),
            (Lines{
                "haven.yaml:5:20: policies[0].resource_type: must be one of files|database, not "
                "'file' (fix: did you mean 'files'?)",
                "haven.yaml:8:47: policies[0].schedules[0].strategy: must be one of "
                "full|incremental|differential, not 'snapshot' (fix: write one of the values "
                "listed)",
                "haven.yaml:9:18: policies[0].compression: must be one of none|low|medium|high, "
                "not 'maximum' (fix: write one of the values listed)",
                "haven.yaml:10:15: policies[0].sla_tier: must be one of "
                "CRITICAL|HIGH|STANDARD|LOWER, not 'high' (fix: did you mean 'HIGH'?)",
                "haven.yaml:11:22: policies[0].integrity_check: must be one of "
                "none|quick|read-data, not 'read_data' (fix: did you mean 'read-data'?)",
                "haven.yaml:12:15: policies[0].catch_up: must be one of none|once, not 'all' "
                "(fix: write one of the values listed)",
                "haven.yaml:13:14: policies[0].overlap: must be one of skip|queue, not 'Queue' "
                "(fix: did you mean 'queue'?)",
                "haven.yaml:14:15: policies[0].priority: must be one of normal|high, not "
                "'urgent' (fix: write one of the values listed)",
            }));
  EXPECT_EQ(check("server: {shutdown: abort}\nlocations:\n  - {name: x, storage_type: hybrid, "
                  "repository: /r, password_file: @DIR@/pass}\n"),
            (Lines{"haven.yaml:1:20: server.shutdown: must be one of cancel|finish, not 'abort' "
                   "(fix: write one of the values listed)",
                   "haven.yaml:3:29: locations[0].storage_type: must be one of "
                   "s3|azure_blob|gcp_storage|on_premise, not 'hybrid' (fix: write one of the "
                   "values listed)"}));
}

TEST_F(ConfigErrors, RangesOfNumbers) {
  EXPECT_EQ(check(R"(server:
  max_parallel_jobs: 0
  events_retention_days: -1
  shutdown_timeout_seconds: 99999999999999999999
locations:
  - {name: local, repository: /srv/backup, password_file: @DIR@/pass}
policies:
  - name: etc
    resource_type: files
    sources: [/etc]
    location: local
    schedules: []
    retry_count: 101
    retry_backoff_seconds: 0
    bandwidth_limit_mbps: 0
    rpo: {value: 0, unit: minutes}
    rto: {value: 5}
    retention: {days: 36501}
)"),
            (Lines{
                "haven.yaml:2:22: server.max_parallel_jobs: must be a whole number from 1 to 256, "
                "not '0'",
                "haven.yaml:3:26: server.events_retention_days: must be a whole number from 1 to "
                "36500, not '-1'",
                "haven.yaml:4:29: server.shutdown_timeout_seconds: must be a whole number from 1 "
                "to 86400, not '99999999999999999999'",
                "haven.yaml:13:18: policies[0].retry_count: must be a whole number from 0 to "
                "100, not '101'",
                "haven.yaml:14:28: policies[0].retry_backoff_seconds: must be a whole number "
                "from 1 to 86400, not '0'",
                "haven.yaml:15:27: policies[0].bandwidth_limit_mbps: must be a whole number from "
                "1 to 1000000, not '0'",
                "haven.yaml:16:18: policies[0].rpo.value: must be a whole number from 1 to "
                "100000, not '0'",
                "haven.yaml:17:10: policies[0].rto.unit: required, but missing (fix: write e.g. "
                "{value: 15, unit: minutes}: seconds, minutes, hours or days)",
                "haven.yaml:18:23: policies[0].retention.days: must be a whole number from 0 to "
                "36500, not '36501'",
            }));
}

TEST_F(ConfigErrors, ListenSyntax) {
  struct Case {
    const char* listen;
    std::string expected;
  };
  const std::string example =
      " (fix: write it as 127.0.0.1:8420 (this host only), 0.0.0.0:8420 (every interface) or "
      "[::1]:8420)";
  const Case cases[] = {
      {"8420", "must be HOST:PORT, not '8420'" + example},
      {"localhost", "must be HOST:PORT, not 'localhost'" + example},
      {":8420", "names no host: ':8420'" + example},
      {"127.0.0.1:70000",
       "the port must be a whole number from 1 to 65535, not '70000'" + example},
      {"127.0.0.1:http", "the port must be a whole number from 1 to 65535, not 'http'" + example},
      {"127.0.0.1:0", "the port must be a whole number from 1 to 65535, not '0'" + example},
      {"::1:8420",
       "an IPv6 address goes in brackets: '::1:8420' is ambiguous (fix: write it as "
       "[ADDRESS]:PORT, e.g. [::1]:8420)"},
      {"\"[::1]8420\"", "must be [ADDRESS]:PORT for an IPv6 address, not '[::1]8420'" + example},
      {"\"my host:80\"", "'my host' is not a host name or address" + example},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.listen);
    Lines got = check(std::string("server:\n  listen: ") + c.listen +
                      "\nlocations: [{name: l, repository: /r, password_file: @DIR@/pass}]\n");
    EXPECT_EQ(got, Lines{"haven.yaml:2:11: server.listen: " + c.expected});
  }
  // Good forms.
  for (const char* ok : {"0.0.0.0:1", "haven.example.com:65535", "\"[fe80::1]:8420\""}) {
    SCOPED_TRACE(ok);
    EXPECT_EQ(check(std::string("server: {listen: ") + ok +
                    "}\nlocations: [{name: l, repository: /r, password_file: @DIR@/pass}]\n"),
              Lines{});
  }
}

TEST_F(ConfigErrors, DuplicateNamesAndUnknownLocations) {
  EXPECT_EQ(check(R"(locations:
  - {name: local, repository: /srv/a, password_file: @DIR@/pass}
  - {name: remote, repository: /srv/b, password_file: @DIR@/pass}
  - {name: local, repository: /srv/c, password_file: @DIR@/pass}
policies:
  - {name: etc, resource_type: files, sources: [/etc], location: lcoal, schedules: []}
  - {name: etc, resource_type: files, sources: [/etc], location: offsite, schedules: []}
)"),
            (Lines{
                "haven.yaml:4:12: locations[2].name: another location is named 'local' (at line "
                "2) (fix: give each location its own name)",
                "haven.yaml:6:66: policies[0].location: no location is named 'lcoal' (fix: did "
                "you mean 'local'?)",
                "haven.yaml:7:12: policies[1].name: another policy is named 'etc' (at line 6) "
                "(fix: give each policy its own name)",
                "haven.yaml:7:66: policies[1].location: no location is named 'offsite' (fix: "
                "name one of the locations: local, remote)",
            }));
  EXPECT_EQ(check(R"(locations:
  - {name: "bad name", repository: /srv/a, password_file: @DIR@/pass}
  - {name: .hidden, repository: /srv/a, password_file: @DIR@/pass}
)"),
            (Lines{"haven.yaml:2:12: locations[0].name: must be 1 to 255 letters, digits, '.', '_' "
                   "or '-', not starting with '.' or '-', not 'bad name' (fix: a location's name "
                   "appears in URLs and file names: e.g. 'etc-daily')",
                   "haven.yaml:3:12: locations[1].name: must be 1 to 255 letters, digits, '.', '_' "
                   "or '-', not starting with '.' or '-', not '.hidden' (fix: a location's name "
                   "appears in URLs and file names: e.g. 'etc-daily')"}));
}

TEST_F(ConfigErrors, WhatIsBackedUpMustFitTheResourceType) {
  EXPECT_EQ(check_policies(R"(  - name: empty
    resource_type: files
    sources: []
    location: local
    schedules: []
  - name: relative
    resource_type: files
    sources: [etc, /srv]
    database: {pgdata: /pg}
    location: local
    schedules: []
  - name: pg-no-pgdata
    resource_type: database
    database: {conninfo: "host=db"}
    location: local
    schedules: []
  - name: pg-nothing
    resource_type: database
    sources: [/var/lib/postgresql]
    one_file_system: true
    location: local
    schedules: []
  - name: no-sources
    resource_type: files
    location: local
    schedules: []
)"),
            (Lines{
                "haven.yaml:6:14: policies[0].sources: is empty: a files policy needs something "
                "to back up (fix: list at least one absolute path, e.g. [/etc])",
                "haven.yaml:11:15: policies[1].sources[0]: must be an absolute path, not 'etc' "
                "(fix: write the whole path, e.g. /etc)",
                "haven.yaml:12:15: policies[1].database: applies to database policies; this one "
                "has resource_type: files (fix: remove database, or write resource_type: "
                "database)",
                "haven.yaml:17:15: policies[2].database.pgdata: required, but missing (fix: add "
                "the cluster's data directory, e.g. pgdata: /var/lib/postgresql/15/main)",
                "haven.yaml:20:5: policies[3].database: required, but missing (fix: add "
                "database: {pgdata: /var/lib/postgresql/15/main} (and conninfo if libpq's "
                "defaults do not reach the cluster))",
                "haven.yaml:22:14: policies[3].sources: does not apply: a database policy backs "
                "up database.pgdata (fix: remove sources)",
                "haven.yaml:23:22: policies[3].one_file_system: does not apply: a database "
                "policy backs up database.pgdata (fix: remove one_file_system)",
                "haven.yaml:26:5: policies[4].sources: required, but missing (fix: list the "
                "absolute paths the policy backs up, e.g. sources: [/etc])",
            }));
}

TEST_F(ConfigErrors, EncryptionCannotBeDisabledNorChanged) {
  EXPECT_EQ(check_policies(R"(  - name: etc
    resource_type: files
    sources: [/etc]
    location: local
    schedules: []
    encryption: {enabled: false, algorithm: AES-128-CBC}
)"),
            (Lines{
                "haven.yaml:9:27: policies[0].encryption.enabled: cannot be false: Haven "
                "repositories are always encrypted (AES-256-GCM, keys wrapped by the repository "
                "password) (fix: remove the encryption key, or write enabled: true)",
                "haven.yaml:9:45: policies[0].encryption.algorithm: cannot be 'AES-128-CBC': "
                "Haven encrypts every repository with AES-256-GCM (fix: remove algorithm, or "
                "write algorithm: AES-256-GCM)",
            }));
  // Written as the seeds write it, it is accepted.
  EXPECT_EQ(check_policies("  - {name: etc, resource_type: files, sources: [/etc], location: "
                           "local, schedules: [], encryption: {enabled: true, algorithm: "
                           "AES-256-GCM}}\n"),
            Lines{});
}

TEST_F(ConfigErrors, RetentionAndServerConsistency) {
  EXPECT_EQ(check(R"(server:
  shutdown: cancel
  shutdown_timeout_seconds: 30
  tls: {cert_file: @DIR@/cert.pem}
  catalog: catalog.db
locations:
  - {name: local, repository: /srv/backup, password_file: @DIR@/pass}
policies:
  - name: etc
    resource_type: files
    sources: [/etc]
    location: local
    schedules: []
    retention: {minCopies: 3, maxCopies: 60}
  - name: home
    resource_type: files
    sources: [/home]
    location: local
    schedules: []
    retention: {daily: 7, minCopies: 10, maxCopies: 5}
)"),
            (Lines{
                "haven.yaml:3:29: server.shutdown_timeout_seconds: applies to shutdown: finish; "
                "with shutdown: cancel running jobs are cancelled at once (fix: remove "
                "shutdown_timeout_seconds, or write shutdown: finish)",
                "haven.yaml:4:8: server.tls.key_file: required, but missing (fix: give both "
                "cert_file and key_file, or remove tls to serve plain HTTP)",
                "haven.yaml:4:20: server.tls.cert_file: '" + dir_.path() +
                    "/cert.pem' does not exist (fix: correct the path, or create the file (PEM) "
                    "it names)",
                "haven.yaml:5:12: server.catalog: must be an absolute path, not 'catalog.db' "
                "(fix: write the whole path, e.g. /var/lib/haven/catalog.db)",
                "haven.yaml:14:16: policies[0].retention: keeps nothing: every snapshot would be "
                "removed (fix: give at least one of days, last, hourly, daily, weekly, monthly or "
                "yearly, e.g. daily: 7 (minCopies and maxCopies only limit what those keep))",
                "haven.yaml:20:38: policies[1].retention.minCopies: is 10, more than maxCopies "
                "(5) (fix: make minCopies at most maxCopies)",
            }));
}

TEST_F(ConfigErrors, RepositoryAndStorageTypeMustAgree) {
  EXPECT_EQ(check(R"(locations:
  - {name: a, storage_type: s3, repository: /srv/a, password_file: @DIR@/pass}
  - {name: b, storage_type: gcp_storage, repository: "s3:bucket/x", password_file: @DIR@/pass}
  - {name: c, repository: backup, password_file: @DIR@/pass}
  - {name: d, storage_type: azure_blob, repository: "gs://bucket", password_file: @DIR@/pass}
  - {name: e, storage_type: s3, repository: "s3:https://storage.googleapis.com/b", password_env: X}
)"),
            (Lines{
                "haven.yaml:2:29: locations[0].storage_type: is s3, but repository '/srv/a' is of "
                "storage type on_premise (fix: write storage_type: on_premise, or a repository "
                "of storage type s3: s3:BUCKET/PREFIX or s3:https://HOST/BUCKET/PREFIX)",
                "haven.yaml:3:29: locations[1].storage_type: is gcp_storage, but repository "
                "'s3:bucket/x' is of storage type s3 (fix: write storage_type: s3, or a "
                "repository of storage type gcp_storage: "
                "s3:https://storage.googleapis.com/BUCKET/PREFIX (GCS through its "
                "S3-interoperable API, with an HMAC key in credentials))",
                "haven.yaml:4:27: locations[2].repository: must be an absolute path (or "
                "local:/path), s3:BUCKET/PREFIX, s3:https://HOST/BUCKET/PREFIX or "
                "azure:CONTAINER/PREFIX, not 'backup' (fix: write the location as the CLI's --repo "
                "takes it)",
                "haven.yaml:5:53: locations[3].repository: must be an absolute path (or "
                "local:/path), s3:BUCKET/PREFIX, s3:https://HOST/BUCKET/PREFIX or "
                "azure:CONTAINER/PREFIX, not 'gs://bucket' (fix: for storage type azure_blob "
                "write azure:CONTAINER/PREFIX)",
                "haven.yaml:6:98: locations[4].password_env: environment variable X is not set "
                "(or is empty) (fix: set it in the server's environment (systemd: Environment= "
                "or EnvironmentFile=), or use password_file)",
            }));
}

TEST_F(ConfigErrors, SeveralErrorsAtOnceAreAllReportedInDocumentOrder) {
  const std::string text = R"(server:
  listen: localhost
locations:
  - {name: local, repository: /srv/backup, password_file: @DIR@/missing}
policies:
  - name: etc
    resource_type: files
    sources: [/etc]
    location: local
    schedules: [{cron: "0 * * * *", strategy: incremental, timezone: Europe/Berlin}]
    retention: {days: 30, daily: seven}
    compression: medum
    encryption: {enabled: false}
)";
  Checked<Config> c = check_config(with_dir(text, dir_.path()), "haven.yaml", env_of({}));
  ASSERT_EQ(c.diagnostics.size(), 5u) << config_error(c.diagnostics).message();
  EXPECT_EQ(c.diagnostics[0].line, 2);
  EXPECT_EQ(c.diagnostics[0].path, "server.listen");
  EXPECT_EQ(c.diagnostics[1].line, 4);
  EXPECT_EQ(c.diagnostics[1].column, 59);
  EXPECT_EQ(c.diagnostics[1].path, "locations[0].password_file");
  EXPECT_EQ(c.diagnostics[2].line, 11);
  EXPECT_EQ(c.diagnostics[2].column, 34);
  EXPECT_EQ(c.diagnostics[2].path, "policies[0].retention.daily");
  EXPECT_EQ(c.diagnostics[2].message, "must be a whole number >= 0, not 'seven'");
  EXPECT_EQ(c.diagnostics[3].path, "policies[0].compression");
  EXPECT_EQ(c.diagnostics[3].fix, "did you mean 'medium'?");
  EXPECT_EQ(c.diagnostics[4].path, "policies[0].encryption.enabled");
  EXPECT_EQ(c.diagnostics[4].file, "haven.yaml");

  // As a Result: one Error whose message is every diagnostic, one per line.
  Result<Config> r = parse_config(with_dir(text, dir_.path()), "haven.yaml", env_of({}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument);
  EXPECT_EQ(r.error().message(), format_diagnostics(c.diagnostics));
  EXPECT_EQ(std::count(r.error().message().begin(), r.error().message().end(), '\n'), 4);
  EXPECT_EQ(r.error().message().substr(0, r.error().message().find('\n')),
            "haven.yaml:2:11: server.listen: must be HOST:PORT, not 'localhost' (fix: write it "
            "as 127.0.0.1:8420 (this host only), 0.0.0.0:8420 (every interface) or [::1]:8420)");
}

TEST_F(ConfigErrors, TheConfigurationFileItself) {
  const std::string missing = dir_.file("haven.yaml");
  Result<Config> r = load_config_file(missing, env_of({}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kNotFound);
  EXPECT_EQ(r.error().message(), missing + ": does not exist (fix: give the path of haven.yaml, "
                                           "or create it (README.md, haven.yaml))");
  Checked<Config> c = check_config_file(missing, env_of({}));
  EXPECT_EQ(lines_of(c.diagnostics), Lines{r.error().message()});

  Result<Config> d = load_config_file(dir_.path(), env_of({}));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), Error::Code::kInvalidArgument);
  EXPECT_EQ(d.error().message(), dir_.path() + ": is a directory, not a configuration file");

  // A file that loads names itself in its diagnostics.
  const std::string path = dir_.write("bad.yaml", "locations: 3\n");
  Result<Config> b = load_config_file(path, env_of({}));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().message(),
            path + ":1:12: locations: must be a list of locations, not '3' (fix: write each "
                   "location as an item '- name: ...')");
}

TEST(ConfigDiagnostic, FormatAndDidYouMean) {
  EXPECT_EQ((Diagnostic{"f.yaml", 3, 7, "a.b", "bad", "do this"}).format(),
            "f.yaml:3:7: a.b: bad (fix: do this)");
  EXPECT_EQ((Diagnostic{"", 0, 0, "retention.daily", "bad", ""}).format(), "retention.daily: bad");
  EXPECT_EQ((Diagnostic{"f.yaml", 0, 0, "", "is empty", ""}).format(), "f.yaml: is empty");
  EXPECT_EQ(diagnostic_at(SourceMark{"h.yaml", 2, 4, "x"}, "m").format(), "h.yaml:2:4: x: m");

  const std::vector<std::string> keys = {"retention", "schedules", "minCopies", "read-data"};
  EXPECT_EQ(did_you_mean("retension", keys), "retention");
  EXPECT_EQ(did_you_mean("schedule", keys), "schedules");
  EXPECT_EQ(did_you_mean("min_copies", keys), "minCopies");
  EXPECT_EQ(did_you_mean("MIN-COPIES", keys), "minCopies");
  EXPECT_EQ(did_you_mean("read_data", keys), "read-data");
  EXPECT_EQ(did_you_mean("colour", keys), std::nullopt);
  EXPECT_EQ(did_you_mean("", keys), std::nullopt);
  EXPECT_EQ(did_you_mean("x", {"y"}), std::nullopt);  // one letter is nobody's typo
}

}  // namespace
}  // namespace haven::config

namespace haven::config {
namespace {

// Cron expressions and zone names are checked by the schedule module, at their own line and
// column, in YAML and in the API's JSON alike.
TEST(ConfigSchedules, BadCronAndUnknownZonesAreReportedWhereTheyAre) {
  TempDir dir;
  dir.write("pass", "pw\n");
  const std::string text = R"(locations:
  - {name: local, repository: /srv/backup, password_file: @DIR@/pass}
policies:
  - name: etc
    resource_type: files
    sources: [/etc]
    location: local
    schedules:
      - {cron: "0 25 * * *", timezone: Europe/Berlin}
      - {cron: "0 2 30 2 *"}
      - {cron: "@daily", timezone: Mars/Olympus_Mons}
    retention: {daily: 7, timezone: Europe/Nowhere}
)";
  Checked<Config> c = check_config(with_dir(text, dir.path()), "haven.yaml", env_of({}));
  Lines got = lines_of(c.diagnostics);
  ASSERT_EQ(got.size(), 4u) << config_error(c.diagnostics).message();
  EXPECT_EQ(got[0].substr(0, got[0].find(": hour")), "haven.yaml:9:16: policies[0].schedules[0].cron");
  EXPECT_NE(got[0].find("hour field '25': must be 0-23"), std::string::npos) << got[0];
  EXPECT_EQ(got[1].substr(0, got[1].find(": ")), "haven.yaml:10:16");
  EXPECT_NE(got[1].find("never fires"), std::string::npos) << got[1];
  EXPECT_EQ(c.diagnostics[2].path, "policies[0].schedules[2].timezone");
  EXPECT_EQ(c.diagnostics[2].line, 11);
  EXPECT_NE(c.diagnostics[2].message.find("Mars/Olympus_Mons"), std::string::npos);
  EXPECT_EQ(c.diagnostics[3].path, "policies[0].retention.timezone");

  // The API's JSON: the same checks, JSON key paths.
  Result<Config> base = parse_config(
      with_dir("locations:\n  - {name: local, repository: /srv/backup, password_file: @DIR@/pass}\n",
               dir.path()),
      "haven.yaml", env_of({}));
  ASSERT_TRUE(base.ok()) << base.error().message();
  Checked<Policy> p = check_policy_json_text(
      R"({"name": "x", "resourceType": "files", "sources": ["/etc"], "location": "local",
          "schedules": [{"cron": "*/0 * * * *"}]})",
      base->locations);
  ASSERT_EQ(p.diagnostics.size(), 1u);
  EXPECT_EQ(p.diagnostics[0].path, "schedules[0].cron");
  EXPECT_NE(p.diagnostics[0].message.find("step must be 1-60, not 0"), std::string::npos)
      << p.diagnostics[0].message;
}

}  // namespace
}  // namespace haven::config

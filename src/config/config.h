// config/config.h — the model of haven.yaml, the server's configuration file, its loader, and
// the JSON form of a policy for the REST API.
//
// haven.yaml has three sections: `server` (how the server listens and behaves), `locations`
// (repositories: where backups go, with their password and credentials) and `policies` (what
// is backed up, when, where to, kept how long, and with which RPO/RTO). Every key, its type,
// its default and its range is documented on the model's field below; README's "haven.yaml"
// section shows a whole file.
//
// Loading checks everything it can without touching a repository or the network, and reports
// every problem it finds (not only the first) as a Diagnostic with file:line:column and the
// key path (config/diagnostic.h): YAML syntax, unknown keys (with a did-you-mean), wrong types,
// missing required keys, values outside their enumeration or range, duplicate names, a policy
// naming no location, paths that are not absolute, password and credential files that do not
// exist or cannot be read, environment variables that are not set. It does not validate cron
// expressions or time-zone names: the schedule module does, later, and reports with the marks
// kept here (Schedule::cron_mark, Schedule::timezone_mark, Retention::timezone_mark).
//
// Secrets (a location's password and credentials) are resolved while loading — files are read,
// named environment variables looked up through the caller's EnvLookup (the library never reads
// the environment itself) — and held as Secret, which prints and serialises as "***". No
// diagnostic and no to_json output ever contains a resolved value.
//
// Policies have a JSON form (camelCase keys mirroring the YAML: resourceType, retention,
// maxParallelJobs…) for the REST API. policy_from_json runs the very decoder haven.yaml's
// policies go through, so both give the same checks and the same messages; only the key paths
// differ ("retention.daily" instead of "policies[0].retention.daily").
//
// Thread-safety: the functions are reentrant; the model is a plain value.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config/diagnostic.h"
#include "config/secret.h"
#include "util/error.h"

namespace haven::config {

// Looks up an environment variable by name: its value, or nullopt when it is not set. An empty
// value counts as unset. The server passes one that reads its environment; tests pass a map.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// ---------------------------------------------------------------------------------------------
// Enumerations. name() gives each value's spelling in haven.yaml and in JSON.

// seed 004's storage_type_enum without 'hybrid' (a repository lives in one place; copies in
// other regions are replication's business).
// s3 azure_blob gcp_storage on_premise
enum class StorageType { kS3, kAzureBlob, kGcpStorage, kOnPremise };
// seed 004's resource_type_enum: the two kinds Haven backs up.
enum class ResourceType { kFiles, kDatabase };  // files database (PostgreSQL)
enum class Strategy { kFull, kIncremental, kDifferential };  // full incremental differential
enum class Compression { kNone, kLow, kMedium, kHigh };      // none low medium high
enum class SlaTier { kCritical, kHigh, kStandard, kLower };  // CRITICAL HIGH STANDARD LOWER
enum class TimeUnit { kSeconds, kMinutes, kHours, kDays };   // seconds minutes hours days
enum class CatchUp { kNone, kOnce };                         // none once
enum class Overlap { kSkip, kQueue };                        // skip queue
enum class Priority { kNormal, kHigh };                      // normal high
enum class IntegrityCheck { kNone, kQuick, kReadData };      // none quick read-data
enum class ShutdownMode { kCancel, kFinish };                // cancel finish
enum class ReplicationMode { kAsync, kSync };                // async sync
enum class QuorumLoss { kFail, kDegrade };                   // fail degrade

std::string_view name(StorageType v);
std::string_view name(ResourceType v);
std::string_view name(Strategy v);
std::string_view name(Compression v);
std::string_view name(SlaTier v);
std::string_view name(TimeUnit v);
std::string_view name(CatchUp v);
std::string_view name(Overlap v);
std::string_view name(Priority v);
std::string_view name(IntegrityCheck v);
std::string_view name(ShutdownMode v);
std::string_view name(ReplicationMode v);
std::string_view name(QuorumLoss v);

// ---------------------------------------------------------------------------------------------
// server:

struct TlsFiles {
  std::string cert_file;  // cert_file: PEM certificate chain; absolute, readable
  std::string key_file;   // key_file: PEM private key; absolute, readable
  bool operator==(const TlsFiles&) const = default;
};

struct ServerSettings {
  // listen: "host:port" (an IPv6 address in brackets: "[::1]:8420"); port 1 to 65535.
  // Default 127.0.0.1:8420 (loopback only: listening wider is a decision to write down).
  std::string listen_host = "127.0.0.1";
  int listen_port = 8420;
  // catalog: the operations database (SQLite) file; absolute. Default
  // /var/lib/haven/catalog.db.
  std::string catalog = "/var/lib/haven/catalog.db";
  // tls: {cert_file, key_file}, both or neither. Default: none (plain HTTP).
  std::optional<TlsFiles> tls;
  // max_parallel_jobs: jobs (of all policies) running at once; 1 to 256. Default 2.
  int max_parallel_jobs = 2;
  // shutdown: what SIGTERM does with running jobs. finish (default): stop starting jobs, let
  // the running ones finish for up to shutdown_timeout_seconds, then cancel what is left.
  // cancel: cancel them at once (each stops at its next cancellation point).
  ShutdownMode shutdown = ShutdownMode::kFinish;
  // shutdown_timeout_seconds: 1 to 86400, default 300; only with shutdown: finish.
  int shutdown_timeout_seconds = 300;
  // events_retention_days: how long the catalog keeps job events; 1 to 36500. Default 90.
  int events_retention_days = 90;
  // job_nice: the CPU niceness of the threads that run jobs (backups, restores, checks), 0 to
  // 19; default 10, so that the API and the scheduler answer at once while a backup keeps the
  // cores busy (the backup still gets every cycle nothing else wants).
  int job_nice = 10;
  // memory_limit_mib: what the jobs running at once may hold together, in MiB; 0 (default):
  // no limit (each job at its engine's defaults, ~40-80 MiB). Each of max_parallel_jobs gets
  // an equal share and fits its workers, packs and index into it (repo/memory.h), so the
  // limit must give each job at least kMinJobMemoryMib.
  int memory_limit_mib = 0;
  static constexpr int kMinJobMemoryMib = 48;  // repo::MemoryBudget::kMinimum (jobs checks it)

  SourceMark mark;  // the `server` mapping
  bool operator==(const ServerSettings&) const = default;
};

// ---------------------------------------------------------------------------------------------
// locations[]:

// A secret and where it came from: {file: PATH} (the file's first line) or {env: NAME}.
struct SecretRef {
  enum class Kind { kFile, kEnv };
  Kind kind = Kind::kFile;
  std::string source;  // the file's path or the variable's name (not secret)
  Secret value;        // resolved while loading; never empty
  bool operator==(const SecretRef&) const = default;
};

// rpo, rto: {value: N, unit: seconds|minutes|hours|days}; value 1 to 100000.
struct Objective {
  int64_t value = 0;
  TimeUnit unit = TimeUnit::kMinutes;
  int64_t seconds() const;
  bool operator==(const Objective&) const = default;
};

// secondary_regions[]: a copy of a location's repository in another region (seed 004's
// backup_storage_locations.secondary_regions; replication/replication.h keeps it in step). The
// copy is byte for byte, so it opens with the location's own password.
struct SecondaryRegion {
  // region: required; a label, unique within the location and not the primary_region; letters,
  // digits, '.', '_', '-'.
  std::string region;
  // repository: required; as the location's (a path, s3:…, azure:…), and not the primary's or
  // another region's.
  std::string repository;
  StorageType storage_type = StorageType::kOnPremise;  // from repository
  // settings, credentials: as the location's, for this region's backend (each region has its
  // own credentials; none are inherited from the primary).
  std::map<std::string, std::string> settings;
  std::map<std::string, SecretRef> credentials;

  SourceMark mark;
  bool operator==(const SecondaryRegion&) const = default;
  std::optional<std::string> backend_setting(const std::string& name) const;
};

// replication: how the secondary regions are kept in step. Given only with secondary_regions;
// secondary_regions without it replicate async with the defaults.
struct Replication {
  // mode: async (default): the server copies each new object to every region as soon as it
  // lands, and lists the primary every interval_seconds for objects other processes wrote.
  // sync: a backup and a wal-push succeed only once the primary and `quorum` secondary regions
  // hold every object they wrote.
  ReplicationMode mode = ReplicationMode::kAsync;
  // rpo: {value, unit}: how far behind a region may fall (the age of its oldest object not yet
  // copied) before replication:rpo-violation; warning from 80 %. Default 15 minutes.
  Objective rpo{15, TimeUnit::kMinutes};
  // quorum: sync only; secondary regions that must hold each object, 1 to their number.
  // Default 1.
  int quorum = 1;
  // on_quorum_loss: sync only; fail (default): the operation fails and nothing of it becomes
  // visible; degrade: it succeeds on the primary and the regions that have it, the others
  // catch up asynchronously, and replication:region-failed raises an alert.
  QuorumLoss on_quorum_loss = QuorumLoss::kFail;
  // interval_seconds: how often the server lists the primary for objects it did not see being
  // written (other processes, PostgreSQL's archive_command); 1 to 86400, default 30.
  int interval_seconds = 30;

  SourceMark mark;
  bool operator==(const Replication&) const = default;
};

// One repository (seed 004's backup_storage_locations).
struct Location {
  std::string name;         // name: required, unique; letters, digits, '.', '_', '-' (≤ 255)
  std::string description;  // description: default ""
  // storage_type: s3 | azure_blob | gcp_storage | on_premise; default: from `repository`
  // (s3:https://storage.googleapis.com/… gcp_storage, s3:… s3, azure:… azure_blob, a path
  // on_premise). When given it must agree with `repository`.
  StorageType storage_type = StorageType::kOnPremise;
  // repository: required; as the CLI's --repo takes it: an absolute path or local:/path
  // (on_premise), s3:bucket/prefix or s3:https://host/bucket/prefix (s3),
  // s3:https://storage.googleapis.com/bucket/prefix (gcp_storage: GCS's S3-interoperable API
  // with an HMAC key), azure:container/prefix (azure_blob).
  std::string repository;
  // password_file: PATH (its first line, absolute path) or password_env: NAME — exactly one;
  // required: every Haven repository is encrypted.
  SecretRef password;
  std::string primary_region;  // primary_region: a label (seed 004); default ""
  // secondary_regions: copies of the repository elsewhere; default none.
  std::vector<SecondaryRegion> secondary_regions;
  // replication: with secondary_regions; default async (see Replication).
  Replication replication;
  // settings: plain, non-secret backend settings, by the names storage/backend.h documents
  // for the location's kind (HAVEN_S3_REGION, HAVEN_S3_PATH_STYLE, AZURE_STORAGE_ACCOUNT…).
  // Secret names (keys, tokens, connection strings) are refused here: they go in credentials.
  // on_premise locations take none. Default: none.
  std::map<std::string, std::string> settings;
  // credentials: NAME: {env: VARIABLE} | {file: PATH}, by the same names (AWS_ACCESS_KEY_ID,
  // AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN,
  // AZURE_STORAGE_CONNECTION_STRING, or any setting name). Default: none (then the backend
  // finds nothing: S3 needs keys or a profile file, Azure a key, SAS or connection string).
  std::map<std::string, SecretRef> credentials;
  // capacity_gb: the space the repository may use, in GB (10^9 bytes), for the storage-capacity
  // health check; default: a local disk's own size (statvfs), none for object storage.
  std::optional<int64_t> capacity_gb;

  SourceMark mark;  // the location's mapping
  bool operator==(const Location&) const = default;

  // The backend setting `name` (storage::BackendSettings::lookup): from settings, then from
  // credentials (revealed), else nullopt. The server builds each repository's
  // BackendSettings from this, so several repositories with different credentials coexist.
  std::optional<std::string> backend_setting(const std::string& name) const;
  // The primary region's label: primary_region, or "primary" when none is given.
  std::string primary_region_name() const {
    return primary_region.empty() ? "primary" : primary_region;
  }
  // The secondary region labelled `region`, or nullptr.
  const SecondaryRegion* find_region(std::string_view region) const;
};

// The setting names storage/backend.h documents for a kind of location (none for on_premise),
// and whether each holds a secret (then it may only come from credentials).
struct BackendSettingName {
  std::string_view name;
  bool secret;
};
std::vector<BackendSettingName> backend_setting_names(StorageType type);

// ---------------------------------------------------------------------------------------------
// policies[]:

// schedules[]: one cron schedule of a policy (seed 004: schedule_cron, timezone, backup_type).
struct Schedule {
  std::string cron;  // cron: required; 5 fields; checked by the schedule module, not here
  Strategy strategy = Strategy::kIncremental;  // strategy: default incremental
  std::string timezone = "UTC";  // timezone: an IANA name or UTC; default UTC (seed 004)
  SourceMark mark;           // the schedule's mapping
  SourceMark cron_mark;      // its cron value: "policies[0].schedules[1].cron"
  SourceMark timezone_mark;  // its timezone value (the schedule's mapping when defaulted)
  bool operator==(const Schedule&) const = default;
};

// retention: which snapshots the policy keeps, as ops::ForgetRequest (ops/forget.h) takes them.
// Absent: the seeds' defaults, daily 7, weekly 4, monthly 12, yearly 7. Given: only what it
// says (every count defaults to 0 = off); it must keep something (a count or days). Counts are
// whole numbers >= 0.
//   days N      → ForgetRequest::keep_within = "<N>d" (keep_within()): every snapshot within N
//                 days of the group's newest one; 0 to 36500.
//   minCopies N → ForgetRequest::min_copies: keep the newest removed ones until N are kept.
//   maxCopies N → ForgetRequest::max_copies: never more than N kept (the oldest kept beyond
//                 the N newest go); 0 = no cap. minCopies may not exceed maxCopies.
//   last N      → ForgetRequest::keep_last
//   hourly, daily, weekly, monthly, yearly N → ForgetRequest::keep_hourly … keep_yearly
//   timezone    → ForgetRequest::timezone (the zone hours, days… are counted in); default:
//                 the first schedule's timezone, else UTC.
// Not in the model: ForgetRequest::keep_tags and group_by (the runner decides how a policy's
// snapshots are grouped), dry_run and prune.
// For database policies the same rules apply to base backups (they are snapshots); `days` is
// also the natural point-in-time window for ops::PgRetainRequest::window.
struct Retention {
  int days = 0;
  int min_copies = 0;
  int max_copies = 0;
  int last = 0;
  int hourly = 0, daily = 0, weekly = 0, monthly = 0, yearly = 0;
  std::string timezone = "UTC";
  // Its value's mark; when defaulted, the first schedule's timezone mark (the zone it took),
  // else the policy's mapping (path "….retention.timezone").
  SourceMark timezone_mark;
  bool operator==(const Retention&) const = default;

  // "<days>d", or "" when days is 0 (ForgetRequest::keep_within).
  std::string keep_within() const;
};


// seed 003's SLA tiers, as presets for rpo and rto:
//   CRITICAL RPO 1 minute, RTO 15 minutes   HIGH  RPO 5 minutes, RTO 1 hour
//   STANDARD RPO 15 minutes, RTO 2 hours    LOWER RPO 1 hour, RTO 24 hours
Objective tier_rpo(SlaTier tier);
Objective tier_rto(SlaTier tier);

// database: the PostgreSQL cluster a database policy backs up (ops::PgBackupRequest).
struct PgSource {
  std::string pgdata;    // pgdata: required; the data directory, absolute
  // conninfo: libpq connection string; default "" (libpq's defaults). A password in it is
  // refused (it would sit in haven.yaml and in JSON): use ~/.pgpass or PGPASSFILE.
  std::string conninfo;
  bool operator==(const PgSource&) const = default;
};

// One backup policy (seed 004's backup_policies).
struct Policy {
  std::string name;         // name: required, unique; letters, digits, '.', '_', '-' (≤ 255)
  std::string description;  // description: default ""
  ResourceType resource_type = ResourceType::kFiles;  // resource_type: required
  // sources: files policies: required, not empty; absolute paths (BackupRequest::paths).
  std::vector<std::string> sources;
  // excludes: files policies: globs (BackupRequest::excludes); default none.
  std::vector<std::string> excludes;
  // one_file_system: files policies: default false (BackupRequest::one_file_system).
  bool one_file_system = false;
  // database: database policies: required (ops::PgBackupRequest's pgdata and conninfo).
  std::optional<PgSource> database;
  std::string location;  // location: required; the name of a location
  // schedules: required; a list, which may be empty ([]: the policy runs only when started
  // through the API or the CLI).
  std::vector<Schedule> schedules;
  Retention retention;   // retention: see Retention
  // compression: none | low | medium | high. Default: the operation's own — files: the
  // repository's level (set at init, medium by default); database: low
  // (PgBackupRequest::compression).
  std::optional<Compression> compression;
  // encryption: {enabled: true, algorithm: AES-256-GCM} may be written for the seeds' sake;
  // Haven repositories are always encrypted with AES-256-GCM, so nothing else is accepted and
  // nothing is stored.
  // sla_tier: CRITICAL | HIGH | STANDARD | LOWER; default none. Presets rpo and rto; an
  // explicit rpo or rto overrides the tier's.
  std::optional<SlaTier> sla_tier;
  // rpo / rto: the objectives monitoring holds the policy to; default: the tier's, or none
  // (then the policy has no RPO/RTO status).
  std::optional<Objective> rpo, rto;
  // max_parallel_jobs: worker threads of one run of this policy (BackupRequest::threads,
  // PgBackupRequest::threads; seed 004's per-policy parallelism — one policy never runs twice
  // at once, see overlap); 1 to 256, default 2 (seed 004).
  int max_parallel_jobs = 2;
  // bandwidth_limit_mbps: megabits per second for the run's uploads and downloads together
  // (the CLI's --bandwidth-limit-mbps); 1 to 1000000; default none (unlimited).
  std::optional<int> bandwidth_limit_mbps;
  bool is_active = true;  // is_active: default true; an inactive policy's schedules do not fire
  // catch_up: what the scheduler does with fire times missed while the server was down:
  // none (skip them) or once (default: one run for all of them).
  CatchUp catch_up = CatchUp::kOnce;
  // overlap: when a fire time comes while the policy's previous run is still going: skip
  // (default: that fire time is dropped, with an event) or queue (run after it; at most one
  // waiting).
  Overlap overlap = Overlap::kSkip;
  int retry_count = 2;             // retry_count: retries of a failed run, 0 to 100; default 2
  // retry_backoff_seconds: wait before the first retry, doubling per retry; 1 to 86400,
  // default 30.
  int retry_backoff_seconds = 30;
  Priority priority = Priority::kNormal;  // priority: normal (default) | high: queued first
  // integrity_check: after each backup: none, quick (default: check's structure pass, a
  // metadata check) or read-data (also decrypt and re-hash every blob).
  IntegrityCheck integrity_check = IntegrityCheck::kQuick;
  // tags: added to every snapshot (BackupRequest::tags); default none; not empty, no ','.
  std::vector<std::string> tags;

  SourceMark mark;  // the policy's mapping
  bool operator==(const Policy&) const = default;
};

// ---------------------------------------------------------------------------------------------
// monitoring: (monitor/ uses it; README "Monitoring" shows a whole section)

// channels[].type
enum class ChannelKind { kWebhook, kSlack, kPagerDuty, kEmail, kCommand };
// monitors[].type: seed 004's four and Haven's four.
enum class MonitorKind {
  kBackupSuccess,
  kStorageCapacity,
  kRestoreCapability,
  kIntegrityCheck,
  kRpo,
  kMissedSchedule,
  kBackupFailureRate,
  kReplicationLag,
  kDrDrill
};
std::string_view name(ChannelKind v);  // webhook slack pagerduty email command
std::string_view name(MonitorKind v);  // backup_success ... replication_lag

// One place alerts go (monitor/channels.h sends them).
struct AlertChannel {
  std::string name;  // name: required, unique
  ChannelKind type = ChannelKind::kWebhook;  // type: required
  // url: webhook, slack (required), pagerduty (default the Events API v2 endpoint). A plain
  // string, or {env: VARIABLE} / {file: PATH} when it holds a token (Slack's do).
  Secret url;
  // routing_key: pagerduty (required): {env: VARIABLE} or {file: PATH}, never in clear.
  Secret routing_key;
  // email: smtp_url (required: smtp://HOST:PORT or smtps://HOST:PORT), starttls (default
  // true: refuse to send or authenticate in clear), ca_file (absolute; default the system's
  // CAs), username and password ({env}/{file}; both or neither), from and to (required).
  std::string smtp_url;
  bool starttls = true;
  std::string ca_file;
  std::string username;
  Secret password;
  std::string from;
  std::vector<std::string> to;
  // command: argv (required, not empty); the notification's JSON on its stdin.
  std::vector<std::string> command;
  int timeout_seconds = 10;  // timeout_seconds: per attempt, 1 to 600; default 10
  SourceMark mark;
  bool operator==(const AlertChannel&) const = default;
};

// One step of an escalation: after `after_minutes` unacknowledged, notify `channels` too.
struct EscalationStep {
  int after_minutes = 0;  // 1 to 10080
  std::vector<std::string> channels;
  bool operator==(const EscalationStep&) const = default;
};

// One monitor (seed 004's backup_monitoring). What `warning` and `critical` measure depends on
// the type (defaults in brackets):
//   backup_success       consecutive failed runs of the policy [1, 2]
//   rpo                  the policy's RPO now, in percent of its target [80, 100]
//   missed_schedule      minutes since a fire time with no run started [5, 60]
//   backup_failure_rate  percent of the last `window` runs that failed [20, 50]
//   storage_capacity     percent of the location's capacity used [80, 90]
//   restore_capability   days since a restore or validation of the policy's backups last
//                        succeeded [30, 90]; the newest snapshot that cannot be read: critical
//   integrity_check      days since the policy's integrity check last passed [2, 7]; a failed
//                        check: critical
//   replication_lag      seconds a secondary region lags [300, 900]: unknown until the
//                        location has secondary regions (replication)
//   dr_drill             days a plan's drill is overdue (past its last successful drill, or
//                        its creation, plus test_frequency_days) [1, 14]; and, as its own
//                        warning, a drill whose RTO is more than 20 % worse than the median of
//                        the five before it. `plan` names one plan; without it, every active
//                        plan drilled on schedule.
// A warning threshold above the critical one is refused.
struct Monitor {
  std::string name;  // name: required, unique
  MonitorKind type = MonitorKind::kBackupSuccess;  // type: required
  // policy: the policy watched (required by every type but storage_capacity and
  // replication_lag, which take location instead).
  std::string policy;
  std::string location;
  std::string plan;  // dr_drill: the plan watched; "" every plan drilled on schedule
  int check_frequency_minutes = 5;  // 1 to 1440; default 5
  std::optional<double> warning, critical;  // >= 0; default: the type's
  int window = 10;  // backup_failure_rate: the runs looked at, 1 to 1000; default 10
  std::vector<std::string> channels;  // channels: notified at once; names of channels
  // escalation: [{after_minutes, channels}], increasing after_minutes: while the alert stays
  // unacknowledged, each step's channels are notified once it is that old.
  std::vector<EscalationStep> escalation;
  bool is_active = true;  // is_active: default true
  SourceMark mark;
  bool operator==(const Monitor&) const = default;

  double warning_or_default() const;
  double critical_or_default() const;
};

struct MonitoringSettings {
  // health_check_minutes: how often each location's health is checked (reachable, writable,
  // locks, capacity); 1 to 1440, default 5 (seed 003).
  int health_check_minutes = 5;
  // read_data_days: the health checks read and verify 1/read_data_days of each repository's
  // packs a day (check --read-data-subset K/N), so all of it every read_data_days days;
  // 0 = never; 0 to 3650, default 30.
  int read_data_days = 30;
  // restore_mbps: the restore throughput (MB/s) an RTO estimate assumes before a restore from
  // the location was measured; 1 to 100000, default 100.
  int restore_mbps = 100;
  std::vector<AlertChannel> channels;
  std::vector<Monitor> monitors;
  SourceMark mark;
  bool operator==(const MonitoringSettings&) const = default;

  const AlertChannel* find_channel(std::string_view name) const;
};

// ---------------------------------------------------------------------------------------------
// dr_plans[]: disaster-recovery plans (seed 004's disaster_recovery_plans, seed 001's
// RecoveryConfig and ValidationStep). dr/ runs them: a drill into a sandbox (temporary
// directories and free ports), or a real recovery. README "Disaster recovery" shows a whole plan.
//
// Strings in steps and checks may use variables, replaced when the step runs:
//   ${port}         a free TCP port chosen for this step (its ${STEP.port})
//   ${STEP.path}    what step STEP restored into: a directory (restore_files) or a data
//                   directory (restore_postgres)
//   ${STEP.port}    the port of STEP (restore_postgres: the restored cluster's; a command: its
//                   ${port})
//   ${STEP.host}    restore_postgres: the directory of the cluster's Unix socket
//   ${STEP.conninfo} restore_postgres: "host=… port=…" for libpq
//   ${sandbox}      the run's own directory (a drill's sandbox)
// A step may only name steps it depends on, directly or not (so that they have run).

enum class PlanType { kHotSite, kWarmSite, kColdSite, kCloudFailover, kDataOnly };
enum class PlanPriority { kCritical, kHigh, kMedium, kLow };  // critical high medium low
std::string_view name(PlanType v);  // hot_site warm_site cold_site cloud_failover data_only
std::string_view name(PlanPriority v);

// One health check (seed 001's HealthCheck): exactly one of
//   {http: URL, expect_status: 200, expect_body: TEXT}  passes on that status (and text in the
//                                                       body, if given)
//   {tcp: "HOST:PORT"}                                  passes when a connection opens
//   {sql: QUERY, conninfo: "…", expect: VALUE}          passes when the first column of the
//        first row is VALUE, or satisfies "> N", ">= N", "< N", "<= N", "!= V", "= V"
//   {checksum: STEP}                                    passes when what STEP restored
//        (restore_files) is byte for byte what the snapshot holds
//   {command: "shell command"}                          passes on exit status 0
struct HealthCheck {
  enum class Kind { kHttp, kTcp, kSql, kChecksum, kCommand };
  Kind kind = Kind::kHttp;
  std::string target;       // the URL, HOST:PORT, query, step name or command
  int expect_status = 200;  // http: 100 to 599
  std::string expect_body;  // http: text the body must contain; "" any
  std::string conninfo;     // sql: libpq connection string (no password: use PGPASSFILE)
  std::string expect;       // sql: required
  SourceMark mark;
  bool operator==(const HealthCheck&) const = default;
};
std::string describe(const HealthCheck& check);  // "http http://…/ → 200", for reports

// A validation (seed 001's ValidationStep): `checks` are tried together until at least
// `threshold` of them pass at once, for up to `timeout` seconds.
struct ValidationStep {
  std::string name;                 // name: required, unique within the plan
  std::vector<HealthCheck> checks;  // checks: required, not empty
  int threshold = 0;                // threshold: 1 to the number of checks; default all of them
  int timeout_seconds = 60;         // timeout: seconds, 1 to 86400; default 60
  SourceMark mark;
  bool operator==(const ValidationStep&) const = default;
};

// One recovery step: exactly one of restore_files, restore_postgres, command, sql, checksum,
// switch.
struct PlanStep {
  enum class Kind { kRestoreFiles, kRestorePostgres, kCommand, kSql, kChecksum, kSwitch };
  std::string name;  // name: required, unique within the plan; as a policy's name
  Kind kind = Kind::kCommand;
  std::vector<std::string> depends_on;  // depends_on: steps that must succeed first
  int timeout_seconds = 3600;           // timeout: seconds, 1 to 604800; default 3600
  // restore_files: {policy, snapshot: latest | ID | prefix, at: TIME, target: DIR, include: […]}
  //   a files policy's snapshot (snapshot, default latest; or the newest at or before `at`);
  //   target: where a real recovery restores (absolute; default a directory of the run's).
  //   A drill always restores into its sandbox.
  // restore_postgres: {policy, time: TIME (default: latest), target: PGDATA, port: N}
  //   point-in-time recovery of a database policy, started and promoted; target and port are
  //   where a real recovery puts it (default a directory of the run's and ${port}). A drill
  //   always uses its sandbox and a free port.
  std::string policy;
  std::string snapshot = "latest";
  std::string at;    // restore_files: a time (RFC 3339 or 'YYYY-MM-DD HH:MM[:SS]')
  std::string time;  // restore_postgres: the recovery target time; "" latest
  std::string target;
  int port = 0;
  std::vector<std::string> includes;
  // command: "shell command" (sh -c), in the run's directory. Without `wait` it must exit 0
  // within the timeout. With wait: {http|tcp|sql…, timeout: S} it is a service: started, kept
  // running until the run ends, and done once its check passes (within wait's timeout).
  // switch: {command: "…", kind: dns | traffic}: the DNS or traffic switch, a command hook;
  // a drill never runs it (it is recorded as skipped), a real recovery does.
  std::string command;
  std::optional<HealthCheck> wait;
  int wait_timeout_seconds = 60;
  std::string switch_kind;  // dns | traffic
  // sql / checksum: a check (as validation's) that must pass once, as a step.
  std::optional<HealthCheck> check;
  SourceMark mark;
  bool operator==(const PlanStep&) const = default;
};
std::string_view name(PlanStep::Kind v);  // restore_files restore_postgres command sql checksum switch

struct DrPlan {
  std::string name;         // name: required, unique; as a policy's name
  std::string description;  // description: default ""
  PlanType plan_type = PlanType::kDataOnly;       // plan_type: default data_only
  PlanPriority priority = PlanPriority::kMedium;  // priority: default medium
  Objective rto{4, TimeUnit::kHours};     // rto: default 4 hours (seed 004)
  Objective rpo{60, TimeUnit::kMinutes};  // rpo: default 60 minutes (seed 002's checklist)
  // steps: required, not empty; depends_on makes them a graph without cycles (a cycle is
  // refused, naming it). Steps whose dependencies are done run in parallel.
  std::vector<PlanStep> steps;
  // prerequisites: validations run before any step (a real recovery stops if one fails);
  // validation: after the steps (post-recovery validation): all must pass for success.
  std::vector<ValidationStep> prerequisites;
  std::vector<ValidationStep> validation;
  std::vector<std::string> required_personnel;  // required_personnel: names; default none
  // test_frequency_days: the server drills the plan this often, 0 (never) to 3650; default 90.
  int test_frequency_days = 90;
  // approval: {required: true|false}: a real recovery (dr execute) waits for a second
  // principal's approval unless false. Default true. Drills never wait.
  bool approval_required = true;
  bool is_active = true;  // is_active: default true; an inactive plan is not drilled on schedule
  SourceMark mark;
  bool operator==(const DrPlan&) const = default;

  const PlanStep* find_step(std::string_view step) const;
};

// failover[]: seed 000's FailoverConfig. The server probes the primary every
// health_check_interval seconds and declares it failed after exactly failure_threshold
// consecutive failed probes (a success resets the count); then, with auto_failover, it fails
// over at once, else it waits for an operator (haven dr failover, POST
// /api/disaster-recovery/failover/{name}). A lease in the repository's storage (a create-only
// object) makes sure only one region acts.
enum class FailoverMode { kActivePassive, kActiveActive, kPilotLight, kWarmStandby };
std::string_view name(FailoverMode v);  // active_passive active_active pilot_light warm_standby

// warm_standby: the standby cluster Haven keeps in this region, replaying WAL from the archive
// (standby.signal, restore_command = haven wal-fetch); failover promotes it.
struct Standby {
  std::string policy;          // policy: required; a database policy (its base backups and WAL)
  std::string data_directory;  // data_directory: required, absolute; created by Haven
  int port = 0;                // port: required, 1 to 65535
  bool operator==(const Standby&) const = default;
};

struct Failover {
  std::string name;  // name: required, unique
  FailoverMode mode = FailoverMode::kActivePassive;  // mode: required
  bool auto_failover = false;                        // auto_failover: default false
  int health_check_interval_seconds = 10;  // health_check_interval: seconds, 1 to 3600; default 10
  int failure_threshold = 3;               // failure_threshold: 1 to 100; default 3
  HealthCheck probe;  // probe: required; the primary's health check (http, tcp, sql or command)
  // regions: required, at least two labels, the primary's first; region: this server's own,
  // one of them (default the second: where the standby or the recovery runs).
  std::vector<std::string> regions;
  std::string region;
  // plan: a dr_plans name run as the recovery on failover (required by pilot_light and
  // active_passive; after the promotion for warm_standby). Runs without approval: automatic
  // failover was decided when this was written.
  std::string plan;
  std::optional<Standby> standby;  // standby: required by warm_standby
  // lease_location: the location whose storage holds the lease; default the standby policy's
  // location, else the first location.
  std::string lease_location;
  std::string dns_command;            // dns: {command: "…"}: run after failing over
  std::vector<std::string> channels;  // channels: alert channels told of a failed primary
  SourceMark mark;
  bool operator==(const Failover&) const = default;
};

// ---------------------------------------------------------------------------------------------
// The whole file.

struct Config {
  std::string file;  // the file name given to the loader
  ServerSettings server;           // server: optional (every key has a default)
  std::vector<Location> locations;  // locations: required, at least one
  std::vector<Policy> policies;     // policies: optional, default none (the API adds more)
  MonitoringSettings monitoring;    // monitoring: optional
  std::vector<DrPlan> dr_plans;     // dr_plans: optional, default none (the API adds more)
  std::vector<Failover> failover;   // failover: optional, default none

  const Location* find_location(std::string_view name) const;
  const Policy* find_policy(std::string_view name) const;
  const DrPlan* find_plan(std::string_view name) const;
  bool operator==(const Config&) const = default;
};

// The outcome of checking a document: `diagnostics` empty means `value` is valid. When there
// are diagnostics, `value` holds what could be read and must not be used.
template <typename T>
struct Checked {
  T value;
  std::vector<Diagnostic> diagnostics;
  bool ok() const { return diagnostics.empty(); }
};

// Reads and checks haven.yaml at `path` (diagnostics name the file as `path`). Password and
// credential files are read and `env` consulted for the variables the file names.
// `haven config check` prints every diagnostic and exits non-zero when there is one.
Checked<Config> check_config_file(const std::string& path, const EnvLookup& env);
// The same for text already read; `file_name` is what diagnostics call it.
Checked<Config> check_config(const std::string& text, const std::string& file_name,
                             const EnvLookup& env);

// The same as Results: the Config, or config_error(diagnostics) — kInvalidArgument whose
// message is every diagnostic, one per line; a configuration file that cannot be read at all
// fails with errno_error's code (kNotFound, kPermissionDenied…).
Result<Config> load_config_file(const std::string& path, const EnvLookup& env);
Result<Config> parse_config(const std::string& text, const std::string& file_name,
                            const EnvLookup& env);

// ---------------------------------------------------------------------------------------------
// JSON (nlohmann): `nlohmann::json j = policy;` and so on. Keys are camelCase; secrets show as
// "***" next to where they come from ({"env": "PROD_KEY_ID", "value": "***"}).
//
// A policy's JSON mirrors its YAML:
//   {"name", "description", "resourceType", "sources", "excludes", "oneFileSystem" (files),
//    "database": {"pgdata", "conninfo"} (database), "location",
//    "schedules": [{"cron", "strategy", "timezone"}],
//    "retention": {"days", "minCopies", "maxCopies", "last", "hourly", "daily", "weekly",
//                  "monthly", "yearly", "timezone"},
//    "compression" (when set), "encryption": {"enabled": true, "algorithm": "AES-256-GCM"},
//    "slaTier", "rpo", "rto" ({"value", "unit"}; each when set), "maxParallelJobs",
//    "bandwidthLimitMbps" (when set), "isActive", "catchUp", "overlap", "retryCount",
//    "retryBackoffSeconds", "priority", "integrityCheck", "tags"}
// policy_from_json(to_json(p)) gives p back.
void to_json(nlohmann::json& j, const Policy& policy);
void to_json(nlohmann::json& j, const Location& location);
void to_json(nlohmann::json& j, const ServerSettings& server);
void to_json(nlohmann::json& j, const Config& config);  // {"server", "locations", "policies"}

// Decodes and checks a policy's JSON exactly as haven.yaml's policies are checked (the same
// decoder), `locations` being those its "location" may name. Diagnostics carry JSON key paths
// ("retention.daily") and no file or position.
Checked<Policy> check_policy_json(const nlohmann::json& json,
                                  const std::vector<Location>& locations);
// The same from a request body: text that is not JSON gives one diagnostic saying where.
Checked<Policy> check_policy_json_text(std::string_view text,
                                       const std::vector<Location>& locations);
// A monitor's JSON as the API receives it (camelCase keys mirroring the YAML: name, type,
// policy, location, checkFrequencyMinutes, warning, critical, window, channels, escalation
// [{afterMinutes, channels}], isActive), checked against the configuration's policies (`policies`:
// their names, the API's included) and channels.
Checked<Monitor> check_monitor_json(const nlohmann::json& json, const Config& config,
                                    const std::vector<std::string>& policies);
void to_json(nlohmann::json& j, const Monitor& monitor);
void to_json(nlohmann::json& j, const AlertChannel& channel);  // secrets as "***"

// A DR plan's JSON as the API receives it (camelCase keys mirroring the YAML: name,
// description, planType, priority, rto, rpo, steps [{name, dependsOn, timeout, restoreFiles:
// {policy, snapshot, at, target, include}, restorePostgres: {policy, time, target, port}, command,
// wait, switch: {command, kind}, sql, checksum}], prerequisites, validation [{name, checks,
// threshold, timeout}], requiredPersonnel, testFrequencyDays, approval: {required}, isActive),
// checked against the configuration's policies (`policies`: the API's included).
Checked<DrPlan> check_plan_json(const nlohmann::json& json, const std::vector<Policy>& policies);
void to_json(nlohmann::json& j, const DrPlan& plan);
void to_json(nlohmann::json& j, const HealthCheck& check);

// As Results (config_error() on any diagnostic).
Result<Policy> policy_from_json(const nlohmann::json& json,
                                const std::vector<Location>& locations);

}  // namespace haven::config

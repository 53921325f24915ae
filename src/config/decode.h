// config/decode.h — internal to config/: the document tree both haven.yaml and a policy's JSON
// are read into, the collector of diagnostics, and the typed readers every section's decoder
// uses. Having one tree is what lets a policy from the REST API go through the very decoder —
// and so the very checks and messages — haven.yaml's policies go through.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config/config.h"

namespace haven::config::detail {

// One value of the document. YAML plain scalars are typed by YAML 1.2's core schema (null,
// true/false, decimal integers, floats; anything else a string) and remember that they were
// plain, so that a string-valued key also takes `name: 2024`. Quoted YAML scalars and JSON
// strings are always strings.
struct Node {
  enum class Kind { kNull, kBool, kInt, kFloat, kString, kMap, kList };
  Kind kind = Kind::kNull;
  bool plain = false;   // a YAML plain scalar
  std::string text;     // scalars, as written (JSON numbers and booleans as dumped)
  bool boolean = false;
  int64_t integer = 0;
  int line = 0, column = 0;  // 1-based; 0 when unknown (JSON)
  struct Entry;
  std::vector<Entry> entries;  // kMap: (key, value), in document order
  std::vector<Node> items;     // kList

  bool is_scalar() const { return kind != Kind::kMap && kind != Kind::kList; }
};

// A mapping's entry (a struct, not a std::pair: clang will not make a pair of the incomplete Node).
struct Node::Entry {
  Entry(Node k, Node v) : first(std::move(k)), second(std::move(v)) {}
  Node first;   // the key
  Node second;  // the value
};

// How keys are spelled: haven.yaml's snake_case or JSON's camelCase. Decoders name keys in
// snake_case; in JSON documents "max_parallel_jobs" is looked up as "maxParallelJobs".
enum class KeyStyle { kSnake, kCamel };

std::string styled(std::string_view snake_key, KeyStyle style);

// Collects diagnostics for one document.
class Problems {
 public:
  Problems(std::string file, KeyStyle style) : file_(std::move(file)), style_(style) {}

  void add(const Node& at, const std::string& path, std::string message, std::string fix = "");
  void add(int line, int column, const std::string& path, std::string message,
           std::string fix = "");
  SourceMark mark(const Node& at, const std::string& path) const;

  std::string key(std::string_view snake_key) const { return styled(snake_key, style_); }
  KeyStyle style() const { return style_; }
  const std::string& file() const { return file_; }
  size_t count() const { return list_.size(); }
  // The diagnostics, in document order (those without a position keep the order they came in).
  std::vector<Diagnostic> take();

  // Words for node kinds in this document's language: "a mapping" / "an object"...
  std::string describe(const Node& n) const;

 private:
  std::string file_;
  KeyStyle style_;
  std::vector<Diagnostic> list_;
};

// "base.key" ("key" when base is empty) and "base[i]".
std::string join_path(const std::string& base, std::string_view key);
std::string index_path(const std::string& base, size_t i);

// The YAML text as a tree, or nullopt after reporting a syntax error (with yaml-cpp's mark),
// duplicate keys or a second document.
std::optional<Node> node_from_yaml(const std::string& text, Problems& problems);
Node node_from_json(const nlohmann::json& json);

// --- enumerations: each value's spelling, and what the key is called in messages ---
template <typename E>
struct EnumNames;

#define HAVEN_CONFIG_ENUM(E, N, ...)                                             \
  template <>                                                                    \
  struct EnumNames<E> {                                                          \
    static constexpr std::array<std::pair<E, std::string_view>, N> list{{__VA_ARGS__}}; \
  }

HAVEN_CONFIG_ENUM(StorageType, 4, {StorageType::kS3, "s3"},
                  {StorageType::kAzureBlob, "azure_blob"},
                  {StorageType::kGcpStorage, "gcp_storage"},
                  {StorageType::kOnPremise, "on_premise"});
HAVEN_CONFIG_ENUM(ResourceType, 2, {ResourceType::kFiles, "files"},
                  {ResourceType::kDatabase, "database"});
HAVEN_CONFIG_ENUM(Strategy, 3, {Strategy::kFull, "full"}, {Strategy::kIncremental, "incremental"},
                  {Strategy::kDifferential, "differential"});
HAVEN_CONFIG_ENUM(Compression, 4, {Compression::kNone, "none"}, {Compression::kLow, "low"},
                  {Compression::kMedium, "medium"}, {Compression::kHigh, "high"});
HAVEN_CONFIG_ENUM(SlaTier, 4, {SlaTier::kCritical, "CRITICAL"}, {SlaTier::kHigh, "HIGH"},
                  {SlaTier::kStandard, "STANDARD"}, {SlaTier::kLower, "LOWER"});
HAVEN_CONFIG_ENUM(TimeUnit, 4, {TimeUnit::kSeconds, "seconds"}, {TimeUnit::kMinutes, "minutes"},
                  {TimeUnit::kHours, "hours"}, {TimeUnit::kDays, "days"});
HAVEN_CONFIG_ENUM(CatchUp, 2, {CatchUp::kNone, "none"}, {CatchUp::kOnce, "once"});
HAVEN_CONFIG_ENUM(Overlap, 2, {Overlap::kSkip, "skip"}, {Overlap::kQueue, "queue"});
HAVEN_CONFIG_ENUM(Priority, 2, {Priority::kNormal, "normal"}, {Priority::kHigh, "high"});
HAVEN_CONFIG_ENUM(IntegrityCheck, 3, {IntegrityCheck::kNone, "none"},
                  {IntegrityCheck::kQuick, "quick"}, {IntegrityCheck::kReadData, "read-data"});
HAVEN_CONFIG_ENUM(ReplicationMode, 2, {ReplicationMode::kAsync, "async"},
                  {ReplicationMode::kSync, "sync"});
HAVEN_CONFIG_ENUM(QuorumLoss, 2, {QuorumLoss::kFail, "fail"}, {QuorumLoss::kDegrade, "degrade"});
HAVEN_CONFIG_ENUM(PlanType, 5, {PlanType::kHotSite, "hot_site"}, {PlanType::kWarmSite, "warm_site"},
                  {PlanType::kColdSite, "cold_site"}, {PlanType::kCloudFailover, "cloud_failover"},
                  {PlanType::kDataOnly, "data_only"});
HAVEN_CONFIG_ENUM(PlanPriority, 4, {PlanPriority::kCritical, "critical"},
                  {PlanPriority::kHigh, "high"}, {PlanPriority::kMedium, "medium"},
                  {PlanPriority::kLow, "low"});
HAVEN_CONFIG_ENUM(FailoverMode, 4, {FailoverMode::kActivePassive, "active_passive"},
                  {FailoverMode::kActiveActive, "active_active"},
                  {FailoverMode::kPilotLight, "pilot_light"},
                  {FailoverMode::kWarmStandby, "warm_standby"});
HAVEN_CONFIG_ENUM(ShutdownMode, 2, {ShutdownMode::kCancel, "cancel"},
                  {ShutdownMode::kFinish, "finish"});
HAVEN_CONFIG_ENUM(ChannelKind, 5, {ChannelKind::kWebhook, "webhook"}, {ChannelKind::kSlack, "slack"},
                  {ChannelKind::kPagerDuty, "pagerduty"}, {ChannelKind::kEmail, "email"},
                  {ChannelKind::kCommand, "command"});
HAVEN_CONFIG_ENUM(MonitorKind, 9, {MonitorKind::kBackupSuccess, "backup_success"},
                  {MonitorKind::kStorageCapacity, "storage_capacity"},
                  {MonitorKind::kRestoreCapability, "restore_capability"},
                  {MonitorKind::kIntegrityCheck, "integrity_check"}, {MonitorKind::kRpo, "rpo"},
                  {MonitorKind::kMissedSchedule, "missed_schedule"},
                  {MonitorKind::kBackupFailureRate, "backup_failure_rate"},
                  {MonitorKind::kReplicationLag, "replication_lag"},
                  {MonitorKind::kDrDrill, "dr_drill"});
#undef HAVEN_CONFIG_ENUM

template <typename E>
std::string_view enum_name(E value) {
  for (const auto& [v, n] : EnumNames<E>::list) {
    if (v == value) return n;
  }
  return "?";
}

template <typename E>
std::vector<std::string> enum_spellings() {
  std::vector<std::string> out;
  for (const auto& [v, n] : EnumNames<E>::list) out.emplace_back(n);
  return out;
}

// --- readers of single values: report what is wrong at the value and return nullopt ---
inline constexpr int64_t kNoMax = std::numeric_limits<int32_t>::max();

std::optional<std::string> read_string(Problems& p, const Node& n, const std::string& path);
std::optional<int64_t> read_int(Problems& p, const Node& n, const std::string& path,
                                int64_t min, int64_t max);
std::optional<bool> read_bool(Problems& p, const Node& n, const std::string& path);
std::optional<std::vector<std::string>> read_strings(Problems& p, const Node& n,
                                                     const std::string& path);
// Reports "must be one of a|b|c, not 'x'" with a did-you-mean.
std::optional<size_t> read_choice(Problems& p, const Node& n, const std::string& path,
                                  const std::vector<std::string>& choices);

template <typename E>
std::optional<E> read_enum(Problems& p, const Node& n, const std::string& path) {
  auto i = read_choice(p, n, path, enum_spellings<E>());
  if (!i) return std::nullopt;
  return EnumNames<E>::list[*i].first;
}

// The keys of one mapping. Every key a decoder may accept is asked for with get() (or a typed
// reader), whether or not it applies, so that finish() can report the remaining ones as unknown
// with a did-you-mean among the known ones.
class Fields {
 public:
  // Reports "must be a mapping" when `map` is not one; then ok() is false and nothing is read.
  Fields(Problems& p, const Node& map, std::string path);

  bool ok() const { return map_ != nullptr; }
  const Node& node() const { return *map_; }
  const std::string& path() const { return path_; }
  std::string path(std::string_view snake_key) const;
  Problems& problems() { return p_; }

  // The value under `key` (snake_case; styled for the document), or nullptr when absent.
  const Node* get(std::string_view key);
  // Reports `key` as required but missing, at the mapping.
  void missing(std::string_view key, std::string fix);

  std::optional<std::string> string(std::string_view key);
  // Reports the key as missing (with `fix`) when absent.
  std::optional<std::string> required_string(std::string_view key, std::string fix);
  std::optional<int64_t> integer(std::string_view key, int64_t min, int64_t max);
  std::optional<bool> boolean(std::string_view key);
  std::optional<std::vector<std::string>> strings(std::string_view key);
  template <typename E>
  std::optional<E> choice(std::string_view key) {
    const Node* n = get(key);
    return n ? read_enum<E>(p_, *n, path(key)) : std::nullopt;
  }

  // Reports every key never asked for.
  void finish();

 private:
  Problems& p_;
  const Node* map_ = nullptr;
  std::string path_;
  std::vector<std::string> known_;
};

// --- checks shared by the sections ---
// Names of locations and policies: 1 to 255 of [A-Za-z0-9._-], not starting with '.' or '-'
// (they appear in URLs and file names).
bool valid_name(std::string_view name);
void check_name(Problems& p, const Node& at, const std::string& path, const std::string& name,
                std::string_view what);
// Reports a path that is not absolute.
bool check_absolute(Problems& p, const Node& at, const std::string& path,
                    const std::string& value, std::string_view example);
// '...' around a value from the document, shortened when long.
std::string quote(std::string_view text);
// Opens `file`, a path the document names, for reading. When it cannot, reports at `at` that
// it does not exist (with `fix_missing` as the fix), cannot be read, or is a directory, and
// returns -1. The caller closes the descriptor.
int open_named_file(Problems& p, const Node& at, const std::string& path,
                    const std::string& file, const std::string& fix_missing);

// A secret given as {env: VARIABLE} or {file: PATH} (its first line), resolved; reported at
// `value` (never quoting it) when it is written in clear or cannot be resolved. `what` names
// it in messages ("credential", "routing key").
std::optional<SecretRef> read_secret_ref(Problems& p, const Node& value, const std::string& at,
                                         const EnvLookup& env, std::string_view what);

// --- the sections ---
ServerSettings decode_server(Problems& p, const Node& node, const std::string& path);
// rpo, rto: {value: N, unit: …} (config.h Objective).
std::optional<Objective> decode_objective(Problems& p, const Node& node, const std::string& path);
// `env` resolves password_env and {env: NAME} credentials.
Location decode_location(Problems& p, const Node& node, const std::string& path,
                         const EnvLookup& env);
// `locations`: the names "location" may take; nullptr skips that check (the locations could
// not be read, so every reference would be reported for nothing).
Policy decode_policy(Problems& p, const Node& node, const std::string& path,
                     const std::vector<std::string>* locations);
// `policies`, `locations`, `channels`: what a monitor may name; nullptr skips that check.
Monitor decode_monitor(Problems& p, const Node& node, const std::string& path,
                       const std::vector<std::string>* policies,
                       const std::vector<std::string>* locations,
                       const std::vector<AlertChannel>* channels);
MonitoringSettings decode_monitoring(Problems& p, const Node& node, const std::string& path,
                                     const EnvLookup& env,
                                     const std::vector<std::string>* policies,
                                     const std::vector<std::string>* locations);

// A disaster-recovery plan (config/dr.cc); `policies`: what its restore steps may name
// (nullptr skips that check). The checks across steps (cycles, variables) run when every step
// could be read.
DrPlan decode_plan(Problems& p, const Node& node, const std::string& path,
                   const std::vector<Policy>* policies);
// A failover entry, checked against the configuration read so far (policies, plans,
// locations, channels).
Failover decode_failover(Problems& p, const Node& node, const std::string& path, const Config& cfg);

}  // namespace haven::config::detail

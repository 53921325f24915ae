// config/location.cc — locations[]: a repository, its password and its backend's settings and
// credentials, resolved from files and named environment variables. No message here quotes a
// resolved value, nor any value written under a secret setting's name.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <limits>

#include "config/decode.h"
#include "util/bytes.h"

namespace haven::config {

// The names storage/backend.h documents (BackendSettings), by kind of location. Kept here as a
// copy because config/ may not include storage/ (scripts/check-layers.py); a name added there
// is added here.
std::vector<BackendSettingName> backend_setting_names(StorageType type) {
  switch (type) {
    case StorageType::kS3:
    case StorageType::kGcpStorage:
      return {{"AWS_ACCESS_KEY_ID", true},
              {"AWS_SECRET_ACCESS_KEY", true},
              {"AWS_SESSION_TOKEN", true},
              {"AWS_PROFILE", false},
              {"AWS_SHARED_CREDENTIALS_FILE", false},
              {"AWS_CONFIG_FILE", false},
              {"HOME", false},
              {"AWS_REGION", false},
              {"AWS_DEFAULT_REGION", false},
              {"HAVEN_S3_REGION", false},
              {"HAVEN_S3_PATH_STYLE", false},
              {"HAVEN_S3_CA_FILE", false},
              {"AWS_CA_BUNDLE", false}};
    case StorageType::kAzureBlob:
      return {{"AZURE_STORAGE_CONNECTION_STRING", true},
              {"AZURE_STORAGE_ACCOUNT", false},
              {"AZURE_STORAGE_KEY", true},
              {"AZURE_STORAGE_SAS_TOKEN", true}};
    case StorageType::kOnPremise:
      return {};
  }
  return {};
}

std::optional<std::string> Location::backend_setting(const std::string& setting) const {
  if (auto it = settings.find(setting); it != settings.end()) return it->second;
  if (auto it = credentials.find(setting); it != credentials.end()) {
    return it->second.value.reveal();
  }
  return std::nullopt;
}

std::optional<std::string> SecondaryRegion::backend_setting(const std::string& setting) const {
  if (auto it = settings.find(setting); it != settings.end()) return it->second;
  if (auto it = credentials.find(setting); it != credentials.end()) {
    return it->second.value.reveal();
  }
  return std::nullopt;
}

const SecondaryRegion* Location::find_region(std::string_view region) const {
  for (const auto& r : secondary_regions) {
    if (r.region == region) return &r;
  }
  return nullptr;
}

namespace detail {

namespace {

constexpr size_t kMaxSecretLine = 64 * 1024;

bool valid_env_name(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// What kind of location a repository string names, or nullopt when it names none.
std::optional<StorageType> kind_of_repository(const std::string& r) {
  if (r.starts_with("s3:https://storage.googleapis.com/") ||
      r.starts_with("s3:http://storage.googleapis.com/")) {
    return StorageType::kGcpStorage;
  }
  if (r.starts_with("s3:") && r.size() > 3) return StorageType::kS3;
  if (r.starts_with("azure:") && r.size() > 6) return StorageType::kAzureBlob;
  if (r.starts_with("local:/") || r.starts_with("/")) return StorageType::kOnPremise;
  return std::nullopt;
}

// Whether a location declared `declared` may have a repository of kind `found`: any s3:
// repository is an S3 one, also GCS's; gcp_storage needs GCS's endpoint.
bool kinds_agree(StorageType declared, StorageType found) {
  if (declared == StorageType::kS3) {
    return found == StorageType::kS3 || found == StorageType::kGcpStorage;
  }
  return declared == found;
}

std::string repository_example(StorageType t) {
  switch (t) {
    case StorageType::kS3: return "s3:BUCKET/PREFIX or s3:https://HOST/BUCKET/PREFIX";
    case StorageType::kGcpStorage:
      return "s3:https://storage.googleapis.com/BUCKET/PREFIX (GCS through its "
             "S3-interoperable API, with an HMAC key in credentials)";
    case StorageType::kAzureBlob: return "azure:CONTAINER/PREFIX";
    case StorageType::kOnPremise: return "an absolute path such as /srv/backup";
  }
  return "";
}

// The first line of an open file (without its line break), or a reason it has none. The
// content never reaches a message.
std::optional<std::string> first_line(int fd, std::string& problem, std::string& fix,
                                      std::string_view what) {
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      problem = std::string("cannot be read: ") + std::strerror(errno);
      break;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.find_first_of("\r\n") != std::string::npos) break;  // only the first line counts
    if (text.size() > kMaxSecretLine) {
      problem = "has no line break in its first 64 KiB: it is not a " + std::string(what) + " file";
      fix = "give a file whose first line is the " + std::string(what);
      break;
    }
  }
  secure_zero(buf, sizeof buf);
  std::optional<std::string> out;
  if (problem.empty()) {
    size_t end = text.find_first_of("\r\n");
    std::string line = text.substr(0, end);
    if (line.empty()) {
      problem = "is empty (its first line is the " + std::string(what) + ")";
      fix = "write the " + std::string(what) + " on the file's first line";
    } else {
      out = std::move(line);
    }
  }
  secure_zero(text.data(), text.size());
  return out;
}

// A secret from {file: PATH}: reported at `at` when it cannot be read.
std::optional<SecretRef> secret_from_file(Problems& p, const Node& at, const std::string& path,
                                          const std::string& file, std::string_view what) {
  if (!check_absolute(p, at, path, file, "/etc/haven/secret")) return std::nullopt;
  int fd = open_named_file(p, at, path, file,
                           "create it with the " + std::string(what) +
                               " on its first line, readable only by the server's user "
                               "(chmod 600), or correct the path");
  if (fd < 0) return std::nullopt;
  std::string problem, fix;
  auto line = first_line(fd, problem, fix, what);
  ::close(fd);
  if (!line) {
    p.add(at, path, quote(file) + " " + problem, fix);
    return std::nullopt;
  }
  SecretRef ref{SecretRef::Kind::kFile, file, Secret(std::move(*line))};
  return ref;
}

// A secret from {env: NAME}.
std::optional<SecretRef> secret_from_env(Problems& p, const Node& at, const std::string& path,
                                         const std::string& name, const EnvLookup& env,
                                         std::string_view other_way) {
  if (!valid_env_name(name)) {
    p.add(at, path, quote(name) + " is not an environment variable's name",
          "use letters, digits and '_', not starting with a digit");
    return std::nullopt;
  }
  std::optional<std::string> value = env ? env(name) : std::nullopt;
  if (!value || value->empty()) {
    p.add(at, path, "environment variable " + name + " is not set (or is empty)",
          "set it in the server's environment (systemd: Environment= or EnvironmentFile=), or " +
              std::string(other_way));
    return std::nullopt;
  }
  SecretRef ref{SecretRef::Kind::kEnv, name, Secret(std::move(*value))};
  return ref;
}

std::string setting_list(const std::vector<BackendSettingName>& names, bool secret_only) {
  std::string out;
  for (const auto& n : names) {
    if (secret_only && !n.secret) continue;
    out += (out.empty() ? "" : ", ") + std::string(n.name);
  }
  return out;
}

const BackendSettingName* find_setting(const std::vector<BackendSettingName>& names,
                                       const std::string& name) {
  for (const auto& n : names) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

// Reports a name that is not a setting of `type`; true when it is one.
bool check_setting_name(Problems& p, const Node& key, const std::string& path, StorageType type,
                        const std::vector<BackendSettingName>& names) {
  if (find_setting(names, key.text)) return true;
  std::vector<std::string> all;
  for (const auto& n : names) all.emplace_back(n.name);
  auto guess = did_you_mean(key.text, all);
  p.add(key, path,
        quote(key.text) + " is not a setting of " + std::string(name(type)) + " locations",
        guess ? "did you mean '" + *guess + "'?"
              : "the settings are " + setting_list(names, false));
  return false;
}

void decode_settings(Problems& p, const Node& node, const std::string& path,
                     std::optional<StorageType> type,
                     std::map<std::string, std::string>& settings) {
  Fields f(p, node, path);  // only for the mapping check: the keys are setting names
  if (!f.ok() || !type) return;
  if (*type == StorageType::kOnPremise) {
    if (!node.entries.empty()) {
      p.add(node, path, "on_premise locations take no settings",
            "remove settings (they configure s3, gcp_storage and azure_blob locations)");
    }
    return;
  }
  const auto names = backend_setting_names(*type);
  for (const auto& [key, value] : node.entries) {
    const std::string at = join_path(path, key.text);
    if (!check_setting_name(p, key, at, *type, names)) continue;
    if (find_setting(names, key.text)->secret) {
      // Never quote the value: it is a secret written where it should not be.
      p.add(key, at, key.text + " holds a secret: it cannot be written in haven.yaml",
            "move it to credentials as " + key.text + ": {env: VARIABLE} or {file: PATH}");
      continue;
    }
    auto s = read_string(p, value, at);
    if (!s) continue;
    if (s->empty()) {
      p.add(value, at, "is empty", "give a value, or remove the setting");
      continue;
    }
    settings[key.text] = *s;
  }
}

void decode_credentials(Problems& p, const Node& node, const std::string& path,
                        std::optional<StorageType> type, const EnvLookup& env,
                        const std::map<std::string, std::string>& settings,
                        std::map<std::string, SecretRef>& credentials) {
  Fields f(p, node, path);
  if (!f.ok() || !type) return;
  if (*type == StorageType::kOnPremise) {
    if (!node.entries.empty()) {
      p.add(node, path, "on_premise locations take no credentials",
            "remove credentials (they configure s3, gcp_storage and azure_blob locations)");
    }
    return;
  }
  const auto names = backend_setting_names(*type);
  for (const auto& [key, value] : node.entries) {
    const std::string at = join_path(path, key.text);
    if (!check_setting_name(p, key, at, *type, names)) continue;
    if (settings.count(key.text)) {
      p.add(key, at, key.text + " is given in settings too", "keep one of them");
      continue;
    }
    std::optional<SecretRef> secret = read_secret_ref(p, value, at, env, "credential");
    if (secret) credentials[key.text] = std::move(*secret);
  }
}

// The storage type a repository string names, reported when it names none.
std::optional<StorageType> repository_kind(Problems& p, const Node& node, const std::string& path,
                                           const std::string& repository) {
  auto found = kind_of_repository(repository);
  if (!found) {
    p.add(node, path,
          "must be an absolute path (or local:/path), s3:BUCKET/PREFIX, "
          "s3:https://HOST/BUCKET/PREFIX or azure:CONTAINER/PREFIX, not " + quote(repository),
          "write the region's repository as the CLI's --repo takes it");
  }
  return found;
}

SecondaryRegion decode_region(Problems& p, const Node& node, const std::string& path,
                              const EnvLookup& env) {
  SecondaryRegion r;
  Fields f(p, node, path);
  if (!f.ok()) return r;
  r.mark = p.mark(node, path);
  if (auto s = f.required_string("region", "name the region, e.g. region: us-east-1")) {
    r.region = *s;
    check_name(p, *f.get("region"), f.path("region"), *s, "region");
  }
  std::optional<StorageType> type;
  if (const Node* n = f.get("repository")) {
    if (auto s = read_string(p, *n, f.path("repository"))) {
      r.repository = *s;
      type = repository_kind(p, *n, f.path("repository"), *s);
      if (type) r.storage_type = *type;
    }
  } else {
    f.missing("repository", "give where this region's copy lives, e.g. repository: "
                            "/mnt/offsite/backup or s3:https://HOST/BUCKET/PREFIX");
  }
  if (const Node* n = f.get("settings")) {
    decode_settings(p, *n, f.path("settings"), type, r.settings);
  }
  if (const Node* n = f.get("credentials")) {
    decode_credentials(p, *n, f.path("credentials"), type, env, r.settings, r.credentials);
  }
  f.finish();
  return r;
}

Replication decode_replication(Problems& p, const Node& node, const std::string& path) {
  Replication r;
  Fields f(p, node, path);
  if (!f.ok()) return r;
  r.mark = p.mark(node, path);
  if (auto m = f.choice<ReplicationMode>("mode")) r.mode = *m;
  if (const Node* n = f.get("rpo")) {
    if (auto o = decode_objective(p, *n, f.path("rpo"))) r.rpo = *o;
  }
  if (auto v = f.integer("quorum", 1, 1000)) {
    r.quorum = static_cast<int>(*v);
    if (r.mode != ReplicationMode::kSync) {
      p.add(*f.get("quorum"), f.path("quorum"), "applies to mode: sync only",
            "remove quorum, or write mode: sync");
    }
  }
  if (auto q = f.choice<QuorumLoss>("on_quorum_loss")) {
    r.on_quorum_loss = *q;
    if (r.mode != ReplicationMode::kSync) {
      p.add(*f.get("on_quorum_loss"), f.path("on_quorum_loss"), "applies to mode: sync only",
            "remove on_quorum_loss, or write mode: sync");
    }
  }
  if (auto v = f.integer("interval_seconds", 1, 86400)) r.interval_seconds = static_cast<int>(*v);
  f.finish();
  return r;
}

std::string trim_repository(std::string_view r) {
  std::string s(r);
  if (s.rfind("local:", 0) == 0) s = s.substr(6);
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

void decode_regions(Problems& p, Fields& f, const EnvLookup& env, Location& loc) {
  const Node* regions = f.get("secondary_regions");
  const Node* replication = f.get("replication");
  if (regions != nullptr) {
    if (regions->kind != Node::Kind::kList) {
      p.add(*regions, f.path("secondary_regions"),
            "must be a list of regions, not " + p.describe(*regions),
            "write e.g. secondary_regions: [{region: us-east-1, repository: s3:BUCKET/PREFIX}]");
    } else {
      std::map<std::string, std::string> seen_regions, seen_repos;
      seen_repos[trim_repository(loc.repository)] = "the primary region";
      for (size_t i = 0; i < regions->items.size(); i++) {
        const std::string at = index_path(f.path("secondary_regions"), i);
        SecondaryRegion r = decode_region(p, regions->items[i], at, env);
        if (r.region.empty()) continue;
        if (r.region == loc.primary_region_name()) {
          p.add(regions->items[i], join_path(at, "region"),
                quote(r.region) + " is the primary region's name",
                loc.primary_region.empty()
                    ? "name the region otherwise (the primary is called \"primary\" when "
                      "primary_region is not given)"
                    : "give each region its own name");
          continue;
        }
        if (auto it = seen_regions.find(r.region); it != seen_regions.end()) {
          p.add(regions->items[i], join_path(at, "region"),
                quote(r.region) + " is already " + it->second, "give each region its own name");
          continue;
        }
        seen_regions[r.region] = at;
        if (!r.repository.empty()) {
          auto key = trim_repository(r.repository);
          if (auto it = seen_repos.find(key); it != seen_repos.end()) {
            p.add(regions->items[i], join_path(at, "repository"),
                  quote(r.repository) + " is also " + it->second + "'s repository",
                  "each region keeps its copy in a place of its own");
            continue;
          }
          seen_repos[key] = "region " + r.region;
        }
        loc.secondary_regions.push_back(std::move(r));
      }
      if (regions->items.empty()) {
        p.add(*regions, f.path("secondary_regions"), "is empty",
              "list the regions to copy the repository to, or remove secondary_regions");
      }
    }
  }
  if (replication != nullptr) {
    loc.replication = decode_replication(p, *replication, f.path("replication"));
    if (regions == nullptr) {
      p.add(*replication, f.path("replication"),
            "is given but the location has no secondary_regions to replicate to",
            "add secondary_regions: [{region: NAME, repository: …}], or remove replication");
    } else if (loc.replication.mode == ReplicationMode::kSync &&
               loc.replication.quorum > static_cast<int>(loc.secondary_regions.size()) &&
               !loc.secondary_regions.empty()) {
      p.add(*replication, f.path("replication") + ".quorum",
            "is " + std::to_string(loc.replication.quorum) + ", more than the " +
                std::to_string(loc.secondary_regions.size()) + " secondary regions",
            "make quorum at most the number of secondary_regions");
    }
  }
}

}  // namespace

std::optional<SecretRef> read_secret_ref(Problems& p, const Node& value, const std::string& at,
                                         const EnvLookup& env, std::string_view what) {
  if (value.kind != Node::Kind::kMap) {
    // Never quote the value: this is where someone writes the secret itself.
    p.add(value, at, "must be {env: VARIABLE} or {file: PATH}",
          "a " + std::string(what) + "'s value is never written in haven.yaml: put it in a file or in "
          "the server's environment and name that here");
    return std::nullopt;
  }
  Fields ref(p, value, at);
  const Node* env_node = ref.get("env");
  const Node* file_node = ref.get("file");
  ref.finish();
  if (env_node && file_node) {
    p.add(value, at, "gives both env and file", "keep one of them");
    return std::nullopt;
  }
  if (!env_node && !file_node) {
    p.add(value, at, "names no source", "write {env: VARIABLE} or {file: PATH}");
    return std::nullopt;
  }
  if (env_node) {
    if (auto name = read_string(p, *env_node, join_path(at, "env"))) {
      return secret_from_env(p, *env_node, join_path(at, "env"), *name, env, "use {file: PATH}");
    }
    return std::nullopt;
  }
  if (auto file = read_string(p, *file_node, join_path(at, "file"))) {
    return secret_from_file(p, *file_node, join_path(at, "file"), *file, what);
  }
  return std::nullopt;
}

Location decode_location(Problems& p, const Node& node, const std::string& path,
                         const EnvLookup& env) {
  Location loc;
  Fields f(p, node, path);
  if (!f.ok()) return loc;
  loc.mark = p.mark(node, path);

  if (auto s = f.required_string("name", "give the location a name policies refer to, e.g. "
                                         "name: local")) {
    loc.name = *s;
    check_name(p, *f.get("name"), f.path("name"), *s, "location");
  }
  if (auto s = f.string("description")) loc.description = *s;
  if (auto s = f.string("primary_region")) loc.primary_region = *s;

  // The kind: as declared, else as the repository says.
  std::optional<StorageType> declared = f.choice<StorageType>("storage_type");
  std::optional<StorageType> found;
  bool conflict = false;
  const Node* repo_node = f.get("repository");
  if (repo_node == nullptr) {
    f.missing("repository", "give where the backups go, e.g. repository: /srv/backup, "
                            "s3:BUCKET/PREFIX or azure:CONTAINER/PREFIX");
  } else if (auto r = read_string(p, *repo_node, f.path("repository"))) {
    loc.repository = *r;
    found = kind_of_repository(*r);
    if (!found) {
      p.add(*repo_node, f.path("repository"),
            "must be an absolute path (or local:/path), s3:BUCKET/PREFIX, "
            "s3:https://HOST/BUCKET/PREFIX or azure:CONTAINER/PREFIX, not " + quote(*r),
            declared ? "for storage type " + std::string(name(*declared)) + " write " +
                           repository_example(*declared)
                     : "write the location as the CLI's --repo takes it");
    } else if (declared && !kinds_agree(*declared, *found)) {
      p.add(*f.get("storage_type"), f.path("storage_type"),
            "is " + std::string(name(*declared)) + ", but repository " + quote(*r) +
                " is of storage type " + std::string(name(*found)),
            "write storage_type: " + std::string(name(*found)) + ", or a repository of storage "
                "type " + std::string(name(*declared)) + ": " + repository_example(*declared));
      conflict = true;
    }
  }
  // A repository that disagrees with storage_type leaves the kind unknown: its settings and
  // credentials are not checked against either.
  std::optional<StorageType> type = declared ? declared : found;
  if (conflict) type.reset();
  if (type) loc.storage_type = *type;

  // The password: exactly one of password_file and password_env.
  const Node* pw_file = f.get("password_file");
  const Node* pw_env = f.get("password_env");
  if (pw_file && pw_env) {
    p.add(*pw_env, f.path("password_env"), "password_file is given too",
          "give either password_file or password_env");
  } else if (!pw_file && !pw_env) {
    p.add(node, f.path("password_file"),
          "a location needs its repository's password: neither password_file nor password_env "
          "is given",
          "add password_file: PATH (its first line is the password) or password_env: VARIABLE; "
          "Haven repositories are always encrypted");
  } else if (pw_file) {
    if (auto s = read_string(p, *pw_file, f.path("password_file"))) {
      if (auto ref = secret_from_file(p, *pw_file, f.path("password_file"), *s, "password")) {
        loc.password = std::move(*ref);
      }
    }
  } else if (auto s = read_string(p, *pw_env, f.path("password_env"))) {
    if (auto ref = secret_from_env(p, *pw_env, f.path("password_env"), *s, env,
                                   "use password_file")) {
      loc.password = std::move(*ref);
    }
  }

  // Settings before credentials: a credential repeating a setting is reported at the former.
  if (const Node* n = f.get("settings")) {
    decode_settings(p, *n, f.path("settings"), type, loc.settings);
  }
  if (const Node* n = f.get("credentials")) {
    decode_credentials(p, *n, f.path("credentials"), type, env, loc.settings, loc.credentials);
  }
  if (auto v = f.integer("capacity_gb", 1, std::numeric_limits<int64_t>::max() / 1000000000)) {
    loc.capacity_gb = *v;
  }
  decode_regions(p, f, env, loc);
  f.finish();
  return loc;
}

}  // namespace detail

}  // namespace haven::config

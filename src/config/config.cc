// config/config.cc — haven.yaml as a whole: reading the file, the top-level sections and the
// checks across them (duplicate names, a policy's location), and the JSON of the model.
#include "config/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "config/decode.h"

namespace haven::config {

namespace {

using detail::Fields;
using detail::Node;
using detail::Problems;

constexpr size_t kMaxConfigBytes = 16 << 20;

const Node* entry(const Node& map, std::string_view key) {
  if (map.kind != Node::Kind::kMap) return nullptr;
  for (const auto& [k, v] : map.entries) {
    if (k.text == key) return &v;
  }
  return nullptr;
}

// Reports the second and later uses of a name, at the name.
class NameSet {
 public:
  NameSet(Problems& p, std::string what) : p_(p), what_(std::move(what)) {}
  void add(const std::string& name, const Node& item, const std::string& item_path) {
    const Node* at = entry(item, "name");
    if (name.empty() || at == nullptr) return;
    auto [it, fresh] = first_.emplace(name, at->line);
    if (fresh) return;
    p_.add(*at, detail::join_path(item_path, "name"),
           "another " + what_ + " is named " + detail::quote(name) + " (at line " +
               std::to_string(it->second) + ")",
           "give each " + what_ + " its own name");
  }

 private:
  Problems& p_;
  std::string what_;
  std::map<std::string, int> first_;
};

void decode_config(Problems& p, const Node& root, const EnvLookup& env, Config& cfg) {
  if (root.kind == Node::Kind::kNull) {
    p.add(0, 0, "", "is empty: haven.yaml needs at least a locations section",
          "see the haven.yaml section of README.md");
    return;
  }
  Fields f(p, root, "");
  if (!f.ok()) return;

  if (const Node* n = f.get("server")) cfg.server = detail::decode_server(p, *n, "server");

  std::vector<std::string> names;
  bool names_known = false;
  const Node* locations = f.get("locations");
  if (locations == nullptr) {
    f.missing("locations", "add a locations list: where backups go, e.g. "
                           "[{name: local, repository: /srv/backup, password_file: "
                           "/etc/haven/pass}]");
  } else if (locations->kind != Node::Kind::kList) {
    p.add(*locations, "locations", "must be a list of locations, not " + p.describe(*locations),
          "write each location as an item '- name: ...'");
  } else if (locations->items.empty()) {
    p.add(*locations, "locations", "is empty: policies need a location to back up to",
          "add at least one location");
  } else {
    names_known = true;
    NameSet seen(p, "location");
    for (size_t i = 0; i < locations->items.size(); i++) {
      const std::string path = detail::index_path("locations", i);
      Location l = detail::decode_location(p, locations->items[i], path, env);
      seen.add(l.name, locations->items[i], path);
      if (!l.name.empty() && std::find(names.begin(), names.end(), l.name) == names.end()) {
        names.push_back(l.name);
      }
      cfg.locations.push_back(std::move(l));
    }
  }

  if (const Node* policies = f.get("policies")) {
    if (policies->kind == Node::Kind::kList) {
      NameSet seen(p, "policy");
      for (size_t i = 0; i < policies->items.size(); i++) {
        const std::string path = detail::index_path("policies", i);
        Policy pol = detail::decode_policy(p, policies->items[i], path,
                                           names_known ? &names : nullptr);
        seen.add(pol.name, policies->items[i], path);
        cfg.policies.push_back(std::move(pol));
      }
    } else {
      p.add(*policies, "policies", "must be a list of policies, not " + p.describe(*policies),
            "write each policy as an item '- name: ...', or remove policies");
    }
  }
  if (const Node* monitoring = f.get("monitoring")) {
    std::vector<std::string> policy_names;
    for (const auto& pol : cfg.policies) policy_names.push_back(pol.name);
    cfg.monitoring = detail::decode_monitoring(p, *monitoring, "monitoring", env, &policy_names,
                                               names_known ? &names : nullptr);
  }
  if (const Node* plans = f.get("dr_plans")) {
    if (plans->kind == Node::Kind::kList) {
      NameSet seen(p, "plan");
      for (size_t i = 0; i < plans->items.size(); i++) {
        const std::string path = detail::index_path("dr_plans", i);
        DrPlan plan = detail::decode_plan(p, plans->items[i], path, &cfg.policies);
        seen.add(plan.name, plans->items[i], path);
        cfg.dr_plans.push_back(std::move(plan));
      }
    } else {
      p.add(*plans, "dr_plans", "must be a list of plans, not " + p.describe(*plans),
            "write each plan as an item '- name: ...', or remove dr_plans");
    }
  }
  if (const Node* list = f.get("failover")) {
    if (list->kind == Node::Kind::kList) {
      NameSet seen(p, "failover");
      for (size_t i = 0; i < list->items.size(); i++) {
        const std::string path = detail::index_path("failover", i);
        Failover fo = detail::decode_failover(p, list->items[i], path, cfg);
        seen.add(fo.name, list->items[i], path);
        cfg.failover.push_back(std::move(fo));
      }
    } else {
      p.add(*list, "failover", "must be a list, not " + p.describe(*list),
            "write each as an item '- name: ...', or remove failover");
    }
  }
  f.finish();
}

struct FileText {
  std::string text;
  int err = 0;              // errno of the failure
  std::string problem;      // what is wrong, when err or the checks below fail
};

FileText read_config_text(const std::string& path) {
  FileText out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    out.err = errno;
    out.problem = out.err == ENOENT ? "does not exist"
                                    : std::string("cannot be read: ") + std::strerror(out.err);
    return out;
  }
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    out.err = EISDIR;
    out.problem = "is a directory, not a configuration file";
    return out;
  }
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out.err = errno;
      out.problem = std::string("cannot be read: ") + std::strerror(out.err);
      break;
    }
    if (n == 0) break;
    out.text.append(buf, static_cast<size_t>(n));
    if (out.text.size() > kMaxConfigBytes) {
      out.err = EFBIG;
      out.problem = "is larger than 16 MiB: not a configuration file";
      break;
    }
  }
  ::close(fd);
  return out;
}

Diagnostic unreadable(const std::string& path, const FileText& t) {
  return Diagnostic{path, 0, 0, "", t.problem,
                    t.err == ENOENT ? "give the path of haven.yaml, or create it (README.md, "
                                      "haven.yaml)"
                                    : ""};
}

nlohmann::json secret_ref_json(const SecretRef& ref) {
  nlohmann::json j = nlohmann::json::object();
  j[ref.kind == SecretRef::Kind::kFile ? "file" : "env"] = ref.source;
  j["value"] = ref.value;  // "***"
  return j;
}

}  // namespace

Checked<Config> check_config(const std::string& text, const std::string& file_name,
                             const EnvLookup& env) {
  Problems p(file_name, detail::KeyStyle::kSnake);
  Config cfg;
  cfg.file = file_name;
  if (auto root = detail::node_from_yaml(text, p)) decode_config(p, *root, env, cfg);
  return {std::move(cfg), p.take()};
}

Checked<Config> check_config_file(const std::string& path, const EnvLookup& env) {
  FileText t = read_config_text(path);
  if (t.err != 0) {
    Checked<Config> c;
    c.value.file = path;
    c.diagnostics.push_back(unreadable(path, t));
    return c;
  }
  return check_config(t.text, path, env);
}

Result<Config> parse_config(const std::string& text, const std::string& file_name,
                            const EnvLookup& env) {
  Checked<Config> c = check_config(text, file_name, env);
  if (!c.ok()) return config_error(c.diagnostics);
  return std::move(c.value);
}

Result<Config> load_config_file(const std::string& path, const EnvLookup& env) {
  FileText t = read_config_text(path);
  if (t.err != 0) {
    Error e = t.err == EISDIR || t.err == EFBIG ? Error(Error::Code::kInvalidArgument, "")
                                                : errno_error(path, t.err);
    return Error(e.code(), unreadable(path, t).format());
  }
  return parse_config(t.text, path, env);
}

// --- JSON ---

void to_json(nlohmann::json& j, const Location& l) {
  nlohmann::json credentials = nlohmann::json::object();
  for (const auto& [k, ref] : l.credentials) credentials[k] = secret_ref_json(ref);
  j = nlohmann::json{{"name", l.name},
                     {"description", l.description},
                     {"storageType", name(l.storage_type)},
                     {"repository", l.repository},
                     {"password", secret_ref_json(l.password)},
                     {"primaryRegion", l.primary_region},
                     {"settings", l.settings},
                     {"credentials", credentials}};
  if (!l.secondary_regions.empty()) {
    nlohmann::json regions = nlohmann::json::array();
    for (const auto& r : l.secondary_regions) {
      nlohmann::json rc = nlohmann::json::object();
      for (const auto& [k, ref] : r.credentials) rc[k] = secret_ref_json(ref);
      regions.push_back({{"region", r.region},
                         {"repository", r.repository},
                         {"storageType", name(r.storage_type)},
                         {"settings", r.settings},
                         {"credentials", rc}});
    }
    j["secondaryRegions"] = regions;
    j["replication"] = {{"mode", name(l.replication.mode)},
                        {"rpo", {{"value", l.replication.rpo.value},
                                 {"unit", name(l.replication.rpo.unit)}}},
                        {"quorum", l.replication.quorum},
                        {"onQuorumLoss", name(l.replication.on_quorum_loss)},
                        {"intervalSeconds", l.replication.interval_seconds}};
  }
}

void to_json(nlohmann::json& j, const ServerSettings& s) {
  const bool v6 = s.listen_host.find(':') != std::string::npos;
  j = nlohmann::json{
      {"listen", (v6 ? "[" + s.listen_host + "]" : s.listen_host) + ":" +
                     std::to_string(s.listen_port)},
      {"catalog", s.catalog},
      {"tls", s.tls ? nlohmann::json{{"certFile", s.tls->cert_file}, {"keyFile", s.tls->key_file}}
                    : nlohmann::json(nullptr)},
      {"maxParallelJobs", s.max_parallel_jobs},
      {"shutdown", name(s.shutdown)},
      {"shutdownTimeoutSeconds", s.shutdown_timeout_seconds},
      {"eventsRetentionDays", s.events_retention_days},
      {"jobNice", s.job_nice},
      {"memoryLimitMib", s.memory_limit_mib}};
}

void to_json(nlohmann::json& j, const Config& c) {
  j = nlohmann::json{{"server", c.server},
                     {"locations", c.locations},
                     {"policies", c.policies},
                     {"drPlans", c.dr_plans}};
}

}  // namespace haven::config

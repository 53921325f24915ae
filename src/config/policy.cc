// config/policy.cc — policies[]: the one decoder for a policy, whether it comes from haven.yaml
// or from the REST API's JSON, and a policy's JSON form.
#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "config/decode.h"
#include "schedule/cron.h"
#include "schedule/zone.h"

namespace haven::config {

namespace detail {

namespace {

// Whether a libpq connection string carries a password: the keyword form's password=... or a
// URI's user:password@.
bool conninfo_has_password(const std::string& conninfo) {
  // Keyword form: "password" at the start or after a space, then optional spaces and '='.
  const std::string keyword = "password";
  for (size_t at = 0; at + keyword.size() <= conninfo.size(); at++) {
    if (at > 0 && !std::isspace(static_cast<unsigned char>(conninfo[at - 1]))) continue;
    bool same = true;
    for (size_t k = 0; k < keyword.size() && same; k++) {
      same = std::tolower(static_cast<unsigned char>(conninfo[at + k])) == keyword[k];
    }
    if (!same) continue;
    size_t i = at + keyword.size();
    while (i < conninfo.size() && std::isspace(static_cast<unsigned char>(conninfo[i]))) i++;
    if (i < conninfo.size() && conninfo[i] == '=') return true;
  }
  for (std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (!conninfo.starts_with(scheme)) continue;
    std::string_view rest = std::string_view(conninfo).substr(scheme.size());
    size_t end = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, end);
    size_t at = authority.rfind('@');
    if (at != std::string_view::npos &&
        authority.substr(0, at).find(':') != std::string_view::npos) {
      return true;
    }
    // ?password=... among the URI's parameters
    if (end != std::string_view::npos && (rest.find("password=", end) != std::string_view::npos)) {
      return true;
    }
  }
  return false;
}

Schedule decode_schedule(Problems& p, const Node& node, const std::string& path) {
  Schedule s;
  Fields f(p, node, path);
  if (!f.ok()) return s;
  s.mark = p.mark(node, path);
  s.timezone_mark = p.mark(node, f.path("timezone"));
  if (auto cron = f.required_string("cron", "add the cron expression (minute hour day-of-month "
                                            "month day-of-week), e.g. cron: \"0 2 * * *\"")) {
    s.cron = *cron;
    s.cron_mark = p.mark(*f.get("cron"), f.path("cron"));
    if (cron->empty()) {
      p.add(*f.get("cron"), f.path("cron"), "is empty",
            "give a cron expression, e.g. \"0 2 * * *\" (every day at 02:00)");
    } else if (auto parsed = schedule::Cron::parse(*cron); !parsed.ok()) {
      // The schedule module's message names the field and says what to write instead.
      p.add(*f.get("cron"), f.path("cron"), parsed.error().message());
    }
  }
  if (auto v = f.choice<Strategy>("strategy")) s.strategy = *v;
  if (auto tz = f.string("timezone")) {
    s.timezone = *tz;
    s.timezone_mark = p.mark(*f.get("timezone"), f.path("timezone"));
    if (tz->empty()) {
      p.add(*f.get("timezone"), f.path("timezone"), "is empty",
            "give UTC or an IANA zone name such as Europe/Berlin, or remove it (UTC)");
    } else if (auto zone = schedule::Zone::load(*tz); !zone.ok()) {
      p.add(*f.get("timezone"), f.path("timezone"), zone.error().message());
    }
  }
  f.finish();
  return s;
}

// The retention mapping; `tz_default` is what its timezone defaults to.
Retention decode_retention(Problems& p, const Node& node, const std::string& path,
                           const std::string& tz_default, const SourceMark& tz_default_mark) {
  Retention r;
  r.timezone = tz_default;
  r.timezone_mark = tz_default_mark;
  Fields f(p, node, path);
  if (!f.ok()) return r;
  const size_t before = p.count();
  struct Count {
    const char* key;
    int* field;
    int64_t max;
  };
  const Count counts[] = {
      {"days", &r.days, 36500},         {"minCopies", &r.min_copies, kNoMax},
      {"maxCopies", &r.max_copies, kNoMax}, {"last", &r.last, kNoMax},
      {"hourly", &r.hourly, kNoMax},    {"daily", &r.daily, kNoMax},
      {"weekly", &r.weekly, kNoMax},    {"monthly", &r.monthly, kNoMax},
      {"yearly", &r.yearly, kNoMax},
  };
  for (const auto& c : counts) {
    if (auto v = f.integer(c.key, 0, c.max)) *c.field = static_cast<int>(*v);
  }
  if (auto tz = f.string("timezone")) {
    r.timezone = *tz;
    r.timezone_mark = p.mark(*f.get("timezone"), f.path("timezone"));
    if (tz->empty()) {
      p.add(*f.get("timezone"), f.path("timezone"), "is empty",
            "give UTC or an IANA zone name such as Europe/Berlin, or remove it");
    } else if (auto zone = schedule::Zone::load(*tz); !zone.ok()) {
      p.add(*f.get("timezone"), f.path("timezone"), zone.error().message());
    }
  }
  f.finish();
  if (p.count() != before) return r;  // the checks below would only repeat those problems
  const bool keeps = r.days || r.last || r.hourly || r.daily || r.weekly || r.monthly || r.yearly;
  if (!keeps) {
    p.add(node, path, "keeps nothing: every snapshot would be removed",
          "give at least one of days, last, hourly, daily, weekly, monthly or yearly, e.g. "
          "daily: 7 (minCopies and maxCopies only limit what those keep)");
  }
  if (r.max_copies > 0 && r.min_copies > r.max_copies) {
    p.add(*f.get("minCopies"), f.path("minCopies"),
          "is " + std::to_string(r.min_copies) + ", more than maxCopies (" +
              std::to_string(r.max_copies) + ")",
          "make minCopies at most maxCopies");
  }
  return r;
}


void decode_encryption(Problems& p, const Node& node, const std::string& path) {
  Fields f(p, node, path);
  if (!f.ok()) return;
  if (auto enabled = f.boolean("enabled"); enabled && !*enabled) {
    p.add(*f.get("enabled"), f.path("enabled"),
          "cannot be false: Haven repositories are always encrypted (AES-256-GCM, keys wrapped "
          "by the repository password)",
          "remove the encryption key, or write enabled: true");
  }
  if (auto algorithm = f.string("algorithm"); algorithm && *algorithm != "AES-256-GCM") {
    p.add(*f.get("algorithm"), f.path("algorithm"),
          "cannot be " + quote(*algorithm) + ": Haven encrypts every repository with AES-256-GCM",
          "remove algorithm, or write algorithm: AES-256-GCM");
  }
  f.finish();
}

std::optional<PgSource> decode_database(Problems& p, const Node& node, const std::string& path) {
  Fields f(p, node, path);
  if (!f.ok()) return std::nullopt;
  PgSource db;
  bool ok = true;
  if (auto pgdata = f.required_string(
          "pgdata", "add the cluster's data directory, e.g. pgdata: /var/lib/postgresql/15/main")) {
    ok = check_absolute(p, *f.get("pgdata"), f.path("pgdata"), *pgdata,
                        "/var/lib/postgresql/15/main");
    db.pgdata = *pgdata;
  } else {
    ok = false;
  }
  if (const Node* n = f.get("conninfo")) {
    // Never quoted: a connection string may hold a password.
    const bool text = n->kind == Node::Kind::kString ||
                      (n->plain && n->is_scalar() && n->kind != Node::Kind::kNull);
    if (text) {
      db.conninfo = n->text;
      if (conninfo_has_password(db.conninfo)) {
        p.add(*n, f.path("conninfo"),
              "holds a password, which would then sit in the configuration and be shown by the "
              "API",
              "remove it and give the password in the server user's ~/.pgpass (or the file "
              "PGPASSFILE names)");
        ok = false;
      }
    } else {
      ok = read_string(p, *n, f.path("conninfo")).has_value() && ok;
    }
  }
  f.finish();
  if (!ok) return std::nullopt;
  return db;
}

void check_tags(Problems& p, const Node& node, const std::string& path,
                const std::vector<std::string>& tags) {
  for (size_t i = 0; i < tags.size(); i++) {
    const Node& at = node.items[i];
    if (tags[i].empty() || tags[i].find(',') != std::string::npos) {
      p.add(at, index_path(path, i), "must be a non-empty tag without ',', not " + quote(tags[i]),
            "tags are words such as nightly or prod");
    }
  }
}

}  // namespace

std::optional<Objective> decode_objective(Problems& p, const Node& node, const std::string& path) {
  Fields f(p, node, path);
  if (!f.ok()) return std::nullopt;
  Objective o;
  bool ok = true;
  if (const Node* n = f.get("value")) {
    auto v = read_int(p, *n, f.path("value"), 1, 100000);
    if (v) o.value = *v;
    ok = ok && v.has_value();
  } else {
    f.missing("value", "write e.g. {value: 15, unit: minutes}");
    ok = false;
  }
  if (const Node* n = f.get("unit")) {
    auto u = read_enum<TimeUnit>(p, *n, f.path("unit"));
    if (u) o.unit = *u;
    ok = ok && u.has_value();
  } else {
    f.missing("unit", "write e.g. {value: 15, unit: minutes}: seconds, minutes, hours or days");
    ok = false;
  }
  f.finish();
  if (!ok) return std::nullopt;
  return o;
}

Policy decode_policy(Problems& p, const Node& node, const std::string& path,
                     const std::vector<std::string>* locations) {
  Policy pol;
  Fields f(p, node, path);
  if (!f.ok()) return pol;
  pol.mark = p.mark(node, path);
  auto k = [&](std::string_view key) { return p.key(key); };  // as this document spells it

  if (auto s = f.required_string("name", "give the policy a name, e.g. name: etc-hourly")) {
    pol.name = *s;
    check_name(p, *f.get("name"), f.path("name"), *s, "policy");
  }
  if (auto s = f.string("description")) pol.description = *s;
  std::optional<ResourceType> type;
  if (f.get("resource_type")) {
    type = f.choice<ResourceType>("resource_type");
  } else {
    f.missing("resource_type", "write " + k("resource_type") + ": files or " + k("resource_type") +
                                   ": database (PostgreSQL)");
  }
  if (type) pol.resource_type = *type;

  // What is backed up: read whatever is there, then check it fits the type.
  const Node* sources = f.get("sources");
  const Node* excludes = f.get("excludes");
  const Node* one_fs = f.get("one_file_system");
  const Node* database = f.get("database");
  if (sources) {
    if (auto v = read_strings(p, *sources, f.path("sources"))) {
      pol.sources = *v;
      for (size_t i = 0; i < v->size(); i++) {
        check_absolute(p, sources->items[i], index_path(f.path("sources"), i), (*v)[i], "/etc");
      }
    }
  }
  if (excludes) {
    if (auto v = read_strings(p, *excludes, f.path("excludes"))) {
      pol.excludes = *v;
      for (size_t i = 0; i < v->size(); i++) {
        if ((*v)[i].empty()) {
          p.add(excludes->items[i], index_path(f.path("excludes"), i), "is empty",
                "give a glob such as '*.tmp', or remove it");
        }
      }
    }
  }
  if (one_fs) {
    if (auto v = read_bool(p, *one_fs, f.path("one_file_system"))) pol.one_file_system = *v;
  }
  if (type == ResourceType::kFiles) {
    if (!sources) {
      f.missing("sources", "list the absolute paths the policy backs up, e.g. sources: [/etc]");
    } else if (sources->kind == Node::Kind::kList && sources->items.empty()) {
      p.add(*sources, f.path("sources"), "is empty: a files policy needs something to back up",
            "list at least one absolute path, e.g. [/etc]");
    }
    if (database) {
      p.add(*database, f.path("database"),
            "applies to database policies; this one has " + k("resource_type") + ": files",
            "remove " + k("database") + ", or write " + k("resource_type") + ": database");
    }
  } else if (type == ResourceType::kDatabase) {
    const std::string why = "a database policy backs up " + k("database") + ".pgdata";
    for (auto [key, n] : {std::pair{"sources", sources}, std::pair{"excludes", excludes},
                          std::pair{"one_file_system", one_fs}}) {
      if (n) p.add(*n, f.path(key), "does not apply: " + why, "remove " + k(key));
    }
    if (!database) {
      f.missing("database", "add " + k("database") +
                                ": {pgdata: /var/lib/postgresql/15/main} (and conninfo if "
                                "libpq's defaults do not reach the cluster)");
    }
  }
  if (database && type != ResourceType::kFiles) {
    auto db = decode_database(p, *database, f.path("database"));
    if (db) pol.database = *db;
  }

  if (auto loc = f.required_string("location", "name the location the policy backs up to")) {
    pol.location = *loc;
    if (locations && std::find(locations->begin(), locations->end(), *loc) == locations->end()) {
      std::string fix;
      if (auto guess = did_you_mean(*loc, *locations)) {
        fix = "did you mean '" + *guess + "'?";
      } else if (locations->empty()) {
        fix = "define the location under locations first";
      } else {
        std::string all;
        for (const auto& l : *locations) all += (all.empty() ? "" : ", ") + l;
        fix = "name one of the locations: " + all;
      }
      p.add(*f.get("location"), f.path("location"), "no location is named " + quote(*loc), fix);
    }
  }

  if (const Node* n = f.get("schedules")) {
    if (n->kind == Node::Kind::kList) {
      for (size_t i = 0; i < n->items.size(); i++) {
        pol.schedules.push_back(
            decode_schedule(p, n->items[i], index_path(f.path("schedules"), i)));
      }
    } else if (n->kind == Node::Kind::kNull) {
      p.add(*n, f.path("schedules"), "has no value",
            "list the schedules, or write " + k("schedules") +
                ": [] for a policy that runs only when started by hand");
    } else {
      p.add(*n, f.path("schedules"),
            std::string("must be ") + (p.style() == KeyStyle::kSnake ? "a list" : "an array") +
                " of {cron, strategy, timezone}, not " + p.describe(*n),
            p.style() == KeyStyle::kSnake ? "write schedules: [{cron: \"0 2 * * *\"}]"
                                          : "write \"schedules\": [{\"cron\": \"0 2 * * *\"}]");
    }
  } else {
    f.missing("schedules", "list when the policy runs, e.g. " + k("schedules") +
                               ": [{cron: \"0 2 * * *\"}], or [] to run it only by hand");
  }

  const std::string tz_default = pol.schedules.empty() ? "UTC" : pol.schedules[0].timezone;
  const SourceMark tz_default_mark =
      pol.schedules.empty() ? p.mark(node, join_path(f.path("retention"), "timezone"))
                            : pol.schedules[0].timezone_mark;
  if (const Node* n = f.get("retention")) {
    pol.retention = decode_retention(p, *n, f.path("retention"), tz_default, tz_default_mark);
  } else {
    // The seeds' defaults (backup_policies.retention_*).
    pol.retention.daily = 7;
    pol.retention.weekly = 4;
    pol.retention.monthly = 12;
    pol.retention.yearly = 7;
    pol.retention.timezone = tz_default;
    pol.retention.timezone_mark = tz_default_mark;
  }

  pol.compression = f.choice<Compression>("compression");
  if (const Node* n = f.get("encryption")) decode_encryption(p, *n, f.path("encryption"));

  pol.sla_tier = f.choice<SlaTier>("sla_tier");
  std::optional<Objective> rpo, rto;
  if (const Node* n = f.get("rpo")) rpo = decode_objective(p, *n, f.path("rpo"));
  if (const Node* n = f.get("rto")) rto = decode_objective(p, *n, f.path("rto"));
  pol.rpo = rpo ? rpo : pol.sla_tier ? std::optional(tier_rpo(*pol.sla_tier)) : std::nullopt;
  pol.rto = rto ? rto : pol.sla_tier ? std::optional(tier_rto(*pol.sla_tier)) : std::nullopt;

  if (auto v = f.integer("max_parallel_jobs", 1, 256)) pol.max_parallel_jobs = static_cast<int>(*v);
  if (auto v = f.integer("bandwidth_limit_mbps", 1, 1000000)) {
    pol.bandwidth_limit_mbps = static_cast<int>(*v);
  }
  if (auto v = f.boolean("is_active")) pol.is_active = *v;
  if (auto v = f.choice<CatchUp>("catch_up")) pol.catch_up = *v;
  if (auto v = f.choice<Overlap>("overlap")) pol.overlap = *v;
  if (auto v = f.integer("retry_count", 0, 100)) pol.retry_count = static_cast<int>(*v);
  if (auto v = f.integer("retry_backoff_seconds", 1, 86400)) {
    pol.retry_backoff_seconds = static_cast<int>(*v);
  }
  if (auto v = f.choice<Priority>("priority")) pol.priority = *v;
  if (auto v = f.choice<IntegrityCheck>("integrity_check")) pol.integrity_check = *v;
  if (const Node* n = f.get("tags")) {
    if (auto v = read_strings(p, *n, f.path("tags"))) {
      check_tags(p, *n, f.path("tags"), *v);
      pol.tags = *v;
    }
  }
  f.finish();
  return pol;
}

}  // namespace detail

// --- JSON ---

namespace {

nlohmann::json objective_json(const Objective& o) {
  return {{"value", o.value}, {"unit", name(o.unit)}};
}

}  // namespace

void to_json(nlohmann::json& j, const Policy& p) {
  j = nlohmann::json::object();
  j["name"] = p.name;
  j["description"] = p.description;
  j["resourceType"] = name(p.resource_type);
  if (p.resource_type == ResourceType::kFiles) {
    j["sources"] = p.sources;
    j["excludes"] = p.excludes;
    j["oneFileSystem"] = p.one_file_system;
  }
  if (p.database) {
    j["database"] = {{"pgdata", p.database->pgdata}, {"conninfo", p.database->conninfo}};
  }
  j["location"] = p.location;
  j["schedules"] = nlohmann::json::array();
  for (const auto& s : p.schedules) {
    j["schedules"].push_back(
        {{"cron", s.cron}, {"strategy", name(s.strategy)}, {"timezone", s.timezone}});
  }
  const Retention& r = p.retention;
  j["retention"] = {{"days", r.days},       {"minCopies", r.min_copies},
                    {"maxCopies", r.max_copies}, {"last", r.last},
                    {"hourly", r.hourly},   {"daily", r.daily},
                    {"weekly", r.weekly},   {"monthly", r.monthly},
                    {"yearly", r.yearly},   {"timezone", r.timezone}};
  if (p.compression) j["compression"] = name(*p.compression);
  j["encryption"] = {{"enabled", true}, {"algorithm", "AES-256-GCM"}};
  if (p.sla_tier) j["slaTier"] = name(*p.sla_tier);
  if (p.rpo) j["rpo"] = objective_json(*p.rpo);
  if (p.rto) j["rto"] = objective_json(*p.rto);
  j["maxParallelJobs"] = p.max_parallel_jobs;
  if (p.bandwidth_limit_mbps) j["bandwidthLimitMbps"] = *p.bandwidth_limit_mbps;
  j["isActive"] = p.is_active;
  j["catchUp"] = name(p.catch_up);
  j["overlap"] = name(p.overlap);
  j["retryCount"] = p.retry_count;
  j["retryBackoffSeconds"] = p.retry_backoff_seconds;
  j["priority"] = name(p.priority);
  j["integrityCheck"] = name(p.integrity_check);
  j["tags"] = p.tags;
}

Checked<Policy> check_policy_json(const nlohmann::json& json,
                                  const std::vector<Location>& locations) {
  detail::Problems p("", detail::KeyStyle::kCamel);
  std::vector<std::string> names;
  for (const auto& l : locations) names.push_back(l.name);
  detail::Node root = detail::node_from_json(json);
  Policy policy = detail::decode_policy(p, root, "", &names);
  return {std::move(policy), p.take()};
}

Checked<Policy> check_policy_json_text(std::string_view text,
                                       const std::vector<Location>& locations) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range (1e99999)
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 5: ..."
    size_t close = what.find("] ");
    if (what.starts_with("[json.exception") && close != std::string::npos) {
      what = what.substr(close + 2);
    }
    Diagnostic d;
    d.message = "not valid JSON: " + what;
    d.fix = "send one JSON object describing the policy";
    return {Policy{}, {d}};
  }
  return check_policy_json(json, locations);
}

Result<Policy> policy_from_json(const nlohmann::json& json,
                                const std::vector<Location>& locations) {
  Checked<Policy> c = check_policy_json(json, locations);
  if (!c.ok()) return config_error(c.diagnostics);
  return std::move(c.value);
}

}  // namespace haven::config

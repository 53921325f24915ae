// config/dr.cc — the `dr_plans` section: disaster-recovery plans, their steps, checks and
// validations; the checks across them (a graph without cycles, variables that name steps run
// before, policies of the right kind); and a plan's JSON for the REST API, through the same
// decoder.
#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "config/decode.h"

namespace haven::config {

std::string_view name(PlanType v) {
  switch (v) {
    case PlanType::kHotSite: return "hot_site";
    case PlanType::kWarmSite: return "warm_site";
    case PlanType::kColdSite: return "cold_site";
    case PlanType::kCloudFailover: return "cloud_failover";
    case PlanType::kDataOnly: return "data_only";
  }
  return "?";
}

std::string_view name(PlanPriority v) {
  switch (v) {
    case PlanPriority::kCritical: return "critical";
    case PlanPriority::kHigh: return "high";
    case PlanPriority::kMedium: return "medium";
    case PlanPriority::kLow: return "low";
  }
  return "?";
}

std::string_view name(FailoverMode v) { return detail::enum_name(v); }

std::string_view name(PlanStep::Kind v) {
  switch (v) {
    case PlanStep::Kind::kRestoreFiles: return "restore_files";
    case PlanStep::Kind::kRestorePostgres: return "restore_postgres";
    case PlanStep::Kind::kCommand: return "command";
    case PlanStep::Kind::kSql: return "sql";
    case PlanStep::Kind::kChecksum: return "checksum";
    case PlanStep::Kind::kSwitch: return "switch";
  }
  return "?";
}

std::string describe(const HealthCheck& c) {
  switch (c.kind) {
    case HealthCheck::Kind::kHttp:
      return "http " + c.target + " → " + std::to_string(c.expect_status) +
             (c.expect_body.empty() ? "" : " containing '" + c.expect_body + "'");
    case HealthCheck::Kind::kTcp: return "tcp " + c.target;
    case HealthCheck::Kind::kSql: return "sql " + c.target + " → " + c.expect;
    case HealthCheck::Kind::kChecksum: return "checksum of " + c.target;
    case HealthCheck::Kind::kCommand: return "command " + c.target;
  }
  return "?";
}

const PlanStep* DrPlan::find_step(std::string_view step) const {
  for (const auto& s : steps) {
    if (s.name == step) return &s;
  }
  return nullptr;
}

const DrPlan* Config::find_plan(std::string_view wanted) const {
  for (const auto& p : dr_plans) {
    if (p.name == wanted) return &p;
  }
  return nullptr;
}

namespace detail {

namespace {

const std::vector<std::string> kCheckKeys = {"http", "tcp", "sql", "checksum", "command"};
const std::vector<std::string> kStepKeys = {"restore_files", "restore_postgres", "command",
                                            "sql", "checksum", "switch"};

// A password written into a conninfo would sit in haven.yaml and in JSON.
bool has_password(const std::string& conninfo) {
  std::string lower = conninfo;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  return lower.find("password") != std::string::npos ||
         (lower.starts_with("postgres") && lower.find('@') != std::string::npos &&
          lower.find(':', lower.find("//") + 2) < lower.find('@'));
}

// Reads a health check; `keys_done` lets a step reuse it for wait (which also takes timeout).
std::optional<HealthCheck> decode_check_fields(Problems& p, Fields& f, bool allow_checksum) {
  HealthCheck c;
  std::vector<std::string> given;
  for (const auto& k : kCheckKeys) {
    if (f.get(k) != nullptr) given.push_back(k);
  }
  auto expect_status = f.integer("expect_status", 100, 599);
  auto expect_body = f.string("expect_body");
  auto conninfo = f.string("conninfo");
  const Node* expect = f.get("expect");
  if (given.size() != 1) {
    p.add(f.node(), f.path(),
          given.empty() ? "names no check" : "names " + std::to_string(given.size()) + " checks",
          "write exactly one of: http: URL, tcp: HOST:PORT, sql: QUERY (with expect), "
          "checksum: STEP, command: \"...\"");
    return std::nullopt;
  }
  const std::string& k = given[0];
  auto target = f.string(k);
  if (!target) return std::nullopt;
  if (target->empty()) {
    p.add(*f.get(k), f.path(k), "is empty", "write what to check");
    return std::nullopt;
  }
  c.target = *target;
  c.mark = p.mark(f.node(), f.path());
  if (k == "http") {
    c.kind = HealthCheck::Kind::kHttp;
    if (!c.target.starts_with("http://") && !c.target.starts_with("https://")) {
      p.add(*f.get(k), f.path(k), "must be an http:// or https:// URL, not " + quote(c.target),
            "write e.g. http://127.0.0.1:${port}/");
      return std::nullopt;
    }
  } else if (k == "tcp") {
    c.kind = HealthCheck::Kind::kTcp;
    size_t colon = c.target.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == c.target.size()) {
      p.add(*f.get(k), f.path(k), "must be HOST:PORT, not " + quote(c.target),
            "write e.g. 127.0.0.1:${port}");
      return std::nullopt;
    }
  } else if (k == "sql") {
    c.kind = HealthCheck::Kind::kSql;
    if (expect == nullptr) {
      f.missing("expect", "write the value the query must return, or a predicate such as '>= 1'");
      return std::nullopt;
    }
    auto e = read_string(p, *expect, f.path("expect"));
    if (!e) return std::nullopt;
    c.expect = *e;
  } else if (k == "checksum") {
    if (!allow_checksum) {
      p.add(*f.get(k), f.path(k), "cannot be waited for", "wait for http, tcp, sql or a command");
      return std::nullopt;
    }
    c.kind = HealthCheck::Kind::kChecksum;
  } else {
    c.kind = HealthCheck::Kind::kCommand;
  }
  if (k != "http" && (expect_status || expect_body)) {
    p.add(f.node(), f.path(), "sets expect_status or expect_body on a " + k + " check",
          "those belong to http checks; remove them");
  }
  if (expect_status) c.expect_status = static_cast<int>(*expect_status);
  if (expect_body) c.expect_body = *expect_body;
  if (k != "sql" && (conninfo || expect != nullptr)) {
    p.add(f.node(), f.path(), "sets conninfo or expect on a " + k + " check",
          "those belong to sql checks; remove them");
  }
  if (conninfo) {
    if (has_password(*conninfo)) {
      p.add(*f.get("conninfo"), f.path("conninfo"), "holds a password",
            "put it in ~/.pgpass or a file PGPASSFILE names, not in haven.yaml");
      return std::nullopt;
    }
    c.conninfo = *conninfo;
  }
  return c;
}

std::optional<HealthCheck> decode_check(Problems& p, const Node& node, const std::string& path) {
  Fields f(p, node, path);
  if (!f.ok()) return std::nullopt;
  auto c = decode_check_fields(p, f, true);
  f.finish();
  return c;
}

std::optional<ValidationStep> decode_validation(Problems& p, const Node& node,
                                                const std::string& path) {
  Fields f(p, node, path);
  if (!f.ok()) return std::nullopt;
  ValidationStep v;
  v.mark = p.mark(node, path);
  bool ok = true;
  if (auto s = f.required_string("name", "give the validation a name, e.g. name: content")) {
    v.name = *s;
  } else {
    ok = false;
  }
  if (const Node* checks = f.get("checks")) {
    if (checks->kind != Node::Kind::kList || checks->items.empty()) {
      p.add(*checks, f.path("checks"), "must be a non-empty list of checks",
            "write e.g. checks: [{http: \"http://127.0.0.1:${serve.port}/\"}]");
      ok = false;
    } else {
      for (size_t i = 0; i < checks->items.size(); i++) {
        auto c = decode_check(p, checks->items[i], index_path(f.path("checks"), i));
        if (c) v.checks.push_back(std::move(*c));
        else ok = false;
      }
    }
  } else {
    f.missing("checks", "list what must pass, e.g. checks: [{tcp: \"127.0.0.1:${db.port}\"}]");
    ok = false;
  }
  if (const Node* t = f.get("threshold")) {
    auto n = read_int(p, *t, f.path("threshold"), 1, kNoMax);
    if (n && ok && static_cast<size_t>(*n) > v.checks.size()) {
      p.add(*t, f.path("threshold"),
            "is " + std::to_string(*n) + " but there are only " + std::to_string(v.checks.size()) +
                " checks",
            "set it to at most " + std::to_string(v.checks.size()));
      ok = false;
    }
    if (n) v.threshold = static_cast<int>(*n);
  }
  if (v.threshold == 0) v.threshold = static_cast<int>(v.checks.size());
  if (auto t = f.integer("timeout", 1, 86400)) v.timeout_seconds = static_cast<int>(*t);
  f.finish();
  if (!ok) return std::nullopt;
  return v;
}

std::optional<PlanStep> decode_step(Problems& p, const Node& node, const std::string& path,
                                    const std::vector<Policy>* policies) {
  Fields f(p, node, path);
  if (!f.ok()) return std::nullopt;
  PlanStep s;
  s.mark = p.mark(node, path);
  bool ok = true;
  if (auto n = f.required_string("name", "give the step a name, e.g. name: restore-etc")) {
    s.name = *n;
    check_name(p, *f.get("name"), f.path("name"), *n, "step");
  } else {
    ok = false;
  }
  if (auto d = f.strings("depends_on")) s.depends_on = *d;
  if (auto t = f.integer("timeout", 1, 604800)) s.timeout_seconds = static_cast<int>(*t);
  std::vector<std::string> given;
  for (const auto& k : kStepKeys) {
    if (f.get(k) != nullptr) given.push_back(k);
  }
  const Node* wait = f.get("wait");
  if (given.size() != 1) {
    p.add(node, path,
          given.empty() ? "says nothing to do" : "says " + std::to_string(given.size()) +
                                                     " things to do (" + given[0] + ", " +
                                                     given[1] + ")",
          "write exactly one of: restore_files, restore_postgres, command, sql, checksum, "
          "switch");
    f.finish();
    return std::nullopt;
  }
  const std::string& k = given[0];
  const Node& body = *f.get(k);
  const std::string bpath = f.path(k);
  auto check_policy = [&](const Node& at, const std::string& at_path, const std::string& policy,
                          ResourceType want) {
    if (policies == nullptr) return;
    auto it = std::find_if(policies->begin(), policies->end(),
                           [&](const Policy& pol) { return pol.name == policy; });
    if (it == policies->end()) {
      std::string list;
      for (const auto& pol : *policies) {
        if (pol.resource_type == want) list += (list.empty() ? "" : ", ") + pol.name;
      }
      p.add(at, at_path, "names policy " + quote(policy) + ", which is not defined",
            list.empty() ? "define it under policies" : "use one of: " + list);
      ok = false;
    } else if (it->resource_type != want) {
      p.add(at, at_path,
            "names policy " + quote(policy) + ", a " + std::string(name(it->resource_type)) +
                " policy",
            want == ResourceType::kFiles ? "restore a database policy with restore_postgres"
                                         : "restore a files policy with restore_files");
      ok = false;
    }
  };
  if (k == "restore_files" || k == "restore_postgres") {
    const bool files = k == "restore_files";
    s.kind = files ? PlanStep::Kind::kRestoreFiles : PlanStep::Kind::kRestorePostgres;
    Fields r(p, body, bpath);
    if (!r.ok()) return std::nullopt;
    if (auto pol = r.required_string("policy", "name the policy whose backups to restore")) {
      s.policy = *pol;
      check_policy(*r.get("policy"), r.path("policy"), *pol,
                   files ? ResourceType::kFiles : ResourceType::kDatabase);
    } else {
      ok = false;
    }
    if (auto t = r.string("target")) {
      if (!check_absolute(p, *r.get("target"), r.path("target"), *t,
                          files ? "/srv/restore/etc" : "/var/lib/postgresql/15/main")) {
        ok = false;
      }
      s.target = *t;
    }
    if (files) {
      if (auto v = r.string("snapshot")) s.snapshot = *v;
      if (auto v = r.string("at")) s.at = *v;
      if (auto v = r.strings("include")) s.includes = *v;
      if (r.get("at") != nullptr && r.get("snapshot") != nullptr) {
        p.add(body, bpath, "gives both snapshot and at", "choose the snapshot one way");
        ok = false;
      }
    } else {
      if (auto v = r.string("time")) s.time = *v;
      if (auto v = r.integer("port", 1, 65535)) s.port = static_cast<int>(*v);
    }
    r.finish();
  } else if (k == "command") {
    s.kind = PlanStep::Kind::kCommand;
    if (auto c = read_string(p, body, bpath)) s.command = *c;
    else ok = false;
    if (wait != nullptr) {
      Fields w(p, *wait, f.path("wait"));
      if (!w.ok()) return std::nullopt;
      auto c = decode_check_fields(p, w, false);
      if (auto t = w.integer("timeout", 1, 86400)) s.wait_timeout_seconds = static_cast<int>(*t);
      w.finish();
      if (c) s.wait = std::move(*c);
      else ok = false;
    }
  } else if (k == "switch") {
    s.kind = PlanStep::Kind::kSwitch;
    Fields w(p, body, bpath);
    if (!w.ok()) return std::nullopt;
    if (auto c = w.required_string("command", "give the command that switches DNS or traffic")) {
      s.command = *c;
    } else {
      ok = false;
    }
    if (const Node* kind = w.get("kind")) {
      auto i = read_choice(p, *kind, w.path("kind"), {"dns", "traffic"});
      if (i) s.switch_kind = *i == 0 ? "dns" : "traffic";
      else ok = false;
    } else {
      s.switch_kind = "dns";
    }
    w.finish();
  } else {
    // sql or checksum: the step is one check, given inline: `sql: QUERY` with conninfo and
    // expect beside it, or `checksum: STEP`.
    s.kind = k == "sql" ? PlanStep::Kind::kSql : PlanStep::Kind::kChecksum;
    auto c = decode_check_fields(p, f, true);
    if (c) s.check = std::move(*c);
    else ok = false;
  }
  if (wait != nullptr && s.kind != PlanStep::Kind::kCommand) {
    p.add(*wait, f.path("wait"), "only a command step can wait for a check",
          "remove wait, or make the step a command");
    ok = false;
  }
  f.finish();
  if (!ok) return std::nullopt;
  return s;
}

// ${...} references in `text`: (name, field), where a bare ${port} gives ("port", "").
struct VarRef {
  std::string step, field;
};
std::vector<VarRef> variables(const std::string& text, std::string* malformed) {
  std::vector<VarRef> out;
  size_t i = 0;
  while ((i = text.find("${", i)) != std::string::npos) {
    size_t close = text.find('}', i);
    if (close == std::string::npos) {
      if (malformed) *malformed = text.substr(i);
      return out;
    }
    std::string inner = text.substr(i + 2, close - i - 2);
    size_t dot = inner.rfind('.');
    if (dot == std::string::npos) out.push_back({inner, ""});
    else out.push_back({inner.substr(0, dot), inner.substr(dot + 1)});
    i = close + 1;
  }
  return out;
}

// Every string of a check or step that may hold variables.
std::vector<std::string> texts(const HealthCheck& c) {
  return {c.target, c.conninfo, c.expect, c.expect_body};
}

}  // namespace

void check_plan(Problems& p, DrPlan& plan) {
  const std::string base = plan.mark.path;
  std::map<std::string, const PlanStep*> by_name;
  for (const auto& s : plan.steps) {
    if (!by_name.emplace(s.name, &s).second) {
      p.add(s.mark.line, s.mark.column, join_path(s.mark.path, "name"),
            "another step is named " + quote(s.name), "give each step its own name");
    }
  }
  bool graph_ok = true;
  for (const auto& s : plan.steps) {
    for (const auto& d : s.depends_on) {
      if (!by_name.contains(d)) {
        p.add(s.mark.line, s.mark.column, join_path(s.mark.path, "depends_on"),
              "names step " + quote(d) + ", which the plan does not have",
              "name one of the plan's steps");
        graph_ok = false;
      } else if (d == s.name) {
        p.add(s.mark.line, s.mark.column, join_path(s.mark.path, "depends_on"),
              "makes the step depend on itself", "remove " + quote(d) + " from depends_on");
        graph_ok = false;
      }
    }
  }
  if (!graph_ok) return;
  // Cycles: a depth-first search that reports the first cycle it meets, as a path.
  std::map<std::string, int> state;  // 0 new, 1 on the stack, 2 done
  std::vector<std::string> stack;
  bool cycle = false;
  std::function<void(const PlanStep&)> visit = [&](const PlanStep& s) {
    if (cycle) return;
    state[s.name] = 1;
    stack.push_back(s.name);
    for (const auto& d : s.depends_on) {
      if (cycle) break;
      if (state[d] == 1) {
        std::string path;
        auto from = std::find(stack.begin(), stack.end(), d);
        for (auto it = from; it != stack.end(); ++it) path += *it + " → ";
        path += d;
        p.add(s.mark.line, s.mark.column, join_path(base, "steps"),
              "depend on each other in a cycle: " + path,
              "remove one of these dependencies: a plan's steps must form a graph without cycles");
        cycle = true;
      } else if (state[d] == 0) {
        visit(*by_name.at(d));
      }
    }
    stack.pop_back();
    state[s.name] = 2;
  };
  for (const auto& s : plan.steps) {
    if (state[s.name] == 0) visit(s);
  }
  if (cycle) return;

  // What each step has run after (its dependencies' closure).
  std::map<std::string, std::set<std::string>> before;
  std::function<const std::set<std::string>&(const std::string&)> closure =
      [&](const std::string& n) -> const std::set<std::string>& {
    auto it = before.find(n);
    if (it != before.end()) return it->second;
    std::set<std::string> all;
    for (const auto& d : by_name.at(n)->depends_on) {
      all.insert(d);
      const auto& sub = closure(d);
      all.insert(sub.begin(), sub.end());
    }
    return before[n] = std::move(all);
  };

  const std::set<std::string> fields = {"path", "port", "host", "conninfo"};
  // `owner`: the step using the text ("" for validations, which run after every step).
  auto check_text = [&](const std::string& text, const SourceMark& at, const std::string& owner,
                        bool own_port) {
    std::string malformed;
    for (const auto& v : variables(text, &malformed)) {
      if (v.field.empty()) {
        if (v.step == "sandbox" || (v.step == "port" && own_port)) continue;
        p.add(at.line, at.column, at.path, "uses ${" + v.step + "}, which is not defined here",
              own_port ? "use ${port}, ${sandbox} or ${STEP.path|port|host|conninfo}"
                       : "use ${sandbox} or ${STEP.path|port|host|conninfo}");
        continue;
      }
      auto step = by_name.find(v.step);
      if (step == by_name.end()) {
        p.add(at.line, at.column, at.path,
              "uses ${" + v.step + "." + v.field + "}, but the plan has no step " + quote(v.step),
              "name one of the plan's steps");
      } else if (!fields.contains(v.field)) {
        p.add(at.line, at.column, at.path,
              "uses ${" + v.step + "." + v.field + "}: a step has no " + quote(v.field),
              "use .path, .port, .host or .conninfo");
      } else if (!owner.empty() && !closure(owner).contains(v.step)) {
        p.add(at.line, at.column, at.path,
              "uses ${" + v.step + "." + v.field + "}, but step " + quote(owner) +
                  " does not depend on " + quote(v.step),
              "add " + quote(v.step) + " to depends_on");
      }
    }
    if (!malformed.empty()) {
      p.add(at.line, at.column, at.path, "has an unclosed variable " + quote(malformed),
            "write variables as ${name}");
    }
  };
  auto check_checksum = [&](const HealthCheck& c) {
    if (c.kind != HealthCheck::Kind::kChecksum) return;
    auto step = by_name.find(c.target);
    if (step == by_name.end() || step->second->kind != PlanStep::Kind::kRestoreFiles) {
      p.add(c.mark.line, c.mark.column, c.mark.path,
            "checks the checksums of " + quote(c.target) + ", which is not a restore_files step",
            "name a restore_files step of the plan");
    }
  };
  for (const auto& s : plan.steps) {
    std::vector<std::string> t = {s.command, s.target};
    if (s.wait) {
      for (auto& x : texts(*s.wait)) t.push_back(x);
    }
    if (s.check) {
      for (auto& x : texts(*s.check)) t.push_back(x);
      check_checksum(*s.check);
      if (s.check->kind == HealthCheck::Kind::kChecksum &&
          !closure(s.name).contains(s.check->target)) {
        p.add(s.mark.line, s.mark.column, s.mark.path,
              "checks " + quote(s.check->target) + " but does not depend on it",
              "add " + quote(s.check->target) + " to depends_on");
      }
    }
    for (const auto& x : t) check_text(x, s.mark, s.name, true);
  }
  for (auto* list : {&plan.prerequisites, &plan.validation}) {
    std::set<std::string> names;
    for (const auto& v : *list) {
      if (!names.insert(v.name).second) {
        p.add(v.mark.line, v.mark.column, join_path(v.mark.path, "name"),
              "another validation here is named " + quote(v.name), "give each its own name");
      }
      for (const auto& c : v.checks) {
        if (list == &plan.prerequisites) {
          // Prerequisites run before every step: they can name no step's results.
          for (const auto& x : texts(c)) {
            for (const auto& var : variables(x, nullptr)) {
              if (!var.field.empty() || var.step != "sandbox") {
                p.add(c.mark.line, c.mark.column, c.mark.path,
                      "uses a step's results, but prerequisites run before every step",
                      "check what must hold before recovery starts (a host, a repository)");
                break;
              }
            }
          }
          if (c.kind == HealthCheck::Kind::kChecksum) {
            p.add(c.mark.line, c.mark.column, c.mark.path,
                  "is a checksum, but prerequisites run before anything is restored",
                  "move it to validation");
          }
          continue;
        }
        for (const auto& x : texts(c)) check_text(x, c.mark, "", false);
        check_checksum(c);
      }
    }
  }
}

DrPlan decode_plan(Problems& p, const Node& node, const std::string& path,
                   const std::vector<Policy>* policies) {
  DrPlan plan;
  Fields f(p, node, path);
  if (!f.ok()) return plan;
  plan.mark = p.mark(node, path);
  const size_t before = p.count();
  if (auto s = f.required_string("name", "give the plan a name, e.g. name: files-drill")) {
    plan.name = *s;
    check_name(p, *f.get("name"), f.path("name"), *s, "plan");
  }
  if (auto s = f.string("description")) plan.description = *s;
  if (f.get("plan_type")) {
    if (auto v = f.choice<PlanType>("plan_type")) plan.plan_type = *v;
  }
  if (auto v = f.choice<PlanPriority>("priority")) plan.priority = *v;
  for (const char* key : {"rto", "rpo"}) {
    if (const Node* n = f.get(key)) {
      if (auto o = decode_objective(p, *n, f.path(key))) {
        (std::string_view(key) == "rto" ? plan.rto : plan.rpo) = *o;
      }
    } else {
      f.missing(key, std::string("give the plan's target, e.g. ") + key + ": {value: " +
                         (std::string_view(key) == "rto" ? "30" : "60") + ", unit: minutes}");
    }
  }
  if (const Node* steps = f.get("steps")) {
    if (steps->kind != Node::Kind::kList || steps->items.empty()) {
      p.add(*steps, f.path("steps"), "must be a non-empty list of steps",
            "write each step as an item '- name: ...'");
    } else {
      for (size_t i = 0; i < steps->items.size(); i++) {
        if (auto s = decode_step(p, steps->items[i], index_path(f.path("steps"), i), policies)) {
          plan.steps.push_back(std::move(*s));
        }
      }
    }
  } else {
    f.missing("steps", "list the recovery steps, e.g. steps: [{name: restore-etc, "
                       "restore_files: {policy: etc}}]");
  }
  for (const char* key : {"prerequisites", "validation"}) {
    const Node* list = f.get(key);
    if (list == nullptr) continue;
    auto& into = std::string_view(key) == "validation" ? plan.validation : plan.prerequisites;
    if (list->kind != Node::Kind::kList) {
      p.add(*list, f.path(key), "must be a list of validations",
            "write each as an item '- name: ...' with checks, threshold and timeout");
      continue;
    }
    for (size_t i = 0; i < list->items.size(); i++) {
      if (auto v = decode_validation(p, list->items[i], index_path(f.path(key), i))) {
        into.push_back(std::move(*v));
      }
    }
  }
  if (auto v = f.strings("required_personnel")) plan.required_personnel = *v;
  if (auto v = f.integer("test_frequency_days", 0, 3650)) {
    plan.test_frequency_days = static_cast<int>(*v);
  }
  if (const Node* a = f.get("approval")) {
    Fields af(p, *a, f.path("approval"));
    if (af.ok()) {
      if (auto r = af.boolean("required")) plan.approval_required = *r;
      af.finish();
    }
  }
  if (auto v = f.boolean("is_active")) plan.is_active = *v;
  f.finish();
  // The checks across steps only make sense once every step could be read.
  if (p.count() == before) check_plan(p, plan);
  return plan;
}

Failover decode_failover(Problems& p, const Node& node, const std::string& path, const Config& cfg) {
  Failover fo;
  Fields f(p, node, path);
  if (!f.ok()) return fo;
  fo.mark = p.mark(node, path);
  if (auto s = f.required_string("name", "give it a name, e.g. name: db-failover")) {
    fo.name = *s;
    check_name(p, *f.get("name"), f.path("name"), *s, "failover");
  }
  if (f.get("mode")) {
    if (auto v = f.choice<FailoverMode>("mode")) fo.mode = *v;
  } else {
    f.missing("mode", "write mode: active_passive, active_active, pilot_light or warm_standby");
  }
  if (auto v = f.boolean("auto_failover")) fo.auto_failover = *v;
  if (auto v = f.integer("health_check_interval", 1, 3600)) fo.health_check_interval_seconds = static_cast<int>(*v);
  if (auto v = f.integer("failure_threshold", 1, 100)) fo.failure_threshold = static_cast<int>(*v);
  if (const Node* probe = f.get("probe")) {
    Fields pf(p, *probe, f.path("probe"));
    if (pf.ok()) {
      auto c = decode_check_fields(p, pf, false);
      pf.finish();
      if (c) {
        fo.probe = *c;
        if (c->target.find("${") != std::string::npos || c->conninfo.find("${") != std::string::npos) {
          p.add(*probe, f.path("probe"), "uses a variable, but a probe watches the real primary",
                "write its real address");
        }
      }
    }
  } else {
    f.missing("probe", "say how to check the primary, e.g. probe: {tcp: \"db.example.com:5432\"}");
  }
  const Node* regions = f.get("regions");
  if (regions == nullptr) {
    f.missing("regions", "list at least two regions, the primary's first, e.g. regions: [eu-west, eu-north]");
  } else if (auto v = read_strings(p, *regions, f.path("regions"))) {
    fo.regions = *v;
    if (fo.regions.size() < 2) {
      p.add(*regions, f.path("regions"),
            "names " + std::to_string(fo.regions.size()) + " region(s): a failover needs at least two",
            "list the primary's region and at least one other");
    }
  }
  if (auto s = f.string("region")) {
    fo.region = *s;
    if (std::find(fo.regions.begin(), fo.regions.end(), *s) == fo.regions.end()) {
      p.add(*f.get("region"), f.path("region"), "is not one of regions", "name one of regions");
    }
  } else if (fo.regions.size() >= 2) {
    fo.region = fo.regions[1];
  }
  if (auto s = f.string("plan")) {
    fo.plan = *s;
    if (cfg.find_plan(*s) == nullptr) {
      p.add(*f.get("plan"), f.path("plan"), "names plan " + quote(*s) + ", which dr_plans does not define",
            "define it under dr_plans (before failover)");
    }
  }
  if (const Node* sb = f.get("standby")) {
    Fields sf(p, *sb, f.path("standby"));
    if (sf.ok()) {
      Standby st;
      if (auto s = sf.required_string("policy", "name the database policy whose backups feed it")) {
        st.policy = *s;
        const Policy* pol = cfg.find_policy(*s);
        if (pol == nullptr || pol->resource_type != ResourceType::kDatabase) {
          p.add(*sf.get("policy"), sf.path("policy"),
                "names " + quote(*s) + ", which is not a database policy", "name a database policy");
        }
      }
      if (auto s = sf.required_string("data_directory", "say where the standby's data directory goes")) {
        st.data_directory = *s;
        check_absolute(p, *sf.get("data_directory"), sf.path("data_directory"), *s, "/var/lib/haven/standby");
      }
      if (auto v = sf.integer("port", 1, 65535)) st.port = static_cast<int>(*v);
      else if (!sf.get("port")) sf.missing("port", "give the standby's port, e.g. port: 5433");
      sf.finish();
      fo.standby = st;
    }
  }
  if (auto s = f.string("lease_location")) {
    fo.lease_location = *s;
    if (cfg.find_location(*s) == nullptr) {
      p.add(*f.get("lease_location"), f.path("lease_location"), "names no location", "name one of locations");
    }
  }
  if (const Node* dns = f.get("dns")) {
    Fields df(p, *dns, f.path("dns"));
    if (df.ok()) {
      if (auto s = df.required_string("command", "give the command that switches DNS")) fo.dns_command = *s;
      df.finish();
    }
  }
  if (auto v = f.strings("channels")) fo.channels = *v;
  f.finish();
  if (fo.mode == FailoverMode::kWarmStandby && !fo.standby) {
    f.missing("standby", "warm_standby keeps a standby cluster: give standby: {policy, data_directory, port}");
  }
  if ((fo.mode == FailoverMode::kPilotLight || fo.mode == FailoverMode::kActivePassive) && fo.plan.empty()) {
    f.missing("plan", std::string(name(fo.mode)) + " recovers by running a plan: name one of dr_plans");
  }
  if (fo.lease_location.empty()) {
    const Policy* pol = fo.standby ? cfg.find_policy(fo.standby->policy) : nullptr;
    fo.lease_location = pol ? pol->location : cfg.locations.empty() ? "" : cfg.locations[0].name;
  }
  return fo;
}

}  // namespace detail

Checked<DrPlan> check_plan_json(const nlohmann::json& json, const std::vector<Policy>& policies) {
  detail::Problems p("", detail::KeyStyle::kCamel);
  detail::Node root = detail::node_from_json(json);
  DrPlan plan = detail::decode_plan(p, root, "", &policies);
  return {std::move(plan), p.take()};
}

void to_json(nlohmann::json& j, const HealthCheck& c) {
  static const char* keys[] = {"http", "tcp", "sql", "checksum", "command"};
  j = nlohmann::json{{keys[static_cast<int>(c.kind)], c.target}};
  if (c.kind == HealthCheck::Kind::kHttp) {
    j["expectStatus"] = c.expect_status;
    if (!c.expect_body.empty()) j["expectBody"] = c.expect_body;
  }
  if (c.kind == HealthCheck::Kind::kSql) {
    j["expect"] = c.expect;
    if (!c.conninfo.empty()) j["conninfo"] = c.conninfo;
  }
}

namespace {

nlohmann::json objective_json(const Objective& o) {
  return {{"value", o.value}, {"unit", name(o.unit)}};
}

nlohmann::json validations_json(const std::vector<ValidationStep>& list) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& v : list) {
    out.push_back({{"name", v.name},
                   {"checks", v.checks},
                   {"threshold", v.threshold},
                   {"timeout", v.timeout_seconds}});
  }
  return out;
}

}  // namespace

void to_json(nlohmann::json& j, const DrPlan& plan) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : plan.steps) {
    nlohmann::json step = {{"name", s.name}, {"dependsOn", s.depends_on},
                           {"timeout", s.timeout_seconds}};
    switch (s.kind) {
      case PlanStep::Kind::kRestoreFiles: {
        nlohmann::json r = {{"policy", s.policy}};
        if (!s.at.empty()) r["at"] = s.at;
        else r["snapshot"] = s.snapshot;
        if (!s.target.empty()) r["target"] = s.target;
        if (!s.includes.empty()) r["include"] = s.includes;
        step["restoreFiles"] = r;
        break;
      }
      case PlanStep::Kind::kRestorePostgres: {
        nlohmann::json r = {{"policy", s.policy}};
        if (!s.time.empty()) r["time"] = s.time;
        if (!s.target.empty()) r["target"] = s.target;
        if (s.port != 0) r["port"] = s.port;
        step["restorePostgres"] = r;
        break;
      }
      case PlanStep::Kind::kCommand:
        step["command"] = s.command;
        if (s.wait) {
          nlohmann::json w = *s.wait;
          w["timeout"] = s.wait_timeout_seconds;
          step["wait"] = w;
        }
        break;
      case PlanStep::Kind::kSwitch:
        step["switch"] = {{"command", s.command}, {"kind", s.switch_kind}};
        break;
      case PlanStep::Kind::kSql:
      case PlanStep::Kind::kChecksum:
        if (s.check) step.update(nlohmann::json(*s.check));
        break;
    }
    steps.push_back(step);
  }
  j = nlohmann::json{{"name", plan.name},
                     {"description", plan.description},
                     {"planType", name(plan.plan_type)},
                     {"priority", name(plan.priority)},
                     {"rto", objective_json(plan.rto)},
                     {"rpo", objective_json(plan.rpo)},
                     {"steps", steps},
                     {"prerequisites", validations_json(plan.prerequisites)},
                     {"validation", validations_json(plan.validation)},
                     {"requiredPersonnel", plan.required_personnel},
                     {"testFrequencyDays", plan.test_frequency_days},
                     {"approval", {{"required", plan.approval_required}}},
                     {"isActive", plan.is_active}};
}

}  // namespace haven::config

// config/monitoring.cc — the `monitoring` section: alert channels and monitors; and a monitor's
// JSON for the REST API, through the same decoder.
#include <algorithm>
#include <string>

#include <nlohmann/json.hpp>

#include "config/decode.h"

namespace haven::config {

namespace detail {

namespace {

// A URL: a plain string, or {env}/{file} when it holds a token.
std::optional<Secret> read_url(Problems& p, const Node& n, const std::string& path,
                               const EnvLookup& env) {
  if (n.kind == Node::Kind::kMap) {
    auto ref = read_secret_ref(p, n, path, env, "URL");
    if (!ref) return std::nullopt;
    return ref->value;
  }
  auto s = read_string(p, n, path);
  if (!s) return std::nullopt;
  if (!s->starts_with("http://") && !s->starts_with("https://")) {
    // Never quote it: it may hold a token.
    p.add(n, path, "must be an http:// or https:// URL",
          "write the receiver's URL, e.g. https://hooks.example.com/haven");
    return std::nullopt;
  }
  return Secret(*s);
}

void check_channel_names(Problems& p, const Node& at, const std::string& path,
                         const std::vector<std::string>& names,
                         const std::vector<AlertChannel>* channels) {
  if (channels == nullptr) return;
  for (const auto& c : names) {
    bool known = std::any_of(channels->begin(), channels->end(),
                             [&](const AlertChannel& ch) { return ch.name == c; });
    if (!known) {
      std::string list;
      for (const auto& ch : *channels) list += (list.empty() ? "" : ", ") + ch.name;
      p.add(at, path, "names channel " + quote(c) + ", which monitoring.channels does not define",
            list.empty() ? "define it under monitoring.channels" : "use one of: " + list);
    }
  }
}

// 60, 12.5: a threshold as written.
std::string number(double v) {
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

AlertChannel decode_channel(Problems& p, const Node& node, const std::string& path,
                            const EnvLookup& env) {
  AlertChannel c;
  Fields f(p, node, path);
  if (!f.ok()) return c;
  c.mark = p.mark(node, path);
  if (auto s = f.required_string("name", "give the channel a name monitors refer to, e.g. "
                                         "name: oncall")) {
    c.name = *s;
    check_name(p, *f.get("name"), f.path("name"), *s, "channel");
  }
  std::optional<ChannelKind> type = f.choice<ChannelKind>("type");
  if (!f.get("type")) f.missing("type", "write type: webhook, slack, pagerduty, email or command");
  if (type) c.type = *type;
  const Node* url = f.get("url");
  const Node* routing = f.get("routing_key");
  const Node* smtp = f.get("smtp_url");
  if (auto v = f.boolean("starttls")) c.starttls = *v;
  if (const Node* n = f.get("ca_file")) {
    if (auto s = read_string(p, *n, f.path("ca_file"))) {
      if (check_absolute(p, *n, f.path("ca_file"), *s, "/etc/haven/smtp-ca.pem")) c.ca_file = *s;
    }
  }
  if (auto s = f.string("username")) c.username = *s;
  const Node* password = f.get("password");
  if (auto s = f.string("from")) c.from = *s;
  if (auto v = f.strings("to")) c.to = *v;
  if (auto v = f.strings("command")) c.command = *v;
  if (auto v = f.integer("timeout_seconds", 1, 600)) c.timeout_seconds = static_cast<int>(*v);
  f.finish();
  if (!type) return c;

  auto refuse = [&](const Node* n, std::string_view key) {
    if (n) {
      p.add(*n, f.path(key), "does not apply to " + std::string(name(*type)) + " channels",
            "remove " + std::string(key));
    }
  };
  const bool http = *type == ChannelKind::kWebhook || *type == ChannelKind::kSlack ||
                    *type == ChannelKind::kPagerDuty;
  if (http) {
    if (url) {
      if (auto u = read_url(p, *url, f.path("url"), env)) c.url = std::move(*u);
    } else if (*type != ChannelKind::kPagerDuty) {
      f.missing("url", "give the URL notifications are POSTed to");
    } else {
      c.url = Secret("https://events.pagerduty.com/v2/enqueue");
    }
    refuse(smtp, "smtp_url");
    refuse(password, "password");
    if (!c.to.empty()) refuse(f.get("to"), "to");
    if (!c.command.empty()) refuse(f.get("command"), "command");
  } else {
    refuse(url, "url");
  }
  if (*type == ChannelKind::kPagerDuty) {
    if (!routing) {
      f.missing("routing_key", "give the integration's routing key as {env: VARIABLE} or "
                               "{file: PATH}");
    } else if (auto r = read_secret_ref(p, *routing, f.path("routing_key"), env, "routing key")) {
      c.routing_key = r->value;
    }
  } else {
    refuse(routing, "routing_key");
  }
  if (*type == ChannelKind::kEmail) {
    if (!smtp) {
      f.missing("smtp_url", "give the mail server, e.g. smtp_url: smtp://mail.example.com:587");
    } else if (auto s = read_string(p, *smtp, f.path("smtp_url"))) {
      if (!s->starts_with("smtp://") && !s->starts_with("smtps://")) {
        // Not quoted: a URL may carry user:password.
        p.add(*smtp, f.path("smtp_url"), "must be smtp://HOST:PORT or smtps://HOST:PORT",
              "e.g. smtp://mail.example.com:587 (STARTTLS) or smtps://mail.example.com:465");
      } else {
        c.smtp_url = *s;
      }
    }
    if (c.from.empty()) f.missing("from", "give the sender's address, e.g. from: haven@example.com");
    if (c.to.empty()) f.missing("to", "give the recipients, e.g. to: [oncall@example.com]");
    if (password) {
      if (auto r = read_secret_ref(p, *password, f.path("password"), env, "password")) {
        c.password = r->value;
      }
    }
    if (c.username.empty() != c.password.empty() && (password != nullptr || !c.username.empty())) {
      p.add(node, path, "gives " + std::string(c.username.empty() ? "password" : "username") +
                            " without " + (c.username.empty() ? "username" : "password"),
            "give both username and password for SMTP AUTH, or neither");
    }
  }
  if (*type == ChannelKind::kCommand) {
    if (c.command.empty()) {
      f.missing("command", "give the program and its arguments, e.g. command: [/usr/local/bin/page, "
                           "--team, ops]");
    }
  }
  return c;
}

Monitor decode_monitor(Problems& p, const Node& node, const std::string& path,
                       const std::vector<std::string>* policies,
                       const std::vector<std::string>* locations,
                       const std::vector<AlertChannel>* channels) {
  Monitor m;
  Fields f(p, node, path);
  if (!f.ok()) return m;
  m.mark = p.mark(node, path);
  if (auto s = f.required_string("name", "give the monitor a name, e.g. name: nightly-rpo")) {
    m.name = *s;
    check_name(p, *f.get("name"), f.path("name"), *s, "monitor");
  }
  std::optional<MonitorKind> type = f.choice<MonitorKind>("type");
  if (!f.get("type")) {
    f.missing("type", "write type: backup_success, rpo, missed_schedule, backup_failure_rate, "
                      "storage_capacity, restore_capability, integrity_check, replication_lag "
                      "or dr_drill");
  }
  if (type) m.type = *type;
  const Node* policy = f.get("policy");
  const Node* location = f.get("location");
  const Node* plan = f.get("plan");
  if (plan) {
    if (auto s = read_string(p, *plan, f.path("plan"))) m.plan = *s;
  }
  if (policy) {
    if (auto s = read_string(p, *policy, f.path("policy"))) m.policy = *s;
  }
  if (location) {
    if (auto s = read_string(p, *location, f.path("location"))) m.location = *s;
  }
  if (auto v = f.integer("check_frequency_minutes", 1, 1440)) {
    m.check_frequency_minutes = static_cast<int>(*v);
  }
  for (auto [key, out] : {std::pair{"warning", &m.warning}, std::pair{"critical", &m.critical}}) {
    if (const Node* n = f.get(key)) {
      if (n->kind == Node::Kind::kInt || n->kind == Node::Kind::kFloat) {
        double v = std::stod(n->text);
        if (v < 0) {
          p.add(*n, f.path(key), "must be >= 0, not " + n->text, "write a threshold of 0 or more");
        } else {
          *out = v;
        }
      } else {
        p.add(*n, f.path(key), "must be a number, not " + p.describe(*n),
              "write the threshold as a number (see the monitor types in README)");
      }
    }
  }
  if (auto v = f.integer("window", 1, 1000)) m.window = static_cast<int>(*v);
  const Node* ch = f.get("channels");
  if (ch) {
    if (auto v = read_strings(p, *ch, f.path("channels"))) {
      m.channels = *v;
      check_channel_names(p, *ch, f.path("channels"), m.channels, channels);
    }
  }
  if (const Node* esc = f.get("escalation")) {
    if (esc->kind != Node::Kind::kList) {
      p.add(*esc, f.path("escalation"), "must be a list of steps, not " + p.describe(*esc),
            "write - {after_minutes: 15, channels: [manager]}");
    } else {
      int last = 0;
      for (size_t i = 0; i < esc->items.size(); i++) {
        const std::string at = index_path(f.path("escalation"), i);
        Fields s(p, esc->items[i], at);
        if (!s.ok()) continue;
        EscalationStep step;
        auto after = s.integer("after_minutes", 1, 10080);
        if (!s.get("after_minutes")) s.missing("after_minutes", "write after_minutes: 15");
        const Node* sc = s.get("channels");
        if (!sc) s.missing("channels", "write channels: [NAME]");
        s.finish();
        if (sc) {
          if (auto v = read_strings(p, *sc, s.path("channels"))) {
            step.channels = *v;
            check_channel_names(p, *sc, s.path("channels"), step.channels, channels);
          }
        }
        if (after) {
          step.after_minutes = static_cast<int>(*after);
          if (step.after_minutes <= last) {
            p.add(*s.get("after_minutes"), s.path("after_minutes"),
                  "must be later than the step before (" + std::to_string(last) + " minutes)",
                  "list the steps in increasing after_minutes");
          }
          last = step.after_minutes;
        }
        m.escalation.push_back(std::move(step));
      }
    }
  }
  if (auto v = f.boolean("is_active")) m.is_active = *v;
  f.finish();
  if (!type) return m;

  const bool by_location =
      m.type == MonitorKind::kStorageCapacity || m.type == MonitorKind::kReplicationLag;
  if (plan && m.type != MonitorKind::kDrDrill) {
    p.add(*plan, f.path("plan"), "applies to dr_drill monitors only", "remove plan");
  }
  if (m.type == MonitorKind::kDrDrill) {
    // A plan (or every plan): neither a policy nor a location.
    for (auto [n, key] : {std::pair{policy, "policy"}, std::pair{location, "location"}}) {
      if (n) {
        p.add(*n, f.path(key), std::string("does not apply to dr_drill monitors: they watch a plan"),
              "write plan: NAME, or nothing to watch every plan drilled on schedule");
      }
    }
  } else if (by_location) {
    if (policy) {
      p.add(*policy, f.path("policy"), "does not apply to " + std::string(name(m.type)) +
                                           " monitors: they watch a location",
            "write location: NAME instead");
    }
    if (!location) {
      f.missing("location", "name the location watched, e.g. location: local");
    } else if (locations && !m.location.empty() &&
               std::find(locations->begin(), locations->end(), m.location) == locations->end()) {
      p.add(*location, f.path("location"), "names location " + quote(m.location) +
                                               ", which the configuration does not define",
            "use the name of one of locations[]");
    }
  } else {
    if (location) {
      p.add(*location, f.path("location"), "does not apply to " + std::string(name(m.type)) +
                                               " monitors: they watch a policy",
            "write policy: NAME instead");
    }
    if (!policy) {
      f.missing("policy", "name the policy watched, e.g. policy: nightly");
    } else if (policies && !m.policy.empty() &&
               std::find(policies->begin(), policies->end(), m.policy) == policies->end()) {
      p.add(*policy, f.path("policy"), "names policy " + quote(m.policy) + ", which is not defined",
            "use the name of a policy (of this file, or of the API for a monitor made there)");
    }
  }
  if (m.warning_or_default() > m.critical_or_default()) {
    p.add(node, path, "has a warning threshold (" + number(m.warning_or_default()) +
                          ") above its critical one (" + number(m.critical_or_default()) +
                          ")",
          "warning must not exceed critical");
  }
  return m;
}

MonitoringSettings decode_monitoring(Problems& p, const Node& node, const std::string& path,
                                     const EnvLookup& env,
                                     const std::vector<std::string>* policies,
                                     const std::vector<std::string>* locations) {
  MonitoringSettings s;
  Fields f(p, node, path);
  if (!f.ok()) return s;
  s.mark = p.mark(node, path);
  if (auto v = f.integer("health_check_minutes", 1, 1440)) s.health_check_minutes = static_cast<int>(*v);
  if (auto v = f.integer("read_data_days", 0, 3650)) s.read_data_days = static_cast<int>(*v);
  if (auto v = f.integer("restore_mbps", 1, 100000)) s.restore_mbps = static_cast<int>(*v);
  const Node* channels = f.get("channels");
  const Node* monitors = f.get("monitors");
  f.finish();
  bool channels_known = true;
  if (channels) {
    if (channels->kind != Node::Kind::kList) {
      p.add(*channels, f.path("channels"), "must be a list of channels, not " + p.describe(*channels),
            "write each channel as an item '- name: ...'");
      channels_known = false;
    } else {
      for (size_t i = 0; i < channels->items.size(); i++) {
        const std::string at = index_path(f.path("channels"), i);
        AlertChannel c = decode_channel(p, channels->items[i], at, env);
        if (!c.name.empty() && s.find_channel(c.name)) {
          p.add(channels->items[i], at, "another channel is named " + quote(c.name),
                "give each channel its own name");
        }
        s.channels.push_back(std::move(c));
      }
    }
  }
  if (monitors) {
    if (monitors->kind != Node::Kind::kList) {
      p.add(*monitors, f.path("monitors"), "must be a list of monitors, not " + p.describe(*monitors),
            "write each monitor as an item '- name: ...'");
    } else {
      for (size_t i = 0; i < monitors->items.size(); i++) {
        const std::string at = index_path(f.path("monitors"), i);
        Monitor m = decode_monitor(p, monitors->items[i], at, policies, locations,
                                   channels_known ? &s.channels : nullptr);
        bool dup = std::any_of(s.monitors.begin(), s.monitors.end(),
                               [&](const Monitor& o) { return !m.name.empty() && o.name == m.name; });
        if (dup) {
          p.add(monitors->items[i], at, "another monitor is named " + quote(m.name),
                "give each monitor its own name");
        }
        s.monitors.push_back(std::move(m));
      }
    }
  }
  return s;
}

}  // namespace detail

std::string_view name(ChannelKind v) { return detail::enum_name(v); }
std::string_view name(MonitorKind v) { return detail::enum_name(v); }

double Monitor::warning_or_default() const {
  if (warning) return *warning;
  switch (type) {
    case MonitorKind::kBackupSuccess: return 1;
    case MonitorKind::kRpo: return 80;
    case MonitorKind::kMissedSchedule: return 5;
    case MonitorKind::kBackupFailureRate: return 20;
    case MonitorKind::kStorageCapacity: return 80;
    case MonitorKind::kRestoreCapability: return 30;
    case MonitorKind::kIntegrityCheck: return 2;
    case MonitorKind::kReplicationLag: return 300;
    case MonitorKind::kDrDrill: return 1;
  }
  return 0;
}

double Monitor::critical_or_default() const {
  if (critical) return *critical;
  switch (type) {
    case MonitorKind::kBackupSuccess: return 2;
    case MonitorKind::kRpo: return 100;
    case MonitorKind::kMissedSchedule: return 60;
    case MonitorKind::kBackupFailureRate: return 50;
    case MonitorKind::kStorageCapacity: return 90;
    case MonitorKind::kRestoreCapability: return 90;
    case MonitorKind::kIntegrityCheck: return 7;
    case MonitorKind::kReplicationLag: return 900;
    case MonitorKind::kDrDrill: return 14;
  }
  return 0;
}

const AlertChannel* MonitoringSettings::find_channel(std::string_view n) const {
  for (const auto& c : channels) {
    if (c.name == n) return &c;
  }
  return nullptr;
}

Checked<Monitor> check_monitor_json(const nlohmann::json& json, const Config& config,
                                    const std::vector<std::string>& policies) {
  detail::Problems p("", detail::KeyStyle::kCamel);
  std::vector<std::string> locations;
  for (const auto& l : config.locations) locations.push_back(l.name);
  detail::Node root = detail::node_from_json(json);
  Monitor m = detail::decode_monitor(p, root, "", &policies, &locations, &config.monitoring.channels);
  return {std::move(m), p.take()};
}

void to_json(nlohmann::json& j, const Monitor& m) {
  nlohmann::json esc = nlohmann::json::array();
  for (const auto& s : m.escalation) {
    esc.push_back({{"afterMinutes", s.after_minutes}, {"channels", s.channels}});
  }
  j = nlohmann::json{{"name", m.name},
                     {"type", name(m.type)},
                     {"checkFrequencyMinutes", m.check_frequency_minutes},
                     {"warning", m.warning_or_default()},
                     {"critical", m.critical_or_default()},
                     {"channels", m.channels},
                     {"escalation", esc},
                     {"isActive", m.is_active}};
  if (!m.policy.empty()) j["policy"] = m.policy;
  if (!m.location.empty()) j["location"] = m.location;
  if (!m.plan.empty()) j["plan"] = m.plan;
  if (m.type == MonitorKind::kBackupFailureRate) j["window"] = m.window;
}

namespace {
// smtp://user:pass@host:port → smtp://***@host:port
std::string redact_userinfo(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t at = url.find('@', scheme + 3);
  const size_t slash = url.find('/', scheme + 3);
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) return url;
  return url.substr(0, scheme + 3) + kRedacted + url.substr(at);
}
}  // namespace

void to_json(nlohmann::json& j, const AlertChannel& c) {
  j = nlohmann::json{{"name", c.name}, {"type", name(c.type)}};
  switch (c.type) {
    case ChannelKind::kWebhook:
    case ChannelKind::kSlack:
      j["url"] = kRedacted;
      break;
    case ChannelKind::kPagerDuty:
      j["url"] = kRedacted;
      j["routingKey"] = kRedacted;
      break;
    case ChannelKind::kEmail:
      j["smtpUrl"] = redact_userinfo(c.smtp_url);
      j["starttls"] = c.starttls;
      j["from"] = c.from;
      j["to"] = c.to;
      if (!c.username.empty()) j["username"] = c.username;
      break;
    case ChannelKind::kCommand:
      // The program, not its arguments (they may carry a token).
      j["command"] = c.command.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.command[0]);
      break;
  }
  j["timeoutSeconds"] = c.timeout_seconds;
}

}  // namespace haven::config

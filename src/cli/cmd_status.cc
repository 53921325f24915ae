// haven status; haven alerts [ack]; haven audit verify|export — the monitoring commands. They
// read (and, for ack, write) the server's catalog directly, so they work whether or not the
// server runs, and compute what GET /api/status computes.
#include <unistd.h>

#include <iostream>

#include <nlohmann/json.hpp>

#include "catalog/audit.h"
#include "cli/cli.h"
#include "config/config.h"
#include "monitor/audit.h"
#include "monitor/service.h"
#include "monitor/status.h"
#include "util/sysinfo.h"

namespace haven::cli {

namespace {

struct Opened {
  config::Config config;
  std::unique_ptr<catalog::Catalog> catalog;
};

Result<Opened> open_config_and_catalog(const std::string& flag) {
  HAVEN_ASSIGN(std::string path, config_path(flag));
  Opened o;
  HAVEN_ASSIGN(o.config, config::load_config_file(path, environment_value));
  auto cat = catalog::open_sqlite_catalog(o.config.server.catalog);
  if (!cat.ok()) return cat.error().with_context("server.catalog");
  o.catalog = std::move(*cat);
  return o;
}

std::string cli_actor() { return "cli:" + username() + "@" + hostname(); }

std::string short_time(std::optional<TimeNs> t, TimeNs now) {
  if (!t) return "-";
  const double ago = static_cast<double>(now - *t) / 1e9;
  if (ago >= 0) return monitor::format_span(ago) + " ago";
  return "in " + monitor::format_span(-ago);
}

std::string objective(const monitor::ObjectiveStatus& o) {
  std::string v = o.seconds ? monitor::format_span(*o.seconds) : "?";
  if (o.target_seconds) v += " / " + monitor::format_span(static_cast<double>(*o.target_seconds));
  return v + " " + monitor::level_name(o.level);
}

std::string pad(const std::string& s, size_t w) {
  return s.size() >= w ? s + " " : s + std::string(w - s.size(), ' ');
}

void print_status(const monitor::StatusReport& r) {
  std::cout << "Haven status at " << format_time(r.time) << "\n\n";
  std::cout << pad("POLICY", 18) << pad("LAST RUN", 26) << pad("NEXT RUN", 16)
            << pad("RPO NOW / TARGET", 30) << "RTO EST / TARGET\n";
  for (const auto& p : r.policies) {
    std::string last = "never";
    if (p.last_run) {
      last = std::string(catalog::to_string(p.last_run->status)) + " " +
             short_time(p.last_run->started_at, r.time);
    }
    std::string name = p.name + (p.active ? "" : " (off)");
    std::cout << pad(name, 18) << pad(last, 26) << pad(short_time(p.next_run, r.time), 16)
              << pad(objective(p.rpo), 30) << objective(p.rto) << "\n";
  }
  if (r.policies.empty()) {
    std::cout << "(no policies yet: the server writes haven.yaml's policies into the catalog when "
                 "it starts)\n";
  }
  std::cout << "\nALERTS (" << r.alerts.size() << " open)\n";
  for (const auto& a : r.alerts) {
    std::cout << "  " << pad(std::string(catalog::to_string(a.severity)), 9)
              << pad(std::string(catalog::to_string(a.state)), 13) << a.summary << "  [" << a.id
              << "]\n";
  }
  std::cout << "\nREPOSITORIES\n";
  for (const auto& l : r.locations) {
    std::cout << "  " << pad(l.name, 16) << pad(std::string(catalog::to_string(l.health)), 9)
              << "checked " << short_time(l.last_health_check, r.time) << "  " << l.repository << "\n";
  }
  std::cout << "\n3-2-1 (copies, kinds of media, offsite)\n";
  for (const auto& p : r.policies) {
    const auto& t = p.three_two_one;
    std::string media;
    for (const auto& m : t.media) media += (media.empty() ? "" : ", ") + m;
    std::cout << "  " << pad(p.name, 16) << t.copies << " copies, " << t.media.size() << " ("
              << media << "), " << t.offsite << " offsite: "
              << (t.met() ? std::string("met") : "not met: " + t.missing()) << "\n";
  }
}

}  // namespace

void register_status(App& app) {
  auto path = std::make_shared<std::string>();
  auto* status = app.root().add_subcommand(
      "status", "policies' RPO and RTO against their targets, last and next runs, open alerts, "
                "repository health");
  status->add_option("--config", *path, "haven.yaml (default: $HAVEN_CONFIG)");
  app.on(status, [&app, path]() -> CommandResult {
    HAVEN_ASSIGN(Opened o, open_config_and_catalog(*path));
    monitor::StatusContext ctx{*o.catalog, o.config, {}};
    ctx.newest_wal = [](const config::Location& l) { return monitor::newest_wal(l); };
    HAVEN_ASSIGN(auto report, monitor::compute_status(ctx, now()));
    if (app.globals().json) {
      std::cout << monitor::to_json(report).dump() << "\n";
    } else {
      print_status(report);
    }
    // Non-zero when something needs a person: scripts and cron can use it.
    bool critical = false;
    for (const auto& p : report.policies) critical |= p.active && p.level() == monitor::Level::kCritical;
    for (const auto& a : report.alerts) critical |= a.severity == catalog::AlertSeverity::kCritical;
    return critical ? kExitWarnings : kExitOk;
  });

  auto* alerts = app.root().add_subcommand("alerts", "list alerts; acknowledge one");
  auto all = std::make_shared<bool>(false);
  alerts->add_option("--config", *path, "haven.yaml (default: $HAVEN_CONFIG)");
  alerts->add_flag("--all", *all, "resolved ones too (the newest 100)");
  auto* ack = alerts->add_subcommand("ack", "acknowledge an alert: its escalation stops");
  auto id = std::make_shared<std::string>();
  auto by = std::make_shared<std::string>();
  ack->add_option("--config", *path, "haven.yaml (default: $HAVEN_CONFIG)");
  ack->add_option("id", *id, "the alert's id (haven alerts lists them)")->required();
  ack->add_option("--by", *by, "who takes it (default: your user name)");
  app.on(alerts, [&app, path, all]() -> CommandResult {
    HAVEN_ASSIGN(Opened o, open_config_and_catalog(*path));
    HAVEN_ASSIGN(auto rows, o.catalog->list_alerts(!*all, 100));
    if (app.globals().json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& a : rows) out.push_back(monitor::alert_json(a));
      std::cout << out.dump() << "\n";
      return 0;
    }
    if (rows.empty()) std::cout << (*all ? "no alerts\n" : "no open alerts\n");
    for (const auto& a : rows) {
      std::cout << a.id << "  " << pad(std::string(catalog::to_string(a.severity)), 9)
                << pad(std::string(catalog::to_string(a.state)), 13) << format_time(a.opened_at)
                << "  " << a.summary << "\n";
    }
    return 0;
  });
  app.on(ack, [path, id, by]() -> CommandResult {
    HAVEN_ASSIGN(Opened o, open_config_and_catalog(*path));
    monitor::MonitorService svc(*o.catalog, nullptr, {});
    const std::string who = by->empty() ? username() : *by;
    auto a = svc.acknowledge(*id, who);
    if (!a.ok()) {
      if (a.error().code() == Error::Code::kNotFound) {
        return Error(Error::Code::kInvalidArgument, "alert id: no alert '" + *id +
                                                        "' (haven alerts --all lists them)");
      }
      if (a.error().code() == Error::Code::kAlreadyExists) {
        return Error(Error::Code::kInvalidArgument, a.error().message());
      }
      return a.error();
    }
    monitor::AuditLog audit(*o.catalog);
    HAVEN_TRY(audit.record(cli_actor(), "alert.acknowledge", a->alert_key, {{"alert_id", a->id}, {"by", who}}));
    std::cout << "alert " << a->id << " acknowledged by " << who << ": " << a->summary << "\n";
    return 0;
  });

  auto* audit = app.root().add_subcommand("audit", "the tamper-evident audit log");
  audit->require_subcommand(1);
  auto* verify = audit->add_subcommand("verify", "check the hash chain; names every record that "
                                                 "was changed, deleted, inserted or moved");
  verify->add_option("--config", *path, "haven.yaml (default: $HAVEN_CONFIG)");
  app.on(verify, [&app, path]() -> CommandResult {
    HAVEN_ASSIGN(Opened o, open_config_and_catalog(*path));
    HAVEN_ASSIGN(auto v, catalog::verify_audit(*o.catalog));
    if (app.globals().json) {
      nlohmann::json problems = nlohmann::json::array();
      for (const auto& p : v.problems) problems.push_back({{"seq", p.seq}, {"problem", p.what}});
      std::cout << nlohmann::json{{"intact", v.ok()}, {"records", v.records}, {"last_seq", v.last_seq},
                                  {"last_hash", v.last_hash}, {"problems", problems}}.dump()
                << "\n";
    } else {
      for (const auto& p : v.problems) std::cout << "record " << p.seq << ": " << p.what << "\n";
      std::cout << v.records << " record(s); "
                << (v.ok() ? "the chain is intact" : std::to_string(v.problems.size()) + " problem(s)")
                << "; head " << v.last_seq << " " << v.last_hash << "\n";
    }
    return v.ok() ? kExitOk : kExitFailure;
  });
  auto* exp = audit->add_subcommand("export", "the records as JSON lines, in chain order");
  auto since = std::make_shared<std::string>();
  exp->add_option("--config", *path, "haven.yaml (default: $HAVEN_CONFIG)");
  exp->add_option("--since", *since, "only records at or after this time (RFC 3339 or YYYY-MM-DD)");
  app.on(exp, [path, since]() -> CommandResult {
    TimeNs from = 0;
    if (!since->empty()) {
      auto t = parse_time(*since);
      if (!t) {
        return Error(Error::Code::kInvalidArgument,
                     "--since: '" + *since + "' is not a time: write 2026-12-01 or 2026-12-01T00:00:00Z");
      }
      from = *t;
    }
    HAVEN_ASSIGN(Opened o, open_config_and_catalog(*path));
    int64_t after = 0;
    while (true) {
      HAVEN_ASSIGN(auto rows, o.catalog->audit_records(after, from, catalog::Catalog::kMaxEventBatch));
      if (rows.empty()) break;
      for (const auto& r : rows) std::cout << monitor::audit_json(r).dump() << "\n";
      after = rows.back().seq;
    }
    return 0;
  });
}

}  // namespace haven::cli

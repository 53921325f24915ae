// haven config check, haven server token create|list|revoke, haven server (body in main.cc).
#include <iostream>

#include <nlohmann/json.hpp>

#include "catalog/tokens.h"
#include "cli/cli.h"
#include "config/config.h"
#include "jobs/service.h"
#include "monitor/audit.h"
#include "util/sysinfo.h"

namespace haven::cli {

std::optional<std::string> environment_value(const std::string& name) {
  const char* v = ::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

Result<std::string> config_path(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (auto env = environment_value("HAVEN_CONFIG"); env && !env->empty()) return *env;
  return Error(Error::Code::kInvalidArgument,
               "no configuration file: give --config /etc/haven/haven.yaml (or set HAVEN_CONFIG)");
}

namespace {

Result<std::unique_ptr<catalog::Catalog>> open_catalog_of(const std::string& flag) {
  HAVEN_ASSIGN(std::string path, config_path(flag));
  HAVEN_ASSIGN(config::Config cfg, config::load_config_file(path, environment_value));
  auto cat = catalog::open_sqlite_catalog(cfg.server.catalog);
  if (!cat.ok()) return cat.error().with_context("server.catalog");
  return std::move(*cat);
}

}  // namespace

void register_config(App& app) {
  auto* cfg = app.root().add_subcommand("config", "check haven.yaml");
  cfg->require_subcommand(1);
  auto path = std::make_shared<std::string>();
  auto* check = cfg->add_subcommand("check", "validate a configuration file; every problem as file:line:col");
  check->add_option("--config", *path, "the file (default: $HAVEN_CONFIG)");
  app.on(check, [path]() -> CommandResult {
    HAVEN_ASSIGN(std::string p, config_path(*path));
    config::Checked<config::Config> c = config::check_config_file(p, environment_value);
    if (!c.ok()) {
      for (const auto& d : c.diagnostics) std::cerr << d.format() << "\n";
      std::cerr << c.diagnostics.size() << " problem(s) in " << p << "\n";
      return kExitUsage;
    }
    std::cout << p << ": OK (" << c.value.locations.size() << " location(s), "
              << c.value.policies.size() << " polic" << (c.value.policies.size() == 1 ? "y" : "ies")
              << ")\n";
    return 0;
  });
}

void register_catalog(App& app) {
  auto* cat = app.root().add_subcommand("catalog", "the server's operations catalog");
  cat->require_subcommand(1);
  auto path = std::make_shared<std::string>();
  auto* rebuild = cat->add_subcommand(
      "rebuild", "recreate executions from the repositories' snapshots (after a lost catalog)");
  rebuild->add_option("--config", *path, "haven.yaml (default: $HAVEN_CONFIG)");
  app.on(rebuild, [&app, path]() -> CommandResult {
    HAVEN_ASSIGN(std::string p, config_path(*path));
    HAVEN_ASSIGN(config::Config cfg, config::load_config_file(p, environment_value));
    auto c = catalog::open_sqlite_catalog(cfg.server.catalog);
    if (!c.ok()) return c.error().with_context("server.catalog");
    CommandSink sink(app.globals());
    jobs::ServiceOptions so;
    so.server_instance = "cli:catalog-rebuild";
    jobs::Service service(**c, sink, so);
    HAVEN_TRY(service.apply_config(std::make_shared<const config::Config>(std::move(cfg))));
    HAVEN_ASSIGN(auto r, service.rebuild_catalog());
    std::cout << r.snapshots << " snapshot(s): " << r.added << " execution(s) recreated, "
              << r.present << " already recorded, " << r.unowned
              << " without a policy of this configuration\n";
    return 0;
  });
}

void register_server(App& app, ServerMain run) {
  auto cmd = std::make_shared<ServerCommand>();
  auto* srv = app.root().add_subcommand("server", "run the Haven server (policies, scheduler, REST API)");
  srv->add_option("--config", cmd->config, "haven.yaml (default: $HAVEN_CONFIG)");
  auto* port = srv->add_option("--port", "listen on this port instead of server.listen's (0: any free one)");
  auto* token = srv->add_subcommand("token", "manage the API's bearer tokens");
  token->require_subcommand(1);
  auto tcfg = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  auto role = std::make_shared<std::string>("viewer");

  auto* create = token->add_subcommand("create", "create a token; prints it once on stdout");
  create->add_option("--config", *tcfg, "haven.yaml (default: $HAVEN_CONFIG)");
  create->add_option("--name", *name, "a name for the token (who or what uses it)")->required();
  create->add_option("--role", *role, "viewer (reads), operator (runs, cancels, restores) or admin");
  app.on(create, [tcfg, name, role]() -> CommandResult {
    auto r = catalog::parse_enum<catalog::Role>(*role);
    if (!r) {
      return Error(Error::Code::kInvalidArgument,
                   "--role: must be viewer, operator or admin, not '" + *role + "'");
    }
    if (name->empty()) return Error(Error::Code::kInvalidArgument, "--name: give the token a name");
    HAVEN_ASSIGN(auto cat, open_catalog_of(*tcfg));
    std::string token = catalog::new_token();
    auto row = cat->create_token(*name, *r, catalog::token_hash(token));
    if (!row.ok()) {
      if (row.error().code() == Error::Code::kAlreadyExists) {
        return Error(Error::Code::kInvalidArgument,
                     "--name: a token named '" + *name + "' exists: pick another name, or revoke "
                     "it first ('haven server token revoke --name " + *name + "')");
      }
      return row.error();
    }
    // Shown first: it exists now, and an audit log that cannot be written must not lose it.
    std::cout << token << std::endl;
    monitor::AuditLog audit(*cat);
    if (auto a = audit.record("cli:" + username() + "@" + hostname(), "token.create", *name,
                              {{"role", *role}});
        !a.ok()) {
      std::cerr << "warning: the token's creation was not recorded in the audit log: "
                << a.error().message() << "\n";
    }
    std::cerr << "token '" << *name << "' (" << *role
              << ") created: it is shown only this once; the server keeps only its hash\n";
    return 0;
  });

  auto* list = token->add_subcommand("list", "list tokens (never their values)");
  list->add_option("--config", *tcfg, "haven.yaml (default: $HAVEN_CONFIG)");
  app.on(list, [&app, tcfg]() -> CommandResult {
    HAVEN_ASSIGN(auto cat, open_catalog_of(*tcfg));
    HAVEN_ASSIGN(auto rows, cat->list_tokens());
    if (app.globals().json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& t : rows) {
        out.push_back({{"name", t.name},
                       {"role", std::string(catalog::to_string(t.role))},
                       {"created_at", format_time(t.created_at)},
                       {"last_used_at", t.last_used_at ? nlohmann::json(format_time(*t.last_used_at)) : nlohmann::json(nullptr)},
                       {"revoked_at", t.revoked_at ? nlohmann::json(format_time(*t.revoked_at)) : nlohmann::json(nullptr)}});
      }
      std::cout << out.dump() << "\n";
      return 0;
    }
    for (const auto& t : rows) {
      std::cout << t.name << "\t" << catalog::to_string(t.role) << "\tcreated "
                << format_time(t.created_at)
                << (t.revoked_at ? "\trevoked " + format_time(*t.revoked_at) : std::string("\tactive"))
                << "\n";
    }
    return 0;
  });

  auto* revoke = token->add_subcommand("revoke", "revoke a token by name");
  revoke->add_option("--config", *tcfg, "haven.yaml (default: $HAVEN_CONFIG)");
  revoke->add_option("--name", *name, "the token's name")->required();
  app.on(revoke, [tcfg, name]() -> CommandResult {
    HAVEN_ASSIGN(auto cat, open_catalog_of(*tcfg));
    Status s = cat->revoke_token(*name);
    if (!s.ok() && s.error().code() == Error::Code::kNotFound) {
      return Error(Error::Code::kInvalidArgument,
                   "--name: no active token named '" + *name + "' ('haven server token list' shows them)");
    }
    HAVEN_TRY(s);
    monitor::AuditLog audit(*cat);
    HAVEN_TRY(audit.record("cli:" + username() + "@" + hostname(), "token.revoke", *name));
    std::cout << "token '" << *name << "' revoked\n";
    return 0;
  });

  // Registered last: `haven server token ...` parses `server` too, and the first parsed
  // command with an action runs.
  app.on(srv, [&app, cmd, port, run]() -> CommandResult {
    if (port->count() > 0) {
      int p = port->as<int>();
      if (p < 0 || p > 65535) {
        return Error(Error::Code::kInvalidArgument, "--port: must be 0 to 65535, not " + std::to_string(p));
      }
      cmd->port = p;
    }
    return run(app, *cmd);
  });
}

}  // namespace haven::cli

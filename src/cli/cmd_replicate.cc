// haven replicate, haven check --regions, haven repair --from — a location's copies in other
// regions (replication/replication.h), as haven.yaml describes them (jobs/regions.h).
#include <iostream>
#include <set>

#include "cli/cli.h"
#include "cli/progress.h"
#include "config/config.h"
#include "catalog/sqlite_catalog.h"
#include "jobs/regions.h"
#include "monitor/audit.h"
#include "ops/ops.h"
#include "replication/failover.h"
#include "replication/quorum.h"
#include "replication/replication.h"
#include "util/sysinfo.h"

namespace haven::cli {

namespace {

struct Opened {
  config::Config cfg;
  const config::Location* location = nullptr;
  std::unique_ptr<repo::Repository> repo;  // on the primary region
  replication::Region primary;
};

// Loads haven.yaml, finds the location and opens its repository with its password. With
// `open_repository` false (repair of a primary that cannot be opened) the repository is opened
// on the first region that opens.
Result<Opened> open_location(App& app, const LocationArgs& a) {
  HAVEN_ASSIGN(std::string path, config_path(a.config));
  Opened o;
  HAVEN_ASSIGN(o.cfg, config::load_config_file(path, environment_value));
  if (a.location.empty()) {
    return Error(Error::Code::kInvalidArgument, "--location: name the location of " + path +
                                                    " whose regions to use");
  }
  o.location = o.cfg.find_location(a.location);
  if (o.location == nullptr) {
    std::string names;
    for (const auto& l : o.cfg.locations) names += (names.empty() ? "" : ", ") + l.name;
    return Error(Error::Code::kInvalidArgument,
                 "--location: " + path + " has no location '" + a.location + "' (it has: " +
                     names + ")");
  }
  HAVEN_ASSIGN(o.primary, jobs::open_primary_region(*o.location));
  return o;
}

// The repository opened on `region` with the location's password.
Result<std::unique_ptr<repo::Repository>> open_on(App& app, const config::Location& loc,
                                                 const replication::Region& region) {
  auto r = repo::Repository::open(region.backend, loc.password.value.reveal());
  if (!r.ok()) return r.error().with_context("region " + region.name);
  HAVEN_TRY(app.configure(**r));
  return r;
}

std::string cli_actor() { return "cli:" + username() + "@" + hostname(); }

// Records a change in the audit log of the server whose haven.yaml this is; a log that cannot
// be written is a warning (the change itself is done).
void audit_to(const config::Config& cfg, const std::string& action, const std::string& target,
              const nlohmann::json& details) {
  auto cat = catalog::open_sqlite_catalog(cfg.server.catalog);
  Status s = cat.ok() ? Status(ok_status()) : Status(cat.error());
  if (cat.ok()) {
    monitor::AuditLog log(**cat);
    auto r = log.record(cli_actor(), action, target, details);
    if (!r.ok()) s = r.error();
  }
  if (!s.ok()) {
    std::cerr << "warning: " << action << " was not recorded in the audit log: "
              << s.error().message() << "\n";
  }
}

void print_pass(const replication::PassResult& p) {
  std::cout << "region " << p.region << ": copied " << p.copied_objects << " object(s), "
            << human_bytes(p.copied_bytes) << "; deleted " << p.deleted_objects << " in "
            << p.duration_ms / 1000.0 << " s\n";
  if (!p.deletions_deferred.empty()) {
    std::cout << "  deletions deferred: " << p.deletions_deferred << "\n";
  }
  for (const auto& d : p.differing) {
    std::cout << "  warning: " << d << " differs from the primary's copy (haven check --regions "
                                       "names the damaged one)\n";
  }
  for (const auto& k : p.kept) std::cout << "  kept: " << k << "\n";
}

}  // namespace

Result<LocationStorage> open_location_storage(App& app, const LocationArgs& a, bool writing,
                                              EventSink* events) {
  HAVEN_ASSIGN(Opened o, open_location(app, a));
  LocationStorage out;
  out.password = o.location->password.value.reveal();
  out.backend = o.primary.backend;
  if (o.location->secondary_regions.empty()) return out;
  HAVEN_ASSIGN(auto regions, jobs::open_secondary_regions(*o.location));
  if (!writing) {
    const std::string primary = o.primary.name;
    out.backend = std::make_shared<replication::FailoverBackend>(
        out.backend, std::move(regions),
        [events, primary](const storage::ObjectName& n, const std::string& region,
                          const Error& why) {
          const std::string message = n.describe() + ": read from region " + region + " (in " +
                                      primary + ": " + why.message() + "; haven repair --from " +
                                      region + " mends it)";
          if (events != nullptr) {
            ops::notice(*events, ops::NoticeLevel::kWarning, message);
          } else {
            std::cerr << "warning: " << message << "\n";
          }
        });
    return out;
  }
  if (o.location->replication.mode != config::ReplicationMode::kSync) return out;
  // The regions a CLI write must reach: those not paused or stopped in the server's catalog.
  std::set<std::string> inactive;
  if (auto cat = catalog::open_sqlite_catalog(o.cfg.server.catalog); cat.ok()) {
    if (auto rows = (*cat)->list_replication(); rows.ok()) {
      for (const auto& r : *rows) {
        if (r.location == o.location->name && r.state != catalog::ReplicationState::kActive) {
          inactive.insert(r.region);
        }
      }
    }
  }
  for (const auto& r : regions) {
    if (inactive.count(r.name)) continue;
    if (Status s = replication::prepare_region(*out.backend, *r.backend); !s.ok()) {
      std::cerr << "warning: region " << r.name << ": " << s.error().message() << "\n";
    }
  }
  replication::QuorumOptions qo;
  qo.quorum = o.location->replication.quorum;
  qo.degrade = o.location->replication.on_quorum_loss == config::QuorumLoss::kDegrade;
  qo.active = [inactive](const std::string& r) { return !inactive.count(r); };
  qo.on_region_failed = [](const std::string& region, const Error& e) {
    std::cerr << "warning: region " << region << ": " << e.message() << "\n";
  };
  out.backend = std::make_shared<replication::QuorumBackend>(out.backend, std::move(regions), qo);
  return out;
}

Result<std::unique_ptr<repo::Repository>> open_with_regions(App& app, const LocationArgs& a,
                                                           EventSink& events) {
  HAVEN_ASSIGN(LocationStorage st, open_location_storage(app, a, false, &events));
  HAVEN_ASSIGN(auto r, repo::Repository::open(st.backend, st.password));
  HAVEN_TRY(app.configure(*r));
  return r;
}

CommandResult run_check_regions(App& app, const LocationArgs& a, bool read_data) {
  HAVEN_ASSIGN(Opened o, open_location(app, a));
  HAVEN_ASSIGN(auto regions, jobs::open_secondary_regions(*o.location, a.region));
  HAVEN_ASSIGN(auto repo, open_on(app, *o.location, o.primary));
  CancelScope scope(app.cancel());
  CommandSink sink(app.globals());
  HAVEN_ASSIGN(auto reports, replication::validate(*repo, o.primary, regions, read_data, sink));
  sink.clear_line();
  bool ok = true;
  nlohmann::json all = nlohmann::json::array();
  for (const auto& r : reports) {
    ok = ok && r.ok();
    all.push_back(r.to_json());
    if (app.globals().json) continue;
    if (!r.error.empty()) {
      std::cout << "region " << r.region << ": cannot be read: " << r.error << "\n";
      continue;
    }
    size_t extra = 0;
    for (const auto& d : r.differences) extra += d.kind == "extra" ? 1 : 0;
    std::cout << "region " << r.region << ": " << r.objects << " object(s), "
              << human_bytes(r.bytes);
    if (read_data) std::cout << ", " << r.compared << " compared byte for byte";
    std::cout << (r.ok() ? ": same as " + o.primary.name : ": differs from " + o.primary.name)
              << "\n";
    for (const auto& d : r.differences) {
      if (d.kind == "extra") continue;
      std::cout << "  " << d.object << ": ";
      if (d.kind == "missing") {
        std::cout << "missing in " << r.region;
      } else if (d.kind == "missing_in_primary") {
        std::cout << "missing in " << o.primary.name << ", whose index names it; only in "
                  << r.region << ": haven repair --from " << r.region;
      } else {
        std::cout << (d.kind == "size" ? "sizes differ (" + std::to_string(d.primary_size) +
                                             " bytes in " + o.primary.name + ", " +
                                             std::to_string(d.region_size) + " in " + r.region + ")"
                                       : std::string("contents differ"));
        if (d.primary_sound && d.region_sound) {
          if (*d.primary_sound && !*d.region_sound) {
            std::cout << "; " << r.region << "'s copy is damaged: haven repair --from "
                      << o.primary.name << " --region " << r.region;
          } else if (!*d.primary_sound && *d.region_sound) {
            std::cout << "; " << o.primary.name << "'s copy is damaged: haven repair --from "
                      << r.region;
          } else if (!*d.primary_sound) {
            std::cout << "; both copies are damaged";
          }
        }
      }
      std::cout << "\n";
    }
    if (extra > 0) {
      std::cout << "  " << extra << " object(s) only in " << r.region
                << " (deletions not mirrored yet, which the next pass makes unless the primary "
                   "still needs them)\n";
    }
  }
  if (app.globals().json) std::cout << all.dump(2) << "\n";
  return ok ? kExitOk : kExitFailure;
}

CommandResult run_repair_from(App& app, const LocationArgs& a, const std::string& from,
                              bool read_data) {
  HAVEN_ASSIGN(Opened o, open_location(app, a));
  const std::string target_name = a.region.empty() ? o.primary.name : a.region;
  if (from == target_name) {
    return Error(Error::Code::kInvalidArgument,
                 "--from: " + from + " is the region being repaired: name another region (" +
                     jobs::region_names(*o.location) + ")");
  }
  HAVEN_ASSIGN(auto source, jobs::open_region(*o.location, from));
  HAVEN_ASSIGN(auto target, jobs::open_region(*o.location, target_name));
  // The key: from the target when it opens, else from the healthy source (a target whose key
  // files or config are what is damaged).
  auto repo = open_on(app, *o.location, target);
  if (!repo.ok()) {
    if (repo.error().code() == Error::Code::kWrongPassword) return repo.error();
    repo = open_on(app, *o.location, source);
  }
  if (!repo.ok()) return repo.error();
  CancelScope scope(app.cancel());
  CommandSink sink(app.globals());
  replication::RepairOptions ro;
  ro.read_data = read_data;
  ro.referenced_only = target_name == o.primary.name;
  HAVEN_ASSIGN(auto r, replication::repair(**repo, target, source, ro, sink));
  sink.clear_line();
  if (app.globals().json) {
    std::cout << r.to_json().dump(2) << "\n";
  } else {
    std::cout << "region " << r.target << ": " << r.added << " missing object(s) restored, "
              << r.replaced << " damaged object(s) replaced from " << r.source << " ("
              << human_bytes(r.bytes) << ")\n";
    for (const auto& x : r.repaired) std::cout << "  repaired " << x << "\n";
    for (const auto& x : r.unrepaired) std::cout << "  error: " << x << "\n";
    for (const auto& x : r.only_in_source) {
      std::cout << "  notice: " << x << " is only in " << r.source
                << " (forgotten in " << r.target << ", or lost there): not restored\n";
    }
  }
  if (r.added + r.replaced > 0) {
    audit_to(o.cfg, "replication.repair", o.location->name + "/" + r.target,
             {{"source", r.source}, {"added", r.added}, {"replaced", r.replaced}});
  }
  return r.unrepaired.empty() ? kExitOk : kExitFailure;
}

namespace {

void register_replication_state(App& app) {
  auto* sub = app.root().add_subcommand(
      "replication", "the state of a location's secondary regions: status, pause, resume, stop");
  sub->require_subcommand(1);
  auto a = std::make_shared<LocationArgs>();
  auto* status = sub->add_subcommand("status", "each secondary region's state, lag and last error "
                                               "(as the server last measured them)");
  status->add_option("--config", a->config, "haven.yaml (default: $HAVEN_CONFIG)");
  app.on(status, [&app, a]() -> CommandResult {
    HAVEN_ASSIGN(std::string path, config_path(a->config));
    HAVEN_ASSIGN(config::Config cfg, config::load_config_file(path, environment_value));
    auto cat = catalog::open_sqlite_catalog(cfg.server.catalog);
    if (!cat.ok()) return cat.error().with_context("server.catalog");
    HAVEN_ASSIGN(auto rows, (*cat)->list_replication());
    const TimeNs t = now();
    nlohmann::json all = nlohmann::json::array();
    for (const auto& loc : cfg.locations) {
      if (loc.secondary_regions.empty()) continue;
      if (!app.globals().json) {
        std::cout << "location " << loc.name << " (" << config::name(loc.replication.mode)
                  << ", primary " << loc.primary_region_name() << ", RPO target "
                  << loc.replication.rpo.seconds() << " s)\n";
      }
      for (const auto& r : loc.secondary_regions) {
        const catalog::ReplicationRow* row = nullptr;
        for (const auto& x : rows) {
          if (x.location == loc.name && x.region == r.region) row = &x;
        }
        catalog::ReplicationRow empty;
        if (row == nullptr) row = &empty;
        const int64_t lag = row->oldest_pending_at && row->pending_objects > 0
                                ? std::max<TimeNs>(0, t - *row->oldest_pending_at) / 1000000000
                                : 0;
        all.push_back({{"location", loc.name},
                       {"region", r.region},
                       {"state", catalog::to_string(row->state)},
                       {"status", row->status},
                       {"pending_objects", row->pending_objects},
                       {"pending_bytes", row->pending_bytes},
                       {"lag_seconds", lag},
                       {"last_success_at", row->last_success_at ? format_time(*row->last_success_at)
                                                                : std::string()},
                       {"last_error", row->last_error}});
        if (app.globals().json) continue;
        std::cout << "  " << r.region << ": " << catalog::to_string(row->state) << ", "
                  << row->status << ", " << row->pending_objects << " object(s) ("
                  << human_bytes(static_cast<uint64_t>(row->pending_bytes)) << ") behind, lag "
                  << lag << " s";
        if (row->last_success_at) std::cout << ", in step at " << format_time(*row->last_success_at);
        if (!row->last_error.empty()) std::cout << "; error: " << row->last_error;
        if (!row->state_changed_by.empty()) {
          std::cout << "; " << catalog::to_string(row->state) << " by " << row->state_changed_by;
        }
        std::cout << "\n";
      }
    }
    if (app.globals().json) std::cout << all.dump(2) << "\n";
    return kExitOk;
  });
  struct Verb {
    const char* name;
    catalog::ReplicationState state;
    const char* help;
  };
  for (const Verb& v : {Verb{"pause", catalog::ReplicationState::kPaused,
                             "stop copying to a region for now (its lag is still measured)"},
                        Verb{"resume", catalog::ReplicationState::kActive,
                             "copy to a region again (the server catches up at once)"},
                        Verb{"stop", catalog::ReplicationState::kStopped,
                             "take a region out of replication (not copied, measured or in a "
                             "sync quorum) until resumed"}}) {
    auto args = std::make_shared<LocationArgs>();
    auto* cmd = sub->add_subcommand(v.name, v.help);
    cmd->add_option("--config", args->config, "haven.yaml (default: $HAVEN_CONFIG)");
    cmd->add_option("--location", args->location, "the location")->required();
    cmd->add_option("--region", args->region, "the secondary region")->required();
    const catalog::ReplicationState state = v.state;
    const std::string verb = v.name;
    app.on(cmd, [&app, args, state, verb]() -> CommandResult {
      HAVEN_ASSIGN(std::string path, config_path(args->config));
      HAVEN_ASSIGN(config::Config cfg, config::load_config_file(path, environment_value));
      const config::Location* loc = cfg.find_location(args->location);
      if (loc == nullptr) {
        return Error(Error::Code::kInvalidArgument,
                     "--location: " + path + " has no location '" + args->location + "'");
      }
      if (loc->find_region(args->region) == nullptr) {
        return Error(Error::Code::kInvalidArgument,
                     "--region: location '" + loc->name + "' has no secondary region '" +
                         args->region + "' (its regions: " + jobs::region_names(*loc) + ")");
      }
      auto cat = catalog::open_sqlite_catalog(cfg.server.catalog);
      if (!cat.ok()) return cat.error().with_context("server.catalog");
      HAVEN_ASSIGN(auto row, (*cat)->set_replication_state(loc->name, args->region, state,
                                                         cli_actor(), now()));
      audit_to(cfg, "replication." + verb, loc->name + "/" + args->region,
               {{"state", catalog::to_string(row.state)}});
      if (!app.globals().quiet) {
        std::cout << "location " << loc->name << ", region " << args->region << ": "
                  << catalog::to_string(row.state) << " (the server applies it within a "
                                                      "second)\n";
      }
      return kExitOk;
    });
  }
}

}  // namespace

void register_replicate(App& app) {
  register_replication_state(app);
  auto a = std::make_shared<LocationArgs>();
  auto* sub = app.root().add_subcommand(
      "replicate", "copy a location's repository to its secondary regions (haven.yaml), once");
  sub->add_option("--config", a->config, "haven.yaml (default: $HAVEN_CONFIG)");
  sub->add_option("--location", a->location, "the location whose regions to bring up to date")
      ->required();
  sub->add_option("--region", a->region, "only this secondary region");
  app.on(sub, [&app, a]() -> CommandResult {
    HAVEN_ASSIGN(Opened o, open_location(app, *a));
    HAVEN_ASSIGN(auto regions, jobs::open_secondary_regions(*o.location, a->region));
    HAVEN_ASSIGN(auto repo, open_on(app, *o.location, o.primary));
    CancelScope scope(app.cancel());
    CommandSink sink(app.globals());
    nlohmann::json all = nlohmann::json::array();
    std::optional<Error> failed;
    size_t failures = 0;
    for (const auto& region : regions) {
      auto pass = replication::replicate(*repo, region, {}, sink);
      sink.clear_line();
      if (!pass.ok()) {
        if (pass.error().code() == Error::Code::kCancelled) return pass.error();
        std::cerr << "error: " << pass.error().message() << "\n";
        all.push_back({{"region", region.name}, {"error", pass.error().message()}});
        if (!failed) failed = pass.error();
        failures++;
        continue;
      }
      all.push_back(pass->to_json(now()));
      if (!app.globals().json && !app.globals().quiet) print_pass(*pass);
    }
    if (app.globals().json) std::cout << all.dump(2) << "\n";
    if (failed) {
      return Error(failed->code(), "replication of location '" + o.location->name +
                                       "' failed in " + std::to_string(failures) + " of " +
                                       std::to_string(all.size()) +
                                       " region(s) (above); what was copied stays, and the next "
                                       "run carries on from there");
    }
    return kExitOk;
  });
}

}  // namespace haven::cli

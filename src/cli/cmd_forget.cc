// haven forget — removes the snapshots a retention policy does not keep, optionally followed by
// a prune (ops/forget.h).
#include <cstdio>
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/timezone.h"
#include "ops/forget.h"

namespace haven::cli {

namespace {

struct ForgetCliOptions {
  ops::ForgetRequest r;
  std::string timezone;  // "" or "local" = the local zone (cli/timezone.h)
  double max_unused = retention::PruneOptions{}.max_unused_percent;
};

// "2026-12-31 23:00:00 +01:00" in the policy's zone.
std::string local_text(const retention::CivilTime& c) {
  int64_t off = c.utc_offset < 0 ? -c.utc_offset : c.utc_offset;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d %c%02d:%02d", c.year, c.month,
                c.day, c.hour, c.minute, c.second, c.utc_offset < 0 ? '-' : '+',
                static_cast<int>(off / 3600), static_cast<int>(off % 3600 / 60));
  return buf;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string group_title(const ops::ForgetGroup& g, const retention::GroupBy& by) {
  std::vector<std::string> parts;
  if (by.host) parts.push_back("host " + (g.host.empty() ? std::string("(none)") : g.host));
  if (by.paths) parts.push_back("paths " + (g.paths.empty() ? std::string("(none)") : join(g.paths, " ")));
  if (by.tags) parts.push_back("tags " + (g.tags.empty() ? std::string("(none)") : join(g.tags, ",")));
  return parts.empty() ? "all snapshots" : join(parts, ", ");
}

}  // namespace

void register_forget(App& app) {
  auto o = std::make_shared<ForgetCliOptions>();
  auto* sub = app.root().add_subcommand(
      "forget", "remove snapshots a retention policy does not keep (then --prune to free space)");
  ops::ForgetRequest& r = o->r;
  sub->add_option("--keep-last", r.keep_last, "keep the N newest snapshots");
  sub->add_option("--keep-hourly", r.keep_hourly, "keep the newest snapshot of each of the last N hours that have one");
  sub->add_option("--keep-daily", r.keep_daily, "same for days");
  sub->add_option("--keep-weekly", r.keep_weekly, "same for ISO weeks (Monday to Sunday)");
  sub->add_option("--keep-monthly", r.keep_monthly, "same for months");
  sub->add_option("--keep-yearly", r.keep_yearly, "same for years");
  sub->add_option("--keep-within", r.keep_within,
                  "keep snapshots within DURATION of the group's newest (30d, 2w, 6m, 1y6m, 72h; "
                  "a bare number is days)");
  sub->add_option("--keep-tag", r.keep_tags, "keep snapshots with this tag (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--min-copies", r.min_copies, "never keep fewer than N per group (the newest)");
  sub->add_option("--max-copies", r.max_copies, "never keep more than N per group (drops the oldest kept)");
  sub->add_option("--timezone", o->timezone,
                  "zone for hours/days/weeks/months/years: an IANA name or UTC (default: local, "
                  "from TZ or /etc/localtime)");
  sub->add_option("--group-by", r.group_by,
                  "apply the policy per group: comma-separated host, paths, tags, or '' for one "
                  "group (default host,paths)");
  sub->add_flag("-n,--dry-run", r.dry_run, "only show what would be kept and removed");
  auto* prune_flag = sub->add_flag("--prune", r.prune, "prune the repository afterwards");
  auto* max_unused = sub->add_option("--max-unused", o->max_unused,
                  "with --prune: repack packs with more than PERCENT unused bytes (default 10)")
      ->check(CLI::Range(0.0, 100.0))
      ->needs(prune_flag);

  app.on(sub, [&app, o, max_unused]() -> CommandResult {
    ops::ForgetRequest r = o->r;
    if (max_unused->count() > 0) r.max_unused_percent = o->max_unused;
    // The library takes zones by name: the local zone's is found here.
    std::string display;
    if (o->timezone.empty() || o->timezone == "local") {
      auto name = local_zone_name(local_zone_sources());
      if (!name.ok()) return name.error().with_context("--timezone");
      r.timezone = *name;
      display = "local (" + *name + ")";
    } else {
      r.timezone = o->timezone;
    }
    // Everything the user gave is checked before the repository is touched.
    HAVEN_TRY(ops::validate(r));
    const bool json = app.globals().json;
    const bool quiet = app.globals().quiet;

    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    HAVEN_ASSIGN(ops::ForgetResult res, ops::forget(*repo, r, sink));
    sink.clear_line();
    if (!res.dry_run) {
      nlohmann::json removed = nlohmann::json::array();
      for (const auto& g : res.groups) {
        for (const auto& d : g.decisions) {
          if (!d.keep) removed.push_back(repo::hex(d.id));
        }
      }
      nlohmann::json details = {{"policy", res.policy}, {"removed", res.removed}, {"snapshots", removed}};
      if (res.prune) details["prune"] = {{"packs_deleted", res.prune->packs_deleted}, {"bytes_deleted", res.prune->bytes_deleted}};
      app.audit("forget", details.dump());
    }
    if (display.empty()) display = res.timezone;

    nlohmann::json jgroups = nlohmann::json::array();
    for (const auto& g : res.groups) {
      nlohmann::json jkeep = nlohmann::json::array(), jremove = nlohmann::json::array();
      if (!json && !quiet) {
        std::printf("%s:\n", group_title(g, res.group_by).c_str());
        std::printf("  %-6s  %-8s  %-26s  %s\n", "Action", "ID", "Time", "Reasons");
      }
      for (const auto& d : g.decisions) {
        if (json) {
          (d.keep ? jkeep : jremove)
              .push_back({{"id", repo::hex(d.id)}, {"short_id", repo::short_hex(d.id)},
                          {"time", format_time(d.time)}, {"local_time", local_text(d.local)},
                          {"reasons", d.reasons}});
        } else if (!quiet) {
          std::string line = "  " + std::string(d.keep ? "keep  " : "remove") + "  " +
                             repo::short_hex(d.id) + "  " + local_text(d.local);
          if (!d.reasons.empty()) line += "  " + join(d.reasons, ", ");
          std::printf("%s\n", line.c_str());
        }
      }
      if (json) {
        nlohmann::json jg = {{"keep", jkeep}, {"remove", jremove}};
        if (res.group_by.host) jg["host"] = g.host;
        if (res.group_by.paths) jg["paths"] = g.paths;
        if (res.group_by.tags) jg["tags"] = g.tags;
        jgroups.push_back(std::move(jg));
      } else if (!quiet) {
        std::printf("\n");
      }
    }

    if (json) {
      nlohmann::json out = {{"message_type", "forget"},
                            {"dry_run", res.dry_run},
                            {"timezone", display},
                            {"policy", res.policy},
                            {"groups", jgroups},
                            {"keep", res.keep},
                            {"remove", res.remove},
                            {"removed", res.removed}};
      if (res.prune) out["prune"] = retention::stats_json(*res.prune, false);
      std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    } else if (!quiet) {
      std::printf("policy: %s (time zone %s)\n", res.policy.c_str(), display.c_str());
      if (res.dry_run) {
        std::printf("dry run: would keep %zu and remove %zu snapshot(s); nothing was changed\n",
                    res.keep, res.remove);
      } else {
        std::printf("kept %zu, removed %zu snapshot(s)\n", res.keep, res.removed);
      }
      std::fflush(stdout);
    }
    if (res.removal_error) return *res.removal_error;

    if (r.prune && r.dry_run) {
      if (!json && !quiet) std::printf("--prune skipped: dry run\n");
    } else if (res.prune && !json && !quiet) {
      const retention::PruneStats& st = *res.prune;
      std::printf("prune: deleted %llu pack(s), repacked %llu, reclaimed %s\n",
                  static_cast<unsigned long long>(st.packs_deleted),
                  static_cast<unsigned long long>(st.packs_repacked),
                  human_bytes(static_cast<uint64_t>(st.reclaimed() > 0 ? st.reclaimed() : 0)).c_str());
    }
    return kExitOk;
  });
}

}  // namespace haven::cli

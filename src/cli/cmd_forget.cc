// haven forget — removes the snapshots a retention policy does not keep (retention/policy.h),
// optionally followed by a prune (retention/prune.h).
#include <cstdio>
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/timezone.h"
#include "retention/policy.h"
#include "retention/prune.h"

namespace haven::cli {

namespace {

struct ForgetCliOptions {
  retention::Policy policy;
  std::string within;             // --keep-within, parsed in the callback
  std::string timezone;           // "" or "local" = the local zone (cli/timezone.h)
  std::string group_by = "host,paths";
  bool dry_run = false;
  bool prune = false;
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

// "keep 7 daily, 4 weekly, within 30d, tag pinned; at least 3, at most 50".
std::string describe_policy(const ForgetCliOptions& o) {
  const retention::Policy& p = o.policy;
  std::vector<std::string> rules;
  if (p.keep_last) rules.push_back("last " + std::to_string(p.keep_last));
  const std::pair<const char*, int> buckets[] = {{"hourly", p.keep_hourly}, {"daily", p.keep_daily},
                                                 {"weekly", p.keep_weekly}, {"monthly", p.keep_monthly},
                                                 {"yearly", p.keep_yearly}};
  for (const auto& [name, n] : buckets) {
    if (n) rules.push_back(std::to_string(n) + " " + name);
  }
  if (p.keep_within) rules.push_back("within " + o.within);
  for (const auto& t : p.keep_tags) rules.push_back("tag " + t);
  std::string s = "keep " + join(rules, ", ");
  std::vector<std::string> limits;
  if (p.min_copies) limits.push_back("at least " + std::to_string(p.min_copies));
  if (p.max_copies) limits.push_back("at most " + std::to_string(p.max_copies));
  if (!limits.empty()) s += "; " + join(limits, ", ") + " per group";
  return s;
}

std::string group_title(const retention::Group& g, const retention::GroupBy& by) {
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
  retention::Policy& p = o->policy;
  sub->add_option("--keep-last", p.keep_last, "keep the N newest snapshots");
  sub->add_option("--keep-hourly", p.keep_hourly, "keep the newest snapshot of each of the last N hours that have one");
  sub->add_option("--keep-daily", p.keep_daily, "same for days");
  sub->add_option("--keep-weekly", p.keep_weekly, "same for ISO weeks (Monday to Sunday)");
  sub->add_option("--keep-monthly", p.keep_monthly, "same for months");
  sub->add_option("--keep-yearly", p.keep_yearly, "same for years");
  sub->add_option("--keep-within", o->within,
                  "keep snapshots within DURATION of the group's newest (30d, 2w, 6m, 1y6m, 72h; "
                  "a bare number is days)");
  sub->add_option("--keep-tag", p.keep_tags, "keep snapshots with this tag (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--min-copies", p.min_copies, "never keep fewer than N per group (the newest)");
  sub->add_option("--max-copies", p.max_copies, "never keep more than N per group (drops the oldest kept)");
  sub->add_option("--timezone", o->timezone,
                  "zone for hours/days/weeks/months/years: an IANA name or UTC (default: local, "
                  "from TZ or /etc/localtime)");
  sub->add_option("--group-by", o->group_by,
                  "apply the policy per group: comma-separated host, paths, tags, or '' for one "
                  "group (default host,paths)");
  sub->add_flag("-n,--dry-run", o->dry_run, "only show what would be kept and removed");
  auto* prune_flag = sub->add_flag("--prune", o->prune, "prune the repository afterwards");
  sub->add_option("--max-unused", o->max_unused,
                  "with --prune: repack packs with more than PERCENT unused bytes (default 10)")
      ->check(CLI::Range(0.0, 100.0))
      ->needs(prune_flag);

  app.on(sub, [&app, o]() -> CommandResult {
    // Everything the user gave is checked before the repository is touched.
    retention::Policy policy = o->policy;
    if (!o->within.empty()) {
      auto d = retention::parse_duration(o->within);
      if (!d.ok()) return d.error().with_context("--keep-within");
      policy.keep_within = *d;
    }
    HAVEN_TRY(retention::validate(policy));
    auto choice = resolve_zone_option(o->timezone);
    if (!choice.ok()) return choice.error().with_context("--timezone");
    const retention::TimeZone& zone = choice->zone;
    HAVEN_ASSIGN(retention::GroupBy group_by, retention::parse_group_by(o->group_by));
    const bool json = app.globals().json;
    const bool quiet = app.globals().quiet;

    HAVEN_ASSIGN(auto repo, app.open_repository());
    // Removing snapshots needs the exclusive lock (no backup may pick a parent we delete, no
    // prune may run at the same time); a dry run changes nothing and shares.
    repo::Session session(*repo, app.cancel());
    HAVEN_TRY(app.lock(session, !o->dry_run));
    HAVEN_ASSIGN(auto all, app.list_snapshots(*repo));
    std::vector<retention::SnapshotRef> refs;
    refs.reserve(all.size());
    for (const auto& [id, s] : all) refs.push_back({id, s.time, s.hostname, s.paths, s.tags});
    std::vector<retention::Group> groups = retention::apply(policy, refs, zone, group_by);

    size_t keep_n = 0, remove_n = 0;
    std::vector<repo::Id> to_remove;
    nlohmann::json jgroups = nlohmann::json::array();
    for (const auto& g : groups) {
      std::vector<TimeNs> times;
      for (const auto& d : g.decisions) times.push_back(d.time);
      std::vector<retention::CivilTime> local = zone.civil(times);
      nlohmann::json jkeep = nlohmann::json::array(), jremove = nlohmann::json::array();
      if (!json && !quiet) {
        std::printf("%s:\n", group_title(g, group_by).c_str());
        std::printf("  %-6s  %-8s  %-26s  %s\n", "Action", "ID", "Time", "Reasons");
      }
      for (size_t i = 0; i < g.decisions.size(); i++) {
        const auto& d = g.decisions[i];
        (d.keep ? keep_n : remove_n)++;
        if (!d.keep) to_remove.push_back(d.id);
        if (json) {
          (d.keep ? jkeep : jremove)
              .push_back({{"id", repo::hex(d.id)}, {"short_id", repo::short_hex(d.id)},
                          {"time", format_time(d.time)}, {"local_time", local_text(local[i])},
                          {"reasons", d.reasons}});
        } else if (!quiet) {
          std::string line = "  " + std::string(d.keep ? "keep  " : "remove") + "  " +
                             repo::short_hex(d.id) + "  " + local_text(local[i]);
          if (!d.reasons.empty()) line += "  " + join(d.reasons, ", ");
          std::printf("%s\n", line.c_str());
        }
      }
      if (json) {
        nlohmann::json jg = {{"keep", jkeep}, {"remove", jremove}};
        if (group_by.host) jg["host"] = g.host;
        if (group_by.paths) jg["paths"] = g.paths;
        if (group_by.tags) jg["tags"] = g.tags;
        jgroups.push_back(std::move(jg));
      } else if (!quiet) {
        std::printf("\n");
      }
    }

    size_t removed = 0;
    Status removal = ok_status();
    if (!o->dry_run) {
      for (const auto& id : to_remove) {
        removal = repo->remove_snapshot(id);
        if (!removal.ok()) break;
        removed++;
      }
    }

    if (json) {
      nlohmann::json out = {{"message_type", "forget"},
                            {"dry_run", o->dry_run},
                            {"timezone", choice->display},
                            {"policy", describe_policy(*o)},
                            {"groups", jgroups},
                            {"keep", keep_n},
                            {"remove", remove_n},
                            {"removed", removed}};
      std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    } else if (!quiet) {
      std::printf("policy: %s (time zone %s)\n", describe_policy(*o).c_str(),
                  choice->display.c_str());
      if (o->dry_run) {
        std::printf("dry run: would keep %zu and remove %zu snapshot(s); nothing was changed\n",
                    keep_n, remove_n);
      } else {
        std::printf("kept %zu, removed %zu snapshot(s)\n", keep_n, removed);
      }
      std::fflush(stdout);
    }
    if (!removal.ok()) {
      return removal.error().with_context("removing snapshots (" + std::to_string(removed) + " of " +
                                          std::to_string(to_remove.size()) + " removed)");
    }

    if (o->prune && o->dry_run) {
      if (!json && !quiet) std::printf("--prune skipped: dry run\n");
    } else if (o->prune) {
      retention::PruneOptions po;
      po.max_unused_percent = o->max_unused;
      CliSink sink(json, quiet);
      HAVEN_ASSIGN(retention::PruneStats st, retention::prune(session, po, sink));
      sink.clear_line();
      if (!json && !quiet) {
        std::printf("prune: deleted %llu pack(s), repacked %llu, reclaimed %s\n",
                    static_cast<unsigned long long>(st.packs_deleted),
                    static_cast<unsigned long long>(st.packs_repacked),
                    human_bytes(static_cast<uint64_t>(st.reclaimed() > 0 ? st.reclaimed() : 0)).c_str());
      }
    }
    HAVEN_TRY(session.unlock());
    return kExitOk;
  });
}

}  // namespace haven::cli

// haven restore — write a snapshot (or part of it) back to a directory.
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
#include "restore/restore.h"

namespace haven::cli {

namespace {
struct RestoreCliOptions {
  std::string snapshot;
  std::string at;
  std::string overwrite = "never";
  restore::Options o;
};
}  // namespace

// Picks the newest snapshot at or before `at` (point-in-time restore of files).
Result<repo::Id> snapshot_at(App& app, repo::Repository& repo, const std::string& at) {
  auto t = parse_time(at);
  if (!t) {
    return Error(Error::Code::kInvalidArgument,
                 "cannot read time '" + at + "': use RFC 3339 (2026-11-21T10:00:00Z) or "
                 "'YYYY-MM-DD HH:MM[:SS]' local time");
  }
  HAVEN_ASSIGN(auto all, app.list_snapshots(repo));
  std::optional<repo::Id> best;
  for (const auto& [id, s] : all) {
    if (s.time <= *t) best = id;
  }
  if (!best) {
    std::string first = all.empty() ? "none" : format_time(all.front().second.time);
    return Error(Error::Code::kNotFound,
                 "no snapshot at or before " + at + " (oldest snapshot: " + first + ")");
  }
  return *best;
}

void register_restore(App& app) {
  auto opts = std::make_shared<RestoreCliOptions>();
  auto* sub = app.root().add_subcommand("restore", "restore a snapshot to a directory");
  sub->add_option("SNAPSHOT", opts->snapshot, "snapshot ID prefix or 'latest'");
  sub->add_option("--target", opts->o.target, "directory to restore into")->required();
  sub->add_option("--include", opts->o.includes, "restore only this path (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--exclude", opts->o.excludes, "skip this path or glob (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--at", opts->at, "restore the newest snapshot at or before this time");
  sub->add_flag("--verify", opts->o.verify, "re-read restored files and check their content");
  sub->add_option("--overwrite", opts->overwrite, "never (default) | if-changed | always");
  sub->add_option("--threads", opts->o.threads, "worker threads (default: one per core)");
  app.on(sub, [&app, opts]() -> CommandResult {
    restore::Options o = opts->o;
    HAVEN_ASSIGN(o.overwrite, restore::parse_overwrite(opts->overwrite));
    if (opts->snapshot.empty() && opts->at.empty()) {
      return Error(Error::Code::kInvalidArgument, "name a snapshot (an ID prefix or 'latest') or give --at TIME");
    }
    if (!opts->snapshot.empty() && !opts->at.empty()) {
      return Error(Error::Code::kInvalidArgument, "give either a snapshot or --at, not both");
    }
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_TRY(app.lock(*repo, false));
    repo::Id id{};
    if (!opts->at.empty()) {
      HAVEN_ASSIGN(id, snapshot_at(app, *repo, opts->at));
    } else {
      HAVEN_ASSIGN(id, app.resolve_snapshot(*repo, opts->snapshot));
    }
    HAVEN_ASSIGN(repo::Snapshot snap, repo->load_snapshot(id));
    HAVEN_TRY(app.load_index(*repo));
    CliSink sink(app.globals().json, app.globals().quiet);
    HAVEN_ASSIGN(restore::Summary s, restore::run(*repo, snap.tree, o, sink));
    sink.clear_line();
    if (!app.globals().json && !app.globals().quiet) {
      std::cout << "restored snapshot " << repo::short_hex(id) << " of " << format_time(snap.time)
                << " to " << o.target << ": " << s.files << " files, " << s.dirs << " dirs, "
                << human_bytes(s.bytes);
      if (o.verify) std::cout << ", " << s.verified << " verified";
      if (s.skipped) std::cout << ", " << s.skipped << " skipped";
      if (s.errors) std::cout << ", " << s.errors << " FAILED";
      std::cout << "\n";
    }
    HAVEN_TRY(repo->unlock());
    if (s.errors) return Error(Error::Code::kCorrupt, std::to_string(s.errors) + " file(s) could not be restored (see above)");
    bool left_alone = s.skipped && o.overwrite == restore::Overwrite::kNever;
    return left_alone ? kExitWarnings : kExitOk;
  });
}

}  // namespace haven::cli

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

void register_restore(App& app) {
  auto opts = std::make_shared<RestoreCliOptions>();
  auto* sub = app.root().add_subcommand("restore", "restore a snapshot to a directory");
  sub->add_option("SNAPSHOT", opts->snapshot, "snapshot ID prefix or 'latest'");
  sub->add_option("--target", opts->o.target, "directory to restore into")->required();
  sub->add_option("--include", opts->o.includes, "restore only this path, as backed up (/srv/app/etc) or as stored (app/etc); repeatable")
      ->allow_extra_args(false);
  sub->add_option("--exclude", opts->o.excludes, "skip this path or glob, in either form (repeatable)")
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
    std::optional<TimeNs> at;
    if (!opts->at.empty()) {
      at = parse_time(opts->at);
      if (!at) {
        return Error(Error::Code::kInvalidArgument,
                     "cannot read time '" + opts->at + "': use RFC 3339 (2026-11-21T10:00:00Z) or "
                     "'YYYY-MM-DD HH:MM[:SS]' local time");
      }
    }
    HAVEN_ASSIGN(auto repo, app.open_repository());
    repo::Session session(*repo, app.cancel());
    HAVEN_TRY(app.lock(session, false));
    // The library picks the snapshot, and says when a damaged one may have been the one asked for.
    HAVEN_ASSIGN(restore::Choice choice, restore::choose_snapshot(*repo, opts->snapshot, at));
    HAVEN_TRY(app.load_index(*repo));
    CliSink sink(app.globals().json, app.globals().quiet);
    HAVEN_ASSIGN(restore::Summary s, restore::run(session, choice, o, sink));
    sink.clear_line();
    if (!app.globals().json && !app.globals().quiet) {
      std::cout << "restored snapshot " << repo::short_hex(choice.id) << " of "
                << format_time(choice.snapshot.time) << " to " << o.target << ": " << s.files
                << " files, " << s.dirs << " dirs, " << human_bytes(s.bytes);
      if (o.verify) std::cout << ", " << s.verified << " verified";
      if (s.skipped) std::cout << ", " << s.skipped << " skipped";
      if (s.errors) std::cout << ", " << s.errors << " FAILED";
      std::cout << "\n";
      if (!s.substitution.empty()) std::cout << "NOT THE SNAPSHOT ASKED FOR: " << s.substitution << "\n";
    }
    HAVEN_TRY(session.unlock());
    if (s.errors) return Error(Error::Code::kCorrupt, std::to_string(s.errors) + " file(s) could not be restored (see above)");
    bool left_alone = s.skipped && o.overwrite == restore::Overwrite::kNever;
    return left_alone || !s.substitution.empty() ? kExitWarnings : kExitOk;
  });
}

}  // namespace haven::cli

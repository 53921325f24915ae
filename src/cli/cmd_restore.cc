// haven restore — write a snapshot (or part of it) back to a directory (ops/restore.h).
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
#include "ops/restore.h"

namespace haven::cli {

void register_restore(App& app) {
  auto r = std::make_shared<ops::RestoreRequest>();
  auto compare_only = std::make_shared<bool>(false);
  auto* sub = app.root().add_subcommand("restore", "restore a snapshot to a directory");
  sub->add_option("SNAPSHOT", r->snapshot, "snapshot ID prefix or 'latest'");
  sub->add_option("--target", r->target, "directory to restore into")->required();
  sub->add_option("--include", r->includes, "restore only this path, as backed up (/srv/app/etc) or as stored (app/etc); repeatable")
      ->allow_extra_args(false);
  sub->add_option("--exclude", r->excludes, "skip this path or glob, in either form (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--at", r->at, "restore the newest snapshot at or before this time");
  sub->add_flag("--verify", r->verify, "re-read restored files and check their content");
  sub->add_option("--overwrite", r->overwrite, "never (default) | if-changed | always");
  sub->add_flag("--compare", *compare_only,
                "write nothing: compare the target with the snapshot (a restore's validation); "
                "exit 1 if anything is missing or differs");
  sub->add_option("--threads", r->threads, "worker threads (default: one per core)");
  auto loc = std::make_shared<LocationArgs>();
  sub->add_option("--config", loc->config,
                  "with --location: haven.yaml (default: $HAVEN_CONFIG)");
  sub->add_option("--location", loc->location,
                  "restore from this location of haven.yaml (instead of --repo), reading what is "
                  "missing or damaged in its primary region from a secondary one");
  app.on(sub, [&app, r, compare_only, loc]() -> CommandResult {
    HAVEN_TRY(ops::validate(*r));
    CommandSink sink(app.globals());
    HAVEN_ASSIGN(auto repo, loc->location.empty() ? app.open_repository()
                                                  : open_with_regions(app, *loc, sink));
    if (*compare_only) {
      HAVEN_ASSIGN(ops::CompareResult res, ops::compare(*repo, *r, sink));
      sink.clear_line();
      const restore::Comparison& c = res.comparison;
      if (!app.globals().json && !app.globals().quiet) {
        std::cout << "compared snapshot " << repo::short_hex(res.snapshot_id) << " of "
                  << format_time(res.snapshot.time) << " with " << r->target << ": " << c.files
                  << " files, " << c.dirs << " dirs, " << human_bytes(c.bytes) << " re-read; ";
        if (c.clean()) {
          std::cout << "everything matches\n";
        } else {
          std::cout << c.missing << " missing, " << c.differ << " different, " << c.unreadable
                    << " unreadable\n";
        }
      }
      if (!res.substitution.empty() && !app.globals().quiet) {
        std::cout << "NOT THE SNAPSHOT ASKED FOR: " << res.substitution << "\n";
      }
      if (!c.clean()) {
        return Error(Error::Code::kCorrupt, std::to_string(c.missing + c.differ + c.unreadable) +
                                                " of the snapshot's entries are not in " + r->target +
                                                " as stored (listed above): restore them again with --overwrite always");
      }
      return res.substitution.empty() ? kExitOk : kExitWarnings;
    }
    HAVEN_ASSIGN(ops::RestoreResult res, ops::restore(*repo, *r, sink));
    sink.clear_line();
    const restore::Summary& s = res.summary;
    if (!app.globals().json && !app.globals().quiet) {
      std::cout << "restored snapshot " << repo::short_hex(res.snapshot_id) << " of "
                << format_time(res.snapshot.time) << " to " << r->target << ": " << s.files
                << " files, " << s.dirs << " dirs, " << human_bytes(s.bytes);
      if (r->verify) std::cout << ", " << s.verified << " verified";
      if (s.skipped) std::cout << ", " << s.skipped << " skipped";
      if (s.errors) std::cout << ", " << s.errors << " FAILED";
      std::cout << "\n";
      if (!s.substitution.empty()) std::cout << "NOT THE SNAPSHOT ASKED FOR: " << s.substitution << "\n";
    }
    if (s.errors) return Error(Error::Code::kCorrupt, std::to_string(s.errors) + " file(s) could not be restored (see above)");
    bool left_alone = s.skipped && res.overwrite == restore::Overwrite::kNever;
    return left_alone || !s.substitution.empty() ? kExitWarnings : kExitOk;
  });
}

}  // namespace haven::cli

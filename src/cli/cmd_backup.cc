// haven backup — back up paths, standard input, or a command's output (ops/backup.h).
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
#include "ops/backup.h"

namespace haven::cli {

namespace {
struct BackupCliOptions {
  ops::BackupRequest r;
  bool stdin_flag = false;
  bool from_command = false;
};
}  // namespace

void register_backup(App& app) {
  auto opts = std::make_shared<BackupCliOptions>();
  ops::BackupRequest& r = opts->r;
  auto* sub = app.root().add_subcommand("backup", "back up files and directories");
  sub->add_option("PATH", r.paths, "files and directories to back up");
  sub->add_option("--strategy", r.strategy, "full | incremental (default) | differential")
      ->check(CLI::IsMember({"full", "incremental", "differential"}));
  sub->add_option("--tag", r.tags, "tag the snapshot (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--host", r.host, "host name to record (default: this host)");
  sub->add_option("--exclude", r.excludes, "exclude paths matching a glob (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--exclude-file", r.exclude_files, "read exclude globs from a file")
      ->allow_extra_args(false);
  sub->add_flag("--one-file-system", r.one_file_system, "do not cross file system boundaries");
  sub->add_flag("--stdin", opts->stdin_flag, "back up standard input as one file");
  sub->add_option("--stdin-filename", r.stdin_filename, "file name for --stdin data");
  sub->add_flag("--stdin-from-command", opts->from_command,
                "back up the output of the command given after --; fails if it exits non-zero");
  sub->add_option("--threads", r.threads, "worker threads (default: one per core)");
  app.on(sub, [&app, opts]() -> CommandResult {
    ops::BackupRequest r = opts->r;
    if (opts->from_command) {
      // Everything after "--" is the command; CLI11 leaves it in the positional paths.
      r.source = ops::BackupRequest::Source::kCommand;
      r.command = std::move(r.paths);
      r.paths.clear();
    } else if (opts->stdin_flag) {
      r.source = ops::BackupRequest::Source::kStdin;
    }
    HAVEN_TRY(ops::validate(r));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    HAVEN_ASSIGN(ops::BackupResult s, ops::backup(*repo, r, sink));
    sink.clear_line();
    if (!app.globals().json && !app.globals().quiet) {
      std::cout << "Files: " << s.stat("files_new") << " new, " << s.stat("files_changed")
                << " changed, " << s.stat("files_unchanged") << " unchanged\n"
                << "Read " << human_bytes(s.stat("bytes_read")) << " of "
                << human_bytes(s.stat("bytes_total")) << ", added "
                << human_bytes(s.stat("bytes_added")) << " to the repository in "
                << s.stat("duration_ms") / 1000.0 << " s\n"
                << "snapshot " << repo::short_hex(s.snapshot_id) << " saved ("
                << s.snapshot.strategy << ")\n";
      if (s.warnings) std::cout << s.warnings << " warning(s): some files were not backed up as they were\n";
    }
    return s.warnings ? kExitWarnings : kExitOk;
  });
}

}  // namespace haven::cli

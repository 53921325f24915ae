// haven backup — back up paths, standard input, or a command's output.
#include <iostream>

#include "backup/backup.h"
#include "cli/cli.h"
#include "cli/progress.h"

namespace haven::cli {

namespace {
struct BackupCliOptions {
  backup::Options o;
  std::vector<std::string> exclude_files;
  bool stdin_flag = false;
  bool from_command = false;
};
}  // namespace

void register_backup(App& app) {
  auto opts = std::make_shared<BackupCliOptions>();
  auto* sub = app.root().add_subcommand("backup", "back up files and directories");
  sub->add_option("PATH", opts->o.paths, "files and directories to back up");
  sub->add_option("--strategy", opts->o.strategy, "full | incremental (default) | differential")
      ->check(CLI::IsMember({"full", "incremental", "differential"}));
  sub->add_option("--tag", opts->o.tags, "tag the snapshot (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--host", opts->o.host, "host name to record (default: this host)");
  sub->add_option("--exclude", opts->o.excludes, "exclude paths matching a glob (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--exclude-file", opts->exclude_files, "read exclude globs from a file")
      ->allow_extra_args(false);
  sub->add_flag("--one-file-system", opts->o.one_file_system, "do not cross file system boundaries");
  sub->add_flag("--stdin", opts->stdin_flag, "back up standard input as one file");
  sub->add_option("--stdin-filename", opts->o.stdin_filename, "file name for --stdin data");
  sub->add_flag("--stdin-from-command", opts->from_command,
                "back up the output of the command given after --; fails if it exits non-zero");
  sub->add_option("--threads", opts->o.threads, "worker threads (default: one per core)");
  app.on(sub, [&app, opts]() -> CommandResult {
    backup::Options o = opts->o;
    for (const auto& f : opts->exclude_files) {
      HAVEN_ASSIGN(auto pats, backup::read_exclude_file(f));
      o.excludes.insert(o.excludes.end(), pats.begin(), pats.end());
    }
    if (opts->from_command) {
      // Everything after "--" is the command; CLI11 leaves it in the positional paths.
      o.command = o.paths;
      o.paths.clear();
      if (o.command.empty()) {
        return Error(Error::Code::kInvalidArgument,
                     "--stdin-from-command needs a command after --, e.g. -- pg_dump mydb");
      }
      o.from_stdin = true;
      if (o.stdin_filename.empty()) o.stdin_filename = "stdin";
    } else if (opts->stdin_flag) {
      o.from_stdin = true;
      if (o.stdin_filename.empty()) o.stdin_filename = "stdin";
    }
    HAVEN_ASSIGN(auto repo, app.open_repository());
    repo::Session session(*repo, app.cancel());
    HAVEN_TRY(app.lock(session, false));
    HAVEN_TRY(app.load_index(*repo));
    CliSink sink(app.globals().json, app.globals().quiet);
    HAVEN_ASSIGN(backup::Summary s, backup::run(session, o, sink));
    sink.clear_line();
    if (!app.globals().json && !app.globals().quiet) {
      const auto& st = s.snapshot.stats;
      auto get = [&](const char* k) { auto it = st.find(k); return it == st.end() ? 0 : it->second; };
      std::cout << "Files: " << get("files_new") << " new, " << get("files_changed") << " changed, "
                << get("files_unchanged") << " unchanged\n"
                << "Read " << human_bytes(get("bytes_read")) << " of " << human_bytes(get("bytes_total"))
                << ", added " << human_bytes(get("bytes_added")) << " to the repository in "
                << get("duration_ms") / 1000.0 << " s\n"
                << "snapshot " << repo::short_hex(s.snapshot_id) << " saved ("
                << s.snapshot.strategy << ")\n";
      if (s.warnings) std::cout << s.warnings << " warning(s): some files were not backed up as they were\n";
    }
    HAVEN_TRY(session.unlock());
    return s.warnings ? kExitWarnings : kExitOk;
  });
}

}  // namespace haven::cli

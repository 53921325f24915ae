// haven backup — back up paths, standard input, or a command's output (ops/backup.h).
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
#include "catalog/catalog.h"
#include "config/config.h"
#include "jobs/service.h"
#include "ops/backup.h"
#include "util/sysinfo.h"

#include <unistd.h>

#include <atomic>
#include <thread>

namespace haven::cli {

namespace {
struct BackupCliOptions {
  ops::BackupRequest r;
  bool stdin_flag = false;
  bool from_command = false;
  std::string config;  // with --policy: haven.yaml
  std::string policy;
};

// haven backup --config F --policy NAME: one run of a policy, with its sources, location and
// settings, recorded in the catalog as a server's run would be (trigger "cli"), then its
// retention. Retries are the server's business: a failed run here fails the command.
CommandResult run_policy(App& app, const BackupCliOptions& o) {
  HAVEN_ASSIGN(std::string path, config_path(o.config));
  HAVEN_ASSIGN(config::Config cfg, config::load_config_file(path, environment_value));
  if (cfg.find_policy(o.policy) == nullptr) {
    std::string names;
    for (const auto& p : cfg.policies) names += (names.empty() ? "" : ", ") + p.name;
    return Error(Error::Code::kInvalidArgument,
                 "--policy: " + path + " has no policy '" + o.policy + "' (it has: " +
                     (names.empty() ? "none" : names) + ")");
  }
  auto cat = catalog::open_sqlite_catalog(cfg.server.catalog);
  if (!cat.ok()) return cat.error().with_context("server.catalog");
  CommandSink sink(app.globals());
  jobs::ServiceOptions so;
  so.server_instance = "cli:" + hostname() + ":" + std::to_string(::getpid());
  so.retries = false;
  jobs::Service service(**cat, sink, so);
  HAVEN_TRY(service.apply_config(std::make_shared<const config::Config>(std::move(cfg))));
  HAVEN_ASSIGN(catalog::PolicyRow row, (*cat)->get_policy_by_name(o.policy));
  jobs::ExecuteRequest req;
  req.trigger = catalog::Trigger::kCli;
  HAVEN_ASSIGN(catalog::ExecutionRow e, service.execute(row.id, req));
  // Ctrl-C cancels the run (the runner's token is separate from this thread's).
  std::atomic<bool> done{false};
  std::thread watch([&] {
    while (!done.load()) {
      if (app.cancel().sleep_for(std::chrono::milliseconds(100))) {
        (void)service.cancel_execution(e.id);
        return;
      }
    }
  });
  service.wait_idle();
  done = true;
  watch.join();
  sink.clear_line();
  HAVEN_ASSIGN(catalog::ExecutionRow end, (*cat)->get_execution(e.id));
  if (end.status != catalog::ExecStatus::kCompleted) {
    Error::Code code = end.status == catalog::ExecStatus::kCancelled ? Error::Code::kCancelled
                                                                     : Error::Code::kIo;
    return Error(code, "policy '" + o.policy + "' run " + end.execution_id + " " +
                           std::string(catalog::to_string(end.status)) +
                           (end.error_message ? ": " + *end.error_message : std::string()));
  }
  if (!app.globals().json && !app.globals().quiet) {
    std::cout << "policy '" << o.policy << "': run " << end.execution_id << " completed, snapshot "
              << end.snapshot_id.value_or("").substr(0, 8) << ", "
              << end.files_backed_up.value_or(0) << " files, "
              << human_bytes(static_cast<uint64_t>(end.backup_size_bytes.value_or(0))) << ", integrity check "
              << (end.integrity_check_status ? std::string(catalog::to_string(*end.integrity_check_status)) : "none")
              << "\n";
  }
  return 0;
}
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
  sub->add_option("--compression", r.compression,
                  "none | low | medium | high for this backup's new data (default: the repository's)");
  sub->add_option("--config", opts->config, "with --policy: haven.yaml (default: $HAVEN_CONFIG)");
  sub->add_option("--policy", opts->policy,
                  "run this policy of haven.yaml once (its sources, location and settings), "
                  "recorded in the catalog");
  app.on(sub, [&app, opts]() -> CommandResult {
    if (!opts->policy.empty()) {
      if (!opts->r.paths.empty() || opts->stdin_flag || opts->from_command) {
        return Error(Error::Code::kInvalidArgument,
                     "--policy: a policy brings its own sources: give either --policy or paths");
      }
      return run_policy(app, *opts);
    }
    if (!opts->config.empty()) {
      return Error(Error::Code::kInvalidArgument, "--config: only with --policy NAME");
    }
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

// cli/cli.h — the command-line front end. Thin: each command parses its flags into an
// operation's request (ops/), calls the operation, and prints its typed result as text or
// JSON. Errors travel as haven::Error to one place (run()) that prints one message and maps the
// kind to an exit code. Passwords, the environment, the terminal and exit codes live here.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/progress.h"
#include "repo/repository.h"

namespace haven::cli {

// Exit codes (README "Exit codes").
enum ExitCode {
  kExitOk = 0,
  kExitFailure = 1,
  kExitUsage = 2,
  kExitWarnings = 3,
  kExitNoRepo = 10,
  kExitLocked = 11,
  kExitWrongPassword = 12,
};

int exit_code_for(const Error& e);

// Backend settings (credentials, S3/Azure options) looked up in the process environment.
storage::BackendSettings environment_settings();

// Options every command that touches a repository shares.
// This program's absolute path (for commands it writes or starts: restore_command, a prefetch).
std::string self_exe();

struct GlobalOptions {
  std::string repo;
  std::string password_file;
  bool json = false;
  bool quiet = false;
  double bandwidth_limit_mbps = 0;
  int connections = 0;
  std::string cache_dir;     // empty: $XDG_CACHE_HOME/haven or ~/.cache/haven
  std::string index_memory;  // a size ("4MiB"); empty: the default
  std::string memory_limit;  // a size ("64MiB"); empty: none
  std::string retry_lock;    // a wait ("5m", "90s", "1h30m"); empty: none
};

// "90", "90s", "5m", "1h30m" (seconds, minutes, hours; terms add up) as seconds, at most a week;
// `what` names the option.
Result<std::chrono::seconds> parse_wait(const std::string& text, const std::string& what);

// "4194304", "512K", "4M", "4MiB", "1G" (binary units) as bytes; `what` names the option.
Result<uint64_t> parse_size(const std::string& text, const std::string& what);

// What a command's callback returns: OK, or an Error (mapped to an exit code), or a non-zero
// exit with the message already printed (warnings).
using CommandResult = Result<int>;

class App {
 public:
  App();
  int run(int argc, char** argv);

  GlobalOptions& globals() { return globals_; }
  CLI::App& root() { return app_; }
  // Registers the action for a subcommand; run() invokes the one that was parsed.
  void on(CLI::App* sub, std::function<CommandResult()> fn);

  // Helpers for commands.
  Result<std::string> read_password();
  Result<std::string> read_new_password(const std::string& file);
  Result<std::unique_ptr<repo::Repository>> open_repository(const repo::OpenOptions& options = {});
  // What every repository the CLI opens gets: the cancellation token, the memory limit
  // (--memory-limit), and the index's memory bound and spill directory (--index-memory,
  // --cache-dir).
  Status configure(repo::Repository& repo);
  // The cache directory: --cache-dir (kInvalidArgument if it is not a directory), else
  // $XDG_CACHE_HOME/haven or ~/.cache/haven (created, mode 0700), else $TMPDIR or /tmp, where
  // `own` is false (a directory other users share).
  struct CacheDir {
    std::string path;
    bool own = true;
  };
  Result<CacheDir> cache_directory();
  // --memory-limit as a budget (repo/memory.h; unlimited when not given); kInvalidArgument for a
  // value that is not a size, is below the minimum, or leaves --index-memory no room.
  Result<repo::MemoryBudget> memory_budget();
  Result<std::shared_ptr<storage::Backend>> backend();
  // Records a change made from the command line in the server's audit log when $HAVEN_CONFIG
  // names a haven.yaml (a server host): actor "cli:<user>@<host>", `target` the repository.
  // Without it nothing is recorded; a log that cannot be written is a warning on stderr (the
  // change itself is done).
  void audit(const std::string& action, const std::string& details_json);
  // Cancelled by SIGINT or SIGTERM; every repository the CLI opens runs under it.
  const CancelToken& cancel() const { return cancel_; }
  // SIGHUPs received so far (a command that reloads polls it).
  int hangups() const { return hangups_->load(); }

 private:
  // Takes SIGINT and SIGTERM on a thread of their own: the first cancels the command (which
  // releases its lock and exits 130 or 143), a second one exits at once.
  void handle_signals();
  CancelToken cancel_;
  std::shared_ptr<std::atomic<int>> signal_ = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> hangups_ = std::make_shared<std::atomic<int>>(0);
  CLI::App app_;
  GlobalOptions globals_;
  std::vector<std::pair<CLI::App*, std::function<CommandResult()>>> actions_;
};

// The sink a command hands to an operation (ops/ops.h). The engines' events go to a CliSink
// (a live line on a terminal, JSON lines with --json, else only warnings and errors); the
// operations' own notices ("notice" events) are printed on stderr as "<level>: <message>":
// warnings always, notices unless --quiet.
class CommandSink : public EventSink {
 public:
  // `json`, `quiet`: for the CliSink; `quiet_notices`: --quiet.
  CommandSink(bool json, bool quiet, bool quiet_notices);
  explicit CommandSink(const GlobalOptions& g) : CommandSink(g.json, g.quiet, g.quiet) {}
  void emit(const Event& e) override;
  // Clears the live line before the command prints its result.
  void clear_line() { inner_.clear_line(); }

 private:
  CliSink inner_;
  bool quiet_notices_;
};

void register_init(App& app);
void register_key(App& app);
void register_cat(App& app);
void register_version(App& app);
void register_unlock(App& app);
void register_backup(App& app);
void register_restore(App& app);
void register_snapshots(App& app);
void register_check(App& app);
void register_prune(App& app);
void register_forget(App& app);
void register_repair(App& app);
void register_wal(App& app);
void register_pg(App& app);
void register_replicate(App& app);
void register_dr(App& app);  // haven dr plans|drill|executions|report (cmd_dr.cc)

// --config F --location L [--region R]: a location of haven.yaml and one of its regions.
struct LocationArgs {
  std::string config, location, region;
};
// The repository of a location of haven.yaml, opened on its primary region with its secondary
// regions behind it for reading (replication/failover.h): each object read from a region is a
// warning notice on `events` (cmd_replicate.cc).
Result<std::unique_ptr<repo::Repository>> open_with_regions(App& app, const LocationArgs& a,
                                                           EventSink& events);
// A location's storage, with the location's password: writing, the primary region — in sync
// mode behind a quorum of its regions (replication/quorum.h); reading, the primary with read
// failover, each object read from a region a warning notice on `events` (stderr when null).
struct LocationStorage {
  std::shared_ptr<storage::Backend> backend;
  std::string password;
};
Result<LocationStorage> open_location_storage(App& app, const LocationArgs& a, bool writing,
                                              EventSink* events = nullptr);
// haven check --regions (cmd_replicate.cc): each secondary region against the primary.
CommandResult run_check_regions(App& app, const LocationArgs& a, bool read_data);
// haven repair --from REGION [--region R] (cmd_replicate.cc).
CommandResult run_repair_from(App& app, const LocationArgs& a, const std::string& from,
                              bool read_data);

// haven config check; haven server token create|list|revoke; and `haven server` itself, whose
// body main.cc supplies (cli and server never include each other).
struct ServerCommand {
  std::string config;      // --config, else $HAVEN_CONFIG
  std::optional<int> port;  // --port overrides server.listen's port
};
using ServerMain = std::function<CommandResult(App&, const ServerCommand&)>;
void register_config(App& app);
void register_catalog(App& app);
// haven status, haven alerts [ack], haven audit verify|export (cmd_status.cc).
void register_status(App& app);
void register_server(App& app, ServerMain run);
// The environment as haven.yaml's env lookups see it.
std::optional<std::string> environment_value(const std::string& name);
// --config's value, or $HAVEN_CONFIG; kInvalidArgument naming both when neither is set.
Result<std::string> config_path(const std::string& flag);

}  // namespace haven::cli

// cli/cli.h — the command-line front end. Thin: each command parses its options into a struct,
// calls into repo/ (later backup/, restore/ ...), and prints. Errors travel as haven::Error to
// one place (run()) that prints one message and maps the kind to an exit code.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "repo/repository.h"
#include "repo/session.h"

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
struct GlobalOptions {
  std::string repo;
  std::string password_file;
  bool json = false;
  bool quiet = false;
  double bandwidth_limit_mbps = 0;
  int connections = 0;
};

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
  // Takes the session's repository lock (shared, or exclusive for commands that delete) and
  // prints a notice for each stale lock it ignored.
  Status lock(repo::Session& session, bool exclusive);
  // Snapshots, skipping (with a warning on stderr) any snapshot object that cannot be read.
  Result<std::vector<std::pair<repo::Id, repo::Snapshot>>> list_snapshots(repo::Repository& repo);
  Result<repo::Id> resolve_snapshot(repo::Repository& repo, const std::string& ref);
  // Loads the index, skipping (with a warning) index files that cannot be read: the blobs they
  // list are then missing and the files that need them fail alone.
  Status load_index(repo::Repository& repo);
  Result<std::shared_ptr<storage::Backend>> backend();
  // Cancelled by SIGINT or SIGTERM; every session the CLI opens is cancelled with it.
  const CancelToken& cancel() const { return cancel_; }

 private:
  // Takes SIGINT and SIGTERM on a thread of their own: the first cancels the command (which
  // releases its lock and exits 130 or 143), a second one exits at once.
  void handle_signals();
  CancelToken cancel_;
  std::shared_ptr<std::atomic<int>> signal_ = std::make_shared<std::atomic<int>>(0);
  CLI::App app_;
  GlobalOptions globals_;
  std::vector<std::pair<CLI::App*, std::function<CommandResult()>>> actions_;
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

}  // namespace haven::cli

// haven wal-push / wal-fetch — PostgreSQL's archive_command and restore_command, and
// haven pg archive-key, which writes the WAL key file they use (ops/wal.h).
//
//   archive_command = 'haven -r REPO wal-push --wal-key-file /etc/haven/wal.key %p'
//   restore_command = 'haven -r REPO wal-fetch --wal-key-file /etc/haven/wal.key %f %p'
//
// Without a key file both open the repository with its password (slow: Argon2id per call).
#include <fcntl.h>
#include <unistd.h>

#include <iostream>

#include "cli/cli.h"
#include "ops/wal.h"
#include "util/subprocess.h"

namespace haven::cli {

namespace {

struct WalOptions {
  LocationArgs location;  // --config/--location: a location of haven.yaml instead of --repo
  std::string key_file;
  std::string path;    // wal-push: the file; wal-fetch: the destination
  std::string name;    // wal-fetch: the WAL file name
  bool force = false;  // archive-key: replace an existing file
  std::string spool;   // wal-fetch, wal-prefetch: the spool directory
  unsigned prefetch = 0;
  unsigned threads = 2;
  std::vector<std::string> names;  // wal-prefetch
};

// Starts 'haven wal-prefetch' for `names` in the background (its own process group, output to
// <spool>/.log) and returns without waiting: PostgreSQL replays the segment wal-fetch just gave
// it while the next ones are fetched.
void start_prefetch(App& app, const WalOptions& o, const std::vector<std::string>& names) {
  SpawnOptions so;
  so.argv = {self_exe(), "-q"};
  if (!o.location.location.empty()) {
    so.argv.insert(so.argv.end(), {"wal-prefetch", "--location", o.location.location});
    if (!o.location.config.empty()) so.argv.insert(so.argv.end(), {"--config", o.location.config});
  } else {
    so.argv.insert(so.argv.end(), {"-r", app.globals().repo, "wal-prefetch"});
  }
  so.argv.insert(so.argv.end(), {"--wal-key-file", o.key_file, "--spool", o.spool, "--threads",
                                 std::to_string(o.threads)});
  so.argv.insert(so.argv.end(), names.begin(), names.end());
  const std::string log = o.spool + "/.log";
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  so.stderr_fd = fd >= 0 ? fd : -1;
  so.own_process_group = true;
  auto child = Subprocess::spawn(so);
  if (fd >= 0) ::close(fd);
  // Not started: each segment is still fetched when it is asked for, only not ahead.
  if (child.ok()) child->release();
}

void add_key_file_option(CLI::App* sub, WalOptions& o) {
  sub->add_option("--wal-key-file", o.key_file,
                  "WAL key file written by 'haven pg archive-key' (else the repository password)")
      ->envname("HAVEN_WAL_KEY_FILE");
}

void add_location_options(CLI::App* sub, WalOptions& o, const char* what) {
  sub->add_option("--config", o.location.config, "with --location: haven.yaml (default: $HAVEN_CONFIG)");
  sub->add_option("--location", o.location.location, what);
}

// Opens the repository with its password, for WAL operations without a key file.
ops::RepositoryOpener opener(App& app, const std::string& key_file,
                             std::shared_ptr<LocationStorage> storage) {
  if (!key_file.empty()) return {};
  if (storage) {
    return [&app, storage]() -> Result<std::unique_ptr<repo::Repository>> {
      HAVEN_ASSIGN(auto r, repo::Repository::open(storage->backend, storage->password));
      HAVEN_TRY(app.configure(*r));
      return r;
    };
  }
  return [&app] { return app.open_repository(); };
}

// --location's storage, or --repo's backend.
Result<std::shared_ptr<LocationStorage>> storage_of(App& app, const WalOptions& o, bool writing) {
  if (o.location.location.empty()) return std::shared_ptr<LocationStorage>();
  HAVEN_ASSIGN(LocationStorage s, open_location_storage(app, o.location, writing));
  return std::make_shared<LocationStorage>(std::move(s));
}

// The location's backend, or --repo's.
Result<std::shared_ptr<storage::Backend>> backend_of(App& app,
                                                     const std::shared_ptr<LocationStorage>& storage) {
  if (storage) return storage->backend;
  return app.backend();
}

}  // namespace

void register_wal(App& app) {
  auto push = std::make_shared<WalOptions>();
  auto* ps = app.root().add_subcommand("wal-push", "archive one WAL file (PostgreSQL archive_command, %p)");
  ps->add_option("PATH", push->path, "the WAL file (%p)")->required();
  add_key_file_option(ps, *push);
  add_location_options(ps, *push,
                       "archive into this location of haven.yaml (instead of --repo); with "
                       "replication mode sync, into the primary and the quorum of its regions");
  app.on(ps, [&app, push]() -> CommandResult {
    ops::WalPushRequest req{push->path, push->key_file};
    HAVEN_TRY(ops::validate(req));
    HAVEN_ASSIGN(auto storage, storage_of(app, *push, true));
    HAVEN_ASSIGN(std::shared_ptr<storage::Backend> be, backend_of(app, storage));
    HAVEN_ASSIGN(ops::WalPushResult out,
                 ops::wal_push(*be, req, opener(app, push->key_file, storage)));
    if (out.already_archived && !app.globals().quiet) {
      std::cerr << "notice: " << out.name << " was already archived with the same contents\n";
    }
    return 0;
  });

  auto fetch = std::make_shared<WalOptions>();
  auto* fs = app.root().add_subcommand("wal-fetch", "restore one WAL file (PostgreSQL restore_command, %f %p)");
  fs->add_option("NAME", fetch->name, "the WAL file name (%f)")->required();
  fs->add_option("PATH", fetch->path, "where to write it (%p)")->required();
  add_key_file_option(fs, *fetch);
  add_location_options(fs, *fetch,
                       "fetch from this location of haven.yaml (instead of --repo), from a "
                       "secondary region when the primary lacks the file or cannot be reached");
  fs->add_option("--spool", fetch->spool,
                 "directory where segments fetched ahead wait (with --prefetch; "
                 "'pg restore' uses <data>/pg_wal/haven-prefetch)");
  fs->add_option("--prefetch", fetch->prefetch,
                 "fetch up to this many segments ahead in the background, as recovery replays "
                 "(needs --spool and --wal-key-file; default 0: none)");
  fs->add_option("--prefetch-threads", fetch->threads, "segments the prefetch fetches at once (default 2)")
      ->check(CLI::Range(1, 16));
  app.on(fs, [&app, fetch]() -> CommandResult {
    ops::WalFetchRequest req{fetch->name, fetch->path, fetch->key_file, fetch->spool, fetch->prefetch};
    HAVEN_TRY(ops::validate(req));
    HAVEN_ASSIGN(auto storage, storage_of(app, *fetch, false));
    HAVEN_ASSIGN(std::shared_ptr<storage::Backend> be, backend_of(app, storage));
    HAVEN_ASSIGN(ops::WalFetchResult out,
                 ops::wal_fetch(*be, req, opener(app, fetch->key_file, storage)));
    if (!out.fetch_ahead.empty()) start_prefetch(app, *fetch, out.fetch_ahead);
    // PostgreSQL asks for files past the end of the archive while recovering: not an error
    // worth a message, only an exit code.
    return out.found ? 0 : 1;
  });

  // Started by wal-fetch --prefetch; not for people (no help entry).
  auto pre = std::make_shared<WalOptions>();
  auto* pf = app.root().add_subcommand("wal-prefetch", "fetch WAL segments ahead into a spool (started by wal-fetch --prefetch)");
  pf->group("");
  pf->add_option("NAMES", pre->names, "consecutive segment names")->required();
  pf->add_option("--spool", pre->spool, "the spool directory")->required();
  pf->add_option("--threads", pre->threads, "segments fetched at once")->check(CLI::Range(1, 16));
  add_key_file_option(pf, *pre);
  add_location_options(pf, *pre, "fetch from this location of haven.yaml (instead of --repo)");
  app.on(pf, [&app, pre]() -> CommandResult {
    ops::WalPrefetchRequest req{pre->names, pre->spool, pre->key_file, pre->threads};
    HAVEN_TRY(ops::validate(req));
    HAVEN_ASSIGN(auto storage, storage_of(app, *pre, false));
    HAVEN_ASSIGN(std::shared_ptr<storage::Backend> be, backend_of(app, storage));
    HAVEN_ASSIGN(ops::WalPrefetchResult out, ops::wal_prefetch(*be, req));
    if (!app.globals().quiet) {
      std::cerr << "prefetched " << out.fetched << " segment(s)"
                << (out.other_running ? " (another prefetch is running)" : "")
                << (out.end_of_archive ? " (end of the archive)" : "") << "\n";
    }
    return 0;
  });
}

void register_pg_archive_key(App& app, CLI::App* pg) {
  auto o = std::make_shared<WalOptions>();
  auto* sub = pg->add_subcommand("archive-key", "write the WAL key file for wal-push/wal-fetch");
  sub->add_option("--output", o->path, "the key file to write (mode 0600)")->required();
  sub->add_flag("--force", o->force, "replace an existing key file");
  app.on(sub, [&app, o]() -> CommandResult {
    ops::ArchiveKeyRequest req{o->path, o->force};
    HAVEN_TRY(ops::validate(req));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_TRY(ops::archive_key(*repo, req));
    if (!app.globals().quiet) {
      std::cout << "wrote the WAL key file " << o->path
                << " (it opens this repository's WAL archive only; keep it readable by the "
                   "PostgreSQL server's user alone)\n";
    }
    return 0;
  });
}

}  // namespace haven::cli

// haven wal-push / wal-fetch — PostgreSQL's archive_command and restore_command, and
// haven pg archive-key, which writes the WAL key file they use (pg/wal.h).
//
//   archive_command = 'haven -r REPO wal-push --wal-key-file /etc/haven/wal.key %p'
//   restore_command = 'haven -r REPO wal-fetch --wal-key-file /etc/haven/wal.key %f %p'
//
// Without a key file both open the repository with its password (slow: Argon2id per call).
#include <iostream>

#include "cli/cli.h"
#include "pg/wal.h"

namespace haven::cli {

namespace {

struct WalOptions {
  std::string key_file;
  std::string path;    // wal-push: the file; wal-fetch: the destination
  std::string name;    // wal-fetch: the WAL file name
  bool force = false;  // archive-key: replace an existing file
};

void add_key_file_option(CLI::App* sub, WalOptions& o) {
  sub->add_option("--wal-key-file", o.key_file,
                  "WAL key file written by 'haven pg archive-key' (else the repository password)")
      ->envname("HAVEN_WAL_KEY_FILE");
}

// The key for WAL objects sealed with `generation` (nullopt: the current one).
Result<pg::WalKey> wal_key(App& app, storage::Backend& be, const std::string& key_file,
                           std::optional<uint32_t> generation = std::nullopt) {
  if (!key_file.empty()) return pg::read_wal_key_file(key_file);
  HAVEN_ASSIGN(auto repo, app.open_repository());
  return repo->wal_key(generation);
}

std::string base_name(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

void register_wal(App& app) {
  auto push = std::make_shared<WalOptions>();
  auto* ps = app.root().add_subcommand("wal-push", "archive one WAL file (PostgreSQL archive_command, %p)");
  ps->add_option("PATH", push->path, "the WAL file (%p)")->required();
  add_key_file_option(ps, *push);
  app.on(ps, [&app, push]() -> CommandResult {
    const std::string name = base_name(push->path);
    if (!pg::is_wal_file_name(name)) {
      return Error(Error::Code::kInvalidArgument,
                   "'" + name + "' is not a WAL file name: wal-push takes %p from archive_command");
    }
    HAVEN_ASSIGN(Bytes data, pg::read_local_wal_file(push->path));
    HAVEN_ASSIGN(auto be, app.backend());
    HAVEN_ASSIGN(pg::WalKey key, wal_key(app, *be, push->key_file));
    HAVEN_ASSIGN(pg::PushOutcome out, pg::push(*be, key, name, data));
    if (out == pg::PushOutcome::kAlreadyIdentical && !app.globals().quiet) {
      std::cerr << "notice: " << name << " was already archived with the same contents\n";
    }
    return 0;
  });

  auto fetch = std::make_shared<WalOptions>();
  auto* fs = app.root().add_subcommand("wal-fetch", "restore one WAL file (PostgreSQL restore_command, %f %p)");
  fs->add_option("NAME", fetch->name, "the WAL file name (%f)")->required();
  fs->add_option("PATH", fetch->path, "where to write it (%p)")->required();
  add_key_file_option(fs, *fetch);
  app.on(fs, [&app, fetch]() -> CommandResult {
    if (!pg::is_wal_file_name(fetch->name)) {
      return Error(Error::Code::kInvalidArgument,
                   "'" + fetch->name + "' is not a WAL file name: wal-fetch takes %f %p from restore_command");
    }
    HAVEN_ASSIGN(auto be, app.backend());
    auto object = be->load({storage::ObjectType::kWal, fetch->name});
    if (!object.ok() && object.error().code() == Error::Code::kNotFound) {
      // PostgreSQL asks for files past the end of the archive while recovering: not an error
      // worth a message, only an exit code.
      return 1;
    }
    if (!object.ok()) return object.error();
    std::optional<uint32_t> generation;
    if (fetch->key_file.empty()) {
      HAVEN_ASSIGN(repo::Header h, repo::parse_header(*object, "WAL file " + fetch->name));
      generation = h.key_generation;
    }
    HAVEN_ASSIGN(pg::WalKey key, wal_key(app, *be, fetch->key_file, generation));
    HAVEN_ASSIGN(Bytes data, repo::open_wal_object(key, fetch->name, *object));
    HAVEN_TRY(pg::write_local_wal_file(fetch->path, data));
    return 0;
  });
}

void register_pg_archive_key(App& app, CLI::App* pg) {
  auto o = std::make_shared<WalOptions>();
  auto* sub = pg->add_subcommand("archive-key", "write the WAL key file for wal-push/wal-fetch");
  sub->add_option("--output", o->path, "the key file to write (mode 0600)")->required();
  sub->add_flag("--force", o->force, "replace an existing key file");
  app.on(sub, [&app, o]() -> CommandResult {
    HAVEN_ASSIGN(auto be, app.backend());
    HAVEN_ASSIGN(pg::WalKey key, wal_key(app, *be, ""));
    HAVEN_TRY(pg::write_wal_key_file(o->path, key, o->force));
    if (!app.globals().quiet) {
      std::cout << "wrote the WAL key file " << o->path
                << " (it opens this repository's WAL archive only; keep it readable by the "
                   "PostgreSQL server's user alone)\n";
    }
    return 0;
  });
}

}  // namespace haven::cli

// haven — the one binary: command-line tool (and later the server).
#include "cli/cli.h"
#include "crypto/crypto.h"

int main(int argc, char** argv) {
  haven::crypto::init();
  haven::cli::App app;
  haven::cli::register_init(app);
  haven::cli::register_key(app);
  haven::cli::register_cat(app);
  haven::cli::register_backup(app);
  haven::cli::register_restore(app);
  haven::cli::register_snapshots(app);
  haven::cli::register_check(app);
  haven::cli::register_forget(app);
  haven::cli::register_prune(app);
  haven::cli::register_repair(app);
  haven::cli::register_unlock(app);
  haven::cli::register_wal(app);
  haven::cli::register_pg(app);
  haven::cli::register_version(app);
  return app.run(argc, argv);
}

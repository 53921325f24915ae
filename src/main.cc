// haven — the one binary: the command-line tool and the server.
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <iostream>

#include "cli/cli.h"
#include "crypto/crypto.h"
#include "server/server.h"
#include "util/sysinfo.h"
#include "util/version.h"

namespace {

// `haven server`: starts the server, reloads on SIGHUP, stops on SIGINT/SIGTERM (exit 0).
haven::cli::CommandResult run_server(haven::cli::App& app, const haven::cli::ServerCommand& c) {
  using namespace haven;
  HAVEN_ASSIGN(std::string path, cli::config_path(c.config));
  server::ServerOptions o;
  o.config_path = path;
  o.env = cli::environment_value;
  o.instance = hostname() + ":" + std::to_string(::getpid()) + ":" + std::to_string(now());
  o.version = HAVEN_VERSION;
  o.port = c.port;
  HAVEN_ASSIGN(auto srv, server::Server::start(o));
  std::cout << "haven server listening on port " << srv->port() << " (config " << path << ")"
            << std::endl;
  if (srv->interrupted_at_start() > 0) {
    std::cerr << "notice: " << srv->interrupted_at_start()
              << " run(s) left open by a previous server process marked interrupted\n";
  }
  int seen = app.hangups();
  while (!app.cancel().sleep_for(std::chrono::milliseconds(200))) {
    if (app.hangups() == seen) continue;
    seen = app.hangups();
    Status s = srv->reload();
    if (s.ok()) {
      std::cerr << "configuration reloaded from " << path << "\n";
    } else {
      std::cerr << "reload failed, the running configuration stays:\n" << s.error().message() << "\n";
    }
  }
  std::cerr << "stopping: " << srv->service().runner().running_count() << " job(s) running\n";
  srv->stop();
  std::cerr << "stopped\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Buffers of 64 KiB and more (packs, ranges read, chunks, a pack's list of blobs, trailers
  // and index files being encoded) are mapped per use and unmapped when freed. By default glibc
  // raises this threshold to the largest block freed so far; from then on such buffers come
  // from per-thread arenas, which keep each thread's peak: a 1 GB restore peaked at 105 MiB
  // instead of 81 MiB, a backup at 103 instead of 100. At 1 MiB, the 0.1-1 MB buffers of each
  // pack and index file (a million-file backup makes ~640) came from the arenas and left them
  // fragmented: 6.5 MB free there at the backup's peak, 2.7 MB at 50,000 files; at 64 KiB, 1.8
  // and 2.6 MB (backup peaks 29.3-29.7 -> 26.9-27.3 MiB at 1,000,000 files, 24.7-25.0 ->
  // 22.9-23.3 at 50,000).
  mallopt(M_MMAP_THRESHOLD, 64 << 10);
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
  haven::cli::register_replicate(app);
  haven::cli::register_dr(app);
  haven::cli::register_unlock(app);
  haven::cli::register_wal(app);
  haven::cli::register_pg(app);
  haven::cli::register_config(app);
  haven::cli::register_catalog(app);
  haven::cli::register_status(app);
  haven::cli::register_server(app, run_server);
  haven::cli::register_version(app);
  return app.run(argc, argv);
}

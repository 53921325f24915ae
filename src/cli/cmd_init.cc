// haven init — create a repository (ops/keys.h).
#include <iostream>

#include "cli/cli.h"
#include "ops/keys.h"

namespace haven::cli {

namespace {
struct InitOptions {
  ops::InitRequest r;
  std::string new_password_file;
};
}  // namespace

void register_init(App& app) {
  auto opts = std::make_shared<InitOptions>();
  auto* sub = app.root().add_subcommand("init", "create a new repository at --repo");
  ops::InitRequest& r = opts->r;
  sub->add_option("--kdf-memory", r.kdf.memory_mib, "Argon2id memory in MiB (default 64)")
      ->check(CLI::Range(1, 4096));
  sub->add_option("--kdf-iterations", r.kdf.iterations, "Argon2id passes (default 2)")
      ->check(CLI::Range(1, 64));
  sub->add_option("--compression", r.compression, "none|low|medium|high (default medium)");
  sub->add_option("--pack-size", r.pack_size_mib, "target pack size in MiB (default 16)")
      ->check(CLI::Range(1, 1024));
  sub->add_option("--chunk-min", r.chunk_min_kib, "minimum chunk size in KiB (default 256)")
      ->check(CLI::Range(1, 65536));
  sub->add_option("--chunk-avg", r.chunk_avg_kib, "average chunk size in KiB (default 1024)")
      ->check(CLI::Range(1, 65536));
  sub->add_option("--chunk-max", r.chunk_max_kib, "maximum chunk size in KiB (default 4096)")
      ->check(CLI::Range(1, 65536));
  sub->add_option("--new-password-file", opts->new_password_file,
                  "file holding the new repository's password (else --password-file, "
                  "HAVEN_PASSWORD, or a prompt)");
  app.on(sub, [&app, opts]() -> CommandResult {
    ops::InitRequest r = opts->r;
    HAVEN_TRY(ops::validate(r));
    HAVEN_ASSIGN(auto be, app.backend());
    if (!opts->new_password_file.empty()) {
      HAVEN_ASSIGN(r.password, app.read_new_password(opts->new_password_file));
    } else if (const char* env = getenv("HAVEN_PASSWORD");
               !app.globals().password_file.empty() || (env && *env)) {
      HAVEN_ASSIGN(r.password, app.read_password());
    } else {
      HAVEN_ASSIGN(r.password, app.read_new_password(""));
    }
    HAVEN_ASSIGN(ops::InitResult res, ops::init(be, r));
    if (app.globals().json) {
      std::cout << nlohmann::json{{"message_type", "initialized"},
                                  {"id", repo::hex(res.id)},
                                  {"repository", res.location}}
                       .dump()
                << "\n";
    } else if (!app.globals().quiet) {
      std::cout << "created Haven repository " << repo::short_hex(res.id) << " at "
                << res.location << "\n"
                << "Keep the password safe: without it the data cannot be recovered.\n";
    }
    return 0;
  });
}

}  // namespace haven::cli

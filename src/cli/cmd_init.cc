// haven init — create a repository.
#include <iostream>

#include "cli/cli.h"

namespace haven::cli {

namespace {
struct InitOptions {
  uint64_t kdf_memory_mib = 64;
  uint64_t kdf_iterations = 2;
  std::string compression = "medium";
  uint32_t pack_size_mib = 16;
  uint32_t chunk_min_kib = 256, chunk_avg_kib = 1024, chunk_max_kib = 4096;
  std::string new_password_file;
};
}  // namespace

void register_init(App& app) {
  auto opts = std::make_shared<InitOptions>();
  auto* sub = app.root().add_subcommand("init", "create a new repository at --repo");
  sub->add_option("--kdf-memory", opts->kdf_memory_mib, "Argon2id memory in MiB (default 64)")
      ->check(CLI::Range(1, 4096));
  sub->add_option("--kdf-iterations", opts->kdf_iterations, "Argon2id passes (default 2)")
      ->check(CLI::Range(1, 64));
  sub->add_option("--compression", opts->compression, "none|low|medium|high (default medium)");
  sub->add_option("--pack-size", opts->pack_size_mib, "target pack size in MiB (default 16)")
      ->check(CLI::Range(1, 1024));
  sub->add_option("--chunk-min", opts->chunk_min_kib, "minimum chunk size in KiB (default 256)")
      ->check(CLI::Range(1, 65536));
  sub->add_option("--chunk-avg", opts->chunk_avg_kib, "average chunk size in KiB (default 1024)")
      ->check(CLI::Range(1, 65536));
  sub->add_option("--chunk-max", opts->chunk_max_kib, "maximum chunk size in KiB (default 4096)")
      ->check(CLI::Range(1, 65536));
  sub->add_option("--new-password-file", opts->new_password_file,
                  "file holding the new repository's password (else --password-file, "
                  "HAVEN_PASSWORD, or a prompt)");
  app.on(sub, [&app, opts]() -> CommandResult {
    repo::InitOptions o;
    o.kdf.memory = opts->kdf_memory_mib << 20;
    o.kdf.iterations = opts->kdf_iterations;
    HAVEN_ASSIGN(o.compression, repo::parse_compression(opts->compression));
    o.pack_size = opts->pack_size_mib << 20;
    o.chunker = {opts->chunk_min_kib * 1024, opts->chunk_avg_kib * 1024, opts->chunk_max_kib * 1024};
    HAVEN_ASSIGN(auto be, app.backend());
    std::string pw;
    if (!opts->new_password_file.empty()) {
      HAVEN_ASSIGN(pw, app.read_new_password(opts->new_password_file));
    } else if (const char* env = getenv("HAVEN_PASSWORD");
               !app.globals().password_file.empty() || (env && *env)) {
      HAVEN_ASSIGN(pw, app.read_password());
    } else {
      HAVEN_ASSIGN(pw, app.read_new_password(""));
    }
    HAVEN_ASSIGN(auto repo, repo::Repository::init(be, pw, o));
    if (app.globals().json) {
      std::cout << nlohmann::json{{"message_type", "initialized"},
                                  {"id", repo::hex(repo->config().id)},
                                  {"repository", be->location()}}
                       .dump()
                << "\n";
    } else if (!app.globals().quiet) {
      std::cout << "created Haven repository " << repo::short_hex(repo->config().id) << " at "
                << be->location() << "\n"
                << "Keep the password safe: without it the data cannot be recovered.\n";
    }
    return 0;
  });
}

}  // namespace haven::cli

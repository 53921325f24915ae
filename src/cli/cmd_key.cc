// haven key list|add|remove|passwd — manage the passwords that open a repository (ops/keys.h).
#include <iostream>

#include "cli/cli.h"
#include "ops/keys.h"

namespace haven::cli {

namespace {
struct KeyOptions {
  std::string new_password_file;
  ops::KdfRequest kdf;
  ops::KeyRemoveRequest remove;
  ops::AccessKeyAddRequest access;
};
}  // namespace

void register_key(App& app) {
  auto opts = std::make_shared<KeyOptions>();
  auto* key = app.root().add_subcommand("key", "manage repository keys (passwords)");
  key->require_subcommand(1);

  auto kdf_opts = [opts](CLI::App* sub) {
    sub->add_option("--new-password-file", opts->new_password_file,
                    "file holding the new password (else HAVEN_NEW_PASSWORD or a prompt)");
    sub->add_option("--kdf-memory", opts->kdf.memory_mib, "Argon2id memory in MiB (default 64)")
        ->check(CLI::Range(1, 4096));
    sub->add_option("--kdf-iterations", opts->kdf.iterations, "Argon2id passes (default 2)")
        ->check(CLI::Range(1, 64));
  };

  auto* list = key->add_subcommand("list", "list the keys");
  app.on(list, [&app]() -> CommandResult {
    // Every key file is tried, so that one of another repository is named.
    HAVEN_ASSIGN(auto repo, app.open_repository({.try_all_keys = true}));
    HAVEN_ASSIGN(auto keys, ops::list_keys(*repo));
    if (app.globals().json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& k : keys) {
        nlohmann::json j = {{"id", k.id},
                            {"current", k.current},
                            {"created", k.info.created},
                            {"hostname", k.info.hostname},
                            {"username", k.info.username},
                        {"kind", k.info.access_key ? "access key" : "password"}};
        if (!k.problem.empty()) j["problem"] = k.problem;
        out.push_back(j);
      }
      std::cout << out.dump() << "\n";
      return 0;
    }
    std::cout << " " << "ID        User        Host                 Created              Kind\n";
    for (const auto& k : keys) {
      std::cout << (k.current ? "*" : " ") << k.id.substr(0, 8) << "  ";
      if (!k.problem.empty()) {
        std::cout << "(" << k.problem << ")\n";
        continue;
      }
      std::printf("%-10s  %-20s %-19s  %s\n", k.info.username.c_str(), k.info.hostname.c_str(),
                  k.info.created.substr(0, 19).c_str(), k.info.access_key ? "access key" : "password");
      std::fflush(stdout);
    }
    return 0;
  });

  auto* add = key->add_subcommand("add", "add a key for another password, or an access key");
  kdf_opts(add);
  add->add_option("--access-key-file", opts->access.output,
                  "instead of a password: generate an access key for unattended jobs, write it to "
                  "this new file (mode 0600) and open with it as the password file (no Argon2id)");
  add->add_flag("--force", opts->access.force, "with --access-key-file: replace an existing file");
  app.on(add, [&app, opts]() -> CommandResult {
    if (!opts->access.output.empty()) {
      if (!opts->new_password_file.empty()) {
        return Error(Error::Code::kInvalidArgument,
                     "--access-key-file generates the key: leave out --new-password-file");
      }
      HAVEN_TRY(ops::validate(opts->access));
      HAVEN_ASSIGN(auto repo, app.open_repository());
      HAVEN_ASSIGN(ops::KeyAddResult res, ops::add_access_key(*repo, opts->access));
      app.audit("key.add", nlohmann::json{{"key_id", res.key_id}, {"kind", "access key"}}.dump());
      if (!app.globals().quiet) {
        std::cout << "added access key " << res.key_id.substr(0, 8) << ", written to "
                  << opts->access.output << "\n";
      }
      return 0;
    }
    if (opts->access.force) {
      return Error(Error::Code::kInvalidArgument, "--force goes with --access-key-file");
    }
    ops::KeyAddRequest req;
    req.kdf = opts->kdf;
    HAVEN_TRY(ops::validate(req));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_ASSIGN(req.new_password, app.read_new_password(opts->new_password_file));
    HAVEN_ASSIGN(ops::KeyAddResult res, ops::add_key(*repo, req));
    app.audit("key.add", nlohmann::json{{"key_id", res.key_id}}.dump());
    if (!app.globals().quiet) std::cout << "added key " << res.key_id.substr(0, 8) << "\n";
    return 0;
  });

  auto* remove = key->add_subcommand("remove", "remove a key (not the one in use, not the last)");
  remove->add_option("ID", opts->remove.id, "key ID or unique prefix")->required();
  app.on(remove, [&app, opts]() -> CommandResult {
    HAVEN_TRY(ops::validate(opts->remove));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_TRY(ops::remove_key(*repo, opts->remove));
    app.audit("key.remove", nlohmann::json{{"key_id", opts->remove.id}}.dump());
    if (!app.globals().quiet) std::cout << "removed key " << opts->remove.id << "\n";
    return 0;
  });

  auto* passwd = key->add_subcommand("passwd", "change the password of the key in use");
  kdf_opts(passwd);
  app.on(passwd, [&app, opts]() -> CommandResult {
    ops::KeyAddRequest req;
    req.kdf = opts->kdf;
    HAVEN_TRY(ops::validate(req));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_ASSIGN(req.new_password, app.read_new_password(opts->new_password_file));
    HAVEN_ASSIGN(ops::KeyAddResult res, ops::change_password(*repo, req));
    app.audit("key.passwd", nlohmann::json{{"key_id", res.key_id}}.dump());
    if (!app.globals().quiet) std::cout << "password changed; new key " << res.key_id.substr(0, 8) << "\n";
    return 0;
  });
}

}  // namespace haven::cli

// haven cat config|key|index|snapshot|lock|pack|tree|blob ID — print a decrypted object
// (debugging). Structured objects print as JSON; `blob` writes the raw bytes. Also `haven version`.
#include <unistd.h>

#include <iostream>

#include "cli/cli.h"
#include "ops/ops.h"
#include "util/version.h"

namespace haven::cli {

namespace {
struct CatOptions {
  std::string kind;
  std::string id;
};

Result<repo::Id> full_id(const std::string& s, const char* what) {
  auto id = repo::parse_id(s);
  if (!id) {
    return Error(Error::Code::kInvalidArgument,
                 std::string("'") + s + "' is not a " + what + " ID (64 hex characters)");
  }
  return *id;
}

Status write_all(ByteView b) {
  size_t done = 0;
  while (done < b.size()) {
    ssize_t n = ::write(1, b.data() + done, b.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("standard output", errno);
    }
    done += static_cast<size_t>(n);
  }
  return ok_status();
}
}  // namespace

void register_cat(App& app) {
  auto opts = std::make_shared<CatOptions>();
  auto* sub = app.root().add_subcommand("cat", "print a repository object, decrypted (debugging)");
  sub->add_option("KIND", opts->kind, "config|key|index|snapshot|lock|pack|tree|blob")
      ->required()
      ->check(CLI::IsMember({"config", "key", "index", "snapshot", "lock", "pack", "tree", "blob"}));
  sub->add_option("ID", opts->id, "object ID (snapshots also take a prefix or 'latest')");
  app.on(sub, [&app, opts]() -> CommandResult {
    using storage::ObjectType;
    const std::string& kind = opts->kind;
    if (kind != "config" && opts->id.empty()) {
      return Error(Error::Code::kInvalidArgument, "cat " + kind + " needs an ID");
    }
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(false, true, app.globals().quiet);  // only the notices
    if (kind == "config") {
      HAVEN_ASSIGN(Bytes body, repo->load_object(ObjectType::kConfig, "config"));
      std::cout << repo::cbor_to_json_text(body) << "\n";
    } else if (kind == "key") {
      // Key files are plaintext JSON whose secret part is encrypted; print them as stored.
      HAVEN_ASSIGN(repo::Id id, full_id(opts->id, "key"));
      HAVEN_ASSIGN(Bytes raw, repo->backend().load({ObjectType::kKey, repo::hex(id)}));
      HAVEN_TRY(write_all(raw));
    } else if (kind == "index" || kind == "lock") {
      HAVEN_ASSIGN(repo::Id id, full_id(opts->id, kind.c_str()));
      HAVEN_ASSIGN(Bytes body, repo->load_object(kind == "index" ? ObjectType::kIndex
                                                                  : ObjectType::kLock,
                                                 repo::hex(id)));
      std::cout << repo::cbor_to_json_text(body) << "\n";
    } else if (kind == "snapshot") {
      HAVEN_ASSIGN(repo::Id id, ops::resolve_snapshot(*repo, opts->id, sink));
      HAVEN_ASSIGN(Bytes body, repo->load_object(ObjectType::kSnapshot, repo::hex(id)));
      std::cout << repo::cbor_to_json_text(body) << "\n";
    } else if (kind == "pack") {
      HAVEN_ASSIGN(repo::Id id, full_id(opts->id, "pack"));
      HAVEN_ASSIGN(Bytes raw, repo->backend().load({ObjectType::kData, repo::hex(id)}));
      HAVEN_ASSIGN(repo::PackRecord rec, repo::read_pack_trailer(repo->master_key(), id, raw));
      nlohmann::json blobs = nlohmann::json::array();
      for (const auto& b : rec.blobs) {
        blobs.push_back({{"type", repo::blob_type_name(b.type)}, {"id", repo::hex(b.id)},
                         {"offset", b.offset}, {"length", b.length}, {"raw_length", b.raw_length}});
      }
      std::cout << nlohmann::json{{"id", repo::hex(id)}, {"key_generation", rec.key_generation},
                                  {"size", raw.size()}, {"blobs", blobs}}
                       .dump(2)
                << "\n";
    } else {
      HAVEN_ASSIGN(repo::Id id, full_id(opts->id, "blob"));
      HAVEN_TRY(ops::load_index(*repo, sink));
      repo::BlobType type = kind == "tree" ? repo::BlobType::kTree : repo::BlobType::kData;
      HAVEN_ASSIGN(Bytes body, repo->load_blob(type, id));
      if (kind == "tree") {
        std::cout << repo::cbor_to_json_text(body) << "\n";
      } else {
        HAVEN_TRY(write_all(body));
      }
    }
    return 0;
  });
}

void register_version(App& app) {
  auto* sub = app.root().add_subcommand("version", "print the version");
  app.on(sub, [&app]() -> CommandResult {
    if (app.globals().json) {
      std::cout << nlohmann::json{{"version", HAVEN_VERSION},
                                  {"format_version", repo::kFormatVersion}}
                       .dump()
                << "\n";
    } else {
      std::cout << "haven " << HAVEN_VERSION << " (repository format " << int(repo::kFormatVersion)
                << ")\n";
    }
    return 0;
  });
}

}  // namespace haven::cli

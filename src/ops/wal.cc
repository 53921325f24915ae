#include "ops/wal.h"

#include <algorithm>
#include <thread>

#include "ops/ops.h"
#include "repo/format.h"

namespace haven::ops {

namespace {

std::string base_name(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The key for WAL objects sealed with `generation` (nullopt: the current one).
Result<pg::WalKey> wal_key(storage::Backend& /*backend*/, const std::string& key_file,
                           const RepositoryOpener& open_repository,
                           std::optional<uint32_t> generation = std::nullopt) {
  if (!key_file.empty()) return pg::read_wal_key_file(key_file);
  if (!open_repository) {
    return invalid("no WAL key file given (--wal-key-file) and no way to open the repository");
  }
  HAVEN_ASSIGN(auto repo, open_repository());
  return repo->wal_key(generation);
}

}  // namespace

Status validate(const WalPushRequest& r) {
  const std::string name = base_name(r.path);
  if (!pg::is_wal_file_name(name)) {
    return invalid("'" + name + "' is not a WAL file name: wal-push takes %p from archive_command");
  }
  return ok_status();
}

Result<WalPushResult> wal_push(storage::Backend& backend, const WalPushRequest& request,
                               const RepositoryOpener& open_repository) {
  HAVEN_TRY(validate(request));
  WalPushResult out;
  out.name = base_name(request.path);
  HAVEN_ASSIGN(pg::MappedWalFile file, pg::MappedWalFile::open(request.path));
  HAVEN_ASSIGN(pg::WalKey key, wal_key(backend, request.wal_key_file, open_repository));
  // A segment compresses on every core: archive_command runs one segment at a time.
  const int workers = static_cast<int>(std::min(4u, std::max(1u, std::thread::hardware_concurrency())));
  HAVEN_ASSIGN(pg::PushOutcome pushed,
               pg::push(backend, key, out.name, file.bytes(), repo::Compression::kLow, workers));
  out.already_archived = pushed == pg::PushOutcome::kAlreadyIdentical;
  return out;
}

Status validate(const WalFetchRequest& r) {
  if (!pg::is_wal_file_name(r.name)) {
    return invalid("'" + r.name +
                   "' is not a WAL file name: wal-fetch takes %f %p from restore_command");
  }
  if (r.path.empty()) return invalid("no destination given: wal-fetch takes %f %p from restore_command");
  return ok_status();
}

Result<WalFetchResult> wal_fetch(storage::Backend& backend, const WalFetchRequest& request,
                                 const RepositoryOpener& open_repository) {
  HAVEN_TRY(validate(request));
  WalFetchResult out;
  auto object = backend.load({storage::ObjectType::kWal, request.name});
  if (!object.ok() && object.error().code() == Error::Code::kNotFound) return out;
  if (!object.ok()) return object.error();
  std::optional<uint32_t> generation;
  if (request.wal_key_file.empty()) {
    // Without a key file, the key comes from the master key: the generation the object was
    // sealed with.
    HAVEN_ASSIGN(repo::Header h, repo::parse_header(*object, "WAL file " + request.name));
    generation = h.key_generation;
  }
  HAVEN_ASSIGN(pg::WalKey key, wal_key(backend, request.wal_key_file, open_repository, generation));
  HAVEN_ASSIGN(Bytes data, repo::open_wal_object(key, request.name, *object));
  HAVEN_TRY(pg::write_local_wal_file(request.path, data));
  out.found = true;
  out.bytes = data.size();
  return out;
}

Status validate(const ArchiveKeyRequest& r) {
  if (r.output.empty()) return invalid("--output: give the path of the WAL key file to write");
  return ok_status();
}

Status archive_key(repo::Repository& repo, const ArchiveKeyRequest& request) {
  HAVEN_TRY(validate(request));
  HAVEN_ASSIGN(pg::WalKey key, repo.wal_key());
  return pg::write_wal_key_file(request.output, key, request.force);
}

}  // namespace haven::ops

#include "ops/keys.h"

#include <unistd.h>

#include "ops/ops.h"
#include "repo/keys.h"
#include "util/secret_file.h"

namespace haven::ops {

namespace {

Status validate_kdf(const KdfRequest& k) {
  if (k.memory_mib < 1 || k.memory_mib > 4096) {
    return invalid("--kdf-memory " + std::to_string(k.memory_mib) +
                   ": give Argon2id's memory in MiB, from 1 to 4096 (default 64)");
  }
  if (k.iterations < 1 || k.iterations > 64) {
    return invalid("--kdf-iterations " + std::to_string(k.iterations) +
                   ": give Argon2id's passes, from 1 to 64 (default 2)");
  }
  return ok_status();
}

crypto::KdfParams kdf_params(const KdfRequest& k) { return {k.iterations, k.memory_mib << 20}; }

Status validate_range(const char* option, uint64_t v, uint64_t lo, uint64_t hi, const char* what) {
  if (v < lo || v > hi) {
    return invalid(std::string(option) + " " + std::to_string(v) + ": give " + what + " from " +
                   std::to_string(lo) + " to " + std::to_string(hi));
  }
  return ok_status();
}

}  // namespace

Status validate(const InitRequest& r) {
  HAVEN_TRY(validate_kdf(r.kdf));
  HAVEN_TRY(repo::parse_compression(r.compression));
  HAVEN_TRY(validate_range("--pack-size", r.pack_size_mib, 1, 1024, "the pack size in MiB"));
  HAVEN_TRY(validate_range("--chunk-min", r.chunk_min_kib, 1, 65536, "the minimum chunk size in KiB"));
  HAVEN_TRY(validate_range("--chunk-avg", r.chunk_avg_kib, 1, 65536, "the average chunk size in KiB"));
  HAVEN_TRY(validate_range("--chunk-max", r.chunk_max_kib, 1, 65536, "the maximum chunk size in KiB"));
  return ok_status();
}

Result<InitResult> init(std::shared_ptr<storage::Backend> backend, const InitRequest& request) {
  HAVEN_TRY(validate(request));
  if (request.password.empty()) return invalid("the new repository's password is empty: give one");
  repo::InitOptions o;
  o.kdf = kdf_params(request.kdf);
  HAVEN_ASSIGN(o.compression, repo::parse_compression(request.compression));
  o.pack_size = request.pack_size_mib << 20;
  o.chunker = {request.chunk_min_kib * 1024, request.chunk_avg_kib * 1024,
               request.chunk_max_kib * 1024};
  InitResult out;
  out.location = backend->location();
  // Repository::init checks the chunker's parameters together (min <= avg <= max).
  HAVEN_ASSIGN(out.repository, repo::Repository::init(std::move(backend), request.password, o));
  out.id = out.repository->config().id;
  return out;
}

Result<std::vector<repo::KeyListEntry>> list_keys(repo::Repository& repo) {
  OperationScope scope(repo);
  return repo.list_keys();
}

Status validate(const KeyAddRequest& r) { return validate_kdf(r.kdf); }

namespace {
Status check_new_password(const KeyAddRequest& r) {
  if (r.new_password.empty()) return invalid("the new password is empty: give one");
  return ok_status();
}
}  // namespace

Result<KeyAddResult> add_key(repo::Repository& repo, const KeyAddRequest& request) {
  OperationScope scope(repo);
  HAVEN_TRY(validate(request));
  HAVEN_TRY(check_new_password(request));
  HAVEN_ASSIGN(std::string id, repo.add_key(request.new_password, kdf_params(request.kdf)));
  return KeyAddResult{std::move(id)};
}

Result<KeyAddResult> change_password(repo::Repository& repo, const KeyAddRequest& request) {
  OperationScope scope(repo);
  HAVEN_TRY(validate(request));
  HAVEN_TRY(check_new_password(request));
  HAVEN_ASSIGN(std::string id, repo.change_password(request.new_password, kdf_params(request.kdf)));
  return KeyAddResult{std::move(id)};
}

Status validate(const AccessKeyAddRequest& r) {
  if (r.output.empty()) return invalid("--access-key-file: give the path of the file to write the access key to");
  return ok_status();
}

Result<KeyAddResult> add_access_key(repo::Repository& repo, const AccessKeyAddRequest& request) {
  OperationScope scope(repo);
  HAVEN_TRY(validate(request));
  std::string key = repo::generate_access_key();
  // The file first: a file that cannot be written leaves the repository unchanged.
  Status written = write_secret_file(request.output, key + "\n", request.force);
  if (!written.ok()) {
    secure_zero(key.data(), key.size());
    return written.error();
  }
  auto id = repo.add_access_key(key);
  secure_zero(key.data(), key.size());
  if (!id.ok()) {
    ::unlink(request.output.c_str());
    return id.error();
  }
  return KeyAddResult{std::move(id).value()};
}

Status validate(const KeyRemoveRequest& r) {
  if (r.id.empty()) return invalid("name the key to remove: its ID or a unique prefix ('haven key list')");
  return ok_status();
}

Status remove_key(repo::Repository& repo, const KeyRemoveRequest& request) {
  OperationScope scope(repo);
  HAVEN_TRY(validate(request));
  return repo.remove_key(request.id);
}

}  // namespace haven::ops

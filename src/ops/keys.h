// ops/keys.h — creating a repository (`init`) and managing the passwords that open it (`key
// list|add|remove|passwd`). Passwords arrive as values: reading them (file, variable, prompt)
// is the front end's job. Conventions: ops/ops.h; key operations take no lock (a key file is
// one object, written create-only).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "repo/repository.h"
#include "storage/backend.h"

namespace haven::ops {

// Argon2id's cost for a new key file.
struct KdfRequest {
  uint64_t memory_mib = 64;  // 1 to 4096
  uint64_t iterations = 2;   // 1 to 64
};

// --- init ---
// The passwords (InitRequest::password, KeyAddRequest::new_password) must not be empty; the
// entry points check them, validate() checks the rest (so a front end can validate before it
// asks for a password).
struct InitRequest {
  std::string password;
  KdfRequest kdf;
  std::string compression = "medium";  // none | low | medium | high
  uint32_t pack_size_mib = 16;         // 1 to 1024
  uint32_t chunk_min_kib = 256, chunk_avg_kib = 1024, chunk_max_kib = 4096;
};
struct InitResult {
  repo::Id id{};         // the repository's ID
  std::string location;  // as the backend names it
  std::unique_ptr<repo::Repository> repository;  // open, for a caller that goes on
};
Status validate(const InitRequest& request);
// Creates a repository at an empty location (refuses one that holds anything).
Result<InitResult> init(std::shared_ptr<storage::Backend> backend, const InitRequest& request);

// --- key list ---
// Open the repository with repo::OpenOptions{.try_all_keys = true}: then key files of another
// repository are named (KeyListEntry::foreign, ::problem).
Result<std::vector<repo::KeyListEntry>> list_keys(repo::Repository& repo);

// --- key add / key passwd ---
struct KeyAddRequest {
  std::string new_password;
  KdfRequest kdf;
};
struct KeyAddResult {
  std::string key_id;
};
Status validate(const KeyAddRequest& request);
Result<KeyAddResult> add_key(repo::Repository& repo, const KeyAddRequest& request);
// Adds a key for the new password, then removes the key in use.
Result<KeyAddResult> change_password(repo::Repository& repo, const KeyAddRequest& request);

// --- key add --access-key-file ---
// An access key (repo/keys.h) for unattended jobs: generated, written to `output` (mode 0600,
// never replacing a file unless `force`), then its key file is stored. Open the repository with
// it as the password (--password-file FILE): no Argon2id runs.
struct AccessKeyAddRequest {
  std::string output;
  bool force = false;
};
Status validate(const AccessKeyAddRequest& request);
Result<KeyAddResult> add_access_key(repo::Repository& repo, const AccessKeyAddRequest& request);

// --- key remove ---
struct KeyRemoveRequest {
  std::string id;  // a key ID or unique prefix
};
Status validate(const KeyRemoveRequest& request);
// Refuses the key in use and the last key that opens.
Status remove_key(repo::Repository& repo, const KeyRemoveRequest& request);

}  // namespace haven::ops

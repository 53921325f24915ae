// repo/keys.h — the master key and the key files that wrap it (docs/FORMAT.md §3).
//
// The master key is random, made once by `init`. It holds:
//   encryption keys by generation (objects name the generation they were sealed with, so the
//     encryption key can be rotated: add a generation, write new objects with it, rewrite old
//     ones, drop the old generation);
//   the ID key (keyed BLAKE2b of blob plaintext: blob IDs);
//   the chunker key (derives the gear table, so chunk boundaries do not reveal content).
// Each key file wraps the whole master key with AES-256-GCM under a key derived from one
// password with Argon2id; the Argon2id parameters and salt are stored beside it.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "chunker/chunker.h"
#include "crypto/crypto.h"
#include "repo/ids.h"
#include "util/error.h"

namespace haven::repo {

struct MasterKey {
  std::map<uint32_t, crypto::SecretKey> encryption;  // by generation
  uint32_t current_generation = 0;
  crypto::SecretKey id_key;
  crypto::SecretKey chunker_key;

  static MasterKey generate();
  const crypto::SecretKey* encryption_key(uint32_t generation) const;
  chunker::GearTable gear_table() const;
};

// What a key file says about itself, readable without the password.
struct KeyFileInfo {
  std::string created;
  std::string hostname;
  std::string username;
  crypto::KdfParams kdf;
};

// Builds a key file (JSON text) wrapping `master` under `password`.
Bytes make_key_file(const MasterKey& master, const std::string& password,
                    const crypto::KdfParams& kdf);
// Parses the plaintext part without running Argon2id. kCorrupt, with a message
// "<what> is damaged: <the damage>", if it is not JSON, a field is missing or of the wrong
// type, its checksum does not match, or its KDF parameters are out of bounds (FORMAT.md §3);
// kUnsupported for a newer key file version or an unknown algorithm.
Result<KeyFileInfo> read_key_file_info(ByteView file, const std::string& what);
// Unwraps; the errors of read_key_file_info (checked before Argon2id runs), kWrongPassword if
// authentication fails (the message names nothing), kCorrupt if the master key is malformed.
Result<MasterKey> open_key_file(ByteView file, const std::string& password,
                                const std::string& what);
// Decodes the unwrapped master key (CBOR, FORMAT.md §3); kCorrupt if malformed. open_key_file()
// calls it after authentication; exposed for the fuzz target fuzz_master_key.
Result<MasterKey> decode_master_key(ByteView cbor, const std::string& what);

}  // namespace haven::repo

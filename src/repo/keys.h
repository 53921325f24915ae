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
//
// Access keys. Argon2id makes a guessable password expensive to guess, at ~0.1 s and 64 MiB per
// open. An unattended job (cron, archive and base backups run by the database's user, a
// server) can instead use a generated access key: 256 random bits, written as
// "haven-ak1-<64 hex digits>" into a file only its owner reads. Nothing needs stretching there,
// so its key file wraps the master key under HKDF-SHA256(access key, salt). An access key is
// tried only on access-key files and a password only on password key files: neither pays for
// the other's derivation, and an access key is never run through Argon2id.
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
  crypto::KdfParams kdf;     // Argon2id's (password key files)
  bool access_key = false;   // wraps under an access key (HKDF-SHA256), not a password
};

// A generated access key as text (kAccessKeyPrefix + 64 lower-case hex digits).
inline constexpr char kAccessKeyPrefix[] = "haven-ak1-";
std::string generate_access_key();
// Whether `text` has an access key's form (the prefix and 64 hex digits).
bool is_access_key(const std::string& text);

// Builds a key file (JSON text) wrapping `master` under `password`.
Bytes make_key_file(const MasterKey& master, const std::string& password,
                    const crypto::KdfParams& kdf);
// Builds an access-key file wrapping `master` under `access_key` (is_access_key() must hold).
Bytes make_access_key_file(const MasterKey& master, const std::string& access_key);
// Parses the plaintext part without running Argon2id. kCorrupt, with a message
// "<what> is damaged: <the damage>", if it is not JSON, a field is missing or of the wrong
// type, its checksum does not match, or its KDF parameters are out of bounds (FORMAT.md §3);
// kUnsupported for a newer key file version or an unknown algorithm.
Result<KeyFileInfo> read_key_file_info(ByteView file, const std::string& what);
// Unwraps; the errors of read_key_file_info (checked before Argon2id runs), kWrongPassword if
// authentication fails (the message names nothing) or if `password` is of the other kind (an
// access key for a password key file or the reverse: nothing is derived then), kCorrupt if the
// master key is malformed.
Result<MasterKey> open_key_file(ByteView file, const std::string& password,
                                const std::string& what);
// Decodes the unwrapped master key (CBOR, FORMAT.md §3); kCorrupt if malformed. open_key_file()
// calls it after authentication; exposed for the fuzz target fuzz_master_key.
Result<MasterKey> decode_master_key(ByteView cbor, const std::string& what);

}  // namespace haven::repo

// repo/wal_object.h — the format-level half of the WAL archive (docs/FORMAT.md §11): the WAL
// key and the codec of one WAL-file object. pg/wal.h holds the PostgreSQL side (file names,
// LSNs, the key file, push and fetch).
//
// A WAL object is an encrypted object of kind 6 with one record at offset 44, sealed under a
// subkey of the WAL key; its record AAD is "haven wal:" followed by the file name, so an object
// renamed in storage fails authentication. The WAL key is HKDF-SHA256 of the master encryption
// key of one generation, salted with the config object's salt (the repository's fingerprint,
// readable without a password). Only this file derives it from the master key
// (Repository::wal_key() for a session that holds the master key).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "crypto/crypto.h"
#include "repo/compress.h"
#include "repo/keys.h"
#include "storage/backend.h"
#include "util/bytes.h"
#include "util/error.h"

namespace haven::repo {

// PostgreSQL's largest wal_segment_size: the bound on one WAL file (and so on decoding one).
constexpr size_t kMaxWalFile = size_t{1} << 30;

struct WalKey {
  std::string repository;  // the repository's fingerprint (hex of the config salt)
  uint32_t generation = 0;
  crypto::SecretKey key;
};

// The repository's fingerprint, readable without a password: hex of the config object's salt.
// kRepoNotFound if there is no config.
Result<std::string> repository_fingerprint(storage::Backend& backend);

// The WAL key for the master key's current generation (or `generation`). Never falls back:
// kCorrupt if the master key has no such generation (a WAL object naming a generation this
// key does not hold), kInvalidArgument if `fingerprint` is not 64 hex digits (a config salt).
Result<WalKey> derive_wal_key(const MasterKey& master, const std::string& fingerprint,
                              std::optional<uint32_t> generation = std::nullopt);

// Seals the WAL file `name` (its contents `content`, at most kMaxWalFile) as one object and
// saves it as wal/<name> through backend.open_writer() (streamed where the backend streams;
// sealed in place, no copy of the object in memory), compressing on `workers` threads. The
// errors of save() (kAlreadyExists if the name is taken).
Status save_wal_object(storage::Backend& backend, const WalKey& key, const std::string& name,
                       ByteView content, Compression compression, int workers);
// Opens the object stored as the WAL file `name`. kCorrupt if its header is not a WAL object's,
// it names another key generation than `key`'s, it does not authenticate (damaged, renamed, or
// another repository's) or does not decode.
Result<Bytes> open_wal_object(const WalKey& key, const std::string& name, ByteView object);
// The same without copies: `object` is decrypted where it lies, and a compressed record
// decompresses into `scratch` (never zeroed; from 8 MiB on in huge pages). The contents live in
// one of the two until either changes. For a 16 MiB segment this saves zeroing and faulting in
// 16 MiB and a copy of the sealed record.
Result<ByteView> open_wal_object_view(const WalKey& key, const std::string& name, std::span<uint8_t> object,
                                      Scratch& scratch);

}  // namespace haven::repo

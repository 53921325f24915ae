// repo/format.h — the byte layout shared by every encrypted object (docs/FORMAT.md §2).
//
//   object  = header(12) | salt(32) | record* | [pack trailer]
//   header  = "HAVN" | version u8 (=1) | object type u8 | reserved u16 (=0) | key generation u32le
//   subkey  = HKDF-SHA256(ikm = master encryption key of that generation, salt = salt,
//                         info = "haven object v1" | header)
//   record  = AES-256-GCM(subkey, nonce = 0^4 | u64be(offset of record in object),
//                         aad = header | record aad, plaintext = mode u8 | payload)
//
// The nonce is the record's byte offset, unique within an object because records never
// overlap; the subkey is unique per object because its salt is 256 random bits. So no
// (key, nonce) pair ever repeats, however many objects a repository holds.
#pragma once

#include <cstdint>

#include "crypto/crypto.h"
#include "repo/compress.h"
#include "repo/ids.h"
#include "util/bytes.h"
#include "util/error.h"

namespace haven::repo {

constexpr uint8_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 12;
constexpr size_t kSaltSize = 32;
constexpr size_t kPrefixSize = kHeaderSize + kSaltSize;  // where the first record starts

enum class ObjectKind : uint8_t { kConfig = 1, kPack = 2, kIndex = 3, kSnapshot = 4, kLock = 5, kWal = 6 };

struct Header {
  uint8_t version = kFormatVersion;
  ObjectKind kind = ObjectKind::kConfig;
  uint32_t key_generation = 0;
  Id salt{};
  void encode(uint8_t* out) const;  // writes kPrefixSize bytes
};

// Parses the first kPrefixSize bytes. Fails with kCorrupt for a bad magic and kUnsupported for
// a newer version (message says to upgrade haven). `what` names the object in messages.
Result<Header> parse_header(ByteView prefix, const std::string& what);

// Per-object key derivation (see file comment).
crypto::SecretKey object_key(const crypto::SecretKey& master, const Header& h);

std::array<uint8_t, crypto::kNonceSize> record_nonce(uint64_t offset);

// Appends the sealed record to `out`; its offset in the object is out.size() on entry.
void seal_record(const crypto::SecretKey& subkey, const Header& h, ByteView record_aad,
                 ByteView plaintext, Bytes& out);
// The same for a record at `offset` in the object, whatever `out` holds (an object written out
// in pieces).
void seal_record_at(const crypto::SecretKey& subkey, const Header& h, uint64_t offset,
                    ByteView record_aad, ByteView plaintext, Bytes& out);
// Seals the record plaintext record[0, n) in place as the record at `offset`: record must have
// room for n + 16 bytes (the tag follows).
void seal_record_in_place(const crypto::SecretKey& subkey, const Header& h, uint64_t offset,
                          ByteView record_aad, uint8_t* record, size_t n);
// Opens the record at `offset` whose sealed bytes are `sealed`.
bool open_record(const crypto::SecretKey& subkey, const Header& h, uint64_t offset,
                 ByteView record_aad, ByteView sealed, Bytes& plaintext);
// The same in place: on success sealed[0, size - 16) holds the record plaintext.
bool open_record_in_place(const crypto::SecretKey& subkey, const Header& h, uint64_t offset,
                          ByteView record_aad, std::span<uint8_t> sealed);
// The same into `out` (room for sealed.size() - 16 bytes): `sealed` stays as it is.
bool open_record_into(const crypto::SecretKey& subkey, const Header& h, uint64_t offset,
                      ByteView record_aad, ByteView sealed, uint8_t* out);

// Blob records bind the blob's type and ID: aad = type u8 | id.
Bytes blob_aad(BlobType type, const Id& id);

}  // namespace haven::repo

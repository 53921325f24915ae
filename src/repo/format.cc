#include "repo/format.h"

#include <cstring>

namespace haven::repo {

namespace {
constexpr char kMagic[4] = {'H', 'A', 'V', 'N'};
constexpr char kInfo[] = "haven object v1";
}  // namespace

void Header::encode(uint8_t* out) const {
  std::memcpy(out, kMagic, 4);
  out[4] = version;
  out[5] = static_cast<uint8_t>(kind);
  out[6] = 0;
  out[7] = 0;
  put_u32le(out + 8, key_generation);
  std::memcpy(out + kHeaderSize, salt.data(), kSaltSize);
}

Result<Header> parse_header(ByteView prefix, const std::string& what) {
  if (prefix.size() < kPrefixSize) {
    return Error(Error::Code::kCorrupt, what + ": truncated (shorter than the object header)");
  }
  if (std::memcmp(prefix.data(), kMagic, 4) != 0) {
    return Error(Error::Code::kCorrupt, what + ": not a Haven object (bad magic)");
  }
  Header h;
  h.version = prefix[4];
  if (h.version > kFormatVersion) {
    return Error(Error::Code::kUnsupported,
                 what + " uses repository format version " + std::to_string(h.version) +
                     ", newer than this haven supports (" + std::to_string(kFormatVersion) +
                     "): upgrade haven");
  }
  if (h.version == 0) return Error(Error::Code::kCorrupt, what + ": invalid format version 0");
  uint8_t kind = prefix[5];
  if (kind < 1 || kind > static_cast<uint8_t>(ObjectKind::kWal)) {
    return Error(Error::Code::kCorrupt, what + ": unknown object kind " + std::to_string(kind));
  }
  if (prefix[6] != 0 || prefix[7] != 0) {
    return Error(Error::Code::kCorrupt, what + ": reserved header bytes are not zero (damaged)");
  }
  h.kind = static_cast<ObjectKind>(kind);
  h.key_generation = get_u32le(prefix.data() + 8);
  std::memcpy(h.salt.data(), prefix.data() + kHeaderSize, kSaltSize);
  return h;
}

crypto::SecretKey object_key(const crypto::SecretKey& master, const Header& h) {
  uint8_t info[sizeof(kInfo) - 1 + kHeaderSize];
  std::memcpy(info, kInfo, sizeof(kInfo) - 1);
  uint8_t prefix[kPrefixSize];
  h.encode(prefix);
  std::memcpy(info + sizeof(kInfo) - 1, prefix, kHeaderSize);
  return crypto::hkdf(master, ByteView(h.salt.data(), h.salt.size()), ByteView(info, sizeof info));
}

std::array<uint8_t, crypto::kNonceSize> record_nonce(uint64_t offset) {
  std::array<uint8_t, crypto::kNonceSize> n{};
  put_u64be(n.data() + 4, offset);
  return n;
}

static Bytes full_aad(const Header& h, ByteView record_aad) {
  Bytes aad(kHeaderSize + record_aad.size());
  uint8_t prefix[kPrefixSize];
  h.encode(prefix);
  std::memcpy(aad.data(), prefix, kHeaderSize);
  if (!record_aad.empty()) std::memcpy(aad.data() + kHeaderSize, record_aad.data(), record_aad.size());
  return aad;
}

void seal_record(const crypto::SecretKey& subkey, const Header& h, ByteView record_aad,
                 ByteView plaintext, Bytes& out) {
  seal_record_at(subkey, h, out.size(), record_aad, plaintext, out);
}

void seal_record_at(const crypto::SecretKey& subkey, const Header& h, uint64_t offset,
                    ByteView record_aad, ByteView plaintext, Bytes& out) {
  crypto::seal(subkey, record_nonce(offset), full_aad(h, record_aad), plaintext, out);
}

void seal_record_in_place(const crypto::SecretKey& subkey, const Header& h, uint64_t offset,
                          ByteView record_aad, uint8_t* record, size_t n) {
  crypto::seal_in_place(subkey, record_nonce(offset), full_aad(h, record_aad), record, n);
}

bool open_record(const crypto::SecretKey& subkey, const Header& h, uint64_t offset,
                 ByteView record_aad, ByteView sealed, Bytes& plaintext) {
  return crypto::open(subkey, record_nonce(offset), full_aad(h, record_aad), sealed, plaintext);
}

bool open_record_in_place(const crypto::SecretKey& subkey, const Header& h, uint64_t offset,
                          ByteView record_aad, std::span<uint8_t> sealed) {
  return crypto::open_in_place(subkey, record_nonce(offset), full_aad(h, record_aad), sealed.data(),
                               sealed.size());
}

bool open_record_into(const crypto::SecretKey& subkey, const Header& h, uint64_t offset,
                      ByteView record_aad, ByteView sealed, uint8_t* out) {
  return crypto::open_into(subkey, record_nonce(offset), full_aad(h, record_aad), sealed, out);
}

Bytes blob_aad(BlobType type, const Id& id) {
  Bytes aad(1 + id.size());
  aad[0] = static_cast<uint8_t>(type);
  std::memcpy(aad.data() + 1, id.data(), id.size());
  return aad;
}

}  // namespace haven::repo

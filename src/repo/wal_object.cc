#include "repo/wal_object.h"

#include "repo/format.h"

namespace haven::repo {

using storage::ObjectType;

namespace {

constexpr char kKeyInfo[] = "haven wal key v1";
constexpr char kAadPrefix[] = "haven wal:";

Bytes aad_for(const std::string& name) {
  const std::string aad = kAadPrefix + name;
  return Bytes(aad.begin(), aad.end());
}

}  // namespace

Result<std::string> repository_fingerprint(storage::Backend& backend) {
  auto prefix = backend.load({ObjectType::kConfig, "config"}, 0, kPrefixSize);
  if (!prefix.ok()) {
    if (prefix.error().code() == Error::Code::kNotFound) {
      return Error(Error::Code::kRepoNotFound, "no repository there (its config object is missing)");
    }
    return prefix.error();
  }
  HAVEN_ASSIGN(Header h, parse_header(*prefix, "config"));
  return to_hex(ByteView(h.salt.data(), h.salt.size()));
}

Result<WalKey> derive_wal_key(const MasterKey& master, const std::string& fingerprint,
                              std::optional<uint32_t> generation) {
  // The salt is the config's salt: an empty or short one would derive a key that opens no WAL
  // object this repository wrote, so it is refused rather than used.
  auto salt = from_hex(fingerprint);
  if (!salt || salt->size() != kSaltSize) {
    return Error(Error::Code::kInvalidArgument,
                 "repository fingerprint '" + fingerprint +
                     "' is not 64 hex digits (the config salt): cannot derive the WAL key");
  }
  WalKey k;
  k.repository = fingerprint;
  k.generation = generation.value_or(master.current_generation);
  const crypto::SecretKey* enc = master.encryption_key(k.generation);
  if (enc == nullptr) {
    std::string held;
    for (const auto& [gen, key] : master.encryption) {
      held += (held.empty() ? "" : ", ") + std::to_string(gen);
    }
    return Error(Error::Code::kCorrupt,
                 "the master key has no key generation " + std::to_string(k.generation) +
                     " (it holds " + held +
                     "), so no WAL key for it can be derived: the object naming that generation "
                     "was sealed by another repository's key or its header is damaged");
  }
  k.key = crypto::hkdf(*enc, *salt,
                       ByteView(reinterpret_cast<const uint8_t*>(kKeyInfo), sizeof(kKeyInfo) - 1));
  return k;
}

Status save_wal_object(storage::Backend& backend, const WalKey& key, const std::string& name,
                       ByteView content, Compression compression, int workers) {
  Header h;
  h.kind = ObjectKind::kWal;
  h.key_generation = key.generation;
  h.salt = crypto::random_array<kSaltSize>();
  uint8_t prefix[kPrefixSize];
  h.encode(prefix);
  std::span<uint8_t> record = encode_record_scratch(compression, content, crypto::kTagSize, workers);
  seal_record_in_place(object_key(key.key, h), h, kPrefixSize, aad_for(name), record.data(),
                       record.size());
  HAVEN_ASSIGN(auto writer, backend.open_writer({ObjectType::kWal, name}));
  HAVEN_TRY(writer->append(ByteView(prefix, kPrefixSize)));
  HAVEN_TRY(writer->append(ByteView(record.data(), record.size() + crypto::kTagSize)));
  return writer->commit();
}

namespace {

// The header of the WAL object `what`, checked against `key`.
Result<Header> wal_header(const WalKey& key, ByteView object, const std::string& what) {
  HAVEN_ASSIGN(Header h, parse_header(object, what));
  if (h.kind != ObjectKind::kWal) return Error(Error::Code::kCorrupt, what + ": wrong object kind");
  if (h.key_generation != key.generation) {
    return Error(Error::Code::kCorrupt, what + ": sealed with key generation " +
                                            std::to_string(h.key_generation) + ", the WAL key is for generation " +
                                            std::to_string(key.generation));
  }
  return h;
}

Error not_authentic(const std::string& what) {
  return Error(Error::Code::kCorrupt,
               what + ": authentication failed (damaged, stored under another name, or sealed "
                      "with another repository's WAL key)");
}

}  // namespace

Result<Bytes> open_wal_object(const WalKey& key, const std::string& name, ByteView object) {
  std::string what = "WAL file " + name;
  HAVEN_ASSIGN(Header h, wal_header(key, object, what));
  crypto::SecretKey subkey = object_key(key.key, h);
  Bytes plain;
  if (!open_record(subkey, h, kPrefixSize, aad_for(name), object.subspan(kPrefixSize), plain)) {
    return not_authentic(what);
  }
  auto body = decode_record(plain, kMaxWalFile);
  if (!body.ok()) return body.error().with_context(what);
  return body;
}

Result<ByteView> open_wal_object_view(const WalKey& key, const std::string& name, std::span<uint8_t> object,
                                      Scratch& scratch) {
  std::string what = "WAL file " + name;
  HAVEN_ASSIGN(Header h, wal_header(key, object, what));
  std::span<uint8_t> sealed = object.subspan(kPrefixSize);
  if (sealed.size() < crypto::kTagSize ||
      !open_record_in_place(object_key(key.key, h), h, kPrefixSize, aad_for(name), sealed)) {
    return not_authentic(what);
  }
  auto body = decode_record_view(ByteView(sealed.data(), sealed.size() - crypto::kTagSize), kMaxWalFile, scratch);
  if (!body.ok()) return body.error().with_context(what);
  return body;
}

}  // namespace haven::repo

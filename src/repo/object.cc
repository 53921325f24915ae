#include "repo/object.h"

#include <cstring>

namespace haven::repo {

using storage::ObjectName;
using storage::ObjectType;

ObjectKind kind_of(ObjectType t) {
  switch (t) {
    case ObjectType::kConfig: return ObjectKind::kConfig;
    case ObjectType::kIndex: return ObjectKind::kIndex;
    case ObjectType::kSnapshot: return ObjectKind::kSnapshot;
    case ObjectType::kLock: return ObjectKind::kLock;
    case ObjectType::kWal: return ObjectKind::kWal;
    default: return ObjectKind::kPack;
  }
}

Bytes seal_object(const MasterKey& key, ObjectKind kind, const Id& salt, ByteView body) {
  Header h;
  h.kind = kind;
  h.key_generation = key.current_generation;
  h.salt = salt;
  const crypto::SecretKey* master = key.encryption_key(h.key_generation);
  crypto::SecretKey subkey = object_key(*master, h);
  // Compressed straight into the object and sealed there: one buffer beside the body (an index
  // file's body is ~2.6 MB, and a record copy and a per-thread scratch of it came on top).
  Bytes out(kPrefixSize + record_bound(body.size()) + crypto::kTagSize);
  h.encode(out.data());
  const size_t n = encode_record_into(Compression::kMedium, body, out.data() + kPrefixSize);
  seal_record_in_place(subkey, h, kPrefixSize, {}, out.data() + kPrefixSize, n);
  out.resize(kPrefixSize + n + crypto::kTagSize);
  return out;
}

namespace {
// Checks `object`'s header against its kind and name; returns its record key.
Result<crypto::SecretKey> object_subkey(const MasterKey& key, ObjectKind kind,
                                        const ObjectName& name, ByteView object, Header& h) {
  const std::string what = name.describe();
  HAVEN_ASSIGN(h, parse_header(object, what));
  if (h.kind != kind) return Error(Error::Code::kCorrupt, what + ": wrong object kind");
  if (name.type != ObjectType::kConfig) {
    // ID-named objects use their ID as salt: a renamed or swapped object fails here.
    auto id = parse_id(name.name);
    if (!id || *id != h.salt) {
      return Error(Error::Code::kCorrupt, what + ": stored under the wrong name");
    }
  }
  const crypto::SecretKey* master = key.encryption_key(h.key_generation);
  if (master == nullptr) {
    return Error(Error::Code::kCorrupt,
                 what + ": sealed with unknown key generation " + std::to_string(h.key_generation));
  }
  return object_key(*master, h);
}

Error not_authentic(const ObjectName& name) {
  return Error(Error::Code::kCorrupt,
               name.describe() + ": authentication failed (the object was modified or damaged)");
}
}  // namespace

Result<Bytes> open_object(const MasterKey& key, ObjectKind kind, const ObjectName& name,
                          ByteView object) {
  Header h;
  HAVEN_ASSIGN(crypto::SecretKey subkey, object_subkey(key, kind, name, object, h));
  Bytes plain;
  if (!open_record(subkey, h, kPrefixSize, {}, object.subspan(kPrefixSize), plain)) {
    return not_authentic(name);
  }
  auto body = decode_record(plain, kMaxObjectBody);
  if (!body.ok()) return body.error().with_context(name.describe());
  return body;
}

Result<Bytes> open_object_in_place(const MasterKey& key, ObjectKind kind, const ObjectName& name,
                                   Bytes object) {
  Header h;
  HAVEN_ASSIGN(crypto::SecretKey subkey, object_subkey(key, kind, name, object, h));
  std::span<uint8_t> sealed(object.data() + kPrefixSize, object.size() - kPrefixSize);
  if (!open_record_in_place(subkey, h, kPrefixSize, {}, sealed)) return not_authentic(name);
  ByteView plain(sealed.data(), sealed.size() - crypto::kTagSize);
  if (!plain.empty() && plain[0] == kModeRaw) {
    const size_t n = plain.size() - 1;
    if (n > kMaxObjectBody) {
      return Error(Error::Code::kCorrupt, name.describe() + ": record larger than allowed");
    }
    std::memmove(object.data(), plain.data() + 1, n);
    object.resize(n);
    return object;
  }
  auto body = decode_record(plain, kMaxObjectBody);
  if (!body.ok()) return body.error().with_context(name.describe());
  return body;
}

}  // namespace haven::repo

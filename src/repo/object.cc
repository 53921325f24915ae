#include "repo/object.h"

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
  Bytes out(kPrefixSize);
  h.encode(out.data());
  Bytes record;
  encode_record(Compression::kMedium, body, record);
  seal_record(subkey, h, {}, record, out);
  return out;
}

Result<Bytes> open_object(const MasterKey& key, ObjectKind kind, const ObjectName& name,
                          ByteView object) {
  std::string what = name.describe();
  HAVEN_ASSIGN(Header h, parse_header(object, what));
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
  crypto::SecretKey subkey = object_key(*master, h);
  Bytes plain;
  if (!open_record(subkey, h, kPrefixSize, {}, object.subspan(kPrefixSize), plain)) {
    return Error(Error::Code::kCorrupt,
                 what + ": authentication failed (the object was modified or damaged)");
  }
  auto body = decode_record(plain, kMaxObjectBody);
  if (!body.ok()) return body.error().with_context(what);
  return body;
}

}  // namespace haven::repo

// repo/object.h — single-record encrypted objects (config, index, snapshot, lock; FORMAT.md
// §2): sealed under the master key's current generation, one record at offset 44 with an empty
// record AAD. The Repository reads and writes these objects through them; the fuzz targets call
// them with a fixed key.
#pragma once

#include "repo/format.h"
#include "repo/keys.h"
#include "storage/backend.h"
#include "util/bytes.h"
#include "util/error.h"

namespace haven::repo {

// Bodies of single-record objects are capped for decoding.
constexpr size_t kMaxObjectBody = 1u << 30;

// The object kind stored under a storage type (kPack for data, which holds packs).
ObjectKind kind_of(storage::ObjectType t);

// Seals `body` under `key`'s current generation with `salt` (an ID-named object's salt is its
// name).
Bytes seal_object(const MasterKey& key, ObjectKind kind, const Id& salt, ByteView body);
// Checks the header, the kind, that an ID-named object's salt is its name, authenticates and
// decodes the record. kCorrupt naming the object for any failure; kUnsupported for a newer
// format version.
Result<Bytes> open_object(const MasterKey& key, ObjectKind kind, const storage::ObjectName& name,
                          ByteView object);
// The same, opened in place: `object`'s bytes are decrypted over themselves and become the body
// (a stored one moved to the front; a compressed one is decompressed into a new buffer and
// `object` freed). One buffer of the object's size less than open_object() holds at once.
Result<Bytes> open_object_in_place(const MasterKey& key, ObjectKind kind,
                                   const storage::ObjectName& name, Bytes object);

}  // namespace haven::repo

// repo/ids.h — identifiers used throughout the repository format.
//
// Id: 32 bytes. Blob IDs are keyed BLAKE2b-256 of the blob's plaintext (see crypto.h); pack,
// index, snapshot, lock and key IDs are random. Objects are named by the lower-case hex of
// their ID.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>

#include "crypto/crypto.h"
#include "util/bytes.h"

namespace haven::repo {

using Id = std::array<uint8_t, 32>;

inline std::string hex(const Id& id) { return to_hex(ByteView(id.data(), id.size())); }
inline std::string short_hex(const Id& id) { return hex(id).substr(0, 8); }
std::optional<Id> parse_id(const std::string& hex);
inline Id random_id() { return crypto::random_array<32>(); }

enum class BlobType : uint8_t { kData = 0, kTree = 1 };
const char* blob_type_name(BlobType t);

struct IdHash {
  size_t operator()(const Id& id) const {
    size_t h;
    std::memcpy(&h, id.data(), sizeof h);  // IDs are uniformly random already
    return h;
  }
};

}  // namespace haven::repo

// repo/config.h — the repository's config object: what is fixed at init (format version,
// repository ID, chunker parameters, pack size, compression, blob ID function) and its CBOR
// codec (docs/FORMAT.md §10).
#pragma once

#include <cstdint>
#include <string>

#include "chunker/chunker.h"
#include "repo/compress.h"
#include "repo/format.h"
#include "repo/ids.h"
#include "util/bytes.h"
#include "util/error.h"

namespace haven::repo {

// The keyed function that names blobs; fixed per repository at init (docs/FORMAT.md §3).
enum class BlobIdFunction { kBlake2b, kHmacSha256 };
const char* id_hash_name(BlobIdFunction h);

struct Config {
  uint32_t version = kFormatVersion;
  BlobIdFunction id_hash = BlobIdFunction::kBlake2b;
  Id id{};
  chunker::Params chunker;
  uint32_t pack_size = 16u << 20;
  Compression compression = Compression::kMedium;
  std::string created;
};

// The config object's body (CBOR, FORMAT.md §10). decode_config() refuses a newer version
// (kUnsupported) and malformed or unusable values (kCorrupt).
Bytes encode_config(const Config& c);
Result<Config> decode_config(ByteView body);

}  // namespace haven::repo

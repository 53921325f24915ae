// repo/compress.h — zstd compression at the seed's levels, with the "store if it doesn't
// shrink" rule applied in one place.
#pragma once

#include <span>
#include <string>

#include "util/bytes.h"
#include "util/error.h"

namespace haven::repo {

// The seed's compression levels and the zstd level each maps to (docs/FORMAT.md).
enum class Compression { kNone, kLow, kMedium, kHigh };
int zstd_level(Compression c);  // 0 for kNone
const char* compression_name(Compression c);
Result<Compression> parse_compression(const std::string& s);

// Record plaintext = one mode byte + payload. Mode 0: payload is the data; mode 1: payload is
// one or more zstd frames whose contents, concatenated, are the data. encode_record() stores uncompressed when compression would save
// less than 1/32 of the size.
constexpr uint8_t kModeRaw = 0;
constexpr uint8_t kModeZstd = 1;
void encode_record(Compression c, ByteView data, Bytes& out);
// The same record, in a buffer of this thread's (valid until the thread's next call): saves
// the hot path a buffer per thread and a copy of every compressed blob.
ByteView encode_record_view(Compression c, ByteView data);
// The same, writable, with `extra` spare bytes after the record (a tag sealed in place).
// `workers` > 1 compresses data of 4 MiB and more on up to that many threads, one frame per
// thread (each part at least 2 MiB).
std::span<uint8_t> encode_record_scratch(Compression c, ByteView data, size_t extra, int workers = 0);
// The same into the caller's out[0, record_bound(data.size())); returns the record's length.
size_t record_bound(size_t n);
size_t encode_record_into(Compression c, ByteView data, uint8_t* out);
// Whether a file stored under `c` may take the cheaper level instead: true when `c` is kMedium
// and zstd level 1 makes `sample` (the file's first bytes; only the first 128 KiB are tried) no
// larger than level 3 does, compressed in pieces of `piece` bytes as its chunks will be (0: one
// piece). Level 1 is up to 2.4× faster (1.0-2.4× on the bench corpus); on some data (database
// pages of random text, media) it is also as small or smaller, on most (text, programs) 4-10%
// larger.
bool cheaper_level_suffices(Compression c, ByteView sample, size_t piece);
// Decodes a record plaintext; `max_size` bounds the decompressed size (from the index or a
// format limit) so a hostile frame cannot exhaust memory.
Result<Bytes> decode_record(ByteView record, size_t max_size);
// The same without copies: a stored payload is returned where it lies in `record`, a compressed
// one is decompressed into `scratch`. The view is valid while both are.
Result<ByteView> decode_record_view(ByteView record, size_t max_size, Scratch& scratch);

}  // namespace haven::repo

// repo/compress.h — zstd compression at the seed's levels, with the "store if it doesn't
// shrink" rule applied in one place.
#pragma once

#include <span>
#include <string>

#include "util/bytes.h"
#include "util/error.h"

namespace haven::repo {

// The seed's compression levels and the zstd level each maps to (docs/FORMAT.md). kMediumFast
// is never configured: it is what probe_compression() picks under kMedium for data that zstd's
// fast match finder, at level 3's table size, compresses within 3% as small (programs and
// libraries: ~20% faster for ~1% more bytes).
enum class Compression { kNone, kLow, kMedium, kHigh, kMediumFast };
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
// What a file stored under `c` is stored at, from `sample` (its first bytes) compressed in
// pieces of `piece` bytes as its chunks will be (0: one piece): under kMedium, kLow when zstd
// level 1 makes the sample no larger than level 3 does (up to 2.4× faster; as small or smaller
// on database pages of random text and on media; weighed only on a sample of 128 KiB, the
// most that is tried), else kMediumFast when the fast match finder makes it at most
// 3% larger (the bench's programs and libraries: 1-2% larger and 20% faster; text 6-7% larger,
// so it stays), else kMedium. Any other `c` as it is. Costs about three compressions of the
// sample.
Compression probe_compression(Compression c, ByteView sample, size_t piece);
// Decodes a record plaintext; `max_size` bounds the decompressed size (from the index or a
// format limit) so a hostile frame cannot exhaust memory.
Result<Bytes> decode_record(ByteView record, size_t max_size);
// The same without copies: a stored payload is returned where it lies in `record`, a compressed
// one is decompressed into `scratch`. The view is valid while both are.
Result<ByteView> decode_record_view(ByteView record, size_t max_size, Scratch& scratch);

}  // namespace haven::repo

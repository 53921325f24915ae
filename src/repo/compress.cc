#include "repo/compress.h"

// ZSTD_initStaticCCtx and ZSTD_estimateCCtxSize: a context on a workspace that never moves.
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "util/pages.h"

namespace haven::repo {

int zstd_level(Compression c) {
  switch (c) {
    case Compression::kNone: return 0;
    case Compression::kLow: return 1;
    case Compression::kMedium: return 3;
    case Compression::kHigh: return 11;
    case Compression::kMediumFast: return 3;
  }
  return 3;
}

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kLow: return "low";
    case Compression::kMedium: return "medium";
    case Compression::kHigh: return "high";
    case Compression::kMediumFast: return "medium-fast";
  }
  return "?";
}

Result<Compression> parse_compression(const std::string& s) {
  if (s == "none") return Compression::kNone;
  if (s == "low") return Compression::kLow;
  if (s == "medium") return Compression::kMedium;
  if (s == "high") return Compression::kHigh;
  return Error(Error::Code::kInvalidArgument,
               "unknown compression level '" + s + "': use none, low, medium or high");
}

namespace {
// zstd contexts are expensive to create; keep one per thread, on a workspace of its own sized
// once for the largest tables `level` can pick (any input size). A context zstd manages itself
// gives its workspace back whenever a run of small inputs makes it look oversized and takes a
// new one for the next large input: each new workspace is faulted in page by page, which made
// zstd's table clearing 56% of a 60,000-small-file backup's page faults (38,000 of 68,000).
struct CCtx {
  void* workspace = nullptr;
  size_t size = 0;
  int level = 0;  // the level the workspace was last checked against (0: none yet)
  ZSTD_CCtx* c = nullptr;
  ~CCtx() { std::free(workspace); }
};
// This thread's compression context, with room for `level`.
ZSTD_CCtx* thread_cctx(int level) {
  thread_local CCtx cctx;
  if (cctx.level != level) {
    const size_t need = ZSTD_estimateCCtxSize(level);
    if (cctx.size < need) {
      std::free(cctx.workspace);
      cctx.workspace = std::malloc(need);  // aligned for any type, as zstd requires
      if (cctx.workspace == nullptr) throw std::bad_alloc();
      cctx.size = need;
      cctx.c = ZSTD_initStaticCCtx(cctx.workspace, need);
      if (cctx.c == nullptr) std::abort();  // cannot happen: the workspace is large enough
    }
    cctx.level = level;
  }
  return cctx.c;
}
// Compresses at `c` into out[0, cap) on this thread's context; a zstd result code. Level 3 on
// inputs over 256 KiB (chunks are 1 MiB on average) uses smaller match tables than zstd's own
// for that level and size (hash log 16 instead of 17, chain log 15 instead of 16): on the bench
// corpus in 1 MiB blocks 11% faster (299 -> 332 MB/s) for 0.3% more bytes, as the tables stay
// in the cache. Smaller inputs already get smaller tables from zstd. kMediumFast is level 3
// with zstd's fast match finder (one hash table, 2^16 entries, matches of 5 bytes and more):
// the bench's system files in 1 MiB blocks 285 -> 343 MB/s for 1.2% more bytes; zstd shrinks
// the table for smaller inputs.
size_t compress_into(Compression comp, void* out, size_t cap, const void* src, size_t n) {
  const int level = zstd_level(comp);
  ZSTD_CCtx* c = thread_cctx(level);
  const bool fast = comp == Compression::kMediumFast;
  if (!fast && (level != 3 || n <= (size_t{256} << 10))) return ZSTD_compressCCtx(c, out, cap, src, n, level);
  ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, 16);
  if (fast) {
    ZSTD_CCtx_setParameter(c, ZSTD_c_strategy, ZSTD_fast);
    ZSTD_CCtx_setParameter(c, ZSTD_c_minMatch, 5);
  } else {
    ZSTD_CCtx_setParameter(c, ZSTD_c_chainLog, 15);
  }
  return ZSTD_compress2(c, out, cap, src, n);
}
// The "store if it doesn't shrink" rule: a zstd result `n` for `raw` bytes is kept only when it
// saves at least 1/32 of them (decompressing would cost time for less).
bool worth_keeping(size_t n, size_t raw) { return !ZSTD_isError(n) && n < raw - raw / 32; }
struct DCtx {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~DCtx() { ZSTD_freeDCtx(d); }
};
}  // namespace

ByteView encode_record_view(Compression c, ByteView data) {
  auto r = encode_record_scratch(c, data, 0);
  return ByteView(r.data(), r.size());
}

namespace {
// Compresses `data` as `parts` frames, one per thread, each written where its bound allows
// in `out` and then moved down behind the one before. Returns the total size, or 0 if a part
// failed (the caller then stores the data raw).
size_t compress_in_parts(Compression c, ByteView data, uint8_t* out, size_t parts) {
  struct Part {
    size_t from = 0, size = 0, at = 0, written = 0;
  };
  std::vector<Part> p(parts);
  size_t at = 0;
  for (size_t i = 0; i < parts; i++) {
    p[i].from = data.size() * i / parts;
    p[i].size = data.size() * (i + 1) / parts - p[i].from;
    p[i].at = at;
    at += ZSTD_compressBound(p[i].size);
  }
  auto run = [&](Part& part) {
    size_t n = compress_into(c, out + part.at, ZSTD_compressBound(part.size), data.data() + part.from,
                             part.size);
    part.written = ZSTD_isError(n) ? 0 : n;
  };
  std::vector<std::thread> threads;
  threads.reserve(parts - 1);
  for (size_t i = 1; i < parts; i++) threads.emplace_back(run, std::ref(p[i]));
  run(p[0]);
  for (auto& t : threads) t.join();
  size_t end = 0;
  for (const Part& part : p) {
    if (part.written == 0) return 0;
    if (part.at != end) std::memmove(out + end, out + part.at, part.written);
    end += part.written;
  }
  return end;
}
}  // namespace

std::span<uint8_t> encode_record_scratch(Compression c, ByteView data, size_t extra, int workers) {
  // An uninitialised per-thread buffer: resizing a vector would zero it on every call.
  thread_local PageArray<uint8_t> work;
  thread_local size_t work_size = 0;
  const bool compress = c != Compression::kNone && data.size() >= 64;
  // Large data on several threads: one frame per part of at least 2 MiB (parts compress
  // independently, so each costs a little ratio; zstd's own multithreading writes one frame
  // but copies the input into buffers of its own, which cost more than the threads save).
  const size_t parts =
      compress && workers > 1 ? std::min<size_t>(static_cast<size_t>(workers), data.size() / (size_t{2} << 20)) : 1;
  size_t bound = 0;
  for (size_t i = 0; i < parts; i++) {
    bound += ZSTD_compressBound(data.size() * (i + 1) / parts - data.size() * i / parts);
  }
  size_t need = 1 + (compress ? std::max(bound, data.size()) : data.size()) + extra;
  if (work_size < need) {
    work.reset();  // the old one goes back before the new one is mapped
    work_size = 0;
    work = make_scratch_buffer(need, work_size);
  }
  if (compress) {
    size_t n;
    if (parts > 1) {
      n = compress_in_parts(c, data, work.get() + 1, parts);
      if (n == 0) n = data.size();  // a part failed: stored raw below
    } else {
      n = compress_into(c, work.get() + 1, work_size - 1 - extra, data.data(), data.size());
    }
    if (worth_keeping(n, data.size())) {
      work[0] = kModeZstd;
      return std::span<uint8_t>(work.get(), 1 + n);
    }
  }
  // Incompressible (or tiny) data is stored as is: decompressing it would cost time for nothing.
  work[0] = kModeRaw;
  if (!data.empty()) std::memcpy(work.get() + 1, data.data(), data.size());
  return std::span<uint8_t>(work.get(), 1 + data.size());
}

size_t record_bound(size_t n) { return 1 + std::max(ZSTD_compressBound(n), n); }

Compression probe_compression(Compression c, ByteView sample, size_t piece) {
  if (c != Compression::kMedium || sample.empty()) return c;
  constexpr size_t kSample = 128 << 10;
  sample = sample.first(std::min(sample.size(), kSample));
  if (piece == 0 || piece > sample.size()) piece = sample.size();
  thread_local std::unique_ptr<uint8_t[]> out;  // ~128 KiB, while this thread probes files
  if (!out) out = std::make_unique_for_overwrite<uint8_t[]>(ZSTD_compressBound(kSample));
  const size_t cap = ZSTD_compressBound(kSample);
  // What each would store: its frames, or each piece as it is when that is not smaller.
  auto stored = [&](Compression at) {
    size_t total = 0;
    for (size_t from = 0; from + piece <= sample.size(); from += piece) {
      size_t n = compress_into(at, out.get(), cap, sample.data() + from, piece);
      total += worth_keeping(n, piece) ? n : piece;
    }
    return total;
  };
  const size_t medium = stored(Compression::kMedium);
  // Level 1 only on a full sample: zstd fits its small table to a smaller input, where it then
  // looks as good as level 3's (programs' first 32 KiB), and not to a 1 MiB chunk.
  if (sample.size() == kSample && stored(Compression::kLow) <= medium) return Compression::kLow;
  if (stored(Compression::kMediumFast) * 100 <= medium * 103) return Compression::kMediumFast;
  return Compression::kMedium;
}

size_t encode_record_into(Compression c, ByteView data, uint8_t* out) {
  if (c != Compression::kNone && data.size() >= 64) {
    size_t n = compress_into(c, out + 1, record_bound(data.size()) - 1, data.data(), data.size());
    if (worth_keeping(n, data.size())) {
      out[0] = kModeZstd;
      return 1 + n;
    }
  }
  out[0] = kModeRaw;
  if (!data.empty()) std::memcpy(out + 1, data.data(), data.size());
  return 1 + data.size();
}

void encode_record(Compression c, ByteView data, Bytes& out) {
  ByteView record = encode_record_view(c, data);
  out.assign(record.begin(), record.end());
}

namespace {
// The checked decompressed size of a compressed record's payload: the sum of its frames'
// content sizes (a writer splits large data into several frames), each frame's header read
// and bounded before anything is allocated.
Result<size_t> frame_size(ByteView payload, size_t max_size) {
  size_t total = 0;
  ByteView rest = payload;
  do {
    unsigned long long size = ZSTD_getFrameContentSize(rest.data(), rest.size());
    size_t frame = ZSTD_findFrameCompressedSize(rest.data(), rest.size());
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || ZSTD_isError(frame) ||
        frame == 0 || size > max_size - total) {
      return Error(Error::Code::kCorrupt, "bad zstd frame header");
    }
    total += static_cast<size_t>(size);
    rest = rest.subspan(frame);
  } while (!rest.empty());
  return total;
}

Status decompress(ByteView payload, uint8_t* out, size_t size) {
  thread_local DCtx dctx;
  size_t n = ZSTD_decompressDCtx(dctx.d, out, size, payload.data(), payload.size());
  if (ZSTD_isError(n) || n != size) {
    return Error(Error::Code::kCorrupt, std::string("zstd: ") + ZSTD_getErrorName(n));
  }
  return ok_status();
}

Status check_mode(ByteView record) {
  if (record.empty()) return Error(Error::Code::kCorrupt, "empty record");
  if (record[0] != kModeRaw && record[0] != kModeZstd) {
    return Error(Error::Code::kCorrupt, "unknown record mode " + std::to_string(record[0]));
  }
  return ok_status();
}
}  // namespace

Result<Bytes> decode_record(ByteView record, size_t max_size) {
  HAVEN_TRY(check_mode(record));
  ByteView payload = record.subspan(1);
  if (record[0] == kModeRaw) {
    if (payload.size() > max_size) return Error(Error::Code::kCorrupt, "record larger than allowed");
    return Bytes(payload.begin(), payload.end());
  }
  HAVEN_ASSIGN(size_t size, frame_size(payload, max_size));
  Bytes out(size);
  HAVEN_TRY(decompress(payload, out.data(), size));
  return out;
}

Result<ByteView> decode_record_view(ByteView record, size_t max_size, Scratch& scratch) {
  HAVEN_TRY(check_mode(record));
  ByteView payload = record.subspan(1);
  if (record[0] == kModeRaw) {
    if (payload.size() > max_size) return Error(Error::Code::kCorrupt, "record larger than allowed");
    return payload;
  }
  HAVEN_ASSIGN(size_t size, frame_size(payload, max_size));
  uint8_t* out = scratch.reserve(size);
  HAVEN_TRY(decompress(payload, out, size));
  return ByteView(out, size);
}

}  // namespace haven::repo

#include "repo/compress.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace haven::repo {

int zstd_level(Compression c) {
  switch (c) {
    case Compression::kNone: return 0;
    case Compression::kLow: return 1;
    case Compression::kMedium: return 3;
    case Compression::kHigh: return 11;
  }
  return 3;
}

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kLow: return "low";
    case Compression::kMedium: return "medium";
    case Compression::kHigh: return "high";
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
// zstd contexts are expensive to create; keep one per thread.
struct CCtx {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ~CCtx() { ZSTD_freeCCtx(c); }
};
struct DCtx {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~DCtx() { ZSTD_freeDCtx(d); }
};
}  // namespace

ByteView encode_record_view(Compression c, ByteView data) {
  auto r = encode_record_scratch(c, data, 0);
  return ByteView(r.data(), r.size());
}

std::span<uint8_t> encode_record_scratch(Compression c, ByteView data, size_t extra, int workers) {
  // An uninitialised per-thread buffer: resizing a vector would zero it on every call.
  thread_local std::unique_ptr<uint8_t[]> work;
  thread_local size_t work_size = 0;
  const bool compress = c != Compression::kNone && data.size() >= 64;
  size_t need = 1 + (compress ? std::max(ZSTD_compressBound(data.size()), data.size()) : data.size()) + extra;
  if (work_size < need) {
    work = std::make_unique_for_overwrite<uint8_t[]>(need);
    work_size = need;
  }
  if (compress) {
    size_t n;
    if (workers > 1 && data.size() >= (size_t{4} << 20)) {
      // A context of its own: the per-thread one stays single-threaded.
      CCtx mt;
      ZSTD_CCtx_setParameter(mt.c, ZSTD_c_compressionLevel, zstd_level(c));
      ZSTD_CCtx_setParameter(mt.c, ZSTD_c_nbWorkers, workers);
      n = ZSTD_compress2(mt.c, work.get() + 1, work_size - 1 - extra, data.data(), data.size());
    } else {
      thread_local CCtx cctx;
      n = ZSTD_compressCCtx(cctx.c, work.get() + 1, work_size - 1 - extra, data.data(),
                            data.size(), zstd_level(c));
    }
    if (!ZSTD_isError(n) && n < data.size() - data.size() / 32) {
      work[0] = kModeZstd;
      return std::span<uint8_t>(work.get(), 1 + n);
    }
  }
  // Incompressible (or tiny) data is stored as is: decompressing it would cost time for nothing.
  work[0] = kModeRaw;
  if (!data.empty()) std::memcpy(work.get() + 1, data.data(), data.size());
  return std::span<uint8_t>(work.get(), 1 + data.size());
}

void encode_record(Compression c, ByteView data, Bytes& out) {
  ByteView record = encode_record_view(c, data);
  out.assign(record.begin(), record.end());
}

namespace {
// The checked zstd frame size of a compressed record's payload.
Result<size_t> frame_size(ByteView payload, size_t max_size) {
  unsigned long long size = ZSTD_getFrameContentSize(payload.data(), payload.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > max_size) {
    return Error(Error::Code::kCorrupt, "bad zstd frame header");
  }
  return static_cast<size_t>(size);
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

// chunker/chunker.cc — FastCDC (Xia et al., USENIX ATC 2016 / IEEE TPDS 2020) with normalized
// chunking, level 2.
//
// Rolling hash: the gear hash h = (h << 1) + gear[byte]. After the shift, a byte's
// contribution to bit k of h is gone once k+1 further bytes have been hashed, so bit k depends
// only on the last k+1 bytes. The low bits therefore see a very short window (bit 0 sees one
// byte) and the high bits see up to 64 bytes. That is why the masks use only high-order bits:
// a boundary then depends on a window of at least 17 bytes of content, and never on where the
// hash happened to start once 64 bytes have been hashed, which is what lets boundaries re-align
// after an insertion or deletion.
//
// Mask layout (part of the repository format: changing it changes every chunk boundary and so
// breaks deduplication against existing data). For n one-bits, bit i (i = 0..n-1) is placed at
// position 63 - floor(i * 48 / n), i.e. spread evenly over bits 63..16. With avg_size = 2^bits:
//   mask_small_: n = bits + 2 (a match has probability 2^-(bits+2): cuts before avg are rare)
//   mask_large_: n = bits - 2 (probability 2^-(bits-2): cuts after avg come quickly)
// This is the "normalization level 2" of the paper; it concentrates chunk sizes around avg.
// bits <= 25 (avg < max <= 64 MiB), so n <= 27 <= 48 and the positions are distinct.
//
// Cut rule: bytes before min_size are not hashed (the cut can never be there, so hashing them
// would only cost time). The hash starts at 0 at offset min_size. After hashing the byte at
// offset i, if (h & mask) == 0 the chunk ends after that byte, i.e. its length is i + 1. The
// small mask applies to bytes at offsets [min_size, avg_size), the large one to offsets
// [avg_size, max_size). Without a match the chunk is cut at max_size.
#include "chunker/chunker.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace haven::chunker {

namespace {

constexpr uint32_t kMinAvgSize = 64;
constexpr uint32_t kMaxMaxSize = 64u * 1024 * 1024;
constexpr int kMaskLowBit = 16;  // lowest bit position a mask may use
constexpr int kMaskSpan = 64 - kMaskLowBit;

// n one-bits spread evenly over bits 63..kMaskLowBit, highest first (see the file comment).
uint64_t spread_mask(int n) {
  uint64_t mask = 0;
  for (int i = 0; i < n; i++) mask |= uint64_t{1} << (63 - (i * kMaskSpan) / n);
  return mask;
}

int log2_exact(uint32_t v) {
  int bits = 0;
  while ((uint32_t{1} << bits) < v) bits++;
  return bits;
}

// Hashes p[i..end) into h and returns the chunk length (offset + 1) at the first match, or 0 if
// there is none. This is the loop every backed-up byte goes through, two bytes per step: after
// bytes b0 and b1 the hash is (h << 2) + ((gear[b0] << 1) + gear[b1]), and the bracket does not
// depend on h, so each step waits on the one before through a single shift-add (one LEA on
// x86-64) instead of two; the hash after b0 alone, (h << 1) + gear[b0], is tested beside it.
inline size_t scan(const uint8_t* p, size_t i, size_t end, uint64_t mask,
                   const uint64_t* gear, uint64_t& h) {
  uint64_t hh = h;
  for (; i + 2 <= end; i += 2) {
    const uint64_t g0 = gear[p[i]];
    const uint64_t pair = (g0 << 1) + gear[p[i + 1]];
    const uint64_t h1 = (hh << 1) + g0;
    hh = (hh << 2) + pair;
    if ((h1 & mask) == 0) return i + 1;
    if ((hh & mask) == 0) return i + 2;
  }
  if (i < end) {
    hh = (hh << 1) + gear[p[i]];
    if ((hh & mask) == 0) return i + 1;
  }
  h = hh;
  return 0;
}

}  // namespace

bool valid_params(const Params& p, const char** why) {
  const char* reason = nullptr;
  if (p.avg_size < kMinAvgSize) {
    reason = "average chunk size must be at least 64 bytes";
  } else if ((p.avg_size & (p.avg_size - 1)) != 0) {
    reason = "average chunk size must be a power of two";
  } else if (p.min_size >= p.avg_size) {
    reason = "minimum chunk size must be smaller than the average";
  } else if (p.avg_size >= p.max_size) {
    reason = "average chunk size must be smaller than the maximum";
  } else if (p.max_size > kMaxMaxSize) {
    reason = "maximum chunk size must be at most 64 MiB";
  }
  if (reason != nullptr && why != nullptr) *why = reason;
  return reason == nullptr;
}

Chunker::Chunker(const Params& params, const GearTable& gear) : params_(params), gear_(gear) {
  // Invalid parameters are a programming error: callers validate user or repository input
  // with valid_params() first.
  const char* why = nullptr;
  if (!valid_params(params, &why)) std::abort();
  const int bits = log2_exact(params.avg_size);
  mask_small_ = spread_mask(bits + 2);
  mask_large_ = spread_mask(bits - 2);
}

size_t Chunker::next_cut(ByteView data, bool eof) const {
  const size_t n = data.size();
  const size_t min = params_.min_size;
  const size_t avg = params_.avg_size;
  const size_t max = params_.max_size;

  if (n > min) {
    const size_t limit = std::min(n, max);
    const uint8_t* p = data.data();
    const uint64_t* gear = gear_.data();
    uint64_t h = 0;
    size_t cut = scan(p, min, std::min(limit, avg), mask_small_, gear, h);
    if (cut != 0) return cut;
    if (limit > avg) {
      cut = scan(p, avg, limit, mask_large_, gear, h);
      if (cut != 0) return cut;
    }
  }
  if (n >= max) return max;
  return eof ? n : 0;
}

}  // namespace haven::chunker

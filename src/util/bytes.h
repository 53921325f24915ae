// util/bytes.h — byte buffers, hex, and little/big-endian helpers used by the format code.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/pages.h"

namespace haven {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

inline ByteView as_bytes(std::string_view s) {
  return ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
inline std::string to_string(ByteView b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

std::string to_hex(ByteView b);
// Parses lower- or upper-case hex; nullopt on odd length or a non-hex character.
std::optional<Bytes> from_hex(std::string_view hex);

inline void put_u32le(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint32_t get_u32le(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
inline void put_u64be(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<uint8_t>(v >> (8 * (7 - i)));
}
// A growable buffer that is never zeroed. Reused from call to call it keeps its pages, where a
// fresh vector per call would map, fault in and zero its memory each time; from 8 MiB on it is
// in huge pages (make_scratch_buffer).
class Scratch {
 public:
  // At least n bytes; the contents are unspecified (what the last use left, or garbage).
  uint8_t* reserve(size_t n) {
    if (n > capacity_) {
      data_.reset();
      capacity_ = 0;
      data_ = make_scratch_buffer(n, capacity_);
    }
    return data_.get();
  }
  size_t capacity() const { return capacity_; }

 private:
  PageArray<uint8_t> data_;
  size_t capacity_ = 0;
};

inline void append(Bytes& out, ByteView b) { out.insert(out.end(), b.begin(), b.end()); }

// Overwrites memory that held secrets; not elided by the optimiser.
void secure_zero(void* p, size_t n);

// Constant-time equality for secrets and MACs.
bool equal_constant_time(ByteView a, ByteView b);

}  // namespace haven

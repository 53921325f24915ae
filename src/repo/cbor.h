// repo/cbor.h — the one way object bodies are decoded from CBOR (docs/FORMAT.md), with the
// limits a damaged or hostile body needs. Decoders call these inside their
// `try { ... } catch (const json::exception&)`, which turns every failure into one kCorrupt Error.
//
// Why not json::from_cbor and get<T>() directly:
//   * from_cbor recurses once per nesting level: 100 KB of nested one-element arrays
//     (0x81 0x81 ...) overflow the stack and crash the process (fuzz/corpus/tree/crash-deep-nesting).
//     parse() refuses bodies nested deeper than kMaxDepth; Haven's deepest (a tree's xattr
//     pair) is 5.
//   * get<uint32_t>() of a CBOR float converts with a static_cast, undefined behaviour when the
//     value is out of range, and of a too-large or negative integer silently wraps (an offset of
//     2^32 + 44 would read as 44). get_int<T>() accepts only integers that fit T.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "util/bytes.h"

namespace haven::repo::cbor {

using nlohmann::json;

constexpr size_t kMaxDepth = 32;

// One CBOR item (the whole body); throws json::exception if malformed, nested deeper than
// kMaxDepth, or followed by trailing bytes.
json parse(ByteView body);

// The value of an integer item that fits T; throws json::type_error for anything else. (Also
// for the JSON key files, whose numbers nlohmann-json holds the same way.)
template <typename T>
T get_int(const json& v) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  if (v.is_number_unsigned()) {
    uint64_t u = v.get_ref<const json::number_unsigned_t&>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(u);
  } else if (v.is_number_integer()) {
    int64_t s = v.get_ref<const json::number_integer_t&>();
    if constexpr (std::is_signed_v<T>) {
      if (s >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
          s <= static_cast<int64_t>(std::numeric_limits<T>::max())) {
        return static_cast<T>(s);
      }
    }
  }
  throw json::type_error::create(302, "integer expected (in range)", &v);
}

// get_int() of member `key` of an object, or `dflt` if the member is absent.
template <typename T>
T get_int_or(const json& obj, const char* key, T dflt) {
  auto it = obj.find(key);
  return it == obj.end() ? dflt : get_int<T>(*it);
}

}  // namespace haven::repo::cbor

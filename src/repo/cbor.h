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
#include <string_view>

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

namespace haven::repo::cbor {

// Direct CBOR, without a DOM: what the hot paths (trees: one per directory in every backup,
// restore and check) use instead of building a json object per node. Writer emits exactly what
// json::to_cbor emits for the same values (definite lengths, the shortest heads); a map's keys
// must be written in the order to_cbor sorts them (std::string order).
class Writer {
 public:
  explicit Writer(Bytes& out) : out_(out) {}
  void map(size_t n) { head(5, n); }
  void array(size_t n) { head(4, n); }
  void text(std::string_view s) {
    head(3, s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void bytes(ByteView b) {
    head(2, b.size());
    out_.insert(out_.end(), b.begin(), b.end());
  }
  void bytes(std::string_view s) { bytes(ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size())); }
  void uint(uint64_t v) { head(0, v); }
  void sint(int64_t v) {
    if (v >= 0) {
      head(0, static_cast<uint64_t>(v));
    } else {
      head(1, static_cast<uint64_t>(-1 - v));
    }
  }

 private:
  void head(uint8_t major, uint64_t v);
  Bytes& out_;
};

// Reads items one at a time from a body; every method throws json::exception (parse_error,
// type_error) on malformed input, a wrong type, an integer that does not fit, or a
// nesting deeper than kMaxDepth (skip()). Indefinite lengths and tags are refused: Haven never
// writes them.
class Reader {
 public:
  explicit Reader(ByteView body) : p_(body.data()), end_(body.data() + body.size()) {}
  size_t map();                 // a map head: its number of pairs
  size_t array();               // an array head: its number of items
  std::string_view text();      // a text string
  ByteView bytes();             // a byte string
  template <typename T>
  T integer() {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
    uint8_t major;
    uint64_t v = head(major);
    if (major == 0 && v <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(v);
    if constexpr (std::is_signed_v<T>) {
      // -1 - v >= min  <=>  v <= -(min + 1)
      if (major == 1 && v <= static_cast<uint64_t>(-(static_cast<int64_t>(std::numeric_limits<T>::min()) + 1))) {
        return static_cast<T>(-1 - static_cast<int64_t>(v));
      }
    }
    fail("integer expected (in range)");
  }
  void skip(size_t depth = 0);  // any one item, with what it holds
  bool next_is_array() const { return p_ < end_ && peek_major() == 4; }
  bool at_end() const { return p_ == end_; }

 private:
  uint64_t head(uint8_t& major);
  uint8_t peek_major() const;
  [[noreturn]] static void fail(const char* what);
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace haven::repo::cbor

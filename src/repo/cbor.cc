#include "repo/cbor.h"

namespace haven::repo::cbor {

namespace {
// The DOM builder from_cbor uses, refusing to open a container deeper than kMaxDepth (returning
// false stops the reader before it recurses further).
class DepthLimitedBuilder : public nlohmann::detail::json_sax_dom_parser<json> {
  using Base = nlohmann::detail::json_sax_dom_parser<json>;

 public:
  explicit DepthLimitedBuilder(json& root) : Base(root, true) {}
  bool start_object(std::size_t n) { return enter() && Base::start_object(n); }
  bool start_array(std::size_t n) { return enter() && Base::start_array(n); }
  bool end_object() {
    depth_--;
    return Base::end_object();
  }
  bool end_array() {
    depth_--;
    return Base::end_array();
  }
  bool too_deep() const { return too_deep_; }

 private:
  bool enter() {
    if (++depth_ <= kMaxDepth) return true;
    too_deep_ = true;
    return false;
  }
  size_t depth_ = 0;
  bool too_deep_ = false;
};
}  // namespace

json parse(ByteView body) {
  json out;
  DepthLimitedBuilder builder(out);
  bool ok = json::sax_parse(body.begin(), body.end(), &builder, json::input_format_t::cbor, true);
  if (!ok) {
    // Malformed input throws from the builder; only the depth limit gets here.
    throw json::out_of_range::create(408, builder.too_deep() ? "CBOR nested too deeply" : "malformed CBOR",
                                     static_cast<json*>(nullptr));
  }
  return out;
}

}  // namespace haven::repo::cbor

namespace haven::repo::cbor {

void Writer::head(uint8_t major, uint64_t v) {
  const uint8_t m = static_cast<uint8_t>(major << 5);
  if (v < 24) {
    out_.push_back(static_cast<uint8_t>(m | v));
    return;
  }
  int n = v <= 0xFF ? 1 : v <= 0xFFFF ? 2 : v <= 0xFFFFFFFF ? 4 : 8;
  out_.push_back(static_cast<uint8_t>(m | (n == 1 ? 24 : n == 2 ? 25 : n == 4 ? 26 : 27)));
  for (int i = n - 1; i >= 0; i--) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void Reader::fail(const char* what) {
  throw json::parse_error::create(110, 0, std::string("CBOR: ") + what, static_cast<json*>(nullptr));
}

uint64_t Reader::head(uint8_t& major) {
  if (p_ == end_) fail("unexpected end");
  uint8_t b = *p_++;
  major = b >> 5;
  uint8_t info = b & 31;
  if (info < 24) return info;
  if (info > 27) fail("indefinite length or reserved head");
  size_t n = size_t{1} << (info - 24);
  if (static_cast<size_t>(end_ - p_) < n) fail("unexpected end");
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = (v << 8) | *p_++;
  return v;
}

uint8_t Reader::peek_major() const {
  if (p_ == end_) fail("unexpected end");
  return *p_ >> 5;
}

size_t Reader::map() {
  uint8_t major;
  uint64_t n = head(major);
  if (major != 5) fail("map expected");
  if (n > static_cast<uint64_t>(end_ - p_) / 2) fail("map longer than the body");
  return static_cast<size_t>(n);
}

size_t Reader::array() {
  uint8_t major;
  uint64_t n = head(major);
  if (major != 4) fail("array expected");
  if (n > static_cast<uint64_t>(end_ - p_)) fail("array longer than the body");
  return static_cast<size_t>(n);
}

std::string_view Reader::text() {
  uint8_t major;
  uint64_t n = head(major);
  if (major != 3) fail("text string expected");
  if (n > static_cast<uint64_t>(end_ - p_)) fail("unexpected end");
  std::string_view s(reinterpret_cast<const char*>(p_), static_cast<size_t>(n));
  p_ += n;
  return s;
}

ByteView Reader::bytes() {
  uint8_t major;
  uint64_t n = head(major);
  if (major != 2) fail("byte string expected");
  if (n > static_cast<uint64_t>(end_ - p_)) fail("unexpected end");
  ByteView b(p_, static_cast<size_t>(n));
  p_ += n;
  return b;
}

void Reader::skip(size_t depth) {
  if (depth >= kMaxDepth) fail("nested too deeply");
  uint8_t major = peek_major();
  switch (major) {
    case 0:
    case 1: {
      uint64_t v = head(major);
      (void)v;
      return;
    }
    case 2:
      bytes();
      return;
    case 3:
      text();
      return;
    case 4: {
      size_t n = array();
      for (size_t i = 0; i < n; i++) skip(depth + 1);
      return;
    }
    case 5: {
      size_t n = map();
      for (size_t i = 0; i < 2 * n; i++) skip(depth + 1);
      return;
    }
    case 6:
      fail("tags are not used");
    default: {  // 7: false, true, null and floats, as json::from_cbor reads them
      uint8_t b = *p_;
      size_t len = b == 0xF4 || b == 0xF5 || b == 0xF6 ? 1 : b == 0xF9 ? 3 : b == 0xFA ? 5 : b == 0xFB ? 9 : 0;
      if (len == 0) fail("unsupported simple value");
      if (static_cast<size_t>(end_ - p_) < len) fail("unexpected end");
      p_ += len;
      return;
    }
  }
}

}  // namespace haven::repo::cbor

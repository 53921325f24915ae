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

// Object header (FORMAT.md §2): magic, version, kind, reserved bytes, key generation, salt.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  auto h = repo::parse_header(ByteView(data, size), "object");
  if (h.ok()) {
    // A parsed header encodes back to the bytes it came from.
    uint8_t out[repo::kPrefixSize];
    h->encode(out);
    if (std::memcmp(out, data, repo::kPrefixSize) != 0) __builtin_trap();
  }
  return 0;
}

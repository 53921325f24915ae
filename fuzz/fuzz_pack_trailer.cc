// Pack trailer (FORMAT.md §4): the framing read_pack_trailer() checks (header, name, trailer
// length, authentication) on a whole pack and on a head + tail pair, and the decoding of an
// authenticated trailer's CBOR.
#include "fuzz_common.h"
#include "repo/pack.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  ByteView in(data, size);
  const repo::Id id = fuzz::salt_id(in);
  auto whole = repo::read_pack_trailer(fuzz::test_key(), id, in);
  if (size >= repo::kPrefixSize) {
    // As repair reads it: the first 44 bytes and the last 1 KiB (or less).
    size_t tail = std::min<size_t>(size, 1024);
    auto parts = repo::read_pack_trailer(fuzz::test_key(), id, in.subspan(0, repo::kPrefixSize),
                                         in.subspan(size - tail), size);
    if (whole.ok() != parts.ok() && tail == size) __builtin_trap();
  }
  // The trailer body itself, as if it had authenticated, in a pack of `size` bytes.
  auto body = repo::decode_pack_trailer(in, id, 0, size, "pack");
  (void)body;
  return 0;
}

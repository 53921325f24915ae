// The master key's CBOR, as decoded after a key file has been unwrapped (FORMAT.md §3).
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  auto m = repo::decode_master_key(ByteView(data, size), "key");
  if (m.ok() && m->encryption_key(m->current_generation) == nullptr) __builtin_trap();
  return 0;
}

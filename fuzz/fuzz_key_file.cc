// Key files (FORMAT.md §3): the plaintext JSON (checksum, KDF parameters), and unwrapping with
// the password "fuzz" when the KDF is the cheapest allowed (1 MiB, 1 iteration; the corpus's
// key files use it), so both a wrong password and a good one are exercised.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  ByteView in(data, size);
  auto info = repo::read_key_file_info(in, "key");
  if (info.ok() && info->kdf.memory <= (1u << 20) && info->kdf.iterations <= 1) {
    (void)repo::open_key_file(in, "fuzz", "key");
  }
  return 0;
}

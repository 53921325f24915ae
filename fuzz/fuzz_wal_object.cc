// WAL objects (FORMAT.md §11): the framing under a fixed WAL key, for the names the corpus's
// objects were pushed under.
#include "fuzz_common.h"
#include "repo/wal_object.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  static const repo::WalKey key = [] {
    repo::WalKey k;
    k.repository = std::string(64, '7');
    k.generation = 0;
    k.key = crypto::SecretKey(Bytes(crypto::kKeySize, 0x77));
    return k;
  }();
  ByteView in(data, size);
  for (const char* name : {"000000010000000000000001", "00000002.history"}) {
    (void)repo::open_wal_object(key, name, in);
  }
  return 0;
}

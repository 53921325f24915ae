// Locks (FORMAT.md §8): the CBOR body, and the sealed object under the fixed test key.
#include "fuzz_common.h"
#include "repo/repository.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  ByteView in(data, size);
  (void)repo::decode_lock(in, "lock");
  auto body = repo::open_object(fuzz::test_key(), repo::ObjectKind::kLock,
                                {storage::ObjectType::kLock, fuzz::salt_name(in)}, in);
  if (body.ok()) (void)repo::decode_lock(*body, "lock");
  return 0;
}

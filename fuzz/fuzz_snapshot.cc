// Snapshots (FORMAT.md §6): the CBOR body, and the sealed object under the fixed test key.
#include "fuzz_common.h"
#include "repo/repository.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  ByteView in(data, size);
  auto s = repo::decode_snapshot(in, "snapshot");
  if (s.ok()) {
    // What decodes encodes and decodes again to the same snapshot.
    auto again = repo::decode_snapshot(repo::encode_snapshot(*s), "snapshot");
    if (!again.ok() || again->paths != s->paths || again->meta != s->meta) __builtin_trap();
  }
  (void)repo::cbor_to_json_text(in);
  auto body = repo::open_object(fuzz::test_key(), repo::ObjectKind::kSnapshot,
                                {storage::ObjectType::kSnapshot, fuzz::salt_name(in)}, in);
  if (body.ok()) (void)repo::decode_snapshot(*body, "snapshot");
  return 0;
}

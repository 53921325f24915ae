// Index files (FORMAT.md §5): the CBOR body, and the sealed object under the fixed test key.
#include "fuzz_common.h"
#include "repo/index.h"
#include "repo/repository.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  ByteView in(data, size);
  auto packs = repo::decode_index_file(in, "index");
  if (packs.ok()) {
    repo::Index index;
    for (const auto& p : *packs) index.add_pack(p);
  }
  auto body = repo::open_object(fuzz::test_key(), repo::ObjectKind::kIndex,
                                {storage::ObjectType::kIndex, fuzz::salt_name(in)}, in);
  if (body.ok()) (void)repo::decode_index_file(*body, "index");
  return 0;
}

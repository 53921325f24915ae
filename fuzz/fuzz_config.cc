// The config (FORMAT.md §10): the CBOR body, and the sealed object under the fixed test key.
#include "fuzz_common.h"
#include "repo/repository.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  ByteView in(data, size);
  auto c = repo::decode_config(in);
  if (c.ok()) {
    auto again = repo::decode_config(repo::encode_config(*c));
    if (!again.ok() || again->pack_size != c->pack_size) __builtin_trap();
  }
  auto body = repo::open_object(fuzz::test_key(), repo::ObjectKind::kConfig,
                                {storage::ObjectType::kConfig, "config"}, in);
  if (body.ok()) (void)repo::decode_config(*body);
  return 0;
}

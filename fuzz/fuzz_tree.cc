// Trees (FORMAT.md §6): the CBOR body, and a tree blob's record in a pack under the test key.
#include "fuzz_common.h"
#include "repo/pack.h"
#include "repo/snapshot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  ByteView in(data, size);
  auto t = repo::decode_tree(in, "tree");
  if (t.ok()) {
    auto again = repo::decode_tree(repo::encode_tree(*t), "tree");
    if (!again.ok() || again->nodes.size() != t->nodes.size()) __builtin_trap();
  }
  // A sealed tree record at offset 44 of the pack 32 × 0x44, blob ID 32 × 0x66 (gen_corpus.cc).
  repo::Id pack_id, blob_id;
  pack_id.fill(0x44);
  blob_id.fill(0x66);
  auto record = repo::open_blob_record(*fuzz::test_key().encryption_key(0), pack_id, 0,
                                       repo::BlobType::kTree, blob_id, repo::kPrefixSize, in, "tree");
  if (!record.ok()) return 0;
  auto body = repo::decode_record(*record, 64u << 20);
  if (body.ok()) (void)repo::decode_tree(*body, "tree");
  return 0;
}

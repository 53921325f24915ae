// Record plaintext (mode byte + payload, zstd frames; FORMAT.md §2) and a blob record's framing
// (AES-256-GCM under the fixed test key) as open_blob_record() reads it from a pack.
#include "fuzz_common.h"
#include "repo/pack.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  ByteView in(data, size);
  // The post-decryption decode, bounded as the pack reader bounds it (64 MiB blobs).
  auto r = repo::decode_record(in, 64u << 20);
  if (r.ok() && r->size() > (64u << 20)) __builtin_trap();
  // The framing: the corpus holds sealed records of data and tree blobs at offset 44 of the
  // pack whose ID is 32 × 0x44 (fuzz/gen_corpus.cc); any change fails authentication.
  repo::Id pack_id;
  pack_id.fill(0x44);
  repo::Id blob_id;
  blob_id.fill(0x55);
  for (auto type : {repo::BlobType::kData, repo::BlobType::kTree}) {
    auto record = repo::open_blob_record(*fuzz::test_key().encryption_key(0), pack_id, 0, type,
                                         blob_id, repo::kPrefixSize, in, "blob");
    if (record.ok()) (void)repo::decode_record(*record, 64u << 20);
  }
  return 0;
}

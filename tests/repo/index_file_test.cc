// Index files read straight into an Index, a blob at a time (decode_index_file(body, what,
// Index&)): the same entries as through PackRecords, all or nothing, and without a pack's list
// of blobs in memory.

// The replaced operator new/delete below use malloc/free: GCC sees a free() of memory from
// "new" once inlined.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <new>

#include "crypto/crypto.h"
#include "repo/index.h"
#include "util/pages.h"

// This binary's operator new records the largest request made on a thread while that thread
// watches (a thread-local flag); every allocation goes straight to malloc as before.
namespace {
thread_local bool watching = false;
thread_local size_t largest = 0;
}  // namespace

void* operator new(size_t n) {
  if (watching && n > largest) largest = n;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace haven::repo {
namespace {

using nlohmann::json;

// The largest single heap allocation `fn` makes on this thread.
template <typename F>
size_t largest_allocation(F&& fn) {
  largest = 0;
  watching = true;
  fn();
  watching = false;
  return largest;
}

std::vector<PackRecord> packs_of(size_t count, size_t blobs_each) {
  std::vector<PackRecord> packs(count);
  uint32_t generation = 2;
  for (auto& p : packs) {
    p.id = random_id();
    p.key_generation = generation++;
    for (size_t i = 0; i < blobs_each; i++) {
      p.blobs.push_back({i % 7 == 0 ? BlobType::kTree : BlobType::kData, random_id(),
                         static_cast<uint32_t>(i * 100), 90, static_cast<uint32_t>(i)});
    }
  }
  return packs;
}

TEST(IndexFileTest, ReadIntoAnIndexBlobByBlobFindsEveryBlobInItsPack) {
  crypto::init();
  auto packs = packs_of(3, 500);
  packs[1].blobs.push_back(packs[0].blobs[3]);  // listed twice: the first location stays
  Index index;
  PackRecord before;  // a pack added the usual way first: numbers continue after it
  before.id = random_id();
  before.blobs = {{BlobType::kData, random_id(), 1, 2, 3}};
  index.add_pack(before);
  ASSERT_TRUE(decode_index_file(encode_index_file(packs), "index x", index).ok());
  EXPECT_EQ(index.pack_count(), 4u);
  EXPECT_EQ(index.blob_count(), 1 + 3 * 500u);
  for (size_t k = 0; k < packs.size(); k++) {
    for (size_t i = 0; i < 500; i++) {
      const PackedBlob& b = packs[k].blobs[i];
      auto at = index.find(b.type, b.id);
      ASSERT_TRUE(at.has_value());
      EXPECT_EQ(at->pack_id, packs[k].id);
      EXPECT_EQ(at->key_generation, packs[k].key_generation);
      EXPECT_EQ(at->offset, b.offset);
      EXPECT_EQ(at->length, b.length);
      EXPECT_EQ(at->raw_length, b.raw_length);
    }
  }
  EXPECT_EQ(index.find(BlobType::kData, before.blobs[0].id)->pack_id, before.id);
  // The blob's type is part of its key.
  EXPECT_FALSE(index.find(BlobType::kData, packs[0].blobs[0].id).has_value());
}

TEST(IndexFileTest, AMalformedFileAddsNothingToTheIndex) {
  crypto::init();
  auto packs = packs_of(2, 50);
  json j = json::from_cbor(encode_index_file(packs));
  j["packs"][1]["blobs"][49][0] = 9;  // an unknown type in the last blob of the last pack
  Index index;
  auto s = decode_index_file(json::to_cbor(j), "index y", index);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Error::Code::kCorrupt);
  EXPECT_NE(s.error().message().find("index y"), std::string::npos);
  EXPECT_EQ(index.pack_count(), 0u);
  EXPECT_EQ(index.blob_count(), 0u);
  EXPECT_FALSE(index.find(packs[0].blobs[0].type, packs[0].blobs[0].id).has_value());
}

// A key named twice in a pack's map (never written: RFC 8949 calls such a map invalid) is
// refused: read blob by blob, the earlier list would already be in the index.
TEST(IndexFileTest, APackNamingAKeyTwiceIsMalformed) {
  crypto::init();
  auto packs = packs_of(1, 3);
  Bytes good = encode_index_file(packs);
  // The pack's map header (0xa3, three pairs) sits right after {"packs": [ ; one more pair,
  // a second "id", goes at the end.
  auto with_extra = [&](const json& key, const json& value) {
    Bytes b = good;
    size_t at = 1 + 6 + 1;  // map(1), text "packs", array(1)
    EXPECT_EQ(b[at], 0xa3);
    b[at] = 0xa4;
    for (const json& part : {key, value}) {
      Bytes enc = json::to_cbor(part);
      b.insert(b.end(), enc.begin(), enc.end());
    }
    return b;
  };
  Index index;
  EXPECT_TRUE(decode_index_file(good, "index z", index).ok());
  auto twice = with_extra("id", json::binary_t(std::vector<uint8_t>(32, 7)));
  EXPECT_FALSE(decode_index_file(twice, "index z", index).ok());
  EXPECT_FALSE(decode_index_file(twice, "index z").ok());
  auto blobs_twice = with_extra("blobs", json::array());
  EXPECT_FALSE(decode_index_file(blobs_twice, "index z", index).ok());
  auto unknown = with_extra("later", 1);  // an unknown key is still skipped
  EXPECT_TRUE(decode_index_file(unknown, "index z").ok());
  EXPECT_EQ(index.pack_count(), 1u);
}

// A pack of small files lists ~13,000 blobs: read into the index, no allocation holds its list
// (the largest is under the 64 KiB from which the index's own pieces are mapped pages); read
// as PackRecords, the list is one allocation of at least 13,000 entries.
TEST(IndexFileTest, NoPackListIsHeldWhileAFileIsReadIntoTheIndex) {
  crypto::init();
  Bytes body = encode_index_file(packs_of(1, 13000));
  Index index;
  size_t into_index = largest_allocation([&] { ASSERT_TRUE(decode_index_file(body, "index", index).ok()); });
  EXPECT_EQ(index.blob_count(), 13000u);
  EXPECT_LT(into_index, kMapMin);
  size_t as_records = largest_allocation([&] { ASSERT_TRUE(decode_index_file(body, "index").ok()); });
  EXPECT_GE(as_records, 13000 * sizeof(PackedBlob));
}

}  // namespace
}  // namespace haven::repo

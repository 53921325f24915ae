// Decoders of object bodies against the inputs the fuzz targets (fuzz/) found crashing: each
// must give one kCorrupt Error. The same inputs are kept in fuzz/corpus/<target>/crash-*.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "repo/index.h"
#include "repo/keys.h"
#include "repo/pack.h"
#include "repo/repository.h"
#include "repo/snapshot.h"

namespace haven::repo {
namespace {

using nlohmann::json;

json::binary_t bin(size_t n, uint8_t b) { return json::binary_t(std::vector<uint8_t>(n, b)); }

// 20,000 nested one-element arrays: json::from_cbor recursed once per level and overflowed the
// stack (fuzz/corpus/tree/crash-deep-nesting).
Bytes deep_nesting() {
  Bytes b(20000, 0x81);
  b.push_back(0);
  return b;
}

template <typename T>
void expect_corrupt(const Result<T>& r) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kCorrupt) << r.error().message();
}

TEST(DecodeTest, DeeplyNestedCborIsCorruptNotAStackOverflow) {
  const Bytes deep = deep_nesting();
  expect_corrupt(decode_tree(deep, "tree"));
  expect_corrupt(decode_snapshot(deep, "snapshot"));
  expect_corrupt(decode_lock(deep, "lock"));
  expect_corrupt(decode_index_file(deep, "index"));
  expect_corrupt(decode_config(deep));
  expect_corrupt(decode_master_key(deep, "key"));
  expect_corrupt(decode_pack_trailer(deep, Id{}, 0, 1u << 20, "pack"));
  EXPECT_EQ(cbor_to_json_text(deep), "\"(not CBOR)\"");
  // Nesting as deep as Haven's own objects still decodes.
  Tree t;
  Node n;
  n.name = "f";
  n.xattrs = {{"user.a", "b"}};
  t.nodes = {n};
  ASSERT_TRUE(decode_tree(encode_tree(t), "tree").ok());
}

// A CBOR float where an integer belongs: get<int64_t>() converted it with a static_cast,
// undefined behaviour for 1e300 (fuzz/corpus/lock/crash-pid-float).
TEST(DecodeTest, FloatWhereAnIntegerBelongsIsCorrupt) {
  json lock = {{"time", 0}, {"refreshed", 0}, {"hostname", "h"}, {"pid", 1e300}, {"exclusive", true}};
  expect_corrupt(decode_lock(json::to_cbor(lock), "lock"));

  // fuzz/corpus/index/crash-offset-float
  json idx;
  idx["packs"] = json::array({{{"id", bin(32, 1)}, {"key_generation", 0},
                               {"blobs", json::array({json::array({0, bin(32, 2), 1e20, 10, 10})})}}});
  expect_corrupt(decode_index_file(json::to_cbor(idx), "index"));

  // fuzz/corpus/snapshot/crash-stats-float
  json snap = {{"time", 0}, {"tree", bin(32, 1)}, {"paths", json::array({"/"})},
               {"stats", {{"files_new", -1e30}}}};
  expect_corrupt(decode_snapshot(json::to_cbor(snap), "snapshot"));

  json trailer = json::array({json::array({0, bin(32, 2), 44.5, 10, 10})});
  expect_corrupt(decode_pack_trailer(json::to_cbor(trailer), Id{}, 0, 1000, "pack"));
}

// An offset of 2^32 + 44 was silently read as 44 (fuzz/corpus/index/offset-over-u32).
TEST(DecodeTest, IntegerOutOfRangeIsCorruptNotTruncated) {
  json idx;
  idx["packs"] = json::array(
      {{{"id", bin(32, 1)}, {"key_generation", 0},
        {"blobs", json::array({json::array({0, bin(32, 2), (uint64_t{1} << 32) + 44, 10, 10})})}}});
  expect_corrupt(decode_index_file(json::to_cbor(idx), "index"));
  idx["packs"][0]["blobs"][0][2] = 44;
  idx["packs"][0]["key_generation"] = -1;
  expect_corrupt(decode_index_file(json::to_cbor(idx), "index"));
  idx["packs"][0]["key_generation"] = 7;
  auto ok = decode_index_file(json::to_cbor(idx), "index");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)[0].key_generation, 7u);
  EXPECT_EQ((*ok)[0].blobs[0].offset, 44u);

  json tree = {{"nodes", json::array({{{"name", bin(1, 'a')}, {"type", 0}, {"mode", -1}, {"uid", 0},
                                       {"gid", 0}, {"mtime", 0}, {"size", 0}}})}};
  expect_corrupt(decode_tree(json::to_cbor(tree), "tree"));
}

// The key file's JSON is readable (and writable) by the storage: a float version was undefined
// behaviour before the checksum was even looked at (fuzz/corpus/key_file/crash-version-float).
TEST(DecodeTest, KeyFileWithFloatVersionIsDamaged) {
  auto r = read_key_file_info(as_bytes("{\"version\": 1e300}"), "key k");
  expect_corrupt(r);
  EXPECT_NE(r.error().message().find("key k is damaged"), std::string::npos);
}

}  // namespace
}  // namespace haven::repo

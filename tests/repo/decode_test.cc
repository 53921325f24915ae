// Decoders of object bodies against the inputs the fuzz targets (fuzz/) found crashing: each
// must give one kCorrupt Error. The same inputs are kept in fuzz/corpus/<target>/crash-*.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <zstd.h>

#include <random>

#include "repo/compress.h"
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

// The DOM-based tree encoder trees were written with until direct CBOR replaced it: kept here as
// the reference the direct encoder must match byte for byte (a tree's ID is its bytes' hash).
json::binary_t jbin(const std::string& s) { return json::binary_t(std::vector<uint8_t>(s.begin(), s.end())); }
json::binary_t jbin(const Id& id) { return json::binary_t(std::vector<uint8_t>(id.begin(), id.end())); }
Bytes dom_encode_tree(const Tree& t) {
  json nodes = json::array();
  for (const auto& n : t.nodes) {
    json j;
    j["name"] = jbin(n.name);
    j["type"] = static_cast<int>(n.type);
    j["mode"] = n.mode;
    j["uid"] = n.uid;
    j["gid"] = n.gid;
    if (!n.user.empty()) j["user"] = n.user;
    if (!n.group.empty()) j["group"] = n.group;
    j["mtime"] = n.mtime;
    j["atime"] = n.atime;
    j["ctime"] = n.ctime;
    j["size"] = n.size;
    j["inode"] = n.inode;
    j["device"] = n.device;
    j["links"] = n.links;
    if (n.rdev) j["rdev"] = n.rdev;
    if (!n.link_target.empty()) j["link_target"] = jbin(n.link_target);
    if (!n.xattrs.empty()) {
      json x = json::array();
      for (const auto& [k, v] : n.xattrs) x.push_back({jbin(k), jbin(v)});
      j["xattrs"] = x;
    }
    if (!n.content.empty()) {
      json c = json::array();
      for (const auto& r : n.content) {
        c.push_back(r.whole() ? json(jbin(r.id)) : json::array({json(jbin(r.id)), r.offset, r.length}));
      }
      j["content"] = c;
    }
    if (n.subtree) j["subtree"] = jbin(*n.subtree);
    nodes.push_back(std::move(j));
  }
  json root;
  root["nodes"] = nodes;
  return json::to_cbor(root);
}

bool same_node(const Node& a, const Node& b) {
  return a.name == b.name && a.type == b.type && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid &&
         a.user == b.user && a.group == b.group && a.mtime == b.mtime && a.atime == b.atime &&
         a.ctime == b.ctime && a.size == b.size && a.inode == b.inode && a.device == b.device &&
         a.links == b.links && a.rdev == b.rdev && a.link_target == b.link_target &&
         a.xattrs == b.xattrs && a.content == b.content && a.subtree == b.subtree;
}

TEST(DecodeTest, DirectTreeCodecMatchesTheDomEncodingByteForByte) {
  // Values at every head width (inline, 1, 2, 4 and 8 bytes), negative times, every optional
  // field present and absent, long names and values.
  const uint64_t widths[] = {0, 23, 24, 255, 256, 65535, 65536, 0xFFFFFFFFull, 0x100000000ull,
                             UINT64_MAX};
  Tree t;
  for (size_t i = 0; i < 40; i++) {
    Node n;
    n.name = std::string(1 + i * 7, static_cast<char>('a' + i % 26));
    n.type = static_cast<Node::Type>(i % 7);
    n.mode = static_cast<uint32_t>(widths[i % 8]);
    n.uid = static_cast<uint32_t>(widths[(i + 1) % 8]);
    n.gid = static_cast<uint32_t>(widths[(i + 2) % 8]);
    if (i % 3) n.user = "user" + std::to_string(i);
    if (i % 4) n.group = std::string(i * 3, 'g');
    n.mtime = i % 5 == 0 ? -static_cast<TimeNs>(widths[i % 10] >> 1) - 1 : static_cast<TimeNs>(widths[i % 10] >> 1);
    n.atime = -static_cast<TimeNs>(i * 1000003);
    n.ctime = static_cast<TimeNs>(widths[(i + 3) % 10] >> 2);
    n.size = widths[(i + 4) % 10];
    n.inode = widths[(i + 5) % 10];
    n.device = widths[(i + 6) % 10];
    n.links = widths[(i + 7) % 10];
    if (i % 2) n.rdev = widths[(i + 8) % 10];
    if (i % 5 == 2) n.link_target = std::string(300, 'l');
    if (i % 6 == 1) n.xattrs = {{"security.selinux", std::string(70, '\0')}, {"user.k" + std::to_string(i), "v"}};
    for (size_t c = 0; c < i % 4; c++) {
      Id id;
      id.fill(static_cast<uint8_t>(i * 4 + c));
      n.content.push_back(id);
    }
    if (i % 7 == 1) {
      Id id;
      id.fill(static_cast<uint8_t>(200 + i));
      n.subtree = id;
    }
    t.nodes.push_back(std::move(n));
  }
  for (size_t count : {size_t{0}, size_t{1}, size_t{23}, size_t{24}, size_t{40}}) {
    Tree part;
    part.nodes.assign(t.nodes.begin(), t.nodes.begin() + static_cast<ptrdiff_t>(count));
    Bytes direct = encode_tree(part);
    EXPECT_EQ(direct, dom_encode_tree(part)) << count << " nodes";
    auto back = decode_tree(direct, "tree");
    ASSERT_TRUE(back.ok()) << back.error().message();
    ASSERT_EQ(back->nodes.size(), count);
    for (size_t i = 0; i < count; i++) EXPECT_TRUE(same_node(back->nodes[i], part.nodes[i])) << i;
  }
}

// Pack trailers are written without a DOM (encode_pack_trailer); the bytes must stay those
// json::to_cbor wrote, or packs written before would no longer read the same.
TEST(DecodeTest, DirectPackTrailerCodecMatchesTheDomEncodingByteForByte) {
  const uint32_t widths[] = {44, 255, 256, 65535, 65536, 0x7FFFFFFF, 0xFFFFFFF0u};
  std::vector<PackedBlob> blobs;
  for (uint32_t i = 0; i < 30; i++) {
    PackedBlob b;
    b.type = static_cast<BlobType>(i % 2);
    b.id.fill(static_cast<uint8_t>(i * 7));
    b.offset = widths[i % 7];
    b.length = i % 7 == 6 ? 15 : widths[(i + 3) % 5];
    b.raw_length = widths[(i + 1) % 7] - 1;
    blobs.push_back(b);
  }
  for (size_t count : {size_t{0}, size_t{1}, size_t{23}, size_t{24}, size_t{30}}) {
    std::vector<PackedBlob> part(blobs.begin(), blobs.begin() + static_cast<ptrdiff_t>(count));
    json dom = json::array();
    for (const auto& b : part) {
      dom.push_back({static_cast<int>(b.type), json::binary_t(std::vector<uint8_t>(b.id.begin(), b.id.end())),
                     b.offset, b.length, b.raw_length});
    }
    const Bytes direct = encode_pack_trailer(part);
    EXPECT_EQ(direct, json::to_cbor(dom)) << count << " blobs";
    auto back = decode_pack_trailer(direct, Id{}, 3, 0xFFFFFFFFull * 2, "pack");
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_EQ(back->key_generation, 3u);
    ASSERT_EQ(back->blobs.size(), count);
    for (size_t i = 0; i < count; i++) {
      EXPECT_EQ(back->blobs[i].type, part[i].type);
      EXPECT_EQ(back->blobs[i].id, part[i].id);
      EXPECT_EQ(back->blobs[i].offset, part[i].offset);
      EXPECT_EQ(back->blobs[i].length, part[i].length);
      EXPECT_EQ(back->blobs[i].raw_length, part[i].raw_length);
    }
  }
  // Entries of more than five items read as before (the extra ones skipped); fewer, a blob
  // type other than 0 or 1, an entry past the trailer, or bytes after the list are corrupt.
  json longer = json::array({json::array({1, bin(32, 2), 44, 10, 9, "later", json::array({1, 2})})});
  auto r = decode_pack_trailer(json::to_cbor(longer), Id{}, 0, 1000, "pack");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->blobs.size(), 1u);
  EXPECT_EQ(r->blobs[0].type, BlobType::kTree);
  EXPECT_EQ(r->blobs[0].raw_length, 9u);
  expect_corrupt(decode_pack_trailer(json::to_cbor(json::array({json::array({0, bin(32, 2), 44, 10})})), Id{}, 0,
                                     1000, "pack"));
  expect_corrupt(decode_pack_trailer(json::to_cbor(json::array({json::array({2, bin(32, 2), 44, 10, 10})})),
                                     Id{}, 0, 1000, "pack"));
  expect_corrupt(decode_pack_trailer(json::to_cbor(json::array({json::array({0, bin(32, 2), 44, 10, 10})})),
                                     Id{}, 0, 50, "pack"));
  Bytes trailing = json::to_cbor(json::array({json::array({0, bin(32, 2), 44, 10, 10})}));
  trailing.push_back(0);
  expect_corrupt(decode_pack_trailer(trailing, Id{}, 0, 1000, "pack"));
  expect_corrupt(decode_pack_trailer(json::to_cbor(json::object({{"a", 1}})), Id{}, 0, 1000, "pack"));
}

TEST(DecodeTest, TreeDecoderTakesKeysInAnyOrderSkipsUnknownOnesAndRefusesMissingOnes) {
  // Keys out of order, an unknown key holding nested values and a float, a definite map.
  json node = {{"zz_future", {{"a", json::array({1.5, nullptr, true})}}}, {"size", 5},
               {"name", jbin("x")}, {"type", 0}, {"mode", 420}, {"uid", 1}, {"gid", 2},
               {"mtime", -7}};
  json tree = {{"nodes", json::array({node})}, {"other", "ignored"}};
  auto t = decode_tree(json::to_cbor(tree), "tree");
  ASSERT_TRUE(t.ok()) << t.error().message();
  ASSERT_EQ(t->nodes.size(), 1u);
  EXPECT_EQ(t->nodes[0].name, "x");
  EXPECT_EQ(t->nodes[0].size, 5u);
  EXPECT_EQ(t->nodes[0].mtime, -7);
  for (const char* required : {"name", "type", "mode", "uid", "gid", "mtime", "size"}) {
    json broken = tree;
    broken["nodes"][0].erase(required);
    expect_corrupt(decode_tree(json::to_cbor(broken), "tree"));
  }
  json wrong = tree;
  wrong["nodes"][0]["name"] = "text, not bytes";
  expect_corrupt(decode_tree(json::to_cbor(wrong), "tree"));
  Bytes body = json::to_cbor(tree);
  body.push_back(0);  // trailing bytes
  expect_corrupt(decode_tree(body, "tree"));
  body.resize(body.size() - 5);  // truncated
  expect_corrupt(decode_tree(body, "tree"));
  expect_corrupt(decode_tree(json::to_cbor(json{{"nothing", 1}}), "tree"));
}

// The key file's JSON is readable (and writable) by the storage: a float version was undefined
// behaviour before the checksum was even looked at (fuzz/corpus/key_file/crash-version-float).
TEST(DecodeTest, KeyFileWithFloatVersionIsDamaged) {
  auto r = read_key_file_info(as_bytes("{\"version\": 1e300}"), "key k");
  expect_corrupt(r);
  EXPECT_NE(r.error().message().find("key k is damaged"), std::string::npos);
}

// A large record compressed on several threads is one frame per part; it decodes to the data,
// and a reader bounds the sum of the frames' sizes, not the first frame's alone.
// The probe takes level 1 for data it compresses as small as level 3 (on a sample of 128 KiB):
// rows of random hex in 16 KiB pages (level 1 ~3% smaller), incompressible data (both stored
// raw). It takes the fast
// match finder for data with long repeats that level 1's small table misses and the fast one
// finds (records drawn from a pool, as code and tables repeat in programs). Text stays at
// level 3 (the fast match finder stores it 6-7% larger), and no other level is ever changed.
TEST(DecodeTest, TheProbeTakesACheaperCompressionOnlyWhereItCompressesAlmostAsSmall) {
  std::mt19937_64 rng(9);
  std::string hex, text, noise, records;
  const char* digits = "0123456789abcdef";
  for (int i = 0; hex.size() < (128u << 10); i++) {
    hex += std::to_string(i) + "|";
    for (int k = 0; k < 84; k++) hex += digits[rng() % 16];
    hex += "|" + std::to_string(rng() % 1000000) + "\n";
  }
  const char* words[] = {"GET", "POST", "/api/v1/items", "/login", "200", "404", "latency_ms=", "host1", "host2"};
  for (int i = 0; text.size() < (128u << 10); i++) {
    text += "2026-11-30 12:" + std::to_string(10 + i % 50) + ":00 " + words[rng() % 9] + " " +
            words[rng() % 9] + " " + std::to_string(rng() % 100) + "\n";
  }
  for (int i = 0; noise.size() < (128u << 10); i++) noise.push_back(static_cast<char>(rng()));
  std::vector<std::string> pool(512);
  for (std::string& r : pool) {
    for (int k = 0; k < 48; k++) r.push_back(static_cast<char>(rng()));
  }
  while (records.size() < (128u << 10)) {
    records += pool[rng() % pool.size()];
    for (int k = 0; k < 8; k++) records.push_back(static_cast<char>(rng()));
  }
  auto probe = [](Compression c, const std::string& s, size_t piece) { return probe_compression(c, as_bytes(s), piece); };
  EXPECT_EQ(probe(Compression::kMedium, hex, 16384), Compression::kLow);
  EXPECT_EQ(probe(Compression::kMedium, noise, 0), Compression::kLow);
  // Level 1 is weighed on 128 KiB only: on less zstd fits its table to the sample.
  EXPECT_NE(probe(Compression::kMedium, hex.substr(0, 32u << 10), 16384), Compression::kLow);
  EXPECT_NE(probe(Compression::kMedium, noise.substr(0, 32u << 10), 0), Compression::kLow);
  EXPECT_EQ(probe(Compression::kMedium, records, 0), Compression::kMediumFast);
  EXPECT_EQ(probe(Compression::kMedium, text, 0), Compression::kMedium);
  EXPECT_EQ(probe(Compression::kMedium, text, 16384), Compression::kMedium);
  for (Compression c : {Compression::kNone, Compression::kLow, Compression::kHigh}) {
    EXPECT_EQ(probe(c, noise, 0), c) << compression_name(c);
    EXPECT_EQ(probe(c, records, 0), c) << compression_name(c);
  }
  EXPECT_EQ(probe(Compression::kMedium, "", 0), Compression::kMedium);
  // What the fast match finder stores decodes to the data.
  Bytes record = [&] {
    auto r = encode_record_scratch(Compression::kMediumFast, as_bytes(records), 0);
    return Bytes(r.begin(), r.end());
  }();
  ASSERT_EQ(record[0], kModeZstd);
  EXPECT_LT(record.size(), records.size() * 3 / 4);
  auto back = decode_record(record, records.size());
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_TRUE(*back == Bytes(records.begin(), records.end()));
}

TEST(DecodeTest, RecordsOfSeveralFramesDecodeWholeAndTheirTotalSizeIsBounded) {
  Bytes data(size_t{6} << 20);
  std::mt19937 rng(7);
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<uint8_t>("0123456789abcdef"[rng() % 16]);
  auto scratch = encode_record_scratch(Compression::kLow, data, 0, 2);
  Bytes record(scratch.begin(), scratch.end());
  ASSERT_EQ(record[0], kModeZstd);
  ByteView payload = ByteView(record).subspan(1);
  size_t first = ZSTD_findFrameCompressedSize(payload.data(), payload.size());
  ASSERT_FALSE(ZSTD_isError(first));
  EXPECT_LT(first, payload.size()) << "one frame: the record was not split";
  EXPECT_EQ(ZSTD_getFrameContentSize(payload.data(), payload.size()), data.size() / 2);
  auto whole = decode_record(record, data.size());
  ASSERT_TRUE(whole.ok()) << whole.error().message();
  EXPECT_TRUE(*whole == data);
  Scratch buf;
  auto view = decode_record_view(record, data.size(), buf);
  ASSERT_TRUE(view.ok());
  EXPECT_TRUE(std::equal(view->begin(), view->end(), data.begin(), data.end()));
  // The first frame fits the bound, the two together do not: refused before allocating.
  expect_corrupt(decode_record(record, data.size() - 1));
  // One worker: a single frame, as before.
  auto single = encode_record_scratch(Compression::kLow, data, 0, 1);
  ByteView one = ByteView(single.data(), single.size()).subspan(1);
  EXPECT_EQ(ZSTD_findFrameCompressedSize(one.data(), one.size()), one.size());
  // A frame cut short after the first is damage, not a shorter record.
  Bytes cut(record.begin(), record.begin() + static_cast<std::ptrdiff_t>(1 + first + 10));
  expect_corrupt(decode_record(cut, data.size()));
}

}  // namespace
}  // namespace haven::repo

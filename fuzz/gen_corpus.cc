// fuzz/gen_corpus.cc — writes the seed corpus of every fuzz target: real objects encoded and
// sealed by Haven's own encoders under the fixed test key (fuzz_common.h), plus a few edge
// cases. Usage: fuzz_gen_corpus DIR (DIR/<target>/<seed>); `make fuzz-corpus` runs it into
// fuzz/corpus. Salts are random, so a run rewrites the sealed seeds with new bytes.
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "pg/wal.h"
#include "repo/index.h"
#include "repo/pack.h"
#include "repo/repository.h"
#include "storage/local.h"

namespace fs = std::filesystem;
using namespace haven;
using nlohmann::json;

namespace {

fs::path g_root;

void put(const std::string& target, const std::string& name, ByteView bytes) {
  fs::path dir = g_root / target;
  fs::create_directories(dir);
  std::ofstream f(dir / name, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    std::fprintf(stderr, "gen_corpus: cannot write %s\n", (dir / name).c_str());
    std::exit(1);
  }
}
void put(const std::string& target, const std::string& name, const std::string& text) {
  put(target, name, as_bytes(text));
}

repo::Id filled(uint8_t b) {
  repo::Id id;
  id.fill(b);
  return id;
}

const crypto::SecretKey& enc() { return *fuzz::test_key().encryption_key(0); }

// A blob record sealed at offset 44 of the pack whose ID is 32 × 0x44 (what fuzz_record and
// fuzz_tree open).
Bytes sealed_blob_record(repo::BlobType type, const repo::Id& id, ByteView data, repo::Compression c) {
  repo::Header h;
  h.kind = repo::ObjectKind::kPack;
  h.salt = filled(0x44);
  Bytes out(repo::kPrefixSize);
  h.encode(out.data());
  Bytes record;
  repo::encode_record(c, data, record);
  repo::seal_record(repo::object_key(enc(), h), h, repo::blob_aad(type, id), record, out);
  return Bytes(out.begin() + repo::kPrefixSize, out.end());
}

Bytes sealed(repo::ObjectKind kind, ByteView body) {
  return repo::seal_object(fuzz::test_key(), kind, repo::random_id(), body);
}

repo::Tree sample_tree() {
  repo::Tree t;
  repo::Node dir;
  dir.name = "dir";
  dir.type = repo::Node::Type::kDir;
  dir.mode = 0755;
  dir.uid = dir.gid = 1000;
  dir.user = dir.group = "user";
  dir.mtime = 1700000000123456789;
  dir.subtree = filled(0x01);
  repo::Node file;
  file.name = "file\xff.txt";
  file.mode = 04644;
  file.mtime = file.atime = file.ctime = -5;
  file.size = 3u << 20;
  file.inode = 42;
  file.device = 2049;
  file.links = 2;
  file.xattrs = {{"user.note", "v"}, {"system.posix_acl_access", std::string("\x02\0\0\0", 4)}};
  file.content = {filled(0x02), filled(0x03)};
  repo::Node link;
  link.name = "link";
  link.type = repo::Node::Type::kSymlink;
  link.link_target = "../dir";
  repo::Node dev;
  dev.name = "zdev";
  dev.type = repo::Node::Type::kCharDev;
  dev.rdev = 0x0103;
  t.nodes = {dir, file, link, dev};
  return t;
}

void gen_header() {
  for (auto kind : {repo::ObjectKind::kConfig, repo::ObjectKind::kPack, repo::ObjectKind::kWal}) {
    repo::Header h;
    h.kind = kind;
    h.key_generation = kind == repo::ObjectKind::kPack ? 7 : 0;
    h.salt = filled(0xa5);
    Bytes b(repo::kPrefixSize);
    h.encode(b.data());
    put("header", "kind" + std::to_string(static_cast<int>(kind)), b);
    if (kind == repo::ObjectKind::kConfig) {
      b[4] = 2;  // newer version
      put("header", "newer-version", b);
      b.resize(20);
      put("header", "truncated", b);
    }
  }
}

void gen_record() {
  std::string text;
  for (int i = 0; i < 40; i++) text += "a line of text that compresses well " + std::to_string(i) + "\n";
  Bytes rec;
  repo::encode_record(repo::Compression::kLow, as_bytes(text), rec);
  put("record", "zstd", rec);
  repo::encode_record(repo::Compression::kNone, as_bytes("hello"), rec);
  put("record", "raw", rec);
  put("record", "unknown-mode", std::string("\x07xyz"));
  put("record", "empty", std::string());
  put("record", "sealed-data", sealed_blob_record(repo::BlobType::kData, filled(0x55), as_bytes(text),
                                                  repo::Compression::kLow));
  put("record", "sealed-tree", sealed_blob_record(repo::BlobType::kTree, filled(0x55),
                                                  as_bytes("tree"), repo::Compression::kNone));
}

void gen_pack() {
  repo::PackBuilder b(enc(), 0);
  for (int i = 0; i < 3; i++) {
    std::string data(100 + i * 50, static_cast<char>('a' + i));
    b.add(i == 2 ? repo::BlobType::kTree : repo::BlobType::kData, filled(static_cast<uint8_t>(i + 1)),
          as_bytes(data), repo::Compression::kLow);
  }
  repo::PackRecord rec;
  Bytes pack = b.finish(rec);
  put("pack_trailer", "pack-3-blobs", pack);
  repo::PackBuilder empty(enc(), 0);
  repo::PackRecord none;
  put("pack_trailer", "pack-empty", empty.finish(none));
  // The trailer's CBOR as decode_pack_trailer() sees it after authentication.
  json list = json::array();
  for (const auto& bl : rec.blobs) {
    list.push_back({static_cast<int>(bl.type), json::binary_t(std::vector<uint8_t>(bl.id.begin(), bl.id.end())),
                    bl.offset, bl.length, bl.raw_length});
  }
  Bytes body = json::to_cbor(list);
  put("pack_trailer", "trailer-body", body);
}

void gen_index() {
  std::vector<repo::PackRecord> packs(2);
  packs[0].id = filled(0x10);
  packs[0].blobs = {{repo::BlobType::kData, filled(0x11), 44, 1000, 980},
                    {repo::BlobType::kTree, filled(0x12), 1044, 200, 300}};
  packs[1].id = filled(0x20);
  packs[1].key_generation = 3;
  packs[1].blobs = {{repo::BlobType::kData, filled(0x21), 44, 17, 0}};
  Bytes body = repo::encode_index_file(packs);
  put("index", "body", body);
  put("index", "body-empty", repo::encode_index_file({}));
  put("index", "sealed", sealed(repo::ObjectKind::kIndex, body));
}

void gen_tree() {
  Bytes body = repo::encode_tree(sample_tree());
  put("tree", "body", body);
  put("tree", "body-empty", repo::encode_tree({}));
  put("tree", "sealed", sealed_blob_record(repo::BlobType::kTree, filled(0x66), body, repo::Compression::kLow));
}

void gen_snapshot() {
  repo::Snapshot s;
  s.time = 1700000000000000000;
  s.end_time = s.time + 5;
  s.tree = filled(0x01);
  s.paths = {"/srv/pg", "/srv/ts1"};
  s.hostname = "host";
  s.username = "user";
  s.tags = {"pg", "nightly"};
  s.strategy = "incremental";
  s.parent = filled(0x02);
  s.stats = {{"files_new", 3}, {"bytes_read", 1u << 30}};
  s.program_version = "0.1.0";
  s.meta = {{"pg.start_lsn", "0/2000028"}, {"pg.timeline", "1"}};
  Bytes body = repo::encode_snapshot(s);
  put("snapshot", "body", body);
  put("snapshot", "sealed", sealed(repo::ObjectKind::kSnapshot, body));
  repo::Snapshot minimal;
  put("snapshot", "body-minimal", repo::encode_snapshot(minimal));
}

void gen_lock() {
  repo::Lock l{1700000000000000000, 1700000000000000001, "host", "user", 4242, true};
  Bytes body = repo::encode_lock(l);
  put("lock", "body", body);
  put("lock", "sealed", sealed(repo::ObjectKind::kLock, body));
}

void gen_config() {
  repo::Config c;
  c.id = filled(0x0c);
  c.created = "2026-11-22T00:00:00Z";
  c.id_hash = repo::BlobIdFunction::kHmacSha256;
  Bytes body = repo::encode_config(c);
  put("config", "body", body);
  put("config", "sealed", sealed(repo::ObjectKind::kConfig, body));
  c.version = 2;
  put("config", "body-newer", repo::encode_config(c));
}

void gen_keys() {
  crypto::KdfParams cheap{1, 1u << 20};
  Bytes file = repo::make_key_file(fuzz::test_key(), "fuzz", cheap);
  put("key_file", "key-fuzz", file);
  put("key_file", "not-json", std::string("{\"version\": 1,"));
  put("key_file", "newer", std::string("{\"version\": 2}"));
  json m;
  m["encryption"] = json::array({{{"generation", 0}, {"key", json::binary_t(std::vector<uint8_t>(32, 0x11))}},
                                 {{"generation", 1}, {"key", json::binary_t(std::vector<uint8_t>(32, 0x12))}}});
  m["current_generation"] = 1;
  m["id_key"] = json::binary_t(std::vector<uint8_t>(32, 0x22));
  m["chunker_key"] = json::binary_t(std::vector<uint8_t>(32, 0x33));
  put("master_key", "two-generations", json::to_cbor(m));
  m["current_generation"] = 5;
  put("master_key", "missing-current", json::to_cbor(m));
}

void gen_s3() {
  put("s3_xml", "list-truncated", std::string(R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name><Prefix>pre/fix/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken><Contents><Key>pre/fix/data/3f/3fa9</Key><LastModified>2026-11-22T00:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>16777216</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>pre/fix/snapshots/a&amp;b</Key><Size>300</Size></Contents><Contents><Key>config</Key><Size>155</Size></Contents></ListBucketResult>)"));
  put("s3_xml", "list-last", std::string(R"(<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>data/ab/abcd</Key><Size>5</Size></Contents><Contents><Key>data/xy/ab</Key><Size>1</Size></Contents></ListBucketResult>)"));
  put("s3_xml", "error", std::string(R"(<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint &#x41;&#65;.</Message><Region>eu-west-1</Region><RequestId>1</RequestId></Error>)"));
}

void gen_azure() {
  put("azure_xml", "list", std::string(R"(<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="c"><Prefix>pre/</Prefix><MaxResults>2</MaxResults><Blobs><Blob><Name>pre/data/ab/abcd</Name><Properties><Content-Length>1024</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob><Blob><Name>pre/locks/a&amp;b</Name><Properties><Content-Length>99</Content-Length></Properties></Blob><Blob><Name>config</Name><Properties><Content-Length /></Properties></Blob></Blobs><NextMarker>2!80!MDAw</NextMarker></EnumerationResults>)"));
  put("azure_xml", "list-last", std::string(R"(<EnumerationResults><Blobs><Blob><Name>pre/config</Name><Properties><Content-Length>12</Content-Length></Properties></Blob></Blobs><NextMarker/></EnumerationResults>)"));
  put("azure_xml", "error", std::string(R"(<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message></Error>)"));
}

void gen_wal() {
  for (const char* s : {"000000010000000000000001", "00000001000000000000000A.partial", "00000002.history",
                        "000000010000000000000002.00000028.backup", "0/16B3748", "FFFFFFFF/FFFFFFFF",
                        "1/0"}) {
    std::string name = s;
    for (char& c : name) if (c == '/' || c == '.') c = '_';
    put("wal_name", name, std::string(s));
  }
  // WAL objects pushed through a local backend whose config salt is 32 × 0x77 (fuzz_wal_object).
  fs::path dir = fs::temp_directory_path() / ("haven-gen-corpus-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto backend = std::make_shared<storage::LocalBackend>(dir.string());
  if (!backend->create().ok()) std::exit(1);
  repo::Header h;
  h.salt = filled(0x77);
  Bytes config(repo::kPrefixSize);
  h.encode(config.data());
  if (!backend->save({storage::ObjectType::kConfig, "config"}, config).ok()) std::exit(1);
  pg::WalKey key;
  key.repository = std::string(64, '7');
  key.key = crypto::SecretKey(Bytes(crypto::kKeySize, 0x77));
  std::string segment;
  for (int i = 0; i < 64; i++) segment += "WAL record " + std::to_string(i) + ";";
  const std::pair<const char*, std::string> files[] = {
      {"000000010000000000000001", segment}, {"00000002.history", "1\t0/3000000\tno recovery target specified\n"}};
  for (const auto& [name, content] : files) {
    if (!pg::push(*backend, key, name, as_bytes(content)).ok()) std::exit(1);
    auto obj = backend->load({storage::ObjectType::kWal, name}, 0, 0);
    if (!obj.ok()) std::exit(1);
    put("wal_object", name, *obj);
  }
  fs::path keyfile = dir / "wal.key";
  if (!pg::write_wal_key_file(keyfile.string(), key, false).ok()) std::exit(1);
  std::ifstream kf(keyfile);
  std::string text((std::istreambuf_iterator<char>(kf)), std::istreambuf_iterator<char>());
  put("wal_key", "key", text);
  put("wal_key", "wrong-type", std::string(R"({"haven_wal_key": "1", "key": 5})"));
  fs::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  crypto::init();
  g_root = argv[1];
  gen_header();
  gen_record();
  gen_pack();
  gen_index();
  gen_tree();
  gen_snapshot();
  gen_lock();
  gen_config();
  gen_keys();
  gen_s3();
  gen_azure();
  gen_wal();
  return 0;
}

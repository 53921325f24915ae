// Tests for repo/repository.h (and the index, pack, key-file and object formats under it),
// run against the local backend in a fresh temporary directory per test.
#include "repo/repository.h"
#include "repo/session.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "repo/index.h"
#include "repo/keys.h"
#include "repo/object.h"
#include "repo/pack.h"
#include "repo/snapshot.h"
#include "storage/backend.h"
#include "storage/local.h"
#include "support/slow_loads.h"
#include "util/clock.h"
#include "util/sysinfo.h"
#include "util/version.h"

namespace haven::repo {
namespace {

namespace fs = std::filesystem;
using storage::ObjectName;
using storage::ObjectType;

constexpr char kPw[] = "correct horse battery staple";

// ---------------------------------------------------------------------------------------------
// Helpers

// A fresh directory under /tmp, removed (with everything in it) at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/haven-repo-test-XXXXXX";
    char* p = ::mkdtemp(tmpl);
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    // Objects are mode 0444; make everything writable so a non-root run can clean up too.
    for (auto it = fs::recursive_directory_iterator(path_, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string describe(const Error& e) {
  return std::string(code_name(e.code())) + ": " + e.message();
}

// Checks that `r` failed with `code` and a message containing every one of `parts`.
template <typename T>
::testing::AssertionResult Fails(const Result<T>& r, Error::Code code,
                                 std::initializer_list<std::string> parts = {}) {
  if (r.ok()) return ::testing::AssertionFailure() << "succeeded; expected " << code_name(code);
  if (r.error().code() != code) {
    return ::testing::AssertionFailure()
           << "failed with " << describe(r.error()) << "; expected " << code_name(code);
  }
  for (const auto& p : parts) {
    if (r.error().message().find(p) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "message '" << r.error().message() << "' does not contain '" << p << "'";
    }
  }
  return ::testing::AssertionSuccess();
}

#define ASSERT_OK(expr)                                                 \
  do {                                                                  \
    const auto& haven_st_ = (expr);                                     \
    ASSERT_TRUE(haven_st_.ok()) << #expr << ": " << describe(haven_st_.error()); \
  } while (0)
#define EXPECT_OK(expr)                                                 \
  do {                                                                  \
    const auto& haven_st_ = (expr);                                     \
    EXPECT_TRUE(haven_st_.ok()) << #expr << ": " << describe(haven_st_.error()); \
  } while (0)

Bytes random_data(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Bytes b(n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(b.data() + i, &v, 8);
  }
  for (; i < n; i++) b[i] = static_cast<uint8_t>(rng());
  return b;
}

// Text-like data that zstd shrinks a lot.
Bytes compressible_data(size_t n) {
  std::string s;
  for (int line = 0; s.size() < n; line++) {
    s += "line " + std::to_string(line) + ": the quick brown fox jumps over the lazy dog, " +
         std::to_string(line * 7 % 13) + "\n";
  }
  s.resize(n);
  return Bytes(s.begin(), s.end());
}

void make_writable(const std::string& path) {
  if (::geteuid() != 0) {
    fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
  }
}

Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, ByteView data) {
  make_writable(path);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  ASSERT_TRUE(f.good()) << path;
}

uint8_t read_byte(const std::string& path, uint64_t offset) {
  std::ifstream f(path, std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  EXPECT_TRUE(f.good()) << path << " offset " << offset;
  return static_cast<uint8_t>(c);
}

void write_byte(const std::string& path, uint64_t offset, uint8_t v) {
  make_writable(path);
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  ASSERT_TRUE(f.is_open()) << path;
  f.seekp(static_cast<std::streamoff>(offset));
  char c = static_cast<char>(v);
  f.write(&c, 1);
  ASSERT_TRUE(f.good()) << path << " offset " << offset;
}

void flip_byte(const std::string& path, uint64_t offset, uint8_t mask = 0x01) {
  write_byte(path, offset, read_byte(path, offset) ^ mask);
}

// Every file and directory under `dir` (relative path -> size, -1 for directories).
std::map<std::string, int64_t> tree_listing(const std::string& dir) {
  std::map<std::string, int64_t> out;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    out[fs::relative(e.path(), dir).string()] =
        e.is_directory() ? -1 : static_cast<int64_t>(e.file_size());
  }
  return out;
}

std::vector<storage::ObjectInfo> list_objects(storage::Backend& b, ObjectType t) {
  std::vector<storage::ObjectInfo> out;
  Status s = b.list(t, [&](const storage::ObjectInfo& i) { out.push_back(i); });
  EXPECT_TRUE(s.ok()) << describe(s.error());
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.name.name < b.name.name; });
  return out;
}

std::vector<std::string> list_names(storage::Backend& b, ObjectType t) {
  std::vector<std::string> out;
  for (const auto& i : list_objects(b, t)) out.push_back(i.name.name);
  return out;
}

uint64_t total_size(storage::Backend& b, ObjectType t) {
  uint64_t n = 0;
  for (const auto& i : list_objects(b, t)) n += i.size;
  return n;
}

// Every pack record of every index file.
std::vector<PackRecord> read_indexes(Repository& repo) {
  std::vector<PackRecord> out;
  for (const auto& name : list_names(repo.backend(), ObjectType::kIndex)) {
    auto body = repo.load_object(ObjectType::kIndex, name);
    EXPECT_TRUE(body.ok()) << describe(body.error());
    if (!body.ok()) continue;
    auto packs = decode_index_file(*body, "index " + name);
    EXPECT_TRUE(packs.ok()) << describe(packs.error());
    if (!packs.ok()) continue;
    for (auto& p : *packs) out.push_back(std::move(p));
  }
  return out;
}

// Where a blob is, according to the index files.
struct Located {
  Id pack;
  PackedBlob blob;
};
std::optional<Located> locate(Repository& repo, BlobType type, const Id& id) {
  for (const auto& p : read_indexes(repo)) {
    for (const auto& b : p.blobs) {
      if (b.type == type && b.id == id) return Located{p.id, b};
    }
  }
  return std::nullopt;
}

crypto::KdfParams fast_kdf() { return crypto::KdfParams{1, 8u << 20}; }

InitOptions fast_options() {
  InitOptions o;
  o.kdf = fast_kdf();
  o.pack_size = 1u << 20;
  return o;
}

class RepoTest : public ::testing::Test {
 protected:
  void SetUp() override { crypto::init(); }

  const std::string& path() const { return tmp_.path(); }

  std::shared_ptr<storage::Backend> backend() {
    auto b = storage::open_backend(path());
    if (!b.ok()) std::abort();
    return *b;
  }

  storage::LocalBackend local() const { return storage::LocalBackend(path()); }
  std::string path_of(ObjectType t, const std::string& name) const {
    return local().path_of(ObjectName{t, name});
  }

  std::unique_ptr<Repository> init_repo(const std::string& pw = kPw,
                                        const InitOptions& o = fast_options()) {
    auto r = Repository::init(backend(), pw, o);
    EXPECT_TRUE(r.ok()) << describe(r.error());
    if (!r.ok()) return nullptr;
    return std::move(r).value();
  }

  Result<std::unique_ptr<Repository>> try_open(const std::string& pw = kPw) {
    return Repository::open(backend(), pw);
  }

  std::unique_ptr<Repository> open_repo(const std::string& pw = kPw) {
    auto r = try_open(pw);
    EXPECT_TRUE(r.ok()) << describe(r.error());
    if (!r.ok()) return nullptr;
    return std::move(r).value();
  }

  TempDir tmp_;
};

void expect_snapshot_eq(const Snapshot& a, const Snapshot& b) {
  EXPECT_EQ(a.time, b.time);
  EXPECT_EQ(a.end_time, b.end_time);
  EXPECT_EQ(a.tree, b.tree);
  EXPECT_EQ(a.paths, b.paths);
  EXPECT_EQ(a.hostname, b.hostname);
  EXPECT_EQ(a.username, b.username);
  EXPECT_EQ(a.tags, b.tags);
  EXPECT_EQ(a.strategy, b.strategy);
  EXPECT_EQ(a.parent, b.parent);
  EXPECT_EQ(a.stats, b.stats);
  EXPECT_EQ(a.program_version, b.program_version);
}

void expect_node_eq(const Node& a, const Node& b) {
  SCOPED_TRACE("node " + to_hex(as_bytes(a.name)));
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.uid, b.uid);
  EXPECT_EQ(a.gid, b.gid);
  EXPECT_EQ(a.user, b.user);
  EXPECT_EQ(a.group, b.group);
  EXPECT_EQ(a.mtime, b.mtime);
  EXPECT_EQ(a.atime, b.atime);
  EXPECT_EQ(a.ctime, b.ctime);
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.inode, b.inode);
  EXPECT_EQ(a.device, b.device);
  EXPECT_EQ(a.links, b.links);
  EXPECT_EQ(a.rdev, b.rdev);
  EXPECT_EQ(a.link_target, b.link_target);
  EXPECT_EQ(a.xattrs, b.xattrs);
  EXPECT_EQ(a.content, b.content);
  EXPECT_EQ(a.subtree, b.subtree);
}

// ---------------------------------------------------------------------------------------------
// init / open / config

TEST_F(RepoTest, ConfigSurvivesOpen) {
  InitOptions o = fast_options();
  o.chunker = chunker::Params{64 * 1024, 256 * 1024, 1024 * 1024};
  o.pack_size = 3u << 20;
  o.compression = Compression::kHigh;
  TimeNs before = now();
  auto repo = init_repo(kPw, o);
  ASSERT_TRUE(repo);
  Config created = repo->config();
  EXPECT_NE(created.id, Id{});

  auto again = open_repo();
  ASSERT_TRUE(again);
  const Config& c = again->config();
  EXPECT_EQ(c.version, kFormatVersion);
  EXPECT_EQ(c.id, created.id);
  EXPECT_EQ(c.chunker.min_size, 64u * 1024);
  EXPECT_EQ(c.chunker.avg_size, 256u * 1024);
  EXPECT_EQ(c.chunker.max_size, 1024u * 1024);
  EXPECT_EQ(c.pack_size, 3u << 20);
  EXPECT_EQ(c.compression, Compression::kHigh);
  EXPECT_EQ(c.created, created.created);
  auto t = parse_time(c.created);
  ASSERT_TRUE(t.has_value()) << c.created;
  EXPECT_GE(*t, before - 1000000000LL);
  EXPECT_LE(*t, now() + 1000000000LL);
  // The chunker is built from the stored parameters.
  EXPECT_EQ(again->make_chunker().params().avg_size, 256u * 1024);

  // A second repository gets its own ID.
  TempDir other;
  auto b2 = storage::open_backend(other.path());
  ASSERT_TRUE(b2.ok());
  auto r2 = Repository::init(*b2, kPw, fast_options());
  ASSERT_TRUE(r2.ok());
  EXPECT_NE((*r2)->config().id, created.id);
  // Defaults of InitOptions reach the config.
  EXPECT_EQ((*r2)->config().compression, Compression::kMedium);
  EXPECT_EQ((*r2)->config().chunker.avg_size, chunker::Params{}.avg_size);
}

// Counts the loads of the config object (each a round trip on object storage).
class ConfigLoads : public storage::BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  Result<Bytes> load(const ObjectName& n, uint64_t off, uint64_t len) override {
    if (n.type == ObjectType::kConfig) loads++;
    return BackendWrapper::load(n, off, len);
  }
  int loads = 0;
};

TEST_F(RepoTest, ProbedConfigIsNotReadAgainAndIsStillAuthenticated) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  const Id id = repo->config().id;
  auto counting = std::make_shared<ConfigLoads>(backend());
  auto probed = Repository::probe(*counting);
  ASSERT_TRUE(probed.ok()) << describe(probed.error());
  EXPECT_EQ(counting->loads, 1);
  OpenOptions o;
  o.config = probed->config;
  auto opened = Repository::open(counting, kPw, o);
  ASSERT_TRUE(opened.ok()) << describe(opened.error());
  EXPECT_EQ(counting->loads, 1) << "open() read the config the probe had already read";
  EXPECT_EQ((*opened)->config().id, id);
  // Without it, open() reads the config itself.
  auto again = Repository::open(counting, kPw);
  ASSERT_TRUE(again.ok()) << describe(again.error());
  EXPECT_EQ(counting->loads, 2);

  // The bytes handed over are what open() checks: another repository's config (same password)
  // does not authenticate with this repository's keys, and a truncated one is refused.
  TempDir other;
  auto b2 = storage::open_backend(other.path());
  ASSERT_TRUE(b2.ok());
  ASSERT_TRUE(Repository::init(*b2, kPw, fast_options()).ok());
  auto foreign = Repository::probe(**b2);
  ASSERT_TRUE(foreign.ok());
  o.config = foreign->config;
  EXPECT_FALSE(Repository::open(counting, kPw, o).ok());
  o.config = Bytes(probed->config.begin(), probed->config.begin() + 10);
  EXPECT_FALSE(Repository::open(counting, kPw, o).ok());
  // A location without a repository fails the probe, as before.
  TempDir empty;
  auto b3 = storage::open_backend(empty.path());
  ASSERT_TRUE(b3.ok());
  auto none = Repository::probe(**b3);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), Error::Code::kRepoNotFound);
}

// Watches the key files' requests, and whether the key listing starts while the config is
// being read (which takes 100 ms here, as a slow round trip would).
class KeyRequests : public storage::BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  Result<Bytes> load(const ObjectName& n, uint64_t off, uint64_t len) override {
    if (n.type == ObjectType::kConfig) {
      reading_config = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto r = BackendWrapper::load(n, off, len);
      reading_config = false;
      return r;
    }
    if (n.type == ObjectType::kKey) key_loads++;
    return BackendWrapper::load(n, off, len);
  }
  Status list(ObjectType t, const std::function<void(const storage::ObjectInfo&)>& fn) override {
    if (t == ObjectType::kKey) {
      key_lists++;
      if (reading_config) listed_while_reading_config = true;
    }
    return BackendWrapper::list(t, fn);
  }
  std::atomic<bool> reading_config{false}, listed_while_reading_config{false};
  std::atomic<int> key_loads{0}, key_lists{0};
};

// probe() lists and reads the key files beside the config (on object storage, round trips that
// need not wait for one another), and open() with what it read neither lists nor reads them
// again; a repository with more key files than probe() reads ahead still opens with a key
// beyond them.
TEST_F(RepoTest, ProbeReadsTheKeyFilesBesideTheConfig) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  auto watch = std::make_shared<KeyRequests>(backend());
  auto probed = Repository::probe(*watch);
  ASSERT_TRUE(probed.ok()) << describe(probed.error());
  EXPECT_TRUE(watch->listed_while_reading_config) << "the key files waited for the config";
  ASSERT_TRUE(probed->keys.ok());
  ASSERT_EQ(probed->keys->size(), 1u);
  EXPECT_TRUE((*probed->keys)[0].file.has_value());
  EXPECT_EQ(watch->key_lists, 1);
  EXPECT_EQ(watch->key_loads, 1);
  OpenOptions o;
  o.config = probed->config;
  o.keys = probed->keys;
  auto opened = Repository::open(watch, kPw, o);
  ASSERT_TRUE(opened.ok()) << describe(opened.error());
  EXPECT_EQ(watch->key_lists, 1) << "open() listed the key files again";
  EXPECT_EQ(watch->key_loads, 1) << "open() read a key file again";

  // Five more keys, each with its own password: the two beyond the first four (in name order)
  // are read by open() itself, when it gets to them.
  std::map<std::string, std::string> password_of{{(*opened)->current_key_id(), kPw}};
  for (int i = 0; i < 5; i++) {
    auto id = (*opened)->add_key("pw-" + std::to_string(i), fast_options().kdf);
    ASSERT_TRUE(id.ok()) << describe(id.error());
    password_of[*id] = "pw-" + std::to_string(i);
  }
  auto again = Repository::probe(*watch);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->keys->size(), 6u);
  size_t read_ahead = 0;
  for (const auto& k : *again->keys) read_ahead += k.file.has_value() ? 1 : 0;
  EXPECT_EQ(read_ahead, 4u);
  const std::string last_id = again->keys->back().id;
  const std::string last_pw = password_of[last_id];
  ASSERT_FALSE(last_pw.empty());
  o.config = again->config;
  o.keys = again->keys;
  const int loads_before = watch->key_loads;
  auto last = Repository::open(watch, last_pw, o);
  ASSERT_TRUE(last.ok()) << describe(last.error());
  EXPECT_EQ((*last)->current_key_id(), last_id);
  EXPECT_EQ(watch->key_loads - loads_before, 2) << "only the two key files not read ahead";
  // A listing that failed in probe() fails open() the same way.
  o.keys = Result<std::vector<ProbedKey>>(Error(Error::Code::kIo, "listing keys: disk on fire"));
  auto failed = Repository::open(watch, kPw, o);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message().find("disk on fire"), std::string::npos);
}

// Lists the key files slowly (a round trip), noting whether a key file was read before the
// listing came back.
class SlowKeyListing : public storage::BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  Result<Bytes> load(const ObjectName& n, uint64_t off, uint64_t len) override {
    if (n.type == ObjectType::kKey) {
      key_loads++;
      if (!listed) loaded_while_listing = true;
    }
    return BackendWrapper::load(n, off, len);
  }
  Status list(ObjectType t, const std::function<void(const storage::ObjectInfo&)>& fn) override {
    if (t != ObjectType::kKey) return BackendWrapper::list(t, fn);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Status s = BackendWrapper::list(t, fn);
    listed = true;
    return s;
  }
  std::atomic<bool> listed{false}, loaded_while_listing{false};
  std::atomic<int> key_loads{0};
};

// Given the key file that opened last time (the CLI's hint), probe() reads it beside the key
// listing instead of after it, puts it first and reads no other ahead: open() then derives one
// key. A hint that is no longer listed, or is not an ID at all, changes nothing but a request.
TEST_F(RepoTest, ProbeReadsTheHintedKeyFileBesideTheListing) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  std::string hinted_id;
  for (int i = 0; i < 5; i++) {
    auto id = repo->add_key("pw-" + std::to_string(i), fast_options().kdf);
    ASSERT_TRUE(id.ok()) << describe(id.error());
    hinted_id = std::max(hinted_id, *id);  // the last in name order, beyond the four read ahead
  }
  std::string hinted_pw;
  for (int i = 0; i < 5 && hinted_pw.empty(); i++) {
    auto o = Repository::open(backend(), "pw-" + std::to_string(i));
    if (o.ok() && (*o)->current_key_id() == hinted_id) hinted_pw = "pw-" + std::to_string(i);
  }
  ASSERT_FALSE(hinted_pw.empty()) << "the last key file in name order is the first key's";

  auto watch = std::make_shared<SlowKeyListing>(backend());
  auto probed = Repository::probe(*watch, hinted_id);
  ASSERT_TRUE(probed.ok()) << describe(probed.error());
  EXPECT_TRUE(watch->loaded_while_listing) << "the hinted key file waited for the listing";
  ASSERT_TRUE(probed->keys.ok());
  ASSERT_EQ(probed->keys->size(), 6u);
  EXPECT_EQ(probed->keys->front().id, hinted_id);
  EXPECT_TRUE(probed->keys->front().file.has_value());
  EXPECT_EQ(watch->key_loads, 1) << "other key files were read ahead beside the hinted one";
  OpenOptions o;
  o.config = probed->config;
  o.keys = probed->keys;
  auto opened = Repository::open(watch, hinted_pw, o);
  ASSERT_TRUE(opened.ok()) << describe(opened.error());
  EXPECT_EQ((*opened)->current_key_id(), hinted_id);
  EXPECT_EQ(watch->key_loads, 1) << "open() read key files the hinted one made needless";

  // A key file that is gone: the first four are read ahead after the listing, as without a hint.
  auto stale = std::make_shared<SlowKeyListing>(backend());
  auto again = Repository::probe(*stale, std::string(64, 'a'));
  ASSERT_TRUE(again.ok()) << describe(again.error());
  ASSERT_EQ(again->keys->size(), 6u);
  size_t read_ahead = 0;
  for (const auto& k : *again->keys) read_ahead += k.file.has_value() ? 1 : 0;
  EXPECT_EQ(read_ahead, 4u);
  EXPECT_EQ(stale->key_loads, 5) << "the missing hinted key file and the first four";
  EXPECT_TRUE(std::is_sorted(again->keys->begin(), again->keys->end(),
                             [](const auto& x, const auto& y) { return x.id < y.id; }));
  // Not an ID: not read at all.
  auto junk = std::make_shared<SlowKeyListing>(backend());
  ASSERT_TRUE(Repository::probe(*junk, "../config").ok());
  EXPECT_FALSE(junk->loaded_while_listing);
  EXPECT_EQ(junk->key_loads, 4);
}

TEST_F(RepoTest, LayoutAfterInit) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  auto b = backend();
  EXPECT_EQ(list_names(*b, ObjectType::kConfig), std::vector<std::string>{"config"});
  auto keys = list_names(*b, ObjectType::kKey);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0], repo->current_key_id());
  EXPECT_TRUE(list_names(*b, ObjectType::kData).empty());
  EXPECT_TRUE(list_names(*b, ObjectType::kIndex).empty());
  EXPECT_TRUE(list_names(*b, ObjectType::kSnapshot).empty());
  EXPECT_TRUE(list_names(*b, ObjectType::kLock).empty());
  // The config starts with the plaintext header: magic, version 1, kind 1 (config).
  Bytes cfg = read_file(path_of(ObjectType::kConfig, "config"));
  ASSERT_GE(cfg.size(), kPrefixSize);
  EXPECT_EQ(std::string(cfg.begin(), cfg.begin() + 4), "HAVN");
  EXPECT_EQ(cfg[4], 1);
  EXPECT_EQ(cfg[5], static_cast<uint8_t>(ObjectKind::kConfig));
  EXPECT_OK(Repository::probe(*b));
}

TEST_F(RepoTest, InitRefusesNonEmptyLocationAndWritesNothing) {
  {
    std::ofstream f(path() + "/somefile");
    f << "hello";
  }
  auto before = tree_listing(path());
  auto r = Repository::init(backend(), kPw, fast_options());
  EXPECT_TRUE(Fails(r, Error::Code::kAlreadyExists, {path(), "not empty"}));
  EXPECT_EQ(tree_listing(path()), before);

  // A hidden file alone also makes the location non-empty.
  TempDir hidden;
  { std::ofstream f(hidden.path() + "/.hidden"); }
  auto hb = storage::open_backend(hidden.path());
  ASSERT_TRUE(hb.ok());
  auto hidden_before = tree_listing(hidden.path());
  EXPECT_TRUE(Fails(Repository::init(*hb, kPw, fast_options()), Error::Code::kAlreadyExists));
  EXPECT_EQ(tree_listing(hidden.path()), hidden_before);
}

TEST_F(RepoTest, InitOverExistingRepositoryRefused) {
  ASSERT_TRUE(init_repo());
  auto before = tree_listing(path());
  Bytes config = read_file(path_of(ObjectType::kConfig, "config"));
  EXPECT_TRUE(Fails(Repository::init(backend(), "other", fast_options()),
                    Error::Code::kAlreadyExists));
  EXPECT_EQ(tree_listing(path()), before);
  EXPECT_EQ(read_file(path_of(ObjectType::kConfig, "config")), config);
  EXPECT_TRUE(open_repo());
  EXPECT_TRUE(Fails(try_open("other"), Error::Code::kWrongPassword));
}

TEST_F(RepoTest, InitRejectsBadOptionsWithoutWriting) {
  InitOptions small = fast_options();
  small.pack_size = (1u << 20) - 1;
  EXPECT_TRUE(Fails(Repository::init(backend(), kPw, small), Error::Code::kInvalidArgument,
                    {"pack size"}));
  EXPECT_TRUE(Fails(Repository::init(backend(), "", fast_options()),
                    Error::Code::kInvalidArgument, {"empty password"}));
  InitOptions weak = fast_options();
  weak.kdf.memory = 1024;
  EXPECT_TRUE(Fails(Repository::init(backend(), kPw, weak), Error::Code::kInvalidArgument));
  InitOptions bad_chunker = fast_options();
  bad_chunker.chunker.avg_size = 1000 * 1000;  // not a power of two
  EXPECT_TRUE(Fails(Repository::init(backend(), kPw, bad_chunker),
                    Error::Code::kInvalidArgument, {"chunker"}));
  EXPECT_TRUE(tree_listing(path()).empty());
  // And the location is still usable.
  EXPECT_TRUE(init_repo());
}

TEST_F(RepoTest, OpenOnEmptyOrMissingLocation) {
  // Empty directory.
  EXPECT_TRUE(Fails(try_open(), Error::Code::kRepoNotFound, {"no Haven repository"}));
  EXPECT_TRUE(Fails(Repository::probe(*backend()), Error::Code::kRepoNotFound));
  // Missing directory; open must not create it.
  std::string missing = path() + "/does/not/exist";
  auto b = storage::open_backend(missing);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(Fails(Repository::open(*b, kPw), Error::Code::kRepoNotFound));
  EXPECT_FALSE(fs::exists(path() + "/does"));
  EXPECT_TRUE(tree_listing(path()).empty());
}

TEST_F(RepoTest, WrongPassword) {
  ASSERT_TRUE(init_repo());
  auto r = try_open("not the password");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kWrongPassword);
  EXPECT_EQ(r.error().message(), "wrong password or no key for this repository");
  // Empty password and a password differing only in case fail the same way.
  EXPECT_TRUE(Fails(try_open(""), Error::Code::kWrongPassword));
  std::string upper = kPw;
  upper[0] = 'C';
  EXPECT_TRUE(Fails(try_open(upper), Error::Code::kWrongPassword));
  EXPECT_TRUE(open_repo());
}

TEST_F(RepoTest, NewerVersionRefusedBeforePassword) {
  ASSERT_TRUE(init_repo());
  std::string cfg = path_of(ObjectType::kConfig, "config");
  ASSERT_EQ(read_byte(cfg, 4), 1);
  write_byte(cfg, 4, 2);
  EXPECT_TRUE(Fails(try_open(), Error::Code::kUnsupported, {"upgrade haven"}));
  EXPECT_TRUE(Fails(try_open("wrong password"), Error::Code::kUnsupported, {"upgrade haven"}));
  EXPECT_TRUE(Fails(Repository::probe(*backend()), Error::Code::kUnsupported, {"upgrade haven"}));
  // Version 0 is not a valid version.
  write_byte(cfg, 4, 0);
  EXPECT_TRUE(Fails(try_open(), Error::Code::kCorrupt, {"config"}));
  write_byte(cfg, 4, 1);
  EXPECT_TRUE(open_repo());
}

TEST_F(RepoTest, NewerVersionOfOtherObjectsRefused) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  Snapshot s;
  s.time = 1;
  auto sid = session.save_snapshot(s);
  ASSERT_OK(sid);
  std::string sp = path_of(ObjectType::kSnapshot, hex(*sid));
  write_byte(sp, 4, 2);
  EXPECT_TRUE(Fails(repo->load_snapshot(*sid), Error::Code::kUnsupported, {"upgrade haven"}));

  // A key file of a newer version stops open with kUnsupported rather than "wrong password".
  std::string kp = path_of(ObjectType::kKey, repo->current_key_id());
  Bytes text = read_file(kp);
  auto j = nlohmann::json::parse(text.begin(), text.end());
  j["version"] = 2;
  std::string out = j.dump(2);
  write_file(kp, as_bytes(out));
  EXPECT_TRUE(Fails(try_open(), Error::Code::kUnsupported, {"upgrade haven"}));
}

// ---------------------------------------------------------------------------------------------
// Blobs

TEST_F(RepoTest, BlobsRoundTripAcrossPacksAndReopen) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  struct Saved {
    BlobType type;
    Id id;
    Bytes data;
  };
  std::vector<Saved> saved;
  auto save = [&](BlobType type, Bytes data) {
    auto id = session.save_blob(type, data);
    ASSERT_OK(id);
    EXPECT_EQ(*id, repo->blob_id(data));
    saved.push_back({type, *id, std::move(data)});
  };
  save(BlobType::kData, Bytes{});  // empty blob
  for (int i = 0; i < 40; i++) save(BlobType::kData, random_data(64 * 1024 + i, 100 + i));
  save(BlobType::kData, random_data(3u << 20, 7));  // larger than a pack
  save(BlobType::kData, compressible_data(300 * 1024));
  for (int i = 0; i < 5; i++) {
    Tree t;
    Node n;
    n.name = "file" + std::to_string(i);
    n.content.push_back(saved[static_cast<size_t>(i + 1)].id);
    t.nodes.push_back(n);
    save(BlobType::kTree, encode_tree(t));
  }
  save(BlobType::kTree, Bytes{});  // empty tree blob is a distinct (type, id) from the empty data blob

  // Blob IDs are keyed: not the plain BLAKE2b of the data, and identical data -> identical ID.
  EXPECT_EQ(repo->blob_id(saved[1].data), saved[1].id);
  for (const auto& s : saved) EXPECT_TRUE(session.has_blob(s.type, s.id));

  ASSERT_OK(session.flush());
  auto b = backend();
  auto packs = list_objects(*b, ObjectType::kData);
  EXPECT_GE(packs.size(), 3u) << "1 MiB packs: several should have been written";
  EXPECT_EQ(repo->index_blob_count(), saved.size());
  EXPECT_FALSE(list_names(*b, ObjectType::kIndex).empty());
  // No pack exceeds pack_size by more than its last blob.
  for (const auto& p : packs) EXPECT_LT(p.size, (1u << 20) + (3u << 20) + 4096);

  // Every pack's trailer agrees with the index files.
  auto records = read_indexes(*repo);
  EXPECT_EQ(records.size(), packs.size());
  size_t indexed = 0;
  for (const auto& rec : records) {
    indexed += rec.blobs.size();
    auto raw = b->load({ObjectType::kData, hex(rec.id)});
    ASSERT_OK(raw);
    auto trailer = read_pack_trailer(repo->master_key(), rec.id, *raw);
    ASSERT_OK(trailer);
    ASSERT_EQ(trailer->blobs.size(), rec.blobs.size());
    for (size_t i = 0; i < rec.blobs.size(); i++) {
      EXPECT_EQ(trailer->blobs[i].id, rec.blobs[i].id);
      EXPECT_EQ(trailer->blobs[i].type, rec.blobs[i].type);
      EXPECT_EQ(trailer->blobs[i].offset, rec.blobs[i].offset);
      EXPECT_EQ(trailer->blobs[i].length, rec.blobs[i].length);
      EXPECT_EQ(trailer->blobs[i].raw_length, rec.blobs[i].raw_length);
    }
  }
  EXPECT_EQ(indexed, saved.size());

  // A new session knows nothing until it loads the index.
  auto again = open_repo();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->index_blob_count(), 0u);
  EXPECT_TRUE(Fails(again->load_blob(saved[1].type, saved[1].id), Error::Code::kNotFound,
                    {"not in the index"}));
  ASSERT_OK(again->load_index());
  EXPECT_EQ(again->index_blob_count(), saved.size());
  for (const auto& s : saved) {
    EXPECT_EQ(again->blob_id(s.data), s.id);  // the ID key survived
    EXPECT_TRUE(again->has_blob(s.type, s.id));
    auto data = again->load_blob(s.type, s.id);
    ASSERT_OK(data);
    EXPECT_EQ(*data, s.data);
  }
  // The type is part of a blob's identity.
  EXPECT_FALSE(again->has_blob(BlobType::kTree, saved[1].id));
  EXPECT_TRUE(Fails(again->load_blob(BlobType::kTree, saved[1].id), Error::Code::kNotFound));
  EXPECT_TRUE(Fails(again->load_blob(BlobType::kData, random_id()), Error::Code::kNotFound));
}

TEST_F(RepoTest, CompressibleDataMakesSmallerPacks) {
  const Bytes text = compressible_data(2u << 20);
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  auto id = session.save_blob(BlobType::kData, text);
  ASSERT_OK(id);
  ASSERT_OK(session.flush());
  uint64_t packed = total_size(*backend(), ObjectType::kData);
  EXPECT_GT(packed, 0u);
  EXPECT_LT(packed, text.size() / 4) << "2 MiB of text should compress well";
  auto back = repo->load_blob(BlobType::kData, *id);
  ASSERT_OK(back);
  EXPECT_EQ(*back, text);

  // The same data with compression off is stored at full size (so the above was compression).
  TempDir other;
  auto ob = storage::open_backend(other.path());
  ASSERT_TRUE(ob.ok());
  InitOptions none = fast_options();
  none.compression = Compression::kNone;
  auto r2 = Repository::init(*ob, kPw, none);
  ASSERT_TRUE(r2.ok());
  Session r2_session(**r2);
  auto id2 = r2_session.save_blob(BlobType::kData, text);
  ASSERT_OK(id2);
  ASSERT_OK(r2_session.flush());
  EXPECT_GT(total_size(**ob, ObjectType::kData), text.size());
  auto back2 = (*r2)->load_blob(BlobType::kData, *id2);
  ASSERT_OK(back2);
  EXPECT_EQ(*back2, text);

  // Random data does not shrink and is stored raw (pack ~ data + overhead).
  TempDir third;
  auto tb = storage::open_backend(third.path());
  ASSERT_TRUE(tb.ok());
  auto r3 = Repository::init(*tb, kPw, fast_options());
  ASSERT_TRUE(r3.ok());
  Session r3_session(**r3);
  Bytes rnd = random_data(500 * 1024, 3);
  ASSERT_OK(r3_session.save_blob(BlobType::kData, rnd));
  ASSERT_OK(r3_session.flush());
  uint64_t rsize = total_size(**tb, ObjectType::kData);
  EXPECT_GT(rsize, rnd.size());
  EXPECT_LT(rsize, rnd.size() + 1024);
}

TEST_F(RepoTest, SetCompressionOverridesConfig) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  session.set_compression(Compression::kNone);
  const Bytes text = compressible_data(1u << 19);
  ASSERT_OK(session.save_blob(BlobType::kData, text));
  ASSERT_OK(session.flush());
  EXPECT_GT(total_size(*backend(), ObjectType::kData), text.size());
}

TEST_F(RepoTest, SaveBlobDeduplicates) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  auto b = backend();
  const Bytes data = random_data(100 * 1024, 42);
  auto id1 = session.save_blob(BlobType::kData, data);
  auto id2 = session.save_blob(BlobType::kData, data);  // still in the open pack
  ASSERT_OK(id1);
  ASSERT_OK(id2);
  EXPECT_EQ(*id1, *id2);
  ASSERT_OK(session.flush());
  EXPECT_EQ(repo->index_blob_count(), 1u);
  auto packs = list_objects(*b, ObjectType::kData);
  ASSERT_EQ(packs.size(), 1u);
  EXPECT_LT(packs[0].size, data.size() + data.size() / 2) << "stored twice?";
  auto recs = read_indexes(*repo);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].blobs.size(), 1u);

  // Saving it again after the flush (now found in the index) writes nothing new.
  auto id3 = session.save_blob(BlobType::kData, data);
  ASSERT_OK(id3);
  EXPECT_EQ(*id3, *id1);
  ASSERT_OK(session.flush());
  EXPECT_EQ(list_objects(*b, ObjectType::kData).size(), 1u);
  EXPECT_EQ(list_names(*b, ObjectType::kIndex).size(), 1u) << "an empty flush wrote an index";

  // Nor in another session that loaded the index.
  auto again = open_repo();
  ASSERT_TRUE(again);
  Session again_session(*again);
  ASSERT_OK(again->load_index());
  ASSERT_OK(again_session.save_blob(BlobType::kData, data));
  ASSERT_OK(again_session.save_blob_with_id(BlobType::kData, *id1, data));
  ASSERT_OK(again_session.flush());
  EXPECT_EQ(list_objects(*b, ObjectType::kData).size(), 1u);
  EXPECT_EQ(list_names(*b, ObjectType::kIndex).size(), 1u);
}

// KNOWN BUG (src/repo/repository.cc, save_blob_with_id / upload_pack / has_blob): in_flight_
// is keyed by blob ID only, without the blob type. Saving the same bytes as a data blob and
// then as a tree blob before the pack is uploaded skips the tree blob ("already in flight"),
// so it is never stored and load_blob(kTree, id) fails with kNotFound after the flush.
// Enable once in_flight_ holds (type, id) pairs.
TEST_F(RepoTest, SameBytesAsDataAndTreeBothStored) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  const Bytes data = random_data(1000, 5);
  auto d = session.save_blob(BlobType::kData, data);
  auto t = session.save_blob(BlobType::kTree, data);
  ASSERT_OK(d);
  ASSERT_OK(t);
  ASSERT_OK(session.flush());
  EXPECT_EQ(repo->index_blob_count(), 2u);
  auto back = repo->load_blob(BlobType::kTree, *t);
  ASSERT_OK(back);
  EXPECT_EQ(*back, data);
}

// After a flush the same bytes can be stored under the other type (the index is type-aware).
TEST_F(RepoTest, SameBytesAsDataAndTreeAcrossFlush) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  const Bytes data = random_data(1000, 6);
  auto d = session.save_blob(BlobType::kData, data);
  ASSERT_OK(d);
  ASSERT_OK(session.flush());
  auto t = session.save_blob(BlobType::kTree, data);
  ASSERT_OK(t);
  ASSERT_OK(session.flush());
  EXPECT_EQ(repo->index_blob_count(), 2u);
  auto back = repo->load_blob(BlobType::kTree, *t);
  ASSERT_OK(back);
  EXPECT_EQ(*back, data);
}

TEST_F(RepoTest, SaveSnapshotFlushesFirst) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  std::vector<std::pair<Id, Bytes>> blobs;
  for (int i = 0; i < 30; i++) {  // ~1.5 MiB: one pack is uploaded while saving
    Bytes d = random_data(50 * 1024, 1000 + i);
    auto id = session.save_blob(BlobType::kData, d);
    ASSERT_OK(id);
    blobs.emplace_back(*id, std::move(d));
  }
  Tree tree;
  Node n;
  n.name = "f";
  for (const auto& [id, d] : blobs) n.content.push_back(id);
  tree.nodes.push_back(n);
  auto tree_id = session.save_tree(tree);
  ASSERT_OK(tree_id);

  // Nothing is indexed on disk yet: another session finds no blob although a pack exists.
  // (Full packs are uploaded by background threads, so whether one is on disk yet is not
  // asserted here.)
  auto b = backend();
  EXPECT_TRUE(list_names(*b, ObjectType::kIndex).empty());
  {
    auto peek = open_repo();
    ASSERT_TRUE(peek);
    ASSERT_OK(peek->load_index());
    EXPECT_EQ(peek->index_blob_count(), 0u);
  }

  Snapshot s;
  s.time = now();
  s.tree = *tree_id;
  auto sid = session.save_snapshot(s);
  ASSERT_OK(sid);

  auto fresh = open_repo();
  ASSERT_TRUE(fresh);
  ASSERT_OK(fresh->load_index());
  EXPECT_EQ(fresh->index_blob_count(), blobs.size() + 1);
  auto snap = fresh->load_snapshot(*sid);
  ASSERT_OK(snap);
  auto t = fresh->load_tree(snap->tree);
  ASSERT_OK(t);
  ASSERT_EQ(t->nodes.size(), 1u);
  ASSERT_EQ(t->nodes[0].content.size(), blobs.size());
  for (size_t i = 0; i < blobs.size(); i++) {
    EXPECT_EQ(t->nodes[0].content[i].id, blobs[i].first);
    auto d = fresh->load_blob(BlobType::kData, blobs[i].first);
    ASSERT_OK(d);
    EXPECT_EQ(*d, blobs[i].second);
  }
}

TEST_F(RepoTest, ConcurrentSaveBlob) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 300;
  constexpr size_t kSize = 20 * 1024;
  // Every 5th blob of each thread comes from a pool of 40 shared by all threads.
  std::vector<Bytes> shared;
  for (int i = 0; i < 40; i++) shared.push_back(random_data(kSize, 500000 + i));
  std::vector<std::vector<Bytes>> work(kThreads);
  for (int t = 0; t < kThreads; t++) {
    for (int i = 0; i < kPerThread; i++) {
      if (i % 5 == 0) {
        work[t].push_back(shared[static_cast<size_t>((i / 5 + t * 7) % 40)]);
      } else {
        work[t].push_back(random_data(kSize, static_cast<uint64_t>(t) * 100000 + i));
      }
    }
  }
  std::vector<std::vector<Id>> ids(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (const auto& d : work[t]) {
        auto id = session.save_blob(BlobType::kData, d);
        if (!id.ok()) {
          errors[t] = describe(id.error());
          return;
        }
        ids[t].push_back(*id);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) ASSERT_EQ(e, "");
  ASSERT_OK(session.flush());

  std::map<Id, const Bytes*> expected;
  for (int t = 0; t < kThreads; t++) {
    ASSERT_EQ(ids[t].size(), work[t].size());
    for (size_t i = 0; i < ids[t].size(); i++) {
      EXPECT_EQ(ids[t][i], repo->blob_id(work[t][i]));
      expected[ids[t][i]] = &work[t][i];
    }
  }
  const size_t unique = static_cast<size_t>(kThreads) * (kPerThread - kPerThread / 5) + 40;
  ASSERT_EQ(expected.size(), unique);
  EXPECT_EQ(repo->index_blob_count(), unique);
  // Each blob was stored exactly once, in all the packs together.
  size_t stored = 0;
  for (const auto& rec : read_indexes(*repo)) stored += rec.blobs.size();
  EXPECT_EQ(stored, unique);
  EXPECT_GE(list_names(*backend(), ObjectType::kData).size(), 10u);

  auto again = open_repo();
  ASSERT_TRUE(again);
  ASSERT_OK(again->load_index());
  EXPECT_EQ(again->index_blob_count(), unique);
  // Load back concurrently too.
  std::vector<std::pair<Id, const Bytes*>> all(expected.begin(), expected.end());
  std::vector<int> bad(kThreads, 0);
  threads.clear();
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (size_t i = static_cast<size_t>(t); i < all.size(); i += kThreads) {
        auto d = again->load_blob(BlobType::kData, all[i].first);
        if (!d.ok() || *d != *all[i].second) bad[t]++;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; t++) EXPECT_EQ(bad[t], 0) << "thread " << t;
}

// ---------------------------------------------------------------------------------------------
// Snapshots

Snapshot full_snapshot(TimeNs time, const Id& tree) {
  Snapshot s;
  s.time = time;
  s.end_time = time + 123456789;
  s.tree = tree;
  s.paths = {"/home/user", "/etc", std::string("/odd\xff\xfe path")};
  s.hostname = "host.example";
  s.username = "alice";
  s.tags = {"daily", "tag with space", ""};
  s.strategy = "incremental";
  s.parent = random_id();
  s.stats = {{"files_new", 12}, {"bytes_read", 1ull << 40}, {"zero", 0}};
  s.program_version = "haven test-version";
  return s;
}

TEST_F(RepoTest, SnapshotRoundTripListAndResolve) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  EXPECT_TRUE(Fails(repo->resolve_snapshot("latest"), Error::Code::kNotFound, {"no snapshots"}));
  auto listed0 = repo->list_snapshots();
  ASSERT_OK(listed0);
  EXPECT_TRUE(listed0->empty());

  const TimeNs t0 = 1700000000123456789LL;
  // Saved out of time order: "latest" and list order follow time, not save order.
  Snapshot mid = full_snapshot(t0 + 1000, random_id());
  Snapshot newest = full_snapshot(t0 + 2000, random_id());
  newest.parent.reset();
  newest.tags.clear();
  newest.stats.clear();
  Snapshot oldest = full_snapshot(t0, random_id());
  oldest.program_version.clear();  // filled in by save_snapshot

  auto id_mid = session.save_snapshot(mid);
  auto id_new = session.save_snapshot(newest);
  auto id_old = session.save_snapshot(oldest);
  ASSERT_OK(id_mid);
  ASSERT_OK(id_new);
  ASSERT_OK(id_old);

  auto again = open_repo();
  ASSERT_TRUE(again);
  auto m = again->load_snapshot(*id_mid);
  ASSERT_OK(m);
  expect_snapshot_eq(*m, mid);
  auto n = again->load_snapshot(*id_new);
  ASSERT_OK(n);
  expect_snapshot_eq(*n, newest);
  EXPECT_FALSE(n->parent.has_value());
  auto o = again->load_snapshot(*id_old);
  ASSERT_OK(o);
  EXPECT_EQ(o->program_version, std::string("haven ") + HAVEN_VERSION);
  oldest.program_version = o->program_version;
  expect_snapshot_eq(*o, oldest);

  auto list = again->list_snapshots();
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].first, *id_old);
  EXPECT_EQ((*list)[1].first, *id_mid);
  EXPECT_EQ((*list)[2].first, *id_new);
  expect_snapshot_eq((*list)[1].second, mid);

  auto latest = again->resolve_snapshot("latest");
  ASSERT_OK(latest);
  EXPECT_EQ(*latest, *id_new);

  // Full ID and unique prefixes (odd and even length).
  for (size_t len : {64u, 8u, 7u}) {
    auto r = again->resolve_snapshot(hex(*id_mid).substr(0, len));
    ASSERT_OK(r);
    EXPECT_EQ(*r, *id_mid) << "prefix length " << len;
  }
  // Unknown prefix (flip the first hex digit of a full ID).
  std::string unknown = hex(*id_mid);
  unknown[0] = unknown[0] == '0' ? '1' : '0';
  for (const auto& [id, s] : *list) ASSERT_NE(hex(id), unknown);
  EXPECT_TRUE(Fails(again->resolve_snapshot(unknown), Error::Code::kNotFound, {unknown}));
  // Not hex, empty, too long.
  EXPECT_TRUE(Fails(again->resolve_snapshot("xyz"), Error::Code::kInvalidArgument, {"xyz"}));
  EXPECT_TRUE(Fails(again->resolve_snapshot(""), Error::Code::kInvalidArgument));
  EXPECT_TRUE(Fails(again->resolve_snapshot(hex(*id_mid) + "0"), Error::Code::kInvalidArgument));
  // Missing snapshot by ID.
  EXPECT_TRUE(Fails(again->load_snapshot(random_id()), Error::Code::kNotFound));
}

TEST_F(RepoTest, AmbiguousSnapshotPrefix) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  // Save snapshots until two IDs share their first hex digit (at most 17 by pigeonhole).
  std::map<char, Id> by_first;
  std::string prefix;
  for (int i = 0; i < 17 && prefix.empty(); i++) {
    Snapshot s;
    s.time = 1000 + i;
    auto id = session.save_snapshot(s);
    ASSERT_OK(id);
    char c = hex(*id)[0];
    if (by_first.count(c)) prefix = std::string(1, c);
    by_first[c] = *id;
  }
  ASSERT_FALSE(prefix.empty());
  EXPECT_TRUE(Fails(repo->resolve_snapshot(prefix), Error::Code::kInvalidArgument,
                    {"ambiguous"}));
  // A full ID is never ambiguous.
  auto full = repo->resolve_snapshot(hex(by_first[prefix[0]]));
  ASSERT_OK(full);
  EXPECT_EQ(*full, by_first[prefix[0]]);
}

// ---------------------------------------------------------------------------------------------
// Trees

TEST_F(RepoTest, TreeRoundTripEveryField) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  Tree t;
  const Node::Type types[] = {Node::Type::kFile,    Node::Type::kDir,      Node::Type::kSymlink,
                              Node::Type::kFifo,    Node::Type::kCharDev,  Node::Type::kBlockDev,
                              Node::Type::kSocket};
  int k = 0;
  for (Node::Type type : types) {
    Node n;
    n.name = std::string("n") + std::to_string(k) + "\xff\xfe\x80 \x01\xc3(";  // not UTF-8
    n.type = type;
    n.mode = 07755 - static_cast<uint32_t>(k);
    n.uid = 4294967294u - static_cast<uint32_t>(k);
    n.gid = 1000u + static_cast<uint32_t>(k);
    n.user = "user" + std::to_string(k);
    n.group = k % 2 ? "" : "grp";
    n.mtime = 1700000000123456789LL + k;
    n.atime = -86400LL * 1000000000 - k;  // before 1970
    n.ctime = 1;
    n.size = (1ull << 40) + static_cast<uint64_t>(k);
    n.inode = 0xfedcba9876543210ull - static_cast<uint64_t>(k);
    n.device = 0x803;
    n.links = 3;
    n.rdev = type == Node::Type::kCharDev || type == Node::Type::kBlockDev ? 0x10305 : 0;
    if (type == Node::Type::kSymlink) n.link_target = std::string("../t\xff\0x", 7);
    if (type == Node::Type::kFile) {
      for (int c = 0; c < 5; c++) n.content.push_back(random_id());
      n.xattrs = {{"user.bin", std::string("\0\x01\xff\x80zz", 6)},
                  {"system.posix_acl_access", std::string("\x02\0\0\0\x01\0\x06\0", 8)},
                  {"user.empty", ""}};
    }
    if (type == Node::Type::kDir) n.subtree = random_id();
    t.nodes.push_back(n);
    k++;
  }
  Node minimal;  // every optional field empty
  minimal.name = "zz";
  t.nodes.push_back(minimal);

  auto id = session.save_tree(t);
  ASSERT_OK(id);
  Tree empty;
  auto empty_id = session.save_tree(empty);
  ASSERT_OK(empty_id);
  ASSERT_OK(session.flush());

  auto again = open_repo();
  ASSERT_TRUE(again);
  ASSERT_OK(again->load_index());
  auto back = again->load_tree(*id);
  ASSERT_OK(back);
  ASSERT_EQ(back->nodes.size(), t.nodes.size());
  for (size_t i = 0; i < t.nodes.size(); i++) expect_node_eq(back->nodes[i], t.nodes[i]);
  EXPECT_FALSE(back->nodes.back().subtree.has_value());
  EXPECT_TRUE(back->nodes.back().content.empty());
  auto e = again->load_tree(*empty_id);
  ASSERT_OK(e);
  EXPECT_TRUE(e->nodes.empty());
  // A tree is a tree blob, not a data blob.
  EXPECT_TRUE(Fails(again->load_blob(BlobType::kData, *id), Error::Code::kNotFound));
}

// ---------------------------------------------------------------------------------------------
// Locks

TEST_F(RepoTest, SharedAndExclusiveLocks) {
  auto a = init_repo();
  ASSERT_TRUE(a);
  auto b = open_repo();
  auto c = open_repo();
  ASSERT_TRUE(b && c);
  auto a_session_owner = std::make_unique<Session>(*a);
  Session& a_session = *a_session_owner;
  Session b_session(*b), c_session(*c);
  auto be = backend();

  ASSERT_OK(a_session.lock(false));
  auto locks = list_names(*be, ObjectType::kLock);
  ASSERT_EQ(locks.size(), 1u);
  // The lock object is an encrypted lock naming this process.
  auto body = a->load_object(ObjectType::kLock, locks[0]);
  ASSERT_OK(body);
  auto l = decode_lock(*body, "lock");
  ASSERT_OK(l);
  EXPECT_EQ(l->pid, static_cast<int64_t>(getpid()));
  EXPECT_FALSE(l->exclusive);
  EXPECT_GT(l->refreshed, now() - 60LL * 1000000000);
  const std::string host = hostname();
  EXPECT_FALSE(host.empty());
  EXPECT_EQ(l->hostname, host);
  EXPECT_EQ(l->username, username());

  ASSERT_OK(b_session.lock(false));  // shared locks coexist
  EXPECT_EQ(list_names(*be, ObjectType::kLock).size(), 2u);

  const std::string pid = "PID " + std::to_string(getpid());
  // A session holds at most one lock: a second lock() is refused and leaks nothing.
  EXPECT_TRUE(Fails(b_session.lock(true), Error::Code::kInternal, {"already holds a lock"}));
  EXPECT_TRUE(Fails(c_session.lock(true), Error::Code::kLocked, {pid, host}));
  EXPECT_EQ(list_names(*be, ObjectType::kLock).size(), 2u) << "a refused lock left an object";

  ASSERT_OK(a_session.unlock());
  ASSERT_OK(b_session.unlock());
  EXPECT_TRUE(list_names(*be, ObjectType::kLock).empty());
  ASSERT_OK(c_session.lock(true));
  EXPECT_EQ(list_names(*be, ObjectType::kLock).size(), 1u);
  // Nobody else gets any lock while the exclusive one is held.
  EXPECT_TRUE(Fails(a_session.lock(false), Error::Code::kLocked, {"exclusively", pid}));
  EXPECT_TRUE(Fails(b_session.lock(true), Error::Code::kLocked, {"exclusively"}));
  ASSERT_OK(c_session.unlock());
  ASSERT_OK(c_session.unlock());  // unlocking twice is harmless
  ASSERT_OK(a_session.lock(false));
  // Destroying the session releases its lock.
  a_session_owner.reset();
  EXPECT_TRUE(list_names(*be, ObjectType::kLock).empty());
}

TEST_F(RepoTest, LockOfDeadProcessOnThisHostIsStale) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  auto be = backend();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Take an exclusive lock and die without releasing it.
    Status st = session.lock(true);
    _exit(st.ok() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);  // reaped: kill(pid, 0) now fails with ESRCH
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "child could not lock";
  auto locks = list_names(*be, ObjectType::kLock);
  ASSERT_EQ(locks.size(), 1u) << "the child's lock object should still be there";
  auto body = repo->load_object(ObjectType::kLock, locks[0]);
  ASSERT_OK(body);
  auto l = decode_lock(*body, "lock");
  ASSERT_OK(l);
  EXPECT_EQ(l->pid, static_cast<int64_t>(child));
  EXPECT_TRUE(l->exclusive);

  auto other = open_repo();
  ASSERT_TRUE(other);
  Session other_session(*other);
  EXPECT_OK(other_session.lock(true));
  EXPECT_OK(other_session.unlock());
  EXPECT_OK(session.lock(false));
}

TEST_F(RepoTest, LockFromOtherHostStaleOnlyWhenNotRefreshed) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Lock l;
  l.hostname = "some-other-host.invalid";
  l.username = "bob";
  l.pid = 999999999;  // no such process here, but it is another host's PID
  l.exclusive = true;
  l.time = l.refreshed = now() - 31LL * 60 * 1000000000;  // not refreshed for 31 minutes
  auto old_id = repo->save_object(ObjectType::kLock, encode_lock(l));
  ASSERT_OK(old_id);
  auto other = open_repo();
  ASSERT_TRUE(other);
  Session other_session(*other);
  ASSERT_OK(other_session.lock(true));
  ASSERT_OK(other_session.unlock());

  l.time = l.refreshed = now() - 60LL * 1000000000;  // refreshed a minute ago
  auto fresh_id = repo->save_object(ObjectType::kLock, encode_lock(l));
  ASSERT_OK(fresh_id);
  EXPECT_TRUE(Fails(other_session.lock(false), Error::Code::kLocked,
                    {"some-other-host.invalid", "PID 999999999", "bob"}));
}

// ---------------------------------------------------------------------------------------------
// Keys

TEST_F(RepoTest, ListKeysShowsCreationInfo) {
  TimeNs before = now();
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  auto second = repo->add_key("second password", crypto::KdfParams{2, 9u << 20});
  ASSERT_OK(second);
  auto keys = repo->list_keys();
  ASSERT_OK(keys);
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_LT((*keys)[0].id, (*keys)[1].id);  // sorted
  const std::string host = hostname();
  const std::string expected_user = username();
  EXPECT_FALSE(expected_user.empty());
  int current = 0;
  for (const auto& k : *keys) {
    SCOPED_TRACE(k.id);
    EXPECT_EQ(k.problem, "");
    EXPECT_EQ(k.id.size(), 64u);
    auto t = parse_time(k.info.created);
    ASSERT_TRUE(t.has_value()) << k.info.created;
    EXPECT_GE(*t, before - 1000000000LL);
    EXPECT_LE(*t, now() + 1000000000LL);
    EXPECT_EQ(k.info.hostname, host);
    EXPECT_EQ(k.info.username, expected_user);
    if (k.id == *second) {
      EXPECT_FALSE(k.current);
      EXPECT_EQ(k.info.kdf.iterations, 2u);
      EXPECT_EQ(k.info.kdf.memory, 9u << 20);
    } else {
      EXPECT_EQ(k.id, repo->current_key_id());
      EXPECT_TRUE(k.current);
      EXPECT_EQ(k.info.kdf.iterations, 1u);
      EXPECT_EQ(k.info.kdf.memory, 8u << 20);
    }
    current += k.current;
  }
  EXPECT_EQ(current, 1);
}

TEST_F(RepoTest, AddChangeAndRemoveKeys) {
  auto r1 = init_repo("pw1");
  ASSERT_TRUE(r1);
  Session r1_session(*r1);
  const std::string k1 = r1->current_key_id();
  const Bytes probe_data = random_data(5000, 77);
  auto blob = r1_session.save_blob(BlobType::kData, probe_data);
  ASSERT_OK(blob);
  ASSERT_OK(r1_session.flush());

  // Bad new keys.
  EXPECT_TRUE(Fails(r1->add_key("", fast_kdf()), Error::Code::kInvalidArgument));
  EXPECT_TRUE(Fails(r1->add_key("x", crypto::KdfParams{0, 8u << 20}), Error::Code::kInvalidArgument));

  auto k2 = r1->add_key("pw2", fast_kdf());
  ASSERT_OK(k2);
  EXPECT_NE(*k2, k1);
  EXPECT_EQ(r1->current_key_id(), k1);

  // Both passwords open the same repository with the same master key.
  auto o1 = open_repo("pw1");
  auto o2 = open_repo("pw2");
  ASSERT_TRUE(o1 && o2);
  EXPECT_EQ(o1->current_key_id(), k1);
  EXPECT_EQ(o2->current_key_id(), *k2);
  EXPECT_EQ(o2->config().id, r1->config().id);
  EXPECT_EQ(o2->blob_id(probe_data), *blob);
  ASSERT_OK(o2->load_index());
  auto back = o2->load_blob(BlobType::kData, *blob);
  ASSERT_OK(back);
  EXPECT_EQ(*back, probe_data);

  // Prefix errors.
  EXPECT_TRUE(Fails(o2->remove_key(""), Error::Code::kNotFound));
  std::string unknown;
  for (char c : std::string("0123456789abcdef")) {
    if (c != k1[0] && c != (*k2)[0]) {
      unknown = std::string(1, c) + "0";
      break;
    }
  }
  EXPECT_TRUE(Fails(o2->remove_key(unknown), Error::Code::kNotFound, {unknown}));
  {
    // A third key file whose name shares a 2-character prefix with k2.
    std::string twin = k2->substr(0, 2) + std::string(62, 'a');
    if (twin == *k2) twin = k2->substr(0, 2) + std::string(62, 'b');
    Bytes file = read_file(path_of(ObjectType::kKey, *k2));
    ASSERT_OK(backend()->save({ObjectType::kKey, twin}, file));
    EXPECT_TRUE(Fails(o1->remove_key(k2->substr(0, 2)), Error::Code::kInvalidArgument,
                      {"ambiguous"}));
    ASSERT_OK(o1->remove_key(twin));
    EXPECT_EQ(list_names(*backend(), ObjectType::kKey).size(), 2u);
  }

  // The key in use cannot be removed; another one can, and then its password fails.
  EXPECT_TRUE(Fails(o2->remove_key(k2->substr(0, 10)), Error::Code::kInvalidArgument, {"in use"}));
  ASSERT_OK(o2->remove_key(k1.substr(0, 8)));
  EXPECT_EQ(list_names(*backend(), ObjectType::kKey), std::vector<std::string>{*k2});
  EXPECT_TRUE(Fails(try_open("pw1"), Error::Code::kWrongPassword));
  EXPECT_TRUE(open_repo("pw2"));
  // The only key cannot be removed, even by a session that holds another (now gone) key.
  EXPECT_TRUE(Fails(o2->remove_key(*k2), Error::Code::kInvalidArgument, {"only key"}));
  EXPECT_TRUE(Fails(o1->remove_key(*k2), Error::Code::kInvalidArgument, {"only key"}));
  EXPECT_EQ(list_names(*backend(), ObjectType::kKey).size(), 1u);

  // change_password: new key in, old key out, the session now uses the new key.
  auto k3 = o2->change_password("pw3", fast_kdf());
  ASSERT_OK(k3);
  EXPECT_EQ(o2->current_key_id(), *k3);
  EXPECT_EQ(list_names(*backend(), ObjectType::kKey), std::vector<std::string>{*k3});
  EXPECT_TRUE(Fails(try_open("pw2"), Error::Code::kWrongPassword));
  auto o3 = open_repo("pw3");
  ASSERT_TRUE(o3);
  EXPECT_EQ(o3->current_key_id(), *k3);
  ASSERT_OK(o3->load_index());
  auto back3 = o3->load_blob(BlobType::kData, *blob);
  ASSERT_OK(back3);
  EXPECT_EQ(*back3, probe_data);
  auto keys = o2->list_keys();
  ASSERT_OK(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_TRUE((*keys)[0].current);
}

// ---------------------------------------------------------------------------------------------
// Tampering: every kind of object is authenticated

TEST_F(RepoTest, TamperedConfigDetected) {
  ASSERT_TRUE(init_repo());
  std::string cfg = path_of(ObjectType::kConfig, "config");
  const Bytes original = read_file(cfg);
  ASSERT_GT(original.size(), kPrefixSize + 16);
  // Salt, first ciphertext byte, middle, last byte of the tag, key generation, magic, kind.
  const uint64_t offsets[] = {0, 5, 8, 12, 30, kPrefixSize, original.size() / 2 + 10,
                              original.size() - 1};
  for (uint64_t off : offsets) {
    SCOPED_TRACE("offset " + std::to_string(off));
    flip_byte(cfg, off);
    EXPECT_TRUE(Fails(try_open(), Error::Code::kCorrupt, {"config"}));
    write_file(cfg, original);
  }
  // The config claiming to be another kind of object.
  write_byte(cfg, 5, static_cast<uint8_t>(ObjectKind::kSnapshot));
  EXPECT_TRUE(Fails(try_open(), Error::Code::kCorrupt, {"config", "kind"}));
  write_file(cfg, original);
  // Truncated below the header, and by one byte.
  write_file(cfg, ByteView(original).first(20));
  EXPECT_TRUE(Fails(try_open(), Error::Code::kCorrupt, {"config"}));
  write_file(cfg, ByteView(original).first(original.size() - 1));
  EXPECT_TRUE(Fails(try_open(), Error::Code::kCorrupt, {"config"}));
  write_file(cfg, original);
  EXPECT_TRUE(open_repo());
}

// KNOWN BUG (src/repo/format.cc, parse_header): the reserved u16 of the header (bytes 6-7) is
// neither checked to be zero nor authenticated: the AAD is rebuilt from the parsed Header,
// whose encode() always writes zeros there. So a modified reserved field goes unnoticed.
// Enable once parse_header rejects non-zero reserved bytes (or the AAD uses the raw header).
TEST_F(RepoTest, TamperedReservedHeaderBytesDetected) {
  ASSERT_TRUE(init_repo());
  std::string cfg = path_of(ObjectType::kConfig, "config");
  flip_byte(cfg, 6);
  EXPECT_TRUE(Fails(try_open(), Error::Code::kCorrupt, {"config"}));
}

// Rewrites a key file's JSON through `edit`, optionally recomputing its checksum the way
// repo/keys.cc does (SHA-256 of the compact dump without the "checksum" field).
void edit_key_file(const std::string& path, const std::function<void(nlohmann::json&)>& edit,
                   bool fix_checksum) {
  Bytes text = read_file(path);
  auto j = nlohmann::json::parse(text.begin(), text.end());
  edit(j);
  if (fix_checksum) {
    nlohmann::json c = j;
    c.erase("checksum");
    auto h = crypto::sha256(as_bytes(c.dump()));
    j["checksum"] = to_hex(ByteView(h.data(), h.size()));
  }
  std::string out = j.dump(2) + "\n";
  write_file(path, as_bytes(out));
}

// Changes one hex digit of a string field.
void bump_hex_digit(nlohmann::json& field, size_t pos) {
  std::string s = field.get<std::string>();
  ASSERT_LT(pos, s.size());
  s[pos] = s[pos] == '0' ? '1' : '0';
  field = s;
}

TEST_F(RepoTest, TamperedKeyFileData) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  const std::string k1 = repo->current_key_id();
  const std::string kp = path_of(ObjectType::kKey, k1);
  const Bytes original = read_file(kp);

  // One byte of the "data" hex changed in place: the checksum catches it.
  std::string text = to_string(original);
  size_t pos = text.find("\"data\": \"");
  ASSERT_NE(pos, std::string::npos);
  pos += 9 + 10;
  write_byte(kp, pos, text[pos] == '0' ? '1' : '0');
  auto info = read_key_file_info(read_file(kp), "key " + k1);
  EXPECT_TRUE(Fails(info, Error::Code::kCorrupt, {"checksum", k1}));
  // The only key file is damaged: that is what the error says, not "wrong password".
  auto r = try_open();
  ASSERT_TRUE(Fails(r, Error::Code::kCorrupt, {"key " + k1 + " is damaged", "checksum"}));

  // The same change with the checksum recomputed: AES-GCM catches it.
  write_file(kp, original);
  edit_key_file(kp, [](nlohmann::json& j) { bump_hex_digit(j["data"], 10); }, true);
  EXPECT_OK(read_key_file_info(read_file(kp), "key"));
  EXPECT_TRUE(Fails(open_key_file(read_file(kp), kPw, "key"), Error::Code::kWrongPassword));
  EXPECT_TRUE(Fails(try_open(), Error::Code::kWrongPassword));
  // Nonce, KDF salt and KDF parameters are bound too.
  for (const char* field : {"nonce", "salt", "iterations"}) {
    SCOPED_TRACE(field);
    write_file(kp, original);
    edit_key_file(kp, [&](nlohmann::json& j) {
      if (std::string(field) == "nonce") bump_hex_digit(j["nonce"], 3);
      if (std::string(field) == "salt") bump_hex_digit(j["kdf"]["salt"], 3);
      if (std::string(field) == "iterations") j["kdf"]["iterations"] = 2;
    }, true);
    EXPECT_TRUE(Fails(try_open(), Error::Code::kWrongPassword));
  }

  // With a second key, the repository still opens with the other key's password.
  write_file(kp, original);
  ASSERT_OK(repo->add_key("second", fast_kdf()));
  write_byte(kp, pos, text[pos] == '0' ? '1' : '0');
  auto o = open_repo("second");
  ASSERT_TRUE(o);
  EXPECT_NE(o->current_key_id(), k1);
  EXPECT_TRUE(Fails(try_open(), Error::Code::kWrongPassword));
  auto keys = o->list_keys();
  ASSERT_OK(keys);
  ASSERT_EQ(keys->size(), 2u);
  for (const auto& k : *keys) {
    if (k.id == k1) {
      EXPECT_NE(k.problem.find("checksum"), std::string::npos) << k.problem;
    } else {
      EXPECT_EQ(k.problem, "");
    }
  }
}

TEST_F(RepoTest, TamperedKeyFileCreatedField) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  const std::string k1 = repo->current_key_id();
  auto k2 = repo->add_key("second", fast_kdf());
  ASSERT_OK(k2);
  const std::string kp2 = path_of(ObjectType::kKey, *k2);
  std::string text = to_string(read_file(kp2));
  size_t pos = text.find("\"created\": \"");
  ASSERT_NE(pos, std::string::npos);
  pos += 12;  // first digit of the year
  write_byte(kp2, pos, text[pos] == '2' ? '3' : '2');

  auto keys = repo->list_keys();
  ASSERT_OK(keys);
  ASSERT_EQ(keys->size(), 2u);
  for (const auto& k : *keys) {
    if (k.id == *k2) {
      EXPECT_NE(k.problem.find("checksum"), std::string::npos) << k.problem;
      EXPECT_NE(k.problem.find(*k2), std::string::npos) << k.problem;
    } else {
      EXPECT_EQ(k.id, k1);
      EXPECT_EQ(k.problem, "");
      EXPECT_TRUE(k.current);
    }
  }
  // Its password no longer opens (gracefully); the other key is unaffected.
  EXPECT_TRUE(Fails(try_open("second"), Error::Code::kWrongPassword));
  EXPECT_TRUE(open_repo());
  // Garbage instead of JSON is reported as damaged, not as a crash.
  write_file(kp2, as_bytes("this is not json"));
  auto keys2 = repo->list_keys();
  ASSERT_OK(keys2);
  for (const auto& k : *keys2) {
    if (k.id == *k2) {
      EXPECT_NE(k.problem.find("damaged"), std::string::npos) << k.problem;
    }
  }
  EXPECT_TRUE(open_repo());
}

// Issue 10: a key file of another repository that opens with the same password. Sorted first,
// it used to lock every session out with "config: authentication failed" (the config intact);
// sorted last it was never noticed. Now it is skipped, and list_keys() (with every key tried)
// names it as a key of another repository.
TEST_F(RepoTest, KeyFileOfAnotherRepositoryIsSkippedAndNamed) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  const std::string own = repo->current_key_id();
  Snapshot snap;
  snap.time = 1;
  ASSERT_OK(Session(*repo).save_snapshot(snap));
  repo.reset();
  TempDir other_dir;
  auto other = Repository::init(*storage::open_backend(other_dir.path()), kPw, fast_options());
  ASSERT_OK(other);
  const Bytes foreign_file =
      read_file(storage::LocalBackend(other_dir.path()).path_of({ObjectType::kKey, (*other)->current_key_id()}));
  const Bytes own_file = read_file(path_of(ObjectType::kKey, own));

  for (const std::string& name : {std::string(64, '0'), std::string(64, 'f')}) {
    SCOPED_TRACE("foreign key named " + name.substr(0, 4) + "...");
    write_file(path_of(ObjectType::kKey, name), foreign_file);
    auto r = try_open();
    ASSERT_OK(r);
    EXPECT_EQ((*r)->current_key_id(), own);
    // With every key tried, the foreign one is named as such, wherever it sorts.
    auto all = Repository::open(backend(), kPw, OpenOptions{.try_all_keys = true});
    ASSERT_OK(all);
    EXPECT_EQ((*all)->current_key_id(), own);
    auto keys = (*all)->list_keys();
    ASSERT_OK(keys);
    ASSERT_EQ(keys->size(), 2u);
    for (const auto& k : *keys) {
      if (k.id == name) {
        EXPECT_TRUE(k.foreign);
        EXPECT_NE(k.problem.find("key " + name + " does not belong to this repository"), std::string::npos)
            << k.problem;
        EXPECT_EQ(k.problem.find("config: authentication failed"), std::string::npos) << k.problem;
      } else {
        EXPECT_FALSE(k.foreign);
        EXPECT_EQ(k.problem, "");
      }
    }
    ASSERT_EQ(std::remove(path_of(ObjectType::kKey, name).c_str()), 0);
  }

  // Only the foreign key left: the password opens no key of this repository, and the error says
  // which key file it does open, not that the config is damaged.
  write_file(path_of(ObjectType::kKey, std::string(64, '0')), foreign_file);
  ASSERT_EQ(std::remove(path_of(ObjectType::kKey, own).c_str()), 0);
  auto lone = try_open();
  EXPECT_TRUE(Fails(lone, Error::Code::kWrongPassword,
                    {"no key of this repository opens with this password", "key " + std::string(64, '0'),
                     "belongs to another repository"}));
  EXPECT_EQ(lone.error().message().find("config"), std::string::npos) << lone.error().message();
  // A wrong password still says nothing about the key files.
  auto wrong = try_open("not the password");
  EXPECT_TRUE(Fails(wrong, Error::Code::kWrongPassword));
  EXPECT_EQ(wrong.error().message(), "wrong password or no key for this repository");

  // A config that really is damaged is still reported as the config's damage, even beside a
  // foreign key that sorts first: the repository's own key authenticates its snapshot.
  write_file(path_of(ObjectType::kKey, own), own_file);
  const std::string cfg = path_of(ObjectType::kConfig, "config");
  const Bytes config = read_file(cfg);
  flip_byte(cfg, config.size() - 1);
  EXPECT_TRUE(Fails(try_open(), Error::Code::kCorrupt, {"config: authentication failed", own}));
  write_file(cfg, config);
  EXPECT_TRUE(open_repo());
}

// Issue 10: a damaged key file is named with its damage instead of "wrong password", and KDF
// parameters out of bounds are refused before Argon2id runs with them.
TEST_F(RepoTest, DamagedKeyFilesAreNamedNotCalledAWrongPassword) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  const std::string k1 = repo->current_key_id();
  const std::string kp = path_of(ObjectType::kKey, k1);
  const Bytes original = read_file(kp);
  struct Case {
    const char* name;
    std::function<void()> damage;
    std::vector<std::string> says;
  };
  auto edit = [&](std::function<void(nlohmann::json&)> f) {
    return [&, f] {
      write_file(kp, original);
      edit_key_file(kp, f, true);
    };
  };
  const std::vector<Case> cases = {
      {"not JSON", [&] { write_file(kp, as_bytes(std::string("{\"version\": 1, \"kdf\": "))); },
       {"is damaged: not valid JSON"}},
      {"not an object", [&] { write_file(kp, as_bytes(std::string("[1, 2]"))); }, {"not a JSON object"}},
      {"memory of a terabyte", edit([](nlohmann::json& j) { j["kdf"]["memory"] = 1ull << 40; }),
       {"KDF parameters are out of bounds", "memory 1099511627776 bytes", "no password is tried"}},
      {"zero iterations", edit([](nlohmann::json& j) { j["kdf"]["iterations"] = 0; }),
       {"KDF parameters are out of bounds", "iterations 0", "between 1 and 64"}},
      {"negative memory", edit([](nlohmann::json& j) { j["kdf"]["memory"] = -1; }),
       {"field \"kdf.memory\" is missing or not a non-negative integer"}},
      {"memory as a float", edit([](nlohmann::json& j) { j["kdf"]["memory"] = 1e30; }),
       {"field \"kdf.memory\""}},
      {"no nonce", edit([](nlohmann::json& j) { j.erase("nonce"); }), {"field \"nonce\" is missing"}},
      {"short salt", edit([](nlohmann::json& j) { j["kdf"]["salt"] = "abcd"; }), {"kdf.salt is not 16 bytes"}},
      {"checksum", [&] {
         write_file(kp, original);
         edit_key_file(kp, [](nlohmann::json& j) { j["hostname"] = "elsewhere"; }, false);
       }, {"checksum mismatch"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    c.damage();
    auto started = std::chrono::steady_clock::now();
    // The only key is unreadable: no password could open the repository, and the error says
    // which key file and what is wrong with it (not "wrong password").
    auto r = try_open();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().code(), Error::Code::kWrongPassword) << r.error().message();
    EXPECT_EQ(r.error().code(), Error::Code::kCorrupt) << r.error().message();
    EXPECT_NE(r.error().message().find("key " + k1 + " is damaged"), std::string::npos) << r.error().message();
    for (const auto& part : c.says) {
      EXPECT_NE(r.error().message().find(part), std::string::npos) << r.error().message();
    }
    EXPECT_EQ(r.error().message().find("wrong password"), std::string::npos) << r.error().message();
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
    auto info = read_key_file_info(read_file(kp), "key " + k1);
    ASSERT_FALSE(info.ok());
    EXPECT_EQ(info.error().message(), r.error().message().substr(r.error().message().find("key " + k1),
                                                                  info.error().message().size()));
  }

  // With a second key: the damaged one does not stop the other from opening, list_keys names
  // it, and a password that opens neither says both things.
  write_file(kp, original);
  auto k2 = repo->add_key("second", fast_kdf());
  ASSERT_OK(k2);
  edit_key_file(kp, [](nlohmann::json& j) { j["kdf"]["memory"] = 1ull << 40; }, true);
  auto o = open_repo("second");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->current_key_id(), *k2);
  auto keys = o->list_keys();
  ASSERT_OK(keys);
  ASSERT_EQ(keys->size(), 2u);
  for (const auto& k : *keys) {
    if (k.id == k1) {
      EXPECT_NE(k.problem.find("KDF parameters are out of bounds"), std::string::npos) << k.problem;
    } else {
      EXPECT_EQ(k.problem, "");
    }
  }
  auto both = try_open("neither");
  EXPECT_TRUE(Fails(both, Error::Code::kWrongPassword,
                    {"wrong password or no key for this repository",
                     "1 key file(s) could not be read: key " + k1 + " is damaged"}));
  EXPECT_EQ(both.error().message().find(*k2), std::string::npos)
      << "a key that only failed on the password is not named: " << both.error().message();
}

// Index files are fetched ahead of the one being decoded as far as the backend's loads_ahead()
// says: one on a local disk (more only held memory), four on object storage (hiding round
// trips), at most two under a memory limit; every file's blobs are in the index either way.
TEST_F(RepoTest, IndexFilesAreFetchedAsFarAheadAsTheBackendSays) {
  std::vector<Id> blob_ids;
  {
    auto repo = init_repo();
    ASSERT_NE(repo, nullptr);
    for (int f = 0; f < 8; f++) {
      PackRecord p;
      p.id = random_id();
      p.blobs = {{BlobType::kData, random_id(), 0, 100, 0}};
      blob_ids.push_back(p.blobs[0].id);
      ASSERT_OK(repo->save_index_file({p}));
    }
  }
  struct Case {
    size_t ahead;
    bool limited;
    size_t expected;
  };
  for (Case c : {Case{0, false, 1}, Case{4, false, 4}, Case{4, true, 2}}) {
    SCOPED_TRACE("loads_ahead " + std::to_string(c.ahead) + (c.limited ? ", memory limit" : ""));
    auto counter = std::make_shared<testing::SlowLoads>(backend(), ObjectType::kIndex, c.ahead);
    auto repo = Repository::open(counter, kPw);
    ASSERT_OK(repo);
    if (c.limited) (*repo)->set_memory_budget(MemoryBudget{MemoryBudget::kMinimum, 0});
    ASSERT_OK((*repo)->load_index());
    EXPECT_EQ(counter->take_most_in_flight(), c.expected);
    for (const Id& id : blob_ids) EXPECT_TRUE((*repo)->has_blob(BlobType::kData, id));
  }
}

// Snapshot objects too are fetched ahead (listing every snapshot costs a round trip each on
// object storage), four times as far as index files (a snapshot is a few KB): the list comes
// out oldest first either way, and a damaged one is set aside or fails the call as before.
TEST_F(RepoTest, SnapshotsAreFetchedAsFarAheadAsTheBackendSays) {
  std::vector<Id> ids;
  {
    auto repo = init_repo();
    ASSERT_NE(repo, nullptr);
    Session session(*repo);
    for (int i = 0; i < 20; i++) {
      Snapshot s;
      s.time = 5000 - i * 10;  // saved newest first
      s.paths = {"/p" + std::to_string(i)};
      auto id = session.save_snapshot(s);
      ASSERT_OK(id);
      ids.push_back(*id);
    }
  }
  flip_byte(path_of(ObjectType::kSnapshot, hex(ids[3])), 40);
  for (size_t ahead : {size_t{0}, size_t{4}}) {
    SCOPED_TRACE("loads_ahead " + std::to_string(ahead));
    auto counter = std::make_shared<testing::SlowLoads>(backend(), ObjectType::kSnapshot, ahead);
    auto repo = Repository::open(counter, kPw);
    ASSERT_OK(repo);
    std::vector<Error> damaged;
    auto list = (*repo)->list_snapshots(&damaged);
    ASSERT_OK(list);
    EXPECT_EQ(counter->take_most_in_flight(), ahead == 0 ? 1u : 16u);
    ASSERT_EQ(list->size(), 19u);
    ASSERT_EQ(damaged.size(), 1u);
    EXPECT_NE(damaged[0].message().find(hex(ids[3])), std::string::npos) << damaged[0].message();
    for (size_t k = 0; k < list->size(); k++) {
      size_t i = 19 - k - (19 - k <= 3 ? 1 : 0);  // oldest (saved last) first, the damaged one left out
      EXPECT_EQ((*list)[k].first, ids[i]) << "position " << k;
      EXPECT_EQ((*list)[k].second.paths, std::vector<std::string>{"/p" + std::to_string(i)});
    }
    EXPECT_TRUE(Fails((*repo)->list_snapshots(), Error::Code::kCorrupt, {hex(ids[3])}));
  }
}

// Snapshot objects reach for_each_snapshot's callback in a fixed order on every backend: names
// that are not snapshot IDs first, unread, then the others in name order; `listed` learns the
// count once, before the first. A name that is not an ID is never fetched.
class SnapshotLoads : public storage::BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  Result<Bytes> load(const ObjectName& n, uint64_t off, uint64_t len) override {
    if (n.type == ObjectType::kSnapshot) {
      std::lock_guard<std::mutex> lk(mu);
      loaded.push_back(n.name);
    }
    return BackendWrapper::load(n, off, len);
  }
  std::mutex mu;
  std::vector<std::string> loaded;
};

TEST_F(RepoTest, ForEachSnapshotHandsOverStrayNamesFirstThenIdsInNameOrder) {
  std::vector<std::string> ids;
  {
    auto repo = init_repo();
    ASSERT_NE(repo, nullptr);
    Session session(*repo);
    for (int i = 0; i < 5; i++) {
      Snapshot s;
      s.time = 1000 + i;
      s.paths = {"/p" + std::to_string(i)};
      auto id = session.save_snapshot(s);
      ASSERT_OK(id);
      ids.push_back(hex(*id));
    }
  }
  {  // a stray file an operator left among the snapshots
    std::ofstream f(path_of(ObjectType::kSnapshot, "notes.txt"));
    f << "not a snapshot";
  }
  auto loads = std::make_shared<SnapshotLoads>(backend());
  auto repo = Repository::open(loads, kPw);
  ASSERT_OK(repo);
  std::vector<std::string> seen;
  size_t listed = 0, calls_before_listed = 0;
  bool listed_twice = false;
  ASSERT_OK((*repo)->for_each_snapshot(
      [&](const std::string& name, std::optional<Id> id, Result<Snapshot>& s) -> Status {
        if (listed == 0) calls_before_listed++;
        seen.push_back(name);
        if (name == "notes.txt") {
          EXPECT_FALSE(id.has_value());
          EXPECT_TRUE(Fails(s, Error::Code::kCorrupt, {"notes.txt", "not a snapshot ID"}));
        } else {
          EXPECT_TRUE(id.has_value() && hex(*id) == name) << name;
          EXPECT_OK(s);
          if (s.ok()) {
            const size_t i = std::find(ids.begin(), ids.end(), name) - ids.begin();
            EXPECT_EQ(s->paths, std::vector<std::string>{"/p" + std::to_string(i)}) << name;
          }
        }
        return ok_status();
      },
      [&](size_t n) {
        listed_twice = listed != 0;
        listed = n;
      }));
  EXPECT_EQ(listed, 6u);
  EXPECT_FALSE(listed_twice);
  EXPECT_EQ(calls_before_listed, 0u);
  std::vector<std::string> want = ids;
  std::sort(want.begin(), want.end());
  want.insert(want.begin(), "notes.txt");
  EXPECT_EQ(seen, want);
  std::vector<std::string> fetched = loads->loaded;
  std::sort(fetched.begin(), fetched.end());
  EXPECT_EQ(fetched, std::vector<std::string>(want.begin() + 1, want.end()));
}

TEST_F(RepoTest, TamperedIndexDetected) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  ASSERT_OK(session.save_blob(BlobType::kData, random_data(1000, 1)));
  ASSERT_OK(session.flush());
  auto names = list_names(*backend(), ObjectType::kIndex);
  ASSERT_EQ(names.size(), 1u);
  std::string ip = path_of(ObjectType::kIndex, names[0]);
  const Bytes original = read_file(ip);
  for (uint64_t off : {uint64_t{20}, uint64_t{kPrefixSize + 1}, uint64_t{original.size() - 1}}) {
    SCOPED_TRACE("offset " + std::to_string(off));
    flip_byte(ip, off);
    auto fresh = open_repo();
    ASSERT_TRUE(fresh);
    EXPECT_TRUE(Fails(fresh->load_index(), Error::Code::kCorrupt, {"index " + names[0]}));
    write_file(ip, original);
  }
  // An index file stored under another index's name is rejected too.
  std::string other = names[0];
  other[63] = other[63] == '0' ? '1' : '0';
  fs::rename(ip, path_of(ObjectType::kIndex, other));
  auto fresh = open_repo();
  ASSERT_TRUE(fresh);
  EXPECT_TRUE(Fails(fresh->load_index(), Error::Code::kCorrupt, {"index " + other, "wrong name"}));
}

TEST_F(RepoTest, TamperedSnapshotDetected) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  auto id = session.save_snapshot(full_snapshot(now(), random_id()));
  ASSERT_OK(id);
  std::string sp = path_of(ObjectType::kSnapshot, hex(*id));
  Bytes original = read_file(sp);
  flip_byte(sp, original.size() / 2);
  EXPECT_TRUE(Fails(repo->load_snapshot(*id), Error::Code::kCorrupt, {"snapshot " + hex(*id)}));
  EXPECT_TRUE(Fails(repo->list_snapshots(), Error::Code::kCorrupt, {hex(*id)}));
  EXPECT_TRUE(Fails(repo->resolve_snapshot("latest"), Error::Code::kCorrupt));
  write_file(sp, original);
  EXPECT_OK(repo->load_snapshot(*id));
  // A snapshot object claiming to be a lock.
  write_byte(sp, 5, static_cast<uint8_t>(ObjectKind::kLock));
  EXPECT_TRUE(Fails(repo->load_snapshot(*id), Error::Code::kCorrupt, {"kind"}));
}

TEST_F(RepoTest, RenamedSnapshotDetected) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  auto id = session.save_snapshot(full_snapshot(now(), random_id()));
  ASSERT_OK(id);
  Id other = random_id();
  fs::rename(path_of(ObjectType::kSnapshot, hex(*id)), path_of(ObjectType::kSnapshot, hex(other)));
  EXPECT_TRUE(Fails(repo->load_snapshot(other), Error::Code::kCorrupt, {hex(other), "wrong name"}));
  EXPECT_TRUE(Fails(repo->load_snapshot(*id), Error::Code::kNotFound));
  EXPECT_TRUE(Fails(repo->resolve_snapshot("latest"), Error::Code::kCorrupt, {"wrong name"}));
}

TEST_F(RepoTest, TamperedPackBlobDetectedOthersStillLoad) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  std::vector<std::pair<Id, Bytes>> blobs;
  for (int i = 0; i < 3; i++) {
    Bytes d = random_data(10000, 300 + i);
    auto id = session.save_blob(BlobType::kData, d);
    ASSERT_OK(id);
    blobs.emplace_back(*id, d);
  }
  ASSERT_OK(session.flush());
  auto loc = locate(*repo, BlobType::kData, blobs[1].first);
  ASSERT_TRUE(loc.has_value());
  for (const auto& [id, d] : blobs) {
    auto l = locate(*repo, BlobType::kData, id);
    ASSERT_TRUE(l.has_value());
    ASSERT_EQ(l->pack, loc->pack) << "the three blobs should share a pack";
  }
  std::string pp = path_of(ObjectType::kData, hex(loc->pack));
  const Bytes original = read_file(pp);
  // First byte, middle, and the tag of the middle blob's record.
  for (uint64_t rel : {uint64_t{0}, uint64_t{loc->blob.length / 2}, uint64_t{loc->blob.length - 1}}) {
    SCOPED_TRACE("record byte " + std::to_string(rel));
    flip_byte(pp, loc->blob.offset + rel);
    auto fresh = open_repo();
    ASSERT_TRUE(fresh);
    ASSERT_OK(fresh->load_index());
    EXPECT_TRUE(Fails(fresh->load_blob(BlobType::kData, blobs[1].first), Error::Code::kCorrupt,
                      {"blob " + hex(blobs[1].first), "pack " + hex(loc->pack)}));
    for (size_t i : {size_t{0}, size_t{2}}) {
      auto d = fresh->load_blob(BlobType::kData, blobs[i].first);
      ASSERT_OK(d);
      EXPECT_EQ(*d, blobs[i].second);
    }
    write_file(pp, original);
  }
  // Two packs swapped: blobs read from the wrong pack fail authentication.
  ASSERT_OK(session.save_blob(BlobType::kData, random_data(10000, 999)));
  ASSERT_OK(session.flush());
  auto packs = list_names(*backend(), ObjectType::kData);
  ASSERT_EQ(packs.size(), 2u);
  std::string other = packs[0] == hex(loc->pack) ? packs[1] : packs[0];
  Bytes other_bytes = read_file(path_of(ObjectType::kData, other));
  Bytes padded = other_bytes;
  padded.resize(std::max(other_bytes.size(), original.size()), 0);
  write_file(pp, padded);
  EXPECT_TRUE(Fails(repo->load_blob(BlobType::kData, blobs[0].first), Error::Code::kCorrupt,
                    {"authentication failed"}));
}

TEST_F(RepoTest, TamperedPackTrailerDetected) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  std::vector<std::pair<Id, Bytes>> blobs;
  for (int i = 0; i < 3; i++) {
    Bytes d = random_data(5000, 400 + i);
    auto id = session.save_blob(i == 2 ? BlobType::kTree : BlobType::kData, d);
    ASSERT_OK(id);
    blobs.emplace_back(*id, d);
  }
  ASSERT_OK(session.flush());
  // Trees go into packs of their own: a data pack with blobs 0 and 1, a tree pack with 2.
  ASSERT_EQ(list_names(*backend(), ObjectType::kData).size(), 2u);
  auto data_at = locate(*repo, BlobType::kData, blobs[0].first);
  auto tree_at = locate(*repo, BlobType::kTree, blobs[2].first);
  ASSERT_TRUE(data_at.has_value() && tree_at.has_value());
  ASSERT_NE(data_at->pack, tree_at->pack);
  auto trees = read_pack_trailer(repo->master_key(), tree_at->pack,
                                 read_file(path_of(ObjectType::kData, hex(tree_at->pack))));
  ASSERT_OK(trees);
  ASSERT_EQ(trees->blobs.size(), 1u);
  EXPECT_EQ(trees->blobs[0].type, BlobType::kTree);
  EXPECT_EQ(trees->blobs[0].id, blobs[2].first);
  EXPECT_EQ(trees->blobs[0].raw_length, 5000u);

  const Id pack_id = data_at->pack;
  const std::vector<std::string> packs{hex(pack_id)};
  std::string pp = path_of(ObjectType::kData, packs[0]);
  const Bytes original = read_file(pp);

  auto ok = read_pack_trailer(repo->master_key(), pack_id, original);
  ASSERT_OK(ok);
  ASSERT_EQ(ok->blobs.size(), 2u);
  EXPECT_EQ(ok->id, pack_id);
  EXPECT_EQ(ok->blobs[1].type, BlobType::kData);
  EXPECT_EQ(ok->blobs[1].id, blobs[1].first);
  EXPECT_EQ(ok->blobs[1].raw_length, 5000u);

  uint32_t tlen = get_u32le(original.data() + original.size() - 4);
  ASSERT_GE(tlen, crypto::kTagSize);
  ASSERT_LT(tlen, original.size());
  const uint64_t tstart = original.size() - 4 - tlen;
  // Trailer ciphertext start, middle, tag end; then the length field itself.
  for (uint64_t off : {tstart, tstart + tlen / 2, tstart + tlen - 1, uint64_t{original.size() - 4},
                       uint64_t{original.size() - 1}}) {
    SCOPED_TRACE("offset " + std::to_string(off));
    Bytes bad = original;
    bad[off] ^= 0x01;
    EXPECT_TRUE(Fails(read_pack_trailer(repo->master_key(), pack_id, bad), Error::Code::kCorrupt,
                      {"pack " + packs[0]}));
  }
  // Also the header: bad magic, another key generation, another kind, another ID.
  for (uint64_t off : {uint64_t{0}, uint64_t{8}, uint64_t{5}, uint64_t{20}}) {
    SCOPED_TRACE("header offset " + std::to_string(off));
    Bytes bad = original;
    bad[off] ^= 0x01;
    EXPECT_TRUE(Fails(read_pack_trailer(repo->master_key(), pack_id, bad), Error::Code::kCorrupt));
  }
  EXPECT_TRUE(Fails(read_pack_trailer(repo->master_key(), random_id(), original),
                    Error::Code::kCorrupt, {"wrong name"}));
  EXPECT_TRUE(Fails(read_pack_trailer(repo->master_key(), pack_id, ByteView(original).first(50)),
                    Error::Code::kCorrupt));
  // The blobs themselves are unaffected by trailer damage on disk (the index locates them).
  flip_byte(pp, tstart + 1);
  auto d = repo->load_blob(BlobType::kData, blobs[0].first);
  ASSERT_OK(d);
  EXPECT_EQ(*d, blobs[0].second);
  auto onpack = backend()->load({ObjectType::kData, packs[0]});
  ASSERT_OK(onpack);
  EXPECT_TRUE(Fails(read_pack_trailer(repo->master_key(), pack_id, *onpack), Error::Code::kCorrupt,
                    {"trailer"}));
}

TEST_F(RepoTest, TamperedTreeBlobDetected) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  Tree t;
  Node n;
  n.name = "a";
  n.content = {random_id(), random_id()};
  t.nodes.push_back(n);
  auto id = session.save_tree(t);
  ASSERT_OK(id);
  ASSERT_OK(session.flush());
  auto loc = locate(*repo, BlobType::kTree, *id);
  ASSERT_TRUE(loc.has_value());
  flip_byte(path_of(ObjectType::kData, hex(loc->pack)), loc->blob.offset + loc->blob.length / 2);
  EXPECT_TRUE(Fails(repo->load_tree(*id), Error::Code::kCorrupt,
                    {"tree blob " + hex(*id), "pack " + hex(loc->pack)}));
}

TEST_F(RepoTest, BlobRecordBoundToTypeAndId) {
  // Index entries pointing at the wrong record (as a forged index would) fail authentication.
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  Bytes a = random_data(3000, 1), b = random_data(3000, 2);
  auto ida = session.save_blob(BlobType::kData, a);
  auto idb = session.save_blob(BlobType::kData, b);
  ASSERT_OK(ida);
  ASSERT_OK(idb);
  ASSERT_OK(session.flush());
  auto la = locate(*repo, BlobType::kData, *ida);
  auto lb = locate(*repo, BlobType::kData, *idb);
  ASSERT_TRUE(la && lb);
  auto raw = backend()->load({ObjectType::kData, hex(la->pack)}, la->blob.offset, la->blob.length);
  ASSERT_OK(raw);
  const auto* key = repo->master_key().encryption_key(0);
  ASSERT_NE(key, nullptr);
  auto good = open_blob(*key, la->pack, 0, BlobType::kData, *ida, la->blob.offset, *raw,
                        la->blob.raw_length, "blob");
  ASSERT_OK(good);
  EXPECT_EQ(*good, a);
  EXPECT_TRUE(Fails(open_blob(*key, la->pack, 0, BlobType::kTree, *ida, la->blob.offset, *raw,
                              la->blob.raw_length, "blob"),
                    Error::Code::kCorrupt));
  EXPECT_TRUE(Fails(open_blob(*key, la->pack, 0, BlobType::kData, *idb, la->blob.offset, *raw,
                              la->blob.raw_length, "blob"),
                    Error::Code::kCorrupt));
  EXPECT_TRUE(Fails(open_blob(*key, la->pack, 0, BlobType::kData, *ida, lb->blob.offset, *raw,
                              la->blob.raw_length, "blob"),
                    Error::Code::kCorrupt));
  EXPECT_TRUE(Fails(open_blob(*key, random_id(), 0, BlobType::kData, *ida, la->blob.offset, *raw,
                              la->blob.raw_length, "blob"),
                    Error::Code::kCorrupt));
  // A raw length that disagrees with the record.
  EXPECT_TRUE(Fails(open_blob(*key, la->pack, 0, BlobType::kData, *ida, la->blob.offset, *raw,
                              la->blob.raw_length - 1, "blob"),
                    Error::Code::kCorrupt));
}

TEST_F(RepoTest, TruncatedPackDetected) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Session session(*repo);
  std::vector<Id> ids;
  for (int i = 0; i < 4; i++) {
    auto id = session.save_blob(BlobType::kData, random_data(20000, 600 + i));
    ASSERT_OK(id);
    ids.push_back(*id);
  }
  ASSERT_OK(session.flush());
  auto packs = list_objects(*backend(), ObjectType::kData);
  ASSERT_EQ(packs.size(), 1u);
  std::string pp = path_of(ObjectType::kData, packs[0].name.name);
  make_writable(pp);
  fs::resize_file(pp, packs[0].size / 2);
  auto last = locate(*repo, BlobType::kData, ids.back());
  ASSERT_TRUE(last.has_value());
  ASSERT_GT(last->blob.offset + last->blob.length, packs[0].size / 2);
  EXPECT_TRUE(Fails(repo->load_blob(BlobType::kData, ids.back()), Error::Code::kCorrupt,
                    {hex(ids.back()), "pack " + packs[0].name.name}));
  // The first blob lies wholly before the cut and still loads.
  EXPECT_OK(repo->load_blob(BlobType::kData, ids.front()));
  auto raw = backend()->load({ObjectType::kData, packs[0].name.name});
  ASSERT_OK(raw);
  EXPECT_TRUE(Fails(read_pack_trailer(repo->master_key(), last->pack, *raw), Error::Code::kCorrupt));
}

TEST_F(RepoTest, TamperedLockDetected) {
  auto a = init_repo();
  ASSERT_TRUE(a);
  Session a_session(*a);
  ASSERT_OK(a_session.lock(false));
  auto locks = list_names(*backend(), ObjectType::kLock);
  ASSERT_EQ(locks.size(), 1u);
  std::string lp = path_of(ObjectType::kLock, locks[0]);
  flip_byte(lp, kPrefixSize + 3);
  EXPECT_TRUE(Fails(a->load_object(ObjectType::kLock, locks[0]), Error::Code::kCorrupt,
                    {"lock " + locks[0]}));
  // A lock that cannot be read blocks locking (it may be a live holder's).
  auto b = open_repo();
  ASSERT_TRUE(b);
  Session b_session(*b);
  EXPECT_TRUE(Fails(b_session.lock(false), Error::Code::kLocked,
                    {"lock " + locks[0], "cannot be read", "haven unlock"}));
  EXPECT_EQ(list_names(*backend(), ObjectType::kLock).size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// The in-memory index

// A million entries in 1,000 packs; checks lookups, duplicates, positions and memory. Returns
// the index's memory per blob.
// `peak`, if given: the most memory_bytes() said after any pack was added.
static double fill_and_check_index(Index& index, size_t* peak = nullptr) {
  constexpr size_t kPacks = 1000;
  constexpr size_t kPerPack = 1000;
  std::mt19937_64 rng(2024);
  auto rand_id = [&] {
    Id id;
    for (size_t i = 0; i < id.size(); i += 8) {
      uint64_t v = rng();
      std::memcpy(id.data() + i, &v, 8);
    }
    return id;
  };
  struct Expect {
    Id id;
    BlobType type;
    size_t pack;
    uint32_t offset, length, raw;
  };
  std::vector<Expect> sample;  // every 100th entry: 10,000 samples
  std::vector<Id> pack_ids;
  size_t n = 0;
  for (size_t p = 0; p < kPacks; p++) {
    PackRecord rec;
    rec.id = rand_id();
    rec.key_generation = static_cast<uint32_t>(p % 3);
    pack_ids.push_back(rec.id);
    rec.blobs.reserve(kPerPack);
    for (size_t b = 0; b < kPerPack; b++, n++) {
      PackedBlob pb;
      pb.type = (n % 7 == 0) ? BlobType::kTree : BlobType::kData;
      pb.id = rand_id();
      pb.offset = static_cast<uint32_t>(44 + b * 1000);
      pb.length = static_cast<uint32_t>(500 + (n % 997));
      pb.raw_length = static_cast<uint32_t>(n);
      rec.blobs.push_back(pb);
      if (n % 100 == 0) sample.push_back({pb.id, pb.type, p, pb.offset, pb.length, pb.raw_length});
    }
    // A duplicate of an earlier blob (by then perhaps spilled) keeps its first location.
    if (p > 0 && p % 50 == 0) rec.blobs.push_back({sample[p].type, sample[p].id, 7, 7, 7});
    index.add_pack(rec);
    if (peak != nullptr) *peak = std::max(*peak, index.memory_bytes());
  }
  EXPECT_EQ(index.blob_count(), kPacks * kPerPack);
  EXPECT_EQ(index.pack_count(), kPacks);
  EXPECT_EQ(sample.size(), 10000u);
  index.compact();
  EXPECT_OK(index.status());
  std::vector<bool> taken(index.blob_count(), false);
  for (const auto& e : sample) {
    auto loc = index.find(e.type, e.id);
    EXPECT_TRUE(loc.has_value());
    if (!loc) continue;
    EXPECT_EQ(loc->pack_id, pack_ids[e.pack]);
    EXPECT_EQ(loc->key_generation, static_cast<uint32_t>(e.pack % 3));
    EXPECT_EQ(loc->offset, e.offset);
    EXPECT_EQ(loc->length, e.length);
    EXPECT_EQ(loc->raw_length, e.raw);
    // The other type with the same ID is a different blob.
    BlobType other = e.type == BlobType::kData ? BlobType::kTree : BlobType::kData;
    EXPECT_FALSE(index.contains(other, e.id));
    // Positions are dense and name the entry.
    auto pos = index.position(e.type, e.id);
    EXPECT_TRUE(pos && *pos < taken.size() && !taken[*pos]);
    if (!pos || *pos >= taken.size()) continue;
    taken[*pos] = true;
    IndexEntry at = index.at(*pos);
    EXPECT_EQ(at.id, e.id);
    EXPECT_EQ(at.raw_length, e.raw);
  }
  for (int i = 0; i < 10000; i++) EXPECT_FALSE(index.contains(BlobType::kData, rand_id()));
  // for_each visits every position once, in order, with the entry at() gives.
  size_t visited = 0, expect_pos = 0;
  uint64_t raw_sum = 0;
  index.for_each([&](size_t pos, const IndexEntry& e) {
    if (pos != expect_pos) ADD_FAILURE() << "position " << pos << " after " << expect_pos - 1;
    expect_pos = pos + 1;
    visited++;
    raw_sum += e.raw_length;
    if (pos % 99991 == 0) {
      EXPECT_EQ(index.at(pos).id, e.id);
    }
  });
  EXPECT_EQ(visited, kPacks * kPerPack);
  EXPECT_EQ(raw_sum, uint64_t{kPacks * kPerPack} * (kPacks * kPerPack - 1) / 2);  // 0 .. n-1
  EXPECT_OK(index.status());
  const double per_blob =
      static_cast<double>(index.memory_bytes()) / static_cast<double>(index.blob_count());
  std::cout << "[ index    ] " << index.memory_bytes() << " bytes for " << index.blob_count()
            << " blobs = " << per_blob << " bytes/blob (" << index.spilled_count()
            << " on disk in " << index.run_count() << " run(s))\n";
  return per_blob;
}

TEST(IndexTest, MillionEntriesFindAndMemory) {
  Index index;
  double per_blob = fill_and_check_index(index);
  RecordProperty("bytes_per_blob", std::to_string(per_blob));
  EXPECT_EQ(index.spilled_count(), 0u);
  EXPECT_LT(per_blob, 64.0);
  EXPECT_GT(per_blob, 49.0);  // memory_bytes() counts at least the packed entries
}

// Bounded to 4 MiB, the same million entries spill to sorted runs on disk and are found there;
// the runs' filters and page keys (~1.65 bytes per spilled blob) come out of the table's share,
// so the whole index stays within the bound while it fills (within a block of entries).
TEST(IndexTest, BoundedIndexSpillsToDiskAndFindsEverything) {
  TempDir dir;
  Index index(IndexOptions{4u << 20, dir.path()});
  size_t peak = 0;
  double per_blob = fill_and_check_index(index, &peak);
  RecordProperty("bytes_per_blob", std::to_string(per_blob));
  EXPECT_GT(index.spilled_count(), 900000u);
  EXPECT_EQ(index.run_count(), 1u);  // compacted
  EXPECT_LT(peak, (4u << 20) + (256u << 10));
  EXPECT_LT(index.memory_bytes(), (4u << 20) + (256u << 10));
  EXPECT_LT(per_blob, 6.2);
  // The spill file is unlinked: nothing is left in the directory.
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

// What a spill and a merge hold at once. A spill frees the table it wrote out: right after
// one, the index holds its runs' filters and the few entries added since, not the old table's
// slots. A merge frees the runs' filters before it builds the merged run's: the pages mapped
// during compact() never exceed those before it by more than its read buffers (fails if either
// is only cleared: `v = {}` keeps a vector's pages).
TEST(IndexTest, SpillAndMergeFreeWhatTheyReplace) {
  TempDir dir;
  Index index(IndexOptions{4u << 20, dir.path()});
  std::mt19937_64 rng(5);
  auto pack = [&](size_t n) {
    PackRecord rec;
    rec.id = random_id();
    for (uint32_t i = 0; i < n; i++) {
      Id id;
      for (size_t k = 0; k < id.size(); k += 8) {
        const uint64_t v = rng();
        std::memcpy(id.data() + k, &v, 8);
      }
      rec.blobs.push_back({BlobType::kData, id, i, 1, 1});
    }
    return rec;
  };
  while (index.spilled_count() == 0) index.add_pack(pack(100));
  // The table restarted with at most one pack's entries: one block of 4,096 (200,704 bytes)
  // and a small slot table; the run's filter and page keys ~1.65 bytes per spilled blob; 36
  // bytes per pack. The old table's slots would be 512 KiB (131,072 for ~70,000 entries).
  EXPECT_LT(index.memory_bytes(),
            index.spilled_count() * 2 + 200704 + 16384 + index.pack_count() * 40);
  // Six runs of ~70,000 blobs, then a merge of all of them by hand.
  while (index.run_count() < 6) index.add_pack(pack(1000));
  const size_t spilled = index.spilled_count();
  const size_t before = pages_mapped();
  reset_pages_mapped_peak();
  index.compact();
  EXPECT_OK(index.status());
  EXPECT_EQ(index.run_count(), 1u);
  EXPECT_EQ(index.spilled_count(), spilled);
  // The filters of ~`spilled` blobs are ~1.65 bytes each, old or new: held twice, they would
  // add that much again. A merge reads each run through a 49 KiB buffer.
  EXPECT_LT(pages_mapped_peak(), before + 6 * (50u << 10) + spilled / 4);
  EXPECT_GT(spilled * 165 / 100, 6 * (50u << 10) + spilled / 4);  // the bound can tell
}

// A spill directory that cannot be used keeps the entries in memory and says why.
TEST(IndexTest, SpillFailureKeepsEntriesInMemoryAndIsReported) {
  TempDir dir;
  Index index(IndexOptions{1u << 20, dir.path() + "/missing"});
  PackRecord rec;
  rec.id = random_id();
  for (uint32_t i = 0; i < 40000; i++) rec.blobs.push_back({BlobType::kData, random_id(), i, 1, 1});
  index.add_pack(rec);
  EXPECT_EQ(index.spilled_count(), 0u);
  EXPECT_EQ(index.blob_count(), 40000u);
  EXPECT_TRUE(index.contains(BlobType::kData, rec.blobs[12345].id));
  EXPECT_TRUE(Fails(index.status(), Error::Code::kNotFound, {"index spill file", "/missing"}));
}

TEST(IndexTest, EmptyIndexAndIndexFileRoundTrip) {
  crypto::init();
  Index empty;
  EXPECT_FALSE(empty.find(BlobType::kData, Id{}).has_value());
  EXPECT_EQ(empty.blob_count(), 0u);

  std::vector<PackRecord> packs(2);
  packs[0].id = random_id();
  packs[0].key_generation = 3;
  packs[0].blobs = {{BlobType::kData, random_id(), 44, 100, 83},
                    {BlobType::kTree, random_id(), 144, 17, 0}};
  packs[1].id = random_id();
  auto decoded = decode_index_file(encode_index_file(packs), "index x");
  ASSERT_OK(decoded);
  ASSERT_EQ(decoded->size(), 2u);
  EXPECT_EQ((*decoded)[0].id, packs[0].id);
  EXPECT_EQ((*decoded)[0].key_generation, 3u);
  ASSERT_EQ((*decoded)[0].blobs.size(), 2u);
  EXPECT_EQ((*decoded)[0].blobs[1].type, BlobType::kTree);
  EXPECT_EQ((*decoded)[0].blobs[1].id, packs[0].blobs[1].id);
  EXPECT_EQ((*decoded)[0].blobs[1].offset, 144u);
  EXPECT_EQ((*decoded)[0].blobs[0].raw_length, 83u);
  EXPECT_TRUE((*decoded)[1].blobs.empty());
  EXPECT_TRUE(Fails(decode_index_file(as_bytes("garbage"), "index x"), Error::Code::kCorrupt,
                    {"index x"}));

  // The bytes are exactly what a json tree of the same values encodes to (the format of every
  // index file written so far), and such a tree with a member Haven does not know still reads.
  auto tree = [&](bool extra) {
    nlohmann::json j;
    j["packs"] = nlohmann::json::array();
    for (const auto& p : packs) {
      nlohmann::json blobs = nlohmann::json::array();
      for (const auto& b : p.blobs) {
        blobs.push_back({static_cast<int>(b.type),
                         nlohmann::json::binary_t(std::vector<uint8_t>(b.id.begin(), b.id.end())),
                         b.offset, b.length, b.raw_length});
      }
      j["packs"].push_back({{"id", nlohmann::json::binary_t(std::vector<uint8_t>(p.id.begin(), p.id.end()))},
                            {"key_generation", p.key_generation},
                            {"blobs", blobs}});
      if (extra) j["packs"].back()["later"] = "x";
    }
    if (extra) j["comment"] = {1, 2};
    return nlohmann::json::to_cbor(j);
  };
  EXPECT_EQ(encode_index_file(packs), tree(false));
  auto with_extra = decode_index_file(tree(true), "index y");
  ASSERT_OK(with_extra);
  ASSERT_EQ(with_extra->size(), 2u);
  EXPECT_EQ((*with_extra)[0].blobs[1].id, packs[0].blobs[1].id);
  EXPECT_EQ((*with_extra)[0].key_generation, 3u);
  // Malformed: a blob of four fields, an unknown type, a missing member, trailing bytes.
  auto bad = [&](const std::function<void(nlohmann::json&)>& spoil) {
    nlohmann::json j = nlohmann::json::from_cbor(tree(false));
    spoil(j);
    return decode_index_file(nlohmann::json::to_cbor(j), "index z");
  };
  EXPECT_TRUE(Fails(bad([](auto& j) { j["packs"][0]["blobs"][0].erase(4); }), Error::Code::kCorrupt, {"index z"}));
  EXPECT_TRUE(Fails(bad([](auto& j) { j["packs"][0]["blobs"][0][0] = 2; }), Error::Code::kCorrupt, {"index z"}));
  EXPECT_TRUE(Fails(bad([](auto& j) { j["packs"][1].erase("key_generation"); }), Error::Code::kCorrupt, {"index z"}));
  EXPECT_TRUE(Fails(bad([](auto& j) { j["packs"][0]["blobs"][0][2] = -1; }), Error::Code::kCorrupt, {"index z"}));
  Bytes trailing = encode_index_file(packs);
  trailing.push_back(0);
  EXPECT_TRUE(Fails(decode_index_file(trailing, "index z"), Error::Code::kCorrupt, {"index z"}));
}

// The blob-ID function is chosen at init, recorded in the config and used by every session.
TEST_F(RepoTest, BlobIdFunctionIsFixedPerRepository) {
  for (auto fn : {BlobIdFunction::kBlake2b, BlobIdFunction::kHmacSha256}) {
    std::filesystem::remove_all(path());
    InitOptions o = fast_options();
    o.id_hash = fn;
    auto r = init_repo(kPw, o);
    ASSERT_TRUE(r);
    Bytes data = random_data(100000, 7);
    Result<Id> id = Error(Error::Code::kInternal, "not saved");
    {
      Session r_session(*r);
      id = r_session.save_blob(BlobType::kData, data);
      ASSERT_OK(id);
      ASSERT_OK(r_session.flush());
    }
    const auto& key = r->master_key().id_key;
    Id expect = fn == BlobIdFunction::kHmacSha256 ? crypto::hmac_sha256(key, data)
                                                        : crypto::keyed_hash(key, data);
    EXPECT_EQ(*id, expect);
    EXPECT_NE(crypto::hmac_sha256(key, data), crypto::keyed_hash(key, data));
    r.reset();
    auto again = open_repo();
    ASSERT_TRUE(again);
    EXPECT_EQ(again->config().id_hash, fn);
    EXPECT_EQ(again->blob_id(data), expect);
    ASSERT_OK(again->load_index());
    auto back = again->load_blob(BlobType::kData, expect);
    ASSERT_OK(back);
    EXPECT_EQ(*back, data);
  }
}



// A pack streamed through the local disk's writer (the blobs written as they are added, a large
// one sealed in place) is the pack a buffered builder makes: the same records at the same
// offsets, and every blob opens with only the index's (offset, length).
TEST_F(RepoTest, APackStreamedToDiskIsTheBufferedPackRecordForRecord) {
  crypto::init();
  MasterKey mk = MasterKey::generate();
  const crypto::SecretKey& key = *mk.encryption_key(0);
  std::mt19937_64 rng(5);
  std::vector<Bytes> blobs;
  for (size_t n : {size_t{100}, size_t{3000}, size_t{200000}, size_t{1} << 20, size_t{70}, size_t{300000}}) {
    Bytes b(n);
    for (size_t i = 0; i < n; i++) b[i] = n == (size_t{1} << 20) ? static_cast<uint8_t>(i % 7) : static_cast<uint8_t>(rng());
    blobs.push_back(std::move(b));
  }
  auto id_of = [](size_t i) { Id id{}; id[0] = static_cast<uint8_t>(i + 1); return id; };
  PackBuilder buffered(key, 0);
  PackBuilder streamed(key, 0);
  storage::LocalBackend disk(path());
  ASSERT_OK(disk.create());
  const std::string name = hex(streamed.id());
  auto writer = disk.open_writer({ObjectType::kData, name});
  ASSERT_OK(writer);
  streamed.stream_to(std::move(writer).value());
  for (size_t i = 0; i < blobs.size(); i++) {
    EXPECT_EQ(buffered.add(BlobType::kData, id_of(i), blobs[i], Compression::kMedium),
              streamed.add(BlobType::kData, id_of(i), blobs[i], Compression::kMedium));
    EXPECT_EQ(buffered.size(), streamed.size());
  }
  PackRecord want, got;
  Bytes whole = buffered.finish(want);
  Bytes rest = streamed.finish(got);
  EXPECT_TRUE(rest.empty());
  ASSERT_OK(streamed.stream_status());
  ASSERT_OK(streamed.writer()->commit());
  auto pack = disk.load({ObjectType::kData, name}, 0, 0);
  ASSERT_OK(pack);
  EXPECT_EQ(pack->size(), whole.size());
  auto trailer = read_pack_trailer(mk, got.id, *pack);
  ASSERT_OK(trailer);
  ASSERT_EQ(trailer->blobs.size(), blobs.size());
  for (size_t i = 0; i < blobs.size(); i++) {
    const auto& b = trailer->blobs[i];
    EXPECT_EQ(b.offset, want.blobs[i].offset);
    EXPECT_EQ(b.length, want.blobs[i].length);
    auto data = open_blob(key, got.id, 0, b.type, b.id, b.offset,
                          ByteView(*pack).subspan(b.offset, b.length), b.raw_length, "blob");
    ASSERT_OK(data);
    EXPECT_TRUE(*data == blobs[i]) << "blob " << i;
  }
}

// Restore's and check's hot path: a blob opened in place in its range, or from the pack into
// another buffer (one scratch buffer reused across blobs of every size and both record modes,
// one PackKeys across blobs of two packs), is the blob, and a damaged one is refused.
TEST_F(RepoTest, ABlobOpenedInPlaceOrIntoABufferIsTheBlobAndADamagedOneIsRefused) {
  crypto::init();
  MasterKey mk = MasterKey::generate();
  const crypto::SecretKey& key = *mk.encryption_key(0);
  std::mt19937_64 rng(9);
  std::vector<Bytes> blobs;
  // Random (stored as is), repetitive (compressed), growing and shrinking.
  for (size_t n : {size_t{300000}, size_t{1} << 20, size_t{70}, size_t{2} << 20, size_t{5000}}) {
    Bytes b(n);
    bool random = n == 300000 || n == 70;
    for (size_t i = 0; i < n; i++) b[i] = random ? static_cast<uint8_t>(rng()) : static_cast<uint8_t>(i % 13);
    blobs.push_back(std::move(b));
  }
  auto id_of = [](size_t i) { Id id{}; id[0] = static_cast<uint8_t>(i + 1); return id; };
  // Two packs of the same blobs (each its own salt, so its own key): a PackKeys that kept the
  // first pack's key would fail every blob of the second.
  std::vector<PackRecord> recs(2);
  std::vector<Bytes> packs(2);
  for (size_t k = 0; k < 2; k++) {
    PackBuilder builder(key, 0);
    for (size_t i = 0; i < blobs.size(); i++) {
      builder.add(BlobType::kData, id_of(i), blobs[i], Compression::kMedium);
    }
    packs[k] = builder.finish(recs[k]);
  }
  ASSERT_NE(recs[0].id, recs[1].id);
  Scratch scratch;
  PackKeys keys;
  auto what = [] { return std::string("blob"); };
  for (size_t j = 0; j < 2 * blobs.size(); j++) {
    const size_t i = j / 2, k = j % 2;  // alternating between the packs
    const PackRecord& rec = recs[k];
    const Bytes& pack = packs[k];
    const auto& b = rec.blobs[i];
    Bytes range(pack.begin() + b.offset, pack.begin() + b.offset + b.length);
    auto data = open_blob_in_place(key, keys, rec.id, 0, b.type, b.id, b.offset, range,
                                   b.raw_length, what, scratch);
    ASSERT_OK(data);
    EXPECT_TRUE(std::equal(data->begin(), data->end(), blobs[i].begin(), blobs[i].end())) << "blob " << i;
    // Into another buffer (the pack's bytes are read only): the same bytes.
    Bytes out(b.length);
    ByteView sealed(pack.data() + b.offset, b.length);
    auto into = open_blob_into(key, keys, rec.id, 0, b.type, b.id, b.offset, sealed, out.data(),
                               b.raw_length, what, scratch);
    ASSERT_OK(into);
    EXPECT_TRUE(std::equal(into->begin(), into->end(), blobs[i].begin(), blobs[i].end())) << "blob " << i;
    Bytes damaged(pack.begin() + b.offset, pack.begin() + b.offset + b.length);
    damaged[damaged.size() / 2] ^= 0x10;
    auto bad = open_blob_in_place(key, keys, rec.id, 0, b.type, b.id, b.offset, damaged,
                                  b.raw_length, what, scratch);
    ASSERT_FALSE(bad.ok()) << "blob " << i;
    EXPECT_EQ(bad.error().code(), Error::Code::kCorrupt);
    EXPECT_NE(bad.error().message().find("authentication failed"), std::string::npos);
    auto bad_into = open_blob_into(key, keys, rec.id, 0, b.type, b.id, b.offset, damaged,
                                   out.data(), b.raw_length, what, scratch);
    ASSERT_FALSE(bad_into.ok()) << "blob " << i;
    EXPECT_NE(bad_into.error().message().find("authentication failed"), std::string::npos);
    // Another blob's ID (the record's AAD) is refused as well, and so is the other pack's ID.
    Bytes again(pack.begin() + b.offset, pack.begin() + b.offset + b.length);
    EXPECT_FALSE(open_blob_in_place(key, keys, rec.id, 0, b.type, id_of(i + 1), b.offset, again,
                                    b.raw_length, what, scratch).ok());
    EXPECT_FALSE(open_blob_into(key, keys, recs[1 - k].id, 0, b.type, b.id, b.offset, sealed,
                                out.data(), b.raw_length, what, scratch).ok());
  }
}

// Objects are opened in place when loaded (an index file of 10,000 blobs is ~0.4 MB): a stored
// body (random bytes) and a compressed one come out as open_object() gives them, and a damaged
// or misnamed object is refused.
TEST_F(RepoTest, AnObjectOpenedInPlaceIsItsBodyAndADamagedOneIsRefused) {
  crypto::init();
  MasterKey mk = MasterKey::generate();
  std::mt19937_64 rng(11);
  Bytes random_body(300000), text_body;
  for (auto& b : random_body) b = static_cast<uint8_t>(rng());
  for (int i = 0; i < 20000; i++) {
    std::string line = "entry " + std::to_string(i) + "\n";
    text_body.insert(text_body.end(), line.begin(), line.end());
  }
  const Bytes empty;
  for (const Bytes* body : std::initializer_list<const Bytes*>{&random_body, &text_body, &empty}) {
    const Bytes& b = *body;
    const Id id = random_id();
    const storage::ObjectName name{storage::ObjectType::kIndex, hex(id)};
    const Bytes sealed = seal_object(mk, ObjectKind::kIndex, id, b);
    auto copy = open_object(mk, ObjectKind::kIndex, name, sealed);
    ASSERT_OK(copy);
    auto in_place = open_object_in_place(mk, ObjectKind::kIndex, name, sealed);
    ASSERT_OK(in_place);
    EXPECT_EQ(*in_place, b);
    EXPECT_EQ(*copy, b);
    Bytes damaged = sealed;
    damaged.back() ^= 1;  // the tag
    EXPECT_TRUE(Fails(open_object_in_place(mk, ObjectKind::kIndex, name, damaged),
                      Error::Code::kCorrupt, {hex(id), "authentication failed"}));
    const storage::ObjectName other{storage::ObjectType::kIndex, hex(random_id())};
    EXPECT_TRUE(Fails(open_object_in_place(mk, ObjectKind::kIndex, other, sealed),
                      Error::Code::kCorrupt, {"wrong name"}));
    EXPECT_TRUE(Fails(open_object_in_place(mk, ObjectKind::kSnapshot, name, sealed),
                      Error::Code::kCorrupt, {"wrong object kind"}));
  }
}

// An access key opens its own key file through HKDF, never through Argon2id; a password never
// opens it, it never opens a password key file, and its key file holds nothing of it in clear.
TEST_F(RepoTest, AnAccessKeyOpensWithoutArgon2idAndOnlyItsOwnKeyFile) {
  auto repo = init_repo();
  ASSERT_TRUE(repo);
  Snapshot snap;
  snap.time = 7;
  auto saved = Session(*repo).save_snapshot(snap);
  ASSERT_OK(saved);
  const std::string ak = generate_access_key();
  ASSERT_TRUE(is_access_key(ak));
  EXPECT_FALSE(is_access_key(ak.substr(0, ak.size() - 1)));
  EXPECT_FALSE(is_access_key(ak.substr(0, ak.size() - 1) + "G"));
  auto id = repo->add_access_key(ak);
  ASSERT_OK(id);
  repo.reset();

  const Bytes file = read_file(path_of(ObjectType::kKey, *id));
  const std::string text(file.begin(), file.end());
  EXPECT_EQ(text.find(ak.substr(sizeof kAccessKeyPrefix - 1)), std::string::npos);
  EXPECT_NE(text.find("hkdf-sha256"), std::string::npos);
  auto info = read_key_file_info(file, "key");
  ASSERT_OK(info);
  EXPECT_TRUE(info->access_key);

  const uint64_t runs = crypto::kdf_runs();
  auto opened = try_open(ak);
  ASSERT_OK(opened);
  EXPECT_EQ(crypto::kdf_runs(), runs) << "an access key ran Argon2id";
  EXPECT_EQ((*opened)->current_key_id(), *id);
  auto loaded = (*opened)->load_snapshot(*saved);
  ASSERT_OK(loaded);
  EXPECT_EQ(loaded->time, 7);
  opened->reset();

  // Another access key: refused, and no Argon2id ran for the password key file either.
  EXPECT_TRUE(Fails(try_open(generate_access_key()), Error::Code::kWrongPassword));
  EXPECT_EQ(crypto::kdf_runs(), runs);
  EXPECT_TRUE(Fails(open_key_file(file, kPw, "key"), Error::Code::kWrongPassword));
  EXPECT_EQ(crypto::kdf_runs(), runs) << "a password was tried on an access-key file";
  // The password still opens its own key.
  EXPECT_TRUE(open_repo(kPw));

  // A password of an access key's form would never open its key file: refused up front.
  EXPECT_TRUE(Fails(open_repo()->add_key(generate_access_key(), fast_options().kdf),
                    Error::Code::kInvalidArgument, {"access key"}));
  TempDir other;
  EXPECT_TRUE(Fails(Repository::init(*storage::open_backend(other.path()), generate_access_key(),
                                     fast_options()),
                    Error::Code::kInvalidArgument, {"access key"}));
  // Calling an access-key file a password key file (checksum fixed) is damage, not a password.
  const std::string kp = path_of(ObjectType::kKey, *id);
  edit_key_file(kp, [](nlohmann::json& j) { j["kdf"]["algorithm"] = "argon2id"; }, true);
  EXPECT_TRUE(Fails(read_key_file_info(read_file(kp), "key"), Error::Code::kCorrupt,
                    {"kdf.iterations"}));
}

}  // namespace
}  // namespace haven::repo

// Tests for storage/local.cc: the local-disk backend.
#include "storage/local.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/page_cache.h"

namespace haven::storage {
namespace {

namespace fs = std::filesystem;

// A fresh directory under /tmp, removed (with everything in it) at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/haven-local-test-XXXXXX";
    char* p = ::mkdtemp(tmpl);
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A tmpfs mounted on a directory, unmounted at the end of the test (even when it fails).
class TmpfsMount {
 public:
  // Returns an empty string on success, else why mounting is not possible here.
  std::string mount(const std::string& dir, const std::string& options) {
    if (::geteuid() != 0) return "needs root: mounts a tmpfs (run as root)";
    if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      return std::string("mount -t tmpfs not permitted: ") + std::strerror(errno);
    }
    dir_ = dir;
    return "";
  }
  bool remount_read_only() {
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, nullptr) == 0;
  }
  ~TmpfsMount() {
    if (!dir_.empty()) ::umount2(dir_.c_str(), MNT_DETACH);
  }

 private:
  std::string dir_;
};

// 64 random lower-case hex characters; `prefix` (hex) forces the shard.
std::string hex_name(std::mt19937_64& rng, const std::string& prefix = "") {
  static const char* kHex = "0123456789abcdef";
  std::string s = prefix;
  while (s.size() < 64) s += kHex[rng() & 15];
  return s;
}

Bytes random_bytes(std::mt19937_64& rng, size_t n) {
  Bytes b(n);
  for (auto& c : b) c = static_cast<uint8_t>(rng());
  return b;
}

std::set<std::string> list_names(LocalBackend& b, ObjectType t) {
  std::set<std::string> names;
  Status s = b.list(t, [&](const ObjectInfo& info) {
    EXPECT_EQ(info.name.type, t);
    names.insert(info.name.name);
  });
  EXPECT_TRUE(s.ok()) << s.error().message();
  return names;
}

// Every file under `dir` whose name starts with ".tmp-".
std::vector<std::string> temp_files_under(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) out.push_back(e.path().string());
  }
  return out;
}

constexpr ObjectType kAllTypes[] = {ObjectType::kConfig,   ObjectType::kKey,
                                    ObjectType::kData,     ObjectType::kIndex,
                                    ObjectType::kSnapshot, ObjectType::kLock};

class LocalBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() + "/repo";
    backend_ = std::make_unique<LocalBackend>(root_);
    Status s = backend_->create();
    ASSERT_TRUE(s.ok()) << s.error().message();
  }

  ObjectName name_for(ObjectType t) {
    if (t == ObjectType::kConfig) return {t, "config"};
    return {t, hex_name(rng_)};
  }

  TempDir tmp_;
  std::string root_;
  std::unique_ptr<LocalBackend> backend_;
  std::mt19937_64 rng_{12345};
};

// ---- 1. basic operations -------------------------------------------------------------------

TEST_F(LocalBackendTest, RoundTripEveryType) {
  for (ObjectType t : kAllTypes) {
    SCOPED_TRACE(type_dir(t));
    ObjectName n = name_for(t);
    Bytes data = random_bytes(rng_, 1000 + static_cast<size_t>(t) * 77);
    Status s = backend_->save(n, data);
    ASSERT_TRUE(s.ok()) << s.error().message();

    auto loaded = backend_->load(n, 0, 0);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message();
    EXPECT_EQ(*loaded, data);

    auto info = backend_->stat(n);
    ASSERT_TRUE(info.ok()) << info.error().message();
    EXPECT_EQ(info->size, data.size());
    EXPECT_EQ(info->name, n);

    // The object sits at path_of() under the documented directory.
    std::string expected_dir = t == ObjectType::kConfig ? root_
                               : t == ObjectType::kData
                                   ? root_ + "/data/" + n.name.substr(0, 2)
                                   : root_ + "/" + type_dir(t);
    EXPECT_EQ(backend_->path_of(n), expected_dir + "/" + n.name);
    EXPECT_TRUE(fs::is_regular_file(backend_->path_of(n)));
  }
  // No temporary files are left behind by successful saves.
  EXPECT_TRUE(temp_files_under(root_).empty());
}

TEST_F(LocalBackendTest, EmptyObjectRoundTrips) {
  ObjectName n{ObjectType::kLock, hex_name(rng_)};
  ASSERT_TRUE(backend_->save(n, Bytes{}).ok());
  auto loaded = backend_->load(n, 0, 0);
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE(loaded->empty());
  auto info = backend_->stat(n);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, 0u);
}

TEST_F(LocalBackendTest, RangedLoad) {
  ObjectName n{ObjectType::kData, hex_name(rng_)};
  Bytes data = random_bytes(rng_, 1000);
  ASSERT_TRUE(backend_->save(n, data).ok());

  auto mid = backend_->load(n, 100, 50);
  ASSERT_TRUE(mid.ok()) << mid.error().message();
  EXPECT_EQ(*mid, Bytes(data.begin() + 100, data.begin() + 150));

  auto tail = backend_->load(n, 900, 0);
  ASSERT_TRUE(tail.ok()) << tail.error().message();
  EXPECT_EQ(*tail, Bytes(data.begin() + 900, data.end()));

  auto exact_end = backend_->load(n, 990, 10);
  ASSERT_TRUE(exact_end.ok());
  EXPECT_EQ(*exact_end, Bytes(data.begin() + 990, data.end()));

  auto at_end = backend_->load(n, 1000, 0);
  ASSERT_TRUE(at_end.ok());
  EXPECT_TRUE(at_end->empty());
}

TEST_F(LocalBackendTest, RangePastEndIsCorrupt) {
  ObjectName n{ObjectType::kData, hex_name(rng_)};
  ASSERT_TRUE(backend_->save(n, random_bytes(rng_, 1000)).ok());

  auto r = backend_->load(n, 990, 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kCorrupt);
  EXPECT_NE(r.error().message().find(n.describe()), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("[990, 1010)"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("size 1000"), std::string::npos) << r.error().message();

  auto r2 = backend_->load(n, 2000, 0);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code(), Error::Code::kCorrupt);

  auto r3 = backend_->load(n, UINT64_MAX - 5, 10);  // offset + length overflows
  ASSERT_FALSE(r3.ok());
  EXPECT_EQ(r3.error().code(), Error::Code::kCorrupt);
}

TEST_F(LocalBackendTest, LoadAndStatMissingAreNotFound) {
  for (ObjectType t : kAllTypes) {
    SCOPED_TRACE(type_dir(t));
    ObjectName n = name_for(t);
    auto r = backend_->load(n, 0, 0);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Error::Code::kNotFound);
    EXPECT_NE(r.error().message().find(backend_->path_of(n)), std::string::npos)
        << r.error().message();
    auto s = backend_->stat(n);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), Error::Code::kNotFound);
  }
}

TEST_F(LocalBackendTest, SaveExistingFailsAndKeepsOriginal) {
  for (ObjectType t : {ObjectType::kConfig, ObjectType::kData, ObjectType::kIndex}) {
    SCOPED_TRACE(type_dir(t));
    ObjectName n = name_for(t);
    Bytes original = random_bytes(rng_, 300);
    ASSERT_TRUE(backend_->save(n, original).ok());

    Status s = backend_->save(n, random_bytes(rng_, 500));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), Error::Code::kAlreadyExists);

    auto loaded = backend_->load(n, 0, 0);
    ASSERT_TRUE(loaded.ok());
    EXPECT_EQ(*loaded, original);
  }
  // The refused saves cleaned up their temporary files.
  EXPECT_TRUE(temp_files_under(root_).empty());
}

TEST_F(LocalBackendTest, RemoveThenLoadIsNotFound) {
  ObjectName n{ObjectType::kSnapshot, hex_name(rng_)};
  ASSERT_TRUE(backend_->save(n, as_bytes("snapshot")).ok());
  Status s = backend_->remove(n);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_FALSE(fs::exists(backend_->path_of(n)));

  auto r = backend_->load(n, 0, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kNotFound);
  EXPECT_TRUE(list_names(*backend_, ObjectType::kSnapshot).empty());

  Status again = backend_->remove(n);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Error::Code::kNotFound);

  // A removed name may be saved again.
  EXPECT_TRUE(backend_->save(n, as_bytes("second")).ok());
}

TEST_F(LocalBackendTest, RejectsNamesThatEscapeTheDirectory) {
  for (const std::string& bad : {std::string("../../etc"), std::string(".tmp-x"),
                                 std::string(""), std::string("a/b")}) {
    SCOPED_TRACE(bad);
    Status s = backend_->save({ObjectType::kKey, bad}, as_bytes("x"));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), Error::Code::kInvalidArgument);
  }
  EXPECT_FALSE(fs::exists(tmp_.path() + "/etc"));
}

// ---- 2. layout and listing -----------------------------------------------------------------

TEST_F(LocalBackendTest, DataObjectsAreShardedAndListed) {
  std::set<std::string> saved;
  for (const char* prefix : {"00", "3f", "3f", "a7", "ff"}) {
    std::string name = hex_name(rng_, prefix);
    ASSERT_TRUE(backend_->save({ObjectType::kData, name}, as_bytes(name)).ok());
    saved.insert(name);
    std::string on_disk = root_ + "/data/" + prefix + "/" + name;
    EXPECT_TRUE(fs::is_regular_file(on_disk)) << on_disk;
    EXPECT_EQ(backend_->path_of({ObjectType::kData, name}), on_disk);
  }
  EXPECT_EQ(list_names(*backend_, ObjectType::kData), saved);

  // Sizes are reported.
  Status s = backend_->list(ObjectType::kData, [&](const ObjectInfo& info) {
    EXPECT_EQ(info.size, 64u);
  });
  EXPECT_TRUE(s.ok());

  // Other types do not see data objects.
  EXPECT_TRUE(list_names(*backend_, ObjectType::kIndex).empty());
}

// A save into a new shard makes it (mkdir) when the object is opened and fsyncs "data" only
// when the object is published: a backup worker opening a pack never waits on that fsync (the
// uploader committing the pack does). Shards found existing cost one fsync of "data" together
// (listed, then fsynced); a shard that appears after that listing is trusted only after an
// fsync of its own.
TEST_F(LocalBackendTest, ShardsAreMadeDurableWhenTheObjectIsPublishedOnceForThoseFound) {
  for (int i = 0x10; i < 0x30; i++) fs::create_directory(root_ + "/data/" + (std::ostringstream() << std::hex << i).str());
  LocalBackend fresh(root_);
  const size_t before = shard_fsyncs();
  for (int i = 0; i < 20; i++) {
    std::string prefix = (std::ostringstream() << std::hex << (0x10 + i)).str();
    std::string name = hex_name(rng_, prefix);
    ASSERT_TRUE(fresh.save({ObjectType::kData, name}, as_bytes(name)).ok());
  }
  EXPECT_EQ(shard_fsyncs() - before, 1u) << "20 shards found existing: one fsync of data";

  // A new shard: made when the writer opens, no fsync until its commit.
  std::string made = hex_name(rng_, "7e");
  auto w = fresh.open_writer({ObjectType::kData, made});
  ASSERT_TRUE(w.ok()) << w.error().message();
  EXPECT_TRUE(fs::is_directory(root_ + "/data/7e"));
  ASSERT_TRUE((*w)->append(as_bytes(made)).ok());
  EXPECT_EQ(shard_fsyncs() - before, 1u) << "opening and writing must not fsync data";
  ASSERT_TRUE((*w)->commit().ok());
  EXPECT_EQ(shard_fsyncs() - before, 2u);
  EXPECT_TRUE(fs::is_regular_file(root_ + "/data/7e/" + made));

  // A shard another process made after the listing: not trusted until fsynced here.
  fs::create_directory(root_ + "/data/7f");
  std::string other = hex_name(rng_, "7f");
  ASSERT_TRUE(fresh.save({ObjectType::kData, other}, as_bytes(other)).ok());
  EXPECT_EQ(shard_fsyncs() - before, 3u);
  EXPECT_TRUE(fs::is_regular_file(root_ + "/data/7f/" + other));
  // Trusted now: more saves there and in the others cost no fsync of data.
  ASSERT_TRUE(fresh.save({ObjectType::kData, hex_name(rng_, "7f")}, as_bytes("x")).ok());
  ASSERT_TRUE(fresh.save({ObjectType::kData, hex_name(rng_, "7e")}, as_bytes("x")).ok());
  ASSERT_TRUE(fresh.save({ObjectType::kData, hex_name(rng_, "11")}, as_bytes("x")).ok());
  EXPECT_EQ(shard_fsyncs() - before, 3u);
  // wal/ is made on demand too (in the repository's directory): one fsync of it for the first
  // WAL object of a process, as archive_command runs one process a segment.
  ASSERT_TRUE(fresh.save({ObjectType::kWal, "000000010000000000000001"}, as_bytes("w")).ok());
  EXPECT_EQ(shard_fsyncs() - before, 4u);
  ASSERT_TRUE(fresh.save({ObjectType::kWal, "000000010000000000000002"}, as_bytes("w")).ok());
  EXPECT_EQ(shard_fsyncs() - before, 4u);
}

TEST_F(LocalBackendTest, ListIgnoresTempFilesAndNonFiles) {
  std::string data_name = hex_name(rng_, "3f");
  std::string key_name = hex_name(rng_);
  ASSERT_TRUE(backend_->save({ObjectType::kData, data_name}, as_bytes("d")).ok());
  ASSERT_TRUE(backend_->save({ObjectType::kKey, key_name}, as_bytes("k")).ok());

  // Plant leftovers of crashed saves, and a directory, by hand.
  std::ofstream(root_ + "/data/3f/.tmp-0123456789abcdef") << "partial";
  std::ofstream(root_ + "/keys/.tmp-fedcba9876543210") << "partial";
  std::ofstream(root_ + "/.tmp-00112233aabbccdd") << "partial config";
  fs::create_directory(root_ + "/keys/" + hex_name(rng_));

  EXPECT_EQ(list_names(*backend_, ObjectType::kData), std::set<std::string>{data_name});
  EXPECT_EQ(list_names(*backend_, ObjectType::kKey), std::set<std::string>{key_name});
  EXPECT_TRUE(list_names(*backend_, ObjectType::kConfig).empty());
}

TEST_F(LocalBackendTest, ListConfigAndMissingDirectories) {
  EXPECT_TRUE(list_names(*backend_, ObjectType::kConfig).empty());
  ASSERT_TRUE(backend_->save({ObjectType::kConfig, "config"}, as_bytes("cfg")).ok());
  EXPECT_EQ(list_names(*backend_, ObjectType::kConfig), std::set<std::string>{"config"});

  // A location whose type directories do not exist lists nothing, successfully.
  LocalBackend missing(tmp_.path() + "/nothing-here");
  for (ObjectType t : kAllTypes) {
    int calls = 0;
    Status s = missing.list(t, [&](const ObjectInfo&) { calls++; });
    EXPECT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(calls, 0);
  }
}

TEST_F(LocalBackendTest, SavedObjectsLeaveThePageCache) {
  // A file system that keeps pages whatever it is told (tmpfs) cannot show the difference.
  if (std::string why = page_cache_control(tmp_.path()); !why.empty()) GTEST_SKIP() << why;
  const long pages = (4 << 20) / ::sysconf(_SC_PAGESIZE);

  // Saved whole, and streamed through a writer: both are on disk and out of the cache.
  ObjectName whole{ObjectType::kData, hex_name(rng_)};
  Bytes data = random_bytes(rng_, 4 << 20);
  ASSERT_TRUE(backend_->save(whole, data).ok());
  ObjectName streamed{ObjectType::kData, hex_name(rng_)};
  auto w = backend_->open_writer(streamed);
  ASSERT_TRUE(w.ok()) << w.error().message();
  for (size_t at = 0; at < data.size(); at += 1 << 20) {
    ASSERT_TRUE((*w)->append(ByteView(data.data() + at, 1 << 20)).ok());
  }
  ASSERT_TRUE((*w)->commit().ok());
  for (const ObjectName& n : {whole, streamed}) {
    auto [resident, total] = cached_pages(backend_->path_of(n));
    EXPECT_EQ(total, pages);
    EXPECT_LE(resident, total / 10) << n.name << ": " << resident << " of " << total << " pages still cached";
    auto loaded = backend_->load(n, 0, 0);
    ASSERT_TRUE(loaded.ok());
    EXPECT_EQ(*loaded, data);
  }
}

// ---- 3. crash between write and rename ------------------------------------------------------

TEST_F(LocalBackendTest, CrashBeforeRenameLeavesNoVisibleObject) {
  ObjectName kept{ObjectType::kData, hex_name(rng_, "5c")};
  ASSERT_TRUE(backend_->save(kept, as_bytes("kept")).ok());
  ObjectName n{ObjectType::kData, hex_name(rng_, "5c")};
  Bytes data = random_bytes(rng_, 4096);

  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    LocalBackend child(root_);
    child.set_before_rename_hook([] { ::raise(SIGKILL); });
    (void)child.save(n, data);
    ::_exit(3);  // the hook did not run
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "child was not killed in the hook (status " << status << ")";

  auto st = backend_->stat(n);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Error::Code::kNotFound);
  auto ld = backend_->load(n, 0, 0);
  ASSERT_FALSE(ld.ok());
  EXPECT_EQ(ld.error().code(), Error::Code::kNotFound);
  EXPECT_FALSE(fs::exists(backend_->path_of(n)));

  // The crash left the complete, synced temporary file behind...
  auto temps = temp_files_under(root_);
  ASSERT_EQ(temps.size(), 1u);
  EXPECT_EQ(fs::path(temps[0]).parent_path().string(), root_ + "/data/5c");
  EXPECT_EQ(fs::file_size(temps[0]), data.size());
  // ...which list() does not report.
  EXPECT_EQ(list_names(*backend_, ObjectType::kData), std::set<std::string>{kept.name});

  // Saving the name again after the crash works.
  ASSERT_TRUE(backend_->save(n, data).ok());
  auto again = backend_->load(n, 0, 0);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, data);
}

// ---- 4. is_empty and create -----------------------------------------------------------------

TEST(LocalBackendLocation, IsEmpty) {
  TempDir tmp;
  LocalBackend missing(tmp.path() + "/missing");
  auto r = missing.is_empty();
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(*r);

  LocalBackend empty(tmp.path());
  r = empty.is_empty();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);

  std::ofstream(tmp.path() + "/.hidden") << "x";
  r = empty.is_empty();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r) << "a hidden file must make the location non-empty";
  fs::remove(tmp.path() + "/.hidden");

  std::ofstream(tmp.path() + "/file") << "x";
  r = empty.is_empty();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);

  LocalBackend not_dir(tmp.path() + "/file");
  r = not_dir.is_empty();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find(tmp.path() + "/file is not a directory"), std::string::npos)
      << r.error().message();
}

TEST(LocalBackendLocation, CreateMakesSubdirectories) {
  TempDir tmp;
  std::string root = tmp.path() + "/a/b/repo/";  // missing parents, trailing slash
  LocalBackend b(root);
  Status s = b.create();
  ASSERT_TRUE(s.ok()) << s.error().message();
  for (const char* sub : {"keys", "data", "index", "snapshots", "locks"}) {
    EXPECT_TRUE(fs::is_directory(tmp.path() + "/a/b/repo/" + sub)) << sub;
  }

  EXPECT_EQ(fs::status(tmp.path() + "/a/b/repo").permissions() & fs::perms::all,
            fs::perms::owner_all);
  // Only the empty type directories: still empty, so an init that failed after create() (a
  // full disk) can be run again.
  auto r = b.is_empty();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
  EXPECT_TRUE(b.create().ok()) << "create() on an existing repository directory must succeed";
  EXPECT_TRUE(b.save({ObjectType::kData, "ab12"}, as_bytes("x")).ok());
  auto r2 = b.is_empty();
  ASSERT_TRUE(r2.ok());
  EXPECT_FALSE(*r2) << "an object in a type directory makes the location non-empty";
  EXPECT_TRUE(fs::is_regular_file(tmp.path() + "/a/b/repo/data/ab/ab12"));

  std::ofstream(tmp.path() + "/plainfile") << "x";
  LocalBackend on_file(tmp.path() + "/plainfile");
  Status bad = on_file.create();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find(tmp.path() + "/plainfile"), std::string::npos)
      << bad.error().message();
}

// ---- 5. concurrency -------------------------------------------------------------------------

TEST_F(LocalBackendTest, ConcurrentSaves) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::vector<std::vector<std::pair<std::string, Bytes>>> objects(kThreads);
  for (int t = 0; t < kThreads; t++) {
    for (int i = 0; i < kPerThread; i++) {
      objects[t].emplace_back(hex_name(rng_), random_bytes(rng_, 1 + (rng_() % 2000)));
    }
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (auto& [name, data] : objects[t]) {
        if (!backend_->save({ObjectType::kData, name}, data).ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);

  std::set<std::string> expected;
  for (auto& per : objects) {
    for (auto& [name, data] : per) {
      expected.insert(name);
      auto loaded = backend_->load({ObjectType::kData, name}, 0, 0);
      ASSERT_TRUE(loaded.ok()) << loaded.error().message();
      ASSERT_EQ(*loaded, data) << name;
    }
  }
  EXPECT_EQ(list_names(*backend_, ObjectType::kData), expected);
  EXPECT_TRUE(temp_files_under(root_).empty());
}

// ---- 6. full disk ---------------------------------------------------------------------------

TEST(LocalBackendFaults, FullDiskFailsWithNoSpaceAndLeavesNothing) {
  TempDir tmp;
  TmpfsMount mnt;
  std::string why = mnt.mount(tmp.path(), "size=1m");
  if (!why.empty()) GTEST_SKIP() << why;

  std::string root = tmp.path() + "/repo";
  LocalBackend b(root);
  ASSERT_TRUE(b.create().ok());
  std::mt19937_64 rng(7);
  ObjectName n{ObjectType::kData, hex_name(rng)};
  Status s = b.save(n, Bytes(4 << 20, 0x5a));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Error::Code::kNoSpace) << s.error().message();
  EXPECT_NE(s.error().message().find(b.path_of(n)), std::string::npos) << s.error().message();

  EXPECT_FALSE(b.stat(n).ok());
  EXPECT_TRUE(list_names(b, ObjectType::kData).empty());
  EXPECT_TRUE(temp_files_under(root).empty()) << "partial temporary file left behind";
  for (auto& e : fs::recursive_directory_iterator(root)) {
    EXPECT_FALSE(e.is_regular_file()) << "unexpected file " << e.path();
  }
  // The space was given back: a small object fits now.
  Status small = b.save({ObjectType::kData, hex_name(rng)}, Bytes(100 << 10, 1));
  EXPECT_TRUE(small.ok()) << small.error().message();
}

// ---- 7. read-only location -----------------------------------------------------------------

TEST(LocalBackendFaults, ReadOnlyLocationIsPermissionDenied) {
  TempDir tmp;
  TmpfsMount mnt;
  std::string why = mnt.mount(tmp.path(), "size=4m");
  if (!why.empty()) GTEST_SKIP() << why;

  std::string root = tmp.path() + "/repo";
  LocalBackend b(root);
  ASSERT_TRUE(b.create().ok());
  std::mt19937_64 rng(8);
  ObjectName existing{ObjectType::kIndex, hex_name(rng)};
  ASSERT_TRUE(b.save(existing, as_bytes("index")).ok());
  ASSERT_TRUE(mnt.remount_read_only()) << std::strerror(errno);

  for (ObjectName n : {ObjectName{ObjectType::kData, hex_name(rng)},
                       ObjectName{ObjectType::kKey, hex_name(rng)}}) {
    SCOPED_TRACE(n.describe());
    Status s = b.save(n, as_bytes("payload"));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), Error::Code::kPermissionDenied) << s.error().message();
    EXPECT_NE(s.error().message().find("read-only"), std::string::npos) << s.error().message();
    EXPECT_NE(s.error().message().find(root), std::string::npos) << s.error().message();
  }
  Status rm = b.remove(existing);
  ASSERT_FALSE(rm.ok());
  EXPECT_EQ(rm.error().code(), Error::Code::kPermissionDenied);
  // Reading still works.
  auto loaded = b.load(existing, 0, 0);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  EXPECT_EQ(to_string(*loaded), "index");
}

}  // namespace
}  // namespace haven::storage

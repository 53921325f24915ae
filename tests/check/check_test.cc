// Corruption tests of `haven check` (src/check/check.cc) and `haven repair index`, through the
// real binary: a repository with three snapshots of a few dozen files is built once (with
// `haven init/backup`), and every test damages its own copy of it — flipped bytes, truncated or
// deleted packs, index files, snapshots, trees and keys — then asserts that
//   * `haven check --read-data --json` exits 1 and names the damaged object, every snapshot it
//     affects and every file path in them (compared with the affected set this file computes on
//     its own from the snapshots' trees and the index: no more, no fewer);
//   * `haven restore` refuses (exit 1, names the file) exactly the damaged files and restores
//     every other file bit-exact.
// Ground truth: the source files' bytes at the time of each backup, and the trees, index
// entries and pack locations read through the library from the pristine repository.
// Two tests prove that one damaged directory tree, or one damaged snapshot object, fails alone
// and does not stop the rest of a restore.
#include "check/check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "crypto/crypto.h"
#include "repo/repository.h"
#include "storage/backend.h"
#include "util/pages.h"

#include "support/fs_test_util.h"
#include "support/repo_test_util.h"

namespace haven {
namespace {

using nlohmann::json;
using repo::BlobType;
using repo::Id;
using repo::Node;
using repo::Tree;

const std::string kPw2 = "second password";

struct BlobKey {
  BlobType type;
  Id id;
  auto operator<=>(const BlobKey&) const = default;
};

struct Loc {
  std::string pack;  // hex
  uint32_t offset = 0, length = 0;
};

struct Snap {
  std::string id;  // full hex
  Id tree{};
  std::map<std::string, std::string> files;  // "src/a/f1.bin" -> bytes at backup time
};

// The pristine repository and everything known about it, built once for the whole binary.
struct World {
  std::string root, pristine;
  std::vector<Snap> snaps;                       // oldest first
  std::map<Id, Tree> trees;                      // every tree any snapshot reaches
  std::map<BlobKey, Loc> where;                  // every indexed blob
  std::map<std::string, std::vector<repo::PackRecord>> index_files;  // name -> packs it names
  std::vector<std::vector<std::string>> new_index_files;  // per backup, the index files it wrote
  std::map<std::string, uint64_t> pack_size;     // every pack in storage
  uint64_t blobs = 0;
  std::string key_id;
  bool ok = false;
};
World* W = nullptr;

// --- source tree -----------------------------------------------------------------------------

const char* const kDirs[] = {"src", "src/a", "src/a/deep", "src/b", "src/b/sub", "src/c"};
constexpr int kFiles = 30;

std::string file_rel(int i) { return std::string(kDirs[i % 6]) + "/f" + std::to_string(i) + ".bin"; }

size_t file_size(int i) {
  if (i == 0) return 2000000;
  if (i == 10) return 1300000;
  if (i == 20) return 900000;
  return 3000 + (static_cast<size_t>(i) * 104729u) % 250000;
}

// rel path ("src/...") -> bytes, for every regular file under root/src.
std::map<std::string, std::string> capture(const std::string& root) {
  std::map<std::string, std::string> out;
  for (const auto& [rel, m] : scan(root + "/src")) {
    if (m.type == S_IFREG) out["src/" + rel] = read_file(root + "/src/" + rel);
  }
  return out;
}

void load_trees(repo::Repository& r, const Id& id) {
  if (W->trees.count(id)) return;
  auto t = r.load_tree(id);
  ASSERT_TRUE(t.ok()) << t.error().message();
  W->trees[id] = *t;
  for (const auto& n : t->nodes) {
    if (n.type == Node::Type::kDir && n.subtree) load_trees(r, *n.subtree);
  }
}

std::set<std::string> index_dir(const std::string& repo) {
  auto v = list_dir(repo + "/index");
  return {v.begin(), v.end()};
}

void build_world() {
  crypto::init();
  char tmpl[] = "/tmp/haven-check-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
  W->root = tmpl;
  W->pristine = W->root + "/pristine";
  const std::string src = W->root + "/src";
  // Small chunks (64/256/1024 KiB) so that big files span several blobs, and 1 MiB packs so that
  // the repository has many packs.
  RunResult r = cli(W->pristine, {"init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size",
                                  "1", "--chunk-min", "64", "--chunk-avg", "256", "--chunk-max", "1024"});
  ASSERT_EQ(r.code, 0) << describe(r);
  for (const char* d : kDirs) make_dir(W->root + "/" + d);
  for (int i = 0; i < kFiles; i++) write_file(W->root + "/" + file_rel(i), random_bytes(file_size(i), 1000 + i));

  auto backup = [&] {
    std::set<std::string> before = index_dir(W->pristine);
    RunResult b = cli(W->pristine, {"backup", src});
    ASSERT_EQ(b.code, 0) << describe(b);
    std::vector<std::string> added;
    for (const auto& n : index_dir(W->pristine)) {
      if (!before.count(n)) added.push_back(n);
    }
    ASSERT_FALSE(added.empty());
    W->new_index_files.push_back(added);
    Snap s;
    s.files = capture(W->root);
    W->snaps.push_back(std::move(s));
  };
  // Snapshot 1: the tree as written.
  backup();
  if (::testing::Test::HasFatalFailure()) return;
  // Snapshot 2: two files rewritten (one of them big), one added, one deleted.
  write_file(W->root + "/" + file_rel(1), random_bytes(file_size(1) + 1000, 2001));
  write_file(W->root + "/" + file_rel(0), random_bytes(file_size(0), 2000));
  write_file(W->root + "/src/c/new1.bin", random_bytes(100000, 2002));
  ASSERT_EQ(unlink((W->root + "/" + file_rel(5)).c_str()), 0);
  backup();
  if (::testing::Test::HasFatalFailure()) return;
  // Snapshot 3: one file rewritten, one added. src/b and src/b/sub never change.
  write_file(W->root + "/" + file_rel(11), random_bytes(file_size(11) + 7, 3011));
  write_file(W->root + "/src/a/deep/new2.bin", random_bytes(50000, 3002));
  backup();
  if (::testing::Test::HasFatalFailure()) return;

  // What the repository holds, read through the library.
  auto be = storage::open_backend(W->pristine);
  ASSERT_TRUE(be.ok()) << be.error().message();
  auto opened = repo::Repository::open(*be, kPw);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  auto& repo = **opened;
  ASSERT_OK(repo.load_index());
  auto snaps = repo.list_snapshots();
  ASSERT_TRUE(snaps.ok()) << snaps.error().message();
  ASSERT_EQ(snaps->size(), 3u);
  for (size_t i = 0; i < 3; i++) {
    W->snaps[i].id = repo::hex((*snaps)[i].first);
    W->snaps[i].tree = (*snaps)[i].second.tree;
    load_trees(repo, W->snaps[i].tree);
    if (::testing::Test::HasFatalFailure()) return;
  }
  auto names = repo.list_index_files();
  ASSERT_TRUE(names.ok());
  for (const auto& n : *names) {
    auto recs = repo.load_index_file(n);
    ASSERT_TRUE(recs.ok()) << recs.error().message();
    W->index_files[n] = *recs;
    for (const auto& p : *recs) {
      for (const auto& b : p.blobs) {
        W->where[{b.type, b.id}] = {repo::hex(p.id), b.offset, b.length};
        W->blobs++;
      }
    }
  }
  ASSERT_OK(repo.backend().list(storage::ObjectType::kData, [&](const storage::ObjectInfo& i) {
    W->pack_size[i.name.name] = i.size;
  }));
  auto keys = list_dir(W->pristine + "/keys");
  ASSERT_EQ(keys.size(), 1u);
  W->key_id = keys[0];
  // The fixture is only useful if it has many packs and the snapshots share data.
  ASSERT_GE(W->pack_size.size(), 6u);
  ASSERT_EQ(W->new_index_files.size(), 3u);
  W->ok = true;
}


// --- expected damage --------------------------------------------------------------------------

// object -> snapshot -> paths ("/src/a/f1.bin", "/src/b" for a directory, "/" for a snapshot)
using Affected = std::map<std::string, std::set<std::string>>;
using Expected = std::map<std::string, Affected>;
// Which object (as check names it) makes this blob unusable, if any.
using BadFn = std::function<std::optional<std::string>(BlobType, const Id&)>;

void files_under(const Snap& s, const std::string& dir, std::set<std::string>* out) {
  for (const auto& [p, c] : s.files) {
    if (dir.empty() || p.rfind(dir + "/", 0) == 0) out->insert(p);
  }
}

// Walks a tree the way check does: a bad tree makes its directory the affected path (nothing
// below it is looked at); a file is affected by the first bad blob of its content.
void expect_walk(const Snap& s, const Id& tree, const std::string& rel, const BadFn& bad,
                 Expected& out, std::set<std::string>* lost) {
  if (auto o = bad(BlobType::kTree, tree)) {
    out[*o][s.id].insert("/" + rel);
    if (lost) files_under(s, rel, lost);
    return;
  }
  const Tree& t = W->trees.at(tree);
  for (const auto& n : t.nodes) {
    std::string path = rel.empty() ? n.name : rel + "/" + n.name;
    if (n.type == Node::Type::kFile) {
      for (const auto& c : n.content) {
        if (auto o = bad(BlobType::kData, c.id)) {
          out[*o][s.id].insert("/" + path);
          if (lost) lost->insert(path);
          break;
        }
      }
    } else if (n.type == Node::Type::kDir && n.subtree) {
      expect_walk(s, *n.subtree, path, bad, out, lost);
    }
  }
}

Expected expected_damage(const BadFn& bad, const std::set<size_t>& snaps = {0, 1, 2}) {
  Expected out;
  for (size_t i : snaps) expect_walk(W->snaps[i], W->snaps[i].tree, "", bad, out, nullptr);
  return out;
}

// The files of snapshot i that `bad` makes unrestorable ("src/..." paths).
std::set<std::string> lost_files(size_t i, const BadFn& bad) {
  Expected ignored;
  std::set<std::string> lost;
  expect_walk(W->snaps[i], W->snaps[i].tree, "", bad, ignored, &lost);
  return lost;
}

std::string blob_object(BlobType t, const Id& id) {
  return std::string(t == BlobType::kTree ? "tree" : "data") + " blob " + repo::hex(id);
}

// --- the repository on disk -------------------------------------------------------------------

std::string pack_path(const std::string& repo, const std::string& pack) {
  return repo + "/data/" + pack.substr(0, 2) + "/" + pack;
}

void flip_byte(const std::string& path, uint64_t offset) {
  ASSERT_EQ(chmod(path.c_str(), 0644), 0) << path << ": " << std::strerror(errno);
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  unsigned char c = 0;
  ASSERT_EQ(pread(fd, &c, 1, static_cast<off_t>(offset)), 1) << path << " @" << offset;
  c ^= 0xff;
  ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

void truncate_to(const std::string& path, uint64_t size) {
  ASSERT_EQ(chmod(path.c_str(), 0644), 0) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(size)), 0) << path << ": " << std::strerror(errno);
}

void remove_file(const std::string& path) {
  ASSERT_EQ(unlink(path.c_str()), 0) << path << ": " << std::strerror(errno);
}

uint64_t size_of(const std::string& path) {
  struct stat st{};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_size);
}

// Every file of a repository with its bytes, to prove that a command changed nothing.
std::map<std::string, std::string> digest(const std::string& repo) {
  std::map<std::string, std::string> out;
  for (const auto& [rel, m] : scan(repo)) {
    if (m.type == S_IFREG) out[rel] = read_file(repo + "/" + rel);
    else out[rel] = "<dir>";
  }
  return out;
}

// --- running check and restore ----------------------------------------------------------------

struct CheckRun {
  RunResult run;
  json j;
};

CheckRun check_json(const std::string& repo, std::vector<std::string> args = {"--read-data"},
                    RunOptions o = {}) {
  args.insert(args.begin(), {"--json", "check"});
  CheckRun c;
  c.run = o.env.empty() ? cli(repo, args) : run_haven([&] {
    std::vector<std::string> a{"-r", repo};
    a.insert(a.end(), args.begin(), args.end());
    return a;
  }(), o);
  c.j = json::parse(c.run.out, nullptr, false);
  EXPECT_TRUE(c.j.is_object()) << describe(c.run);
  if (!c.j.is_object()) c.j = json::object();
  return c;
}

std::vector<json> problems_of(const json& j, const std::string& severity) {
  std::vector<json> out;
  for (const auto& p : j.value("problems", json::array())) {
    if (p.value("severity", "") == severity) out.push_back(p);
  }
  return out;
}

bool no_problems(const json& j) { return j.contains("problems") && j["problems"].empty(); }

const json* find_problem(const json& j, const std::string& object) {
  for (const auto& p : j.at("problems")) {
    if (p.value("object", "") == object) return &p;
  }
  return nullptr;
}

// Check lists at most this many paths per problem and snapshot (Options::max_paths), and the
// total in "paths_total".
constexpr size_t kMaxPaths = 20;

// The damage problems of a report as object -> snapshot -> listed paths.
Expected damage_of(const json& j, std::map<std::pair<std::string, std::string>, uint64_t>* totals = nullptr) {
  Expected out;
  for (const auto& p : problems_of(j, "damage")) {
    auto& a = out[p.value("object", "")];
    for (const auto& s : p.value("affected", json::array())) {
      auto& paths = a[s.value("snapshot", "")];
      for (const auto& x : s.value("paths", json::array())) paths.insert(x.get<std::string>());
      if (totals) (*totals)[{p.value("object", ""), s.value("snapshot", "")}] = s.value("paths_total", uint64_t{0});
    }
  }
  return out;
}

std::string show(const Expected& e) {
  std::ostringstream os;
  for (const auto& [obj, aff] : e) {
    os << obj << "\n";
    for (const auto& [snap, paths] : aff) {
      os << "  " << snap.substr(0, 8) << " (" << paths.size() << "):";
      for (const auto& p : paths) os << " " << p;
      os << "\n";
    }
  }
  return os.str();
}

// The report's damage problems are exactly `want`: the same objects, each affecting the same
// snapshots, with the same paths in each (paths_total = all of them; where there are more than
// check lists, the listed ones are among them).
::testing::AssertionResult damage_is(const json& j, const Expected& want) {
  std::map<std::pair<std::string, std::string>, uint64_t> totals;
  Expected got = damage_of(j, &totals);
  auto fail = [&](const std::string& why) {
    return ::testing::AssertionFailure() << why << "\nreported:\n" << show(got) << "expected:\n" << show(want);
  };
  std::set<std::string> go, wo;
  for (const auto& [o, a] : got) go.insert(o);
  for (const auto& [o, a] : want) wo.insert(o);
  if (go != wo) return fail("different objects");
  for (const auto& [obj, aff] : want) {
    const Affected& g = got.at(obj);
    if (g.size() != aff.size()) return fail("different snapshots for " + obj);
    for (const auto& [snap, paths] : aff) {
      auto it = g.find(snap);
      if (it == g.end()) return fail(obj + " does not name snapshot " + snap);
      if (totals[{obj, snap}] != paths.size()) {
        return fail(obj + " in " + snap.substr(0, 8) + ": paths_total " + std::to_string(totals[{obj, snap}]) +
                    ", expected " + std::to_string(paths.size()));
      }
      if (paths.size() <= kMaxPaths ? it->second != paths
                                    : it->second.size() != kMaxPaths ||
                                          !std::includes(paths.begin(), paths.end(), it->second.begin(),
                                                         it->second.end())) {
        return fail(obj + " in " + snap.substr(0, 8) + ": different paths");
      }
    }
  }
  return ::testing::AssertionSuccess();
}

#define EXPECT_DAMAGE(j, expected) EXPECT_TRUE(damage_is((j), (expected)))

// Restores snapshot i into `target` and asserts: the files in `refused` are named in the error
// output and absent; every other file of the snapshot is there, bit-exact; nothing else is.
RunResult expect_restore(const std::string& repo, size_t i, const std::set<std::string>& refused,
                    const std::string& target, const std::string& ref = "", RunOptions o = {},
                    bool name_files = true) {
  const Snap& s = W->snaps[i];
  std::vector<std::string> args{"-r", repo, "restore", ref.empty() ? s.id : ref, "--target", target};
  if (o.env.empty()) o.env.emplace_back("HAVEN_PASSWORD", kPw);
  RunResult r = run_haven(args, o);
  if (refused.empty()) {
    EXPECT_EQ(r.code, 0) << describe(r);
  } else {
    EXPECT_EQ(r.code, 1) << describe(r);
  }
  std::set<std::string> want, got;
  for (const auto& [p, content] : s.files) {
    if (refused.count(p)) {
      if (name_files) {
        EXPECT_TRUE(contains(r.err, p)) << "restore does not name the damaged file " << p << "\n" << describe(r);
      }
      EXPECT_FALSE(exists(target + "/" + p)) << "damaged file " << p << " was written";
      continue;
    }
    want.insert(p);
    EXPECT_TRUE(read_file(target + "/" + p) == content) << p << " not restored bit-exact (exit " << r.code
                                                         << ", stderr: " << r.err.substr(0, 300) << ")";
  }
  for (const auto& [rel, m] : scan(target)) {
    if (m.type == S_IFREG) got.insert(rel);
  }
  EXPECT_EQ(got, want);
  return r;
}

// --- fixture ----------------------------------------------------------------------------------

class CheckTest : public ::testing::Test {
 protected:
  // The pristine repository is built once per process (ctest runs each test in a process of its
  // own; a whole-binary run builds it once), and only when a CheckTest runs.
  static void SetUpTestSuite() {
    W = new World;
    build_world();
  }
  static void TearDownTestSuite() {
    if (W && !W->root.empty()) {
      std::error_code ec;
      fs::remove_all(W->root, ec);
    }
    delete W;
    W = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(W && W->ok) << "the shared fixture repository could not be built";
    dir_ = W->root + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
    repo_ = dir_ + "/repo";
    fs::copy(W->pristine, repo_, fs::copy_options::recursive);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // A pack of backup `backup` that holds only data blobs, of which at least one belongs to a file
  // every snapshot has; the one with the most blobs, skipping `not_this`.
  std::string data_pack(size_t backup, const std::string& not_this = "") {
    std::set<Id> in_all;  // data blobs referenced by files in all three snapshots
    {
      std::map<Id, int> count;
      for (size_t i = 0; i < 3; i++) {
        std::set<Id> seen;
        expected_damage([&](BlobType t, const Id& id) -> std::optional<std::string> {
          if (t == BlobType::kData) seen.insert(id);
          return std::nullopt;
        }, {i});
        for (const auto& id : seen) count[id]++;
      }
      for (const auto& [id, n] : count) {
        if (n == 3) in_all.insert(id);
      }
    }
    std::string best;
    size_t best_blobs = 0;
    for (const auto& name : W->new_index_files[backup]) {
      for (const auto& p : W->index_files.at(name)) {
        std::string h = repo::hex(p.id);
        if (h == not_this) continue;
        bool data_only = std::all_of(p.blobs.begin(), p.blobs.end(),
                                     [](const auto& b) { return b.type == BlobType::kData; });
        bool shared = std::any_of(p.blobs.begin(), p.blobs.end(),
                                  [&](const auto& b) { return in_all.count(b.id) > 0; });
        if (data_only && shared && p.blobs.size() > best_blobs) {
          best = h;
          best_blobs = p.blobs.size();
        }
      }
    }
    EXPECT_FALSE(best.empty()) << "no data-only pack in backup " << backup;
    return best;
  }

  std::string dir_, repo_;
};

// A file whose content is the same in all three snapshots and spans at least two blobs.
std::pair<std::string, std::vector<Id>> shared_multi_blob_file() {
  std::map<std::string, std::vector<Id>> content[3];
  for (size_t i = 0; i < 3; i++) {
    std::function<void(const Id&, const std::string&)> walk = [&](const Id& t, const std::string& rel) {
      for (const auto& n : W->trees.at(t).nodes) {
        std::string p = rel.empty() ? n.name : rel + "/" + n.name;
        if (n.type == Node::Type::kFile) {
          for (const auto& c : n.content) content[i][p].push_back(c.id);
        }
        if (n.type == Node::Type::kDir && n.subtree) walk(*n.subtree, p);
      }
    };
    walk(W->snaps[i].tree, "");
  }
  for (const auto& [p, c] : content[0]) {
    if (c.size() >= 2 && content[1].count(p) && content[1][p] == c && content[2].count(p) &&
        content[2][p] == c) {
      return {p, c};
    }
  }
  ADD_FAILURE() << "no multi-blob file shared by all snapshots";
  return {};
}

// =============================================================================================

// A repository nothing has touched: exit 0, "healthy", no problem at all (not even a notice),
// and --read-data reads every pack and every blob the index lists.
TEST_F(CheckTest, HealthyRepositoryPassesAndReadDataReadsEveryPackAndBlob) {
  CheckRun c = check_json(repo_, {});
  EXPECT_EQ(c.run.code, 0) << describe(c.run);
  EXPECT_EQ(c.j.value("healthy", false), true);
  EXPECT_TRUE(no_problems(c.j)) << c.j.dump(2);
  EXPECT_EQ(c.j.value("packs_read", 99u), 0u);  // the structure check reads no pack

  c = check_json(repo_);
  EXPECT_EQ(c.run.code, 0) << describe(c.run);
  EXPECT_EQ(c.j.value("healthy", false), true);
  EXPECT_TRUE(no_problems(c.j)) << c.j.dump(2);
  EXPECT_EQ(c.j.value("keys", 0u), 1u);
  EXPECT_EQ(c.j.value("snapshots", 0u), 3u);
  EXPECT_EQ(c.j.value("index_files", 0u), W->index_files.size());
  EXPECT_EQ(c.j.value("packs", 0u), W->pack_size.size());
  EXPECT_EQ(c.j.value("packs_read", 0u), W->pack_size.size());
  EXPECT_EQ(c.j.value("blobs_read", 0u), W->blobs);
  uint64_t bytes = 0;
  for (const auto& [p, s] : W->pack_size) bytes += s;
  EXPECT_EQ(c.j.value("bytes_read", 0u), bytes);
  EXPECT_EQ(c.j.value("trees", 0u), W->trees.size());
  EXPECT_EQ(c.j.value("blobs_unused", 99u), 0u);

  // The text report says so too.
  RunResult t = cli(repo_, {"check", "--read-data"});
  EXPECT_EQ(t.code, 0) << describe(t);
  EXPECT_TRUE(contains(t.out, "no damage found")) << describe(t);
  // check holds only a shared lock, and releases it.
  EXPECT_TRUE(list_dir(repo_ + "/locks").empty());
}

// Reports each pack in two halves and then, breaking the contract that reported bytes stay as
// they are, overwrites the first half before reporting the rest (a real local backend reads).
class ScribbleAfterReportBackend : public storage::BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  Status load_streaming(const storage::ObjectName& n, uint64_t off, std::span<uint8_t> out,
                        const std::function<void(size_t)>& arrived) override {
    if (n.type != storage::ObjectType::kData || out.size() < 2) {
      return inner().load_streaming(n, off, out, arrived);
    }
    HAVEN_TRY(inner().load_into(n, off, out));
    arrived(out.size() / 2);
    std::fill(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(out.size() / 2), 0xEE);
    packs_++;
    arrived(out.size());
    return ok_status();
  }
  std::atomic<size_t> packs_{0};
};

// --read-data verifies each blob as its bytes arrive (an object store streams a pack): the
// blobs in the first half of every pack were verified before the scribble, so the only blobs
// found damaged are those that did not fit in the first half. Read whole and then verified,
// every pack would show damage in its first half.
TEST_F(CheckTest, ReadDataVerifiesEachBlobAsItsBytesArrive) {
  auto be = storage::open_backend(repo_);
  ASSERT_OK(be);
  auto scribbler = std::make_shared<ScribbleAfterReportBackend>(*be);
  auto opened = repo::Repository::open(scribbler, kPw);
  ASSERT_OK(opened);
  auto& repo = **opened;
  check::Options o;
  o.read_data = check::Options::ReadData::kAll;
  NullSink sink;
  repo::Session session(repo);
  auto rep = check::check(session, o, sink);
  ASSERT_OK(rep);
  EXPECT_EQ(scribbler->packs_.load(), W->pack_size.size());
  EXPECT_EQ(rep->packs_read, W->pack_size.size());
  // Blobs wholly in the first half of their pack: verified before the scribble, so not damaged.
  size_t first_half = 0, damaged_there = 0;
  for (const auto& [name, packs] : W->index_files) {
    for (const auto& p : packs) {
      const uint64_t size = W->pack_size.at(repo::hex(p.id));
      for (const auto& b : p.blobs) {
        if (uint64_t{b.offset} + b.length > size / 2) continue;
        first_half++;
        const std::string what = std::string(repo::blob_type_name(b.type)) + " blob " + repo::hex(b.id);
        for (const auto& problem : rep->problems) {
          if (problem.object == what) damaged_there++;
        }
      }
    }
  }
  EXPECT_GT(first_half, 10u) << "the test needs blobs in the first halves of packs";
  EXPECT_EQ(damaged_there, 0u) << "blobs were verified after the bytes they were read from changed";
}

// One flipped byte inside a data blob: only reading the data can find it. --read-data names the
// blob (and its pack) and the file in every snapshot that contains it — nothing else; restore
// refuses that file and restores every other file bit-exact.
TEST_F(CheckTest, FlippedByteInDataBlobIsFoundByReadDataWithTheFileInEverySnapshot) {
  auto [path, content] = shared_multi_blob_file();
  ASSERT_FALSE(path.empty());
  const Id victim = content.back();  // not the first blob: the file is still reported
  const Loc loc = W->where.at({BlobType::kData, victim});
  flip_byte(pack_path(repo_, loc.pack), loc.offset + loc.length / 2);

  // The structure check does not decrypt data blobs, so it may pass; if it reports anything,
  // it must be this blob.
  CheckRun s = check_json(repo_, {});
  if (s.run.code != 0) {
    EXPECT_EQ(s.run.code, 1) << describe(s.run);
    for (const auto& p : problems_of(s.j, "damage")) EXPECT_EQ(p.value("object", ""), blob_object(BlobType::kData, victim));
  }

  CheckRun c = check_json(repo_);
  EXPECT_EQ(c.run.code, 1) << describe(c.run);
  EXPECT_EQ(c.j.value("healthy", true), false);
  const std::string obj = blob_object(BlobType::kData, victim);
  EXPECT_DAMAGE(c.j, (Expected{{obj, {{W->snaps[0].id, {"/" + path}},
                                      {W->snaps[1].id, {"/" + path}},
                                      {W->snaps[2].id, {"/" + path}}}}}));
  if (const json* p = find_problem(c.j, obj)) {
    EXPECT_TRUE(contains(p->value("error", ""), loc.pack)) << "the pack is not named: " << p->dump();
  }
  EXPECT_EQ(c.j.value("packs_read", 0u), W->pack_size.size());  // a bad blob stops nothing

  // The human report lists the file under each snapshot.
  RunResult t = cli(repo_, {"check", "--read-data"});
  EXPECT_EQ(t.code, 1) << describe(t);
  EXPECT_TRUE(contains(t.out, "error: " + obj)) << describe(t);
  for (const auto& sn : W->snaps) {
    EXPECT_TRUE(contains(t.out, "affects snapshot " + sn.id.substr(0, 8) + ": /" + path)) << describe(t);
  }

  expect_restore(repo_, 0, {path}, dir_ + "/out0");
  expect_restore(repo_, 2, {path}, dir_ + "/out2");
}

// read-data gathers index positions a batch of packs at a time (memory bounded by the batch,
// not by the repository): with batches of one pack each, it still reads every pack and blob
// exactly once and still finds a flipped byte, as the whole-index pass does.
TEST_F(CheckTest, ReadDataInBatchesOfOnePackReadsEverythingOnceAndFindsDamage) {
  auto [path, content] = shared_multi_blob_file();
  ASSERT_FALSE(path.empty());
  const Id victim = content.back();
  const Loc loc = W->where.at({BlobType::kData, victim});
  flip_byte(pack_path(repo_, loc.pack), loc.offset + loc.length / 2);
  auto be = storage::open_backend(repo_);
  ASSERT_OK(be);
  auto opened = repo::Repository::open(*be, kPw);
  ASSERT_OK(opened);
  for (size_t batch : {size_t{1}, size_t{1} << 18}) {
    check::Options o;
    o.read_data = check::Options::ReadData::kAll;
    o.read_batch_blobs = batch;
    NullSink sink;
    repo::Session session(**opened);
    auto rep = check::check(session, o, sink);
    ASSERT_OK(rep);
    EXPECT_EQ(rep->packs_read, W->pack_size.size()) << "batch " << batch;
    EXPECT_EQ(rep->blobs_read, W->blobs) << "batch " << batch;
    std::vector<std::string> damaged;
    for (const auto& p : rep->problems) {
      if (p.damage) damaged.push_back(p.object);
    }
    EXPECT_EQ(damaged, std::vector<std::string>{blob_object(BlobType::kData, victim)}) << "batch " << batch;
  }
}

// A pack cut in half: the structure check alone finds it (the index says blobs reach past its
// end) and names every file with a blob in it, in every snapshot. Restore refuses the files
// whose blobs were cut off and restores the rest (blobs before the cut are intact).
TEST_F(CheckTest, TruncatedPackIsFoundByTheStructureCheck) {
  const std::string pack = data_pack(0);
  ASSERT_FALSE(pack.empty());
  const uint64_t cut = W->pack_size.at(pack) / 2;
  truncate_to(pack_path(repo_, pack), cut);
  const std::string obj = "pack " + pack;
  BadFn in_pack = [&](BlobType t, const Id& id) -> std::optional<std::string> {
    auto it = W->where.find({t, id});
    if (it != W->where.end() && it->second.pack == pack) return obj;
    return std::nullopt;
  };
  BadFn cut_off = [&](BlobType t, const Id& id) -> std::optional<std::string> {
    auto it = W->where.find({t, id});
    if (it != W->where.end() && it->second.pack == pack && it->second.offset + it->second.length > cut) return obj;
    return std::nullopt;
  };
  Expected want = expected_damage(in_pack);
  ASSERT_GE(want[obj].size(), 2u) << "the chosen pack should matter to several snapshots";

  CheckRun s = check_json(repo_, {});
  EXPECT_EQ(s.run.code, 1) << describe(s.run);
  EXPECT_DAMAGE(s.j, want);
  if (const json* p = find_problem(s.j, obj)) {
    EXPECT_TRUE(contains(p->value("error", ""), "truncated")) << p->dump();
  }

  CheckRun c = check_json(repo_);
  EXPECT_EQ(c.run.code, 1) << describe(c.run);
  EXPECT_DAMAGE(c.j, want);
  EXPECT_EQ(c.j.value("packs_read", 0u), W->pack_size.size() - 1);  // the truncated one is skipped

  // Every blob of a first-backup pack belongs to a file of snapshot 1, and the last one is cut off.
  std::set<std::string> lost = lost_files(0, cut_off);
  ASSERT_FALSE(lost.empty());
  expect_restore(repo_, 0, lost, dir_ + "/out0");
  expect_restore(repo_, 2, lost_files(2, cut_off), dir_ + "/out2");
}

// A deleted pack: named as missing, with every file that had a blob in it; restore refuses
// exactly those files.
TEST_F(CheckTest, DeletedPackIsReportedWithEveryAffectedFile) {
  const std::string pack = data_pack(0, data_pack(0));
  ASSERT_FALSE(pack.empty());
  remove_file(pack_path(repo_, pack));
  const std::string obj = "pack " + pack;
  BadFn in_pack = [&](BlobType t, const Id& id) -> std::optional<std::string> {
    auto it = W->where.find({t, id});
    if (it != W->where.end() && it->second.pack == pack) return obj;
    return std::nullopt;
  };
  Expected want = expected_damage(in_pack);
  ASSERT_GE(want[obj].size(), 2u);

  CheckRun s = check_json(repo_, {});
  EXPECT_EQ(s.run.code, 1) << describe(s.run);
  EXPECT_DAMAGE(s.j, want);
  if (const json* p = find_problem(s.j, obj)) {
    EXPECT_TRUE(contains(p->value("error", ""), "missing")) << p->dump();
  }

  CheckRun c = check_json(repo_);
  EXPECT_EQ(c.run.code, 1) << describe(c.run);
  EXPECT_DAMAGE(c.j, want);
  EXPECT_EQ(c.j.value("packs", 0u), W->pack_size.size() - 1);

  expect_restore(repo_, 2, lost_files(2, in_pack), dir_ + "/out2");
  expect_restore(repo_, 1, lost_files(1, in_pack), dir_ + "/out1");
}

// Blobs that only the index files `names` list. Once those files are gone, check gathers every
// blob and tree a snapshot needs that no index names into one problem, object "index".
std::set<BlobKey> only_in(const std::vector<std::string>& names) {
  std::set<BlobKey> only;
  for (const auto& name : names) {
    for (const auto& p : W->index_files.at(name)) {
      for (const auto& b : p.blobs) only.insert({b.type, b.id});
    }
  }
  return only;
}

// The "index" problem: its message counts the distinct blobs the snapshots reach that no index
// names (every blob of a file; nothing below a tree that is itself missing) and says what to do.
void expect_missing_message(const json& j, const std::vector<std::string>& names) {
  const std::set<BlobKey> only = only_in(names);
  std::set<BlobKey> hit;
  std::function<void(const Id&)> walk = [&](const Id& t) {
    if (only.count({BlobType::kTree, t})) {
      hit.insert({BlobType::kTree, t});
      return;
    }
    for (const auto& n : W->trees.at(t).nodes) {
      for (const auto& c : n.content) {
        if (only.count({BlobType::kData, c.id})) hit.insert({BlobType::kData, c.id});
      }
      if (n.type == Node::Type::kDir && n.subtree) walk(*n.subtree);
    }
  };
  for (const auto& s : W->snaps) walk(s.tree);
  ASSERT_FALSE(hit.empty());
  const json* p = find_problem(j, "index");
  ASSERT_NE(p, nullptr) << j.dump(2);
  const std::string error = p->value("error", "");
  EXPECT_TRUE(contains(error, std::to_string(hit.size()) + " blob(s) that snapshots reference are in no index"))
      << hit.size() << " expected: " << error;
  EXPECT_TRUE(contains(error, "haven repair index")) << error;
}

BadFn unindexed_without(const std::vector<std::string>& names) {
  auto only = std::make_shared<std::set<BlobKey>>(only_in(names));
  return [only](BlobType t, const Id& id) -> std::optional<std::string> {
    if (!only->count({t, id})) return std::nullopt;
    return std::string("index");
  };
}

void expect_unindexed_notices(const json& j, const std::vector<std::string>& names) {
  std::vector<repo::PackRecord> packs;
  for (const auto& n : names) {
    for (const auto& p : W->index_files.at(n)) packs.push_back(p);
  }
  EXPECT_EQ(j.value("packs_unindexed", 0u), packs.size());
  for (const auto& p : packs) {
    const json* n = find_problem(j, "pack " + repo::hex(p.id));
    ASSERT_NE(n, nullptr) << "no notice for unindexed pack " << repo::hex(p.id);
    EXPECT_EQ(n->value("severity", ""), "notice");
    EXPECT_TRUE(contains(n->value("error", ""), "not in any index")) << n->dump();
  }
}

// An index file with one flipped byte: check names the index file, and (as one problem, object
// "index") every file and directory of every snapshot whose blobs only that index listed —
// including the whole first snapshot, whose root tree it listed; the packs it named become
// unindexed notices. `haven repair index` rebuilds the index from the packs: check passes again
// and every snapshot restores bit-exact.
TEST_F(CheckTest, FlippedIndexFileIsReportedAndRepairIndexFixesIt) {
  // The index file of the first backup that lists the first snapshot's root tree.
  std::string idx;
  for (const auto& name : W->new_index_files[0]) {
    for (const auto& p : W->index_files.at(name)) {
      for (const auto& b : p.blobs) {
        if (b.type == BlobType::kTree && b.id == W->snaps[0].tree) idx = name;
      }
    }
  }
  ASSERT_FALSE(idx.empty());
  const std::string path = repo_ + "/index/" + idx;
  flip_byte(path, size_of(path) / 2);

  CheckRun c = check_json(repo_);
  EXPECT_EQ(c.run.code, 1) << describe(c.run);
  Expected want = expected_damage(unindexed_without({idx}));
  want["index " + idx];  // the index file itself, affecting nothing directly
  EXPECT_DAMAGE(c.j, want);
  // The first snapshot's root tree lived in that index: the whole snapshot is named.
  bool whole = false;
  for (const auto& [obj, aff] : want) {
    auto it = aff.find(W->snaps[0].id);
    whole |= it != aff.end() && it->second.count("/");
  }
  EXPECT_TRUE(whole);
  expect_missing_message(c.j, {idx});
  if (const json* p = find_problem(c.j, "index " + idx)) {
    EXPECT_TRUE(contains(p->value("error", ""), "repair index")) << p->dump();
  }
  expect_unindexed_notices(c.j, {idx});

  // Restore reads the index strictly: with an unreadable index file it refuses to start, and
  // says what to do.
  RunResult r = cli(repo_, {"restore", W->snaps[2].id, "--target", dir_ + "/before"});
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, idx)) << describe(r);

  RunResult rep = cli(repo_, {"--json", "repair", "index"});
  EXPECT_EQ(rep.code, 0) << describe(rep);
  EXPECT_FALSE(exists(path));
  c = check_json(repo_);
  EXPECT_EQ(c.run.code, 0) << describe(c.run);
  EXPECT_EQ(c.j.value("healthy", false), true);
  EXPECT_TRUE(no_problems(c.j)) << c.j.dump(2);
  EXPECT_EQ(c.j.value("blobs_read", 0u), W->blobs);
  for (size_t i = 0; i < 3; i++) expect_restore(repo_, i, {}, dir_ + "/out" + std::to_string(i));
}

// A deleted index file: there is no file left to name, but every file and directory whose blobs
// only it listed is reported (problem "index"), per snapshot; its packs are unindexed notices;
// snapshot 1, which needs nothing from it, still restores; repair index fixes the rest.
TEST_F(CheckTest, DeletedIndexFileIsReportedThroughItsFilesAndRepairIndexFixesIt) {
  const std::string idx = W->new_index_files[1][0];
  remove_file(repo_ + "/index/" + idx);

  CheckRun c = check_json(repo_);
  EXPECT_EQ(c.run.code, 1) << describe(c.run);
  Expected want = expected_damage(unindexed_without({idx}));
  bool second_affected = false;
  for (const auto& [obj, aff] : want) second_affected |= aff.count(W->snaps[1].id) > 0;
  EXPECT_TRUE(second_affected) << "the fixture should make snapshot 2 depend on its own index file";
  EXPECT_DAMAGE(c.j, want);
  expect_missing_message(c.j, {idx});
  expect_unindexed_notices(c.j, {idx});
  // Snapshot 1 never used what backup 2 wrote.
  for (const auto& [obj, aff] : damage_of(c.j)) EXPECT_FALSE(aff.count(W->snaps[0].id)) << obj;
  expect_restore(repo_, 0, {}, dir_ + "/first");

  RunResult rep = cli(repo_, {"repair", "index"});
  EXPECT_EQ(rep.code, 0) << describe(rep);
  c = check_json(repo_);
  EXPECT_EQ(c.run.code, 0) << describe(c.run);
  EXPECT_TRUE(no_problems(c.j)) << c.j.dump(2);
  expect_restore(repo_, 1, {}, dir_ + "/out1");
  expect_restore(repo_, 2, {}, dir_ + "/out2");
}

// A snapshot object with a flipped byte: that snapshot is named as damaged as a whole ("/");
// the other snapshots are fine and restore bit-exact by ID, and restoring the damaged one
// fails with a message naming it.
TEST_F(CheckTest, FlippedSnapshotObjectIsReportedAndTheOthersStillRestore) {
  const Snap& bad = W->snaps[1];
  const std::string path = repo_ + "/snapshots/" + bad.id;
  flip_byte(path, size_of(path) - 20);

  CheckRun c = check_json(repo_);
  EXPECT_EQ(c.run.code, 1) << describe(c.run);
  EXPECT_DAMAGE(c.j, (Expected{{"snapshot " + bad.id, {{bad.id, {"/"}}}}}));
  EXPECT_EQ(c.j.value("snapshots", 0u), 3u);

  RunResult r = cli(repo_, {"restore", bad.id, "--target", dir_ + "/bad"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, bad.id)) << describe(r);
  expect_restore(repo_, 0, {}, dir_ + "/out0");
  expect_restore(repo_, 2, {}, dir_ + "/out2");
}

// One damaged snapshot object must not take the others down with it: `restore latest` still
// restores the newest snapshot when an older one is damaged, and `haven snapshots` lists the
// others (the damaged one is named in a warning).
TEST_F(CheckTest, RestoreLatestWorksWhenAnOlderSnapshotIsDamaged) {
  const std::string path = repo_ + "/snapshots/" + W->snaps[0].id;
  flip_byte(path, size_of(path) - 20);
  expect_restore(repo_, 2, {}, dir_ + "/latest", "latest");
  RunResult r = cli(repo_, {"snapshots"});
  EXPECT_TRUE(contains(r.out, W->snaps[2].id.substr(0, 8))) << describe(r);
}

// A stray file among the snapshot objects (its name is not a snapshot ID) is named as a notice,
// not damage: check exits 0, counts it among the snapshot objects, and still walks the three
// real snapshots (no tree is left as the root of no snapshot).
TEST_F(CheckTest, StrayFileAmongSnapshotsIsANoticeAndTheSnapshotsAreStillWalked) {
  {
    std::ofstream f(repo_ + "/snapshots/notes.txt");
    f << "not a snapshot";
  }
  CheckRun c = check_json(repo_);
  EXPECT_EQ(c.run.code, 0) << describe(c.run);
  EXPECT_TRUE(problems_of(c.j, "damage").empty()) << c.j.dump(2);
  EXPECT_EQ(c.j.value("snapshots", 0u), 4u);
  auto notices = problems_of(c.j, "notice");
  ASSERT_EQ(notices.size(), 1u) << c.j.dump(2);
  EXPECT_EQ(notices[0].value("object", ""), "snapshot notes.txt");
  EXPECT_TRUE(contains(notices[0].value("error", ""), "not a valid snapshot name")) << c.j.dump(2);
}

// Deleting a snapshot object is not damage (it is what 'haven forget' does): check exits 0 and
// only notes, as a notice, that a directory tree is now the root of no snapshot (prune reclaims
// it). Nothing names the lost snapshot: its ID is gone with the object.
TEST_F(CheckTest, DeletedSnapshotLeavesOnlyAnOrphanRootTreeNotice) {
  remove_file(repo_ + "/snapshots/" + W->snaps[2].id);
  CheckRun c = check_json(repo_);
  EXPECT_EQ(c.run.code, 0) << describe(c.run);
  EXPECT_EQ(c.j.value("healthy", false), true);
  EXPECT_TRUE(problems_of(c.j, "damage").empty()) << c.j.dump(2);
  EXPECT_EQ(c.j.value("snapshots", 0u), 2u);
  EXPECT_GT(c.j.value("blobs_unused", 0u), 0u);
  auto notices = problems_of(c.j, "notice");
  ASSERT_EQ(notices.size(), 1u) << c.j.dump(2);
  EXPECT_EQ(notices[0].value("object", ""), "trees");
  // Snapshot 3 added one directory level of new trees above new2.bin and f11.bin: exactly one
  // of them is a root.
  EXPECT_TRUE(contains(notices[0].value("error", ""), "1 directory tree(s) are the root of no snapshot"))
      << notices[0].dump();
  RunResult t = cli(repo_, {"check"});
  EXPECT_EQ(t.code, 0) << describe(t);
  EXPECT_TRUE(contains(t.out, "notice: trees: 1 directory tree(s) are the root of no snapshot")) << describe(t);
}

struct SharedTree {
  Id tree{};
  std::string dir;             // "src/b/sub"
  std::set<size_t> holders;    // snapshots that contain it
};

// Flips a byte inside the record of the non-root directory tree the most snapshots share.
SharedTree damage_shared_tree(const std::string& repo) {
  std::map<Id, std::pair<std::string, std::set<size_t>>> dirs;
  for (size_t i = 0; i < 3; i++) {
    std::function<void(const Id&, const std::string&)> walk = [&](const Id& t, const std::string& rel) {
      for (const auto& n : W->trees.at(t).nodes) {
        if (n.type != Node::Type::kDir || !n.subtree) continue;
        std::string p = rel.empty() ? n.name : rel + "/" + n.name;
        dirs[*n.subtree].first = p;
        dirs[*n.subtree].second.insert(i);
        walk(*n.subtree, p);
      }
    };
    walk(W->snaps[i].tree, "");
  }
  SharedTree out;
  for (const auto& [id, d] : dirs) {
    if (d.second.size() > out.holders.size() && d.first != "src") out = {id, d.first, d.second};
  }
  EXPECT_GE(out.holders.size(), 2u) << "no directory tree is shared by two snapshots";
  if (out.holders.empty()) return out;
  const Loc loc = W->where.at({BlobType::kTree, out.tree});
  flip_byte(pack_path(repo, loc.pack), loc.offset + loc.length / 2);
  return out;
}

// A directory whose tree blob is damaged: the structure check already finds it (it decrypts
// every tree); check names the tree, and that directory (not each file below it) in every
// snapshot containing it. Restore fails naming the tree, and writes nothing below that directory
// and no file with wrong bytes.
TEST_F(CheckTest, DamagedTreeNamesTheDirectoryInEverySnapshotContainingIt) {
  const SharedTree t = damage_shared_tree(repo_);
  ASSERT_FALSE(t.holders.empty());

  Expected want;
  for (size_t i : t.holders) want["tree " + repo::hex(t.tree)][W->snaps[i].id] = {"/" + t.dir};
  CheckRun s = check_json(repo_, {});
  EXPECT_EQ(s.run.code, 1) << describe(s.run);
  EXPECT_DAMAGE(s.j, want);

  // With --read-data the same tree is found while reading its pack (and named as a blob).
  Expected want_rd;
  for (size_t i : t.holders) want_rd[blob_object(BlobType::kTree, t.tree)][W->snaps[i].id] = {"/" + t.dir};
  CheckRun c = check_json(repo_);
  EXPECT_EQ(c.run.code, 1) << describe(c.run);
  EXPECT_DAMAGE(c.j, want_rd);

  const size_t i = *t.holders.rbegin();
  const std::string out = dir_ + "/out";
  RunResult r = cli(repo_, {"restore", W->snaps[i].id, "--target", out});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, repo::hex(t.tree))) << describe(r);
  for (const auto& [rel, m] : scan(out)) {
    if (m.type != S_IFREG) continue;
    EXPECT_NE(rel.rfind(t.dir + "/", 0), 0u) << rel << " restored below the damaged directory";
    auto it = W->snaps[i].files.find(rel);
    ASSERT_NE(it, W->snaps[i].files.end()) << rel;
    EXPECT_TRUE(read_file(out + "/" + rel) == it->second) << rel << " restored with wrong bytes";
  }
}

// What the issue asks of restore when a directory's tree is damaged: refuse the files below it
// (naming them or the directory) and still restore every other file.
TEST_F(CheckTest, RestoreSkipsADamagedDirectoryAndRestoresTheRest) {
  const SharedTree t = damage_shared_tree(repo_);
  ASSERT_FALSE(t.holders.empty());
  for (size_t i : t.holders) {
    std::set<std::string> lost;
    files_under(W->snaps[i], t.dir, &lost);
    ASSERT_FALSE(lost.empty());
    RunResult r = expect_restore(repo_, i, lost, dir_ + "/out" + std::to_string(i), "", {}, /*name_files=*/false);
    EXPECT_TRUE(contains(r.err, t.dir)) << "restore does not name the damaged directory\n" << describe(r);
  }
}

// Adds a second key (password kPw2) through the CLI; returns its ID.
std::string add_second_key(const std::string& repo) {
  auto before = list_dir(repo + "/keys");
  RunOptions o;
  o.env.emplace_back("HAVEN_NEW_PASSWORD", kPw2);
  RunResult r = cli(repo, {"key", "add", "--kdf-memory", "8", "--kdf-iterations", "1"}, o);
  EXPECT_EQ(r.code, 0) << describe(r);
  for (const auto& k : list_dir(repo + "/keys")) {
    if (std::find(before.begin(), before.end(), k) == before.end()) return k;
  }
  ADD_FAILURE() << "key add wrote no key file";
  return "";
}

// Flips one hex digit of a key file's "data" value: the file still parses as JSON, so only its
// checksum (or the decryption) can tell.
void flip_key_data(const std::string& path) {
  std::string text = read_file(path);
  size_t at = text.find("\"data\": \"");
  ASSERT_NE(at, std::string::npos) << text;
  at += 9 + 10;
  text[at] = text[at] == '0' ? '1' : '0';
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  write_file(path, text);
}

RunOptions with_password(const std::string& pw) {
  RunOptions o;
  o.env.emplace_back("HAVEN_PASSWORD", pw);
  return o;
}

// With two keys, a damaged key file (one hex digit flipped, or truncated) is reported by name,
// and the repository still opens with the other key's password: check runs, restore works.
TEST_F(CheckTest, DamagedKeyIsReportedAndTheOtherKeyStillOpens) {
  const std::string second = add_second_key(repo_);
  ASSERT_FALSE(second.empty());
  const std::string first_path = repo_ + "/keys/" + W->key_id, second_path = repo_ + "/keys/" + second;
  const std::string second_copy = read_file(second_path);

  // The second key damaged, opened with the first.
  flip_key_data(second_path);
  CheckRun c = check_json(repo_, {});
  EXPECT_EQ(c.run.code, 1) << describe(c.run);
  EXPECT_DAMAGE(c.j, (Expected{{"key " + second, {}}}));
  EXPECT_EQ(c.j.value("keys", 0u), 2u);
  RunResult no = run_haven({"-r", repo_, "check"}, with_password(kPw2));
  EXPECT_EQ(no.code, 12) << "a damaged key must not open\n" << describe(no);

  truncate_to(second_path, second_copy.size() / 2);
  c = check_json(repo_, {});
  EXPECT_EQ(c.run.code, 1) << describe(c.run);
  EXPECT_DAMAGE(c.j, (Expected{{"key " + second, {}}}));

  // The first key damaged, the second intact: the first password no longer opens, the second
  // does, and check names the first key.
  write_file(second_path, second_copy);
  flip_key_data(first_path);
  RunResult r = cli(repo_, {"check"});
  EXPECT_EQ(r.code, 12) << describe(r);
  c = check_json(repo_, {}, with_password(kPw2));
  EXPECT_EQ(c.run.code, 1) << describe(c.run);
  EXPECT_DAMAGE(c.j, (Expected{{"key " + W->key_id, {}}}));
  if (const json* p = find_problem(c.j, "key " + W->key_id)) {
    EXPECT_TRUE(contains(p->value("error", ""), "damaged")) << p->dump();
  }
  expect_restore(repo_, 2, {}, dir_ + "/out2", "", with_password(kPw2));
}

// Without any key file the repository cannot be opened: a clear message, exit 12, for check
// and restore alike.
TEST_F(CheckTest, DeletedOnlyKeyMakesOpeningFailClearly) {
  remove_file(repo_ + "/keys/" + W->key_id);
  RunResult c = cli(repo_, {"check", "--read-data"});
  EXPECT_EQ(c.code, 12) << describe(c);
  EXPECT_TRUE(contains(c.err, "no key for this repository")) << describe(c);
  RunResult r = cli(repo_, {"restore", "latest", "--target", dir_ + "/out"});
  EXPECT_EQ(r.code, 12) << describe(r);
  EXPECT_TRUE(contains(r.err, "no key for this repository")) << describe(r);
  EXPECT_FALSE(exists(dir_ + "/out/src"));
}

// --read-data-subset K/N: the N groups together read every pack exactly once (and every blob),
// and a damaged blob is found by exactly one of them.
TEST_F(CheckTest, ReadDataSubsetGroupsTogetherReadEveryPackOnce) {
  auto [path, content] = shared_multi_blob_file();
  ASSERT_FALSE(path.empty());
  const Loc loc = W->where.at({BlobType::kData, content.front()});
  flip_byte(pack_path(repo_, loc.pack), loc.offset + loc.length / 2);
  const std::string obj = blob_object(BlobType::kData, content.front());
  for (int n : {1, 3}) {
    uint64_t packs = 0, blobs = 0;
    int found = 0;
    for (int k = 1; k <= n; k++) {
      CheckRun c = check_json(repo_, {"--read-data-subset", std::to_string(k) + "/" + std::to_string(n)});
      packs += c.j.value("packs_read", 0u);
      blobs += c.j.value("blobs_read", 0u);
      if (find_problem(c.j, obj)) {
        found++;
        EXPECT_EQ(c.run.code, 1) << describe(c.run);
        EXPECT_DAMAGE(c.j, (Expected{{obj, {{W->snaps[0].id, {"/" + path}},
                                            {W->snaps[1].id, {"/" + path}},
                                            {W->snaps[2].id, {"/" + path}}}}}));
      } else {
        EXPECT_EQ(c.run.code, 0) << describe(c.run);
        EXPECT_TRUE(problems_of(c.j, "damage").empty()) << c.j.dump(2);
      }
    }
    EXPECT_EQ(packs, W->pack_size.size()) << n << " groups";
    EXPECT_EQ(blobs, W->blobs) << n << " groups";
    EXPECT_EQ(found, 1) << n << " groups";
  }
}

// --read-data-subset N%: reads that share of the packs (rounded up).
TEST_F(CheckTest, ReadDataSubsetPercentReadsThatShareOfThePacks) {
  const uint64_t packs = W->pack_size.size();
  CheckRun half = check_json(repo_, {"--read-data-subset", "50%"});
  EXPECT_EQ(half.run.code, 0) << describe(half.run);
  EXPECT_EQ(half.j.value("packs_read", 0u), (packs + 1) / 2);
  CheckRun all = check_json(repo_, {"--read-data-subset", "100%"});
  EXPECT_EQ(all.j.value("packs_read", 0u), packs);
  EXPECT_EQ(all.j.value("blobs_read", 0u), W->blobs);
  CheckRun tiny = check_json(repo_, {"--read-data-subset", "0.1%"});
  EXPECT_EQ(tiny.j.value("packs_read", 0u), 1u);
}

// Malformed subsets are refused before anything is opened: exit 2, a message naming the
// option, and the repository is left exactly as it was (no lock either).
TEST_F(CheckTest, BadReadDataSubsetIsRefusedAndChangesNothing) {
  const auto before = digest(repo_);
  for (const std::string spec : {"0%", "101%", "-5%", "3/2", "0/3", "1/0", "x", "50", "1/2/3", "-1/2", "%", "nan%"}) {
    RunResult r = cli(repo_, {"check", "--read-data-subset=" + spec});
    EXPECT_EQ(r.code, 2) << spec << "\n" << describe(r);
    EXPECT_TRUE(contains(r.err, "--read-data-subset")) << spec << "\n" << describe(r);
    EXPECT_EQ(r.out, "") << spec;
  }
  RunResult both = cli(repo_, {"check", "--read-data", "--read-data-subset", "1/2"});
  EXPECT_EQ(both.code, 2) << describe(both);
  EXPECT_TRUE(digest(repo_) == before) << "a refused check changed the repository";
}

// Packs no index names (what an interrupted backup leaves: packs uploaded, neither their index
// file nor a snapshot written — simulated by removing the last backup's snapshot and index
// file) are a notice, not damage: exit 0. --read-data still reads them. `repair index` indexes
// them again, after which only the orphan root tree of the lost snapshot is noted.
TEST_F(CheckTest, UnindexedLeftoverPacksAreOnlyANotice) {
  remove_file(repo_ + "/snapshots/" + W->snaps[2].id);
  const std::vector<std::string>& idx = W->new_index_files[2];
  size_t packs = 0;
  for (const auto& name : idx) {
    remove_file(repo_ + "/index/" + name);
    packs += W->index_files.at(name).size();
  }
  // Nothing the remaining snapshots use was in them.
  ASSERT_TRUE(expected_damage(unindexed_without(idx), {0, 1}).empty());

  CheckRun c = check_json(repo_);
  EXPECT_EQ(c.run.code, 0) << describe(c.run);
  EXPECT_EQ(c.j.value("healthy", false), true);
  EXPECT_TRUE(problems_of(c.j, "damage").empty()) << c.j.dump(2);
  expect_unindexed_notices(c.j, idx);
  EXPECT_EQ(problems_of(c.j, "notice").size(), packs) << c.j.dump(2);
  EXPECT_EQ(c.j.value("packs_read", 0u), W->pack_size.size());

  RunResult rep = cli(repo_, {"--json", "repair", "index"});
  EXPECT_EQ(rep.code, 0) << describe(rep);
  c = check_json(repo_);
  EXPECT_EQ(c.run.code, 0) << describe(c.run);
  EXPECT_EQ(c.j.value("packs_unindexed", 99u), 0u);
  auto notices = problems_of(c.j, "notice");
  ASSERT_EQ(notices.size(), 1u) << c.j.dump(2);
  EXPECT_EQ(notices[0].value("object", ""), "trees");
  expect_restore(repo_, 1, {}, dir_ + "/out1");
}

// A blob whose content does not hash to its ID (sealed under the wrong ID by a faulty writer:
// the seal itself is sound) is damage, named alone, wherever it falls among blobs hashed two
// at a time: the second of a pair, the first of the next, and the last one, hashed alone.
TEST_F(CheckTest, ReadDataFindsContentThatDoesNotHashToItsIdInEitherPlaceOfAPair) {
  auto opened = init_repo(dir_ + "/mislabelled");
  ASSERT_TRUE(opened);
  auto& repo = *opened;
  std::set<std::string> wrong;
  {
    repo::Session session(repo);
    session.set_max_packers(1);  // one pack, in the order saved
    for (int i = 0; i < 7; i++) {
      std::string data = i % 2 == 0 ? random_bytes(40000 + 5000 * size_t(i), 500 + i)
                                    : std::string(60000 + 1000 * size_t(i), char('a' + i));
      ByteView bytes = as_bytes(data);
      Id id = repo.blob_id(bytes);
      if (i == 1 || i == 2 || i == 6) {
        id = repo.blob_id(as_bytes("not this content " + std::to_string(i)));
        wrong.insert(blob_object(BlobType::kData, id));
      }
      auto saved = session.save_blob_with_id(BlobType::kData, id, bytes);
      ASSERT_OK(saved);
    }
    ASSERT_OK(session.flush());
  }
  check::Options o;
  o.read_data = check::Options::ReadData::kAll;
  o.threads = 1;
  NullSink sink;
  repo::Session session(repo);
  auto rep = check::check(session, o, sink);
  ASSERT_OK(rep);
  EXPECT_EQ(rep->blobs_read, 7u);
  std::set<std::string> damaged;
  for (const auto& p : rep->problems) {
    if (!p.damage) continue;
    damaged.insert(p.object);
    EXPECT_TRUE(contains(p.error, "content does not hash to its ID")) << p.object << ": " << p.error;
  }
  EXPECT_EQ(damaged, wrong);
}

// A reader's blob buffers are sized for the largest blob the index names once, not grown blob
// by blob: each growth was a new mapping, its pages faulted in afresh, and an unmapping that
// stalls the other readers' page faults. Twelve files of 70 to 290 KB, each one blob (below the
// chunker's minimum) half random and half compressible, backed up in order of size.
TEST_F(CheckTest, ReadDataMapsEachReadersBlobBuffersOnceNotPerLargerBlob) {
  const std::string repo = dir_ + "/growing", src = dir_ + "/growing-src";
  cli_init(repo);
  make_dir(src);
  constexpr int kSteps = 12;
  for (int i = 0; i < kSteps; i++) {
    const size_t size = 70000 + size_t(i) * 20000;
    std::string data = random_bytes(size / 2, 7000 + i) + std::string(size - size / 2, char('a' + i));
    char name[16];
    std::snprintf(name, sizeof name, "f%02d", i);
    write_file(src + "/" + name, data);
  }
  RunResult b = cli(repo, {"backup", src});
  ASSERT_EQ(b.code, 0) << describe(b);
  auto be = storage::open_backend(repo);
  ASSERT_OK(be);
  auto opened = repo::Repository::open(*be, kPw);
  ASSERT_OK(opened);
  for (size_t threads : {size_t{1}, size_t{2}}) {
    check::Options o;
    o.read_data = check::Options::ReadData::kAll;
    o.threads = threads;
    NullSink sink;
    repo::Session session(**opened);
    const size_t before = mappings_made();
    auto rep = check::check(session, o, sink);
    const size_t made = mappings_made() - before;
    ASSERT_OK(rep);
    EXPECT_FALSE(rep->damaged());
    EXPECT_EQ(rep->blobs_read, size_t{kSteps} + 2);  // and two trees
    // Per reader: the pack buffer and two sets of sealed and plain blob buffers (two blobs are
    // hashed side by side); the rest of the check maps a few more, none per blob. Grown to
    // fit, the blob buffers mapped ~2 x 12 times.
    EXPECT_LE(made, 5 * threads + 3) << threads << " reader(s)";
  }
}

}  // namespace
}  // namespace haven

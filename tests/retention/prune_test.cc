// Tests of `haven prune` (retention/prune.h) and `haven repair index` (check/repair.h, through
// the real binary: this test binary does not link the check module).
//
// Snapshots are written through the library with data the test keeps, so that after every
// prune each remaining snapshot can be read completely (every tree, every data blob compared
// with the bytes saved) from a freshly opened repository. What prune should delete is worked
// out here independently: from which packs each snapshot wrote, and from a walk of the trees.
// A fault-injecting backend wrapper records the order of prune's writes and deletions and
// fails them one by one to show a prune cut short anywhere leaves every snapshot readable.
#include "retention/prune.h"

#include <malloc.h>
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// From the sanitizers' allocator interface (GCC 12 does not ship <sanitizer/allocator_interface.h>).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

// The shared helpers are many small functions in an anonymous namespace; this file uses few.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"
#pragma GCC diagnostic pop

#include "storage/local.h"
#include "util/sysinfo.h"

namespace haven {
namespace {

using repo::BlobType;
using repo::Id;
using repo::PackRecord;
using repo::Repository;
using storage::ObjectName;
using storage::ObjectType;

constexpr uint32_t kPtPackSize = 1u << 20;  // the smallest pack size init allows

using PtKey = std::pair<BlobType, Id>;

// ---------------------------------------------------------------------------------------------
// Helpers (prefixed "pt_"/"Pt" so that nothing clashes with other files of this test binary)

// Checks that `r` failed with `code` and a message containing every one of `parts`.
template <typename T>
::testing::AssertionResult PtFails(const Result<T>& r, Error::Code code,
                                   std::initializer_list<std::string> parts = {}) {
  if (r.ok()) return ::testing::AssertionFailure() << "succeeded; expected " << code_name(code);
  if (r.error().code() != code) {
    return ::testing::AssertionFailure() << "failed with " << code_name(r.error().code()) << ": "
                                         << r.error().message() << "; expected "
                                         << code_name(code);
  }
  for (const auto& p : parts) {
    if (r.error().message().find(p) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "message '" << r.error().message() << "' does not contain '" << p << "'";
    }
  }
  return ::testing::AssertionSuccess();
}

Bytes pt_chunk(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ULL + 12345);
  Bytes b(n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(b.data() + i, &v, 8);
  }
  for (; i < n; i++) b[i] = static_cast<uint8_t>(rng());
  return b;
}

std::unique_ptr<Repository> pt_open_over(std::shared_ptr<storage::Backend> be) {
  auto r = Repository::open(std::move(be), kPw);
  EXPECT_TRUE(r.ok()) << r.error().message();
  if (!r.ok()) return nullptr;
  return std::move(*r);
}

std::unique_ptr<Repository> pt_open(const std::string& dir) {
  auto be = storage::open_backend(dir);
  EXPECT_TRUE(be.ok()) << be.error().message();
  if (!be.ok()) return nullptr;
  return pt_open_over(*be);
}

// Packs in storage: name -> size.
std::map<std::string, uint64_t> pt_packs(const std::string& dir) {
  std::map<std::string, uint64_t> out;
  storage::LocalBackend be(dir);
  Status s = be.list(ObjectType::kData, [&](const storage::ObjectInfo& i) { out[i.name.name] = i.size; });
  EXPECT_TRUE(s.ok()) << s.error().message();
  return out;
}

std::set<std::string> pt_names(const std::string& dir, ObjectType t) {
  std::set<std::string> out;
  storage::LocalBackend be(dir);
  Status s = be.list(t, [&](const storage::ObjectInfo& i) { out.insert(i.name.name); });
  EXPECT_TRUE(s.ok()) << s.error().message();
  return out;
}

std::string pt_path(const std::string& dir, ObjectType t, const std::string& name) {
  return storage::LocalBackend(dir).path_of(ObjectName{t, name});
}

uint64_t pt_sum(const std::map<std::string, uint64_t>& m) {
  uint64_t n = 0;
  for (const auto& [k, v] : m) n += v;
  return n;
}

std::set<std::string> pt_minus(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::set<std::string> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::inserter(out, out.end()));
  return out;
}

std::set<std::string> pt_keys(const std::map<std::string, uint64_t>& m) {
  std::set<std::string> out;
  for (const auto& [k, v] : m) out.insert(k);
  return out;
}

// Every file under `dir` with its bytes, and every directory: a byte-for-byte picture.
std::map<std::string, std::string> pt_bytes(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    std::string rel = fs::relative(e.path(), dir).string();
    out[rel] = e.is_directory() ? std::string("<dir>") : read_file(e.path().string());
  }
  return out;
}

// Names the differences between two byte pictures (for failure messages).
std::string pt_diff(const std::map<std::string, std::string>& a,
                    const std::map<std::string, std::string>& b) {
  std::ostringstream os;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end()) os << "  gone: " << k << "\n";
    else if (it->second != v) os << "  changed: " << k << "\n";
  }
  for (const auto& [k, v] : b) {
    if (!a.count(k)) os << "  new: " << k << "\n";
  }
  return os.str();
}

void pt_copy(const std::string& from, const std::string& to) {
  fs::copy(from, to, fs::copy_options::recursive);
}

void pt_flip(const std::string& path, uint64_t offset) {
  std::string s = read_file(path);
  ASSERT_LT(offset, s.size()) << path;
  s[offset] = static_cast<char>(s[offset] ^ 0x20);
  ::chmod(path.c_str(), 0644);
  write_file(path, s);
}

// Every pack record of every index file.
std::vector<PackRecord> pt_index_records(const std::string& dir) {
  std::vector<PackRecord> out;
  auto r = pt_open(dir);
  if (!r) return out;
  auto names = r->list_index_files();
  EXPECT_TRUE(names.ok());
  if (!names.ok()) return out;
  for (const auto& n : *names) {
    auto recs = r->load_index_file(n);
    EXPECT_TRUE(recs.ok()) << recs.error().message();
    if (!recs.ok()) continue;
    for (auto& p : *recs) out.push_back(std::move(p));
  }
  return out;
}

std::set<std::string> pt_indexed_packs(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& p : pt_index_records(dir)) out.insert(repo::hex(p.id));
  return out;
}

// Every blob the index files list, with its stored sizes, sorted: two repositories holding the
// same blobs, each once, give the same list whatever packs hold them.
std::vector<std::tuple<BlobType, Id, uint32_t, uint32_t>> pt_blob_list(const std::string& dir) {
  std::vector<std::tuple<BlobType, Id, uint32_t, uint32_t>> out;
  for (const auto& p : pt_index_records(dir)) {
    for (const auto& b : p.blobs) out.emplace_back(b.type, b.id, b.length, b.raw_length);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// --- snapshots whose content the test knows ---------------------------------------------------

struct PtFile {
  std::string name;
  std::vector<std::pair<uint64_t, size_t>> chunks;  // (seed, size) of each data blob
};

struct PtSnap {
  std::string label;
  std::vector<PtFile> files;
  std::vector<PtFile> sub;      // files of the subdirectory "sub" (none: no subdirectory)
  bool flush_before_trees = false;  // data blobs in their own pack, trees in another
};

struct PtHistory {
  std::map<Id, Bytes> content;                            // every data blob saved
  std::map<std::string, Id> snaps;                        // label -> snapshot ID
  std::map<std::string, std::set<Id>> data_of;            // label -> data blobs it references
  std::map<std::string, std::set<std::string>> packs_of;  // label -> packs written saving it
  // label -> the one pack of its trees (trees go into packs of their own), and the others
  std::map<std::string, std::string> tree_pack_of;
  std::map<std::string, std::set<std::string>> data_packs_of;
  std::map<std::string, Id> root_of;                      // label -> root tree
};

void pt_add_snapshot(Repository& r, const std::string& dir, const PtSnap& spec, PtHistory& h,
                     TimeNs t) {
  auto packs_before = pt_keys(pt_packs(dir));
  repo::Session r_session(r);
  auto file_node = [&](const PtFile& f) {
    repo::Node n;
    n.name = f.name;
    n.type = repo::Node::Type::kFile;
    n.mode = 0644;
    n.mtime = t;
    for (const auto& [seed, size] : f.chunks) {
      Bytes b = pt_chunk(seed, size);
      auto id = r_session.save_blob(BlobType::kData, b);
      if (!id.ok()) {
        ADD_FAILURE() << id.error().message();
        continue;
      }
      h.content[*id] = b;
      h.data_of[spec.label].insert(*id);
      n.content.push_back(*id);
      n.size += size;
    }
    return n;
  };
  repo::Tree root, sub;
  for (const auto& f : spec.sub) sub.nodes.push_back(file_node(f));
  for (const auto& f : spec.files) root.nodes.push_back(file_node(f));
  if (spec.flush_before_trees) {
    Status s = r_session.flush();
    EXPECT_TRUE(s.ok()) << s.error().message();
  }
  // An empty file named after the snapshot keeps every root tree distinct.
  repo::Node marker;
  marker.name = "label-" + spec.label;
  marker.mode = 0644;
  root.nodes.push_back(marker);
  if (!sub.nodes.empty()) {
    std::sort(sub.nodes.begin(), sub.nodes.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    auto sid = r_session.save_tree(sub);
    EXPECT_TRUE(sid.ok());
    repo::Node d;
    d.name = "sub";
    d.type = repo::Node::Type::kDir;
    d.mode = 0755;
    if (sid.ok()) d.subtree = *sid;
    root.nodes.push_back(d);
  }
  std::sort(root.nodes.begin(), root.nodes.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  auto rid = r_session.save_tree(root);
  ASSERT_TRUE(rid.ok()) << rid.error().message();
  repo::Snapshot s;
  s.time = t;
  s.end_time = t + 1000000000;
  s.tree = *rid;
  s.paths = {"/" + spec.label};
  s.hostname = "pt-host";
  s.username = "tester";
  s.strategy = "full";
  auto sid = r_session.save_snapshot(s);
  ASSERT_TRUE(sid.ok()) << sid.error().message();
  h.snaps[spec.label] = *sid;
  h.root_of[spec.label] = *rid;
  h.packs_of[spec.label] = pt_minus(pt_keys(pt_packs(dir)), packs_before);
  h.data_packs_of[spec.label] = h.packs_of[spec.label];
  for (const auto& p : pt_index_records(dir)) {
    for (const auto& b : p.blobs) {
      if (b.type == BlobType::kTree && b.id == *rid) h.tree_pack_of[spec.label] = repo::hex(p.id);
    }
  }
  EXPECT_EQ(h.data_packs_of[spec.label].erase(h.tree_pack_of[spec.label]), 1u) << spec.label << "'s trees";
}

PtFile pt_file(const std::string& name, std::vector<std::pair<uint64_t, size_t>> chunks) {
  return PtFile{name, std::move(chunks)};
}

// Five snapshots in packs of 1 MiB:
//   alpha:   a1 [A1 A2], a2 [A3], sub/a3 [A4]                    -> one pack
//   beta:    b1 [B1 B2], a1 [A1 A2] (shared with alpha), sub/b2 [B3] -> one pack (no A's)
//   gamma:   c1 [C1 C2], b1 [B1 B2] (shared with beta)           -> one pack
//   delta:   d1, 40 blobs of 32 KiB                              -> two packs
//   epsilon: e1 [E1], sub/e2 [E2]                                -> one pack
void pt_build_history(const std::string& dir, PtHistory& h) {
  auto r = init_repo(dir, kPtPackSize);
  ASSERT_NE(r, nullptr);
  const TimeNs t0 = 1700000000LL * 1000000000;
  PtFile a1 = pt_file("a1", {{101, 20000}, {102, 24000}});
  PtFile b1 = pt_file("b1", {{201, 20000}, {202, 20000}});
  std::vector<std::pair<uint64_t, size_t>> d;
  for (uint64_t i = 0; i < 40; i++) d.push_back({400 + i, 32 * 1024});
  std::vector<PtSnap> specs = {
      {"alpha", {a1, pt_file("a2", {{103, 28000}})}, {pt_file("a3", {{104, 16000}})}},
      {"beta", {b1, a1}, {pt_file("b2", {{203, 12000}})}},
      {"gamma", {pt_file("c1", {{301, 16000}, {302, 16000}}), b1}, {}},
      {"delta", {pt_file("d1", d)}, {}},
      {"epsilon", {pt_file("e1", {{501, 8000}})}, {pt_file("e2", {{502, 8000}})}},
  };
  for (size_t i = 0; i < specs.size(); i++) {
    pt_add_snapshot(*r, dir, specs[i], h, t0 + static_cast<TimeNs>(i) * 3600 * 1000000000LL);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // Each snapshot's trees go into a pack of their own.
  ASSERT_EQ(h.packs_of["alpha"].size(), 2u);
  ASSERT_EQ(h.packs_of["beta"].size(), 2u);
  ASSERT_EQ(h.packs_of["delta"].size(), 3u);
}

// Leaves a pack no index names, as a backup that crashed after uploading it would: saves
// blobs no snapshot references, flushes, and deletes the one index file the flush wrote.
std::string pt_add_orphan(const std::string& dir, uint64_t seed) {
  auto packs_before = pt_keys(pt_packs(dir));
  auto index_before = pt_names(dir, ObjectType::kIndex);
  {
    auto r = pt_open(dir);
    if (!r) return "";
    repo::Session r_session(*r);
    for (uint64_t i = 0; i < 3; i++) {
      auto id = r_session.save_blob(BlobType::kData, pt_chunk(seed + i, 10000));
      EXPECT_TRUE(id.ok());
    }
    Status s = r_session.flush();
    EXPECT_TRUE(s.ok()) << s.error().message();
  }
  auto new_packs = pt_minus(pt_keys(pt_packs(dir)), packs_before);
  auto new_index = pt_minus(pt_names(dir, ObjectType::kIndex), index_before);
  EXPECT_EQ(new_packs.size(), 1u);
  EXPECT_EQ(new_index.size(), 1u);
  if (new_packs.size() != 1 || new_index.size() != 1) return "";
  EXPECT_TRUE(fs::remove(pt_path(dir, ObjectType::kIndex, *new_index.begin())));
  return *new_packs.begin();
}

// Opens `dir` afresh (index from storage only) and reads every snapshot completely: every tree,
// and every data blob compared with the bytes the test saved. Returns everything reachable.
std::set<PtKey> pt_verify_all(const std::string& dir, const std::map<Id, Bytes>& content,
                              size_t expect_snapshots) {
  std::set<PtKey> reach;
  auto r = pt_open(dir);
  if (!r) return reach;
  Status li = r->load_index();
  if (!li.ok()) {
    ADD_FAILURE() << "load_index: " << li.error().message();
    return reach;
  }
  auto snaps = r->list_snapshots();
  if (!snaps.ok()) {
    ADD_FAILURE() << "list_snapshots: " << snaps.error().message();
    return reach;
  }
  EXPECT_EQ(snaps->size(), expect_snapshots);
  size_t bad = 0;
  for (const auto& [sid, s] : *snaps) {
    std::vector<Id> stack{s.tree};
    while (!stack.empty()) {
      Id t = stack.back();
      stack.pop_back();
      if (!reach.insert({BlobType::kTree, t}).second) continue;
      auto tree = r->load_tree(t);
      if (!tree.ok()) {
        if (bad++ < 5) ADD_FAILURE() << "snapshot " << repo::hex(sid) << ": " << tree.error().message();
        continue;
      }
      for (const auto& n : tree->nodes) {
        if (n.subtree) stack.push_back(*n.subtree);
        for (const auto& c : n.content) {
          if (!reach.insert({BlobType::kData, c.id}).second) continue;
          auto b = r->load_blob(BlobType::kData, c.id);
          if (!b.ok()) {
            if (bad++ < 5) ADD_FAILURE() << "snapshot " << repo::hex(sid) << ": " << b.error().message();
            continue;
          }
          auto it = content.find(c.id);
          if (it == content.end()) {
            ADD_FAILURE() << "blob " << repo::hex(c.id) << " was never saved by the test";
          } else if (*b != it->second) {
            ADD_FAILURE() << "blob " << repo::hex(c.id) << " loads with other bytes than were saved";
          }
        }
      }
    }
  }
  return reach;
}

// Records every call that changes storage and fails those from the `fail_from`-th on (0:
// never), as a process that dies just before that call would leave things. Optionally samples
// the heap in use at every call (memory test).
class PtFaultBackend : public storage::BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  struct Op {
    char kind;  // 'S' save, 'R' remove
    ObjectType type;
    std::string name;
  };

  Status save(const ObjectName& n, ByteView d) override {
    sample();
    if (!mutate('S', n)) return Error(Error::Code::kIo, "injected fault: saving " + n.describe());
    return BackendWrapper::save(n, d);
  }
  Status remove(const ObjectName& n) override {
    sample();
    if (!mutate('R', n)) return Error(Error::Code::kIo, "injected fault: removing " + n.describe());
    return BackendWrapper::remove(n);
  }
  Result<Bytes> load(const ObjectName& n, uint64_t off, uint64_t len) override {
    auto r = BackendWrapper::load(n, off, len);
    sample();
    return r;
  }

  std::vector<Op> ops() {
    std::lock_guard<std::mutex> g(mu_);
    return ops_;
  }
  void set_fail_from(size_t n) { fail_from_ = n; }
  void set_sampling(bool on) { sampling_ = on; }
  size_t peak_heap() const { return peak_; }

  static size_t heap_in_use() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    // The sanitizers replace malloc: glibc's mallinfo2() sees none of the heap (make sanitize).
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
  }

 private:
  bool mutate(char kind, const ObjectName& n) {
    std::lock_guard<std::mutex> g(mu_);
    calls_++;
    if (fail_from_ != 0 && calls_ >= fail_from_) return false;
    ops_.push_back({kind, n.type, n.name});
    return true;
  }
  void sample() {
    if (!sampling_) return;
    size_t h = heap_in_use();
    std::lock_guard<std::mutex> g(mu_);
    peak_ = std::max(peak_, h);
  }
  std::mutex mu_;
  std::vector<Op> ops_;
  size_t calls_ = 0, fail_from_ = 0;
  bool sampling_ = false;
  size_t peak_ = 0;
};

std::shared_ptr<PtFaultBackend> pt_fault_backend(const std::string& dir) {
  auto be = storage::open_backend(dir);
  EXPECT_TRUE(be.ok());
  return std::make_shared<PtFaultBackend>(*be);
}

// The counts a dry run must predict exactly.
void pt_expect_same_plan(const retention::PruneStats& dry, const retention::PruneStats& real) {
  EXPECT_EQ(dry.snapshots, real.snapshots);
  EXPECT_EQ(dry.packs_total, real.packs_total);
  EXPECT_EQ(dry.packs_deleted, real.packs_deleted);
  EXPECT_EQ(dry.packs_repacked, real.packs_repacked);
  EXPECT_EQ(dry.packs_unindexed, real.packs_unindexed);
  EXPECT_EQ(dry.blobs_total, real.blobs_total);
  EXPECT_EQ(dry.blobs_used, real.blobs_used);
  EXPECT_EQ(dry.blobs_removed, real.blobs_removed);
  EXPECT_EQ(dry.blobs_repacked, real.blobs_repacked);
  EXPECT_EQ(dry.bytes_total, real.bytes_total);
  EXPECT_EQ(dry.bytes_unused, real.bytes_unused);
  EXPECT_EQ(dry.bytes_unused_kept, real.bytes_unused_kept);
  EXPECT_EQ(dry.bytes_deleted, real.bytes_deleted);
}

// Formats like the CLI's human_bytes ("12.3 KiB").
std::string pt_human(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  char buf[32];
  snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

// The "summary" line of a `--json` run.
nlohmann::json pt_summary(const std::string& out) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("message_type", std::string()) == "summary") return j;
  }
  ADD_FAILURE() << "no summary line in:\n" << out;
  return nlohmann::json::object();
}

class PruneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::init();
    char tmpl[] = "/tmp/haven-prune-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    root_ = tmpl;
  }
  void TearDown() override {
    if (root_.empty()) return;
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::string dir(const std::string& name) const { return root_ + "/" + name; }

  // The five-snapshot history with alpha and delta removed: delta's two packs are dead,
  // alpha's pack is about half used (beta still uses A1 and A2).
  void build_pruneable(const std::string& d, PtHistory& h, bool orphan) {
    pt_build_history(d, h);
    if (HasFatalFailure()) return;
    if (orphan) {
      orphan_ = pt_add_orphan(d, 9000);
      ASSERT_FALSE(orphan_.empty());
    }
    auto r = pt_open(d);
    ASSERT_NE(r, nullptr);
    ASSERT_OK(r->remove_snapshot(h.snaps["alpha"]));
    ASSERT_OK(r->remove_snapshot(h.snaps["delta"]));
  }

  std::string root_;
  std::string orphan_;
};

// ---------------------------------------------------------------------------------------------
// 1. Deleting what removed snapshots alone used

TEST_F(PruneTest, DeletesExactlyThePacksOnlyRemovedSnapshotsUsed) {
  const std::string d = dir("repo");
  PtHistory h;
  build_pruneable(d, h, false);
  ASSERT_FALSE(HasFailure());

  // Expectations worked out independently of prune: what the remaining snapshots reach (a
  // walk of their trees), and per pack which of its blobs that is.
  const auto reach = pt_verify_all(d, h.content, 3);
  const auto records = pt_index_records(d);
  const auto before = pt_packs(d);
  const size_t index_files_before = pt_names(d, ObjectType::kIndex).size();
  std::set<std::string> dead;
  uint64_t dead_bytes = 0, unused_kept = 0, blobs_total = 0, blobs_unused = 0;
  for (const auto& rec : records) {
    size_t used = 0;
    uint64_t unused_here = 0;
    for (const auto& b : rec.blobs) {
      blobs_total++;
      if (reach.count({b.type, b.id})) {
        used++;
      } else {
        blobs_unused++;
        unused_here += b.length;
      }
    }
    if (used == 0) {
      dead.insert(repo::hex(rec.id));
      dead_bytes += before.at(repo::hex(rec.id));
    } else {
      unused_kept += unused_here;
    }
  }
  // Dead are exactly the three packs delta wrote and alpha's trees; alpha's data pack is
  // partly used by beta.
  auto want_dead = h.packs_of["delta"];
  want_dead.insert(h.tree_pack_of["alpha"]);
  ASSERT_EQ(dead, want_dead);
  ASSERT_FALSE(dead.count(*h.data_packs_of["alpha"].begin()));
  ASSERT_GT(unused_kept, 0u);

  auto r = pt_open(d);
  ASSERT_NE(r, nullptr);
  repo::Session session(*r);
  RecordingSink sink;
  retention::PruneOptions o;
  o.max_unused_percent = 100;  // never repack: only whole packs go
  auto st = retention::prune(session, o, sink);
  ASSERT_OK(st);

  auto after = pt_packs(d);
  auto expect_after = before;
  for (const auto& p : dead) expect_after.erase(p);
  EXPECT_EQ(pt_keys(after), pt_keys(expect_after)) << "the packs deleted are not exactly the dead ones";
  EXPECT_EQ(after, expect_after);

  EXPECT_EQ(st->snapshots, 3u);
  EXPECT_EQ(st->packs_total, before.size());
  EXPECT_EQ(st->bytes_total, pt_sum(before));
  EXPECT_EQ(st->packs_deleted, 4u);
  EXPECT_EQ(st->bytes_deleted, dead_bytes);
  EXPECT_EQ(st->reclaimed(), static_cast<int64_t>(dead_bytes));
  EXPECT_EQ(st->packs_repacked, 0u);
  EXPECT_EQ(st->packs_written, 0u);
  EXPECT_EQ(st->bytes_written, 0u);
  EXPECT_EQ(st->packs_unindexed, 0u);
  EXPECT_EQ(st->blobs_total, blobs_total);
  EXPECT_EQ(st->blobs_used, reach.size());
  EXPECT_EQ(st->blobs_removed, blobs_unused);
  EXPECT_EQ(st->bytes_unused_kept, unused_kept);
  EXPECT_EQ(st->index_files_deleted, index_files_before);
  EXPECT_GE(st->index_files_written, 1u);
  auto sums = sink.of("summary");
  ASSERT_EQ(sums.size(), 1u);
  EXPECT_EQ(sums[0].data["bytes_reclaimed"].get<int64_t>(), static_cast<int64_t>(dead_bytes));
  EXPECT_EQ(sums[0].data["packs_deleted"].get<uint64_t>(), 4u);
  EXPECT_FALSE(sums[0].data["dry_run"].get<bool>());

  // Every remaining snapshot still reads completely, and the new index names exactly the
  // packs that are left.
  EXPECT_EQ(pt_verify_all(d, h.content, 3), reach);
  EXPECT_EQ(pt_indexed_packs(d), pt_keys(after));
  auto fresh = pt_open(d);
  ASSERT_NE(fresh, nullptr);
  ASSERT_OK(fresh->load_index());
  for (const auto& id : h.data_of["delta"]) {
    EXPECT_FALSE(fresh->has_blob(BlobType::kData, id)) << "delta's blob is still indexed";
  }
  // alpha's own blobs (A3, A4) stay, unused, in the pack that was kept.
  size_t alpha_only = 0;
  for (const auto& id : h.data_of["alpha"]) {
    if (h.data_of["beta"].count(id)) continue;
    alpha_only++;
    EXPECT_TRUE(fresh->has_blob(BlobType::kData, id));
  }
  EXPECT_EQ(alpha_only, 2u);
}

// ---------------------------------------------------------------------------------------------
// 2. Repacking above the threshold, keeping at or below it

TEST_F(PruneTest, RepacksOnlyAboveTheUnusedThreshold) {
  const std::string tmpl = dir("template");
  PtHistory h;
  {
    auto r = init_repo(tmpl, kPtPackSize);
    ASSERT_NE(r, nullptr);
    PtFile x1 = pt_file("x1", {{11, 40000}});
    pt_add_snapshot(*r, tmpl,
                    {"old", {x1, pt_file("x2", {{12, 30000}}), pt_file("x3", {{13, 20000}})}, {}},
                    h, 1000000000LL);
    ASSERT_FALSE(HasFatalFailure());
    pt_add_snapshot(*r, tmpl, {"new", {x1, pt_file("y1", {{21, 24000}})}, {}}, h, 2000000000LL);
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_OK(r->remove_snapshot(h.snaps["old"]));
  }
  ASSERT_EQ(h.packs_of["old"].size(), 2u);  // its data, its tree
  ASSERT_EQ(h.packs_of["new"].size(), 2u);
  {
    // The old snapshot's tree pack is wholly unused: a first prune that never repacks deletes
    // it, so that the cases below start from one partly used pack, the old data pack.
    auto r = pt_open(tmpl);
    ASSERT_NE(r, nullptr);
    repo::Session session(*r);
    NullSink sink;
    retention::PruneOptions o;
    o.max_unused_percent = 100;
    auto st = retention::prune(session, o, sink);
    ASSERT_OK(st);
    ASSERT_EQ(st->packs_deleted, 1u);
    ASSERT_FALSE(pt_packs(tmpl).count(h.tree_pack_of["old"]));
  }
  const std::string old_pack = *h.data_packs_of["old"].begin();
  std::set<Id> shared;
  std::set_intersection(h.data_of["old"].begin(), h.data_of["old"].end(), h.data_of["new"].begin(),
                        h.data_of["new"].end(), std::inserter(shared, shared.end()));
  ASSERT_EQ(shared.size(), 1u);
  const Id used_id = *shared.begin();  // X1

  // The old pack's unused share, computed here as prune defines it (bytes of sealed records).
  const auto reach = pt_verify_all(tmpl, h.content, 1);
  uint64_t used_bytes = 0, unused_bytes = 0;
  size_t old_blobs = 0;
  for (const auto& rec : pt_index_records(tmpl)) {
    if (repo::hex(rec.id) != old_pack) continue;
    for (const auto& b : rec.blobs) {
      old_blobs++;
      (reach.count({b.type, b.id}) ? used_bytes : unused_bytes) += b.length;
    }
  }
  ASSERT_EQ(old_blobs, 3u);  // X1 X2 X3
  const double share = 100.0 * double(unused_bytes) / double(used_bytes + unused_bytes);
  ASSERT_GT(share, 40.0);
  ASSERT_LT(share, 70.0);
  const auto before = pt_packs(tmpl);

  struct Case {
    const char* name;
    double max_unused;
    bool repack;
  };
  const Case cases[] = {
      {"just below the share", share - 0.01, true},
      {"exactly the share (at the threshold: kept)", share, false},
      {"just above the share", share + 0.01, false},
      {"0: any unused blob repacks", 0.0, true},
      {"100: never repack", 100.0, false},
      {"the default 10", retention::PruneOptions{}.max_unused_percent, true},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.name) + ", max_unused " + std::to_string(c.max_unused));
    const std::string d = dir("case" + std::to_string(n++));
    pt_copy(tmpl, d);
    const auto bytes_before = pt_bytes(d);
    auto r = pt_open(d);
    ASSERT_NE(r, nullptr);
    repo::Session session(*r);
    NullSink sink;
    retention::PruneOptions o;
    o.max_unused_percent = c.max_unused;
    auto st = retention::prune(session, o, sink);
    ASSERT_OK(st);
    auto after = pt_packs(d);
    auto fresh = pt_open(d);
    ASSERT_NE(fresh, nullptr);
    ASSERT_OK(fresh->load_index());
    if (c.repack) {
      auto gone = pt_minus(pt_keys(before), pt_keys(after));
      auto added = pt_minus(pt_keys(after), pt_keys(before));
      EXPECT_EQ(gone, std::set<std::string>{old_pack});
      ASSERT_EQ(added.size(), 1u);
      const std::string np = *added.begin();
      // The used blob now loads from the new pack; the unused ones are gone.
      auto loc = fresh->locate_blob(BlobType::kData, used_id);
      ASSERT_TRUE(loc.has_value());
      EXPECT_EQ(repo::hex(loc->pack_id), np);
      for (const auto& id : h.data_of["old"]) {
        if (id != used_id) {
          EXPECT_FALSE(fresh->has_blob(BlobType::kData, id));
        }
      }
      EXPECT_FALSE(fresh->has_blob(BlobType::kTree, h.root_of["old"]));
      auto trailer = fresh->read_pack_trailer(*repo::parse_id(np), after.at(np));
      ASSERT_OK(trailer);
      ASSERT_EQ(trailer->blobs.size(), 1u) << "the new pack holds only the used blob";
      EXPECT_EQ(trailer->blobs[0].id, used_id);
      EXPECT_EQ(st->packs_repacked, 1u);
      EXPECT_EQ(st->packs_written, 1u);
      EXPECT_EQ(st->blobs_repacked, 1u);
      EXPECT_EQ(st->packs_deleted, 0u);
      EXPECT_EQ(st->bytes_written, after.at(np));
      EXPECT_EQ(st->bytes_deleted, before.at(old_pack));
      EXPECT_EQ(st->reclaimed(), int64_t(before.at(old_pack)) - int64_t(after.at(np)));
      EXPECT_GT(st->reclaimed(), 0);
      EXPECT_EQ(st->bytes_unused_kept, 0u);
    } else {
      // Nothing to do: not a byte changes.
      EXPECT_EQ(pt_bytes(d), bytes_before) << pt_diff(bytes_before, pt_bytes(d));
      EXPECT_EQ(st->packs_repacked, 0u);
      EXPECT_EQ(st->packs_deleted, 0u);
      EXPECT_EQ(st->bytes_deleted, 0u);
      EXPECT_EQ(st->reclaimed(), 0);
      EXPECT_EQ(st->bytes_unused_kept, unused_bytes);
      EXPECT_GT(st->bytes_unused_kept, 0u);
      for (const auto& id : h.data_of["old"]) EXPECT_TRUE(fresh->has_blob(BlobType::kData, id));
    }
    EXPECT_EQ(st->bytes_unused, unused_bytes);
    EXPECT_EQ(pt_verify_all(d, h.content, 1), reach);
    for (const auto& p : h.packs_of["new"]) {
      EXPECT_TRUE(pt_packs(d).count(p)) << "a fully used pack must never be touched";
    }
  }
}

// A pack written before trees went into packs of their own holds trees among file data;
// repacking it writes its used trees and its used data into separate packs.
TEST_F(PruneTest, RepackingAMixedPackPutsItsTreesInAPackOfTheirOwn) {
  const std::string d = dir("repo");
  auto r = init_repo(d, kPtPackSize);
  ASSERT_NE(r, nullptr);
  // One pack by hand, as older versions wrote: the file's data D1, an unused blob D2 (so the
  // pack is partly unused), the root tree T naming a file of D1.
  const Bytes d1 = pt_chunk(61, 30000), d2 = pt_chunk(62, 30000);
  const Id d1_id = r->blob_id(d1), d2_id = r->blob_id(d2);
  repo::Tree root;
  repo::Node file;
  file.name = "f";
  file.type = repo::Node::Type::kFile;
  file.mode = 0644;
  file.size = d1.size();
  file.content = {d1_id};
  root.nodes.push_back(file);
  const Bytes tree = repo::encode_tree(root);
  const Id tree_id = r->blob_id(tree);
  const repo::MasterKey& mk = r->master_key();
  repo::PackBuilder mixed(*mk.encryption_key(mk.current_generation), mk.current_generation, Bytes{}, 1u << 20);
  mixed.add(BlobType::kData, d1_id, d1, repo::Compression::kMedium);
  mixed.add(BlobType::kTree, tree_id, tree, repo::Compression::kMedium);
  mixed.add(BlobType::kData, d2_id, d2, repo::Compression::kMedium);
  PackRecord rec;
  const Bytes pack = mixed.finish(rec);
  ASSERT_OK(r->backend().save_new({ObjectType::kData, repo::hex(rec.id)}, pack));
  ASSERT_OK(r->save_index_file({rec}));
  {
    ASSERT_OK(r->load_index());
    repo::Session session(*r);
    repo::Snapshot snap;
    snap.time = 1700000000LL * 1000000000;
    snap.end_time = snap.time + 1000000000;
    snap.tree = tree_id;
    snap.paths = {"/mixed"};
    snap.hostname = "pt-host";
    snap.username = "tester";
    snap.strategy = "full";
    ASSERT_OK(session.save_snapshot(snap));
  }
  r.reset();

  auto o = pt_open(d);
  ASSERT_NE(o, nullptr);
  repo::Session session(*o);
  NullSink sink;
  retention::PruneOptions po;
  po.max_unused_percent = 0;
  auto st = retention::prune(session, po, sink);
  ASSERT_OK(st);
  EXPECT_EQ(st->packs_repacked, 1u);
  EXPECT_EQ(st->packs_written, 2u);
  EXPECT_EQ(st->blobs_repacked, 2u);
  const auto packs = pt_packs(d);
  EXPECT_EQ(packs.size(), 2u);
  EXPECT_FALSE(packs.count(repo::hex(rec.id)));
  size_t tree_packs = 0, data_packs = 0;
  for (const auto& p : pt_index_records(d)) {
    ASSERT_EQ(p.blobs.size(), 1u) << "pack " << repo::hex(p.id);
    if (p.blobs[0].type == BlobType::kTree) {
      tree_packs++;
      EXPECT_EQ(p.blobs[0].id, tree_id);
    } else {
      data_packs++;
      EXPECT_EQ(p.blobs[0].id, d1_id);
    }
  }
  EXPECT_EQ(tree_packs, 1u);
  EXPECT_EQ(data_packs, 1u);
  const std::map<Id, Bytes> content{{d1_id, d1}};
  EXPECT_EQ(pt_verify_all(d, content, 1), (std::set<PtKey>{{BlobType::kTree, tree_id}, {BlobType::kData, d1_id}}));
}

// ---------------------------------------------------------------------------------------------
// 3. --dry-run

TEST_F(PruneTest, DryRunChangesNothingAndPredictsTheRealRun) {
  const std::string d = dir("repo");
  PtHistory h;
  build_pruneable(d, h, /*orphan=*/true);
  ASSERT_FALSE(HasFailure());
  const auto reach = pt_verify_all(d, h.content, 3);
  const auto bytes_before = pt_bytes(d);
  const auto packs_before = pt_packs(d);

  retention::PruneOptions o;  // default threshold: alpha's half-used pack is repacked
  retention::PruneStats dry;
  {
    auto be = pt_fault_backend(d);
    auto r = pt_open_over(be);
    ASSERT_NE(r, nullptr);
    repo::Session session(*r);
    o.dry_run = true;
    RecordingSink sink;
    auto st = retention::prune(session, o, sink);
    ASSERT_OK(st);
    dry = *st;
    EXPECT_TRUE(be->ops().empty()) << "a dry run saved or removed " << be->ops().size() << " object(s)";
    auto sums = sink.of("summary");
    ASSERT_EQ(sums.size(), 1u);
    EXPECT_TRUE(sums[0].data["dry_run"].get<bool>());
  }
  EXPECT_EQ(pt_bytes(d), bytes_before) << pt_diff(bytes_before, pt_bytes(d));
  // The plan has every kind of work in it.
  EXPECT_EQ(dry.packs_deleted, 5u);  // delta's three, alpha's tree pack and the orphan
  EXPECT_EQ(dry.packs_unindexed, 1u);
  EXPECT_EQ(dry.packs_repacked, 1u);  // alpha's
  EXPECT_GT(dry.bytes_written, 0u);

  auto r = pt_open(d);
  ASSERT_NE(r, nullptr);
  repo::Session session(*r);
  NullSink sink;
  o.dry_run = false;
  auto real = retention::prune(session, o, sink);
  ASSERT_OK(real);
  pt_expect_same_plan(dry, *real);
  // bytes_written is an estimate in a dry run (the blobs that move, without the new packs'
  // headers and trailers): never more than the real figure, and close to it.
  EXPECT_LE(dry.bytes_written, real->bytes_written);
  EXPECT_GE(double(dry.bytes_written), 0.9 * double(real->bytes_written));
  auto packs_after = pt_packs(d);
  EXPECT_EQ(pt_minus(pt_keys(packs_before), pt_keys(packs_after)).size(),
            dry.packs_deleted + dry.packs_repacked);
  EXPECT_EQ(pt_verify_all(d, h.content, 3), reach);
}

// ---------------------------------------------------------------------------------------------
// 4. Packs no index names

TEST_F(PruneTest, DeletesPacksNoIndexNamesAndForgetsMissingUnusedPacks) {
  const std::string d = dir("repo");
  PtHistory h;
  pt_build_history(d, h);
  ASSERT_FALSE(HasFatalFailure());
  const std::string orphan = pt_add_orphan(d, 7000);
  ASSERT_FALSE(orphan.empty());
  // A pack an index names, holding only unreferenced data, that is missing from storage: prune
  // must not refuse over it, only drop it from the index.
  const auto before_ghost = pt_keys(pt_packs(d));
  {
    auto r = pt_open(d);
    ASSERT_NE(r, nullptr);
    repo::Session r_session(*r);
    ASSERT_OK(r_session.save_blob(BlobType::kData, pt_chunk(8000, 5000)));
    ASSERT_OK(r_session.flush());
  }
  auto ghost_set = pt_minus(pt_keys(pt_packs(d)), before_ghost);
  ASSERT_EQ(ghost_set.size(), 1u);
  const std::string ghost = *ghost_set.begin();
  ASSERT_TRUE(fs::remove(pt_path(d, ObjectType::kData, ghost)));
  ASSERT_TRUE(pt_indexed_packs(d).count(ghost));
  ASSERT_FALSE(pt_indexed_packs(d).count(orphan));

  const auto reach = pt_verify_all(d, h.content, 5);
  const auto before = pt_packs(d);
  auto r = pt_open(d);
  ASSERT_NE(r, nullptr);
  repo::Session session(*r);
  NullSink sink;
  auto st = retention::prune(session, retention::PruneOptions{}, sink);
  ASSERT_OK(st);
  EXPECT_EQ(st->packs_unindexed, 1u);
  EXPECT_EQ(st->packs_deleted, 1u) << "only the orphan is in storage to delete";
  EXPECT_EQ(st->bytes_deleted, before.at(orphan));
  EXPECT_EQ(st->packs_total, before.size());
  auto after = pt_packs(d);
  auto expect = before;
  expect.erase(orphan);
  EXPECT_EQ(after, expect);
  EXPECT_FALSE(pt_indexed_packs(d).count(ghost)) << "the missing pack is still indexed";
  EXPECT_EQ(pt_indexed_packs(d), pt_keys(after));
  EXPECT_EQ(pt_verify_all(d, h.content, 5), reach);

  // Done: a second prune (new session) finds nothing and changes nothing.
  const auto bytes = pt_bytes(d);
  auto again = pt_open(d);
  ASSERT_NE(again, nullptr);
  repo::Session again_session(*again);
  auto st2 = retention::prune(again_session, retention::PruneOptions{}, sink);
  ASSERT_OK(st2);
  EXPECT_EQ(st2->packs_unindexed, 0u);
  EXPECT_EQ(st2->packs_deleted, 0u);
  EXPECT_EQ(st2->packs_repacked, 0u);
  EXPECT_EQ(pt_bytes(d), bytes) << pt_diff(bytes, pt_bytes(d));
}

// ---------------------------------------------------------------------------------------------
// 5. Refusing to prune a damaged repository, changing nothing

TEST_F(PruneTest, RefusesDamagedRepositoriesAndChangesNothing) {
  const std::string tmpl = dir("template");
  PtHistory h;
  std::string base_pack, split_data_pack, split_tree_pack;
  std::set<std::string> index_of_split_data, index_of_split_tree;
  {
    auto r = init_repo(tmpl, kPtPackSize);
    ASSERT_NE(r, nullptr);
    pt_add_snapshot(*r, tmpl, {"base", {pt_file("f", {{1, 20000}, {2, 20000}})}, {}}, h, 1000000000LL);
    ASSERT_FALSE(HasFatalFailure());
    // "split": its data blobs in one pack (and index file), its tree in the next.
    PtSnap split{"split", {pt_file("z", {{31, 15000}, {32, 15000}})}, {}, true};
    pt_add_snapshot(*r, tmpl, split, h, 2000000000LL);
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_EQ(h.packs_of["split"].size(), 2u);
    // "gone": removed, so a healthy repository would have a pack to delete.
    pt_add_snapshot(*r, tmpl, {"gone", {pt_file("g", {{41, 30000}})}, {}}, h, 3000000000LL);
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_OK(r->remove_snapshot(h.snaps["gone"]));
  }
  base_pack = *h.packs_of["base"].begin();
  // Which of split's packs holds the data, which the tree, and which index file names each.
  for (const auto& name : pt_names(tmpl, ObjectType::kIndex)) {
    auto r = pt_open(tmpl);
    auto recs = r->load_index_file(name);
    ASSERT_OK(recs);
    for (const auto& rec : *recs) {
      if (!h.packs_of["split"].count(repo::hex(rec.id))) continue;
      bool has_tree = std::any_of(rec.blobs.begin(), rec.blobs.end(),
                                  [](const auto& b) { return b.type == BlobType::kTree; });
      (has_tree ? split_tree_pack : split_data_pack) = repo::hex(rec.id);
      (has_tree ? index_of_split_tree : index_of_split_data).insert(name);
    }
  }
  ASSERT_FALSE(split_data_pack.empty());
  ASSERT_FALSE(split_tree_pack.empty());
  ASSERT_EQ(index_of_split_data.size(), 1u);
  ASSERT_EQ(index_of_split_tree.size(), 1u);
  ASSERT_NE(*index_of_split_data.begin(), *index_of_split_tree.begin());

  // Control: undamaged, the same repository has packs to delete. A stray file among the
  // snapshots (not a snapshot ID) is no damage: it is skipped, and progress counts only the
  // two snapshots.
  {
    const std::string d = dir("control");
    pt_copy(tmpl, d);
    {
      std::ofstream f(storage::LocalBackend(d).path_of({ObjectType::kSnapshot, "notes.txt"}));
      f << "not a snapshot";
    }
    auto r = pt_open(d);
    repo::Session session(*r);
    RecordingSink sink;
    retention::PruneOptions o;
    o.dry_run = true;
    auto st = retention::prune(session, o, sink);
    ASSERT_OK(st);
    ASSERT_EQ(st->packs_deleted, 2u);  // gone's data and its tree
    EXPECT_EQ(st->snapshots, 2u);
    size_t last_done = 0, last_total = 0;
    for (const auto& e : sink.of("progress")) {
      if (!e.progress || e.progress->phase != "snapshots") continue;
      last_done = e.progress->items_done;
      last_total = e.progress->items_total;
    }
    EXPECT_EQ(last_done, 2u);
    EXPECT_EQ(last_total, 2u);
  }

  // Where split's root tree record sits, to damage it.
  uint32_t tree_offset = 0;
  for (const auto& rec : pt_index_records(tmpl)) {
    for (const auto& b : rec.blobs) {
      if (b.type == BlobType::kTree && b.id == h.root_of["split"]) tree_offset = b.offset;
    }
  }
  ASSERT_GT(tree_offset, 0u);
  const std::string base_snap = repo::hex(h.snaps["base"]);

  struct Case {
    std::string name;
    std::function<void(const std::string&)> damage;
    std::vector<std::string> parts;  // the message names these
  };
  std::vector<Case> cases = {
      {"index file naming split's tree deleted",
       [&](const std::string& d) {
         ASSERT_TRUE(fs::remove(pt_path(d, ObjectType::kIndex, *index_of_split_tree.begin())));
       },
       {"tree " + repo::hex(h.root_of["split"]), "not in the index", "nothing was changed",
        "haven check", "repair index"}},
      {"index file naming split's data deleted",
       [&](const std::string& d) {
         ASSERT_TRUE(fs::remove(pt_path(d, ObjectType::kIndex, *index_of_split_data.begin())));
       },
       {"data blob", "not in the index", "haven check", "repair index"}},
      {"split's tree record damaged",
       [&](const std::string& d) {
         pt_flip(pt_path(d, ObjectType::kData, split_tree_pack), tree_offset + 5);
       },
       {"tree that cannot be read", "haven check", "repair index"}},
      {"base's snapshot object damaged",
       [&](const std::string& d) { pt_flip(pt_path(d, ObjectType::kSnapshot, base_snap), 60); },
       {base_snap, "snapshot cannot be read", "haven check"}},
      {"split's data pack missing",
       [&](const std::string& d) {
         ASSERT_TRUE(fs::remove(pt_path(d, ObjectType::kData, split_data_pack)));
       },
       {"pack " + split_data_pack, "missing", "haven check"}},
      {"an index file damaged",
       [&](const std::string& d) {
         pt_flip(pt_path(d, ObjectType::kIndex, *index_of_split_data.begin()), 60);
       },
       {"index", "repair index"}},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string d = dir("case" + std::to_string(n++));
    pt_copy(tmpl, d);
    c.damage(d);
    ASSERT_FALSE(HasFatalFailure());
    const auto bytes = pt_bytes(d);
    for (bool dry : {true, false}) {
      auto r = pt_open(d);
      ASSERT_NE(r, nullptr);
      repo::Session session(*r);
      NullSink sink;
      retention::PruneOptions o;
      o.dry_run = dry;
      o.max_unused_percent = 0;
      auto st = retention::prune(session, o, sink);
      ASSERT_FALSE(st.ok()) << "prune of a damaged repository succeeded";
      EXPECT_EQ(st.error().code(), Error::Code::kCorrupt) << st.error().message();
      for (const auto& p : c.parts) {
        EXPECT_NE(st.error().message().find(p), std::string::npos)
            << "message '" << st.error().message() << "' does not name '" << p << "'";
      }
      EXPECT_EQ(pt_bytes(d), bytes) << pt_diff(bytes, pt_bytes(d));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 6. Crash-safe ordering

TEST_F(PruneTest, WritesBeforeDeletesAndAnyCutLeavesEverySnapshotReadable) {
  const std::string tmpl = dir("template");
  PtHistory h;
  build_pruneable(tmpl, h, /*orphan=*/true);
  ASSERT_FALSE(HasFailure());
  const auto reach = pt_verify_all(tmpl, h.content, 3);
  const auto packs_before = pt_keys(pt_packs(tmpl));
  const auto index_before = pt_names(tmpl, ObjectType::kIndex);
  retention::PruneOptions o;
  o.max_unused_percent = 0;

  // A clean run, recorded.
  const std::string clean = dir("clean");
  pt_copy(tmpl, clean);
  std::vector<PtFaultBackend::Op> ops;
  retention::PruneStats clean_st;
  {
    auto be = pt_fault_backend(clean);
    auto r = pt_open_over(be);
    ASSERT_NE(r, nullptr);
    repo::Session session(*r);
    NullSink sink;
    auto st = retention::prune(session, o, sink);
    ASSERT_OK(st);
    clean_st = *st;
    ops = be->ops();
  }
  ASSERT_EQ(clean_st.packs_repacked, 1u);
  ASSERT_EQ(clean_st.packs_deleted, 5u);  // delta's three, alpha's tree pack, the orphan
  // The order: new packs, then new index files, then old index files go, then old packs go.
  auto rank = [](const PtFaultBackend::Op& op) {
    if (op.kind == 'S' && op.type == ObjectType::kData) return 0;
    if (op.kind == 'S' && op.type == ObjectType::kIndex) return 1;
    if (op.kind == 'R' && op.type == ObjectType::kIndex) return 2;
    if (op.kind == 'R' && op.type == ObjectType::kData) return 3;
    return 9;
  };
  std::string seq;
  std::map<int, size_t> count;
  std::set<std::string> removed_index, removed_packs, saved_packs;
  for (const auto& op : ops) {
    int k = rank(op);
    seq += std::to_string(k);
    count[k]++;
    if (k == 0) saved_packs.insert(op.name);
    if (k == 2) removed_index.insert(op.name);
    if (k == 3) removed_packs.insert(op.name);
  }
  EXPECT_TRUE(std::is_sorted(seq.begin(), seq.end())) << "mutations out of order: " << seq
                                                     << " (0 save pack, 1 save index, 2 remove "
                                                        "index, 3 remove pack)";
  EXPECT_EQ(count[9], 0u) << "prune changed an object that is not a pack or an index file";
  EXPECT_EQ(count[0], clean_st.packs_written);
  EXPECT_EQ(count[1], clean_st.index_files_written);
  EXPECT_EQ(removed_index, index_before);
  std::set<std::string> expect_removed = h.packs_of["delta"];
  expect_removed.insert(h.packs_of["alpha"].begin(), h.packs_of["alpha"].end());  // repacked, dead
  expect_removed.insert(orphan_);
  EXPECT_EQ(removed_packs, expect_removed);
  std::set<std::string> expect_packs = pt_minus(packs_before, expect_removed);
  expect_packs.insert(saved_packs.begin(), saved_packs.end());
  EXPECT_EQ(pt_keys(pt_packs(clean)), expect_packs);
  const auto clean_blobs = pt_blob_list(clean);
  EXPECT_EQ(pt_verify_all(clean, h.content, 3), reach);

  // Cut short before each of those calls in turn (the call and all after it fail, as if the
  // process had died there): every snapshot still reads, and a later prune finishes the job.
  ASSERT_GE(ops.size(), 6u);
  for (size_t n = 1; n <= ops.size(); n++) {
    SCOPED_TRACE("prune cut short at mutating call " + std::to_string(n) + " of " +
                 std::to_string(ops.size()) + " (" + seq.substr(n - 1, 1) + ")");
    const std::string d = dir("cut" + std::to_string(n));
    pt_copy(tmpl, d);
    {
      auto be = pt_fault_backend(d);
      be->set_fail_from(n);
      auto r = pt_open_over(be);
      ASSERT_NE(r, nullptr);
      repo::Session session(*r);
      NullSink sink;
      auto st = retention::prune(session, o, sink);
      ASSERT_FALSE(st.ok()) << "prune succeeded although call " << n << " failed";
      EXPECT_EQ(st.error().code(), Error::Code::kIo) << st.error().message();
      EXPECT_EQ(be->ops().size(), n - 1);
    }
    EXPECT_EQ(pt_verify_all(d, h.content, 3), reach) << "snapshots damaged by the cut";
    if (HasFailure()) break;
    {
      auto r = pt_open(d);
      ASSERT_NE(r, nullptr);
      repo::Session session(*r);
      NullSink sink;
      ASSERT_OK(retention::prune(session, o, sink));
    }
    EXPECT_EQ(pt_verify_all(d, h.content, 3), reach);
    EXPECT_EQ(pt_blob_list(d), clean_blobs) << "the repaired result differs from a clean prune";
    EXPECT_EQ(pt_indexed_packs(d), pt_keys(pt_packs(d)));
    // Nothing is left to do.
    auto r = pt_open(d);
    repo::Session session(*r);
    NullSink sink;
    retention::PruneOptions dry = o;
    dry.dry_run = true;
    auto st = retention::prune(session, dry, sink);
    ASSERT_OK(st);
    EXPECT_EQ(st->packs_deleted + st->packs_repacked + st->packs_unindexed + st->blobs_removed, 0u);
    if (HasFailure()) break;
  }
}

// ---------------------------------------------------------------------------------------------
// 7. Memory does not grow with the data

// Builds a repository of `blobs` blobs of 32 KiB in packs of 1 MiB; two snapshots take every
// other blob and one of them is removed, so every pack is half used and prune (default
// threshold) repacks them all. Returns the peak heap in use during the prune, above what was
// in use when it started.
size_t pt_prune_heap_peak(const std::string& d, size_t blobs) {
  constexpr size_t kSize = 32 * 1024;
  std::map<Id, Bytes> content;
  {
    auto r = init_repo(d, kPtPackSize);
    if (!r) return 0;
    repo::Session r_session(*r);
    repo::Node keep, drop;
    keep.name = "keep";
    drop.name = "drop";
    for (size_t i = 0; i < blobs; i++) {
      Bytes b = pt_chunk(100000 + i, kSize);
      auto id = r_session.save_blob(BlobType::kData, b);
      if (!id.ok()) {
        ADD_FAILURE() << id.error().message();
        return 0;
      }
      (i % 2 ? drop : keep).content.push_back(*id);
      if (i % 2 == 0) content[*id] = std::move(b);
    }
    for (auto* node : {&keep, &drop}) {
      repo::Tree t;
      t.nodes.push_back(*node);
      auto tid = r_session.save_tree(t);
      EXPECT_TRUE(tid.ok());
      repo::Snapshot s;
      s.time = node == &keep ? 1 : 2;
      s.tree = *tid;
      s.paths = {"/" + node->name};
      auto sid = r_session.save_snapshot(s);
      EXPECT_TRUE(sid.ok());
      if (node == &drop) {
        EXPECT_TRUE(r->remove_snapshot(*sid).ok());
      }
    }
  }
  const auto before = pt_packs(d);
  const uint64_t data_bytes = pt_sum(before);
  EXPECT_GE(before.size(), blobs * kSize / kPtPackSize - 1);

  auto be = pt_fault_backend(d);
  auto r = pt_open_over(be);
  repo::Session session(*r);
  if (!r) return 0;
  NullSink sink;
  const size_t baseline = PtFaultBackend::heap_in_use();
  be->set_sampling(true);
  auto st = retention::prune(session, retention::PruneOptions{}, sink);
  be->set_sampling(false);
  if (!st.ok()) {
    ADD_FAILURE() << st.error().message();
    return 0;
  }
  // Every data pack is repacked (the last pack, holding the removed snapshot's tree alone, is
  // deleted).
  EXPECT_GE(st->packs_repacked, before.size() - 2);
  EXPECT_GE(st->bytes_written, data_bytes / 2 - kPtPackSize);
  const size_t peak = be->peak_heap() > baseline ? be->peak_heap() - baseline : 0;
  std::cout << "[ memory   ] prune repacked " << st->packs_repacked << " packs ("
            << data_bytes / (1 << 20) << " MiB): heap peak +" << peak / 1024 << " KiB\n";
  r.reset();
  EXPECT_EQ(pt_verify_all(d, content, 1).size(), blobs / 2 + 1);
  return peak;
}

TEST_F(PruneTest, MemoryStaysBoundedWhileRepackingManyPacks) {
  // 10 MiB and then 30 MiB of packs, all repacked: the peak heap is a few packs' worth (one
  // read, one being built, one finished) and does not grow with the repository.
  const size_t small = pt_prune_heap_peak(dir("small"), 320);
  ASSERT_FALSE(HasFailure());
  const size_t big = pt_prune_heap_peak(dir("big"), 960);
  ASSERT_FALSE(HasFailure());
  RecordProperty("prune_heap_peak_small", std::to_string(small));
  RecordProperty("prune_heap_peak_big", std::to_string(big));
  EXPECT_GT(small, 0u);
  EXPECT_LT(big, small + 2 * kPtPackSize) << "20 MiB more data raised prune's peak heap by "
                                          << (big - small) / 1024 << " KiB";
  EXPECT_LT(big, 10u * kPtPackSize) << "30 MiB repacked with " << big / 1024 << " KiB of heap";
}

// ---------------------------------------------------------------------------------------------
// A Repository session that prunes twice. Found while writing these tests (now fixed):
// load_index() added to the session's in-memory index instead of replacing it, and Index keeps
// a blob's first location, so the second prune saw the repacked blobs at their old (deleted)
// pack, counted their new pack as unused and deleted it.

TEST_F(PruneTest, SecondPruneInTheSameSessionKeepsRepackedData) {
  const std::string d = dir("repo");
  PtHistory h;
  build_pruneable(d, h, false);
  ASSERT_FALSE(HasFailure());
  const auto reach = pt_verify_all(d, h.content, 3);
  auto r = pt_open(d);
  ASSERT_NE(r, nullptr);
  repo::Session session(*r);
  NullSink sink;
  retention::PruneOptions o;
  o.max_unused_percent = 0;
  auto first = retention::prune(session, o, sink);
  ASSERT_OK(first);
  ASSERT_EQ(first->packs_repacked, 1u);
  EXPECT_EQ(pt_verify_all(d, h.content, 3), reach);
  auto second = retention::prune(session, o, sink);  // same session
  if (second.ok()) {
    EXPECT_EQ(second->packs_deleted + second->packs_repacked, 0u) << "nothing was left to do";
  }
  EXPECT_EQ(pt_verify_all(d, h.content, 3), reach) << "the second prune lost data";
}

// ---------------------------------------------------------------------------------------------
// 8. The CLI

class PruneCliTest : public PruneTest {};

// --retry-lock (restic's option): a command that finds another process's conflicting lock
// tries again every second for up to the wait given, says once whom it waits for, and runs as
// soon as the lock is gone; a wait that runs out fails as a lock conflict does; without the
// option it fails at once and the error says how to wait. A bad wait is a usage error before
// anything is read.
TEST_F(PruneCliTest, RetryLockWaitsOutAnotherProcesssLock) {
  const std::string tmpl = dir("template");
  PtHistory h;
  build_pruneable(tmpl, h, false);
  ASSERT_FALSE(HasFailure());
  const std::string d = dir("repo");
  pt_copy(tmpl, d);
  const auto bytes = pt_bytes(d);
  for (const char* wait : {"5x", "1h30", "m", "8d", "-5m"}) {
    RunResult bad = cli(d, {"prune", "--retry-lock", wait});
    EXPECT_EQ(bad.code, 2) << wait << ": " << describe(bad);
    EXPECT_TRUE(contains(bad.err, "--retry-lock '" + std::string(wait) + "' is not a wait")) << bad.err;
  }
  EXPECT_TRUE(pt_bytes(d) == bytes) << pt_diff(bytes, pt_bytes(d));

  auto holder = pt_open(d);
  ASSERT_NE(holder, nullptr);
  repo::Session held(*holder);
  ASSERT_OK(held.lock(false));  // shared: prune needs the exclusive lock
  const auto locked_bytes = pt_bytes(d);
  RunResult at_once = cli(d, {"prune", "--max-unused", "100"});
  EXPECT_EQ(at_once.code, 11) << describe(at_once);
  EXPECT_TRUE(contains(at_once.err, "--retry-lock")) << at_once.err;

  // Runs out: fails after the wait, as a conflict.
  auto t0 = std::chrono::steady_clock::now();
  RunResult short_wait = cli(d, {"prune", "--retry-lock", "2s", "--max-unused", "100"});
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(short_wait.code, 11) << describe(short_wait);
  EXPECT_GE(waited, std::chrono::seconds(2));
  EXPECT_TRUE(contains(short_wait.err, "PID " + std::to_string(getpid()))) << short_wait.err;
  EXPECT_TRUE(pt_bytes(d) == locked_bytes) << pt_diff(locked_bytes, pt_bytes(d));

  // Released 1.5 s in: the prune runs then.
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    Status released = held.unlock();
    EXPECT_TRUE(released.ok()) << released.error().message();
  });
  t0 = std::chrono::steady_clock::now();
  RunResult later = cli(d, {"prune", "--retry-lock", "1m", "--max-unused", "100"});
  waited = std::chrono::steady_clock::now() - t0;
  releaser.join();
  ASSERT_EQ(later.code, 0) << describe(later);
  EXPECT_GE(waited, std::chrono::milliseconds(1400));
  EXPECT_LT(waited, std::chrono::seconds(30));
  const std::string said = later.out + later.err;
  EXPECT_TRUE(contains(said, "waiting up to 60 s for the lock")) << said;
  EXPECT_EQ(said.find("waiting up to"), said.rfind("waiting up to")) << "said more than once: " << said;
  EXPECT_TRUE(contains(later.out, "deleted 4 pack(s)")) << later.out;  // delta's 3, alpha's trees
  EXPECT_TRUE(pt_names(d, ObjectType::kLock).empty()) << "prune left its lock behind";
}

TEST_F(PruneCliTest, DryRunRealRunBadThresholdAndLockedRepository) {
  const std::string tmpl = dir("template");
  PtHistory h;
  build_pruneable(tmpl, h, false);
  ASSERT_FALSE(HasFailure());
  const auto reach = pt_verify_all(tmpl, h.content, 3);
  const auto before = pt_packs(tmpl);
  uint64_t dead = 0;  // delta's three packs and alpha's tree pack
  for (const auto& p : h.packs_of["delta"]) dead += before.at(p);
  dead += before.at(h.tree_pack_of["alpha"]);

  const std::string d = dir("repo");
  pt_copy(tmpl, d);
  const auto bytes = pt_bytes(d);
  RunResult dry = cli(d, {"prune", "--dry-run", "--max-unused", "100"});
  ASSERT_EQ(dry.code, 0) << describe(dry);
  EXPECT_TRUE(contains(dry.out, "would delete 4 pack(s)")) << dry.out;
  EXPECT_TRUE(contains(dry.out, "would reclaim " + pt_human(dead) + " of " + pt_human(pt_sum(before))))
      << dry.out;
  EXPECT_EQ(pt_bytes(d), bytes) << pt_diff(bytes, pt_bytes(d));

  // A threshold outside 0..100 is a usage error that touches nothing.
  RunResult bad = cli(d, {"prune", "--max-unused", "150"});
  EXPECT_EQ(bad.code, 2) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "max-unused")) << bad.err;
  RunResult neg = cli(d, {"prune", "--max-unused", "-1"});
  EXPECT_EQ(neg.code, 2) << describe(neg);
  EXPECT_EQ(pt_bytes(d), bytes) << pt_diff(bytes, pt_bytes(d));

  // Another process (this one) holds a shared lock: prune needs the exclusive one.
  {
    auto holder = pt_open(d);
    ASSERT_NE(holder, nullptr);
    repo::Session holder_session(*holder);
    ASSERT_OK(holder_session.lock(false));
    const auto locked_bytes = pt_bytes(d);
    RunResult locked = cli(d, {"prune"});
    EXPECT_EQ(locked.code, 11) << describe(locked);
    EXPECT_TRUE(contains(locked.err, "PID " + std::to_string(getpid()))) << locked.err;
    EXPECT_TRUE(contains(locked.err, hostname())) << locked.err;
    EXPECT_EQ(pt_bytes(d), locked_bytes) << pt_diff(locked_bytes, pt_bytes(d));
    ASSERT_OK(holder_session.unlock());
  }

  RunResult real = cli(d, {"prune", "--max-unused", "100"});
  ASSERT_EQ(real.code, 0) << describe(real);
  EXPECT_TRUE(contains(real.out, "deleted 4 pack(s)")) << real.out;
  EXPECT_TRUE(contains(real.out, "reclaimed " + pt_human(dead) + " of ")) << real.out;
  for (const auto& p : h.packs_of["delta"]) EXPECT_FALSE(pt_packs(d).count(p));
  EXPECT_TRUE(pt_names(d, ObjectType::kLock).empty()) << "prune left its lock behind";
  EXPECT_EQ(pt_verify_all(d, h.content, 3), reach);

  // --json: the summary reports the bytes reclaimed (here by repacking alpha's pack).
  const std::string j = dir("json");
  pt_copy(tmpl, j);
  RunResult js = cli(j, {"--json", "prune", "--max-unused", "0"});
  ASSERT_EQ(js.code, 0) << describe(js);
  auto sum = pt_summary(js.out);
  const auto after = pt_packs(j);
  uint64_t gone = 0, added = 0;
  for (const auto& [p, size] : before) gone += after.count(p) ? 0 : size;
  for (const auto& [p, size] : after) added += before.count(p) ? 0 : size;
  EXPECT_EQ(sum.value("packs_repacked", 0), 1);
  EXPECT_EQ(sum.value("bytes_reclaimed", int64_t{-1}), int64_t(gone) - int64_t(added));
  EXPECT_EQ(pt_verify_all(j, h.content, 3), reach);
}

// ---------------------------------------------------------------------------------------------
// 9. haven repair index

TEST_F(PruneCliTest, RepairIndexRebuildsFromPacks) {
  const std::string tmpl = dir("template");
  PtHistory h;
  pt_build_history(tmpl, h);
  ASSERT_FALSE(HasFatalFailure());
  const auto reach = pt_verify_all(tmpl, h.content, 5);
  const auto blobs = pt_blob_list(tmpl);
  const auto packs = pt_packs(tmpl);

  // Every index file deleted: the packs' trailers give it all back.
  {
    const std::string d = dir("noindex");
    pt_copy(tmpl, d);
    for (const auto& n : pt_names(d, ObjectType::kIndex)) {
      ASSERT_TRUE(fs::remove(pt_path(d, ObjectType::kIndex, n)));
    }
    RunResult r = cli(d, {"--json", "repair", "index"});
    ASSERT_EQ(r.code, 0) << describe(r);
    auto s = pt_summary(r.out);
    EXPECT_EQ(s.value("packs", 0u), packs.size());
    EXPECT_EQ(s.value("packs_indexed", 0u), packs.size());
    EXPECT_EQ(s.value("packs_added", 0u), packs.size());
    EXPECT_EQ(s.value("blobs", 0u), blobs.size());
    EXPECT_EQ(pt_blob_list(d), blobs);
    EXPECT_EQ(pt_verify_all(d, h.content, 5), reach);
    RunResult check = cli(d, {"check", "--read-data"});
    EXPECT_EQ(check.code, 0) << describe(check);
  }
  // A pack whose trailer is damaged keeps what the old index said about it.
  const std::string victim = *h.packs_of["beta"].begin();
  {
    const std::string d = dir("trailer");
    pt_copy(tmpl, d);
    pt_flip(pt_path(d, ObjectType::kData, victim), packs.at(victim) - 10);
    RunResult r = cli(d, {"--json", "repair", "index"});
    ASSERT_EQ(r.code, 0) << describe(r);
    auto s = pt_summary(r.out);
    EXPECT_EQ(s.value("packs_from_old_index", 0), 1);
    EXPECT_EQ(s.value("packs_indexed", 0u), packs.size());
    EXPECT_TRUE(s.value("unreadable_packs", nlohmann::json::array()).empty());
    EXPECT_EQ(pt_blob_list(d), blobs);
    EXPECT_EQ(pt_verify_all(d, h.content, 5), reach);
  }
  // Damaged trailer and no index: that pack's blobs are lost, and repair says so (exit 1).
  {
    const std::string d = dir("lost");
    pt_copy(tmpl, d);
    for (const auto& n : pt_names(d, ObjectType::kIndex)) {
      ASSERT_TRUE(fs::remove(pt_path(d, ObjectType::kIndex, n)));
    }
    pt_flip(pt_path(d, ObjectType::kData, victim), packs.at(victim) - 10);
    RunResult r = cli(d, {"repair", "index"});
    EXPECT_EQ(r.code, 1) << describe(r);
    EXPECT_TRUE(contains(r.out, "error: pack " + victim)) << r.out;
    EXPECT_FALSE(pt_indexed_packs(d).count(victim));
    EXPECT_EQ(pt_indexed_packs(d).size(), packs.size() - 1);
  }
  // A missing pack (one only a removed snapshot used) is dropped from the index.
  {
    const std::string d = dir("missing");
    pt_copy(tmpl, d);
    {
      auto r = pt_open(d);
      ASSERT_OK(r->remove_snapshot(h.snaps["delta"]));
    }
    const std::string gone = *h.packs_of["delta"].begin();
    ASSERT_TRUE(fs::remove(pt_path(d, ObjectType::kData, gone)));
    RunResult r = cli(d, {"--json", "repair", "index"});
    ASSERT_EQ(r.code, 0) << describe(r);
    auto s = pt_summary(r.out);
    EXPECT_EQ(s.value("packs_dropped", 0), 1);
    EXPECT_EQ(s.value("packs_indexed", 0u), packs.size() - 1);
    EXPECT_FALSE(pt_indexed_packs(d).count(gone));
    EXPECT_EQ(pt_indexed_packs(d), pt_keys(pt_packs(d)));
    RunResult check = cli(d, {"check", "--read-data"});
    EXPECT_EQ(check.code, 0) << describe(check);
  }
}

}  // namespace
}  // namespace haven

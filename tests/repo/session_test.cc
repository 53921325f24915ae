// Tests of the split between the shared Repository and per-operation Sessions
// (repo/session.h, repo/pack_writer.h, repo/index_writer.h): what each session sees of the
// others' blobs, whose statistics count what, cancellation, reloading the index while sessions
// write, and the one batching policy for index files. Whole operations running concurrently in
// one process are tested in tests/integration/sessions_test.cc.
#include "repo/session.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "repo/index_writer.h"
#include "repo/repository.h"
#include "storage/backend.h"
#include "storage/local.h"
#include "util/cancel.h"

namespace haven::repo {
namespace {

namespace fs = std::filesystem;
using storage::ObjectType;

const std::string kPw = "pw";

Bytes blob_data(size_t n, uint64_t seed) {
  Bytes b(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& c : b) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<uint8_t>(x);
  }
  return b;
}

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::init();
    char tmpl[] = "/tmp/haven-session-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto be = storage::open_backend(dir_ + "/repo");
    ASSERT_TRUE(be.ok());
    InitOptions o;
    o.kdf = {1, 8 << 20};
    o.pack_size = 1u << 20;
    auto r = Repository::init(*be, kPw, o);
    ASSERT_TRUE(r.ok()) << r.error().message();
    repo_ = std::move(*r);
  }
  void TearDown() override {
    repo_.reset();
    fs::remove_all(dir_);
  }
  size_t count(ObjectType t) {
    size_t n = 0;
    EXPECT_TRUE(repo_->backend().list(t, [&](const storage::ObjectInfo&) { n++; }).ok());
    return n;
  }

  std::string dir_;
  std::unique_ptr<Repository> repo_;
};

// A session finds its own blobs at once; other sessions (through the shared index) only once
// an index file names their pack, so no session can reference a pack no index file names.
TEST_F(SessionTest, OtherSessionsFindABlobOnlyOnceAnIndexFileNamesItsPack) {
  Session a(*repo_), b(*repo_);
  const Bytes data = blob_data(200 * 1024, 1);
  auto id = a.save_blob(BlobType::kData, data);
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(a.has_blob(BlobType::kData, *id));
  EXPECT_FALSE(repo_->has_blob(BlobType::kData, *id));
  EXPECT_FALSE(b.has_blob(BlobType::kData, *id));

  ASSERT_TRUE(a.flush().ok());
  EXPECT_EQ(count(ObjectType::kIndex), 1u);
  EXPECT_TRUE(repo_->has_blob(BlobType::kData, *id));
  EXPECT_TRUE(b.has_blob(BlobType::kData, *id));
  auto stored = b.save_blob_with_id(BlobType::kData, *id, data);
  ASSERT_TRUE(stored.ok());
  EXPECT_FALSE(*stored) << "b stored a blob the shared index has";
  auto back = repo_->load_blob(BlobType::kData, *id);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, data);
}

// Between its pack's upload and the index file that names it, a blob is still the session's:
// found by it (and not stored again), not by others.
TEST_F(SessionTest, ABlobOfAnUploadedPackNoIndexFileNamesYetIsStillFoundByItsSession) {
  Session a(*repo_), b(*repo_);
  std::vector<Bytes> data;
  std::vector<Id> ids;
  for (uint64_t i = 0; i < 12; i++) {
    data.push_back(blob_data(200 * 1024, 100 + i));
    auto id = a.save_blob(BlobType::kData, data.back());
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  // 2.4 MB in packs closed at 1 MiB: two packs, uploaded in the background; no index file
  // (under 10,000 blobs).
  for (int i = 0; i < 1000 && count(ObjectType::kData) < 2; i++) usleep(10000);
  EXPECT_EQ(count(ObjectType::kData), 2u);
  EXPECT_EQ(count(ObjectType::kIndex), 0u);
  for (size_t i = 0; i < ids.size(); i++) {
    EXPECT_TRUE(a.has_blob(BlobType::kData, ids[i]));
    EXPECT_FALSE(b.has_blob(BlobType::kData, ids[i]));
    auto again = a.save_blob_with_id(BlobType::kData, ids[i], data[i]);
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(*again) << "blob " << i << " stored twice";
  }
  ASSERT_TRUE(a.flush().ok());
  EXPECT_EQ(a.stats().blobs, 12u);
  EXPECT_EQ(count(ObjectType::kIndex), 1u);
  for (const Id& id : ids) EXPECT_TRUE(b.has_blob(BlobType::kData, id));
}

// The choice made for blobs two sessions write at the same time: each stores its own copy
// (prune removes the duplicate later), and each counts it. Sharing in-flight blobs would let
// one session's snapshot reference a pack another session might never upload or index.
TEST_F(SessionTest, TwoSessionsWritingOneBlobAtOnceEachStoreIt) {
  Session a(*repo_), b(*repo_);
  const Bytes data = blob_data(100 * 1024, 2);
  const Id id = repo_->blob_id(data);
  auto in_a = a.save_blob_with_id(BlobType::kData, id, data);
  auto in_b = b.save_blob_with_id(BlobType::kData, id, data);
  ASSERT_TRUE(in_a.ok() && in_b.ok());
  EXPECT_TRUE(*in_a);
  EXPECT_TRUE(*in_b);
  ASSERT_TRUE(a.flush().ok());
  ASSERT_TRUE(b.flush().ok());
  EXPECT_EQ(count(ObjectType::kData), 2u);
  EXPECT_EQ(a.stats().blobs, 1u);
  EXPECT_EQ(b.stats().blobs, 1u);
  // Both copies are valid; a third session finds the blob and stores nothing.
  Session c(*repo_);
  auto in_c = c.save_blob_with_id(BlobType::kData, id, data);
  ASSERT_TRUE(in_c.ok());
  EXPECT_FALSE(*in_c);
  EXPECT_EQ(c.stats().blobs, 0u);
}

// Statistics are per session, also while sessions write from many threads at once.
TEST_F(SessionTest, EachSessionCountsOnlyWhatItStored) {
  Session a(*repo_), b(*repo_);
  constexpr int kPerSession = 60;
  uint64_t raw_a = 0, raw_b = 0;
  std::vector<Bytes> for_a, for_b;
  for (int i = 0; i < kPerSession; i++) {
    for_a.push_back(blob_data(30000 + static_cast<size_t>(i), 1000 + i));
    raw_a += for_a.back().size();
    for_b.push_back(blob_data(20000 + static_cast<size_t>(i), 5000 + i));
    raw_b += for_b.back().size();
  }
  std::atomic<int> failures{0};
  auto writer = [&](Session& s, const std::vector<Bytes>& blobs, size_t from) {
    for (size_t i = from; i < blobs.size(); i += 2) {
      if (!s.save_blob(BlobType::kData, blobs[i]).ok()) failures++;
    }
  };
  std::vector<std::thread> threads;
  for (size_t from : {0, 1}) {
    threads.emplace_back(writer, std::ref(a), std::cref(for_a), from);
    threads.emplace_back(writer, std::ref(b), std::cref(for_b), from);
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_TRUE(a.flush().ok());
  ASSERT_TRUE(b.flush().ok());
  EXPECT_EQ(a.stats().blobs, uint64_t{kPerSession});
  EXPECT_EQ(b.stats().blobs, uint64_t{kPerSession});
  EXPECT_EQ(a.stats().raw_bytes, raw_a);
  EXPECT_EQ(b.stats().raw_bytes, raw_b);
  // Random data is stored raw: one mode byte and a 16-byte tag per blob.
  EXPECT_EQ(a.stats().stored_bytes, raw_a + 17u * kPerSession);
  EXPECT_EQ(b.stats().stored_bytes, raw_b + 17u * kPerSession);
  EXPECT_EQ(a.stats().packs + b.stats().packs, count(ObjectType::kData));
  EXPECT_EQ(a.stats().index_files, 1u);
  EXPECT_EQ(b.stats().index_files, 1u);
  EXPECT_EQ(repo_->index_blob_count(), 2u * kPerSession);
}

// A session's token follows its parent's (a signal, a server job) with the parent's reason;
// cancelling a session (as a lost lock does) leaves the parent and the other sessions alone.
TEST_F(SessionTest, CancellationReachesASessionFromItsParentButNeverLeavesIt) {
  CancelToken parent;
  Session a(*repo_, parent), b(*repo_, parent), c(*repo_);
  a.cancel_token().cancel(Error(Error::Code::kLocked, "a's lock was lost"));
  EXPECT_TRUE(a.cancel_token().cancelled());
  EXPECT_FALSE(parent.cancelled());
  EXPECT_FALSE(b.cancel_token().cancelled());
  auto refused = a.save_blob(BlobType::kData, blob_data(10, 3));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), Error::Code::kLocked);
  EXPECT_TRUE(b.save_blob(BlobType::kData, blob_data(10, 3)).ok());

  parent.cancel(Error(Error::Code::kCancelled, "SIGINT"));
  ASSERT_TRUE(b.cancel_token().cancelled());
  EXPECT_EQ(b.cancel_token().check().error().message(), "SIGINT");
  EXPECT_EQ(a.cancel_token().check().error().code(), Error::Code::kLocked) << "the first reason stays";
  EXPECT_FALSE(c.cancel_token().cancelled());
  // A session made under an already cancelled parent starts cancelled.
  Session d(*repo_, parent);
  EXPECT_TRUE(d.cancel_token().cancelled());
}

// load_index() replaces the shared index while sessions write index files: none of what they
// indexed meanwhile may drop out of it.
TEST_F(SessionTest, ReloadingTheIndexWhileSessionsWriteLosesNothing) {
  std::atomic<bool> done{false};
  std::vector<Id> ids;
  std::string error;
  std::thread writer([&] {
    Session s(*repo_);
    for (int round = 0; round < 40 && error.empty(); round++) {
      for (int i = 0; i < 3; i++) {
        auto id = s.save_blob(BlobType::kData, blob_data(2000, 100 * round + i));
        if (!id.ok()) error = id.error().message();
        else ids.push_back(*id);
      }
      Status st = s.flush();  // one index file per round
      if (!st.ok()) error = st.error().message();
    }
    done = true;
  });
  int reloads = 0;
  while (!done) {
    Status st = repo_->load_index();
    ASSERT_TRUE(st.ok()) << st.error().message();
    reloads++;
  }
  writer.join();
  ASSERT_EQ(error, "");
  EXPECT_GT(reloads, 1);
  size_t missing = 0;
  for (const auto& id : ids) missing += repo_->has_blob(BlobType::kData, id) ? 0 : 1;
  EXPECT_EQ(missing, 0u) << "of " << ids.size() << " blobs indexed during " << reloads << " reloads";
  EXPECT_EQ(count(ObjectType::kIndex), 40u);
}

// The one batching policy (index_writer.h): a file once the waiting packs hold kIndexFileBlobs
// blobs, the rest at flush(); a failed write keeps its packs waiting.
// Trees go into packs of their own, so that a walk over a snapshot's directories reads them
// from a pack or a few instead of one range per directory out of packs full of file data.
// A tree pack is closed at the pack size (here 1 MiB, under the 4 MiB tree-pack cap), and
// threads adding trees at once share the one open tree pack.
TEST_F(SessionTest, TreesGoIntoPacksOfTheirOwn) {
  Session s(*repo_);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  // Four threads, each storing data blobs (200 KiB) and trees (8 KiB) in turn: 12 data blobs
  // and 75 trees each, 2.4 MB of trees in all.
  for (uint64_t t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < 75; i++) {
        if (i % 6 == 0 && !s.save_blob(BlobType::kData, blob_data(200 * 1024, 1000 * t + i)).ok()) failures++;
        if (!s.save_blob(BlobType::kTree, blob_data(8 * 1024, 5000 + 1000 * t + i)).ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_TRUE(s.flush().ok());
  auto files = repo_->list_index_files();
  ASSERT_TRUE(files.ok());
  size_t tree_packs = 0, data_packs = 0, trees = 0, data = 0;
  for (const auto& f : *files) {
    auto recs = repo_->load_index_file(f);
    ASSERT_TRUE(recs.ok());
    for (const auto& r : *recs) {
      size_t t = 0;
      uint64_t end = 0;
      for (const auto& b : r.blobs) {
        t += b.type == BlobType::kTree;
        end = std::max<uint64_t>(end, b.offset + b.length);
      }
      EXPECT_TRUE(t == 0 || t == r.blobs.size()) << "pack " << hex(r.id) << " holds " << t << " trees and "
                                                 << r.blobs.size() - t << " data blobs";
      if (t > 0) {
        tree_packs++;
        trees += t;
        // Closed once it reached the pack size: at most one tree more.
        EXPECT_LE(end, (1u << 20) + 9 * 1024) << "tree pack " << hex(r.id);
      } else {
        data_packs++;
        data += r.blobs.size();
      }
    }
  }
  EXPECT_EQ(trees, 300u);
  EXPECT_EQ(data, 52u);
  EXPECT_EQ(tree_packs, 3u);  // 2.4 MB of trees (they do not compress) in packs closed at 1 MiB
  EXPECT_GE(data_packs, 9u);  // 10.4 MB of data in packs closed at 1 MiB
  // Every tree reads back.
  for (uint64_t t = 0; t < 4; t++) {
    const Bytes want = blob_data(8 * 1024, 5000 + 1000 * t + 74);
    auto back = repo_->load_blob(BlobType::kTree, repo_->blob_id(want));
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_EQ(*back, want);
  }
}

TEST_F(SessionTest, IndexWriterWritesAFileEveryTenThousandBlobsAndTheRestAtFlush) {
  std::vector<size_t> announced;
  IndexWriter w(*repo_, [&](const std::vector<PackRecord>& packs) {
    size_t n = 0;
    for (const auto& p : packs) n += p.blobs.size();
    announced.push_back(n);
  });
  auto pack = [](size_t blobs, uint64_t seed) {
    PackRecord r;
    r.id = random_id();
    for (size_t i = 0; i < blobs; i++) {
      Bytes b = blob_data(8, seed * 100000 + i);
      Id id{};
      std::copy(b.begin(), b.end(), id.begin());
      r.blobs.push_back({BlobType::kData, id, static_cast<uint32_t>(44 + 100 * i), 100, 83});
    }
    return r;
  };
  // 2,400 blobs per pack: the fifth pack brings the waiting blobs to 12,000.
  static_assert(kIndexFileBlobs == 10000);
  for (uint64_t i = 0; i < 4; i++) {
    ASSERT_TRUE(w.add(pack(2400, i)).ok());
    EXPECT_EQ(w.files_written(), 0u);
  }
  EXPECT_EQ(w.waiting_blobs(), 9600u);
  ASSERT_TRUE(w.add(pack(2400, 4)).ok());
  EXPECT_EQ(w.files_written(), 1u);
  EXPECT_EQ(w.waiting_blobs(), 0u);
  ASSERT_TRUE(w.add(pack(10, 5)).ok());
  ASSERT_TRUE(w.flush().ok());
  ASSERT_TRUE(w.flush().ok());  // nothing waiting: no empty file
  EXPECT_EQ(w.files_written(), 2u);
  EXPECT_EQ(announced, (std::vector<size_t>{12000, 10}));
  EXPECT_EQ(count(ObjectType::kIndex), 2u);
  auto files = repo_->list_index_files();
  ASSERT_TRUE(files.ok());
  size_t blobs = 0;
  for (const auto& f : *files) {
    auto recs = repo_->load_index_file(f);
    ASSERT_TRUE(recs.ok());
    for (const auto& r : *recs) blobs += r.blobs.size();
  }
  EXPECT_EQ(blobs, 12010u);
}

}  // namespace
}  // namespace haven::repo

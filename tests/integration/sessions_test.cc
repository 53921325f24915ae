// Concurrent operations in one process (repo/session.h): two backups of different sources into
// one repository and a restore of an earlier snapshot, at the same time, each in a session of
// its own over one shared Repository. Each backup reports what it would report alone; every
// snapshot restores bit-exact; check --read-data finds no damage. A backup's statistics count
// only its own session's writes (another backup running entirely inside it changes nothing),
// and losing one session's lock stops that session only.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "backup/backup.h"
#include "check/check.h"
#include "repo/repository.h"
#include "repo/session.h"
#include "restore/restore.h"
#include "storage/local.h"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"

namespace haven {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using repo::BlobType;
using repo::Id;

// The real local backend with object-storage latency on every call, so that operations take
// long enough to overlap.
class LatencyBackend : public storage::BackendWrapper {
 public:
  LatencyBackend(std::shared_ptr<storage::Backend> inner, std::chrono::milliseconds delay)
      : BackendWrapper(std::move(inner)), delay_(delay) {}
  Status save(const storage::ObjectName& n, ByteView d) override {
    std::this_thread::sleep_for(delay_);
    return BackendWrapper::save(n, d);
  }
  Result<Bytes> load(const storage::ObjectName& n, uint64_t off, uint64_t len) override {
    std::this_thread::sleep_for(delay_);
    return BackendWrapper::load(n, off, len);
  }

 private:
  std::chrono::milliseconds delay_;
};

// Lets threads start together.
class StartLine {
 public:
  explicit StartLine(int n) : left_(n) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lk(mu_);
    if (--left_ == 0) cv_.notify_all();
    cv_.wait(lk, [&] { return left_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int left_;
};

struct Interval {
  Clock::time_point begin, end;
};
bool overlap(const Interval& a, const Interval& b) { return a.begin < b.end && b.begin < a.end; }

// What a backup of `src` must report, computed from the source itself: its files and bytes,
// and its distinct chunks as this repository cuts and names them.
struct SourceFacts {
  uint64_t files = 0, dirs = 0, bytes = 0;
  std::set<Id> chunks;
};

void chunk_into(repo::Repository& r, const std::string& data, std::set<Id>& out) {
  chunker::Chunker c = r.make_chunker();
  ByteView rest = as_bytes(data);
  while (!rest.empty()) {
    size_t cut = c.next_cut(rest, true);
    out.insert(r.blob_id(rest.first(cut)));
    rest = rest.subspan(cut);
  }
}

SourceFacts facts_of(repo::Repository& r, const std::string& src) {
  SourceFacts f;
  f.dirs = 1;
  for (const auto& e : fs::recursive_directory_iterator(src)) {
    if (e.is_directory()) {
      f.dirs++;
    } else if (e.is_regular_file()) {
      f.files++;
      std::string data = read_file(e.path().string());
      f.bytes += data.size();
      chunk_into(r, data, f.chunks);
    }
  }
  return f;
}

// Every blob a snapshot reaches (trees and data), each once, with its stored (sealed) length
// from the index.
struct Reach {
  std::map<std::pair<BlobType, Id>, uint32_t> blobs;
  size_t trees = 0;
  uint64_t stored() const {
    uint64_t n = 0;
    for (const auto& [k, len] : blobs) n += len;
    return n;
  }
  uint64_t stored_data() const {
    uint64_t n = 0;
    for (const auto& [k, len] : blobs) n += k.first == BlobType::kData ? len : 0;
    return n;
  }
};

void reach_tree(repo::Repository& r, const Id& tree, Reach& out) {
  auto loc = r.locate_blob(BlobType::kTree, tree);
  ASSERT_TRUE(loc.has_value()) << "tree " << repo::hex(tree) << " is not indexed";
  if (!out.blobs.emplace(std::make_pair(BlobType::kTree, tree), loc->length).second) return;
  out.trees++;
  auto t = r.load_tree(tree);
  ASSERT_TRUE(t.ok()) << t.error().message();
  for (const auto& n : t->nodes) {
    if (n.subtree) reach_tree(r, *n.subtree, out);
    for (const auto& c : n.content) {
      auto cl = r.locate_blob(BlobType::kData, c.id);
      ASSERT_TRUE(cl.has_value()) << "data blob " << repo::hex(c.id) << " is not indexed";
      out.blobs.emplace(std::make_pair(BlobType::kData, c.id), cl->length);
    }
  }
}

Reach reach_of(repo::Repository& r, const Id& snapshot) {
  Reach out;
  auto s = r.load_snapshot(snapshot);
  EXPECT_TRUE(s.ok());
  if (s.ok()) reach_tree(r, s->tree, out);
  return out;
}

// What two runs of one backup must agree on. Not the duration, and not bytes_added as a whole:
// reading a directory may change its access time, which its tree records, so a later run's
// trees may compress a few bytes differently (bytes_added is compared with the snapshot's own
// blobs instead, and its data part across runs).
std::map<std::string, uint64_t> comparable(std::map<std::string, uint64_t> stats) {
  stats.erase("duration_ms");
  stats.erase("bytes_added");
  return stats;
}

class SessionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);  // a FIFO whose reader was stopped must not kill the test
    char tmpl[] = "/tmp/haven-sessions-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    repo_ = dir_ + "/repo";
    ASSERT_TRUE(init_repo(repo_, 1u << 20));
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A tree of files of random content (seeded: no two sources share a chunk, a file or a
  // directory), `dirs` directories of `files` files each.
  std::string make_source(const std::string& name, int dirs, int files, uint64_t seed) {
    std::string src = dir_ + "/" + name;
    make_dir(src);
    for (int d = 0; d < dirs; d++) {
      std::string sub = src + "/" + name + "-dir" + std::to_string(d);
      make_dir(sub);
      for (int i = 0; i < files; i++) {
        write_file(sub + "/" + name + "-file" + std::to_string(i),
                   random_bytes(400000 + 230000 * static_cast<size_t>(i + d), seed * 1000 + 10 * d + i));
      }
    }
    return src;
  }

  std::unique_ptr<repo::Repository> open(const std::string& path,
                                         std::chrono::milliseconds delay = std::chrono::milliseconds(0)) {
    auto local = storage::open_backend(path);
    if (!local.ok()) return nullptr;
    std::shared_ptr<storage::Backend> be = *local;
    if (delay.count() > 0) be = std::make_shared<LatencyBackend>(be, delay);
    auto r = repo::Repository::open(be, kPw);
    if (!r.ok()) {
      ADD_FAILURE() << r.error().message();
      return nullptr;
    }
    EXPECT_TRUE((*r)->load_index().ok());
    return std::move(*r);
  }

  // A backup of `src` in a session of its own (taking its shared lock), as the CLI runs one.
  static Result<backup::Summary> backup_in_session(repo::Repository& r, backup::Options o) {
    repo::Session session(r);
    HAVEN_TRY(session.lock(false));
    NullSink sink;
    HAVEN_ASSIGN(backup::Summary s, backup::run(session, o, sink));
    HAVEN_TRY(session.unlock());
    return s;
  }

  size_t count(storage::ObjectType t) {
    size_t n = 0;
    EXPECT_TRUE(storage::LocalBackend(repo_).list(t, [&](const storage::ObjectInfo&) { n++; }).ok());
    return n;
  }

  void expect_restores(repo::Repository& r, const Id& snapshot, const std::string& src,
                       const std::string& target) {
    auto s = r.load_snapshot(snapshot);
    ASSERT_TRUE(s.ok());
    repo::Session session(r);
    ASSERT_TRUE(session.lock(false).ok());
    restore::Options o;
    o.target = target;
    o.verify = true;
    NullSink sink;
    auto res = restore::run(session, s->tree, o, sink);
    ASSERT_TRUE(res.ok()) << res.error().message();
    EXPECT_EQ(res->errors, 0u);
    expect_same_tree(src, target + "/" + fs::path(src).filename().string());
  }

  void expect_checks_clean(repo::Repository& r) {
    repo::Session session(r);
    ASSERT_TRUE(session.lock(false).ok());
    check::Options o;
    o.read_data = check::Options::ReadData::kAll;
    NullSink sink;
    auto rep = check::check(session, o, sink);
    ASSERT_TRUE(rep.ok()) << rep.error().message();
    EXPECT_FALSE(rep->damaged()) << check::report_json(*rep).dump(2);
    EXPECT_GT(rep->blobs_read, 0u);
  }

  std::string dir_, repo_;
};

TEST_F(SessionsTest, TwoBackupsAndARestoreAtOnceInOneProcessEachReportWhatItWouldAlone) {
  const std::string early = make_source("early", 2, 4, 1);
  const std::string a = make_source("alpha", 3, 4, 2);
  const std::string b = make_source("beta", 2, 5, 3);

  // The earlier snapshot the restore reads while the backups run.
  Id early_id{};
  {
    auto r = open(repo_);
    ASSERT_TRUE(r);
    backup::Options o;
    o.paths = {early};
    auto s = backup_in_session(*r, o);
    ASSERT_TRUE(s.ok()) << s.error().message();
    early_id = s->snapshot_id;
  }
  // Copies of the repository as it is now (same keys, so the same chunks and blob IDs), for
  // running each backup alone.
  const std::string alone_a = dir_ + "/alone-a", alone_b = dir_ + "/alone-b";
  fs::copy(repo_, alone_a, fs::copy_options::recursive);
  fs::copy(repo_, alone_b, fs::copy_options::recursive);
  std::map<std::string, uint64_t> alone_stats_a, alone_stats_b;
  Reach alone_reach_a, alone_reach_b;
  {
    auto ra = open(alone_a), rb = open(alone_b);
    ASSERT_TRUE(ra && rb);
    backup::Options oa, ob;
    oa.paths = {a};
    ob.paths = {b};
    auto sa = backup_in_session(*ra, oa);
    auto sb = backup_in_session(*rb, ob);
    ASSERT_TRUE(sa.ok() && sb.ok());
    alone_stats_a = sa->snapshot.stats;
    alone_stats_b = sb->snapshot.stats;
    alone_reach_a = reach_of(*ra, sa->snapshot_id);
    alone_reach_b = reach_of(*rb, sb->snapshot_id);
    EXPECT_EQ(alone_stats_a.at("bytes_added"), alone_reach_a.stored());
    EXPECT_EQ(alone_stats_b.at("bytes_added"), alone_reach_b.stored());
  }

  // Now both backups and the restore at once, in one process, over one Repository, each in a
  // session of its own (three shared locks). Every storage call takes 15 ms, so they overlap.
  auto r = open(repo_, std::chrono::milliseconds(15));
  ASSERT_TRUE(r);
  const SourceFacts fa = facts_of(*r, a), fb = facts_of(*r, b);
  StartLine start(3);
  Interval ia, ib, ir;
  Result<backup::Summary> sa = Error(Error::Code::kInternal, "not run"), sb = sa;
  Result<restore::Summary> rs = Error(Error::Code::kInternal, "not run");
  size_t locks_seen = 0;
  std::mutex locks_mu;
  auto run_backup = [&](const std::string& src, Result<backup::Summary>& out, Interval& when) {
    repo::Session session(*r);
    Status locked = session.lock(false);
    start.arrive_and_wait();
    {
      std::lock_guard<std::mutex> g(locks_mu);
      locks_seen = std::max(locks_seen, count(storage::ObjectType::kLock));
    }
    when.begin = Clock::now();
    if (!locked.ok()) {
      out = locked.error();
    } else {
      backup::Options o;
      o.paths = {src};
      NullSink sink;
      out = backup::run(session, o, sink);
    }
    when.end = Clock::now();
    (void)session.unlock();
  };
  std::thread ta(run_backup, a, std::ref(sa), std::ref(ia));
  std::thread tb(run_backup, b, std::ref(sb), std::ref(ib));
  std::thread tr([&] {
    repo::Session session(*r);
    Status locked = session.lock(false);
    start.arrive_and_wait();
    ir.begin = Clock::now();
    auto snap = r->load_snapshot(early_id);
    if (!locked.ok() || !snap.ok()) {
      rs = locked.ok() ? snap.error() : locked.error();
    } else {
      restore::Options o;
      o.target = dir_ + "/restored-early";
      o.verify = true;
      NullSink sink;
      rs = restore::run(session, snap->tree, o, sink);
    }
    ir.end = Clock::now();
    (void)session.unlock();
  });
  ta.join();
  tb.join();
  tr.join();
  ASSERT_TRUE(sa.ok()) << sa.error().message();
  ASSERT_TRUE(sb.ok()) << sb.error().message();
  ASSERT_TRUE(rs.ok()) << rs.error().message();
  EXPECT_EQ(locks_seen, 3u) << "the three sessions did not hold their locks at once";
  EXPECT_EQ(count(storage::ObjectType::kLock), 0u);
  const auto ms = [](const Interval& i) {
    return std::chrono::duration<double, std::milli>(i.end - i.begin).count();
  };
  std::cout << "[ sessions ] backup alpha " << ms(ia) << " ms, backup beta " << ms(ib)
            << " ms, restore " << ms(ir) << " ms, at once\n";
  ASSERT_TRUE(overlap(ia, ib)) << "the backups did not run at the same time: the test proves nothing";
  ASSERT_TRUE(overlap(ir, ia) || overlap(ir, ib)) << "the restore ran beside neither backup";

  // Each backup reports what it reported alone...
  EXPECT_EQ(comparable(sa->snapshot.stats), comparable(alone_stats_a));
  EXPECT_EQ(comparable(sb->snapshot.stats), comparable(alone_stats_b));
  // ...and what its source and its snapshot say: its files and bytes, its distinct chunks and
  // trees as blobs, their stored lengths as bytes added (the data part as alone).
  struct Expect {
    const backup::Summary* summary;
    const SourceFacts* facts;
    const Reach* alone;
  };
  for (const Expect& e : {Expect{&*sa, &fa, &alone_reach_a}, Expect{&*sb, &fb, &alone_reach_b}}) {
    const auto& st = e.summary->snapshot.stats;
    const SourceFacts* facts = e.facts;
    const Reach reach = reach_of(*r, e.summary->snapshot_id);
    EXPECT_EQ(reach.stored_data(), e.alone->stored_data());
    EXPECT_EQ(reach.trees, e.alone->trees);
    EXPECT_EQ(st.at("files_new"), facts->files);
    EXPECT_EQ(st.at("files_changed") + st.at("files_unchanged"), 0u);
    EXPECT_EQ(st.at("dirs"), facts->dirs);
    EXPECT_EQ(st.at("bytes_total"), facts->bytes);
    EXPECT_EQ(st.at("bytes_read"), facts->bytes);
    EXPECT_EQ(st.at("blobs_added"), facts->chunks.size() + reach.trees);
    EXPECT_EQ(reach.blobs.size(), facts->chunks.size() + reach.trees);
    EXPECT_EQ(st.at("bytes_added"), reach.stored());
    EXPECT_EQ(st.at("warnings"), 0u);
  }

  // The restore during the backups is bit-exact; so is each new snapshot, and check --read-data
  // finds nothing wrong.
  EXPECT_EQ(rs->errors, 0u);
  EXPECT_EQ(rs->verified, 8u);
  expect_same_tree(early, dir_ + "/restored-early/early");
  auto fresh = open(repo_);
  ASSERT_TRUE(fresh);
  auto all = fresh->list_snapshots();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 3u);
  expect_restores(*fresh, sa->snapshot_id, a, dir_ + "/restored-alpha");
  expect_restores(*fresh, sb->snapshot_id, b, dir_ + "/restored-beta");
  expect_restores(*fresh, early_id, early, dir_ + "/restored-early-again");
  expect_checks_clean(*fresh);
}

// A backup's bytes_added and blobs_added are its own session's, not the difference of counters
// every session of the repository adds to: a whole other backup that runs and finishes inside
// it changes nothing (with repository-wide counters it would be counted in).
TEST_F(SessionsTest, ABackupRunningInsideAnotherIsNotCountedInIt) {
  const std::string b = make_source("inner", 2, 3, 4);
  const std::string fifo = dir_ + "/stream.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string stream = random_bytes(5u << 20, 99);

  auto r = open(repo_);
  ASSERT_TRUE(r);
  // The outer backup reads a stream that holds back until the inner backup is done.
  Result<backup::Summary> outer = Error(Error::Code::kInternal, "not run");
  std::thread t([&] {
    backup::Options o;
    o.from_stdin = true;
    o.stdin_filename = "stream.bin";
    o.command = {"cat", fifo};
    outer = backup_in_session(*r, o);
  });
  // `cat` has the FIFO open once this open returns: the outer backup is running.
  int wfd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(wfd, 0);
  backup::Options o;
  o.paths = {b};
  auto inner = backup_in_session(*r, o);
  ASSERT_TRUE(inner.ok()) << inner.error().message();
  ASSERT_EQ(::write(wfd, stream.data(), stream.size()), static_cast<ssize_t>(stream.size()));
  ::close(wfd);
  t.join();
  ASSERT_TRUE(outer.ok()) << outer.error().message();
  EXPECT_LT(inner->snapshot.time, outer->snapshot.end_time);
  EXPECT_GT(inner->snapshot.time, outer->snapshot.time) << "the inner backup did not run inside the outer one";

  // The outer backup added its stream's chunks and one tree, nothing of the inner one's.
  std::set<Id> chunks;
  chunk_into(*r, stream, chunks);
  const auto& st = outer->snapshot.stats;
  const Reach reach = reach_of(*r, outer->snapshot_id);
  EXPECT_EQ(reach.trees, 1u);
  EXPECT_EQ(st.at("blobs_added"), chunks.size() + 1);
  EXPECT_EQ(st.at("bytes_added"), reach.stored());
  EXPECT_EQ(st.at("bytes_read"), stream.size());
  // The inner one its own.
  const SourceFacts fb = facts_of(*r, b);
  const Reach inner_reach = reach_of(*r, inner->snapshot_id);
  EXPECT_EQ(inner->snapshot.stats.at("blobs_added"), fb.chunks.size() + inner_reach.trees);
  EXPECT_EQ(inner->snapshot.stats.at("bytes_added"), inner_reach.stored());
}

// Two backups in one process; the lock of one is removed by someone else. That backup stops
// with kLocked and writes nothing; the other one, under its own lock, goes on and completes.
TEST_F(SessionsTest, LosingOneSessionsLockStopsThatSessionOnly) {
  const std::string fifo_a = dir_ + "/a.fifo", fifo_b = dir_ + "/b.fifo";
  ASSERT_EQ(::mkfifo(fifo_a.c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo(fifo_b.c_str(), 0600), 0);
  auto r = open(repo_);
  ASSERT_TRUE(r);
  r->set_lock_timing(50 * 1000000LL, 30LL * 60 * 1000000000);  // refresh every 50 ms
  CancelToken process;  // what a signal would cancel: both sessions hang from it
  repo::Session sa(*r, process), sb(*r, process);
  ASSERT_TRUE(sa.lock(false).ok());
  ASSERT_TRUE(sb.lock(false).ok());
  Result<backup::Summary> ra = Error(Error::Code::kInternal, "not run"), rb = ra;
  auto run = [](repo::Session& s, const std::string& fifo, Result<backup::Summary>& out) {
    backup::Options o;
    o.from_stdin = true;
    o.stdin_filename = "s";
    o.command = {"cat", fifo};
    NullSink sink;
    out = backup::run(s, o, sink);
  };
  std::thread ta(run, std::ref(sa), fifo_a, std::ref(ra));
  std::thread tb(run, std::ref(sb), fifo_b, std::ref(rb));
  int wa = ::open(fifo_a.c_str(), O_WRONLY | O_CLOEXEC);  // both backups are reading now
  int wb = ::open(fifo_b.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(wa, 0);
  ASSERT_GE(wb, 0);
  const std::string part = random_bytes(3u << 20, 5);
  ASSERT_EQ(::write(wa, part.data(), part.size()), static_cast<ssize_t>(part.size()));

  // Someone removes a's lock object (as 'haven unlock --remove-all' elsewhere would); a's
  // refresher finds it gone at its next refresh.
  storage::LocalBackend be(repo_);
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (!sa.cancel_token().cancelled() && Clock::now() < deadline) {
    std::string name = sa.lock_name();
    if (!name.empty()) (void)be.remove({storage::ObjectType::kLock, name});
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(sa.cancel_token().cancelled()) << "a's lost lock did not stop it";
  ta.join();  // its command was stopped: the backup returns
  ::close(wa);
  ASSERT_FALSE(ra.ok());
  EXPECT_EQ(ra.error().code(), Error::Code::kLocked) << ra.error().message();
  Status lost = sa.check_lock();
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.error().code(), Error::Code::kLocked);

  // b is untouched: its token, its lock, and the process's token.
  EXPECT_FALSE(sb.cancel_token().cancelled());
  EXPECT_TRUE(sb.check_lock().ok());
  EXPECT_FALSE(process.cancelled());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // b's lock keeps refreshing
  EXPECT_TRUE(sb.check_lock().ok());
  const std::string data = random_bytes(2u << 20, 6);
  ASSERT_EQ(::write(wb, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::close(wb);
  tb.join();
  ASSERT_TRUE(rb.ok()) << rb.error().message();
  ASSERT_TRUE(sb.unlock().ok());
  ASSERT_TRUE(sa.unlock().ok());
  EXPECT_EQ(count(storage::ObjectType::kSnapshot), 1u);
  EXPECT_EQ(count(storage::ObjectType::kLock), 0u);
  auto fresh = open(repo_);
  ASSERT_TRUE(fresh);
  expect_checks_clean(*fresh);
  auto snap = fresh->load_snapshot(rb->snapshot_id);
  ASSERT_TRUE(snap.ok());
  auto tree = fresh->load_tree(snap->tree);
  ASSERT_TRUE(tree.ok());
  ASSERT_EQ(tree->nodes.size(), 1u);
  EXPECT_EQ(tree->nodes[0].size, data.size());
}

}  // namespace
}  // namespace haven

// The operations layer (ops/), driven through the library as the server's job runner will drive
// it: typed requests in, typed results out, no CLI.
//
//   - backup → snapshots/ls/find/diff/stats → restore (by ID and by time) round trip;
//   - check on a healthy and on a damaged repository, with the WAL archive check composed in;
//   - forget (+ prune under the same lock) and prune;
//   - key add/list/passwd/remove, and WAL push/fetch/archive-key;
//   - the lock: taken and released by each operation, a conflicting lock refused, a cancelled
//     operation leaving nothing behind;
//   - bad requests: kInvalidArgument naming the field, from validate() and from the entry point,
//     with the repository unchanged;
//   - PostgreSQL (a real server, tests/pg/pg_cluster.h): pg backup, windows, validate, retain,
//     a refused restore target, restore + start + validation.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"
#include "support/slow_loads.h"
#pragma GCC diagnostic pop

#include "ops/backup.h"
#include "ops/check.h"
#include "ops/forget.h"
#include "ops/inspect.h"
#include "ops/keys.h"
#include "ops/lock.h"
#include "ops/ops.h"
#include "ops/pg.h"
#include "ops/restore.h"
#include "ops/wal.h"
#include "pg/wal_pages.h"
#include "pg/wal_spool.h"
#include "pg/pg_cluster.h"
#include "pg/recovery.h"
#include "repo/snapshot.h"
#include "util/sysinfo.h"

namespace haven {
namespace {

using repo::Id;

// Every file under `root` (relative path → size), to see that nothing changed.
std::map<std::string, uint64_t> tree_listing(const std::string& root) {
  std::map<std::string, uint64_t> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    std::string rel = it->path().string().substr(root.size());
    out[rel] = it->is_regular_file() ? it->file_size() : 0;
  }
  return out;
}

// The local backend with a delay on every load of a snapshot or an index file, noting whether
// loads of both kinds were ever in flight at once.
class OverlapWatch : public storage::BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  Result<Bytes> load(const storage::ObjectName& n, uint64_t off, uint64_t len) override {
    const bool snap = n.type == storage::ObjectType::kSnapshot;
    if (!snap && n.type != storage::ObjectType::kIndex) return BackendWrapper::load(n, off, len);
    std::atomic<int>& mine = snap ? snapshots_ : indexes_;
    std::atomic<int>& other = snap ? indexes_ : snapshots_;
    ++mine;
    for (int i = 0; i < 20; i++) {  // 100 ms in all, looking for the other kind
      if (other.load() > 0) overlapped_ = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    auto r = BackendWrapper::load(n, off, len);
    --mine;
    return r;
  }
  bool overlapped() const { return overlapped_.load(); }

 private:
  std::atomic<int> snapshots_{0}, indexes_{0};
  std::atomic<bool> overlapped_{false};
};

class OpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::init();
    char tmpl[] = "/tmp/haven-ops-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    repo_path_ = dir_ + "/repo";
    src_ = dir_ + "/src";
    auto be = storage::open_backend(repo_path_);
    ASSERT_TRUE(be.ok()) << be.error().message();
    ops::InitRequest init;
    init.password = kPw;
    init.kdf = {8, 1};
    init.pack_size_mib = 1;  // several packs, so that prune and check have some to work on
    auto r = ops::init(*be, init);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->id, r->repository->config().id);
    EXPECT_EQ(r->location, (*be)->location());
    repo_ = std::move(r->repository);

    make_dir(src_);
    make_dir(src_ + "/config");
    make_dir(src_ + "/data");
    write_file(src_ + "/config/a.conf", "alpha = 1\n");
    write_file(src_ + "/config/b.conf", "beta = 2\n");
    write_file(src_ + "/data/x.bin", random_bytes(1500 << 10, 1));
    ASSERT_EQ(symlink("config/a.conf", (src_ + "/link").c_str()), 0);
  }

  void TearDown() override {
    repo_.reset();
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // A second session on the same repository (another process, say).
  std::unique_ptr<repo::Repository> open(const std::string& password = kPw) {
    auto be = storage::open_backend(repo_path_);
    EXPECT_TRUE(be.ok());
    auto r = repo::Repository::open(*be, password);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? std::move(*r) : nullptr;
  }

  // Opens the repository again (as repo_) over a decorator of its backend, made with `args`
  // after the backend; nullptr (a failure recorded) if it cannot be opened.
  template <typename Wrapper, typename... Args>
  std::shared_ptr<Wrapper> reopen_over(Args&&... args) {
    auto be = storage::open_backend(repo_path_);
    EXPECT_TRUE(be.ok());
    if (!be.ok()) return nullptr;
    auto wrapper = std::make_shared<Wrapper>(*be, std::forward<Args>(args)...);
    auto r = repo::Repository::open(wrapper, kPw);
    EXPECT_TRUE(r.ok()) << r.error().message();
    if (!r.ok()) return nullptr;
    repo_ = std::move(*r);
    return wrapper;
  }

  // Two backups (the second adds src/more), then a damaged copy of an index file beside the
  // real ones (its blobs are listed elsewhere too), named with 64 'e's; the repository opened
  // again over an OverlapWatch, and the events so far cleared.
  void two_backups_and_a_damaged_index_copy(ops::BackupResult& b1, ops::BackupResult& b2,
                                            std::shared_ptr<OverlapWatch>& watch) {
    b1 = backup();
    write_file(src_ + "/more", "more");
    b2 = backup();
    std::vector<std::string> idx = list_dir(repo_path_ + "/index");
    ASSERT_FALSE(idx.empty());
    std::string bytes = read_file(repo_path_ + "/index/" + idx[0]);
    bytes[bytes.size() / 2] ^= 0x55;
    write_file(repo_path_ + "/index/" + std::string(64, 'e'), bytes);
    watch = reopen_over<OverlapWatch>();
    ASSERT_NE(watch, nullptr);
    sink_.events.clear();
  }

  ops::BackupResult backup(const std::string& strategy = "incremental") {
    ops::BackupRequest req;
    req.paths = {src_};
    req.strategy = strategy;
    auto r = ops::backup(*repo_, req, sink_);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? std::move(*r) : ops::BackupResult{};
  }

  std::vector<std::string> locks() { return list_dir(repo_path_ + "/locks"); }

  std::string dir_, repo_path_, src_;
  std::unique_ptr<repo::Repository> repo_;
  RecordingSink sink_;
};

// --- the round trip -------------------------------------------------------------------------

TEST_F(OpsTest, BackupInspectAndRestoreRoundTrip) {
  ops::BackupResult b1 = backup();
  ASSERT_NE(b1.snapshot_id, Id{});
  EXPECT_EQ(b1.warnings, 0u);
  EXPECT_EQ(b1.stat("files_new"), 3u);  // a.conf, b.conf, x.bin
  EXPECT_EQ(b1.snapshot.paths, std::vector<std::string>{src_});
  EXPECT_EQ(b1.snapshot.strategy, "incremental");
  EXPECT_TRUE(locks().empty()) << "the backup left its lock behind";

  // Changes: one file's content, one new file, one removed.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write_file(src_ + "/config/a.conf", "alpha = 100\n");
  write_file(src_ + "/data/y.txt", "new\n");
  ASSERT_EQ(unlink((src_ + "/config/b.conf").c_str()), 0);
  ops::BackupResult b2 = backup();
  ASSERT_NE(b2.snapshot_id, Id{});
  ASSERT_NE(b2.snapshot_id, b1.snapshot_id);
  EXPECT_EQ(b2.stat("files_new"), 1u);
  EXPECT_EQ(b2.stat("files_changed"), 1u);

  // snapshots: both, oldest first.
  auto snaps = ops::snapshots(*repo_, {}, sink_);
  ASSERT_TRUE(snaps.ok()) << snaps.error().message();
  ASSERT_EQ(snaps->size(), 2u);
  EXPECT_EQ((*snaps)[0].id, b1.snapshot_id);
  EXPECT_EQ((*snaps)[1].id, b2.snapshot_id);

  // ls of the first snapshot: everything, under its top-level name "src".
  auto l = ops::ls(*repo_, {repo::hex(b1.snapshot_id), "/"}, sink_);
  ASSERT_TRUE(l.ok()) << l.error().message();
  EXPECT_EQ(l->snapshot_id, b1.snapshot_id);
  std::set<std::string> paths;
  for (const auto& e : l->entries) paths.insert(e.path);
  EXPECT_EQ(paths, (std::set<std::string>{"/src", "/src/config", "/src/config/a.conf",
                                          "/src/config/b.conf", "/src/data", "/src/data/x.bin",
                                          "/src/link"}));
  EXPECT_EQ(l->count, paths.size());
  for (const auto& e : l->entries) {
    if (e.path == "/src/data/x.bin") {
      EXPECT_EQ(e.node.size, 1500u << 10);
    }
    if (e.path == "/src/link") {
      EXPECT_EQ(e.node.type, repo::Node::Type::kSymlink);
      EXPECT_EQ(e.node.link_target, "config/a.conf");
    }
  }
  // A directory as backed up (the original path), streamed to a visitor: nothing collected.
  std::vector<std::string> streamed;
  auto l2 = ops::ls(*repo_, {"latest", src_ + "/config"}, sink_,
                    [&](const ops::TreeEntry& e) { streamed.push_back(e.path); });
  ASSERT_TRUE(l2.ok()) << l2.error().message();
  EXPECT_EQ(l2->snapshot_id, b2.snapshot_id);
  EXPECT_TRUE(l2->entries.empty());
  EXPECT_EQ(l2->count, streamed.size());
  EXPECT_EQ(streamed, (std::vector<std::string>{"/src/config", "/src/config/a.conf"}));
  // A path the snapshot does not hold: kNotFound naming it.
  auto missing = ops::ls(*repo_, {"latest", "/nowhere/at/all"}, sink_);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Error::Code::kNotFound);
  EXPECT_TRUE(contains(missing.error().message(), "/nowhere/at/all")) << missing.error().message();

  // find: by name in both snapshots, by original path glob.
  auto f = ops::find(*repo_, {"*.conf"}, sink_);
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->snapshots, 2u);
  EXPECT_EQ(f->count, 3u);  // a.conf and b.conf in the first, a.conf in the second
  ASSERT_EQ(f->matches.size(), 3u);
  EXPECT_EQ(f->matches[0].snapshot_id, b1.snapshot_id);
  EXPECT_EQ(f->matches[0].snapshot_time, b1.snapshot.time);
  EXPECT_EQ(f->matches[2].snapshot_id, b2.snapshot_id);
  EXPECT_EQ(f->matches[2].entry.path, "/src/config/a.conf");
  auto f2 = ops::find(*repo_, {src_ + "/data/*"}, sink_);
  ASSERT_TRUE(f2.ok()) << f2.error().message();
  EXPECT_EQ(f2->count, 3u);  // x.bin twice, y.txt once

  // diff: typed counts and changes.
  auto d = ops::diff(*repo_, {repo::hex(b1.snapshot_id), repo::hex(b2.snapshot_id), {}}, sink_);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->snapshot_a, b1.snapshot_id);
  EXPECT_EQ(d->snapshot_b, b2.snapshot_id);
  EXPECT_EQ(d->added, 1u);
  EXPECT_EQ(d->removed, 1u);
  EXPECT_EQ(d->modified, 1u);
  EXPECT_EQ(d->type_changed, 0u);
  std::map<std::string, char> changes;
  for (const auto& c : d->changes) changes[c.path] = c.kind;
  EXPECT_EQ(changes["/src/data/y.txt"], '+');
  EXPECT_EQ(changes["/src/config/b.conf"], '-');
  EXPECT_EQ(changes["/src/config/a.conf"], 'M');
  // Restricted to a path (as backed up), streamed.
  std::vector<ops::Change> seen;
  auto d2 = ops::diff(*repo_, {repo::hex(b1.snapshot_id), "latest", {src_ + "/data"}}, sink_,
                      [&](const ops::Change& c) { seen.push_back(c); });
  ASSERT_TRUE(d2.ok()) << d2.error().message();
  EXPECT_TRUE(d2->changes.empty());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].kind, '+');
  EXPECT_EQ(seen[0].path, "/src/data/y.txt");
  EXPECT_EQ(d2->added, 1u);
  EXPECT_EQ(d2->modified + d2->removed, 0u);

  // stats: what the repository holds.
  auto st = ops::stats(*repo_, {}, sink_);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(st->snapshots, 2u);
  EXPECT_GE(st->packs, 1u);
  EXPECT_GT(st->blobs, 0u);
  EXPECT_EQ(st->snapshot_bytes_total, b1.stat("bytes_total") + b2.stat("bytes_total"));
  EXPECT_GE(st->unique_raw_bytes, 1500u << 10);
  EXPECT_GT(st->stored_bytes, 0u);
  EXPECT_NEAR(st->dedup_ratio(), double(st->snapshot_bytes_total) / double(st->stored_bytes), 1e-9);

  // restore: the first snapshot by ID, bit for bit as it was.
  std::string t1 = dir_ + "/restore1";
  ops::RestoreRequest rr;
  rr.snapshot = repo::hex(b1.snapshot_id).substr(0, 10);
  rr.target = t1;
  rr.verify = true;
  auto res = ops::restore(*repo_, rr, sink_);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->snapshot_id, b1.snapshot_id);
  EXPECT_EQ(res->summary.files, 3u);
  EXPECT_EQ(res->summary.verified, 3u);
  EXPECT_EQ(res->summary.errors, 0u);
  EXPECT_TRUE(res->summary.substitution.empty());
  EXPECT_EQ(read_file(t1 + "/src/config/a.conf"), "alpha = 1\n");
  EXPECT_EQ(read_file(t1 + "/src/config/b.conf"), "beta = 2\n");
  EXPECT_EQ(read_file(t1 + "/src/data/x.bin"), random_bytes(1500 << 10, 1));
  EXPECT_TRUE(locks().empty()) << "the restore left its lock behind";

  // By time: the newest at or before the first snapshot's time is the first (the choice is
  // restore::choose_snapshot's), and only the included path.
  std::string t2 = dir_ + "/restore2";
  ops::RestoreRequest at;
  at.at = format_time(b1.snapshot.time);
  at.target = t2;
  at.includes = {src_ + "/config"};
  auto res2 = ops::restore(*repo_, at, sink_);
  ASSERT_TRUE(res2.ok()) << res2.error().message();
  EXPECT_EQ(res2->snapshot_id, b1.snapshot_id);
  EXPECT_EQ(res2->summary.files, 2u);
  EXPECT_FALSE(exists(t2 + "/src/data/x.bin"));
  // Before every snapshot: kNotFound naming the oldest.
  at.at = format_time(b1.snapshot.time - 1000000000);
  at.target = dir_ + "/restore3";
  auto none = ops::restore(*repo_, at, sink_);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), Error::Code::kNotFound);
  EXPECT_TRUE(contains(none.error().message(), "no snapshot at or before")) << none.error().message();
  EXPECT_TRUE(locks().empty());

  // Restoring again over the first restore: existing files are left alone and counted.
  auto again = ops::restore(*repo_, rr, sink_);
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(again->overwrite, restore::Overwrite::kNever);
  EXPECT_GE(again->summary.skipped, 3u);
  EXPECT_EQ(again->summary.files, 0u);
}

// A damaged snapshot object: listing skips it with a warning notice, restoring "latest" says
// the restore is a substitution.
TEST_F(OpsTest, DamagedSnapshotsAreSkippedWithANotice) {
  ops::BackupResult b1 = backup();
  write_file(src_ + "/more", "more");
  ops::BackupResult b2 = backup();
  std::string path = repo_path_ + "/snapshots/" + repo::hex(b2.snapshot_id);
  std::string bytes = read_file(path);
  bytes[bytes.size() / 2] ^= 0x55;
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  write_file(path, bytes);
  repo_ = open();
  sink_.events.clear();
  auto snaps = ops::snapshots(*repo_, {}, sink_);
  ASSERT_TRUE(snaps.ok()) << snaps.error().message();
  ASSERT_EQ(snaps->size(), 1u);
  auto notices = sink_.of("notice");
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].data.value("level", ""), "warning");
  EXPECT_TRUE(contains(notices[0].message, "'haven check' lists what is damaged"))
      << notices[0].to_json().dump();

  ops::RestoreRequest rr;
  rr.snapshot = "latest";
  rr.target = dir_ + "/t";
  auto res = ops::restore(*repo_, rr, sink_);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->snapshot_id, b1.snapshot_id);
  EXPECT_TRUE(contains(res->summary.substitution, repo::short_hex(b2.snapshot_id)))
      << res->summary.substitution;
}

// On object storage the snapshot's choice and the index's load each cost round trips: restore
// runs them side by side. An index file skipped on that thread is still told as a warning, and
// the restore is the snapshot's.
TEST_F(OpsTest, RestoreLoadsTheIndexWhileItChoosesTheSnapshot) {
  ops::BackupResult b1, b2;
  std::shared_ptr<OverlapWatch> watch;
  two_backups_and_a_damaged_index_copy(b1, b2, watch);
  ASSERT_FALSE(HasFailure());
  ops::RestoreRequest rr;
  rr.snapshot = "latest";
  rr.target = dir_ + "/t";
  auto res = ops::restore(*repo_, rr, sink_);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->snapshot_id, b2.snapshot_id);
  EXPECT_NE(res->snapshot_id, b1.snapshot_id);
  EXPECT_EQ(read_file(dir_ + "/t/src/more"), "more");
  EXPECT_TRUE(watch->overlapped()) << "the index and the snapshots were loaded one after the other";
  auto notices = sink_.of("notice");
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_TRUE(contains(notices[0].message, "run 'haven repair index'")) << notices[0].message;
  EXPECT_TRUE(contains(notices[0].message, std::string(64, 'e'))) << notices[0].message;
}

// ls and diff choose their snapshots while the index loads, as restore does, and tell an index
// file skipped on that thread after. A snapshot that does not exist fails at once: the index
// load is given up, and nothing is said about it.
TEST_F(OpsTest, LsAndDiffLoadTheIndexWhileTheyChooseSnapshotsAndAWrongOneSaysNothingOfIt) {
  ops::BackupResult b1, b2;
  std::shared_ptr<OverlapWatch> watch;
  two_backups_and_a_damaged_index_copy(b1, b2, watch);
  ASSERT_FALSE(HasFailure());
  auto l = ops::ls(*repo_, {"latest", "/"}, sink_);
  ASSERT_TRUE(l.ok()) << l.error().message();
  EXPECT_EQ(l->snapshot_id, b2.snapshot_id);
  EXPECT_TRUE(watch->overlapped()) << "ls loaded the index and the snapshot one after the other";
  auto notices = sink_.of("notice");
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_TRUE(contains(notices[0].message, "run 'haven repair index'")) << notices[0].message;

  watch = reopen_over<OverlapWatch>();
  ASSERT_NE(watch, nullptr);
  sink_.events.clear();
  auto d = ops::diff(*repo_, {repo::hex(b1.snapshot_id), repo::hex(b2.snapshot_id), {}}, sink_);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->added, 1u);
  EXPECT_TRUE(watch->overlapped()) << "diff loaded the index and the snapshots one after the other";
  EXPECT_EQ(sink_.of("notice").size(), 1u);

  repo_ = open();  // the index not loaded yet
  ASSERT_NE(repo_, nullptr);
  sink_.events.clear();
  auto no_ls = ops::ls(*repo_, {std::string(8, 'f'), "/"}, sink_);
  ASSERT_FALSE(no_ls.ok());
  EXPECT_EQ(no_ls.error().code(), Error::Code::kNotFound) << no_ls.error().message();
  repo_ = open();
  ASSERT_NE(repo_, nullptr);
  auto no_diff = ops::diff(*repo_, {std::string(8, 'f'), "latest", {}}, sink_);
  ASSERT_FALSE(no_diff.ok());
  EXPECT_EQ(no_diff.error().code(), Error::Code::kNotFound) << no_diff.error().message();
  EXPECT_TRUE(sink_.of("notice").empty()) << "a snapshot that does not exist was told with the index's warnings";
}

// Check and prune walk every snapshot: its object is fetched ahead of the one being walked (all
// six here: a backend that reads 4 ahead gets 16 snapshots ahead), and what they find is what
// it was (every snapshot checked and marked, nothing damaged).
TEST_F(OpsTest, CheckAndPruneFetchSnapshotsAhead) {
  for (int i = 0; i < 6; i++) {
    write_file(src_ + "/config/a.conf", "alpha = " + std::to_string(i) + "\n");
    backup();
  }
  auto loads = reopen_over<testing::SlowLoads>(storage::ObjectType::kSnapshot, size_t{4});
  ASSERT_NE(loads, nullptr);
  auto checked = ops::check(*repo_, {}, sink_);
  ASSERT_TRUE(checked.ok()) << checked.error().message();
  EXPECT_EQ(checked->snapshots, 6u);
  EXPECT_TRUE(checked->problems.empty());
  EXPECT_EQ(loads->take_most_in_flight(), 6u);
  auto pruned = ops::prune(*repo_, {}, sink_);
  ASSERT_TRUE(pruned.ok()) << pruned.error().message();
  EXPECT_EQ(pruned->snapshots, 6u);
  EXPECT_EQ(loads->take_most_in_flight(), 6u);
}

// A server runs each operation under its job's ID: every event of it, the engine's and the
// operation's own notices alike, carries that ID and nothing else does.
TEST_F(OpsTest, EventsCarryTheCallersOperationId) {
  backup();
  write_file(src_ + "/more", "more");
  ops::BackupResult b2 = backup();
  std::string path = repo_path_ + "/snapshots/" + repo::hex(b2.snapshot_id);
  std::string bytes = read_file(path);
  bytes[bytes.size() / 2] ^= 0x55;  // a notice: one snapshot skipped
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  write_file(path, bytes);
  repo_ = open();
  sink_.events.clear();
  ops::RestoreRequest rr;
  rr.snapshot = "latest";
  rr.target = dir_ + "/t";
  EventTarget job(sink_, "job-42");
  ASSERT_TRUE(ops::snapshots(*repo_, {}, job).ok());
  auto res = ops::restore(*repo_, rr, job);
  ASSERT_TRUE(res.ok()) << res.error().message();
  ASSERT_FALSE(sink_.of("notice").empty());
  ASSERT_FALSE(sink_.of(EventKind::kCompleted).empty());
  for (const Event& e : sink_.events) {
    EXPECT_EQ(e.operation_id, "job-42") << e.to_json().dump();
  }
  // Without an ID the restore gets a random one of its own.
  sink_.events.clear();
  rr.target = dir_ + "/t2";
  ASSERT_TRUE(ops::restore(*repo_, rr, sink_).ok());
  auto done = sink_.of(EventKind::kCompleted);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].operation_id.size(), 16u);
  EXPECT_NE(done[0].operation_id, "job-42");
}

// --- check -----------------------------------------------------------------------------------

TEST_F(OpsTest, CheckReportsAHealthyAndADamagedRepository) {
  ops::BackupResult b = backup();
  ops::CheckRequest all;
  all.read_data = true;
  auto healthy = ops::check(*repo_, all, sink_);
  ASSERT_TRUE(healthy.ok()) << healthy.error().message();
  EXPECT_FALSE(healthy->damaged());
  EXPECT_TRUE(healthy->problems.empty());
  EXPECT_EQ(healthy->snapshots, 1u);
  EXPECT_GE(healthy->packs_read, 1u);
  EXPECT_EQ(healthy->packs_read, healthy->packs);
  EXPECT_EQ(healthy->wal_files, 0u);
  EXPECT_TRUE(locks().empty());

  // The WAL archive's check is part of the operation: an object under wal/ that is no WAL file.
  make_dir(repo_path_ + "/wal");
  write_file(repo_path_ + "/wal/not-a-wal-file", "junk");
  // And a pack whose bytes were changed.
  std::string pack;
  for (const auto& sub : list_dir(repo_path_ + "/data")) {
    for (const auto& p : list_dir(repo_path_ + "/data/" + sub)) {
      std::string path = repo_path_ + "/data/" + sub + "/" + p;
      if (pack.empty() || fs::file_size(path) > fs::file_size(pack)) pack = path;
    }
  }
  ASSERT_FALSE(pack.empty());
  std::string bytes = read_file(pack);
  bytes[bytes.size() / 3] ^= 0x01;
  ASSERT_EQ(chmod(pack.c_str(), 0644), 0);
  write_file(pack, bytes);

  // The structure alone does not read packs: only the WAL archive's problem.
  auto structure = ops::check(*repo_, {}, sink_);
  ASSERT_TRUE(structure.ok()) << structure.error().message();
  bool wal_problem = false;
  for (const auto& p : structure->problems) {
    if (contains(p.object + " " + p.error, "not-a-wal-file")) wal_problem = true;
  }
  EXPECT_TRUE(wal_problem) << check::report_json(*structure).dump(2);

  auto damaged = ops::check(*repo_, all, sink_);
  ASSERT_TRUE(damaged.ok()) << damaged.error().message();
  EXPECT_TRUE(damaged->damaged());
  std::string pack_id = fs::path(pack).filename().string();
  bool named = false;
  for (const auto& p : damaged->problems) {
    if (p.damage && contains(p.object + " " + p.error, pack_id)) {
      named = true;
      // It affects the snapshot, and names the file.
      ASSERT_TRUE(p.affected.count(repo::hex(b.snapshot_id))) << p.object << ": " << p.error;
      EXPECT_TRUE(contains(p.affected.at(repo::hex(b.snapshot_id)).front(), "x.bin"));
    }
  }
  EXPECT_TRUE(named) << check::report_json(*damaged).dump(2);
  EXPECT_TRUE(locks().empty());

  // A subset: one group of one, every pack.
  ops::CheckRequest subset;
  subset.read_data_subset = "1/1";
  auto sub = ops::check(*repo_, subset, sink_);
  ASSERT_TRUE(sub.ok()) << sub.error().message();
  EXPECT_TRUE(sub->damaged());
  EXPECT_EQ(sub->packs_read, sub->packs);

  // repair index works through its operation too (the pack's trailer may or may not be where the
  // damage is; the index is rewritten either way).
  auto rep = ops::repair_index(*repo_, {}, sink_);
  ASSERT_TRUE(rep.ok()) << rep.error().message();
  EXPECT_EQ(rep->packs, damaged->packs);
  EXPECT_GE(rep->index_files_written, 1u);
  EXPECT_TRUE(locks().empty());
}

// --- forget and prune ------------------------------------------------------------------------

TEST_F(OpsTest, ForgetThenPruneUnderOneLock) {
  std::vector<Id> ids;
  for (int i = 0; i < 4; i++) {
    write_file(src_ + "/data/gen.bin", random_bytes(600 << 10, 100 + i));
    ids.push_back(backup().snapshot_id);
  }
  auto before = ops::stats(*repo_, {}, sink_);
  ASSERT_TRUE(before.ok());

  // A dry run decides and changes nothing.
  ops::ForgetRequest dry;
  dry.keep_last = 1;
  dry.dry_run = true;
  dry.group_by = "";
  auto d = ops::forget(*repo_, dry, sink_);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->keep, 1u);
  EXPECT_EQ(d->remove, 3u);
  EXPECT_EQ(d->removed, 0u);
  EXPECT_FALSE(d->prune);
  EXPECT_EQ(d->policy, "keep last 1");
  EXPECT_EQ(d->timezone, "UTC");
  ASSERT_EQ(d->groups.size(), 1u);
  ASSERT_EQ(d->groups[0].decisions.size(), 4u);
  EXPECT_EQ(d->groups[0].decisions[0].id, ids[3]);  // newest first
  EXPECT_TRUE(d->groups[0].decisions[0].keep);
  EXPECT_EQ(d->groups[0].decisions[0].reasons, std::vector<std::string>{"last"});
  EXPECT_EQ(ops::snapshots(*repo_, {}, sink_)->size(), 4u);

  ops::ForgetRequest real = dry;
  real.dry_run = false;
  real.prune = true;
  real.max_unused_percent = 0;
  real.timezone = "Europe/Berlin";
  sink_.events.clear();
  auto f = ops::forget(*repo_, real, sink_);
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(f->removed, 3u);
  EXPECT_FALSE(f->removal_error);
  EXPECT_EQ(f->timezone, "Europe/Berlin");
  EXPECT_NE(f->groups[0].decisions[0].local.utc_offset, -1);  // filled in the request's zone
  ASSERT_TRUE(f->prune);
  EXPECT_GT(f->prune->packs_deleted, 0u);
  EXPECT_EQ(f->prune->snapshots, 1u);
  EXPECT_FALSE(sink_.of("summary").empty()) << "prune's events reach the sink";
  auto left = ops::snapshots(*repo_, {}, sink_);
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].id, ids[3]);
  auto after = ops::stats(*repo_, {}, sink_);
  ASSERT_TRUE(after.ok());
  EXPECT_LT(after->stored_bytes, before->stored_bytes);
  EXPECT_TRUE(locks().empty());

  // What is left is intact, and a prune now finds nothing to delete.
  ops::CheckRequest all;
  all.read_data = true;
  auto c = ops::check(*repo_, all, sink_);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->damaged()) << check::report_json(*c).dump(2);
  ops::PruneRequest pr;
  pr.dry_run = true;
  auto p = ops::prune(*repo_, pr, sink_);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->packs_deleted, 0u);
  EXPECT_EQ(p->blobs_removed, 0u);
  pr.dry_run = false;
  p = ops::prune(*repo_, pr, sink_);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_TRUE(locks().empty());
}

// Removing snapshots needs the exclusive lock: a backup in progress elsewhere (a shared lock)
// makes forget fail with kLocked, changing nothing; a dry run shares.
TEST_F(OpsTest, ForgetNeedsTheExclusiveLock) {
  backup();
  write_file(src_ + "/more", "more");
  backup();
  auto other = open();
  ASSERT_TRUE(other);
  repo::Session backing_up(*other);  // a backup in progress in another process, say
  ASSERT_OK(backing_up.lock(false));
  ops::ForgetRequest req;
  req.keep_last = 1;
  auto f = ops::forget(*repo_, req, sink_);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), Error::Code::kLocked);
  EXPECT_EQ(ops::snapshots(*repo_, {}, sink_)->size(), 2u);
  req.dry_run = true;
  auto d = ops::forget(*repo_, req, sink_);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->remove, 1u);
  ASSERT_OK(backing_up.unlock());
  EXPECT_TRUE(locks().empty());
}

// --- the lock and cancellation -----------------------------------------------------------------

TEST_F(OpsTest, TheLockHelperTakesReportsAndReleases) {
  {
    auto held = ops::lock(*repo_, ops::LockMode::kShared, sink_);
    ASSERT_TRUE(held.ok()) << held.error().message();
    EXPECT_EQ(locks().size(), 1u);
    // An exclusive lock elsewhere is refused while it is held.
    auto other = open();
    auto refused = ops::lock(*other, ops::LockMode::kExclusive, sink_);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), Error::Code::kLocked);
    ASSERT_OK(held->release());
    EXPECT_TRUE(locks().empty());
    ASSERT_OK(held->release());  // idempotent
  }
  {
    // Destroyed while held (an operation that failed): released all the same.
    auto held = ops::lock(*repo_, ops::LockMode::kExclusive, sink_);
    ASSERT_TRUE(held.ok());
    EXPECT_EQ(locks().size(), 1u);
  }
  EXPECT_TRUE(locks().empty());

  // A lock whose process is gone is ignored, and said so in a notice (the CLI prints it).
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  ASSERT_EQ(waitpid(dead, nullptr, 0), dead);
  repo::Lock stale;
  stale.hostname = hostname();
  stale.username = "bob";
  stale.pid = dead;
  stale.exclusive = true;
  stale.time = stale.refreshed = now();
  auto planted = repo_->save_object(storage::ObjectType::kLock, repo::encode_lock(stale));
  ASSERT_TRUE(planted.ok()) << planted.error().message();
  sink_.events.clear();
  auto held = ops::lock(*repo_, ops::LockMode::kExclusive, sink_);
  ASSERT_TRUE(held.ok()) << held.error().message();
  ASSERT_OK(held->release());
  auto notices = sink_.of("notice");
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].data.value("level", ""), "notice");
  const std::string msg = notices[0].message;
  EXPECT_TRUE(contains(msg, "ignoring stale exclusive lock of PID " + std::to_string(dead))) << msg;
  EXPECT_TRUE(contains(msg, "haven unlock")) << msg;
  EXPECT_EQ(locks(), std::vector<std::string>{repo::hex(*planted)}) << "the stale lock stays";
}

// A restore started while a prune holds the repository (a policy's retention right after its
// backup; a drill started then) fails at once by default, and with lock_wait runs once the
// exclusive lock is gone, after one notice naming the holder. Cancelling stops the wait.
TEST_F(OpsTest, ARestoreWaitsOutAnExclusiveLockWhenAskedTo) {
  ops::BackupResult b = backup();
  auto other = open();
  auto prune = ops::lock(*other, ops::LockMode::kExclusive, sink_);
  ASSERT_TRUE(prune.ok()) << prune.error().message();
  ops::RestoreRequest rr;
  rr.snapshot = "latest";
  rr.target = dir_ + "/restored";
  auto refused = ops::restore(*repo_, rr, sink_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), Error::Code::kLocked) << refused.error().message();
  EXPECT_FALSE(exists(rr.target + "/src/config/a.conf")) << "nothing restored while refused";

  // Released 300 ms into the wait: the restore goes on.
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_TRUE(prune->release().ok());
  });
  sink_.events.clear();
  rr.lock_wait = std::chrono::seconds(30);
  const auto t0 = std::chrono::steady_clock::now();
  auto waited = ops::restore(*repo_, rr, sink_);
  const auto took = std::chrono::steady_clock::now() - t0;
  release.join();
  ASSERT_TRUE(waited.ok()) << waited.error().message();
  EXPECT_EQ(waited->snapshot_id, b.snapshot_id);
  EXPECT_GE(waited->summary.files, 1u);
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::seconds(10)) << "tried again within a second or so";
  auto notices = sink_.of("notice");
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_TRUE(contains(notices[0].message, "waiting up to 30 s for the lock")) << notices[0].message;
  EXPECT_TRUE(contains(notices[0].message, "exclusively by PID")) << notices[0].message;
  EXPECT_TRUE(locks().empty());

  // Held for good: a cancel ends the wait at once with kCancelled.
  auto held = ops::lock(*other, ops::LockMode::kExclusive, sink_);
  ASSERT_TRUE(held.ok());
  CancelToken job;
  std::thread cancel([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    job.cancel();
  });
  rr.target = dir_ + "/restored2";
  rr.lock_wait = std::chrono::seconds(600);
  Result<ops::RestoreResult> stopped = Error(Error::Code::kInternal, "not run");
  const auto t1 = std::chrono::steady_clock::now();
  {
    CancelScope scope(job);
    stopped = ops::restore(*repo_, rr, sink_);
  }
  cancel.join();
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.error().code(), Error::Code::kCancelled) << stopped.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - t1, std::chrono::seconds(10));
  ASSERT_OK(held->release());
}

TEST_F(OpsTest, ACancelledOperationWritesNothingAndLeavesNoLock) {
  CancelToken token;
  repo_->set_cancel_token(token);
  token.cancel();
  ops::BackupRequest req;
  req.paths = {src_};
  auto r = ops::backup(*repo_, req, sink_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kCancelled);
  EXPECT_TRUE(list_dir(repo_path_ + "/snapshots").empty());
  EXPECT_TRUE(locks().empty());
}

// A server cancels one job, not the repository: the caller's current token (CancelScope)
// stops the operation it runs, mid-way, while another operation on the same Repository object
// goes on and the repository's own token stays untouched.
TEST_F(OpsTest, TheCallersTokenCancelsOnlyItsOwnOperation) {
  for (int i = 0; i < 40; ++i) {
    write_file(src_ + "/data/big" + std::to_string(i), random_bytes(2 << 20, 100 + i));
  }
  CancelToken job;
  std::atomic<bool> cancelled_at_progress{false};
  class CancellingSink : public EventSink {
   public:
    CancellingSink(CancelToken t, std::atomic<bool>& flag) : t_(std::move(t)), flag_(flag) {}
    void emit(const Event& e) override {
      if (e.kind == EventKind::kProgress && e.progress && e.progress->bytes_done > 0 &&
          !flag_.exchange(true)) {
        t_.cancel();
      }
    }
   private:
    CancelToken t_;
    std::atomic<bool>& flag_;
  } sink(job, cancelled_at_progress);
  ops::BackupRequest req;
  req.paths = {src_};
  Result<ops::BackupResult> r = Error(Error::Code::kInternal, "not run");
  {
    CancelScope scope(job);
    r = ops::backup(*repo_, req, sink);
  }
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kCancelled) << r.error().message();
  EXPECT_TRUE(cancelled_at_progress.load());
  EXPECT_FALSE(repo_->cancel_token().cancelled());
  EXPECT_TRUE(list_dir(repo_path_ + "/snapshots").empty());
  EXPECT_TRUE(locks().empty());
  // The same Repository object runs the next operation normally.
  ops::BackupResult b = backup();
  EXPECT_NE(b.snapshot_id, Id{});
}

// --- keys --------------------------------------------------------------------------------------

TEST_F(OpsTest, KeysAddListPasswdRemove) {
  auto keys = ops::list_keys(*repo_);
  ASSERT_TRUE(keys.ok()) << keys.error().message();
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_TRUE((*keys)[0].current);
  const std::string first = (*keys)[0].id;

  ops::KeyAddRequest add;
  add.new_password = "second password";
  add.kdf = {8, 1};
  auto added = ops::add_key(*repo_, add);
  ASSERT_TRUE(added.ok()) << added.error().message();
  keys = ops::list_keys(*repo_);
  ASSERT_EQ(keys->size(), 2u);
  auto second = open("second password");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->current_key_id(), added->key_id);

  // The key in use cannot be removed; another one can, by prefix.
  auto in_use = ops::remove_key(*repo_, {first.substr(0, 8)});
  ASSERT_FALSE(in_use.ok());
  EXPECT_TRUE(contains(in_use.error().message(), "in use")) << in_use.error().message();
  ASSERT_OK(ops::remove_key(*repo_, {added->key_id.substr(0, 10)}));
  keys = ops::list_keys(*repo_);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].id, first);

  // passwd: a new key for the new password, the old one gone.
  ops::KeyAddRequest pw;
  pw.new_password = "third";
  pw.kdf = {8, 1};
  auto changed = ops::change_password(*repo_, pw);
  ASSERT_TRUE(changed.ok()) << changed.error().message();
  keys = ops::list_keys(*repo_);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].id, changed->key_id);
  EXPECT_TRUE(open("third"));

  // Bad requests change nothing.
  ops::KeyAddRequest empty;
  empty.kdf = {8, 1};
  auto e = ops::add_key(*repo_, empty);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), Error::Code::kInvalidArgument);
  EXPECT_TRUE(contains(e.error().message(), "password")) << e.error().message();
  ops::KeyAddRequest weak = add;
  weak.kdf.iterations = 0;
  e = ops::add_key(*repo_, weak);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), Error::Code::kInvalidArgument);
  EXPECT_TRUE(contains(e.error().message(), "--kdf-iterations")) << e.error().message();
  EXPECT_EQ(ops::list_keys(*repo_)->size(), 1u);
}

// --- WAL -----------------------------------------------------------------------------------------

TEST_F(OpsTest, WalPushFetchAndArchiveKey) {
  const std::string key = dir_ + "/wal.key";
  ASSERT_OK(ops::archive_key(*repo_, {key, false}));
  struct stat st;
  ASSERT_EQ(stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = ops::archive_key(*repo_, {key, false});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Error::Code::kAlreadyExists);

  const std::string name = "000000010000000000000003";
  const std::string wal = dir_ + "/" + name;
  write_file(wal, random_bytes(1 << 20, 7));
  auto be = storage::open_backend(repo_path_);
  ASSERT_TRUE(be.ok());
  auto pushed = ops::wal_push(**be, {wal, key}, {});
  ASSERT_TRUE(pushed.ok()) << pushed.error().message();
  EXPECT_EQ(pushed->name, name);
  EXPECT_FALSE(pushed->already_archived);
  pushed = ops::wal_push(**be, {wal, key}, {});
  ASSERT_TRUE(pushed.ok()) << pushed.error().message();
  EXPECT_TRUE(pushed->already_archived);
  // Different bytes under a taken name: refused, the archived file stays.
  const std::string other = dir_ + "/other/" + name;
  make_dir(dir_ + "/other");
  write_file(other, random_bytes(1 << 20, 8));
  auto clash = ops::wal_push(**be, {other, key}, {});
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code(), Error::Code::kAlreadyExists);

  // Fetch with the key file, and without one (the repository opened with its password, once).
  auto fetched = ops::wal_fetch(**be, {name, dir_ + "/fetched", key}, {});
  ASSERT_TRUE(fetched.ok()) << fetched.error().message();
  EXPECT_TRUE(fetched->found);
  EXPECT_EQ(fetched->bytes, 1u << 20);
  EXPECT_EQ(read_file(dir_ + "/fetched"), read_file(wal));
  int opened = 0;
  ops::RepositoryOpener opener = [&]() -> Result<std::unique_ptr<repo::Repository>> {
    opened++;
    auto b = storage::open_backend(repo_path_);
    if (!b.ok()) return b.error();
    return repo::Repository::open(*b, kPw);
  };
  fetched = ops::wal_fetch(**be, {name, dir_ + "/fetched2", ""}, opener);
  ASSERT_TRUE(fetched.ok()) << fetched.error().message();
  EXPECT_EQ(opened, 1);
  EXPECT_EQ(read_file(dir_ + "/fetched2"), read_file(wal));
  // Past the end of the archive: not found, nothing written, no password asked for.
  fetched = ops::wal_fetch(**be, {"000000010000000000000004", dir_ + "/fetched3", ""}, opener);
  ASSERT_TRUE(fetched.ok()) << fetched.error().message();
  EXPECT_FALSE(fetched->found);
  EXPECT_EQ(opened, 1);
  EXPECT_FALSE(exists(dir_ + "/fetched3"));

  // check counts and reads the archived file.
  ops::CheckRequest all;
  all.read_data = true;
  auto c = ops::check(*repo_, all, sink_);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->wal_files, 1u);
  EXPECT_EQ(c->wal_read, 1u);
}

// restore_command with a spool: the first fetch names the segments to fetch ahead, the prefetch
// puts them in the spool (stopping at the end of the archive), the next fetches take them from
// there byte for byte, segments behind the server are dropped, and one prefetch runs at a time.
TEST_F(OpsTest, WalFetchAheadThroughASpool) {
  const std::string key = dir_ + "/wal.key";
  ASSERT_OK(ops::archive_key(*repo_, {key, false}));
  auto be = storage::open_backend(repo_path_);
  ASSERT_TRUE(be.ok());
  // The last two segments of "log" 0 and the first three of log 1. The first is a real 16 MiB
  // segment: its size tells wal-fetch how segment numbers wrap (256 per log); the rest are
  // smaller, which the spool does not mind.
  const std::vector<std::string> names = {"0000000100000000000000FE", "0000000100000000000000FF",
                                          "000000010000000100000000", "000000010000000100000001",
                                          "000000010000000100000002"};
  make_dir(dir_ + "/segs");
  for (size_t i = 0; i < names.size(); i++) {
    write_file(dir_ + "/segs/" + names[i], random_bytes(i == 0 ? 16 << 20 : 1 << 20, 20 + static_cast<int>(i)));
  }
  const std::string big = dir_ + "/segs/" + names[0];
  for (const auto& n : names) ASSERT_OK(ops::wal_push(**be, {dir_ + "/segs/" + n, key}, {}));

  const std::string spool = dir_ + "/pg_wal/haven-prefetch";
  make_dir(dir_ + "/pg_wal");
  ops::WalFetchRequest first{names[0], dir_ + "/pg_wal/RECOVERYXLOG", key, spool, 8};
  auto got = ops::wal_fetch(**be, first, {});
  ASSERT_OK(got);
  EXPECT_TRUE(got->found);
  EXPECT_FALSE(got->from_spool);
  ASSERT_EQ(got->fetch_ahead.size(), 8u);
  EXPECT_EQ(got->fetch_ahead[0], names[1]);
  EXPECT_EQ(got->fetch_ahead[1], names[2]) << "after FF comes the next log's 00";
  EXPECT_EQ(read_file(dir_ + "/pg_wal/RECOVERYXLOG"), read_file(big));

  auto pre = ops::wal_prefetch(**be, {got->fetch_ahead, spool, key, 2});
  ASSERT_OK(pre);
  EXPECT_EQ(pre->fetched, 4u);
  EXPECT_TRUE(pre->end_of_archive);
  EXPECT_FALSE(pre->other_running);
  EXPECT_FALSE(exists(spool + "/000000010000000100000003"));

  // Taken from the spool (moved: the spool no longer holds it), the same bytes.
  for (size_t i = 1; i < 3; i++) {
    auto next = ops::wal_fetch(**be, {names[i], dir_ + "/pg_wal/RECOVERYXLOG", key, spool, 8}, {});
    ASSERT_OK(next);
    EXPECT_TRUE(next->found);
    EXPECT_TRUE(next->from_spool) << names[i];
    EXPECT_EQ(next->bytes, 1u << 20);
    EXPECT_EQ(read_file(dir_ + "/pg_wal/RECOVERYXLOG"), read_file(dir_ + "/segs/" + names[i]));
    EXPECT_FALSE(exists(spool + "/" + names[i]));
  }
  // Asking for the last one drops the one the server skipped.
  auto last = ops::wal_fetch(**be, {names[4], dir_ + "/pg_wal/RECOVERYXLOG", key, spool, 8}, {});
  ASSERT_OK(last);
  EXPECT_TRUE(last->from_spool);
  EXPECT_FALSE(exists(spool + "/" + names[3]));

  {
    // While one prefetch holds the spool, another does nothing and wal-fetch asks for none.
    pg::WalSpool held(spool);
    ASSERT_TRUE(*held.lock());
    auto second = ops::wal_prefetch(**be, {{"000000010000000100000005"}, spool, key, 2});
    ASSERT_OK(second);
    EXPECT_TRUE(second->other_running);
    EXPECT_EQ(second->fetched, 0u);
    auto none = ops::wal_fetch(**be, {names[0], dir_ + "/pg_wal/RECOVERYXLOG", key, spool, 8}, {});
    ASSERT_OK(none);
    EXPECT_TRUE(none->fetch_ahead.empty());
  }
  // After recovery the spool goes, files and directory.
  pg::WalSpool done(spool);
  ASSERT_OK(done.clear());
  EXPECT_FALSE(exists(spool));

  // A spool without a key file, or a prefetch without a spool: refused, nothing fetched.
  auto bad = ops::wal_fetch(**be, {names[0], dir_ + "/x", "", spool, 8}, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("--wal-key-file"), std::string::npos);
  bad = ops::wal_fetch(**be, {names[0], dir_ + "/x", key, "", 8}, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("--spool"), std::string::npos);
  EXPECT_FALSE(exists(dir_ + "/x"));
}

// A spool on another filesystem than where PostgreSQL wants the file (pg_wal on its own
// volume): taken by copying, the same bytes, and gone from the spool.
TEST_F(OpsTest, ASpooledSegmentIsTakenAcrossFilesystems) {
  struct stat a, b;
  if (::stat(dir_.c_str(), &a) != 0 || ::stat("/dev/shm", &b) != 0 || a.st_dev == b.st_dev) {
    GTEST_SKIP() << "needs /dev/shm on a filesystem of its own";
  }
  pg::WalSpool spool(dir_ + "/spool");
  ASSERT_OK(spool.create());
  const std::string seg = random_bytes(1 << 20, 31);
  const std::string name = "000000010000000000000007";
  ASSERT_OK(spool.put(name, as_bytes(seg)));
  const std::string dest = "/dev/shm/haven-spool-test-" + std::to_string(::getpid());
  auto taken = spool.take(name, dest);
  ASSERT_OK(taken);
  ASSERT_TRUE(taken->has_value());
  EXPECT_EQ(**taken, seg.size());
  EXPECT_EQ(read_file(dest), seg);
  EXPECT_FALSE(spool.has(name));
  ::unlink(dest.c_str());
}

TEST(WalSegmentNames, FollowTheTimelineAcrossLogsForEachSegmentSize) {
  auto n = pg::next_segment_names("0000000300000002000000FE", 16 << 20, 3);
  ASSERT_EQ(n.size(), 3u);
  EXPECT_EQ(n[0], "0000000300000002000000FF");
  EXPECT_EQ(n[1], "000000030000000300000000");
  EXPECT_EQ(n[2], "000000030000000300000001");
  // 64 MiB segments: 64 per log, so 3F is the last.
  n = pg::next_segment_names("00000001000000000000003F", 64 << 20, 1);
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0], "000000010000000100000000");
  // Not a segment, or not a segment size: nothing.
  EXPECT_TRUE(pg::next_segment_names("00000002.history", 16 << 20, 3).empty());
  EXPECT_TRUE(pg::next_segment_names("000000010000000000000001", 3 << 20, 3).empty());
  EXPECT_TRUE(pg::next_segment_names("000000010000000000000001", 1 << 10, 3).empty());
}

// What a restore's prefetch fetches as the server starts: from the segment holding the base
// backup's start, at most `count`, none past the one holding an LSN target.
TEST(WalSegmentNames, RecoveryStartsAtTheBackupsSegmentAndStopsAtAnLsnTarget) {
  pg::BaseBackup b;
  b.timeline = 1;
  b.start_lsn = 0x12000028;
  b.wal_segment_size = 16 << 20;
  pg::RecoveryTarget latest;
  latest.kind = pg::RecoveryTarget::Kind::kLatest;
  auto n = pg::first_recovery_segments(b, latest, 8);
  ASSERT_EQ(n.size(), 8u);
  EXPECT_EQ(n.front(), "000000010000000000000012");
  EXPECT_EQ(n.back(), "000000010000000000000019");
  pg::RecoveryTarget lsn;
  lsn.kind = pg::RecoveryTarget::Kind::kLsn;
  lsn.lsn = 0x14000010;
  EXPECT_EQ(pg::first_recovery_segments(b, lsn, 8),
            (std::vector<std::string>{"000000010000000000000012", "000000010000000000000013",
                                      "000000010000000000000014"}));
  lsn.lsn = 0x12000030;  // inside the first segment
  EXPECT_EQ(pg::first_recovery_segments(b, lsn, 8), std::vector<std::string>{"000000010000000000000012"});
  EXPECT_TRUE(pg::first_recovery_segments(b, latest, 0).empty());
}

// --- validation ----------------------------------------------------------------------------------

// Every bad request: kInvalidArgument from validate() and from the entry point, naming the field,
// and the repository (and the restore targets) exactly as they were.
TEST_F(OpsTest, BadRequestsAreRefusedNamingTheFieldAndChangeNothing) {
  ops::BackupResult b = backup();
  const std::string snap = repo::hex(b.snapshot_id);
  auto be = storage::open_backend(repo_path_);
  ASSERT_TRUE(be.ok());
  const auto repo_before = tree_listing(repo_path_);
  const auto dir_before = list_dir(dir_);

  struct Case {
    std::string what;
    std::string field;  // in the message
    std::function<Status()> validate;
    std::function<Status()> run;
  };
  auto st = [](auto r) -> Status {
    if (r.ok()) return ok_status();
    return r.error();
  };
  std::vector<Case> cases;
  auto add = [&](std::string what, std::string field, std::function<Status()> v,
                 std::function<Status()> r) {
    cases.push_back({std::move(what), std::move(field), std::move(v), std::move(r)});
  };

  // backup
  auto backup_case = [&](std::string what, std::string field, ops::BackupRequest req) {
    add(what, field, [req] { return ops::validate(req); },
        [&, req] { return st(ops::backup(*repo_, req, sink_)); });
  };
  ops::BackupRequest br;
  br.paths = {src_};
  br.strategy = "sometimes";
  backup_case("unknown strategy", "strategy 'sometimes'", br);
  br = {};
  backup_case("nothing to back up", "path", br);
  br.source = ops::BackupRequest::Source::kCommand;
  backup_case("a command stream without a command", "--stdin-from-command", br);
  br = {};
  br.source = ops::BackupRequest::Source::kStdin;
  br.stdin_filename = "a/b";
  backup_case("a stream name with a slash", "--stdin-filename", br);
  br.stdin_filename = "";
  br.paths = {src_};
  backup_case("paths and a stream", "--stdin", br);

  // restore
  auto restore_case = [&](std::string what, std::string field, ops::RestoreRequest req) {
    add(what, field, [req] { return ops::validate(req); },
        [&, req] { return st(ops::restore(*repo_, req, sink_)); });
  };
  ops::RestoreRequest rr;
  rr.snapshot = snap;
  rr.target = dir_ + "/never-written";
  rr.overwrite = "sometimes";
  restore_case("unknown overwrite mode", "--overwrite", rr);
  rr.overwrite = "never";
  rr.at = "2026-01-01T00:00:00Z";
  restore_case("a snapshot and a time", "--at", rr);
  rr.snapshot = "";
  rr.at = "yesterday";
  restore_case("an unreadable time", "--at", rr);
  rr.at = "";
  restore_case("no snapshot and no time", "snapshot", rr);
  rr.snapshot = snap;
  rr.target = "";
  restore_case("no target", "--target", rr);

  // check
  auto check_case = [&](std::string what, std::string field, ops::CheckRequest req) {
    add(what, field, [req] { return ops::validate(req); },
        [&, req] { return st(ops::check(*repo_, req, sink_)); });
  };
  ops::CheckRequest cr;
  cr.threads = 0;
  check_case("no threads", "--threads", cr);
  cr.threads = 2;
  cr.read_data_subset = "150%";
  check_case("a subset over 100%", "--read-data-subset", cr);
  cr.read_data = true;
  cr.read_data_subset = "1/2";
  check_case("all and a subset", "--read-data-subset", cr);

  // forget and prune
  auto forget_case = [&](std::string what, std::string field, ops::ForgetRequest req) {
    add(what, field, [req] { return ops::validate(req); },
        [&, req] { return st(ops::forget(*repo_, req, sink_)); });
  };
  ops::ForgetRequest fr;
  forget_case("an empty policy", "no keep rule given", fr);
  fr.keep_last = -1;
  forget_case("a negative count", "--keep-last", fr);
  fr.keep_last = 1;
  fr.keep_within = "3x";
  forget_case("a bad duration", "--keep-within", fr);
  fr.keep_within = "";
  fr.timezone = "Mars/Olympus_Mons";
  forget_case("an unknown zone", "--timezone", fr);
  fr.timezone = "local";
  forget_case("no local zone in the library", "--timezone", fr);
  fr.timezone = "UTC";
  fr.min_copies = 5;
  fr.max_copies = 3;
  forget_case("min over max", "--min-copies", fr);
  fr.min_copies = fr.max_copies = 0;
  fr.group_by = "hostname";
  forget_case("an unknown grouping", "--group-by", fr);
  fr.group_by = "host";
  fr.max_unused_percent = 50;
  forget_case("max-unused without prune", "--max-unused", fr);
  fr.prune = true;
  fr.max_unused_percent = 101;
  forget_case("max-unused over 100", "--max-unused", fr);
  ops::PruneRequest pr;
  pr.max_unused_percent = -1;
  add("prune max-unused below 0", "--max-unused", [pr] { return ops::validate(pr); },
      [&, pr] { return st(ops::prune(*repo_, pr, sink_)); });

  // inspection
  add("ls without a snapshot", "snapshot", [] { return ops::validate(ops::LsRequest{}); },
      [&] { return st(ops::ls(*repo_, {}, sink_)); });
  add("find without a pattern", "pattern", [] { return ops::validate(ops::FindRequest{}); },
      [&] { return st(ops::find(*repo_, {}, sink_)); });
  ops::DiffRequest dr{snap, "", {}};
  add("diff with one snapshot", "two snapshots", [dr] { return ops::validate(dr); },
      [&, dr] { return st(ops::diff(*repo_, dr, sink_)); });

  // keys and init
  ops::KeyAddRequest kr;
  kr.new_password = "x";
  kr.kdf.memory_mib = 0;
  add("no KDF memory", "--kdf-memory", [kr] { return ops::validate(kr); },
      [&, kr] { return st(ops::add_key(*repo_, kr)); });
  add("key remove without an ID", "key", [] { return ops::validate(ops::KeyRemoveRequest{}); },
      [&] { return ops::remove_key(*repo_, {}); });
  ops::InitRequest ir;
  ir.password = "x";
  ir.pack_size_mib = 0;
  add("a pack size of 0", "--pack-size", [ir] { return ops::validate(ir); },
      [&, ir] {
        auto b2 = storage::open_backend(dir_ + "/never-created");
        return b2.ok() ? st(ops::init(*b2, ir)) : b2.error();
      });
  ir.pack_size_mib = 16;
  ir.compression = "max";
  add("unknown compression", "max", [ir] { return ops::validate(ir); },
      [&, ir] {
        auto b2 = storage::open_backend(dir_ + "/never-created");
        return b2.ok() ? st(ops::init(*b2, ir)) : b2.error();
      });

  // WAL
  ops::WalPushRequest wp{dir_ + "/notawal", ""};
  add("wal-push of no WAL file name", "not a WAL file name", [wp] { return ops::validate(wp); },
      [&, wp] { return st(ops::wal_push(**be, wp, {})); });
  ops::WalFetchRequest wf{"../../etc/passwd", dir_ + "/x", ""};
  add("wal-fetch of no WAL file name", "not a WAL file name", [wf] { return ops::validate(wf); },
      [&, wf] { return st(ops::wal_fetch(**be, wf, {})); });

  // PostgreSQL
  auto pg_restore_case = [&](std::string what, std::string field, ops::PgRestoreRequest req) {
    add(what, field, [req] { return ops::validate(req); },
        [&, req] { return st(ops::pg_restore(*repo_, req, sink_)); });
  };
  ops::PgRestoreRequest pgr;
  pgr.target = dir_ + "/never-restored";
  pgr.wal_fetch_program = "/usr/bin/haven";
  pgr.repository = repo_path_;
  pg_restore_case("no recovery target", "exactly one recovery target", pgr);
  pgr.latest = true;
  pgr.xid = "12";
  pg_restore_case("two recovery targets", "exactly one recovery target", pgr);
  pgr.latest = false;
  pgr.xid = "12abc";
  pg_restore_case("a transaction ID that is no number", "--xid", pgr);
  pgr.xid = "99999999999999999999999";
  pg_restore_case("a transaction ID too large", "--xid", pgr);
  pgr.xid = "";
  pgr.lsn = "zz";
  pg_restore_case("an LSN that is none", "--lsn", pgr);
  pgr.lsn = "";
  pgr.time = "soon";
  pg_restore_case("an unreadable time", "--time", pgr);
  pgr.time = "";
  pgr.latest = true;
  pgr.validate_cluster = true;
  pg_restore_case("validate without start", "--validate", pgr);
  pgr.validate_cluster = false;
  pgr.target = "relative/dir";
  pg_restore_case("a relative target", "--target", pgr);
  pgr.target = dir_ + "/never-restored";
  pgr.wal_key_file = "wal.key";
  pg_restore_case("a relative key file", "--wal-key-file", pgr);
  pgr.wal_key_file = "";
  pgr.repository = "repo";
  pg_restore_case("a relative repository", "repository", pgr);
  pgr.repository = repo_path_;
  pgr.wal_fetch_program = "haven";
  pg_restore_case("a relative program", "absolute", pgr);
  pgr.wal_fetch_program = "/usr/bin/haven";
  pgr.port = 70000;
  pg_restore_case("a port out of range", "--port", pgr);
  ops::PgRetainRequest pret;
  pret.window = "soon";
  add("a window that is no duration", "--window", [pret] { return ops::validate(pret); },
      [&, pret] { return st(ops::pg_retain(*repo_, pret, sink_)); });
  ops::PgBackupRequest pb;
  pb.pgdata = "/nonexistent";
  pb.compression = "max";
  add("unknown base backup compression", "max", [pb] { return ops::validate(pb); },
      [&, pb] { return st(ops::pg_backup(*repo_, pb, sink_)); });
  pb.compression = "low";
  pb.pgdata = "";
  add("no data directory", "--pgdata", [pb] { return ops::validate(pb); },
      [&, pb] { return st(ops::pg_backup(*repo_, pb, sink_)); });

  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    Status v = c.validate();
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error().code(), Error::Code::kInvalidArgument) << v.error().message();
    EXPECT_TRUE(contains(v.error().message(), c.field)) << "'" << c.field << "' not in: " << v.error().message();
    Status r = c.run();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument) << r.error().message();
    EXPECT_EQ(r.error().message(), v.error().message()) << "the entry point validates the same way";
  }
  EXPECT_EQ(tree_listing(repo_path_), repo_before) << "a refused request changed the repository";
  EXPECT_EQ(list_dir(dir_), dir_before) << "a refused request created something";
  EXPECT_TRUE(locks().empty());
}

// The recovery target is parsed and checked in the library: pg::restore_for_recovery refuses a
// target whose text is not its typed value (once an unguarded stoull), before anything is read.
TEST_F(OpsTest, RecoveryTargetsAreParsedAndCheckedInTheLibrary) {
  auto t = pg::parse_recovery_target({false, "", "", "123"});
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t->kind, pg::RecoveryTarget::Kind::kXid);
  EXPECT_EQ(t->xid, 123u);
  ASSERT_OK(pg::validate(*t));
  t = pg::parse_recovery_target({false, "", "0/16B3740", ""});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->lsn, 0x16B3740u);
  EXPECT_EQ(t->text, "0/16B3740");
  t = pg::parse_recovery_target({false, "2026-11-21T10:00:00.5Z", "", ""});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->text, "2026-11-21 10:00:00.500000+00");

  for (const std::string text : {"abc", "", "184467440737095516160", "-1"}) {
    SCOPED_TRACE(text);
    pg::RecoveryTarget bad;
    bad.kind = pg::RecoveryTarget::Kind::kXid;
    bad.text = text;
    Status v = pg::validate(bad);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error().code(), Error::Code::kInvalidArgument);
    pg::PgRestoreOptions o;
    o.target = dir_ + "/never-restored";
    o.recovery = bad;
    repo::Session session(*repo_);
    auto r = pg::restore_for_recovery(session, o, sink_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument) << r.error().message();
    EXPECT_FALSE(exists(o.target));
  }
}

// --- PostgreSQL ------------------------------------------------------------------------------------

using haven::testing::kNobody;
using haven::testing::PgCluster;
using haven::testing::PgTempDir;

class OpsPgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = haven::testing::pg_missing();
    ASSERT_TRUE(missing.empty()) << missing;
    HAVEN_SKIP_UNLESS_ROOT("runs PostgreSQL as nobody");
    crypto::init();
    tmp_ = std::make_unique<PgTempDir>();
    ASSERT_FALSE(tmp_->path().empty());
    dir_ = tmp_->path();
    auto be = storage::open_backend(repo());
    ASSERT_TRUE(be.ok()) << be.error().message();
    ops::InitRequest init;
    init.password = kPw;
    init.kdf = {8, 1};
    auto r = ops::init(*be, init);
    ASSERT_TRUE(r.ok()) << r.error().message();
    repo_ = std::move(r->repository);
    ASSERT_OK(ops::archive_key(*repo_, {key(), false}));
    // archive_command runs as the server's user: the WAL archive and the key are its.
    std::error_code ec;
    for (auto& e : fs::recursive_directory_iterator(repo())) {
      ASSERT_EQ(::chown(e.path().c_str(), kNobody, kNobody), 0) << e.path();
    }
    ASSERT_EQ(::chown(repo().c_str(), kNobody, kNobody), 0);
    ASSERT_EQ(::chown(key().c_str(), kNobody, kNobody), 0);

    haven_ = binary_for(kNobody);
    ASSERT_NE(haven_, std::string(HAVEN_BINARY)) << "no world-executable copy of the haven binary in /tmp";
    // The WAL archive's interface is PostgreSQL's archive_command: the haven binary. Clusters
    // restored from a base backup share postgresql.conf and skip archiving.
    const std::string archive_command = "if [ \"$(pwd -P)\" != \"" + data() + "\" ]; then exit 0; fi; exec " +
                                        haven_ + " -r " + repo() + " wal-push --wal-key-file " + key() + " %p";
    pg_ = PgCluster::create(data(), dir_, archive_command);
    ASSERT_TRUE(pg_->ok());
    ASSERT_TRUE(pg_->start());
    auto b = pg_->pgbench({"-i", "-s", "1", "-q"});
    ASSERT_EQ(b.code, 0) << b.describe();
  }

  void TearDown() override {
    restored_.clear();
    pg_.reset();
    repo_.reset();
    tmp_.reset();
  }

  std::string repo() const { return dir_ + "/repo"; }
  std::string key() const { return dir_ + "/wal.key"; }
  std::string data() const { return dir_ + "/data"; }

  std::unique_ptr<PgTempDir> tmp_;
  std::string dir_, haven_;
  std::unique_ptr<repo::Repository> repo_;
  std::unique_ptr<PgCluster> pg_;
  std::vector<std::unique_ptr<PgCluster>> restored_;
  RecordingSink sink_;
};

TEST_F(OpsPgTest, BackupWindowsValidateRetainRestoreAndStart) {
  ops::PgBackupRequest bq;
  bq.pgdata = data();
  bq.conninfo = pg_->conninfo();
  bq.row_counts = true;
  auto base = ops::pg_backup(*repo_, bq, sink_);
  ASSERT_TRUE(base.ok()) << base.error().message();
  EXPECT_EQ(base->timeline, 1u);
  EXPECT_FALSE(base->stop_wal.empty());
  EXPECT_EQ(base->summary.snapshot_id, base->snapshot);
  EXPECT_TRUE(list_dir(repo() + "/locks").empty());

  pg_->psql("CREATE TABLE t1 (x int PRIMARY KEY, y text)");
  pg_->psql("INSERT INTO t1 SELECT g, md5(g::text) FROM generate_series(1, 500) g");
  const std::string want = pg_->psql("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts") + "/" +
                           pg_->psql("SELECT count(*) FROM t1");
  const std::string seg = pg_->switch_wal();
  ASSERT_TRUE(pg_->wait_archived(seg));

  // windows: one, on timeline 1, from the base backup to the archived WAL.
  auto w = ops::pg_windows(*repo_, {}, sink_);
  ASSERT_TRUE(w.ok()) << w.error().message();
  ASSERT_EQ(w->base_backups.size(), 1u);
  EXPECT_EQ(w->base_backups[0].id, base->snapshot);
  ASSERT_EQ(w->windows.size(), 1u);
  EXPECT_EQ(w->windows[0].timeline, 1u);
  EXPECT_EQ(w->windows[0].base_backups, 1u);
  EXPECT_GE(w->windows[0].last_segment, seg);
  EXPECT_TRUE(contains(w->description, "timeline 1")) << w->description;

  // validate the running original against the base backup's row counts.
  auto v = ops::pg_validate(repo_.get(), {pg_->conninfo(), "latest"}, sink_);
  ASSERT_TRUE(v.ok()) << v.error().message();
  EXPECT_TRUE(v->validation.ok());
  ASSERT_TRUE(v->against);
  EXPECT_EQ(*v->against, base->snapshot);
  EXPECT_GT(v->validation.tables_compared, 0u);
  EXPECT_GT(v->validation.rows.at("public.t1"), 0u);
  // Without `against` no repository is needed.
  auto v2 = ops::pg_validate(nullptr, {pg_->conninfo(), ""}, sink_);
  ASSERT_TRUE(v2.ok()) << v2.error().message();
  EXPECT_FALSE(v2->against);
  auto v3 = ops::pg_validate(nullptr, {pg_->conninfo(), "latest"}, sink_);
  ASSERT_FALSE(v3.ok());
  EXPECT_EQ(v3.error().code(), Error::Code::kInvalidArgument);

  // retain (dry run): the only base backup is kept.
  ops::PgRetainRequest rq;
  rq.window = "1d";
  rq.dry_run = true;
  auto ret = ops::pg_retain(*repo_, rq, sink_);
  ASSERT_TRUE(ret.ok()) << ret.error().message();
  EXPECT_EQ(ret->retain.kept.size(), 1u);
  EXPECT_TRUE(ret->retain.forgotten.empty());
  EXPECT_FALSE(ret->prune);

  // A target before the base backup is refused before anything is written, naming the window.
  const int port = PgCluster::free_port();
  ops::PgRestoreRequest rr;
  rr.target = dir_ + "/restored";
  rr.time = format_time(base->summary.snapshot.time - 3600 * 1000000000LL);
  rr.port = port;
  rr.wal_fetch_program = haven_;
  rr.repository = repo();
  auto early = ops::pg_restore(*repo_, rr, sink_);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code(), Error::Code::kInvalidArgument);
  EXPECT_TRUE(contains(early.error().message(), "recoverable")) << early.error().message();
  EXPECT_FALSE(exists(rr.target));

  // To the end of the archive, started and validated. The program restore_command runs is a
  // script that records each call (as the server's user) and runs haven.
  const std::string calls = dir_ + "/haven-calls.log";
  const std::string logged = dir_ + "/haven-logged";
  write_file(calls, "");
  ASSERT_EQ(::chown(calls.c_str(), kNobody, kNobody), 0);
  write_file(logged, "#!/bin/sh\necho \"$*\" >> " + calls + "\nexec " + haven_ + " \"$@\"\n");
  ASSERT_EQ(::chmod(logged.c_str(), 0755), 0);
  rr.wal_fetch_program = logged;
  rr.time = "";
  rr.latest = true;
  rr.start = true;
  rr.wait_seconds = 90;
  rr.validate_cluster = true;
  rr.conninfo = "host=" + dir_ + " port=" + std::to_string(port) + " user=postgres dbname=postgres";
  auto res = ops::pg_restore(*repo_, rr, sink_);
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->restored.base.id, base->snapshot);
  EXPECT_GT(res->restored.files, 0u);
  EXPECT_EQ(res->recovery.kind, pg::RecoveryTarget::Kind::kLatest);
  EXPECT_EQ(res->target, rr.target);
  EXPECT_TRUE(res->wrote_wal_key_file);
  EXPECT_EQ(res->wal_key_file, rr.target + "/haven-wal.key");
  EXPECT_TRUE(contains(res->restore_command, "wal-fetch --wal-key-file '" + res->wal_key_file +
                                                 "' --spool '" + rr.target +
                                                 "/pg_wal/haven-prefetch' --prefetch 8 %f %p"))
      << res->restore_command;
  struct stat st;
  ASSERT_EQ(::stat(res->wal_key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, static_cast<uid_t>(kNobody)) << "the restored server's user must read the key";
  EXPECT_TRUE(exists(rr.target + "/recovery.signal"));
  EXPECT_TRUE(list_dir(repo() + "/locks").empty());

  restored_.push_back(PgCluster::attach(rr.target, dir_, port));
  auto started = ops::pg_start(rr, *res);
  ASSERT_TRUE(started.ok()) << started.error().message() << "\n--- recovery log ---\n"
                            << PgCluster::tail(haven::testing::slurp(rr.target + "/haven-recovery.log"), 6000);
  ASSERT_TRUE(started->validation);
  EXPECT_TRUE(started->validation->ok());
  // The spool segments were fetched ahead into is gone after recovery.
  EXPECT_FALSE(exists(ops::prefetch_spool(rr.target)));
  // Recovery's first segments were fetched into that spool as the server started, before it
  // asked for any: from the one holding the base backup's start on.
  const pg::BaseBackup& b = res->restored.base;
  const std::string want_first = pg::segment_file_name(b.timeline, b.start_lsn, b.wal_segment_size);
  ASSERT_FALSE(started->fetched_ahead.empty());
  EXPECT_EQ(started->fetched_ahead.front(), want_first);
  EXPECT_LE(started->fetched_ahead.size(), ops::kPrefetchSegments);
  const std::string log = haven::testing::slurp(calls);
  const size_t prefetch = log.find(" wal-prefetch ");
  ASSERT_NE(prefetch, std::string::npos) << log;
  EXPECT_NE(log.find(want_first, prefetch), std::string::npos) << log;
  const size_t fetch = log.find(" wal-fetch ");
  ASSERT_NE(fetch, std::string::npos) << log;
  EXPECT_LT(prefetch, fetch) << "the server asked for WAL before the prefetch started:\n" << log;
  EXPECT_GT(started->validation->tables_compared, 0u);
  const PgCluster& copy = *restored_.back();
  EXPECT_EQ(copy.psql("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts") + "/" +
                copy.psql("SELECT count(*) FROM t1"),
            want);
}

}  // namespace
}  // namespace haven

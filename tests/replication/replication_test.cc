// Replication between real backends on local disk (tests/integration/replication_test.cc does
// it across local disk, s3rver and Azurite): replicas that are the repository byte for byte and
// open alone, passes that survive a region failing midway, deletions mirrored without losing
// what a held snapshot needs, validation naming the damaged copy, repair from a replica, and
// the sync quorum.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "support/fault_backend.h"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"

#include "ops/backup.h"
#include "ops/check.h"
#include "ops/forget.h"
#include "ops/lock.h"
#include "ops/restore.h"
#include "replication/quorum.h"
#include "replication/replication.h"

namespace haven {
namespace {

namespace fs = std::filesystem;
using replication::Region;

class ReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/haven-repl-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    src_ = dir_ + "/src";
    make_dir(src_);
    write_file(src_ + "/a.bin", random_bytes(3 << 20, 1));
    write_file(src_ + "/b.txt", std::string(200000, 'x'));
    repo_ = init_repo(dir_ + "/primary", 1u << 20);  // small packs: several of them
    ASSERT_NE(repo_, nullptr);
  }
  void TearDown() override {
    repo_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  Region region(const std::string& name) {
    auto be = storage::open_backend(dir_ + "/" + name);
    EXPECT_TRUE(be.ok());
    return Region{name, *be};
  }
  Region primary() { return region("primary"); }

  std::string backup(repo::Repository& repo) {
    ops::BackupRequest req;
    req.paths = {src_};
    auto r = ops::backup(repo, req, sink_);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? repo::hex(r->snapshot_id) : "";
  }

  replication::PassResult pass(const Region& r, bool mirror = true) {
    replication::PassOptions o;
    o.deletion_grace = 0;
    o.mirror_deletions = mirror;
    auto p = replication::replicate(*repo_, r, o, sink_);
    EXPECT_TRUE(p.ok()) << p.error().message();
    return p.ok() ? *p : replication::PassResult{};
  }

  // Every replicated object's bytes, by "type/name".
  std::map<std::string, std::string> objects(const std::string& name) {
    std::map<std::string, std::string> out;
    auto be = storage::open_backend(dir_ + "/" + name);
    auto inv = replication::inventory(**be);
    EXPECT_TRUE(inv.ok());
    for (const auto& [key, info] : *inv) {
      auto bytes = (*be)->load(info.name);
      EXPECT_TRUE(bytes.ok());
      out[std::string(storage::type_dir(key.first)) + "/" + key.second] =
          std::string(bytes->begin(), bytes->end());
    }
    return out;
  }

  void restore_and_compare(const std::string& region_name) {
    auto be = storage::open_backend(dir_ + "/" + region_name);
    auto r = repo::Repository::open(*be, kPw);  // the replica alone, with the password
    ASSERT_TRUE(r.ok()) << r.error().message();
    ops::RestoreRequest req;
    req.snapshot = "latest";
    req.target = dir_ + "/restore-" + region_name;
    req.verify = true;
    auto res = ops::restore(**r, req, sink_);
    ASSERT_TRUE(res.ok()) << res.error().message();
    expect_same_tree(src_, req.target + "/src");
  }

  check::Report check_region(const std::string& name, bool read_data = true) {
    auto be = storage::open_backend(dir_ + "/" + name);
    auto r = repo::Repository::open(*be, kPw);
    EXPECT_TRUE(r.ok()) << r.error().message();
    ops::CheckRequest req;
    req.read_data = read_data;
    auto rep = ops::check(**r, req, sink_);
    EXPECT_TRUE(rep.ok()) << rep.error().message();
    return rep.ok() ? *rep : check::Report{};
  }

  std::string first_pack(const std::string& name) {
    for (const auto& shard : list_dir(dir_ + "/" + name + "/data")) {
      auto files = list_dir(dir_ + "/" + name + "/data/" + shard);
      if (!files.empty()) return dir_ + "/" + name + "/data/" + shard + "/" + files.front();
    }
    return "";
  }

  std::string dir_, src_;
  std::unique_ptr<repo::Repository> repo_;
  RecordingSink sink_;
};

TEST_F(ReplicationTest, AReplicaIsTheRepositoryByteForByteAndRestoresAlone) {
  backup(*repo_);
  write_file(src_ + "/c.bin", random_bytes(1 << 20, 2));
  backup(*repo_);
  auto p = pass(region("us-east-1"));
  EXPECT_GT(p.copied_objects, 5u);
  EXPECT_EQ(p.lag.objects, 0u);
  EXPECT_EQ(p.region_snapshots.size(), 2u);
  auto a = objects("primary"), b = objects("us-east-1");
  EXPECT_EQ(a, b);  // same names, same bytes: nothing re-encrypted
  EXPECT_TRUE(list_dir(dir_ + "/us-east-1/locks").empty());  // locks are each copy's own
  restore_and_compare("us-east-1");
  EXPECT_FALSE(check_region("us-east-1").damaged());
  // A second pass finds nothing to do.
  auto again = pass(region("us-east-1"));
  EXPECT_EQ(again.copied_objects, 0u);
  EXPECT_EQ(again.deleted_objects, 0u);
  // Events: started, completed.
  EXPECT_FALSE(sink_.of(EventKind::kCompleted).empty());
  EXPECT_EQ(sink_.of(EventKind::kCompleted).back().name(), "replication:completed");
}

TEST_F(ReplicationTest, ARegionThatFailsMidPassCatchesUpWithNothingLost) {
  backup(*repo_);
  auto inner = storage::open_backend(dir_ + "/eu-north-1");
  auto faulty = std::make_shared<testing::FaultBackend>(*inner, testing::FaultPlan{});
  faulty->set_gone_after(4);  // a few objects land, then the region goes away
  Region r{"eu-north-1", faulty};
  replication::PassOptions o;
  o.deletion_grace = 0;
  auto failed = replication::replicate(*repo_, r, o, sink_);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code(), Error::Code::kTransient);
  EXPECT_NE(failed.error().message().find("eu-north-1"), std::string::npos);
  EXPECT_EQ(sink_.of(EventKind::kFailed).back().name(), "replication:failed");
  // What landed is a valid repository at every moment: no snapshot without its data.
  EXPECT_TRUE(list_dir(dir_ + "/eu-north-1/snapshots").empty());
  // The region comes back; the next pass carries on.
  faulty->set_gone(false);
  faulty->set_gone_after(1u << 30);
  auto ok = replication::replicate(*repo_, r, o, sink_);
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_GT(ok->copied_objects, 0u);
  EXPECT_EQ(objects("primary"), objects("eu-north-1"));
  restore_and_compare("eu-north-1");
}

TEST_F(ReplicationTest, ForgetAndPruneApplyToTheRegionButWhatThePrimaryLostIsKept) {
  backup(*repo_);
  write_file(src_ + "/a.bin", random_bytes(3 << 20, 7));  // the old content becomes garbage
  backup(*repo_);
  pass(region("us-east-1"));
  ops::ForgetRequest f;
  f.keep_last = 1;
  f.prune = true;
  f.max_unused_percent = 0;
  auto forgot = ops::forget(*repo_, f, sink_);
  ASSERT_TRUE(forgot.ok()) << forgot.error().message();
  auto p = pass(region("us-east-1"));
  EXPECT_GT(p.deleted_objects, 1u);
  EXPECT_EQ(objects("primary"), objects("us-east-1"));
  EXPECT_EQ(list_dir(dir_ + "/us-east-1/snapshots").size(), 1u);
  // Damage in the primary (a pack its index names is gone) is not mirrored.
  const std::string lost = first_pack("primary");
  ASSERT_FALSE(lost.empty());
  ASSERT_EQ(unlink(lost.c_str()), 0);
  auto kept = pass(region("us-east-1"));
  EXPECT_EQ(kept.deleted_objects, 0u);
  ASSERT_EQ(kept.kept.size(), 1u);
  EXPECT_NE(kept.kept[0].find(fs::path(lost).filename().string()), std::string::npos);
  EXPECT_NE(kept.kept[0].find("repair --from us-east-1"), std::string::npos);
  EXPECT_TRUE(exists(dir_ + "/us-east-1/data/" + fs::path(lost).filename().string().substr(0, 2) +
                     "/" + fs::path(lost).filename().string()));
}

TEST_F(ReplicationTest, DeletionsWaitWhileSomeoneReadsTheRegion) {
  backup(*repo_);
  pass(region("us-east-1"));
  auto snaps = list_dir(dir_ + "/primary/snapshots");
  ASSERT_EQ(snaps.size(), 1u);
  ASSERT_TRUE(unlink((dir_ + "/primary/snapshots/" + snaps[0]).c_str()) == 0);  // forgotten
  // A restore reading the replica holds its shared lock.
  auto be = storage::open_backend(dir_ + "/us-east-1");
  auto replica = repo::Repository::open(*be, kPw);
  ASSERT_TRUE(replica.ok());
  auto held = ops::lock(**replica, ops::LockMode::kShared, sink_);
  ASSERT_TRUE(held.ok());
  auto p = pass(region("us-east-1"));
  EXPECT_EQ(p.deleted_objects, 0u);
  EXPECT_NE(p.deletions_deferred.find("locked"), std::string::npos);
  EXPECT_EQ(list_dir(dir_ + "/us-east-1/snapshots").size(), 1u);
  ASSERT_TRUE(held->release().ok());
  auto later = pass(region("us-east-1"));
  EXPECT_EQ(later.deleted_objects, 1u);
  EXPECT_TRUE(list_dir(dir_ + "/us-east-1/snapshots").empty());
}

TEST_F(ReplicationTest, ValidationNamesWhatIsMissingOrDamagedAndWhichCopyIsSound) {
  backup(*repo_);
  pass(region("us-east-1"));
  pass(region("eu-north-1"));
  // us-east-1: one pack flipped in place (same size); eu-north-1: one pack deleted.
  const std::string flipped = first_pack("us-east-1");
  std::string bytes = read_file(flipped);
  bytes[bytes.size() / 2] ^= 0x40;
  chmod(flipped.c_str(), 0644);
  write_file(flipped, bytes);
  const std::string gone = first_pack("eu-north-1");
  ASSERT_EQ(unlink(gone.c_str()), 0);
  std::vector<Region> regions = {region("us-east-1"), region("eu-north-1")};
  // Names and sizes only: the flip is invisible, the deletion is not.
  auto quick = replication::validate(*repo_, primary(), regions, false, sink_);
  ASSERT_TRUE(quick.ok());
  EXPECT_TRUE((*quick)[0].ok());
  ASSERT_FALSE((*quick)[1].ok());
  ASSERT_EQ((*quick)[1].differences.size(), 1u);
  EXPECT_EQ((*quick)[1].differences[0].kind, "missing");
  EXPECT_EQ((*quick)[1].differences[0].name, fs::path(gone).filename().string());
  // Contents: the flipped copy is named, and the primary's is the sound one.
  auto full = replication::validate(*repo_, primary(), regions, true, sink_);
  ASSERT_TRUE(full.ok());
  ASSERT_FALSE((*full)[0].ok());
  ASSERT_EQ((*full)[0].differences.size(), 1u);
  const auto& d = (*full)[0].differences[0];
  EXPECT_EQ(d.kind, "content");
  EXPECT_EQ(d.name, fs::path(flipped).filename().string());
  EXPECT_EQ(d.primary_sound, std::optional<bool>(true));
  EXPECT_EQ(d.region_sound, std::optional<bool>(false));
  EXPECT_GT((*full)[0].compared, 3u);
}

TEST_F(ReplicationTest, RepairFromAReplicaRestoresDeletedAndCorruptedObjectsOfThePrimary) {
  backup(*repo_);
  pass(region("us-east-1"));
  const std::string gone = first_pack("primary");
  ASSERT_EQ(unlink(gone.c_str()), 0);
  auto idx = list_dir(dir_ + "/primary/index");
  ASSERT_FALSE(idx.empty());
  const std::string idx_path = dir_ + "/primary/index/" + idx[0];
  std::string bytes = read_file(idx_path);
  bytes.resize(bytes.size() - 3);  // truncated
  chmod(idx_path.c_str(), 0644);
  write_file(idx_path, bytes);
  EXPECT_TRUE(check_region("primary", false).damaged());
  // A snapshot forgotten in the primary is not brought back.
  write_file(src_ + "/new.txt", "new");
  backup(*repo_);
  pass(region("us-east-1"), /*mirror=*/false);
  auto snaps = list_dir(dir_ + "/primary/snapshots");
  ASSERT_EQ(snaps.size(), 2u);
  ASSERT_EQ(unlink((dir_ + "/primary/snapshots/" + snaps[0]).c_str()), 0);
  replication::RepairOptions ro;
  ro.referenced_only = true;
  auto r = replication::repair(*repo_, primary(), region("us-east-1"), ro, sink_);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->added, 1u) << r->to_json().dump();
  EXPECT_EQ(r->replaced, 1u);
  EXPECT_TRUE(r->unrepaired.empty());
  ASSERT_EQ(r->only_in_source.size(), 1u);
  EXPECT_NE(r->only_in_source[0].find(snaps[0]), std::string::npos);
  EXPECT_FALSE(check_region("primary").damaged());
  EXPECT_EQ(list_dir(dir_ + "/primary/snapshots").size(), 1u);
  // A region repaired from the primary gets everything it lacks.
  ASSERT_EQ(unlink(first_pack("us-east-1").c_str()), 0);
  auto r2 = replication::repair(*repo_, region("us-east-1"), primary(), {}, sink_);
  ASSERT_TRUE(r2.ok()) << r2.error().message();
  EXPECT_EQ(r2->added, 1u) << r2->to_json().dump();
}

TEST_F(ReplicationTest, SyncModeSucceedsOnlyWithTheQuorumAndLeavesNothingVisibleOtherwise) {
  auto open_sync = [&](int quorum, bool degrade, std::shared_ptr<testing::FaultBackend> down,
                       std::vector<std::string>* failed) {
    auto p = storage::open_backend(dir_ + "/primary");
    replication::QuorumOptions qo;
    qo.quorum = quorum;
    qo.degrade = degrade;
    qo.on_region_failed = [failed](const std::string& region, const Error&) {
      failed->push_back(region);
    };
    std::vector<Region> regions = {region("us-east-1"), Region{"eu-north-1", down}};
    auto be = std::make_shared<replication::QuorumBackend>(*p, regions, qo);
    auto r = repo::Repository::open(be, kPw);
    EXPECT_TRUE(r.ok());
    return std::move(*r);
  };
  auto inner = storage::open_backend(dir_ + "/eu-north-1");
  ASSERT_TRUE((*inner)->create().ok());
  ASSERT_TRUE(storage::open_backend(dir_ + "/us-east-1").value()->create().ok());
  auto down = std::make_shared<testing::FaultBackend>(*inner, testing::FaultPlan{});
  // Quorum 2 of 2 with one region down: the backup fails and no snapshot appears anywhere.
  {
    std::vector<std::string> failed;
    auto repo = open_sync(2, false, down, &failed);
    pass(region("us-east-1"));
    pass(Region{"eu-north-1", *inner});
    down->set_gone(true);
    ops::BackupRequest req;
    req.paths = {src_};
    auto r = ops::backup(*repo, req, sink_);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("quorum is 2"), std::string::npos) << r.error().message();
    EXPECT_FALSE(failed.empty());
    EXPECT_TRUE(list_dir(dir_ + "/primary/snapshots").empty());
    EXPECT_TRUE(list_dir(dir_ + "/us-east-1/snapshots").empty());
  }
  // Quorum 1 of 2: the reachable region is enough; it holds the snapshot when backup returns.
  {
    std::vector<std::string> failed;
    auto repo = open_sync(1, false, down, &failed);
    const std::string snap = backup(*repo);
    ASSERT_FALSE(snap.empty());
    EXPECT_TRUE(exists(dir_ + "/us-east-1/snapshots/" + snap));
    EXPECT_TRUE(exists(dir_ + "/primary/snapshots/" + snap));
    EXPECT_FALSE(exists(dir_ + "/eu-north-1/snapshots/" + snap));
    restore_and_compare("us-east-1");
  }
  // Degrade: 2 of 2 not met, the backup succeeds on the primary and the failure is reported.
  {
    std::vector<std::string> failed;
    auto repo = open_sync(2, true, down, &failed);
    write_file(src_ + "/more.bin", random_bytes(1 << 20, 9));
    EXPECT_FALSE(backup(*repo).empty());
    EXPECT_NE(std::find(failed.begin(), failed.end(), "eu-north-1"), failed.end());
  }
  // The region comes back and a pass brings it up to date.
  down->set_gone(false);
  pass(Region{"eu-north-1", *inner});
  EXPECT_EQ(objects("primary"), objects("eu-north-1"));
}

}  // namespace
}  // namespace haven

// Tests of restore/: partial restores (includes, excludes; paths as backed up or as stored, for
// restore, ls, find and diff), point-in-time restore (--at), a damaged newest snapshot,
// hostile snapshots (unsafe or duplicate names, symlinks planted in the target), damaged
// blobs, overwrite policies and --verify. Snapshots are made with the real `haven backup`
// (test_restore links only the restore library) or hand-crafted through the Repository API.
#include "restore/restore.h"
#include "repo/tree_ahead.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "crypto/crypto.h"
#include "repo/pack.h"
#include "repo/paths.h"
#include "repo/repository.h"
#include "repo/session.h"
#include "storage/backend.h"
#include "storage/local.h"
#include "util/clock.h"

#include "support/fault_backend.h"
#include "support/fs_test_util.h"
#include "support/page_cache.h"
#include "support/repo_test_util.h"

namespace haven {
namespace {

using repo::BlobType;
using repo::Id;
using repo::Node;
using repo::Tree;



std::unique_ptr<repo::Repository> open_repo(const std::string& dir) {
  auto be = storage::open_backend(dir);
  if (!be.ok()) {
    ADD_FAILURE() << be.error().message();
    return nullptr;
  }
  auto r = repo::Repository::open(*be, kPw);
  if (!r.ok()) {
    ADD_FAILURE() << r.error().message();
    return nullptr;
  }
  Status st = (*r)->load_index();
  if (!st.ok()) {
    ADD_FAILURE() << st.error().message();
    return nullptr;
  }
  return std::move(*r);
}

// Entry paths under root, relative to it (root itself left out).
std::set<std::string> rel_paths(const std::string& root) {
  std::set<std::string> out;
  for (const auto& [rel, m] : scan(root)) {
    if (!rel.empty()) out.insert(rel);
  }
  return out;
}

// Does any entry named `name` exist anywhere under root?
bool found_anywhere(const std::string& root, const std::string& name) {
  for (const auto& [rel, m] : scan(root)) {
    if (rel == name || (rel.size() > name.size() && rel.compare(rel.size() - name.size() - 1, std::string::npos,
                                                               "/" + name) == 0)) {
      return true;
    }
  }
  return false;
}

class RestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::init();
    char tmpl[] = "/tmp/haven-restore-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (dir_.empty()) return;
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Backs up `paths` with the CLI into the repository at dir_/repo; returns the snapshot's tree.
  Id cli_backup(const std::vector<std::string>& paths, int want_code = 0) {
    std::vector<std::string> args{"backup"};
    args.insert(args.end(), paths.begin(), paths.end());
    RunResult r = cli(repo_dir(), args);
    EXPECT_EQ(r.code, want_code) << describe(r);
    auto repo = open_repo(repo_dir());
    if (!repo) return Id{};
    auto id = repo->resolve_snapshot("latest");
    if (!id.ok()) {
      ADD_FAILURE() << id.error().message();
      return Id{};
    }
    auto snap = repo->load_snapshot(*id);
    if (!snap.ok()) {
      ADD_FAILURE() << snap.error().message();
      return Id{};
    }
    return snap->tree;
  }

  // Creates the repository at dir_/repo and backs up `paths` into it; returns the tree.
  Id init_and_back_up(const std::vector<std::string>& paths) {
    if (!init_repo(repo_dir())) {
      ADD_FAILURE() << "cannot create the repository at " << repo_dir();
      return Id{};
    }
    return cli_backup(paths);
  }

  Result<restore::Summary> restore_to(repo::Repository& repo, const Id& tree, const std::string& target,
                                      restore::Options o = {}) {
    o.target = target;
    repo::Session session(repo);
    return restore::run(session, tree, o, sink_);
  }

  std::string repo_dir() const { return dir_ + "/repo"; }

  // The tree of the one directory a backup of {src} holds (the snapshot root's only entry);
  // a zero ID, with a failure added, if the root is not that.
  Id only_directory(repo::Repository& repo, const Id& root) {
    auto top = repo.load_tree(root);
    if (!top.ok()) {
      ADD_FAILURE() << top.error().message();
      return Id{};
    }
    if (top->nodes.size() != 1 || !top->nodes[0].subtree) {
      ADD_FAILURE() << "the snapshot's root holds " << top->nodes.size() << " entries, not one directory";
      return Id{};
    }
    return *top->nodes[0].subtree;
  }

  // The repository at dir_/repo over a store where every request waits `stall` (a round trip
  // to object storage), its index loaded; `calls` counts the requests. Null on failure.
  std::unique_ptr<repo::Repository> open_slow(std::chrono::milliseconds stall,
                                              std::shared_ptr<testing::FaultBackend>& calls) {
    auto be = storage::open_backend(repo_dir());
    if (!be.ok()) {
      ADD_FAILURE() << be.error().message();
      return nullptr;
    }
    testing::FaultPlan slow;
    slow.stall = 1.0;
    slow.stall_time = stall;
    calls = std::make_shared<testing::FaultBackend>(*be, slow);
    auto opened = repo::Repository::open(calls, kPw);
    if (!opened.ok()) {
      ADD_FAILURE() << opened.error().message();
      return nullptr;
    }
    std::unique_ptr<repo::Repository> repo = std::move(*opened);
    Status loaded = repo->load_index();
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.error().message();
      return nullptr;
    }
    return repo;
  }

  std::string dir_;
  RecordingSink sink_;
};

// ---------------------------------------------------------------------------------------------

TEST_F(RestoreTest, PartialRestoreWithIncludesAndExcludes) {
  const std::string src = dir_ + "/src";
  make_dir(src);
  make_dir(src + "/dir1");
  make_dir(src + "/dir1/sub");
  make_dir(src + "/dir1/sub/z");
  make_dir(src + "/dir1/sub2");
  make_dir(src + "/dir2");
  write_file(src + "/dir1/sub/x.txt", "x");
  write_file(src + "/dir1/sub/y.log", "y");
  write_file(src + "/dir1/sub/z/w.txt", "w");
  write_file(src + "/dir1/sub2/q.txt", "q");  // shares a name prefix with the included path
  write_file(src + "/dir1/other.txt", "o");
  write_file(src + "/top.txt", "t");
  write_file(src + "/top.log", "l");
  write_file(src + "/dir2/d.txt", "d");
  int counter = 0;
  set_fixed_times(src, counter);
  Id tree = init_and_back_up({src});
  ASSERT_FALSE(HasFailure());
  auto repo = open_repo(repo_dir());
  ASSERT_TRUE(repo);

  const std::set<std::string> sub_only = {"src", "src/dir1", "src/dir1/sub", "src/dir1/sub/x.txt",
                                          "src/dir1/sub/y.log", "src/dir1/sub/z", "src/dir1/sub/z/w.txt"};
  {
    restore::Options o;
    o.includes = {"src/dir1/sub"};
    auto s = restore_to(*repo, tree, dir_ + "/out1", o);
    ASSERT_OK(s);
    EXPECT_EQ(rel_paths(dir_ + "/out1"), sub_only);
    EXPECT_EQ(s->files, 3u);
    EXPECT_EQ(s->errors, 0u);
    EXPECT_EQ(read_file(dir_ + "/out1/src/dir1/sub/z/w.txt"), "w");
    // The parent directories on the way get their recorded metadata too.
    EXPECT_EQ(mtime_of(dir_ + "/out1/src/dir1"), mtime_of(src + "/dir1"));
    EXPECT_EQ(mtime_of(dir_ + "/out1/src/dir1/sub"), mtime_of(src + "/dir1/sub"));
  }
  {
    restore::Options o;
    o.includes = {"/src/dir1/sub/"};  // leading and trailing slashes are the same path
    ASSERT_OK(restore_to(*repo, tree, dir_ + "/out2", o));
    EXPECT_EQ(rel_paths(dir_ + "/out2"), sub_only);
  }
  {
    restore::Options o;
    o.excludes = {"*.log"};
    auto s = restore_to(*repo, tree, dir_ + "/out3", o);
    ASSERT_OK(s);
    std::set<std::string> all;
    for (const auto& p : rel_paths(src)) {
      if (p.size() < 4 || p.substr(p.size() - 4) != ".log") all.insert("src/" + p);
    }
    all.insert("src");
    EXPECT_EQ(rel_paths(dir_ + "/out3"), all);
    EXPECT_EQ(s->files, 6u);
  }
  {
    restore::Options o;
    o.includes = {"src/dir1"};
    o.excludes = {"src/dir1/sub/z", "/src/dir1/other.txt"};
    ASSERT_OK(restore_to(*repo, tree, dir_ + "/out4", o));
    EXPECT_EQ(rel_paths(dir_ + "/out4"),
              (std::set<std::string>{"src", "src/dir1", "src/dir1/sub", "src/dir1/sub/x.txt",
                                     "src/dir1/sub/y.log", "src/dir1/sub2", "src/dir1/sub2/q.txt"}));
  }
  {
    restore::Options o;
    o.includes = {"src/top.txt", "src/dir2/d.txt"};
    ASSERT_OK(restore_to(*repo, tree, dir_ + "/out5", o));
    EXPECT_EQ(rel_paths(dir_ + "/out5"),
              (std::set<std::string>{"src", "src/top.txt", "src/dir2", "src/dir2/d.txt"}));
  }
  // The CLI passes --include and --exclude through.
  RunResult r = cli(repo_dir(), {"restore", "latest", "--target", dir_ + "/out6", "--include", "src/dir1/sub",
                                 "--exclude", "*.log"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(rel_paths(dir_ + "/out6"),
            (std::set<std::string>{"src", "src/dir1", "src/dir1/sub", "src/dir1/sub/x.txt", "src/dir1/sub/z",
                                   "src/dir1/sub/z/w.txt"}));
}

TEST_F(RestoreTest, AtPicksTheNewestSnapshotAtOrBeforeTheTime) {
  const std::string repo = repo_dir(), src = dir_ + "/src";
  cli_init(repo);
  make_dir(src);
  for (int v = 1; v <= 3; v++) {
    if (v > 1) std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    write_file(src + "/f.txt", "version " + std::to_string(v));
    RunResult r = cli(repo, {"backup", src});
    ASSERT_EQ(r.code, 0) << describe(r);
  }
  auto snaps = cli_snapshots(repo);
  ASSERT_EQ(snaps.size(), 3u);
  std::vector<TimeNs> t;
  for (const auto& s : snaps) {
    auto parsed = parse_time(s["time"].get<std::string>());
    ASSERT_TRUE(parsed.has_value()) << s.dump();
    t.push_back(*parsed);
  }
  std::sort(t.begin(), t.end());
  ASSERT_GT(t[2] - t[1], 1000000000LL);
  auto restore_at = [&](const std::string& at, const std::string& target) {
    return cli(repo, {"restore", "--at", at, "--target", target});
  };
  // Between the 2nd and 3rd snapshot (full precision).
  RunResult r = restore_at(format_time(t[1] + (t[2] - t[1]) / 2), dir_ + "/mid");
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(read_file(dir_ + "/mid/src/f.txt"), "version 2");
  // The same with whole seconds: the first second boundary after the 2nd snapshot.
  TimeNs sec = (t[1] / 1000000000 + 1) * 1000000000;
  ASSERT_LT(sec, t[2]);
  std::string at_sec = format_time(sec).substr(0, 19) + "Z";
  r = restore_at(at_sec, dir_ + "/sec");
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(read_file(dir_ + "/sec/src/f.txt"), "version 2") << at_sec;
  // Exactly at a snapshot's time counts as "at or before".
  r = restore_at(format_time(t[0]), dir_ + "/first");
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(read_file(dir_ + "/first/src/f.txt"), "version 1");
  r = restore_at(format_time(t[2] + 3600LL * 1000000000), dir_ + "/late");
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(read_file(dir_ + "/late/src/f.txt"), "version 3");
  // Before the first snapshot: nothing to restore.
  r = restore_at(format_time(t[0] - 1000000000), dir_ + "/early");
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "no snapshot at or before")) << describe(r);
  EXPECT_FALSE(exists(dir_ + "/early/src"));
  // Malformed times and giving both a snapshot and --at are usage errors.
  r = restore_at("yesterday", dir_ + "/bad");
  EXPECT_EQ(r.code, 2) << describe(r);
  r = cli(repo, {"restore", "latest", "--at", format_time(t[2]), "--target", dir_ + "/both"});
  EXPECT_EQ(r.code, 2) << describe(r);
}

// Paths a user types: "/srv/app/config" as backed up, or "app/config" / "/app/config" as stored.
TEST_F(RestoreTest, PathsAsBackedUpMatchInRestoreLsFindAndDiff) {
  const std::string repo = repo_dir(), app = dir_ + "/srv/app";
  cli_init(repo);
  make_dir(dir_ + "/srv");
  make_dir(app);
  make_dir(app + "/config");
  make_dir(app + "/data");
  write_file(app + "/config/a.conf", "a=1\n");
  write_file(app + "/config/b.log", "log\n");
  write_file(app + "/data/x", "x\n");
  ASSERT_FALSE(HasFailure());
  RunResult r = cli(repo, {"backup", app});
  ASSERT_EQ(r.code, 0) << describe(r);

  // restore --include with the original absolute path, and with the stored forms.
  for (const std::string& inc : {app + "/config", std::string("app/config"), std::string("/app/config/")}) {
    std::string out = dir_ + "/out" + std::to_string(inc.size());
    r = cli(repo, {"restore", "latest", "--include", inc, "--target", out});
    ASSERT_EQ(r.code, 0) << inc << ": " << describe(r);
    EXPECT_EQ(rel_paths(out), (std::set<std::string>{"app", "app/config", "app/config/a.conf",
                                                     "app/config/b.log"}))
        << inc;
  }
  // --exclude takes the original path too (and globs under it).
  r = cli(repo, {"restore", "latest", "--exclude", app + "/data", "--exclude", app + "/config/*.log",
                 "--target", dir_ + "/ex"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(rel_paths(dir_ + "/ex"), (std::set<std::string>{"app", "app/config", "app/config/a.conf"}));
  // An include that names nothing is an error that names it and shows what the snapshot holds.
  r = cli(repo, {"restore", "latest", "--include", app + "/confg", "--target", dir_ + "/none"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, app + "/confg")) << describe(r);
  EXPECT_TRUE(contains(r.err, "holds: " + app)) << describe(r);
  EXPECT_TRUE(list_dir(dir_ + "/none").empty()) << "something was restored";

  // The library does the same.
  auto lib = open_repo(repo);
  ASSERT_TRUE(lib);
  auto choice = restore::choose_snapshot(*lib, "latest");
  ASSERT_OK(choice);
  EXPECT_TRUE(choice->substitution.empty());
  EXPECT_EQ(repo::stored_forms(choice->snapshot, app + "/config/a.conf").front(), "app/config/a.conf");
  EXPECT_EQ(repo::original_path(choice->snapshot, "/app/data/x"), app + "/data/x");
  restore::Options o;
  o.target = dir_ + "/lib";
  o.includes = {app + "/data/x"};
  repo::Session lib_session(*lib);
  auto s = restore::run(lib_session, *choice, o, sink_);
  ASSERT_OK(s);
  EXPECT_EQ(s->files, 1u);
  EXPECT_EQ(read_file(dir_ + "/lib/app/data/x"), "x\n");
  o.target = dir_ + "/lib2";
  o.includes = {"/srv/nothing"};
  s = restore::run(lib_session, *choice, o, sink_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Error::Code::kNotFound);
  EXPECT_TRUE(contains(s.error().message(), "/srv/nothing")) << s.error().message();
  lib.reset();

  // ls with either form; a path that is not there names the snapshot's paths.
  for (const std::string& p : {app + "/config", std::string("/app/config")}) {
    r = cli(repo, {"ls", "latest", p});
    ASSERT_EQ(r.code, 0) << p << ": " << describe(r);
    EXPECT_TRUE(contains(r.out, "/app/config/a.conf")) << describe(r);
    EXPECT_FALSE(contains(r.out, "/app/data")) << describe(r);
  }
  r = cli(repo, {"ls", "latest", app + "/nope"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, app + "/nope") && contains(r.err, "holds: " + app)) << describe(r);
  // find matches globs on the original path as well as on the stored one.
  r = cli(repo, {"find", app + "/config/*.conf"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "/app/config/a.conf")) << describe(r);
  EXPECT_FALSE(contains(r.out, "b.log")) << describe(r);
  // diff, limited to a path given as backed up.
  write_file(app + "/config/a.conf", "a=2\n");
  write_file(app + "/data/y", "y\n");
  r = cli(repo, {"backup", app});
  ASSERT_EQ(r.code, 0) << describe(r);
  auto snaps = cli_snapshots(repo);
  ASSERT_EQ(snaps.size(), 2u);
  std::string s1 = snaps[0]["id"], s2 = snaps[1]["id"];
  r = cli(repo, {"diff", s1, s2, app + "/config"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "M    /app/config/a.conf")) << describe(r);
  EXPECT_FALSE(contains(r.out, "data/y")) << describe(r);
  r = cli(repo, {"diff", s1, s2});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "+    /app/data/y")) << describe(r);
  r = cli(repo, {"diff", s1, s2, app + "/data/y"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "+    /app/data/y")) << describe(r);
  r = cli(repo, {"diff", s1, s2, app + "/nope"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, app + "/nope")) << describe(r);
}

// Flips a byte in the middle of a snapshot object, so it fails authentication.
void damage_snapshot(const std::string& repo, const std::string& id) {
  std::string path = repo + "/snapshots/" + id;
  std::string body = read_file(path);
  ASSERT_GT(body.size(), 60u) << path;
  body[body.size() / 2] ^= 0x5a;
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  write_file(path, body);
}

TEST_F(RestoreTest, DamagedNewestSnapshotIsNeverSilentlySubstituted) {
  const std::string repo = repo_dir(), src = dir_ + "/src";
  cli_init(repo);
  make_dir(src);
  for (int v = 1; v <= 2; v++) {
    write_file(src + "/f.txt", "version " + std::to_string(v));
    RunResult r = cli(repo, {"backup", src});
    ASSERT_EQ(r.code, 0) << describe(r);
  }
  auto snaps = cli_snapshots(repo);
  ASSERT_EQ(snaps.size(), 2u);
  const std::string older = snaps[0]["id"], newest = snaps[1]["id"];
  const std::string newest_time = snaps[1]["time"];
  damage_snapshot(repo, newest);
  ASSERT_FALSE(HasFailure());

  // Text: exit 3, the restore is the older snapshot, and the summary says so by name.
  RunResult r = cli(repo, {"restore", "latest", "--target", dir_ + "/t"});
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_EQ(read_file(dir_ + "/t/src/f.txt"), "version 1");
  EXPECT_TRUE(contains(r.out, "NOT THE SNAPSHOT ASKED FOR")) << describe(r);
  EXPECT_TRUE(contains(r.out, newest.substr(0, 8) + " is damaged")) << describe(r);
  EXPECT_TRUE(contains(r.out, "restored snapshot " + older.substr(0, 8))) << describe(r);
  // JSON: a warning event and the summary both carry the substitution.
  r = cli(repo, {"restore", "latest", "--target", dir_ + "/j", "--json"});
  EXPECT_EQ(r.code, 3) << describe(r);
  bool warned = false, summarised = false;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    if (j.value("message_type", "") == "warning" && j.contains("damaged")) {
      warned = j["damaged"] == nlohmann::json::array({newest}) && j.value("restored", "") == older;
    }
    if (j.value("message_type", "") == "summary") {
      summarised = j.value("snapshot", "") == older && j.contains("substitution") &&
                   j["substitution"]["damaged"] == nlohmann::json::array({newest}) &&
                   j["substitution"].value("restored", "") == older;
    }
  }
  EXPECT_TRUE(warned) << describe(r);
  EXPECT_TRUE(summarised) << describe(r);
  // --at a time after both: the same.
  r = cli(repo, {"restore", "--at", newest_time, "--target", dir_ + "/at"});
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_TRUE(contains(r.out, newest.substr(0, 8) + " is damaged")) << describe(r);
  // Asking for the older one by ID is not a substitution; asking for the damaged one fails.
  r = cli(repo, {"restore", older.substr(0, 8), "--target", dir_ + "/id"});
  EXPECT_EQ(r.code, 0) << describe(r);
  r = cli(repo, {"restore", newest.substr(0, 8), "--target", dir_ + "/bad"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_FALSE(exists(dir_ + "/bad/src"));

  // The library names the damaged snapshot and the one chosen instead.
  auto lib = open_repo(repo);
  ASSERT_TRUE(lib);
  auto c = restore::choose_snapshot(*lib, "latest");
  ASSERT_OK(c);
  EXPECT_EQ(repo::hex(c->id), older);
  ASSERT_EQ(c->damaged.size(), 1u);
  EXPECT_EQ(repo::hex(c->damaged[0]), newest);
  EXPECT_TRUE(contains(c->substitution, newest.substr(0, 8))) << c->substitution;
  restore::Options lo;
  lo.target = dir_ + "/lib";
  auto s = restore::run(*std::make_unique<repo::Session>(*lib), *c, lo, sink_);
  ASSERT_OK(s);
  EXPECT_EQ(s->substitution, c->substitution);
  lib.reset();

  // A damaged snapshot known to be older (the newest names it as its parent) changes nothing.
  const std::string repo2 = dir_ + "/repo2";
  cli_init(repo2);
  for (int v = 1; v <= 2; v++) {
    write_file(src + "/f.txt", "again " + std::to_string(v));
    RunResult b = cli(repo2, {"backup", src});
    ASSERT_EQ(b.code, 0) << describe(b);
  }
  snaps = cli_snapshots(repo2);
  ASSERT_EQ(snaps.size(), 2u);
  ASSERT_EQ(snaps[1]["parent"], snaps[0]["id"]);
  damage_snapshot(repo2, snaps[0]["id"]);
  r = cli(repo2, {"restore", "latest", "--target", dir_ + "/ok"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(read_file(dir_ + "/ok/src/f.txt"), "again 2");
}

// Builds a file node whose content is `content`.
Node file_node(const std::string& name, const std::vector<repo::ContentRef>& content, uint64_t size) {
  Node n;
  n.name = name;
  n.type = Node::Type::kFile;
  n.mode = 0644;
  n.mtime = n.atime = n.ctime = 1600000000LL * 1000000000;
  n.size = size;
  n.links = 1;
  n.content = content;
  return n;
}

Node dir_node(const std::string& name, const Id& subtree) {
  Node n;
  n.name = name;
  n.type = Node::Type::kDir;
  n.mode = 0755;
  n.mtime = n.atime = n.ctime = 1600000000LL * 1000000000;
  n.links = 2;
  n.subtree = subtree;
  return n;
}

// A content list may take slices of blobs (docs/FORMAT.md §6): each slice restores its bytes,
// one blob serves several slices, and a slice that reaches past its blob fails that file alone,
// named, while `haven check` reports the snapshot damaged.
TEST_F(RestoreTest, SlicesOfBlobsRestoreTheirBytesAndASlicePastItsBlobIsRefused) {
  auto repo = init_repo(repo_dir());
  ASSERT_TRUE(repo);
  repo::Session session(*repo);
  const std::string a = random_bytes(20000, 31), b = random_bytes(5000, 32);
  auto ida = session.save_blob(BlobType::kData, as_bytes(a));
  auto idb = session.save_blob(BlobType::kData, as_bytes(b));
  ASSERT_OK(ida);
  ASSERT_OK(idb);
  const std::vector<repo::ContentRef> pieces = {{*ida, 10, 100}, {*idb}, {*ida, 0, 5},
                                                {*idb, 4990, 10}, {*ida, 19000, 1000}};
  const std::string want = a.substr(10, 100) + b + a.substr(0, 5) + b.substr(4990, 10) + a.substr(19000);
  Tree t{{file_node("bad", {*idb, {*ida, 19990, 11}}, 5011), file_node("good", pieces, want.size())}};
  auto root = session.save_tree(t);
  ASSERT_OK(root);
  repo::Snapshot snap;
  snap.time = snap.end_time = now();
  snap.tree = *root;
  snap.paths = {"/slices"};
  snap.hostname = "h";
  snap.strategy = "full";
  ASSERT_OK(session.save_snapshot(snap));
  ASSERT_OK(session.flush());
  restore::Options o;
  o.verify = true;  // the restored slices are read back and compared with their blobs

  auto s = restore_to(*repo, *root, dir_ + "/out", o);
  ASSERT_OK(s);
  EXPECT_TRUE(read_file(dir_ + "/out/good") == want) << "the slices did not restore their bytes";
  EXPECT_EQ(s->verified, 1u);
  EXPECT_EQ(s->errors, 1u);
  EXPECT_FALSE(exists(dir_ + "/out/bad")) << "a file with a slice past its blob was left behind";
  auto errors = sink_.of("error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].path, "bad");
  EXPECT_TRUE(contains(errors[0].message, "past its end")) << errors[0].message;

  RunResult check = cli(repo_dir(), {"check"});
  EXPECT_NE(check.code, 0) << describe(check);
  EXPECT_TRUE(contains(check.out + check.err, "past its end")) << describe(check);
}

// Over a store where every request waits 25 ms, the trees a restore will enter are loaded ahead
// of the walker on threads of their own (repo/tree_ahead.h): when the walker gets to a
// directory its tree is there, and directories the selection leaves out are never fetched.
TEST_F(RestoreTest, TreesAreLoadedAheadOfTheWalkerAndUnselectedOnesNever) {
  const std::string src = dir_ + "/src";
  make_dir(src);
  for (int d = 0; d < 6; d++) {
    make_dir(src + "/d" + std::to_string(d));
    for (int s = 0; s < 3; s++) {
      const std::string p = src + "/d" + std::to_string(d) + "/s" + std::to_string(s);
      make_dir(p);
      write_file(p + "/f", "file " + std::to_string(d) + "." + std::to_string(s) + "\n");
    }
  }
  ASSERT_TRUE(init_repo(repo_dir()));
  Id root = cli_backup({src});
  ASSERT_FALSE(HasFailure());
  auto plain = open_repo(repo_dir());
  ASSERT_TRUE(plain);
  std::shared_ptr<testing::FaultBackend> faulty;
  std::unique_ptr<repo::Repository> repo = open_slow(std::chrono::milliseconds(25), faulty);
  ASSERT_TRUE(repo);
  auto top = repo->load_tree(root);
  ASSERT_OK(top);

  CancelToken token;
  auto wanted = [](const std::string& rel) { return rel.rfind("src/d5", 0) != 0; };
  // Walks the selected trees through a TreeAhead reading at most `span` bytes per request;
  // returns the requests it made.
  auto walk_ahead = [&](uint64_t span) -> uint64_t {
    const uint64_t calls_before = faulty->calls();
    repo::TreeAhead ahead(*repo, wanted, 8, 16 << 20, token, span);
    ahead.start(*top);
    // 21 trees in three levels, 8 at a time, 25 ms each: all there well within a second.
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    size_t visited = 0;
    std::function<void(const Tree&, const std::string&)> visit = [&](const Tree& t, const std::string& rel) {
      for (const auto& n : t.nodes) {
        std::string path = rel.empty() ? n.name : rel + "/" + n.name;
        if (n.type != Node::Type::kDir || !wanted(path)) continue;
        auto sub = ahead.take(*n.subtree, path);
        ASSERT_OK(sub);
        auto want = plain->load_tree(*n.subtree);
        ASSERT_OK(want);
        ASSERT_EQ(sub->nodes.size(), want->nodes.size()) << path;
        for (size_t i = 0; i < sub->nodes.size(); i++) EXPECT_EQ(sub->nodes[i].name, want->nodes[i].name) << path;
        visited++;
        visit(*sub, path);
      }
    };
    visit(*top, "");
    EXPECT_EQ(visited, 21u);  // src, d0..d4, and their 15 subdirectories
    EXPECT_EQ(ahead.ahead(), 21u) << "the walker waited for trees it could have had";
    EXPECT_EQ(ahead.behind(), 0u);
    return faulty->calls() - calls_before;
  };
  // One request per tree: none outside the selection.
  EXPECT_EQ(walk_ahead(0), 21u) << "trees outside the selection were fetched";
  // The trees of a level that are queued together and lie together in their pack (a small
  // backup writes all its trees into one) are one request, and the first read (of src alone,
  // nothing else queued) takes along the pack's trees near it: a few requests in all.
  const uint64_t grouped = walk_ahead(1 << 20);
  EXPECT_GE(grouped, 1u);
  EXPECT_LE(grouped, 6u) << "trees near each other in a pack were read one by one";

  // A whole restore over the slow store, with the trees loaded ahead, is bit-exact.
  restore::Options o;
  o.tree_threads = 8;
  o.excludes = {"src/d5"};
  auto s = restore_to(*repo, root, dir_ + "/out", o);
  ASSERT_OK(s);
  EXPECT_EQ(s->errors, 0u);
  EXPECT_EQ(s->files, 15u);
  for (int d = 0; d < 6; d++) {
    const std::string p = dir_ + "/out/src/d" + std::to_string(d) + "/s1/f";
    if (d < 5) {
      EXPECT_EQ(read_file(p), "file " + std::to_string(d) + ".1\n");
    } else {
      EXPECT_FALSE(exists(p));
    }
  }
}

// A walker that chooses the directories it enters (diff) names their trees with queue(): over a
// store where every request waits 25 ms they are loaded ahead, those lying together in a pack
// in one request, none of them left for the walker to load, none taken along unasked. A tree
// taken along unasked that the walker passes over is forgotten (forget()): taken after all, it
// is loaded again, not handed over from what was held.
TEST_F(RestoreTest, QueuedTreesAreLoadedAheadAndForgottenOnesAreNotHeld) {
  const std::string src = dir_ + "/src";
  make_dir(src);
  for (int d = 0; d < 12; d++) {
    make_dir(src + "/d" + std::to_string(d));
    write_file(src + "/d" + std::to_string(d) + "/f", "file " + std::to_string(d) + "\n");
  }
  ASSERT_TRUE(init_repo(repo_dir()));
  Id root = cli_backup({src});
  ASSERT_FALSE(HasFailure());
  auto plain = open_repo(repo_dir());
  ASSERT_TRUE(plain);
  const Id src_tree = only_directory(*plain, root);
  ASSERT_FALSE(HasFailure());
  auto listing = plain->load_tree(src_tree);
  ASSERT_OK(listing);
  std::vector<std::pair<Id, std::string>> subdirs;
  for (const auto& n : listing->nodes) {
    if (n.type == Node::Type::kDir) subdirs.emplace_back(*n.subtree, "src/" + n.name);
  }
  ASSERT_EQ(subdirs.size(), 12u);
  std::shared_ptr<testing::FaultBackend> faulty;
  std::unique_ptr<repo::Repository> repo = open_slow(std::chrono::milliseconds(25), faulty);
  ASSERT_TRUE(repo);
  CancelToken token;
  auto nothing_by_itself = [](const std::string&) { return false; };
  {
    repo::TreeAhead ahead(*repo, nothing_by_itself, 8, 16 << 20, token);
    const uint64_t calls_before = faulty->calls();
    ahead.queue(subdirs);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));  // 25 ms a request
    for (const auto& [id, rel] : subdirs) {
      auto t = ahead.take(id, rel);
      ASSERT_OK(t);
      auto want = plain->load_tree(id);
      ASSERT_OK(want);
      EXPECT_EQ(repo::encode_tree(*t), repo::encode_tree(*want)) << rel;
    }
    EXPECT_EQ(ahead.ahead(), 12u) << "queued trees were not loaded ahead";
    EXPECT_EQ(ahead.behind(), 0u);
    EXPECT_EQ(ahead.unasked(), 0u);
    EXPECT_LE(faulty->calls() - calls_before, 3u) << "queued trees lying together were read one by one";
  }
  {
    repo::TreeAhead ahead(*repo, nothing_by_itself, 8, 16 << 20, token);
    // With nothing queued, taking src's tree takes its subdirectories' along, unasked.
    ASSERT_OK(ahead.take(src_tree, "src"));
    ahead.forget(subdirs[0].first);
    ASSERT_OK(ahead.take(subdirs[0].first, subdirs[0].second));  // loaded again
    ASSERT_OK(ahead.take(subdirs[1].first, subdirs[1].second));  // handed over
    EXPECT_EQ(ahead.behind(), 2u) << "a forgotten tree was handed over from what was held";
    EXPECT_EQ(ahead.unasked(), 1u);
  }
}

// A chain of single directories is known a level at a time (each tree names the next): over a
// store where every request waits 25 ms, a walk that fetched one tree per level would wait a
// round trip per level. The first read takes along the pack's trees stored near the one asked
// for (a backup saves a directory's trees just before its own), so the chain comes in one or
// two requests, and the trees match the store's.
TEST_F(RestoreTest, AChainOfDirectoriesIsFetchedInARequestOrTwoNotOnePerLevel) {
  std::string path = dir_ + "/src";
  make_dir(path);
  for (int d = 0; d < 10; d++) {
    path += "/level" + std::to_string(d);
    make_dir(path);
    write_file(path + "/f", "file at level " + std::to_string(d) + "\n");
  }
  ASSERT_TRUE(init_repo(repo_dir()));
  Id root = cli_backup({dir_ + "/src"});
  ASSERT_FALSE(HasFailure());
  auto plain = open_repo(repo_dir());
  ASSERT_TRUE(plain);
  std::shared_ptr<testing::FaultBackend> faulty;
  std::unique_ptr<repo::Repository> repo = open_slow(std::chrono::milliseconds(25), faulty);
  ASSERT_TRUE(repo);

  CancelToken token;
  auto walk_chain = [&](uint64_t span, uint64_t* unasked) -> uint64_t {
    const uint64_t calls_before = faulty->calls();
    repo::TreeAhead ahead(*repo, [](const std::string&) { return true; }, 8, 16 << 20, token, span);
    auto tree = ahead.take(root, "");
    size_t levels = 0;
    std::string rel;
    while (tree.ok()) {
      const Node* sub = nullptr;
      for (const auto& n : tree->nodes) {
        if (n.type == Node::Type::kDir) sub = &n;
      }
      if (sub == nullptr) break;
      rel += (rel.empty() ? "" : "/") + sub->name;
      auto next = ahead.take(*sub->subtree, rel);
      auto want = plain->load_tree(*sub->subtree);
      EXPECT_TRUE(next.ok() && want.ok()) << rel;
      if (!next.ok() || !want.ok()) return 0;
      EXPECT_EQ(repo::encode_tree(*next), repo::encode_tree(*want)) << rel;
      tree = std::move(next);
      levels++;
    }
    EXPECT_TRUE(tree.ok()) << tree.error().message();
    EXPECT_EQ(levels, 11u);  // src and its ten levels below the root
    *unasked = ahead.unasked();
    return faulty->calls() - calls_before;
  };
  uint64_t unasked = 0;
  EXPECT_EQ(walk_chain(0, &unasked), 12u) << "one request per tree without taking along";
  EXPECT_EQ(unasked, 0u);
  const uint64_t along = walk_chain(1 << 20, &unasked);
  EXPECT_LE(along, 2u) << "the chain was fetched a level at a time";
  EXPECT_GE(unasked, 10u) << "the trees below were not taken along with the first read";

  // A read that fails takes its unasked trees down with it: they are forgotten, and the walker
  // loads each itself when it gets there (the one asked for is read again on its own).
  class FailFirstPackRead : public storage::BackendWrapper {
   public:
    using BackendWrapper::BackendWrapper;
    Result<Bytes> load(const storage::ObjectName& n, uint64_t off, uint64_t len) override {
      if (n.type == storage::ObjectType::kData && !failed_.exchange(true)) {
        return Error(Error::Code::kIo, "injected: the first pack read fails");
      }
      return inner().load(n, off, len);
    }

   private:
    std::atomic<bool> failed_{false};
  };
  auto failing = std::make_shared<FailFirstPackRead>(faulty);
  auto reopened = repo::Repository::open(failing, kPw);
  ASSERT_OK(reopened);
  repo = std::move(*reopened);
  ASSERT_OK(repo->load_index());
  walk_chain(1 << 20, &unasked);
  EXPECT_GE(unasked, 9u) << "after the failed read, the next one took the rest along";
}

TEST_F(RestoreTest, HostileNamesAreRefusedAndNothingEscapesTheTarget) {
  auto repo = init_repo(repo_dir());
  ASSERT_TRUE(repo);
  repo::Session session(*repo);
  const std::string evil = "pwned by a hostile snapshot\n";
  auto data = session.save_blob(BlobType::kData, as_bytes(evil));
  ASSERT_OK(data);
  auto save = [&](const Tree& t) {
    auto id = session.save_tree(t);
    EXPECT_TRUE(id.ok());
    return id.ok() ? *id : Id{};
  };
  const Node pwned = file_node("pwned", {*data}, evil.size());
  const Id inner = save(Tree{{pwned}});

  struct Case {
    std::string label;
    Tree root;
    std::string expect;  // "unsafe" or "twice"
  };
  std::vector<Case> cases;
  cases.push_back({"dir named ..", Tree{{dir_node("..", inner)}}, "unsafe"});
  cases.push_back({"file named ..", Tree{{file_node("..", {*data}, evil.size())}}, "unsafe"});
  cases.push_back({"dir named .", Tree{{dir_node(".", inner)}}, "unsafe"});
  cases.push_back({"name a/b", Tree{{file_node("a/b", {*data}, evil.size())}}, "unsafe"});
  cases.push_back({"name ../pwned", Tree{{file_node("../pwned", {*data}, evil.size())}}, "unsafe"});
  cases.push_back({"absolute name", Tree{{file_node(dir_ + "/pwned", {*data}, evil.size())}}, "unsafe"});
  cases.push_back({"empty name", Tree{{file_node("", {*data}, evil.size())}}, "unsafe"});
  cases.push_back({"embedded NUL", Tree{{file_node(std::string("x\0y", 3), {*data}, evil.size())}}, "unsafe"});
  cases.push_back({"name listed twice",
                   Tree{{file_node("dup", {*data}, evil.size()), file_node("dup", {*data}, evil.size())}}, "twice"});
  {
    // A symlink to the outside and a directory of the same name: writing into "s/" would go
    // through the link.
    Node link;
    link.name = "s";
    link.type = Node::Type::kSymlink;
    link.mode = 0777;
    link.link_target = dir_;
    link.links = 1;
    cases.push_back({"symlink and dir with one name", Tree{{link, dir_node("s", inner)}}, "twice"});
  }
  {
    const Id nested = save(Tree{{dir_node("..", save(Tree{{dir_node("..", inner)}}))}});
    cases.push_back({"nested ..", Tree{{dir_node("ok", nested)}}, "unsafe"});
  }
  ASSERT_FALSE(HasFailure());

  for (size_t i = 0; i < cases.size(); i++) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.label);
    Id root = save(c.root);
    repo::Snapshot snap;
    snap.time = snap.end_time = now();
    snap.tree = root;
    snap.paths = {"/hostile"};
    snap.hostname = "attacker";
    snap.strategy = "full";
    auto sid = session.save_snapshot(snap);
    ASSERT_OK(sid);
    auto loaded = repo->load_snapshot(*sid);
    ASSERT_OK(loaded);

    const std::string parent = dir_ + "/case" + std::to_string(i);
    make_dir(parent);
    const std::string target = parent + "/target";
    auto r = restore_to(*repo, loaded->tree, target);
    ASSERT_FALSE(r.ok()) << "restored a snapshot with a hostile name";
    EXPECT_EQ(r.error().code(), Error::Code::kCorrupt) << r.error().message();
    EXPECT_TRUE(contains(r.error().message(), c.expect)) << r.error().message();
    // Nothing was created beside the target, and no file made it anywhere.
    auto beside = list_dir(parent);
    EXPECT_TRUE(beside.empty() || beside == std::vector<std::string>{"target"})
        << "entries beside the target: " << ::testing::PrintToString(beside);
    EXPECT_FALSE(found_anywhere(dir_, "pwned")) << "a hostile entry was written";
  }
  // No stray entries in the test's own directory either.
  for (const auto& n : list_dir(dir_)) {
    EXPECT_TRUE(n == "repo" || n.rfind("case", 0) == 0) << "unexpected entry " << printable(n);
  }

  // check_name agrees.
  EXPECT_FALSE(restore::check_name("..").ok());
  EXPECT_FALSE(restore::check_name(".").ok());
  EXPECT_FALSE(restore::check_name("").ok());
  EXPECT_FALSE(restore::check_name("a/b").ok());
  EXPECT_FALSE(restore::check_name(std::string("a\0", 2)).ok());
  EXPECT_TRUE(restore::check_name("...").ok());
  EXPECT_TRUE(restore::check_name("..a").ok());
  EXPECT_TRUE(restore::check_name(".hidden").ok());
  EXPECT_TRUE(restore::check_name("\xff\xfe").ok());
}

TEST_F(RestoreTest, SymlinksPlantedInTheTargetAreNeverFollowed) {
  auto repo = init_repo(repo_dir());
  ASSERT_TRUE(repo);
  repo::Session session(*repo);
  const std::string evil = "written through a symlink\n";
  auto data = session.save_blob(BlobType::kData, as_bytes(evil));
  ASSERT_OK(data);
  auto inner = session.save_tree(Tree{{file_node("f", {*data}, evil.size())}});
  ASSERT_OK(inner);
  auto root = session.save_tree(Tree{{file_node("file", {*data}, evil.size()), dir_node("s", *inner)}});
  ASSERT_OK(root);
  ASSERT_OK(session.flush());

  const std::string outside = dir_ + "/outside";
  make_dir(outside);
  write_file(outside + "/victim", "original\n");
  for (const char* policy : {"never", "if-changed", "always"}) {
    SCOPED_TRACE(policy);
    const std::string target = dir_ + "/target-" + policy;
    make_dir(target);
    ASSERT_EQ(symlink(outside.c_str(), (target + "/s").c_str()), 0);
    ASSERT_EQ(symlink((outside + "/victim").c_str(), (target + "/file").c_str()), 0);
    restore::Options o;
    auto ov = restore::parse_overwrite(policy);
    ASSERT_OK(ov);
    o.overwrite = *ov;
    auto s = restore_to(*repo, *root, target, o);
    ASSERT_OK(s);
    EXPECT_EQ(list_dir(outside), std::vector<std::string>{"victim"}) << "wrote into a planted symlink's target";
    EXPECT_EQ(read_file(outside + "/victim"), "original\n");
    struct stat st;
    ASSERT_EQ(lstat((target + "/s").c_str(), &st), 0);
    if (std::string(policy) == "never") {
      EXPECT_TRUE(S_ISLNK(st.st_mode));
      EXPECT_EQ(s->skipped, 2u);
    } else {
      EXPECT_TRUE(S_ISDIR(st.st_mode)) << "the planted symlink was not replaced";
      EXPECT_EQ(read_file(target + "/s/f"), evil);
      EXPECT_EQ(read_file(target + "/file"), evil);
      ASSERT_EQ(lstat((target + "/file").c_str(), &st), 0);
      EXPECT_TRUE(S_ISREG(st.st_mode));
    }
  }
}

// Finds the pack holding data blob `victim` and flips a byte inside its record.
void damage_blob(repo::Repository& repo, const std::string& repo_dir, const Id& victim) {
  storage::LocalBackend local(repo_dir);
  std::vector<std::string> packs;
  ASSERT_OK(local.list(storage::ObjectType::kData, [&](const storage::ObjectInfo& i) { packs.push_back(i.name.name); }));
  bool damaged = false;
  for (const auto& p : packs) {
    storage::ObjectName name{storage::ObjectType::kData, p};
    auto bytes = local.load(name, 0, 0);
    ASSERT_OK(bytes);
    auto pack_id = repo::parse_id(p);
    ASSERT_TRUE(pack_id.has_value());
    auto rec = repo::read_pack_trailer(repo.master_key(), *pack_id, *bytes);
    ASSERT_OK(rec);
    for (const auto& blob : rec->blobs) {
      if (blob.type != BlobType::kData || blob.id != victim) continue;
      std::string path = local.path_of(name);
      chmod(path.c_str(), 0644);
      int fd = ::open(path.c_str(), O_RDWR);
      ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
      off_t off = static_cast<off_t>(blob.offset + blob.length / 2);
      char c;
      ASSERT_EQ(pread(fd, &c, 1, off), 1);
      c = static_cast<char>(c ^ 0x55);
      ASSERT_EQ(pwrite(fd, &c, 1, off), 1);
      ::close(fd);
      damaged = true;
    }
  }
  ASSERT_TRUE(damaged) << "the blob was not found in any pack";
}

TEST_F(RestoreTest, DamagedBlobFailsOnlyItsFile) {
  auto repo0 = init_repo(repo_dir(), 1u << 20);
  ASSERT_TRUE(repo0);
  repo0.reset();
  const std::string src = dir_ + "/src";
  make_dir(src);
  const std::string a = random_bytes(3u << 19, 11), b = random_bytes(3u << 19, 12);
  write_file(src + "/a.bin", a);
  write_file(src + "/b.bin", b);
  Id tree = cli_backup({src});
  ASSERT_FALSE(HasFailure());
  auto repo = open_repo(repo_dir());
  ASSERT_TRUE(repo);

  // Find b.bin's first data blob and the pack holding it.
  const Id src_tree = only_directory(*repo, tree);
  ASSERT_FALSE(HasFailure());
  auto sub = repo->load_tree(src_tree);
  ASSERT_OK(sub);
  ASSERT_EQ(sub->nodes.size(), 2u);
  ASSERT_EQ(sub->nodes[1].name, "b.bin");
  ASSERT_FALSE(sub->nodes[1].content.empty());
  const Id victim = sub->nodes[1].content[0].id;
  for (const auto& c : sub->nodes[0].content) ASSERT_NE(c.id, victim);

  size_t packs = 0;
  ASSERT_OK(repo->backend().list(storage::ObjectType::kData, [&](const storage::ObjectInfo&) { packs++; }));
  ASSERT_GE(packs, 2u) << "1 MiB packs should split 3 MiB of random data";
  damage_blob(*repo, repo_dir(), victim);
  ASSERT_FALSE(HasFailure());

  auto s = restore_to(*repo, tree, dir_ + "/out");
  ASSERT_OK(s);
  EXPECT_EQ(s->errors, 1u);
  EXPECT_EQ(s->files, 1u);
  EXPECT_FALSE(exists(dir_ + "/out/src/b.bin")) << "a file with wrong bytes was left behind";
  EXPECT_TRUE(read_file(dir_ + "/out/src/a.bin") == a) << "the undamaged file differs";
  auto errors = sink_.of("error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].path, "src/b.bin");

  RunResult r = cli(repo_dir(), {"restore", "latest", "--target", dir_ + "/out2"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "src/b.bin")) << describe(r);
  EXPECT_FALSE(exists(dir_ + "/out2/src/b.bin"));
  EXPECT_TRUE(read_file(dir_ + "/out2/src/a.bin") == a);
}

// Pages of `path` that are dirty or under writeback in the page cache, from the kernel's page
// flags (/proc/self/pagemap for each page's frame, /proc/kpageflags for its flags: root only);
// -1 if they cannot be read.
long unsettled_pages(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0) return -1;
  const long page = ::sysconf(_SC_PAGESIZE);
  const size_t size = static_cast<size_t>(st.st_size);
  long n = 0;
  if (size > 0) {
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    const int pm = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    const int kf = ::open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
    if (m == MAP_FAILED || pm < 0 || kf < 0) n = -1;
    for (size_t off = 0; n >= 0 && off < size; off += static_cast<size_t>(page)) {
      const volatile uint8_t* p = static_cast<const uint8_t*>(m) + off;
      (void)*p;  // maps the page cache's page into this process
      uint64_t entry = 0, flags = 0;
      const off_t at = static_cast<off_t>(reinterpret_cast<uintptr_t>(p) / static_cast<uintptr_t>(page) * 8);
      if (::pread(pm, &entry, 8, at) != 8) n = -1;
      const uint64_t frame = entry & ((uint64_t{1} << 55) - 1);
      if (n < 0 || !(entry >> 63) || frame == 0) {
        n = -1;  // not present, or frames hidden (not root)
        break;
      }
      if (::pread(kf, &flags, 8, static_cast<off_t>(frame * 8)) != 8) n = -1;
      constexpr uint64_t kDirty = uint64_t{1} << 4, kWriteback = uint64_t{1} << 8;
      if (n >= 0 && (flags & (kDirty | kWriteback)) != 0) n++;
    }
    if (pm >= 0) ::close(pm);
    if (kf >= 0) ::close(kf);
    if (m != MAP_FAILED) ::munmap(m, size);
  }
  ::close(fd);
  return n;
}

// pg restore's files are durable when the restore returns (Options::sync): none of their pages
// is left dirty or under writeback, small files included (no writeback is started for those
// while they are written), where a file just written has dirty pages.
TEST_F(RestoreTest, ASyncedRestoreLeavesNoPageUnwritten) {
  if (::geteuid() != 0) GTEST_SKIP() << "page flags can be read as root only";
  const std::string src = dir_ + "/src";
  make_dir(src);
  make_dir(src + "/base");
  for (int i = 0; i < 200; i++) {
    write_file(src + "/base/" + std::to_string(i), random_bytes(3000 + 37 * i, 300 + i));
  }
  write_file(src + "/big", random_bytes(3u << 20, 299));
  Id tree = init_and_back_up({src});
  ASSERT_FALSE(HasFailure());
  // The probe sees a page that is not written back yet.
  write_file(dir_ + "/fresh", random_bytes(65536, 1));
  const long fresh = unsettled_pages(dir_ + "/fresh");
  ASSERT_GE(fresh, 0) << "cannot read page flags";
  EXPECT_GT(fresh, 0) << "a file just written should have dirty pages";

  auto repo = open_repo(repo_dir());
  ASSERT_TRUE(repo);
  restore::Options o;
  o.sync = true;
  auto s = restore_to(*repo, tree, dir_ + "/out", o);
  ASSERT_OK(s);
  EXPECT_EQ(s->errors, 0u);
  expect_same_tree(src, dir_ + "/out/src");
  long unsettled = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_ + "/out")) {
    if (!e.is_regular_file()) continue;
    const long n = unsettled_pages(e.path().string());
    ASSERT_GE(n, 0) << e.path();
    unsettled += n;
  }
  EXPECT_EQ(unsettled, 0) << "pages of restored files not yet on disk when the restore returned";
}

// Counts the data reads a restore makes (a real local backend underneath).
class CountingBackend : public storage::BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  Result<Bytes> load(const storage::ObjectName& n, uint64_t off, uint64_t len) override {
    if (n.type == storage::ObjectType::kData) {
      std::lock_guard<std::mutex> g(mu_);
      packs_read_.insert(n.name);
      data_loads_++;
    }
    return inner().load(n, off, len);
  }
  size_t data_loads() const { return data_loads_; }
  size_t packs_read() const { return packs_read_.size(); }

 private:
  std::mutex mu_;
  std::atomic<size_t> data_loads_{0};
  std::set<std::string> packs_read_;
};

// Restore reads the blobs of one pack together: a thousand small files in a few packs take
// about one request per pack (plus one per tree), not one per blob, and a blob several files
// share is read once. What makes restores from object storage fast.
TEST_F(RestoreTest, NeighbouringBlobsOfAPackAreReadInOneRequest) {
  auto repo0 = init_repo(repo_dir(), 1u << 20);
  ASSERT_TRUE(repo0);
  repo0.reset();
  const std::string src = dir_ + "/src";
  make_dir(src);
  make_dir(src + "/d");
  const std::string shared = random_bytes(3000, 99);
  for (int i = 0; i < 1000; i++) {
    write_file(src + "/d/f" + std::to_string(i), random_bytes(1500 + i, 1000 + i));
  }
  for (int i = 0; i < 20; i++) write_file(src + "/same" + std::to_string(i), shared);
  write_file(src + "/big", random_bytes(5u << 20, 7));  // spans several packs
  Id tree = cli_backup({src});
  ASSERT_FALSE(HasFailure());

  auto be = storage::open_backend(repo_dir());
  ASSERT_OK(be);
  auto counting = std::make_shared<CountingBackend>(*be);
  auto r = repo::Repository::open(counting, kPw);
  ASSERT_OK(r);
  ASSERT_OK((*r)->load_index());
  size_t packs = 0, blobs = 0;
  ASSERT_OK(counting->list(storage::ObjectType::kData, [&](const storage::ObjectInfo&) { packs++; }));
  (*r)->for_each_blob([&](const repo::IndexEntry&) { blobs++; });
  const size_t loads_before = counting->data_loads();

  auto s = restore_to(**r, tree, dir_ + "/out");
  ASSERT_OK(s);
  EXPECT_EQ(s->errors, 0u);
  EXPECT_EQ(s->files, 1021u);
  expect_same_tree(src, dir_ + "/out/src");
  const size_t loads = counting->data_loads() - loads_before;
  // Trees (3 directories) are read one by one; file data one request per pack at most.
  EXPECT_LE(loads, packs + 3) << blobs << " blobs in " << packs << " packs";
  EXPECT_GT(blobs, 10 * packs) << "the test needs many blobs per pack to mean anything";

  // Small batches (3 files, 5 blobs) give the same bytes: a file larger than a batch, and
  // files whose blobs other batches read too.
  restore::Options small;
  small.batch_files = 3;
  small.batch_blobs = 5;
  small.max_gap = 0;
  auto s2 = restore_to(**r, tree, dir_ + "/out2", small);
  ASSERT_OK(s2);
  EXPECT_EQ(s2->errors, 0u);
  expect_same_tree(src, dir_ + "/out2/src");
}

// Hands each data range over in two reports, like an object store streaming it, and notes
// how many bytes of restored files are on disk between the two (a real local backend reads).
class TwoReportsBackend : public storage::BackendWrapper {
 public:
  TwoReportsBackend(std::shared_ptr<storage::Backend> inner, std::string target)
      : BackendWrapper(std::move(inner)), target_(std::move(target)) {}
  Status load_streaming(const storage::ObjectName& n, uint64_t off, std::span<uint8_t> out,
                        const std::function<void(size_t)>& arrived) override {
    if (n.type != storage::ObjectType::kData || out.size() < 2) {
      return inner().load_streaming(n, off, out, arrived);
    }
    HAVEN_TRY(inner().load_into(n, off, out));
    // Past the first report the rest of the range is withheld: scribbling over it must not matter.
    std::vector<uint8_t> rest(out.begin() + static_cast<ptrdiff_t>(out.size() / 2), out.end());
    std::fill(out.begin() + static_cast<ptrdiff_t>(out.size() / 2), out.end(), 0xEE);
    arrived(out.size() / 2);
    {
      std::lock_guard<std::mutex> g(mu_);
      halfway_.push_back(bytes_on_disk());
    }
    std::copy(rest.begin(), rest.end(), out.begin() + static_cast<ptrdiff_t>(out.size() / 2));
    arrived(out.size());
    return ok_status();
  }
  std::vector<uint64_t> halfway() {
    std::lock_guard<std::mutex> g(mu_);
    return halfway_;
  }

 private:
  uint64_t bytes_on_disk() const {
    uint64_t n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(target_, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec)) n += it->file_size(ec);
    }
    return n;
  }
  std::string target_;
  std::mutex mu_;
  std::vector<uint64_t> halfway_;
};

// A range's first blobs are written while the rest of it is still in transit (restore
// streams): half-way through the one range that holds them, the first file is on disk and
// the others are not.
TEST_F(RestoreTest, BlobsAreWrittenAsTheirBytesArriveNotWhenTheRangeIsComplete) {
  auto repo0 = init_repo(repo_dir(), 1u << 20);
  ASSERT_TRUE(repo0);
  repo0.reset();
  const std::string src = dir_ + "/src";
  make_dir(src);
  // Three blobs of one size, whatever their order in the pack: the middle of their range lies
  // after the end of the first and before the end of the second.
  for (const char* name : {"a", "b", "c"}) write_file(src + "/" + name, random_bytes(50000, name[0]));
  Id tree = cli_backup({"--threads", "1", src});  // one packer: the three blobs in one pack
  ASSERT_FALSE(HasFailure());

  auto be = storage::open_backend(repo_dir());
  ASSERT_OK(be);
  const std::string out = dir_ + "/out";
  auto two = std::make_shared<TwoReportsBackend>(*be, out);
  auto r = repo::Repository::open(two, kPw);
  ASSERT_OK(r);
  ASSERT_OK((*r)->load_index());
  auto s = restore_to(**r, tree, out);
  ASSERT_OK(s);
  EXPECT_EQ(s->errors, 0u);
  expect_same_tree(src, out + "/src");
  auto halfway = two->halfway();
  ASSERT_EQ(halfway.size(), 1u) << "the three blobs should be one range of one pack";
  EXPECT_EQ(halfway[0], 50000u) << "half-way through the range, the first file alone is written";
}

TEST(RestoreMeminfo, FieldsAreReadInBytes) {
  const std::string text =
      "MemTotal:       24683828 kB\nDirty:             79220 kB\nWriteback:         10188 kB\n"
      "WritebackTmp:          0 kB\nHugePages_Total:       0\nOdd:   12 MB\n";
  EXPECT_EQ(restore::detail::meminfo_bytes(text, "Writeback:"), 10188ull * 1024);
  EXPECT_EQ(restore::detail::meminfo_bytes(text, "MemTotal:"), 24683828ull * 1024);
  EXPECT_EQ(restore::detail::meminfo_bytes(text, "WritebackTmp:"), 0u);
  EXPECT_EQ(restore::detail::meminfo_bytes(text, "HugePages_Total:"), 0u);  // a count, no unit
  EXPECT_EQ(restore::detail::meminfo_bytes(text, "Odd:"), std::nullopt);   // an unknown unit
  EXPECT_EQ(restore::detail::meminfo_bytes(text, "Cached:"), std::nullopt);
  EXPECT_EQ(restore::detail::meminfo_bytes("Writeback: kB\n", "Writeback:"), std::nullopt);
  // The real one has the field restore reads.
  std::ifstream in("/proc/meminfo");
  std::string real((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(restore::detail::meminfo_bytes(real, "Writeback:").has_value());
}

// Before each data range is read, notes how large one restored file is so far and how much of
// it is in the page cache, then waits for its writeback (so that what restore lets go of next
// can leave the cache, whatever the disk's speed).
class CacheWatchBackend : public storage::BackendWrapper {
 public:
  CacheWatchBackend(std::shared_ptr<storage::Backend> inner, std::string watched)
      : BackendWrapper(std::move(inner)), watched_(std::move(watched)) {}
  Status load_streaming(const storage::ObjectName& n, uint64_t off, std::span<uint8_t> out,
                        const std::function<void(size_t)>& arrived) override {
    if (n.type == storage::ObjectType::kData) {
      struct stat st;
      if (::stat(watched_.c_str(), &st) == 0 && st.st_size > 0) {
        auto [resident, pages] = cached_pages(watched_);
        std::lock_guard<std::mutex> g(mu_);
        seen_.push_back({static_cast<uint64_t>(st.st_size), static_cast<uint64_t>(resident * ::sysconf(_SC_PAGESIZE))});
        int fd = ::open(watched_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
          ::fdatasync(fd);
          ::close(fd);
        }
      }
    }
    return inner().load_streaming(n, off, out, arrived);
  }
  // (bytes written so far, bytes of them cached), one per data range read.
  std::vector<std::pair<uint64_t, uint64_t>> seen() {
    std::lock_guard<std::mutex> g(mu_);
    return seen_;
  }

 private:
  std::string watched_;
  std::mutex mu_;
  std::vector<std::pair<uint64_t, uint64_t>> seen_;
};

TEST_F(RestoreTest, LargeFilesGiveTheirPagesBackAsTheyAreWrittenUnlessKeptCached) {
  if (std::string why = page_cache_control(dir_); !why.empty()) GTEST_SKIP() << why;
  const std::string src = dir_ + "/src";
  make_dir(src);
  write_file(src + "/big", random_bytes(48 << 20, 7));
  write_file(src + "/medium", random_bytes(3 << 20, 8));
  write_file(src + "/small", random_bytes(512 << 10, 9));  // under 1 MiB: left alone
  Id tree = init_and_back_up({src});
  ASSERT_FALSE(HasFailure());

  // Files of 1 MiB or more are written back and out of the cache once complete. On the way, a
  // large one keeps cached only what it has written since the last range (at most 4 MiB here,
  // and what the wrapper's fdatasync wrote back is let go of at the next write), seen before
  // each range is read (in pack order, which is not the file's).
  const std::string out = dir_ + "/out";
  auto be = storage::open_backend(repo_dir());
  ASSERT_OK(be);
  auto watch = std::make_shared<CacheWatchBackend>(*be, out + "/src/big");
  auto watched = repo::Repository::open(watch, kPw);
  ASSERT_OK(watched);
  ASSERT_OK((*watched)->load_index());
  restore::Options o;
  o.threads = 1;  // one blob being written at a time
  o.max_range = 4 << 20;
  o.max_writeback = UINT64_MAX;  // whatever else the machine is writing
  auto s = restore_to(**watched, tree, out, o);
  ASSERT_OK(s);
  EXPECT_EQ(s->errors, 0u);
  uint64_t furthest = 0;
  for (auto [written, cached] : watch->seen()) {
    furthest = std::max(furthest, written);
    EXPECT_LE(cached, uint64_t{5} << 20) << cached << " bytes cached of the " << written << " written";
  }
  EXPECT_GE(furthest, uint64_t{32} << 20) << "the file was never seen part-written";
  auto repo = open_repo(repo_dir());
  ASSERT_TRUE(repo);
  auto [resident, pages] = cached_pages(out + "/src/big");
  ASSERT_GT(pages, 0);
  EXPECT_LE(resident, pages / 10) << resident << " of " << pages << " pages of a 48 MiB file still cached";
  auto [medium_resident, medium_pages] = cached_pages(out + "/src/medium");
  EXPECT_LE(medium_resident, medium_pages / 10) << medium_resident << " of " << medium_pages;
  auto [small_resident, small_pages] = cached_pages(out + "/src/small");
  EXPECT_EQ(small_resident, small_pages) << "a file under 1 MiB keeps its pages";
  expect_same_tree(src, out + "/src");  // read back from the disk

  // Kept cached (pg restore): every page stays.
  o.keep_cached = true;
  const std::string kept = dir_ + "/kept";
  s = restore_to(*repo, tree, kept, o);
  ASSERT_OK(s);
  auto [kept_resident, kept_pages] = cached_pages(kept + "/src/big");
  EXPECT_GE(kept_resident, kept_pages * 9 / 10) << kept_resident << " of " << kept_pages;
  expect_same_tree(src, kept + "/src");
}

// Bytes this process has had read from storage devices (/proc/self/io); nullopt if not told.
std::optional<uint64_t> bytes_read_from_disk() {
  std::ifstream io("/proc/self/io");
  std::string key;
  uint64_t value;
  while (io >> key >> value) {
    if (key == "read_bytes:") return value;
  }
  return std::nullopt;
}

TEST(WrittenRangesTest, TouchingAndOverlappingRangesMergeAndBeyondTheMostTheClosestJoin) {
  using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;
  restore::detail::WrittenRanges w;
  w.add(100, 200);
  w.add(300, 400);
  w.add(200, 250);  // touches the first
  w.add(0, 0);      // empty: nothing
  EXPECT_EQ(w.ranges(), (Ranges{{100, 250}, {300, 400}}));
  w.add(50, 60);
  w.add(240, 310);  // overlaps both
  EXPECT_EQ(w.ranges(), (Ranges{{50, 60}, {100, 400}}));
  w.add(0, 1000);  // covers everything
  EXPECT_EQ(w.ranges(), (Ranges{{0, 1000}}));

  // Blobs in no order: never more than kMost ranges, the narrowest gap closed first.
  restore::detail::WrittenRanges scattered;
  const size_t most = restore::detail::WrittenRanges::kMost;
  for (size_t i = 0; i < most; i++) scattered.add(i * 1000, i * 1000 + 100);  // gaps of 900
  ASSERT_EQ(scattered.ranges().size(), most);
  scattered.add(5150, 5160);  // 50 past the sixth range: the narrowest gap, so those two join
  EXPECT_EQ(scattered.ranges().size(), most);
  EXPECT_EQ(scattered.ranges()[5], (std::pair<uint64_t, uint64_t>{5000, 5160}));
  EXPECT_EQ(scattered.ranges()[6], (std::pair<uint64_t, uint64_t>{6000, 6100}));
  scattered.add(most * 1000 + 500, most * 1000 + 600);  // 1,400 past the last: two others join
  EXPECT_EQ(scattered.ranges().size(), most);
  EXPECT_EQ(scattered.ranges().back(), (std::pair<uint64_t, uint64_t>{most * 1000 + 500, most * 1000 + 600}));
  EXPECT_EQ(scattered.ranges()[5], (std::pair<uint64_t, uint64_t>{5000, 6100})) << "840 bytes apart, the others 900";
  EXPECT_EQ(scattered.ranges()[0], (std::pair<uint64_t, uint64_t>{0, 100}));
  for (size_t i = 1; i < scattered.ranges().size(); i++) {
    EXPECT_LT(scattered.ranges()[i - 1].second, scattered.ranges()[i].first) << "sorted and apart";
  }
}

TEST_F(RestoreTest, APageABlobEndsInPartWayIsKeptCachedUntilItsNeighbourIsWritten) {
  if (std::string why = page_cache_control(dir_); !why.empty()) GTEST_SKIP() << why;
  if (!bytes_read_from_disk()) GTEST_SKIP() << "/proc/self/io does not tell bytes read from disk";
  // A file whose blobs are in two generations of packs: four pieces of it backed up first (their
  // chunks dedup with the file's once the chunker falls into step), then the whole file. Pack
  // order then is not the file's: around each piece, one side of a blob boundary is written,
  // written back and advised out of the cache well before the other side. Blob boundaries fall
  // anywhere in a page (content-defined cuts in random bytes).
  // Blobs of 256 KiB on average and sixteen pieces: ~32 boundaries between the generations,
  // so that a page read back shows well above the odd page of file-system metadata (a block
  // bitmap) that allocating the file may read.
  const std::string data = random_bytes(32 << 20, 41);
  make_dir(dir_ + "/pieces");
  for (int i = 0; i < 16; i++) {
    const size_t at = (size_t{2} * i + 1) << 20;
    write_file(dir_ + "/pieces/" + std::to_string(i), data.substr(at, size_t{1} << 20));
  }
  const std::string src = dir_ + "/src";
  make_dir(src);
  write_file(src + "/big", data);
  {
    auto be = storage::open_backend(repo_dir());
    ASSERT_OK(be);
    repo::InitOptions io;
    io.kdf = {1, 8 << 20};
    io.chunker = {64 << 10, 256 << 10, 1 << 20};
    ASSERT_OK(repo::Repository::init(*be, kPw, io));
  }
  cli_backup({dir_ + "/pieces"});
  Id tree = cli_backup({src});
  ASSERT_FALSE(HasFailure());
  for (const auto& e : fs::recursive_directory_iterator(repo_dir())) {  // all of it in the cache
    if (e.is_regular_file()) (void)read_file(e.path().string());
  }

  const std::string out = dir_ + "/out";
  auto be = storage::open_backend(repo_dir());
  ASSERT_OK(be);
  auto watch = std::make_shared<CacheWatchBackend>(*be, out + "/src/big");  // written back per range
  auto repo = repo::Repository::open(watch, kPw);
  ASSERT_OK(repo);
  ASSERT_OK((*repo)->load_index());
  restore::Options o;
  o.threads = 1;
  o.max_range = 256 << 10;  // about a blob a range, each range after a writeback
  o.max_writeback = UINT64_MAX;
  // A first restore elsewhere brings in whatever code and library pages a restore runs (on a
  // fresh machine zstd's decompressor may not be in the page cache yet): only the second counts.
  ASSERT_OK(restore_to(**repo, tree, dir_ + "/warm-up", o));
  const uint64_t before = *bytes_read_from_disk();
  auto s = restore_to(**repo, tree, out, o);
  const uint64_t after = *bytes_read_from_disk();
  ASSERT_OK(s);
  EXPECT_EQ(s->errors, 0u);
  // A page given back part-written would be read from the disk again to be completed.
  EXPECT_LE(after - before, 16u << 10) << "restore read " << after - before << " bytes back from the disk";
  auto [resident, pages] = cached_pages(out + "/src/big");
  EXPECT_LE(resident, pages / 10) << resident << " of " << pages << " pages still cached";
  expect_same_tree(src, out + "/src");
}

TEST_F(RestoreTest, DamagedHardLinkedFileLeavesNoNameBehind) {
  auto repo0 = init_repo(repo_dir(), 1u << 20);
  ASSERT_TRUE(repo0);
  repo0.reset();
  const std::string src = dir_ + "/src";
  make_dir(src);
  make_dir(src + "/d");
  const std::string a = random_bytes(3u << 19, 21), b = random_bytes(3u << 19, 22);
  write_file(src + "/a.bin", a);
  write_file(src + "/b.bin", b);
  ASSERT_EQ(link((src + "/b.bin").c_str(), (src + "/b2.bin").c_str()), 0);
  ASSERT_EQ(link((src + "/b.bin").c_str(), (src + "/d/b3.bin").c_str()), 0);
  Id tree = cli_backup({src});
  ASSERT_FALSE(HasFailure());
  auto repo = open_repo(repo_dir());
  ASSERT_TRUE(repo);
  auto root = repo->load_tree(tree);
  ASSERT_OK(root);
  auto sub = repo->load_tree(*root->nodes.at(0).subtree);
  ASSERT_OK(sub);
  ASSERT_EQ(sub->nodes.at(1).name, "b.bin");
  damage_blob(*repo, repo_dir(), sub->nodes.at(1).content.at(0).id);
  ASSERT_FALSE(HasFailure());

  auto s = restore_to(*repo, tree, dir_ + "/out");
  ASSERT_OK(s);
  EXPECT_GE(s->errors, 1u);
  EXPECT_TRUE(read_file(dir_ + "/out/src/a.bin") == a);
  // None of the three names of the damaged file may be left with wrong bytes.
  EXPECT_FALSE(exists(dir_ + "/out/src/b.bin"));
  for (const char* name : {"b2.bin", "d/b3.bin"}) {
    std::string p = dir_ + "/out/src/" + name;
    EXPECT_FALSE(exists(p)) << name << " must not be restored: its content is damaged";
    EXPECT_TRUE(!exists(p) || read_file(p) == b)
        << name << " exists with wrong content (" << read_file(p).size() << " bytes)";
  }
}

// Files are created with their final mode where the umask keeps it, and fchown is left out where
// the owner a new file gets is already right: a setgid target directory (whose group new files
// and directories inherit) and a restrictive umask must still end with every owner and mode as
// backed up.
TEST_F(RestoreTest, OwnerAndModeAreExactUnderASetgidTargetAndARestrictiveUmask) {
  HAVEN_SKIP_UNLESS_ROOT("sets owners");
  const std::string src = dir_ + "/src";
  make_dir(src);
  make_dir(src + "/sub");
  struct Want {
    std::string rel;
    mode_t mode;
    gid_t gid;
  };
  const std::vector<Want> want = {{"a", 0644, 0}, {"b", 0755, 0}, {"c", 04755, 0},
                                  {"d", 0600, 4321}, {"sub/e", 0640, 0}, {"sub/f", 0444, 0}};
  for (const auto& w : want) {
    write_file(src + "/" + w.rel, w.rel + "\n");
    ASSERT_EQ(chown((src + "/" + w.rel).c_str(), 0, w.gid), 0);
    ASSERT_EQ(chmod((src + "/" + w.rel).c_str(), w.mode), 0);
  }
  Id tree = init_and_back_up({src});
  ASSERT_FALSE(HasFailure());
  auto repo = open_repo(repo_dir());
  ASSERT_TRUE(repo);

  const std::string out = dir_ + "/out";  // each target: setgid, group 1234 (new entries get it)
  make_dir(out);
  // 077 keeps 0600 (created with it) but not 0644; 0277 keeps neither (0600 becomes 0400).
  for (mode_t mask : {mode_t{077}, mode_t{0277}}) {
    const std::string target = out + "/" + std::to_string(mask);
    make_dir(target);
    ASSERT_EQ(chown(target.c_str(), 0, 1234), 0);
    ASSERT_EQ(chmod(target.c_str(), 02775), 0);
    mode_t old_mask = umask(mask);
    auto r = restore_to(*repo, tree, target);
    umask(old_mask);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->errors, 0u);
    for (const auto& w : want) {
      struct stat st;
      ASSERT_EQ(lstat((target + "/src/" + w.rel).c_str(), &st), 0) << w.rel;
      EXPECT_EQ(st.st_mode & 07777, w.mode) << w.rel << " with umask " << mask;
      EXPECT_EQ(st.st_gid, w.gid) << w.rel << " kept the setgid directory's group";
      EXPECT_EQ(st.st_uid, 0u) << w.rel;
      EXPECT_EQ(read_file(target + "/src/" + w.rel), w.rel + "\n");
    }
  }
}

// Directory metadata is applied as the walk leaves each directory, once the batches creating
// its files have run (not all at the end): with batches of two files, many directories close
// while their files are still waiting in a batch, and hard links (made at the very end) sit in
// some of them. Every directory's mtime and mode must come out as recorded: one set before a
// file or link was created in it would be moved by that creation.
TEST_F(RestoreTest, DirectoryMetadataIsAppliedAfterEverythingInItIsCreatedWithSmallBatches) {
  const std::string src = dir_ + "/src";
  make_dir(src);
  for (int i = 0; i < 12; i++) {
    const std::string d = src + "/d" + std::to_string(i);
    make_dir(d, i % 3 == 0 ? 0750 : 0755);
    for (int j = 0; j < 3; j++) write_file(d + "/f" + std::to_string(j), std::string(100 + i * 10 + j, 'a' + j));
    if (i % 4 == 1) {
      make_dir(d + "/inner");
      write_file(d + "/inner/g", "inner " + std::to_string(i));
    }
  }
  make_dir(src + "/empty");
  // Hard links: a second name in another directory, and one in a nested directory.
  ASSERT_EQ(link((src + "/d2/f0").c_str(), (src + "/d7/link").c_str()), 0);
  ASSERT_EQ(link((src + "/d5/inner/g").c_str(), (src + "/d9/link").c_str()), 0);
  int counter = 0;
  set_fixed_times(src, counter);
  Id tree = init_and_back_up({src});
  ASSERT_FALSE(HasFailure());
  auto repo = open_repo(repo_dir());
  ASSERT_TRUE(repo);
  restore::Options small;
  small.batch_files = 2;
  auto s = restore_to(*repo, tree, dir_ + "/out", small);
  ASSERT_OK(s);
  EXPECT_EQ(s->errors, 0u);
  expect_same_tree(src, dir_ + "/out/src");  // modes and mtimes (ns) of every directory too
}

TEST_F(RestoreTest, NonRootRestoreAppliesMetadataInsideUnsearchableDirectories) {
  // Directory metadata must be applied deepest first: once a parent has a mode without the
  // search bit, an unprivileged restore can no longer reach its children.
  HAVEN_SKIP_UNLESS_ROOT("runs haven as another user");
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  const std::string src = dir_ + "/src";
  make_dir(src);
  make_dir(src + "/locked");
  make_dir(src + "/locked/inner", 0750);
  write_file(src + "/locked/inner/f", "f\n");
  int counter = 0;
  set_fixed_times(src, counter);
  ASSERT_EQ(chmod((src + "/locked").c_str(), 0600), 0);  // no search bit; mtime unchanged
  init_and_back_up({src});
  ASSERT_FALSE(HasFailure());
  for (const auto& e : fs::recursive_directory_iterator(repo_dir())) {
    ASSERT_EQ(lchown(e.path().c_str(), 65534, 65534), 0);
  }
  ASSERT_EQ(chown(repo_dir().c_str(), 65534, 65534), 0);
  const std::string out = dir_ + "/out";
  make_dir(out);
  ASSERT_EQ(chown(out.c_str(), 65534, 65534), 0);
  RunOptions as;
  as.uid = 65534;
  as.env.emplace_back("HOME", dir_);
  RunResult r = cli(repo_dir(), {"restore", "latest", "--target", out}, as);
  if (r.code == 125) GTEST_SKIP() << "cannot switch to uid 65534";
  ASSERT_EQ(r.code, 0) << describe(r);
  struct stat st;
  ASSERT_EQ(lstat((out + "/src/locked").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(lstat((out + "/src/locked/inner").c_str(), &st), 0);
  const bool inner_ok = (st.st_mode & 07777) == 0750 &&
                        mtime_of(out + "/src/locked/inner") == mtime_of(src + "/locked/inner") &&
                        !contains(r.err, "cannot set");
  EXPECT_TRUE(inner_ok) << describe(r);
  EXPECT_EQ(mtime_of(out + "/src/locked/inner/f"), mtime_of(src + "/locked/inner/f"));
  EXPECT_EQ(mtime_of(out + "/src/locked"), mtime_of(src + "/locked"));
}

TEST_F(RestoreTest, OverwritePolicies) {
  auto repo0 = init_repo(repo_dir());
  ASSERT_TRUE(repo0);
  repo0.reset();
  const std::string src = dir_ + "/src";
  make_dir(src);
  const std::string snap_content = "snapshot content\n";
  write_file(src + "/f.txt", snap_content);
  write_file(src + "/g.txt", "g\n");
  const TimeNs m = 1600000000LL * 1000000000 + 424242424;
  set_times(src + "/f.txt", m, m);
  cli_backup({src});
  ASSERT_FALSE(HasFailure());

  const std::string out = dir_ + "/out", f = out + "/src/f.txt";
  make_dir(out);
  make_dir(out + "/src");
  const std::string local = "local, different and longer\n";
  write_file(f, local);
  auto restore = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"restore", "latest", "--target", out};
    args.insert(args.end(), extra.begin(), extra.end());
    return cli(repo_dir(), args);
  };
  // never (the default): left alone, exit 3, and the rest still restores.
  RunResult r = restore({});
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_TRUE(contains(r.err + r.out, "not overwritten")) << describe(r);
  EXPECT_EQ(read_file(f), local);
  EXPECT_EQ(read_file(out + "/src/g.txt"), "g\n");
  r = restore({"--overwrite", "never"});
  EXPECT_EQ(r.code, 3) << describe(r);
  EXPECT_EQ(read_file(f), local);
  // if-changed: a different file is replaced.
  r = restore({"--overwrite", "if-changed"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(read_file(f), snap_content);
  EXPECT_EQ(mtime_of(f), m);
  // always: replaced.
  write_file(f, local);
  r = restore({"--overwrite", "always"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(read_file(f), snap_content);
  // if-changed with the same size and mtime: taken as unchanged and left alone...
  std::string same_size = "SNAPSHOT CONTENT\n";
  ASSERT_EQ(same_size.size(), snap_content.size());
  write_file(f, same_size);
  set_times(f, m, m);
  r = restore({"--overwrite", "if-changed"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(read_file(f), same_size);
  // ...but not when only the mtime differs...
  set_times(f, m + 1, m + 1);
  r = restore({"--overwrite", "if-changed"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(read_file(f), snap_content);
  // ...and always replaces it regardless.
  write_file(f, same_size);
  set_times(f, m, m);
  r = restore({"--overwrite", "always"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(read_file(f), snap_content);
  // An unknown policy is a usage error and touches nothing.
  write_file(f, local);
  r = restore({"--overwrite", "sometimes"});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_EQ(read_file(f), local);

  // The library reports what it skipped.
  auto repo = open_repo(repo_dir());
  ASSERT_TRUE(repo);
  auto id = repo->resolve_snapshot("latest");
  ASSERT_OK(id);
  auto snap = repo->load_snapshot(*id);
  ASSERT_OK(snap);
  auto s = restore_to(*repo, snap->tree, out);
  ASSERT_OK(s);
  EXPECT_EQ(s->skipped, 2u);  // f.txt and g.txt both exist now
  EXPECT_EQ(s->files, 0u);
  EXPECT_EQ(read_file(f), local);
  EXPECT_FALSE(restore::parse_overwrite("sometimes").ok());
}

TEST_F(RestoreTest, VerifyCountsRegularFilesNotHardLinkNames) {
  auto repo0 = init_repo(repo_dir());
  ASSERT_TRUE(repo0);
  repo0.reset();
  const std::string src = dir_ + "/src";
  make_dir(src);
  make_dir(src + "/d");
  write_file(src + "/big", random_bytes(5u << 20, 3));
  write_file(src + "/small", "small\n");
  write_file(src + "/empty", "");
  ASSERT_EQ(link((src + "/big").c_str(), (src + "/big_link").c_str()), 0);
  ASSERT_EQ(link((src + "/small").c_str(), (src + "/d/small_link").c_str()), 0);
  ASSERT_EQ(symlink("big", (src + "/sym").c_str()), 0);
  Id tree = cli_backup({src});
  ASSERT_FALSE(HasFailure());
  auto repo = open_repo(repo_dir());
  ASSERT_TRUE(repo);
  restore::Options o;
  o.verify = true;
  auto s = restore_to(*repo, tree, dir_ + "/out", o);
  ASSERT_OK(s);
  EXPECT_EQ(s->verified, 3u);
  EXPECT_EQ(s->files, 5u);
  EXPECT_EQ(s->errors, 0u);
  EXPECT_EQ(s->others, 1u);
  EXPECT_EQ(s->bytes, (5u << 20) + 6u);
  EXPECT_TRUE(read_file(dir_ + "/out/src/big_link") == read_file(src + "/big"));
  expect_same_tree(src, dir_ + "/out/src");
  struct stat x, y;
  ASSERT_EQ(lstat((dir_ + "/out/src/small").c_str(), &x), 0);
  ASSERT_EQ(lstat((dir_ + "/out/src/d/small_link").c_str(), &y), 0);
  EXPECT_EQ(x.st_ino, y.st_ino);
  // Without --verify nothing is counted as verified.
  auto s2 = restore_to(*repo, tree, dir_ + "/out2");
  ASSERT_OK(s2);
  EXPECT_EQ(s2->verified, 0u);
  EXPECT_EQ(s2->files, 5u);
  // The CLI reports the count.
  RunResult r = cli(repo_dir(), {"restore", "latest", "--verify", "--target", dir_ + "/out3"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "3 verified")) << describe(r);
}

TEST_F(RestoreTest, CompareFindsEveryDifferenceAndWritesNothing) {
  auto repo0 = init_repo(repo_dir());
  ASSERT_TRUE(repo0);
  repo0.reset();
  const std::string src = dir_ + "/src";
  make_dir(src);
  make_dir(src + "/d");
  write_file(src + "/big", random_bytes(3u << 20, 11));
  write_file(src + "/small", "small\n");
  write_file(src + "/d/inner", "inner\n");
  write_file(src + "/empty", "");
  ASSERT_EQ(symlink("big", (src + "/sym").c_str()), 0);
  cli_backup({src});
  ASSERT_FALSE(HasFailure());
  const std::string out = dir_ + "/out";
  RunResult r = cli(repo_dir(), {"restore", "latest", "--target", out});
  ASSERT_EQ(r.code, 0) << describe(r);

  // A faithful restore compares clean, from the CLI and the library.
  r = cli(repo_dir(), {"restore", "latest", "--target", out, "--compare"});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "everything matches")) << describe(r);
  auto repo = open_repo(repo_dir());
  ASSERT_TRUE(repo);
  auto choice = restore::choose_snapshot(*repo, "latest");
  ASSERT_OK(choice);
  auto compare = [&](std::vector<std::string> includes = {}) {
    restore::Options o;
    o.target = out;
    o.includes = std::move(includes);
    repo::Session session(*repo);
    return restore::compare(session, *choice, o, sink_);
  };
  auto c = compare();
  ASSERT_OK(c);
  EXPECT_TRUE(c->clean());
  EXPECT_EQ(c->files, 4u);
  EXPECT_EQ(c->dirs, 2u);  // src, src/d
  EXPECT_EQ(c->others, 1u);
  EXPECT_EQ(c->matched, 7u);
  EXPECT_EQ(c->bytes, (3u << 20) + 12u);
  ASSERT_EQ(sink_.of(EventKind::kValidated).size(), 1u);
  EXPECT_EQ(sink_.of(EventKind::kValidated)[0].data["clean"], true);

  // Now every kind of damage: one byte flipped in the middle of big (same size), small gone,
  // the link pointing elsewhere, d/inner replaced by a directory, empty no longer empty.
  std::string big = read_file(out + "/src/big");
  big[big.size() / 2] ^= 0x01;
  write_file(out + "/src/big", big);
  ASSERT_EQ(unlink((out + "/src/small").c_str()), 0);
  ASSERT_EQ(unlink((out + "/src/sym").c_str()), 0);
  ASSERT_EQ(symlink("small", (out + "/src/sym").c_str()), 0);
  ASSERT_EQ(unlink((out + "/src/d/inner").c_str()), 0);
  make_dir(out + "/src/d/inner");
  write_file(out + "/src/empty", "x");
  // What compare must leave as it is: every entry's type, size, mtime and inode.
  auto state = [](const std::string& root) {
    std::map<std::string, std::tuple<mode_t, off_t, TimeNs, ino_t>> m;
    for (const auto& [rel, meta] : scan(root)) m[rel] = {meta.type, meta.size, meta.mtime, meta.ino};
    return m;
  };
  auto before = state(out);
  c = compare();
  ASSERT_OK(c);
  EXPECT_FALSE(c->clean());
  EXPECT_EQ(c->missing, 1u);
  EXPECT_EQ(c->differ, 4u);
  EXPECT_EQ(c->matched, 2u);  // src, src/d
  std::map<std::string, std::string> problems;
  for (const auto& d : c->differences) problems[d.path] = d.problem;
  ASSERT_EQ(problems.size(), 5u);
  EXPECT_TRUE(contains(problems["src/big"], "content differs from the snapshot at offset")) << problems["src/big"];
  EXPECT_TRUE(contains(problems["src/small"], "missing")) << problems["src/small"];
  EXPECT_TRUE(contains(problems["src/sym"], "points to 'small'")) << problems["src/sym"];
  EXPECT_TRUE(contains(problems["src/d/inner"], "is a dir")) << problems["src/d/inner"];
  EXPECT_TRUE(contains(problems["src/empty"], "has 1 bytes; the snapshot has 0")) << problems["src/empty"];
  EXPECT_EQ(state(out), before);  // nothing written, no time changed

  // Includes narrow it (paths as backed up), and the CLI fails with the count.
  c = compare({src + "/sym"});
  ASSERT_OK(c);
  EXPECT_EQ(c->differ, 1u);
  EXPECT_EQ(c->missing, 0u);
  r = cli(repo_dir(), {"restore", "latest", "--target", out, "--compare"});
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.err + r.out, "5 of the snapshot's entries are not in " + out)) << describe(r);
  EXPECT_EQ(state(out), before);
  // A target that is not there is an error naming it, not a list of everything missing.
  restore::Options o;
  o.target = dir_ + "/nowhere";
  repo::Session session(*repo);
  auto gone = restore::compare(session, *choice, o, sink_);
  ASSERT_FALSE(gone.ok());
  EXPECT_TRUE(contains(gone.error().message(), dir_ + "/nowhere")) << gone.error().message();
  EXPECT_FALSE(fs::exists(dir_ + "/nowhere"));
}

}  // namespace
}  // namespace haven

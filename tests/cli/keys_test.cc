// End-to-end tests, through the real binary, of how key files and password files that are not
// what they should be are reported (issue 10): a key file of another repository that opens
// with the same password, damaged key files, and password files that are directories,
// unreadable or missing. Each asserts the exit code and the message that names the thing.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

// The shared helpers are many small functions in an anonymous namespace; this file uses few.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"
#pragma GCC diagnostic pop

namespace haven {
namespace {

class KeysCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::init();
    char tmpl[] = "/tmp/haven-keys-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::vector<std::string> key_files(const std::string& repo) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(repo + "/keys")) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }

  // Rewrites a key file's JSON through `edit` and recomputes its checksum the way
  // repo/keys.cc does, so only the edited field is wrong.
  static void edit_key(const std::string& path, const std::function<void(nlohmann::json&)>& edit) {
    auto j = nlohmann::json::parse(read_file(path));
    edit(j);
    nlohmann::json c = j;
    c.erase("checksum");
    std::string canon = c.dump();
    auto h = crypto::sha256(as_bytes(canon));
    j["checksum"] = to_hex(ByteView(h.data(), h.size()));
    fs::remove(path);
    write_file(path, j.dump(2) + "\n", 0444);
  }

  static RunOptions with_env(Env env, int uid = -1) {
    RunOptions o;
    o.env = std::move(env);
    o.uid = uid;
    return o;
  }

  std::string dir_;
};

// The CLI remembers which key file opened a repository (a file in its cache directory, named by
// a hash of the location, holding the key file's ID) and reads that key file beside the key
// listing next time (repo::Repository::probe). A remembered key file that is gone, or a file of
// junk, costs nothing but a request, and is written over with the key that opened.
TEST_F(KeysCliTest, TheKeyFileThatOpenedLastIsRememberedInTheCacheDirectory) {
  const std::string repo = dir_ + "/repo";
  const std::string cache = dir_ + "/cache";
  fs::create_directories(cache);
  cli_init(repo);
  const std::string first = key_files(repo).at(0);
  RunResult add = cli(repo, {"key", "add", "--kdf-memory", "8", "--kdf-iterations", "1"},
                      with_env({{"HAVEN_NEW_PASSWORD", "second"}}));
  ASSERT_EQ(add.code, 0) << describe(add);
  std::vector<std::string> both = key_files(repo);
  ASSERT_EQ(both.size(), 2u);
  const std::string second = both[0] == first ? both[1] : both[0];
  auto hint_files = [&] {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(cache)) out.push_back(e.path().string());
    return out;
  };
  auto snapshots_with = [&](const std::string& password) {
    return run_haven({"-r", repo, "--cache-dir", cache, "snapshots"}, with_env({{"HAVEN_PASSWORD", password}}));
  };

  RunResult r = snapshots_with("second");
  ASSERT_EQ(r.code, 0) << describe(r);
  auto files = hint_files();
  ASSERT_EQ(files.size(), 1u);
  const std::string hint = files[0];
  EXPECT_EQ(fs::path(hint).filename().string().rfind("key-hint-", 0), 0u) << hint;
  EXPECT_EQ(read_file(hint), second + "\n");
  r = snapshots_with(kPw);  // the other key: found after the remembered one fails
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(read_file(hint), first + "\n");
  for (const std::string& junk : {std::string(64, 'a'), std::string("../../etc/passwd"), std::string()}) {
    write_file(hint, junk + "\n");
    r = snapshots_with("second");
    ASSERT_EQ(r.code, 0) << junk << ": " << describe(r);
    EXPECT_EQ(read_file(hint), second + "\n") << junk;
  }
  EXPECT_EQ(hint_files().size(), 1u) << "a temporary file was left in the cache directory";
  // Another repository has a file of its own.
  const std::string other = dir_ + "/other";
  cli_init(other);
  r = run_haven({"-r", other, "--cache-dir", cache, "snapshots"}, with_env({{"HAVEN_PASSWORD", kPw}}));
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(hint_files().size(), 2u);
  EXPECT_EQ(read_file(hint), second + "\n");
}

// A key file copied from another repository with the same password: before the fix, named to
// sort first it locked every command out with "config: authentication failed", and named to
// sort last nothing ever mentioned it.
TEST_F(KeysCliTest, KeyFileOfAnotherRepositoryNeitherLocksOutNorHides) {
  const std::string repo = dir_ + "/repo", other = dir_ + "/other";
  cli_init(repo);
  cli_init(other);
  const std::string own = key_files(repo).at(0);
  const std::string foreign = read_file(other + "/keys/" + key_files(other).at(0));
  for (const std::string& name : {std::string(64, '0'), std::string(64, 'f')}) {
    SCOPED_TRACE("foreign key named " + name.substr(0, 8));
    write_file(repo + "/keys/" + name, foreign, 0444);
    RunResult cat = cli(repo, {"cat", "config"});
    EXPECT_EQ(cat.code, 0) << describe(cat);

    RunResult check = cli(repo, {"check"});
    EXPECT_EQ(check.code, 1) << describe(check);
    EXPECT_TRUE(contains(check.out, "error: key " + name + ": key " + name +
                                        " does not belong to this repository: it opens with this "
                                        "password, but its master key does not authenticate this "
                                        "repository's config (it opens nothing here; remove it with "
                                        "'haven key remove " + name.substr(0, 8) + "')"))
        << check.out;
    EXPECT_FALSE(contains(check.out + check.err, "config: authentication failed")) << describe(check);
    EXPECT_FALSE(contains(check.out, "key " + own)) << "the repository's own key is fine:\n" << check.out;

    RunResult list = cli(repo, {"--json", "key", "list"});
    ASSERT_EQ(list.code, 0) << describe(list);
    auto keys = nlohmann::json::parse(list.out);
    ASSERT_EQ(keys.size(), 2u) << list.out;
    for (const auto& k : keys) {
      if (k["id"] == name) {
        EXPECT_TRUE(contains(k.value("problem", ""), "does not belong to this repository")) << list.out;
      } else {
        EXPECT_TRUE(k["current"].get<bool>()) << list.out;
        EXPECT_FALSE(k.contains("problem")) << list.out;
      }
    }
    // key remove takes it away, and check is clean again.
    RunResult rm = cli(repo, {"key", "remove", name.substr(0, 8)});
    EXPECT_EQ(rm.code, 0) << describe(rm);
    RunResult clean = cli(repo, {"check"});
    EXPECT_EQ(clean.code, 0) << describe(clean);
  }
}

// A damaged key file used to be reported as "wrong password" (exit 12).
TEST_F(KeysCliTest, DamagedKeyFileIsNamedWithItsDamage) {
  const std::string repo = dir_ + "/repo";
  cli_init(repo);
  const std::string k1 = key_files(repo).at(0);
  const std::string kp = repo + "/keys/" + k1;
  const std::string original = read_file(kp);

  // The only key: asks for a terabyte of memory (checksum intact), or is not JSON at all.
  edit_key(kp, [](nlohmann::json& j) { j["kdf"]["memory"] = 1ull << 40; });
  RunResult r = cli(repo, {"cat", "config"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "haven: error: no key file of this repository can be read, so no "
                              "password opens it: key " + k1 +
                              " is damaged: its KDF parameters are out of bounds (iterations 1, "
                              "memory 1099511627776 bytes; Argon2id memory must be between 1 MiB "
                              "and 4 GiB), so no password is tried with it (restore the key files "
                              "from a copy of the repository)"))
      << r.err;
  EXPECT_FALSE(contains(r.err, "wrong password")) << r.err;
  fs::remove(kp);
  write_file(kp, "{ this is not json", 0444);
  r = cli(repo, {"snapshots"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "key " + k1 + " is damaged: not valid JSON (syntax error at byte ")) << r.err;

  // With a second key: that key's password opens; a password opening neither says both.
  fs::remove(kp);
  write_file(kp, original, 0444);
  RunResult add = cli(repo, {"key", "add", "--kdf-memory", "8", "--kdf-iterations", "1"},
                      with_env({{"HAVEN_NEW_PASSWORD", "second"}}));
  ASSERT_EQ(add.code, 0) << describe(add);
  edit_key(kp, [](nlohmann::json& j) { j["kdf"]["iterations"] = 0; });
  RunResult wrong = run_haven({"-r", repo, "cat", "config"}, with_env({{"HAVEN_PASSWORD", "neither"}}));
  EXPECT_EQ(wrong.code, 12) << describe(wrong);
  EXPECT_TRUE(contains(wrong.err, "haven: error: wrong password or no key for this repository; "
                                  "besides, 1 key file(s) could not be read: key " + k1 +
                                  " is damaged: its KDF parameters are out of bounds (iterations 0"))
      << wrong.err;
  const RunOptions second = with_env({{"HAVEN_PASSWORD", "second"}});
  RunResult opens = run_haven({"-r", repo, "cat", "config"}, second);
  EXPECT_EQ(opens.code, 0) << describe(opens);
  RunResult list = run_haven({"-r", repo, "key", "list"}, second);
  EXPECT_EQ(list.code, 0) << describe(list);
  EXPECT_TRUE(contains(list.out, k1.substr(0, 8) + "  (key " + k1 + " is damaged: its KDF parameters"))
      << list.out;
  RunResult check = run_haven({"-r", repo, "check"}, second);
  EXPECT_EQ(check.code, 1) << describe(check);
  EXPECT_TRUE(contains(check.out, "error: key " + k1 + ": key " + k1 + " is damaged")) << check.out;
}

// --password-file naming a directory used to say the file "is empty".
TEST_F(KeysCliTest, PasswordFileProblemsSayWhatIsWrong) {
  const std::string repo = dir_ + "/repo";
  cli_init(repo);
  auto with_file = [&](const std::string& file, int uid = -1) {
    return run_haven({"-r", repo, "--password-file", file, "cat", "config"}, with_env({}, uid));
  };

  const std::string d = dir_ + "/pwdir";
  make_dir(d);
  RunResult r = with_file(d);
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "haven: error: password file " + d +
                                  " is a directory, not a file: give the path of a file whose first "
                                  "line is the password"))
      << r.err;
  EXPECT_FALSE(contains(r.err, "empty")) << r.err;

  r = with_file(dir_ + "/nonexistent");
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "haven: error: password file " + dir_ +
                                  "/nonexistent does not exist (check the path given with "
                                  "--password-file or HAVEN_PASSWORD_FILE)"))
      << r.err;

  const std::string empty = dir_ + "/empty";
  write_file(empty, "", 0600);
  r = with_file(empty);
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "password file " + empty + " is empty: write the password on its first line"))
      << r.err;
  const std::string blank = dir_ + "/blank";
  write_file(blank, "\n" + kPw + "\n", 0600);
  r = with_file(blank);
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "password file " + blank + " has an empty first line")) << r.err;

  // Unreadable: a file only root may read, used by another user (the repository itself is
  // readable by everyone, so the password file is the only thing in the way).
  const std::string secret = dir_ + "/secret";
  write_file(secret, kPw + "\n", 0600);
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  ASSERT_EQ(chmod(repo.c_str(), 0755), 0);
  for (auto it = fs::recursive_directory_iterator(repo); it != fs::recursive_directory_iterator(); ++it) {
    fs::permissions(it->path(), fs::perms::others_read | fs::perms::group_read |
                                    (it->is_directory() ? fs::perms::others_exec | fs::perms::group_exec
                                                        : fs::perms::none),
                    fs::perm_options::add);
  }
  r = with_file(secret, 65534);
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "haven: error: password file " + secret +
                                  ": permission denied (make it readable by the user running haven, "
                                  "and by nobody else: chmod 600)"))
      << r.err;
  // The same file works for its owner.
  r = with_file(secret);
  EXPECT_EQ(r.code, 0) << describe(r);
}

// `key add --access-key-file`: the access key goes to a new 0600 file (never over one that
// exists), opens the repository as a password file, shows as an access key in `key list`, and
// appears nowhere in the repository.
TEST_F(KeysCliTest, AnAccessKeyFileOpensTheRepositoryAsAPasswordFile) {
  const std::string repo = dir_ + "/repo", ak = dir_ + "/access.key";
  cli_init(repo);
  RunResult add = cli(repo, {"key", "add", "--access-key-file", ak});
  ASSERT_EQ(add.code, 0) << describe(add);
  struct stat st;
  ASSERT_EQ(::stat(ak.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string key = read_file(ak);
  ASSERT_EQ(key.rfind("haven-ak1-", 0), 0u) << key;
  const std::string secret = key.substr(10, 64);
  EXPECT_FALSE(contains(add.out + add.err, secret));
  for (const auto& f : key_files(repo)) EXPECT_FALSE(contains(read_file(repo + "/keys/" + f), secret));

  // A second --access-key-file naming the same file is refused and adds no key file.
  RunResult again = cli(repo, {"key", "add", "--access-key-file", ak});
  EXPECT_EQ(again.code, 1) << describe(again);
  EXPECT_TRUE(contains(again.err, ak + " already exists: remove it first or pass --force")) << again.err;
  EXPECT_EQ(key_files(repo).size(), 2u);
  EXPECT_EQ(read_file(ak), key);

  RunResult list = run_haven({"-r", repo, "--password-file", ak, "--json", "key", "list"});
  ASSERT_EQ(list.code, 0) << describe(list);
  auto keys = nlohmann::json::parse(list.out);
  ASSERT_EQ(keys.size(), 2u) << list.out;
  int access = 0;
  for (const auto& k : keys) {
    if (k["kind"] == "access key") {
      access++;
      EXPECT_TRUE(k["current"].get<bool>()) << list.out;
    }
  }
  EXPECT_EQ(access, 1) << list.out;
  RunResult backup = run_haven({"-r", repo, "--password-file", ak, "backup", dir_ + "/repo/config"});
  EXPECT_EQ(backup.code, 0) << describe(backup);
  // A password shaped like an access key is refused for a password key file.
  RunResult shaped = cli(repo, {"key", "add"}, with_env({{"HAVEN_NEW_PASSWORD", "haven-ak1-" + std::string(64, 'a')}}));
  EXPECT_EQ(shaped.code, 2) << describe(shaped);
  EXPECT_TRUE(contains(shaped.err, "the password has the form of an access key")) << shaped.err;
}

}  // namespace
}  // namespace haven

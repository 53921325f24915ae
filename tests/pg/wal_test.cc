// Tests of the WAL archive (pg/wal.h) without a PostgreSQL server: which names it takes, the
// WAL key (derived from the master key, written to a 0600 file, refused when others can read
// it or when it belongs to another repository), push/fetch round trips, idempotent re-pushes,
// loud conflicts, objects that do not reveal their contents and cannot be renamed, and the
// wal-push / wal-fetch commands as PostgreSQL calls them. tests/pg/pitr_test.cc runs the same
// commands under a real server.
#include "pg/wal.h"
#include "pg/basebackup.h"
#include "pg/wal_pages.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"
#pragma GCC diagnostic pop

#include "storage/local.h"

namespace haven {
namespace {

using storage::ObjectType;

class WalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::init();
    char tmpl[] = "/tmp/haven-wal-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto r = init_repo(repo_dir());
    ASSERT_TRUE(r);
    fingerprint_ = *repo::repository_fingerprint(r->backend());
    key_ = r->wal_key().value();
    EXPECT_EQ(key_.repository, fingerprint_);
    be_ = std::make_shared<storage::LocalBackend>(repo_dir());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string repo_dir() const { return dir_ + "/repo"; }

  std::string dir_, fingerprint_;
  pg::WalKey key_;
  std::shared_ptr<storage::LocalBackend> be_;
};

TEST(WalNames, WhatTheArchiveAccepts) {
  for (const char* ok : {"000000010000000000000001", "00000002000000A1000000FF", "00000002.history",
                         "000000010000000000000003.00000028.backup", "000000010000000000000004.partial"}) {
    EXPECT_TRUE(pg::is_wal_file_name(ok)) << ok;
  }
  for (const char* bad : {"", "00000001000000000000001", "0000000100000000000000011", "000000010000000000000a01",
                          "../00000001000000000000001", "00000002.History", "x.history", "000000010000000000000003.backup",
                          "000000010000000000000001/x", ".000000010000000000000001"}) {
    EXPECT_FALSE(pg::is_wal_file_name(bad)) << bad;
  }
  auto s = pg::parse_segment_name("00000003000000A1000000FE");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->timeline, 3u);
  EXPECT_EQ(s->log, 0xA1u);
  EXPECT_EQ(s->seg, 0xFEu);
}

TEST_F(WalTest, PushFetchRoundTripAndObjectsRevealNothing) {
  std::string seg = random_bytes(1 << 20, 1) + std::string(1 << 20, 'W');  // a recycled tail compresses
  ASSERT_EQ(*pg::push(*be_, key_, "000000010000000000000001", as_bytes(seg)), pg::PushOutcome::kStored);
  auto back = pg::fetch(*be_, key_, "000000010000000000000001");
  ASSERT_OK(back);
  EXPECT_TRUE(std::string(back->begin(), back->end()) == seg);
  std::string stored = read_file(repo_dir() + "/wal/000000010000000000000001");
  EXPECT_LT(stored.size(), seg.size() * 3 / 4) << "the repeated tail should have been compressed";
  EXPECT_EQ(stored.find(seg.substr(0, 64)), std::string::npos) << "plaintext visible in the object";
  // Renamed in storage: authentication fails (the name is bound into the sealed record).
  write_file(repo_dir() + "/wal/000000010000000000000002", stored, 0444);
  auto renamed = pg::fetch(*be_, key_, "000000010000000000000002");
  ASSERT_FALSE(renamed.ok());
  EXPECT_EQ(renamed.error().code(), Error::Code::kCorrupt);
  auto missing = pg::fetch(*be_, key_, "000000010000000000000009");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Error::Code::kNotFound);
}

// fetch_view (wal-fetch and the prefetch): the same contents as fetch, a compressed segment
// from the scratch and a stored one from the object itself, and the same refusals.
TEST_F(WalTest, FetchViewOpensInPlaceWithTheSameContentsAndRefusals) {
  const std::string packed = std::string(9 << 20, 'W') + random_bytes(1 << 20, 5);  // compresses
  const std::string raw = random_bytes(1 << 20, 6);                                    // stored as is
  ASSERT_EQ(*pg::push(*be_, key_, "000000010000000000000001", as_bytes(packed)), pg::PushOutcome::kStored);
  ASSERT_EQ(*pg::push(*be_, key_, "000000010000000000000002", as_bytes(raw)), pg::PushOutcome::kStored);
  Bytes object;
  Scratch scratch;
  auto a = pg::fetch_view(*be_, key_, "000000010000000000000001", object, scratch);
  ASSERT_OK(a);
  EXPECT_TRUE(std::string(a->begin(), a->end()) == packed);
  EXPECT_EQ(a->data(), scratch.reserve(0)) << "a compressed segment decompresses into the scratch";
  EXPECT_GE(scratch.capacity(), packed.size());
  auto b = pg::fetch_view(*be_, key_, "000000010000000000000002", object, scratch);
  ASSERT_OK(b);
  EXPECT_TRUE(std::string(b->begin(), b->end()) == raw);
  EXPECT_TRUE(b->data() >= object.data() && b->data() < object.data() + object.size())
      << "a stored segment is read where it was decrypted";
  // Renamed, or one byte flipped: refused as corrupt, as fetch() refuses them.
  const std::string stored = read_file(repo_dir() + "/wal/000000010000000000000001");
  write_file(repo_dir() + "/wal/000000010000000000000003", stored, 0444);
  std::string flipped = stored;
  flipped[flipped.size() / 2] ^= 0x40;
  write_file(repo_dir() + "/wal/000000010000000000000004", flipped, 0444);
  write_file(repo_dir() + "/wal/000000010000000000000005", stored.substr(0, 50), 0444);
  for (const char* n : {"000000010000000000000003", "000000010000000000000004", "000000010000000000000005"}) {
    auto bad = pg::fetch_view(*be_, key_, n, object, scratch);
    ASSERT_FALSE(bad.ok()) << n;
    EXPECT_EQ(bad.error().code(), Error::Code::kCorrupt) << n << ": " << bad.error().message();
  }
  auto missing = pg::fetch_view(*be_, key_, "000000010000000000000009", object, scratch);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Error::Code::kNotFound);
}

TEST_F(WalTest, IdenticalRePushSucceedsAndADifferentOneFailsLoudly) {
  const std::string name = "000000010000000000000005";
  std::string seg = random_bytes(300000, 2);
  ASSERT_EQ(*pg::push(*be_, key_, name, as_bytes(seg)), pg::PushOutcome::kStored);
  ASSERT_EQ(*pg::push(*be_, key_, name, as_bytes(seg)), pg::PushOutcome::kAlreadyIdentical);
  std::string other = seg;
  other[1234] ^= 1;
  auto conflict = pg::push(*be_, key_, name, as_bytes(other));
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(conflict.error().code(), Error::Code::kAlreadyExists);
  EXPECT_NE(conflict.error().message().find("different contents"), std::string::npos) << conflict.error().message();
  auto back = pg::fetch(*be_, key_, name);
  ASSERT_OK(back);
  EXPECT_TRUE(std::string(back->begin(), back->end()) == seg) << "the archived file was replaced";
}

TEST_F(WalTest, KeyFileIsPrivateAndBoundToItsRepository) {
  const std::string kf = dir_ + "/wal.key";
  ASSERT_OK(pg::write_wal_key_file(kf, key_, false));
  struct stat st;
  ASSERT_EQ(stat(kf.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = pg::write_wal_key_file(kf, key_, false);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Error::Code::kAlreadyExists);
  auto k = pg::read_wal_key_file(kf);
  ASSERT_OK(k);
  EXPECT_EQ(k->repository, fingerprint_);
  EXPECT_TRUE(std::equal(k->key.view().begin(), k->key.view().end(), key_.key.view().begin()));
  // What the file opens: WAL, sealed by the key derived from the master key (and vice versa).
  std::string seg = random_bytes(5000, 3);
  ASSERT_OK(pg::push(*be_, *k, "00000002.history", as_bytes(seg)));
  auto back = pg::fetch(*be_, key_, "00000002.history");
  ASSERT_OK(back);
  // Readable by others: refused, with the fix.
  chmod(kf.c_str(), 0644);
  auto open = pg::read_wal_key_file(kf);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.error().message().find("chmod 600"), std::string::npos) << open.error().message();
  // Another repository's key is refused before anything is written.
  auto other = init_repo(dir_ + "/other");
  ASSERT_TRUE(other);
  auto other_key = other->wal_key().value();
  auto wrong = pg::push(*be_, other_key, "000000010000000000000007", as_bytes(seg));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message().find("another repository"), std::string::npos);
  EXPECT_FALSE(exists(repo_dir() + "/wal/000000010000000000000007"));
}

// derive_wal_key never substitutes another key generation or an empty salt: either would
// derive a key that opens nothing this repository wrote, and the failure would surface later
// as a puzzling "authentication failed".
TEST_F(WalTest, DeriveWalKeyRefusesUnknownGenerationAndBadFingerprint) {
  auto r = repo::Repository::open(be_, kPw);
  ASSERT_OK(r);
  const repo::MasterKey& m = (*r)->master_key();
  ASSERT_EQ(m.current_generation, 0u);
  auto current = repo::derive_wal_key(m, fingerprint_, 0u);
  ASSERT_OK(current);
  EXPECT_EQ(current->generation, 0u);
  EXPECT_TRUE(std::equal(current->key.view().begin(), current->key.view().end(), key_.key.view().begin()));

  auto unknown = repo::derive_wal_key(m, fingerprint_, 7u);
  ASSERT_FALSE(unknown.ok()) << "derived a key labelled generation 7 from another generation";
  EXPECT_EQ(unknown.error().code(), Error::Code::kCorrupt);
  EXPECT_NE(unknown.error().message().find("no key generation 7 (it holds 0)"), std::string::npos)
      << unknown.error().message();

  for (const std::string& bad : {std::string(), std::string("zz"), fingerprint_.substr(0, 62),
                                fingerprint_ + "00", "x" + fingerprint_.substr(1)}) {
    SCOPED_TRACE("fingerprint '" + bad + "'");
    auto k = repo::derive_wal_key(m, bad);
    ASSERT_FALSE(k.ok()) << "derived a WAL key from a bad salt";
    EXPECT_EQ(k.error().code(), Error::Code::kInvalidArgument);
    EXPECT_NE(k.error().message().find("not 64 hex digits"), std::string::npos) << k.error().message();
  }

  // Through check: a WAL object whose header names generation 7 is reported as such, not as
  // an authentication failure under a substituted generation.
  const std::string name = "000000010000000000000003";
  ASSERT_OK(pg::push(*be_, key_, name, as_bytes(random_bytes(9000, 4))));
  const std::string victim = repo_dir() + "/wal/" + name;
  std::string obj = read_file(victim);
  ASSERT_EQ(obj[8], 0);
  obj[8] = 7;  // key_generation u32le at offset 8
  chmod(victim.c_str(), 0644);
  write_file(victim, obj, 0444);
  RunResult c = cli(repo_dir(), {"check", "--read-data"});
  EXPECT_EQ(c.code, 1) << describe(c);
  EXPECT_NE(c.out.find("WAL file " + name + ": the master key has no key generation 7"), std::string::npos)
      << c.out;
}

// The commands as PostgreSQL runs them: archive_command 'haven … wal-push %p' from the data
// directory, restore_command 'haven … wal-fetch %f %p'.
TEST_F(WalTest, WalPushAndFetchCommands) {
  const std::string kf = dir_ + "/wal.key";
  RunResult k = cli(repo_dir(), {"pg", "archive-key", "--output", kf});
  ASSERT_EQ(k.code, 0) << describe(k);
  make_dir(dir_ + "/pg_wal");
  const std::string seg_path = dir_ + "/pg_wal/000000010000000000000010";
  std::string seg = random_bytes(1 << 20, 4);
  write_file(seg_path, seg);
  // No password in the environment: the key file is all it needs.
  RunResult p = run_haven({"-r", repo_dir(), "wal-push", "--wal-key-file", kf, seg_path});
  ASSERT_EQ(p.code, 0) << describe(p);
  EXPECT_EQ(p.err, "");
  RunResult again = run_haven({"-r", repo_dir(), "wal-push", "--wal-key-file", kf, seg_path});
  EXPECT_EQ(again.code, 0) << describe(again);
  RunResult f = run_haven({"-r", repo_dir(), "wal-fetch", "--wal-key-file", kf, "000000010000000000000010",
                           dir_ + "/RECOVERYXLOG"});
  ASSERT_EQ(f.code, 0) << describe(f);
  EXPECT_TRUE(read_file(dir_ + "/RECOVERYXLOG") == seg);
  // A damaged copy of it under another segment's name: an error naming it, and no file where
  // PostgreSQL would read one.
  std::string obj = read_file(repo_dir() + "/wal/000000010000000000000010");
  obj[obj.size() / 2] ^= 0x40;
  write_file(repo_dir() + "/wal/000000010000000000000012", obj, 0444);
  RunResult damaged = run_haven({"-r", repo_dir(), "wal-fetch", "--wal-key-file", kf, "000000010000000000000012",
                                 dir_ + "/RECOVERYXLOG3"});
  EXPECT_NE(damaged.code, 0) << describe(damaged);
  EXPECT_NE(damaged.err.find("000000010000000000000012: authentication failed"), std::string::npos) << describe(damaged);
  EXPECT_FALSE(exists(dir_ + "/RECOVERYXLOG3"));
  ASSERT_EQ(::unlink((repo_dir() + "/wal/000000010000000000000012").c_str()), 0);
  // A file PostgreSQL asks for beyond the archive: exit 1, not a word.
  RunResult none = run_haven({"-r", repo_dir(), "wal-fetch", "--wal-key-file", kf, "000000010000000000000011",
                              dir_ + "/RECOVERYXLOG2"});
  EXPECT_EQ(none.code, 1);
  EXPECT_EQ(none.err, "");
  EXPECT_FALSE(exists(dir_ + "/RECOVERYXLOG2"));
  // With the password instead of the key file, the same object opens.
  RunResult pw = cli(repo_dir(), {"wal-fetch", "000000010000000000000010", dir_ + "/viapw"});
  ASSERT_EQ(pw.code, 0) << describe(pw);
  EXPECT_TRUE(read_file(dir_ + "/viapw") == seg);
  // Bad input: one clear message, usage exit, nothing stored.
  write_file(dir_ + "/notwal", "x");
  RunResult bad = run_haven({"-r", repo_dir(), "wal-push", "--wal-key-file", kf, dir_ + "/notwal"});
  EXPECT_EQ(bad.code, 2) << describe(bad);
  EXPECT_NE(bad.err.find("not a WAL file name"), std::string::npos) << describe(bad);
  RunResult nokey = run_haven({"-r", repo_dir(), "wal-push", "--wal-key-file", dir_ + "/missing.key", seg_path});
  EXPECT_NE(nokey.code, 0);
  EXPECT_NE(nokey.err.find("missing.key"), std::string::npos) << describe(nokey);
  EXPECT_EQ(list_dir(repo_dir() + "/wal"), std::vector<std::string>{"000000010000000000000010"});
}

// `haven check` covers the WAL archive: a gap in a timeline is a notice naming the missing
// segment; with --read-data every WAL file is authenticated and a damaged one is damage.
TEST_F(WalTest, CheckReadsTheWalArchive) {
  for (const char* n : {"000000010000000000000001", "000000010000000000000002", "000000010000000000000004"}) {
    ASSERT_OK(pg::push(*be_, key_, n, as_bytes(random_bytes(70000, n[23]))));
  }
  RunResult c = cli(repo_dir(), {"check"});
  EXPECT_EQ(c.code, 0) << describe(c);
  EXPECT_NE(c.out.find("3 WAL file(s) archived"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("gap: 1 segment(s) missing from 000000010000000000000003"), std::string::npos) << c.out;
  RunResult rd = cli(repo_dir(), {"check", "--read-data"});
  EXPECT_EQ(rd.code, 0) << describe(rd);
  EXPECT_NE(rd.out.find("3 read and authenticated"), std::string::npos) << rd.out;
  // One flipped byte in the middle of an archived segment.
  const std::string victim = repo_dir() + "/wal/000000010000000000000002";
  std::string obj = read_file(victim);
  obj[obj.size() / 2] ^= 0x40;
  chmod(victim.c_str(), 0644);
  write_file(victim, obj, 0444);
  RunResult bad = cli(repo_dir(), {"check", "--read-data"});
  EXPECT_EQ(bad.code, 1) << describe(bad);
  EXPECT_NE(bad.out.find("error: WAL file 000000010000000000000002: WAL file 000000010000000000000002: authentication failed"),
            std::string::npos) << bad.out;
  RunResult structure = cli(repo_dir(), {"check"});
  EXPECT_EQ(structure.code, 0) << "without --read-data the contents are not read:\n" << describe(structure);
}

// How fast archive_command can go: one process per 16 MiB segment, with the key file (no
// Argon2id). Printed for the README; asserted only loosely (a memory-hard KDF per call would
// be far below 4 per second).
TEST_F(WalTest, WalPushKeepsUpSegmentsPerSecond) {
  const std::string kf = dir_ + "/wal.key";
  ASSERT_EQ(cli(repo_dir(), {"pg", "archive-key", "--output", kf}).code, 0);
  make_dir(dir_ + "/pg_wal");
  const int n = 8;
  for (int i = 0; i < n; i++) {
    char name[32];
    std::snprintf(name, sizeof name, "0000000100000000000000%02X", 0x20 + i);
    // Half random (written pages), half zeros (a segment's unused tail).
    write_file(dir_ + "/pg_wal/" + name, random_bytes(8 << 20, 100 + i) + std::string(8 << 20, '\0'));
  }
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; i++) {
    char name[32];
    std::snprintf(name, sizeof name, "0000000100000000000000%02X", 0x20 + i);
    RunResult p = run_haven({"-r", repo_dir(), "wal-push", "--wal-key-file", kf, dir_ + "/pg_wal/" + name});
    ASSERT_EQ(p.code, 0) << describe(p);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ wal    ] %d segments of 16 MiB pushed in %.2f s: %.1f segments/s\n", n, s, n / s);
  EXPECT_GT(n / s, 4.0);
}

}  // namespace
}  // namespace haven

namespace haven {
namespace {

// A relation page's header tells whether it changed since an LSN; a page whose header is not
// a valid one (all zeros, another page size, bounds out of order) counts as changed.
TEST(PageChangedSince, TheHeaderLsnDecidesAndAnInvalidHeaderCountsAsChanged) {
  auto page = [](uint64_t lsn, uint16_t lower, uint16_t upper, uint16_t special, uint16_t size_version) {
    Bytes p(8192, 0);
    const uint32_t hi = static_cast<uint32_t>(lsn >> 32), lo = static_cast<uint32_t>(lsn);
    std::memcpy(p.data(), &hi, 4);
    std::memcpy(p.data() + 4, &lo, 4);
    std::memcpy(p.data() + 12, &lower, 2);
    std::memcpy(p.data() + 14, &upper, 2);
    std::memcpy(p.data() + 16, &special, 2);
    std::memcpy(p.data() + 18, &size_version, 2);
    return p;
  };
  const uint64_t since = 0x100002000;
  EXPECT_FALSE(pg::page_changed_since(page(since - 1, 40, 8000, 8192, 8192 | 4), since));
  EXPECT_TRUE(pg::page_changed_since(page(since, 40, 8000, 8192, 8192 | 4), since));
  EXPECT_TRUE(pg::page_changed_since(page(since + 0x100000000, 40, 8000, 8192, 8192 | 4), since));
  EXPECT_TRUE(pg::page_changed_since(Bytes(8192, 0), since)) << "a new (zero) page";
  EXPECT_TRUE(pg::page_changed_since(page(1, 40, 8000, 8192, 4096 | 4), since)) << "another page size";
  EXPECT_TRUE(pg::page_changed_since(page(1, 9000, 8000, 8192, 8192 | 4), since)) << "lower past upper";
  EXPECT_TRUE(pg::page_changed_since(page(1, 40, 8000, 9000, 8192 | 4), since)) << "special past the page";
  EXPECT_TRUE(pg::page_changed_since(page(1, 10, 8000, 8192, 8192 | 4), since)) << "lower inside the header";
}

}  // namespace
}  // namespace haven

namespace haven {
namespace {

// CRC-32C's check value ("123456789" -> 0xE3069283), in one piece and in uneven pieces (the
// hardware path takes 8 bytes at a time, then single bytes).
TEST(Crc32c, TheCheckValueInOnePieceAndInPieces) {
  const std::string s = "123456789";
  auto view = [](const std::string& x) { return ByteView(reinterpret_cast<const uint8_t*>(x.data()), x.size()); };
  EXPECT_EQ(pg::crc32c_final(pg::crc32c_update(pg::crc32c_init(), view(s))), 0xE3069283u);
  uint32_t c = pg::crc32c_init();
  c = pg::crc32c_update(c, view(s.substr(0, 2)));
  c = pg::crc32c_update(c, view(s.substr(2)));
  EXPECT_EQ(pg::crc32c_final(c), 0xE3069283u);
}

}  // namespace
}  // namespace haven

// Waiting for a restored cluster's recovery (haven pg restore --start), on a fake data directory:
// only the files the wait looks at (recovery.signal, postmaster.pid).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "pg/server.h"

namespace haven::pg {
namespace {

class ServerWaitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/haven-pg-wait-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // postmaster.pid as PostgreSQL writes it: the status on line 8, padded to 8 characters.
  void write_pid(const std::string& status) {
    std::ofstream(dir_ + "/postmaster.pid.tmp")
        << "4242\n" << dir_ << "\n1764650000\n5432\n/tmp\n\n  5432001     32768\n"
        << status << std::string(8 - status.size(), ' ') << "\n";
    std::filesystem::rename(dir_ + "/postmaster.pid.tmp", dir_ + "/postmaster.pid");
  }

  std::string dir_;
};

// PostgreSQL removes recovery.signal before the end-of-recovery checkpoint; until that is done
// and the postmaster says "ready", the server is still read-only. 'pg restore --start' said
// "accepts writes" in that window (found by the PITR test under ASan, where pg_is_in_recovery()
// right after the restore still answered true).
TEST_F(ServerWaitTest, TheSignalFileGoneIsNotEnoughTheServerMustBeReady) {
  const std::string& dir = dir_;

  // Hot standby, signal file already removed: still recovering.
  write_pid("standby");
  auto st = wait_for_recovery(dir, std::chrono::seconds(1));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Error::Code::kTransient) << st.error().message();

  // "ready" but the signal file still there: not finished either.
  write_pid("ready");
  std::ofstream(dir + "/recovery.signal") << "";
  st = wait_for_recovery(dir, std::chrono::seconds(1));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Error::Code::kTransient) << st.error().message();

  // The promotion as it happens: the file goes, then the postmaster becomes ready.
  write_pid("standby");
  std::thread promote([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::filesystem::remove(dir + "/recovery.signal");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    write_pid("ready");
  });
  const auto t0 = std::chrono::steady_clock::now();
  st = wait_for_recovery(dir, std::chrono::seconds(30));
  const auto waited = std::chrono::steady_clock::now() - t0;
  promote.join();
  EXPECT_TRUE(st.ok()) << st.error().message();
  EXPECT_GE(waited, std::chrono::milliseconds(500));

  // The server gone: an error at once, not a wait until the timeout.
  std::filesystem::remove(dir + "/postmaster.pid");
  st = wait_for_recovery(dir, std::chrono::seconds(30));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Error::Code::kIo) << st.error().message();
}

}  // namespace
}  // namespace haven::pg

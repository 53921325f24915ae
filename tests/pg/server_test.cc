// Waiting for a restored cluster's recovery (haven pg restore --start), on a fake data directory:
// only the files the wait looks at (recovery.signal, postmaster.pid, global/pg_control).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstring>
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

  // global/pg_control's first fields: system identifier, two versions, the cluster state.
  void write_control(uint32_t state) {
    std::filesystem::create_directories(dir_ + "/global");
    char buf[296] = {};
    std::memcpy(buf + 16, &state, sizeof(state));
    std::ofstream(dir_ + "/global/pg_control.tmp", std::ios::binary).write(buf, sizeof(buf));
    std::filesystem::rename(dir_ + "/global/pg_control.tmp", dir_ + "/global/pg_control");
  }
  static constexpr uint32_t kInArchiveRecovery = 5, kInProduction = 6;

  std::string dir_;
};

// PostgreSQL removes recovery.signal before the end-of-recovery checkpoint; until that is done
// and the postmaster says "ready", the server is still read-only. 'pg restore --start' said
// "accepts writes" in that window (found by the PITR test under ASan, where pg_is_in_recovery()
// right after the restore still answered true).
TEST_F(ServerWaitTest, TheSignalFileGoneIsNotEnoughTheServerMustBeReady) {
  const std::string& dir = dir_;

  // Hot standby, signal file already removed: still recovering.
  write_control(kInArchiveRecovery);
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

  // PostgreSQL 15 in hot standby says "ready" already; with the signal file gone and the
  // end-of-recovery checkpoint still running, pg_control still says archive recovery: the
  // window the PITR test under ASan hit a second time.
  write_pid("ready");
  std::filesystem::remove(dir + "/recovery.signal");
  st = wait_for_recovery(dir, std::chrono::seconds(1));
  ASSERT_FALSE(st.ok()) << "returned while pg_control still said archive recovery";
  EXPECT_EQ(st.error().code(), Error::Code::kTransient) << st.error().message();

  // The promotion as it happens: the file goes, the postmaster is ready, then pg_control says
  // in production.
  write_pid("standby");
  std::ofstream(dir + "/recovery.signal") << "";
  std::thread promote([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::filesystem::remove(dir + "/recovery.signal");
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    write_pid("ready");
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    write_control(kInProduction);
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

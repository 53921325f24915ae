// Bandwidth and connection limits (storage/limit.h) around a real local backend.
#include "storage/limit.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "storage/local.h"

namespace haven::storage {
namespace {

// Counts calls in flight (and makes each last a little), around the real backend.
class InFlight : public BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  Result<ObjectInfo> stat(const ObjectName& n) override {
    int now = ++active_;
    int seen = max_.load();
    while (now > seen && !max_.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto r = inner().stat(n);
    --active_;
    return r;
  }
  std::atomic<int> active_{0}, max_{0};
};

class LimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/haven-limit-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    local_ = std::make_shared<LocalBackend>(dir_ + "/repo");
    ASSERT_TRUE(local_->create().ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static std::string name(int i) {
    char b[65];
    std::snprintf(b, sizeof b, "%064x", i + 1);
    return b;
  }
  double seconds_to_save(Backend& be, int first, int count, size_t size) {
    Bytes data(size, 7);
    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < 2; t++) {
      ts.emplace_back([&, t] {
        for (int i = t; i < count; i += 2) EXPECT_TRUE(be.save({ObjectType::kData, name(first + i)}, data).ok());
      });
    }
    for (auto& t : ts) t.join();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  std::string dir_;
  std::shared_ptr<LocalBackend> local_;
};

TEST_F(LimitTest, BandwidthIsPacedAcrossThreads) {
  // 80 Mbit/s = 10 MB/s: 4 MiB from two threads cannot take less than ~0.42 s (the first
  // transfer's own slot included), however fast the disk is.
  LimitBackend limited(local_, Limits{80, 0});
  double limited_s = seconds_to_save(limited, 0, 4, 1 << 20);
  EXPECT_GE(limited_s, 0.40) << "4 MiB at 10 MB/s went through in " << limited_s << " s";
  EXPECT_LT(limited_s, 3.0);
  double free_s = seconds_to_save(*local_, 100, 4, 1 << 20);
  EXPECT_LT(free_s, limited_s) << "unlimited saves should be faster than paced ones";
  // Loads are paced too.
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 2; i++) ASSERT_TRUE(limited.load({ObjectType::kData, name(i)}, 0, 0).ok());
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(load_s, 0.19) << "2 MiB read at 10 MB/s in " << load_s << " s";
}

TEST_F(LimitTest, ConnectionsCapConcurrentCalls) {
  ASSERT_TRUE(local_->save({ObjectType::kIndex, name(1)}, Bytes(10, 1)).ok());
  auto counting = std::make_shared<InFlight>(local_);
  LimitBackend limited(counting, Limits{0, 2});
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; t++) {
    ts.emplace_back([&] {
      for (int i = 0; i < 3; i++) EXPECT_TRUE(limited.stat({ObjectType::kIndex, name(1)}).ok());
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(counting->max_.load(), 2) << "8 threads through a 2-connection limit";
  // Without the limit the same load runs wider.
  auto counting2 = std::make_shared<InFlight>(local_);
  std::vector<std::thread> ts2;
  for (int t = 0; t < 8; t++) ts2.emplace_back([&] { (void)counting2->stat({ObjectType::kIndex, name(1)}); });
  for (auto& t : ts2) t.join();
  EXPECT_GT(counting2->max_.load(), 2);
}

TEST_F(LimitTest, BadLimitsAreRefusedNamingTheOption) {
  auto bad = validate_limits(Limits{-1, 0});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("--bandwidth-limit-mbps"), std::string::npos);
  auto bad2 = validate_limits(Limits{0, -3});
  ASSERT_FALSE(bad2.ok());
  EXPECT_NE(bad2.error().message().find("--connections"), std::string::npos);
  EXPECT_TRUE(validate_limits(Limits{100, 4}).ok());
  EXPECT_TRUE(validate_limits(Limits{}).ok());
}

}  // namespace
}  // namespace haven::storage

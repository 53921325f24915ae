// Health checks of a real repository on disk: reachable, writable, locks, capacity and the day's
// share of read-data; and what each kind of trouble turns into (a flipped byte in a pack, a lock
// object that blocks locking, a repository that is gone), recorded on the location's row.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <utime.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "crypto/crypto.h"
#include "jobs/service.h"
#include "monitor/service.h"
#include "ops/keys.h"
#include "storage/backend.h"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"

namespace haven::monitor {
namespace {

using namespace std::chrono_literals;
constexpr const char* kPw = "health-test-pw";
constexpr TimeNs kDay = 86400'000'000'000LL;

class MonitorHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::init();
    char tmpl[] = "/tmp/haven-health-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto be = storage::open_backend(dir_ + "/repo");
    ASSERT_TRUE(be.ok());
    ops::InitRequest init;
    init.password = kPw;
    init.kdf = {8, 1};
    ASSERT_TRUE(ops::init(*be, init).ok());
    write_file(dir_ + "/pass", std::string(kPw) + "\n");
    make_dir(dir_ + "/src");
    write_file(dir_ + "/src/a.bin", random_bytes(600 << 10, 11));
    auto cat = catalog::open_sqlite_catalog(dir_ + "/catalog.db");
    ASSERT_TRUE(cat.ok()) << cat.error().message();
    catalog_ = std::move(*cat);
  }
  void TearDown() override {
    monitor_.reset();
    jobs_.reset();
    catalog_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start(const std::string& location_extra = "", const std::string& repository = "") {
    std::string text = "server:\n  catalog: " + dir_ + "/catalog.db\nlocations:\n"
                       "  - {name: local, repository: " + (repository.empty() ? dir_ + "/repo" : repository) +
                       ", password_file: " + dir_ + "/pass" + location_extra + "}\n"
                       "policies:\n  - {name: docs, resource_type: files, sources: [" + dir_ +
                       "/src], location: local, schedules: []}\nmonitoring:\n  read_data_days: 1\n";
    auto cfg = config::parse_config(text, "haven.yaml", [](const std::string&) { return std::nullopt; });
    ASSERT_TRUE(cfg.ok()) << cfg.error().message();
    auto shared = std::make_shared<const config::Config>(std::move(*cfg));
    jobs::ServiceOptions so;
    so.clock = [this] { return clock_.load(); };
    jobs_ = std::make_unique<jobs::Service>(*catalog_, sink_, so);
    ASSERT_TRUE(jobs_->apply_config(shared).ok());
    MonitorOptions mo;
    mo.clock = [this] { return clock_.load(); };
    mo.health_checks = false;
    mo.note = [this](const std::string& kind, const nlohmann::json& payload) {
      std::lock_guard<std::mutex> g(mu_);
      notes_.emplace_back(kind, payload);
    };
    monitor_ = std::make_unique<MonitorService>(*catalog_, jobs_.get(), mo);
    ASSERT_TRUE(monitor_->apply_config(shared).ok());
  }
  void backup() {
    auto p = catalog_->get_policy_by_name("docs");
    ASSERT_TRUE(p.ok());
    auto e = jobs_->execute(p->id, {});
    ASSERT_TRUE(e.ok()) << e.error().message();
    jobs_->wait_idle();
    auto done = catalog_->get_execution(e->id);
    ASSERT_EQ(done->status, catalog::ExecStatus::kCompleted) << done->error_message.value_or("");
  }
  int64_t pack_bytes() {
    int64_t n = 0;
    for (const auto& f : fs::recursive_directory_iterator(dir_ + "/repo/data")) {
      if (f.is_regular_file()) n += static_cast<int64_t>(f.file_size());
    }
    return n;
  }

  std::string dir_;
  std::unique_ptr<catalog::Catalog> catalog_;
  NullSink sink_;
  std::unique_ptr<jobs::Service> jobs_;
  std::unique_ptr<MonitorService> monitor_;
  std::atomic<TimeNs> clock_{1796205000'000'000'000LL};
  std::mutex mu_;
  std::vector<std::pair<std::string, nlohmann::json>> notes_;
};

TEST_F(MonitorHealthTest, AHealthyRepositoryIsReachableWritableAndItsDataReads) {
  start();
  backup();
  auto h = monitor_->health_check("local");
  ASSERT_TRUE(h.ok()) << h.error().message();
  EXPECT_TRUE(h->reachable);
  EXPECT_TRUE(h->writable);
  EXPECT_EQ(h->locks, 0);  // the lock it took is gone again
  EXPECT_EQ(h->stale_locks, 0);
  EXPECT_EQ(h->read_data_subset, "1/1");  // read_data_days 1: all of it, once a day
  EXPECT_EQ(h->read_data_problems, 0);
  ASSERT_TRUE(h->capacity_bytes && h->used_bytes && h->used_percent);  // statvfs of a local disk
  EXPECT_GT(*h->capacity_bytes, *h->used_bytes);
  EXPECT_EQ(h->status, catalog::HealthStatus::kHealthy) << h->to_json().dump();
  EXPECT_TRUE(h->problems.empty());
  auto row = catalog_->get_location_by_name("local");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->last_health_check, clock_.load());
  EXPECT_EQ(row->health_status, catalog::HealthStatus::kHealthy);
  ASSERT_TRUE(monitor_->health("local"));
  std::lock_guard<std::mutex> g(mu_);
  ASSERT_FALSE(notes_.empty());
  EXPECT_EQ(notes_.back().first, "health-check:completed");
  EXPECT_EQ(notes_.back().second["reachable"], true);
}

TEST_F(MonitorHealthTest, AFlippedByteInAPackIsFoundByTheDaysReadDataShareOncePerDay) {
  start();
  backup();
  ASSERT_TRUE(monitor_->health_check("local").ok());
  // Damage the largest pack.
  std::string victim;
  uintmax_t size = 0;
  for (const auto& f : fs::recursive_directory_iterator(dir_ + "/repo/data")) {
    if (f.is_regular_file() && f.file_size() > size) {
      size = f.file_size();
      victim = f.path();
    }
  }
  ASSERT_FALSE(victim.empty());
  std::string bytes = read_file(victim);
  bytes[bytes.size() / 2] ^= 0x5a;
  ::chmod(victim.c_str(), 0644);
  write_file(victim, bytes);
  // The same day: the data share was read already; nothing reads it again.
  clock_ += kDay / 2;
  auto same_day = monitor_->health_check("local");
  ASSERT_TRUE(same_day.ok());
  EXPECT_FALSE(same_day->read_data_subset);
  EXPECT_EQ(same_day->status, catalog::HealthStatus::kHealthy);
  // The next day it is read again and the damage found.
  clock_ += kDay;
  auto h = monitor_->health_check("local");
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(h->read_data_subset);
  EXPECT_GT(h->read_data_problems.value_or(0), 0);
  EXPECT_EQ(h->status, catalog::HealthStatus::kCritical) << h->to_json().dump();
  ASSERT_FALSE(h->problems.empty());
  EXPECT_NE(h->problems[0].find("haven check --read-data"), std::string::npos) << h->problems[0];
  EXPECT_EQ(catalog_->get_location_by_name("local")->health_status, catalog::HealthStatus::kCritical);
}

TEST_F(MonitorHealthTest, AJunkLockBlocksWritingAndAnOldOneCountsAsStale) {
  start();
  backup();
  const std::string lock = dir_ + "/repo/locks/" + std::string(64, 'a');
  write_file(lock, "not a lock object");
  struct utimbuf old{::time(nullptr) - 3600, ::time(nullptr) - 3600};
  ASSERT_EQ(::utime(lock.c_str(), &old), 0);
  auto h = monitor_->health_check("local");
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(h->reachable);
  EXPECT_FALSE(h->writable);
  EXPECT_EQ(h->locks, 1);
  EXPECT_EQ(h->stale_locks, 1);
  EXPECT_EQ(h->status, catalog::HealthStatus::kCritical) << h->to_json().dump();
  std::string all;
  for (const auto& p : h->problems) all += p + "\n";
  EXPECT_NE(all.find("not writable"), std::string::npos) << all;
  EXPECT_NE(all.find("stale lock"), std::string::npos) << all;
}

TEST_F(MonitorHealthTest, ARepositoryThatIsGoneIsUnreachable) {
  start("", dir_ + "/nowhere");
  auto h = monitor_->health_check("local");
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->reachable);
  EXPECT_FALSE(h->writable);
  EXPECT_EQ(h->status, catalog::HealthStatus::kCritical);
  ASSERT_FALSE(h->problems.empty());
  EXPECT_EQ(h->problems[0].rfind("unreachable: ", 0), 0u) << h->problems[0];
  EXPECT_EQ(monitor_->health_check("elsewhere").error().code(), Error::Code::kNotFound);
}

TEST_F(MonitorHealthTest, ACapacityGivenInGigabytesIsMeasuredAgainstThePacks) {
  start(", capacity_gb: 1");
  backup();
  auto h = monitor_->health_check("local");
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(h->used_bytes && h->capacity_bytes && h->used_percent);
  EXPECT_EQ(*h->capacity_bytes, 1'000'000'000);
  EXPECT_EQ(*h->used_bytes, pack_bytes());
  EXPECT_GT(*h->used_bytes, 500 << 10);  // the 600 KiB of random data, stored
  EXPECT_NEAR(*h->used_percent, 100.0 * static_cast<double>(pack_bytes()) / 1e9, 1e-9);
}

// The configuration's enumerations and the catalog's (or the channels') are mapped by position:
// they must name the same things in the same order.
TEST(MonitorEnums, ConfigAndCatalogSpellEveryMonitorTypeAndChannelAlike) {
  for (int i = 0; i <= static_cast<int>(config::MonitorKind::kDrDrill); i++) {
    const auto k = static_cast<config::MonitorKind>(i);
    EXPECT_EQ(catalog::to_string(monitor_type(k)), config::name(k));
  }
  EXPECT_EQ(catalog::all_values<catalog::MonitorType>().size(),
            static_cast<size_t>(config::MonitorKind::kDrDrill) + 1);
  for (int i = 0; i <= static_cast<int>(config::ChannelKind::kCommand); i++) {
    config::AlertChannel c;
    c.type = static_cast<config::ChannelKind>(i);
    EXPECT_EQ(std::string(channel_type_name(channel_config(c).type)), config::name(c.type));
  }
  EXPECT_EQ(format_span(35.9), "35 s");
  EXPECT_EQ(format_span(2400), "40 min");
  EXPECT_EQ(format_span(7500), "2 h 05 min");
  EXPECT_EQ(format_span(3 * 86400 + 4 * 3600), "3 d 4 h");
  EXPECT_EQ(format_span(-5), "0 s");
}

}  // namespace
}  // namespace haven::monitor

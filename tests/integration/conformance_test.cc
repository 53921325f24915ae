// One conformance suite for the storage contract (src/storage/backend.h), run against every
// backend with the same cases: the local backend, and the retry decorator over a real local
// backend that a fault injector makes fail 10% of calls (before the call, or after it took
// effect), stall, or cut listings short; S3 against a real s3rver and Azure Blob against a real
// Azurite, each started once on loopback for this suite (skipped if not installed).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <set>
#include <string>

#include "integration/azurite_server.h"
#include "integration/s3_server.h"
#include "storage/azure.h"
#include "storage/backend.h"
#include "storage/local.h"
#include "storage/retry.h"
#include "storage/s3.h"
#include "support/fault_backend.h"

namespace haven {
namespace {

using storage::Backend;
using storage::ObjectInfo;
using storage::ObjectName;
using storage::ObjectType;

struct ConfCase {
  std::string name;
  std::function<std::shared_ptr<Backend>(const std::string& dir)> make;
  // Through retries, removing a missing object after a try whose response was lost cannot be
  // told from removing it: both report success (storage/retry.h).
  bool retried = false;
};
void PrintTo(const ConfCase& c, std::ostream* os) { *os << c.name; }

std::string conf_tmpdir() {
  char tmpl[] = "/tmp/haven-conf-XXXXXX";
  return ::mkdtemp(tmpl);
}

std::shared_ptr<Backend> faulty_local(const std::string& dir) {
  testing::FaultPlan p;
  p.fail_before = 0.05;
  p.fail_after = 0.05;
  p.stall = 0.05;
  p.stall_time = std::chrono::milliseconds(5);
  p.seed = 42;
  auto faults = std::make_shared<testing::FaultBackend>(std::make_shared<storage::LocalBackend>(dir), p);
  storage::RetryPolicy rp;
  rp.base_delay = std::chrono::milliseconds(1);
  rp.max_delay = std::chrono::milliseconds(5);
  rp.max_attempts = 30;  // 10% faults: 30 tries in a row never all fail in practice
  return std::make_shared<storage::RetryBackend>(faults, rp);
}

// One server per kind for the whole suite; every test gets its own bucket or container.
int conf_unique() {
  static std::atomic<int> n{0};
  return ++n;
}

std::shared_ptr<Backend> s3_backend(const std::string&) {
  static testing::S3rverServer server;
  static std::string why = testing::S3rverServer::find_binary().empty() ? "s3rver is not installed"
                                                                         : server.start();
  if (!why.empty()) return nullptr;
  storage::S3Config c;
  c.scheme = "http";
  c.host = server.endpoint().substr(std::string("http://").size());
  c.bucket = "conf" + std::to_string(conf_unique());
  c.prefix = "repo";
  c.path_style = true;
  c.creds = {testing::S3rverServer::kAccessKey, testing::S3rverServer::kSecretKey, ""};
  return std::make_shared<storage::S3Backend>(c);
}

std::shared_ptr<Backend> azure_backend(const std::string&) {
  static testing::AzuriteServer server;
  static std::string why = testing::AzuriteServer::find_binary().empty() ? "azurite is not installed"
                                                                          : server.start();
  if (!why.empty()) return nullptr;
  std::string cs = server.connection_string();
  auto cfg = storage::azure_config_from_env(
      "conf" + std::to_string(conf_unique()) + "/repo", [&](const char* k) -> const char* {
        return std::string(k) == "AZURE_STORAGE_CONNECTION_STRING" ? cs.c_str() : nullptr;
      });
  if (!cfg.ok()) {
    ADD_FAILURE() << cfg.error().message();
    return nullptr;
  }
  return std::make_shared<storage::AzureBackend>(*cfg);
}

// The real S3 backend through the retry decorator, with 10% of its calls failing around it.
std::shared_ptr<Backend> faulty_s3(const std::string& dir) {
  auto inner = s3_backend(dir);
  if (!inner) return nullptr;
  testing::FaultPlan p;
  p.fail_before = 0.05;
  p.fail_after = 0.05;
  p.seed = 43;
  storage::RetryPolicy rp;
  rp.base_delay = std::chrono::milliseconds(1);
  rp.max_delay = std::chrono::milliseconds(5);
  rp.max_attempts = 30;
  return std::make_shared<storage::RetryBackend>(std::make_shared<testing::FaultBackend>(inner, p), rp);
}

class ConformanceTest : public ::testing::TestWithParam<ConfCase> {
 protected:
  void SetUp() override {
    dir_ = conf_tmpdir();
    be_ = GetParam().make(dir_ + "/repo");
    ASSERT_TRUE(be_) << GetParam().name << ": its test server did not start (run scripts/setup.sh)";
    Status created = be_->create();
    ASSERT_TRUE(created.ok()) << created.error().message();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::set<std::string> names(ObjectType t) {
    std::set<std::string> out;
    EXPECT_TRUE(be_->list(t, [&](const ObjectInfo& i) { EXPECT_TRUE(out.insert(i.name.name).second) << "listed twice: " << i.name.name; }).ok());
    return out;
  }
  std::string dir_;
  std::shared_ptr<Backend> be_;
};

std::string hexname(int i) {
  char buf[65];
  std::snprintf(buf, sizeof buf, "%064x", i * 2654435761u);
  return buf;
}

Bytes payload(size_t n, int seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; i++) b[i] = static_cast<uint8_t>((i * 31 + seed * 7) ^ (i >> 8));
  return b;
}

TEST_P(ConformanceTest, SaveLoadRangeStat) {
  ObjectName n{ObjectType::kData, hexname(1)};
  Bytes data = payload(300000, 1);
  ASSERT_TRUE(be_->save(n, data).ok());
  auto all = be_->load(n, 0, 0);
  ASSERT_TRUE(all.ok()) << all.error().message();
  EXPECT_EQ(*all, data);
  auto part = be_->load(n, 1000, 5000);
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(*part, Bytes(data.begin() + 1000, data.begin() + 6000));
  auto tail = be_->load(n, data.size() - 10, 10);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(*tail, Bytes(data.end() - 10, data.end()));
  auto past = be_->load(n, data.size() - 10, 11);
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.error().code(), Error::Code::kCorrupt);
  auto st = be_->stat(n);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, data.size());
  // An empty object is an object.
  ObjectName e{ObjectType::kIndex, hexname(2)};
  ASSERT_TRUE(be_->save(e, Bytes{}).ok());
  auto ee = be_->load(e, 0, 0);
  ASSERT_TRUE(ee.ok());
  EXPECT_TRUE(ee->empty());
}

TEST_P(ConformanceTest, ObjectsAreImmutableAndMissingOnesAreNotFound) {
  ObjectName n{ObjectType::kSnapshot, hexname(3)};
  ASSERT_TRUE(be_->save(n, payload(100, 3)).ok());
  Status again = be_->save(n, payload(100, 4));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Error::Code::kAlreadyExists);
  EXPECT_EQ(*be_->load(n, 0, 0), payload(100, 3)) << "a refused save must not change the object";
  ObjectName missing{ObjectType::kSnapshot, hexname(4)};
  EXPECT_EQ(be_->load(missing, 0, 0).error().code(), Error::Code::kNotFound);
  EXPECT_EQ(be_->stat(missing).error().code(), Error::Code::kNotFound);
  Status rm = be_->remove(missing);
  if (rm.ok()) {
    EXPECT_TRUE(GetParam().retried) << "removing a missing object must fail with kNotFound";
  } else {
    EXPECT_EQ(rm.error().code(), Error::Code::kNotFound);
  }
}

TEST_P(ConformanceTest, ListSeesEveryObjectOnceByType) {
  std::set<std::string> data, idx;
  for (int i = 0; i < 40; i++) {
    ObjectName n{i % 4 == 0 ? ObjectType::kIndex : ObjectType::kData, hexname(100 + i)};
    ASSERT_TRUE(be_->save(n, payload(10 + i, i)).ok());
    (n.type == ObjectType::kIndex ? idx : data).insert(n.name);
  }
  EXPECT_EQ(names(ObjectType::kData), data);
  EXPECT_EQ(names(ObjectType::kIndex), idx);
  EXPECT_TRUE(names(ObjectType::kLock).empty());
  size_t sized = 0;
  ASSERT_TRUE(be_->list(ObjectType::kData, [&](const ObjectInfo& i) {
    auto st = be_->stat(i.name);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->size, i.size);
    sized++;
  }).ok());
  EXPECT_EQ(sized, data.size());
}

TEST_P(ConformanceTest, RemoveAndEmptiness) {
  auto empty = be_->is_empty();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(*empty);
  ObjectName n{ObjectType::kLock, hexname(7)};
  ASSERT_TRUE(be_->save(n, payload(50, 7)).ok());
  EXPECT_FALSE(*be_->is_empty());
  ASSERT_TRUE(be_->remove(n).ok());
  EXPECT_EQ(be_->stat(n).error().code(), Error::Code::kNotFound);
  EXPECT_TRUE(names(ObjectType::kLock).empty());
  ObjectName cfg{ObjectType::kConfig, "config"};
  ASSERT_TRUE(be_->save(cfg, payload(20, 8)).ok());
  EXPECT_EQ(names(ObjectType::kConfig), std::set<std::string>{"config"});
}

INSTANTIATE_TEST_SUITE_P(
    Backends, ConformanceTest,
    ::testing::Values(
        ConfCase{"local", [](const std::string& d) -> std::shared_ptr<Backend> {
                   return std::make_shared<storage::LocalBackend>(d);
                 }},
        ConfCase{"local_with_retries_over_10pct_faults", faulty_local, true},
        ConfCase{"s3rver", s3_backend}, ConfCase{"azurite", azure_backend},
        ConfCase{"s3rver_with_retries_over_10pct_faults", faulty_s3, true}),
    [](const ::testing::TestParamInfo<ConfCase>& i) { return i.param.name; });

}  // namespace
}  // namespace haven

// Whole CLI commands against real s3rver and Azurite servers through an HTTP-aware proxy that
// injects network faults (integration/http_fault_proxy.h): with about 10% of requests failing
// (503, a reset in the middle of the response, a reset after the server did the work, a stall),
// init, backup, restore (bit-exact), check --read-data, a second backup and forget --prune all
// succeed, and every kind of fault was injected; with the backend gone for good (every request
// 503), backup gives up within a bounded time and says so, and the repository stays valid; a
// lost response to a pack PUT on a reused connection (which libcurl answers by sending the PUT
// again by itself) does not fail the backup. No run prints the credentials.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <cstdlib>
#include <string>
#include <vector>

#include "integration/azurite_server.h"
#include "integration/http_fault_proxy.h"
#include "integration/s3_server.h"
#include "support/repo_test_util.h"

namespace haven {
namespace {

using testing::HttpFaultProxy;
using testing::ProxyFault;

// Distinctive enough that finding it in output can only be a leak. s3rver checks the access key
// but not the signature, so any secret works there; Azurite checks Shared Key signatures, so
// the well-known development key is the secret to look for.
const char* kS3Secret = "hAvEn-NetFault-S3cret-5e1f90";

// ~10% of requests faulty.
testing::ProxyPlan faulty_plan() {
  testing::ProxyPlan p;
  p.fail_503 = 0.03;
  p.reset_mid_response = 0.03;
  p.reset_before_response = 0.02;
  p.stall = 0.02;
  p.stall_ms = 300;
  return p;
}

// The first seed from `from` whose roll sequence holds every kind of fault within `within`
// requests, so that a run of at least that many requests injects each kind (not by luck).
uint64_t covering_seed(uint64_t from, int within) {
  for (uint64_t s = from;; s++) {
    int n = HttpFaultProxy::rolls_to_cover(faulty_plan(), s, within);
    if (n > 0) return s;
  }
}

enum class Kind { kS3, kAzure };

class NetworkFaults : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    crypto::init();
    // Nothing from the developer's own cloud set-up may reach the CLI (run_haven passes the
    // parent's environment on, and the parent's entry would win).
    for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                          "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
                          "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_CA_BUNDLE",
                          "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT",
                          "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"}) {
      ::unsetenv(v);
    }
    s3_ = new testing::S3rverServer();
    s3_error_ = new std::string(s3_->start());
    azurite_ = new testing::AzuriteServer();
    azurite_error_ = new std::string(azurite_->start());
  }
  static void TearDownTestSuite() {
    delete s3_;
    delete s3_error_;
    delete azurite_;
    delete azurite_error_;
    s3_ = nullptr;
    azurite_ = nullptr;
  }
  void SetUp() override {
    char tmpl[] = "/tmp/haven-netfaults-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    src_ = dir_ + "/src";
    make_source_tree(src_);
  }
  void TearDown() override {
    // Every command's output, successful or not, is free of the secrets.
    for (const auto& r : runs_) {
      for (const auto& s : secrets_) {
        EXPECT_FALSE(contains(r.out, s)) << "secret '" << s << "' in stdout: " << describe(r);
        EXPECT_FALSE(contains(r.err, s)) << "secret '" << s << "' in stderr: " << describe(r);
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A few MiB: random files of 3 MiB, 2 MiB and 1.2 MiB, small and empty files, a subdirectory.
  static void make_source_tree(const std::string& src) {
    make_dir(src);
    make_dir(src + "/sub");
    make_dir(src + "/sub/deeper");
    write_file(src + "/big.bin", random_bytes(3 << 20, 1));
    write_file(src + "/sub/mid.bin", random_bytes(2 << 20, 2));
    write_file(src + "/sub/deeper/odd.bin", random_bytes((1200 << 10) + 17, 3));
    write_file(src + "/sub/quarter.bin", random_bytes(256 << 10, 4));
    write_file(src + "/readme.txt", "network faults\n");
    write_file(src + "/sub/deeper/empty", "");
    for (int i = 0; i < 5; i++) {
      write_file(src + "/sub/small" + std::to_string(i), random_bytes(100 + 977 * i, 10 + i));
    }
  }

  // The server for `k` is up (a missing server fails the test), and a proxy to it is started.
  // Sets repo_, env_ and secrets_ for `k`, with the repository's location through the proxy.
  bool start(Kind k, uint64_t seed) {
    const std::string& why = k == Kind::kS3 ? *s3_error_ : *azurite_error_;
    if (!why.empty()) {
      ADD_FAILURE() << (k == Kind::kS3 ? "no s3rver" : "no Azurite")
                    << " (run scripts/setup.sh): " << why;
      return false;
    }
    proxy_ = std::make_unique<HttpFaultProxy>(k == Kind::kS3 ? s3_->port() : azurite_->port(), seed);
    std::string err = proxy_->start();
    if (!err.empty()) {
      ADD_FAILURE() << "proxy: " << err;
      return false;
    }
    static int n = 0;
    const std::string unique = std::to_string(::getpid()) + "-" + std::to_string(n++);
    const std::string at = "http://127.0.0.1:" + std::to_string(proxy_->port());
    if (k == Kind::kS3) {
      repo_ = "s3:" + at + "/netfaults-" + unique + "/haven/repo";
      env_ = {{"AWS_ACCESS_KEY_ID", testing::S3rverServer::kAccessKey},
              {"AWS_SECRET_ACCESS_KEY", kS3Secret}};
      secrets_ = {kS3Secret};
    } else {
      repo_ = "azure:netfaults-" + unique + "/haven/repo";
      env_ = {{"AZURE_STORAGE_CONNECTION_STRING",
               "DefaultEndpointsProtocol=http;AccountName=" +
                   std::string(testing::AzuriteServer::kAccount) +
                   ";AccountKey=" + testing::AzuriteServer::kKey + ";BlobEndpoint=" + at + "/" +
                   testing::AzuriteServer::kAccount + ";"}};
      secrets_ = {testing::AzuriteServer::kKey, std::string(testing::AzuriteServer::kKey).substr(0, 24),
                  "AccountKey"};
    }
    return true;
  }

  RunResult haven(std::vector<std::string> args) {
    RunOptions o;
    o.env = env_;
    RunResult r = cli(repo_, std::move(args), o);
    runs_.push_back(r);
    return r;
  }

  std::string snapshot_id() {
    RunResult r = haven({"snapshots", "--json"});
    EXPECT_EQ(r.code, 0) << describe(r);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (!j.is_array() || j.size() != 1) {
      ADD_FAILURE() << "want one snapshot: " << r.out;
      return "";
    }
    return j[0]["id"].get<std::string>();
  }

  // Everything through ~10% faulty requests, then a check with the faults off.
  void whole_cycle_through_faults(Kind k, uint64_t seed_from) {
    // Every kind shows up within the first 60 faulty rolls; the run below makes far more
    // requests than that (asserted), so each kind is injected whatever the timing.
    const int kCover = 60;
    const uint64_t seed = covering_seed(seed_from, kCover);
    ASSERT_TRUE(start(k, seed));
    const auto t0 = std::chrono::steady_clock::now();
    proxy_->set_plan(faulty_plan());

    RunResult r = haven({"init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1"});
    ASSERT_EQ(r.code, 0) << describe(r);
    r = haven({"backup", src_});
    ASSERT_EQ(r.code, 0) << describe(r);
    r = haven({"restore", "latest", "--target", dir_ + "/out1"});
    ASSERT_EQ(r.code, 0) << describe(r);
    expect_same_tree(src_, dir_ + "/out1/src");
    r = haven({"check", "--read-data"});
    EXPECT_EQ(r.code, 0) << describe(r);

    write_file(src_ + "/sub/mid.bin", random_bytes(2 << 20, 99));
    write_file(src_ + "/readme.txt", "network faults, second snapshot\n");
    r = haven({"backup", src_});
    ASSERT_EQ(r.code, 0) << describe(r);
    r = haven({"forget", "--keep-last", "1", "--prune"});
    EXPECT_EQ(r.code, 0) << describe(r);
    r = haven({"check", "--read-data"});
    EXPECT_EQ(r.code, 0) << describe(r);

    const std::string counts = proxy_->summary();
    std::printf("[ netfaults ] %s seed %llu: %s, %.1f s\n", k == Kind::kS3 ? "s3rver" : "Azurite",
                static_cast<unsigned long long>(seed), counts.c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    EXPECT_GE(proxy_->rolled(), static_cast<uint64_t>(kCover)) << counts;
    EXPECT_GT(proxy_->injected(ProxyFault::kFail503), 0u) << counts;
    EXPECT_GT(proxy_->injected(ProxyFault::kResetMidResponse), 0u) << counts;
    EXPECT_GT(proxy_->injected(ProxyFault::kResetBeforeResponse), 0u) << counts;
    EXPECT_GT(proxy_->injected(ProxyFault::kStall), 0u) << counts;

    // Faults off: the repository checks, and the one snapshot left restores bit-exact.
    proxy_->set_plan({});
    r = haven({"check", "--read-data"});
    EXPECT_EQ(r.code, 0) << describe(r);
    r = haven({"restore", "latest", "--target", dir_ + "/out2"});
    ASSERT_EQ(r.code, 0) << describe(r);
    expect_same_tree(src_, dir_ + "/out2/src");
  }

  // A backup to a backend that answers every request 503 gives up in bounded time, with a
  // message naming the tries; the repository is untouched by it.
  void backend_gone_for_good(Kind k) {
    ASSERT_TRUE(start(k, 1));
    RunResult r = haven({"init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1"});
    ASSERT_EQ(r.code, 0) << describe(r);
    r = haven({"backup", src_});
    ASSERT_EQ(r.code, 0) << describe(r);
    const std::string id = snapshot_id();
    ASSERT_FALSE(id.empty());

    proxy_->fail_everything();
    const auto t0 = std::chrono::steady_clock::now();
    r = haven({"backup", src_});
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ netfaults ] %s gone: backup failed after %.1f s (%s)\n",
                k == Kind::kS3 ? "s3rver" : "Azurite", secs, proxy_->summary().c_str());
    EXPECT_NE(r.code, 0) << describe(r);
    EXPECT_FALSE(r.timed_out) << describe(r);
    EXPECT_LT(secs, 60.0) << describe(r);
    EXPECT_TRUE(contains(r.err, "gave up") && contains(r.err, "tries")) << describe(r);
    EXPECT_GT(proxy_->injected(ProxyFault::kFail503), 1u) << proxy_->summary();

    // The backend is back: the repository is valid and the earlier snapshot restores bit-exact.
    proxy_->set_plan({});
    r = haven({"check", "--read-data"});
    EXPECT_EQ(r.code, 0) << describe(r);
    r = haven({"restore", id, "--target", dir_ + "/out"});
    ASSERT_EQ(r.code, 0) << describe(r);
    expect_same_tree(src_, dir_ + "/out/src");
  }

  // The response to a pack PUT on a reused keep-alive connection is lost after the server
  // stored the pack (a reset before any response byte). libcurl itself then sends the same
  // PUT again on a fresh connection ("Connection died, retrying a fresh connect"), inside what
  // the retry layer counts as the first try; the create-only PUT finds the pack it stored
  // itself. The backup must still succeed, and the repository check and restore bit-exact.
  void lost_put_response_on_reused_connection(Kind k) {
    ASSERT_TRUE(start(k, 1));
    RunResult r = haven({"init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1"});
    ASSERT_EQ(r.code, 0) << describe(r);
    auto fired = std::make_shared<int>(0);
    proxy_->set_rule([fired](const testing::ProxyRequest& q) {
      if (*fired == 0 && q.method == "PUT" && contains(q.target, "/data/") &&
          q.index_on_connection > 0) {
        ++*fired;
        return ProxyFault::kResetBeforeResponse;
      }
      return ProxyFault::kNone;
    });
    r = haven({"backup", src_});
    EXPECT_EQ(r.code, 0) << describe(r);
    proxy_->set_rule(nullptr);
    EXPECT_EQ(*fired, 1) << "no pack PUT on a reused connection: " << proxy_->summary();
    r = haven({"check", "--read-data"});
    EXPECT_EQ(r.code, 0) << describe(r);
    r = haven({"restore", "latest", "--target", dir_ + "/out"});
    ASSERT_EQ(r.code, 0) << describe(r);
    expect_same_tree(src_, dir_ + "/out/src");
  }

  static testing::S3rverServer* s3_;
  static std::string* s3_error_;
  static testing::AzuriteServer* azurite_;
  static std::string* azurite_error_;

  std::string dir_, src_;
  std::unique_ptr<HttpFaultProxy> proxy_;
  std::string repo_;
  Env env_;
  std::vector<std::string> secrets_;
  std::vector<RunResult> runs_;
};

testing::S3rverServer* NetworkFaults::s3_ = nullptr;
std::string* NetworkFaults::s3_error_ = nullptr;
testing::AzuriteServer* NetworkFaults::azurite_ = nullptr;
std::string* NetworkFaults::azurite_error_ = nullptr;

TEST_F(NetworkFaults, S3WholeCycleThroughFaults) { whole_cycle_through_faults(Kind::kS3, 1); }

TEST_F(NetworkFaults, AzureWholeCycleThroughFaults) {
  whole_cycle_through_faults(Kind::kAzure, 1000);
}

TEST_F(NetworkFaults, S3LostPutResponseOnReusedConnection) {
  lost_put_response_on_reused_connection(Kind::kS3);
}

TEST_F(NetworkFaults, AzureLostPutResponseOnReusedConnection) {
  lost_put_response_on_reused_connection(Kind::kAzure);
}

TEST_F(NetworkFaults, S3BackendGoneForGood) { backend_gone_for_good(Kind::kS3); }

TEST_F(NetworkFaults, AzureBackendGoneForGood) { backend_gone_for_good(Kind::kAzure); }

}  // namespace
}  // namespace haven

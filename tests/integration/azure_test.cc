// Integration tests of the Azure Blob backend against a real Azurite on loopback (started once
// for the suite, see azurite_server.h): the backend contract, Shared Key and SAS
// authentication, error mapping, the whole CLI on an azure: location, and that credentials
// never appear in output.
#include "storage/azure.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "integration/azurite_server.h"

extern char** environ;

namespace haven::storage {
namespace {

namespace fs = std::filesystem;
using haven::testing::AzuriteServer;
using Env = std::map<std::string, std::string>;

// ---- helpers -------------------------------------------------------------------------------

std::string unique(const std::string& base) {
  static std::atomic<int> n{0};
  static const unsigned seed = std::random_device{}();
  return base + "-" + std::to_string(seed % 100000) + "-" + std::to_string(n++);
}

Bytes random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

std::string hex_id(uint32_t seed) {
  Bytes b = random_bytes(32, seed);
  return to_hex(b);
}

std::string b64(ByteView b) {
  std::string out(4 * ((b.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), b.data(),
                          static_cast<int>(b.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Bytes unb64(const std::string& s) {
  Bytes out(s.size() / 4 * 3);
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(s.data()),
                          static_cast<int>(s.size()));
  size_t pad = (s.size() > 0 && s.back() == '=') + (s.size() > 1 && s[s.size() - 2] == '=');
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// An account SAS for the blob service, signed with `key_b64` per the documented
// string-to-sign for sv >= 2020-12-06 (account, permissions, services, resource types, start,
// expiry, IP, protocol, version, encryption scope, each followed by a newline).
std::string account_sas(const std::string& key_b64, const std::string& perms = "rwdlac") {
  const std::string sv = "2021-08-06", se = "2035-01-01T00:00:00Z";
  std::string sts = std::string(AzuriteServer::kAccount) + "\n" + perms + "\nb\nsco\n\n" + se +
                    "\n\n\n" + sv + "\n\n";
  Bytes key = unb64(key_b64);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(sts.data()), sts.size(), mac, &len);
  return "sv=" + sv + "&ss=b&srt=sco&sp=" + perms + "&se=" + url_encode(se) +
         "&sig=" + url_encode(b64(ByteView(mac, len)));
}

Result<AzureConfig> config_from(const std::string& spec, const Env& env) {
  return azure_config(spec, BackendSettings::from_map(env));
}

#define ASSERT_OK(expr)                                                     \
  do {                                                                      \
    auto&& s_ = (expr);                                                     \
    ASSERT_TRUE(s_.ok()) << #expr << ": " << s_.error().message();          \
  } while (0)

template <typename R>
Error::Code code_of(const R& r) {
  return r.ok() ? Error::Code::kInternal : r.error().code();
}

struct RunResult {
  int code = -1;
  std::string out, err;
  std::string all() const { return out + "\n" + err; }
};

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs HAVEN_BINARY with `args` and the parent environment without HAVEN_* and AZURE_*
// variables, plus `env`. Output goes through files in `tmp`.
RunResult run_haven(const std::vector<std::string>& args, const Env& env, const fs::path& tmp) {
  std::vector<std::string> argv_s{HAVEN_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string s = *e;
    if (s.rfind("HAVEN_", 0) == 0 || s.rfind("AZURE_", 0) == 0) continue;
    env_s.push_back(s);
  }
  for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  const std::string out_path = (tmp / "stdout").string(), err_path = (tmp / "stderr").string();
  RunResult r;
  pid_t pid = fork();
  if (pid == 0) {
    setsid();  // no controlling terminal: never prompt
    int in = open("/dev/null", O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

std::string describe(const RunResult& r) {
  return "exit " + std::to_string(r.code) + "\n--- stdout ---\n" + r.out + "\n--- stderr ---\n" +
         r.err;
}

// ---- fixture -------------------------------------------------------------------------------

class AzureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new AzuriteServer();
    start_error_ = new std::string(server_->start());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }
  void SetUp() override {
    // scripts/setup.sh installs Azurite: a missing server is a broken set-up, not a skip.
    if (!start_error_->empty()) FAIL() << "Azurite unavailable (run scripts/setup.sh): " << *start_error_;
    char tmpl[] = "/tmp/haven-azure-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  // A backend on a fresh container (not yet created) with the given page size.
  std::shared_ptr<AzureBackend> backend(const std::string& container, const std::string& prefix,
                                        int page_size = 1000,
                                        const std::string& key = AzuriteServer::kKey) {
    auto cfg = config_from(container + (prefix.empty() ? "" : "/" + prefix),
                           {{"AZURE_STORAGE_CONNECTION_STRING", server_->connection_string(key)}});
    EXPECT_TRUE(cfg.ok()) << cfg.error().message();
    if (!cfg.ok()) return nullptr;
    cfg->list_page_size = page_size;
    return std::make_shared<AzureBackend>(std::move(cfg).value());
  }

  static AzuriteServer* server_;
  static std::string* start_error_;
  fs::path dir_;
};

AzuriteServer* AzureTest::server_ = nullptr;
std::string* AzureTest::start_error_ = nullptr;

// ---- configuration parsing (no server needed, but kept in one suite) -----------------------

TEST(AzureConfigTest, ParsesConnectionStringsAndEnvironment) {
  auto c = config_from("box/some/prefix/", {{"AZURE_STORAGE_CONNECTION_STRING",
                                             "DefaultEndpointsProtocol=https;AccountName=acct;"
                                             "AccountKey=" + std::string(AzuriteServer::kKey) +
                                                 ";EndpointSuffix=core.example.net"}});
  ASSERT_OK(c);
  EXPECT_EQ(c->account, "acct");
  EXPECT_EQ(c->endpoint, "https://acct.blob.core.example.net");
  EXPECT_EQ(c->container, "box");
  EXPECT_EQ(c->prefix, "some/prefix");
  EXPECT_EQ(c->key.size(), 64u);

  // Account + SAS token from separate variables; leading '?' dropped.
  c = config_from("box", {{"AZURE_STORAGE_ACCOUNT", "acct2"}, {"AZURE_STORAGE_SAS_TOKEN", "?sv=x&sig=y"}});
  ASSERT_OK(c);
  EXPECT_EQ(c->endpoint, "https://acct2.blob.core.windows.net");
  EXPECT_EQ(c->sas, "sv=x&sig=y");
  EXPECT_TRUE(c->key.empty());
  EXPECT_EQ(c->prefix, "");

  // A SAS with a custom endpoint needs no account name.
  c = config_from("box/p", {{"AZURE_STORAGE_CONNECTION_STRING",
                             "BlobEndpoint=http://127.0.0.1:1/dev/;SharedAccessSignature=sv=1&sig=2"}});
  ASSERT_OK(c);
  EXPECT_EQ(c->endpoint, "http://127.0.0.1:1/dev");
  EXPECT_EQ(c->sas, "sv=1&sig=2");

  c = config_from("box", {{"AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true"}});
  ASSERT_OK(c);
  EXPECT_EQ(c->endpoint, "http://127.0.0.1:10000/devstoreaccount1");

  // Errors: no credentials, bad container, bad key (never quoted).
  EXPECT_EQ(code_of(config_from("box", {})), Error::Code::kInvalidArgument);
  EXPECT_EQ(code_of(config_from("Bad_Name", {{"AZURE_STORAGE_SAS_TOKEN", "s"},
                                             {"AZURE_STORAGE_ACCOUNT", "a"}})),
            Error::Code::kInvalidArgument);
  auto bad = config_from("box", {{"AZURE_STORAGE_ACCOUNT", "a"},
                                 {"AZURE_STORAGE_KEY", "SECRET*not*base64*SECRET"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Error::Code::kInvalidArgument);
  EXPECT_EQ(bad.error().message().find("SECRET"), std::string::npos) << bad.error().message();
}

// ---- 1. backend contract -------------------------------------------------------------------

// The contract every backend shares (ranges, immutability, listing in pages, concurrency,
// cancellation) is tested once for all of them in conformance_test.cc; what is Azure's own is
// here.
TEST_F(AzureTest, ContainersPrefixesAndBlobNames) {
  const std::string container = unique("contract");
  auto be = backend(container, "repos/r1", /*page_size=*/7);
  ASSERT_NE(be, nullptr);
  EXPECT_EQ(be->location(), "azure:" + container + "/repos/r1");

  // The container does not exist yet: empty, lists nothing, saves fail with kNotFound.
  auto empty = be->is_empty();
  ASSERT_OK(empty);
  EXPECT_TRUE(*empty);
  int n = 0;
  ASSERT_OK(be->list(ObjectType::kData, [&](const ObjectInfo&) { n++; }));
  EXPECT_EQ(n, 0);
  EXPECT_EQ(code_of(be->save({ObjectType::kConfig, "config"}, as_bytes("x"))),
            Error::Code::kNotFound);

  ASSERT_OK(be->create());
  ASSERT_OK(be->create());  // idempotent
  empty = be->is_empty();
  ASSERT_OK(empty);
  EXPECT_TRUE(*empty);

  const std::string pid = hex_id(100), key_id = hex_id(7);
  ASSERT_OK(be->save({ObjectType::kData, pid}, random_bytes(1000, 1)));
  ASSERT_OK(be->save({ObjectType::kKey, key_id}, as_bytes("key")));
  EXPECT_EQ(be->blob_name({ObjectType::kData, pid}),
            "repos/r1/data/" + pid.substr(0, 2) + "/" + pid);
  EXPECT_EQ(be->blob_name({ObjectType::kConfig, "config"}), "repos/r1/config");
  empty = be->is_empty();
  ASSERT_OK(empty);
  EXPECT_FALSE(*empty);

  // Another prefix in the same container is a different (empty) repository.
  auto other = backend(container, "repos/r10");
  ASSERT_NE(other, nullptr);
  empty = other->is_empty();
  ASSERT_OK(empty);
  EXPECT_TRUE(*empty);
  std::vector<ObjectInfo> keys;
  ASSERT_OK(other->list(ObjectType::kKey, [&](const ObjectInfo& i) { keys.push_back(i); }));
  EXPECT_TRUE(keys.empty());
}

// One process, two repositories in one Azurite account, each opened with its own credentials
// through open_backend(): the one with a wrong account key fails with a clear permission error
// (never quoting the key), the other works, before and after.
TEST_F(AzureTest, RepositoriesWithTheirOwnCredentialsInOneProcess) {
  const std::string wrong_key = b64(random_bytes(64, 4242));
  const std::string good_loc = "azure:" + unique("good") + "/r";
  const std::string bad_loc = "azure:" + unique("bad") + "/r";
  auto good = open_backend(good_loc, BackendSettings::from_map(
                                         {{"AZURE_STORAGE_CONNECTION_STRING",
                                           server_->connection_string()}}));
  auto bad = open_backend(bad_loc, BackendSettings::from_map(
                                       {{"AZURE_STORAGE_CONNECTION_STRING",
                                         server_->connection_string(wrong_key)}}));
  ASSERT_OK(good);
  ASSERT_OK(bad);
  ASSERT_OK((*good)->create());
  const ObjectName n{ObjectType::kKey, hex_id(5)};
  ASSERT_OK((*good)->save(n, as_bytes("good key")));
  auto status_of = [](const auto& r) { return r.ok() ? ok_status() : Status(r.error()); };
  for (const Status& st : {(*bad)->create(), (*bad)->save(n, as_bytes("x")),
                           status_of((*bad)->stat(n)), status_of((*bad)->is_empty())}) {
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code(), Error::Code::kPermissionDenied) << st.error().message();
    EXPECT_NE(st.error().message().find("credentials"), std::string::npos) << st.error().message();
    EXPECT_NE(st.error().message().find(bad_loc), std::string::npos) << st.error().message();
    EXPECT_EQ(st.error().message().find(wrong_key), std::string::npos) << st.error().message();
  }
  auto back = (*good)->load(n, 0, 0);
  ASSERT_OK(back);
  EXPECT_EQ(to_string(*back), "good key");
}

TEST_F(AzureTest, LargeObjectsGoUpAsBlocks) {
  auto be = backend(unique("concurrent"), "");
  ASSERT_NE(be, nullptr);
  ASSERT_OK(be->create());
  Bytes big = random_bytes(12 << 20, 42);
  const std::string big_id = hex_id(4242);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_OK(be->save({ObjectType::kData, big_id}, big));
  auto t1 = std::chrono::steady_clock::now();
  auto got = be->load({ObjectType::kData, big_id});
  auto t2 = std::chrono::steady_clock::now();
  ASSERT_OK(got);
  EXPECT_TRUE(*got == big);
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::cout << "[azure] 12 MiB put " << ms(t1 - t0) << " ms, get " << ms(t2 - t1) << " ms\n";

  // Objects above single_put_max go up as blocks plus one block list; they behave the same.
  {
    auto cfg = config_from(unique("blocks"), {{"AZURE_STORAGE_CONNECTION_STRING",
                                               server_->connection_string()}});
    ASSERT_OK(cfg);
    cfg->single_put_max = 1 << 20;
    cfg->block_size = (256 << 10) + 3;  // an odd size: the last block is short
    AzureBackend blocks(std::move(cfg).value());
    ASSERT_OK(blocks.create());
    Bytes data = random_bytes((3 << 20) + 1234, 43);
    const ObjectName name{ObjectType::kData, hex_id(4343)};
    ASSERT_OK(blocks.save(name, data));
    auto whole = blocks.load(name);
    ASSERT_OK(whole);
    EXPECT_TRUE(*whole == data);
    auto part = blocks.load(name, (256 << 10) - 10, 100);  // spans a block boundary
    ASSERT_OK(part);
    EXPECT_EQ(*part, Bytes(data.begin() + (256 << 10) - 10, data.begin() + (256 << 10) + 90));
    auto st = blocks.stat(name);
    ASSERT_OK(st);
    EXPECT_EQ(st->size, data.size());
    // The commit refuses an existing name; the first content stays.
    EXPECT_EQ(code_of(blocks.save(name, random_bytes(data.size(), 44))),
              Error::Code::kAlreadyExists);
    whole = blocks.load(name);
    ASSERT_OK(whole);
    EXPECT_TRUE(*whole == data);
    // Into a missing container: kNotFound, as for a single Put Blob.
    auto cfg2 = config_from(unique("noblocks"), {{"AZURE_STORAGE_CONNECTION_STRING",
                                                  server_->connection_string()}});
    ASSERT_OK(cfg2);
    cfg2->single_put_max = 1000;
    AzureBackend missing(std::move(cfg2).value());
    EXPECT_EQ(code_of(missing.save(name, data)), Error::Code::kNotFound);
  }

}

// ---- 2. authentication ---------------------------------------------------------------------

TEST_F(AzureTest, WrongSharedKeyIsPermissionDenied) {
  const std::string container = unique("wrongkey");
  auto good = backend(container, "p");
  ASSERT_NE(good, nullptr);
  ASSERT_OK(good->create());
  ASSERT_OK(good->save({ObjectType::kKey, hex_id(1)}, as_bytes("k")));

  const std::string wrong_key = b64(random_bytes(64, 77));
  auto bad = backend(container, "p", 1000, wrong_key);
  ASSERT_NE(bad, nullptr);
  auto empty = bad->is_empty();
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code(), Error::Code::kPermissionDenied) << empty.error().message();
  EXPECT_NE(empty.error().message().find("credentials"), std::string::npos);
  EXPECT_EQ(empty.error().message().find(wrong_key), std::string::npos);
  auto s = bad->save({ObjectType::kKey, hex_id(2)}, as_bytes("k"));
  EXPECT_EQ(code_of(s), Error::Code::kPermissionDenied);
  EXPECT_EQ(code_of(bad->load({ObjectType::kKey, hex_id(1)})), Error::Code::kPermissionDenied);
  EXPECT_EQ(code_of(bad->stat({ObjectType::kKey, hex_id(1)})), Error::Code::kPermissionDenied);
  EXPECT_EQ(code_of(bad->remove({ObjectType::kKey, hex_id(1)})), Error::Code::kPermissionDenied);
  EXPECT_EQ(code_of(bad->create()), Error::Code::kPermissionDenied);
}

TEST_F(AzureTest, SasTokenAuthentication) {
  const std::string container = unique("sas");
  const std::string sas = account_sas(AzuriteServer::kKey);
  // SAS in the connection string, with a custom (path-style) endpoint and no account key.
  auto cfg = config_from(container + "/x", {{"AZURE_STORAGE_CONNECTION_STRING",
                                             "BlobEndpoint=" + server_->endpoint() +
                                                 ";SharedAccessSignature=" + sas}});
  ASSERT_OK(cfg);
  cfg->list_page_size = 2;
  AzureBackend be(std::move(cfg).value());
  ASSERT_OK(be.create());  // the account SAS allows creating the container
  Bytes data = random_bytes(4000, 5);
  for (uint32_t i = 0; i < 5; i++) ASSERT_OK(be.save({ObjectType::kIndex, hex_id(i)}, data));
  auto got = be.load({ObjectType::kIndex, hex_id(3)}, 1000, 10);
  ASSERT_OK(got);
  EXPECT_EQ(*got, Bytes(data.begin() + 1000, data.begin() + 1010));
  int n = 0;
  ASSERT_OK(be.list(ObjectType::kIndex, [&](const ObjectInfo& i) {
    n++;
    EXPECT_EQ(i.size, data.size());
  }));
  EXPECT_EQ(n, 5);
  EXPECT_EQ(code_of(be.save({ObjectType::kIndex, hex_id(0)}, data)), Error::Code::kAlreadyExists);
  ASSERT_OK(be.remove({ObjectType::kIndex, hex_id(0)}));

  // AZURE_STORAGE_SAS_TOKEN (with '?') next to a connection string that gives only the endpoint.
  auto cfg2 = config_from(container + "/x", {{"AZURE_STORAGE_CONNECTION_STRING",
                                              "BlobEndpoint=" + server_->endpoint()},
                                             {"AZURE_STORAGE_SAS_TOKEN", "?" + sas}});
  ASSERT_OK(cfg2);
  AzureBackend be2(std::move(cfg2).value());
  auto st = be2.stat({ObjectType::kIndex, hex_id(4)});
  ASSERT_OK(st);
  EXPECT_EQ(st->size, data.size());

  // A read-only SAS can read but not write; a SAS signed with another key is refused.
  auto ro = config_from(container + "/x", {{"AZURE_STORAGE_CONNECTION_STRING",
                                            "BlobEndpoint=" + server_->endpoint() +
                                                ";SharedAccessSignature=" +
                                                account_sas(AzuriteServer::kKey, "rl")}});
  ASSERT_OK(ro);
  AzureBackend be_ro(std::move(ro).value());
  ASSERT_OK(be_ro.load({ObjectType::kIndex, hex_id(4)}));
  EXPECT_EQ(code_of(be_ro.save({ObjectType::kIndex, hex_id(50)}, data)),
            Error::Code::kPermissionDenied);
  const std::string forged = account_sas(b64(random_bytes(64, 9)));
  auto bad = config_from(container + "/x", {{"AZURE_STORAGE_CONNECTION_STRING",
                                             "BlobEndpoint=" + server_->endpoint() +
                                                 ";SharedAccessSignature=" + forged}});
  ASSERT_OK(bad);
  AzureBackend be_bad(std::move(bad).value());
  auto r = be_bad.load({ObjectType::kIndex, hex_id(4)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kPermissionDenied);
  EXPECT_EQ(r.error().message().find("sig="), std::string::npos) << r.error().message();
}

TEST_F(AzureTest, UnreachableServerIsTransient) {
  auto cfg = config_from("box", {{"AZURE_STORAGE_CONNECTION_STRING",
                                  "AccountName=devstoreaccount1;AccountKey=" +
                                      std::string(AzuriteServer::kKey) +
                                      ";BlobEndpoint=http://127.0.0.1:1/devstoreaccount1"}});
  ASSERT_OK(cfg);
  AzureBackend be(std::move(cfg).value());
  auto r = be.load({ObjectType::kConfig, "config"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kTransient) << r.error().message();
  EXPECT_TRUE(r.error().retryable());
}

// ---- 3. whole CLI --------------------------------------------------------------------------

void write_file(const fs::path& p, const Bytes& data) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

// Relative path → content of every regular file under `root`.
std::map<std::string, std::string> tree_of(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) out[fs::relative(e.path(), root).string()] = slurp(e.path().string());
  }
  return out;
}

TEST_F(AzureTest, CliInitBackupRestoreCheckPrune) {
  const std::string container = unique("cli");
  const std::string repo = "azure:" + container + "/backups/host1";
  const Env env{{"AZURE_STORAGE_CONNECTION_STRING", server_->connection_string()},
                {"HAVEN_PASSWORD", "correct horse"}};
  auto probe = backend(container, "backups/host1");
  ASSERT_NE(probe, nullptr);
  // The container does not exist before init.
  ASSERT_EQ(code_of(probe->save({ObjectType::kLock, hex_id(1)}, as_bytes("x"))),
            Error::Code::kNotFound);

  std::vector<RunResult> all;
  auto haven = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"-r", repo});
    RunResult r = run_haven(args, env, dir_);
    all.push_back(r);
    return r;
  };

  RunResult r = haven({"init", "--kdf-memory", "8", "--kdf-iterations", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  ASSERT_OK(probe->stat({ObjectType::kConfig, "config"}));  // container created, config there

  // init refuses a non-empty location.
  r = haven({"init", "--kdf-memory", "8", "--kdf-iterations", "1"});
  EXPECT_NE(r.code, 0) << describe(r);

  const fs::path src = dir_ / "src";
  write_file(src / "a.txt", Bytes{'h', 'e', 'l', 'l', 'o'});
  write_file(src / "empty", Bytes{});
  write_file(src / "dir/big.bin", random_bytes(3 << 20, 11));
  write_file(src / "dir/sub/small.bin", random_bytes(777, 12));
  r = haven({"backup", src.string()});
  ASSERT_EQ(r.code, 0) << describe(r);

  r = haven({"restore", "latest", "--target", (dir_ / "out1").string()});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(tree_of(dir_ / "out1" / "src"), tree_of(src));

  r = haven({"check", "--read-data"});
  EXPECT_EQ(r.code, 0) << describe(r);

  // A second snapshot with changed content, forget the first, prune, and check again.
  write_file(src / "dir/big.bin", random_bytes(2 << 20, 13));
  fs::remove(src / "a.txt");
  r = haven({"backup", src.string()});
  ASSERT_EQ(r.code, 0) << describe(r);
  r = haven({"forget", "--keep-last", "1"});
  ASSERT_EQ(r.code, 0) << describe(r);
  r = haven({"prune"});
  ASSERT_EQ(r.code, 0) << describe(r);
  r = haven({"check", "--read-data"});
  EXPECT_EQ(r.code, 0) << describe(r);
  r = haven({"restore", "latest", "--target", (dir_ / "out2").string()});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(tree_of(dir_ / "out2" / "src"), tree_of(src));

  // No command printed the account key.
  for (const auto& x : all) {
    EXPECT_EQ(x.all().find(AzuriteServer::kKey), std::string::npos) << describe(x);
    EXPECT_EQ(x.all().find("AccountKey"), std::string::npos) << describe(x);
  }
}

// ---- 4. credentials never in output --------------------------------------------------------

TEST_F(AzureTest, CredentialsNeverAppearInOutput) {
  const std::string container = unique("secret");
  const std::string raw = "HAVEN-DISTINCTIVE-KEY-0123456789-HAVEN-DISTINCTIVE-KEY-abcdefghij";
  const std::string key = b64(as_bytes(raw));
  const std::string hex_key = to_hex(as_bytes(raw));
  auto leaks = [&](const RunResult& r, const std::vector<std::string>& secrets) {
    for (const auto& s : secrets) {
      EXPECT_EQ(r.all().find(s), std::string::npos) << "leaked '" << s << "'\n" << describe(r);
    }
  };

  // A wrong (but well-formed) account key: refused by the server.
  RunResult r = run_haven({"-r", "azure:" + container + "/p", "init", "--kdf-memory", "8",
                           "--kdf-iterations", "1"},
                          {{"AZURE_STORAGE_CONNECTION_STRING", server_->connection_string(key)},
                           {"HAVEN_PASSWORD", "pw"}},
                          dir_);
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_NE(r.err.find("credentials"), std::string::npos) << describe(r);
  leaks(r, {key, key.substr(0, 24), raw, raw.substr(0, 20), hex_key.substr(0, 32)});

  // The same key through AZURE_STORAGE_ACCOUNT/AZURE_STORAGE_KEY on an opening command.
  r = run_haven({"-r", "azure:" + container + "/p", "snapshots"},
                {{"AZURE_STORAGE_CONNECTION_STRING", "BlobEndpoint=" + server_->endpoint()},
                 {"AZURE_STORAGE_ACCOUNT", AzuriteServer::kAccount},
                 {"AZURE_STORAGE_KEY", key},
                 {"HAVEN_PASSWORD", "pw"}},
                dir_);
  EXPECT_NE(r.code, 0) << describe(r);
  leaks(r, {key, key.substr(0, 24), raw, raw.substr(0, 20)});

  // A malformed key is rejected without being quoted.
  const std::string malformed = "NOT!BASE64!" + raw;
  r = run_haven({"-r", "azure:" + container + "/p", "snapshots"},
                {{"AZURE_STORAGE_CONNECTION_STRING",
                  "AccountName=devstoreaccount1;AccountKey=" + malformed +
                      ";BlobEndpoint=" + server_->endpoint()},
                 {"HAVEN_PASSWORD", "pw"}},
                dir_);
  EXPECT_NE(r.code, 0) << describe(r);
  leaks(r, {malformed, raw.substr(0, 20)});

  // A SAS signed with another key: its signature never appears.
  const std::string forged = account_sas(key);
  const std::string sig = forged.substr(forged.find("sig=") + 4);
  r = run_haven({"-r", "azure:" + container + "/p", "snapshots"},
                {{"AZURE_STORAGE_CONNECTION_STRING", "BlobEndpoint=" + server_->endpoint()},
                 {"AZURE_STORAGE_SAS_TOKEN", forged},
                 {"HAVEN_PASSWORD", "pw"}},
                dir_);
  EXPECT_NE(r.code, 0) << describe(r);
  leaks(r, {sig, sig.substr(0, 16), "sig="});
}

}  // namespace
}  // namespace haven::storage

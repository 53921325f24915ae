// haven dr execute / approve / reject: a real recovery from the command line waits for a second
// principal (another OS user); the one who asked cannot approve it; the approver runs it onto
// the plan's real target; a rejected one never runs; everything is audited.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "support/fs_test_util.h"
#include "support/repo_test_util.h"
#pragma GCC diagnostic pop

#include "catalog/catalog.h"
#include "pg/pg_cluster.h"

namespace haven {
namespace {

using haven::testing::kNobody;
using haven::testing::PgTempDir;
namespace fs = std::filesystem;

TEST(DrExecute, ARealRecoveryWaitsForASecondPrincipal) {
  HAVEN_SKIP_UNLESS_ROOT("two principals: root and nobody");
  PgTempDir tmp;  // owned by nobody
  const std::string dir = tmp.path();
  RunOptions as_nobody;
  as_nobody.uid = kNobody;
  as_nobody.env = {{"HOME", dir}};
  RunResult r = cli(dir + "/repo", {"init", "--kdf-memory", "8", "--kdf-iterations", "1"}, as_nobody);
  ASSERT_EQ(r.code, 0) << describe(r);
  fs::create_directories(dir + "/src/etc");
  write_file(dir + "/src/etc/app.conf", "production settings\n");
  r = cli(dir + "/repo", {"backup", dir + "/src"}, as_nobody);
  ASSERT_EQ(r.code, 0) << describe(r);
  write_file(dir + "/pass", "pw\n");
  ::chmod((dir + "/pass").c_str(), 0644);
  const std::string cfg = dir + "/haven.yaml";
  write_file(cfg, "server: {catalog: " + dir + "/catalog.db}\n"
                  "locations:\n  - {name: local, repository: " + dir + "/repo, password_file: " + dir + "/pass}\n"
                  "policies:\n  - {name: site, resource_type: files, sources: [" + dir + "/src], location: local, schedules: []}\n"
                  "dr_plans:\n"
                  "  - name: site-recovery\n"
                  "    rto: {value: 10, unit: minutes}\n"
                  "    rpo: {value: 1, unit: days}\n"
                  "    test_frequency_days: 0\n"
                  "    steps:\n"
                  "      - {name: restore, restore_files: {policy: site, target: " + dir + "/recovered}}\n"
                  "      - {name: check, depends_on: [restore], checksum: restore}\n");
  ::chmod(cfg.c_str(), 0644);
  auto dr_as = [&](int uid, const std::vector<std::string>& args) {
    std::vector<std::string> a{"dr"};
    a.insert(a.end(), args.begin(), args.end());
    a.insert(a.end(), {"--config", cfg});
    RunOptions o;
    o.uid = uid;
    o.env = {{"HOME", dir}};
    return run_haven(a, o);
  };
  // A reason is required; then nobody asks, and it waits.
  r = dr_as(kNobody, {"execute", "site-recovery"});
  EXPECT_EQ(r.code, 2) << describe(r);
  r = dr_as(kNobody, {"execute", "site-recovery", "--reason", "the primary's disk is gone"});
  ASSERT_EQ(r.code, 0) << describe(r);
  ASSERT_NE(r.out.find("waits for approval by another principal"), std::string::npos) << describe(r);
  const std::string id = r.out.substr(r.out.find("execution ") + 10, 36);
  EXPECT_FALSE(fs::exists(dir + "/recovered"));
  // Who asked cannot approve.
  r = dr_as(kNobody, {"approve", id});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("a second principal must approve"), std::string::npos) << describe(r);
  EXPECT_FALSE(fs::exists(dir + "/recovered"));
  // Root approves: it runs here, onto the real target.
  r = dr_as(-1, {"approve", id});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(read_file(dir + "/recovered/src/etc/app.conf"), "production settings\n");
  auto cat = catalog::open_sqlite_catalog(dir + "/catalog.db");
  ASSERT_TRUE(cat.ok());
  auto row = (*cat)->get_dr_execution(id);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->status, catalog::ExecStatus::kCompleted);
  EXPECT_EQ(row->execution_type, catalog::DrExecutionType::kDisasterRecovery);
  EXPECT_EQ(row->approval_status, catalog::ApprovalStatus::kApproved);
  EXPECT_EQ(row->approved_by.rfind("cli:root@", 0), 0u) << row->approved_by;
  EXPECT_EQ(row->executed_by.rfind("cli:nobody@", 0), 0u) << row->executed_by;
  // Decided once.
  r = dr_as(-1, {"reject", id});
  EXPECT_NE(r.code, 0);
  // A rejected one never runs.
  fs::remove_all(dir + "/recovered");
  r = dr_as(kNobody, {"execute", "site-recovery", "--reason", "a test"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string id2 = r.out.substr(r.out.find("execution ") + 10, 36);
  r = dr_as(-1, {"reject", id2});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_FALSE(fs::exists(dir + "/recovered"));
  EXPECT_EQ((*cat)->get_dr_execution(id2)->status, catalog::ExecStatus::kCancelled);
  // The audit log holds all of it.
  auto audit = (*cat)->audit_records(0, 0, 100);
  ASSERT_TRUE(audit.ok());
  std::string actions;
  for (const auto& a : *audit) actions += a.action + " ";
  EXPECT_EQ(actions, "dr.execute dr.approve dr.execute dr.reject ");
}

}  // namespace
}  // namespace haven

// tests/catalog/catalog_test_util.h — shared by the catalog tests: a temporary directory, an
// injectable clock, a raw SQLite connection to look at the file from outside the catalog, and
// sample rows. Test-only: everything is in an anonymous namespace, one copy per test file.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "catalog/catalog.h"
#include "catalog/sqlite_catalog.h"

namespace haven::catalog {
namespace {

namespace fs = std::filesystem;

// A directory removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "haven-catalog-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A clock the test moves by hand; starts at 2026-12-02T07:01:01.123456789Z.
class FakeClock {
 public:
  static constexpr TimeNs kStart = 1796194861123456789;
  std::function<TimeNs()> fn() {
    return [this] { return t_.load(); };
  }
  TimeNs now() const { return t_.load(); }
  void set(TimeNs t) { t_.store(t); }
  void advance(TimeNs d) { t_.fetch_add(d); }
  // Default options with this clock.
  SqliteOptions options() {
    SqliteOptions o;
    o.clock = fn();
    return o;
  }

 private:
  std::atomic<TimeNs> t_{kStart};
};

constexpr TimeNs kSecond = 1000000000;

std::unique_ptr<SqliteCatalog> open_or_die(const std::string& path, SqliteOptions options = {}) {
  auto c = SqliteCatalog::open(path, options);
  if (!c.ok()) {
    ADD_FAILURE() << "open " << path << ": " << c.error().message();
    return nullptr;
  }
  return std::move(c).value();
}

// A connection of our own to the catalog's file, as another process (the sqlite3 shell) has.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      ADD_FAILURE() << "raw open " << path << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }

  // Runs statements; returns SQLite's error message, empty on success.
  std::string exec(const std::string& sql) {
    char* msg = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg);
    std::string out = rc == SQLITE_OK ? "" : (msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return out;
  }
  void must(const std::string& sql) {
    std::string err = exec(sql);
    ASSERT_EQ(err, "") << sql;
  }
  // Every row of `sql`, columns joined with '|' (NULL as "NULL").
  std::vector<std::string> rows(const std::string& sql) {
    std::vector<std::string> out;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "prepare " << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(st); i++) {
        if (i) row += "|";
        const unsigned char* t = sqlite3_column_text(st, i);
        row += t ? reinterpret_cast<const char*>(t) : "NULL";
      }
      out.push_back(row);
    }
    sqlite3_finalize(st);
    return out;
  }
  std::string one(const std::string& sql) {
    auto r = rows(sql);
    return r.empty() ? "<no row>" : r[0];
  }
  int64_t count(const std::string& table) {
    return std::stoll(one("SELECT count(*) FROM " + table));
  }

 private:
  sqlite3* db_ = nullptr;
};

PolicyRow sample_policy(const std::string& name) {
  PolicyRow p;
  p.name = name;
  p.description = "nightly files of " + name;
  p.resource_type = ResourceType::kFiles;
  p.resource_filters = {{"include", {"/srv/" + name}}, {"exclude", {"*.tmp"}}};
  p.schedule_cron = "0 3 * * *";
  p.timezone = "Europe/Berlin";
  p.retention_daily = 14;
  p.backup_type = BackupType::kIncremental;
  p.bandwidth_limit_mbps = 100;
  p.source = PolicySource::kConfig;
  p.spec = {{"name", name}, {"paths", {"/srv/" + name}}, {"schedule", "0 3 * * *"}};
  return p;
}

LocationRow sample_location(const std::string& name) {
  LocationRow l;
  l.name = name;
  l.description = "bucket " + name;
  l.storage_type = StorageType::kS3;
  l.primary_region = "eu-central-1";
  l.secondary_regions = {"eu-west-1", "us-east-1"};
  l.connection_config = {{"bucket", name}, {"endpoint", "https://s3.example"}};
  l.total_capacity_gb = 1000;
  l.used_capacity_gb = 12;
  l.data_residency_requirements = {"EU"};
  l.compliance_certifications = {"ISO 27001", "SOC 2"};
  return l;
}

ExecutionRow sample_execution(std::optional<std::string> policy_id, TimeNs started_at = 0,
                              ExecStatus status = ExecStatus::kRunning) {
  ExecutionRow e;
  e.policy_id = std::move(policy_id);
  e.backup_type = BackupType::kFull;
  e.status = status;
  e.started_at = started_at;
  e.backup_location = "s3:https://s3.example/bucket/repo";
  e.trigger = Trigger::kSchedule;
  e.server_instance = "server-A";
  return e;
}

EventRow event(const std::string& kind, std::optional<std::string> operation_id = std::nullopt,
               nlohmann::json payload = nlohmann::json::object()) {
  EventRow e;
  e.kind = kind;
  e.operation_id = std::move(operation_id);
  e.payload = std::move(payload);
  return e;
}

std::string describe(const Error& e) {
  return std::string(code_name(e.code())) + ": " + e.message();
}

}  // namespace
}  // namespace haven::catalog

#pragma GCC diagnostic pop

// The SQLite catalog's file: schema version and migrations (fresh, from an older version, a
// failed migration changing nothing, a newer catalog refused), the connection settings (WAL,
// synchronous, foreign keys, busy timeout, query_only readers), files that are not ours, path
// errors, the enumerations matching the schema's CHECKs, and times stored as UTC nanoseconds.
#include "catalog/schema.h"

#include <sys/stat.h>

#include <fstream>
#include <regex>

#include "catalog_test_util.h"

namespace haven::catalog {
namespace {

const std::vector<std::string> kTables = {"alert_notifications",
                                          "alerts",
                                          "api_tokens",
                                          "audit_log",
                                          "backup_executions",
                                          "backup_monitoring",
                                          "backup_policies",
                                          "backup_storage_locations",
                                          "disaster_recovery_executions",
                                          "disaster_recovery_plans",
                                          "events",
                                          "replication_regions",
                                          "restore_operations"};

std::vector<std::string> tables(RawDb& raw) {
  return raw.rows(
      "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
      "ORDER BY name");
}

// A catalog file at schema version 1, made the way a Haven of that version made it.
void make_version_1(const std::string& path) {
  RawDb raw(path);
  raw.must("PRAGMA journal_mode = WAL");
  raw.must(migrations().at(0).sql);
  raw.must("PRAGMA user_version = 1; PRAGMA application_id = " + std::to_string(kApplicationId));
}

TEST(Schema, MigratesAVersion2CatalogKeepingItsMonitors) {
  TempDir dir;
  std::string path = dir.file("catalog.db");
  {
    RawDb raw(path);
    raw.must("PRAGMA journal_mode = WAL");
    raw.must(migrations().at(0).sql);
    raw.must(migrations().at(1).sql);
    raw.must("PRAGMA user_version = 2; PRAGMA application_id = " + std::to_string(kApplicationId));
    raw.must("INSERT INTO backup_monitoring (id, monitor_name, monitor_type, check_frequency_minutes,"
             " alert_channels, created_at, updated_at) VALUES ('m-1', 'by-hand', 'integrity_check',"
             " 30, '[\"email\"]', 5, 6)");
  }
  auto c = open_or_die(path);
  ASSERT_TRUE(c);
  auto m = c->get_monitor("by-hand");
  ASSERT_TRUE(m.ok()) << describe(m.error());
  EXPECT_EQ(m->id, "m-1");
  EXPECT_EQ(m->monitor_type, MonitorType::kIntegrityCheck);
  EXPECT_EQ(m->check_frequency_minutes, 30);
  EXPECT_EQ(m->alert_channels, std::vector<std::string>{"email"});
  EXPECT_EQ(m->source, PolicySource::kApi);
  EXPECT_EQ(m->created_at, 5);
}

TEST(Schema, MigrationsAreNumberedInOrder) {
  ASSERT_GE(migrations().size(), 2u);
  for (size_t i = 0; i < migrations().size(); i++) EXPECT_EQ(migrations()[i].version, int(i) + 1);
  EXPECT_EQ(latest_schema_version(), int(migrations().size()));
}

TEST(Schema, FreshCatalogHasEveryTableAtTheLatestVersion) {
  TempDir dir;
  std::string path = dir.file("catalog.db");
  ASSERT_TRUE(open_or_die(path));
  RawDb raw(path);
  EXPECT_EQ(raw.one("PRAGMA user_version"), std::to_string(latest_schema_version()));
  EXPECT_EQ(raw.one("PRAGMA application_id"), std::to_string(kApplicationId));
  EXPECT_EQ(raw.one("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(tables(raw), kTables);
  // The seed's columns and Haven's, spot-checked.
  EXPECT_EQ(raw.one("SELECT count(*) FROM pragma_table_info('backup_executions') WHERE name IN "
                    "('execution_id', 'transfer_rate_mbps', 'integrity_check_status', "
                    "'snapshot_id', 'trigger', 'priority', 'scheduled_for', 'server_instance')"),
            "8");
  EXPECT_EQ(raw.one("SELECT count(*) FROM pragma_table_info('backup_policies') WHERE name IN "
                    "('schedule_cron', 'retention_yearly', 'source', 'spec', 'location_id')"),
            "5");
  EXPECT_EQ(raw.one("SELECT count(*) FROM pragma_table_info('restore_operations') WHERE name IN "
                    "('request_id', 'point_in_time', 'snapshot_id', 'request')"),
            "4");
  EXPECT_EQ(raw.one("PRAGMA integrity_check"), "ok");
}

TEST(Schema, ConnectionSettings) {
  TempDir dir;
  SqliteOptions opts;
  opts.busy_timeout = std::chrono::milliseconds(1234);
  auto c = open_or_die(dir.file("catalog.db"), opts);
  ASSERT_TRUE(c);
  auto pragma = [&](bool writer, const std::string& name) {
    auto v = c->connection_pragma(writer, name);
    EXPECT_TRUE(v.ok()) << name << ": " << (v.ok() ? "" : v.error().message());
    return v.ok() ? *v : -1;
  };
  EXPECT_EQ(pragma(true, "synchronous"), 2);  // FULL
  EXPECT_EQ(pragma(true, "foreign_keys"), 1);
  EXPECT_EQ(pragma(true, "busy_timeout"), 1234);
  EXPECT_EQ(pragma(true, "query_only"), 0);
  EXPECT_EQ(pragma(false, "foreign_keys"), 1);
  EXPECT_EQ(pragma(false, "busy_timeout"), 1234);
  EXPECT_EQ(pragma(false, "query_only"), 1);
}

TEST(Schema, ReopeningKeepsTheData) {
  TempDir dir;
  std::string path = dir.file("catalog.db");
  std::string id;
  {
    auto c = open_or_die(path);
    ASSERT_TRUE(c);
    auto p = c->create_policy(sample_policy("web"));
    ASSERT_TRUE(p.ok()) << describe(p.error());
    id = p->id;
  }
  auto c = open_or_die(path);
  ASSERT_TRUE(c);
  auto p = c->get_policy(id);
  ASSERT_TRUE(p.ok()) << describe(p.error());
  EXPECT_EQ(p->name, "web");
}

TEST(Schema, MigratesAVersion1CatalogKeepingItsRows) {
  TempDir dir;
  std::string path = dir.file("catalog.db");
  make_version_1(path);
  {
    RawDb raw(path);
    raw.must(
        "INSERT INTO backup_policies (id, name, resource_type, schedule_cron, spec, "
        "created_at, updated_at) VALUES ('p-1', 'old', 'files', '@daily', '{\"a\":1}', 5, 6)");
    raw.must(
        "INSERT INTO backup_executions (id, policy_id, execution_id, backup_type, status, "
        "started_at, backup_location, created_at) VALUES ('e-1', 'p-1', 'exec-old', 'full', "
        "'completed', 7, '/repo', 8)");
  }
  auto c = open_or_die(path);
  ASSERT_TRUE(c);
  {
    RawDb raw(path);
    EXPECT_EQ(raw.one("PRAGMA user_version"), std::to_string(latest_schema_version()));
    EXPECT_EQ(tables(raw), kTables);
  }
  auto p = c->get_policy_by_name("old");
  ASSERT_TRUE(p.ok()) << describe(p.error());
  EXPECT_EQ(p->spec, nlohmann::json({{"a", 1}}));
  EXPECT_EQ(p->created_at, 5);
  auto e = c->get_execution("exec-old");
  ASSERT_TRUE(e.ok()) << describe(e.error());
  EXPECT_EQ(e->status, ExecStatus::kCompleted);
  EXPECT_EQ(e->started_at, 7);
  // What version 2 added works.
  EXPECT_TRUE(c->append_event(event("catalog:migrated")).ok());
  EXPECT_TRUE(c->create_token("admin", Role::kAdmin, "hash-1").ok());
}

TEST(Schema, AFailedMigrationChangesNothing) {
  TempDir dir;
  std::string path = dir.file("catalog.db");
  make_version_1(path);
  {
    RawDb raw(path);
    // Someone made a table version 2 is about to create: its CREATE fails after the events
    // table was already created in the same transaction.
    raw.must("CREATE TABLE api_tokens (x INTEGER)");
  }
  auto c = SqliteCatalog::open(path, {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("schema version 2"), std::string::npos) << describe(c.error());
  EXPECT_NE(c.error().message().find(path), std::string::npos) << describe(c.error());
  RawDb raw(path);
  EXPECT_EQ(raw.one("PRAGMA user_version"), "1");
  EXPECT_EQ(raw.one("SELECT count(*) FROM sqlite_schema WHERE name = 'events'"), "0");
  EXPECT_EQ(raw.one("PRAGMA integrity_check"), "ok");
}

TEST(Schema, RefusesACatalogFromANewerHaven) {
  TempDir dir;
  std::string path = dir.file("catalog.db");
  ASSERT_TRUE(open_or_die(path));
  { RawDb(path).must("PRAGMA user_version = 99"); }
  auto c = SqliteCatalog::open(path, {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), Error::Code::kUnsupported) << describe(c.error());
  const std::string& m = c.error().message();
  EXPECT_NE(m.find("99"), std::string::npos) << m;
  EXPECT_NE(m.find("up to " + std::to_string(latest_schema_version())), std::string::npos) << m;
  EXPECT_NE(m.find(path), std::string::npos) << m;
  EXPECT_EQ(RawDb(path).one("PRAGMA user_version"), "99");
}

TEST(Schema, RefusesAnotherProgramsDatabaseWithoutTouchingIt) {
  TempDir dir;
  std::string path = dir.file("other.db");
  { RawDb(path).must("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi')"); }
  auto c = SqliteCatalog::open(path, {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), Error::Code::kInvalidArgument) << describe(c.error());
  EXPECT_NE(c.error().message().find("not a Haven catalog"), std::string::npos);
  RawDb raw(path);
  EXPECT_EQ(tables(raw), std::vector<std::string>{"notes"});
  EXPECT_EQ(raw.one("PRAGMA journal_mode"), "delete");  // not switched to WAL

  std::string marked = dir.file("marked.db");
  { RawDb(marked).must("PRAGMA application_id = 1234"); }
  auto m = SqliteCatalog::open(marked, {});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), Error::Code::kInvalidArgument) << describe(m.error());
}

TEST(Schema, RefusesAFileThatIsNotSqlite) {
  TempDir dir;
  std::string path = dir.file("catalog.db");
  { std::ofstream(path) << std::string(4096, 'x'); }
  auto c = SqliteCatalog::open(path, {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), Error::Code::kCorrupt) << describe(c.error());
  EXPECT_NE(c.error().message().find(path), std::string::npos) << describe(c.error());
}

TEST(Schema, PathErrorsAreNamed) {
  TempDir dir;
  std::string missing = dir.file("no/such/dir/catalog.db");
  auto c = open_sqlite_catalog(missing);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), Error::Code::kNotFound) << describe(c.error());
  EXPECT_NE(c.error().message().find(dir.file("no/such/dir")), std::string::npos)
      << describe(c.error());
  EXPECT_NE(c.error().message().find("does not exist"), std::string::npos);

  auto d = open_sqlite_catalog(dir.path().string());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), Error::Code::kInvalidArgument) << describe(d.error());
  EXPECT_NE(d.error().message().find("is a directory"), std::string::npos);

  auto e = open_sqlite_catalog("");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), Error::Code::kInvalidArgument);

  SqliteOptions bad;
  bad.read_connections = 0;
  auto f = open_sqlite_catalog(dir.file("x.db"), bad);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), Error::Code::kInvalidArgument);
}

TEST(Schema, ANewCatalogFileIsPrivate) {
  TempDir dir;
  std::string path = dir.file("catalog.db");
  ASSERT_TRUE(open_or_die(path));
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Every enumerator's name is accepted by the schema's CHECK constraints (they are written out
// in the migrations, so an enumerator added without a migration fails here), and a name that
// is not one is refused by the schema itself.
TEST(Schema, EnumerationsMatchTheSchemaChecks) {
  TempDir dir;
  std::string path = dir.file("catalog.db");
  FakeClock clock;
  auto c = open_or_die(path, clock.options());
  ASSERT_TRUE(c);
  for (ResourceType rt : all_values<ResourceType>()) {
    PolicyRow p = sample_policy("p-" + std::string(to_string(rt)));
    p.resource_type = rt;
    for (PolicySource s : all_values<PolicySource>()) {
      p.source = s;
      p.name = "p-" + std::string(to_string(rt)) + "-" + std::string(to_string(s));
      auto r = c->create_policy(p);
      EXPECT_TRUE(r.ok()) << to_string(rt) << ": " << describe(r.error());
    }
  }
  for (BackupType bt : all_values<BackupType>()) {
    for (ExecStatus st : all_values<ExecStatus>()) {
      for (Trigger t : all_values<Trigger>()) {
        for (Priority pr : all_values<Priority>()) {
          ExecutionRow e = sample_execution(std::nullopt, 0, st);
          e.backup_type = bt;
          e.trigger = t;
          e.priority = pr;
          auto r = c->create_execution(e);
          ASSERT_TRUE(r.ok()) << to_string(st) << "/" << to_string(t) << ": "
                              << describe(r.error());
          auto back = c->get_execution(r->id);
          ASSERT_TRUE(back.ok());
          EXPECT_EQ(back->status, st);
          EXPECT_EQ(back->trigger, t);
        }
      }
    }
  }
  for (IntegrityStatus is : all_values<IntegrityStatus>()) {
    ExecutionRow e = sample_execution(std::nullopt);
    e.integrity_check_status = is;
    EXPECT_TRUE(c->create_execution(e).ok()) << to_string(is);
  }
  for (RestoreType rt : all_values<RestoreType>()) {
    for (ExecStatus st : all_values<ExecStatus>()) {
      RestoreRow r;
      r.restore_type = rt;
      r.status = st;
      r.target_location = "/restore";
      auto made = c->create_restore(r);
      EXPECT_TRUE(made.ok()) << to_string(rt) << ": " << describe(made.error());
    }
  }
  for (StorageType s : all_values<StorageType>()) {
    for (HealthStatus h : all_values<HealthStatus>()) {
      LocationRow l =
          sample_location("l-" + std::string(to_string(s)) + "-" + std::string(to_string(h)));
      l.storage_type = s;
      l.health_status = h;
      auto r = c->upsert_location(l);
      EXPECT_TRUE(r.ok()) << to_string(s) << ": " << describe(r.error());
    }
  }
  for (Role role : all_values<Role>()) {
    EXPECT_TRUE(
        c->create_token(std::string(to_string(role)), role, "h-" + std::string(to_string(role)))
            .ok());
  }
  RawDb raw(path);
  EXPECT_NE(raw.exec("UPDATE backup_executions SET status = 'bogus'"), "");
  EXPECT_NE(raw.exec("UPDATE backup_executions SET \"trigger\" = 'cron'"), "");
  EXPECT_NE(raw.exec("UPDATE backup_policies SET spec = '{not json'"), "");
  EXPECT_NE(raw.exec("UPDATE backup_executions SET snapshot_id = 'XYZ'"), "");
  EXPECT_NE(raw.exec("UPDATE api_tokens SET role = 'root'"), "");
  EXPECT_NE(raw.exec("UPDATE backup_executions SET started_at = 'yesterday'"), "");  // STRICT
  EXPECT_EQ(parse_enum<ExecStatus>("catch_up"), std::nullopt);
  EXPECT_EQ(parse_enum<Trigger>("catch_up"), Trigger::kCatchUp);
  EXPECT_EQ(to_string(ExecStatus::kInterrupted), "interrupted");
}

// A value the schema would refuse, written with the checks switched off, is reported as
// corrupt, naming the column, instead of being misread.
TEST(Schema, AStoredValueThatDoesNotParseIsCorrupt) {
  TempDir dir;
  std::string path = dir.file("catalog.db");
  auto c = open_or_die(path);
  ASSERT_TRUE(c);
  auto e = c->create_execution(sample_execution(std::nullopt));
  ASSERT_TRUE(e.ok());
  {
    RawDb raw(path);
    raw.must("PRAGMA ignore_check_constraints = ON; UPDATE backup_executions SET status = 'bogus'");
  }
  auto back = c->get_execution(e->id);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().code(), Error::Code::kCorrupt);
  EXPECT_NE(back.error().message().find("backup_executions.status"), std::string::npos)
      << describe(back.error());
  EXPECT_NE(back.error().message().find("bogus"), std::string::npos);
}

// Times are stored as nanoseconds since the epoch in UTC: they come back exactly, whatever the
// process's time zone, and SQLite's own date functions read them as UTC.
TEST(Schema, TimesRoundTripExactlyInUtc) {
  const char* old_tz = getenv("TZ");
  std::string saved = old_tz ? old_tz : "";
  setenv("TZ", "Pacific/Kiritimati", 1);  // UTC+14: a local-time mistake would show
  tzset();

  TempDir dir;
  std::string path = dir.file("catalog.db");
  FakeClock clock;
  auto c = open_or_die(path, clock.options());
  ASSERT_TRUE(c);
  const TimeNs started = *parse_time("2026-12-02T07:01:01.123456789Z");
  const TimeNs fire = *parse_time("2026-12-02T07:00:00Z");
  const TimeNs done = *parse_time("2026-12-02T09:30:00.000000001+02:00");
  ExecutionRow e = sample_execution(std::nullopt, started, ExecStatus::kCompleted);
  e.scheduled_for = fire;
  e.completed_at = done;
  auto made = c->create_execution(e);
  ASSERT_TRUE(made.ok()) << describe(made.error());
  auto back = c->get_execution(made->id);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->started_at, started);
  EXPECT_EQ(back->scheduled_for, fire);
  EXPECT_EQ(back->completed_at, done);
  EXPECT_EQ(back->created_at, FakeClock::kStart);
  EXPECT_EQ(format_time(back->completed_at.value()), "2026-12-02T07:30:00.000000001Z");
  // The readable run ID carries the UTC second it started.
  EXPECT_EQ(made->execution_id.rfind("exec-20261202T070101Z-", 0), 0u) << made->execution_id;

  RawDb raw(path);
  EXPECT_EQ(raw.one("SELECT strftime('%Y-%m-%dT%H:%M:%SZ', started_at / 1000000000, 'unixepoch'), "
                    "started_at % 1000000000 FROM backup_executions"),
            "2026-12-02T07:01:01Z|123456789");

  // A time before 1970 is refused (TimeNs counts from the epoch; the catalog stores no such).
  ExecutionRow early = e;
  early.completed_at = -1;
  auto bad = c->create_execution(early);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Error::Code::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("completed_at"), std::string::npos);

  if (old_tz) {
    setenv("TZ", saved.c_str(), 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
}

}  // namespace
}  // namespace haven::catalog

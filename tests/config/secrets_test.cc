// Tests of secrets in haven.yaml: passwords and S3/Azure credentials from files and named
// environment variables, resolved into Secret values — and a planted, recognisable secret
// searched for in every output the module has (to_json of the model, every diagnostic, the
// Result's error, Secret's own formatting), also when the secret is written where it must not
// be (a plain setting, an inline credential, a password in conninfo).
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "config_test_util.h"

namespace haven::config {
namespace {

using test::env_of;
using test::lines_of;
using test::TempDir;
using test::with_dir;

constexpr const char* kPlanted = "PLANTED-SECRET-7f3a9c";

// Everything a Config can be turned into that a person or a client may see.
std::string every_output(const Checked<Config>& c) {
  std::string out = nlohmann::json(c.value).dump();
  for (const auto& l : c.value.locations) out += "\n" + nlohmann::json(l).dump();
  for (const auto& p : c.value.policies) out += "\n" + nlohmann::json(p).dump();
  for (const auto& d : c.diagnostics) {
    out += "\n" + d.format() + "\n" + nlohmann::json(d).dump();
  }
  if (!c.diagnostics.empty()) out += "\n" + config_error(c.diagnostics).message();
  return out;
}

TEST(ConfigSecrets, CredentialsFromEnvironmentAndFilesAreResolvedAndNeverShown) {
  TempDir dir;
  dir.write("pass", std::string(kPlanted) + "-password\n");
  dir.write("s3-secret", std::string(kPlanted) + "-file\r\nnot this line\n");
  const std::string text = with_dir(R"(locations:
  - name: prod
    storage_type: s3
    repository: s3:prod-bucket/haven
    password_file: @DIR@/pass
    settings: {HAVEN_S3_REGION: eu-west-1}
    credentials: {AWS_ACCESS_KEY_ID: {env: PROD_KEY_ID},
                  AWS_SECRET_ACCESS_KEY: {file: @DIR@/s3-secret}}
  - name: azure
    repository: azure:backups/host1
    password_env: AZ_REPO_PASSWORD
    credentials:
      AZURE_STORAGE_CONNECTION_STRING: {env: AZ_CONN}
)",
                                    dir.path());
  const auto env = env_of({{"PROD_KEY_ID", std::string(kPlanted) + "-env"},
                           {"AZ_REPO_PASSWORD", std::string(kPlanted) + "-azpw"},
                           {"AZ_CONN", std::string(kPlanted) + "-conn"}});
  Checked<Config> c = check_config(text, "haven.yaml", env);
  ASSERT_TRUE(c.ok()) << lines_of(c.diagnostics)[0];

  const Location& prod = c.value.locations[0];
  EXPECT_EQ(prod.password.value.reveal(), std::string(kPlanted) + "-password");
  EXPECT_EQ(prod.credentials.at("AWS_ACCESS_KEY_ID").value.reveal(),
            std::string(kPlanted) + "-env");
  EXPECT_EQ(prod.credentials.at("AWS_SECRET_ACCESS_KEY").value.reveal(),
            std::string(kPlanted) + "-file");  // the first line, without its "\r\n"
  EXPECT_EQ(prod.settings.at("HAVEN_S3_REGION"), "eu-west-1");
  const Location& azure = c.value.locations[1];
  EXPECT_EQ(azure.password.kind, SecretRef::Kind::kEnv);
  EXPECT_EQ(azure.password.value.reveal(), std::string(kPlanted) + "-azpw");
  EXPECT_EQ(azure.backend_setting("AZURE_STORAGE_CONNECTION_STRING"),
            std::string(kPlanted) + "-conn");

  const std::string out = every_output(c);
  EXPECT_EQ(out.find(kPlanted), std::string::npos) << out;
  // What the JSON does show: where each secret comes from.
  nlohmann::json j = prod;
  EXPECT_EQ(j["credentials"]["AWS_ACCESS_KEY_ID"],
            (nlohmann::json{{"env", "PROD_KEY_ID"}, {"value", "***"}}));
  EXPECT_EQ(j["credentials"]["AWS_SECRET_ACCESS_KEY"],
            (nlohmann::json{{"file", dir.file("s3-secret")}, {"value", "***"}}));
  EXPECT_EQ(j["password"], (nlohmann::json{{"file", dir.file("pass")}, {"value", "***"}}));
  EXPECT_EQ(j["settings"], (nlohmann::json{{"HAVEN_S3_REGION", "eu-west-1"}}));

  // The same file with a problem elsewhere: the error output still holds no secret.
  Checked<Config> bad = check_config(text + "policies: [{name: x}]\n", "haven.yaml", env);
  ASSERT_FALSE(bad.ok());
  const std::string bad_out = every_output(bad);
  EXPECT_EQ(bad_out.find(kPlanted), std::string::npos) << bad_out;
}

TEST(ConfigSecrets, SecretPrintsAsStars) {
  Secret s{std::string(kPlanted)};
  EXPECT_EQ(s.reveal(), kPlanted);
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "***");
  EXPECT_EQ(to_string(s), "***");
  EXPECT_EQ(nlohmann::json(s).dump(), "\"***\"");
  EXPECT_EQ(::testing::PrintToString(s), "***");  // gtest's failure messages
  SecretRef ref{SecretRef::Kind::kEnv, "X", s};
  EXPECT_EQ(::testing::PrintToString(ref).find(kPlanted), std::string::npos);

  Secret copy = s;
  EXPECT_TRUE(copy == s);
  Secret moved = std::move(copy);
  EXPECT_TRUE(moved == s);
  EXPECT_TRUE(copy.empty());  // NOLINT: the moved-from secret is wiped
  EXPECT_FALSE(Secret("other") == s);
  EXPECT_FALSE(Secret("PLANTED-SECRET-7f3a9C") == s);
}

TEST(ConfigSecrets, SecretsWrittenWhereTheyMustNotBeAreRefusedWithoutBeingQuoted) {
  TempDir dir;
  dir.write("pass", "pw\n");
  const std::string text = with_dir(R"(locations:
  - name: prod
    repository: s3:bucket/prefix
    password_file: @DIR@/pass
    password: PLANTED-SECRET-7f3a9c
    settings: {AWS_SECRET_ACCESS_KEY: PLANTED-SECRET-7f3a9c}
    credentials:
      AWS_ACCESS_KEY_ID: PLANTED-SECRET-7f3a9c
      AWS_SESSION_TOKEN: {value: PLANTED-SECRET-7f3a9c}
policies:
  - name: pg
    resource_type: database
    database: {pgdata: /pg, conninfo: "host=db user=app password=PLANTED-SECRET-7f3a9c"}
    location: prod
    schedules: []
  - name: pg2
    resource_type: database
    database: {pgdata: /pg, conninfo: "postgresql://app:PLANTED-SECRET-7f3a9c@db/app"}
    location: prod
    schedules: []
)",
                                    dir.path());
  Checked<Config> c = check_config(text, "haven.yaml", env_of({}));
  EXPECT_EQ(lines_of(c.diagnostics),
            (std::vector<std::string>{
                "haven.yaml:5:5: locations[0].password: unknown key 'password' (fix: remove it; "
                "the keys here are name, description, primary_region, storage_type, repository, "
                "password_file, password_env, settings, credentials, capacity_gb, secondary_regions, "
      "replication)",
                "haven.yaml:6:16: locations[0].settings.AWS_SECRET_ACCESS_KEY: "
                "AWS_SECRET_ACCESS_KEY holds a secret: it cannot be written in haven.yaml (fix: "
                "move it to credentials as AWS_SECRET_ACCESS_KEY: {env: VARIABLE} or {file: PATH})",
                "haven.yaml:8:26: locations[0].credentials.AWS_ACCESS_KEY_ID: must be {env: "
                "VARIABLE} or {file: PATH} (fix: a credential's value is never written in "
                "haven.yaml: put it in a file or in the server's environment and name that here)",
                "haven.yaml:9:26: locations[0].credentials.AWS_SESSION_TOKEN: names no source "
                "(fix: write {env: VARIABLE} or {file: PATH})",
                "haven.yaml:9:27: locations[0].credentials.AWS_SESSION_TOKEN.value: unknown key "
                "'value' (fix: remove it; the keys here are env, file)",
                "haven.yaml:13:39: policies[0].database.conninfo: holds a password, which would "
                "then sit in the configuration and be shown by the API (fix: remove it and give "
                "the password in the server user's ~/.pgpass (or the file PGPASSFILE names))",
                "haven.yaml:18:39: policies[1].database.conninfo: holds a password, which would "
                "then sit in the configuration and be shown by the API (fix: remove it and give "
                "the password in the server user's ~/.pgpass (or the file PGPASSFILE names))",
            }));
  const std::string out = every_output(c);
  EXPECT_EQ(out.find(kPlanted), std::string::npos) << out;
}

TEST(ConfigSecrets, UnsetVariablesAreNamedAndUnreadableFilesNamedWithTheirPath) {
  TempDir dir;
  dir.write("empty", "\nPLANTED-SECRET-7f3a9c on the second line\n");
  ::mkdir(dir.file("a-dir").c_str(), 0700);
  const std::string text = with_dir(R"(locations:
  - name: a
    repository: /srv/a
    password_env: HAVEN_A_PASSWORD
  - name: b
    repository: /srv/b
    password_file: @DIR@/missing
  - name: c
    repository: s3:bucket/c
    password_file: @DIR@/empty
    credentials:
      AWS_ACCESS_KEY_ID: {env: UNSET_KEY_ID}
      AWS_SECRET_ACCESS_KEY: {file: @DIR@/a-dir}
  - name: d
    repository: /srv/d
    password_env: "not a name"
  - name: e
    repository: /srv/e
    password_file: relative/pass
)",
                                    dir.path());
  // An empty value counts as unset.
  Checked<Config> c = check_config(text, "haven.yaml", env_of({{"UNSET_KEY_ID", ""}}));
  const std::string d = dir.path();
  EXPECT_EQ(
      lines_of(c.diagnostics),
      (std::vector<std::string>{
          "haven.yaml:4:19: locations[0].password_env: environment variable HAVEN_A_PASSWORD is "
          "not set (or is empty) (fix: set it in the server's environment (systemd: "
          "Environment= or EnvironmentFile=), or use password_file)",
          "haven.yaml:7:20: locations[1].password_file: '" + d +
              "/missing' does not exist (fix: create it with the password on its first line, "
              "readable only by the server's user (chmod 600), or correct the path)",
          "haven.yaml:10:20: locations[2].password_file: '" + d +
              "/empty' is empty (its first line is the password) (fix: write the password on "
              "the file's first line)",
          "haven.yaml:12:32: locations[2].credentials.AWS_ACCESS_KEY_ID.env: environment "
          "variable UNSET_KEY_ID is not set (or is empty) (fix: set it in the server's "
          "environment (systemd: Environment= or EnvironmentFile=), or use {file: PATH})",
          "haven.yaml:13:37: locations[2].credentials.AWS_SECRET_ACCESS_KEY.file: '" + d +
              "/a-dir' is a directory, not a file (fix: give the path of a file)",
          "haven.yaml:16:19: locations[3].password_env: 'not a name' is not an environment "
          "variable's name (fix: use letters, digits and '_', not starting with a digit)",
          "haven.yaml:19:20: locations[4].password_file: must be an absolute path, not "
          "'relative/pass' (fix: write the whole path, e.g. /etc/haven/secret)",
      }));
  EXPECT_EQ(every_output(c).find(kPlanted), std::string::npos);
}

// Permission denied, as a user who may not read the file: the loader runs in a child that has
// dropped root (the tests run as root, who may read anything).
TEST(ConfigSecrets, PermissionDeniedIsNamedWithThePath) {
  TempDir dir;
  const std::string pass = dir.write("pass", "pw\n");
  ::chmod(dir.path().c_str(), 0755);  // the directory may be entered, the file (0600) not read
  const std::string text = with_dir(R"(locations:
  - {name: a, repository: /srv/a, password_file: @DIR@/pass}
)",
                                    dir.path());
  std::string expected = "haven.yaml:2:50: locations[0].password_file: '" + pass +
                         "' cannot be read: permission denied (fix: make it readable by the "
                         "user the server runs as (and by nobody else: chmod 600))";
  if (::geteuid() != 0) {
    Checked<Config> c = check_config(text, "haven.yaml", {});
    EXPECT_EQ(lines_of(c.diagnostics), std::vector<std::string>{expected});
    return;
  }
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) _exit(2);
    Checked<Config> c = check_config(text, "haven.yaml", {});
    std::string out;
    for (const auto& l : lines_of(c.diagnostics)) out += l + "\n";
    (void)!::write(fds[1], out.data(), out.size());
    _exit(0);
  }
  ::close(fds[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) {
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child could not drop root";
  EXPECT_EQ(got, expected + "\n");
}

TEST(ConfigSecrets, CredentialNamesAreCheckedAgainstTheLocationsKind) {
  TempDir dir;
  dir.write("pass", "pw\n");
  const std::string text = with_dir(R"(locations:
  - name: s3
    repository: s3:bucket/x
    password_file: @DIR@/pass
    settings: {AWS_REGOIN: eu-west-1, HAVEN_S3_PATH_STYLE: ""}
    credentials:
      AZURE_STORAGE_KEY: {env: K}
      AWS_SECRET_ACCESS_KEY: {env: K, file: @DIR@/pass}
  - name: disk
    repository: /srv/disk
    password_file: @DIR@/pass
    settings: {HOME: /root}
    credentials: {AWS_ACCESS_KEY_ID: {env: K}}
  - name: blob
    repository: azure:c/p
    password_file: @DIR@/pass
    settings: {AZURE_STORAGE_ACCOUNT: acct}
    credentials: {AZURE_STORAGE_ACCOUNT: {env: K}, azure_storage_key: {env: K}}
)",
                                    dir.path());
  Checked<Config> c = check_config(text, "haven.yaml", env_of({{"K", "v"}}));
  EXPECT_EQ(lines_of(c.diagnostics),
            (std::vector<std::string>{
                "haven.yaml:5:16: locations[0].settings.AWS_REGOIN: 'AWS_REGOIN' is not a "
                "setting of s3 locations (fix: did you mean 'AWS_REGION'?)",
                "haven.yaml:5:60: locations[0].settings.HAVEN_S3_PATH_STYLE: is empty (fix: give "
                "a value, or remove the setting)",
                "haven.yaml:7:7: locations[0].credentials.AZURE_STORAGE_KEY: 'AZURE_STORAGE_KEY' "
                "is not a setting of s3 locations (fix: the settings are AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, "
                "AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, HOME, AWS_REGION, "
                "AWS_DEFAULT_REGION, HAVEN_S3_REGION, HAVEN_S3_PATH_STYLE, HAVEN_S3_CA_FILE, "
                "AWS_CA_BUNDLE)",
                "haven.yaml:8:30: locations[0].credentials.AWS_SECRET_ACCESS_KEY: gives both env "
                "and file (fix: keep one of them)",
                "haven.yaml:12:15: locations[1].settings: on_premise locations take no settings "
                "(fix: remove settings (they configure s3, gcp_storage and azure_blob locations))",
                "haven.yaml:13:18: locations[1].credentials: on_premise locations take no "
                "credentials (fix: remove credentials (they configure s3, gcp_storage and "
                "azure_blob locations))",
                "haven.yaml:18:19: locations[2].credentials.AZURE_STORAGE_ACCOUNT: "
                "AZURE_STORAGE_ACCOUNT is given in settings too (fix: keep one of them)",
                "haven.yaml:18:52: locations[2].credentials.azure_storage_key: "
                "'azure_storage_key' is not a setting of azure_blob locations (fix: did you mean "
                "'AZURE_STORAGE_KEY'?)",
            }));
}

}  // namespace
}  // namespace haven::config

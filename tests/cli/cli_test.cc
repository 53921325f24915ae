// End-to-end tests of the haven command line: each test runs the real binary (HAVEN_BINARY) in
// a child process with a controlled environment and checks exit codes, stdout and stderr.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Env = std::vector<std::pair<std::string, std::string>>;

constexpr int kTimeoutMs = 20000;
const char* const kKdf[] = {"--kdf-memory", "8", "--kdf-iterations", "1"};

struct RunResult {
  int code = -1;
  std::string out, err;
  std::string tty;  // everything the pty master read (pty runs only)
  bool timed_out = false;
};

std::string describe(const RunResult& r) {
  std::ostringstream os;
  os << "exit " << r.code << (r.timed_out ? " (timed out)" : "") << "\n--- stdout ---\n"
     << r.out << "\n--- stderr ---\n"
     << r.err;
  if (!r.tty.empty()) os << "\n--- tty ---\n" << r.tty;
  return os.str();
}

// The parent's environment without any HAVEN_* variable, plus `extra`.
std::vector<std::string> make_env(const Env& extra) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string s = *e;
    if (s.rfind("HAVEN_", 0) == 0) continue;
    auto eq = s.find('=');
    std::string key = s.substr(0, eq);
    bool overridden = std::any_of(extra.begin(), extra.end(),
                                  [&](const auto& kv) { return kv.first == key; });
    if (!overridden) out.push_back(s);
  }
  for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

struct RunOptions {
  Env env;
  // Start the child in a new session, so it has no controlling terminal and /dev/tty cannot
  // be opened (a test must never hang on a password prompt).
  bool new_session = true;
  // Give the child a pty as controlling terminal (and stdin); each password prompt that
  // appears on it is answered, once echo is off, with the next of these lines.
  bool pty = false;
  std::vector<std::string> answers;
};

// Runs HAVEN_BINARY with `args`; captures stdout, stderr, the exit code (128+signal if killed).
RunResult run(const std::vector<std::string>& args, const RunOptions& o = {}) {
  RunResult r;
  std::vector<std::string> argv_s{HAVEN_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s = make_env(o.env);
  std::vector<char*> argv = c_strings(argv_s);
  std::vector<char*> envp = c_strings(env_s);

  int master = -1;
  std::string slave_name;
  if (o.pty) {
    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
      ADD_FAILURE() << "cannot open a pty: " << std::strerror(errno);
      return r;
    }
    fcntl(master, F_SETFD, FD_CLOEXEC);
    slave_name = ptsname(master);
  }
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return r;
  }

  pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return r;
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    if (o.new_session || o.pty) setsid();
    int in;
    if (o.pty) {
      in = open(slave_name.c_str(), O_RDWR);  // becomes the controlling terminal...
      if (in < 0) _exit(126);
      ioctl(in, TIOCSCTTY, 0);  // ...and this makes sure of it
    } else {
      in = open("/dev/null", O_RDONLY);
    }
    dup2(in, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    if (in > 2) close(in);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);

  struct Stream {
    int fd;
    std::string* sink;
    bool open = true;
  };
  std::vector<Stream> streams{{out_pipe[0], &r.out}, {err_pipe[0], &r.err}};
  if (o.pty) streams.push_back({master, &r.tty});

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
  size_t answered = 0;
  auto prompts_seen = [&] {
    size_t n = 0;
    for (size_t p = r.tty.find("enter "); p != std::string::npos; p = r.tty.find("enter ", p + 1)) {
      n++;
    }
    return n;
  };
  for (;;) {
    bool any_open = std::any_of(streams.begin(), streams.end(), [](auto& s) { return s.open; });
    if (!any_open) break;
    if (std::chrono::steady_clock::now() > deadline) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    int wait_ms = 100;
    if (o.pty && answered < o.answers.size() && prompts_seen() > answered) {
      // A prompt is waiting for its answer: send it only once echo is off, because the
      // prompt's tcsetattr(TCSAFLUSH) discards input typed before that. On Linux, tcgetattr on
      // the master reports the slave's settings.
      termios t{};
      if (tcgetattr(master, &t) == 0 && (t.c_lflag & ECHO) == 0) {
        std::string line = o.answers[answered++] + "\n";
        if (write(master, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
          ADD_FAILURE() << "writing to the pty failed";
        }
        continue;
      }
      wait_ms = 5;
    }
    std::vector<pollfd> pfds;
    std::vector<Stream*> which;
    for (auto& s : streams) {
      if (!s.open) continue;
      pfds.push_back({s.fd, POLLIN, 0});
      which.push_back(&s);
    }
    int n = poll(pfds.data(), pfds.size(), wait_ms);
    if (n < 0 && errno != EINTR) {
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      kill(pid, SIGKILL);
      break;
    }
    for (size_t i = 0; n > 0 && i < pfds.size(); i++) {
      if (pfds[i].revents == 0) continue;
      char buf[4096];
      ssize_t got = read(pfds[i].fd, buf, sizeof buf);
      if (got > 0) {
        which[i]->sink->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        which[i]->open = false;  // EOF, or EIO on the master once the child's tty is closed
      }
    }
  }
  for (auto& s : streams) close(s.fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    r.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.code = 128 + WTERMSIG(status);
  }
  return r;
}

RunResult run(const std::vector<std::string>& args, const Env& env) {
  RunOptions o;
  o.env = env;
  return run(args, o);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

// Objects are stored read-only (0444); make them writable to tamper with them.
void flip_byte(const fs::path& p, long offset_from_start, uint8_t new_value, bool set = true) {
  fs::permissions(p, fs::perms::owner_write, fs::perm_options::add);
  std::fstream f(p, std::ios::binary | std::ios::in | std::ios::out);
  ASSERT_TRUE(f) << p;
  f.seekg(offset_from_start);
  char c = 0;
  f.read(&c, 1);
  c = set ? static_cast<char>(new_value) : static_cast<char>(c ^ new_value);
  f.seekp(offset_from_start);
  f.write(&c, 1);
}

// Relative path -> contents ("<dir>" for directories), recursively.
std::map<std::string, std::string> tree_of(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    std::string rel = fs::relative(e.path(), root).string();
    out[rel] = e.is_directory() ? "<dir>" : read_file(e.path());
  }
  return out;
}

std::vector<std::string> key_ids(const fs::path& repo) {
  std::vector<std::string> ids;
  for (const auto& e : fs::directory_iterator(repo / "keys")) {
    std::string n = e.path().filename().string();
    if (!n.empty() && n[0] != '.') ids.push_back(n);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/haven-cli-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (dir_.empty()) return;
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Creates a repository at `path` with password `pw` (fast KDF); returns its key ID.
  std::string init_repo(const fs::path& path, const std::string& pw,
                        std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"-r", path.string(), "init"};
    args.insert(args.end(), std::begin(kKdf), std::end(kKdf));
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = run(args, Env{{"HAVEN_PASSWORD", pw}});
    EXPECT_EQ(r.code, 0) << describe(r);
    EXPECT_TRUE(fs::exists(path / "config"));
    auto ids = key_ids(path);
    EXPECT_EQ(ids.size(), 1u);
    return ids.empty() ? "" : ids[0];
  }

  // Runs `args` against `repo` with HAVEN_PASSWORD=pw (plus `more` environment).
  RunResult with_pw(const fs::path& repo, const std::string& pw, std::vector<std::string> args,
                    Env more = {}) {
    args.insert(args.begin(), {"-r", repo.string()});
    more.emplace_back("HAVEN_PASSWORD", pw);
    return run(args, more);
  }

  fs::path dir_;
};

// ---------------------------------------------------------------------------------------------

TEST_F(CliTest, InitThenCatConfigPrintsJson) {
  fs::path repo = dir_ / "repo";
  init_repo(repo, "pw1", {"--chunk-min", "64", "--chunk-avg", "256", "--chunk-max", "1024"});
  RunResult r = with_pw(repo, "pw1", {"cat", "config"});
  ASSERT_EQ(r.code, 0) << describe(r);
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_TRUE(contains(r.out, "\"version\": 1")) << r.out;
  EXPECT_EQ(j.at("version"), 1);
  EXPECT_EQ(j.at("chunker").at("min"), 64 * 1024);
  EXPECT_EQ(j.at("chunker").at("avg"), 256 * 1024);
  EXPECT_EQ(j.at("chunker").at("max"), 1024 * 1024);
  EXPECT_TRUE(j.contains("pack_size"));
  EXPECT_TRUE(j.contains("id"));
}

// libcurl and libpq (and the thirty libraries they bring) are opened only by what uses them:
// a backup to a local disk loads neither, which took ~1.4 ms off every command's start (the
// dynamic loader's own log of what it maps, LD_DEBUG=files, is the witness).
TEST_F(CliTest, ALocalBackupLoadsNeitherLibcurlNorLibpq) {
  fs::path repo = dir_ / "repo";
  init_repo(repo, "pw");
  fs::create_directories(dir_ / "src");
  write_file(dir_ / "src" / "f", "some content");
  RunResult r = with_pw(repo, "pw", {"backup", (dir_ / "src").string()}, Env{{"LD_DEBUG", "files"}});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "file=libzstd.so.1")) << "the loader's log is there: " << r.err.substr(0, 400);
  EXPECT_FALSE(contains(r.err, "libcurl.so")) << "libcurl was loaded";
  EXPECT_FALSE(contains(r.err, "libpq.so")) << "libpq was loaded";
}

TEST_F(CliTest, InitPrintsConfirmationUnlessQuiet) {
  std::vector<std::string> kdf(std::begin(kKdf), std::end(kKdf));
  std::vector<std::string> a{"-r", (dir_ / "a").string(), "init"};
  a.insert(a.end(), kdf.begin(), kdf.end());
  RunResult loud = run(a, Env{{"HAVEN_PASSWORD", "pw"}});
  ASSERT_EQ(loud.code, 0) << describe(loud);
  EXPECT_TRUE(contains(loud.out, "created Haven repository")) << loud.out;

  std::vector<std::string> b{"--quiet", "-r", (dir_ / "b").string(), "init"};
  b.insert(b.end(), kdf.begin(), kdf.end());
  RunResult quiet = run(b, Env{{"HAVEN_PASSWORD", "pw"}});
  ASSERT_EQ(quiet.code, 0) << describe(quiet);
  EXPECT_EQ(quiet.out, "");
  EXPECT_TRUE(fs::exists(dir_ / "b" / "config"));
}

TEST_F(CliTest, PasswordSources) {
  fs::path repo = dir_ / "repo";
  init_repo(repo, "correct horse");
  const std::string r_ = repo.string();

  // --password-file: only the first line counts, its newline is not part of the password.
  fs::path multi = dir_ / "pw-multi";
  write_file(multi, "correct horse\nsecond line is ignored\n");
  RunResult r = run({"-r", r_, "--password-file", multi.string(), "cat", "config"}, Env{});
  EXPECT_EQ(r.code, 0) << describe(r);

  fs::path bare = dir_ / "pw-bare";
  write_file(bare, "correct horse");
  r = run({"-r", r_, "--password-file", bare.string(), "cat", "config"}, Env{});
  EXPECT_EQ(r.code, 0) << describe(r);

  fs::path crlf = dir_ / "pw-crlf";
  write_file(crlf, "correct horse\r\n");
  r = run({"-r", r_, "--password-file", crlf.string(), "cat", "config"}, Env{});
  EXPECT_EQ(r.code, 0) << describe(r);

  fs::path wrong = dir_ / "pw-wrong";
  write_file(wrong, "correct horsE\ncorrect horse\n");
  r = run({"-r", r_, "--password-file", wrong.string(), "cat", "config"}, Env{});
  EXPECT_EQ(r.code, 12) << describe(r);

  fs::path empty = dir_ / "pw-empty";
  write_file(empty, "\ncorrect horse\n");
  r = run({"-r", r_, "--password-file", empty.string(), "cat", "config"}, Env{});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "empty")) << r.err;

  r = run({"-r", r_, "--password-file", (dir_ / "missing").string(), "cat", "config"}, Env{});
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "missing")) << r.err;

  // HAVEN_PASSWORD_FILE and HAVEN_PASSWORD.
  r = run({"-r", r_, "cat", "config"}, Env{{"HAVEN_PASSWORD_FILE", multi.string()}});
  EXPECT_EQ(r.code, 0) << describe(r);
  r = run({"-r", r_, "cat", "config"}, Env{{"HAVEN_PASSWORD_FILE", wrong.string()}});
  EXPECT_EQ(r.code, 12) << describe(r);
  r = run({"-r", r_, "cat", "config"}, Env{{"HAVEN_PASSWORD", "correct horse"}});
  EXPECT_EQ(r.code, 0) << describe(r);
  r = run({"-r", r_, "cat", "config"}, Env{{"HAVEN_PASSWORD", "wrong horse"}});
  EXPECT_EQ(r.code, 12) << describe(r);

  // Precedence: a password file beats HAVEN_PASSWORD, in both directions.
  r = run({"-r", r_, "--password-file", multi.string(), "cat", "config"},
          Env{{"HAVEN_PASSWORD", "wrong horse"}});
  EXPECT_EQ(r.code, 0) << describe(r);
  r = run({"-r", r_, "--password-file", wrong.string(), "cat", "config"},
          Env{{"HAVEN_PASSWORD", "correct horse"}});
  EXPECT_EQ(r.code, 12) << describe(r);
  r = run({"-r", r_, "cat", "config"},
          Env{{"HAVEN_PASSWORD_FILE", multi.string()}, {"HAVEN_PASSWORD", "wrong horse"}});
  EXPECT_EQ(r.code, 0) << describe(r);
  // --password-file on the command line beats HAVEN_PASSWORD_FILE.
  r = run({"-r", r_, "--password-file", multi.string(), "cat", "config"},
          Env{{"HAVEN_PASSWORD_FILE", wrong.string()}});
  EXPECT_EQ(r.code, 0) << describe(r);

  // The repository can also come from HAVEN_REPOSITORY, or be given as local:/path.
  r = run({"cat", "config"}, Env{{"HAVEN_REPOSITORY", r_}, {"HAVEN_PASSWORD", "correct horse"}});
  EXPECT_EQ(r.code, 0) << describe(r);
  r = run({"-r", "local:" + r_, "cat", "config"}, Env{{"HAVEN_PASSWORD", "correct horse"}});
  EXPECT_EQ(r.code, 0) << describe(r);
}

TEST_F(CliTest, NoPasswordAndNoTerminalIsAUsageError) {
  fs::path repo = dir_ / "repo";
  init_repo(repo, "pw1");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"-r", repo.string(), "cat", "config"}, {"-r", repo.string(), "key", "list"}}) {
    RunOptions o;
    o.new_session = true;  // no controlling terminal: /dev/tty cannot be opened
    RunResult r = run(args, o);
    EXPECT_EQ(r.code, 2) << describe(r);
    EXPECT_TRUE(contains(r.err, "--password-file")) << r.err;
    EXPECT_TRUE(contains(r.err, "HAVEN_PASSWORD")) << r.err;
    EXPECT_EQ(r.out, "");
  }
  // init, too, refuses rather than creating a repository without a password.
  RunOptions o;
  o.new_session = true;
  std::vector<std::string> args{"-r", (dir_ / "new").string(), "init"};
  args.insert(args.end(), std::begin(kKdf), std::end(kKdf));
  RunResult r = run(args, o);
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "--password-file")) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "new" / "config"));
}

TEST_F(CliTest, InteractivePromptDoesNotEcho) {
  fs::path repo = dir_ / "repo";
  const std::string pw = "Pr0mpt-Secret-7731";
  init_repo(repo, pw);

  RunOptions o;
  o.pty = true;
  o.answers = {pw};
  RunResult r = run({"-r", repo.string(), "cat", "config"}, o);
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "\"version\": 1")) << r.out;
  EXPECT_TRUE(contains(r.tty, "enter password for repository")) << r.tty;
  EXPECT_FALSE(contains(r.tty, pw)) << "password echoed on the terminal: " << r.tty;
  EXPECT_FALSE(contains(r.out, pw));
  EXPECT_FALSE(contains(r.err, pw));

  // A wrong password typed at the prompt is rejected like any other.
  o.answers = {"not-the-password"};
  r = run({"-r", repo.string(), "cat", "config"}, o);
  EXPECT_EQ(r.code, 12) << describe(r);
  EXPECT_FALSE(contains(r.tty, "not-the-password")) << r.tty;
}

TEST_F(CliTest, InteractiveInitAsksTwiceWithoutEcho) {
  fs::path repo = dir_ / "repo";
  const std::string pw = "New-Secret-4242";
  RunOptions o;
  o.pty = true;
  o.answers = {pw, pw};
  std::vector<std::string> args{"-r", repo.string(), "init"};
  args.insert(args.end(), std::begin(kKdf), std::end(kKdf));
  RunResult r = run(args, o);
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.tty, "enter new password")) << r.tty;
  EXPECT_TRUE(contains(r.tty, "again")) << r.tty;
  EXPECT_FALSE(contains(r.tty, pw)) << r.tty;
  RunResult open = with_pw(repo, pw, {"cat", "config"});
  EXPECT_EQ(open.code, 0) << describe(open);

  // Mismatched entries: usage error, nothing created.
  o.answers = {"one-thing", "another-thing"};
  args[1] = (dir_ / "repo2").string();
  r = run(args, o);
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "do not match")) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "repo2" / "config"));
}

TEST_F(CliTest, WrongPasswordRevealsNothing) {
  fs::path repo = dir_ / "repo";
  init_repo(repo, "pw1");
  // Two keys, so the failure happens after trying several.
  RunResult add = with_pw(repo, "pw1", {"key", "add", "--kdf-memory", "8", "--kdf-iterations", "1"},
                          {{"HAVEN_NEW_PASSWORD", "pw2"}});
  ASSERT_EQ(add.code, 0) << describe(add);

  for (const char* cmd : {"config", "list"}) {
    std::vector<std::string> args = std::string(cmd) == "config"
                                        ? std::vector<std::string>{"cat", "config"}
                                        : std::vector<std::string>{"key", "list"};
    RunResult r = with_pw(repo, "pw3", args);
    EXPECT_EQ(r.code, 12) << describe(r);
    EXPECT_TRUE(contains(r.err, "wrong password or no key for this repository")) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(std::regex_search(r.err, std::regex("key [0-9a-f]{4,}"))) << r.err;
    for (const auto& id : key_ids(repo)) {
      EXPECT_FALSE(contains(r.err, id.substr(0, 8))) << r.err;
    }
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(CliTest, NotARepository) {
  fs::path empty = dir_ / "empty";
  fs::create_directory(empty);
  fs::path unrelated = dir_ / "unrelated";
  fs::create_directory(unrelated);
  write_file(unrelated / "notes.txt", "hello\n");
  write_file(unrelated / "config.bak", "x");
  fs::create_directory(unrelated / "keys");
  write_file(dir_ / "plainfile", "x");

  for (const fs::path& p : {empty, dir_ / "does" / "not" / "exist", unrelated,
                            dir_ / "plainfile" / "sub"}) {
    auto before = fs::exists(p) ? tree_of(p) : std::map<std::string, std::string>{};
    RunResult r = with_pw(p, "pw", {"cat", "config"});
    EXPECT_EQ(r.code, 10) << p << "\n" << describe(r);
    EXPECT_TRUE(contains(r.err, "no Haven repository")) << r.err;
    // Checked before any password is asked for.
    r = run({"-r", p.string(), "key", "list"}, Env{});
    EXPECT_EQ(r.code, 10) << p << "\n" << describe(r);
    EXPECT_TRUE(contains(r.err, "no Haven repository")) << r.err;
    if (fs::exists(p)) {
      EXPECT_EQ(tree_of(p), before);
    } else {
      EXPECT_FALSE(fs::exists(p)) << "a read-only command created " << p;
    }
  }
}

TEST_F(CliTest, InitRefusesNonEmptyLocation) {
  fs::path d = dir_ / "busy";
  fs::create_directory(d);
  write_file(d / "file.txt", "precious");
  fs::create_directory(d / "sub");
  write_file(d / "sub" / "nested", "also precious");
  auto before = tree_of(d);

  std::vector<std::string> args{"-r", d.string(), "init"};
  args.insert(args.end(), std::begin(kKdf), std::end(kKdf));
  RunResult r = run(args, Env{{"HAVEN_PASSWORD", "pw"}});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "not empty")) << r.err;
  EXPECT_EQ(tree_of(d), before);

  // Only a hidden file: still not empty.
  fs::path h = dir_ / "hidden";
  fs::create_directory(h);
  write_file(h / ".dotfile", "x");
  args[1] = h.string();
  r = run(args, Env{{"HAVEN_PASSWORD", "pw"}});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "not empty")) << r.err;
  EXPECT_EQ(tree_of(h).size(), 1u);

  // An existing repository is not re-initialized.
  fs::path repo = dir_ / "repo";
  init_repo(repo, "pw");
  auto repo_before = tree_of(repo);
  args[1] = repo.string();
  r = run(args, Env{{"HAVEN_PASSWORD", "pw"}});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "not empty")) << r.err;
  EXPECT_EQ(tree_of(repo), repo_before);
}

TEST_F(CliTest, NewerFormatVersionIsRefusedBeforeThePassword) {
  fs::path repo = dir_ / "repo";
  init_repo(repo, "pw1");
  std::string cfg = read_file(repo / "config");
  ASSERT_GT(cfg.size(), 5u);
  ASSERT_EQ(cfg.substr(0, 4), "HAVN");
  ASSERT_EQ(cfg[4], 1);
  flip_byte(repo / "config", 4, 2);
  ASSERT_EQ(read_file(repo / "config")[4], 2);

  const std::vector<std::vector<std::string>> cmds = {
      {"cat", "config"}, {"key", "list"}, {"key", "passwd"}, {"cat", "snapshot", "latest"}};
  for (const auto& cmd : cmds) {
    std::vector<std::string> args{"-r", repo.string()};
    args.insert(args.end(), cmd.begin(), cmd.end());
    // No password anywhere and no terminal: the version must be reported, not the password.
    RunResult r = run(args, Env{});
    EXPECT_NE(r.code, 0) << describe(r);
    EXPECT_NE(r.code, 2) << describe(r);
    EXPECT_TRUE(contains(r.err, "upgrade haven")) << r.err;
    EXPECT_FALSE(contains(r.err, "password-file")) << r.err;
    // With the right password, the same.
    r = run(args, Env{{"HAVEN_PASSWORD", "pw1"}, {"HAVEN_NEW_PASSWORD", "pw2"}});
    EXPECT_NE(r.code, 0) << describe(r);
    EXPECT_TRUE(contains(r.err, "upgrade haven")) << r.err;
  }
  EXPECT_EQ(key_ids(repo).size(), 1u);
}

TEST_F(CliTest, TamperedConfigFailsAuthentication) {
  fs::path repo = dir_ / "repo";
  init_repo(repo, "pw1");
  auto size = static_cast<long>(fs::file_size(repo / "config"));
  flip_byte(repo / "config", size - 1, 0x01, /*set=*/false);
  RunResult r = with_pw(repo, "pw1", {"cat", "config"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "config")) << r.err;
  EXPECT_TRUE(contains(r.err, "authentication failed")) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(CliTest, KeyLifecycle) {
  fs::path repo = dir_ / "repo";
  const std::string k1 = init_repo(repo, "pw1");
  ASSERT_EQ(k1.size(), 64u);
  const std::vector<std::string> kdf(std::begin(kKdf), std::end(kKdf));

  std::vector<std::string> add{"key", "add"};
  add.insert(add.end(), kdf.begin(), kdf.end());
  RunResult r = with_pw(repo, "pw1", add, {{"HAVEN_NEW_PASSWORD", "pw2"}});
  ASSERT_EQ(r.code, 0) << describe(r);
  auto ids = key_ids(repo);
  ASSERT_EQ(ids.size(), 2u);
  const std::string k2 = ids[0] == k1 ? ids[1] : ids[0];
  EXPECT_TRUE(contains(r.out, k2.substr(0, 8))) << r.out;

  // Text list: a header and two keys, the one in use marked with '*'.
  auto check_list = [&](const std::string& pw, const std::string& current,
                        const std::string& other) {
    RunResult l = with_pw(repo, pw, {"key", "list"});
    ASSERT_EQ(l.code, 0) << describe(l);
    auto lines = lines_of(l.out);
    ASSERT_EQ(lines.size(), 3u) << l.out;
    int starred = 0;
    for (const auto& line : lines) {
      if (!line.empty() && line[0] == '*') {
        starred++;
        EXPECT_EQ(line.substr(1, 8), current.substr(0, 8)) << l.out;
      }
    }
    EXPECT_EQ(starred, 1) << l.out;
    EXPECT_TRUE(contains(l.out, " " + other.substr(0, 8))) << l.out;
  };
  check_list("pw1", k1, k2);
  check_list("pw2", k2, k1);

  // JSON list.
  r = with_pw(repo, "pw1", {"--json", "key", "list"});
  ASSERT_EQ(r.code, 0) << describe(r);
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_array()) << r.out;
  ASSERT_EQ(j.size(), 2u);
  size_t pos = r.out.find("\"current\":true");
  EXPECT_NE(pos, std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\"current\":true", pos + 1), std::string::npos) << r.out;
  for (const auto& k : j) {
    EXPECT_EQ(k.at("current").get<bool>(), k.at("id").get<std::string>() == k1) << r.out;
  }

  // The new password opens the repository.
  r = with_pw(repo, "pw2", {"cat", "config"});
  EXPECT_EQ(r.code, 0) << describe(r);

  // The key in use cannot be removed.
  r = with_pw(repo, "pw1", {"key", "remove", k1});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "in use")) << r.err;
  EXPECT_EQ(key_ids(repo).size(), 2u);

  // Another key can (here by prefix).
  r = with_pw(repo, "pw2", {"key", "remove", k1.substr(0, 10)});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(key_ids(repo), std::vector<std::string>{k2});
  r = with_pw(repo, "pw1", {"cat", "config"});
  EXPECT_EQ(r.code, 12) << describe(r);

  // A key that does not exist.
  r = with_pw(repo, "pw2", {"key", "remove", k1});
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_EQ(key_ids(repo), std::vector<std::string>{k2});

  // The only key is never removed.
  r = with_pw(repo, "pw2", {"key", "remove", k2});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "only key")) << r.err;
  EXPECT_EQ(key_ids(repo), std::vector<std::string>{k2});

  // passwd: the old password stops working, the new one works, still one key.
  fs::path npw = dir_ / "new-pw";
  write_file(npw, "pw3\n");
  std::vector<std::string> passwd{"key", "passwd", "--new-password-file", npw.string()};
  passwd.insert(passwd.end(), kdf.begin(), kdf.end());
  r = with_pw(repo, "pw2", passwd);
  ASSERT_EQ(r.code, 0) << describe(r);
  r = with_pw(repo, "pw2", {"cat", "config"});
  EXPECT_EQ(r.code, 12) << describe(r);
  r = with_pw(repo, "pw3", {"cat", "config"});
  EXPECT_EQ(r.code, 0) << describe(r);
  ids = key_ids(repo);
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_NE(ids[0], k2);

  // passwd via HAVEN_NEW_PASSWORD.
  std::vector<std::string> passwd2{"key", "passwd"};
  passwd2.insert(passwd2.end(), kdf.begin(), kdf.end());
  r = with_pw(repo, "pw3", passwd2, {{"HAVEN_NEW_PASSWORD", "pw4"}});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(with_pw(repo, "pw3", {"cat", "config"}).code, 12);
  EXPECT_EQ(with_pw(repo, "pw4", {"cat", "config"}).code, 0);
  EXPECT_EQ(key_ids(repo).size(), 1u);
}

TEST_F(CliTest, UsageErrors) {
  fs::path repo = dir_ / "repo";
  init_repo(repo, "pw1");
  const std::vector<std::vector<std::string>> cases = {
      {"frobnicate"},
      {"--no-such-flag", "cat", "config"},
      {"cat"},
      {"cat", "snapshot"},
      {"cat", "blob"},
      {"cat", "bogus"},
      {"cat", "bogus", "0000"},
      {"key"},
      {"key", "frob"},
      {"key", "remove"},
  };
  for (const auto& c : cases) {
    RunResult r = with_pw(repo, "pw1", c);
    std::string joined;
    for (const auto& a : c) joined += a + " ";
    EXPECT_EQ(r.code, 2) << joined << "\n" << describe(r);
    EXPECT_FALSE(r.err.empty()) << joined;
  }
  RunResult r = run({}, Env{});
  EXPECT_EQ(r.code, 2) << describe(r);
  r = with_pw(repo, "pw1", {"cat", "snapshot"});
  EXPECT_TRUE(contains(r.err, "needs an ID")) << r.err;
}

TEST_F(CliTest, NoRepositoryGiven) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"cat", "config"}, {"key", "list"}, {"init", "--kdf-memory", "8"}}) {
    RunResult r = run(args, Env{{"HAVEN_PASSWORD", "pw"}});
    EXPECT_EQ(r.code, 2) << describe(r);
    EXPECT_TRUE(contains(r.err, "--repo")) << r.err;
  }
}

TEST_F(CliTest, UnknownScheme) {
  RunResult r = run({"-r", "ftp:/x", "cat", "config"}, Env{{"HAVEN_PASSWORD", "pw"}});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "ftp")) << r.err;
  EXPECT_TRUE(contains(r.err, "scheme")) << r.err;

  std::vector<std::string> args{"-r", "sftp://host/x", "init"};
  args.insert(args.end(), std::begin(kKdf), std::end(kKdf));
  r = run(args, Env{{"HAVEN_PASSWORD", "pw"}});
  EXPECT_EQ(r.code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "sftp")) << r.err;
  EXPECT_FALSE(fs::exists("sftp:"));
}

TEST_F(CliTest, Version) {
  RunResult r = run({"version"}, Env{});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out.rfind("haven ", 0), 0u) << r.out;

  r = run({"--json", "version"}, Env{});
  ASSERT_EQ(r.code, 0) << describe(r);
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j.at("format_version"), 1);
  EXPECT_TRUE(j.at("version").is_string());

  r = run({"--version"}, Env{});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "haven ")) << r.out;
}

TEST_F(CliTest, CatBadIdsAndEmptyRepository) {
  fs::path repo = dir_ / "repo";
  init_repo(repo, "pw1");
  const std::string bad64(64, 'g');
  const std::vector<std::vector<std::string>> malformed = {
      {"cat", "blob", "xyz"},   {"cat", "tree", "abcd"}, {"cat", "blob", bad64},
      {"cat", "pack", "zz"},    {"cat", "key", "nothex"}, {"cat", "index", "12"},
      {"cat", "snapshot", "x!"}};
  for (const auto& c : malformed) {
    RunResult r = with_pw(repo, "pw1", c);
    EXPECT_EQ(r.code, 2) << c[1] << " " << c[2] << "\n" << describe(r);
  }
  // A well-formed ID that is not there is a failure, not a usage error.
  RunResult r = with_pw(repo, "pw1", {"cat", "blob", std::string(64, 'a')});
  EXPECT_EQ(r.code, 1) << describe(r);

  r = with_pw(repo, "pw1", {"cat", "snapshot", "latest"});
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "no snapshots")) << r.err;

  // The stored key file prints as stored.
  auto ids = key_ids(repo);
  ASSERT_EQ(ids.size(), 1u);
  r = with_pw(repo, "pw1", {"cat", "key", ids[0]});
  EXPECT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out, read_file(repo / "keys" / ids[0]));
}

// ---- file-system failures (need root and mount permission) ----------------------------------

class Tmpfs {
 public:
  explicit Tmpfs(fs::path p) : path_(std::move(p)) { fs::create_directories(path_); }
  ~Tmpfs() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
  }
  // False (errno set) if mounting is not permitted here.
  bool mount(const char* options) {
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, options) != 0) return false;
    mounted_ = true;
    return true;
  }
  bool remount_read_only() {
    return ::mount(nullptr, path_.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) == 0;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  bool mounted_ = false;
};

TEST_F(CliTest, InitOnFullDisk) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: mounts a tmpfs (run as root)";
  Tmpfs t(dir_ / "mnt");
  if (!t.mount("size=200k")) GTEST_SKIP() << "cannot mount tmpfs: " << std::strerror(errno);
  {
    int fd = open((t.path() / "filler").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    std::string block(4096, 'x');
    while (write(fd, block.data(), block.size()) > 0) {
    }
    while (write(fd, "x", 1) > 0) {
    }
    EXPECT_EQ(errno, ENOSPC);
    close(fd);
  }
  fs::path repo = t.path() / "repo";
  std::vector<std::string> args{"-r", repo.string(), "init"};
  args.insert(args.end(), std::begin(kKdf), std::end(kKdf));
  RunResult r = run(args, Env{{"HAVEN_PASSWORD", "pw"}});
  EXPECT_NE(r.code, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "No space left")) << r.err;
  EXPECT_FALSE(fs::exists(repo / "config"));
  // No partial or temporary object stays behind.
  if (fs::exists(repo)) {
    for (const auto& e : fs::recursive_directory_iterator(repo)) {
      if (!e.is_regular_file()) continue;
      std::string name = e.path().filename().string();
      EXPECT_NE(name.rfind(".tmp-", 0), 0u) << "temporary file left: " << e.path();
      EXPECT_GT(e.file_size(), 0u) << "empty object left: " << e.path();
    }
  }
  // And the location is reported as no repository.
  r = with_pw(repo, "pw", {"cat", "config"});
  EXPECT_EQ(r.code, 10) << describe(r);
}

TEST_F(CliTest, InitOnReadOnlyFileSystem) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: mounts a tmpfs (run as root)";
  Tmpfs t(dir_ / "mnt");
  if (!t.mount("size=200k")) GTEST_SKIP() << "cannot mount tmpfs: " << std::strerror(errno);
  ASSERT_TRUE(t.remount_read_only()) << std::strerror(errno);
  std::vector<std::string> kdf(std::begin(kKdf), std::end(kKdf));
  for (const fs::path& repo : {t.path() / "repo", t.path()}) {
    std::vector<std::string> args{"-r", repo.string(), "init"};
    args.insert(args.end(), kdf.begin(), kdf.end());
    RunResult r = run(args, Env{{"HAVEN_PASSWORD", "pw"}});
    EXPECT_NE(r.code, 0) << repo << "\n" << describe(r);
    EXPECT_TRUE(contains(r.err, "read-only")) << r.err;
  }
  EXPECT_TRUE(fs::is_empty(t.path()));
}

}  // namespace

#include <climits>
#include <termios.h>
#include <unistd.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "cli/cli.h"
#include "crypto/crypto.h"
#include "catalog/catalog.h"
#include "config/config.h"
#include "monitor/audit.h"
#include "repo/index.h"
#include "storage/limit.h"
#include "util/sysinfo.h"
#include "util/version.h"

namespace haven::cli {

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("haven");
}

void App::audit(const std::string& action, const std::string& details_json) {
  auto path = environment_value("HAVEN_CONFIG");
  if (!path || path->empty()) return;
  auto fail = [&](const Error& e) {
    std::cerr << "warning: " << action << " was not recorded in the audit log: " << e.message() << "\n";
  };
  auto cfg = config::load_config_file(*path, environment_value);
  if (!cfg.ok()) return fail(cfg.error());
  auto cat = catalog::open_sqlite_catalog(cfg->server.catalog);
  if (!cat.ok()) return fail(cat.error().with_context("server.catalog"));
  monitor::AuditLog log(**cat);
  nlohmann::json details = nlohmann::json::parse(details_json, nullptr, false);
  if (!details.is_object()) details = nlohmann::json::object();
  auto r = log.record("cli:" + username() + "@" + hostname(), action, globals_.repo, details);
  if (!r.ok()) fail(r.error());
}

int exit_code_for(const Error& e) {
  switch (e.code()) {
    case Error::Code::kInvalidArgument: return kExitUsage;
    case Error::Code::kRepoNotFound: return kExitNoRepo;
    case Error::Code::kLocked: return kExitLocked;
    case Error::Code::kWrongPassword: return kExitWrongPassword;
    default: return kExitFailure;
  }
}

App::App() : app_("Haven: deduplicated, compressed, encrypted backups", "haven") {
  app_.require_subcommand(1);
  // Global options (--repo, --json ...) may also follow the subcommand.
  app_.fallthrough();
  app_.set_version_flag("--version", std::string("haven ") + HAVEN_VERSION);
  app_.add_option("-r,--repo", globals_.repo,
                  "repository location: a path or local:/path (env HAVEN_REPOSITORY)")
      ->envname("HAVEN_REPOSITORY");
  app_.add_option("--password-file", globals_.password_file,
                  "file whose first line is the password (env HAVEN_PASSWORD_FILE)")
      ->envname("HAVEN_PASSWORD_FILE");
  app_.add_flag("--json", globals_.json, "machine-readable output (JSON)");
  app_.add_flag("-q,--quiet", globals_.quiet, "print only errors");
  app_.add_option("--bandwidth-limit-mbps", globals_.bandwidth_limit_mbps,
                  "cap on transfers to and from the repository, in megabits per second "
                  "(env HAVEN_BANDWIDTH_LIMIT_MBPS; 0 = unlimited)")
      ->envname("HAVEN_BANDWIDTH_LIMIT_MBPS");
  app_.add_option("--connections", globals_.connections,
                  "at most this many repository requests at once (env HAVEN_CONNECTIONS; 0 = "
                  "unlimited)")
      ->envname("HAVEN_CONNECTIONS");
  app_.add_option("--cache-dir", globals_.cache_dir,
                  "directory for files Haven keeps while it runs (the index beyond "
                  "--index-memory; env HAVEN_CACHE_DIR; default $XDG_CACHE_HOME/haven or "
                  "~/.cache/haven)")
      ->envname("HAVEN_CACHE_DIR");
  app_.add_option("--index-memory", globals_.index_memory,
                  "memory the repository index may use before the rest is kept sorted on disk "
                  "in the cache directory, e.g. 8MiB (env HAVEN_INDEX_MEMORY; default 2MiB; 0 = "
                  "all in memory)")
      ->envname("HAVEN_INDEX_MEMORY");
  app_.add_option("--memory-limit", globals_.memory_limit,
                  "memory Haven may use, e.g. 64MiB: the index, worker threads and buffers are "
                  "sized to fit (env HAVEN_MEMORY_LIMIT; minimum 48MiB; default: no limit, about "
                  "80 MiB at most at the default settings)")
      ->envname("HAVEN_MEMORY_LIMIT");
  app_.add_option("--retry-lock", globals_.retry_lock,
                  "when another process holds a conflicting lock, try again every second for up "
                  "to this long before failing, e.g. 5m, 90s, 1h30m (env HAVEN_RETRY_LOCK; "
                  "default: fail at once)")
      ->envname("HAVEN_RETRY_LOCK");
}

Result<std::chrono::seconds> parse_wait(const std::string& text, const std::string& what) {
  auto bad = [&] {
    return Error(Error::Code::kInvalidArgument,
                 what + " '" + text + "' is not a wait: give seconds or terms like 90s, 5m, 1h30m "
                 "(s seconds, m minutes, h hours), at most a week");
  };
  constexpr int64_t kWeek = 7 * 24 * 3600;
  int64_t total = 0;
  size_t i = 0;
  if (text.empty()) return bad();
  while (i < text.size()) {
    size_t start = i;
    int64_t n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      n = n * 10 + (text[i] - '0');
      if (n > kWeek) return bad();
      i++;
    }
    if (i == start) return bad();
    int64_t unit = 1;
    if (i < text.size()) {
      switch (text[i]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        default: return bad();
      }
      i++;
    } else if (start != 0) {
      return bad();  // "1h30": a bare number only on its own
    }
    total += n * unit;
    if (total > kWeek) return bad();
  }
  return std::chrono::seconds(total);
}

Result<uint64_t> parse_size(const std::string& text, const std::string& what) {
  auto bad = [&] {
    return Error(Error::Code::kInvalidArgument,
                 what + " '" + text + "' is not a size: give bytes or a number with K, M or G "
                 "(binary units), e.g. 4MiB");
  };
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) i++;
  if (i == 0 || i > 15) return bad();
  uint64_t n = std::stoull(text.substr(0, i));
  std::string unit = text.substr(i);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() >= 2 && unit.substr(unit.size() - 2) == "IB") unit.resize(unit.size() - 2);
  else if (unit.size() >= 2 && unit.back() == 'B') unit.pop_back();
  int shift = 0;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit == "K") shift = 10;
  else if (unit == "M") shift = 20;
  else if (unit == "G") shift = 30;
  else return bad();
  if (n > (uint64_t{1} << (62 - shift))) return bad();
  return n << shift;
}

void App::on(CLI::App* sub, std::function<CommandResult()> fn) {
  actions_.emplace_back(sub, std::move(fn));
}

static void print_error(const std::string& msg) { std::cerr << "haven: error: " << msg << "\n"; }

// The terminal a password prompt turned echo off on, so that a second Ctrl-C, which ends the
// process at once, leaves the terminal as it found it.
namespace {
struct EchoGuard {
  std::mutex mu;
  int fd = -1;
  termios saved{};
};
EchoGuard& echo_guard() {
  static EchoGuard* g = new EchoGuard;  // never destroyed: the signal thread may outlive main
  return *g;
}
void restore_echo_now() {
  EchoGuard& g = echo_guard();
  std::lock_guard<std::mutex> lk(g.mu);
  if (g.fd >= 0) tcsetattr(g.fd, TCSANOW, &g.saved);
}
}  // namespace

void App::handle_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);  // counted (hangups()): `haven server` reloads on it
  // Blocked here, before any other thread exists, so every thread inherits the mask and the
  // signals reach only the waiting thread (children get a clean mask: util/subprocess.h).
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // The thread outlives App (it is detached): it holds copies, never `this`.
  std::thread([token = cancel_, received = signal_, hups = hangups_, set] {
    int sig = 0;
    while (sigwait(&set, &sig) == 0) {
      if (sig == SIGHUP) {
        hups->fetch_add(1);
        continue;
      }
      if (received->exchange(sig) != 0) {  // asked twice: stop now
        restore_echo_now();
        _exit(128 + sig);
      }
      token.cancel(Error(Error::Code::kCancelled,
                         std::string("interrupted by ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                             " (press Ctrl-C again to quit at once)"));
    }
  }).detach();
}

// A restore keeps up to half the open-file limit's files open; raise the soft limit to the
// hard one (at most 65536) for this process.
static void raise_open_file_limit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = std::min<rlim_t>(rl.rlim_max, 65536);
  if (rl.rlim_cur < want) {
    rl.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int App::run(int argc, char** argv) {
  handle_signals();
  raise_open_file_limit();
  try {
    app_.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app_.exit(e);  // --help / --version
    print_error(e.what());
    std::cerr << "Run 'haven --help' (or 'haven COMMAND --help') for usage.\n";
    return kExitUsage;
  }
  for (auto& [sub, fn] : actions_) {
    if (!sub->parsed()) continue;
    // Everything the command does runs under the token the signals cancel.
    CommandResult r = [&] {
      CancelScope scope(cancel_);
      return fn();
    }();
    if (!r.ok()) {
      std::string message = r.error().message();
      if (r.error().code() == Error::Code::kLocked && globals_.retry_lock.empty()) {
        message += "; or let haven wait for it: --retry-lock 5m";
      }
      print_error(message);
      int sig = signal_->load();
      if (r.error().code() == Error::Code::kCancelled && sig != 0) return 128 + sig;
      return exit_code_for(r.error());
    }
    return *r;
  }
  print_error("no command given");
  return kExitUsage;
}

static std::string first_line(const std::string& s) {
  auto nl = s.find_first_of("\r\n");
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// Reads the password from the first line of `path`. Each way the file can be unusable gets
// its own message naming the file and the fix; none of them quotes the file's contents.
constexpr size_t kMaxPasswordLine = 64 << 10;

static Result<std::string> read_file_password(const std::string& path) {
  const std::string what = "password file " + path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      return Error(Error::Code::kNotFound,
                   what + " does not exist (check the path given with --password-file or "
                          "HAVEN_PASSWORD_FILE)");
    }
    if (err == EACCES || err == EPERM) {
      return Error(Error::Code::kPermissionDenied,
                   what + ": permission denied (make it readable by the user running haven, "
                          "and by nobody else: chmod 600)");
    }
    return errno_error(what, err);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return errno_error(what, err);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Error(Error::Code::kInvalidArgument,
                 what + " is a directory, not a file: give the path of a file whose first line "
                        "is the password");
  }
  // Blocking reads from here on (a FIFO is fine: O_NONBLOCK only kept open() from waiting).
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      secure_zero(text.data(), text.size());
      return errno_error(what, err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.find_first_of("\r\n") != std::string::npos) break;  // only the first line counts
    if (text.size() > kMaxPasswordLine) {
      ::close(fd);
      secure_zero(text.data(), text.size());
      return Error(Error::Code::kInvalidArgument,
                   what + " has no line break in its first " +
                       std::to_string(kMaxPasswordLine >> 10) +
                       " KiB: it is not a password file (give a file whose first line is the "
                       "password)");
    }
  }
  ::close(fd);
  secure_zero(buf, sizeof buf);
  std::string pw = first_line(text);
  secure_zero(text.data(), text.size());
  if (pw.empty()) {
    return Error(Error::Code::kInvalidArgument,
                 text.empty() ? what + " is empty: write the password on its first line"
                              : what + " has an empty first line: the password is the first "
                                       "line of the file");
  }
  return pw;
}

// Reads one line from the terminal with echo off. kInvalidArgument if there is no terminal.
static Result<std::string> prompt(const std::string& text, const CancelToken& cancel) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return Error(Error::Code::kInvalidArgument,
                 "no password given and no terminal to ask on: use --password-file, "
                 "HAVEN_PASSWORD_FILE or HAVEN_PASSWORD");
  }
  (void)!write(fd, text.data(), text.size());
  termios old{};
  bool restore = tcgetattr(fd, &old) == 0;
  if (restore) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    {
      std::lock_guard<std::mutex> lk(echo_guard().mu);
      echo_guard().fd = fd;
      echo_guard().saved = old;
    }
    tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  std::string line;
  char c;
  bool interrupted = false;
  while (true) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, 100);
    if (r == 0) {
      if (cancel.cancelled()) {
        interrupted = true;
        break;
      }
      continue;
    }
    if (r < 0 || ::read(fd, &c, 1) != 1 || c == '\n' || c == '\r') break;
    line.push_back(c);
  }
  if (restore) {
    std::lock_guard<std::mutex> lk(echo_guard().mu);
    tcsetattr(fd, TCSAFLUSH, &old);
    echo_guard().fd = -1;
  }
  (void)!write(fd, "\n", 1);
  ::close(fd);
  if (interrupted) return cancel.check().error();
  return line;
}

Result<std::string> App::read_password() {
  if (!globals_.password_file.empty()) return read_file_password(globals_.password_file);
  if (const char* pw = getenv("HAVEN_PASSWORD"); pw && *pw) return std::string(pw);
  return prompt("enter password for repository: ", cancel_);
}

Result<std::string> App::read_new_password(const std::string& file) {
  if (!file.empty()) return read_file_password(file);
  if (const char* pw = getenv("HAVEN_NEW_PASSWORD"); pw && *pw) return std::string(pw);
  HAVEN_ASSIGN(std::string a, prompt("enter new password: ", cancel_));
  HAVEN_ASSIGN(std::string b, prompt("enter the new password again: ", cancel_));
  if (!equal_constant_time(as_bytes(a), as_bytes(b))) {
    return Error(Error::Code::kInvalidArgument, "the passwords do not match");
  }
  return a;
}

// The CLI's backend settings are its environment: AWS_*, HAVEN_S3_*, AZURE_STORAGE_* and HOME
// as README documents them (the library itself never reads the environment).
storage::BackendSettings environment_settings() {
  storage::BackendSettings s;
  s.lookup = [](const std::string& name) -> std::optional<std::string> {
    auto v = environment_value(name);
    if (!v || v->empty()) return std::nullopt;  // an empty value counts as unset
    return v;
  };
  return s;
}

Result<std::shared_ptr<storage::Backend>> App::backend() {
  storage::Limits limits{globals_.bandwidth_limit_mbps, globals_.connections};
  HAVEN_TRY(storage::validate_limits(limits));
  HAVEN_ASSIGN(auto be, storage::open_backend(globals_.repo, environment_settings()));
  if (!limits.any()) return be;
  return std::shared_ptr<storage::Backend>(std::make_shared<storage::LimitBackend>(be, limits));
}

namespace {
// Where the CLI remembers which key file opened the repository at `location` last time
// (repo::Repository::probe's key_hint): a file per location in the cache directory, named by a
// hash of the location. It holds a key file's ID, a name anyone who can list the repository
// sees; nothing secret.
std::string key_hint_path(const std::string& cache, const std::string& location) {
  const auto h = crypto::sha256(ByteView(reinterpret_cast<const uint8_t*>(location.data()), location.size()));
  return cache + "/key-hint-" + to_hex(ByteView(h.data(), 16));
}

std::string read_key_hint(const std::string& path) {
  std::ifstream in(path);
  std::string id;
  if (!(in >> id)) return "";
  return id;  // probe() takes it only if it is an object ID
}

// Written beside and renamed into place; a cache that cannot be written is left as it is.
void write_key_hint(const std::string& path, const std::string& id) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << id << "\n";
    if (!out.flush()) {
      std::remove(tmp.c_str());
      return;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) std::remove(tmp.c_str());
}
}  // namespace

Result<std::unique_ptr<repo::Repository>> App::open_repository(const repo::OpenOptions& options) {
  HAVEN_ASSIGN(auto be, backend());
  // The key file that opened this repository last time is read beside the config and the key
  // listing (one round trip less on object storage). Only from a cache directory of our own.
  HAVEN_ASSIGN(CacheDir cache, cache_directory());
  const std::string hint_path = cache.own ? key_hint_path(cache.path, be->location()) : "";
  const std::string hint = hint_path.empty() ? "" : read_key_hint(hint_path);
  // A missing or too-new repository is reported before asking for a password.
  HAVEN_ASSIGN(repo::Probe probe, repo::Repository::probe(*be, hint));
  HAVEN_ASSIGN(repo::MemoryBudget budget, memory_budget());  // bad input before the password
  if (!globals_.retry_lock.empty()) {
    if (auto wait = parse_wait(globals_.retry_lock, "--retry-lock"); !wait.ok()) return wait.error();
  }
  HAVEN_ASSIGN(std::string pw, read_password());
  repo::OpenOptions open = options;
  open.config = std::move(probe.config);  // not read again
  open.keys = std::move(probe.keys);      // nor listed again
  if (budget.limited()) open.max_kdf_memory = budget.limit - repo::MemoryBudget::kReserve;
  HAVEN_ASSIGN(auto repo, repo::Repository::open(be, pw, open));
  HAVEN_TRY(configure(*repo));
  if (!hint_path.empty() && repo->current_key_id() != hint) write_key_hint(hint_path, repo->current_key_id());
  return repo;
}

Result<repo::MemoryBudget> App::memory_budget() {
  repo::MemoryBudget budget;
  if (globals_.memory_limit.empty()) return budget;
  HAVEN_ASSIGN(budget.limit, parse_size(globals_.memory_limit, "--memory-limit"));
  if (budget.limit < repo::MemoryBudget::kMinimum) {
    return Error(Error::Code::kInvalidArgument,
                 "--memory-limit " + globals_.memory_limit + " is below the minimum of " +
                     std::to_string(repo::MemoryBudget::kMinimum >> 20) +
                     "MiB (the program and one worker need that much): give more");
  }
  if (!globals_.index_memory.empty()) {
    HAVEN_ASSIGN(uint64_t index, parse_size(globals_.index_memory, "--index-memory"));
    if (index == 0 || index > budget.limit / 4) {
      return Error(Error::Code::kInvalidArgument,
                   "--index-memory " + globals_.index_memory + " does not fit in --memory-limit " +
                       globals_.memory_limit +
                       ": give at most a quarter of the limit, or leave --index-memory out (the "
                       "limit then sets it)");
    }
    budget.index = index;  // what the index takes is not there for the rest
  }
  return budget;
}

Status App::configure(repo::Repository& repo) {
  repo.set_cancel_token(cancel_);
  if (!globals_.retry_lock.empty()) {
    HAVEN_ASSIGN(std::chrono::seconds wait, parse_wait(globals_.retry_lock, "--retry-lock"));
    repo.set_lock_wait(wait);
  }
  HAVEN_ASSIGN(repo::MemoryBudget budget, memory_budget());
  repo.set_memory_budget(budget);
  repo::IndexOptions o;
  o.memory_bytes = budget.limited() ? budget.index_bytes() : repo::kDefaultIndexMemory;
  if (!globals_.index_memory.empty()) {
    HAVEN_ASSIGN(o.memory_bytes, parse_size(globals_.index_memory, "--index-memory"));
    if (o.memory_bytes != 0 && o.memory_bytes < (64u << 10)) {
      return Error(Error::Code::kInvalidArgument,
                   "--index-memory " + globals_.index_memory +
                       " is below the minimum of 64KiB (give 0 to keep the whole index in memory)");
    }
  }
  if (o.memory_bytes == 0) {
    repo.set_index_options(o);
    return ok_status();
  }
  HAVEN_ASSIGN(CacheDir dir, cache_directory());
  o.spill_dir = dir.path;
  repo.set_index_options(o);
  return ok_status();
}

Result<App::CacheDir> App::cache_directory() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!globals_.cache_dir.empty()) {
    // Named by the user: it must be usable (one clear error, nothing changed).
    if (!fs::is_directory(globals_.cache_dir, ec)) {
      return Error(Error::Code::kInvalidArgument,
                   "--cache-dir " + globals_.cache_dir +
                       " is not a directory: create it or name another one");
    }
    return CacheDir{globals_.cache_dir, true};
  }
  std::string dir;
  if (auto x = environment_value("XDG_CACHE_HOME"); x && !x->empty() && (*x)[0] == '/') {
    dir = *x + "/haven";
  } else if (auto h = environment_value("HOME"); h && !h->empty()) {
    dir = *h + "/.cache/haven";
  }
  // The default is created on first use; if it cannot be, the temporary directory serves.
  if (dir.empty() || (fs::create_directories(dir, ec), !fs::is_directory(dir, ec))) {
    auto t = environment_value("TMPDIR");
    return CacheDir{(t && !t->empty()) ? *t : "/tmp", false};
  }
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  return CacheDir{dir, true};
}

CommandSink::CommandSink(bool json, bool quiet, bool quiet_notices)
    : inner_(json, quiet), quiet_notices_(quiet_notices) {}

void CommandSink::emit(const Event& e) {
  if (e.kind != EventKind::kNotice) {
    inner_.emit(e);
    return;
  }
  std::string level = e.data.value("level", std::string("notice"));
  if (level != "warning" && quiet_notices_) return;
  inner_.clear_line();
  std::cerr << level << ": " << e.message << "\n";
}

}  // namespace haven::cli

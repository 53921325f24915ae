// tests/check/crash_test.cc — crash safety of `haven backup` and `haven prune` (docs/FORMAT.md §9).
//
// Each trial starts the real binary, SIGKILLs it at a random moment, and then proves that the
// repository is healthy: `haven check --read-data` exits 0 (notices such as packs no index names
// are allowed), no snapshot that existed before is lost, and every expected snapshot restores
// bit-exact (its manifest — every path with its type and SHA-256 — was taken from the source
// when its backup completed). The killed process leaves its lock behind; every later command
// must still work (a dead PID's lock on this host is stale) and say that it ignored it.
//
// The repository uses 1 MiB packs and small chunks so that a kill often lands between pack
// uploads, index writes and deletions. Before each kill the same command runs uninterrupted on a
// copy of the repository (hard links: objects are immutable), and the kill moment is uniform in
// [0, 1.2 × that duration]. Each test counts how many kills landed after the process had changed
// the repository, and fails if too few did even after up to four times as many extra trials
// (killed in [0.5, 1.2 × duration], as on a loaded machine a run's changes come late), so it
// cannot pass by always killing too early or too late. HAVEN_CRASH_VERBOSE=1 prints every trial.
//
// Trials: 3 backup kills and 3 prune kills by default; HAVEN_STRESS=1 (make stress) runs 50 of
// each; HAVEN_CRASH_TRIALS=N overrides both. The seed (source contents, mutations, kill delays)
// is random and printed; HAVEN_CRASH_SEED=N reproduces all but the timing.
#include <sys/types.h>
#include <sys/wait.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <optional>

#include "crypto/crypto.h"
#include "support/repo_test_util.h"

namespace haven {
namespace {

using CrashClock = std::chrono::steady_clock;
using CrashManifest = std::map<std::string, std::string>;  // relative path → "dir" | "file …" | "link …"

bool CrashStressMode() {
  const char* s = getenv("HAVEN_STRESS");
  return s != nullptr && *s != '\0' && std::string(s) != "0";
}

bool CrashVerbose() {
  const char* s = getenv("HAVEN_CRASH_VERBOSE");
  return s != nullptr && *s != '\0' && std::string(s) != "0";
}

int CrashTrials() {
  if (const char* t = getenv("HAVEN_CRASH_TRIALS"); t && *t) return std::max(1, atoi(t));
  return CrashStressMode() ? 50 : 3;
}

uint64_t CrashSeed() {
  if (const char* s = getenv("HAVEN_CRASH_SEED"); s && *s) return std::strtoull(s, nullptr, 10);
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

double CrashSeconds(CrashClock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string CrashSha(const std::string& data) { return to_hex(crypto::sha256(as_bytes(data))); }

// --- the source tree ----------------------------------------------------------------------

void CrashScanInto(const std::string& root, const std::string& rel, CrashManifest& out) {
  std::string path = rel.empty() ? root : root + "/" + rel;
  for (const auto& n : list_dir(path)) {
    std::string r = rel.empty() ? n : rel + "/" + n;
    std::string p = root + "/" + r;
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) {
      out[r] = "unreadable";
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      out[r] = "dir";
      CrashScanInto(root, r, out);
    } else if (S_ISREG(st.st_mode)) {
      std::string data = read_file(p);
      out[r] = "file " + std::to_string(data.size()) + " " + CrashSha(data);
    } else if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t len = readlink(p.c_str(), buf, sizeof buf);
      out[r] = "link " + std::string(buf, len > 0 ? static_cast<size_t>(len) : 0);
    } else {
      out[r] = "other";
    }
  }
}

CrashManifest CrashScan(const std::string& root) {
  CrashManifest m;
  CrashScanInto(root, "", m);
  return m;
}

// "" if equal, else the first differences.
std::string CrashDiff(const CrashManifest& want, const CrashManifest& got) {
  std::ostringstream os;
  int shown = 0;
  for (const auto& [k, v] : want) {
    auto it = got.find(k);
    if (it == got.end()) {
      if (shown++ < 20) os << "  missing " << k << " (" << v << ")\n";
    } else if (it->second != v) {
      if (shown++ < 20) os << "  differs " << k << ": want " << v << ", got " << it->second << "\n";
    }
  }
  for (const auto& [k, v] : got) {
    if (!want.count(k) && shown++ < 20) os << "  unexpected " << k << " (" << v << ")\n";
  }
  if (shown > 20) os << "  ... " << (shown - 20) << " more\n";
  return os.str();
}

// A deterministic (per seed) tree of ~20–40 MB: a few large files spanning many chunks, some
// medium, many small ones, incompressible, compressible and mixed contents, duplicates,
// symlinks, nested and empty directories. mutate() rewrites, patches, appends, truncates, adds
// and deletes files and directories.
class CrashSource {
 public:
  CrashSource(std::string root, uint64_t seed) : root_(std::move(root)), rng_(seed) {}

  void create() {
    make_dir(root_);
    for (const char* d : {"docs", "docs/old", "media", "media/raw", "code", "code/src",
                          "code/src/deep", "code/src/deep/er", "empty"}) {
      make_dir(root_ + "/" + d);
    }
    for (int i = 0; i < 3; i++) put("media/raw/big" + std::to_string(i) + ".bin", content(range(3, 7) << 20));
    for (int i = 0; i < 10; i++) put(pick_dir() + "/medium" + std::to_string(i), content(range(64 << 10, 1536 << 10)));
    for (int i = 0; i < 50; i++) put(pick_dir() + "/small" + std::to_string(i), content(range(0, 24 << 10)));
    put("docs/empty-file", "");
    ASSERT_EQ(symlink("../docs/small0", (root_ + "/code/link").c_str()), 0);
    ASSERT_EQ(symlink("does/not/exist", (root_ + "/media/dangling").c_str()), 0);
  }

  // One round of changes, about 3–10 MB of new data: one bulk change (a large file rewritten or
  // added, mostly incompressible, so that a backup uploads several packs), then 3–7 small ones.
  void mutate() {
    {
      auto files = regular_files();
      uint64_t total = 0;
      std::vector<std::string> large;
      for (const auto& [f, size] : files) {
        total += size;
        if (size >= (1u << 20)) large.push_back(f);
      }
      // Over budget: delete large files first.
      while (total > (36u << 20) && !large.empty()) {
        size_t i = range(0, large.size() - 1);
        struct stat st{};
        lstat((root_ + "/" + large[i]).c_str(), &st);
        ASSERT_EQ(unlink((root_ + "/" + large[i]).c_str()), 0);
        total -= static_cast<uint64_t>(st.st_size);
        large.erase(large.begin() + static_cast<std::ptrdiff_t>(i));
      }
      uint64_t n = range(3 << 20, 8 << 20);
      std::string data = range(0, 2) == 0 ? content(n) : random_bytes(n, rng_());
      if (!large.empty() && range(0, 1) == 0) {
        put(large[range(0, large.size() - 1)], data);
      } else {
        put("media/bulk" + std::to_string(counter_++) + ".bin", data);
      }
    }
    int ops = static_cast<int>(range(3, 7));
    for (int i = 0; i < ops; i++) {
      auto files = regular_files();
      uint64_t total = 0;
      for (const auto& [f, size] : files) total += size;
      int op = static_cast<int>(range(0, 9));
      if (total > (40u << 20) && files.size() > 1) op = 6;  // delete
      if (total < (20u << 20) || files.size() < 20) op = 5;  // add
      if (files.empty()) op = 5;
      auto [victim, vsize] = files.empty() ? std::pair<std::string, uint64_t>{} : files[range(0, files.size() - 1)];
      switch (op) {
        case 0:
        case 1: {  // rewrite with new content of a similar size
          uint64_t n = vsize == 0 ? range(0, 64 << 10) : range(vsize / 2, vsize + vsize / 2 + 1);
          put(victim, content(std::min<uint64_t>(n, 8u << 20)));
          break;
        }
        case 2:
        case 3: {  // patch a region in place (same size): most chunks stay the same
          if (vsize < 2) break;
          uint64_t len = std::min<uint64_t>(vsize / 2, range(1, 64 << 10));
          uint64_t off = range(0, vsize - len);
          patch(victim, off, random_bytes(len, rng_()));
          break;
        }
        case 4: {  // append, or truncate
          if (range(0, 3) == 0 && vsize > 0) {
            ASSERT_NO_FATAL_FAILURE(shorten(victim, range(0, vsize - 1)));
          } else {
            std::string data = read_file(root_ + "/" + victim) + content(range(1 << 10, 512 << 10));
            put(victim, data);
          }
          break;
        }
        case 5: {  // add a file, sometimes in a new directory, sometimes a copy of another file
          std::string dir = pick_dir();
          if (range(0, 5) == 0) {
            dir += "/new" + std::to_string(counter_++);
            make_dir(root_ + "/" + dir);
          }
          uint64_t kind = range(0, 19);
          uint64_t n = kind < 13 ? range(0, 32 << 10) : kind < 18 ? range(64 << 10, 1 << 20) : range(1 << 20, 5 << 20);
          std::string data = (!files.empty() && range(0, 7) == 0) ? read_file(root_ + "/" + victim) : content(n);
          put(dir + "/added" + std::to_string(counter_++), data);
          break;
        }
        case 6:
        case 7: {  // delete a file (and its directory, if that empties a "new" one)
          if (files.size() <= 10) break;
          ASSERT_EQ(unlink((root_ + "/" + victim).c_str()), 0);
          std::string dir = victim.substr(0, victim.rfind('/') == std::string::npos ? 0 : victim.rfind('/'));
          if (dir.find("/new") != std::string::npos && list_dir(root_ + "/" + dir).empty()) {
            ASSERT_EQ(rmdir((root_ + "/" + dir).c_str()), 0);
          }
          break;
        }
        case 8:
        default: {  // rename a file into another directory
          std::string to = pick_dir() + "/moved" + std::to_string(counter_++);
          ASSERT_EQ(rename((root_ + "/" + victim).c_str(), (root_ + "/" + to).c_str()), 0);
          break;
        }
      }
    }
  }

  const std::string& root() const { return root_; }

 private:
  uint64_t range(uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_); }

  // Relative path → size (regular files) or -1 (directories); no contents read.
  void list_into(const std::string& rel, std::map<std::string, int64_t>& out) {
    for (const auto& n : list_dir(rel.empty() ? root_ : root_ + "/" + rel)) {
      std::string r = rel.empty() ? n : rel + "/" + n;
      struct stat st;
      if (lstat((root_ + "/" + r).c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        out[r] = -1;
        list_into(r, out);
      } else if (S_ISREG(st.st_mode)) {
        out[r] = st.st_size;
      }
    }
  }
  std::map<std::string, int64_t> listing() {
    std::map<std::string, int64_t> out;
    list_into("", out);
    return out;
  }

  std::string pick_dir() {
    std::vector<std::string> dirs{""};
    for (const auto& [rel, size] : listing()) {
      if (size < 0) dirs.push_back(rel);
    }
    std::string d = dirs[range(0, dirs.size() - 1)];
    return d.empty() ? "." : d;
  }

  std::vector<std::pair<std::string, uint64_t>> regular_files() {
    std::vector<std::pair<std::string, uint64_t>> out;
    for (const auto& [rel, size] : listing()) {
      if (size >= 0) out.emplace_back(rel, static_cast<uint64_t>(size));
    }
    return out;
  }

  // Random content of one of several kinds.
  std::string content(uint64_t n) {
    static const char* kWords[] = {"backup", "haven", "pack", "index", "snapshot", "chunk", "the",
                                   "of", "repository", "blob", "tree", "restore", "prune", "\n",
                                   "lorem", "ipsum", "0123456789", "crash", "kill", "  "};
    switch (range(0, 4)) {
      case 0:
      case 1:
        return random_bytes(n, rng_());  // incompressible
      case 2: {                          // text
        std::string s;
        s.reserve(n + 16);
        while (s.size() < n) {
          s += kWords[range(0, 19)];
          s += ' ';
        }
        s.resize(n);
        return s;
      }
      case 3: {  // mixed 64 KiB blocks: random, text-like, zeros
        std::string s;
        s.reserve(n);
        while (s.size() < n) {
          size_t b = std::min<uint64_t>(n - s.size(), 64 << 10);
          switch (range(0, 2)) {
            case 0: s += random_bytes(b, rng_()); break;
            case 1: s += std::string(b, static_cast<char>('a' + range(0, 25))); break;
            default: s += std::string(b, '\0'); break;
          }
        }
        return s;
      }
      default: {  // mostly zeros with sparse random bytes
        std::string s(n, '\0');
        for (uint64_t i = 0; n > 0 && i < n / 512 + 1; i++) s[range(0, n - 1)] = static_cast<char>(rng_());
        return s;
      }
    }
  }

  // Writes are fsynced: otherwise the next haven run's first fsync would also write back the
  // source's dirty pages, and the run on the copy (which measures the duration) would be slower
  // than the real one.
  void put(const std::string& rel, const std::string& data) {
    // Half the time replace the file (a new inode), half the time rewrite it in place.
    std::string path = root_ + "/" + rel;
    if (range(0, 1) == 0) {
      std::string tmp = root_ + "/.crash-tmp";
      ASSERT_NO_FATAL_FAILURE(write_synced(tmp, O_TRUNC, 0, data));
      ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0) << path;
    } else {
      ASSERT_NO_FATAL_FAILURE(write_synced(path, O_TRUNC, 0, data));
    }
  }

  void patch(const std::string& rel, uint64_t off, const std::string& data) {
    ASSERT_NO_FATAL_FAILURE(write_synced(root_ + "/" + rel, 0, off, data));
  }

  void write_synced(const std::string& path, int flags, uint64_t off, const std::string& data) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    size_t done = 0;
    while (done < data.size()) {
      ssize_t w = pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(off + done));
      ASSERT_GT(w, 0) << path << ": " << std::strerror(errno);
      done += static_cast<size_t>(w);
    }
    ASSERT_EQ(fsync(fd), 0) << path;
    ASSERT_EQ(::close(fd), 0) << path;
  }

  void shorten(const std::string& rel, uint64_t size) {
    int fd = ::open((root_ + "/" + rel).c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << rel;
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0) << rel;
    ASSERT_EQ(fsync(fd), 0) << rel;
    ::close(fd);
  }

  std::string root_;
  std::mt19937_64 rng_;
  uint64_t counter_ = 0;
};

// --- running haven asynchronously -----------------------------------------------------------

struct CrashProc {
  pid_t pid = -1;
  CrashClock::time_point start;
  std::string out_path, err_path;
};

// Starts HAVEN_BINARY -r repo ARGS with a clean environment (no inherited HAVEN_*, the test
// password in HAVEN_PASSWORD), stdout and stderr to files; returns at once.
CrashProc CrashSpawn(const std::string& repo, const std::vector<std::string>& args,
                     const std::string& out_path, const std::string& err_path) {
  CrashProc p;
  p.out_path = out_path;
  p.err_path = err_path;
  std::vector<std::string> argv_s{HAVEN_BINARY, "-r", repo};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string s = *e;
    if (s.rfind("HAVEN_", 0) != 0) env_s.push_back(s);
  }
  env_s.push_back("HAVEN_PASSWORD=" + kPw);
  std::vector<char*> argv, envp;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || err < 0 || in < 0) {
    ADD_FAILURE() << "open: " << std::strerror(errno);
    return p;
  }
  p.start = CrashClock::now();
  pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec (the test process has threads).
    setsid();  // no controlling terminal: never a password prompt
    struct sigaction sa{};
    sa.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &sa, nullptr);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  if (pid < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
  ::close(out);
  ::close(err);
  ::close(in);
  p.pid = pid;
  return p;
}

struct CrashOutcome {
  bool killed = false;  // SIGKILL ended it (else it exited by itself)
  int code = -1;        // exit code when it exited
  double seconds = 0;   // how long it ran
  std::string out, err;
};

std::string CrashDescribe(const CrashOutcome& o) {
  std::ostringstream os;
  os << (o.killed ? "killed" : "exit " + std::to_string(o.code)) << " after " << o.seconds
     << " s\n--- stdout ---\n" << o.out.substr(0, 4000) << "\n--- stderr ---\n" << o.err.substr(0, 4000);
  return os.str();
}

// Lets the process run until it exits or `delay` (from its start) has passed, then SIGKILLs it.
CrashOutcome CrashKillAfter(const CrashProc& p, std::chrono::microseconds delay) {
  CrashOutcome o;
  if (p.pid <= 0) return o;
  const auto deadline = p.start + delay;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(p.pid, &status, WNOHANG);
    if (r == p.pid) break;
    auto now = CrashClock::now();
    if (now >= deadline) {
      kill(p.pid, SIGKILL);
      while (waitpid(p.pid, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::min<CrashClock::duration>(deadline - now, std::chrono::microseconds(500)));
  }
  o.seconds = CrashSeconds(CrashClock::now() - p.start);
  if (WIFSIGNALED(status)) {
    o.killed = WTERMSIG(status) == SIGKILL;
    o.code = 128 + WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    o.code = WEXITSTATUS(status);
  }
  o.out = read_file(p.out_path);
  o.err = read_file(p.err_path);
  return o;
}

// --- the repository -------------------------------------------------------------------------

// Every file under the repository except locks (hidden temporary files included), with sizes:
// what tells whether a killed process had changed anything.
std::map<std::string, uint64_t> CrashRepoFiles(const std::string& repo) {
  std::map<std::string, uint64_t> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(repo, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::string rel = fs::relative(it->path(), repo, ec).string();
    if (rel.rfind("locks", 0) == 0 || !it->is_regular_file(ec)) continue;
    out[rel] = it->file_size(ec);
  }
  return out;
}

size_t CrashCountTmp(const std::map<std::string, uint64_t>& files, uint64_t* bytes = nullptr) {
  size_t n = 0;
  for (const auto& [rel, size] : files) {
    if (rel.find("/.tmp-") != std::string::npos || rel.rfind(".tmp-", 0) == 0) {
      n++;
      if (bytes) *bytes += size;
    }
  }
  return n;
}

std::set<std::string> CrashSnapshotIds(const std::string& repo) {
  std::set<std::string> ids;
  RunResult r = cli(repo, {"snapshots", "--json"});
  EXPECT_EQ(r.code, 0) << describe(r);
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_TRUE(j.is_array()) << r.out;
  if (j.is_array()) {
    for (const auto& s : j) ids.insert(s.value("id", ""));
  }
  return ids;
}

// The "summary" event of a --json run (JSON lines with "message_type").
nlohmann::json CrashSummary(const std::string& out) {
  std::istringstream in(out);
  std::string line;
  nlohmann::json found;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("message_type", "") == "summary") found = j;
  }
  return found;
}

struct CrashStats {
  int trials = 0, finished = 0, killed = 0, killed_mid_work = 0, killed_mid_write = 0;
  int adopted = 0;  // snapshots a killed backup had already written
  double typical_sum = 0;
};

// Lock objects in the repository (not the temporary files of a lock being written).
size_t CrashLockCount(const std::string& repo) {
  size_t n = 0;
  for (const auto& name : list_dir(repo + "/locks")) n += name[0] == '.' ? 0 : 1;
  return n;
}

// One test's world: the source tree, the repository, and the expected snapshots.
class CrashWorld {
 public:
  explicit CrashWorld(const std::string& name, uint64_t seed) : seed_(seed), rng_(seed ^ 0x9e3779b97f4a7c15ULL) {
    crypto::init();
    std::string tmpl = (fs::temp_directory_path() / ("haven-crash-" + name + "-XXXXXX")).string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
      return;
    }
    work_ = tmpl;
    repo_ = work_ + "/repo";
    source_ = std::make_unique<CrashSource>(work_ + "/src", seed);
  }
  ~CrashWorld() {
    if (!::testing::Test::HasFailure()) {
      std::error_code ec;
      fs::remove_all(work_, ec);
    } else {
      std::printf("[ crash  ] kept %s for inspection\n", work_.c_str());
    }
  }

  void init() {
    // 1 MiB packs and small chunks: many blobs per pack, many packs, many partly used packs.
    RunResult r = cli(repo_, {"init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1",
                              "--chunk-min", "32", "--chunk-avg", "128", "--chunk-max", "512"});
    ASSERT_EQ(r.code, 0) << describe(r);
    source_->create();
  }

  // An uninterrupted backup; records its snapshot. Returns its duration in seconds.
  double backup() {
    CrashManifest m = CrashScan(source_->root());
    auto t0 = CrashClock::now();
    RunResult r = cli(repo_, {"backup", "--json", source_->root()});
    double s = CrashSeconds(CrashClock::now() - t0);
    EXPECT_EQ(r.code, 0) << describe(r);
    std::string id = CrashSummary(r.out).value("snapshot_id", "");
    EXPECT_EQ(id.size(), 64u) << describe(r);
    if (!id.empty()) expected_[id] = m;
    return s;
  }

  // How long `args` takes, uninterrupted, on a copy of the repository as it is now: the kill
  // moment of the real run is then drawn from this very run's duration. The copy's run must
  // succeed as well.
  double measure(const std::vector<std::string>& args) {
    std::string copy = work_ + "/repo-measure";
    std::error_code ec;
    fs::remove_all(copy, ec);
    // Hard links: objects are immutable (written under a temporary name, linked, never changed
    // in place), so the copy costs nothing and leaves no dirty pages to slow the next run.
    fs::copy(repo_, copy, fs::copy_options::recursive | fs::copy_options::create_hard_links);
    auto t0 = CrashClock::now();
    RunResult r = cli(copy, args);
    double s = CrashSeconds(CrashClock::now() - t0);
    EXPECT_EQ(r.code, 0) << "uninterrupted run on a copy of the repository:\n" << describe(r);
    fs::remove_all(copy, ec);
    return s;
  }

  // One trial: `args` runs uninterrupted on a copy of the repository (taking T seconds), then
  // for real, SIGKILLed at a moment uniform in [0, 1.2 T] unless it finished first; then
  // verify(). A backup that finished adds its snapshot (the source as it is now) to the
  // expected ones.
  void kill_trial(const std::vector<std::string>& args, bool is_backup, const std::string& label,
                  CrashStats& st, bool late = false) {
    CrashManifest now;
    if (is_backup) now = CrashScan(source_->root());
    const double typical = measure(args);
    st.typical_sum += typical;
    auto before = CrashRepoFiles(repo_);
    auto kill_at = delay(typical, late);
    std::vector<std::string> argv = args;
    argv.insert(argv.begin(), "--json");
    CrashProc p = CrashSpawn(repo_, argv, work_ + "/out", work_ + "/err");
    CrashOutcome o = CrashKillAfter(p, kill_at);
    st.trials++;
    std::ostringstream what;
    what << label;
    if (!o.killed) {
      ASSERT_EQ(o.code, 0) << label << ":\n" << CrashDescribe(o);
      st.finished++;
      if (is_backup) {
        std::string id = CrashSummary(o.out).value("snapshot_id", "");
        ASSERT_EQ(id.size(), 64u) << CrashDescribe(o);
        expected_[id] = now;
      }
      what << " that finished after " << o.seconds << " s (before the kill at " << kill_at.count() / 1e6 << " s)";
    } else {
      st.killed++;
      what << " killed after " << o.seconds << " s";
    }
    auto after = CrashRepoFiles(repo_);
    if (o.killed && after != before) st.killed_mid_work++;
    if (o.killed && CrashCountTmp(after) > CrashCountTmp(before)) st.killed_mid_write++;
    if (CrashVerbose()) {
      int added = 0, removed = 0;
      for (const auto& [f, sz] : after) added += before.count(f) ? 0 : 1;
      for (const auto& [f, sz] : before) removed += after.count(f) ? 0 : 1;
      std::printf("[ crash  ] %s (uninterrupted on a copy: %.3f s); %d file(s) added, %d removed\n",
                  what.str().c_str(), typical, added, removed);
    }
    bool lock_left = o.killed && CrashLockCount(repo_) > 0;
    ASSERT_NO_FATAL_FAILURE(verify(what.str(), lock_left, is_backup && o.killed, now, st));
  }

  // Removes snapshots at random (never all) until at most `keep` are left, the way forget
  // would: the snapshot object goes, its data stays until prune.
  void forget_down_to(size_t keep) {
    keep = std::max<size_t>(keep, 1);
    while (expected_.size() > keep) {
      auto it = expected_.begin();
      std::advance(it, std::uniform_int_distribution<size_t>(0, expected_.size() - 1)(rng_));
      std::string path = repo_ + "/snapshots/" + it->first;
      ASSERT_EQ(unlink(path.c_str()), 0) << path << ": " << std::strerror(errno);
      expected_.erase(it);
    }
  }

  // After a kill: check --read-data passes, no expected snapshot is gone (and `new_allowed`
  // says whether a snapshot the killed process wrote may have appeared, whose contents are
  // `now`), and every expected snapshot restores bit-exact.
  void verify(const std::string& what, bool lock_left, bool new_allowed, const CrashManifest& now,
              CrashStats& st) {
    SCOPED_TRACE(what);
    RunResult c = cli(repo_, {"check", "--read-data"});
    ASSERT_EQ(c.code, 0) << "check --read-data after " << what << ":\n" << describe(c);
    if (lock_left) {
      // The dead process's lock must not block anything; the first command says it ignored it.
      EXPECT_TRUE(contains(c.err, "ignoring stale")) << describe(c);
    }
    std::set<std::string> ids = CrashSnapshotIds(repo_);
    for (const auto& [id, m] : expected_) {
      ASSERT_TRUE(ids.count(id)) << "snapshot " << id << " disappeared after " << what;
    }
    for (const auto& id : ids) {
      if (expected_.count(id)) continue;
      ASSERT_TRUE(new_allowed) << "unexpected snapshot " << id << " after " << what;
      expected_[id] = now;  // written by the killed backup just before the kill: must be whole
      st.adopted++;
    }
    ASSERT_LE(ids.size(), expected_.size());
    restore_all(what);
  }

  void restore_all(const std::string& what) {
    for (const auto& [id, m] : expected_) {
      std::string target = work_ + "/restore";
      std::error_code ec;
      fs::remove_all(target, ec);
      RunResult r = cli(repo_, {"restore", id, "--target", target});
      ASSERT_EQ(r.code, 0) << "restore " << id << " after " << what << ":\n" << describe(r);
      EXPECT_EQ(list_dir(target), std::vector<std::string>{"src"});
      std::string diff = CrashDiff(m, CrashScan(target + "/src"));
      ASSERT_EQ(diff, "") << "snapshot " << id << " does not restore bit-exact after " << what;
      fs::remove_all(target, ec);
    }
  }

  // The end: a full prune (no kill) reclaims every leftover; check then reports no notices and
  // no unused data, a dry run finds nothing to do, unlock removes the dead processes' locks,
  // and every snapshot still restores.
  void final_cleanup() {
    SCOPED_TRACE("final prune");
    RunResult p = cli(repo_, {"prune", "--max-unused", "0"});
    ASSERT_EQ(p.code, 0) << describe(p);
    RunResult c = cli(repo_, {"check", "--read-data", "--json"});
    ASSERT_EQ(c.code, 0) << describe(c);
    auto j = nlohmann::json::parse(c.out, nullptr, false);
    ASSERT_TRUE(j.is_object()) << c.out;
    EXPECT_TRUE(j.value("healthy", false)) << c.out;
    EXPECT_EQ(j["problems"].size(), 0u) << "after a full prune, check should have nothing to say:\n" << c.out;
    EXPECT_EQ(j.value("packs_unindexed", -1), 0) << c.out;
    EXPECT_EQ(j.value("blobs_unused", -1), 0) << c.out;
    EXPECT_EQ(j.value("snapshots", -1), static_cast<int>(expected_.size())) << c.out;

    RunResult d = cli(repo_, {"--json", "prune", "--dry-run", "--max-unused", "0"});
    ASSERT_EQ(d.code, 0) << describe(d);
    nlohmann::json s = CrashSummary(d.out);
    ASSERT_TRUE(s.is_object()) << d.out;
    for (const char* k : {"packs_deleted", "packs_repacked", "packs_unindexed", "blobs_removed",
                          "bytes_unused", "bytes_deleted"}) {
      EXPECT_EQ(s.value(k, -1), 0) << k << " after a full prune:\n" << d.out;
    }
    auto after = CrashRepoFiles(repo_);
    size_t packs = 0;
    for (const auto& [rel, size] : after) {
      if (rel.rfind("data/", 0) == 0 && rel.find("/.") == std::string::npos) packs++;
    }
    EXPECT_EQ(s.value("packs_total", -1), static_cast<int>(packs)) << d.out;

    RunResult u = cli(repo_, {"unlock"});
    EXPECT_EQ(u.code, 0) << describe(u);
    EXPECT_EQ(CrashLockCount(repo_), 0u) << describe(u);

    restore_all("the final prune");
    uint64_t tmp_bytes = 0;
    size_t tmp = CrashCountTmp(after, &tmp_bytes);
    std::printf("[ crash  ] after the final prune: %zu pack(s), %zu snapshot(s); %zu temporary "
                "file(s) (%" PRIu64 " bytes) left by killed processes\n",
                packs, expected_.size(), tmp, tmp_bytes);
  }

  CrashSource& source() { return *source_; }
  const std::string& repo() const { return repo_; }
  const std::string& work() const { return work_; }
  std::map<std::string, CrashManifest>& expected() { return expected_; }
  std::mt19937_64& rng() { return rng_; }
  uint64_t seed() const { return seed_; }

  // A random kill delay in [0, 1.2 × typical], or in [0.5, 1.2] × typical when `late`.
  std::chrono::microseconds delay(double typical_seconds, bool late) {
    double s = std::uniform_real_distribution<double>(late ? 0.5 * typical_seconds : 0,
                                                      1.2 * typical_seconds)(rng_);
    return std::chrono::microseconds(static_cast<int64_t>(s * 1e6));
  }

 private:
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::string work_, repo_;
  std::unique_ptr<CrashSource> source_;
  std::map<std::string, CrashManifest> expected_;  // snapshot ID → source at its backup
};

void CrashReport(const char* what, const CrashStats& st, double elapsed) {
  std::printf("[ crash  ] %s: %d trial(s): %d killed (%d after changing the repository, %d while "
              "writing an object), %d finished before the kill; %d snapshot(s) written just before "
              "a kill; uninterrupted run %.3f s on average; test took %.1f s\n",
              what, st.trials, st.killed, st.killed_mid_work, st.killed_mid_write, st.finished,
              st.adopted, st.typical_sum / std::max(1, st.trials), elapsed);
  std::fflush(stdout);
}

// How many kills must have landed after the process changed the repository.
int CrashRequiredMidWork(int trials) { return trials >= 20 ? trials / 5 : 1; }

// --- the tests ------------------------------------------------------------------------------

// `haven backup` killed at random moments: every earlier snapshot survives and restores
// bit-exact, check --read-data passes, a snapshot is either whole or absent, the dead process's
// lock blocks nothing, and the next backup (incremental, on top of the leftovers) works.
TEST(CrashTest, BackupKilledAtRandomMomentsLosesNothing) {
  const uint64_t seed = CrashSeed();
  const int trials = CrashTrials();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (reproduce with HAVEN_CRASH_SEED=" + std::to_string(seed) + ")");
  std::printf("[ crash  ] backup kills: seed %" PRIu64 ", %d trial(s)\n", seed, trials);
  auto t0 = CrashClock::now();
  CrashWorld w("backup", seed);
  ASSERT_NO_FATAL_FAILURE(w.init());
  w.backup();
  ASSERT_FALSE(::testing::Test::HasFailure());

  CrashStats st;
  // Extra trials (up to four times as many, killed in the later half) only if too few kills
  // landed mid-work.
  for (int t = 0; t < trials * 5; t++) {
    if (t >= trials && st.killed_mid_work >= CrashRequiredMidWork(trials)) break;
    SCOPED_TRACE("backup trial " + std::to_string(t));
    ASSERT_NO_FATAL_FAILURE(w.source().mutate());
    ASSERT_NO_FATAL_FAILURE(
        w.kill_trial({"backup", w.source().root()}, true, "backup (trial " + std::to_string(t) + ")", st,
                     /*late=*/t >= trials));
    // Keep the work per trial bounded: forget snapshots at random, prune now and then (which
    // also removes what killed backups left).
    if (w.expected().size() > 6) {
      ASSERT_NO_FATAL_FAILURE(w.forget_down_to(4));
    }
    if (t % 10 == 9) {
      RunResult r = cli(w.repo(), {"prune"});
      ASSERT_EQ(r.code, 0) << describe(r);
    }
  }
  ASSERT_NO_FATAL_FAILURE(w.final_cleanup());
  CrashReport("backup", st, CrashSeconds(CrashClock::now() - t0));
  EXPECT_GE(st.killed_mid_work, CrashRequiredMidWork(trials))
      << "too few kills landed while backup was changing the repository: the test proves little";
}

// `haven prune --max-unused 0` (repacks every pack with an unused blob) killed at random
// moments, on a repository with forgotten snapshots, partly used packs, and what earlier killed
// prunes and backups left: check --read-data passes, the remaining snapshots are exactly those
// expected and restore bit-exact, and the next prune removes what the killed one left.
TEST(CrashTest, PruneKilledAtRandomMomentsLosesNothing) {
  const uint64_t seed = CrashSeed();
  const int trials = CrashTrials();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (reproduce with HAVEN_CRASH_SEED=" + std::to_string(seed) + ")");
  std::printf("[ crash  ] prune kills: seed %" PRIu64 ", %d trial(s)\n", seed, trials);
  auto t0 = CrashClock::now();
  CrashWorld w("prune", seed);
  ASSERT_NO_FATAL_FAILURE(w.init());
  w.backup();
  for (int i = 0; i < 4; i++) {
    ASSERT_NO_FATAL_FAILURE(w.source().mutate());
    w.backup();
  }
  ASSERT_FALSE(::testing::Test::HasFailure());

  CrashStats st, backup_st;
  auto chance = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(w.rng()) == 0; };
  // Garbage for one prune: forget one to three snapshots, then back up one or two changed
  // trees so that packs become partly used; now and then one of those backups is killed too.
  auto make_garbage = [&](int t) {
    size_t drop = std::uniform_int_distribution<size_t>(1, 3)(w.rng());
    size_t have = w.expected().size();
    ASSERT_NO_FATAL_FAILURE(w.forget_down_to(std::min<size_t>(have > drop ? have - drop : 1, 5)));
    int backups = std::uniform_int_distribution<int>(1, 2)(w.rng());
    for (int i = 0; i < backups; i++) {
      ASSERT_NO_FATAL_FAILURE(w.source().mutate());
      if (chance(4)) {
        ASSERT_NO_FATAL_FAILURE(w.kill_trial({"backup", w.source().root()}, true,
                                             "backup before prune trial " + std::to_string(t), backup_st));
      } else {
        w.backup();
      }
    }
  };

  bool last_killed = false;
  for (int t = 0; t < trials * 5; t++) {
    if (t >= trials && st.killed_mid_work >= CrashRequiredMidWork(trials)) break;
    SCOPED_TRACE("prune trial " + std::to_string(t));
    // Usually new garbage first; sometimes the next prune runs straight on what a killed one
    // left (and is killed in turn).
    if (!last_killed || !chance(3)) {
      ASSERT_NO_FATAL_FAILURE(make_garbage(t));
    }
    int killed_before = st.killed;
    ASSERT_NO_FATAL_FAILURE(w.kill_trial({"prune", "--max-unused", "0"}, false,
                                         "prune (trial " + std::to_string(t) + ")", st, /*late=*/t >= trials));
    last_killed = st.killed > killed_before;
  }
  ASSERT_NO_FATAL_FAILURE(w.final_cleanup());
  CrashReport("prune", st, CrashSeconds(CrashClock::now() - t0));
  if (backup_st.trials > 0) CrashReport("backups between prunes", backup_st, 0);
  EXPECT_GE(st.killed_mid_work, CrashRequiredMidWork(trials))
      << "too few kills landed while prune was changing the repository: the test proves little";
}

// A process killed inside LocalBackend::save() leaves "<dir>/.tmp-<random>" (a whole pack of up
// to --pack-size, an index or a lock). Found by the tests above: after 50 killed backups, 11
// such files held 9.6 MB of a 97 MB repository, and nothing removed them. Now check names them
// (a notice) and prune, which holds the exclusive lock so no save can be running, deletes them
// at any age in data/, index/ and snapshots/; in keys/ and locks/ (written without the lock)
// only when older than an hour.
TEST(CrashTest, PruneRemovesTemporaryFilesLeftByKilledSaves) {
  CrashWorld w("tmp", 1);
  ASSERT_NO_FATAL_FAILURE(w.init());
  w.backup();
  // What a backup killed between writing a pack's temporary file and linking it leaves.
  std::string dir = w.repo() + "/data/ab";
  if (!exists(dir)) make_dir(dir, 0700);
  std::string fresh[] = {dir + "/.tmp-0123456789abcdef", w.repo() + "/index/.tmp-fedcba9876543210"};
  for (const auto& f : fresh) write_file(f, random_bytes(1 << 20, 7), 0444);
  // A lock being written right now by another process must survive; an old one goes.
  std::string young_lock = w.repo() + "/locks/.tmp-1111111111111111";
  std::string old_lock = w.repo() + "/locks/.tmp-2222222222222222";
  write_file(young_lock, random_bytes(100, 8), 0444);
  write_file(old_lock, random_bytes(100, 9), 0444);
  set_times(old_lock, 1600000000LL * 1000000000LL, 1600000000LL * 1000000000LL);  // long ago
  RunResult before = cli(w.repo(), {"check"});
  EXPECT_EQ(before.code, 0) << describe(before);
  // The young lock is not counted: it may be a lock being written right now, which prune keeps.
  EXPECT_NE(before.out.find("temporary files: 3 file(s)"), std::string::npos) << describe(before);
  RunResult r = cli(w.repo(), {"prune"});
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_NE(r.out.find("removed 3 temporary file(s)"), std::string::npos) << describe(r);
  for (const auto& f : fresh) EXPECT_FALSE(exists(f)) << f << " is still there after prune";
  EXPECT_FALSE(exists(old_lock));
  EXPECT_TRUE(exists(young_lock)) << "prune removed a lock file that may still be being written";
  RunResult c = cli(w.repo(), {"check", "--read-data"});
  EXPECT_EQ(c.code, 0) << describe(c);
}

}  // namespace
}  // namespace haven

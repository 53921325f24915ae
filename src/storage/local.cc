// storage/local.cc — the local-disk backend (layout and durability rules: see local.h).
#include "storage/local.h"
#include "util/cancel.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>
#include <mutex>
#include <string>
#include <unordered_set>
#include <utility>

namespace haven::storage {

namespace {

// ---- small POSIX helpers -------------------------------------------------------------------
// Every failure becomes an Error only through errno_error(path, errno), so messages name the
// file and EACCES/EROFS/ENOSPC are classified in one place.

// Closes a file descriptor on scope exit unless release()d.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Closes a DIR* on scope exit (also when a list() callback throws).
class Dir {
 public:
  explicit Dir(DIR* d) : d_(d) {}
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;
  ~Dir() {
    if (d_ != nullptr) ::closedir(d_);
  }
  DIR* get() const { return d_; }

 private:
  DIR* d_;
};

// Retries a syscall returning -1/errno while it fails with EINTR.
template <typename F>
auto retry_eintr(F&& f) {
  for (;;) {
    auto r = f();
    if (r != -1 || errno != EINTR) return r;
  }
}

std::string join(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string parent_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Opens `dir` and fsyncs it, so that entries created/removed in it (and renames into it)
// survive a power cut.
Status fsync_dir(const std::string& dir) {
  Fd fd(retry_eintr([&] { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); }));
  if (fd.get() < 0) return errno_error(dir, errno);
  if (retry_eintr([&] { return ::fsync(fd.get()); }) != 0) return errno_error(dir, errno);
  return ok_status();
}

// Writes all of `data` at `offset` onwards, retrying EINTR and short writes.
Status write_all(int fd, ByteView data, const std::string& what, uint64_t offset = 0) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error(what, errno);
    }
    if (n == 0) return errno_error(what, ENOSPC);  // no progress: treat as a full device
    done += static_cast<size_t>(n);
  }
  return ok_status();
}

// 16 random lower-case hex characters for temporary file names.
std::string random_suffix() {
  uint8_t buf[8];
  size_t got = 0;
  while (got < sizeof(buf)) {
    ssize_t n = ::getrandom(buf + got, sizeof(buf) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::abort();  // getrandom on a kernel that has it cannot otherwise fail
    }
    got += static_cast<size_t>(n);
  }
  return to_hex(ByteView(buf, sizeof(buf)));
}

// Shard directories (data/xx). A save makes its shard if it is missing (mkdir, in the thread
// that opens the object: a backup worker starting a pack) and, before it reports success,
// makes sure the shard's entry in "data" is on disk (in publish(): the thread that fsyncs the
// object anyway), so that a backup worker never waits on an fsync of "data". A shard found to
// exist already may have been made a moment ago by another process that has not fsynced "data"
// yet, so it is trusted only after an fsync of "data" by this process: the first time, "data"
// is listed and then fsynced, which makes every shard listed durable at once; a shard made
// after that (by this process or another) gets an fsync of its own. Then saves into the shard
// skip mkdir and fsync.
std::mutex g_shards_mu;
std::unordered_set<std::string> g_existing_shards;   // made or found by this process
std::unordered_set<std::string> g_durable_shards;    // and their entries fsynced in "data"
std::unordered_set<std::string> g_listed_data_dirs;  // "data" directories listed and fsynced
std::atomic<size_t> g_shard_fsyncs{0};

// Forgets a shard that turned out to be gone (the repository was deleted and re-created).
void forget_shard_dir(const std::string& shard) {
  std::lock_guard<std::mutex> lock(g_shards_mu);
  g_existing_shards.erase(shard);
  g_durable_shards.erase(shard);
  g_listed_data_dirs.erase(parent_of(shard));
}

Status ensure_shard_exists(const std::string& shard) {
  {
    std::lock_guard<std::mutex> lock(g_shards_mu);
    if (g_existing_shards.count(shard) != 0) return ok_status();
  }
  if (retry_eintr([&] { return ::mkdir(shard.c_str(), 0700); }) != 0 && errno != EEXIST) {
    return errno_error(shard, errno);
  }
  std::lock_guard<std::mutex> lock(g_shards_mu);
  g_existing_shards.insert(shard);
  return ok_status();
}

// Lists `data`, fsyncs it, and trusts every entry listed (the entries of the directories made on
// demand: data/'s shards, and the repository's own for wal/ and leases/).
Status trust_listed_shards(const std::string& data) {
  std::vector<std::string> shards;
  {
    Dir d(::opendir(data.c_str()));
    if (d.get() == nullptr) return errno_error(data, errno);
    while (struct dirent* e = ::readdir(d.get())) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
        shards.push_back(join(data, e->d_name));
      }
    }
  }
  HAVEN_TRY(fsync_dir(data));
  g_shard_fsyncs++;
  std::lock_guard<std::mutex> lock(g_shards_mu);
  g_listed_data_dirs.insert(data);
  for (auto& sh : shards) g_durable_shards.insert(std::move(sh));
  return ok_status();
}

// fsyncs "data" unless the shard's entry in it is known to be on disk already, so that objects
// fsynced inside the shard cannot vanish together with their directory after a power cut.
Status make_shard_durable(const std::string& shard) {
  const std::string data = parent_of(shard);
  bool listed;
  {
    std::lock_guard<std::mutex> lock(g_shards_mu);
    if (g_durable_shards.count(shard) != 0) return ok_status();
    listed = g_listed_data_dirs.count(data) != 0;
  }
  if (!listed) {
    HAVEN_TRY(trust_listed_shards(data));
    std::lock_guard<std::mutex> lock(g_shards_mu);
    if (g_durable_shards.count(shard) != 0) return ok_status();
  }
  HAVEN_TRY(fsync_dir(data));
  g_shard_fsyncs++;
  std::lock_guard<std::mutex> lock(g_shards_mu);
  g_durable_shards.insert(shard);
  return ok_status();
}

bool is_hex_char(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// A file's modification time in nanoseconds since the epoch.
TimeNs mtime_of(const struct stat& st) {
  return static_cast<TimeNs>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// Calls fn for every regular file in `dir` not starting with '.'; a missing directory lists
// nothing. `accept` filters names (e.g. data objects must belong to their shard).
template <typename Accept>
Status list_dir(const std::string& dir, ObjectType type, Accept&& accept,
                const std::function<void(const ObjectInfo&)>& fn) {
  Dir d(::opendir(dir.c_str()));
  if (d.get() == nullptr) {
    if (errno == ENOENT) return ok_status();
    return errno_error(dir, errno);
  }
  int dfd = ::dirfd(d.get());
  for (;;) {
    errno = 0;
    struct dirent* e = ::readdir(d.get());
    if (e == nullptr) {
      if (errno != 0) return errno_error(dir, errno);
      break;
    }
    std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;  // ".", "..", ".tmp-*" and other hidden files
    if (e->d_type != DT_REG && e->d_type != DT_LNK && e->d_type != DT_UNKNOWN) continue;
    if (!accept(name)) continue;
    struct stat st;
    if (::fstatat(dfd, name.c_str(), &st, 0) != 0) {
      if (errno == ENOENT) continue;  // removed concurrently
      return errno_error(join(dir, name), errno);
    }
    if (!S_ISREG(st.st_mode)) continue;
    fn(ObjectInfo{ObjectName{type, name}, static_cast<uint64_t>(st.st_size), mtime_of(st)});
  }
  return ok_status();
}

}  // namespace

// ---- LocalBackend --------------------------------------------------------------------------

LocalBackend::LocalBackend(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

std::string LocalBackend::dir_of(const ObjectName& name) const {
  switch (name.type) {
    case ObjectType::kConfig:
      return root_;
    case ObjectType::kData:
      return join(join(root_, type_dir(name.type)), name.name.substr(0, 2));
    default:
      return join(root_, type_dir(name.type));
  }
}

std::string LocalBackend::path_of(const ObjectName& name) const {
  if (name.type == ObjectType::kConfig) return join(root_, "config");
  return join(dir_of(name), name.name);
}

Result<LocalBackend::TempFile> LocalBackend::create_temp(const ObjectName& name) {
  HAVEN_TRY(current_cancel().check());
  HAVEN_TRY(check_object_name(name));
  TempFile t;
  t.dir = dir_of(name);
  t.final_path = path_of(name);
  // Shards, and the WAL directory (repositories made before it existed lack it), on demand.
  const bool made_on_demand = name.type == ObjectType::kData || name.type == ObjectType::kWal ||
                              name.type == ObjectType::kLease;
  if (made_on_demand) HAVEN_TRY(ensure_shard_exists(t.dir));
  t.shard = made_on_demand;

  // Create the temporary file. O_EXCL: never reuse someone else's file; 0444: objects are
  // immutable (root, and the owner's unlink, are unaffected by the mode).
  for (int attempt = 0; t.fd < 0; attempt++) {
    t.tmp = join(t.dir, ".tmp-" + random_suffix());
    int f = retry_eintr(
        [&] { return ::open(t.tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444); });
    if (f >= 0) {
      t.fd = f;
      break;
    }
    int err = errno;
    if (err == ENOENT && made_on_demand && attempt == 0) {
      // The cached shard directory was removed behind our back: create it again.
      forget_shard_dir(t.dir);
      HAVEN_TRY(ensure_shard_exists(t.dir));
      continue;
    }
    if (err != EEXIST || attempt >= 3) return errno_error(t.final_path, err);
  }
  return t;
}

void LocalBackend::TempFile::discard() {
  if (fd >= 0) ::close(fd);
  fd = -1;
  if (!tmp.empty()) ::unlink(tmp.c_str());
  tmp.clear();
}

Status LocalBackend::publish(TempFile& t) {
  // From here on, any failure removes the temporary file so no partial object stays behind.
  auto fail = [&](Error e) -> Status {
    t.discard();
    return e;
  };
  // fsync the file so its contents are on disk before the name points at it; otherwise a power
  // cut after the rename could leave a complete-looking name with missing or zeroed data.
  if (retry_eintr([&] { return ::fsync(t.fd); }) != 0) return fail(errno_error(t.final_path, errno));
  // On disk now, so its pages in the page cache are clean: let the kernel reuse them. A backup
  // writes hundreds of megabytes that nobody reads soon; kept, they would push the machine's
  // working set (a database's cache) out of memory, and every new page the writes took would be
  // one the kernel had to find and zero anew. Advice only: nothing to check.
  (void)::posix_fadvise(t.fd, 0, 0, POSIX_FADV_DONTNEED);
  // close() can report delayed write errors (e.g. on network file systems); never retried.
  int fd = t.fd;
  t.fd = -1;
  if (::close(fd) != 0) return fail(errno_error(t.final_path, errno));

  if (before_rename_) before_rename_();

  // link() rather than rename(): it fails with EEXIST instead of replacing an existing object.
  if (retry_eintr([&] { return ::link(t.tmp.c_str(), t.final_path.c_str()); }) != 0) {
    // EEXIST becomes kAlreadyExists: objects are immutable and never replaced.
    return fail(errno_error(t.final_path, errno));
  }
  // The object is complete under its final name; a leftover temporary name is harmless (list()
  // never reports it), so a failure to remove it is not a failure of the save.
  t.discard();

  // fsync the directory so the new name (and the removal of the temporary one) survives a
  // power cut; until then the object could disappear although save() reported success.
  Status synced = fsync_dir(t.dir);
  // And the shard's own entry (made by create_temp() without an fsync).
  if (synced.ok() && t.shard) synced = make_shard_durable(t.dir);
  if (!synced.ok()) {
    // Durability is unknown: take the object back so that a failed save leaves nothing
    // visible and the caller may simply save again.
    ::unlink(t.final_path.c_str());
    return synced;
  }
  return ok_status();
}

Status LocalBackend::save(const ObjectName& name, ByteView data) {
  HAVEN_ASSIGN(TempFile t, create_temp(name));
  if (Status s = write_all(t.fd, data, t.final_path); !s.ok()) {
    t.discard();
    return s;
  }
  return publish(t);
}

namespace {
// Streams into the temporary file; commit() publishes it as save() does.
class LocalWriter : public ObjectWriter {
 public:
  LocalWriter(LocalBackend& backend, LocalBackend::TempFile t)
      : backend_(backend), t_(std::move(t)) {}
  ~LocalWriter() override { t_.discard(); }
  Status append(ByteView data) override {
    if (t_.fd < 0) return Error(Error::Code::kInternal, t_.final_path + ": appended after commit");
    if (Status s = write_all(t_.fd, data, t_.final_path, size_); !s.ok()) {
      t_.discard();
      return s;
    }
    size_ += data.size();
    return ok_status();
  }
  uint64_t size() const override { return size_; }
  Status commit() override {
    if (t_.fd < 0) return Error(Error::Code::kInternal, t_.final_path + ": write failed earlier");
    HAVEN_TRY(current_cancel().check());
    return backend_.publish(t_);
  }

 private:
  LocalBackend& backend_;
  LocalBackend::TempFile t_;
  uint64_t size_ = 0;
};
}  // namespace

Result<std::unique_ptr<ObjectWriter>> LocalBackend::open_writer(const ObjectName& name) {
  HAVEN_ASSIGN(TempFile t, create_temp(name));
  return std::unique_ptr<ObjectWriter>(std::make_unique<LocalWriter>(*this, std::move(t)));
}

namespace {
// Reads [offset, offset + length) of `path` (length 0: to the end) into the buffer `buffer`
// returns for the length found: one open, fstat and pread loop for load() and load_into().
template <typename Buffer>
Status read_object_range(const ObjectName& name, const std::string& path, uint64_t offset,
                         uint64_t length, Buffer&& buffer) {
  Fd fd(retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); }));
  if (fd.get() < 0) return errno_error(path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errno_error(path, errno);
  const uint64_t size = static_cast<uint64_t>(st.st_size);

  uint64_t end = length == 0 ? size : offset + length;
  bool overflow = length != 0 && end < offset;
  if (overflow || offset > size || end > size) {
    std::string b = overflow ? "overflow" : std::to_string(end < offset ? offset : end);
    return Error(Error::Code::kCorrupt, name.describe() + ": requested range [" +
                                            std::to_string(offset) + ", " + b +
                                            ") beyond end of object (size " +
                                            std::to_string(size) + ")");
  }

  const size_t want = static_cast<size_t>(end - offset);
  uint8_t* out = buffer(want);
  size_t done = 0;
  while (done < want) {
    ssize_t n = ::pread(fd.get(), out + done, want - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error(path, errno);
    }
    if (n == 0) {
      return Error(Error::Code::kCorrupt, name.describe() + ": object " + path +
                                              " shrank while being read (read ended at " +
                                              std::to_string(offset + done) + ", expected " +
                                              std::to_string(end) + ")");
    }
    done += static_cast<size_t>(n);
  }
  return ok_status();
}
}  // namespace

Result<Bytes> LocalBackend::load(const ObjectName& name, uint64_t offset, uint64_t length) {
  HAVEN_TRY(current_cancel().check());
  HAVEN_TRY(check_object_name(name));
  Bytes out;
  HAVEN_TRY(read_object_range(name, path_of(name), offset, length, [&](size_t n) {
    out.resize(n);
    return out.data();
  }));
  return out;
}

Status LocalBackend::load_into(const ObjectName& name, uint64_t offset, std::span<uint8_t> out) {
  HAVEN_TRY(current_cancel().check());
  HAVEN_TRY(check_object_name(name));
  if (out.empty()) return ok_status();
  return read_object_range(name, path_of(name), offset, out.size(), [&](size_t) { return out.data(); });
}

Result<ObjectInfo> LocalBackend::stat(const ObjectName& name) {
  HAVEN_TRY(current_cancel().check());
  HAVEN_TRY(check_object_name(name));
  const std::string path = path_of(name);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return errno_error(path, errno);
  if (!S_ISREG(st.st_mode)) {
    return Error(Error::Code::kIo, name.describe() + ": " + path + " is not a regular file");
  }
  return ObjectInfo{name, static_cast<uint64_t>(st.st_size), mtime_of(st)};
}

Status LocalBackend::list(ObjectType type, const std::function<void(const ObjectInfo&)>& fn) {
  HAVEN_TRY(current_cancel().check());
  if (type == ObjectType::kConfig) {
    const std::string path = join(root_, "config");
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return ok_status();
      return errno_error(path, errno);
    }
    if (S_ISREG(st.st_mode)) {
      fn(ObjectInfo{ObjectName{ObjectType::kConfig, "config"}, static_cast<uint64_t>(st.st_size), mtime_of(st)});
    }
    return ok_status();
  }
  const std::string tdir = join(root_, type_dir(type));
  if (type != ObjectType::kData) {
    return list_dir(tdir, type, [](const std::string&) { return true; }, fn);
  }
  // Walk the 256 shards; a name in the wrong shard is not listed, since load() and stat()
  // could not find it there.
  static const char* kHex = "0123456789abcdef";
  for (int i = 0; i < 256; i++) {
    const std::string shard{kHex[i >> 4], kHex[i & 15]};
    auto in_shard = [&](const std::string& n) {
      return n.size() >= 2 && n.compare(0, 2, shard) == 0 && is_hex_char(n[0]);
    };
    HAVEN_TRY(list_dir(join(tdir, shard), type, in_shard, fn));
  }
  return ok_status();
}

Result<Backend::Leftovers> LocalBackend::remove_leftovers(ObjectType type, int64_t min_age_seconds,
                                                          bool dry_run) {
  Leftovers out;
  if (type == ObjectType::kConfig) return out;
  const std::string tdir = join(root_, type_dir(type));
  std::vector<std::string> dirs;
  if (type == ObjectType::kData) {
    static const char* kHex = "0123456789abcdef";
    for (int i = 0; i < 256; i++) dirs.push_back(join(tdir, std::string{kHex[i >> 4], kHex[i & 15]}));
  } else {
    dirs.push_back(tdir);
  }
  const time_t cutoff = ::time(nullptr) - min_age_seconds;
  for (const auto& dir : dirs) {
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    if (!d) {
      if (errno == ENOENT) continue;
      return errno_error(dir, errno);
    }
    bool removed = false;
    while (struct dirent* e = ::readdir(d.get())) {
      std::string name = e->d_name;
      if (name.rfind(".tmp-", 0) != 0) continue;
      struct stat st;
      if (::fstatat(::dirfd(d.get()), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
          !S_ISREG(st.st_mode) || st.st_mtime > cutoff) {
        continue;
      }
      if (!dry_run) {
        if (::unlinkat(::dirfd(d.get()), name.c_str(), 0) != 0) {
          if (errno == ENOENT) continue;
          return errno_error(join(dir, name), errno);
        }
        removed = true;
      }
      out.files++;
      out.bytes += static_cast<uint64_t>(st.st_size);
    }
    if (removed) HAVEN_TRY(fsync_dir(dir));
  }
  return out;
}

Status LocalBackend::remove(const ObjectName& name) {
  HAVEN_TRY(current_cancel().check());
  HAVEN_TRY(check_object_name(name));
  const std::string path = path_of(name);
  if (retry_eintr([&] { return ::unlink(path.c_str()); }) != 0) return errno_error(path, errno);
  // fsync the directory so the removal survives a power cut.
  return fsync_dir(dir_of(name));
}

namespace {
bool is_type_dir(const std::string& n) {
  return n == "keys" || n == "data" || n == "index" || n == "snapshots" || n == "locks";
}
bool dir_is_empty(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return false;
  bool empty = true;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  return empty;
}
}  // namespace

size_t shard_fsyncs() { return g_shard_fsyncs.load(); }

Result<bool> LocalBackend::is_empty() {
  HAVEN_TRY(current_cancel().check());
  struct stat st;
  if (::stat(root_.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;
    return errno_error(root_, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error(Error::Code::kInvalidArgument, root_ + " is not a directory");
  }
  Dir d(::opendir(root_.c_str()));
  if (d.get() == nullptr) return errno_error(root_, errno);
  for (;;) {
    errno = 0;
    struct dirent* e = ::readdir(d.get());
    if (e == nullptr) {
      if (errno != 0) return errno_error(root_, errno);
      return true;
    }
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    // The empty type directories a failed init left behind (create() ran, then a full disk
    // stopped it) do not count: the user was told to free space and try again. Anything else
    // (hidden files included) makes the location non-empty: init must never adopt a directory
    // that already holds something.
    if (is_type_dir(n) && dir_is_empty(root_ + "/" + n)) continue;
    return false;
  }
}

Status LocalBackend::create() {
  HAVEN_TRY(current_cancel().check());
  // mkdir -p root, fsyncing the parent of every directory we create so the new entries are
  // durable before the repository is reported created.
  std::string prefix;
  size_t pos = 0;
  if (!root_.empty() && root_[0] == '/') {
    prefix = "/";
    pos = 1;
  }
  while (pos <= root_.size()) {
    size_t next = root_.find('/', pos);
    if (next == std::string::npos) next = root_.size();
    std::string comp = root_.substr(pos, next - pos);
    pos = next + 1;
    if (comp.empty()) continue;
    prefix = (prefix.empty() || prefix == "/") ? prefix + comp : prefix + "/" + comp;
    if (retry_eintr([&] { return ::mkdir(prefix.c_str(), 0700); }) == 0) {
      HAVEN_TRY(fsync_dir(parent_of(prefix)));
    } else if (errno != EEXIST) {
      return errno_error(prefix, errno);
    }
  }
  struct stat st;
  if (::stat(root_.c_str(), &st) != 0) return errno_error(root_, errno);
  if (!S_ISDIR(st.st_mode)) {
    return Error(Error::Code::kInvalidArgument, root_ + " is not a directory");
  }
  for (ObjectType t : {ObjectType::kKey, ObjectType::kData, ObjectType::kIndex,
                       ObjectType::kSnapshot, ObjectType::kLock}) {
    const std::string sub = join(root_, type_dir(t));
    if (retry_eintr([&] { return ::mkdir(sub.c_str(), 0700); }) != 0 && errno != EEXIST) {
      return errno_error(sub, errno);
    }
  }
  // fsync root so the type directories' entries survive a power cut.
  return fsync_dir(root_);
}

}  // namespace haven::storage

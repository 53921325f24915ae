#include "restore/restore.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <optional>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "repo/pack.h"
#include "repo/paths.h"
#include "restore/select.h"
#include "repo/tree_ahead.h"

namespace haven::restore {

using repo::BlobType;
using repo::Id;
using repo::Node;
using detail::Selection;

Result<Overwrite> parse_overwrite(const std::string& s) {
  if (s == "never") return Overwrite::kNever;
  if (s == "if-changed") return Overwrite::kIfChanged;
  if (s == "always") return Overwrite::kAlways;
  return Error(Error::Code::kInvalidArgument,
               "unknown --overwrite value '" + s + "': use never, if-changed or always");
}

Status check_name(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    std::string shown;
    for (char c : name) shown += (c == '\0') ? std::string("\\0") : std::string(1, c);
    return Error(Error::Code::kCorrupt,
                 "snapshot holds an unsafe entry name '" + shown +
                     "' that would escape the target: refusing to restore it");
  }
  return ok_status();
}

namespace {

// The process's umask, read without changing it (umask(2) would); nullopt if not known.
std::optional<mode_t> current_umask() {
  FILE* f = std::fopen("/proc/self/status", "re");
  if (f == nullptr) return std::nullopt;
  char line[256];
  std::optional<mode_t> mask;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned m;
    if (std::sscanf(line, "Umask: %o", &m) == 1) {
      mask = static_cast<mode_t>(m & 0777);
      break;
    }
  }
  std::fclose(f);
  return mask;
}

bool is_zero(ByteView b) {
  // 64 bytes at a time (the compiler vectorises each step), leaving at the first non-zero
  // step: a block of data is decided by its first bytes, only a zero block is read whole.
  const uint8_t* p = b.data();
  size_t n = b.size(), i = 0;
  for (; i + 64 <= n; i += 64) {
    uint64_t acc = 0;
    for (size_t k = 0; k < 64; k += 8) {
      uint64_t w;
      std::memcpy(&w, p + i + k, 8);
      acc |= w;
    }
    if (acc != 0) return false;
  }
  uint64_t acc = 0;
  for (; i < n; i++) acc |= p[i];
  return acc == 0;
}

// A file being restored: planned by the walker, created by the first reader whose blob for it
// arrives (so files are created on every reader thread at once, not one by one on the walker),
// written as its blobs arrive, finished (size, metadata, verification) when its last blob lands.
struct PendingFile {
  std::string path;  // absolute path in the target
  std::string rel;   // path inside the snapshot, for messages
  Node node;
  std::atomic<uint32_t> remaining{0};  // placements not yet written
  std::atomic<uint64_t> end_written{0};  // the furthest byte written (holes are not written)
  // Of a file whose pages are given back as it is written (Restorer::gives_back):
  std::mutex recycle_mu;  // guards the two below
  uint64_t unrecycled = 0;  // bytes written since its pages were last given back
  detail::WrittenRanges written;  // what has been written of it (holes included)
  std::mutex mu;                        // guards fd, created and failure
  int fd = -1;
  bool created = false;                 // this restore created the file (only then removed)
  std::string failure;                  // first error; the file is removed at the end
};

// One blob a batch needs, and where its plaintext goes: all of it, or `length` bytes from
// `from` (a slice, docs/FORMAT.md §6).
struct Placement {
  uint32_t file;    // in the batch
  uint64_t offset;  // in the file
  uint32_t from = 0;
  uint32_t length = 0;  // 0: the whole blob
};
struct Piece {
  Id id;
  repo::BlobLocation loc;
  std::vector<Placement> to;
};
// What one batch restores: its files, and the blobs they need (each once).
struct Batch {
  std::vector<std::unique_ptr<PendingFile>> files;
  std::vector<Piece> pieces;
  std::unordered_map<Id, size_t, repo::IdHash> piece_of;
  size_t placements = 0;  // over all pieces
};
// One ranged read: neighbouring pieces of one pack, pieces[first, last).
struct Range {
  uint64_t start, end;
  size_t first, last;
};

// Waits for the writeback of finished files and lets their pages go, then closes them, on a
// thread of its own: the thread that wrote a file's last blob goes on to the next blob instead
// of waiting for the disk (the large bench corpus: ~0.17 thread-seconds of such waits in a
// 1 GB restore). Holds at most kMost files; beyond that the caller releases its own.
class PageReleaser {
 public:
  static constexpr size_t kMost = 64;
  ~PageReleaser() { drain(); }
  // Takes `fd` over: it is closed once its pages have been written back and dropped.
  void release(int fd) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (fds_.size() < kMost) {
        fds_.push_back(fd);
        if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
        cv_.notify_one();
        return;
      }
    }
    release_now(fd);
  }
  // Returns once every file handed over has been released.
  void drain() {
    {
      std::lock_guard<std::mutex> g(mu_);
      draining_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> g(mu_);
    draining_ = false;
  }

 private:
  static void release_now(int fd) {
    ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  void loop() {
    std::unique_lock<std::mutex> g(mu_);
    while (true) {
      cv_.wait(g, [this] { return !fds_.empty() || draining_; });
      if (fds_.empty()) return;  // draining, and nothing left
      int fd = fds_.front();
      fds_.pop_front();
      g.unlock();
      release_now(fd);
      g.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> fds_;
  bool draining_ = false;
  std::thread thread_;
};

class Restorer {
 public:
  Restorer(repo::Session& session, const Options& o, Reporter& events)
      : repo_(session.repo()), session_(session), opts_(o), events_(events),
        select_(o.includes, o.excludes) {}

  ~Restorer() { wait_batch(); }
  Result<Summary> run(const Id& root);
  // What progress reports as totals (from the snapshot's statistics when the whole snapshot
  // is restored; 0: not known).
  uint64_t files_total = 0, bytes_total = 0;

 private:
  Status walk(const Id& tree, const std::string& dir, const std::string& rel);
  // `fresh`: this restore created `dir`, so nothing is in it yet (no entry to make room for).
  Status walk_tree(const repo::Tree& tree, const std::string& dir, const std::string& rel,
                   bool fresh);
  // Decides what to do with an existing entry at `path`; returns false to skip it.
  Result<bool> make_room(const std::string& path, const std::string& rel, const Node& node);
  // Adds a created file to the batch (its blobs located, grouped per pack); runs the batch
  // first if the file would not fit.
  void add_file(std::string path, std::string rel, Node node);
  // Creates the file (once, on whichever thread comes first); false if that failed (recorded).
  bool ensure_open(PendingFile& f);
  // Is `f` one whose pages are given back as it is written (1 MiB or more, not keep_cached)?
  bool gives_back(const PendingFile& f) const;
  // And does the disk keep up with the writeback now (writeback_keeps_up)?
  bool recycles(const PendingFile& f);
  // Whether the system has at most max_writeback bytes under writeback (read at most every
  // 20 ms, by one thread at a time; true if it cannot be read).
  bool writeback_keeps_up();
  // Reads every piece of the batch (coalesced ranges, parallel readers), then empties it.
  // Hands the planned batch to a thread of its own and starts planning the next, so walking
  // (tree loads, blob lookups) overlaps reading; waits first for the batch before it.
  void submit_batch();
  void wait_batch();
  void run_batch(Batch& b);
  // Reads one range once there is room for it (Options::max_in_flight), then writes its blobs.
  // `plain` is the reader's buffer for decompressed blobs (from a backend that streams_reads(),
  // one taken with the range's, so that it is charged too).
  void read_range(Batch& b, const Range& r, Scratch& plain);
  // Waits until buffers of at least `sizes` bytes each fit within max_in_flight beside those
  // held (a reader alone always goes on), then takes the smallest spares that hold them, or
  // fresh ones, into `out`. Returns the bytes charged; give_back() returns them.
  uint64_t take_buffers(const std::vector<uint64_t>& sizes, std::vector<std::unique_ptr<Scratch>>& out);
  void give_back(std::vector<std::unique_ptr<Scratch>>& bufs, uint64_t charge);
  // From a backend that streams_reads(): each blob of the range is assembled in `window` from
  // the pieces as they arrive (no buffer holds the range), then opened and written.
  void read_range_pieces(Batch& b, const Range& r, Scratch& window, Scratch& plain,
                         std::vector<PendingFile*>& done);
  // After a read of `r` failed with `error` before blobs [next, r.last) were placed: a single
  // one fails with the error, several are each read on their own with `reread`.
  void after_failed_read(Batch& b, const Range& r, size_t next, const Error& error,
                         std::vector<PendingFile*>& done, const std::function<void(const Range&)>& reread);
  // Opens a blob (decrypted over its sealed bytes) and writes it to every place of it; a
  // damaged one from another region's copy, where the repository has one.
  void open_and_place(Batch& b, const Piece& p, std::span<uint8_t> sealed, const storage::ObjectName& pack,
                      repo::PackKeys& keys, Scratch& plain, std::vector<PendingFile*>& done);
  // Files whose last blob it wrote go to `done`: read_range finishes them (metadata, sync)
  // after it has given back its range buffer, so a reader waiting for a large file's sync does
  // not hold memory other readers wait for.
  void read_range_held(Batch& b, const Range& r, Scratch& range, Scratch& plain,
                       std::vector<PendingFile*>& done);
  // Writes one opened blob (or its error) to every place of it.
  void place_blob(Batch& b, const Piece& p, const Result<ByteView>& bytes, std::vector<PendingFile*>& done);
  Status write_at(PendingFile& f, uint64_t offset, ByteView data);
  void fail(PendingFile& f, const std::string& message);
  // One of f's blobs has been written (or failed): true when it was the last.
  bool placed(PendingFile& f);
  void finish(PendingFile& f);
  // `created`: a regular file this restore created through `fd` (with create_mode()): then
  // fchown and fchmod are left out where they would change nothing.
  void apply_metadata(const std::string& path, const Node& node, int fd,
                      const PendingFile* created = nullptr);
  // The mode a file is created with: its final permissions when the umask keeps them and no
  // set-ID or sticky bit is set (so no fchmod is needed); else 0600 (fchmod sets it later).
  mode_t create_mode(const Node& node) const;
  bool creates_final_mode(const Node& node) const;
  void error(const std::string& rel, const std::string& message);
  void warn(const std::string& rel, const std::string& message);
  void progress(bool final);

  repo::Repository& repo_;
  repo::Session& session_;  // its lock keeps what is read from being pruned; its token stops us
  const Options& opts_;
  Reporter& events_;
  Selection select_;
  std::unique_ptr<repo::TreeAhead> ahead_;  // while walking, on object storage
  unsigned readers_ = 2;
  bool streamed_ = false;  // the backend streams_reads(): read_range_pieces()
  // Bytes per read: at most max_range, and (unless streamed_) small enough that every reader can
  // hold a range within max_in_flight (with 16 MiB ranges and 32 MiB in flight, two of four
  // readers waited: over object storage, two requests at a time).
  uint64_t max_range_ = 16 << 20;
  uint64_t max_in_flight_ = 32 << 20;  // Options::max_in_flight, or less under a memory limit
  const uid_t euid_ = geteuid();
  const std::optional<mode_t> umask_ = current_umask();
  size_t max_files_ = 1024;  // per batch: bounded by the open-file limit
  bool fresh_target_ = false;  // this restore created the target directory

  // The batch (walker thread builds it; readers run it while the walker waits).
  Batch batch_;                           // being planned by the walker
  std::unique_ptr<Batch> running_batch_;  // being read, on running_ and its readers
  std::thread running_;
  PageReleaser releaser_;  // finished files whose pages are let go of once written back
  std::mutex flight_mu_;  // guards in_flight_ and the spare range buffers
  std::condition_variable flight_cv_;
  uint64_t in_flight_ = 0;  // bytes of range buffers held by readers
  // Range buffers kept for the next ranges: a fresh buffer per range costs a mapping, page
  // faults and zeroing, which was most of a large restore's system time. Buffers held and
  // kept together stay within max_in_flight (but for one range larger than that).
  std::vector<std::unique_ptr<Scratch>> spare_;
  uint64_t spare_bytes_ = 0;
  size_t held_ = 0;  // range buffers readers hold
  size_t max_buffers_ = 2;  // held and spare together: as many as readers use at once

  std::mutex mu_;  // guards failed_, links
  std::map<std::pair<uint64_t, uint64_t>, std::string> links_;  // (device, inode) -> path
  // Directory metadata, applied once everything in the directory exists (a parent's mtime or
  // restrictive mode after its children): closed_ holds directories the walk has left, in
  // post-order, each with the number of batches that must have finished first (those that
  // create its files); a directory with a hard link left to make in it waits for the end, in
  // dirs_. Holding every directory to the end cost ~330 bytes each (3 MiB and more at a
  // million files).
  struct ClosedDir {
    std::string path;
    Node node;
    uint64_t after;  // batches done before it is complete
  };
  std::deque<ClosedDir> closed_;
  std::vector<std::pair<std::string, Node>> dirs_;  // after the hard links
  uint64_t batches_submitted_ = 0, batches_done_ = 0;
  // Applies the metadata of the closed directories whose batches have finished.
  void apply_closed_dirs();
  struct PendingLink {
    std::string first, path, rel;
  };
  std::vector<PendingLink> pending_links_;
  std::atomic<int64_t> writeback_read_at_{0};  // steady-clock ns of the last read (0: none yet)
  std::atomic<bool> writeback_ok_{true};
  std::atomic<bool> allocates_{true};  // the target's file system takes fallocate (write_at)
  std::set<std::string> failed_;  // target paths whose content could not be restored
  Summary sum_;
  std::atomic<uint64_t> files_{0}, bytes_{0}, errors_{0}, verified_{0}, skipped_{0};
};

void Restorer::error(const std::string& rel, const std::string& message) {
  errors_++;
  events_.error(rel, message);
}

void Restorer::warn(const std::string& rel, const std::string& message) {
  events_.warning(rel, message);
}

Result<bool> Restorer::make_room(const std::string& path, const std::string& rel, const Node& node) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;
    return errno_error(path, errno);
  }
  if (node.type == Node::Type::kDir && S_ISDIR(st.st_mode)) return true;
  switch (opts_.overwrite) {
    case Overwrite::kNever:
      skipped_++;
      warn(rel, "exists in the target; not overwritten (use --overwrite if-changed|always)");
      return false;
    case Overwrite::kIfChanged:
      if (node.type == Node::Type::kFile && S_ISREG(st.st_mode) &&
          static_cast<uint64_t>(st.st_size) == node.size &&
          static_cast<TimeNs>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec == node.mtime) {
        skipped_++;
        return false;
      }
      break;
    case Overwrite::kAlways:
      break;
  }
  if (S_ISDIR(st.st_mode)) {
    return Error(Error::Code::kIo, path + " is a directory in the target; the snapshot has a " +
                                       repo::node_type_name(node.type) + " there");
  }
  if (unlink(path.c_str()) != 0) return errno_error(path, errno);
  return true;
}

bool Restorer::creates_final_mode(const Node& node) const {
  const mode_t want = static_cast<mode_t>(node.mode) & 07777;
  return umask_ && (want & 07000) == 0 && (want & ~*umask_) == want;
}

mode_t Restorer::create_mode(const Node& node) const {
  return creates_final_mode(node) ? static_cast<mode_t>(node.mode) & 07777 : 0600;
}

void Restorer::apply_metadata(const std::string& path, const Node& node, int fd,
                              const PendingFile* created) {
  // A new file's owner is this process's, its group the process's or a setgid directory's (or
  // the directory's on a grpid mount): one fstat tells, cheaper than a needless fchown.
  struct stat now;
  const bool owner_set = created != nullptr && euid_ == 0 && fstat(fd, &now) == 0 &&
                         now.st_uid == node.uid && now.st_gid == node.gid;
  const bool mode_set = created != nullptr && creates_final_mode(node);
  // Owner first: chown clears setuid/setgid bits, so the mode comes after it.
  if (euid_ == 0 && !owner_set) {
    int r = fd >= 0 ? fchown(fd, node.uid, node.gid)
                    : lchown(path.c_str(), node.uid, node.gid);
    if (r != 0) warn(path, errno_error("cannot set owner", errno).message());
  }
  for (const auto& [k, v] : node.xattrs) {
    int r = fd >= 0 ? fsetxattr(fd, k.c_str(), v.data(), v.size(), 0)
                    : lsetxattr(path.c_str(), k.c_str(), v.data(), v.size(), 0);
    if (r != 0 && errno != ENOTSUP) warn(path, errno_error("cannot set attribute " + k, errno).message());
  }
  if (node.type != Node::Type::kSymlink && !mode_set) {
    int r = fd >= 0 ? fchmod(fd, node.mode) : chmod(path.c_str(), node.mode);
    if (r != 0) warn(path, errno_error("cannot set mode", errno).message());
  }
  struct timespec times[2];
  times[0].tv_sec = node.atime / 1000000000;
  times[0].tv_nsec = node.atime % 1000000000;
  times[1].tv_sec = node.mtime / 1000000000;
  times[1].tv_nsec = node.mtime % 1000000000;
  int r = fd >= 0 ? futimens(fd, times) : utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW);
  if (r != 0) warn(path, errno_error("cannot set times", errno).message());
}

Status Restorer::write_at(PendingFile& f, uint64_t offset, ByteView data) {
  // Runs of all-zero 4 KiB blocks are skipped, so holes stay holes (finish() sets the size);
  // only runs of non-zero blocks are written.
  constexpr size_t kBlock = 4096;
  constexpr size_t kAllocateFrom = 64 << 10;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t len = std::min(kBlock - (offset + pos) % kBlock, data.size() - pos);
    if (is_zero(ByteView(data.data() + pos, len))) {
      pos += len;
      continue;
    }
    size_t run_end = pos + len;
    while (run_end < data.size()) {
      size_t l2 = std::min(kBlock, data.size() - run_end);
      if (is_zero(ByteView(data.data() + run_end, l2))) break;
      run_end += l2;
    }
    // The run's blocks are allocated in one call before it is written (as unwritten extents:
    // they read as zeros until written; the file's size is left to the writes): ext4 otherwise
    // reserves and accounts each page as it is dirtied (a 1 GB restore: 0.1 system CPU-s less,
    // 3-4% of its time). Only the runs written are allocated, so holes stay holes. A file
    // system that cannot do it is not asked again.
    if (run_end - pos >= kAllocateFrom && allocates_.load(std::memory_order_relaxed) &&
        ::fallocate(f.fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset + pos), static_cast<off_t>(run_end - pos)) != 0 &&
        (errno == EOPNOTSUPP || errno == ENOSYS)) {
      allocates_ = false;
    }
    size_t done = pos;
    while (done < run_end) {
      ssize_t w = pwrite(f.fd, data.data() + done, run_end - done, static_cast<off_t>(offset + done));
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno_error(f.path, errno);
      }
      done += static_cast<size_t>(w);
    }
    pos = run_end;
    uint64_t end = offset + run_end, seen = f.end_written.load();
    while (end > seen && !f.end_written.compare_exchange_weak(seen, end)) {
    }
  }
  // Written back from now on, while the next blobs decompress, rather than all at once in
  // finish()'s fdatasync. Small pieces (a changed page or two of a PostgreSQL incremental) are
  // not: run_batch wrote them first, and the writeback of the large run written next to them
  // takes them along (the range reaches kReach beyond the run), so the disk sees long writes,
  // not a run with holes and each page for a hole on its own (6x the write requests).
  constexpr uint64_t kSmall = 24 << 10, kReach = 16 << 10;
  if (opts_.sync && data.size() >= kSmall) {
    const uint64_t from = offset > kReach ? offset - kReach : 0;
    ::sync_file_range(f.fd, static_cast<off_t>(from), static_cast<off_t>(offset + data.size() + kReach - from),
                      SYNC_FILE_RANGE_WRITE);
  }
  // A file of 1 MiB or more gives its pages back as it goes (unless the caller keeps them
  // cached, or the disk does not keep up: recycles()): with every MiB written to it, its dirty
  // pages are put to writeback and those whose writeback is done leave the page cache (never
  // waited for here; finish() waits and drops the rest). A restore then writes into memory it
  // freed a moment ago instead of taking a page of fresh memory per 4 KiB (on a virtual
  // machine, memory the host had taken back cost the kernel's copy 1-2 s of a 1 GB restore),
  // and it does not push the page cache of everything else out.
  // Only pages wholly inside what has been written go: a page a blob starts or ends in
  // part-way stays until the blob beside it has been written (the kernel keeps a page a range
  // it is advised of starts or ends in part-way). Dropped, it would be read back from the disk
  // to be completed: a 1 GB restore of the large bench corpus read ~130 pages of 4 KiB back,
  // each a thread waiting for the disk.
  constexpr uint64_t kRecycleEvery = 1 << 20;
  std::vector<std::pair<uint64_t, uint64_t>> drop;
  if (gives_back(f)) {
    std::lock_guard<std::mutex> g(f.recycle_mu);
    f.written.add(offset, offset + data.size());
    f.unrecycled += data.size();
    if (f.unrecycled >= kRecycleEvery && writeback_keeps_up()) {
      f.unrecycled = 0;
      drop = f.written.ranges();
    }
  }
  if (!drop.empty()) {
    if (!opts_.sync) ::sync_file_range(f.fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    // But the kernel drops the page a range ends in part-way if that is the file's last page
    // so far, which a later blob may complete: that end is taken down to a page boundary.
    static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    for (auto [from, to] : drop) {
      if (to != f.node.size) to -= to % page;
      if (to > from) {
        (void)::posix_fadvise(f.fd, static_cast<off_t>(from), static_cast<off_t>(to - from), POSIX_FADV_DONTNEED);
      }
    }
  }
  bytes_ += data.size();
  return ok_status();
}

bool Restorer::gives_back(const PendingFile& f) const {
  constexpr uint64_t kLarge = 1 << 20;
  return !opts_.keep_cached && f.node.size >= kLarge;
}

bool Restorer::recycles(const PendingFile& f) { return gives_back(f) && writeback_keeps_up(); }

bool Restorer::writeback_keeps_up() {
  // A disk that does not keep up fills its queue: writeback started here would then wait for
  // the device, and a restore that fits in memory would go at the disk's pace instead of
  // leaving the kernel to write it out afterwards (as it does without this).
  constexpr int64_t kEvery = 20'000'000;
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch()).count();
  int64_t last = writeback_read_at_.load();
  if ((last != 0 && now - last < kEvery) || !writeback_read_at_.compare_exchange_strong(last, now)) {
    return writeback_ok_.load();
  }
  int fd = ::open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return writeback_ok_.load();
  char buf[8192];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return writeback_ok_.load();
  auto bytes = detail::meminfo_bytes(std::string_view(buf, static_cast<size_t>(n)), "Writeback:");
  if (bytes) writeback_ok_ = *bytes <= opts_.max_writeback;
  return writeback_ok_.load();
}

bool Restorer::ensure_open(PendingFile& f) {
  std::lock_guard<std::mutex> g(f.mu);
  if (f.fd >= 0) return true;
  if (!f.failure.empty()) return false;
  int fd = ::open(f.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                  create_mode(f.node));
  if (fd < 0) {
    f.failure = errno_error(f.path, errno).message();
    return false;
  }
  f.fd = fd;
  f.created = true;
  return true;
}

void Restorer::fail(PendingFile& f, const std::string& message) {
  std::lock_guard<std::mutex> g(f.mu);
  if (f.failure.empty()) f.failure = message;
}

bool Restorer::placed(PendingFile& f) { return f.remaining.fetch_sub(1) == 1; }

// The last blob of `f` has landed (or failed): set the size and metadata, or remove it.
void Restorer::finish(PendingFile& f) {
  std::string failure;
  ensure_open(f);  // an empty file has no blob that created it
  {
    std::lock_guard<std::mutex> g(f.mu);
    failure = f.failure;
  }
  // The size, where the last bytes written do not set it (a file that ends in a hole).
  if (failure.empty() && f.end_written.load() != f.node.size &&
      ftruncate(f.fd, static_cast<off_t>(f.node.size)) != 0) {
    failure = errno_error(f.path, errno).message();
  }
  if (failure.empty()) apply_metadata(f.path, f.node, f.fd, &f);
  // Durable before it counts as restored (PostgreSQL would otherwise fsync every file of an
  // unsynced data directory at start-up, on one thread).
  if (failure.empty() && opts_.sync && ::fdatasync(f.fd) != 0) failure = errno_error(f.path, errno).message();
  if (failure.empty() && recycles(f)) {
    releaser_.release(f.fd);  // the rest of its pages, once written back; closes it
    f.fd = -1;
  }
  if (f.fd >= 0) ::close(f.fd);
  f.fd = -1;
  if (!failure.empty()) {
    // Never leave a file with wrong or missing bytes behind (nor remove one this restore did
    // not create).
    if (f.created) unlink(f.path.c_str());
    {
      std::lock_guard<std::mutex> g(mu_);
      failed_.insert(f.path);
    }
    error(f.rel, failure + "; file not restored");
    return;
  }
  if (opts_.verify) {
    Status v = detail::verify_content(repo_, f.path, f.node);
    if (!v.ok()) {
      error(f.rel, v.error().message());
      return;
    }
    verified_++;
  }
  files_++;
  progress(false);
}

void Restorer::progress(bool final) {
  if (!final && !events_.progress_due()) return;
  Progress p;
  p.phase = "files";
  p.files_done = files_.load();
  p.bytes_done = bytes_.load();
  p.files_total = std::max(files_total, p.files_done);
  p.bytes_total = std::max(bytes_total, p.bytes_done);
  p.final = final;
  events_.progress(std::move(p));
}

void Restorer::add_file(std::string path, std::string rel, Node node) {
  // A file whose placements would overflow the batch starts the next one (and has one to
  // itself if it needs more than a batch holds: slices make that up to 64 per MiB).
  if (batch_.files.size() >= max_files_ ||
      (batch_.placements > 0 && batch_.placements + node.content.size() > opts_.batch_blobs)) {
    submit_batch();
  }
  auto f = std::make_unique<PendingFile>();
  f->path = std::move(path);
  f->rel = std::move(rel);
  f->node = std::move(node);
  // Locate every blob first: a file whose content is not all in the index, or does not add up
  // to its recorded size, fails at once without reading anything.
  std::vector<repo::BlobLocation> locs;
  locs.reserve(f->node.content.size());
  uint64_t total = 0;
  for (const auto& c : f->node.content) {
    auto loc = repo_.locate_blob(BlobType::kData, c.id);
    if (!loc) {
      fail(*f, "data blob " + repo::hex(c.id) + " is not in the index");
      break;
    }
    if (!c.whole() && uint64_t{c.offset} + c.length > loc->raw_length) {
      fail(*f, "the snapshot takes " + std::to_string(c.length) + " bytes at " +
                   std::to_string(c.offset) + " of data blob " + repo::hex(c.id) +
                   ", past its end (" + std::to_string(loc->raw_length) + " bytes)");
      break;
    }
    total += c.whole() ? loc->raw_length : c.length;
    locs.push_back(*loc);
  }
  if (f->failure.empty() && total != f->node.size) {
    fail(*f, "content length " + std::to_string(total) + " differs from the recorded size " +
                 std::to_string(f->node.size));
  }
  if (!f->failure.empty() || locs.empty()) {
    finish(*f);
    return;
  }
  uint32_t file_no = static_cast<uint32_t>(batch_.files.size());
  f->remaining = static_cast<uint32_t>(locs.size());
  uint64_t offset = 0;
  for (size_t i = 0; i < locs.size(); i++) {
    const repo::ContentRef& c = f->node.content[i];
    auto [it, fresh] = batch_.piece_of.try_emplace(c.id, batch_.pieces.size());
    if (fresh) batch_.pieces.push_back({c.id, locs[i], {}});
    batch_.pieces[it->second].to.push_back({file_no, offset, c.offset, c.length});
    batch_.placements++;
    offset += c.whole() ? locs[i].raw_length : c.length;
  }
  batch_.files.push_back(std::move(f));
}

void Restorer::submit_batch() {
  if (batch_.files.empty()) return;
  wait_batch();
  apply_closed_dirs();
  batches_submitted_++;
  running_batch_ = std::make_unique<Batch>(std::move(batch_));
  batch_ = Batch();
  running_ = std::thread([this] {
    CancelScope scope(session_.cancel_token());
    run_batch(*running_batch_);
  });
}

void Restorer::wait_batch() {
  if (running_.joinable()) {
    running_.join();
    batches_done_++;
  }
  running_batch_.reset();
}

void Restorer::apply_closed_dirs() {
  while (!closed_.empty() && closed_.front().after <= batches_done_) {
    apply_metadata(closed_.front().path, closed_.front().node, -1);
    closed_.pop_front();
  }
}

void Restorer::run_batch(Batch& b) {
  std::vector<Piece>& pieces = b.pieces;
  // Pack by pack, in pack order; neighbours closer than kMaxGap share one read of at most
  // kMaxRange bytes (the gap is read and dropped: cheaper than another request).
  std::sort(pieces.begin(), pieces.end(), [](const Piece& x, const Piece& y) {
    if (x.loc.pack_id != y.loc.pack_id) return x.loc.pack_id < y.loc.pack_id;
    return x.loc.offset < y.loc.offset;
  });
  std::vector<Range> ranges;
  for (size_t i = 0; i < pieces.size(); i++) {
    const auto& l = pieces[i].loc;
    uint64_t start = l.offset, end = uint64_t{l.offset} + l.length;
    if (!ranges.empty()) {
      Range& r = ranges.back();
      const auto& prev = pieces[r.first].loc;
      if (prev.pack_id == l.pack_id && start >= r.end && start - r.end <= opts_.max_gap &&
          end - r.start <= max_range_) {
        r.end = end;
        r.last = i + 1;
        continue;
      }
    }
    ranges.push_back({start, end, i, i + 1});
  }
  // Ranges whose blobs go out in small pieces (the changed pages of a PostgreSQL incremental,
  // slices of a page or two scattered over a relation) are read first: the large runs written
  // after them fill the files around them, and their writeback takes the pages along
  // (write_at), instead of each page going to disk later as a write of its own.
  auto scattered = [&](const Range& r) {
    uint64_t bytes = 0, count = 0;
    for (size_t i = r.first; i < r.last; i++) {
      for (const auto& t : pieces[i].to) {
        bytes += t.length ? t.length : pieces[i].loc.raw_length;
        count++;
      }
    }
    return count > 0 && bytes / count < (24u << 10);
  };
  auto runs = std::stable_partition(ranges.begin(), ranges.end(), scattered);
  if (streamed_) {
    // From object storage a range's time is mostly its bytes in transit: the longest go first,
    // so the readers finish together instead of the last ones waiting on a long range started
    // late (pack order, by random IDs, would place them anywhere).
    std::stable_sort(runs, ranges.end(),
                     [](const Range& x, const Range& y) { return x.end - x.start > y.end - y.start; });
  }
  std::atomic<size_t> next{0};
  auto reader = [&] {
    Scratch plain;
    for (size_t k; (k = next++) < ranges.size();) read_range(b, ranges[k], plain);
  };
  std::vector<std::thread> threads;
  size_t n = std::max<size_t>(1, std::min<size_t>(readers_, ranges.size()));
  for (size_t i = 1; i < n; i++) {
    threads.emplace_back([&] {
      CancelScope scope(session_.cancel_token());
      reader();
    });
  }
  reader();
  for (auto& t : threads) t.join();
}

void Restorer::read_range(Batch& b, const Range& r, Scratch& plain) {
  std::vector<std::unique_ptr<Scratch>> bufs;
  std::vector<PendingFile*> done;
  uint64_t charge;
  if (streamed_) {
    // Charged what it holds: its largest blob, and room to decompress the largest compressed one.
    uint64_t window = 0, room = 0;
    for (size_t i = r.first; i < r.last; i++) {
      const auto& l = b.pieces[i].loc;
      window = std::max<uint64_t>(window, l.length);
      if (repo::blob_is_compressed(l.length, l.raw_length)) room = std::max<uint64_t>(room, l.raw_length);
    }
    charge = take_buffers(room > 0 ? std::vector<uint64_t>{window, room} : std::vector<uint64_t>{window}, bufs);
    Scratch none;  // stays empty: every blob of the range is stored as is
    read_range_pieces(b, r, *bufs[0], room > 0 ? *bufs[1] : none, done);
  } else {
    charge = take_buffers({r.end - r.start}, bufs);
    read_range_held(b, r, *bufs[0], plain, done);
  }
  give_back(bufs, charge);
  for (PendingFile* f : done) finish(*f);
}

uint64_t Restorer::take_buffers(const std::vector<uint64_t>& sizes,
                                std::vector<std::unique_ptr<Scratch>>& out) {
  std::unique_lock<std::mutex> lk(flight_mu_);
  std::vector<size_t> picks;  // per size: a spare's index, or spare_.size() for a fresh buffer
  uint64_t charge = 0;
  flight_cv_.wait(lk, [&] {
    // The smallest spare buffer that holds each size (each spare once), else a fresh one.
    picks.clear();
    charge = 0;
    for (uint64_t len : sizes) {
      size_t pick = spare_.size();
      for (size_t i = 0; i < spare_.size(); i++) {
        if (std::find(picks.begin(), picks.end(), i) != picks.end()) continue;
        uint64_t c = spare_[i]->capacity();
        if (c >= len && (pick == spare_.size() || c < spare_[pick]->capacity())) pick = i;
      }
      picks.push_back(pick);
      charge += pick < spare_.size() ? spare_[pick]->capacity() : len;
    }
    return in_flight_ == 0 || in_flight_ + charge <= max_in_flight_;
  });
  out.clear();
  out.resize(sizes.size());
  const size_t spares = spare_.size();
  std::vector<size_t> order(sizes.size());
  for (size_t k = 0; k < order.size(); k++) order[k] = k;
  // Highest index first: erasing a spare leaves the lower indexes as they were.
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return picks[x] > picks[y]; });
  for (size_t k : order) {
    if (picks[k] == spares) continue;
    out[k] = std::move(spare_[picks[k]]);
    spare_bytes_ -= out[k]->capacity();
    spare_.erase(spare_.begin() + static_cast<std::ptrdiff_t>(picks[k]));
  }
  // Fresh buffers: spares that no longer fit beside them are freed, largest first.
  std::sort(spare_.begin(), spare_.end(),
            [](const auto& x, const auto& y) { return x->capacity() < y->capacity(); });
  while (!spare_.empty() && in_flight_ + charge + spare_bytes_ > max_in_flight_) {
    spare_bytes_ -= spare_.back()->capacity();
    spare_.pop_back();
  }
  in_flight_ += charge;
  held_ += sizes.size();
  lk.unlock();
  for (auto& buf : out) {
    if (!buf) buf = std::make_unique<Scratch>();
  }
  return charge;
}

void Restorer::give_back(std::vector<std::unique_ptr<Scratch>>& bufs, uint64_t charge) {
  // Declared first so that buffers not kept are freed after the lock is released.
  std::vector<std::unique_ptr<Scratch>> given = std::move(bufs);
  bufs.clear();
  std::lock_guard<std::mutex> g(flight_mu_);
  in_flight_ -= charge;
  held_ -= given.size();
  for (auto& buf : given) {
    if (in_flight_ + spare_bytes_ + buf->capacity() > max_in_flight_) continue;
    spare_bytes_ += buf->capacity();
    spare_.push_back(std::move(buf));
    // No more buffers than readers use at once, held and kept together: each kept one stays
    // resident (a million-file restore gathered spares of assorted sizes up to max_in_flight,
    // 14 MB more than a 50,000-file one).
    if (spare_.size() + held_ > max_buffers_) {
      auto smallest = std::min_element(spare_.begin(), spare_.end(), [](const auto& x, const auto& y) {
        return x->capacity() < y->capacity();
      });
      spare_bytes_ -= (*smallest)->capacity();
      spare_.erase(smallest);
    }
  }
  flight_cv_.notify_all();
}

void Restorer::read_range_held(Batch& b, const Range& r, Scratch& range, Scratch& plain,
                               std::vector<PendingFile*>& done) {
  const std::vector<Piece>& pieces = b.pieces;
  if (session_.cancel_token().cancelled()) return;  // run() reports the cancellation
  const Id& pack = pieces[r.first].loc.pack_id;
  const storage::ObjectName name{storage::ObjectType::kData, repo::hex(pack)};
  const size_t len = static_cast<size_t>(r.end - r.start);
  uint8_t* data = range.reserve(len);
  // Each blob is opened and written as soon as its bytes are in (an object store streams the
  // range: the blobs at its start are on their way to disk while the rest is in transit).
  size_t next = r.first;
  repo::PackKeys keys;  // every blob of the range is in one pack
  auto arrived = [&](size_t n) {
    while (next < r.last && pieces[next].loc.offset + uint64_t{pieces[next].loc.length} - r.start <= n) {
      const Piece& p = pieces[next++];
      // Opened in place: the range's bytes of this blob are decrypted over themselves.
      open_and_place(b, p, std::span<uint8_t>(data + (p.loc.offset - r.start), p.loc.length), name, keys,
                     plain, done);
    }
  };
  Status read = repo_.backend().load_streaming(name, r.start, std::span<uint8_t>(data, len), arrived);
  if (read.ok()) return;
  after_failed_read(b, r, next, read.error(), done,
                    [&](const Range& one) { read_range_held(b, one, range, plain, done); });
}

void Restorer::after_failed_read(Batch& b, const Range& r, size_t next, const Error& error,
                                 std::vector<PendingFile*>& done,
                                 const std::function<void(const Range&)>& reread) {
  if (next == r.last) return;
  if (r.last - next > 1) {
    // A damaged pack (truncated, or a range the store refuses): each blob not yet placed on its
    // own, so the blobs that are intact still restore and each error names its own blob.
    for (size_t i = next; i < r.last; i++) {
      const auto& l = b.pieces[i].loc;
      reread({l.offset, uint64_t{l.offset} + l.length, i, i + 1});
    }
    return;
  }
  const Piece& p = b.pieces[next];
  place_blob(b, p, error.with_context("data blob " + repo::hex(p.id) + " in pack " + repo::hex(p.loc.pack_id)),
             done);
}

void Restorer::read_range_pieces(Batch& b, const Range& r, Scratch& window, Scratch& plain,
                                 std::vector<PendingFile*>& done) {
  const std::vector<Piece>& pieces = b.pieces;
  if (session_.cancel_token().cancelled()) return;  // run() reports the cancellation
  const Id& pack = pieces[r.first].loc.pack_id;
  const storage::ObjectName name{storage::ObjectType::kData, repo::hex(pack)};
  uint64_t largest = 0;
  for (size_t i = r.first; i < r.last; i++) largest = std::max<uint64_t>(largest, pieces[i].loc.length);
  uint8_t* w = window.reserve(static_cast<size_t>(largest));
  size_t next = r.first;  // the blob being assembled
  uint64_t at = 0;        // bytes of the range handed over so far
  repo::PackKeys keys;
  Status read = repo_.backend().load_pieces(name, r.start, r.end - r.start, [&](ByteView piece) {
    const uint64_t from = at;
    at += piece.size();
    while (next < r.last) {
      const auto& l = pieces[next].loc;
      const uint64_t lo = l.offset - r.start, hi = lo + l.length;  // the blob in the range
      const uint64_t copy_lo = std::max(from, lo), copy_hi = std::min(at, hi);
      if (copy_lo < copy_hi) {
        std::memcpy(w + (copy_lo - lo), piece.data() + (copy_lo - from), static_cast<size_t>(copy_hi - copy_lo));
      }
      if (hi > at) break;  // the rest of it is still to come
      open_and_place(b, pieces[next++], std::span<uint8_t>(w, l.length), name, keys, plain, done);
    }
  });
  if (read.ok()) return;
  after_failed_read(b, r, next, read.error(), done,
                    [&](const Range& one) { read_range_pieces(b, one, window, plain, done); });
}

void Restorer::open_and_place(Batch& b, const Piece& p, std::span<uint8_t> sealed,
                              const storage::ObjectName& pack, repo::PackKeys& keys, Scratch& plain,
                              std::vector<PendingFile*>& done) {
  Result<ByteView> bytes = repo_.open_located_blob_in_place(BlobType::kData, p.id, p.loc, sealed, keys, plain);
  Bytes alone;  // the blob from another region's copy, when this one is damaged
  if (!bytes.ok() && bytes.error().code() == Error::Code::kCorrupt) {
    auto other = repo_.backend().load_other_copy(pack, p.loc.offset, p.loc.length, bytes.error());
    if (other.ok()) {
      auto opened = repo_.open_located_blob(BlobType::kData, p.id, p.loc, *other);
      if (opened.ok()) {
        alone = std::move(*opened);
        bytes = ByteView(alone);
      } else {
        bytes = opened.error();
      }
    }
  }
  place_blob(b, p, bytes, done);
}

void Restorer::place_blob(Batch& b, const Piece& p, const Result<ByteView>& bytes,
                          std::vector<PendingFile*>& done) {
  for (const auto& place : p.to) {
    PendingFile& f = *b.files[place.file];
    if (!bytes.ok()) {
      fail(f, bytes.error().message());
    } else if (place.length != 0 && uint64_t{place.from} + place.length > bytes->size()) {
      fail(f, "data blob " + repo::hex(p.id) + " is shorter than the slice the snapshot takes of it");
    } else if (ensure_open(f)) {
      ByteView part = place.length == 0 ? *bytes : bytes->subspan(place.from, place.length);
      Status st = write_at(f, place.offset, part);
      if (!st.ok()) fail(f, st.error().message());
    }
    if (placed(f)) done.push_back(&f);
  }
}

Status Restorer::walk(const Id& tree_id, const std::string& dir, const std::string& rel_dir) {
  // Through the trees loaded ahead, which then start below it (and the first read takes along
  // the trees stored near it).
  HAVEN_ASSIGN(repo::Tree tree, ahead_ ? ahead_->take(tree_id, rel_dir) : repo_.load_tree(tree_id));
  return walk_tree(tree, dir, rel_dir, fresh_target_);
}

Status Restorer::walk_tree(const repo::Tree& tree, const std::string& dir,
                           const std::string& rel_dir, bool fresh) {
  std::set<std::string> seen;
  for (const auto& n : tree.nodes) {
    HAVEN_TRY(check_name(n.name));
    if (!seen.insert(n.name).second) {
      return Error(Error::Code::kCorrupt, "snapshot directory '" + rel_dir +
                                              "' lists the name '" + n.name + "' twice: refusing");
    }
  }
  for (const auto& n : tree.nodes) {
    HAVEN_TRY(session_.cancel_token().check());
    std::string rel = rel_dir.empty() ? n.name : rel_dir + "/" + n.name;
    std::string path = dir + "/" + n.name;
    bool is_dir = n.type == Node::Type::kDir;
    if (!select_.selected(rel, is_dir)) continue;
    if (!fresh) {
      HAVEN_ASSIGN(bool go, make_room(path, rel, n));
      if (!go) continue;
    }
    switch (n.type) {
      case Node::Type::kDir: {
        bool made = mkdir(path.c_str(), 0700) == 0;
        if (!made && errno != EEXIST) return errno_error(path, errno);
        if (!made) {
          struct stat st;
          // Never descend through a symlink planted in the target.
          if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            return Error(Error::Code::kIo, path + " is not a directory in the target");
          }
        }
        sum_.dirs++;
        const size_t links_before = pending_links_.size();
        if (n.subtree) {
          // A damaged directory fails alone, named; everything beside it is still restored.
          auto sub = ahead_ ? ahead_->take(*n.subtree, rel) : repo_.load_tree(*n.subtree);
          if (sub.ok()) {
            HAVEN_TRY(walk_tree(*sub, path, rel, made));
          } else {
            error(rel + "/", sub.error().message() + " (this directory's contents cannot be restored)");
          }
        }
        Node meta = n;
        meta.content.clear();
        if (pending_links_.size() > links_before) {
          dirs_.emplace_back(path, std::move(meta));
        } else {
          // Its files are in the batches submitted so far and the one being planned.
          const uint64_t after = batches_submitted_ + (batch_.files.empty() ? 0 : 1);
          closed_.push_back({path, std::move(meta), after});
          apply_closed_dirs();
        }
        break;
      }
      case Node::Type::kFile: {
        if (n.links > 1) {
          auto key = std::make_pair(n.device, n.inode);
          auto it = links_.find(key);
          if (it != links_.end()) {
            // Linked after the workers finish, and only if the first name was written: a
            // damaged first name must not leave other names behind with wrong bytes.
            pending_links_.push_back({it->second, path, rel});
            break;
          }
          links_[key] = path;
        }
        add_file(path, rel, n);
        break;
      }
      case Node::Type::kSymlink:
        if (symlink(n.link_target.c_str(), path.c_str()) != 0) {
          error(rel, errno_error(path, errno).message());
          break;
        }
        apply_metadata(path, n, -1);
        sum_.others++;
        break;
      case Node::Type::kFifo:
      case Node::Type::kCharDev:
      case Node::Type::kBlockDev:
      case Node::Type::kSocket: {
        mode_t type = n.type == Node::Type::kFifo      ? S_IFIFO
                      : n.type == Node::Type::kCharDev ? S_IFCHR
                      : n.type == Node::Type::kBlockDev ? S_IFBLK
                                                        : S_IFSOCK;
        if (mknod(path.c_str(), type | 0600, static_cast<dev_t>(n.rdev)) != 0) {
          error(rel, errno_error(path, errno).message());
          break;
        }
        apply_metadata(path, n, -1);
        sum_.others++;
        break;
      }
    }
  }
  return ok_status();
}

Result<Summary> Restorer::run(const Id& root) {
  if (opts_.target.empty()) {
    return Error(Error::Code::kInvalidArgument, "no target given: use --target DIR");
  }
  std::string target = opts_.target;
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  fresh_target_ = mkdir(target.c_str(), 0700) == 0;
  if (!fresh_target_ && errno != EEXIST) return errno_error(target, errno);
  struct stat st;
  if (stat(target.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error(Error::Code::kInvalidArgument, "target " + target + " is not a directory");
  }
  streamed_ = repo_.backend().streams_reads();
  readers_ = opts_.threads         ? opts_.threads
             : streamed_ ? std::max(16u, std::thread::hardware_concurrency())
                         : std::max(4u, std::thread::hardware_concurrency());
  // Under a memory limit: readers (each decompresses into a buffer of up to one chunk) and
  // ranges in flight get 40% of the working share each, trees loaded ahead a tenth.
  const repo::MemoryBudget& budget = repo_.memory_budget();
  readers_ = budget.threads(readers_, repo_.config().chunker.max_size, 0.4);
  max_in_flight_ = budget.bytes(opts_.max_in_flight, 0.4, 1 << 20);
  const uint64_t tree_ahead_bytes = budget.bytes(opts_.tree_ahead_bytes, 0.1, 1 << 20);
  // A streamed range holds one blob at a time, whatever its length.
  max_range_ = streamed_ ? opts_.max_range
                         : std::min<uint64_t>(opts_.max_range, std::max<uint64_t>(1 << 20, max_in_flight_ / readers_));
  max_buffers_ = readers_ * (streamed_ ? 2 : 1);
  // Each file of a batch stays open until its last blob lands: the batch holds at most half
  // of the open-file limit (the CLI raises its soft limit at start; a library leaves process
  // limits alone).
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    max_files_ = std::clamp<size_t>(rl.rlim_cur / 2, 16, opts_.batch_files);
  }
  const unsigned tree_threads =
      opts_.tree_threads ? opts_.tree_threads : (repo::TreeAhead::pays_off(repo_) ? 8 : 0);
  if (tree_threads > 0) {
    ahead_ = std::make_unique<repo::TreeAhead>(
        repo_, [this](const std::string& rel) { return select_.selected(rel, true); }, tree_threads,
        tree_ahead_bytes, session_.cancel_token());
  }
  Status st_walk = walk(root, target, "");
  ahead_.reset();
  submit_batch();
  wait_batch();
  HAVEN_TRY(st_walk);
  apply_closed_dirs();
  HAVEN_TRY(session_.cancel_token().check());
  for (const auto& l : pending_links_) {
    if (failed_.count(l.first)) {
      error(l.rel, "hard link to " + l.first + ", whose content could not be restored; not restored");
      continue;
    }
    if (link(l.first.c_str(), l.path.c_str()) != 0) {
      error(l.rel, errno_error("cannot hard-link to " + l.first, errno).message());
      continue;
    }
    files_++;
  }
  // The directories that waited for their hard links. dirs_ is in post-order (children before
  // their parent), so this goes deepest first: a parent's restrictive mode or its mtime is set
  // after its children.
  for (const auto& [path, node] : dirs_) apply_metadata(path, node, -1);
  releaser_.drain();
  sum_.files = files_;
  sum_.bytes = bytes_;
  sum_.errors = errors_;
  sum_.verified = verified_;
  sum_.skipped = skipped_;
  progress(true);
  if (opts_.verify) {
    events_.validated({{"verified", sum_.verified}, {"errors", sum_.errors}});
  }
  return sum_;
}

}  // namespace

namespace detail {
void WrittenRanges::add(uint64_t from, uint64_t to) {
  if (from >= to) return;
  // The ranges that touch or overlap [from, to): from the first that ends at or after `from`
  // to the last that starts at or before `to`.
  auto first = std::lower_bound(ranges_.begin(), ranges_.end(), from,
                                [](const auto& r, uint64_t at) { return r.second < at; });
  auto last = std::upper_bound(first, ranges_.end(), to, [](uint64_t at, const auto& r) { return at < r.first; });
  if (first == last) {
    ranges_.insert(first, {from, to});
  } else {
    first->first = std::min(first->first, from);
    first->second = std::max((last - 1)->second, to);
    ranges_.erase(first + 1, last);
  }
  if (ranges_.size() > kMost) {
    size_t closest = 0;
    for (size_t i = 1; i + 1 < ranges_.size(); i++) {
      if (ranges_[i + 1].first - ranges_[i].second < ranges_[closest + 1].first - ranges_[closest].second) closest = i;
    }
    ranges_[closest].second = ranges_[closest + 1].second;
    ranges_.erase(ranges_.begin() + static_cast<std::ptrdiff_t>(closest) + 1);
  }
}

std::optional<uint64_t> meminfo_bytes(std::string_view meminfo, std::string_view field) {
  // Lines of "Name:   value kB".
  for (size_t at = 0; at < meminfo.size();) {
    size_t end = meminfo.find('\n', at);
    if (end == std::string_view::npos) end = meminfo.size();
    std::string_view line = meminfo.substr(at, end - at);
    at = end + 1;
    if (line.substr(0, field.size()) != field) continue;
    line.remove_prefix(field.size());
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    uint64_t v = 0;
    size_t digits = 0;
    while (digits < line.size() && line[digits] >= '0' && line[digits] <= '9' && v < (UINT64_MAX >> 14)) {
      v = v * 10 + static_cast<uint64_t>(line[digits] - '0');
      digits++;
    }
    if (digits == 0) return std::nullopt;
    std::string_view unit = line.substr(digits);
    while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
    if (unit == "kB") return v * 1024;
    if (unit.empty()) return v;
    return std::nullopt;
  }
  return std::nullopt;
}
}  // namespace detail

nlohmann::json summary_json(const Summary& s) {
  return {{"files", s.files},     {"dirs", s.dirs},         {"others", s.others},
          {"bytes", s.bytes},     {"skipped", s.skipped},   {"verified", s.verified},
          {"errors", s.errors}};
}

Result<Summary> run(repo::Session& session, const Id& root, const Options& options,
                    const EventTarget& target) {
  CancelScope scope(session.cancel_token());
  Reporter events(target, OpKind::kRestore);
  events.started({{"tree", repo::hex(root)}, {"target", options.target}});
  Restorer r(session, options, events);
  return events.finish(r.run(root), summary_json);
}

Result<Choice> choose_snapshot(repo::Repository& repo, const std::string& ref,
                               std::optional<TimeNs> at) {
  Choice c;
  if (!at && ref != "latest") {
    HAVEN_ASSIGN(c.id, repo.resolve_snapshot(ref));
    HAVEN_ASSIGN(c.snapshot, repo.load_snapshot(c.id));
    return c;
  }
  // Every snapshot object: the readable ones, and the IDs of those that are damaged.
  std::vector<std::pair<Id, repo::Snapshot>> all;
  std::vector<std::pair<Id, Error>> damaged;
  HAVEN_TRY(repo.for_each_snapshot([&](const std::string&, std::optional<Id> id,
                                       Result<repo::Snapshot>& s) -> Status {
    if (!id) return ok_status();
    if (s.ok()) {
      all.emplace_back(*id, std::move(*s));
    } else if (s.error().code() == Error::Code::kCorrupt) {
      damaged.emplace_back(*id, s.error());
    } else {
      return s.error();
    }
    return ok_status();
  }));
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.second.time < b.second.time; });
  const std::pair<Id, repo::Snapshot>* best = nullptr;
  for (const auto& e : all) {
    if (!at || e.second.time <= *at) best = &e;
  }
  if (best == nullptr) {
    std::string why = damaged.empty() ? "" : " that can be read (" + std::to_string(damaged.size()) +
                                                 " snapshot(s) are damaged: run 'haven check')";
    if (!at) return Error(Error::Code::kNotFound, "the repository has no snapshots" + why);
    std::string first = all.empty() ? "none" : format_time(all.front().second.time);
    return Error(Error::Code::kNotFound, "no snapshot" + why + " at or before " + format_time(*at) +
                                             " (oldest snapshot: " + first + ")");
  }
  c.id = best->first;
  c.snapshot = best->second;
  std::string what;
  for (const auto& [id, err] : damaged) {
    // Known older than the choice: a readable snapshot no newer than it names it as parent.
    bool older = std::any_of(all.begin(), all.end(), [&](const auto& e) {
      return e.second.parent && *e.second.parent == id && e.second.time <= c.snapshot.time;
    });
    if (older) continue;
    c.damaged.push_back(id);
    what += (what.empty() ? "" : ", ") + repo::short_hex(id);
  }
  if (!c.damaged.empty()) {
    std::string asked = at ? "the newest snapshot at or before " + format_time(*at) : "the latest snapshot";
    c.substitution = "snapshot " + what + (c.damaged.size() > 1 ? " are" : " is") +
                     " damaged and cannot be read, so " + asked + " may be " +
                     (c.damaged.size() > 1 ? "one of them" : "it") + "; restored snapshot " +
                     repo::short_hex(c.id) + " of " + format_time(c.snapshot.time) +
                     " instead (run 'haven check', then restore by ID to choose deliberately)";
  }
  return c;
}

Result<Summary> run(repo::Session& session, const Choice& choice, const Options& options,
                    const EventTarget& target) {
  CancelScope scope(session.cancel_token());
  repo::Repository& repo = session.repo();
  Reporter events(target, OpKind::kRestore);
  events.started({{"snapshot", repo::hex(choice.id)},
                  {"target", options.target},
                  {"includes", options.includes},
                  {"excludes", options.excludes}});
  auto fail = [&](Error e) -> Result<Summary> {
    events.failed(e);
    return e;
  };
  // Paths as users type them become the snapshot's stored forms.
  auto stored = detail::stored_paths(repo, choice, options);
  if (!stored.ok()) return fail(stored.error());
  const Options& o = *stored;
  Restorer r(session, o, events);
  const detail::Totals t = detail::totals(choice, o);
  r.files_total = t.files;
  r.bytes_total = t.bytes;
  nlohmann::json extra = {{"snapshot", repo::hex(choice.id)}};
  if (!choice.substitution.empty()) {
    nlohmann::json damaged = nlohmann::json::array();
    for (const auto& id : choice.damaged) damaged.push_back(repo::hex(id));
    extra["substitution"] = {{"damaged", damaged},
                             {"restored", repo::hex(choice.id)},
                             {"message", choice.substitution}};
    events.warning("", choice.substitution,
                   {{"damaged", damaged}, {"restored", repo::hex(choice.id)}});
  }
  auto result = r.run(choice.snapshot.tree);
  if (result.ok()) result->substitution = choice.substitution;
  return events.finish(std::move(result), [&](const Summary& s) {
    nlohmann::json j = summary_json(s);
    j.update(extra);
    return j;
  });
}

}  // namespace haven::restore

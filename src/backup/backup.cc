#include "backup/backup.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "backup/fsmeta.h"
#include "repo/paths.h"
#include "repo/tree_ahead.h"
#include "util/subprocess.h"
#include "util/sysinfo.h"

namespace haven::backup {

using repo::BlobType;
using repo::Id;
using repo::Node;
using repo::Tree;

namespace {

// A directory whose tree blob is not written yet. `pending` counts unfinished children plus
// one hold by the walker; whoever brings it to zero writes the tree and notifies the parent.
struct DirJob {
  std::string path;
  std::vector<Node> nodes;
  std::vector<char> drop;  // nodes to leave out (vanished while being read)
  std::atomic<int> pending{1};
  DirJob* parent = nullptr;
  size_t parent_index = 0;
  // The directory, open while files of it wait to be read: they are opened relative to it,
  // not by walking their full path again (most of open's path walk in a small-file backup).
  int fd = -1;
  DirJob() = default;
  DirJob(const DirJob&) = delete;
  DirJob& operator=(const DirJob&) = delete;
  ~DirJob() {
    if (fd >= 0) ::close(fd);
  }
};

// A file's content in the parent snapshot, for a file read page by page against it.
struct BaseContent {
  std::vector<repo::ContentRef> content;
  uint64_t size = 0;
  std::optional<std::vector<uint32_t>> listed;  // the changed pages, when known (PageDelta::listed)
};

struct FileJob {
  std::string path;
  DirJob* dir;
  size_t index;
  std::optional<BaseContent> base;  // set: read page by page (Options::page_delta)
};

std::string join(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string absolute(const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  char buf[4096];
  if (!getcwd(buf, sizeof buf)) return p;
  return join(buf, p);
}

// Removes "." components, duplicate and trailing slashes (".." is kept as written).
std::string clean(const std::string& p) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string part = p.substr(i, j - i);
    if (!part.empty() && part != ".") parts.push_back(part);
    i = j + 1;
  }
  std::string out;
  for (const auto& part : parts) out += "/" + part;
  return out.empty() ? "/" : out;
}

bool same_file(const Node& a, const Node& b) {
  return a.type == b.type && a.size == b.size && a.mtime == b.mtime && a.ctime == b.ctime &&
         a.inode == b.inode && a.device == b.device;
}

// What each reading thread keeps between files: its read buffer (2 × max chunk) and the IDs of
// all-zero chunks by length (a hole's chunks are hashed once per length, not once per chunk).
struct ReadState {
  // Not zeroed when allocated (a vector would be): pages a small file never reaches are never
  // touched, so a tree of small files does not keep 2 × max chunk resident per thread.
  struct Buffer {
    std::unique_ptr<uint8_t[]> p;
    uint8_t* at = nullptr;
    size_t n = 0;
    uint8_t* data() { return at; }
    size_t size() const { return n; }
    void resize(size_t k) {
      p = std::make_unique_for_overwrite<uint8_t[]>(k);
      at = p.get();
      n = k;
    }
    // Reads into k bytes at d (a part of another buffer), owning none.
    void view(uint8_t* d, size_t k) {
      p.reset();
      at = d;
      n = k;
    }
  } buf;
  std::unordered_map<size_t, Id> zero_ids;
  Bytes fresh;  // changed pages gathered into one blob (page deltas)
};

// A stretch of a file being read: data, or a hole (reads as zeros; never read from disk).
struct Extent {
  uint64_t begin = 0, end = 0;
  bool hole = false;
  bool to_end = false;  // a hole that runs to the end of what is read
};

// A chunk of a large file handed to an idle worker for hashing (HashAhead): the data stays in
// the reading worker's buffer, the ID is written into its list.
struct HashGroup;
struct HashTask {
  ByteView data;
  Id* id = nullptr;
  HashGroup* group = nullptr;
};
// The chunks one reading worker handed out: helpers count themselves in while they hash.
struct HashGroup {
  std::mutex m;
  std::condition_variable cv;
  int running = 0;  // taken by a helper and not finished
};

class Archiver {
 public:
  Archiver(repo::Session& session, const Options& o, Reporter& events)
      : repo_(session.repo()), session_(session), opts_(o), events_(events),
        chunker_(repo_.make_chunker()),
        zeros_(static_cast<uint8_t*>(std::calloc(chunker_.params().max_size, 1))),
        zeros_size_(chunker_.params().max_size) {
    if (!zeros_) throw std::bad_alloc();
    // All-zero input is cut at the same length wherever it starts (the chunker is stateless
    // and sees only zeros), so the chunks of a hole need no chunker run.
    zero_cut_ = chunker_.next_cut(ByteView(zeros_.get(), zeros_size_), false);
  }

  Result<Summary> run();

 private:
  Result<Id> backup_paths();
  Result<Id> backup_stream();
  Status walk_dir(const std::string& path, DirJob* parent, size_t index,
                  const std::optional<Id>& old_tree, dev_t root_dev);
  void finish_dir(DirJob* d);
  // Queues a file for the workers (waits while the queue is full); false once closing. `last`:
  // the walker has no more files to queue for now.
  bool queue_file(FileJob job, bool last);
  void release(DirJob* d) {
    if (d->pending.fetch_sub(1) == 1) finish_dir(d);
  }
  void worker();
  class HashAhead;
  // Hashes each task's data into its ID, two at a time.
  void hash(std::span<const HashTask> tasks);
  void process_file(FileJob& job, ReadState& rs);
  // Small files read one after the other, each into its own part of `batch`, and their chunks
  // hashed together, two lanes side by side (a lane that ends takes the next file's), before
  // they are stored in order: a file of one chunk would otherwise be hashed alone, at about
  // half the rate. `part` is the reader's view of the part.
  void process_small(std::span<FileJob> jobs, ReadState& rs, ReadState& batch, ReadState& part);
  // Whether `job` may be read with others by process_small: no page delta, and small.
  static bool batches(const FileJob& job);
  // A regular file opened for reading: its descriptor, the size that bounds the read, and
  // whether it may hold holes.
  struct Opened {
    int fd = -1;
    uint64_t limit = 0;
    bool holes = false;
  };
  // Opens `job`'s file; false (with a warning, the file dropped from the snapshot) if it cannot.
  bool open_file(FileJob& job, Opened& f);
  // Closes `f` and sets `job`'s node from what `st` and the read found (the content, or a
  // warning and the file dropped, or the backup failed).
  void finish_file(FileJob& job, Opened& f, const Status& st, std::vector<repo::ContentRef>& content,
                   uint64_t total);
  // Chunks what fd holds into `content`; `total` is the length chunked. For a regular file,
  // `limit` is its size when it was opened: at most that much is read (a file that keeps
  // growing cannot keep the backup going), and if it may have `holes`, they (SEEK_DATA/
  // SEEK_HOLE) are not read but chunked as the zeros they are. Streams (no limit) are read to
  // their end.
  // With `deferred`, the chunks read last are left in it, hashed and stored by its settle().
  Status chunk_stream(int fd, ReadState& rs, std::vector<repo::ContentRef>& content,
                      uint64_t& total, std::optional<uint64_t> limit, bool holes = false,
                      HashAhead* deferred = nullptr);
  // Reads the first `limit` bytes of a page-structured file against its parent copy `base`
  // (Options::page_delta). False when the parent's copy cannot serve (not whole pages, a blob
  // gone) or the file shrank while read: then the file is chunked as usual (blobs stored by
  // then stay unreferenced until a prune).
  Result<bool> delta_file(int fd, ReadState& rs, const BaseContent& base, uint64_t limit,
                          std::vector<repo::ContentRef>& content, uint64_t& total);
  // The extent of a file holding `off` (reading stops at `end_at`); `seek` turns false when the
  // file system cannot tell holes, and then everything is data.
  Result<Extent> extent_at(int fd, uint64_t off, uint64_t end_at, bool& seek);
  // Stores an all-zero chunk of `len` bytes.
  Result<Id> zero_chunk(size_t len, ReadState& rs);
  void warn(const std::string& path, const std::string& message);
  void fail(const Error& e);
  bool excluded(const std::string& path, const std::string& name) const;
  void progress(bool final);

  repo::Repository& repo_;
  repo::Session& session_;  // the one this backup writes through: its lock, token and statistics
  const repo::Session::Stats stored_before_ = session_.stats();  // a session may serve backups in turn
  const Options& opts_;
  Reporter& events_;
  chunker::Chunker chunker_;
  // Max chunk size of zeros, shared read-only. calloc: fresh pages the kernel hands out zeroed,
  // never written, so they cost no resident memory (a zero-filled vector would: 4 MiB).
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  const std::unique_ptr<uint8_t, Free> zeros_;
  const size_t zeros_size_;
  size_t zero_cut_ = 0;               // where the chunker cuts all-zero input
  NameCache names_;

  std::mutex mu_;
  std::condition_variable queue_cv_, space_cv_, done_cv_;
  std::deque<FileJob> queue_;
  std::deque<HashTask> hash_tasks_;  // chunks of large files, for idle workers to hash
  unsigned idle_workers_ = 0;        // workers waiting for a file or a chunk
  bool walker_waits_ = false;        // the walker waits for room in the queue
  bool closing_ = false;
  std::optional<Error> fatal_;
  std::optional<Id> root_tree_;
  bool root_done_ = false;

  std::atomic<uint64_t> files_new_{0}, files_changed_{0}, files_unchanged_{0}, dirs_{0};
  std::atomic<uint64_t> bytes_read_{0}, bytes_total_{0}, warnings_{0}, files_done_{0};
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_progress_ = start_;
  std::atomic<bool> failed_{false};
  std::optional<Id> parent_id_;
  // Over object storage: the parent snapshot's trees loaded ahead of the walker (each is a
  // round trip otherwise, one directory after another). Null on a local disk.
  std::unique_ptr<repo::TreeAhead> parent_trees_;
  std::optional<PageDelta> delta_;  // from Options::page_delta and the parent snapshot
  std::atomic<uint64_t> pages_changed_{0}, pages_reused_{0};
  // What is backed up (absolute, cleaned, each once) and the top-level name of each.
  std::vector<std::string> paths_;
  std::vector<std::string> names_of_paths_;
};

void Archiver::warn(const std::string& path, const std::string& message) {
  warnings_++;
  events_.warning(path, message);
}

void Archiver::fail(const Error& e) {
  std::lock_guard<std::mutex> g(mu_);
  if (!fatal_) fatal_ = e;
  failed_ = true;
  closing_ = true;
  queue_cv_.notify_all();
  space_cv_.notify_all();
  done_cv_.notify_all();
}

bool Archiver::excluded(const std::string& path, const std::string& name) const {
  for (const auto& pat : opts_.excludes) {
    if (fnmatch(pat.c_str(), path.c_str(), FNM_PATHNAME) == 0) return true;
    if (pat.find('/') == std::string::npos && fnmatch(pat.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

void Archiver::progress(bool final) {
  if (!final && !events_.progress_due()) return;
  Progress p;
  p.phase = "files";
  p.files_done = files_done_.load();
  p.bytes_done = bytes_read_.load();
  // Files and bytes found so far: the walker runs ahead of the workers, so this is a total
  // that grows until the walk ends.
  p.bytes_total = std::max(bytes_total_.load(), p.bytes_done);
  p.final = final;
  events_.progress(std::move(p));
}

// Page-structured files (databases) rewrite scattered fixed-size pages in place. With 1 MiB
// content-defined chunks, changing 1% of the pages would touch most chunks, so such files are
// cut at page boundaries instead, in groups of 16 KiB: a changed page costs at most 16 KiB of
// storage. Detected by header; returns the chunk size, or 0 for ordinary files.
size_t page_size_of(ByteView head) {
  static const char kSqlite[16] = {'S', 'Q', 'L', 'i', 't', 'e', ' ', 'f',
                                   'o', 'r', 'm', 'a', 't', ' ', '3', '\0'};
  if (head.size() >= 100 && std::memcmp(head.data(), kSqlite, 16) == 0) {
    size_t ps = (static_cast<size_t>(head[16]) << 8) | head[17];
    if (ps == 1) ps = 65536;
    // Groups of pages of at least 16 KiB: per-page zstd frames compress 6% worse than 16 KiB
    // ones, while a changed page still costs at most 16 KiB.
    if (ps >= 512 && ps <= 65536 && (ps & (ps - 1)) == 0) return std::max<size_t>(ps, 16384);
  }
  return 0;
}

Result<Extent> Archiver::extent_at(int fd, uint64_t off, uint64_t end_at, bool& seek) {
  if (!seek) return Extent{off, end_at, false, false};
  off_t d = ::lseek(fd, static_cast<off_t>(off), SEEK_DATA);
  if (d < 0) {
    if (errno == ENXIO) {
      // No data at or after off: a hole up to the end of the file (or of what is read).
      struct stat st{};
      if (fstat(fd, &st) != 0) return errno_error("stat", errno);
      uint64_t e = std::min<uint64_t>(end_at, static_cast<uint64_t>(st.st_size));
      if (e <= off) return Extent{off, off, false, false};  // the file ends here
      return Extent{off, e, true, true};
    }
    seek = false;  // EINVAL & co.: the file system cannot tell holes, so read everything
    return Extent{off, end_at, false, false};
  }
  if (static_cast<uint64_t>(d) > off) {
    uint64_t e = std::min<uint64_t>(static_cast<uint64_t>(d), end_at);
    return Extent{off, e, true, e == end_at};
  }
  off_t h = ::lseek(fd, static_cast<off_t>(off), SEEK_HOLE);
  if (h < 0) {
    seek = false;
    return Extent{off, end_at, false, false};
  }
  return Extent{off, std::min<uint64_t>(static_cast<uint64_t>(h), end_at), false, false};
}

Result<Id> Archiver::zero_chunk(size_t len, ReadState& rs) {
  ByteView zeros(zeros_.get(), len);
  auto it = rs.zero_ids.find(len);
  if (it == rs.zero_ids.end()) it = rs.zero_ids.emplace(len, repo_.blob_id(zeros)).first;
  // Already stored after the first time: then this is an index lookup.
  auto saved = session_.save_blob_with_id(BlobType::kData, it->second, zeros);
  if (!saved.ok()) return saved.error();
  return it->second;
}

// The chunks of a file, hashed and stored, in order, by settle(), which the reader calls before
// the buffer they lie in is reused (after ~8 MiB of a large file: Repository::blob_ids hashes
// them two side by side, ~1.8x the rate of one after the other). A large file's chunks are also handed to whichever workers
// are idle meanwhile: re-reading one large file after it changed would otherwise hash on one
// core while the others wait.
class Archiver::HashAhead {
 public:
  HashAhead(Archiver& a, bool helpers) : compression(a.session_.compression()), a_(a), helpers_(helpers) {}
  ~HashAhead() { withdraw(); }  // no helper is left reading the buffer
  HashAhead(const HashAhead&) = delete;
  HashAhead& operator=(const HashAhead&) = delete;

  void add(ByteView chunk) {
    Pending& p = pending_.emplace_back(Pending{chunk, Id{}});  // a deque: &p.id stays put
    bool handed = false;
    if (helpers_) {
      std::lock_guard<std::mutex> g(a_.mu_);
      if (2 * a_.idle_workers_ > a_.hash_tasks_.size()) {  // a helper takes two at a time
        a_.hash_tasks_.push_back({chunk, &p.id, &group_});
        handed = true;
      }
    }
    if (handed) {
      handed_++;
      a_.queue_cv_.notify_one();
      return;
    }
    mine_.push_back({chunk, &p.id, nullptr});  // hashed here, with the others, when settled
  }
  // Every chunk added is hashed (here, if no helper took it) and stored, in order.
  Status settle(std::vector<repo::ContentRef>& content) {
    withdraw();
    for (const Pending& p : pending_) {
      auto saved = a_.session_.save_blob_with_id(BlobType::kData, p.id, p.data, compression);
      if (!saved.ok()) return saved.error();
      content.push_back(p.id);
    }
    pending_.clear();
    return ok_status();
  }

  // Takes over the chunks `other` kept to hash (neither hands any to helpers): hashed with
  // this one's at its settle(), before `other` settles.
  void adopt(HashAhead& other) {
    mine_.insert(mine_.end(), other.mine_.begin(), other.mine_.end());
    other.mine_.clear();
  }

  repo::Compression compression;  // what the file's chunks are stored at

 private:
  struct Pending {
    ByteView data;
    Id id;
  };
  // Takes back the chunks no helper started on, hashes them with those kept here, and waits
  // for the helpers' chunks.
  void withdraw() {
    if (handed_ > 0) {
      std::lock_guard<std::mutex> g(a_.mu_);
      std::erase_if(a_.hash_tasks_, [&](const HashTask& t) {
        if (t.group != &group_) return false;
        mine_.push_back(t);
        return true;
      });
    }
    a_.hash(mine_);
    mine_.clear();
    if (handed_ == 0) return;
    std::unique_lock<std::mutex> lk(group_.m);
    group_.cv.wait(lk, [&] { return group_.running == 0; });
    handed_ = 0;
  }

  Archiver& a_;
  const bool helpers_;
  std::deque<Pending> pending_;
  std::vector<HashTask> mine_;  // chunks to hash here
  HashGroup group_;
  size_t handed_ = 0;
};

void Archiver::hash(std::span<const HashTask> tasks) {
  thread_local std::vector<ByteView> data;
  thread_local std::vector<Id> ids;
  data.clear();
  for (const HashTask& t : tasks) data.push_back(t.data);
  ids.resize(tasks.size());
  repo_.blob_ids(data, ids);
  for (size_t i = 0; i < tasks.size(); i++) *tasks[i].id = ids[i];
}

// Files at least this large have their chunks also hashed by idle workers.
constexpr uint64_t kHashAheadMin = 16u << 20;
// Files at least this large are probed for a cheaper compression (repo::probe_compression):
// their first 32 KiB, or 128 KiB from kWideProbeMin on, each compressed about three times
// (~0.2 and ~1 ms a file; under 1 MiB the probe would cost more than it can save).
constexpr uint64_t kLevelProbeMin = 1u << 20;
constexpr uint64_t kWideProbeMin = 8u << 20;

Status Archiver::chunk_stream(int fd, ReadState& rs, std::vector<repo::ContentRef>& content,
                              uint64_t& total, std::optional<uint64_t> limit, bool holes,
                              HashAhead* deferred) {
  ReadState::Buffer& buf = rs.buf;
  const bool file = limit.has_value();
  const uint64_t end_at = file ? *limit : UINT64_MAX;
  size_t start = 0, end = 0;  // the chunker's window in buf
  uint64_t start_off = 0;     // stream offset of buf[start]
  uint64_t fill_off = 0;      // stream offset of buf[end]
  bool eof = false;
  bool first = true;
  bool seek = file && holes;
  size_t page = 0;
  Extent ext;   // the extent holding fill_off, once found
  Extent hole;  // the last hole found
  const size_t max = chunker_.params().max_size;
  std::optional<HashAhead> own;
  HashAhead& ahead = deferred != nullptr ? *deferred : own.emplace(*this, file && *limit >= kHashAheadMin);
  // One read into the room at the buffer's end (none if the wait for a stream timed out or a
  // read was interrupted); sets eof at the end of the stream or of the first `limit` bytes.
  auto fill = [&]() -> Status {
    const size_t room = buf.size() - end;
    if (!file) {
      // A stream may stay silent for ever (stdin of a stalled producer): wait for data in
      // slices, so that a cancelled backup does not sit in read().
      pollfd pf{fd, POLLIN, 0};
      int ready = ::poll(&pf, 1, 100);
      if (ready < 0 && errno != EINTR) return errno_error("poll", errno);
      if (ready <= 0) return session_.cancel_token().check();
      ssize_t n = ::read(fd, buf.data() + end, room);
      if (n < 0) return errno == EINTR ? ok_status() : errno_error("read", errno);
      if (n == 0) eof = true;
      end += static_cast<size_t>(n);
      fill_off += static_cast<uint64_t>(n);
      bytes_read_ += static_cast<uint64_t>(n);
      return ok_status();
    }
    if (fill_off >= end_at) {
      eof = true;
      return ok_status();
    }
    if (fill_off < ext.begin || fill_off >= ext.end) {
      HAVEN_ASSIGN(ext, extent_at(fd, fill_off, end_at, seek));
      if (ext.end <= fill_off) {
        eof = true;  // the file is shorter than when it was opened
        return ok_status();
      }
      if (ext.hole) hole = ext;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(room, ext.end - fill_off));
    if (ext.hole) {
      std::memset(buf.data() + end, 0, n);
    } else {
      ssize_t r = ::pread(fd, buf.data() + end, n, static_cast<off_t>(fill_off));
      if (r < 0) return errno == EINTR ? ok_status() : errno_error("read", errno);
      if (r == 0) {
        eof = true;  // shrank while being read
        return ok_status();
      }
      n = static_cast<size_t>(r);
      bytes_read_ += n;
    }
    end += n;
    fill_off += n;
    return ok_status();
  };
  while (true) {
    // A chunk that lies wholly in a hole is all zeros, and so is cut where all-zero input is
    // cut: no reading, no chunker run, no hashing (the same chunks as reading the zeros).
    if (hole.hole && start_off >= hole.begin && start_off < hole.end) {
      uint64_t avail = hole.end - start_off;
      if (avail >= max || hole.to_end) {
        HAVEN_TRY(ahead.settle(content));  // the chunks before the hole
        first = false;  // a file that starts with a hole has no database header
        size_t cut = static_cast<size_t>(std::min<uint64_t>(page ? page : zero_cut_, avail));
        HAVEN_ASSIGN(Id id, zero_chunk(cut, rs));
        content.push_back(id);
        start_off += cut;
        total += cut;
        // The window held only zeros of this hole: drop it and refill from start_off.
        start = end = 0;
        fill_off = start_off;
        eof = false;
        progress(false);
        continue;
      }
    }
    // Keep at least max bytes (or everything to the end) in view of the chunker, reading into
    // the room left at the buffer's end. When that room runs out first, the cut is looked for in
    // what is in view (a cut found there is the one a full view gives: the first match), and
    // only a view that holds none is moved to the buffer's front to read on. Moving the view
    // whenever it ran short moved ~0.9 of every byte of a large file once more.
    size_t cut = 0;
    while (true) {
      if (start == end && end == buf.size()) {  // the view ended with the buffer: start over
        HAVEN_TRY(ahead.settle(content));         // before their bytes are read over
        start = end = 0;
      }
      if (!eof && end - start < max && end < buf.size()) {
        HAVEN_TRY(fill());
        continue;
      }
      if (start == end) break;
      if (first) {
        page = page_size_of(ByteView(buf.data(), end));
        first = false;
        if (file && *limit >= kLevelProbeMin) {
          const size_t sample = std::min<size_t>(end - start, *limit >= kWideProbeMin ? 128u << 10 : 32u << 10);
          ahead.compression = repo::probe_compression(ahead.compression, ByteView(buf.data() + start, sample), page);
        }
      }
      const bool whole = eof || end - start >= max;  // the view holds all the cut can depend on
      ByteView view(buf.data() + start, end - start);
      if (page != 0) {
        cut = whole || view.size() >= page ? std::min(page, view.size())  // page = this file's chunk size
                                           : 0;
      } else {
        cut = chunker_.next_cut(view, eof);  // 0 only in a view short of max
      }
      if (cut != 0) break;
      HAVEN_TRY(ahead.settle(content));  // before their bytes move
      std::memmove(buf.data(), buf.data() + start, end - start);
      end -= start;
      start = 0;
    }
    if (start == end) break;
    ahead.add(ByteView(buf.data() + start, cut));
    start += cut;
    start_off += cut;
    total += cut;
    progress(false);
  }
  if (deferred == nullptr) HAVEN_TRY(ahead.settle(content));
  return ok_status();
}

// A file read against its parent copy. The parent's content is laid out as stretches of the
// file; each page the delta calls unchanged becomes a slice of the stretch (or stretches) that
// held it, each changed page is gathered into a new blob of changed pages (up to kFreshBlob
// bytes, so they compress together and cost one index entry), and neighbouring slices of one
// blob merge. A window of the file whose pages would need more than kMaxRefsPerWindow slices
// is stored whole instead, so slices never outnumber one per 2 pages: repeated incrementals
// cannot fragment a file's content list (and a restore's reads) without bound.
Result<bool> Archiver::delta_file(int fd, ReadState& rs, const BaseContent& base, uint64_t limit,
                                  std::vector<repo::ContentRef>& content, uint64_t& total) {
  constexpr size_t kWindowPages = 128;
  constexpr size_t kMaxRefsPerWindow = kWindowPages / 2;
  constexpr size_t kFreshBlob = 1 << 20;
  const size_t ps = delta_->page_size;
  if (ps == 0 || limit % ps != 0) return false;
  const size_t window = std::min(kWindowPages * ps, rs.buf.size() / ps * ps);
  if (window == 0) return false;

  struct Stretch {
    uint64_t begin;  // in the file
    Id id;
    uint64_t off, len;  // in the blob
    uint64_t raw;       // the blob's length
  };
  std::vector<Stretch> map;
  map.reserve(base.content.size());
  uint64_t at = 0;
  for (const auto& c : base.content) {
    auto raw = repo_.blob_raw_length(BlobType::kData, c.id);
    if (!raw || !session_.has_blob(BlobType::kData, c.id)) return false;
    const uint64_t off = c.offset, len = c.whole() ? *raw : c.length;
    if (off + len > *raw) return false;
    map.push_back({at, c.id, off, len, *raw});
    at += len;
  }
  if (at != base.size) return false;

  // What the content list will hold: slices of the parent's blobs, of blobs stored whole here,
  // or of the blob of changed pages numbered `fresh_no` (its ID is known once it is stored).
  struct Out {
    bool fresh;
    size_t fresh_no;
    Id id;
    uint64_t off, len, raw;
  };
  auto merge = [](std::vector<Out>& list, const Out& o) {
    if (!list.empty()) {
      Out& b = list.back();
      if (b.fresh == o.fresh && (o.fresh ? b.fresh_no == o.fresh_no : b.id == o.id) &&
          b.off + b.len == o.off) {
        b.len += o.len;
        return;
      }
    }
    list.push_back(o);
  };
  std::vector<Out> out, plan;
  std::vector<std::pair<size_t, size_t>> fresh_pages;  // (offset in the window, length)
  std::vector<std::pair<Id, uint64_t>> fresh_blobs;    // stored: ID and length
  Bytes& fresh = rs.fresh;
  fresh.clear();
  auto store_fresh = [&]() -> Status {
    if (fresh.empty()) return ok_status();
    Id id = repo_.blob_id(fresh);
    auto saved = session_.save_blob_with_id(BlobType::kData, id, fresh);
    if (!saved.ok()) return saved.error();
    fresh_blobs.emplace_back(id, fresh.size());
    fresh.clear();
    return ok_status();
  };

  size_t cursor = 0;  // the first stretch that may hold what comes next
  uint8_t* buf = rs.buf.data();
  const std::vector<uint32_t>* listed = base.listed ? &*base.listed : nullptr;
  size_t next_listed = 0;  // into *listed
  std::vector<char> changed_at;  // per page of the window
  // Reads [off, off + n) of the window at `w` into buf; false if the file ended first.
  auto read_window = [&](uint64_t w, size_t off, size_t n) -> Result<bool> {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd, buf + off + got, n - got, static_cast<off_t>(w + off + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return errno_error("read", errno);
      if (r == 0) return false;
      got += static_cast<size_t>(r);
    }
    bytes_read_ += n;
    return true;
  };
  for (uint64_t w = 0; w < limit; w += window) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(window, limit - w));
    const size_t pages = want / ps;  // limit is whole pages
    changed_at.assign(pages, 0);
    if (listed == nullptr) {
      // Every page is read and asked.
      HAVEN_ASSIGN(bool whole, read_window(w, 0, want));
      if (!whole) return false;  // shrank while being read: chunked as usual instead
      for (size_t k = 0; k < pages; k++) {
        changed_at[k] = w + (k + 1) * ps > base.size || delta_->changed(ByteView(buf + k * ps, ps));
      }
    } else {
      // Only the pages listed, and those past the parent's copy, are read.
      const uint64_t first = w / ps;
      while (next_listed < listed->size() && (*listed)[next_listed] < first) next_listed++;
      for (size_t j = next_listed; j < listed->size() && (*listed)[j] < first + pages; j++) {
        changed_at[(*listed)[j] - first] = 1;
      }
      for (size_t k = 0; k < pages; k++) {
        if (w + (k + 1) * ps > base.size) changed_at[k] = 1;
      }
      for (size_t k = 0; k < pages;) {
        if (!changed_at[k]) {
          k++;
          continue;
        }
        size_t e = k;
        while (e < pages && changed_at[e]) e++;
        HAVEN_ASSIGN(bool whole, read_window(w, k * ps, (e - k) * ps));
        if (!whole) return false;
        k = e;
      }
    }
    plan.clear();
    fresh_pages.clear();
    size_t fresh_len = 0;
    uint64_t changed = 0;
    for (size_t k = 0; k < pages; k++) {
      const size_t p = k * ps;
      const uint64_t a = w + p, b = a + ps;
      if (changed_at[k]) {
        if (!fresh_pages.empty() && fresh_pages.back().first + fresh_pages.back().second == p) {
          fresh_pages.back().second += ps;
        } else {
          fresh_pages.emplace_back(p, ps);
        }
        merge(plan, {true, 0, {}, fresh_len, ps, 0});
        fresh_len += ps;
        changed++;
        continue;
      }
      // Unchanged: the parent's bytes of [a, b), from one stretch or more.
      while (cursor < map.size() && map[cursor].begin + map[cursor].len <= a) cursor++;
      uint64_t from = a;
      for (size_t j = cursor; from < b && j < map.size(); j++) {
        const Stretch& s = map[j];
        const uint64_t take = std::min(b, s.begin + s.len) - from;
        merge(plan, {false, 0, s.id, s.off + (from - s.begin), take, s.raw});
        from += take;
      }
    }
    if (plan.size() > kMaxRefsPerWindow) {
      // Too scattered: this window becomes one blob of its own (read whole first).
      if (listed != nullptr) {
        HAVEN_ASSIGN(bool whole, read_window(w, 0, want));
        if (!whole) return false;
      }
      ByteView bytes(buf, want);
      Id id = repo_.blob_id(bytes);
      auto saved = session_.save_blob_with_id(BlobType::kData, id, bytes);
      if (!saved.ok()) return saved.error();
      merge(out, {false, 0, id, 0, want, want});
      pages_changed_ += pages;
    } else {
      if (!fresh.empty() && fresh.size() + fresh_len > kFreshBlob) HAVEN_TRY(store_fresh());
      const uint64_t shift = fresh.size();
      for (const auto& [off, len] : fresh_pages) fresh.insert(fresh.end(), buf + off, buf + off + len);
      for (Out o : plan) {
        if (o.fresh) {
          o.fresh_no = fresh_blobs.size();
          o.off += shift;
        }
        merge(out, o);
      }
      pages_changed_ += changed;
      pages_reused_ += pages - changed;
    }
    total += want;
    progress(false);
  }
  HAVEN_TRY(store_fresh());
  content.clear();
  content.reserve(out.size());
  for (Out& o : out) {
    if (o.fresh) std::tie(o.id, o.raw) = fresh_blobs[o.fresh_no];
    if (o.off == 0 && o.len == o.raw) {
      content.emplace_back(o.id);
    } else {
      content.emplace_back(o.id, static_cast<uint32_t>(o.off), static_cast<uint32_t>(o.len));
    }
  }
  return true;
}

bool Archiver::open_file(FileJob& job, Opened& f) {
  Node& node = job.dir->nodes[job.index];
  const int at = job.dir->fd >= 0 ? job.dir->fd : AT_FDCWD;
  const char* name = job.dir->fd >= 0 ? node.name.c_str() : job.path.c_str();
  int fd = ::openat(at, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = ::openat(at, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      warn(job.path, "vanished before it could be read; not in the snapshot");
    } else {
      warn(job.path, errno_error("cannot be read", err).message() + "; not in the snapshot");
    }
    job.dir->drop[job.index] = 1;
    return false;
  }
  // The size now bounds the read: a file that grows while it is read (a log, a download) is
  // stored as it was when opened, not chased to whatever end it has by then.
  struct stat opened{};
  if (fstat(fd, &opened) != 0) {
    warn(job.path, errno_error("cannot be read", errno).message() + "; not in the snapshot");
    ::close(fd);
    job.dir->drop[job.index] = 1;
    return false;
  }
  f.fd = fd;
  f.limit = static_cast<uint64_t>(opened.st_size);
  // Holes are looked for (two lseeks a file) only where the blocks the file holds (512-byte
  // units) do not cover its size; the readahead advice is given only where reads run past the
  // kernel's default window. Of a 60,000-file backup's 10 system calls a file, these were 3.
  f.holes = static_cast<uint64_t>(opened.st_blocks) * 512 < f.limit;
  if (f.limit >= (1u << 20)) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return true;
}

void Archiver::finish_file(FileJob& job, Opened& f, const Status& st, std::vector<repo::ContentRef>& content,
                           uint64_t total) {
  Node& node = job.dir->nodes[job.index];
  struct stat after{};
  int fst = fstat(f.fd, &after);
  ::close(f.fd);
  f.fd = -1;
  if (!st.ok()) {
    if (st.error().code() == Error::Code::kIo || st.error().code() == Error::Code::kPermissionDenied) {
      warn(job.path, st.error().message() + "; not in the snapshot");
      job.dir->drop[job.index] = 1;
      return;
    }
    fail(st.error().with_context(job.path));
    return;
  }
  node.content = std::move(content);
  if (fst == 0 && (after.st_size != static_cast<off_t>(node.size) ||
                   ts_ns(after.st_mtim) != node.mtime || total != node.size)) {
    if (total == f.limit && static_cast<uint64_t>(after.st_size) > f.limit) {
      warn(job.path, "changed while being read: it grew from " + std::to_string(f.limit) + " to " +
                         std::to_string(after.st_size) + " bytes; the snapshot holds the first " +
                         std::to_string(f.limit) + " bytes, as far as it reached when opened");
    } else {
      warn(job.path, "changed while being read; the snapshot holds what was read");
    }
    node.size = total;
    node.mtime = ts_ns(after.st_mtim);
    node.ctime = 0;  // forces the next incremental backup to read it again
  }
  files_done_++;
}

void Archiver::process_file(FileJob& job, ReadState& rs) {
  Opened f;
  if (!open_file(job, f)) return;
  std::vector<repo::ContentRef> content;
  uint64_t total = 0;
  Status st;
  bool delta = false;
  if (job.base) {
    auto d = delta_file(f.fd, rs, *job.base, f.limit, content, total);
    if (!d.ok()) st = d.error();
    delta = d.ok() && *d;
  }
  if (st.ok() && !delta) {
    content.clear();
    total = 0;
    st = chunk_stream(f.fd, rs, content, total, f.limit, f.holes);
  }
  finish_file(job, f, st, content, total);
}

// Files smaller than this (less than the chunker's least chunk: one chunk each) are read in
// batches of up to kBatchFiles files and kBatchBytes bytes (process_small).
constexpr uint64_t kSmallMax = 256u << 10;
constexpr size_t kBatchFiles = 8;
constexpr size_t kBatchBytes = 1u << 20;

bool Archiver::batches(const FileJob& job) {
  return !job.base && job.dir->nodes[job.index].size < kSmallMax;
}

void Archiver::process_small(std::span<FileJob> jobs, ReadState& rs, ReadState& batch, ReadState& part) {
  struct Item {
    explicit Item(Archiver& a) : ahead(a, false) {}  // small: no chunks handed to helpers
    Opened f;
    HashAhead ahead;
    std::vector<repo::ContentRef> content;
    uint64_t total = 0;
    Status st;
  };
  std::deque<Item> items;  // HashAhead stays put
  size_t used = 0;         // bytes of `batch` holding chunks not yet stored
  size_t first = 0;        // the first item whose chunks are not stored
  // Hashes the chunks of items [first, end) as one batch, then stores each item's in order.
  auto settle = [&](size_t end) {
    HashAhead* lead = nullptr;
    for (size_t i = first; i < end; i++) {
      Item& it = items[i];
      if (it.f.fd < 0 || !it.st.ok()) continue;
      if (lead == nullptr) {
        lead = &it.ahead;
      } else {
        lead->adopt(it.ahead);
      }
    }
    for (size_t i = first; i < end; i++) {
      Item& it = items[i];
      if (it.f.fd >= 0 && it.st.ok()) it.st = it.ahead.settle(it.content);
    }
    first = end;
    used = 0;
  };
  for (FileJob& job : jobs) {
    Item& it = items.emplace_back(*this);
    if (!open_file(job, it.f)) continue;
    if (it.f.limit >= batch.buf.size()) {  // it grew since it was queued: read on its own
      settle(items.size() - 1);
      it.st = chunk_stream(it.f.fd, rs, it.content, it.total, it.f.limit, it.f.holes);
      first = items.size();
      continue;
    }
    // A file read to its size never fills a part one byte longer, so it is read to its end.
    const size_t need = static_cast<size_t>(it.f.limit) + 1;
    if (used + need > batch.buf.size()) settle(items.size() - 1);
    part.buf.view(batch.buf.data() + used, need);
    it.st = chunk_stream(it.f.fd, part, it.content, it.total, it.f.limit, it.f.holes, &it.ahead);
    used += (need + 63) & ~size_t{63};
  }
  settle(items.size());
  for (size_t i = 0; i < items.size(); i++) {
    if (items[i].f.fd >= 0) finish_file(jobs[i], items[i].f, items[i].st, items[i].content, items[i].total);
  }
}

void Archiver::worker() {
  ReadState rs, batch, part;
  rs.buf.resize(2 * static_cast<size_t>(chunker_.params().max_size));
  batch.buf.resize(kBatchBytes);  // pages only touched where small files are read
  std::vector<FileJob> small;
  while (true) {
    FileJob job;
    small.clear();
    HashTask task[2];
    size_t tasks = 0;
    {
      std::unique_lock<std::mutex> lk(mu_);
      idle_workers_++;
      queue_cv_.wait(lk, [&] { return !hash_tasks_.empty() || !queue_.empty() || closing_; });
      idle_workers_--;
      if (!hash_tasks_.empty()) {
        // Chunks of a large file another worker reads: short, and they hold that worker up.
        // Two if there are (hashed side by side).
        for (; tasks < 2 && !hash_tasks_.empty(); tasks++) {
          task[tasks] = hash_tasks_.front();
          hash_tasks_.pop_front();
          std::lock_guard<std::mutex> g(task[tasks].group->m);
          task[tasks].group->running++;
        }
      } else {
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
        // A small file is taken with the small ones queued after it (process_small), unless
        // a worker waits for one: it would otherwise sit idle while this one reads them.
        if (idle_workers_ == 0 && !queue_.empty() && batches(job) && batches(queue_.front())) {
          uint64_t bytes = job.dir->nodes[job.index].size;
          small.push_back(std::move(job));
          while (small.size() < kBatchFiles && !queue_.empty() && batches(queue_.front()) &&
                 bytes + queue_.front().dir->nodes[queue_.front().index].size < kBatchBytes) {
            bytes += queue_.front().dir->nodes[queue_.front().index].size;
            small.push_back(std::move(queue_.front()));
            queue_.pop_front();
          }
        }
        // The walker, once it waits for room, is woken when half the queue is free, not at
        // every file taken (a wake-up each: a futex call and a context switch).
        if (walker_waits_ && queue_.size() <= opts_.queue_depth / 2) {
          walker_waits_ = false;
          space_cv_.notify_one();
        }
      }
    }
    if (tasks > 0) {
      hash(std::span<const HashTask>(task, tasks));
      for (size_t i = 0; i < tasks; i++) {
        std::lock_guard<std::mutex> g(task[i].group->m);  // held while notifying: the group may
        if (--task[i].group->running == 0) task[i].group->cv.notify_all();  // go once it is free
      }
      continue;
    }
    if (Status c = session_.cancel_token().check(); !c.ok()) fail(c.error());
    if (!failed_) {
      if (!small.empty()) {
        process_small(small, rs, batch, part);
      } else {
        process_file(job, rs);
      }
    }
    if (small.empty()) release(job.dir);
    for (FileJob& f : small) release(f.dir);
  }
}

void Archiver::finish_dir(DirJob* d) {
  // Runs on whichever thread finished the directory's last child; walks up while parents
  // finish too.
  while (d != nullptr) {
    Tree t;
    for (size_t i = 0; i < d->nodes.size(); i++) {
      if (!d->drop[i]) t.nodes.push_back(std::move(d->nodes[i]));
    }
    DirJob* parent = d->parent;
    size_t index = d->parent_index;
    std::optional<Id> id;
    if (!failed_) {
      auto saved = session_.save_tree(t);
      if (!saved.ok()) {
        fail(saved.error());
      } else {
        id = *saved;
      }
    }
    delete d;
    if (parent == nullptr) {
      std::lock_guard<std::mutex> g(mu_);
      root_tree_ = id;
      root_done_ = true;
      done_cv_.notify_all();
      return;
    }
    if (id) parent->nodes[index].subtree = *id;
    if (parent->pending.fetch_sub(1) != 1) return;
    d = parent;
  }
}

bool Archiver::queue_file(FileJob job, bool last) {
  // Workers are woken once a few files wait, and for the walker's last file for now: one
  // wake-up for several small files instead of one each (a futex call and a context switch
  // per file were ~9% of a 60,000-file backup's CPU). A worker that finishes a file takes the
  // next without sleeping, so only workers that ran dry wait for the next few.
  constexpr size_t kWakeAt = 8;
  std::unique_lock<std::mutex> lk(mu_);
  while (queue_.size() >= opts_.queue_depth && !closing_) {
    walker_waits_ = true;
    queue_cv_.notify_all();  // a full queue is never left to sleeping workers (a depth under 8)
    space_cv_.wait(lk);
  }
  if (closing_) return false;
  queue_.push_back(std::move(job));
  if (last) {
    for (size_t n = std::min<size_t>(queue_.size(), idle_workers_); n > 0; n--) queue_cv_.notify_one();
  } else if (queue_.size() % kWakeAt == 0) {
    queue_cv_.notify_one();
  }
  return true;
}

Status Archiver::walk_dir(const std::string& path, DirJob* parent, size_t index,
                          const std::optional<Id>& old_tree, dev_t root_dev) {
  dirs_++;
  auto* d = new DirJob;
  d->path = path;
  d->parent = parent;
  d->parent_index = index;
  std::vector<std::string> names;
  // Entries are stat'ed relative to the open directory: no walk of the full path per entry.
  DIR* dir = opendir(path.c_str());
  if (dir != nullptr) {
    while (struct dirent* e = readdir(dir)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      names.push_back(std::move(name));
    }
  } else {
    warn(path, errno_error("cannot list directory", errno).message() + "; stored empty");
  }
  std::sort(names.begin(), names.end());

  // The previous snapshot's entries of this directory, in name order like `names`: found by a
  // merge walk (old_at), not a map.
  std::vector<Node> old;
  if (old_tree) {
    auto t = parent_trees_ ? parent_trees_->take(*old_tree, path) : repo_.load_tree(*old_tree);
    if (t.ok()) {
      old = std::move(t->nodes);
      if (!std::is_sorted(old.begin(), old.end(),
                          [](const Node& a, const Node& b) { return a.name < b.name; })) {
        old.clear();  // not written by Haven's walker: compare against nothing
      }
    }
  }
  size_t old_at = 0;

  std::vector<std::pair<size_t, std::optional<Id>>> subdirs;
  std::vector<std::pair<size_t, std::optional<BaseContent>>> files;
  for (const auto& name : names) {
    std::string full = join(path, name);
    if (excluded(full, name)) continue;
    struct stat st;
    int rc = dir != nullptr ? fstatat(dirfd(dir), name.c_str(), &st, AT_SYMLINK_NOFOLLOW)
                            : lstat(full.c_str(), &st);
    if (rc != 0) {
      if (errno == ENOENT) {
        warn(full, "vanished during the backup; not in the snapshot");
      } else {
        warn(full, errno_error("cannot stat", errno).message() + "; not in the snapshot");
      }
      continue;
    }
    while (old_at < old.size() && old[old_at].name < name) old_at++;
    auto it = old_at < old.size() && old[old_at].name == name ? old.begin() + static_cast<ptrdiff_t>(old_at)
                                                              : old.end();
    auto node = read_node(full, name, st, names_, it != old.end() ? &*it : nullptr);
    if (!node.ok()) {
      warn(full, node.error().message() + "; not in the snapshot");
      continue;
    }
    size_t i = d->nodes.size();
    if (node->type == Node::Type::kFile) {
      bytes_total_ += node->size;
      if (it != old.end() && same_file(*it, *node)) {
        bool all_present = true;
        for (const auto& c : it->content) {
          if (!session_.has_blob(BlobType::kData, c.id)) {
            all_present = false;
            break;
          }
        }
        if (all_present) {
          node->content = std::move(it->content);
          files_unchanged_++;
          files_done_++;
          d->nodes.push_back(std::move(*node));
          continue;
        }
      }
      const bool had = it != old.end() && it->type == Node::Type::kFile;
      (had ? files_changed_ : files_new_)++;
      if (node->size > 0) {
        std::optional<BaseContent> base;
        if (had && delta_ && delta_->applies(full)) {
          base = BaseContent{std::move(it->content), it->size, std::nullopt};
          if (delta_->listed && it->inode == node->inode && it->device == node->device) {
            base->listed = delta_->listed(full);
          }
        }
        files.emplace_back(i, std::move(base));
      }
    } else if (node->type == Node::Type::kDir) {
      bool cross = opts_.one_file_system && st.st_dev != root_dev;
      if (!cross) {
        std::optional<Id> sub;
        if (it != old.end() && it->type == Node::Type::kDir) sub = it->subtree;
        subdirs.emplace_back(i, sub);
      }
    }
    d->nodes.push_back(std::move(*node));
  }
  if (dir != nullptr) {
    if (!files.empty()) d->fd = ::fcntl(dirfd(dir), F_DUPFD_CLOEXEC, 0);  // -1: opened by path
    closedir(dir);
  }
  d->drop.assign(d->nodes.size(), 0);
  d->pending += static_cast<int>(files.size() + subdirs.size());
  // Empty subdirectories (crossing a mount with --one-file-system) still get an empty tree.
  for (size_t i = 0; i < d->nodes.size(); i++) {
    if (d->nodes[i].type == Node::Type::kDir &&
        std::none_of(subdirs.begin(), subdirs.end(), [&](auto& s) { return s.first == i; })) {
      auto empty = session_.save_tree(Tree{});
      if (!empty.ok()) {
        fail(empty.error());  // the counts below still run down, so every DirJob is freed
        break;
      }
      d->nodes[i].subtree = *empty;
    }
  }
  for (size_t k = 0; k < files.size(); k++) {
    auto& [i, base] = files[k];
    if (!queue_file({join(path, d->nodes[i].name), d, i, std::move(base)}, k + 1 == files.size())) {
      release(d);
    }
  }
  for (auto& [i, sub] : subdirs) {
    if (Status c = session_.cancel_token().check(); !c.ok()) fail(c.error());
    if (failed_) {
      release(d);
      continue;
    }
    Status st = walk_dir(join(path, d->nodes[i].name), d, i, sub, root_dev);
    if (!st.ok()) fail(st.error());
  }
  release(d);
  return ok_status();
}

Result<Id> Archiver::backup_paths() {
  const std::vector<std::string>& paths = paths_;
  // Parent snapshot for incremental/differential.
  std::optional<Id> old_root;
  if (opts_.strategy != "full") {
    HAVEN_ASSIGN(auto parent, find_parent(repo_, opts_.strategy, opts_.host, paths));
    if (parent) {
      parent_id_ = parent->first;
      old_root = parent->second.tree;
      if (opts_.page_delta) delta_ = opts_.page_delta(parent->second);
    }
  }
  std::map<std::string, Node> old;
  if (old_root) {
    auto t = repo_.load_tree(*old_root);
    if (t.ok()) {
      // Over object storage the parent's trees are loaded depth first ahead of the walker
      // (5% of the working share under a memory limit). Every subdirectory the parent had is
      // wanted: the walker asks for those its directories still have, as it reaches them.
      parent_trees_ = repo::TreeAhead::for_walk(repo_, session_.cancel_token(), 0.05);
      if (parent_trees_) parent_trees_->start(*t);
      for (auto& n : t->nodes) old.emplace(n.name, std::move(n));
    } else {
      // Like an unreadable subtree in walk_dir: compare against nothing, read everything.
      warn("/", "parent snapshot's tree cannot be read (" + t.error().message() +
                    "); reading every file");
      parent_id_.reset();
      delta_.reset();
    }
  }

  unsigned n = opts_.threads ? opts_.threads : std::max(2u, std::thread::hardware_concurrency());
  // Under a memory limit, workers get 70% of the working share: each holds a read buffer of
  // two chunks and one compressed chunk (measured: ~11.5 MiB a worker with 4 MiB chunks), and
  // the buffer it reads small files into in batches.
  n = repo_.memory_budget().threads(n, 3 * uint64_t{chunker_.params().max_size} + kBatchBytes, 0.7);
  std::vector<std::thread> workers;
  for (unsigned i = 0; i < n; i++) {
    workers.emplace_back([this] {
      CancelScope scope(session_.cancel_token());
      worker();
    });
  }

  auto* root = new DirJob;
  root->path = "/";
  std::vector<std::pair<size_t, std::string>> dirs;
  std::vector<size_t> files;
  std::vector<std::string> root_paths;
  Status walk_status;
  for (size_t k = 0; k < paths.size(); k++) {
    const std::string& p = paths[k];
    const std::string& name = names_of_paths_[k];  // distinct (repo::assign_root_names)
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) {
      walk_status = errno_error("backup path " + p, errno);
      break;
    }
    auto node = read_node(p, name, st, names_);
    if (!node.ok()) {
      walk_status = node.error();
      break;
    }
    size_t i = root->nodes.size();
    auto it = old.find(name);
    if (node->type == Node::Type::kFile) {
      bytes_total_ += node->size;
      bool reuse = it != old.end() && same_file(it->second, *node);
      for (const auto& c : reuse ? it->second.content : std::vector<repo::ContentRef>{}) {
        reuse = reuse && session_.has_blob(BlobType::kData, c.id);
      }
      if (reuse) {
        node->content = it->second.content;
        files_unchanged_++;
      } else {
        (it != old.end() ? files_changed_ : files_new_)++;
        if (node->size > 0) files.push_back(i);
      }
    } else if (node->type == Node::Type::kDir) {
      dirs.emplace_back(i, p);
    }
    root->nodes.push_back(std::move(*node));
    root_paths.push_back(p);
  }
  if (walk_status.ok()) {
    root->drop.assign(root->nodes.size(), 0);
    root->pending += static_cast<int>(files.size() + dirs.size());
    for (size_t k = 0; k < files.size(); k++) {
      if (!queue_file({root_paths[files[k]], root, files[k], std::nullopt}, k + 1 == files.size())) {
        release(root);
      }
    }
    for (auto& [i, p] : dirs) {
      std::optional<Id> sub;
      auto it = old.find(root->nodes[i].name);
      if (it != old.end() && it->second.type == Node::Type::kDir) sub = it->second.subtree;
      struct stat st;
      dev_t dev = lstat(p.c_str(), &st) == 0 ? st.st_dev : 0;
      Status s = walk_dir(p, root, i, sub, dev);
      if (!s.ok()) {
        fail(s.error());
        release(root);
        continue;
      }
    }
    release(root);
    parent_trees_.reset();  // the walk is over: trees loaded ahead and not taken go
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return root_done_ || fatal_.has_value(); });
  }
  parent_trees_.reset();
  {
    std::lock_guard<std::mutex> g(mu_);
    closing_ = true;
    queue_cv_.notify_all();
  }
  for (auto& t : workers) t.join();
  if (!walk_status.ok()) {
    if (!root_done_) delete root;
    return walk_status.error();
  }
  if (failed_) return *fatal_;
  if (!root_tree_) return Error(Error::Code::kInternal, "backup finished without a root tree");
  return *root_tree_;
}
Result<Id> Archiver::backup_stream() {
  const std::string& name = opts_.stdin_filename;
  ReadState rs;
  rs.buf.resize(2 * static_cast<size_t>(chunker_.params().max_size));
  int fd = 0;
  std::optional<Subprocess> child;
  CancelToken::Registration stop_child;
  if (!opts_.command.empty()) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return errno_error("pipe", errno);
    SpawnOptions so;
    so.argv = opts_.command;
    so.stdout_fd = fds[1];
    so.own_process_group = true;  // a cancel stops a shell's whole pipeline, which ends the stream
    auto spawned = Subprocess::spawn(so);
    ::close(fds[1]);
    if (!spawned.ok()) {
      ::close(fds[0]);
      return spawned.error().with_context("--stdin-from-command");
    }
    child.emplace(std::move(*spawned));
    fd = fds[0];
    // A cancelled backup stops the command, which ends the stream the workers are reading.
    const Subprocess* c = &*child;
    stop_child = session_.cancel_token().on_cancel([c] { c->send_signal(SIGTERM); });
  }
  Node node;
  node.name = name;
  node.type = Node::Type::kFile;
  node.mode = 0600;
  node.uid = geteuid();
  node.gid = getegid();
  node.user = names_.user(node.uid);
  node.group = names_.group(node.gid);
  node.mtime = node.atime = node.ctime = now();
  node.links = 1;
  uint64_t total = 0;
  Status st = chunk_stream(fd, rs, node.content, total, std::nullopt);
  stop_child = {};  // from here wait() stops the child itself; never signal a reaped pid
  if (child) {
    ::close(fd);
    HAVEN_ASSIGN(int status, child->wait(session_.cancel_token()));
    HAVEN_TRY(session_.cancel_token().check());
    if (status != 0) {
      return Error(Error::Code::kIo, "command '" + opts_.command[0] + "' " + describe_exit(status) +
                                         ": no snapshot was written");
    }
  }
  if (!st.ok()) return st.error().with_context("reading standard input");
  node.size = total;
  files_new_++;
  files_done_++;
  Tree t;
  t.nodes.push_back(std::move(node));
  return session_.save_tree(t);
}

Result<Summary> Archiver::run() {
  repo::Snapshot snap;
  snap.time = now();
  if (!opts_.from_stdin) {
    for (const auto& p : opts_.paths) {
      std::string c = clean(absolute(p));
      if (std::find(paths_.begin(), paths_.end(), c) == paths_.end()) paths_.push_back(c);
    }
    // Paths that share a last component ("/a/data", "/b/data") get distinct names, recorded
    // in the snapshot (docs/FORMAT.md §6).
    names_of_paths_ = repo::assign_root_names(paths_);
  }
  Result<Id> tree = opts_.from_stdin ? backup_stream() : backup_paths();
  if (!tree.ok()) return tree.error();
  progress(true);
  snap.tree = *tree;
  if (opts_.from_stdin) {
    snap.paths = {"/" + opts_.stdin_filename};
  } else {
    snap.paths = paths_;
    snap.names = names_of_paths_;
  }
  snap.hostname = opts_.host.empty() ? hostname() : opts_.host;
  snap.username = username();
  snap.tags = opts_.tags;
  snap.strategy = opts_.strategy;
  snap.parent = parent_id_;
  HAVEN_TRY(session_.flush());
  // What this backup added is what its session stored since the backup began: other
  // sessions writing into the repository at the same time never count here.
  const repo::Session::Stats stored = session_.stats();
  snap.end_time = now();
  snap.stats = {{"files_new", files_new_.load()},
                {"files_changed", files_changed_.load()},
                {"files_unchanged", files_unchanged_.load()},
                {"dirs", dirs_.load()},
                {"bytes_total", bytes_total_.load()},
                {"bytes_read", bytes_read_.load()},
                {"bytes_added", stored.stored_bytes - stored_before_.stored_bytes},
                {"blobs_added", stored.blobs - stored_before_.blobs},
                {"warnings", warnings_.load()},
                {"duration_ms", static_cast<uint64_t>((snap.end_time - snap.time) / 1000000)}};
  if (delta_) {
    snap.stats["pages_changed"] = pages_changed_.load();
    snap.stats["pages_reused"] = pages_reused_.load();
  }
  if (opts_.before_snapshot) HAVEN_TRY(opts_.before_snapshot(snap));
  // A cancellation that arrived after the last file (even during the final progress report)
  // still leaves no snapshot.
  HAVEN_TRY(session_.cancel_token().check());
  HAVEN_ASSIGN(Id id, session_.save_snapshot(snap));
  Summary s{id, snap, warnings_.load()};
  return s;
}

}  // namespace

Result<std::optional<std::pair<Id, repo::Snapshot>>> find_parent(
    repo::Repository& repo, const std::string& strategy, const std::string& host,
    const std::vector<std::string>& paths) {
  // A damaged snapshot cannot be a parent; it costs only re-reading unchanged files.
  std::vector<Error> damaged;
  HAVEN_ASSIGN(auto all, repo.list_snapshots(&damaged));
  std::vector<std::string> want = paths;
  std::sort(want.begin(), want.end());
  std::string h = host.empty() ? hostname() : host;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    std::vector<std::string> have = it->second.paths;
    std::sort(have.begin(), have.end());
    if (it->second.hostname != h || have != want) continue;
    if (strategy == "differential" && it->second.strategy != "full") continue;
    return std::optional<std::pair<Id, repo::Snapshot>>(*it);
  }
  return std::optional<std::pair<Id, repo::Snapshot>>();
}

Result<std::vector<std::string>> read_exclude_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return errno_error("exclude file " + path, errno);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    out.push_back(line);
  }
  return out;
}

Status validate(const Options& options) {
  if (options.strategy != "full" && options.strategy != "incremental" &&
      options.strategy != "differential") {
    return Error(Error::Code::kInvalidArgument,
                 "unknown strategy '" + options.strategy + "': use full, incremental or differential");
  }
  if (options.from_stdin) {
    if (!options.paths.empty()) {
      return Error(Error::Code::kInvalidArgument, "give either paths or --stdin, not both");
    }
    const std::string& n = options.stdin_filename;
    if (n.empty() || n == "." || n == ".." || n.find('/') != std::string::npos) {
      return Error(Error::Code::kInvalidArgument,
                   "--stdin-filename must be a plain file name (no '/')");
    }
  } else if (options.paths.empty()) {
    return Error(Error::Code::kInvalidArgument, "nothing to back up: give at least one path");
  }
  return ok_status();
}

namespace {

Result<Summary> run_validated(repo::Session& session, const Options& options, Reporter& events) {
  CancelScope scope(session.cancel_token());
  HAVEN_TRY(validate(options));
  Archiver a(session, options, events);
  return a.run();
}

}  // namespace

Result<Summary> run(repo::Session& session, const Options& options, const EventTarget& target) {
  Reporter events(target, OpKind::kBackup);
  nlohmann::json request = {{"paths", options.paths}, {"strategy", options.strategy},
                            {"tags", options.tags}};
  if (options.from_stdin) request["stdin_filename"] = options.stdin_filename;
  events.started(std::move(request));
  return events.finish(run_validated(session, options, events), [](const Summary& s) {
    return nlohmann::json{{"snapshot_id", repo::hex(s.snapshot_id)},
                          {"stats", nlohmann::json(s.snapshot.stats)},
                          {"warnings", s.warnings}};
  });
}

}  // namespace haven::backup

#include "repo/index.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include <nlohmann/json.hpp>

#include "repo/cbor.h"

namespace haven::repo {

using nlohmann::json;

namespace {

constexpr size_t kPageEntries = 4096 / sizeof(IndexEntry);  // 83 entries, 4,067 bytes
constexpr size_t kBloomBitsPerEntry = 10;
constexpr size_t kBloomWordsPerBlock = 8;  // 512 bits: one cache line
constexpr size_t kBloomProbes = 6;
constexpr size_t kMaxRuns = 8;
constexpr size_t kChunkEntries = 1024;  // sequential reads and writes of runs, ~49 KiB

int compare_key(const Id& a, BlobType at, const Id& b, BlobType bt) {
  int c = std::memcmp(a.data(), b.data(), a.size());
  if (c != 0) return c;
  return static_cast<int>(at) - static_cast<int>(bt);
}

bool less(const IndexEntry& a, const IndexEntry& b) {
  return compare_key(a.id, a.type, b.id, b.type) < 0;
}

uint64_t word_at(const Id& id, size_t offset) {
  uint64_t v;
  std::memcpy(&v, id.data() + offset, sizeof v);  // IDs are uniformly random already
  return v;
}

size_t bloom_blocks(size_t count) {
  return std::max<size_t>(1, (count * kBloomBitsPerEntry + 511) / 512);
}

// The table's slots use the ID's first 8 bytes (IdHash); the filter uses the next 16: bytes
// 8-15 choose the 512-bit block, bytes 16-23 its kBloomProbes bits. fn(word, mask) per bit;
// stops when fn returns false.
template <typename Fn>
bool for_each_bloom_bit(size_t words, const Id& id, Fn&& fn) {
  const size_t blocks = words / kBloomWordsPerBlock;
  const size_t block = static_cast<size_t>((unsigned __int128)word_at(id, 8) * blocks >> 64);
  uint64_t h = word_at(id, 16);
  for (size_t k = 0; k < kBloomProbes; k++, h >>= 9) {
    size_t bit = h & 511;
    if (!fn(block * kBloomWordsPerBlock + bit / 64, uint64_t{1} << (bit % 64))) return false;
  }
  return true;
}

void bloom_add(PageVector<uint64_t>& bloom, const Id& id) {
  for_each_bloom_bit(bloom.size(), id, [&](size_t w, uint64_t mask) {
    bloom[w] |= mask;
    return true;
  });
}

bool bloom_may_contain(const PageVector<uint64_t>& bloom, const Id& id) {
  if (bloom.empty()) return false;  // a run whose filter could not be rebuilt
  return for_each_bloom_bit(bloom.size(), id,
                            [&](size_t w, uint64_t mask) { return (bloom[w] & mask) != 0; });
}

}  // namespace

// The file runs live in: unlinked from the start, so it disappears with the process.
struct Index::SpillFile {
  int fd = -1;
  uint64_t end = 0;
  std::string dir;
  ~SpillFile() {
    if (fd >= 0) ::close(fd);
  }

  static Result<std::unique_ptr<SpillFile>> create(const std::string& dir) {
    const std::string what = "index spill file in " + dir;
    if (dir.empty()) {
      return Error(Error::Code::kInvalidArgument,
                   "index spill file: no directory given (set a cache directory)");
    }
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
      std::string tmpl = dir + "/haven-index-XXXXXX";
      fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
      if (fd >= 0) ::unlink(tmpl.c_str());
    }
    if (fd < 0) return errno_error(what + " (--cache-dir chooses another directory)", errno);
    auto f = std::make_unique<SpillFile>();
    f->fd = fd;
    f->dir = dir;
    return f;
  }

  Status write(const uint8_t* p, size_t n, uint64_t offset) const {
    while (n > 0) {
      ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return errno_error("index spill file in " + dir + ": write failed", errno);
      p += w;
      n -= static_cast<size_t>(w);
      offset += static_cast<uint64_t>(w);
    }
    return ok_status();
  }

  Status read(uint8_t* p, size_t n, uint64_t offset) const {
    while (n > 0) {
      ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return errno_error("index spill file in " + dir + ": read failed", errno);
      if (r == 0) {
        return Error(Error::Code::kIo, "index spill file in " + dir + ": shorter than written");
      }
      p += r;
      n -= static_cast<size_t>(r);
      offset += static_cast<uint64_t>(r);
    }
    return ok_status();
  }
};

struct Index::Failure {
  mutable std::mutex mu;
  std::optional<Error> error;
};

Index::Index() : Index(IndexOptions{}) {}

Index::Index(IndexOptions options)
    : options_(std::move(options)), failure_(std::make_unique<Failure>()) {
  fit_table();
}

void Index::fit_table() {
  if (options_.memory_bytes == 0) return;
  size_t runs = 0;
  for (const auto& r : runs_) {
    runs += r.bloom.capacity() * sizeof(uint64_t) + r.pages.capacity() * sizeof(PageKey);
  }
  const size_t left = options_.memory_bytes > runs ? options_.memory_bytes - runs : 0;
  // Entries plus slots at the table's fullest (35% after a doubling): about 60 bytes each.
  max_table_entries_ = std::max({kPageEntries, options_.memory_bytes / 4 / 60, left / 60});
}

Index::~Index() = default;
Index::Index(Index&&) noexcept = default;
Index& Index::operator=(Index&&) noexcept = default;

void Index::fail(Error error) const {
  std::lock_guard<std::mutex> g(failure_->mu);
  if (!failure_->error) failure_->error = std::move(error);
}

Status Index::status() const {
  std::lock_guard<std::mutex> g(failure_->mu);
  if (failure_->error) return *failure_->error;
  return ok_status();
}

// --- the in-memory table ---

size_t Index::probe(BlobType type, const Id& id) const {
  size_t mask = slots_.size() - 1;
  size_t i = IdHash{}(id) & mask;
  while (true) {
    uint32_t s = slots_[i];
    if (s == 0) return i;
    const IndexEntry& e = entry(s - 1);
    if (e.type == type && e.id == id) return i;
    i = (i + 1) & mask;
  }
}

void Index::grow() {
  size_t n = slots_.empty() ? 1024 : slots_.size() * 2;
  slots_.assign(n, 0);
  for (size_t k = 0; k < count_; k++) {
    size_t i = probe(entry(k).type, entry(k).id);
    slots_[i] = static_cast<uint32_t>(k + 1);
  }
}

std::optional<size_t> Index::table_find(BlobType type, const Id& id) const {
  if (slots_.empty()) return std::nullopt;
  uint32_t s = slots_[probe(type, id)];
  if (s == 0) return std::nullopt;
  return s - 1;
}

size_t Index::table_bytes() const {
  return blocks_.size() * kBlockSize * sizeof(IndexEntry) + slots_.capacity() * sizeof(uint32_t);
}

bool Index::table_full() const {
  if (max_table_entries_ == 0 || count_ < max_table_entries_) return false;
  // Once a spill file failed, stop trying: the entries stay in memory.
  std::lock_guard<std::mutex> g(failure_->mu);
  return !failure_->error;
}

void Index::add_pack(const PackRecord& pack) {
  uint32_t pack_no = begin_pack();
  for (const auto& b : pack.blobs) add_blob(pack_no, b);
  name_pack(pack_no, pack.id, pack.key_generation);
}

uint32_t Index::begin_pack() {
  packs_.push_back({Id{}, 0});
  return static_cast<uint32_t>(packs_.size() - 1);
}

void Index::name_pack(uint32_t pack_no, const Id& id, uint32_t key_generation) {
  packs_[pack_no] = {id, key_generation};
}

void Index::add_blob(uint32_t pack_no, const PackedBlob& b) {
  if (position(b.type, b.id)) return;  // duplicate: keep the first copy
  if (table_full()) spill();
  if ((count_ + 1) * 10 > slots_.size() * 7) grow();
  if ((count_ >> kBlockShift) >= blocks_.size()) {
    blocks_.push_back(make_page_array<IndexEntry>(kBlockSize));
  }
  entry(count_) = {b.id, pack_no, b.offset, b.length, b.raw_length, b.type};
  count_++;
  slots_[probe(b.type, b.id)] = static_cast<uint32_t>(count_);
}

// --- runs ---

void Index::spill() {
  if (count_ == 0) return;
  if (!file_) {
    auto f = SpillFile::create(options_.spill_dir);
    if (!f.ok()) return fail(f.error());
    file_ = std::move(*f);
  }
  PageVector<uint32_t> order(count_);
  for (size_t i = 0; i < count_; i++) order[i] = static_cast<uint32_t>(i);
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return less(entry(a), entry(b)); });
  Run run;
  run.offset = file_->end;
  run.count = count_;
  run.base = spilled_;
  run.bloom.assign(bloom_blocks(count_) * kBloomWordsPerBlock, 0);
  run.pages.reserve((count_ + kPageEntries - 1) / kPageEntries);
  PageVector<uint8_t> buf;
  buf.reserve(kChunkEntries * sizeof(IndexEntry));
  uint64_t at = run.offset;
  for (size_t k = 0; k < count_; k++) {
    const IndexEntry& e = entry(order[k]);
    add_to_filter(run, e, k);
    const auto* p = reinterpret_cast<const uint8_t*>(&e);
    buf.insert(buf.end(), p, p + sizeof e);
    if (buf.size() >= kChunkEntries * sizeof(IndexEntry) || k + 1 == count_) {
      if (Status s = file_->write(buf.data(), buf.size(), at); !s.ok()) return fail(s.error());
      at += buf.size();
      buf.clear();
    }
  }
  file_->end = at;
  spilled_ += count_;
  runs_.push_back(std::move(run));
  blocks_.clear();
  slots_ = PageVector<uint32_t>();  // freed (`= {}` would only clear it: its pages stay)
  count_ = 0;
  if (runs_.size() > kMaxRuns) compact();
  fit_table();
}

std::optional<size_t> Index::run_find(const Run& run, BlobType type, const Id& id,
                                      IndexEntry* out) const {
  // The last page whose first key is <= the key.
  auto it = std::upper_bound(run.pages.begin(), run.pages.end(), 0,
                             [&](int, const PageKey& k) {
                               return compare_key(id, type, k.id, k.type) < 0;
                             });
  if (it == run.pages.begin()) return std::nullopt;
  const size_t page = static_cast<size_t>(it - run.pages.begin()) - 1;
  const size_t first = page * kPageEntries;
  const size_t n = std::min(kPageEntries, run.count - first);
  IndexEntry entries[kPageEntries];
  Status s = file_->read(reinterpret_cast<uint8_t*>(entries), n * sizeof(IndexEntry),
                         run.offset + first * sizeof(IndexEntry));
  if (!s.ok()) {
    fail(s.error());
    return std::nullopt;
  }
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = compare_key(entries[mid].id, entries[mid].type, id, type);
    if (c == 0) {
      if (out) *out = entries[mid];
      return first + mid;
    }
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return std::nullopt;
}

void Index::add_to_filter(Run& run, const IndexEntry& e, size_t k) {
  if (k % kPageEntries == 0) run.pages.push_back({e.id, e.type});
  bloom_add(run.bloom, e.id);
}

Status Index::rebuild_filter(Run& run) const {
  run.bloom.assign(bloom_blocks(run.count) * kBloomWordsPerBlock, 0);
  run.pages.clear();
  run.pages.reserve((run.count + kPageEntries - 1) / kPageEntries);
  PageVector<IndexEntry> chunk;
  for (size_t done = 0; done < run.count;) {
    size_t n = std::min(kChunkEntries, run.count - done);
    chunk.resize(n);
    HAVEN_TRY(file_->read(reinterpret_cast<uint8_t*>(chunk.data()), n * sizeof(IndexEntry),
                          run.offset + done * sizeof(IndexEntry)));
    for (size_t i = 0; i < n; i++) add_to_filter(run, chunk[i], done + i);
    done += n;
  }
  return ok_status();
}

// A k-way merge of every run into `out` (from offset 0) as `merged`: each run is read in
// chunks; runs hold no key twice between them.
Status Index::merge_runs(const SpillFile& out, Run& merged) const {
  struct Cursor {
    const Run* run;
    size_t next = 0;  // entries of the run consumed
    PageVector<IndexEntry> chunk;
    size_t at = 0;
  };
  std::vector<Cursor> cursors;
  for (const auto& r : runs_) cursors.push_back({&r, 0, {}, 0});
  auto refill = [&](Cursor& c) -> Status {
    size_t n = std::min(kChunkEntries, c.run->count - c.next);
    c.chunk.resize(n);
    c.at = 0;
    if (n == 0) return ok_status();
    HAVEN_TRY(file_->read(reinterpret_cast<uint8_t*>(c.chunk.data()), n * sizeof(IndexEntry),
                          c.run->offset + c.next * sizeof(IndexEntry)));
    c.next += n;
    return ok_status();
  };
  auto greater = [&](const Cursor* a, const Cursor* b) { return less(b->chunk[b->at], a->chunk[a->at]); };
  std::vector<Cursor*> heap;
  for (auto& c : cursors) {
    HAVEN_TRY(refill(c));
    if (!c.chunk.empty()) heap.push_back(&c);
  }
  std::make_heap(heap.begin(), heap.end(), greater);
  merged.count = spilled_;
  merged.bloom.assign(bloom_blocks(spilled_) * kBloomWordsPerBlock, 0);
  merged.pages.reserve((spilled_ + kPageEntries - 1) / kPageEntries);
  PageVector<IndexEntry> buf;
  buf.reserve(kChunkEntries);
  uint64_t at = 0;
  size_t k = 0;
  auto flush = [&]() -> Status {
    HAVEN_TRY(out.write(reinterpret_cast<const uint8_t*>(buf.data()), buf.size() * sizeof(IndexEntry), at));
    at += buf.size() * sizeof(IndexEntry);
    buf.clear();
    return ok_status();
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), greater);
    Cursor* c = heap.back();
    const IndexEntry& e = c->chunk[c->at];
    add_to_filter(merged, e, k++);
    buf.push_back(e);
    if (buf.size() == kChunkEntries) HAVEN_TRY(flush());
    if (++c->at == c->chunk.size()) HAVEN_TRY(refill(*c));
    if (c->chunk.empty()) {
      heap.pop_back();
    } else {
      std::push_heap(heap.begin(), heap.end(), greater);
    }
  }
  HAVEN_TRY(flush());
  if (k != spilled_) return Error(Error::Code::kInternal, "index merge: entries lost");
  return ok_status();
}

void Index::compact() {
  if (runs_.size() < 2) return;
  auto f = SpillFile::create(options_.spill_dir);
  if (!f.ok()) return fail(f.error());
  // The merge reads the runs from disk only: their filters go first, so that the merged run's
  // are never held beside them. If the merge fails, they are read back from the runs.
  for (auto& r : runs_) {
    r.bloom = PageVector<uint64_t>();  // freed, not just cleared
    r.pages = PageVector<PageKey>();
  }
  Run merged;
  Status s = merge_runs(**f, merged);
  if (!s.ok()) {
    for (auto& r : runs_) {
      if (Status rs = rebuild_filter(r); !rs.ok()) fail(rs.error());  // its lookups miss
    }
    return fail(s.error());
  }
  (*f)->end = spilled_ * sizeof(IndexEntry);
  file_ = std::move(*f);
  runs_.clear();
  runs_.push_back(std::move(merged));
  fit_table();
}

// --- lookups ---

std::optional<BlobLocation> Index::find(BlobType type, const Id& id) const {
  auto located = [&](const IndexEntry& e) {
    const PackSlot& p = packs_[e.pack];
    return BlobLocation{p.id, p.key_generation, e.offset, e.length, e.raw_length};
  };
  if (auto i = table_find(type, id)) return located(entry(*i));
  for (const auto& run : runs_) {
    if (!bloom_may_contain(run.bloom, id)) continue;
    IndexEntry e;
    if (run_find(run, type, id, &e)) return located(e);
  }
  return std::nullopt;
}

std::optional<size_t> Index::position(BlobType type, const Id& id) const {
  if (auto i = table_find(type, id)) return spilled_ + *i;
  for (const auto& run : runs_) {
    if (!bloom_may_contain(run.bloom, id)) continue;
    if (auto i = run_find(run, type, id, nullptr)) return run.base + *i;
  }
  return std::nullopt;
}

IndexEntry Index::at(size_t position) const {
  if (position >= spilled_) return entry(position - spilled_);
  auto it = std::upper_bound(runs_.begin(), runs_.end(), position,
                             [](size_t p, const Run& r) { return p < r.base; });
  const Run& run = *(it - 1);
  IndexEntry e{};
  Status s = file_->read(reinterpret_cast<uint8_t*>(&e), sizeof e,
                         run.offset + (position - run.base) * sizeof(IndexEntry));
  if (!s.ok()) fail(s.error());
  return e;
}

void Index::for_each(const std::function<void(size_t, const IndexEntry&)>& fn) const {
  PageVector<IndexEntry> chunk;
  for (const auto& run : runs_) {
    for (size_t done = 0; done < run.count;) {
      size_t n = std::min(kChunkEntries, run.count - done);
      chunk.resize(n);
      Status s = file_->read(reinterpret_cast<uint8_t*>(chunk.data()), n * sizeof(IndexEntry),
                             run.offset + done * sizeof(IndexEntry));
      if (!s.ok()) return fail(s.error());
      for (size_t i = 0; i < n; i++) fn(run.base + done + i, chunk[i]);
      done += n;
    }
  }
  for (size_t i = 0; i < count_; i++) fn(spilled_ + i, entry(i));
}

size_t Index::memory_bytes() const {
  size_t runs = 0;
  for (const auto& r : runs_) {
    runs += r.bloom.capacity() * sizeof(uint64_t) + r.pages.capacity() * sizeof(PageKey);
  }
  return table_bytes() + runs + packs_.capacity() * sizeof(PackSlot);
}

// Written and read without a DOM (cbor::Writer, cbor::Reader): an index file names ~50,000
// blobs, and a json tree of them cost ~20 MB while it was built or parsed. The bytes are those
// json::to_cbor wrote for the same values (map keys in std::string order).
void write_packed_blob(cbor::Writer& w, const PackedBlob& b) {
  w.array(5);
  w.uint(static_cast<uint64_t>(b.type));
  w.bytes(ByteView(b.id.data(), b.id.size()));
  w.uint(b.offset);
  w.uint(b.length);
  w.uint(b.raw_length);
}

Bytes encode_index_file(const std::vector<PackRecord>& packs) {
  Bytes out;
  size_t blobs = 0;
  for (const auto& p : packs) blobs += p.blobs.size();
  out.reserve(16 + packs.size() * 64 + blobs * 52);
  cbor::Writer w(out);
  w.map(1);
  w.text("packs");
  w.array(packs.size());
  for (const auto& p : packs) {
    w.map(3);
    w.text("blobs");
    w.array(p.blobs.size());
    for (const auto& b : p.blobs) write_packed_blob(w, b);
    w.text("id");
    w.bytes(ByteView(p.id.data(), p.id.size()));
    w.text("key_generation");
    w.uint(p.key_generation);
  }
  return out;
}

namespace {
// Throws json::exception (as every cbor::Reader failure does) for anything malformed.
[[noreturn]] void malformed(const char* why) { throw json::type_error::create(302, why, nullptr); }

Id read_id(cbor::Reader& r) {
  ByteView b = r.bytes();
  Id id;
  if (b.size() != id.size()) malformed("id must be 32 bytes");
  std::memcpy(id.data(), b.data(), id.size());
  return id;
}

// A pack: a map whose keys may come in any order, each once; unknown keys are skipped, missing
// ones refused. Its blobs go to the sink one at a time, as they are read:
//   sink.begin() when the map starts, sink.blob(b) for each blob, sink.end(id, generation)
// once the map is complete.
template <typename Sink>
void read_pack(cbor::Reader& r, Sink& sink) {
  Id pack_id;
  uint32_t generation = 0;
  bool id = false, has_generation = false, blobs = false;
  sink.begin();
  size_t fields = r.map();
  for (size_t f = 0; f < fields; f++) {
    std::string_view key = r.text();
    if (key == "id") {
      if (id) malformed("a pack names its id twice");
      pack_id = read_id(r);
      id = true;
    } else if (key == "key_generation") {
      if (has_generation) malformed("a pack names its key_generation twice");
      generation = r.integer<uint32_t>();
      has_generation = true;
    } else if (key == "blobs") {
      if (blobs) malformed("a pack lists its blobs twice");
      size_t n = r.array();
      for (size_t i = 0; i < n; i++) {
        if (r.array() != 5) malformed("a blob is [type, id, offset, length, raw_length]");
        PackedBlob b;
        uint8_t t = r.integer<uint8_t>();
        if (t != 0 && t != 1) malformed("unknown blob type");
        b.type = static_cast<BlobType>(t);
        b.id = read_id(r);
        b.offset = r.integer<uint32_t>();
        b.length = r.integer<uint32_t>();
        b.raw_length = r.integer<uint32_t>();
        sink.blob(b);
      }
      blobs = true;
    } else {
      r.skip(1);
    }
  }
  if (!id || !has_generation || !blobs) malformed("a pack needs id, key_generation and blobs");
  sink.end(pack_id, generation);
}

// One pass over an index file, each pack to the sink (see read_pack). Throws json::exception.
template <typename Sink>
void read_index_file(ByteView body, Sink& sink) {
  bool packs = false;
  cbor::Reader r(body);
  size_t fields = r.map();
  for (size_t f = 0; f < fields; f++) {
    if (r.text() != "packs") {
      r.skip(1);
      continue;
    }
    if (packs) malformed("two lists of packs");
    size_t n = r.array();
    for (size_t i = 0; i < n; i++) read_pack(r, sink);
    packs = true;
  }
  if (!packs || !r.at_end()) malformed("no packs, or trailing bytes");
}

struct CheckOnly {  // the validation pass: nothing kept
  void begin() {}
  void blob(const PackedBlob&) {}
  void end(const Id&, uint32_t) {}
};

struct IntoRecords {  // each pack as a PackRecord, to a callback
  const std::function<void(const PackRecord&)>& fn;
  PackRecord p;
  void begin() { p.blobs.clear(); }
  void blob(const PackedBlob& b) { p.blobs.push_back(b); }
  void end(const Id& id, uint32_t generation) {
    p.id = id;
    p.key_generation = generation;
    fn(p);
  }
};

struct IntoIndex {  // straight into an index
  Index& index;
  uint32_t pack_no = 0;
  void begin() { pack_no = index.begin_pack(); }
  void blob(const PackedBlob& b) { index.add_blob(pack_no, b); }
  void end(const Id& id, uint32_t generation) { index.name_pack(pack_no, id, generation); }
};

// All or nothing: a validation pass first, so a malformed file hands over nothing.
template <typename Sink>
Status decode_into(ByteView body, const std::string& what, Sink& sink) {
  try {
    CheckOnly check;
    read_index_file(body, check);
    read_index_file(body, sink);
  } catch (const json::exception&) {
    return Error(Error::Code::kCorrupt, what + ": malformed index");
  }
  return ok_status();
}
}  // namespace

Status decode_index_file(ByteView body, const std::string& what,
                         const std::function<void(const PackRecord&)>& fn) {
  IntoRecords sink{fn, {}};
  return decode_into(body, what, sink);
}

Status decode_index_file(ByteView body, const std::string& what, Index& index) {
  IntoIndex sink{index};
  return decode_into(body, what, sink);
}

Result<std::vector<PackRecord>> decode_index_file(ByteView body, const std::string& what) {
  std::vector<PackRecord> out;
  HAVEN_TRY(decode_index_file(body, what, [&](const PackRecord& p) { out.push_back(p); }));
  return out;
}

}  // namespace haven::repo

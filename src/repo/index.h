// repo/index.h — where every blob lives: blob ID -> (pack, offset, length), and the index files
// that persist it (docs/FORMAT.md §5).
//
// Memory: new entries go into an in-memory table: one 49-byte packed Entry per blob in blocks of
// 4,096 (growth never copies), plus a 4-byte slot of an open-addressing table kept between 35%
// and 70% full: 55 to 61 bytes per blob. With IndexOptions::memory_bytes set, the table is
// bounded: when it is full its entries are sorted and written as a *run* to an unlinked file in
// IndexOptions::spill_dir, and the table starts empty again. A run stays on disk (49 bytes per
// blob) and costs memory only for a blocked Bloom filter (10 bits per blob, ~1% false
// positives) and the first key of each 4 KiB page (33 bytes per 83 blobs): ~1.65 bytes per
// blob, 1.6 MiB per million, taken out of the table's share: the table holds what memory_bytes
// leaves beside the runs (at least a quarter of it), so the index as a whole stays within
// memory_bytes up to ~2.5 million blobs a MiB of it. A lookup probes the table, then each run whose filter admits the
// key: one 4 KiB pread (the page cache keeps a hot run in memory, outside the process). Runs
// are merged into one when there are more than 8 and at compact().
//
// A spill file that cannot be written leaves the entries in memory (over budget, nothing lost);
// a run that cannot be read makes its lookups miss. Either is kept as status().
//
// Positions: 0 <= position < blob_count(), dense, stable as long as no pack is added and
// compact() is not called (a spill or merge renumbers).
//
// Thread-safety: const methods may run concurrently; add_pack() and compact() exclude everything
// else (Repository guards its Index with a shared mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "repo/ids.h"
#include "util/bytes.h"
#include "util/error.h"
#include "util/pages.h"

namespace haven::repo {

#pragma pack(push, 1)
struct IndexEntry {
  Id id;
  uint32_t pack;        // position in the pack table
  uint32_t offset;      // of the sealed record inside the pack
  uint32_t length;      // sealed record length (mode byte + payload + 16-byte tag)
  uint32_t raw_length;  // plaintext blob length
  BlobType type;
};
#pragma pack(pop)
static_assert(sizeof(IndexEntry) == 49);

struct BlobLocation {
  Id pack_id;
  uint32_t key_generation;
  uint32_t offset;
  uint32_t length;
  uint32_t raw_length;
};

// A blob as recorded in an index file or a pack trailer.
struct PackedBlob {
  BlobType type;
  Id id;
  uint32_t offset;
  uint32_t length;
  uint32_t raw_length;
};

struct PackRecord {
  Id id;
  uint32_t key_generation = 0;
  std::vector<PackedBlob> blobs;
};

// The bound the CLI and the server give the index by default. It keeps memory flat as a
// repository grows (~2 MiB up to ~5 million blobs, ~1.65 bytes per blob beyond). About 35,000
// blobs stay in memory, the rest on disk: the table fills this bound in any backup's first
// ~35,000 blobs, so a backup's peak is the same for 50,000 files as for a million (at 4 MiB it
// grew 15-16% between them). The cost is a 4 KiB read from the page cache per lookup of a blob
// on disk: ~0.03 s more for an unchanged re-backup of 60,000 small files, ~0.07 s for their
// check (session 29).
inline constexpr size_t kDefaultIndexMemory = size_t{2} << 20;

struct IndexOptions {
  // Bytes the in-memory table may use (entries and slots); 0: no bound, nothing spills.
  size_t memory_bytes = 0;
  // Directory for the spill file (created unlinked, so nothing is left behind). Required when
  // memory_bytes is set.
  std::string spill_dir;
};

class Index {
 public:
  Index();
  explicit Index(IndexOptions options);
  ~Index();
  Index(Index&&) noexcept;
  Index& operator=(Index&&) noexcept;

  // Adds all blobs of a pack. A blob already present keeps its first location.
  void add_pack(const PackRecord& pack);
  // The same a blob at a time, so an index file is read without holding a pack's list of blobs
  // (a pack of small files lists ~13,000: 0.6 MB): begin_pack() reserves the pack's number,
  // add_blob() adds each blob, name_pack() sets the pack's ID (zero until then).
  uint32_t begin_pack();
  void add_blob(uint32_t pack_no, const PackedBlob& b);
  void name_pack(uint32_t pack_no, const Id& id, uint32_t key_generation);
  // Merges the runs on disk into one (lookups then probe one filter). Renumbers positions.
  void compact();

  std::optional<BlobLocation> find(BlobType type, const Id& id) const;
  bool contains(BlobType type, const Id& id) const { return find(type, id).has_value(); }
  // Position of a blob's entry: lets maintenance keep one bit per blob (check's and prune's
  // "seen" and "used" sets) instead of a set of IDs.
  std::optional<size_t> position(BlobType type, const Id& id) const;
  // The entry at a position (a read from the spill file if it is in a run).
  IndexEntry at(size_t position) const;
  // Calls fn(position, entry) for every entry, in position order (runs are read sequentially).
  void for_each(const std::function<void(size_t, const IndexEntry&)>& fn) const;

  const Id& pack_id(uint32_t pack_no) const { return packs_[pack_no].id; }
  uint32_t pack_key_generation(uint32_t pack_no) const { return packs_[pack_no].key_generation; }
  size_t blob_count() const { return spilled_ + count_; }
  size_t pack_count() const { return packs_.size(); }
  size_t memory_bytes() const;
  size_t spilled_count() const { return spilled_; }
  size_t run_count() const { return runs_.size(); }
  // OK, or the first failure of the spill file (see above).
  Status status() const;

 private:
  struct PackSlot {
    Id id;
    uint32_t key_generation;
  };
  struct PageKey {  // the first key of a 4 KiB page of a run
    Id id;
    BlobType type;
  };
  struct Run {
    uint64_t offset = 0;  // in the spill file
    size_t count = 0;
    size_t base = 0;               // position of its first entry
    PageVector<uint64_t> bloom;   // 512-bit blocks
    PageVector<PageKey> pages;
  };
  struct SpillFile;
  struct Failure;

  // The in-memory table.
  size_t probe(BlobType type, const Id& id) const;  // slot index: match or empty
  void grow();
  std::optional<size_t> table_find(BlobType type, const Id& id) const;  // table position
  static constexpr size_t kBlockShift = 12;
  static constexpr size_t kBlockSize = size_t{1} << kBlockShift;
  IndexEntry& entry(size_t i) { return blocks_[i >> kBlockShift][i & (kBlockSize - 1)]; }
  const IndexEntry& entry(size_t i) const { return blocks_[i >> kBlockShift][i & (kBlockSize - 1)]; }
  size_t table_bytes() const;

  // Runs.
  bool table_full() const;
  void spill();
  // Sizes the table to what memory_bytes leaves beside the runs' filters and page keys.
  void fit_table();
  // Looks a key up in one run: its index in the run, the entry in *out.
  std::optional<size_t> run_find(const Run& run, BlobType type, const Id& id,
                                 IndexEntry* out) const;
  static void add_to_filter(Run& run, const IndexEntry& e, size_t k);  // k: index in the run
  Status rebuild_filter(Run& run) const;
  Status merge_runs(const SpillFile& out, Run& merged) const;
  void fail(Error error) const;

  IndexOptions options_;
  size_t max_table_entries_ = 0;  // 0: no bound

  // Table and filters are freed and rebuilt at every spill and merge: their memory goes back to
  // the system when freed (util/pages.h), so a merge's filters do not come on top of the
  // emptied table's.
  std::vector<PageArray<IndexEntry>> blocks_;
  size_t count_ = 0;             // entries in the table
  PageVector<uint32_t> slots_;  // 0 = empty, else table index + 1

  std::unique_ptr<SpillFile> file_;
  std::vector<Run> runs_;  // by position: runs_[k].base == sum of the counts before it
  size_t spilled_ = 0;     // entries in runs; the table's positions start here

  std::vector<PackSlot> packs_;
  std::unique_ptr<Failure> failure_;
};

namespace cbor {
class Writer;
}
// One blob as index files and pack trailers list it: [type, id, offset, length, raw_length].
void write_packed_blob(cbor::Writer& w, const PackedBlob& b);

// Index file body (before sealing): CBOR, see docs/FORMAT.md §5.
Bytes encode_index_file(const std::vector<PackRecord>& packs);
Result<std::vector<PackRecord>> decode_index_file(ByteView body, const std::string& what);
// The same, handing each pack to `fn` as it is decoded (no list of them is held); a malformed
// file hands over none.
Status decode_index_file(ByteView body, const std::string& what,
                         const std::function<void(const PackRecord&)>& fn);
// The same, straight into `index` a blob at a time (no pack's list of blobs is held); a
// malformed file adds nothing.
Status decode_index_file(ByteView body, const std::string& what, Index& index);

}  // namespace haven::repo

// repo/index.h — where every blob lives: blob ID -> (pack, offset, length), held in memory
// compactly, and the index files that persist it (docs/FORMAT.md §5).
//
// Memory: each blob costs one 49-byte packed Entry, kept in fixed blocks of 65,536 entries
// (so growth never copies or doubles: at most one partly used block, 3 MiB), plus one 4-byte
// slot of an open-addressing table kept between 35% and 70% full (5.7 to 11.4 bytes per blob).
// In all: 55 to 61 bytes per blob, about 58 MiB per million blobs (1 TiB of data at the default
// 1 MiB chunks). Packs cost 36 bytes each.
//
// Thread-safety: none; Repository guards its Index with a mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "repo/ids.h"
#include "util/bytes.h"
#include "util/error.h"

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

class Index {
 public:
  // Adds all blobs of a pack. A blob already present keeps its first location.
  void add_pack(const PackRecord& pack);
  std::optional<BlobLocation> find(BlobType type, const Id& id) const;
  bool contains(BlobType type, const Id& id) const { return find(type, id).has_value(); }
  // Position of a blob's entry, 0 <= position < blob_count(): lets maintenance keep one bit
  // per blob (check's and prune's "seen" and "used" sets) instead of a set of IDs.
  std::optional<size_t> position(BlobType type, const Id& id) const;
  const IndexEntry& at(size_t position) const { return entry(position); }
  const Id& pack_id(uint32_t pack_no) const { return packs_[pack_no].id; }
  uint32_t pack_key_generation(uint32_t pack_no) const { return packs_[pack_no].key_generation; }
  size_t blob_count() const { return count_; }
  size_t pack_count() const { return packs_.size(); }
  size_t memory_bytes() const;
  // Calls fn for every entry (pack id resolved).
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (size_t i = 0; i < count_; i++) {
      const IndexEntry& e = entry(i);
      fn(e, packs_[e.pack].id);
    }
  }

 private:
  struct PackSlot {
    Id id;
    uint32_t key_generation;
  };
  size_t probe(BlobType type, const Id& id) const;  // slot index: match or empty
  void grow();

  static constexpr size_t kBlockShift = 16;
  static constexpr size_t kBlockSize = size_t{1} << kBlockShift;
  IndexEntry& entry(size_t i) { return blocks_[i >> kBlockShift][i & (kBlockSize - 1)]; }
  const IndexEntry& entry(size_t i) const { return blocks_[i >> kBlockShift][i & (kBlockSize - 1)]; }

  std::vector<std::unique_ptr<IndexEntry[]>> blocks_;
  size_t count_ = 0;
  std::vector<uint32_t> slots_;  // 0 = empty, else entry index + 1
  std::vector<PackSlot> packs_;
};

// Index file body (before sealing): CBOR, see docs/FORMAT.md §5.
Bytes encode_index_file(const std::vector<PackRecord>& packs);
Result<std::vector<PackRecord>> decode_index_file(ByteView body, const std::string& what);

}  // namespace haven::repo

// repo/blob_set.h — a set of blob keys (type and ID) in one flat table: what a pack writer has
// accepted and the shared index does not have yet.
//
// One open-addressing table of 33-byte slots (the ID and the type plus one; 0 = empty), linear
// probing from the ID's first bytes (IDs are uniformly random), at most 3/4 full, doubled when
// it would be fuller; an erase shifts the slots after it back (no tombstones, so a set whose
// members come and go keeps its probes short). About 44-88 bytes a member, in pages of its own
// (util/pages.h): no allocation per member, so members that come and go by the tens of
// thousands leave no holes in malloc's arenas (a node-based set took ~72 bytes a member from
// them and was one of a backup's three copies of every blob of an uploaded pack).
//
// Not thread-safe: the owner locks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "repo/ids.h"
#include "util/pages.h"

namespace haven::repo {

class BlobSet {
 public:
  bool contains(BlobType type, const Id& id) const;
  // False if the blob was a member already.
  bool insert(BlobType type, const Id& id);
  // False if the blob was not a member.
  bool erase(BlobType type, const Id& id);
  size_t size() const { return size_; }
  // Bytes of the table (its capacity, not its members).
  size_t memory_bytes() const { return capacity_ * sizeof(Slot); }

 private:
#pragma pack(push, 1)
  struct Slot {
    Id id;
    uint8_t tag;  // BlobType + 1; 0: empty
  };
#pragma pack(pop)
  static_assert(sizeof(Slot) == 33);

  size_t home(const Id& id) const { return IdHash{}(id) & (capacity_ - 1); }
  // The slot holding the key, or the empty slot where it would go.
  size_t probe(uint8_t tag, const Id& id) const;
  void rehash(size_t capacity);

  PageArray<Slot> slots_;
  size_t capacity_ = 0;  // a power of two, or 0
  size_t size_ = 0;
};

}  // namespace haven::repo

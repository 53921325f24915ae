#include "repo/blob_set.h"

#include <cstring>
#include <utility>

namespace haven::repo {

namespace {
uint8_t tag_of(BlobType type) { return static_cast<uint8_t>(static_cast<uint8_t>(type) + 1); }
}  // namespace

size_t BlobSet::probe(uint8_t tag, const Id& id) const {
  const size_t mask = capacity_ - 1;
  for (size_t i = home(id);; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.tag == 0 || (s.tag == tag && s.id == id)) return i;
  }
}

bool BlobSet::contains(BlobType type, const Id& id) const {
  if (size_ == 0) return false;
  return slots_[probe(tag_of(type), id)].tag != 0;
}

bool BlobSet::insert(BlobType type, const Id& id) {
  if ((size_ + 1) * 4 > capacity_ * 3) rehash(capacity_ == 0 ? 1024 : capacity_ * 2);
  const uint8_t tag = tag_of(type);
  Slot& s = slots_[probe(tag, id)];
  if (s.tag != 0) return false;
  s.id = id;
  s.tag = tag;
  size_++;
  return true;
}

bool BlobSet::erase(BlobType type, const Id& id) {
  if (size_ == 0) return false;
  const size_t mask = capacity_ - 1;
  size_t hole = probe(tag_of(type), id);
  if (slots_[hole].tag == 0) return false;
  // Backward shift: each later slot of the cluster moves into the hole unless its home lies
  // cyclically in (hole, j] (moving it would put it before its home, where a probe never looks);
  // a moved slot leaves the next hole.
  for (size_t j = (hole + 1) & mask; slots_[j].tag != 0; j = (j + 1) & mask) {
    const size_t h = home(slots_[j].id);
    const bool home_after_hole = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
    if (home_after_hole) continue;
    slots_[hole] = slots_[j];
    hole = j;
  }
  slots_[hole].tag = 0;
  size_--;
  return true;
}

void BlobSet::rehash(size_t capacity) {
  PageArray<Slot> old = std::move(slots_);
  const size_t old_capacity = capacity_;
  slots_ = make_page_array<Slot>(capacity);
  std::memset(slots_.get(), 0, capacity * sizeof(Slot));
  capacity_ = capacity;
  for (size_t i = 0; i < old_capacity; i++) {
    const Slot& s = old[i];
    if (s.tag == 0) continue;
    size_t j = home(s.id);
    while (slots_[j].tag != 0) j = (j + 1) & (capacity_ - 1);
    slots_[j] = s;
  }
}

}  // namespace haven::repo

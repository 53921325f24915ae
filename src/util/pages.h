// util/pages.h — memory that goes back to the system when it is freed.
//
// A structure that frees and reallocates large pieces in phases (the index's table, emptied at
// every spill, then the filters a merge of its runs builds) leaves the freed pieces resident
// when they come from malloc's arenas (everything under the process's mapping threshold: the
// CLI sets 64 KiB, main.cc, but glibc's default rises with every larger block freed, up to 32
// MiB, and a library does not set process state): they stay as holes between other
// allocations, so the process's footprint becomes the sum of its phases instead of the largest
// of them (a re-backup of 1,000,000 files peaked 0.7 MiB higher while its index loaded).
// PageAllocator gives every allocation of kMapMin bytes or more pages of its own (mmap) and
// unmaps them when freed; smaller ones come from operator new as usual.
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

namespace haven {

inline constexpr size_t kMapMin = 64u << 10;

// Bytes PageAllocator has mapped and not unmapped, in the whole process, and the most since
// the last reset: lets a test see what a phase holds at once, which a structure's own
// accounting (its capacity after the phase) does not show.
namespace detail {
inline std::atomic<size_t> pages_mapped{0};
inline std::atomic<size_t> pages_mapped_peak{0};
inline std::atomic<size_t> mappings_made{0};
inline void count_mapped(size_t bytes) {
  mappings_made.fetch_add(1, std::memory_order_relaxed);
  const size_t now = pages_mapped.fetch_add(bytes) + bytes;
  size_t peak = pages_mapped_peak.load();
  while (now > peak && !pages_mapped_peak.compare_exchange_weak(peak, now)) {
  }
}
}  // namespace detail
inline size_t pages_mapped() { return detail::pages_mapped.load(); }
inline size_t pages_mapped_peak() { return detail::pages_mapped_peak.load(); }
// How many mappings were made (each a system call, page faults afresh, and an unmapping that
// stalls other threads' page faults): a buffer that grows step by step shows here.
inline size_t mappings_made() { return detail::mappings_made.load(); }
inline void reset_pages_mapped_peak() { detail::pages_mapped_peak = detail::pages_mapped.load(); }

template <typename T>
class PageAllocator {
 public:
  using value_type = T;

  PageAllocator() noexcept = default;
  template <typename U>
  PageAllocator(const PageAllocator<U>&) noexcept {}  // NOLINT: converting, as allocators are

  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_array_new_length();
    const size_t bytes = n * sizeof(T);
    if (bytes < kMapMin) return static_cast<T*>(::operator new(bytes));
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    detail::count_mapped(bytes);
    return static_cast<T*>(p);
  }

  void deallocate(T* p, size_t n) noexcept {
    const size_t bytes = n * sizeof(T);
    if (bytes < kMapMin) {
      ::operator delete(p);
    } else {
      ::munmap(p, bytes);
      detail::pages_mapped.fetch_sub(bytes);
    }
  }

  friend bool operator==(const PageAllocator&, const PageAllocator&) noexcept { return true; }
};

template <typename T>
using PageVector = std::vector<T, PageAllocator<T>>;

// A fixed array of n uninitialised elements (T must need no construction) from PageAllocator.
template <typename T>
struct PageArrayDelete {
  size_t n = 0;
  void operator()(T* p) const noexcept { PageAllocator<T>().deallocate(p, n); }
};
template <typename T>
using PageArray = std::unique_ptr<T[], PageArrayDelete<T>>;

template <typename T>
PageArray<T> make_page_array(size_t n) {
  static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>);
  return PageArray<T>(PageAllocator<T>().allocate(n), PageArrayDelete<T>{n});
}

// Scratch memory for a buffer filled anew at every use, of at least n bytes; `capacity` gets
// its usable size. From 8 MiB on (a WAL segment's record: 16 MiB and its compression bound) it
// is whole 2 MiB pages aligned to them, those within n marked MADV_HUGEPAGE, so that a kernel
// whose transparent huge pages are on for madvise (Debian's default) or always backs them with
// huge pages: writing a 4 MiB compressed segment into it then takes two page faults instead of
// a thousand (30 WAL pushes, one process each: 68,000 faults -> 23,000, ~8-10% less time).
// Smaller ones are make_page_array's.
inline constexpr size_t kHugePage = 2u << 20;
inline PageArray<uint8_t> make_scratch_buffer(size_t n, size_t& capacity) {
  if (n < 4 * kHugePage) {
    PageArray<uint8_t> small = make_page_array<uint8_t>(n);
    capacity = n;
    return small;
  }
  const size_t bytes = (n + kHugePage - 1) / kHugePage * kHugePage;
  // Mapped one huge page larger, then trimmed to the aligned range inside.
  void* m = ::mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t at = reinterpret_cast<uintptr_t>(m);
  const uintptr_t start = (at + kHugePage - 1) & ~uintptr_t{kHugePage - 1};
  if (start > at) ::munmap(m, start - at);
  if (at + kHugePage > start) ::munmap(reinterpret_cast<void*>(start + bytes), at + kHugePage - start);
  // Only the whole huge pages within n: a last one only partly used would be resident whole.
  (void)::madvise(reinterpret_cast<void*>(start), n / kHugePage * kHugePage, MADV_HUGEPAGE);  // a hint
  detail::count_mapped(bytes);
  capacity = bytes;
  return PageArray<uint8_t>(reinterpret_cast<uint8_t*>(start), PageArrayDelete<uint8_t>{bytes});
}

}  // namespace haven

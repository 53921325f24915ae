// util/pages.h: large pieces go back to the system when freed (the process's resident memory
// drops), small ones come from the heap, and containers work as with std::allocator.
#include "util/pages.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace haven {
namespace {

// Resident anonymous memory of this process, in KiB (/proc/self/status).
long rss_anon_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::stol(line.substr(8));
  }
  return -1;
}

TEST(PagesTest, FreedLargePiecesLeaveTheResidentSet) {
  // 160 pieces of 200 KiB, each written through (as an index table's blocks are), with a small
  // allocation kept after each: from the heap, the freed pieces would stay resident as holes
  // between those. The threshold below which malloc serves a piece from its arenas is one
  // glibc's default reaches after a larger block is freed (the CLI sets 64 KiB, main.cc; a
  // process embedding the engine may not).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  std::vector<PageArray<uint8_t>> blocks;
  std::vector<std::unique_ptr<char[]>> kept;
  for (int i = 0; i < 160; i++) {
    blocks.push_back(make_page_array<uint8_t>(200 << 10));
    std::memset(blocks.back().get(), 0x5a, 200 << 10);
    kept.push_back(std::make_unique<char[]>(32 << 10));
  }
  const long full = rss_anon_kib();
  ASSERT_GT(full, 0);
  blocks.clear();
  const long after = rss_anon_kib();
  EXPECT_LT(after, full - 28 * 1024) << "resident anon " << full << " KiB -> " << after << " KiB";
}

TEST(PagesTest, VectorsGrowCopyAndCompareAsUsual) {
  PageVector<uint64_t> v;
  for (uint64_t i = 0; i < 100000; i++) v.push_back(i * 3);  // crosses kMapMin while growing
  ASSERT_EQ(v.size(), 100000u);
  EXPECT_GE(v.capacity() * sizeof(uint64_t), kMapMin);
  PageVector<uint64_t> copy = v;
  EXPECT_EQ(copy, v);
  EXPECT_EQ(copy[99999], 299997u);
  PageVector<uint64_t> small(8, 7);  // below kMapMin: from the heap
  EXPECT_EQ(small[7], 7u);
  v = {};
  EXPECT_TRUE(v.empty());
}

// The VmFlags line of the /proc/self/smaps entry whose range holds `p` ("" if none).
std::string vm_flags_at(const void* p) {
  const auto at = reinterpret_cast<uintptr_t>(p);
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find('-') < line.find(' ')) {
      inside = lo <= at && at < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

TEST(PagesTest, LargeScratchIsWholeHugePagesAdvisedAndGoesBack) {
  const size_t before = pages_mapped();
  size_t cap = 0;
  {
    PageArray<uint8_t> big = make_scratch_buffer((9u << 20) + 1, cap);
    ASSERT_NE(big.get(), nullptr);
    EXPECT_EQ(cap, 10u << 20) << "rounded up to whole 2 MiB pages";
    EXPECT_EQ(reinterpret_cast<uintptr_t>(big.get()) % kHugePage, 0u) << "aligned to a huge page";
    EXPECT_EQ(pages_mapped(), before + cap);
    std::memset(big.get(), 0x5a, cap);  // all of it is ours to write
    EXPECT_EQ(big[cap - 1], 0x5a);
    // Advised for transparent huge pages ("hg"): whether the kernel grants them is its choice.
    const std::string flags = vm_flags_at(big.get() + cap / 2);
    ASSERT_FALSE(flags.empty());
    EXPECT_NE(flags.find(" hg"), std::string::npos) << flags;
    // Past the whole huge pages within the size asked for, small pages (a last huge page only
    // partly used would be resident whole).
    const std::string tail = vm_flags_at(big.get() + (9u << 20));
    ASSERT_FALSE(tail.empty());
    EXPECT_EQ(tail.find(" hg"), std::string::npos) << tail;
    // The trimmed head and tail are not ours: no mapping of this buffer reaches past its end.
    const std::string after_end = vm_flags_at(big.get() + cap);
    EXPECT_EQ(after_end.find(" hg"), std::string::npos) << after_end;
  }
  EXPECT_EQ(pages_mapped(), before) << "unmapped when released";

  PageArray<uint8_t> small = make_scratch_buffer(3u << 20, cap);
  EXPECT_EQ(cap, 3u << 20) << "below 8 MiB: the size asked for";
  const std::string flags = vm_flags_at(small.get() + (1u << 20));
  EXPECT_EQ(flags.find(" hg"), std::string::npos) << flags;
}

}  // namespace
}  // namespace haven

// util/pages.h: large pieces go back to the system when freed (the process's resident memory
// drops), small ones come from the heap, and containers work as with std::allocator.
#include "util/pages.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdint>
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

}  // namespace
}  // namespace haven

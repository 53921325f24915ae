#include "repo/memory.h"

#include <gtest/gtest.h>

namespace haven::repo {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST(MemoryBudgetTest, UnlimitedKeepsEveryDefault) {
  MemoryBudget b;
  EXPECT_FALSE(b.limited());
  EXPECT_EQ(b.index_bytes(), 0u);
  EXPECT_EQ(b.threads(4, 100 * kMiB), 4u);
  EXPECT_EQ(b.bytes(32 * kMiB, 0.1), 32 * kMiB);
}

// 48 MiB: 3 MiB of index, 20 MiB reserved, 25 MiB to share out.
TEST(MemoryBudgetTest, LimitIsSharedOutAndNeverBelowOneThread) {
  MemoryBudget b{48 * kMiB};
  EXPECT_EQ(b.index_bytes(), 3 * kMiB);
  EXPECT_EQ(b.work_bytes(), 25 * kMiB);
  EXPECT_EQ(b.threads(4, 4 * kMiB, 0.4), 2u);    // 10 MiB of 4 MiB readers
  EXPECT_EQ(b.threads(2, 24 * kMiB), 1u);        // one pack reader
  EXPECT_EQ(b.threads(2, 100 * kMiB), 1u);       // never none
  EXPECT_EQ(b.threads(2, 1 * kMiB), 2u);         // never more than wanted
  EXPECT_EQ(b.bytes(32 * kMiB, 0.4), 10 * kMiB);
  EXPECT_EQ(b.bytes(4 * kMiB, 0.4), 4 * kMiB);   // what is wanted, if less
  EXPECT_EQ(b.bytes(32 * kMiB, 0.01, kMiB), kMiB);  // the floor
  // An index bound set by hand is what the index takes.
  MemoryBudget hand{48 * kMiB, 12 * kMiB};
  EXPECT_EQ(hand.index_bytes(), 12 * kMiB);
  EXPECT_EQ(hand.work_bytes(), 16 * kMiB);
  // A bigger limit: more of everything.
  MemoryBudget big{1024 * kMiB};
  EXPECT_EQ(big.index_bytes(), 64 * kMiB);
  EXPECT_EQ(big.threads(2, 24 * kMiB), 2u);
}

}  // namespace
}  // namespace haven::repo

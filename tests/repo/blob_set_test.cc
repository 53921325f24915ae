// BlobSet: the flat set of blob keys a pack writer holds until an index file names them.

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "repo/blob_set.h"

namespace haven::repo {
namespace {

// An ID whose first 8 bytes (its hash) are `h`, the rest from `rest`.
Id id_with_hash(uint64_t h, uint64_t rest) {
  Id id{};
  std::memcpy(id.data(), &h, sizeof h);
  std::memcpy(id.data() + 8, &rest, sizeof rest);
  return id;
}

TEST(BlobSet, TypeAndIdAreTheKey) {
  BlobSet s;
  const Id a = id_with_hash(1, 1);
  EXPECT_FALSE(s.contains(BlobType::kData, a));
  EXPECT_TRUE(s.insert(BlobType::kData, a));
  EXPECT_FALSE(s.insert(BlobType::kData, a));
  EXPECT_TRUE(s.contains(BlobType::kData, a));
  EXPECT_FALSE(s.contains(BlobType::kTree, a));
  EXPECT_TRUE(s.insert(BlobType::kTree, a));
  EXPECT_EQ(s.size(), 2u);
  EXPECT_TRUE(s.erase(BlobType::kData, a));
  EXPECT_FALSE(s.erase(BlobType::kData, a));
  EXPECT_FALSE(s.contains(BlobType::kData, a));
  EXPECT_TRUE(s.contains(BlobType::kTree, a));
  EXPECT_EQ(s.size(), 1u);
}

// Members come and go in clusters that wrap around the table's end (every hash lands in its
// last 40 slots): after every step each key is found exactly when the reference set has it.
// Fails if an erase leaves a later key of its cluster unreachable, or moves one before its home.
TEST(BlobSet, ErasesInWrappingClustersKeepEveryOtherMemberReachable) {
  std::mt19937_64 rng(7);
  BlobSet s;
  std::set<std::pair<int, Id>> want;
  std::vector<std::pair<BlobType, Id>> universe;
  for (uint64_t i = 0; i < 600; i++) {
    // Homes 984..1023 of a 1024-slot table (the first capacity): the clusters wrap to 0.
    universe.emplace_back(i % 3 == 0 ? BlobType::kTree : BlobType::kData,
                          id_with_hash(984 + rng() % 40 + (rng() % 4) * 4096, i));
  }
  for (int step = 0; step < 20000; step++) {
    const auto& [type, id] = universe[rng() % universe.size()];
    const bool in = want.count({static_cast<int>(type), id}) > 0;
    if (rng() % 2 == 0) {
      EXPECT_EQ(s.insert(type, id), !in);
      want.insert({static_cast<int>(type), id});
    } else {
      EXPECT_EQ(s.erase(type, id), in);
      want.erase({static_cast<int>(type), id});
    }
    if (step % 97 == 0) {
      for (const auto& [t, i] : universe) {
        ASSERT_EQ(s.contains(t, i), want.count({static_cast<int>(t), i}) > 0) << "step " << step;
      }
    }
  }
  EXPECT_EQ(s.size(), want.size());
}

TEST(BlobSet, GrowsPastThreeQuartersAndKeepsItsMembers) {
  BlobSet s;
  std::mt19937_64 rng(11);
  std::vector<Id> ids;
  for (int i = 0; i < 5000; i++) {
    ids.push_back(id_with_hash(rng(), rng()));
    ASSERT_TRUE(s.insert(BlobType::kData, ids.back()));
  }
  for (const Id& id : ids) ASSERT_TRUE(s.contains(BlobType::kData, id));
  // 5,000 members: 8,192 slots of 33 bytes (3/4 of 4,096 is 3,072).
  EXPECT_EQ(s.memory_bytes(), 8192u * 33);
  for (size_t i = 0; i < ids.size(); i += 2) ASSERT_TRUE(s.erase(BlobType::kData, ids[i]));
  for (size_t i = 0; i < ids.size(); i++) ASSERT_EQ(s.contains(BlobType::kData, ids[i]), i % 2 == 1);
  EXPECT_EQ(s.size(), 2500u);
}

}  // namespace
}  // namespace haven::repo

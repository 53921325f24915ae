// What object stores answer, decoded: listing pages and error bodies of S3 and Azure, and the
// object names listed keys map to (the decoders fuzz/fuzz_s3_xml and fuzz/fuzz_azure_xml run).
#include <gtest/gtest.h>

#include "util/clock.h"

#include "storage/azure.h"
#include "storage/s3.h"

namespace haven::storage {
namespace {

// The S3 and Azure listings cut the prefix off every listed key with substr(), which threw
// std::out_of_range (an uncaught exception: the process died) for a key shorter than the prefix
// — a server or proxy that does not honour the prefix. Such keys now name no object.
TEST(ListingTest, KeyOutsideThePrefixNamesNoObject) {
  EXPECT_FALSE(object_name_of_key(ObjectType::kData, "pre/fix/", "pre"));
  EXPECT_FALSE(object_name_of_key(ObjectType::kSnapshot, "pre/fix/", ""));
  EXPECT_FALSE(object_name_of_key(ObjectType::kSnapshot, "pre/fix/", "other/snapshots/ab"));
  EXPECT_FALSE(object_name_of_key(ObjectType::kConfig, "pre/", "pre/configx"));
  EXPECT_FALSE(object_name_of_key(ObjectType::kData, "", "data/ab"));
  EXPECT_FALSE(object_name_of_key(ObjectType::kData, "", "data/xy/abcd"));  // wrong shard
  EXPECT_FALSE(object_name_of_key(ObjectType::kLock, "", "locks/.tmp-1"));
  EXPECT_FALSE(object_name_of_key(ObjectType::kLock, "", "locks/a/b"));
  EXPECT_FALSE(object_name_of_key(ObjectType::kLock, "", "locks/"));
  EXPECT_FALSE(object_name_of_key(ObjectType::kLock, "", "lockss/ab"));

  auto data = object_name_of_key(ObjectType::kData, "pre/", "pre/data/ab/abcd");
  ASSERT_TRUE(data);
  EXPECT_EQ(data->name, "abcd");
  auto config = object_name_of_key(ObjectType::kConfig, "", "config");
  ASSERT_TRUE(config);
  EXPECT_EQ(*config, (ObjectName{ObjectType::kConfig, "config"}));
  auto snap = object_name_of_key(ObjectType::kSnapshot, "p/", "p/snapshots/0a1b");
  ASSERT_TRUE(snap);
  EXPECT_EQ(object_path(*snap), "snapshots/0a1b");
}

TEST(ListingTest, S3ListPage) {
  auto page = parse_list_objects_v2(
      "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t&amp;1"
      "</NextContinuationToken><Contents><Key>a&lt;b</Key><Size>12</Size></Contents>"
      "<Contents><Key>c</Key></Contents></ListBucketResult>");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[0].key, "a<b");
  EXPECT_EQ(page->entries[0].size, 12u);
  EXPECT_EQ(page->entries[1].size, 0u);
  EXPECT_EQ(page->next_token, "t&1");
  auto bad = parse_list_objects_v2("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Error::Code::kIo);
  EXPECT_FALSE(parse_list_objects_v2("").ok());
}

TEST(ListingTest, AzureListPage) {
  auto page = parse_list_blobs(
      "<EnumerationResults><Blobs><Blob><Name>x&amp;y</Name><Properties><Content-Length>5"
      "</Content-Length></Properties></Blob></Blobs><NextMarker>m</NextMarker>"
      "</EnumerationResults>");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].name, "x&y");
  EXPECT_EQ(page->entries[0].size, 5u);
  EXPECT_EQ(page->next_marker, "m");
}

// Found by fuzz_s3_xml: a LastModified far in the future overflowed the nanosecond count.
// Times TimeNs cannot hold are unknown (0), not undefined behaviour.
TEST(ListingTest, ModificationTimeOutsideTheRepresentableRangeIsUnknown) {
  auto page = parse_list_objects_v2(
      "<ListBucketResult><Contents><Key>k</Key><LastModified>4052-11-22T00:00:00.000Z"
      "</LastModified><Size>1</Size></Contents><Contents><Key>j</Key><LastModified>"
      "2026-12-02T01:02:03.500Z</LastModified></Contents></ListBucketResult>");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[0].modified, 0);
  EXPECT_EQ(page->entries[1].modified, *parse_time("2026-12-02T01:02:03.5Z"));
  EXPECT_FALSE(parse_time("4052-11-22T00:00:00Z").has_value());
  EXPECT_FALSE(parse_time("1600-01-01T00:00:00Z").has_value());
  EXPECT_TRUE(parse_time("2262-01-01T00:00:00Z").has_value());
}

}  // namespace
}  // namespace haven::storage

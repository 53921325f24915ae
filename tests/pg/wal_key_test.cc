// The WAL key file's text against inputs the fuzz target fuzz/fuzz_wal_key found crashing.
#include <gtest/gtest.h>

#include "pg/wal.h"

namespace haven::pg {
namespace {

// json::value() throws when a member has another type than its default: the exception escaped
// and killed archive_command (fuzz/corpus/wal_key/crash-wrong-type); a float generation was
// undefined behaviour (crash-generation-float).
TEST(WalKeyFileTest, MemberOfTheWrongTypeIsAnErrorNotACrash) {
  for (const char* text : {R"({"haven_wal_key": "1", "key": 5})",
                           R"({"haven_wal_key": 1, "repository": "r", "generation": 1e300, "key": "00"})",
                           R"({"haven_wal_key": 1, "repository": 7, "key": "00"})",
                           R"({"haven_wal_key": 1.5})", "[1]", "{", ""}) {
    auto k = parse_wal_key_file(text, "/etc/haven-wal.key");
    ASSERT_FALSE(k.ok()) << text;
    EXPECT_EQ(k.error().code(), Error::Code::kInvalidArgument) << text;
    EXPECT_NE(k.error().message().find("/etc/haven-wal.key is not a Haven WAL key file"),
              std::string::npos);
  }
  std::string good = R"({"haven_wal_key": 1, "repository": "ab", "generation": 2, "key": ")" +
                     std::string(64, 'c') + "\"}";
  auto k = parse_wal_key_file(good, "k");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->generation, 2u);
  EXPECT_EQ(k->repository, "ab");
}

}  // namespace
}  // namespace haven::pg

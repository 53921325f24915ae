// util/shared_library.h: a library opened at first use hands out its symbols, and a missing
// library or symbol is one error naming the file and the package that installs it.
#include "util/shared_library.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace haven {
namespace {

TEST(SharedLibraryTest, ARealLibrarysSymbolsAreFoundAndWork) {
  SharedLibrary zstd("libzstd.so.1", "libzstd1");
  using VersionFn = unsigned (*)();
  std::vector<std::thread> threads;
  std::vector<unsigned> versions(4);
  for (size_t i = 0; i < versions.size(); i++) {  // the first use may come from any thread
    threads.emplace_back([&, i] {
      auto fn = reinterpret_cast<VersionFn>(zstd.symbol("ZSTD_versionNumber"));
      versions[i] = fn ? fn() : 0;
    });
  }
  for (auto& t : threads) t.join();
  for (unsigned v : versions) EXPECT_GE(v, 10400u);  // zstd 1.4 or later answered
  EXPECT_TRUE(zstd.status().ok());
}

TEST(SharedLibraryTest, AMissingLibraryNamesItselfAndThePackage) {
  SharedLibrary missing("libhaven-no-such-library.so.7", "haven-no-such-package");
  EXPECT_EQ(missing.symbol("anything"), nullptr);
  Status s = missing.status();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Error::Code::kUnsupported);
  const std::string& m = s.error().message();
  EXPECT_NE(m.find("libhaven-no-such-library.so.7 cannot be loaded"), std::string::npos) << m;
  EXPECT_NE(m.find("install the package haven-no-such-package"), std::string::npos) << m;
}

TEST(SharedLibraryTest, AMissingSymbolNamesIt) {
  SharedLibrary zstd("libzstd.so.1", "libzstd1");
  EXPECT_NE(zstd.symbol("ZSTD_compress"), nullptr);
  EXPECT_TRUE(zstd.status().ok());
  EXPECT_EQ(zstd.symbol("ZSTD_no_such_function"), nullptr);
  Status s = zstd.status();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("libzstd.so.1 has no ZSTD_no_such_function"), std::string::npos)
      << s.error().message();
}

}  // namespace
}  // namespace haven

// S3 XML answers: ListObjectsV2 pages (and the object names their keys map to) and error bodies.
#include "fuzz_common.h"
#include "storage/s3.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  const std::string xml(reinterpret_cast<const char*>(data), size);
  auto page = storage::parse_s3_list_page(xml);
  if (page.ok()) {
    for (const auto& [key, s] : page->keys) {
      for (auto t : {storage::ObjectType::kConfig, storage::ObjectType::kData,
                     storage::ObjectType::kSnapshot}) {
        for (const char* base : {"", "pre/fix/"}) {
          auto name = storage::object_name_of_key(t, base, key);
          // A mapped name lives where the key was listed.
          if (name && std::string(base) + storage::object_path(*name) != key) __builtin_trap();
        }
      }
    }
  }
  (void)storage::parse_s3_error(xml);
  return 0;
}

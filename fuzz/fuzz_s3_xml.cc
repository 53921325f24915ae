// S3 XML answers: ListObjectsV2 pages (and the object names their keys map to) and error bodies.
#include "fuzz_common.h"
#include "storage/http.h"
#include "storage/s3.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  const std::string xml(reinterpret_cast<const char*>(data), size);
  auto page = storage::parse_list_objects_v2(xml);
  if (page.ok()) {
    for (const auto& e : page->entries) {
      for (auto t : {storage::ObjectType::kConfig, storage::ObjectType::kData,
                     storage::ObjectType::kSnapshot}) {
        for (const char* base : {"", "pre/fix/"}) {
          auto name = storage::object_name_of_key(t, base, e.key);
          // A mapped name lives where the key was listed.
          if (name && std::string(base) + storage::object_path(*name) != e.key) __builtin_trap();
        }
      }
    }
  }
  // Error bodies: the fields http_error() quotes.
  (void)storage::http::xml::text(xml, "Code");
  (void)storage::http::xml::text(xml, "Message");
  (void)storage::http::xml::unescape(xml);
  return 0;
}

// Azure XML answers: List Blobs pages (and the object names their blobs map to) and error bodies.
#include "fuzz_common.h"
#include "storage/azure.h"
#include "storage/http.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  const std::string xml(reinterpret_cast<const char*>(data), size);
  auto page = storage::parse_list_blobs(xml);
  if (page.ok()) {
    for (const auto& e : page->entries) {
      for (auto t : {storage::ObjectType::kConfig, storage::ObjectType::kData,
                     storage::ObjectType::kLock}) {
        for (const char* base : {"", "pre/"}) {
          auto name = storage::object_name_of_key(t, base, e.name);
          if (name && std::string(base) + storage::object_path(*name) != e.name) __builtin_trap();
        }
      }
    }
  }
  (void)storage::http::xml::text(xml, "Code");
  return 0;
}

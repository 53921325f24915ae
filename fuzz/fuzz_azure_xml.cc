// Azure XML answers: List Blobs pages (and the object names their blobs map to) and error bodies.
#include "fuzz_common.h"
#include "storage/azure.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  const std::string xml(reinterpret_cast<const char*>(data), size);
  auto page = storage::parse_azure_list_page(xml);
  if (page.ok()) {
    for (const auto& [blob, s] : page->blobs) {
      for (auto t : {storage::ObjectType::kConfig, storage::ObjectType::kData,
                     storage::ObjectType::kLock}) {
        for (const char* base : {"", "pre/"}) {
          auto name = storage::object_name_of_key(t, base, blob);
          if (name && std::string(base) + storage::object_path(*name) != blob) __builtin_trap();
        }
      }
    }
  }
  (void)storage::parse_azure_error_code(xml);
  return 0;
}

// The WAL key file that `haven pg archive-key` writes and archive_command reads (JSON).
#include "fuzz_common.h"
#include "pg/wal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  (void)pg::parse_wal_key_file(std::string(reinterpret_cast<const char*>(data), size), "key file");
  return 0;
}

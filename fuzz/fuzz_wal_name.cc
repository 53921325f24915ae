// WAL file names (segments, .partial, .history, .backup) and LSNs ("X/Y").
#include "fuzz_common.h"
#include "pg/basebackup.h"
#include "pg/wal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  const std::string s(reinterpret_cast<const char*>(data), size);
  bool file = pg::is_wal_file_name(s);
  auto seg = pg::parse_segment_name(s);
  if (seg && !file) __builtin_trap();  // every segment name is a WAL file name
  if (auto lsn = pg::parse_lsn(s)) {
    if (pg::parse_lsn(pg::format_lsn(*lsn)) != lsn) __builtin_trap();
  }
  return 0;
}

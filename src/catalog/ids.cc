#include "catalog/ids.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <ctime>

#include "util/bytes.h"

namespace haven::catalog {
namespace {

Status random_bytes(uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(out + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_error("getrandom", errno);
    }
    got += static_cast<size_t>(r);
  }
  return ok_status();
}

}  // namespace

Result<std::string> new_uuid() {
  uint8_t b[16];
  HAVEN_TRY(random_bytes(b, sizeof b));
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // variant 10xx
  std::string hex = to_hex(ByteView(b, sizeof b));
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

Result<std::string> new_run_id(std::string_view prefix, TimeNs t) {
  uint8_t b[4];
  HAVEN_TRY(random_bytes(b, sizeof b));
  time_t secs = static_cast<time_t>(t / 1000000000);
  if (t < 0 && t % 1000000000 != 0) secs -= 1;
  struct tm tm;
  gmtime_r(&secs, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  return std::string(prefix) + "-" + stamp + "-" + to_hex(ByteView(b, sizeof b));
}

}  // namespace haven::catalog

#include "util/sysinfo.h"

#include <pwd.h>
#include <unistd.h>

#include <vector>

namespace haven {

std::string hostname() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return host;
}

std::string username() {
  uid_t uid = geteuid();
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* out = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &out) == 0 && out != nullptr) {
    return out->pw_name;
  }
  return std::to_string(uid);
}

}  // namespace haven

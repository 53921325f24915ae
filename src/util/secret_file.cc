#include "util/secret_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace haven {

Status write_secret_file(const std::string& path, std::string_view text, bool overwrite) {
  std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error(tmp, errno);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return errno_error(path, err);
  }
  if (!overwrite) {
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      err = errno;
      ::unlink(tmp.c_str());
      if (err == EEXIST) {
        return Error(Error::Code::kAlreadyExists,
                     path + " already exists: remove it first or pass --force to replace it");
      }
      return errno_error(path, err);
    }
    ::unlink(tmp.c_str());
    return ok_status();
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    return errno_error(path, err);
  }
  return ok_status();
}

}  // namespace haven

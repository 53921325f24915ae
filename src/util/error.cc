#include "util/error.h"

#include <cerrno>
#include <cstring>

namespace haven {

const char* code_name(Error::Code code) {
  switch (code) {
    case Error::Code::kInvalidArgument: return "invalid argument";
    case Error::Code::kNotFound: return "not found";
    case Error::Code::kAlreadyExists: return "already exists";
    case Error::Code::kPermissionDenied: return "permission denied";
    case Error::Code::kNoSpace: return "no space left";
    case Error::Code::kIo: return "i/o error";
    case Error::Code::kTransient: return "transient error";
    case Error::Code::kCorrupt: return "corrupt";
    case Error::Code::kWrongPassword: return "wrong password";
    case Error::Code::kRepoNotFound: return "repository not found";
    case Error::Code::kUnsupported: return "unsupported";
    case Error::Code::kLocked: return "locked";
    case Error::Code::kCancelled: return "cancelled";
    case Error::Code::kInternal: return "internal error";
  }
  return "unknown";
}

Error errno_error(const std::string& what, int err) {
  std::string msg = what + ": " + std::strerror(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Error(Error::Code::kNotFound, msg);
    case EEXIST:
      return Error(Error::Code::kAlreadyExists, msg);
    case EACCES:
    case EPERM:
      return Error(Error::Code::kPermissionDenied, msg + " (check the permissions of this path)");
    case EROFS:
      return Error(Error::Code::kPermissionDenied,
                   msg + " (the file system is mounted read-only)");
    case ENOSPC:
    case EDQUOT:
      return Error(Error::Code::kNoSpace, msg + " (free space on the device and try again)");
    case EINTR:
    case EAGAIN:
    case ETIMEDOUT:
      return Error(Error::Code::kTransient, msg);
    default:
      return Error(Error::Code::kIo, msg);
  }
}

}  // namespace haven

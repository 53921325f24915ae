#include "storage/backend.h"

#include "storage/azure.h"
#include "storage/local.h"
#include "storage/retry.h"
#include "storage/s3.h"

namespace haven::storage {

const char* type_dir(ObjectType t) {
  switch (t) {
    case ObjectType::kConfig: return "config";
    case ObjectType::kKey: return "keys";
    case ObjectType::kData: return "data";
    case ObjectType::kIndex: return "index";
    case ObjectType::kSnapshot: return "snapshots";
    case ObjectType::kLock: return "locks";
  }
  return "?";
}

const char* type_label(ObjectType t) {
  switch (t) {
    case ObjectType::kConfig: return "config";
    case ObjectType::kKey: return "key";
    case ObjectType::kData: return "pack";
    case ObjectType::kIndex: return "index";
    case ObjectType::kSnapshot: return "snapshot";
    case ObjectType::kLock: return "lock";
  }
  return "?";
}

std::string ObjectName::describe() const {
  if (type == ObjectType::kConfig) return "config";
  return std::string(type_label(type)) + " " + name;
}

// Object stores fail transiently (timeouts, resets, 5xx, throttling): every command reaches them
// through the retry decorator.
static Result<std::shared_ptr<Backend>> with_retries(Result<std::shared_ptr<Backend>> be) {
  if (!be.ok()) return be;
  return std::shared_ptr<Backend>(std::make_shared<RetryBackend>(*be));
}

Result<std::shared_ptr<Backend>> open_backend(const std::string& location) {
  if (location.empty()) {
    return Error(Error::Code::kInvalidArgument,
                 "no repository given: pass --repo PATH or set HAVEN_REPOSITORY");
  }
  std::string path = location;
  if (location.rfind("s3:", 0) == 0) return with_retries(open_s3_backend(location.substr(3)));
  if (location.rfind("azure:", 0) == 0) return with_retries(open_azure_backend(location.substr(6)));
  if (location.rfind("local:", 0) == 0) {
    path = location.substr(6);
  } else {
    auto colon = location.find(':');
    auto slash = location.find('/');
    if (colon != std::string::npos && (slash == std::string::npos || colon < slash)) {
      return Error(Error::Code::kInvalidArgument,
                   "unknown repository location scheme in '" + location.substr(0, colon) +
                       ":': use a path, local:/path, s3:https://host/bucket/prefix, s3:bucket/prefix or azure:container/prefix");
    }
  }
  if (path.empty()) {
    return Error(Error::Code::kInvalidArgument, "empty repository path in '" + location + "'");
  }
  return std::shared_ptr<Backend>(std::make_shared<LocalBackend>(path));
}

}  // namespace haven::storage

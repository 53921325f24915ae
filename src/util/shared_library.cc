#include "util/shared_library.h"

#include <dlfcn.h>

namespace haven {

void SharedLibrary::open() {
  std::call_once(once_, [this] {
    handle_ = ::dlopen(soname_, RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      const char* why = ::dlerror();
      std::lock_guard<std::mutex> g(mu_);
      error_ = std::string(soname_) + " cannot be loaded (" + (why ? why : "not found") +
               "): install the package " + package_;
    }
  });
}

void* SharedLibrary::symbol(const char* name) {
  open();
  if (handle_ == nullptr) return nullptr;
  void* p = ::dlsym(handle_, name);
  if (p == nullptr) {
    std::lock_guard<std::mutex> g(mu_);
    if (error_.empty()) {
      error_ = std::string(soname_) + " has no " + name + ": install a newer " + package_;
    }
  }
  return p;
}

Status SharedLibrary::status() {
  open();
  std::lock_guard<std::mutex> g(mu_);
  if (error_.empty()) return ok_status();
  return Error(Error::Code::kUnsupported, error_);
}

}  // namespace haven

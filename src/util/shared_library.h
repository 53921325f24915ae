// util/shared_library.h — a shared library opened at its first use (dlopen), for the
// dependencies most runs never call. libcurl (object storage, webhooks, mail) and libpq
// (PostgreSQL) bring some thirty libraries with them (Kerberos, LDAP, GnuTLS, SASL...); linked
// at build time, mapping and relocating them cost every process ~2.5 ms at start, a tenth of a
// wal-push of one 16 MiB segment to a local repository, which PostgreSQL runs once per segment.
//
//   static SharedLibrary lib("libpq.so.5", "libpq5");
//   auto* fn = reinterpret_cast<Fn>(lib.symbol("PQconnectdb"));  // nullptr: see lib.status()
//
// Thread-safety: every method may be called from any thread; the library opens once.
#pragma once

#include <mutex>
#include <string>

#include "util/error.h"

namespace haven {

class SharedLibrary {
 public:
  // `soname`: the file dlopen looks for (e.g. "libcurl.so.4"); `package`: the Debian package
  // that installs it, named in the error when it is missing.
  SharedLibrary(const char* soname, const char* package) : soname_(soname), package_(package) {}
  SharedLibrary(const SharedLibrary&) = delete;
  SharedLibrary& operator=(const SharedLibrary&) = delete;

  // Opens the library (the first call) and looks `name` up; nullptr if either fails.
  void* symbol(const char* name);
  // OK once the library is open with every symbol asked for so far, else the first failure:
  // "libcurl.so.4 cannot be loaded (...): install the package libcurl4".
  Status status();

 private:
  void open();

  const char* soname_;
  const char* package_;
  std::once_flag once_;
  void* handle_ = nullptr;
  std::mutex mu_;
  std::string error_;  // under mu_ once open
};

}  // namespace haven

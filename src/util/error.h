// util/error.h — Haven's one error type and the Result<T> that carries it.
//
// Every operation that can fail in normal use (I/O, network, corruption, bad input) returns a
// Result<T>. Programming errors (broken invariants) abort instead. Library exceptions are
// converted to Error at the edge where the library is called.
//
// Error::Code classifies the failure so that retry layers, check, and the CLI's exit-code
// mapping can act on the kind without parsing messages. `retryable()` is the single place that
// says which kinds a retry layer may repeat.
#pragma once

#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace haven {

class [[nodiscard]] Error {
 public:
  enum class Code {
    kInvalidArgument,   // bad input from the user (usage error)
    kNotFound,          // object, file or snapshot does not exist
    kAlreadyExists,     // object exists (save refuses to overwrite)
    kPermissionDenied,  // EACCES / EPERM / EROFS
    kNoSpace,           // ENOSPC / EDQUOT
    kIo,                // other I/O failure
    kTransient,         // timeout, reset, 5xx, throttling: retryable
    kCorrupt,           // authentication failed, malformed or truncated object
    kWrongPassword,     // no key in the repository opens with this password
    kRepoNotFound,      // location is not a Haven repository
    kUnsupported,       // newer format version, unknown algorithm
    kLocked,            // repository lock held by someone else, or our own lock was lost
    kCancelled,         // the operation was cancelled (a signal, the server, a lost lock)
    kInternal,          // library failure that should not happen
  };

  Error(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool retryable() const { return code_ == Code::kTransient; }

  // Returns a copy whose message is "context: message".
  Error with_context(const std::string& context) const {
    return Error(code_, context + ": " + message_);
  }

 private:
  Code code_;
  std::string message_;
};

const char* code_name(Error::Code code);

// Converts an errno value into an Error whose message names `what` (a file, an object).
// This is the only place errno becomes an Error.
Error errno_error(const std::string& what, int err);

// Result<T>: a T or an Error. Cheap to move; check ok() before value().
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    if (!ok()) std::abort();
    return std::get<0>(v_);
  }
  const T& value() const& {
    if (!ok()) std::abort();
    return std::get<0>(v_);
  }
  T&& value() && {
    if (!ok()) std::abort();
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    if (ok()) std::abort();
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), has_error_(true) {}  // NOLINT

  bool ok() const { return !has_error_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const {
    if (ok()) std::abort();
    return err_;
  }

 private:
  Error err_{Error::Code::kInternal, ""};
  bool has_error_ = false;
};

using Status = Result<void>;

inline Status ok_status() { return Status(); }

}  // namespace haven

// Propagates an error from an expression returning Result<...>/Status.
#define HAVEN_CONCAT_INNER(a, b) a##b
#define HAVEN_CONCAT(a, b) HAVEN_CONCAT_INNER(a, b)

#define HAVEN_TRY(expr)                                      \
  do {                                                       \
    auto haven_try_status_ = (expr);                         \
    if (!haven_try_status_.ok()) return haven_try_status_.error(); \
  } while (0)

// HAVEN_ASSIGN(auto x, expr): evaluates expr, returns its error or binds its value to x.
#define HAVEN_ASSIGN(lhs, expr) HAVEN_ASSIGN_IMPL(HAVEN_CONCAT(haven_res_, __LINE__), lhs, expr)
#define HAVEN_ASSIGN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                      \
  if (!tmp.ok()) return tmp.error();      \
  lhs = std::move(tmp).value()

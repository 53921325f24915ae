// util/cancel.h — cancellation of long work: a token shared by whoever may cancel (the CLI's
// signal handler, the server's job runner, a lock that could not be refreshed) and the
// operation that honours it.
//
// A token is a cheap handle on shared state: copies observe and cancel the same thing. Once
// cancelled it stays cancelled, with the first reason given (kCancelled for a user's request;
// kLocked when the operation's lock was lost). Operations check it between units of work
// (a file, a chunk, a pack, a request), backends before and during each call, retry back-off
// and every wait sleep on it, and subprocesses are stopped when it fires, so a cancelled
// operation returns within a second.
//
// The token an operation runs under is also this thread's *current* token (CancelScope), so
// code far below the operation (storage backends, the retry layer) honours it without a
// parameter on every call. Threads an operation starts install the same scope.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <atomic>
#include <list>

#include "util/error.h"

namespace haven {

class CancelToken {
  struct State;

 public:
  // A new token, not cancelled.
  CancelToken();

  // Cancels with `reason` (kept only if this is the first cancellation). Wakes every wait and
  // runs the callbacks registered with on_cancel(), on this thread.
  void cancel(Error reason) const;
  void cancel() const { cancel(Error(Error::Code::kCancelled, "cancelled")); }
  bool cancelled() const { return state_->cancelled.load(std::memory_order_acquire); }
  // OK, or the reason it was cancelled.
  Status check() const;
  // Sleeps for `d` or until cancelled; returns true if cancelled.
  bool sleep_for(std::chrono::nanoseconds d) const;
  // Runs `fn` when the token is cancelled (at once if it already is) until the returned
  // registration is destroyed; once the destructor returns, `fn` is not running and never
  // will. `fn` must be quick and must not block (e.g. kill a process).
  class Registration {
   public:
    Registration() = default;
    Registration(Registration&&) noexcept;
    Registration& operator=(Registration&&) noexcept;
    ~Registration();

   private:
    friend class CancelToken;
    std::shared_ptr<State> state_;
    std::list<std::function<void()>>::iterator it_;
  };
  [[nodiscard]] Registration on_cancel(std::function<void()> fn) const;

 private:
  struct State {
    std::atomic<bool> cancelled{false};
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Error> reason;
    std::list<std::function<void()>> callbacks;
    // Held while callbacks run: a registration destroyed meanwhile waits for them, so no
    // callback runs after its registration is gone (recursive: a callback may drop its own).
    std::recursive_mutex running;
  };
  std::shared_ptr<State> state_;
};

// The token of the operation this thread works for (a token nobody cancels if none was set).
const CancelToken& current_cancel();

// Makes `token` this thread's current token until destroyed (restoring the previous one).
class CancelScope {
 public:
  explicit CancelScope(const CancelToken& token);
  ~CancelScope();
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  const CancelToken* previous_;
  CancelToken token_;
};

// A scope in which nothing is cancelled: for clean-up that must run after a cancellation
// (removing the operation's lock, deleting a partial file).
class UncancellableScope {
 public:
  UncancellableScope();
  ~UncancellableScope();

 private:
  const CancelToken* previous_;
};

}  // namespace haven

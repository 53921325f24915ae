// storage/retry.h — retries with exponential backoff and full jitter around any backend, for the
// failures Error::retryable() names (timeouts, connection resets, 5xx, 429/503 throttling).
//
// Bounded in count and in time: at most `max_attempts` tries per call and no new try once
// `max_elapsed` has passed; then the last error is returned, with how many tries were made.
//
// What a retry must not break:
//   - save(): a try that failed may still have stored the object (the response was lost). A
//     try that then finds the name taken (kAlreadyExists) reads the object back and counts as
//     success only if it holds exactly these bytes — the first try too, since libcurl resends
//     a request on its own when a reused connection dies before the response. Every try sends
//     the whole data again from its start; no partial object is ever visible (the inner
//     backend's save is atomic).
//   - remove(): a retry that finds the object gone (kNotFound) after a failed try is success.
//   - list(): names are collected first and handed to the caller only after a whole listing
//     succeeded, so a retry never repeats or skips an object.
//
// Thread-safety: as the inner backend's; the jitter source is per thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>

#include "storage/backend.h"

namespace haven::storage {

struct RetryPolicy {
  int max_attempts = 8;
  std::chrono::milliseconds base_delay{100};   // first back-off ceiling, doubled per try
  std::chrono::milliseconds max_delay{10000};  // ceiling of one back-off
  std::chrono::milliseconds max_elapsed{120000};  // no new try after this long
};

class RetryBackend : public BackendWrapper {
 public:
  RetryBackend(std::shared_ptr<Backend> inner, RetryPolicy policy = {});

  Status save(const ObjectName& n, ByteView d) override;
  Status save_new(const ObjectName& n, ByteView d) override;
  Result<Bytes> load(const ObjectName& n, uint64_t off, uint64_t len) override;
  // A retried read starts after the bytes already handed over, so none comes twice.
  bool streams_reads() const override { return inner().streams_reads(); }
  Status load_pieces(const ObjectName& n, uint64_t off, uint64_t len,
                     const std::function<void(ByteView)>& piece) override;
  Result<ObjectInfo> stat(const ObjectName& n) override;
  Status list(ObjectType t, const std::function<void(const ObjectInfo&)>& fn) override;
  Status remove(const ObjectName& n) override;
  Status discard(const ObjectName& n) override;
  Result<bool> is_empty() override;
  Status create() override;

  // Tries made beyond the first, over this backend's life (for tests and statistics).
  uint64_t retries() const { return retries_.load(); }
  // Test hook: replaces sleeping (so tests need not wait for real back-offs).
  void set_sleep(std::function<void(std::chrono::milliseconds)> sleep) { sleep_ = std::move(sleep); }

 private:
  // Runs `op` until it succeeds, fails with a non-retryable error, or the budget is spent.
  // `op` gets the try number (0 = first).
  template <typename T>
  Result<T> run(const std::string& what, const std::function<Result<T>(int)>& op);
  std::chrono::milliseconds backoff(int attempt);
  // save() or save_new() with retries; an "already exists" holding the same bytes is success.
  Status save_checked(const ObjectName& n, ByteView d, bool fresh_name);

  RetryPolicy policy_;
  std::atomic<uint64_t> retries_{0};
  std::function<void(std::chrono::milliseconds)> sleep_;
};

}  // namespace haven::storage

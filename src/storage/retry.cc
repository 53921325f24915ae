#include "storage/retry.h"

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

#include "util/cancel.h"

namespace haven::storage {

RetryBackend::RetryBackend(std::shared_ptr<Backend> inner, RetryPolicy policy)
    : BackendWrapper(std::move(inner)), policy_(policy) {
  // Back-off sleeps end early when the calling operation is cancelled.
  sleep_ = [](std::chrono::milliseconds d) { (void)current_cancel().sleep_for(d); };
}

std::chrono::milliseconds RetryBackend::backoff(int attempt) {
  // Full jitter: uniform in [0, min(max, base * 2^attempt)], so many clients that failed at
  // the same moment do not come back at the same moment.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  int64_t ceiling = policy_.base_delay.count() << std::min(attempt, 20);
  ceiling = std::min<int64_t>(ceiling, policy_.max_delay.count());
  std::uniform_int_distribution<int64_t> pick(0, std::max<int64_t>(ceiling, 1));
  return std::chrono::milliseconds(pick(rng));
}

template <typename T>
Result<T> RetryBackend::run(const std::string& what, const std::function<Result<T>(int)>& op) {
  const auto start = std::chrono::steady_clock::now();
  for (int attempt = 0;; attempt++) {
    HAVEN_TRY(current_cancel().check());
    Result<T> r = op(attempt);
    if (r.ok() || !r.error().retryable()) return r;
    bool out_of_tries = attempt + 1 >= policy_.max_attempts;
    bool out_of_time = std::chrono::steady_clock::now() - start >= policy_.max_elapsed;
    if (out_of_tries || out_of_time) {
      return Error(r.error().code(),
                   r.error().message() + " (gave up after " + std::to_string(attempt + 1) +
                       " tries over " +
                       std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::steady_clock::now() - start)
                                          .count()) +
                       " s; the backend is unreachable or failing: check it and run the command "
                       "again)");
    }
    retries_++;
    sleep_(backoff(attempt));
  }
}

Status RetryBackend::save(const ObjectName& n, ByteView d) { return save_checked(n, d, false); }

Status RetryBackend::save_new(const ObjectName& n, ByteView d) { return save_checked(n, d, true); }

Status RetryBackend::save_checked(const ObjectName& n, ByteView d, bool fresh_name) {
  return run<void>(n.describe(), [&](int) -> Status {
    Status s = fresh_name ? inner().save_new(n, d) : inner().save(n, d);
    if (s.ok() || s.error().code() != Error::Code::kAlreadyExists) return s;
    // An earlier try may have stored it before its response was lost: same bytes = success.
    // Also on the first try: libcurl itself resends a request whose reused connection died
    // before any response byte came back, so even try 0 may follow a PUT that took effect
    // (found by tests/integration/network_faults_test.cc through a resetting proxy).
    auto there = inner().load(n, 0, 0);
    if (!there.ok()) return there.error().retryable() ? there.error() : s.error();
    if (there->size() == d.size() && std::equal(there->begin(), there->end(), d.begin())) {
      return ok_status();
    }
    return s;
  });
}

Result<Bytes> RetryBackend::load(const ObjectName& n, uint64_t off, uint64_t len) {
  return run<Bytes>(n.describe(), [&](int) { return inner().load(n, off, len); });
}

Status RetryBackend::load_pieces(const ObjectName& n, uint64_t off, uint64_t len,
                                 const std::function<void(ByteView)>& piece) {
  uint64_t done = 0;
  return run<void>(n.describe(), [&](int) -> Status {
    return inner().load_pieces(n, off + done, len - done, [&](ByteView p) {
      done += p.size();
      piece(p);
    });
  });
}

Result<ObjectInfo> RetryBackend::stat(const ObjectName& n) {
  return run<ObjectInfo>(n.describe(), [&](int) { return inner().stat(n); });
}

Status RetryBackend::list(ObjectType t, const std::function<void(const ObjectInfo&)>& fn) {
  std::vector<ObjectInfo> all;
  Status s = run<void>(type_dir(t), [&](int) -> Status {
    all.clear();
    return inner().list(t, [&](const ObjectInfo& i) { all.push_back(i); });
  });
  if (!s.ok()) return s;
  for (const auto& i : all) fn(i);
  return ok_status();
}

Status RetryBackend::remove(const ObjectName& n) {
  return run<void>(n.describe(), [&](int attempt) -> Status {
    Status s = inner().remove(n);
    if (!s.ok() && attempt > 0 && s.error().code() == Error::Code::kNotFound) {
      return ok_status();  // an earlier try removed it before its response was lost
    }
    return s;
  });
}

Status RetryBackend::discard(const ObjectName& n) {
  return run<void>(n.describe(), [&](int) { return inner().discard(n); });
}

Result<bool> RetryBackend::is_empty() {
  return run<bool>("is_empty", [&](int) { return inner().is_empty(); });
}

Status RetryBackend::create() {
  return run<void>("create", [&](int) { return inner().create(); });
}

}  // namespace haven::storage

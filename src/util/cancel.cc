#include "util/cancel.h"

namespace haven {

CancelToken::CancelToken() : state_(std::make_shared<State>()) {}

void CancelToken::cancel(Error reason) const {
  std::lock_guard<std::recursive_mutex> running(state_->running);
  std::list<std::function<void()>> callbacks;
  {
    std::lock_guard<std::mutex> g(state_->mu);
    if (state_->cancelled.load(std::memory_order_relaxed)) return;
    state_->reason = std::move(reason);
    state_->cancelled.store(true, std::memory_order_release);
    callbacks = state_->callbacks;
  }
  state_->cv.notify_all();
  for (auto& fn : callbacks) fn();
}

Status CancelToken::check() const {
  if (!cancelled()) return ok_status();
  std::lock_guard<std::mutex> g(state_->mu);
  return *state_->reason;
}

bool CancelToken::sleep_for(std::chrono::nanoseconds d) const {
  std::unique_lock<std::mutex> lk(state_->mu);
  return state_->cv.wait_for(lk, d, [&] { return state_->cancelled.load(); });
}

CancelToken::Registration::Registration(Registration&& o) noexcept
    : state_(std::move(o.state_)), it_(o.it_) {}

CancelToken::Registration& CancelToken::Registration::operator=(Registration&& o) noexcept {
  if (this != &o) {
    Registration gone(std::move(*this));
    state_ = std::move(o.state_);
    it_ = o.it_;
  }
  return *this;
}

CancelToken::Registration::~Registration() {
  if (!state_) return;
  std::lock_guard<std::recursive_mutex> running(state_->running);  // none of ours is running
  std::lock_guard<std::mutex> g(state_->mu);
  state_->callbacks.erase(it_);
}

CancelToken::Registration CancelToken::on_cancel(std::function<void()> fn) const {
  Registration r;
  {
    std::lock_guard<std::mutex> g(state_->mu);
    if (!state_->cancelled.load()) {
      state_->callbacks.push_back(std::move(fn));
      r.state_ = state_;
      r.it_ = std::prev(state_->callbacks.end());
      return r;
    }
  }
  fn();  // already cancelled
  return r;
}

namespace {
const CancelToken& never_cancelled() {
  static const CancelToken* t = new CancelToken();  // never cancelled: nobody can reach it
  return *t;
}
thread_local const CancelToken* current = nullptr;
}  // namespace

const CancelToken& current_cancel() { return current ? *current : never_cancelled(); }

CancelScope::CancelScope(const CancelToken& token) : previous_(current), token_(token) {
  current = &token_;
}
CancelScope::~CancelScope() { current = previous_; }

UncancellableScope::UncancellableScope() : previous_(current) { current = &never_cancelled(); }
UncancellableScope::~UncancellableScope() { current = previous_; }

}  // namespace haven

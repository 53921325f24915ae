#include "ops/ops.h"

#include <future>

namespace haven::ops {

namespace {
CancelToken::Registration forward(const CancelToken& from, const CancelToken& to) {
  return from.on_cancel([from, to] {
    Status why = from.check();
    to.cancel(why.ok() ? Error(Error::Code::kCancelled, "cancelled") : why.error());
  });
}
}  // namespace

OperationScope::OperationScope(repo::Repository& repo)
    : from_repository_(forward(repo.cancel_token(), token_)),
      from_caller_(forward(current_cancel(), token_)),
      scope_(token_) {}

const char* notice_level_name(NoticeLevel level) {
  return level == NoticeLevel::kWarning ? "warning" : "notice";
}

void notice(const EventTarget& events, NoticeLevel level, const std::string& message) {
  Event e;
  e.op = OpKind::kRepository;
  e.kind = EventKind::kNotice;
  e.time = now();
  e.message = message;
  e.operation_id = events.operation_id;
  e.data = {{"level", notice_level_name(level)}};
  events.sink->emit(e);
}

Error invalid(std::string message) {
  return Error(Error::Code::kInvalidArgument, std::move(message));
}

namespace {
void warn_damaged(const EventTarget& events, const std::vector<Error>& damaged) {
  for (const auto& e : damaged) {
    notice(events, NoticeLevel::kWarning,
           e.message() + " (skipped; 'haven check' lists what is damaged)");
  }
}
}  // namespace

void warn_skipped_index_file(const EventTarget& events, const Error& e) {
  notice(events, NoticeLevel::kWarning,
         e.message() + " (skipped: the blobs it lists cannot be found; run 'haven repair index')");
}

Status load_index(repo::Repository& repo, const EventTarget& events) {
  return repo.load_index([&events](const std::string&, const Error& e) { warn_skipped_index_file(events, e); });
}

Status load_index_while(repo::Repository& repo, const EventTarget& events, const CancelToken& token,
                        const std::function<Status()>& meanwhile) {
  // The index thread's own token, cancelled with the operation's, or alone when `meanwhile`
  // fails: then nothing waits for an index nobody will use (a snapshot that does not exist
  // fails at once, as when the index was loaded after it), and its warnings are not told.
  CancelToken own;
  CancelToken::Registration link = token.on_cancel([own] { own.cancel(); });
  std::vector<Error> skipped;
  auto index = std::async(std::launch::async, [&repo, &skipped, own] {
    CancelScope scope(own);
    return repo.load_index([&skipped](const std::string&, const Error& e) { skipped.push_back(e); });
  });
  Status done = meanwhile();
  if (!done.ok()) {
    own.cancel();
    (void)index.get();
    return done;
  }
  Status loaded = index.get();
  for (const Error& e : skipped) warn_skipped_index_file(events, e);
  HAVEN_TRY(token.check());  // the operation's cancellation, not the index thread's own
  return loaded;
}

Result<std::vector<std::pair<repo::Id, repo::Snapshot>>> list_snapshots(repo::Repository& repo,
                                                                        const EventTarget& events) {
  std::vector<Error> damaged;
  auto all = repo.list_snapshots(&damaged);
  warn_damaged(events, damaged);
  return all;
}

Result<repo::Id> resolve_snapshot(repo::Repository& repo, const std::string& ref,
                                  const EventTarget& events) {
  std::vector<Error> damaged;
  auto id = repo.resolve_snapshot(ref, &damaged);
  warn_damaged(events, damaged);
  return id;
}

}  // namespace haven::ops

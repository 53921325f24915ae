// ops/ops.h — the operations layer: one library entry point per operation (backup, restore,
// check, forget/prune, inspection, PostgreSQL, WAL, keys), for every front end — the CLI today,
// the server's job runner next. This header holds what they all share.
//
// The shape of an operation X (ops/<area>.h):
//   struct XRequest          plain fields, what a user asks for. Values that have a textual
//                            syntax (times, durations, LSNs, zone names, subset specs, overwrite
//                            modes) are kept as the user typed them, so every front end gets
//                            the same parsing and the same messages.
//   Status validate(const XRequest&)
//                            kInvalidArgument naming the field (as the CLI spells its option,
//                            e.g. "--keep-within", the name README documents) and the fix.
//                            Touches nothing: call it before opening the repository. The entry
//                            point calls it again first, so a request is never run unchecked.
//   Result<XResult> x(repo::Repository&, const XRequest&, const EventTarget&)
//                            runs under an OperationScope: cancelled by the repository's
//                            token (Repository::cancel_token(): the CLI's signals) or by the
//                            caller's current token (util/cancel.h CancelScope: a server's
//                            job), whichever fires first; takes the repository's
//                            lock itself (ops/lock.h: in a repo::Session of its own, whose token
//                            a lost lock cancels too) and releases it before returning, and
//                            reports long work through the EventTarget's sink, under the
//                            target's operation ID when it has one (a server's job ID;
//                            otherwise a random one per operation). It returns
//                            a typed result; it never prints, reads the environment or a
//                            terminal, or decides an exit code.
//
// Besides the engines' events (util/events.h), operations report diagnostics of their own as
// "repository:notice" events (EventKind::kNotice; data.level "notice" or "warning", message):
// a stale lock ignored, a snapshot or index file skipped because it cannot be read. They are
// for a person (the CLI prints "<level>: <message>" on stderr), not part of the result.
//
// Thread-safety: an operation runs on the calling thread (and the threads the engines start).
// Operations that lock run each in a session of its own (ops/lock.h), so several of them may run
// on one Repository at once, from different threads (repo/session.h); init and the key
// operations (keys.h) run alone.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "repo/repository.h"
#include "util/error.h"
#include "util/events.h"

namespace haven::ops {

// The cancellation of one operation: a token of its own, cancelled (with the reason) when the
// repository's token is or when the token current on the calling thread at construction is
// (so one job of a server stops without touching the others on the same repository). It is
// this thread's current token while the scope lives; the operation's session is its child.
class OperationScope {
 public:
  explicit OperationScope(repo::Repository& repo);
  OperationScope(const OperationScope&) = delete;
  OperationScope& operator=(const OperationScope&) = delete;
  const CancelToken& token() const { return token_; }

 private:
  CancelToken token_;
  CancelToken::Registration from_repository_;
  CancelToken::Registration from_caller_;
  CancelScope scope_;
};

enum class NoticeLevel { kNotice, kWarning };
const char* notice_level_name(NoticeLevel level);

// Emits a repository:notice event (level in data, the message).
void notice(const EventTarget& events, NoticeLevel level, const std::string& message);

// Error(kInvalidArgument, message): the message names the field and the fix.
Error invalid(std::string message);

// Loads the index; an index file that cannot be read is skipped with a warning notice (its
// blobs are then missing, and only the files that need them fail).
Status load_index(repo::Repository& repo, const EventTarget& events);
// The warning load_index() gives for an index file it skipped (for callers that load the index
// on another thread and tell its warnings after).
void warn_skipped_index_file(const EventTarget& events, const Error& e);
// load_index() on a thread of its own (under `token`) while `meanwhile` runs on this one
// (choosing and loading snapshots): over object storage each is a listing and a few reads,
// round trips that need not wait for one another. The index's warnings are told after, on this
// thread. If `meanwhile` fails, its error is returned at once: the index load is cancelled and
// its warnings are not told.
Status load_index_while(repo::Repository& repo, const EventTarget& events, const CancelToken& token,
                        const std::function<Status()>& meanwhile);

// Every readable snapshot, oldest first; one that cannot be read is skipped with a warning
// notice.
Result<std::vector<std::pair<repo::Id, repo::Snapshot>>> list_snapshots(repo::Repository& repo,
                                                                        const EventTarget& events);

// "latest", a full ID or a unique prefix (Repository::resolve_snapshot); for "latest", damaged
// snapshots are skipped with a warning notice.
Result<repo::Id> resolve_snapshot(repo::Repository& repo, const std::string& ref,
                                  const EventTarget& events);

}  // namespace haven::ops

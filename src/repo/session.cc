#include "repo/session.h"

#include "util/version.h"

namespace haven::repo {

using storage::ObjectType;

Session::Session(Repository& repo, const CancelToken& parent)
    : repo_(repo), lock_(repo, cancel_), writer_(repo, cancel_) {
  // The parent's cancellation (and its reason) reaches this session; this session's (a lost
  // lock) stays here.
  parent_link_ = parent.on_cancel([self = cancel_, parent] {
    Status why = parent.check();
    self.cancel(why.ok() ? Error(Error::Code::kCancelled, "cancelled") : why.error());
  });
}

Session::~Session() = default;

Status Session::lock(bool exclusive) { return lock_.acquire(exclusive); }

Status Session::unlock() { return lock_.release(); }

Result<Id> Session::save_blob(BlobType type, ByteView data) {
  Id id = repo_.blob_id(data);
  HAVEN_TRY(save_blob_with_id(type, id, data));
  return id;
}

Result<bool> Session::save_blob_with_id(BlobType type, const Id& id, ByteView data) {
  HAVEN_TRY(cancel_.check());  // a cancelled operation stores nothing more
  return writer_.add(type, id, data);
}

Result<bool> Session::save_blob_with_id(BlobType type, const Id& id, ByteView data, Compression c) {
  HAVEN_TRY(cancel_.check());
  return writer_.add(type, id, data, c);
}

Result<Id> Session::save_tree(const Tree& t) { return save_blob(BlobType::kTree, encode_tree(t)); }

Status Session::flush() { return writer_.flush(); }

Result<Id> Session::save_snapshot(const Snapshot& s) {
  // Everything the snapshot references must be durable first.
  HAVEN_TRY(flush());
  // And still protected: once our lock may look stale, a prune elsewhere may have deleted
  // packs this snapshot would reference.
  HAVEN_TRY(check_lock());
  HAVEN_TRY(cancel_.check());
  Snapshot copy = s;
  if (copy.program_version.empty()) copy.program_version = std::string("haven ") + HAVEN_VERSION;
  return repo_.save_object(ObjectType::kSnapshot, encode_snapshot(copy));
}

}  // namespace haven::repo

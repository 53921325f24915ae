#include "replication/failover.h"

namespace haven::replication {

namespace {

// Failures another region may not share: the object is missing or damaged here, or this
// region cannot be reached. A cancel, or a request the caller got wrong, is the same anywhere.
bool worth_another_region(const Error& e) {
  switch (e.code()) {
    case Error::Code::kNotFound:
    case Error::Code::kCorrupt:
    case Error::Code::kIo:
    case Error::Code::kTransient:
    case Error::Code::kPermissionDenied:
      return true;
    default:
      return false;
  }
}

}  // namespace

bool FailoverBackend::fails_over(const storage::ObjectName& name, const Error& e) {
  if (!worth_another_region(e) || name.type == storage::ObjectType::kLock ||
      name.type == storage::ObjectType::kLease) {
    return false;
  }
  // Missing: only packs and WAL files are taken from a region. A snapshot or index file the
  // primary lacks may have been deleted there on purpose (forget, prune) after it was listed,
  // and a region's copy, not yet mirrored, must not bring it back into what a reader sees.
  return e.code() != Error::Code::kNotFound || name.type == storage::ObjectType::kData ||
         name.type == storage::ObjectType::kWal;
}

Result<Bytes> FailoverBackend::load(const storage::ObjectName& name, uint64_t offset,
                                    uint64_t length) {
  auto r = BackendWrapper::load(name, offset, length);
  if (r.ok() || !fails_over(name, r.error())) return r;
  return load_other_copy(name, offset, length, r.error());
}

Status FailoverBackend::load_pieces(const storage::ObjectName& name, uint64_t offset, uint64_t length,
                                    const std::function<void(ByteView)>& piece) {
  uint64_t done = 0;
  Status st = inner().load_pieces(name, offset, length, [&](ByteView p) {
    done += p.size();
    piece(p);
  });
  if (st.ok() || done == length || !fails_over(name, st.error())) return st;
  HAVEN_ASSIGN(Bytes rest, load_other_copy(name, offset + done, length - done, st.error()));
  if (rest.size() != length - done) {
    return Error(Error::Code::kCorrupt, name.describe() + ": a region's copy holds " +
                                            std::to_string(rest.size()) + " bytes at " +
                                            std::to_string(offset + done) + ", expected " +
                                            std::to_string(length - done));
  }
  piece(rest);
  return ok_status();
}

Result<Bytes> FailoverBackend::load_other_copy(const storage::ObjectName& name, uint64_t offset,
                                               uint64_t length, const Error& why) {
  for (const auto& region : others_) {
    auto r = region.backend->load(name, offset, length);
    if (!r.ok()) continue;
    if (report_) report_(name, region.name, why);
    return r;
  }
  return why;
}

}  // namespace haven::replication

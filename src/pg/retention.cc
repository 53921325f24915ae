#include "pg/retention.h"

#include "pg/wal.h"

namespace haven::pg {

Result<RetainResult> retain(repo::Session& session, TimeNs window, TimeNs now, bool dry_run) {
  CancelScope scope(session.cancel_token());
  repo::Repository& repo = session.repo();
  if (window <= 0) {
    return Error(Error::Code::kInvalidArgument, "the point-in-time window must be longer than zero");
  }
  HAVEN_ASSIGN(auto backups, list_base_backups(repo));  // oldest first
  RetainResult r;
  const TimeNs start = now - window;
  // The newest base backup that stopped before the window starts, and everything after it.
  size_t first_kept = 0;
  for (size_t i = 0; i < backups.size(); i++) {
    if (backups[i].stop_time <= start) first_kept = i;
  }
  for (size_t i = 0; i < backups.size(); i++) (i < first_kept ? r.forgotten : r.kept).push_back(backups[i]);
  if (r.kept.empty()) return r;  // no base backup at all: nothing is recoverable, keep all WAL

  // The first segment any kept backup needs, as a position (segment number); the segment
  // size is the cluster's (recorded at backup time).
  uint64_t oldest_segno = UINT64_MAX, seg_size = r.kept.front().wal_segment_size;
  for (const auto& b : r.kept) oldest_segno = std::min(oldest_segno, b.start_lsn / b.wal_segment_size);
  const uint64_t per_log = (uint64_t{1} << 32) / seg_size;
  char oldest[25];
  std::snprintf(oldest, sizeof oldest, "%08X%08X%08X", r.kept.front().timeline,
                static_cast<unsigned>(oldest_segno / per_log), static_cast<unsigned>(oldest_segno % per_log));
  r.oldest_needed_segment = oldest;

  std::vector<storage::ObjectInfo> old;
  HAVEN_TRY(repo.backend().list(storage::ObjectType::kWal, [&](const storage::ObjectInfo& i) {
    const std::string& n = i.name.name;
    if (n.size() == 16 && n.compare(8, 8, ".history") == 0) return;  // always kept
    auto seg = parse_segment_name(n.substr(0, 24));
    if (!seg) return;
    if (seg->log * per_log + seg->seg < oldest_segno) old.push_back(i);
  }));
  for (const auto& i : old) {
    r.wal_removed.push_back(i.name.name);
    r.wal_bytes_removed += i.size;
  }
  if (dry_run) return r;
  // Deleting is safe only under a live exclusive lock (as prune's deletions).
  HAVEN_TRY(session.check_lock());
  // Snapshots first: if this stops half-way, no kept backup has lost WAL it needs.
  for (const auto& b : r.forgotten) HAVEN_TRY(repo.remove_snapshot(b.id));
  for (const auto& i : old) {
    Status st = repo.backend().remove(i.name);
    if (!st.ok() && st.error().code() != Error::Code::kNotFound) return st.error();
  }
  return r;
}

}  // namespace haven::pg

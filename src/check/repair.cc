#include "check/repair.h"

#include "repo/index_writer.h"

#include <algorithm>
#include <chrono>
#include <unordered_map>
#include <unordered_set>

#include "util/cancel.h"

namespace haven::check {

using repo::Id;
using repo::IdHash;
using storage::ObjectType;

namespace {

Result<RepairStats> repair(repo::Session& session, Reporter& events) {
  repo::Repository& repo = session.repo();
  auto start = std::chrono::steady_clock::now();
  RepairStats st;
  HAVEN_ASSIGN(auto old_files, repo.list_index_files());
  std::vector<std::pair<Id, uint64_t>> packs;
  HAVEN_TRY(repo.backend().list(ObjectType::kData, [&](const storage::ObjectInfo& i) {
    if (auto id = repo::parse_id(i.name.name)) packs.emplace_back(*id, i.size);
  }));
  std::sort(packs.begin(), packs.end());
  st.packs = packs.size();

  // Which packs the old index named (to count additions), and which it named but storage lacks.
  std::unordered_set<Id, IdHash> old_named;
  for (const auto& name : old_files) {
    auto recs = repo.load_index_file(name);
    if (!recs.ok()) {
      st.index_files_unreadable++;
      continue;
    }
    for (const auto& r : *recs) old_named.insert(r.id);
  }
  std::unordered_set<Id, IdHash> in_storage;
  for (const auto& p : packs) in_storage.insert(p.first);
  for (const auto& id : old_named) st.packs_dropped += in_storage.count(id) ? 0 : 1;

  repo::IndexWriter writer(repo);  // the repository's one batching policy for index files
  std::unordered_set<Id, IdHash> damaged;  // trailer unreadable
  size_t done = 0;
  for (const auto& [id, size] : packs) {
    auto rec = repo.read_pack_trailer(id, size);
    ++done;
    if (done == packs.size() || events.progress_due()) {
      Progress p;
      p.phase = "packs";
      p.items_done = done;
      p.items_total = packs.size();
      p.final = done == packs.size();
      events.progress(std::move(p));
    }
    if (!rec.ok()) {
      if (rec.error().code() != Error::Code::kCorrupt) return rec.error();
      damaged.insert(id);
      events.warning("", rec.error().message());
      continue;
    }
    st.packs_indexed++;
    st.packs_added += old_named.count(id) ? 0 : 1;
    st.blobs += rec->blobs.size();
    HAVEN_TRY(writer.add(std::move(*rec)));
  }
  // Damaged trailers: what the old index knew of those packs is the best there is.
  std::unordered_set<Id, IdHash> recovered;
  if (!damaged.empty()) {
    for (const auto& name : old_files) {
      auto recs = repo.load_index_file(name);
      if (!recs.ok()) continue;
      for (auto& r : *recs) {
        if (!damaged.count(r.id) || !recovered.insert(r.id).second) continue;
        st.packs_indexed++;
        st.packs_from_old_index++;
        st.blobs += r.blobs.size();
        HAVEN_TRY(writer.add(std::move(r)));
      }
    }
  }
  for (const auto& id : damaged) {
    if (!recovered.count(id)) st.unreadable_packs.push_back(repo::hex(id));
  }
  std::sort(st.unreadable_packs.begin(), st.unreadable_packs.end());
  HAVEN_TRY(writer.flush());
  st.index_files_written = writer.files_written();
  // The new index is durable; only now do the old files go, and only under a live lock.
  HAVEN_TRY(session.check_lock());
  for (const auto& name : old_files) {
    Status s = repo.backend().remove({ObjectType::kIndex, name});
    if (!s.ok() && s.error().code() != Error::Code::kNotFound) return s.error();
    st.index_files_deleted++;
  }
  st.duration_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::steady_clock::now() - start)
                                             .count());
  return st;
}

}  // namespace

Result<RepairStats> repair_index(repo::Session& session, const EventTarget& target) {
  CancelScope scope(session.cancel_token());
  Reporter events(target, OpKind::kRepair);
  events.started();
  return events.finish(repair(session, events), repair_json);
}

nlohmann::json repair_json(const RepairStats& s) {
  return {{"packs", s.packs},
          {"packs_indexed", s.packs_indexed},
          {"packs_added", s.packs_added},
          {"packs_from_old_index", s.packs_from_old_index},
          {"packs_dropped", s.packs_dropped},
          {"blobs", s.blobs},
          {"index_files_written", s.index_files_written},
          {"index_files_deleted", s.index_files_deleted},
          {"index_files_unreadable", s.index_files_unreadable},
          {"unreadable_packs", s.unreadable_packs},
          {"duration_ms", s.duration_ms}};
}

}  // namespace haven::check

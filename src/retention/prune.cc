#include "retention/prune.h"

#include <algorithm>
#include <chrono>
#include <unordered_map>
#include <unordered_set>

#include "repo/index_writer.h"
#include "repo/pack.h"

namespace haven::retention {

using repo::BlobType;
using repo::Id;
using repo::IdHash;
using storage::ObjectType;

namespace {

struct PackStat {
  uint64_t used_bytes = 0, unused_bytes = 0;
  uint32_t used_blobs = 0, blobs = 0;
  uint32_t key_generation = 0;
  bool counted = false;  // the first index record of this pack was counted
};

enum class Fate { kKeep, kRepack, kDelete };

class Pruner {
 public:
  Pruner(repo::Session& session, const PruneOptions& o, Reporter& events)
      : repo_(session.repo()), session_(session), opts_(o), events_(events) {}
  Result<PruneStats> run();

 private:
  void progress(const char* phase, uint64_t done, uint64_t total) {
    if (!events_.progress_due() && done != total) return;
    Progress p;
    p.phase = phase;
    p.items_done = done;
    p.items_total = total;
    p.final = total > 0 && done == total;
    events_.progress(std::move(p));
  }
  Status mark_used();
  Status mark_tree(const Id& root, const std::string& snapshot);
  Status count_packs();
  Status repack();
  Status write_index();
  Status delete_old();
  Status remove_leftovers();

  repo::Repository& repo_;
  repo::Session& session_;
  std::unique_ptr<repo::Index> own_index_;  // the index files as this prune read them
  const repo::Index* index_ = nullptr;
  PruneOptions opts_;
  Reporter& events_;
  PruneStats st_;
  std::vector<std::string> old_index_;
  std::vector<bool> used_;  // per index position
  std::unordered_map<Id, uint64_t, IdHash> listed_;
  std::unordered_map<Id, PackStat, IdHash> packs_;  // packs some index names
  std::unordered_map<Id, Fate, IdHash> fate_;
  std::vector<repo::PackRecord> new_packs_;
  uint64_t repack_bytes_ = 0;  // sealed bytes of the blobs that move
};

Status Pruner::mark_tree(const Id& root, const std::string& snapshot) {
  auto refuse = [&](const std::string& what) {
    return Error(Error::Code::kCorrupt,
                 "snapshot " + snapshot + " references " + what +
                     ": refusing to prune a damaged repository (nothing was changed; run "
                     "'haven check' and 'haven repair index')");
  };
  std::vector<Id> stack{root};
  while (!stack.empty()) {
    Id id = stack.back();
    stack.pop_back();
    auto pos = index_->position(BlobType::kTree, id);
    if (!pos) return refuse("tree " + repo::hex(id) + ", which is not in the index");
    if (used_[*pos]) continue;
    used_[*pos] = true;
    auto tree = repo_.load_tree(id, *index_);
    if (!tree.ok()) return refuse("a tree that cannot be read (" + tree.error().message() + ")");
    for (const auto& n : tree->nodes) {
      if (n.subtree) stack.push_back(*n.subtree);
      for (const auto& c : n.content) {
        auto cp = index_->position(BlobType::kData, c.id);
        if (!cp) return refuse("data blob " + repo::hex(c.id) + ", which is not in the index");
        used_[*cp] = true;
      }
    }
  }
  return ok_status();
}

Status Pruner::mark_used() {
  // Snapshots are fetched ahead of the one being marked (on object storage each is a round
  // trip); names that are not snapshot IDs are skipped.
  size_t total = 0;
  return repo_.for_each_snapshot([&](const std::string& name, std::optional<Id> id,
                                     Result<repo::Snapshot>& snap) -> Status {
    if (!id) {
      total--;
      return ok_status();
    }
    HAVEN_TRY(session_.cancel_token().check());
    if (!snap.ok()) {
      return Error(Error::Code::kCorrupt,
                   snap.error().message() +
                       ": refusing to prune while a snapshot cannot be read (nothing was changed; "
                       "run 'haven check', or remove the snapshot with 'haven forget')");
    }
    HAVEN_TRY(mark_tree(snap->tree, name));
    st_.snapshots++;
    progress("snapshots", st_.snapshots, total);
    return ok_status();
  }, [&](size_t n) { total = n; });
}

Status Pruner::count_packs() {
  HAVEN_TRY(repo_.backend().list(ObjectType::kData, [&](const storage::ObjectInfo& i) {
    if (auto id = repo::parse_id(i.name.name)) listed_[*id] = i.size;
  }));
  // Each blob copy counts as used only at the location the index resolves it to: a second copy
  // of a blob (two backups raced, or a prune was interrupted) is unused.
  size_t done = 0;
  for (const auto& name : old_index_) {
    HAVEN_ASSIGN(auto records, repo_.load_index_file(name));
    for (const auto& rec : records) {
      PackStat& ps = packs_[rec.id];
      if (ps.counted) continue;  // the same pack in two index files
      ps.counted = true;
      ps.key_generation = rec.key_generation;
      for (const auto& b : rec.blobs) {
        ps.blobs++;
        auto pos = index_->position(b.type, b.id);
        bool used = false;
        if (pos && used_[*pos]) {
          const auto& e = index_->at(*pos);
          used = index_->pack_id(e.pack) == rec.id && e.offset == b.offset;
        }
        if (used) {
          ps.used_blobs++;
          ps.used_bytes += b.length;
        } else {
          ps.unused_bytes += b.length;
        }
      }
    }
    progress("index", ++done, old_index_.size());
  }
  for (auto& [id, ps] : packs_) {
    st_.blobs_total += ps.blobs;
    st_.blobs_used += ps.used_blobs;
    st_.bytes_unused += ps.unused_bytes;
    auto it = listed_.find(id);
    if (it == listed_.end()) {
      if (ps.used_blobs > 0) {
        return Error(Error::Code::kCorrupt,
                     "pack " + repo::hex(id) +
                         " is missing but holds data snapshots use: refusing to prune (nothing "
                         "was changed; run 'haven check')");
      }
      fate_[id] = Fate::kDelete;  // only dropped from the index
      continue;
    }
    uint64_t total = ps.used_bytes + ps.unused_bytes;
    if (ps.used_blobs == 0) {
      fate_[id] = Fate::kDelete;
    } else if (ps.unused_bytes > 0 &&
               100.0 * double(ps.unused_bytes) / double(total) > opts_.max_unused_percent) {
      fate_[id] = Fate::kRepack;
    } else {
      fate_[id] = Fate::kKeep;
      st_.bytes_unused_kept += ps.unused_bytes;
    }
  }
  for (const auto& [id, size] : listed_) {
    st_.packs_total++;
    st_.bytes_total += size;
    if (!packs_.count(id)) {
      st_.packs_unindexed++;
      fate_[id] = Fate::kDelete;
    }
  }
  for (const auto& [id, f] : fate_) {
    auto it = listed_.find(id);
    uint64_t size = it == listed_.end() ? 0 : it->second;
    if (f == Fate::kDelete && it != listed_.end()) {
      st_.packs_deleted++;
      st_.bytes_deleted += size;
    } else if (f == Fate::kRepack) {
      st_.packs_repacked++;
      st_.bytes_deleted += size;
      const auto& ps = packs_[id];
      st_.blobs_repacked += ps.used_blobs;
      repack_bytes_ += ps.used_bytes;
    }
  }
  st_.blobs_removed = st_.blobs_total - st_.blobs_used;
  return ok_status();
}

Status Pruner::repack() {
  std::unordered_map<Id, std::vector<uint32_t>, IdHash> blobs;  // repacked pack → used positions
  for (const auto& [id, f] : fate_) {
    if (f == Fate::kRepack) blobs[id];
  }
  if (blobs.empty()) return ok_status();
  index_->for_each([&](size_t i, const repo::IndexEntry& e) {
    if (!used_[i]) return;
    auto it = blobs.find(index_->pack_id(e.pack));
    if (it != blobs.end()) it->second.push_back(static_cast<uint32_t>(i));
  });
  HAVEN_TRY(index_->status());
  const repo::MasterKey& mk = repo_.master_key();
  const uint32_t gen = mk.current_generation;
  const uint32_t pack_size = repo_.config().pack_size;
  // By blob type: trees go into packs of their own, as a backup writes them (a pack written
  // before that, trees among data, comes apart when it is repacked).
  std::unique_ptr<repo::PackBuilder> builders[2];
  const uint64_t targets[2] = {pack_size, std::min<uint64_t>(pack_size, repo::kTreePackTarget)};
  auto finish = [&](size_t k) -> Status {
    std::unique_ptr<repo::PackBuilder>& builder = builders[k];
    if (!builder || builder->blob_count() == 0) return ok_status();
    repo::PackRecord rec;
    Bytes data = builder->finish(rec);
    builder.reset();
    HAVEN_TRY(repo_.backend().save_new({ObjectType::kData, repo::hex(rec.id)}, data));
    st_.packs_written++;
    st_.bytes_written += data.size();
    new_packs_.push_back(std::move(rec));
    return ok_status();
  };
  size_t done = 0;
  for (auto& [pack, positions] : blobs) {
    std::string what = "pack " + repo::hex(pack);
    HAVEN_ASSIGN(Bytes data, repo_.backend().load({ObjectType::kData, repo::hex(pack)}));
    std::vector<repo::IndexEntry> entries;  // read once (a spilled index reads from disk)
    entries.reserve(positions.size());
    for (uint32_t pos : positions) entries.push_back(index_->at(pos));
    HAVEN_TRY(index_->status());
    std::sort(entries.begin(), entries.end(),
              [](const repo::IndexEntry& x, const repo::IndexEntry& y) { return x.offset < y.offset; });
    for (const repo::IndexEntry& e : entries) {
      uint32_t egen = index_->pack_key_generation(e.pack);
      const crypto::SecretKey* key = mk.encryption_key(egen);
      std::string bwhat = std::string(repo::blob_type_name(e.type)) + " blob " + repo::hex(e.id) +
                          " in " + what;
      if (key == nullptr || uint64_t(e.offset) + e.length > data.size()) {
        return Error(Error::Code::kCorrupt, bwhat + ": cannot be read; prune stopped before "
                                                    "deleting anything (run 'haven check')");
      }
      auto record = repo::open_blob_record(*key, pack, egen, e.type, e.id, e.offset,
                                           ByteView(data).subspan(e.offset, e.length), bwhat);
      if (!record.ok()) {
        return record.error().with_context("prune stopped before deleting anything (run 'haven check')");
      }
      const size_t k = e.type == BlobType::kTree ? 1 : 0;
      std::unique_ptr<repo::PackBuilder>& builder = builders[k];
      if (!builder) {
        builder = std::make_unique<repo::PackBuilder>(*mk.encryption_key(gen), gen, Bytes{},
                                                      static_cast<size_t>(targets[k]) + (1u << 20));
      }
      builder->add_record(e.type, e.id, *record, e.raw_length);
      if (builder->size() >= targets[k]) HAVEN_TRY(finish(k));
    }
    progress("repack", ++done, blobs.size());
    HAVEN_TRY(session_.cancel_token().check());
  }
  HAVEN_TRY(finish(0));
  return finish(1);
}

Status Pruner::write_index() {
  repo::IndexWriter writer(repo_);  // the repository's one batching policy for index files
  // New packs first: a later reader that loads the old and new files in any order finds every
  // blob at least once.
  for (auto& rec : new_packs_) HAVEN_TRY(writer.add(std::move(rec)));
  new_packs_.clear();
  std::unordered_set<Id, IdHash> emitted;
  Status st = ok_status();
  for (const auto& name : old_index_) {
    auto records = repo_.load_index_file(name);
    if (!records.ok()) {
      st = records.error();
      break;
    }
    for (auto& rec : *records) {
      if (fate_[rec.id] != Fate::kKeep || !emitted.insert(rec.id).second) continue;
      st = writer.add(std::move(rec));
      if (!st.ok()) break;
    }
    if (!st.ok()) break;
  }
  if (st.ok()) st = writer.flush();
  st_.index_files_written = writer.files_written();
  return st;
}

Status Pruner::delete_old() {
  // The new index is durable: the old files may go, then the packs nothing names any more.
  size_t done = 0, total = old_index_.size() + st_.packs_deleted + st_.packs_repacked;
  // Deleting is safe only under a live exclusive lock: once ours may look stale, a backup
  // elsewhere may have started to reference what we are about to delete.
  HAVEN_TRY(session_.check_lock());
  for (const auto& name : old_index_) {
    HAVEN_TRY(session_.cancel_token().check());
    Status s = repo_.backend().remove({ObjectType::kIndex, name});
    if (!s.ok() && s.error().code() != Error::Code::kNotFound) return s;
    st_.index_files_deleted++;
    progress("delete", ++done, total);
  }
  for (const auto& [id, f] : fate_) {
    if (f == Fate::kKeep || !listed_.count(id)) continue;
    HAVEN_TRY(session_.check_lock());
    HAVEN_TRY(session_.cancel_token().check());
    Status s = repo_.backend().remove({ObjectType::kData, repo::hex(id)});
    if (!s.ok() && s.error().code() != Error::Code::kNotFound) return s;
    progress("delete", ++done, total);
  }
  return ok_status();
}

// Temporary files of saves that were interrupted (a killed backup leaves up to one pack per
// uploader), from the age Backend::leftover_min_age gives (young keys and locks may be in use).
Status Pruner::remove_leftovers() {
  for (auto type : {ObjectType::kData, ObjectType::kIndex, ObjectType::kSnapshot, ObjectType::kKey,
                    ObjectType::kLock, ObjectType::kWal}) {
    HAVEN_ASSIGN(auto l, repo_.backend().remove_leftovers(type, storage::Backend::leftover_min_age(type),
                                                          opts_.dry_run));
    st_.leftovers += l.files;
    st_.leftover_bytes += l.bytes;
    st_.bytes_deleted += l.bytes;
  }
  return ok_status();
}

Result<PruneStats> Pruner::run() {
  auto start = std::chrono::steady_clock::now();
  if (!(opts_.max_unused_percent >= 0 && opts_.max_unused_percent <= 100)) {
    return Error(Error::Code::kInvalidArgument,
                 "--max-unused must be a percentage between 0 and 100");
  }
  HAVEN_ASSIGN(old_index_, repo_.list_index_files());
  // An index of its own: what it deletes is judged on one consistent reading of the files.
  auto loaded = repo_.read_index();
  if (!loaded.ok()) {
    return loaded.error().with_context(
        "refusing to prune with an unreadable index (nothing was changed; run 'haven repair "
        "index')");
  }
  own_index_ = std::move(*loaded);
  index_ = own_index_.get();
  used_.assign(index_->blob_count(), false);
  HAVEN_TRY(mark_used());
  HAVEN_TRY(count_packs());
  bool nothing = st_.packs_deleted == 0 && st_.packs_repacked == 0 &&
                 std::none_of(fate_.begin(), fate_.end(),
                              [](const auto& f) { return f.second == Fate::kDelete; });
  if (!opts_.dry_run && !nothing) {
    HAVEN_TRY(repack());
    HAVEN_TRY(write_index());
    Status deleted = delete_old();
    // The repository's shared index (if loaded) may name what was deleted, and misses the new
    // packs: it is read again, or dropped (then lookups find nothing, and nothing is lost).
    if (repo_.index_loaded() && !repo_.load_index().ok()) repo_.unload_index();
    HAVEN_TRY(deleted);
  }
  HAVEN_TRY(remove_leftovers());
  st_.duration_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::steady_clock::now() - start)
                                              .count());
  // A dry run estimates what repacking would write: the sealed blobs that move (the new packs'
  // headers and trailers add a little more).
  if (opts_.dry_run) st_.bytes_written = repack_bytes_;
  return st_;
}

}  // namespace

Result<PruneStats> prune(repo::Session& session, const PruneOptions& options,
                         const EventTarget& target) {
  CancelScope scope(session.cancel_token());
  Reporter events(target, OpKind::kPrune);
  events.started({{"dry_run", options.dry_run}});
  Pruner p(session, options, events);
  auto run = p.run();
  // What a cancelled prune could not read is not damage: report the cancellation (a prune that
  // finished before it noticed has done its work, and says so).
  if (!run.ok()) {
    if (Status st = session.cancel_token().check(); !st.ok()) run = st.error();
  }
  return events.finish(std::move(run),
                       [&](const PruneStats& st) { return stats_json(st, options.dry_run); });
}

nlohmann::json stats_json(const PruneStats& s, bool dry_run) {
  return {{"dry_run", dry_run},
          {"snapshots", s.snapshots},
          {"packs_total", s.packs_total},
          {"packs_deleted", s.packs_deleted},
          {"packs_repacked", s.packs_repacked},
          {"packs_written", s.packs_written},
          {"packs_unindexed", s.packs_unindexed},
          {"blobs_total", s.blobs_total},
          {"blobs_used", s.blobs_used},
          {"blobs_removed", s.blobs_removed},
          {"blobs_repacked", s.blobs_repacked},
          {"bytes_total", s.bytes_total},
          {"bytes_unused", s.bytes_unused},
          {"bytes_unused_kept", s.bytes_unused_kept},
          {"bytes_deleted", s.bytes_deleted},
          {"bytes_written", s.bytes_written},
          {"bytes_reclaimed", s.reclaimed()},
          {"index_files_written", s.index_files_written},
          {"index_files_deleted", s.index_files_deleted},
          {"leftovers", s.leftovers},
          {"leftover_bytes", s.leftover_bytes},
          {"duration_ms", s.duration_ms}};
}

}  // namespace haven::retention

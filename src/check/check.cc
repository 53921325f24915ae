#include "check/check.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "repo/pack.h"
#include "repo/tree_ahead.h"

namespace haven::check {

using repo::BlobType;
using repo::Id;
using repo::IdHash;
using storage::ObjectType;

namespace {

// Damage found under a tree: a path relative to it, and the problem (by object) behind it.
struct Damage {
  std::string path;    // "" = the tree itself
  std::string object;  // key into the problem table
  std::string error;
};
using DamageList = std::vector<Damage>;
// Per tree, at most this many damaged paths are kept (the count of the rest is kept).
constexpr size_t kMaxDamagePerTree = 1000;
// Blobs and trees a snapshot needs that no index file names share one problem: the cause is
// almost always one lost index file, and listing each blob would bury the message.
const char* const kMissingObject = "index";

class Checker {
 public:
  Checker(repo::Session& session, const Options& o, Reporter& events)
      : repo_(session.repo()), session_(session), opts_(o), events_(events) {}

  Result<Report> run();

 private:
  Problem& problem(const std::string& object, const std::string& error, bool damage = true);
  void progress(const char* phase, uint64_t done, uint64_t total);
  Status check_keys();
  Status check_packs();
  void read_data();
  // A reader's buffers, reused from pack to pack (fresh ones per pack and per blob cost a
  // mapping, page faults and zeroing each: most of read-data's system time).
  // Two blobs are opened before they are hashed, side by side (Repository::blob_ids): two
  // sets of blob buffers.
  struct Buffers {
    Scratch pack, sealed[2], plain[2];
  };
  void read_pack(const Id& pack, uint64_t size, const std::vector<uint32_t>& positions, Buffers& buf);
  Status check_snapshots();
  const DamageList& walk(const Id& tree);
  void find_orphan_roots();
  std::optional<Damage> blob_damage(BlobType type, const Id& id);

  repo::Repository& repo_;
  repo::Session& session_;
  // The index files as loaded by this check, its own: sessions that back up meanwhile add to
  // the repository's shared index, never to this one.
  std::unique_ptr<repo::Index> own_index_;
  const repo::Index* index_ = nullptr;
  // Over object storage, while a snapshot is walked: its trees loaded ahead of the walk (from
  // this check's own index), a round trip per directory otherwise.
  std::unique_ptr<repo::TreeAhead> ahead_;
  Options opts_;
  Reporter& events_;
  Report report_;
  std::mutex mu_;                                   // guards problems_ and bad_ during read_data
  std::map<std::string, size_t> problem_at_;       // object → position in report_.problems
  std::unordered_map<Id, uint64_t, IdHash> listed_;  // packs in storage → size
  // Packs the index names → how far its blobs reach and how many there are.
  struct IndexedPack {
    uint64_t end = 0;
    uint32_t blobs = 0;
  };
  std::unordered_map<Id, IndexedPack, IdHash> indexed_packs_;
  // The largest sealed and plain blob the index names: each reader's blob buffers are that
  // large from the start (mapped, not touched) instead of growing blob by blob.
  uint32_t max_sealed_ = 0, max_plain_ = 0;
  std::unordered_map<Id, std::string, IdHash> bad_packs_;  // pack → problem object
  std::unordered_map<size_t, std::string> bad_blobs_;      // index position → problem object
  std::vector<bool> seen_;                         // per index position: reached by a snapshot
  std::unordered_map<Id, DamageList, IdHash> damaged_trees_;
  std::unordered_map<Id, DamageList, IdHash> missing_trees_;  // trees not in the index
  std::unordered_set<Id, IdHash> missing_;  // blobs and trees snapshots need that no index names
};

Problem& Checker::problem(const std::string& object, const std::string& error, bool damage) {
  auto it = problem_at_.find(object);
  if (it != problem_at_.end()) return report_.problems[it->second];
  problem_at_[object] = report_.problems.size();
  Problem p;
  p.object = object;
  p.error = error;
  p.damage = damage;
  report_.problems.push_back(std::move(p));
  return report_.problems.back();
}

void Checker::progress(const char* phase, uint64_t done, uint64_t total) {
  if (!events_.progress_due() && done != total) return;
  Progress p;
  p.phase = phase;
  p.items_done = done;
  p.items_total = total;
  p.final = total > 0 && done == total;
  events_.progress(std::move(p));
}


Status Checker::check_keys() {
  HAVEN_ASSIGN(auto keys, repo_.list_keys());
  report_.keys = keys.size();
  for (const auto& k : keys) {
    if (k.problem.empty()) continue;
    std::string remove = "remove it with 'haven key remove " + k.id.substr(0, 8) + "'";
    // A key file of another repository is a problem of the key file, not of the config.
    problem("key " + k.id,
            k.problem + (k.foreign ? " (it opens nothing here; " + remove + ")"
                                   : " (the repository stays readable with its other keys; " +
                                         remove + ")"));
  }
  return ok_status();
}

Status Checker::check_packs() {
  HAVEN_TRY(repo_.backend().list(ObjectType::kData, [&](const storage::ObjectInfo& i) {
    if (auto id = repo::parse_id(i.name.name)) listed_[*id] = i.size;
  }));
  report_.packs = listed_.size();
  // What the index needs of each pack: it must exist and reach past its last blob.
  index_->for_each([&](size_t, const repo::IndexEntry& e) {
    auto& n = indexed_packs_[index_->pack_id(e.pack)];
    n.end = std::max<uint64_t>(n.end, uint64_t(e.offset) + e.length);
    n.blobs++;
    max_sealed_ = std::max(max_sealed_, e.length);
    max_plain_ = std::max(max_plain_, e.raw_length);
  });
  HAVEN_TRY(index_->status());
  for (const auto& [id, n] : indexed_packs_) {
    std::string object = "pack " + repo::hex(id);
    auto it = listed_.find(id);
    if (it == listed_.end()) {
      problem(object, "missing: the index names it but storage does not have it");
      bad_packs_[id] = object;
    } else if (it->second < n.end + 4 + crypto::kTagSize) {
      problem(object, "truncated to " + std::to_string(it->second) + " bytes (the index needs " +
                          std::to_string(n.end + 4 + crypto::kTagSize) + ")");
      bad_packs_[id] = object;
    }
  }
  for (const auto& [id, size] : listed_) {
    if (indexed_packs_.count(id)) continue;
    report_.packs_unindexed++;
    problem("pack " + repo::hex(id),
            "not in any index (left by an interrupted backup or prune, or its index file was "
            "lost): 'haven repair index' indexes it again, 'haven prune' deletes it",
            /*damage=*/false);
  }
  return ok_status();
}

void Checker::read_data() {
  // Packs to read: those the index names and storage has, narrowed to the subset asked for.
  std::vector<Id> packs;
  for (const auto& [id, size] : listed_) {
    if (bad_packs_.count(id)) continue;
    packs.push_back(id);
  }
  std::sort(packs.begin(), packs.end());
  if (opts_.read_data == Options::ReadData::kGroup) {
    std::erase_if(packs, [&](const Id& id) {
      uint32_t v = get_u32le(id.data());
      return v % opts_.groups != opts_.group - 1;
    });
  } else if (opts_.read_data == Options::ReadData::kPercent) {
    std::mt19937_64 rng{std::random_device{}()};
    std::shuffle(packs.begin(), packs.end(), rng);
    size_t n = static_cast<size_t>(std::ceil(packs.size() * opts_.percent / 100.0));
    packs.resize(std::min(packs.size(), n));
  }
  // The index positions of each pack's blobs, for a batch of packs at a time (one pass over the
  // index per batch): memory holds at most Options::read_batch_blobs positions (or one pack's)
  // however big the repository, where one map of every position cost 4 bytes and more per blob.
  auto blobs_in = [&](const Id& pack) {
    auto it = indexed_packs_.find(pack);
    return it == indexed_packs_.end() ? size_t{0} : size_t{it->second.blobs};
  };
  // Under a memory limit, as many readers as fit: each holds a pack and two blobs, each sealed
  // and opened.
  const repo::Config& config = repo_.config();
  const size_t readers = repo_.memory_budget().threads(
      static_cast<unsigned>(opts_.threads), uint64_t{config.pack_size} + 4 * uint64_t{config.chunker.max_size});
  std::vector<Buffers> buffers(std::max<size_t>(1, std::min(readers, packs.size())));
  std::atomic<size_t> done{0};
  for (size_t from = 0; from < packs.size() && !session_.cancel_token().cancelled();) {
    std::unordered_map<Id, std::vector<uint32_t>, IdHash> positions;
    size_t to = from, batch = 0;
    for (; to < packs.size() && (to == from || batch + blobs_in(packs[to]) <= opts_.read_batch_blobs); to++) {
      batch += blobs_in(packs[to]);
      positions[packs[to]].reserve(blobs_in(packs[to]));
    }
    index_->for_each([&](size_t i, const repo::IndexEntry& e) {
      auto it = positions.find(index_->pack_id(e.pack));
      if (it != positions.end()) it->second.push_back(static_cast<uint32_t>(i));
    });
    std::atomic<size_t> next{from};
    auto worker = [&](Buffers& buf) {
      CancelScope scope(session_.cancel_token());
      // Sized once: grown blob by blob, each larger blob cost a new mapping (the old one's
      // unmapping stalls the other readers' page faults) and its pages touched afresh.
      // At most a chunk's size (a damaged entry may claim gigabytes; a rare larger tree still
      // grows the buffer when it comes).
      for (int i = 0; i < 2; i++) {
        buf.sealed[i].reserve(std::min<uint64_t>(max_sealed_, uint64_t{config.chunker.max_size} + 1 + crypto::kTagSize));
        buf.plain[i].reserve(std::min<uint64_t>(max_plain_, config.chunker.max_size));
      }
      for (size_t k = next++; k < to && !session_.cancel_token().cancelled(); k = next++) {
        // at(): no insertion across threads
        read_pack(packs[k], listed_.at(packs[k]), positions.at(packs[k]), buf);
        size_t d = ++done;
        progress("read-data", d, packs.size());
      }
    };
    std::vector<std::thread> threads;
    for (size_t i = 0; i < std::min(buffers.size(), to - from); i++) {
      threads.emplace_back(worker, std::ref(buffers[i]));
    }
    for (auto& t : threads) t.join();
    from = to;
  }
}

void Checker::read_pack(const Id& pack, uint64_t size, const std::vector<uint32_t>& positions,
                        Buffers& buf) {
  std::string object = "pack " + repo::hex(pack);
  std::span<uint8_t> data(buf.pack.reserve(size), size);
  std::vector<std::pair<size_t, std::string>> bad;  // position → error
  // The pack's entries, read once (an index that spilled to disk reads them from there).
  struct Item {
    uint32_t pos;
    repo::IndexEntry e;
    uint64_t end() const { return uint64_t{e.offset} + e.length; }
  };
  std::vector<Item> items;
  items.reserve(positions.size());
  for (uint32_t pos : positions) items.push_back({pos, index_->at(pos)});
  repo::PackKeys keys;
  // A blob opened and waiting for another to be hashed beside it, and the buffers the next
  // one opens into.
  struct Opened {
    const Item* item;
    ByteView plain;
  };
  std::optional<Opened> waiting;
  int slot = 0;
  auto mismatch = [&](const Item& item) {
    const repo::IndexEntry& e = item.e;
    bad.emplace_back(item.pos, std::string(repo::blob_type_name(e.type)) + " blob " + repo::hex(e.id) +
                                   ": content does not hash to its ID");
  };
  auto hash_waiting = [&] {
    if (!waiting) return;
    if (repo_.blob_id(waiting->plain) != waiting->item->e.id) mismatch(*waiting->item);
    waiting.reset();
  };
  auto verify = [&](const Item& item) {
    const uint32_t pos = item.pos;
    const repo::IndexEntry& e = item.e;
    auto what = [&] { return std::string(repo::blob_type_name(e.type)) + " blob " + repo::hex(e.id); };
    if (uint64_t(e.offset) + e.length > data.size()) {
      bad.emplace_back(pos, what() + ": reaches past the end of the pack");
      return;
    }
    const crypto::SecretKey* key = repo_.master_key().encryption_key(index_->pack_key_generation(e.pack));
    if (key == nullptr) {
      bad.emplace_back(pos, what() + ": sealed with an unknown key generation");
      return;
    }
    // Opened into another buffer, so the pack's bytes stay as read (index entries may overlap
    // in a damaged repository).
    auto plain = repo::open_blob_into(*key, keys, pack, index_->pack_key_generation(e.pack), e.type,
                                      e.id, e.offset, ByteView(data.data() + e.offset, e.length),
                                      buf.sealed[slot].reserve(e.length), e.raw_length, what,
                                      buf.plain[slot]);
    if (!plain.ok()) {
      bad.emplace_back(pos, plain.error().message());
      return;
    }
    if (!waiting) {
      waiting = Opened{&item, *plain};
      slot ^= 1;
      return;
    }
    auto [first, second] = repo_.blob_ids(waiting->plain, *plain);
    if (first != waiting->item->e.id) mismatch(*waiting->item);
    if (second != e.id) mismatch(item);
    waiting.reset();
    slot ^= 1;
  };
  // Each blob is verified as soon as its bytes are in (an object store streams the pack).
  std::vector<Item> order(items);
  std::sort(order.begin(), order.end(), [](const Item& x, const Item& y) { return x.end() < y.end(); });
  size_t next = 0;
  Status read = repo_.backend().load_streaming({ObjectType::kData, repo::hex(pack)}, 0, data, [&](size_t n) {
    for (; next < order.size() && order[next].end() <= n; next++) verify(order[next]);
  });
  hash_waiting();
  std::unique_lock<std::mutex> lk(mu_);  // held only around shared state
  if (!read.ok()) {
    problem(object, "cannot be read: " + read.error().message());
    bad_packs_[pack] = object;
    return;
  }
  report_.packs_read++;
  report_.bytes_read += data.size();
  lk.unlock();
  for (; next < order.size(); next++) verify(order[next]);  // those reaching past the end
  hash_waiting();
  // Reported in index order, as before the blobs were verified in the order they arrive.
  std::sort(bad.begin(), bad.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  auto trailer = repo::read_pack_trailer(repo_.master_key(), pack, data);
  std::string trailer_error;
  size_t mismatched = 0;
  if (!trailer.ok()) {
    trailer_error = trailer.error().message();
  } else {
    std::unordered_map<Id, std::pair<uint32_t, uint32_t>, IdHash> in_trailer;
    for (const auto& b : trailer->blobs) in_trailer[b.id] = {b.offset, b.length};
    std::unordered_set<size_t> failed;  // blobs that failed are reported as such, not again here
    for (const auto& [pos, err] : bad) failed.insert(pos);
    for (const Item& item : items) {
      if (failed.count(item.pos) != 0) continue;
      const repo::IndexEntry& e = item.e;
      // Compared by value: make_pair would bind references to the packed (unaligned) fields.
      auto it = in_trailer.find(e.id);
      if (it == in_trailer.end() || it->second.first != e.offset || it->second.second != e.length) {
        mismatched++;
      }
    }
  }
  lk.lock();
  report_.blobs_read += positions.size();
  if (!trailer_error.empty()) {
    problem(object, "trailer damaged: " + trailer_error +
                        " (its blobs are still readable through the index; 'haven repair index' "
                        "could not rebuild this pack's entries)");
  } else if (mismatched > 0) {
    problem(object, "its trailer disagrees with the index about " + std::to_string(mismatched) +
                        " blob(s)");
  }
  for (auto& [pos, err] : bad) {
    const auto& e = index_->at(pos);
    std::string bobj = std::string(repo::blob_type_name(e.type)) + " blob " + repo::hex(e.id);
    problem(bobj, err + " (in " + object + ")");
    bad_blobs_[pos] = bobj;
  }
}

std::optional<Damage> Checker::blob_damage(BlobType type, const Id& id) {
  std::string bobj = std::string(repo::blob_type_name(type)) + " blob " + repo::hex(id);
  auto pos = index_->position(type, id);
  if (!pos) {
    missing_.insert(id);
    return Damage{"", kMissingObject, ""};
  }
  seen_[*pos] = true;
  auto bb = bad_blobs_.find(*pos);
  if (bb != bad_blobs_.end()) return Damage{"", bb->second, ""};
  auto bp = bad_packs_.find(index_->pack_id(index_->at(*pos).pack));
  if (bp != bad_packs_.end()) return Damage{"", bp->second, ""};
  return std::nullopt;
}

const DamageList& Checker::walk(const Id& tree) {
  static const DamageList kNone;
  auto pos = index_->position(BlobType::kTree, tree);
  if (!pos) {
    auto it = missing_trees_.find(tree);
    if (it != missing_trees_.end()) return it->second;
    missing_.insert(tree);
    return missing_trees_[tree] = {Damage{"", kMissingObject, ""}};
  }
  if (seen_[*pos]) {
    auto it = damaged_trees_.find(tree);
    return it == damaged_trees_.end() ? kNone : it->second;
  }
  report_.trees++;
  if (report_.trees % 1000 == 0) progress("trees", report_.trees, 0);
  DamageList out;
  if (auto d = blob_damage(BlobType::kTree, tree)) {
    out.push_back(*d);
    return damaged_trees_[tree] = std::move(out);
  }
  auto t = ahead_ ? ahead_->take(tree, "") : repo_.load_tree(tree, *index_);
  if (!t.ok()) {
    std::string obj = "tree " + repo::hex(tree);
    out.push_back({"", obj, t.error().message()});
    return damaged_trees_[tree] = std::move(out);
  }
  for (const auto& n : t->nodes) {
    if (n.type == repo::Node::Type::kFile) {
      std::optional<Damage> first;
      for (const auto& c : n.content) {
        report_.data_blobs++;
        auto d = blob_damage(BlobType::kData, c.id);
        if (!d && !c.whole()) {
          // A slice must lie inside its blob.
          const uint32_t raw = index_->at(*index_->position(BlobType::kData, c.id)).raw_length;
          if (uint64_t{c.offset} + c.length > raw) {
            d = Damage{"", "data blob " + repo::hex(c.id),
                       "the snapshot takes " + std::to_string(c.length) + " bytes at " +
                           std::to_string(c.offset) + " of it, past its end (" +
                           std::to_string(raw) + " bytes)"};
          }
        }
        if (d && !first) first = d;
      }
      if (first && out.size() < kMaxDamagePerTree) {
        first->path = n.name;
        out.push_back(std::move(*first));
      }
    } else if (n.type == repo::Node::Type::kDir && n.subtree) {
      const DamageList& sub = walk(*n.subtree);
      for (const auto& d : sub) {
        if (out.size() >= kMaxDamagePerTree) break;
        out.push_back({d.path.empty() ? n.name : n.name + "/" + d.path, d.object, d.error});
      }
    }
  }
  if (out.empty()) return kNone;
  return damaged_trees_[tree] = std::move(out);
}

Status Checker::check_snapshots() {
  // The snapshot objects are fetched ahead of the one being walked (on object storage each is
  // a round trip); names that are not snapshot IDs are reported, not fetched.
  size_t done = 0, total = 0;
  return repo_.for_each_snapshot([&](const std::string& name, std::optional<Id> id,
                                     Result<repo::Snapshot>& snap) -> Status {
    HAVEN_TRY(session_.cancel_token().check());
    progress("snapshots", ++done, total);
    report_.snapshots++;
    std::string object = "snapshot " + name;
    if (!id) {
      problem(object, "not a valid snapshot name", false);
      return ok_status();
    }
    if (!snap.ok()) {
      Problem& p = problem(object, snap.error().message());
      p.affected[name] = {"/"};
      p.affected_count[name] = 1;
      return ok_status();
    }
    // One per snapshot (null on a local disk), so that trees taken along for directories an
    // earlier snapshot's walk already checked go with it.
    ahead_ = repo::TreeAhead::for_walk(repo_, session_.cancel_token(), 0.1, index_);
    const DamageList& damage = walk(snap->tree);
    ahead_.reset();
    for (const auto& d : damage) {
      Problem& p = problem(d.object, d.error);
      if (d.object == kMissingObject) {
        p.error = std::to_string(missing_.size()) +
                  " blob(s) that snapshots reference are in no index file (an index file was "
                  "lost or damaged, or a pack is missing: 'haven repair index' rebuilds the "
                  "index from the packs that are there)";
      }
      auto& paths = p.affected[name];
      if (paths.size() < opts_.max_paths) paths.push_back("/" + d.path);
      p.affected_count[name]++;
    }
    return ok_status();
  }, [&](size_t n) { total = n; });
}

// Trees no snapshot reaches and no other unreached tree contains are the roots of snapshots
// that were removed: by 'haven forget' (prune then deletes them), or by hand.
void Checker::find_orphan_roots() {
  std::vector<size_t> unseen;
  index_->for_each([&](size_t i, const repo::IndexEntry& e) {
    if (seen_[i]) return;
    report_.blobs_unused++;
    report_.bytes_unused += e.length;
    if (e.type == BlobType::kTree) unseen.push_back(i);
  });
  if (unseen.empty()) return;
  std::vector<bool> contained(index_->blob_count(), false);
  for (size_t pos : unseen) {
    auto t = repo_.load_tree(index_->at(pos).id, *index_);
    if (!t.ok()) continue;  // unreferenced and unreadable: prune deletes it
    for (const auto& n : t->nodes) {
      if (!n.subtree) continue;
      if (auto sp = index_->position(BlobType::kTree, *n.subtree)) contained[*sp] = true;
    }
  }
  size_t roots = 0;
  for (size_t pos : unseen) roots += contained[pos] ? 0 : 1;
  if (roots > 0) {
    problem("trees", std::to_string(roots) +
                         " directory tree(s) are the root of no snapshot: snapshots were removed "
                         "(by 'haven forget' — 'haven prune' reclaims their space — or by hand)",
            false);
  }
}

Result<Report> Checker::run() {
  auto start = std::chrono::steady_clock::now();
  HAVEN_TRY(check_keys());
  HAVEN_ASSIGN(auto index_files, repo_.list_index_files());
  report_.index_files = index_files.size();
  HAVEN_ASSIGN(own_index_, repo_.read_index([&](const std::string& name, const Error& e) {
    problem("index " + name,
            e.message() + " (the packs it named look unindexed: 'haven repair index' rebuilds it)");
  }));
  index_ = own_index_.get();
  seen_.assign(index_->blob_count(), false);
  HAVEN_TRY(check_packs());
  if (opts_.read_data != Options::ReadData::kNone) read_data();
  HAVEN_TRY(check_snapshots());
  find_orphan_roots();
  uint64_t files = 0, bytes = 0;
  for (auto t : {ObjectType::kData, ObjectType::kIndex, ObjectType::kSnapshot, ObjectType::kKey,
                 ObjectType::kLock, ObjectType::kWal}) {
    // The same files prune would remove (a young key or lock may still be being written).
    HAVEN_ASSIGN(auto l, repo_.backend().remove_leftovers(t, storage::Backend::leftover_min_age(t),
                                                          /*dry_run=*/true));
    files += l.files;
    bytes += l.bytes;
  }
  if (files > 0) {
    problem("temporary files", std::to_string(files) + " file(s), " + std::to_string(bytes) +
                                   " bytes, left by interrupted writes: 'haven prune' removes them",
            false);
  }
  // Damage first, then notices; each group in the order found.
  std::stable_partition(report_.problems.begin(), report_.problems.end(),
                        [](const Problem& p) { return p.damage; });
  report_.duration_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  std::chrono::steady_clock::now() - start)
                                                  .count());
  return report_;
}

}  // namespace

bool Report::damaged() const {
  return std::any_of(problems.begin(), problems.end(), [](const Problem& p) { return p.damage; });
}

Status parse_subset(const std::string& spec, Options& o) {
  auto bad = [&] {
    return Error(Error::Code::kInvalidArgument,
                 "bad --read-data-subset '" + spec +
                     "': give a percentage like '10%' (0 < N <= 100) or a group like '2/5' "
                     "(1 <= K <= N)");
  };
  try {
    if (!spec.empty() && spec.back() == '%') {
      size_t used = 0;
      double p = std::stod(spec.substr(0, spec.size() - 1), &used);
      if (used != spec.size() - 1 || !(p > 0) || p > 100) return bad();
      o.read_data = Options::ReadData::kPercent;
      o.percent = p;
      return ok_status();
    }
    auto slash = spec.find('/');
    if (slash == std::string::npos) return bad();
    size_t u1 = 0, u2 = 0;
    unsigned long k = std::stoul(spec.substr(0, slash), &u1);
    unsigned long n = std::stoul(spec.substr(slash + 1), &u2);
    if (u1 != slash || u2 != spec.size() - slash - 1 || k < 1 || n < 1 || k > n || n > 1000000 ||
        spec[0] == '-' || spec[slash + 1] == '-') {
      return bad();
    }
    o.read_data = Options::ReadData::kGroup;
    o.group = static_cast<uint32_t>(k);
    o.groups = static_cast<uint32_t>(n);
    return ok_status();
  } catch (const std::exception&) {
    return bad();
  }
}

Result<Report> check(repo::Session& session, const Options& options, const EventTarget& target) {
  CancelScope scope(session.cancel_token());
  Reporter events(target, OpKind::kCheck);
  events.started({{"read_data", options.read_data != Options::ReadData::kNone}});
  Checker c(session, options, events);
  auto report = c.run();
  // What a cancelled check could not read is not damage: report the cancellation instead.
  if (Status st = session.cancel_token().check(); !st.ok()) report = st.error();
  return events.finish(std::move(report), [](const Report& r) {
    return nlohmann::json{{"damaged", r.damaged()}, {"problems", r.problems.size()}};
  });
}

nlohmann::json report_json(const Report& r) {
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& p : r.problems) {
    nlohmann::json affected = nlohmann::json::array();
    for (const auto& [snap, paths] : p.affected) {
      auto it = p.affected_count.find(snap);
      affected.push_back({{"snapshot", snap},
                          {"paths", paths},
                          {"paths_total", it == p.affected_count.end() ? paths.size() : it->second}});
    }
    problems.push_back({{"object", p.object},
                        {"error", p.error},
                        {"severity", p.damage ? "damage" : "notice"},
                        {"affected", affected}});
  }
  return {{"healthy", !r.damaged()},
          {"problems", problems},
          {"keys", r.keys},
          {"index_files", r.index_files},
          {"snapshots", r.snapshots},
          {"trees", r.trees},
          {"data_blobs", r.data_blobs},
          {"packs", r.packs},
          {"packs_unindexed", r.packs_unindexed},
          {"packs_read", r.packs_read},
          {"blobs_read", r.blobs_read},
          {"bytes_read", r.bytes_read},
          {"blobs_unused", r.blobs_unused},
          {"bytes_unused", r.bytes_unused},
          {"wal_files", r.wal_files},
          {"wal_read", r.wal_read},
          {"duration_ms", r.duration_ms}};
}

}  // namespace haven::check

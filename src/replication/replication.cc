#include "replication/replication.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "ops/lock.h"
#include "repo/ids.h"
#include "repo/keys.h"
#include "repo/object.h"
#include "repo/pack.h"
#include "util/bytes.h"
#include "util/cancel.h"

namespace haven::replication {

using storage::ObjectInfo;
using storage::ObjectName;
using storage::ObjectType;

namespace {

constexpr TimeNs kNsPerMs = 1'000'000;

TimeNs clock_now(TimeNs given) { return given != 0 ? given : haven::now(); }

int64_t elapsed_ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

// Runs fn(i) for i in [0, n) on up to `parallel` threads; stops starting new items after the
// first error (or a cancel) and returns that error.
Status run_parallel(size_t n, unsigned parallel, const std::function<Status(size_t)>& fn) {
  if (n == 0) return ok_status();
  const CancelToken token = current_cancel();
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::optional<Error> first;
  auto worker = [&] {
    CancelScope scope(token);
    for (;;) {
      {
        std::lock_guard<std::mutex> g(mu);
        if (first) return;
      }
      if (Status c = token.check(); !c.ok()) {
        std::lock_guard<std::mutex> g(mu);
        if (!first) first = c.error();
        return;
      }
      const size_t i = next.fetch_add(1);
      if (i >= n) return;
      Status s = fn(i);
      if (!s.ok()) {
        std::lock_guard<std::mutex> g(mu);
        if (!first) first = s.error();
        return;
      }
    }
  };
  const unsigned threads = static_cast<unsigned>(std::min<size_t>(std::max(1u, parallel), n));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; t++) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (first) return *first;
  return ok_status();
}

ObjectName name_of(const ObjectKey& k) { return ObjectName{k.first, k.second}; }

// Single-record encrypted objects: their kind.
std::optional<repo::ObjectKind> sealed_kind(ObjectType t) {
  switch (t) {
    case ObjectType::kConfig: return repo::ObjectKind::kConfig;
    case ObjectType::kIndex: return repo::ObjectKind::kIndex;
    case ObjectType::kSnapshot: return repo::ObjectKind::kSnapshot;
    case ObjectType::kLock: return repo::ObjectKind::kLock;
    default: return std::nullopt;
  }
}

}  // namespace

const std::vector<ObjectType>& replicated_types() {
  static const std::vector<ObjectType> types = {ObjectType::kKey,  ObjectType::kConfig,
                                                ObjectType::kWal,  ObjectType::kData,
                                                ObjectType::kIndex, ObjectType::kSnapshot};
  return types;
}

std::string describe(const ObjectKey& key) { return name_of(key).describe(); }

Result<Inventory> inventory(storage::Backend& backend) {
  Inventory inv;
  std::mutex mu;
  // Referencing types first: what they name was durable before they were written, so it is
  // listed below even if it landed after this listing began.
  for (ObjectType t : {ObjectType::kSnapshot, ObjectType::kIndex, ObjectType::kKey,
                       ObjectType::kConfig, ObjectType::kWal, ObjectType::kData}) {
    HAVEN_TRY(current_cancel().check());
    if (t == ObjectType::kConfig) {
      auto st = backend.stat({ObjectType::kConfig, "config"});
      if (st.ok()) {
        inv[{t, "config"}] = *st;
      } else if (st.error().code() != Error::Code::kNotFound) {
        return st.error().with_context(backend.location());
      }
      continue;
    }
    Status s = backend.list(t, [&](const ObjectInfo& info) {
      std::lock_guard<std::mutex> g(mu);
      inv[{t, info.name.name}] = info;
    });
    if (!s.ok()) return s.error();
  }
  return inv;
}

nlohmann::json Lag::to_json(TimeNs now) const {
  nlohmann::json j = {{"objects", objects}, {"bytes", bytes}, {"differing", differing},
                      {"extra", extra}};
  j["oldest_seconds"] = oldest ? nlohmann::json(std::max<TimeNs>(0, now - *oldest) / 1'000'000'000)
                               : nlohmann::json(nullptr);
  return j;
}

Lag compare(const Inventory& source, const Inventory& copy) {
  Lag lag;
  for (const auto& [key, info] : source) {
    auto it = copy.find(key);
    if (it == copy.end()) {
      lag.objects++;
      lag.bytes += info.size;
      if (!lag.oldest || info.modified < *lag.oldest) lag.oldest = info.modified;
    } else if (it->second.size != info.size) {
      lag.differing++;
    }
  }
  for (const auto& [key, info] : copy) {
    if (!source.count(key)) lag.extra++;
  }
  return lag;
}

nlohmann::json PassResult::to_json(TimeNs now) const {
  return {{"region", region},
          {"copied_objects", copied_objects},
          {"copied_bytes", copied_bytes},
          {"deleted_objects", deleted_objects},
          {"deletions_deferred", deletions_deferred},
          {"differing", differing},
          {"kept", kept},
          {"lag", lag.to_json(now)},
          {"duration_ms", duration_ms}};
}

Result<uint64_t> copy_object(storage::Backend& source, storage::Backend& region,
                             const ObjectName& name) {
  HAVEN_ASSIGN(Bytes data, source.load(name));
  Status s = region.save(name, data);
  if (s.ok()) return static_cast<uint64_t>(data.size());
  if (s.error().code() == Error::Code::kNotFound) {
    // Not the source's object gone: the region's place is (a directory, a bucket).
    return Error(Error::Code::kIo, region.location() + ": " + s.error().message());
  }
  if (s.error().code() != Error::Code::kAlreadyExists) {
    return s.error().with_context(region.location());
  }
  // There already (a sync write, or a pass that was interrupted after the save): the same
  // object if the sizes agree; objects are immutable and named by their content's salt.
  HAVEN_ASSIGN(ObjectInfo there, region.stat(name));
  if (there.size == data.size()) return uint64_t{0};
  return Error(Error::Code::kCorrupt,
               name.describe() + " in " + region.location() + " has " +
                   std::to_string(there.size) + " bytes, the source's " +
                   std::to_string(data.size()) +
                   ": one copy is damaged (haven check --regions tells which)");
}

Status copy_objects(storage::Backend& source, storage::Backend& region,
                    std::vector<ObjectKey> keys, unsigned parallel,
                    const std::function<void(const ObjectKey&, uint64_t)>& on_copied,
                    const std::function<void(const ObjectKey&)>& on_differing) {
  const auto& order = replicated_types();
  auto rank = [&](ObjectType t) {
    return std::find(order.begin(), order.end(), t) - order.begin();
  };
  std::stable_sort(keys.begin(), keys.end(), [&](const ObjectKey& a, const ObjectKey& b) {
    return rank(a.first) < rank(b.first);
  });
  size_t i = 0;
  while (i < keys.size()) {
    size_t j = i;
    while (j < keys.size() && keys[j].first == keys[i].first) j++;
    Status s = run_parallel(j - i, parallel, [&](size_t k) -> Status {
      const ObjectKey& key = keys[i + k];
      auto n = copy_object(source, region, name_of(key));
      if (!n.ok()) {
        if (n.error().code() == Error::Code::kNotFound) return ok_status();
        if (n.error().code() == Error::Code::kCorrupt && on_differing) {
          on_differing(key);
          return ok_status();
        }
        return n.error().with_context("copying " + describe(key));
      }
      if (on_copied) on_copied(key, *n);
      return ok_status();
    });
    HAVEN_TRY(s);
    i = j;
  }
  return ok_status();
}

Status prepare_region(storage::Backend& primary, storage::Backend& region) {
  auto config = region.stat({ObjectType::kConfig, "config"});
  if (config.ok()) return ok_status();
  if (config.error().code() != Error::Code::kNotFound) return config.error();
  HAVEN_TRY(region.create());
  std::vector<ObjectKey> keys;
  HAVEN_TRY(primary.list(ObjectType::kKey, [&](const ObjectInfo& info) {
    keys.emplace_back(ObjectType::kKey, info.name.name);
  }));
  keys.emplace_back(ObjectType::kConfig, "config");  // last: it makes the place a repository
  return copy_objects(primary, region, keys, 4, {});
}

Status verify_object(const repo::Repository& repo, const ObjectName& name, ByteView bytes) {
  const std::string what = name.describe();
  switch (name.type) {
    case ObjectType::kData: {
      auto id = repo::parse_id(name.name);
      if (!id) return Error(Error::Code::kCorrupt, what + ": not a pack name");
      HAVEN_ASSIGN(repo::PackRecord rec, repo::read_pack_trailer(repo.master_key(), *id, bytes));
      const crypto::SecretKey* key = repo.master_key().encryption_key(rec.key_generation);
      if (key == nullptr) {
        return Error(Error::Code::kCorrupt, what + ": names key generation " +
                                                std::to_string(rec.key_generation) +
                                                ", which the master key does not hold");
      }
      for (const auto& b : rec.blobs) {
        if (static_cast<uint64_t>(b.offset) + b.length > bytes.size()) {
          return Error(Error::Code::kCorrupt, what + ": a blob lies past the end");
        }
        auto r = repo::open_blob_record(*key, *id, rec.key_generation, b.type, b.id,
                                        b.offset, bytes.subspan(b.offset, b.length), what);
        if (!r.ok()) return r.error();
      }
      return ok_status();
    }
    case ObjectType::kWal: {
      auto r = repo.open_wal_object(name.name, bytes);
      if (!r.ok()) return Error(Error::Code::kCorrupt, r.error().message());
      return ok_status();
    }
    case ObjectType::kKey: {
      auto r = repo::read_key_file_info(bytes, "key " + name.name);
      if (!r.ok()) return Error(Error::Code::kCorrupt, r.error().message());
      return ok_status();
    }
    default: {
      auto kind = sealed_kind(name.type);
      if (!kind) return Error(Error::Code::kInvalidArgument, what + ": not a replicated object");
      auto r = repo::open_object(repo.master_key(), *kind, name, bytes);
      if (!r.ok()) return Error(Error::Code::kCorrupt, r.error().message());
      return ok_status();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// replicate

namespace {

bool is_segment_name(const std::string& n) {
  return n.size() == 24 && std::all_of(n.begin(), n.end(), [](char ch) {
           return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F');
         });
}

// Deletes what the region holds and the primary no longer does, in the reverse of the copy
// order, keeping whatever a snapshot the region holds may still need.
Status mirror_deletions(repo::Repository& primary, const Region& region, const Inventory& src,
                        const Inventory& dst, const PassOptions& options, TimeNs started,
                        PassResult& out, const EventTarget& events) {
  std::vector<ObjectKey> extra;
  for (const auto& [key, info] : dst) {
    if (src.count(key)) continue;
    if (info.modified > started - options.deletion_grace) continue;  // young: maybe a sync write
    extra.push_back(key);
  }
  if (extra.empty()) return ok_status();
  auto copy = repo::Repository::open_copy(region.backend, primary);
  if (!copy.ok()) {
    out.deletions_deferred = "the region's repository cannot be opened: " + copy.error().message();
    return ok_status();
  }
  copy.value()->set_cancel_token(current_cancel());
  auto held = ops::lock(**copy, ops::LockMode::kExclusive, events, current_cancel());
  if (!held.ok()) {
    if (held.error().code() == Error::Code::kLocked) {
      out.deletions_deferred = "the region is locked (" + held.error().message() + ")";
      return ok_status();
    }
    return held.error();
  }
  // What the primary's index names: a pack it names but lacks is damage there, not a prune.
  HAVEN_ASSIGN(auto index, primary.read_index([](const std::string&, const Error&) {}));
  std::set<repo::Id> indexed;
  for (size_t i = 0; i < index->pack_count(); i++) indexed.insert(index->pack_id(static_cast<uint32_t>(i)));
  std::set<std::string> primary_packs;
  std::string oldest_segment;
  for (const auto& [key, info] : src) {
    if (key.first == ObjectType::kData) primary_packs.insert(key.second);
    if (key.first == ObjectType::kWal && is_segment_name(key.second) &&
        (oldest_segment.empty() || key.second < oldest_segment)) {
      oldest_segment = key.second;
    }
  }
  std::set<std::string> kept_packs;
  for (const auto& key : extra) {
    if (key.first != ObjectType::kData) continue;
    auto id = repo::parse_id(key.second);
    if (id && indexed.count(*id)) {
      kept_packs.insert(key.second);
      out.kept.push_back(describe(key) + " (the primary's index names it but the primary lacks "
                                         "it: haven repair --from " + region.name + ")");
    }
  }
  auto remove = [&](const ObjectKey& key) -> Status {
    Status s = region.backend->remove(name_of(key));
    if (!s.ok() && s.error().code() != Error::Code::kNotFound) {
      return s.error().with_context("deleting " + describe(key) + " in region " + region.name);
    }
    out.deleted_objects++;
    return ok_status();
  };
  for (ObjectType t : {ObjectType::kSnapshot, ObjectType::kIndex, ObjectType::kData,
                       ObjectType::kWal, ObjectType::kKey}) {
    for (const auto& key : extra) {
      if (key.first != t) continue;
      HAVEN_TRY(current_cancel().check());
      if (t == ObjectType::kIndex) {
        // Only an index file whose every pack the primary's index names, or the primary no
        // longer holds (pruned), may go; one naming a pack the primary holds unindexed is kept.
        auto packs = copy.value()->load_index_file(key.second);
        bool keep = !packs.ok();
        if (packs.ok()) {
          for (const auto& p : *packs) {
            const std::string h = repo::hex(p.id);
            if (kept_packs.count(h) || (!indexed.count(p.id) && primary_packs.count(h))) {
              keep = true;
              break;
            }
          }
        }
        if (keep) {
          out.kept.push_back(describe(key));
          continue;
        }
      }
      if (t == ObjectType::kData && kept_packs.count(key.second)) continue;
      if (t == ObjectType::kWal) {
        // Retention removes a timeline's oldest segments; one missing between others is damage
        // in the primary. Other WAL files (history, backup history, partial) are kept.
        if (!is_segment_name(key.second) || oldest_segment.empty() || key.second > oldest_segment) {
          if (is_segment_name(key.second)) out.kept.push_back(describe(key));
          continue;
        }
      }
      HAVEN_TRY(remove(key));
    }
  }
  return held->release();
}

}  // namespace

Result<PassResult> replicate(repo::Repository& primary, const Region& region,
                             const PassOptions& options, const EventTarget& events) {
  Reporter rep(events, OpKind::kReplication);
  const auto t0 = std::chrono::steady_clock::now();
  const TimeNs started = clock_now(options.now);
  rep.started({{"region", region.name}, {"repository", region.backend->location()}});
  PassResult out;
  out.region = region.name;
  auto run = [&]() -> Status {
    // A shared lock on the primary: no prune deletes what this pass copies.
    HAVEN_ASSIGN(ops::HeldLock held, ops::lock(primary, ops::LockMode::kShared, events,
                                               current_cancel()));
    CancelScope scope(held.session().cancel_token());
    HAVEN_ASSIGN(Inventory src, inventory(primary.backend()));
    auto dst_r = inventory(*region.backend);
    if (!dst_r.ok() && dst_r.error().code() != Error::Code::kCancelled) {
      // A new region whose bucket or container does not exist yet: created, then listed.
      if (Status c = region.backend->create(); c.ok()) dst_r = inventory(*region.backend);
    }
    if (!dst_r.ok()) return dst_r.error().with_context("region " + region.name);
    Inventory dst = std::move(*dst_r);
    if (dst.empty()) {
      // A new region: its directories or bucket first.
      Status c = region.backend->create();
      if (!c.ok()) return c.error().with_context("creating region " + region.name);
    }
    // The plan: what the region lacks (copy_objects copies it in reference order).
    std::vector<ObjectKey> missing;
    uint64_t total_bytes = 0;
    for (const auto& [key, info] : src) {
      auto it = dst.find(key);
      if (it == dst.end()) {
        missing.push_back(key);
        total_bytes += info.size;
      } else if (it->second.size != info.size) {
        out.differing.push_back(describe(key));
      }
    }
    std::atomic<uint64_t> done{0}, objects{0}, bytes{0};
    std::mutex mu;
    auto progress = [&](bool final) {
      Progress p;
      p.phase = "objects";
      p.items_done = done.load();
      p.items_total = missing.size();
      p.bytes_done = bytes.load();
      p.bytes_total = total_bytes;
      p.final = final;
      rep.progress(p);
    };
    Status copied = copy_objects(
        primary.backend(), *region.backend, missing, options.parallel,
        [&](const ObjectKey&, uint64_t n) {
          bytes += n;
          if (n > 0) objects++;
          done++;
          if (rep.progress_due()) progress(false);
        },
        [&](const ObjectKey& key) {
          std::lock_guard<std::mutex> g(mu);
          out.differing.push_back(describe(key));
        });
    if (!copied.ok()) return copied.error().with_context("region " + region.name);
    out.copied_objects = objects;
    out.copied_bytes = bytes;
    progress(true);
    // What the region holds now.
    for (const auto& k : missing) dst[k] = src[k];
    if (options.mirror_deletions) {
      if (!out.differing.empty()) {
        out.deletions_deferred = "objects differ between the copies (haven check --regions)";
      } else {
        HAVEN_TRY(mirror_deletions(primary, region, src, dst, options, started, out, events));
      }
    }
    out.lag = compare(src, dst);
    out.lag.extra -= std::min<uint64_t>(out.lag.extra, out.deleted_objects);
    for (const auto& [key, info] : dst) {
      if (key.first == ObjectType::kSnapshot) out.region_snapshots.push_back(key.second);
    }
    return held.release();
  };
  Status s = run();
  out.duration_ms = static_cast<uint64_t>(elapsed_ms(t0));
  if (!s.ok()) {
    rep.failed(s.error());
    return s.error();
  }
  rep.completed(out.to_json(clock_now(options.now)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// validate

bool RegionReport::ok() const {
  if (!error.empty()) return false;
  return std::none_of(differences.begin(), differences.end(),
                      [](const Difference& d) { return d.kind != "extra"; });
}

nlohmann::json RegionReport::to_json() const {
  nlohmann::json diffs = nlohmann::json::array();
  for (const auto& d : differences) {
    nlohmann::json j = {{"object", d.object},
                        {"type", storage::type_dir(d.type)},
                        {"name", d.name},
                        {"kind", d.kind},
                        {"primary_size", d.primary_size},
                        {"region_size", d.region_size}};
    if (d.primary_sound) j["primary_sound"] = *d.primary_sound;
    if (d.region_sound) j["region_sound"] = *d.region_sound;
    diffs.push_back(std::move(j));
  }
  nlohmann::json j = {{"region", region},       {"objects", objects},
                      {"bytes", bytes},         {"compared", compared},
                      {"ok", ok()},             {"differences", diffs}};
  if (!error.empty()) j["error"] = error;
  return j;
}

Result<std::vector<RegionReport>> validate(repo::Repository& primary, const Region& primary_region,
                                           const std::vector<Region>& regions, bool read_data,
                                           const EventTarget& events) {
  HAVEN_ASSIGN(Inventory src, inventory(*primary_region.backend));
  // Packs the primary's index names: one only a region holds is damage in the primary.
  std::set<std::string> indexed;
  {
    auto index = primary.read_index([](const std::string&, const Error&) {});
    if (index.ok()) {
      for (size_t i = 0; i < (*index)->pack_count(); i++) {
        indexed.insert(repo::hex((*index)->pack_id(static_cast<uint32_t>(i))));
      }
    }
  }
  std::vector<RegionReport> reports;
  for (const auto& region : regions) {
    RegionReport r;
    r.region = region.name;
    auto dst = inventory(*region.backend);
    if (!dst.ok()) {
      if (dst.error().code() == Error::Code::kCancelled) return dst.error();
      r.error = dst.error().message();
      reports.push_back(std::move(r));
      continue;
    }
    for (const auto& [key, info] : *dst) {
      r.objects++;
      r.bytes += info.size;
    }
    std::vector<std::pair<ObjectKey, size_t>> to_verify;  // (key, index in differences)
    std::vector<ObjectKey> same_size;
    for (const auto& [key, info] : src) {
      auto it = dst->find(key);
      Difference d;
      d.object = describe(key);
      d.type = key.first;
      d.name = key.second;
      d.primary_size = info.size;
      if (it == dst->end()) {
        d.kind = "missing";
        r.differences.push_back(std::move(d));
        continue;
      }
      d.region_size = it->second.size;
      if (it->second.size != info.size) {
        d.kind = "size";
        r.differences.push_back(std::move(d));
        to_verify.emplace_back(key, r.differences.size() - 1);
      } else if (read_data) {
        same_size.push_back(key);
      }
    }
    for (const auto& [key, info] : *dst) {
      if (src.count(key)) continue;
      Difference d;
      d.object = describe(key);
      d.type = key.first;
      d.name = key.second;
      d.kind = key.first == ObjectType::kData && indexed.count(key.second) ? "missing_in_primary"
                                                                           : "extra";
      d.region_size = info.size;
      r.differences.push_back(std::move(d));
    }
    // Contents: equal bytes, or a difference whose copies are authenticated below.
    std::mutex mu;
    Status s = run_parallel(same_size.size(), 4, [&](size_t i) -> Status {
      const ObjectName name = name_of(same_size[i]);
      auto a = primary_region.backend->load(name);
      auto b = region.backend->load(name);
      if (a.ok() && b.ok() && *a == *b) {
        std::lock_guard<std::mutex> g(mu);
        r.compared++;
        return ok_status();
      }
      if (!a.ok() && a.error().code() == Error::Code::kCancelled) return a.error();
      Difference d;
      d.object = name.describe();
      d.type = name.type;
      d.name = name.name;
      d.kind = "content";
      d.primary_size = a.ok() ? a->size() : 0;
      d.region_size = b.ok() ? b->size() : 0;
      d.primary_sound = a.ok() && verify_object(primary, name, *a).ok();
      d.region_sound = b.ok() && verify_object(primary, name, *b).ok();
      std::lock_guard<std::mutex> g(mu);
      r.compared++;
      r.differences.push_back(std::move(d));
      return ok_status();
    });
    if (!s.ok()) return s.error();
    for (const auto& [key, pos] : to_verify) {
      HAVEN_TRY(current_cancel().check());
      const ObjectName name = name_of(key);
      auto a = primary_region.backend->load(name);
      auto b = region.backend->load(name);
      r.differences[pos].primary_sound = a.ok() && verify_object(primary, name, *a).ok();
      r.differences[pos].region_sound = b.ok() && verify_object(primary, name, *b).ok();
    }
    std::sort(r.differences.begin(), r.differences.end(),
              [](const Difference& x, const Difference& y) {
                return std::tie(x.type, x.name) < std::tie(y.type, y.name);
              });
    reports.push_back(std::move(r));
  }
  return reports;
}

// ---------------------------------------------------------------------------------------------
// repair

nlohmann::json RepairResult::to_json() const {
  return {{"target", target},         {"source", source},         {"replaced", replaced},
          {"added", added},           {"bytes", bytes},           {"repaired", repaired},
          {"unrepaired", unrepaired}, {"only_in_source", only_in_source}};
}

Result<RepairResult> repair(repo::Repository& repo, const Region& target, const Region& source,
                            const RepairOptions& options, const EventTarget& events) {
  Reporter rep(events, OpKind::kRepair);
  rep.started({{"target", target.name}, {"source", source.name}, {"read_data", options.read_data}});
  RepairResult out;
  out.target = target.name;
  out.source = source.name;
  auto write = [&](const ObjectKey& key, bool replace, const std::string& why) -> Status {
    const ObjectName name = name_of(key);
    HAVEN_ASSIGN(Bytes data, source.backend->load(name));
    if (Status v = verify_object(repo, name, data); !v.ok()) {
      out.unrepaired.push_back(describe(key) + ": " + why + ", and the copy in region " +
                               source.name + " is damaged too (" + v.error().message() + ")");
      return ok_status();
    }
    if (replace) {
      Status s = target.backend->remove(name);
      if (!s.ok() && s.error().code() != Error::Code::kNotFound) return s.error();
    }
    HAVEN_TRY(target.backend->save(name, data));
    (replace ? out.replaced : out.added)++;
    out.bytes += data.size();
    out.repaired.push_back(describe(key) + ": " + why);
    return ok_status();
  };
  auto run = [&]() -> Status {
    HAVEN_ASSIGN(Inventory src, inventory(*source.backend));
    HAVEN_ASSIGN(Inventory dst, inventory(*target.backend));
    // A target without its config or keys is not a repository yet: those come first.
    for (ObjectType t : {ObjectType::kKey, ObjectType::kConfig}) {
      bool has = false;
      for (const auto& [key, info] : dst) has = has || key.first == t;
      if (has) continue;
      for (const auto& [key, info] : src) {
        if (key.first != t) continue;
        HAVEN_TRY(write(key, false, "missing"));
        dst[key] = info;
      }
    }
    HAVEN_ASSIGN(auto copy, repo::Repository::open_copy(target.backend, repo));
    copy->set_cancel_token(current_cancel());
    HAVEN_ASSIGN(ops::HeldLock held, ops::lock(*copy, ops::LockMode::kExclusive, events,
                                               current_cancel()));
    CancelScope scope(held.session().cancel_token());
    // Objects in both, damaged in the target, first: the index read below needs them sound.
    for (const auto& [key, info] : src) {
      auto it = dst.find(key);
      if (it == dst.end()) continue;
      const bool size_differs = it->second.size != info.size;
      // Small objects (index files, snapshots, keys, the config) are always authenticated;
      // packs and WAL files by size, and by content with read_data.
      const bool small = key.first != ObjectType::kData && key.first != ObjectType::kWal;
      if (!size_differs && !options.read_data && !small) continue;
      HAVEN_TRY(current_cancel().check());
      const ObjectName name = name_of(key);
      auto mine = target.backend->load(name);
      if (!mine.ok() && mine.error().code() == Error::Code::kCancelled) return mine.error();
      if (!size_differs && mine.ok() && options.read_data) {
        auto theirs = source.backend->load(name);
        if (theirs.ok() && *theirs == *mine) continue;
      }
      Status v = mine.ok() ? verify_object(repo, name, *mine) : Status(mine.error());
      if (v.ok()) {
        if (size_differs) {
          out.unrepaired.push_back(describe(key) + ": the target's copy is sound; the copy in "
                                   "region " + source.name + " differs (repair that one)");
        }
        continue;
      }
      HAVEN_TRY(write(key, true, "damaged (" + v.error().message() + ")"));
    }
    std::set<repo::Id> indexed;
    if (options.referenced_only) {
      HAVEN_ASSIGN(auto index, copy->read_index([](const std::string&, const Error&) {}));
      for (size_t i = 0; i < index->pack_count(); i++) {
        indexed.insert(index->pack_id(static_cast<uint32_t>(i)));
      }
    }
    std::string first_segment, last_segment;
    for (const auto& [key, info] : dst) {
      if (key.first != ObjectType::kWal || !is_segment_name(key.second)) continue;
      if (first_segment.empty() || key.second < first_segment) first_segment = key.second;
      if (last_segment.empty() || key.second > last_segment) last_segment = key.second;
    }
    // Missing objects, in the copy order (packs before the index files naming them).
    for (ObjectType t : replicated_types()) {
      for (const auto& [key, info] : src) {
        if (key.first != t || dst.count(key)) continue;
        HAVEN_TRY(current_cancel().check());
        bool wanted = !options.referenced_only;
        if (options.referenced_only) {
          switch (t) {
            case ObjectType::kData: {
              auto id = repo::parse_id(key.second);
              wanted = id && indexed.count(*id);
              break;
            }
            case ObjectType::kIndex: {
              auto packs = copy->load_index_file(key.second);
              if (!packs.ok()) {
                // Unreadable with the target's objects: read it from the source.
                auto raw = source.backend->load(name_of(key));
                if (raw.ok()) {
                  auto body = repo::open_object(repo.master_key(), repo::ObjectKind::kIndex,
                                                name_of(key), *raw);
                  if (body.ok()) packs = repo::decode_index_file(*body, describe(key));
                }
              }
              if (packs.ok()) {
                for (const auto& p : *packs) {
                  if (!indexed.count(p.id) && dst.count(ObjectKey{ObjectType::kData, repo::hex(p.id)})) {
                    wanted = true;
                  }
                }
              }
              break;
            }
            case ObjectType::kWal:
              wanted = is_segment_name(key.second) && !first_segment.empty() &&
                       key.second > first_segment && key.second < last_segment;
              break;
            case ObjectType::kSnapshot:
              out.only_in_source.push_back(describe(key));
              break;
            default:
              break;
          }
        }
        if (!wanted) continue;
        HAVEN_TRY(write(key, false, "missing"));
        dst[key] = info;
        if (t == ObjectType::kIndex && options.referenced_only) {
          // Its packs are indexed now.
          auto packs = copy->load_index_file(key.second);
          if (packs.ok()) {
            for (const auto& p : *packs) indexed.insert(p.id);
          }
        }
      }
    }
    if (options.referenced_only) {
      for (const auto& id : indexed) {
        const ObjectKey key{ObjectType::kData, repo::hex(id)};
        if (!dst.count(key) && !src.count(key)) {
          out.unrepaired.push_back(describe(key) + ": the index names it, and neither region "
                                                   "holds it");
        }
      }
    }
    return held.release();
  };
  Status s = run();
  if (!s.ok()) {
    rep.failed(s.error());
    return s.error();
  }
  rep.completed(out.to_json());
  return out;
}

}  // namespace haven::replication

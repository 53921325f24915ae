#include "replication/quorum.h"

#include <thread>

#include "util/cancel.h"

namespace haven::replication {

using storage::ObjectName;
using storage::ObjectType;

namespace {

// An object that makes others visible: written to the primary last.
bool commits(ObjectType t) {
  return t == ObjectType::kSnapshot || t == ObjectType::kWal || t == ObjectType::kKey ||
         t == ObjectType::kConfig;
}

// A save that found the name taken counts when the object there has the same size (a retry
// after a lost response, or the replicator copied it first): objects are immutable. `fresh`
// says whether this save wrote it (only such copies are taken back).
Status settle(storage::Backend& be, const ObjectName& name, ByteView data, Status s,
              bool* fresh = nullptr) {
  if (fresh != nullptr) *fresh = s.ok();
  if (s.ok() || s.error().code() != Error::Code::kAlreadyExists) return s;
  auto there = be.stat(name);
  if (there.ok() && there->size == data.size()) return ok_status();
  return s;
}

}  // namespace

QuorumBackend::QuorumBackend(std::shared_ptr<storage::Backend> primary,
                             std::vector<Region> secondaries, QuorumOptions options)
    : ReadThroughWrapper(std::move(primary)),
      secondaries_(std::move(secondaries)),
      options_(std::move(options)) {}

std::vector<Status> QuorumBackend::save_to(const std::vector<const Region*>& regions,
                                           const ObjectName& name, ByteView data,
                                           std::vector<char>* fresh) {
  std::vector<Status> out(regions.size(), ok_status());
  std::vector<bool> wrote(regions.size(), false);
  const CancelToken token = current_cancel();
  std::vector<std::thread> threads;
  for (size_t i = 1; i < regions.size(); i++) {
    threads.emplace_back([&, i] {
      CancelScope scope(token);
      bool f = false;
      out[i] = settle(*regions[i]->backend, name, data, regions[i]->backend->save(name, data), &f);
      wrote[i] = f;
    });
  }
  if (!regions.empty()) {
    bool f = false;
    out[0] = settle(*regions[0]->backend, name, data, regions[0]->backend->save(name, data), &f);
    wrote[0] = f;
  }
  for (auto& t : threads) t.join();
  if (fresh != nullptr) fresh->assign(wrote.begin(), wrote.end());
  return out;
}

Status QuorumBackend::save(const ObjectName& name, ByteView data) {
  if (name.type == ObjectType::kLock || name.type == ObjectType::kLease) {
    return inner().save(name, data);  // each copy its own
  }
  std::vector<const Region*> regions;
  std::string inactive;
  for (const auto& r : secondaries_) {
    if (options_.active && !options_.active(r.name)) {
      inactive += (inactive.empty() ? "" : ", ") + r.name;
      continue;
    }
    regions.push_back(&r);
  }
  auto report = [&](const std::vector<Status>& st) {
    std::string failures;
    int held = 0;
    for (size_t i = 0; i < st.size(); i++) {
      if (st[i].ok()) {
        held++;
        continue;
      }
      failures += (failures.empty() ? "" : "; ") + regions[i]->name + ": " + st[i].error().message();
      if (options_.on_region_failed) options_.on_region_failed(regions[i]->name, st[i].error());
    }
    return std::make_pair(held, failures);
  };
  auto shortfall = [&](int held, const std::string& failures) {
    return Error(Error::Code::kIo,
                 "sync replication: " + name.describe() + " reached " + std::to_string(held) +
                     " secondary region(s), the quorum is " + std::to_string(options_.quorum) +
                     (failures.empty() ? "" : " (" + failures + ")") +
                     (inactive.empty() ? "" : " (paused or stopped: " + inactive + ")") +
                     ": bring the regions back, lower replication.quorum, or set "
                     "on_quorum_loss: degrade");
  };
  if (commits(name.type)) {
    std::vector<char> fresh;
    std::vector<Status> st = save_to(regions, name, data, &fresh);
    auto [held, failures] = report(st);
    // Nothing of it may stay visible when it fails: take back the copies this save wrote.
    auto take_back = [&] {
      for (size_t i = 0; i < st.size(); i++) {
        if (st[i].ok() && fresh[i]) (void)regions[i]->backend->remove(name);
      }
    };
    if (held < options_.quorum && !options_.degrade) {
      take_back();
      return shortfall(held, failures);
    }
    Status primary = settle(inner(), name, data, inner().save(name, data));
    if (!primary.ok()) take_back();
    return primary;
  }
  // Packs and index files: everywhere at once.
  Status primary = ok_status();
  std::vector<Status> st;
  {
    const CancelToken token = current_cancel();
    std::thread t([&] {
      CancelScope scope(token);
      st = save_to(regions, name, data);
    });
    primary = settle(inner(), name, data, inner().save(name, data));
    t.join();
  }
  auto [held, failures] = report(st);
  if (!primary.ok()) return primary;
  if (held < options_.quorum && !options_.degrade) return shortfall(held, failures);
  return ok_status();
}

}  // namespace haven::replication

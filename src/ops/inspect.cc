#include "ops/inspect.h"

#include <fnmatch.h>

#include "ops/ops.h"
#include "repo/paths.h"

namespace haven::ops {

Result<std::vector<SnapshotEntry>> snapshots(repo::Repository& repo, const SnapshotsRequest&,
                                             const EventTarget& events) {
  OperationScope scope(repo);
  HAVEN_ASSIGN(auto all, list_snapshots(repo, events));
  std::vector<SnapshotEntry> out;
  out.reserve(all.size());
  for (auto& [id, s] : all) out.push_back({id, std::move(s)});
  return out;
}

Status validate(const LsRequest& r) {
  if (r.snapshot.empty()) return invalid("name the snapshot to list (an ID prefix or 'latest')");
  return ok_status();
}

Result<LsResult> ls(repo::Repository& repo, const LsRequest& request, const EventTarget& events,
                    const TreeEntryVisitor& visit) {
  OperationScope scope(repo);
  HAVEN_TRY(validate(request));
  LsResult out;
  HAVEN_TRY(load_index_while(repo, events, scope.token(), [&]() -> Status {
    HAVEN_ASSIGN(out.snapshot_id, resolve_snapshot(repo, request.snapshot, events));
    HAVEN_ASSIGN(out.snapshot, repo.load_snapshot(out.snapshot_id));
    return ok_status();
  }));
  auto each = [&](const repo::Node& n, const std::string& p) {
    out.count++;
    TreeEntry e{p, n};
    if (visit) {
      visit(e);
    } else {
      out.entries.push_back(std::move(e));
    }
  };
  HAVEN_ASSIGN(auto found, repo::find_path(repo, out.snapshot_id, out.snapshot, request.path));
  if (found.empty()) {  // the root
    HAVEN_TRY(repo::walk_tree(repo, out.snapshot.tree, "", each));
    return out;
  }
  for (const auto& f : found) {
    std::string path = "/" + f.stored;
    each(f.node, path);
    if (f.node.type == repo::Node::Type::kDir && f.node.subtree) {
      HAVEN_TRY(repo::walk_tree(repo, *f.node.subtree, path, each));
    }
  }
  return out;
}

Status validate(const FindRequest& r) {
  if (r.pattern.empty()) return invalid("give a pattern to find: a name or path glob, e.g. '*.conf'");
  return ok_status();
}

Result<FindResult> find(repo::Repository& repo, const FindRequest& request, const EventTarget& events,
                        const FindVisitor& visit) {
  OperationScope scope(repo);
  HAVEN_TRY(validate(request));
  HAVEN_ASSIGN(auto all, list_snapshots(repo, events));
  HAVEN_TRY(load_index(repo, events));
  FindResult out;
  const char* pattern = request.pattern.c_str();
  for (const auto& [id, s] : all) {
    out.snapshots++;
    HAVEN_TRY(repo::walk_tree(repo, s.tree, "", [&](const repo::Node& n, const std::string& p) {
      if (fnmatch(pattern, n.name.c_str(), 0) == 0 ||
          fnmatch(pattern, p.c_str(), FNM_PATHNAME) == 0 ||
          fnmatch(pattern, repo::original_path(s, p).c_str(), FNM_PATHNAME) == 0) {
        out.count++;
        FindMatch m{id, s.time, {p, n}};
        if (visit) {
          visit(m);
        } else {
          out.matches.push_back(std::move(m));
        }
      }
    }));
  }
  return out;
}

Status validate(const DiffRequest& r) {
  if (r.snapshot_a.empty() || r.snapshot_b.empty()) {
    return invalid("name two snapshots to compare (ID prefixes or 'latest'), the older first");
  }
  return ok_status();
}

Result<DiffResult> diff(repo::Repository& repo, const DiffRequest& request, const EventTarget& events,
                        const ChangeVisitor& visit) {
  OperationScope scope(repo);
  HAVEN_TRY(validate(request));
  DiffResult out;
  repo::Snapshot sa, sb;
  HAVEN_TRY(load_index_while(repo, events, scope.token(), [&]() -> Status {
    HAVEN_ASSIGN(out.snapshot_a, resolve_snapshot(repo, request.snapshot_a, events));
    HAVEN_ASSIGN(out.snapshot_b, resolve_snapshot(repo, request.snapshot_b, events));
    HAVEN_ASSIGN(sa, repo.load_snapshot(out.snapshot_a));
    HAVEN_ASSIGN(sb, repo.load_snapshot(out.snapshot_b));
    return ok_status();
  }));
  const repo::Id& a = out.snapshot_a;
  const repo::Id& b = out.snapshot_b;
  auto report = [&](char kind, const std::string& path) {
    switch (kind) {
      case '+': out.added++; break;
      case '-': out.removed++; break;
      case 'M': out.modified++; break;
      case 'T': out.type_changed++; break;
      default: out.metadata_changed++; break;
    }
    Change c{kind, path};
    if (visit) {
      visit(c);
    } else {
      out.changes.push_back(std::move(c));
    }
  };
  if (request.paths.empty()) {
    HAVEN_TRY(repo::diff_trees(repo, sa.tree, sb.tree, "", report));
  }
  for (const auto& p : request.paths) {
    // A path may be in one snapshot only (added or removed), but must be in one of them.
    auto fa = repo::find_path(repo, a, sa, p);
    auto fb = repo::find_path(repo, b, sb, p);
    if (!fa.ok() && !fb.ok()) {
      if (fa.error().code() != Error::Code::kNotFound) return fa.error();
      if (fb.error().code() != Error::Code::kNotFound) return fb.error();
      return Error(Error::Code::kNotFound, fa.error().message() + "; nor in snapshot " +
                                               repo::short_hex(b) + ", which holds: " +
                                               repo::describe_top_level(sb));
    }
    if ((fa.ok() && fa->empty()) || (fb.ok() && fb->empty())) {  // the root
      HAVEN_TRY(repo::diff_trees(repo, sa.tree, sb.tree, "", report));
      continue;
    }
    const repo::Node* x = fa.ok() ? &fa->front().node : nullptr;
    const repo::Node* y = fb.ok() ? &fb->front().node : nullptr;
    std::string shown = "/" + (fb.ok() ? fb->front().stored : fa->front().stored);
    HAVEN_TRY(repo::diff_nodes(repo, x, y, shown, report));
  }
  return out;
}

double StatsResult::dedup_ratio() const {
  return stored_bytes ? double(snapshot_bytes_total) / double(stored_bytes) : 0.0;
}

Result<StatsResult> stats(repo::Repository& repo, const StatsRequest&, const EventTarget& events) {
  OperationScope scope(repo);
  HAVEN_TRY(load_index(repo, events));
  HAVEN_ASSIGN(auto all, list_snapshots(repo, events));
  StatsResult out;
  out.snapshots = all.size();
  HAVEN_TRY(repo.backend().list(storage::ObjectType::kData, [&](const storage::ObjectInfo& i) {
    out.packs++;
    out.stored_bytes += i.size;
  }));
  repo.for_each_blob([&](const repo::IndexEntry& e) {
    out.blobs++;
    out.unique_raw_bytes += e.raw_length;
  });
  auto footprint = repo.index_footprint();
  out.index_memory_bytes = footprint.memory_bytes;
  out.index_blobs_on_disk = footprint.on_disk;
  for (const auto& [id, s] : all) {
    auto it = s.stats.find("bytes_total");
    if (it != s.stats.end()) out.snapshot_bytes_total += it->second;
  }
  return out;
}

}  // namespace haven::ops

// haven snapshots | ls | find | diff | stats — inspect a repository (ops/inspect.h).
#include <cstdio>
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
#include "ops/inspect.h"
#include "repo/paths.h"

namespace haven::cli {

namespace {

nlohmann::json snapshot_json(const repo::Id& id, const repo::Snapshot& s) {
  nlohmann::json j = {{"id", repo::hex(id)},
                      {"short_id", repo::short_hex(id)},
                      {"time", format_time(s.time)},
                      {"end_time", format_time(s.end_time)},
                      {"strategy", s.strategy},
                      {"parent", s.parent ? nlohmann::json(repo::hex(*s.parent)) : nlohmann::json(nullptr)},
                      {"host", s.hostname},
                      {"username", s.username},
                      {"paths", s.paths},
                      {"names", repo::root_names(s)},
                      {"tags", s.tags},
                      {"tree", repo::hex(s.tree)},
                      {"stats", s.stats},
                      {"program_version", s.program_version}};
  return j;
}

std::string mode_string(const repo::Node& n) {
  char t = '-';
  switch (n.type) {
    case repo::Node::Type::kDir: t = 'd'; break;
    case repo::Node::Type::kSymlink: t = 'l'; break;
    case repo::Node::Type::kFifo: t = 'p'; break;
    case repo::Node::Type::kCharDev: t = 'c'; break;
    case repo::Node::Type::kBlockDev: t = 'b'; break;
    case repo::Node::Type::kSocket: t = 's'; break;
    default: break;
  }
  std::string s(1, t);
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; i++) s += (n.mode & (0400 >> i)) ? rwx[i] : '-';
  return s;
}

nlohmann::json node_json(const repo::Node& n, const std::string& path) {
  nlohmann::json j = {{"path", path}, {"type", repo::node_type_name(n.type)}, {"mode", n.mode},
                      {"uid", n.uid}, {"gid", n.gid}, {"user", n.user}, {"group", n.group},
                      {"size", n.size}, {"mtime", format_time(n.mtime)}};
  if (n.type == repo::Node::Type::kSymlink) j["link_target"] = n.link_target;
  return j;
}

void print_node(const repo::Node& n, const std::string& path, bool json) {
  if (json) {
    std::cout << node_json(n, path).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return;
  }
  std::string owner = n.user.empty() ? std::to_string(n.uid) : n.user;
  std::string group = n.group.empty() ? std::to_string(n.gid) : n.group;
  std::printf("%s %-8s %-8s %12llu %s %s%s\n", mode_string(n).c_str(), owner.c_str(), group.c_str(),
              static_cast<unsigned long long>(n.size), format_time(n.mtime).substr(0, 19).c_str(),
              path.c_str(), n.type == repo::Node::Type::kSymlink ? (" -> " + n.link_target).c_str() : "");
}

}  // namespace

void register_snapshots(App& app) {
  // snapshots
  auto* snaps = app.root().add_subcommand("snapshots", "list snapshots");
  app.on(snaps, [&app]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    HAVEN_ASSIGN(auto all, ops::snapshots(*repo, ops::SnapshotsRequest{}, sink));
    if (app.globals().json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& e : all) out.push_back(snapshot_json(e.id, e.snapshot));
      std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      return 0;
    }
    std::printf("%-8s  %-19s  %-12s  %-12s  %-10s  %s\n", "ID", "Time (UTC)", "Host", "Strategy", "Tags", "Paths");
    for (const auto& [id, s] : all) {
      std::string tags;
      for (const auto& t : s.tags) tags += (tags.empty() ? "" : ",") + t;
      std::string paths;
      for (const auto& p : s.paths) paths += (paths.empty() ? "" : " ") + p;
      std::printf("%-8s  %-19s  %-12s  %-12s  %-10s  %s\n", repo::short_hex(id).c_str(),
                  format_time(s.time).substr(0, 19).c_str(), s.hostname.c_str(), s.strategy.c_str(),
                  tags.c_str(), paths.c_str());
    }
    std::printf("%zu snapshot(s)\n", all.size());
    return 0;
  });

  // ls
  auto ls_req = std::make_shared<ops::LsRequest>();
  auto* ls = app.root().add_subcommand("ls", "list the files in a snapshot");
  ls->add_option("SNAPSHOT", ls_req->snapshot, "snapshot ID prefix or 'latest'")->required();
  ls->add_option("PATH", ls_req->path,
                 "directory or file: as backed up (/srv/app/etc) or as stored (/app/etc); default /");
  app.on(ls, [&app, ls_req]() -> CommandResult {
    HAVEN_TRY(ops::validate(*ls_req));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    bool json = app.globals().json;
    HAVEN_TRY(ops::ls(*repo, *ls_req, sink,
                      [&](const ops::TreeEntry& e) { print_node(e.node, e.path, json); }));
    return 0;
  });

  // find
  auto find_req = std::make_shared<ops::FindRequest>();
  auto* find = app.root().add_subcommand("find", "find files by name or path glob in all snapshots");
  find->add_option("PATTERN", find_req->pattern,
                   "glob, matched against names and full paths (as backed up or as stored)")
      ->required();
  app.on(find, [&app, find_req]() -> CommandResult {
    HAVEN_TRY(ops::validate(*find_req));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    bool json = app.globals().json;
    HAVEN_ASSIGN(ops::FindResult res, ops::find(*repo, *find_req, sink, [&](const ops::FindMatch& m) {
      if (json) {
        auto j = node_json(m.entry.node, m.entry.path);
        j["snapshot"] = repo::hex(m.snapshot_id);
        std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      } else {
        std::cout << repo::short_hex(m.snapshot_id) << "  " << format_time(m.snapshot_time).substr(0, 19)
                  << "  ";
        print_node(m.entry.node, m.entry.path, false);
      }
    }));
    if (!json && res.count == 0) std::cout << "no matches\n";
    return 0;
  });

  // diff
  auto diff_req = std::make_shared<ops::DiffRequest>();
  auto* diff = app.root().add_subcommand("diff", "show what changed between two snapshots");
  diff->add_option("SNAPSHOT1", diff_req->snapshot_a, "older snapshot")->required();
  diff->add_option("SNAPSHOT2", diff_req->snapshot_b, "newer snapshot")->required();
  diff->add_option("PATH", diff_req->paths, "compare only these paths (as backed up or as stored)");
  app.on(diff, [&app, diff_req]() -> CommandResult {
    HAVEN_TRY(ops::validate(*diff_req));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    bool json = app.globals().json;
    HAVEN_ASSIGN(ops::DiffResult res, ops::diff(*repo, *diff_req, sink, [&](const ops::Change& c) {
      if (json) {
        std::cout << nlohmann::json{{"change", std::string(1, c.kind)}, {"path", c.path}}.dump(
                         -1, ' ', false, nlohmann::json::error_handler_t::replace)
                  << "\n";
      } else {
        std::cout << c.kind << "    " << c.path << "\n";
      }
    }));
    if (!json) {
      std::cout << "\n" << res.added << " added, " << res.removed << " removed, " << res.modified
                << " modified, " << res.type_changed << " type changed, " << res.metadata_changed
                << " metadata changed\n";
    }
    return 0;
  });

  // stats
  auto* stats = app.root().add_subcommand("stats", "repository statistics");
  app.on(stats, [&app]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    HAVEN_ASSIGN(ops::StatsResult st, ops::stats(*repo, ops::StatsRequest{}, sink));
    nlohmann::json j = {{"snapshots", st.snapshots}, {"packs", st.packs}, {"blobs", st.blobs},
                        {"stored_bytes", st.stored_bytes}, {"unique_raw_bytes", st.unique_raw_bytes},
                        {"snapshot_bytes_total", st.snapshot_bytes_total},
                        {"dedup_ratio", st.dedup_ratio()},
                        {"index_memory_bytes", st.index_memory_bytes},
                        {"index_blobs_on_disk", st.index_blobs_on_disk}};
    if (app.globals().json) {
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      return 0;
    }
    std::cout << "snapshots:              " << st.snapshots << "\n"
              << "packs:                  " << st.packs << "\n"
              << "blobs:                  " << st.blobs << "\n"
              << "stored (compressed):    " << human_bytes(st.stored_bytes) << "\n"
              << "unique data (raw):      " << human_bytes(st.unique_raw_bytes) << "\n"
              << "all snapshots (raw):    " << human_bytes(st.snapshot_bytes_total) << "\n";
    if (st.stored_bytes) std::printf("space saving:           %.2fx\n", st.dedup_ratio());
    std::cout << "index in memory:        " << human_bytes(st.index_memory_bytes);
    if (st.index_blobs_on_disk) std::cout << " (" << st.index_blobs_on_disk << " blobs on disk)";
    std::cout << "\n";
    return 0;
  });
}

}  // namespace haven::cli

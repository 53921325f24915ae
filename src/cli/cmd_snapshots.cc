// haven snapshots | ls | find | diff | stats — inspect a repository.
#include <fnmatch.h>
#include <sys/stat.h>

#include <cstdio>
#include <map>
#include <set>
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
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
    HAVEN_ASSIGN(auto all, app.list_snapshots(*repo));
    if (app.globals().json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& [id, s] : all) out.push_back(snapshot_json(id, s));
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
  auto ls_snap = std::make_shared<std::string>();
  auto ls_path = std::make_shared<std::string>("/");
  auto* ls = app.root().add_subcommand("ls", "list the files in a snapshot");
  ls->add_option("SNAPSHOT", *ls_snap, "snapshot ID prefix or 'latest'")->required();
  ls->add_option("PATH", *ls_path,
                 "directory or file: as backed up (/srv/app/etc) or as stored (/app/etc); default /");
  app.on(ls, [&app, ls_snap, ls_path]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_ASSIGN(repo::Id id, app.resolve_snapshot(*repo, *ls_snap));
    HAVEN_ASSIGN(repo::Snapshot s, repo->load_snapshot(id));
    HAVEN_TRY(app.load_index(*repo));
    bool json = app.globals().json;
    auto print = [&](const repo::Node& n, const std::string& p) { print_node(n, p, json); };
    HAVEN_ASSIGN(auto found, repo::find_path(*repo, id, s, *ls_path));
    if (found.empty()) {  // the root
      HAVEN_TRY(repo::walk_tree(*repo, s.tree, "", print));
      return 0;
    }
    for (const auto& f : found) {
      std::string path = "/" + f.stored;
      print(f.node, path);
      if (f.node.type == repo::Node::Type::kDir && f.node.subtree) {
        HAVEN_TRY(repo::walk_tree(*repo, *f.node.subtree, path, print));
      }
    }
    return 0;
  });

  // find
  auto pattern = std::make_shared<std::string>();
  auto* find = app.root().add_subcommand("find", "find files by name or path glob in all snapshots");
  find->add_option("PATTERN", *pattern,
                   "glob, matched against names and full paths (as backed up or as stored)")
      ->required();
  app.on(find, [&app, pattern]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_ASSIGN(auto all, app.list_snapshots(*repo));
    HAVEN_TRY(app.load_index(*repo));
    bool json = app.globals().json;
    uint64_t hits = 0;
    for (const auto& [id, s] : all) {
      std::string sid = repo::short_hex(id);
      HAVEN_TRY(repo::walk_tree(*repo, s.tree, "", [&](const repo::Node& n, const std::string& p) {
        if (fnmatch(pattern->c_str(), n.name.c_str(), 0) == 0 ||
            fnmatch(pattern->c_str(), p.c_str(), FNM_PATHNAME) == 0 ||
            fnmatch(pattern->c_str(), repo::original_path(s, p).c_str(), FNM_PATHNAME) == 0) {
          hits++;
          if (json) {
            auto j = node_json(n, p);
            j["snapshot"] = repo::hex(id);
            std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
          } else {
            std::cout << sid << "  " << format_time(s.time).substr(0, 19) << "  ";
            print_node(n, p, false);
          }
        }
      }));
    }
    if (!json && hits == 0) std::cout << "no matches\n";
    return 0;
  });

  // diff
  auto d1 = std::make_shared<std::string>();
  auto d2 = std::make_shared<std::string>();
  auto dpaths = std::make_shared<std::vector<std::string>>();
  auto* diff = app.root().add_subcommand("diff", "show what changed between two snapshots");
  diff->add_option("SNAPSHOT1", *d1, "older snapshot")->required();
  diff->add_option("SNAPSHOT2", *d2, "newer snapshot")->required();
  diff->add_option("PATH", *dpaths, "compare only these paths (as backed up or as stored)");
  app.on(diff, [&app, d1, d2, dpaths]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_ASSIGN(repo::Id a, app.resolve_snapshot(*repo, *d1));
    HAVEN_ASSIGN(repo::Id b, app.resolve_snapshot(*repo, *d2));
    HAVEN_ASSIGN(repo::Snapshot sa, repo->load_snapshot(a));
    HAVEN_ASSIGN(repo::Snapshot sb, repo->load_snapshot(b));
    HAVEN_TRY(app.load_index(*repo));
    std::map<std::string, uint64_t> counts;
    bool json = app.globals().json;
    auto report = [&](char what, const std::string& path) {
      counts[std::string(1, what)]++;
      if (json) {
        std::cout << nlohmann::json{{"change", std::string(1, what)}, {"path", path}}.dump(
                         -1, ' ', false, nlohmann::json::error_handler_t::replace)
                  << "\n";
      } else {
        std::cout << what << "    " << path << "\n";
      }
    };
    if (dpaths->empty()) {
      HAVEN_TRY(repo::diff_trees(*repo, sa.tree, sb.tree, "", report));
    }
    for (const auto& p : *dpaths) {
      // A path may be in one snapshot only (added or removed), but must be in one of them.
      auto fa = repo::find_path(*repo, a, sa, p);
      auto fb = repo::find_path(*repo, b, sb, p);
      if (!fa.ok() && !fb.ok()) {
        if (fa.error().code() != Error::Code::kNotFound) return fa.error();
        if (fb.error().code() != Error::Code::kNotFound) return fb.error();
        return Error(Error::Code::kNotFound, fa.error().message() + "; nor in snapshot " +
                                                 repo::short_hex(b) + ", which holds: " +
                                                 repo::describe_top_level(sb));
      }
      if ((fa.ok() && fa->empty()) || (fb.ok() && fb->empty())) {  // the root
        HAVEN_TRY(repo::diff_trees(*repo, sa.tree, sb.tree, "", report));
        continue;
      }
      const repo::Node* x = fa.ok() ? &fa->front().node : nullptr;
      const repo::Node* y = fb.ok() ? &fb->front().node : nullptr;
      std::string shown = "/" + (fb.ok() ? fb->front().stored : fa->front().stored);
      HAVEN_TRY(repo::diff_nodes(*repo, x, y, shown, report));
    }
    if (!app.globals().json) {
      std::cout << "\n" << counts["+"] << " added, " << counts["-"] << " removed, " << counts["M"]
                << " modified, " << counts["T"] << " type changed, " << counts["U"]
                << " metadata changed\n";
    }
    return 0;
  });

  // stats
  auto* stats = app.root().add_subcommand("stats", "repository statistics");
  app.on(stats, [&app]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_TRY(app.load_index(*repo));
    HAVEN_ASSIGN(auto all, app.list_snapshots(*repo));
    uint64_t packs = 0, pack_bytes = 0;
    HAVEN_TRY(repo->backend().list(storage::ObjectType::kData, [&](const storage::ObjectInfo& i) {
      packs++;
      pack_bytes += i.size;
    }));
    uint64_t raw = 0, blobs = 0;
    repo->for_each_blob([&](const repo::IndexEntry& e) {
      blobs++;
      raw += e.raw_length;
    });
    uint64_t logical = 0;
    for (const auto& [id, s] : all) {
      auto it = s.stats.find("bytes_total");
      if (it != s.stats.end()) logical += it->second;
    }
    nlohmann::json j = {{"snapshots", all.size()}, {"packs", packs}, {"blobs", blobs},
                        {"stored_bytes", pack_bytes}, {"unique_raw_bytes", raw},
                        {"snapshot_bytes_total", logical},
                        {"dedup_ratio", pack_bytes ? double(logical) / double(pack_bytes) : 0.0}};
    if (app.globals().json) {
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      return 0;
    }
    std::cout << "snapshots:              " << all.size() << "\n"
              << "packs:                  " << packs << "\n"
              << "blobs:                  " << blobs << "\n"
              << "stored (compressed):    " << human_bytes(pack_bytes) << "\n"
              << "unique data (raw):      " << human_bytes(raw) << "\n"
              << "all snapshots (raw):    " << human_bytes(logical) << "\n";
    if (pack_bytes) std::printf("space saving:           %.2fx\n", double(logical) / double(pack_bytes));
    return 0;
  });
}

}  // namespace haven::cli

// haven snapshots | ls | find | diff | stats — inspect a repository.
#include <fnmatch.h>
#include <sys/stat.h>

#include <cstdio>
#include <map>
#include <set>
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"

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

// Calls fn(node, path) for every node under tree (depth first, sorted).
Status walk_tree(repo::Repository& repo, const repo::Id& tree, const std::string& prefix,
                 const std::function<void(const repo::Node&, const std::string&)>& fn) {
  HAVEN_ASSIGN(repo::Tree t, repo.load_tree(tree));
  for (const auto& n : t.nodes) {
    std::string path = prefix + "/" + n.name;
    fn(n, path);
    if (n.type == repo::Node::Type::kDir && n.subtree) HAVEN_TRY(walk_tree(repo, *n.subtree, path, fn));
  }
  return ok_status();
}

// Finds the tree node at a path inside a snapshot ("/" for the root).
Result<std::optional<repo::Node>> lookup(repo::Repository& repo, const repo::Id& root,
                                         const std::string& path) {
  repo::Id tree = root;
  std::optional<repo::Node> found;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') i++;
    if (i >= path.size()) break;
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string part = path.substr(i, j - i);
    if (found && (found->type != repo::Node::Type::kDir || !found->subtree)) return std::optional<repo::Node>();
    if (found) tree = *found->subtree;
    HAVEN_ASSIGN(repo::Tree t, repo.load_tree(tree));
    found.reset();
    for (auto& n : t.nodes) {
      if (n.name == part) found = std::move(n);
    }
    if (!found) return std::optional<repo::Node>();
    i = j;
  }
  return found;
}

Status diff_trees(repo::Repository& repo, const std::optional<repo::Id>& a,
                  const std::optional<repo::Id>& b, const std::string& prefix, bool json,
                  std::map<std::string, uint64_t>& counts) {
  if (a && b && *a == *b) return ok_status();  // identical subtrees: nothing to compare
  repo::Tree ta, tb;
  if (a) {
    HAVEN_ASSIGN(ta, repo.load_tree(*a));
  }
  if (b) {
    HAVEN_ASSIGN(tb, repo.load_tree(*b));
  }
  std::map<std::string, const repo::Node*> ma, mb;
  for (const auto& n : ta.nodes) ma[n.name] = &n;
  for (const auto& n : tb.nodes) mb[n.name] = &n;
  std::set<std::string> names;
  for (auto& [k, v] : ma) names.insert(k);
  for (auto& [k, v] : mb) names.insert(k);
  auto report = [&](char what, const std::string& path) {
    counts[std::string(1, what)]++;
    if (json) {
      std::cout << nlohmann::json{{"change", std::string(1, what)}, {"path", path}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      std::cout << what << "    " << path << "\n";
    }
  };
  for (const auto& name : names) {
    std::string path = prefix + "/" + name;
    const repo::Node* x = ma.count(name) ? ma[name] : nullptr;
    const repo::Node* y = mb.count(name) ? mb[name] : nullptr;
    bool xd = x && x->type == repo::Node::Type::kDir;
    bool yd = y && y->type == repo::Node::Type::kDir;
    if (!x) report('+', path);
    else if (!y) report('-', path);
    else if (x->type != y->type) report('T', path);
    else if (!xd && (x->content != y->content || x->link_target != y->link_target)) report('M', path);
    else if (x->mode != y->mode || x->uid != y->uid || x->gid != y->gid || x->xattrs != y->xattrs ||
             (!xd && x->mtime != y->mtime)) report('U', path);
    if (xd || yd) {
      HAVEN_TRY(diff_trees(repo, xd ? x->subtree : std::nullopt, yd ? y->subtree : std::nullopt, path,
                           json, counts));
    }
  }
  return ok_status();
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
  ls->add_option("PATH", *ls_path, "directory or file inside the snapshot (default /)");
  app.on(ls, [&app, ls_snap, ls_path]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_ASSIGN(repo::Id id, app.resolve_snapshot(*repo, *ls_snap));
    HAVEN_ASSIGN(repo::Snapshot s, repo->load_snapshot(id));
    HAVEN_TRY(app.load_index(*repo));
    bool json = app.globals().json;
    auto print = [&](const repo::Node& n, const std::string& p) { print_node(n, p, json); };
    std::string path = *ls_path;
    if (path.empty() || path == "/") {
      HAVEN_TRY(walk_tree(*repo, s.tree, "", print));
      return 0;
    }
    if (path[0] != '/') path = "/" + path;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    HAVEN_ASSIGN(auto node, lookup(*repo, s.tree, path));
    if (!node) return Error(Error::Code::kNotFound, "no '" + path + "' in snapshot " + repo::short_hex(id));
    print(*node, path);
    if (node->type == repo::Node::Type::kDir && node->subtree) HAVEN_TRY(walk_tree(*repo, *node->subtree, path, print));
    return 0;
  });

  // find
  auto pattern = std::make_shared<std::string>();
  auto* find = app.root().add_subcommand("find", "find files by name or path glob in all snapshots");
  find->add_option("PATTERN", *pattern, "glob, matched against names and full paths")->required();
  app.on(find, [&app, pattern]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_ASSIGN(auto all, app.list_snapshots(*repo));
    HAVEN_TRY(app.load_index(*repo));
    bool json = app.globals().json;
    uint64_t hits = 0;
    for (const auto& [id, s] : all) {
      std::string sid = repo::short_hex(id);
      HAVEN_TRY(walk_tree(*repo, s.tree, "", [&](const repo::Node& n, const std::string& p) {
        if (fnmatch(pattern->c_str(), n.name.c_str(), 0) == 0 ||
            fnmatch(pattern->c_str(), p.c_str(), FNM_PATHNAME) == 0) {
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
  auto* diff = app.root().add_subcommand("diff", "show what changed between two snapshots");
  diff->add_option("SNAPSHOT1", *d1, "older snapshot")->required();
  diff->add_option("SNAPSHOT2", *d2, "newer snapshot")->required();
  app.on(diff, [&app, d1, d2]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_ASSIGN(repo::Id a, app.resolve_snapshot(*repo, *d1));
    HAVEN_ASSIGN(repo::Id b, app.resolve_snapshot(*repo, *d2));
    HAVEN_ASSIGN(repo::Snapshot sa, repo->load_snapshot(a));
    HAVEN_ASSIGN(repo::Snapshot sb, repo->load_snapshot(b));
    HAVEN_TRY(app.load_index(*repo));
    std::map<std::string, uint64_t> counts;
    HAVEN_TRY(diff_trees(*repo, sa.tree, sb.tree, "", app.globals().json, counts));
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

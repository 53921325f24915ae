#include "repo/paths.h"

#include <algorithm>
#include <map>
#include <set>

#include "repo/tree_ahead.h"

namespace haven::repo {

namespace {

std::string strip_slashes(std::string p) {
  while (!p.empty() && p.front() == '/') p.erase(p.begin());
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}

// Collapses duplicate slashes and drops "." components; keeps a leading '/'.
std::string tidy(const std::string& p) {
  std::string out;
  bool abs = !p.empty() && p[0] == '/';
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string part = p.substr(i, j - i);
    if (!part.empty() && part != ".") out += (out.empty() && !abs ? "" : "/") + part;
    i = j + 1;
  }
  if (out.empty()) return abs ? "/" : "";
  return out;
}

}  // namespace

std::string last_component(const std::string& path) {
  std::string p = strip_slashes(path);
  if (p.empty()) return "root";
  return p.substr(p.rfind('/') == std::string::npos ? 0 : p.rfind('/') + 1);
}

namespace {
// The last k components of an absolute path, joined by '_' ("/x/a/data", 2 → "a_data").
std::string last_components(const std::string& path, size_t k) {
  std::string p = strip_slashes(path);
  size_t cut = p.size();
  for (size_t i = 0; i < k; i++) {
    size_t slash = cut == 0 ? std::string::npos : p.rfind('/', cut - 1);
    if (slash == std::string::npos) {
      cut = 0;
      break;
    }
    cut = slash;
  }
  std::string out = p.substr(cut == 0 ? 0 : cut + 1);
  std::replace(out.begin(), out.end(), '/', '_');
  return out.empty() ? "root" : out;
}

size_t components(const std::string& path) {
  std::string p = strip_slashes(path);
  return p.empty() ? 0 : static_cast<size_t>(std::count(p.begin(), p.end(), '/')) + 1;
}
}  // namespace

std::vector<std::string> assign_root_names(const std::vector<std::string>& paths) {
  std::vector<size_t> order(paths.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return paths[a] < paths[b]; });
  // Group the paths by last component; a group of several takes as many trailing components
  // as it needs for its names to differ.
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i : order) groups[last_component(paths[i])].push_back(i);
  std::vector<std::string> wanted(paths.size());
  for (const auto& [last, members] : groups) {
    if (members.size() == 1) {
      wanted[members[0]] = last;
      continue;
    }
    size_t longest = 0;
    for (size_t i : members) longest = std::max(longest, components(paths[i]));
    for (size_t k = 2;; k++) {
      std::set<std::string> seen;
      for (size_t i : members) {
        wanted[i] = last_components(paths[i], k);
        seen.insert(wanted[i]);
      }
      if (seen.size() == members.size() || k >= longest) break;
    }
  }
  // A name wanted once is taken first; then, in the paths' sorted order, a name already taken
  // gets "~2", "~3"...
  std::map<std::string, int> wanted_count;
  for (const auto& w : wanted) wanted_count[w]++;
  std::set<std::string> taken;
  std::vector<std::string> out(paths.size());
  for (size_t i : order) {
    if (wanted_count[wanted[i]] == 1) {
      out[i] = wanted[i];
      taken.insert(wanted[i]);
    }
  }
  for (size_t i : order) {
    if (!out[i].empty()) continue;
    std::string name = wanted[i];
    for (int k = 2; taken.count(name); k++) name = wanted[i] + "~" + std::to_string(k);
    out[i] = name;
    taken.insert(name);
  }
  return out;
}

std::vector<std::string> root_names(const Snapshot& s) {
  if (s.names.size() == s.paths.size()) return s.names;
  std::vector<std::string> out;
  for (const auto& p : s.paths) out.push_back(last_component(p));
  return out;
}

std::vector<std::string> stored_forms(const Snapshot& s, const std::string& typed) {
  std::vector<std::string> out;
  auto add = [&](std::string f) {
    if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(std::move(f));
  };
  std::string t = tidy(typed);
  auto names = root_names(s);
  if (!t.empty() && t[0] == '/') {
    for (size_t i = 0; i < s.paths.size(); i++) {
      std::string p = tidy(s.paths[i]);
      if (t == p) {
        add(names[i]);
      } else if (p == "/") {
        add(names[i] + t);
      } else if (t.size() > p.size() && t.compare(0, p.size(), p) == 0 && t[p.size()] == '/') {
        add(names[i] + t.substr(p.size()));
      }
    }
  }
  add(strip_slashes(t));
  return out;
}

std::string original_path(const Snapshot& s, const std::string& stored) {
  std::string rel = strip_slashes(stored);
  std::string top = rel.substr(0, rel.find('/'));
  std::string rest = rel.size() > top.size() ? rel.substr(top.size()) : "";
  auto names = root_names(s);
  for (size_t i = 0; i < names.size(); i++) {
    if (names[i] != top) continue;
    std::string p = tidy(s.paths[i]);
    return p == "/" ? (rest.empty() ? "/" : rest) : p + rest;
  }
  return "/" + rel;
}

std::string describe_top_level(const Snapshot& s) {
  auto names = root_names(s);
  std::string out;
  for (size_t i = 0; i < s.paths.size(); i++) {
    if (!out.empty()) out += ", ";
    out += s.paths[i];
    if (names[i] != last_component(s.paths[i])) out += " (stored as " + names[i] + ")";
  }
  return out.empty() ? "(nothing)" : out;
}

Result<std::optional<Node>> lookup(Repository& repo, const Id& root_tree, const std::string& stored) {
  std::string rel = strip_slashes(stored);
  if (rel.empty()) return std::optional<Node>();
  Id tree = root_tree;
  std::optional<Node> found;
  size_t i = 0;
  while (i < rel.size()) {
    size_t j = rel.find('/', i);
    if (j == std::string::npos) j = rel.size();
    std::string part = rel.substr(i, j - i);
    i = j + 1;
    if (part.empty()) continue;
    if (found) {
      if (found->type != Node::Type::kDir || !found->subtree) return std::optional<Node>();
      tree = *found->subtree;
    }
    HAVEN_ASSIGN(Tree t, repo.load_tree(tree));
    found.reset();
    for (auto& n : t.nodes) {
      if (n.name == part) {
        found = std::move(n);
        break;
      }
    }
    if (!found) return std::optional<Node>();
  }
  return found;
}

Result<std::vector<Found>> find_path(Repository& repo, const Id& snapshot_id, const Snapshot& s,
                                     const std::string& typed) {
  std::vector<Found> out;
  if (strip_slashes(tidy(typed)).empty()) return out;
  for (const auto& form : stored_forms(s, typed)) {
    if (form.empty()) continue;
    HAVEN_ASSIGN(auto node, lookup(repo, s.tree, form));
    if (node) out.push_back({form, std::move(*node)});
  }
  if (out.empty()) {
    return Error(Error::Code::kNotFound,
                 "'" + typed + "' is not in snapshot " + short_hex(snapshot_id) +
                     ", which holds: " + describe_top_level(s) +
                     " (give a path under one of these, as backed up or as listed by 'haven ls')");
  }
  return out;
}

namespace {
Status walk_from(Repository& repo, TreeAhead* ahead, const Id& tree, const std::string& prefix,
                 const std::function<void(const Node&, const std::string&)>& fn) {
  HAVEN_ASSIGN(Tree t, ahead ? ahead->take(tree, prefix) : repo.load_tree(tree));
  for (const auto& n : t.nodes) {
    std::string path = prefix + "/" + n.name;
    fn(n, path);
    if (n.type == Node::Type::kDir && n.subtree) HAVEN_TRY(walk_from(repo, ahead, *n.subtree, path, fn));
  }
  return ok_status();
}
}  // namespace

Status walk_tree(Repository& repo, const Id& tree, const std::string& prefix,
                 const std::function<void(const Node&, const std::string&)>& fn) {
  // Over object storage the trees are loaded ahead of the walk, depth first like it, a pack's
  // neighbouring trees in one request: a round trip per directory otherwise.
  const CancelToken token = current_cancel();
  auto ahead = TreeAhead::for_walk(repo, token, 0.1);
  return walk_from(repo, ahead.get(), tree, prefix, fn);
}

namespace {
// The tree of a directory node; nullopt for anything else (or no node).
std::optional<Id> subtree(const Node* n) {
  if (n == nullptr || n->type != Node::Type::kDir) return std::nullopt;
  return n->subtree;
}

// Two trees compared directory by directory, depth first. Over object storage the trees of the
// directories it will enter (those whose subtrees differ) are queued to a TreeAhead that queues
// nothing by itself, a directory's together: a directory with many changed subdirectories costs
// a request or two, not a round trip per subdirectory. As for other walks, a read with nothing
// else queued takes along the pack's trees near it that nobody asked for (within 1 MiB, and at
// most half of what the TreeAhead holds): they may be trees of unchanged directories, never
// entered; those passed over are forgotten, so they give their room back.
class DiffWalk {
 public:
  DiffWalk(const DiffWalk&) = delete;  // the TreeAhead holds a reference to token_
  DiffWalk& operator=(const DiffWalk&) = delete;
  DiffWalk(Repository& repo, const std::function<void(char, const std::string&)>& fn)
      : repo_(repo), fn_(fn) {
    if (TreeAhead::pays_off(repo)) {
      ahead_ = std::make_unique<TreeAhead>(repo, [](const std::string&) { return false; }, 8,
                                           repo.memory_budget().bytes(16u << 20, 0.1, 1u << 20),
                                           token_);
    }
  }

  Status trees(const std::optional<Id>& a, const std::optional<Id>& b, const std::string& prefix) {
    if (a && b && *a == *b) return ok_status();  // identical subtrees: nothing to compare
    Tree ta, tb;
    if (a) {
      HAVEN_ASSIGN(ta, load(*a, prefix));
    }
    if (b) {
      HAVEN_ASSIGN(tb, load(*b, prefix));
    }
    std::map<std::string, const Node*> ma, mb;
    for (const auto& n : ta.nodes) ma[n.name] = &n;
    for (const auto& n : tb.nodes) mb[n.name] = &n;
    std::set<std::string> names;
    for (auto& [k, v] : ma) names.insert(k);
    for (auto& [k, v] : mb) names.insert(k);
    struct Pair {
      const Node* x;
      const Node* y;
      std::string path;
    };
    std::vector<Pair> pairs;
    pairs.reserve(names.size());
    for (const auto& name : names) {
      auto x = ma.find(name);
      auto y = mb.find(name);
      pairs.push_back({x == ma.end() ? nullptr : x->second, y == mb.end() ? nullptr : y->second, prefix + "/" + name});
    }
    if (ahead_) {
      std::vector<std::pair<Id, std::string>> wanted;
      for (const auto& [x, y, path] : pairs) {
        auto sa = subtree(x), sb = subtree(y);
        if (sa && sb && *sa == *sb) {
          ahead_->forget(*sa);  // not entered: if taken along unasked, its room is given back
          continue;
        }
        if (sa) wanted.emplace_back(*sa, path);
        if (sb) wanted.emplace_back(*sb, path);
      }
      ahead_->queue(wanted);
    }
    for (const auto& [x, y, path] : pairs) HAVEN_TRY(nodes(x, y, path));
    return ok_status();
  }

  Status nodes(const Node* x, const Node* y, const std::string& path) {
    bool xd = x && x->type == Node::Type::kDir;
    bool yd = y && y->type == Node::Type::kDir;
    if (!x && !y) return ok_status();
    if (!x) fn_('+', path);
    else if (!y) fn_('-', path);
    else if (x->type != y->type) fn_('T', path);
    else if (!xd && (x->content != y->content || x->link_target != y->link_target)) fn_('M', path);
    else if (x->mode != y->mode || x->uid != y->uid || x->gid != y->gid || x->xattrs != y->xattrs ||
             (!xd && x->mtime != y->mtime)) fn_('U', path);
    if (xd || yd) HAVEN_TRY(trees(subtree(x), subtree(y), path));
    return ok_status();
  }

  // Both roots loaded at once.
  void queue_roots(const std::optional<Id>& a, const std::optional<Id>& b, const std::string& rel) {
    if (!ahead_ || (a && b && *a == *b)) return;
    std::vector<std::pair<Id, std::string>> roots;
    if (a) roots.emplace_back(*a, rel);
    if (b) roots.emplace_back(*b, rel);
    ahead_->queue(roots);
  }

 private:
  Result<Tree> load(const Id& id, const std::string& rel) {
    return ahead_ ? ahead_->take(id, rel) : repo_.load_tree(id);
  }

  Repository& repo_;
  const std::function<void(char, const std::string&)>& fn_;
  const CancelToken token_ = current_cancel();  // TreeAhead holds a reference to it
  std::unique_ptr<TreeAhead> ahead_;
};
}  // namespace

Status diff_trees(Repository& repo, const std::optional<Id>& a, const std::optional<Id>& b,
                  const std::string& prefix, const std::function<void(char, const std::string&)>& fn) {
  DiffWalk walk(repo, fn);
  walk.queue_roots(a, b, prefix);
  return walk.trees(a, b, prefix);
}

Status diff_nodes(Repository& repo, const Node* x, const Node* y, const std::string& path,
                  const std::function<void(char, const std::string&)>& fn) {
  DiffWalk walk(repo, fn);
  walk.queue_roots(subtree(x), subtree(y), path);
  return walk.nodes(x, y, path);
}

}  // namespace haven::repo

// compare() of restore/restore.h: a snapshot against a directory, reading only.
#include <sys/stat.h>
#include <cerrno>
#include <unistd.h>

#include <set>

#include "restore/restore.h"
#include "restore/select.h"

namespace haven::restore {

using repo::Node;

namespace {

class Comparer {
 public:
  Comparer(repo::Session& session, const Options& o, Reporter& events)
      : repo_(session.repo()), session_(session), select_(o.includes, o.excludes), events_(events) {}

  Status walk(const repo::Id& tree, const std::string& dir, const std::string& rel_dir);
  void progress(bool final);

  Comparison c;
  uint64_t files_total = 0, bytes_total = 0;

 private:
  void compare_entry(const Node& n, const std::string& path, const std::string& rel);
  void found(const std::string& rel, uint64_t Comparison::*counter, const std::string& problem);

  repo::Repository& repo_;
  repo::Session& session_;
  detail::Selection select_;
  Reporter& events_;
};

void Comparer::found(const std::string& rel, uint64_t Comparison::*counter, const std::string& problem) {
  c.*counter += 1;
  if (c.differences.size() < Comparison::kMaxDifferences) c.differences.push_back({rel, problem});
  events_.error(rel, problem);
}

void Comparer::progress(bool final) {
  if (!final && !events_.progress_due()) return;
  Progress p;
  p.phase = "compare";
  p.files_done = c.files;
  p.bytes_done = c.bytes;
  p.files_total = std::max(files_total, p.files_done);
  p.bytes_total = std::max(bytes_total, p.bytes_done);
  p.final = final;
  events_.progress(std::move(p));
}

Status Comparer::walk(const repo::Id& tree_id, const std::string& dir, const std::string& rel_dir) {
  auto tree = repo_.load_tree(tree_id);
  if (!tree.ok()) {
    found(rel_dir + "/", &Comparison::unreadable,
          tree.error().message() + " (this directory's contents cannot be compared)");
    return ok_status();
  }
  for (const auto& n : tree->nodes) {
    HAVEN_TRY(check_name(n.name));
    HAVEN_TRY(session_.cancel_token().check());
    std::string rel = rel_dir.empty() ? n.name : rel_dir + "/" + n.name;
    bool is_dir = n.type == Node::Type::kDir;
    if (!select_.selected(rel, is_dir)) continue;
    std::string path = dir + "/" + n.name;
    compare_entry(n, path, rel);
    if (is_dir && n.subtree) {
      struct stat st;
      if (lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) HAVEN_TRY(walk(*n.subtree, path, rel));
    }
  }
  return ok_status();
}

void Comparer::compare_entry(const Node& n, const std::string& path, const std::string& rel) {
  switch (n.type) {
    case Node::Type::kDir: c.dirs++; break;
    case Node::Type::kFile: c.files++; break;
    default: c.others++; break;
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      found(rel, &Comparison::missing, "missing from " + path);
    } else {
      found(rel, &Comparison::unreadable, errno_error(path, errno).message());
    }
    return;
  }
  std::optional<Node::Type> have = repo::node_type_of_mode(st.st_mode);
  if (have != n.type) {
    found(rel, &Comparison::differ,
          path + " is a " + (have ? repo::node_type_name(*have) : "file of unknown type") +
              "; the snapshot has a " + repo::node_type_name(n.type));
    return;
  }
  switch (n.type) {
    case Node::Type::kFile: {
      if (static_cast<uint64_t>(st.st_size) != n.size) {
        found(rel, &Comparison::differ,
              path + " has " + std::to_string(st.st_size) + " bytes; the snapshot has " + std::to_string(n.size));
        return;
      }
      Status v = detail::verify_content(repo_, path, n);
      if (!v.ok()) {
        found(rel, v.error().code() == Error::Code::kCorrupt ? &Comparison::differ : &Comparison::unreadable,
              v.error().message());
        return;
      }
      c.bytes += n.size;
      break;
    }
    case Node::Type::kSymlink: {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t len = readlink(path.c_str(), target.data(), target.size());
      if (len < 0) {
        found(rel, &Comparison::unreadable, errno_error(path, errno).message());
        return;
      }
      target.resize(static_cast<size_t>(len));
      if (target != n.link_target) {
        found(rel, &Comparison::differ,
              path + " points to '" + target + "'; the snapshot's link points to '" + n.link_target + "'");
        return;
      }
      break;
    }
    case Node::Type::kCharDev:
    case Node::Type::kBlockDev:
      if (static_cast<uint64_t>(st.st_rdev) != n.rdev) {
        found(rel, &Comparison::differ, path + " is another device than the snapshot's");
        return;
      }
      break;
    default:
      break;
  }
  c.matched++;
  progress(false);
}

}  // namespace

nlohmann::json comparison_json(const Comparison& c) {
  nlohmann::json diffs = nlohmann::json::array();
  for (const auto& d : c.differences) diffs.push_back({{"path", d.path}, {"problem", d.problem}});
  return {{"files", c.files},     {"dirs", c.dirs},       {"others", c.others},
          {"bytes", c.bytes},     {"matched", c.matched}, {"missing", c.missing},
          {"differ", c.differ},   {"unreadable", c.unreadable},
          {"clean", c.clean()},   {"differences", diffs}};
}

Result<Comparison> compare(repo::Session& session, const Choice& choice, const Options& options,
                           const EventTarget& target) {
  CancelScope scope(session.cancel_token());
  repo::Repository& repo = session.repo();
  Reporter events(target, OpKind::kRestore);
  events.started({{"compare", true},
                  {"snapshot", repo::hex(choice.id)},
                  {"target", options.target},
                  {"includes", options.includes},
                  {"excludes", options.excludes}});
  auto run = [&]() -> Result<Comparison> {
    if (options.target.empty()) {
      return Error(Error::Code::kInvalidArgument, "no target given: use --target DIR");
    }
    std::string dir = options.target;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    struct stat st;
    if (stat(dir.c_str(), &st) != 0) {
      if (errno != ENOENT) return errno_error("target " + dir, errno);
      return Error(Error::Code::kNotFound, "target " + dir + " does not exist: nothing restored there to compare");
    }
    if (!S_ISDIR(st.st_mode)) {
      return Error(Error::Code::kInvalidArgument, "target " + dir + " is not a directory");
    }
    HAVEN_ASSIGN(Options o, detail::stored_paths(repo, choice, options));
    Comparer cmp(session, o, events);
    const detail::Totals t = detail::totals(choice, o);
    cmp.files_total = t.files;
    cmp.bytes_total = t.bytes;
    HAVEN_TRY(cmp.walk(choice.snapshot.tree, dir, ""));
    cmp.progress(true);
    events.validated(comparison_json(cmp.c));
    return cmp.c;
  };
  return events.finish(run(), [&](const Comparison& c) {
    nlohmann::json j = comparison_json(c);
    j["snapshot"] = repo::hex(choice.id);
    return j;
  });
}

}  // namespace haven::restore

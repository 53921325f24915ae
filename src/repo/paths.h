// repo/paths.h — paths inside snapshots (docs/FORMAT.md §6).
//
// A snapshot's root tree holds one entry per backed-up path, under a top-level name: the path's
// last component ("/srv/app" → "app", "/" → "root"). Paths that share a last component get
// distinct names (assign_root_names), recorded in Snapshot::names. So a file has two spellings:
// its stored form, relative to the root tree ("app/config"), and its original path
// ("/srv/app/config"). Everything that takes a path from a user (restore --include/--exclude,
// ls, find, diff) accepts both; stored_forms() turns what the user typed into stored forms.
//
// Also here: looking up and walking trees, and comparing two trees, for those commands.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "repo/repository.h"
#include "repo/snapshot.h"

namespace haven::repo {

// The last component of an absolute, cleaned path; "root" for "/".
std::string last_component(const std::string& path);

// Top-level names for backing up `paths` (absolute, cleaned, no duplicates) in one snapshot,
// in the same order. Deterministic for a set of paths, whatever their order: a path whose last
// component no other path has is named by it; paths that share a last component are each
// named by their last k components joined by '_', with the smallest k ≥ 2 that tells them
// apart ("/a/data" → "a_data", "/b/data" → "b_data"; "/x/a/data", "/y/a/data" → "x_a_data",
// "y_a_data"); a name that is still taken gets "~2", "~3"... in the paths' sorted order.
std::vector<std::string> assign_root_names(const std::vector<std::string>& paths);

// The top-level name of each of the snapshot's paths: Snapshot::names when it is recorded (one
// per path), otherwise the last components (snapshots written before names were recorded).
std::vector<std::string> root_names(const Snapshot& s);

// The stored forms (relative to the root tree, no leading or trailing '/', "" for the root
// itself) that a path as a user typed it may mean: the original path mapped through the
// snapshot's paths (every backed-up path it lies in), and the path itself read as a stored
// form. Globs pass through unchanged, so "/srv/app/*.log" becomes "app/*.log".
std::vector<std::string> stored_forms(const Snapshot& s, const std::string& typed);

// The original path of a stored form ("app/config" → "/srv/app/config"); the stored form with a
// leading '/' if its top-level name is not one of the snapshot's.
std::string original_path(const Snapshot& s, const std::string& stored);

// "/srv/app (stored as app), /etc" — for messages that show what a snapshot holds.
std::string describe_top_level(const Snapshot& s);

// The node at a stored form ("" is the root, which has no node: nullopt). nullopt if absent.
Result<std::optional<Node>> lookup(Repository& repo, const Id& root_tree, const std::string& stored);

// A path a user typed, found in a snapshot: its stored form and node.
struct Found {
  std::string stored;
  Node node;
};
// Every node the typed path names (see stored_forms; one per distinct stored form found).
// kNotFound if it names nothing: the message names the path, the snapshot and its top-level
// paths. "" and "/" name the root: an empty vector, no error.
Result<std::vector<Found>> find_path(Repository& repo, const Id& snapshot_id, const Snapshot& s,
                                     const std::string& typed);

// Calls fn(node, stored path with a leading '/') for every node under `tree`, depth first, in
// name order; `prefix` is the stored path of `tree` ("" for the root). Over object storage the
// trees are loaded ahead of the walk (repo/tree_ahead.h), under the thread's current cancel token.
Status walk_tree(Repository& repo, const Id& tree, const std::string& prefix,
                 const std::function<void(const Node&, const std::string&)>& fn);

// Compares two trees; calls fn(change, path) with change '+' added, '-' removed, 'M' content,
// 'T' type, 'U' metadata changed. Identical subtrees are not read.
Status diff_trees(Repository& repo, const std::optional<Id>& a, const std::optional<Id>& b,
                  const std::string& prefix,
                  const std::function<void(char, const std::string&)>& fn);
// The same for two nodes at `path` (either may be absent): reports the node, then its subtree.
Status diff_nodes(Repository& repo, const Node* a, const Node* b, const std::string& path,
                  const std::function<void(char, const std::string&)>& fn);

}  // namespace haven::repo

// repo/tree_ahead.h — directory trees loaded ahead of a walker over object storage: restore's,
// a backup's over its parent snapshot, check's, and repo::walk_tree's (ls, find).
//
// Over object storage every tree is a request of its own, and a walker that loads each
// directory when it gets there waits one round trip per directory. TreeAhead loads the trees
// the walker will want on threads of its own, depth first like the walker (the subdirectories
// of the directory it just entered first, then theirs), keeping at most `max_bytes` of loaded
// trees the walker has not taken yet. Queued trees stored near each other in one pack are
// read together, in one request spanning at most `span` bytes: a directory's subdirectories
// were saved one after the other, so a level of the tree costs a request or two, not one per
// directory.
//
// When nothing else is queued (the walker is going down a chain of single directories, each
// known only once its parent is loaded: a round trip per level), a read also takes along the
// pack's other trees within `span` of it that nobody asked for yet: a backup saves a
// directory's trees just before its own, so they are mostly the ones the walker wants next.
// Trees loaded that way are held, within half of `max_bytes`, until the walker takes them.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "repo/repository.h"
#include "util/cancel.h"

namespace haven::repo {

class TreeAhead {
 public:
  // `wanted(rel)`: whether the walker will enter the directory at `rel` (its selection).
  // `span` 0: each tree is a request of its own. `index`: where trees are found (check's own,
  // which must stay unchanged while this lives); null: the repository's shared index.
  TreeAhead(repo::Repository& repo, std::function<bool(const std::string& rel)> wanted,
            unsigned threads, uint64_t max_bytes, const CancelToken& token, uint64_t span = 1 << 20,
            const Index* index = nullptr);
  ~TreeAhead();  // stops the threads; trees not taken are dropped

  // Whether loading trees ahead pays off: on object storage (a backend that takes several
  // saves at once), where every tree is a round trip; not on a local disk.
  static bool pays_off(Repository& repo) { return repo.backend().concurrent_saves() > 1; }
  // For a walk that enters every directory (backup over its parent, check, walk_tree): 8
  // threads holding at most 16 MiB, or `share` of the working share under a memory limit;
  // null where it does not pay off.
  static std::unique_ptr<TreeAhead> for_walk(Repository& repo, const CancelToken& token, double share,
                                             const Index* index = nullptr);
  TreeAhead(const TreeAhead&) = delete;
  TreeAhead& operator=(const TreeAhead&) = delete;

  // The walk begins at `root` (at `rel`): its subdirectories are wanted first.
  void start(const repo::Tree& root, const std::string& rel = "");
  // Queues the trees of directories the walker will enter, in the order it will (to be loaded
  // before what was queued earlier): for a walker that chooses the directories it enters
  // itself, as diff does (where `wanted` says no to every directory).
  void queue(const std::vector<std::pair<repo::Id, std::string>>& trees);
  // The walker will not take the tree `id` (diff passing over a directory that did not change):
  // if it was taken along unasked and has loaded, it is dropped and its bytes count no more.
  void forget(const repo::Id& id);
  // The tree `id` of the directory at `rel`: loaded ahead (taken out), being loaded (waits for
  // it), or loaded now (and then its subdirectories are queued).
  Result<repo::Tree> take(const repo::Id& id, const std::string& rel);

  // Trees the walker took that were loaded ahead, and that it loaded itself.
  uint64_t ahead() const { return ahead_; }
  uint64_t behind() const { return behind_; }
  // Of those loaded ahead, the ones taken along unasked (see the file comment).
  uint64_t unasked() const { return unasked_; }

 private:
  struct Item {
    repo::Id id;
    std::string rel;
  };
  enum class State { kQueued, kLoading, kDone };
  // A tree queued, loading or loaded; taken out by the walker. A tree that two directories
  // share is loaded ahead for the first; the walker loads it again for the second.
  // `speculative`: taken along unasked (its place in the walk unknown, so its subdirectories
  // are queued only when the walker takes it).
  struct Entry {
    State state = State::kQueued;
    uint64_t bytes = 0;
    bool speculative = false;
    std::optional<Result<repo::Tree>> tree;
  };
  struct Member {
    Item item;
    repo::BlobLocation at;
    bool speculative = false;
  };
  void worker();
  // Through `index_` when set, else the repository's shared index.
  std::optional<BlobLocation> locate(const Id& id) const;
  std::vector<std::pair<Id, BlobLocation>> trees_in(const Id& pack) const;
  uint32_t raw_length(const Id& id) const;  // 0 if not indexed
  Result<Tree> load_alone(const Id& id);
  void push_children(const repo::Tree& tree, const std::string& rel);  // mu_ held
  // Queued items of `first`'s pack that one read of at most span_ bytes takes along (mu_ held;
  // they leave the queue), and with nothing else queued the pack's unasked trees near them.
  // `first` comes first.
  std::vector<Member> neighbours(Item first, const repo::BlobLocation& at);
  // Marks members [from, end) loading and charges their bytes (mu_ held).
  void mark_loading(const std::vector<Member>& group, size_t from);
  // Hands members [from, end) their trees and queues the subdirectories of those asked for
  // (mu_ held); an unasked tree that did not load is forgotten.
  void publish(const std::vector<Member>& group, std::vector<Result<repo::Tree>>& trees, size_t from);
  // Loads the trees of `group` (one pack) with one read; a tree asked for that does not open
  // that way is loaded on its own (its other copy, its own error).
  std::vector<Result<repo::Tree>> load_group(const std::vector<Member>& group);

  repo::Repository& repo_;
  const Index* index_;
  std::function<bool(const std::string&)> wanted_;
  const uint64_t max_bytes_;
  const uint64_t span_;
  const CancelToken& token_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Item> queue_;
  std::unordered_map<repo::Id, Entry, repo::IdHash> entries_;
  uint64_t held_ = 0;  // bytes of trees loading or loaded and not taken
  uint64_t unasked_held_ = 0;  // the part of held_ taken along unasked
  // The trees of the pack last looked into for unasked ones, by offset (an index scan each
  // time another pack is looked into, for at most kMaxPacksLooked packs).
  repo::Id trees_of_pack_{};
  std::vector<std::pair<repo::Id, repo::BlobLocation>> pack_trees_;
  size_t packs_looked_ = 0;
  bool stop_ = false;
  uint64_t ahead_ = 0, behind_ = 0, unasked_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace haven::repo

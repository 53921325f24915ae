#include "restore/tree_ahead.h"

#include <algorithm>

#include "repo/snapshot.h"

namespace haven::restore {

TreeAhead::TreeAhead(repo::Repository& repo, std::function<bool(const std::string& rel)> wanted,
                     unsigned threads, uint64_t max_bytes, const CancelToken& token, uint64_t span)
    : repo_(repo), wanted_(std::move(wanted)), max_bytes_(max_bytes), span_(span), token_(token) {
  for (unsigned i = 0; i < threads; i++) {
    threads_.emplace_back([this] {
      CancelScope scope(token_);
      worker();
    });
  }
}

TreeAhead::~TreeAhead() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void TreeAhead::push_children(const repo::Tree& tree, const std::string& rel) {
  // In reverse at the front: the first subdirectory is loaded first, and the subdirectories of
  // the newest directory come before older ones' (depth first, as the walker goes).
  for (auto it = tree.nodes.rbegin(); it != tree.nodes.rend(); ++it) {
    const repo::Node& n = *it;
    if (n.type != repo::Node::Type::kDir || !n.subtree) continue;
    std::string path = rel.empty() ? n.name : rel + "/" + n.name;
    if (!wanted_(path)) continue;
    if (entries_.try_emplace(*n.subtree).second) queue_.push_front({*n.subtree, std::move(path)});
  }
}

void TreeAhead::start(const repo::Tree& root, const std::string& rel) {
  {
    std::lock_guard<std::mutex> g(mu_);
    push_children(root, rel);
  }
  work_cv_.notify_all();
}

std::vector<std::pair<TreeAhead::Item, repo::BlobLocation>> TreeAhead::neighbours(
    Item first, const repo::BlobLocation& at) {
  // Only the front of the queue is searched (the trees wanted next), so a long queue costs no
  // more per tree than a short one.
  constexpr size_t kLook = 256;
  std::vector<std::pair<Item, repo::BlobLocation>> group;
  group.emplace_back(std::move(first), at);
  uint64_t lo = at.offset, hi = uint64_t{at.offset} + at.length, bytes = at.raw_length;
  size_t looked = 0;
  for (auto q = queue_.begin(); q != queue_.end() && looked < kLook; looked++) {
    auto e = entries_.find(q->id);
    std::optional<repo::BlobLocation> l;
    if (e != entries_.end() && e->second.state == State::kQueued) l = repo_.locate_blob(repo::BlobType::kTree, q->id);
    if (!l || l->pack_id != at.pack_id || std::max<uint64_t>(hi, uint64_t{l->offset} + l->length) -
                                                  std::min<uint64_t>(lo, l->offset) > span_ ||
        held_ + bytes + l->raw_length > max_bytes_) {
      ++q;
      continue;
    }
    lo = std::min<uint64_t>(lo, l->offset);
    hi = std::max<uint64_t>(hi, uint64_t{l->offset} + l->length);
    bytes += l->raw_length;
    group.emplace_back(std::move(*q), *l);
    q = queue_.erase(q);
  }
  return group;
}

std::vector<Result<repo::Tree>> TreeAhead::load_group(
    const std::vector<std::pair<Item, repo::BlobLocation>>& group) {
  std::vector<Result<repo::Tree>> out;
  out.reserve(group.size());
  uint64_t lo = UINT64_MAX, hi = 0;
  for (const auto& [item, l] : group) {
    lo = std::min<uint64_t>(lo, l.offset);
    hi = std::max<uint64_t>(hi, uint64_t{l.offset} + l.length);
  }
  const storage::ObjectName pack{storage::ObjectType::kData, repo::hex(group.front().second.pack_id)};
  Result<Bytes> range = repo_.backend().load(pack, lo, hi - lo);
  for (const auto& [item, l] : group) {
    if (range.ok() && range->size() == hi - lo) {
      ByteView sealed(range->data() + (l.offset - lo), l.length);
      auto plain = repo_.open_located_blob(repo::BlobType::kTree, item.id, l, sealed);
      if (plain.ok()) {
        out.push_back(repo::decode_tree(*plain, "tree " + repo::hex(item.id)));
        continue;
      }
    }
    out.push_back(repo_.load_tree(item.id));  // on its own: another copy, or its own error
  }
  return out;
}

void TreeAhead::worker() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    work_cv_.wait(lk, [&] { return stop_ || (!queue_.empty() && held_ < max_bytes_); });
    if (stop_) return;
    Item item = std::move(queue_.front());
    queue_.pop_front();
    auto it = entries_.find(item.id);
    if (it == entries_.end() || it->second.state != State::kQueued) continue;  // the walker took it
    std::vector<std::pair<Item, repo::BlobLocation>> group;
    auto at = span_ > 0 ? repo_.locate_blob(repo::BlobType::kTree, item.id) : std::nullopt;
    if (at) {
      group = neighbours(std::move(item), *at);
    } else {
      group.emplace_back(std::move(item), repo::BlobLocation{});
    }
    for (const auto& [g, l] : group) {
      auto e = entries_.find(g.id);
      e->second.state = State::kLoading;
      e->second.bytes = repo_.blob_raw_length(repo::BlobType::kTree, g.id).value_or(0);
      held_ += e->second.bytes;
    }
    lk.unlock();
    std::vector<Result<repo::Tree>> trees;
    if (token_.cancelled()) {
      for (size_t i = 0; i < group.size(); i++) trees.emplace_back(token_.check().error());
    } else if (at) {
      trees = load_group(group);
    } else {
      trees.push_back(repo_.load_tree(group.front().first.id));
    }
    lk.lock();
    for (size_t i = 0; i < group.size(); i++) {
      if (trees[i].ok()) push_children(*trees[i], group[i].first.rel);
      auto e = entries_.find(group[i].first.id);  // still there: only a done entry is taken out
      e->second.tree = std::move(trees[i]);
      e->second.state = State::kDone;
    }
    done_cv_.notify_all();
    work_cv_.notify_all();
  }
}

Result<repo::Tree> TreeAhead::take(const repo::Id& id, const std::string& rel) {
  std::unique_lock<std::mutex> lk(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.state == State::kQueued) {
    // Not loading yet: the walker loads it itself (a queued item is then skipped).
    if (it != entries_.end()) entries_.erase(it);
    behind_++;
    lk.unlock();
    Result<repo::Tree> tree = repo_.load_tree(id);
    if (tree.ok()) start(*tree, rel);
    return tree;
  }
  // Found again after each wait: loading threads insert entries, which may rehash the map.
  done_cv_.wait(lk, [&] { return entries_.find(id)->second.state == State::kDone; });
  it = entries_.find(id);
  ahead_++;
  Result<repo::Tree> out = std::move(*it->second.tree);
  held_ -= it->second.bytes;
  entries_.erase(it);
  lk.unlock();
  work_cv_.notify_all();
  return out;
}

}  // namespace haven::restore

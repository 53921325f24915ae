#include "restore/tree_ahead.h"

namespace haven::restore {

TreeAhead::TreeAhead(repo::Repository& repo, std::function<bool(const std::string& rel)> wanted,
                     unsigned threads, uint64_t max_bytes, const CancelToken& token)
    : repo_(repo), wanted_(std::move(wanted)), max_bytes_(max_bytes), token_(token) {
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

void TreeAhead::worker() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    work_cv_.wait(lk, [&] { return stop_ || (!queue_.empty() && held_ < max_bytes_); });
    if (stop_) return;
    Item item = std::move(queue_.front());
    queue_.pop_front();
    auto it = entries_.find(item.id);
    if (it == entries_.end() || it->second.state != State::kQueued) continue;  // the walker took it
    it->second.state = State::kLoading;
    const uint64_t bytes = repo_.blob_raw_length(repo::BlobType::kTree, item.id).value_or(0);
    it->second.bytes = bytes;
    held_ += bytes;
    lk.unlock();
    Result<repo::Tree> tree = token_.cancelled() ? Result<repo::Tree>(token_.check().error())
                                                 : repo_.load_tree(item.id);
    lk.lock();
    if (tree.ok()) push_children(*tree, item.rel);
    it = entries_.find(item.id);  // still there: only a done entry is taken out
    it->second.tree = std::move(tree);
    it->second.state = State::kDone;
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

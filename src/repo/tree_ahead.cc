#include "repo/tree_ahead.h"

#include <algorithm>

#include "repo/snapshot.h"

namespace haven::repo {

TreeAhead::TreeAhead(repo::Repository& repo, std::function<bool(const std::string& rel)> wanted,
                     unsigned threads, uint64_t max_bytes, const CancelToken& token, uint64_t span,
                     const Index* index)
    : repo_(repo), index_(index), wanted_(std::move(wanted)), max_bytes_(max_bytes), span_(span), token_(token) {
  for (unsigned i = 0; i < threads; i++) {
    threads_.emplace_back([this] {
      CancelScope scope(token_);
      worker();
    });
  }
}

std::unique_ptr<TreeAhead> TreeAhead::for_walk(Repository& repo, const CancelToken& token, double share,
                                               const Index* index) {
  if (!pays_off(repo)) return nullptr;
  return std::make_unique<TreeAhead>(repo, [](const std::string&) { return true; }, 8,
                                     repo.memory_budget().bytes(16u << 20, share, 1u << 20), token,
                                     1u << 20, index);
}

TreeAhead::~TreeAhead() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

std::optional<BlobLocation> TreeAhead::locate(const Id& id) const {
  return index_ ? index_->find(BlobType::kTree, id) : repo_.locate_blob(BlobType::kTree, id);
}

std::vector<std::pair<Id, BlobLocation>> TreeAhead::trees_in(const Id& pack) const {
  return index_ ? Repository::blobs_in_pack(*index_, BlobType::kTree, pack)
                : repo_.blobs_in_pack(BlobType::kTree, pack);
}

uint32_t TreeAhead::raw_length(const Id& id) const {
  auto l = locate(id);
  return l ? l->raw_length : 0;
}

Result<Tree> TreeAhead::load_alone(const Id& id) {
  return index_ ? repo_.load_tree(id, *index_) : repo_.load_tree(id);
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

void TreeAhead::queue(const std::vector<std::pair<repo::Id, std::string>>& trees) {
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto it = trees.rbegin(); it != trees.rend(); ++it) {
      if (entries_.try_emplace(it->first).second) queue_.push_front({it->first, it->second});
    }
  }
  work_cv_.notify_all();
}

void TreeAhead::forget(const repo::Id& id) {
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.state != State::kDone || !it->second.speculative) return;
    held_ -= it->second.bytes;
    unasked_held_ -= it->second.bytes;
    entries_.erase(it);
  }
  work_cv_.notify_all();  // room for what is queued
}

namespace {
constexpr size_t kMaxPacksLooked = 8;
}  // namespace

std::vector<TreeAhead::Member> TreeAhead::neighbours(Item first, const repo::BlobLocation& at) {
  // Only the front of the queue is searched (the trees wanted next), so a long queue costs no
  // more per tree than a short one.
  constexpr size_t kLook = 256;
  std::vector<Member> group;
  group.push_back({std::move(first), at, false});
  uint64_t lo = at.offset, hi = uint64_t{at.offset} + at.length, bytes = at.raw_length;
  auto within_span = [&](const repo::BlobLocation& l) {
    return std::max<uint64_t>(hi, uint64_t{l.offset} + l.length) - std::min<uint64_t>(lo, l.offset) <= span_;
  };
  auto take_along = [&](const repo::BlobLocation& l) {
    lo = std::min<uint64_t>(lo, l.offset);
    hi = std::max<uint64_t>(hi, uint64_t{l.offset} + l.length);
    bytes += l.raw_length;
  };
  size_t looked = 0;
  // Whether trees stay queued for other threads (an item whose tree the walker took or is
  // loading itself no longer counts).
  bool others = queue_.size() > kLook;
  for (auto q = queue_.begin(); q != queue_.end() && looked < kLook; looked++) {
    auto e = entries_.find(q->id);
    const bool queued = e != entries_.end() && e->second.state == State::kQueued;
    std::optional<repo::BlobLocation> l;
    if (queued) l = locate(q->id);
    if (!l || l->pack_id != at.pack_id || !within_span(*l) || held_ + bytes + l->raw_length > max_bytes_) {
      others = others || queued;
      ++q;
      continue;
    }
    take_along(*l);
    group.push_back({std::move(*q), *l, false});
    q = queue_.erase(q);
  }
  if (others || span_ == 0) return group;
  // Nothing else to load meanwhile: the walker waits for this read, and probably for the
  // subdirectories it will find in it next. Take along the pack's trees nearest to it that
  // nobody asked for yet.
  if (packs_looked_ == 0 || trees_of_pack_ != at.pack_id) {
    if (packs_looked_ >= kMaxPacksLooked) return group;
    packs_looked_++;
    trees_of_pack_ = at.pack_id;
    pack_trees_ = trees_in(at.pack_id);
  }
  std::vector<const std::pair<repo::Id, repo::BlobLocation>*> near;
  for (const auto& t : pack_trees_) {
    // (The walker's own tree is not among the entries while it loads it.)
    if (t.first != group.front().item.id && !entries_.count(t.first) && within_span(t.second)) {
      near.push_back(&t);
    }
  }
  auto distance = [&](const repo::BlobLocation& l) {
    return l.offset < at.offset ? uint64_t{at.offset} - l.offset : uint64_t{l.offset} - at.offset;
  };
  std::sort(near.begin(), near.end(), [&](auto* a, auto* b) { return distance(a->second) < distance(b->second); });
  uint64_t unasked = 0;
  for (const auto* t : near) {
    const repo::BlobLocation& l = t->second;
    if (!within_span(l)) continue;
    if (unasked_held_ + unasked + l.raw_length > max_bytes_ / 2 || held_ + bytes + l.raw_length > max_bytes_) break;
    take_along(l);
    unasked += l.raw_length;
    group.push_back({Item{t->first, std::string()}, l, true});
  }
  return group;
}

void TreeAhead::mark_loading(const std::vector<Member>& group, size_t from) {
  for (size_t i = from; i < group.size(); i++) {
    auto& e = entries_[group[i].item.id];
    e.state = State::kLoading;
    e.speculative = group[i].speculative;
    e.bytes = group[i].at.raw_length != 0
                  ? group[i].at.raw_length
                  : raw_length(group[i].item.id);
    held_ += e.bytes;
    if (e.speculative) unasked_held_ += e.bytes;
  }
}

void TreeAhead::publish(const std::vector<Member>& group, std::vector<Result<repo::Tree>>& trees, size_t from) {
  for (size_t i = from; i < group.size(); i++) {
    auto e = entries_.find(group[i].item.id);  // still there: only a done entry is taken out
    if (group[i].speculative) {
      if (!trees[i].ok()) {  // forgotten: the walker loads it itself if it wants it
        held_ -= e->second.bytes;
        unasked_held_ -= e->second.bytes;
        entries_.erase(e);
        continue;
      }
    } else if (trees[i].ok()) {
      push_children(*trees[i], group[i].item.rel);
    }
    e->second.tree = std::move(trees[i]);
    e->second.state = State::kDone;
  }
  done_cv_.notify_all();
  work_cv_.notify_all();
}

std::vector<Result<repo::Tree>> TreeAhead::load_group(const std::vector<Member>& group) {
  std::vector<Result<repo::Tree>> out;
  out.reserve(group.size());
  uint64_t lo = UINT64_MAX, hi = 0;
  for (const auto& m : group) {
    lo = std::min<uint64_t>(lo, m.at.offset);
    hi = std::max<uint64_t>(hi, uint64_t{m.at.offset} + m.at.length);
  }
  const storage::ObjectName pack{storage::ObjectType::kData, repo::hex(group.front().at.pack_id)};
  Result<Bytes> range = repo_.backend().load(pack, lo, hi - lo);
  for (const auto& m : group) {
    if (range.ok() && range->size() == hi - lo) {
      ByteView sealed(range->data() + (m.at.offset - lo), m.at.length);
      auto plain = repo_.open_located_blob(repo::BlobType::kTree, m.item.id, m.at, sealed);
      if (plain.ok()) {
        out.push_back(repo::decode_tree(*plain, "tree " + repo::hex(m.item.id)));
        continue;
      }
      if (m.speculative) {
        out.push_back(plain.error());
        continue;
      }
    } else if (m.speculative) {
      out.push_back(range.ok() ? Error(Error::Code::kCorrupt, "short range") : range.error());
      continue;
    }
    out.push_back(load_alone(m.item.id));  // on its own: another copy, or its own error
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
    std::vector<Member> group;
    auto at = span_ > 0 ? locate(item.id) : std::nullopt;
    if (at) {
      group = neighbours(std::move(item), *at);
    } else {
      group.push_back({std::move(item), repo::BlobLocation{}, false});
    }
    mark_loading(group, 0);
    lk.unlock();
    std::vector<Result<repo::Tree>> trees;
    if (token_.cancelled()) {
      for (size_t i = 0; i < group.size(); i++) trees.emplace_back(token_.check().error());
    } else if (at) {
      trees = load_group(group);
    } else {
      trees.push_back(load_alone(group.front().item.id));
    }
    lk.lock();
    publish(group, trees, 0);
  }
}

Result<repo::Tree> TreeAhead::take(const repo::Id& id, const std::string& rel) {
  std::unique_lock<std::mutex> lk(mu_);
  // Found again after each wait: loading threads insert entries, which may rehash the map, and
  // an unasked tree that did not load is forgotten (then the walker loads it itself).
  done_cv_.wait(lk, [&] {
    auto e = entries_.find(id);
    return e == entries_.end() || e->second.state != State::kLoading;
  });
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.state == State::kQueued) {
    // Not loading yet: the walker loads it itself (a queued item is then skipped), with what
    // one read takes along.
    if (it != entries_.end()) entries_.erase(it);
    behind_++;
    auto at = span_ > 0 ? locate(id) : std::nullopt;
    Result<repo::Tree> tree = Error(Error::Code::kInternal, "not loaded");
    if (at) {
      std::vector<Member> group = neighbours(Item{id, rel}, *at);
      mark_loading(group, 1);
      lk.unlock();
      std::vector<Result<repo::Tree>> trees = load_group(group);
      lk.lock();
      publish(group, trees, 1);
      tree = std::move(trees.front());
      lk.unlock();
    } else {
      lk.unlock();
      tree = load_alone(id);
    }
    if (tree.ok()) start(*tree, rel);
    return tree;
  }
  ahead_++;
  const bool unasked = it->second.speculative;
  if (unasked) {
    unasked_++;
    unasked_held_ -= it->second.bytes;
  }
  Result<repo::Tree> out = std::move(*it->second.tree);
  held_ -= it->second.bytes;
  entries_.erase(it);
  lk.unlock();
  work_cv_.notify_all();
  // Taken along unasked: its subdirectories are known now, and where they are.
  if (unasked && out.ok()) start(*out, rel);
  return out;
}

}  // namespace haven::repo

#include "repo/pack_writer.h"

#include <algorithm>

#include "repo/repository.h"

namespace haven::repo {

using storage::ObjectType;

PackWriter::PackWriter(Repository& repo, CancelToken cancel)
    : repo_(repo),
      cancel_(std::move(cancel)),
      compression_(repo.config().compression),
      index_writer_(repo, [this](const std::vector<PackRecord>& packs) { indexed(packs); }) {
  max_packers_ = std::max(2u, std::thread::hardware_concurrency());
  upload_threads_ = std::max<size_t>(1, repo.backend().concurrent_saves());
  pack_target_ = repo.config().pack_size;
  const uint64_t max_chunk = repo.config().chunker.max_size;
  if (const MemoryBudget& m = repo.memory_budget(); m.limited()) {
    if (repo.backend().streams_writes()) {
      // A streamed pack holds about one write: packs being filled and packs being uploaded
      // each get a quarter of the working share.
      const uint64_t per_pack = PackBuilder::kStreamChunk + 64 * 1024;
      // The tree pack is one more.
      max_packers_ = std::max(1u, m.threads(static_cast<unsigned>(max_packers_) + 1, per_pack, 0.25) - 1);
      upload_threads_ = m.threads(static_cast<unsigned>(upload_threads_), per_pack, 0.25);
    } else {
      // A buffered pack is held whole, being filled and then while it uploads: one of each
      // (more if they fit), and packs closed early enough that all of them fit in 40% of the
      // working share (a pack holds up to its target plus one chunk). Smaller packs cost more
      // requests, never correctness: a pack's size is not part of the format.
      const uint64_t full = pack_target_ + max_chunk + 64 * 1024;
      max_packers_ = m.threads(static_cast<unsigned>(max_packers_), full, 0.2);
      upload_threads_ = m.threads(static_cast<unsigned>(upload_threads_), full, 0.2);
      // The tree pack (closed at kTreePackTarget or sooner) counts as one more.
      const uint64_t per_pack = m.bytes(UINT64_MAX, 0.4) / (max_packers_ + 1 + upload_threads_);
      pack_target_ = std::clamp<uint64_t>(per_pack > max_chunk + (1u << 20) ? per_pack - max_chunk : 0,
                                          1u << 20, pack_target_);
    }
  }
  // A streamed pack holds about one write in memory; a buffered one the whole pack.
  buffer_size_ = repo.backend().streams_writes() ? PackBuilder::kStreamChunk + 64 * 1024
                                                 : pack_target_ + max_chunk + 64 * 1024;
  tree_pack_target_ = std::min<uint64_t>(pack_target_, kTreePackTarget);
}

PackWriter::~PackWriter() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_uploaders_ = true;
    upload_cv_.notify_all();
  }
  for (auto& t : uploaders_) t.join();
}

bool PackWriter::contains(BlobType type, const Id& id) {
  std::lock_guard<std::mutex> g(mu_);
  // This writer's own blobs first: one moves into the shared index before it leaves ours.
  return pending_.contains(type, id) || repo_.has_blob(type, id);
}

Result<bool> PackWriter::add(BlobType type, const Id& id, ByteView data) {
  return add(type, id, data, compression_);
}

Result<std::unique_ptr<PackBuilder>> PackWriter::new_packer(bool tree) {
  Bytes buffer;
  size_t reserve = buffer_size_;
  if (tree) {
    // A tree pack grows as trees come (most backups write far less than a pack of them), so
    // it holds in memory what it holds, not a data pack's buffer.
    reserve = std::min<size_t>(buffer_size_, 1u << 20);
  } else {
    std::lock_guard<std::mutex> g(mu_);
    if (!free_buffers_.empty()) {
      buffer = std::move(free_buffers_.back());
      free_buffers_.pop_back();
    }
  }
  const MasterKey& master = repo_.master_key();
  auto packer = std::make_unique<PackBuilder>(*master.encryption_key(master.current_generation),
                                              master.current_generation, std::move(buffer), reserve);
  if (repo_.backend().streams_writes()) {
    auto writer = repo_.backend().open_writer({ObjectType::kData, hex(packer->id())});
    if (!writer.ok()) return writer.error();
    packer->stream_to(std::move(writer).value());
  }
  return packer;
}

Result<bool> PackWriter::add(BlobType type, const Id& id, ByteView data, Compression c) {
  if (type == BlobType::kTree) return add_tree(id, data, c);
  std::unique_ptr<PackBuilder> packer;
  {
    std::unique_lock<std::mutex> lk(mu_);
    if (pending_.contains(type, id) || repo_.has_blob(type, id)) return false;
    pending_.insert(type, id);
    packer_cv_.wait(lk, [&] { return !idle_packers_.empty() || packers_out_ < max_packers_; });
    if (!idle_packers_.empty()) {
      packer = std::move(idle_packers_.back());
      idle_packers_.pop_back();
    }
    packers_out_++;
  }
  if (!packer) {
    auto made = new_packer(false);
    if (!made.ok()) {
      std::lock_guard<std::mutex> g(mu_);
      pending_.erase(type, id);
      packers_out_--;
      packer_cv_.notify_all();
      return made.error();
    }
    packer = std::move(made).value();
    // As many blobs as the last full pack held, and a sixteenth more.
    if (const size_t last = last_pack_blobs_.load(); last > 0) packer->reserve_blobs(last + last / 16);
  }
  // Compression and encryption run outside the lock, on this thread's own packer.
  uint32_t stored = packer->add(type, id, data, c);
  if (!packer->stream_status().ok()) {
    // The pack's file could not be written: it and the blobs in it are lost; the caller fails.
    Error e = packer->stream_status().error();
    std::lock_guard<std::mutex> g(mu_);
    for (const auto& b : packer->record().blobs) pending_.erase(b.type, b.id);
    packers_out_--;
    packer_cv_.notify_all();
    return e;
  }
  blobs_++;
  raw_bytes_ += data.size();
  stored_bytes_ += stored;
  if (packer->size() >= pack_target_) {
    last_pack_blobs_ = packer->blob_count();
    Status st = enqueue_upload(std::move(packer));
    std::lock_guard<std::mutex> g(mu_);
    packers_out_--;
    packer_cv_.notify_all();
    if (!st.ok()) return st.error();
    return true;
  }
  std::lock_guard<std::mutex> g(mu_);
  idle_packers_.push_back(std::move(packer));
  packers_out_--;
  packer_cv_.notify_all();
  return true;
}

Result<bool> PackWriter::add_tree(const Id& id, ByteView data, Compression c) {
  std::unique_ptr<PackBuilder> packer;
  {
    std::unique_lock<std::mutex> lk(mu_);
    if (pending_.contains(BlobType::kTree, id) || repo_.has_blob(BlobType::kTree, id)) return false;
    pending_.insert(BlobType::kTree, id);
    // One thread at a time adds to the tree pack (a tree is small: the wait is short).
    packer_cv_.wait(lk, [&] { return !tree_packer_out_; });
    tree_packer_out_ = true;
    packer = std::move(tree_packer_);
  }
  // Hands the tree pack back (or none, when it was uploaded or lost).
  auto give_back = [&](std::unique_ptr<PackBuilder> p) {
    std::lock_guard<std::mutex> g(mu_);
    tree_packer_ = std::move(p);
    tree_packer_out_ = false;
    packer_cv_.notify_all();
  };
  if (!packer) {
    auto made = new_packer(true);
    if (!made.ok()) {
      {
        std::lock_guard<std::mutex> g(mu_);
        pending_.erase(BlobType::kTree, id);
      }
      give_back(nullptr);
      return made.error();
    }
    packer = std::move(made).value();
  }
  uint32_t stored = packer->add(BlobType::kTree, id, data, c);
  if (!packer->stream_status().ok()) {
    Error e = packer->stream_status().error();
    {
      std::lock_guard<std::mutex> g(mu_);
      for (const auto& b : packer->record().blobs) pending_.erase(b.type, b.id);
    }
    give_back(nullptr);
    return e;
  }
  blobs_++;
  raw_bytes_ += data.size();
  stored_bytes_ += stored;
  if (packer->size() >= tree_pack_target_) {
    Status st = enqueue_upload(std::move(packer));
    give_back(nullptr);
    if (!st.ok()) return st.error();
    return true;
  }
  give_back(std::move(packer));
  return true;
}

Status PackWriter::enqueue_upload(std::unique_ptr<PackBuilder> packer) {
  std::unique_lock<std::mutex> lk(mu_);
  if (upload_error_) return *upload_error_;
  if (uploaders_.empty()) {
    for (size_t i = 0; i < upload_threads_; i++) {
      uploaders_.emplace_back([this] {
        CancelScope scope(cancel_);  // uploads stop when the session is cancelled
        uploader();
      });
    }
  }
  // Hand over only when an uploader is free: packs waiting in memory would only raise the peak.
  upload_cv_.wait(lk, [&] {
    return upload_queue_.size() + uploads_active_ < upload_threads_ || upload_error_;
  });
  if (upload_error_) return *upload_error_;
  upload_queue_.push_back(std::move(packer));
  upload_cv_.notify_all();
  return ok_status();
}

void PackWriter::uploader() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    upload_cv_.wait(lk, [&] { return !upload_queue_.empty() || stop_uploaders_; });
    if (upload_queue_.empty()) return;
    auto packer = std::move(upload_queue_.front());
    upload_queue_.pop_front();
    uploads_active_++;
    upload_cv_.notify_all();
    lk.unlock();
    Status st = upload_pack(std::move(packer));
    lk.lock();
    uploads_active_--;
    if (!st.ok() && !upload_error_) upload_error_ = st.error();
    upload_cv_.notify_all();
  }
}

Status PackWriter::wait_uploads() {
  std::unique_lock<std::mutex> lk(mu_);
  upload_cv_.wait(lk, [&] { return upload_queue_.empty() && uploads_active_ == 0; });
  if (upload_error_) return *upload_error_;
  return ok_status();
}

Status PackWriter::upload_pack(std::unique_ptr<PackBuilder> packer) {
  PackRecord record;
  Bytes data = packer->finish(record);
  Status st = packer->writer() == nullptr ? repo_.backend().save_new({ObjectType::kData, hex(record.id)}, data)
              : !packer->stream_status().ok() ? packer->stream_status()
                                              : packer->writer()->commit();
  packer.reset();  // an uncommitted pack file goes now
  {
    std::lock_guard<std::mutex> g(mu_);
    if (free_buffers_.size() < max_packers_) free_buffers_.push_back(std::move(data));
    if (!st.ok()) {
      for (const auto& b : record.blobs) pending_.erase(b.type, b.id);
      return st;
    }
    // The pack is durable: an index file may name it now. Its blobs stay this writer's until
    // one does (indexed()).
    packs_++;
  }
  return index_writer_.add(std::move(record));
}

void PackWriter::indexed(const std::vector<PackRecord>& packs) {
  // Into the shared index first, then out of ours: a lookup finds each blob in one of them.
  repo_.add_indexed_packs(packs);
  std::lock_guard<std::mutex> g(mu_);
  for (const auto& p : packs) {
    for (const auto& b : p.blobs) pending_.erase(b.type, b.id);
  }
}

Status PackWriter::flush() {
  std::vector<std::unique_ptr<PackBuilder>> packers;
  {
    std::unique_lock<std::mutex> lk(mu_);
    packer_cv_.wait(lk, [&] { return packers_out_ == 0 && !tree_packer_out_; });
    packers = std::move(idle_packers_);
    idle_packers_.clear();
    if (tree_packer_) packers.push_back(std::move(tree_packer_));
  }
  for (auto& p : packers) {
    if (p->blob_count() == 0) continue;
    HAVEN_TRY(enqueue_upload(std::move(p)));
  }
  // Index after packs: the index file may only name packs that are durable.
  HAVEN_TRY(wait_uploads());
  return index_writer_.flush();
}

PackWriter::Stats PackWriter::stats() const {
  Stats s;
  s.blobs = blobs_.load();
  s.raw_bytes = raw_bytes_.load();
  s.stored_bytes = stored_bytes_.load();
  s.packs = packs_.load();
  s.index_files = index_writer_.files_written();
  return s;
}

}  // namespace haven::repo

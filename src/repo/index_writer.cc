#include "repo/index_writer.h"

#include <algorithm>

#include "repo/repository.h"

namespace haven::repo {

IndexWriter::IndexWriter(Repository& repo, OnWritten on_written)
    : repo_(repo), on_written_(std::move(on_written)) {
  if (const MemoryBudget& m = repo.memory_budget(); m.limited()) {
    file_blobs_ = std::clamp<size_t>(m.bytes(UINT64_MAX, 0.1) / 160, 1000, kIndexFileBlobs);
  }
}

Status IndexWriter::add(PackRecord pack) {
  std::lock_guard<std::mutex> g(mu_);
  waiting_blobs_ += pack.blobs.size();
  waiting_.push_back(std::move(pack));
  if (waiting_blobs_ < file_blobs_) return ok_status();
  return write_locked();
}

Status IndexWriter::flush() {
  std::lock_guard<std::mutex> g(mu_);
  return write_locked();
}

Status IndexWriter::write_locked() {
  if (waiting_.empty()) return ok_status();
  // Packs stay waiting until their file is durable, so a failed write is retried by the next
  // add() or flush() and no pack is ever announced as indexed before it is.
  auto saved = repo_.save_index_file(waiting_);
  if (!saved.ok()) return saved.error();
  files_written_++;
  std::vector<PackRecord> written = std::move(waiting_);
  waiting_.clear();
  waiting_blobs_ = 0;
  if (on_written_) on_written_(written);
  return ok_status();
}

uint64_t IndexWriter::files_written() const {
  std::lock_guard<std::mutex> g(mu_);
  return files_written_;
}

size_t IndexWriter::waiting_blobs() const {
  std::lock_guard<std::mutex> g(mu_);
  return waiting_blobs_;
}

}  // namespace haven::repo

#include "restore/select.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>

#include "repo/paths.h"

namespace haven::restore::detail {

std::string strip_slashes(std::string p) {
  while (!p.empty() && p.front() == '/') p.erase(p.begin());
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}

Selection::Selection(const std::vector<std::string>& includes, const std::vector<std::string>& excludes)
    : excludes_(excludes) {
  for (const auto& inc : includes) includes_.push_back(strip_slashes(inc));
}

bool Selection::excluded(const std::string& rel) const {
  for (const auto& e : excludes_) {
    std::string x = strip_slashes(e);
    if (rel == x || (rel.size() > x.size() && rel.compare(0, x.size(), x) == 0 && rel[x.size()] == '/')) {
      return true;
    }
    if (fnmatch(e.c_str(), rel.c_str(), 0) == 0) return true;
    std::string base = rel.substr(rel.rfind('/') + 1);
    if (e.find('/') == std::string::npos && fnmatch(e.c_str(), base.c_str(), 0) == 0) return true;
  }
  return false;
}

bool Selection::wanted(const std::string& rel, bool is_dir) const {
  if (includes_.empty()) return true;
  for (const auto& inc : includes_) {
    if (rel == inc) return true;
    if (rel.size() > inc.size() && rel.compare(0, inc.size(), inc) == 0 && rel[inc.size()] == '/') {
      return true;
    }
    if (is_dir && inc.size() > rel.size() && inc.compare(0, rel.size(), rel) == 0 &&
        inc[rel.size()] == '/') {
      return true;
    }
  }
  return false;
}

Result<Options> stored_paths(repo::Repository& repo, const Choice& choice, const Options& options) {
  Options o = options;
  o.includes.clear();
  for (const auto& inc : options.includes) {
    auto found = repo::find_path(repo, choice.id, choice.snapshot, inc);
    if (!found.ok()) return found.error().with_context("include path");
    if (found->empty()) {  // "/": everything
      o.includes.clear();
      break;
    }
    for (const auto& f : *found) o.includes.push_back(f.stored);
  }
  o.excludes.clear();
  for (const auto& ex : options.excludes) {
    for (auto& form : repo::stored_forms(choice.snapshot, ex)) {
      if (!form.empty()) o.excludes.push_back(std::move(form));
    }
  }
  return o;
}

Totals totals(const Choice& choice, const Options& o) {
  if (!o.includes.empty() || !o.excludes.empty()) return {};
  auto stat = [&](const char* k) {
    auto it = choice.snapshot.stats.find(k);
    return it == choice.snapshot.stats.end() ? uint64_t{0} : it->second;
  };
  return {stat("files_new") + stat("files_changed") + stat("files_unchanged"), stat("bytes_total")};
}

Status verify_content(repo::Repository& repo, const std::string& path, const repo::Node& n) {
  // O_NONBLOCK: a FIFO swapped in for the file must not hang the check (regular files ignore
  // it); O_NOATIME where the owner allows it, so reading leaves the access time alone.
  const int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  int fd = ::open(path.c_str(), flags | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = ::open(path.c_str(), flags);
  if (fd < 0) return errno_error(path, errno);
  struct stat st_file;
  if (::fstat(fd, &st_file) != 0 || !S_ISREG(st_file.st_mode)) {
    ::close(fd);
    return Error(Error::Code::kCorrupt, path + " is not a regular file (the snapshot has a file there)");
  }
  uint64_t offset = 0;
  Status st;
  Bytes disk;
  constexpr size_t kRecent = 4;
  std::deque<std::pair<repo::Id, Bytes>> recent;  // blobs slices were taken from, newest first
  for (const auto& c : n.content) {
    auto len = repo.blob_raw_length(repo::BlobType::kData, c.id);
    if (!len) {
      st = Error(Error::Code::kNotFound, "data blob " + repo::hex(c.id) + " is not in the index");
      break;
    }
    disk.resize(c.whole() ? *len : c.length);
    size_t done = 0;
    while (done < disk.size()) {
      ssize_t r = pread(fd, disk.data() + done, disk.size() - done, static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      done += static_cast<size_t>(r);
    }
    bool same = done == disk.size();
    if (same && c.whole()) {
      same = repo.blob_id(disk) == c.id;
    } else if (same) {
      // A slice: compared with the blob's bytes, which only its whole content hashes to. A
      // relation's slices alternate between a few blobs (the parent's run, the changed pages),
      // so the last few blobs opened are kept rather than opened again for every slice.
      auto cached = std::find_if(recent.begin(), recent.end(), [&](const auto& r) { return r.first == c.id; });
      if (cached == recent.end()) {
        auto blob = repo.load_blob(repo::BlobType::kData, c.id);
        if (!blob.ok()) {
          st = blob.error().with_context(path);
          break;
        }
        if (recent.size() == kRecent) recent.pop_back();
        recent.emplace_front(c.id, std::move(*blob));
        cached = recent.begin();
      }
      const Bytes& blob = cached->second;
      same = uint64_t{c.offset} + c.length <= blob.size() &&
             std::memcmp(blob.data() + c.offset, disk.data(), c.length) == 0;
    }
    if (!same) {
      st = Error(Error::Code::kCorrupt, path + ": content differs from the snapshot at offset " +
                                            std::to_string(offset));
      break;
    }
    offset += disk.size();
  }
  ::close(fd);
  return st;
}

}  // namespace haven::restore::detail

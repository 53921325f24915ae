#include "pg/wal_spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "pg/wal.h"

namespace haven::pg {

namespace {
constexpr const char* kLock = ".lock";
constexpr const char* kPlan = ".plan";

// Whole spooled files: names that are WAL file names (temporaries and the lock start with '.').
std::vector<std::string> spooled(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (is_wal_file_name(n)) out.push_back(n);
  }
  ::closedir(d);
  return out;
}
}  // namespace

WalSpool::~WalSpool() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

Status WalSpool::create() const {
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) return errno_error(dir_, errno);
  return ok_status();
}

bool WalSpool::has(const std::string& name) const {
  struct stat st;
  return ::stat(path(name).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<std::optional<uint64_t>> WalSpool::take(const std::string& name, const std::string& dest) const {
  const std::string from = path(name);
  struct stat st;
  if (::stat(from.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::optional<uint64_t>();
    return errno_error(from, errno);
  }
  if (::rename(from.c_str(), dest.c_str()) == 0) return std::optional<uint64_t>(st.st_size);
  if (errno == ENOENT) return std::optional<uint64_t>();  // taken by someone else meanwhile
  if (errno != EXDEV) return errno_error(dest, errno);
  // Another filesystem: copied (through a temporary name beside `dest`), then dropped here.
  HAVEN_ASSIGN(MappedWalFile file, MappedWalFile::open(from));
  HAVEN_TRY(write_local_wal_file(dest, file.bytes()));
  ::unlink(from.c_str());
  return std::optional<uint64_t>(file.bytes().size());
}

bool WalSpool::prefetch_running() const {
  int fd = ::open(path(kLock).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return held;
}

bool WalSpool::planned(const std::string& name) const {
  if (!prefetch_running()) return false;
  std::ifstream in(path(kPlan));
  for (std::string line; std::getline(in, line);) {
    if (line == name) return true;
  }
  return false;
}

void WalSpool::drop_before(const std::string& segment) const {
  if (!parse_segment_name(segment)) return;
  for (const auto& n : spooled(dir_)) {
    // Names sort as (timeline, segment): every earlier one is behind the server.
    if (n < segment) ::unlink(path(n).c_str());
  }
}

Status WalSpool::clear() {
  struct stat st;
  if (::stat(dir_.c_str(), &st) != 0) return ok_status();  // never created: nothing to clear
  int fd = ::open(path(kLock).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error(path(kLock), errno);
  // A prefetch still running ends at the end of the archive or of its plan.
  while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
  }
  DIR* d = ::opendir(dir_.c_str());
  if (d != nullptr) {
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") ::unlink(path(n).c_str());
    }
    ::closedir(d);
  }
  ::close(fd);
  if (::rmdir(dir_.c_str()) != 0 && errno != ENOENT) return errno_error(dir_, errno);
  return ok_status();
}

Result<bool> WalSpool::lock() {
  if (lock_fd_ >= 0) return true;
  int fd = ::open(path(kLock).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error(path(kLock), errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) return false;
    return errno_error(path(kLock), err);
  }
  lock_fd_ = fd;
  return true;
}

Status WalSpool::write_plan(const std::vector<std::string>& names) const {
  std::string text;
  for (const auto& n : names) text += n + "\n";
  const std::string tmp = path(".tmp-plan-" + std::to_string(::getpid()));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.good()) return errno_error(tmp, EIO);
  }
  if (::rename(tmp.c_str(), path(kPlan).c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return errno_error(path(kPlan), err);
  }
  return ok_status();
}

Status WalSpool::put(const std::string& name, ByteView data) const {
  // Written under a temporary name (not a WAL file name: never taken) and renamed in.
  return write_local_wal_file(path(name), data);
}

std::vector<std::string> next_segment_names(const std::string& segment, uint64_t segment_size,
                                            unsigned count) {
  std::vector<std::string> out;
  auto id = parse_segment_name(segment);
  bool power_of_two = segment_size != 0 && (segment_size & (segment_size - 1)) == 0;
  if (!id || !power_of_two || segment_size < (uint64_t{1} << 20) || segment_size > (uint64_t{1} << 30)) {
    return out;
  }
  const uint64_t per_log = (uint64_t{1} << 32) / segment_size;
  uint64_t number = id->log * per_log + id->seg;
  for (unsigned i = 1; i <= count; i++) {
    uint64_t n = number + i;
    char buf[25];
    std::snprintf(buf, sizeof buf, "%08X%08X%08X", id->timeline, static_cast<unsigned>(n / per_log),
                  static_cast<unsigned>(n % per_log));
    out.emplace_back(buf);
  }
  return out;
}

}  // namespace haven::pg

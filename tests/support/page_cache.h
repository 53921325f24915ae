// tests/support/page_cache.h — how much of a file is in the page cache (mincore), and whether
// the file system under a directory drops written pages when advised to (tmpfs keeps them
// whatever it is told, so a test of page-cache behaviour skips there).
// Test-only: everything is in an anonymous namespace, one copy per test binary.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace haven {
namespace {

// How many of a file's pages are in the page cache, and how many it has; -1 if it cannot say.
std::pair<long, long> cached_pages(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {-1, -1};
  struct stat st;
  const long page = ::sysconf(_SC_PAGESIZE);
  if (::fstat(fd, &st) != 0 || st.st_size == 0) {
    ::close(fd);
    return {-1, -1};
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return {-1, -1};
  const long pages = (st.st_size + page - 1) / page;
  std::vector<unsigned char> vec(static_cast<size_t>(pages));
  long resident = -1;
  if (::mincore(map, static_cast<size_t>(st.st_size), vec.data()) == 0) {
    resident = 0;
    for (unsigned char v : vec) resident += v & 1;
  }
  ::munmap(map, static_cast<size_t>(st.st_size));
  return {resident, pages};
}

// A control: does a file written and synced in `dir` stay cached, and drop out when advised
// to? Empty if so; otherwise why a test of page-cache behaviour cannot tell anything there.
std::string page_cache_control(const std::string& dir) {
  const std::string control = dir + "/page-cache-control";
  {
    std::ofstream(control, std::ios::binary) << std::string(4 << 20, 'x');
  }
  int fd = ::open(control.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "cannot open " + control;
  ::fsync(fd);
  auto [before, pages] = cached_pages(control);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  auto [after, pages2] = cached_pages(control);
  ::unlink(control.c_str());
  if (pages <= 0 || before < pages / 2 || after > pages / 10) {
    return "this file system keeps written pages cached regardless (" + std::to_string(before) + " then " +
           std::to_string(after) + " of " + std::to_string(pages) + " pages)";
  }
  return "";
}

}  // namespace
}  // namespace haven

#pragma GCC diagnostic pop

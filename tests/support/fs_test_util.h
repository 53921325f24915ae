// tests/support/fs_test_util.h — helpers shared by the backup and restore tests: a
// recursive lstat scanner that captures everything Haven promises to keep (type, mode, owner,
// times, content, link targets, xattrs, hard-link identity, holes), temp dirs and file helpers.
// Test-only: everything is in an anonymous namespace, one copy per test binary.
#pragma once

// Shared helpers, one copy per test binary: a test uses some of them, not all.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

#include "backup/backup.h"
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include "crypto/crypto.h"
#include "repo/repository.h"
#include "storage/backend.h"

extern char** environ;

namespace haven {
namespace {

namespace fs = std::filesystem;
using Env = std::vector<std::pair<std::string, std::string>>;


std::string describe(const Error& e) { return e.message(); }

// The one way a test that needs root (tmpfs mounts, running as another user, PostgreSQL as
// nobody) says so: it is skipped, with the reason, when the suite does not run as root (CI and
// `make test` on a fresh machine run as root, so there it always runs).
#define HAVEN_SKIP_UNLESS_ROOT(why)                                                      \
  do {                                                                                  \
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: " << (why) << " (run as root)";   \
  } while (0)

#define ASSERT_OK(expr)                                                            \
  do {                                                                             \
    const auto& haven_st_ = (expr);                                                \
    ASSERT_TRUE(haven_st_.ok()) << #expr << ": " << describe(haven_st_.error());   \
  } while (0)

// Shows a raw file name readably (non-printable bytes as \xNN).
std::string printable(const std::string& s) {
  std::string out;
  char buf[8];
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// --- files ----------------------------------------------------------------------------------

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  for (; i < n; i++) s[i] = static_cast<char>(rng());
  return s;
}

void write_file(const std::string& path, const std::string& data, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  ASSERT_GE(fd, 0) << printable(path) << ": " << std::strerror(errno);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = ::write(fd, data.data() + done, data.size() - done);
    ASSERT_GT(w, 0) << printable(path) << ": " << std::strerror(errno);
    done += static_cast<size_t>(w);
  }
  ASSERT_EQ(::close(fd), 0);
}

std::string read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return "<cannot open: " + std::string(std::strerror(errno)) + ">";
  std::string out;
  char buf[1 << 16];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

void make_dir(const std::string& path, mode_t mode = 0755) {
  ASSERT_EQ(::mkdir(path.c_str(), mode), 0) << printable(path) << ": " << std::strerror(errno);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);  // not subject to the umask
}

void set_times(const std::string& path, TimeNs mtime, TimeNs atime) {
  struct timespec ts[2];
  ts[0].tv_sec = atime / 1000000000;
  ts[0].tv_nsec = atime % 1000000000;
  ts[1].tv_sec = mtime / 1000000000;
  ts[1].tv_nsec = mtime % 1000000000;
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0)
      << printable(path) << ": " << std::strerror(errno);
}

TimeNs mtime_of(const std::string& path) {
  struct stat st{};
  lstat(path.c_str(), &st);
  return static_cast<TimeNs>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  if (DIR* d = opendir(path.c_str())) {
    while (struct dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Gives every entry under `root` (and root itself) a distinct fixed nanosecond mtime, children
// before their directory so setting them does not disturb the directory's times.
void set_fixed_times(const std::string& root, int& counter) {
  struct stat st;
  ASSERT_EQ(lstat(root.c_str(), &st), 0);
  if (S_ISDIR(st.st_mode)) {
    for (const auto& n : list_dir(root)) set_fixed_times(root + "/" + n, counter);
  }
  counter++;
  TimeNs m = (1600000000LL + counter * 1000LL) * 1000000000LL + 123456789LL + counter;
  TimeNs a = (1500000000LL + counter) * 1000000000LL + 987654321LL;
  set_times(root, m, a);
}

std::map<std::string, std::string> xattrs_of(const std::string& path) {
  std::map<std::string, std::string> out;
  std::vector<char> names(65536);
  ssize_t len = llistxattr(path.c_str(), names.data(), names.size());
  if (len < 0) return out;
  for (ssize_t i = 0; i < len;) {
    std::string key(names.data() + i);
    i += static_cast<ssize_t>(key.size()) + 1;
    std::vector<char> value(65536);
    ssize_t v = lgetxattr(path.c_str(), key.c_str(), value.data(), value.size());
    out[key] = v >= 0 ? std::string(value.data(), static_cast<size_t>(v)) : "<unreadable>";
  }
  return out;
}

struct Meta {
  mode_t type = 0, perm = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  TimeNs mtime = 0;
  off_t size = 0;
  ino_t ino = 0;
  dev_t rdev = 0;
  blkcnt_t blocks = 0;
  std::string target;
  std::map<std::string, std::string> xattrs;
};

void scan_into(const std::string& root, const std::string& rel, std::map<std::string, Meta>& out) {
  std::string path = rel.empty() ? root : root + "/" + rel;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    ADD_FAILURE() << "lstat " << printable(path) << ": " << std::strerror(errno);
    return;
  }
  Meta m;
  m.type = st.st_mode & S_IFMT;
  m.perm = st.st_mode & 07777;
  m.uid = st.st_uid;
  m.gid = st.st_gid;
  m.mtime = static_cast<TimeNs>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  m.size = S_ISDIR(st.st_mode) ? 0 : st.st_size;
  m.ino = st.st_ino;
  m.rdev = (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) ? st.st_rdev : 0;
  m.blocks = st.st_blocks;
  if (S_ISLNK(st.st_mode)) {
    char buf[4096];
    ssize_t n = readlink(path.c_str(), buf, sizeof buf);
    if (n >= 0) m.target.assign(buf, static_cast<size_t>(n));
  }
  m.xattrs = xattrs_of(path);
  out[rel] = m;
  if (S_ISDIR(st.st_mode)) {
    for (const auto& n : list_dir(path)) scan_into(root, rel.empty() ? n : rel + "/" + n, out);
  }
}

std::map<std::string, Meta> scan(const std::string& root) {
  std::map<std::string, Meta> out;
  scan_into(root, "", out);
  return out;
}

// Compares two trees entry by entry: names, types, modes, owners, mtimes (ns), sizes, bytes,
// link targets, xattrs (incl. ACLs), device numbers and hard-link identity.
void expect_same_tree(const std::string& a, const std::string& b) {
  auto ma = scan(a);
  auto mb = scan(b);
  std::vector<std::string> ka, kb;
  for (const auto& [k, v] : ma) ka.push_back(printable(k));
  for (const auto& [k, v] : mb) kb.push_back(printable(k));
  EXPECT_EQ(ka, kb) << "entry names differ";
  for (const auto& [rel, x] : ma) {
    auto it = mb.find(rel);
    if (it == mb.end()) continue;
    const Meta& y = it->second;
    std::string where = "at '" + printable(rel) + "'";
    EXPECT_EQ(x.type, y.type) << where;
    EXPECT_EQ(x.perm, y.perm) << where << std::oct << " modes 0" << x.perm << " vs 0" << y.perm;
    EXPECT_EQ(x.uid, y.uid) << where;
    EXPECT_EQ(x.gid, y.gid) << where;
    EXPECT_EQ(x.mtime, y.mtime) << where << ": " << format_time(x.mtime) << " vs " << format_time(y.mtime);
    EXPECT_EQ(x.size, y.size) << where;
    EXPECT_EQ(x.rdev, y.rdev) << where;
    EXPECT_EQ(x.target, y.target) << where;
    EXPECT_EQ(x.xattrs, y.xattrs) << where;
    if (x.type == S_IFREG && y.type == S_IFREG) {
      std::string pa = rel.empty() ? a : a + "/" + rel, pb = rel.empty() ? b : b + "/" + rel;
      EXPECT_TRUE(read_file(pa) == read_file(pb)) << where << ": content differs";
    }
  }
  // Hard-link identity: names sharing an inode in the source share one in the copy, and
  // names that don't, don't.
  std::vector<std::string> names;
  for (const auto& [rel, x] : ma) {
    if (x.type != S_IFDIR && mb.count(rel)) names.push_back(rel);
  }
  for (size_t i = 0; i < names.size(); i++) {
    for (size_t j = i + 1; j < names.size(); j++) {
      bool src_same = ma[names[i]].ino == ma[names[j]].ino;
      bool dst_same = mb[names[i]].ino == mb[names[j]].ino;
      EXPECT_EQ(src_same, dst_same) << "hard-link identity of '" << printable(names[i]) << "' and '"
                                    << printable(names[j]) << "'";
    }
  }
}


}  // namespace
}  // namespace haven

#pragma GCC diagnostic pop

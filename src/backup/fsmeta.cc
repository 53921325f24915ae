#include "backup/fsmeta.h"

#include <grp.h>
#include <pwd.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace haven::backup {

std::string NameCache::user(uint32_t uid) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = users_.find(uid);
  if (it != users_.end()) return it->second;
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* out = nullptr;
  std::string name;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &out) == 0 && out) name = out->pw_name;
  users_[uid] = name;
  return name;
}

std::string NameCache::group(uint32_t gid) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = groups_.find(gid);
  if (it != groups_.end()) return it->second;
  std::vector<char> buf(16384);
  struct group gr{};
  struct group* out = nullptr;
  std::string name;
  if (getgrgid_r(gid, &gr, buf.data(), buf.size(), &out) == 0 && out) name = out->gr_name;
  groups_[gid] = name;
  return name;
}

static Status read_xattrs(const std::string& path, repo::Node& n) {
  std::vector<char> names(1024);
  ssize_t len;
  while (true) {
    len = llistxattr(path.c_str(), names.data(), names.size());
    if (len >= 0) break;
    if (errno == ERANGE) {
      names.resize(names.size() * 4);
      continue;
    }
    if (errno == ENOTSUP || errno == ENOSYS) return ok_status();
    return errno_error("listing extended attributes of " + path, errno);
  }
  for (ssize_t i = 0; i < len;) {
    std::string key(names.data() + i);
    i += static_cast<ssize_t>(key.size()) + 1;
    std::vector<char> value(256);
    while (true) {
      ssize_t vlen = lgetxattr(path.c_str(), key.c_str(), value.data(), value.size());
      if (vlen >= 0) {
        n.xattrs.emplace_back(key, std::string(value.data(), static_cast<size_t>(vlen)));
        break;
      }
      if (errno == ERANGE) {
        value.resize(value.size() * 4);
        continue;
      }
      if (errno == ENODATA) break;  // removed meanwhile
      return errno_error("reading extended attribute " + key + " of " + path, errno);
    }
  }
  std::sort(n.xattrs.begin(), n.xattrs.end());
  return ok_status();
}

Result<repo::Node> read_node(const std::string& path, const std::string& name,
                             const struct stat& st, NameCache& names, const repo::Node* before) {
  repo::Node n;
  n.name = name;
  auto type = repo::node_type_of_mode(st.st_mode);
  if (!type) return Error(Error::Code::kIo, path + ": unknown file type");
  n.type = *type;
  n.mode = st.st_mode & 07777;
  n.uid = st.st_uid;
  n.gid = st.st_gid;
  n.user = names.user(st.st_uid);
  n.group = names.group(st.st_gid);
  n.mtime = ts_ns(st.st_mtim);
  n.atime = ts_ns(st.st_atim);
  n.ctime = ts_ns(st.st_ctim);
  n.size = n.type == repo::Node::Type::kFile ? static_cast<uint64_t>(st.st_size) : 0;
  n.inode = st.st_ino;
  n.device = st.st_dev;
  n.links = st.st_nlink;
  if (n.type == repo::Node::Type::kCharDev || n.type == repo::Node::Type::kBlockDev) {
    n.rdev = st.st_rdev;
  }
  if (before != nullptr && before->type == n.type && before->size == n.size &&
      before->mtime == n.mtime && before->ctime == n.ctime && before->inode == n.inode &&
      before->device == n.device) {
    n.link_target = before->link_target;
    n.xattrs = before->xattrs;
    return n;
  }
  if (n.type == repo::Node::Type::kSymlink) {
    std::vector<char> buf(static_cast<size_t>(st.st_size) + 1 > 256 ? st.st_size + 1 : 256);
    while (true) {
      ssize_t len = readlink(path.c_str(), buf.data(), buf.size());
      if (len < 0) return errno_error("reading symlink " + path, errno);
      if (static_cast<size_t>(len) < buf.size()) {
        n.link_target.assign(buf.data(), static_cast<size_t>(len));
        break;
      }
      buf.resize(buf.size() * 2);
    }
  }
  HAVEN_TRY(read_xattrs(path, n));
  return n;
}

}  // namespace haven::backup

#include "pg/wal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "repo/cbor.h"
#include "repo/format.h"
#include "util/bytes.h"
#include "util/secret_file.h"

namespace haven::pg {

using storage::ObjectName;
using storage::ObjectType;

namespace {

using repo::kMaxWalFile;

bool all_upper_hex(const std::string& s, size_t from, size_t n) {
  if (s.size() < from + n) return false;
  for (size_t i = from; i < from + n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

}  // namespace

bool is_wal_file_name(const std::string& n) {
  if (n.size() == 24) return all_upper_hex(n, 0, 24);
  if (n.size() == 24 + 8 && n.compare(24, 8, ".partial") == 0) return all_upper_hex(n, 0, 24);
  if (n.size() == 8 + 8 && n.compare(8, 8, ".history") == 0) return all_upper_hex(n, 0, 8);
  if (n.size() == 24 + 1 + 8 + 7 && n[24] == '.' && n.compare(33, 7, ".backup") == 0) {
    return all_upper_hex(n, 0, 24) && all_upper_hex(n, 25, 8);
  }
  return false;
}

std::optional<SegmentId> parse_segment_name(const std::string& n) {
  if (n.size() != 24 || !all_upper_hex(n, 0, 24)) return std::nullopt;
  SegmentId id;
  id.timeline = static_cast<uint32_t>(std::stoul(n.substr(0, 8), nullptr, 16));
  id.log = std::stoull(n.substr(8, 8), nullptr, 16);
  id.seg = std::stoull(n.substr(16, 8), nullptr, 16);
  return id;
}

std::optional<uint64_t> parse_lsn(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= s.size() || slash > 8 ||
      s.size() - slash - 1 > 8) {
    return std::nullopt;
  }
  for (size_t i = 0; i < s.size(); i++) {
    if (i != slash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
  }
  uint64_t hi = std::stoull(s.substr(0, slash), nullptr, 16);
  uint64_t lo = std::stoull(s.substr(slash + 1), nullptr, 16);
  return (hi << 32) | lo;
}

std::string format_lsn(uint64_t lsn) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32),
                static_cast<unsigned>(lsn & 0xffffffffu));
  return buf;
}

Status write_wal_key_file(const std::string& path, const WalKey& key, bool overwrite) {
  nlohmann::json j = {{"haven_wal_key", 1},
                      {"repository", key.repository},
                      {"generation", key.generation},
                      {"key", to_hex(key.key.view())}};
  std::string text = j.dump(2) + "\n";
  Status written = write_secret_file(path, text, overwrite);
  std::memset(text.data(), 0, text.size());
  return written;
}

Result<WalKey> read_wal_key_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("WAL key file " + path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return errno_error(path, err);
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Error(Error::Code::kPermissionDenied,
                 "WAL key file " + path + " can be read by others (mode " + mode +
                     "): run 'chmod 600 " + path + "'");
  }
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  ::close(fd);
  auto k = parse_wal_key_file(text, path);
  std::memset(text.data(), 0, text.size());
  return k;
}

Result<WalKey> parse_wal_key_file(const std::string& text, const std::string& path) {
  auto bad = [&](const std::string& why) {
    return Error(Error::Code::kInvalidArgument,
                 path + " is not a Haven WAL key file (" + why + "): write one with 'haven pg archive-key'");
  };
  auto j = nlohmann::json::parse(text, nullptr, false);
  WalKey k;
  std::string hex;
  // Members of the wrong type (a string for a number, a float) make value() throw: one error.
  try {
    if (!j.is_object() || repo::cbor::get_int_or<int64_t>(j, "haven_wal_key", 0) != 1) {
      return bad("unknown format");
    }
    k.repository = j.value("repository", "");
    k.generation = repo::cbor::get_int_or<uint32_t>(j, "generation", 0);
    hex = j.value("key", "");
  } catch (const nlohmann::json::exception&) {
    return bad("a member has the wrong type");
  }
  auto raw = from_hex(hex);
  std::memset(hex.data(), 0, hex.size());
  if (!raw || raw->size() != crypto::kKeySize || k.repository.empty()) return bad("no key in it");
  k.key = crypto::SecretKey(*raw);
  std::memset(raw->data(), 0, raw->size());
  return k;
}

Result<MappedWalFile> MappedWalFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error(path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) > kMaxWalFile) {
    int err = errno;
    ::close(fd);
    if (err != 0 && !S_ISREG(st.st_mode)) return errno_error(path, err);
    return Error(Error::Code::kInvalidArgument, path + " is not a WAL file (not a regular file of at most 1 GiB)");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return MappedWalFile(nullptr, 0);
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) return errno_error(path, err);
  return MappedWalFile(p, size);
}

MappedWalFile::~MappedWalFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

Status write_local_wal_file(const std::string& path, ByteView data) {
  std::string tmp = path + ".haven-" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error(path, errno);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      ::unlink(tmp.c_str());
      return errno_error(path, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return errno_error(path, err);
  }
  return ok_status();
}

Result<Bytes> fetch(storage::Backend& backend, const WalKey& key, const std::string& name) {
  Bytes object;
  Scratch scratch;
  HAVEN_ASSIGN(ByteView plain, fetch_view(backend, key, name, object, scratch));
  return Bytes(plain.begin(), plain.end());
}

Result<ByteView> fetch_view(storage::Backend& backend, const WalKey& key, const std::string& name, Bytes& object,
                            Scratch& scratch) {
  if (!is_wal_file_name(name)) {
    return Error(Error::Code::kInvalidArgument, "'" + name + "' is not a WAL file name");
  }
  HAVEN_ASSIGN(object, backend.load({ObjectType::kWal, name}));
  return repo::open_wal_object_view(key, name, object, scratch);
}

Result<PushOutcome> push(storage::Backend& backend, const WalKey& key, const std::string& name,
                         ByteView content, repo::Compression compression, int workers) {
  if (!is_wal_file_name(name)) {
    return Error(Error::Code::kInvalidArgument,
                 "'" + name + "' is not a WAL file name (a segment, .partial, .history or .backup file)");
  }
  if (content.size() > kMaxWalFile) {
    return Error(Error::Code::kInvalidArgument, name + " is larger than 1 GiB: not a WAL file");
  }
  HAVEN_ASSIGN(std::string fingerprint, repo::repository_fingerprint(backend));
  if (fingerprint != key.repository) {
    return Error(Error::Code::kInvalidArgument,
                 "the WAL key belongs to another repository: write a key for this one with "
                 "'haven pg archive-key'");
  }
  Status saved = repo::save_wal_object(backend, key, name, content, compression, workers);
  if (saved.ok()) return PushOutcome::kStored;
  if (saved.error().code() != Error::Code::kAlreadyExists) return saved.error();
  // Archived before (a retried archive_command, or after a crash): fine if it is the same file.
  Bytes object;
  Scratch scratch;
  HAVEN_ASSIGN(ByteView existing, fetch_view(backend, key, name, object, scratch));
  if (existing.size() == content.size() &&
      std::memcmp(existing.data(), content.data(), content.size()) == 0) {
    return PushOutcome::kAlreadyIdentical;
  }
  return Error(Error::Code::kAlreadyExists,
               "WAL file " + name + " is already archived with different contents: refusing to "
               "replace it (is another cluster archiving into this repository?)");
}

}  // namespace haven::pg

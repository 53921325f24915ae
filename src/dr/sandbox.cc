#include "dr/sandbox.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "pg/server.h"
#include "util/cancel.h"

namespace haven::dr {

namespace {

constexpr const char* kManifest = "haven-drill.json";

// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. With the
// PID it names one process (a PID alone may be reused).
std::string start_time(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = all.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream rest(all.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && (rest >> field); i++) {
    if (i == 22) return field;
  }
  return "";
}

void stop_group(pid_t pgid) {
  if (pgid <= 1) return;
  if (::kill(-pgid, SIGTERM) != 0) return;
  for (int i = 0; i < 20 && ::kill(-pgid, 0) == 0; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(-pgid, SIGKILL);
}

Status stop_recorded(const nlohmann::json& manifest) {
  Status first = ok_status();
  for (const auto& g : manifest.value("process_groups", nlohmann::json::array())) {
    if (g.is_number_integer()) stop_group(g.get<pid_t>());
  }
  for (const auto& d : manifest.value("postgres", nlohmann::json::array())) {
    if (!d.is_string()) continue;
    Status s = pg::stop_server(d.get<std::string>(), "", std::chrono::seconds(10));
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

}  // namespace

Result<Sandbox> Sandbox::create(const std::string& root, const std::string& id) {
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return Error(Error::Code::kIo, "cannot create the drill directory " + root + ": " + ec.message());
  ::chmod(root.c_str(), 0711);
  const std::string path = root + "/" + id;
  if (::mkdir(path.c_str(), 0711) != 0) return errno_error(path, errno);
  Sandbox s(path);
  HAVEN_TRY(s.write_manifest());
  return s;
}

Sandbox::Sandbox(Sandbox&& o) noexcept
    : path_(std::move(o.path_)),
      mu_(std::move(o.mu_)),
      groups_(std::move(o.groups_)),
      postgres_(std::move(o.postgres_)),
      destroyed_(o.destroyed_) {
  o.destroyed_ = true;
}

Sandbox::~Sandbox() {
  if (!destroyed_) (void)destroy();
}

Result<std::string> Sandbox::make_dir(const std::string& name) {
  const std::string dir = path_ + "/" + name;
  if (::mkdir(dir.c_str(), 0755) != 0) return errno_error(dir, errno);
  return dir;
}

Status Sandbox::write_manifest() {
  nlohmann::json j = {{"pid", ::getpid()},
                      {"start_time", start_time(::getpid())},
                      {"process_groups", groups_},
                      {"postgres", postgres_}};
  const std::string tmp = path_ + "/" + kManifest + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump() << "\n";
    if (!out) return Error(Error::Code::kIo, "cannot write " + tmp);
  }
  if (::rename(tmp.c_str(), (path_ + "/" + kManifest).c_str()) != 0) return errno_error(tmp, errno);
  return ok_status();
}

Status Sandbox::add_process_group(pid_t pgid) {
  std::lock_guard lock(*mu_);
  groups_.insert(pgid);
  return write_manifest();
}

Status Sandbox::remove_process_group(pid_t pgid) {
  std::lock_guard lock(*mu_);
  groups_.erase(pgid);
  return write_manifest();
}

Status Sandbox::add_postgres(const std::string& datadir) {
  std::lock_guard lock(*mu_);
  postgres_.push_back(datadir);
  return write_manifest();
}

Status Sandbox::destroy() {
  UncancellableScope clean_up;
  std::lock_guard lock(*mu_);
  if (destroyed_) return ok_status();
  nlohmann::json j = {{"process_groups", groups_}, {"postgres", postgres_}};
  Status stopped = stop_recorded(j);
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  destroyed_ = true;
  if (!stopped.ok()) return stopped;
  if (ec) return Error(Error::Code::kIo, "cannot remove the drill directory " + path_ + ": " + ec.message());
  return ok_status();
}

void Sandbox::release() {
  std::lock_guard lock(*mu_);
  if (destroyed_) return;
  ::unlink((path_ + "/" + kManifest).c_str());
  destroyed_ = true;
}

Status write_owned_file(const std::string& path, const std::string& text, bool append, uid_t uid,
                        gid_t gid, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), mode);
  if (fd < 0) return errno_error(path, errno);
  ssize_t n = ::write(fd, text.data(), text.size());
  int e = errno;
  if (::geteuid() == 0) (void)::fchown(fd, uid, gid);
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) return errno_error(path, e);
  return ok_status();
}

Result<int> free_port(const std::set<int>& avoid) {
  for (int attempt = 0; attempt < 20; attempt++) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno_error("socket", errno);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      int e = errno;
      ::close(fd);
      return errno_error("choosing a free port", e);
    }
    ::close(fd);
    int port = ntohs(a.sin_port);
    if (!avoid.contains(port)) return port;
  }
  return Error(Error::Code::kTransient, "no free TCP port found on 127.0.0.1");
}

Result<std::vector<std::string>> clean_leftovers(const std::string& root) {
  UncancellableScope clean_up;
  std::vector<std::string> removed;
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) return removed;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    const std::string dir = entry.path().string();
    std::ifstream in(dir + "/" + kManifest);
    if (!in) continue;  // not a sandbox, or one being created this instant
    nlohmann::json m = nlohmann::json::parse(in, nullptr, false);
    if (m.is_discarded() || !m.is_object()) continue;
    const pid_t pid = m.value("pid", 0);
    if (pid > 0 && start_time(pid) == m.value("start_time", std::string("?"))) continue;  // alive
    (void)stop_recorded(m);
    std::filesystem::remove_all(dir, ec);
    removed.push_back(dir);
  }
  return removed;
}

}  // namespace haven::dr

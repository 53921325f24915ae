#include "dr/checks.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>

#include "pg/pgconn.h"
#include "storage/curl_api.h"
#include "util/cancel.h"
#include "util/subprocess.h"

namespace haven::dr {

namespace {

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) i++;
  return s.substr(i);
}

std::optional<double> number(const std::string& s) {
  std::string t = trim(s);
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(t.c_str(), &end);
  if (errno != 0 || end != t.c_str() + t.size()) return std::nullopt;
  return v;
}

size_t collect(char* data, size_t size, size_t n, void* out) {
  auto* body = static_cast<std::string*>(out);
  if (body->size() < (1u << 20)) body->append(data, std::min(size * n, (1u << 20) - body->size()));
  return size * n;
}

int on_progress(void*, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return current_cancel().cancelled() ? 1 : 0;
}

CheckOutcome http_check(const config::HealthCheck& c, std::chrono::milliseconds timeout) {
  std::unique_ptr<CURL, decltype(&curl::easy_cleanup)> handle(curl::easy_init(), curl::easy_cleanup);
  if (!handle) {
    Status s = curl::available();
    return {false, s.ok() ? "cannot set up an HTTP request" : s.error().message()};
  }
  std::string body;
  curl::easy_setopt(handle.get(), CURLOPT_URL, c.target.c_str());
  curl::easy_setopt(handle.get(), CURLOPT_NOSIGNAL, 1L);
  curl::easy_setopt(handle.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<int64_t>(timeout.count(), 100)));
  curl::easy_setopt(handle.get(), CURLOPT_WRITEFUNCTION, collect);
  curl::easy_setopt(handle.get(), CURLOPT_WRITEDATA, &body);
  curl::easy_setopt(handle.get(), CURLOPT_NOPROXY, "*");
  curl::easy_setopt(handle.get(), CURLOPT_XFERINFOFUNCTION, on_progress);
  curl::easy_setopt(handle.get(), CURLOPT_NOPROGRESS, 0L);
  CURLcode rc = curl::easy_perform(handle.get());
  if (rc != CURLE_OK) return {false, curl::easy_strerror(rc)};
  long status = 0;
  curl::easy_getinfo(handle.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status != c.expect_status) {
    return {false, "HTTP " + std::to_string(status) + ", expected " +
                       std::to_string(c.expect_status)};
  }
  if (!c.expect_body.empty() && body.find(c.expect_body) == std::string::npos) {
    return {false, "HTTP " + std::to_string(status) + " without '" + c.expect_body +
                       "' in the body"};
  }
  return {true, "HTTP " + std::to_string(status)};
}

CheckOutcome tcp_check(const config::HealthCheck& c, std::chrono::milliseconds timeout) {
  size_t colon = c.target.rfind(':');
  std::string host = c.target.substr(0, colon);
  const std::string port = c.target.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int e = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); e != 0) {
    return {false, "cannot resolve " + host + ": " + gai_strerror(e)};
  }
  std::string last = "no address";
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int r = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      r = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(timeout.count(), 1)));
      if (r == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        errno = err;
        r = err == 0 ? 0 : -1;
      } else {
        errno = r == 0 ? ETIMEDOUT : errno;
        r = -1;
      }
    }
    const int err = errno;
    ::close(fd);
    if (r == 0) {
      ::freeaddrinfo(res);
      return {true, "connected"};
    }
    last = std::strerror(err);
  }
  ::freeaddrinfo(res);
  return {false, last};
}

CheckOutcome sql_check(const config::HealthCheck& c) {
  std::string conninfo = c.conninfo;
  // Keyword form: a connection attempt gives up after 5 s (a URI keeps what it says).
  if (!conninfo.starts_with("postgres") && conninfo.find("connect_timeout") == std::string::npos) {
    conninfo += " connect_timeout=5";
  }
  auto conn = pg::Connection::open(conninfo);
  if (!conn.ok()) return {false, conn.error().message()};
  auto v = conn->value(c.target);
  if (!v.ok()) return {false, v.error().message()};
  if (!satisfies(*v, c.expect)) return {false, "returned '" + *v + "', expected " + c.expect};
  return {true, "returned '" + *v + "'"};
}

CheckOutcome command_check(const config::HealthCheck& c, std::chrono::milliseconds timeout,
                           const std::string& workdir) {
  SpawnOptions so;
  so.argv = {"/bin/sh", "-c", "cd " + shell_quote(workdir) + " && " + c.target};
  so.stderr_fd = -1;
  so.own_process_group = true;
  auto child = Subprocess::spawn(so);
  if (!child.ok()) return {false, child.error().message()};
  CancelToken deadline;
  auto from_caller = current_cancel().on_cancel([deadline] { deadline.cancel(); });
  std::thread timer([deadline, timeout] {
    if (!deadline.sleep_for(timeout)) {
      deadline.cancel(Error(Error::Code::kTransient, "timed out"));
    }
  });
  auto rc = child->wait(deadline);
  deadline.cancel();
  timer.join();
  if (!rc.ok()) return {false, "command " + rc.error().message()};
  if (*rc != 0) return {false, "command " + describe_exit(*rc)};
  return {true, "command exited with status 0"};
}

}  // namespace

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) {
    if (ch == '\'') out += "'\\''";
    else out += ch;
  }
  return out + "'";
}

bool satisfies(const std::string& value, const std::string& expect) {
  std::string e = trim(expect);
  for (const char* op : {">=", "<=", "!=", ">", "<", "="}) {
    const std::string o = op;
    if (!e.starts_with(o)) continue;
    const std::string rhs = trim(e.substr(o.size()));
    auto a = number(value), b = number(rhs);
    if (o == "=" || o == "!=") {
      bool eq = a && b ? *a == *b : trim(value) == rhs;
      return o == "=" ? eq : !eq;
    }
    if (!a || !b) return false;
    if (o == ">=") return *a >= *b;
    if (o == "<=") return *a <= *b;
    if (o == ">") return *a > *b;
    return *a < *b;
  }
  return trim(value) == e;
}

CheckOutcome run_check(const config::HealthCheck& check, std::chrono::milliseconds timeout,
                       const std::function<CheckOutcome(const std::string& step)>& checksum,
                       const std::string& workdir) {
  if (current_cancel().cancelled()) return {false, "cancelled"};
  switch (check.kind) {
    case config::HealthCheck::Kind::kHttp: return http_check(check, timeout);
    case config::HealthCheck::Kind::kTcp: return tcp_check(check, timeout);
    case config::HealthCheck::Kind::kSql: return sql_check(check);
    case config::HealthCheck::Kind::kChecksum: return checksum(check.target);
    case config::HealthCheck::Kind::kCommand: return command_check(check, timeout, workdir);
  }
  return {false, "unknown check"};
}

}  // namespace haven::dr

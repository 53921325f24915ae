// tests/integration/http_fault_proxy.h — an HTTP/1.1-aware TCP proxy on loopback that sits
// between the haven CLI and a test server (s3rver, Azurite) and injects network faults per
// request.
//
// The proxy listens on 127.0.0.1 on a free port and forwards each accepted connection to
// 127.0.0.1:<target port> over a connection of its own. It follows HTTP/1.1 framing on both
// sides (request and response heads; bodies by Content-Length, by chunked transfer coding, or
// up to EOF for a response without either; no body for HEAD, 1xx, 204 and 304), so keep-alive
// connections carry many requests and each request rolls its own fault. A request carrying
// `Expect: 100-continue` is answered "100 Continue" by the proxy itself and forwarded without
// the header, so the whole body is in hand before the fault is chosen.
//
// Faults (each request rolls one with a seeded RNG, by the probabilities in ProxyPlan):
//   fail_503              not forwarded: "503 Service Unavailable" (an S3 SlowDown error body)
//                         with Connection: close, then the connection is closed.
//   reset_mid_response    forwarded; the response head and about half the body (half the head
//                         when there is no body) reach the client, then a TCP reset.
//   reset_before_response forwarded and completed by the server (a PUT takes effect), then the
//                         client's connection is reset with nothing sent back: a lost response.
//   stall                 waits stall_ms before forwarding (stop() cuts the wait short).
// The RNG is one sequence shared by all connections, so over N requests the faults drawn are
// the same for a given seed; which request gets which depends on the client's timing.
//
// A targeted rule (set_rule) can pick the fault for particular requests instead, e.g. "lose the
// response to the first data PUT on a reused connection".
//
// Thread-safety: start(), stop() and the destructor from one thread; set_plan(), set_rule()
// and the counters from any thread. One thread per client connection; stop() shuts every socket down
// and joins every thread.
#pragma once

#include "integration/loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>

namespace haven::testing {

// Probabilities (0..1) per request; their sum must not exceed 1.
struct ProxyPlan {
  double fail_503 = 0;
  double reset_mid_response = 0;
  double reset_before_response = 0;
  double stall = 0;
  int stall_ms = 300;
};

enum class ProxyFault { kNone = 0, kFail503, kResetMidResponse, kResetBeforeResponse, kStall };

// What a targeted fault rule sees of a request.
struct ProxyRequest {
  std::string method;  // "PUT"
  std::string target;  // "/bucket/prefix/data/ab/ab12...?query"
  int index_on_connection = 0;  // 0 for the first request on a client connection
};

class HttpFaultProxy {
 public:
  HttpFaultProxy(int target_port, uint64_t seed) : target_port_(target_port), rng_(seed) {}
  HttpFaultProxy(const HttpFaultProxy&) = delete;
  HttpFaultProxy& operator=(const HttpFaultProxy&) = delete;
  ~HttpFaultProxy() { stop(); }

  // Listens and starts accepting; returns an empty string on success, else why it failed.
  std::string start() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return "socket failed";
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;  // a free port, chosen by the kernel at bind: no race with other tests
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "bind failed";
    socklen_t len = sizeof a;
    if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "getsockname failed";
    port_ = ntohs(a.sin_port);
    if (::listen(listen_fd_, 128) != 0) return "listen failed";
    stopping_ = false;
    acceptor_ = std::thread([this] { accept_loop(); });
    return "";
  }

  // Closes the listener and every connection and joins all threads. Idempotent.
  void stop() {
    if (stopping_.exchange(true)) {
      if (listen_fd_ >= 0) ::close(listen_fd_);  // start() failed before accepting
      listen_fd_ = -1;
      return;
    }
    {
      std::lock_guard<std::mutex> g(mu_);  // no stall may miss the wake-up
    }
    stop_cv_.notify_all();
    if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
    {
      std::lock_guard<std::mutex> g(mu_);
      for (int fd : live_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    std::list<Conn> all;
    {
      std::lock_guard<std::mutex> g(mu_);
      all.swap(conns_);
    }
    for (auto& c : all) c.thread.join();
  }

  int port() const { return port_; }

  void set_plan(const ProxyPlan& p) {
    std::lock_guard<std::mutex> g(mu_);
    plan_ = p;
  }
  // A targeted rule, asked first for every request (under the proxy's lock, so it may keep
  // state): a fault other than kNone is injected as it is, kNone falls back to the plan.
  void set_rule(std::function<ProxyFault(const ProxyRequest&)> rule) {
    std::lock_guard<std::mutex> g(mu_);
    rule_ = std::move(rule);
  }
  // Every request answered 503 (a backend gone for good), or back to `plan`.
  void fail_everything() { set_plan(ProxyPlan{1.0, 0, 0, 0, 0}); }

  // How many requests rolled under `p` from a fresh proxy seeded `seed` it takes until every
  // kind of fault `p` can produce has been drawn at least once (0 if not within `limit`). Rolls
  // are drawn only while some fault is possible, so with `p` set before the first faulty
  // request, a run with at least this many such requests has injected every kind.
  static int rolls_to_cover(const ProxyPlan& p, uint64_t seed, int limit = 100000) {
    std::mt19937_64 rng(seed);
    std::set<ProxyFault> want;
    if (p.fail_503 > 0) want.insert(ProxyFault::kFail503);
    if (p.reset_mid_response > 0) want.insert(ProxyFault::kResetMidResponse);
    if (p.reset_before_response > 0) want.insert(ProxyFault::kResetBeforeResponse);
    if (p.stall > 0) want.insert(ProxyFault::kStall);
    for (int i = 1; i <= limit; i++) {
      want.erase(draw(p, rng));
      if (want.empty()) return i;
    }
    return 0;
  }

  // Requests seen, and those that rolled with some fault possible (see rolls_to_cover).
  uint64_t requests() const { return requests_.load(); }
  uint64_t rolled() const { return rolled_.load(); }
  uint64_t injected(ProxyFault f) const { return counts_[static_cast<int>(f)].load(); }
  void reset_counters() {
    requests_ = 0;
    rolled_ = 0;
    for (auto& c : counts_) c = 0;
  }
  std::string summary() const {
    return "requests " + std::to_string(requests()) + " (" + std::to_string(rolled()) +
           " rolled), 503 " +
           std::to_string(injected(ProxyFault::kFail503)) + ", reset-mid-response " +
           std::to_string(injected(ProxyFault::kResetMidResponse)) + ", reset-before-response " +
           std::to_string(injected(ProxyFault::kResetBeforeResponse)) + ", stall " +
           std::to_string(injected(ProxyFault::kStall));
  }

 private:
  struct Conn {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  // A byte stream over a socket with a read-ahead buffer, for line- and length-framed reads.
  struct Stream {
    int fd = -1;
    std::string buf;  // read but not yet consumed

    bool fill() {
      char tmp[65536];
      for (;;) {
        ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n > 0) {
          buf.append(tmp, static_cast<size_t>(n));
          return true;
        }
        if (n < 0 && errno == EINTR) continue;
        return false;
      }
    }
    // Up to and including "\r\n\r\n"; false on EOF or error before it.
    bool read_head(std::string& head) {
      for (;;) {
        size_t e = buf.find("\r\n\r\n");
        if (e != std::string::npos) {
          head = buf.substr(0, e + 4);
          buf.erase(0, e + 4);
          return true;
        }
        if (buf.size() > (1u << 20) || !fill()) return false;
      }
    }
    bool read_line(std::string& out) {  // including "\r\n"
      for (;;) {
        size_t e = buf.find("\r\n");
        if (e != std::string::npos) {
          out.append(buf, 0, e + 2);
          buf.erase(0, e + 2);
          return true;
        }
        if (!fill()) return false;
      }
    }
    bool read_n(size_t n, std::string& out) {
      while (buf.size() < n) {
        if (!fill()) return false;
      }
      out.append(buf, 0, n);
      buf.erase(0, n);
      return true;
    }
    // A chunked body, raw (sizes, data, trailers), appended to `out`.
    bool read_chunked(std::string& out) {
      for (;;) {
        std::string line;
        if (!read_line(line)) return false;
        out += line;
        size_t size = std::strtoul(line.c_str(), nullptr, 16);
        if (size == 0) {
          for (;;) {  // trailers up to the empty line
            std::string t;
            if (!read_line(t)) return false;
            out += t;
            if (t == "\r\n") return true;
          }
        }
        if (!read_n(size + 2, out)) return false;
      }
    }
    bool read_to_eof(std::string& out) {
      while (fill()) {
      }
      out += buf;
      buf.clear();
      return true;
    }
  };

  static std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
  }
  // The value of header `name` (lower case) in `head`, or "" (and has=false).
  static std::string header(const std::string& head, const std::string& name, bool* has = nullptr) {
    const std::string l = lower(head);
    size_t pos = l.find("\r\n" + name + ":");
    if (has) *has = pos != std::string::npos;
    if (pos == std::string::npos) return "";
    size_t b = pos + 2 + name.size() + 1;
    size_t e = l.find("\r\n", b);
    std::string v = head.substr(b, e - b);
    size_t f = v.find_first_not_of(" \t"), t = v.find_last_not_of(" \t");
    return f == std::string::npos ? "" : v.substr(f, t - f + 1);
  }
  static std::string without_header(const std::string& head, const std::string& name) {
    const std::string l = lower(head);
    size_t pos = l.find("\r\n" + name + ":");
    if (pos == std::string::npos) return head;
    size_t e = l.find("\r\n", pos + 2);
    return head.substr(0, pos) + head.substr(e);
  }

  static bool send_all(int fd, const char* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  static bool send_all(int fd, const std::string& s) { return send_all(fd, s.data(), s.size()); }

  // Closes with SO_LINGER 0: the peer gets a RST, not a FIN.
  static void reset(int fd) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }

  static ProxyFault draw(const ProxyPlan& p, std::mt19937_64& rng) {
    double x = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    if ((x -= p.fail_503) < 0) return ProxyFault::kFail503;
    if ((x -= p.reset_mid_response) < 0) return ProxyFault::kResetMidResponse;
    if ((x -= p.reset_before_response) < 0) return ProxyFault::kResetBeforeResponse;
    if ((x -= p.stall) < 0) return ProxyFault::kStall;
    return ProxyFault::kNone;
  }
  static bool faults_off(const ProxyPlan& p) {
    return p.fail_503 + p.reset_mid_response + p.reset_before_response + p.stall <= 0;
  }
  ProxyFault roll(const ProxyRequest& req, std::atomic<uint64_t>* rolled) {
    std::lock_guard<std::mutex> g(mu_);
    if (rule_) {
      ProxyFault f = rule_(req);
      if (f != ProxyFault::kNone) return f;
    }
    if (faults_off(plan_)) return ProxyFault::kNone;  // no draw: the sequence is kept for later
    (*rolled)++;
    return draw(plan_, rng_);
  }
  int stall_ms() {
    std::lock_guard<std::mutex> g(mu_);
    return plan_.stall_ms;
  }

  void track(int fd, bool add) {
    std::lock_guard<std::mutex> g(mu_);
    if (add) {
      live_fds_.insert(fd);
      if (stopping_) ::shutdown(fd, SHUT_RDWR);  // stop() may already have swept
    } else {
      live_fds_.erase(fd);
    }
  }

  void accept_loop() {
    for (;;) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // shut down by stop()
      }
      if (stopping_) {
        ::close(c);
        return;
      }
      int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      track(c, true);
      std::lock_guard<std::mutex> g(mu_);
      // Join connections that have ended, so a long run does not pile up threads.
      for (auto it = conns_.begin(); it != conns_.end();) {
        if (it->done->load()) {
          it->thread.join();
          it = conns_.erase(it);
        } else {
          ++it;
        }
      }
      auto done = std::make_shared<std::atomic<bool>>(false);
      conns_.push_back(Conn{std::thread([this, c, done] {
                              serve(c);
                              done->store(true);
                            }),
                            done});
    }
  }

  int connect_upstream() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(target_port_));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    track(fd, true);
    return fd;
  }

  // One client connection: request by request until either side closes or a fault ends it.
  void serve(int client_fd) {
    Stream client{client_fd, {}};
    Stream upstream;
    bool reset_client = false;
    int index_on_connection = 0;
    for (;;) {
      // ---- the request
      std::string head;
      if (!client.read_head(head)) break;
      bool expect_continue = lower(header(head, "expect")).find("100-continue") != std::string::npos;
      if (expect_continue) {
        head = without_header(head, "expect");
        if (!send_all(client_fd, "HTTP/1.1 100 Continue\r\n\r\n")) break;
      }
      std::string body;
      bool has_len = false;
      std::string cl = header(head, "content-length", &has_len);
      if (lower(header(head, "transfer-encoding")).find("chunked") != std::string::npos) {
        if (!client.read_chunked(body)) break;
      } else if (has_len) {
        if (!client.read_n(std::strtoull(cl.c_str(), nullptr, 10), body)) break;
      }
      ProxyRequest req;
      req.method = head.substr(0, head.find(' '));
      size_t t0 = head.find(' ') + 1;
      req.target = head.substr(t0, head.find(' ', t0) - t0);
      req.index_on_connection = index_on_connection++;
      const std::string& method = req.method;
      const bool client_close = lower(header(head, "connection")) == "close";
      requests_++;

      // ---- the fault
      ProxyFault f = roll(req, &rolled_);
      counts_[static_cast<int>(f)]++;
      if (f == ProxyFault::kFail503) {
        const std::string xml =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>"
            "Please reduce your request rate (injected by the test proxy).</Message></Error>";
        send_all(client_fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
                            "Content-Length: " + std::to_string(xml.size()) +
                                "\r\nRetry-After: 0\r\nConnection: close\r\n\r\n" + xml);
        break;
      }
      if (f == ProxyFault::kStall) {
        // Cut short by stop(), so a long stall never holds up a test's teardown.
        const auto ms = std::chrono::milliseconds(stall_ms());
        std::unique_lock<std::mutex> lk(mu_);
        stop_cv_.wait_for(lk, ms, [&] { return stopping_.load(); });
        if (stopping_) break;
      }

      // ---- forward, and read the whole response
      if (upstream.fd < 0) {
        upstream.fd = connect_upstream();
        if (upstream.fd < 0) {
          reset_client = true;  // the server is gone: the client sees a reset
          break;
        }
      }
      if (!send_all(upstream.fd, head) || !send_all(upstream.fd, body)) {
        reset_client = true;
        break;
      }
      std::string rhead, rbody;
      int status = 0;
      do {  // 1xx interim responses go through as they are
        if (!rhead.empty() && !send_all(client_fd, rhead)) break;
        rhead.clear();
        if (!upstream.read_head(rhead)) break;
        status = std::atoi(rhead.c_str() + std::min<size_t>(9, rhead.size()));
      } while (status >= 100 && status < 200);
      if (rhead.empty() || status < 200) {
        reset_client = true;
        break;
      }
      bool server_close = lower(header(rhead, "connection")) == "close";
      bool rhas_len = false;
      std::string rcl = header(rhead, "content-length", &rhas_len);
      bool ok = true;
      if (method == "HEAD" || status == 204 || status == 304) {
        // no body
      } else if (lower(header(rhead, "transfer-encoding")).find("chunked") != std::string::npos) {
        ok = upstream.read_chunked(rbody);
      } else if (rhas_len) {
        ok = upstream.read_n(std::strtoull(rcl.c_str(), nullptr, 10), rbody);
      } else {
        ok = upstream.read_to_eof(rbody);  // the body ends with the connection
        server_close = true;
      }
      if (!ok) {
        reset_client = true;
        break;
      }

      if (f == ProxyFault::kResetBeforeResponse) {
        reset_client = true;
        break;
      }
      if (f == ProxyFault::kResetMidResponse) {
        if (rbody.empty()) {
          send_all(client_fd, rhead.data(), rhead.size() / 2);
        } else {
          send_all(client_fd, rhead);
          send_all(client_fd, rbody.data(), rbody.size() / 2);
        }
        reset_client = true;
        break;
      }
      if (!send_all(client_fd, rhead) || !send_all(client_fd, rbody)) break;
      if (server_close || client_close) break;  // the client saw the server's Connection: close
    }
    if (reset_client) reset(client_fd);
    track(client_fd, false);
    ::close(client_fd);
    if (upstream.fd >= 0) {
      track(upstream.fd, false);
      ::close(upstream.fd);
    }
  }

  const int target_port_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{true};
  std::condition_variable stop_cv_;  // wakes stalls when stopping
  std::thread acceptor_;

  std::mutex mu_;  // guards plan_, rule_, rng_, conns_, live_fds_
  ProxyPlan plan_;
  std::function<ProxyFault(const ProxyRequest&)> rule_;
  std::mt19937_64 rng_;
  std::list<Conn> conns_;
  std::set<int> live_fds_;

  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> rolled_{0};
  std::atomic<uint64_t> counts_[5] = {};
};

}  // namespace haven::testing

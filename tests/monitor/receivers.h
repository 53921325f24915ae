// tests/monitor/receivers.h — real receivers on loopback for the monitoring tests
// (channels_test.cc, service_test.cc): an httplib server standing in for a webhook, Slack or
// PagerDuty; a real SMTP server (aiosmtpd: tests/monitor/smtp_server.py) with STARTTLS and
// AUTH over a self-signed certificate made with openssl; a temporary directory and file helpers.
// Test-only; everything is inline (one definition shared by the test files of test_monitor).
#pragma once

#include <fcntl.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "util/cancel.h"
#include "util/subprocess.h"

namespace haven::monitor::test {

// A fresh directory under the temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "haven-monitor-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The whole file ("" if it cannot be read).
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes `text` to `path` with `mode`.
inline void write_text(const std::string& path, const std::string& text, mode_t mode = 0600) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  ::chmod(path.c_str(), mode);
}

inline void write_script(const std::string& path, const std::string& text) {
  write_text(path, text, 0755);
}

// Runs argv to completion; its exit status (-1 if it could not be run).
inline int run(const std::vector<std::string>& argv) {
  SpawnOptions o;
  o.argv = argv;
  o.stderr_fd = -1;
  auto p = Subprocess::spawn(o);
  if (!p.ok()) return -1;
  auto st = p->wait(CancelToken());
  return st.ok() ? *st : -1;
}

// An HTTP receiver on 127.0.0.1 that records every POST and answers with a configured status.
class Receiver {
 public:
  struct Req {
    std::string path, query, body;
    httplib::Headers headers;
    std::string header(const std::string& k) const {
      auto it = headers.find(k);
      return it == headers.end() ? "" : it->second;
    }
  };

  Receiver() = default;
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  ~Receiver() { stop(); }

  // Listens on `port` (0: any free one).
  bool start(int port = 0) {
    svr_ = std::make_unique<httplib::Server>();
    // One request per connection: a kept-alive connection would hold stop() for httplib's
    // keep-alive timeout (5 s).
    svr_->set_keep_alive_max_count(1);
    svr_->Post(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      handle(req, res);
    });
    if (port == 0) {
      port_ = svr_->bind_to_any_port("127.0.0.1");
      if (port_ <= 0) return false;
    } else {
      if (!svr_->bind_to_port("127.0.0.1", port)) return false;
      port_ = port;
    }
    thread_ = std::thread([s = svr_.get()] { s->listen_after_bind(); });
    // stop() before the loop runs would be lost: wait for it.
    for (int i = 0; i < 5000 && !svr_->is_running(); i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return svr_->is_running();
  }
  void stop() {
    release();
    if (!svr_) return;
    svr_->stop();
    thread_.join();
    svr_.reset();
  }

  int port() const { return port_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  // The answer to every request from now on. `echo`: the body quotes the request (its path,
  // query, Authorization header and body), as a careless receiver's error page might.
  void respond(int status, std::string body = "", bool echo = false,
               httplib::Headers extra = {}) {
    std::lock_guard<std::mutex> g(mu_);
    status_ = status;
    body_ = std::move(body);
    echo_ = echo;
    extra_ = std::move(extra);
  }
  // Requests wait until release() (or stop()).
  void hold() {
    std::lock_guard<std::mutex> g(mu_);
    held_ = true;
  }
  void release() {
    {
      std::lock_guard<std::mutex> g(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }
  std::vector<Req> requests() {
    std::lock_guard<std::mutex> g(mu_);
    return reqs_;
  }

 private:
  void handle(const httplib::Request& req, httplib::Response& res) {
    std::unique_lock<std::mutex> lk(mu_);
    std::string query;
    for (const auto& [k, v] : req.params) query += (query.empty() ? "" : "&") + k + "=" + v;
    reqs_.push_back(Req{req.path, query, req.body, req.headers});
    cv_.wait_for(lk, std::chrono::seconds(10), [&] { return !held_; });
    res.status = status_;
    std::string body = body_;
    if (echo_) {
      body = "you sent " + req.path + "?" + query + " auth=" +
             req.get_header_value("Authorization") + " body=" + req.body;
    }
    for (const auto& [k, v] : extra_) res.set_header(k.c_str(), v);
    res.set_content(body, "application/json");
  }

  std::unique_ptr<httplib::Server> svr_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Req> reqs_;
  int status_ = 200;
  std::string body_ = "ok";
  bool echo_ = false;
  bool held_ = false;
  httplib::Headers extra_;
};

// A port nothing listens on (a receiver bound it, then stopped).
inline int closed_port() {
  Receiver r;
  if (!r.start()) return 0;
  int p = r.port();
  r.stop();
  return p;
}

// smtp_server.py, started with or without TLS; stopped when destroyed.
class SmtpServer {
 public:
  static constexpr const char* kUser = "alice";
  static constexpr const char* kPassword = "correct-horse-battery";

  SmtpServer() = default;
  SmtpServer(const SmtpServer&) = delete;
  SmtpServer& operator=(const SmtpServer&) = delete;

  // Starts it; "" if it started, else what went wrong.
  std::string start(bool tls) {
    namespace fs = std::filesystem;
    tls_ = tls;
    fs::create_directories(dir_.path() / "mail");
    if (tls) {
      int rc = run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                    dir_ / "key.pem", "-out", cert(), "-days", "2"});
      if (rc != 0) return "openssl req failed: " + std::to_string(rc);
    }
    const std::string script = (fs::path(__FILE__).parent_path() / "smtp_server.py").string();
    std::vector<std::string> argv = {"/usr/bin/python3", script, "--dir", mail_dir().string(),
                                     "--user", kUser, "--password", kPassword};
    if (tls) {
      argv.insert(argv.end(), {"--cert", cert(), "--key", dir_ / "key.pem"});
    }
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return "pipe failed";
    int err = ::open((dir_ / "stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    SpawnOptions o;
    o.argv = argv;
    o.stdout_fd = out[1];
    o.stderr_fd = err;
    auto p = Subprocess::spawn(o);
    ::close(out[1]);
    ::close(err);
    if (!p.ok()) {
      ::close(out[0]);
      return p.error().message();
    }
    proc_ = std::make_unique<Subprocess>(std::move(p).value());
    // Its first line: "PORT <n>".
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      struct pollfd pfd = {out[0], POLLIN, 0};
      if (::poll(&pfd, 1, 100) <= 0) continue;
      char buf[256];
      ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    ::close(out[0]);
    if (line.rfind("PORT ", 0) != 0) {
      return "smtp_server.py did not start: " + line + read_file(dir_.path() / "stderr");
    }
    port_ = std::stoi(line.substr(5));
    return "";
  }

  ~SmtpServer() {
    if (proc_) {
      proc_->send_signal(SIGTERM);
      (void)proc_->wait(CancelToken());
    }
  }

  std::string cert() const { return dir_ / "cert.pem"; }
  std::filesystem::path mail_dir() const { return dir_.path() / "mail"; }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }

  // The messages received so far: (envelope, content) in arrival order.
  std::vector<std::pair<std::string, std::string>> messages() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (int i = 1;; i++) {
      std::filesystem::path env = mail_dir() / ("msg-" + std::to_string(i) + ".env");
      if (!std::filesystem::exists(env)) break;
      out.emplace_back(read_file(env),
                       read_file(mail_dir() / ("msg-" + std::to_string(i) + ".eml")));
    }
    return out;
  }
  // AUTH attempts: "ok alice", "refused alice".
  std::string auth_log() const {
    std::filesystem::path p = mail_dir() / "auth.log";
    return std::filesystem::exists(p) ? read_file(p) : "";
  }
  std::string server_stderr() const { return read_file(dir_.path() / "stderr"); }
  bool tls() const { return tls_; }

 private:
  TempDir dir_;
  bool tls_ = false;
  int port_ = 0;
  std::unique_ptr<Subprocess> proc_;
};

// The value of header `name` in an RFC 5322 message ("" if absent).
inline std::string mail_header(const std::string& msg, const std::string& name) {
  const std::string key = "\r\n" + name + ": ";
  size_t p = ("\r\n" + msg).find(key);
  if (p == std::string::npos) return "";
  size_t start = p + key.size() - 2;
  size_t end = msg.find("\r\n", start);
  return msg.substr(start, end - start);
}

}  // namespace haven::monitor::test

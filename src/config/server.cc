// config/server.cc — the `server` section.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <tuple>

#include "config/decode.h"

namespace haven::config::detail {

namespace {

struct Listen {
  std::string host;
  int port = 0;
};

bool host_chars(std::string_view host, bool v6) {
  return std::all_of(host.begin(), host.end(), [v6](char c) {
    if (v6) return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
  });
}

// "host:port", "[v6]:port". On failure `problem` and `fix` say why.
std::optional<Listen> parse_listen(const std::string& text, std::string& problem,
                                   std::string& fix) {
  const std::string example = "write it as 127.0.0.1:8420 (this host only), 0.0.0.0:8420 (every "
                              "interface) or [::1]:8420";
  Listen l;
  std::string port;
  bool v6 = false;
  if (text.starts_with("[")) {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      problem = "must be [ADDRESS]:PORT for an IPv6 address, not " + quote(text);
      fix = example;
      return std::nullopt;
    }
    l.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    v6 = true;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      problem = "must be HOST:PORT, not " + quote(text);
      fix = example;
      return std::nullopt;
    }
    l.host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (l.host.find(':') != std::string::npos) {
      problem = "an IPv6 address goes in brackets: " + quote(text) + " is ambiguous";
      fix = "write it as [ADDRESS]:PORT, e.g. [::1]:8420";
      return std::nullopt;
    }
  }
  if (l.host.empty()) {
    problem = "names no host: " + quote(text);
    fix = example;
    return std::nullopt;
  }
  if (!host_chars(l.host, v6)) {
    problem = quote(l.host) + " is not a host name or address";
    fix = example;
    return std::nullopt;
  }
  bool digits = !port.empty() && port.size() <= 5 &&
                std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  int value = digits ? std::stoi(port) : 0;
  if (!digits || value < 1 || value > 65535) {
    problem = "the port must be a whole number from 1 to 65535, not " + quote(port);
    fix = example;
    return std::nullopt;
  }
  l.port = value;
  return l;
}

void check_readable(Problems& p, const Node& at, const std::string& path, const std::string& file,
                    const std::string& fix_missing) {
  int fd = open_named_file(p, at, path, file, fix_missing);
  if (fd >= 0) ::close(fd);
}

}  // namespace

ServerSettings decode_server(Problems& p, const Node& node, const std::string& path) {
  ServerSettings s;
  Fields f(p, node, path);
  if (!f.ok()) return s;
  s.mark = p.mark(node, path);

  if (const Node* n = f.get("listen")) {
    if (auto text = read_string(p, *n, f.path("listen"))) {
      std::string problem, fix;
      if (auto l = parse_listen(*text, problem, fix)) {
        s.listen_host = l->host;
        s.listen_port = l->port;
      } else {
        p.add(*n, f.path("listen"), problem, fix);
      }
    }
  }
  if (const Node* n = f.get("catalog")) {
    if (auto c = read_string(p, *n, f.path("catalog"))) {
      if (check_absolute(p, *n, f.path("catalog"), *c, "/var/lib/haven/catalog.db")) {
        s.catalog = *c;
      }
    }
  }
  if (const Node* n = f.get("tls")) {
    Fields t(p, *n, f.path("tls"));
    const Node* cert = t.get("cert_file");
    const Node* key = t.get("key_file");
    t.finish();
    if (t.ok()) {
      if (!cert || !key) {
        t.missing(cert ? "key_file" : "cert_file",
                  "give both cert_file and key_file, or remove tls to serve plain HTTP");
      }
      TlsFiles files;
      bool ok = cert && key;
      for (auto [k, file_node, out] : {std::tuple{"cert_file", cert, &files.cert_file},
                                       std::tuple{"key_file", key, &files.key_file}}) {
        if (!file_node) continue;
        auto v = read_string(p, *file_node, t.path(k));
        if (!v || !check_absolute(p, *file_node, t.path(k), *v, "/etc/haven/tls.pem")) {
          ok = false;
          continue;
        }
        check_readable(p, *file_node, t.path(k), *v,
                       "correct the path, or create the file (PEM) it names");
        *out = *v;
      }
      if (ok) s.tls = files;
    }
  }
  if (auto v = f.integer("max_parallel_jobs", 1, 256)) s.max_parallel_jobs = static_cast<int>(*v);
  if (auto v = f.choice<ShutdownMode>("shutdown")) s.shutdown = *v;
  if (auto v = f.integer("shutdown_timeout_seconds", 1, 86400)) {
    s.shutdown_timeout_seconds = static_cast<int>(*v);
    if (s.shutdown == ShutdownMode::kCancel) {
      p.add(*f.get("shutdown_timeout_seconds"), f.path("shutdown_timeout_seconds"),
            "applies to shutdown: finish; with shutdown: cancel running jobs are cancelled at "
            "once",
            "remove shutdown_timeout_seconds, or write shutdown: finish");
    }
  }
  if (auto v = f.integer("events_retention_days", 1, 36500)) {
    s.events_retention_days = static_cast<int>(*v);
  }
  if (auto v = f.integer("job_nice", 0, 19)) s.job_nice = static_cast<int>(*v);
  if (auto v = f.integer("memory_limit_mib", 0, 1 << 24)) {
    s.memory_limit_mib = static_cast<int>(*v);
    const int64_t least = int64_t{ServerSettings::kMinJobMemoryMib} * s.max_parallel_jobs;
    if (*v != 0 && *v < least) {
      p.add(*f.get("memory_limit_mib"), f.path("memory_limit_mib"),
            "gives each of the " + std::to_string(s.max_parallel_jobs) + " jobs that may run at once (" +
                f.path("max_parallel_jobs") + ") less than the " +
                std::to_string(ServerSettings::kMinJobMemoryMib) + " MiB one job needs",
            "give at least " + std::to_string(least) + ", lower max_parallel_jobs, or write 0 for no limit");
    }
  }
  f.finish();
  return s;
}

}  // namespace haven::config::detail

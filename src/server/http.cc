#include "server/http.h"

#include <httplib.h>

#include <regex>

namespace haven::server {

const char* role_name(Role r) {
  switch (r) {
    case Role::kViewer: return "viewer";
    case Role::kOperator: return "operator";
    case Role::kAdmin: return "admin";
  }
  return "viewer";
}

std::optional<Role> parse_role(const std::string& s) {
  if (s == "viewer") return Role::kViewer;
  if (s == "operator") return Role::kOperator;
  if (s == "admin") return Role::kAdmin;
  return std::nullopt;
}

Result<nlohmann::json> ApiRequest::json() const {
  if (body.empty()) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Error(Error::Code::kInvalidArgument,
                 "body: not valid JSON (send a JSON object with Content-Type: application/json)");
  }
  if (!j.is_object()) {
    return Error(Error::Code::kInvalidArgument, "body: must be a JSON object, not " +
                                                    std::string(j.type_name()));
  }
  return j;
}

std::optional<std::string> ApiRequest::query_value(const std::string& name) const {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> ApiRequest::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

int http_status(const Error& e) {
  switch (e.code()) {
    case Error::Code::kInvalidArgument: return 400;
    case Error::Code::kNotFound: return 404;
    case Error::Code::kRepoNotFound: return 404;
    case Error::Code::kAlreadyExists: return 409;
    case Error::Code::kLocked: return 409;
    case Error::Code::kPermissionDenied: return 403;
    case Error::Code::kCancelled: return 503;
    case Error::Code::kTransient: return 503;
    default: return 500;
  }
}

namespace {

std::string code_slug(Error::Code c) {
  switch (c) {
    case Error::Code::kInvalidArgument: return "invalid_argument";
    case Error::Code::kNotFound: return "not_found";
    case Error::Code::kRepoNotFound: return "repository_not_found";
    case Error::Code::kAlreadyExists: return "conflict";
    case Error::Code::kLocked: return "locked";
    case Error::Code::kPermissionDenied: return "forbidden";
    case Error::Code::kCancelled: return "unavailable";
    case Error::Code::kTransient: return "unavailable";
    default: return "internal";
  }
}

// "/api/backup/executions/{id}" → regex and parameter names.
std::pair<std::string, std::vector<std::string>> compile_path(const std::string& path) {
  std::string re;
  std::vector<std::string> names;
  for (size_t i = 0; i < path.size();) {
    if (path[i] == '{') {
      size_t end = path.find('}', i);
      names.push_back(path.substr(i + 1, end - i - 1));
      re += "([^/]+)";
      i = end + 1;
    } else {
      if (std::string("\\^$.|?*+()[]").find(path[i]) != std::string::npos) re += '\\';
      re += path[i++];
    }
  }
  return {re, names};
}

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& code,
                const std::string& message) {
  send_json(res, status, {{"error", {{"code", code}, {"message", message}}}});
}

}  // namespace

nlohmann::json error_body(const Error& e) {
  nlohmann::json err = {{"code", code_slug(e.code())}, {"message", e.message()}};
  if (e.code() == Error::Code::kInvalidArgument) {
    // "retention.daily: must be ..." names its field first.
    static const std::regex field(R"(^([A-Za-z_][A-Za-z0-9_.\[\]]*): )");
    std::smatch m;
    if (std::regex_search(e.message(), m, field)) err["field"] = m[1].str();
  }
  return {{"error", err}};
}

HttpServer::HttpServer(Authenticator auth, unsigned threads)
    : auth_(std::move(auth)), threads_(threads) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::add(Route route) { routes_.push_back(std::move(route)); }

void HttpServer::install(httplib::Server& srv) {
  for (const Route& route : routes_) {
    auto [pattern, names] = compile_path(route.path);
    auto handle = [this, route, names = names](const httplib::Request& req, httplib::Response& res) {
      ApiRequest a;
      a.method = req.method;
      a.path = req.path;
      for (size_t i = 0; i < names.size() && i + 1 < req.matches.size(); ++i) {
        a.params[names[i]] = req.matches[i + 1].str();
      }
      for (const auto& [k, v] : req.params) a.query.emplace(k, v);
      for (const auto& [k, v] : req.headers) {
        std::string lower = k;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        a.headers[lower] = v;
      }
      a.body = req.body;
      a.remote_addr = req.remote_addr;
      if (route.role) {
        std::string authz = req.get_header_value("Authorization");
        const std::string prefix = "Bearer ";
        if (authz.compare(0, prefix.size(), prefix) != 0) {
          res.set_header("WWW-Authenticate", "Bearer");
          if (refused_) refused_(a, 401, "");
          send_error(res, 401, "unauthorized",
                     "this route needs a bearer token: send 'Authorization: Bearer <token>' "
                     "(create one with 'haven server token create')");
          return;
        }
        std::optional<Principal> who = auth_(authz.substr(prefix.size()));
        if (!who) {
          res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
          if (refused_) refused_(a, 401, "");
          send_error(res, 401, "unauthorized",
                     "the bearer token is not valid (unknown or revoked): create one with "
                     "'haven server token create'");
          return;
        }
        if (static_cast<int>(who->role) < static_cast<int>(*route.role)) {
          if (refused_) refused_(a, 403, who->name);
          send_error(res, 403, "forbidden",
                     std::string(route.method + " " + route.path) + " needs the " +
                         role_name(*route.role) + " role; token '" + who->name + "' has " +
                         role_name(who->role));
          return;
        }
        a.who = *who;
      }
      if (route.stream) {
        auto shared = std::make_shared<ApiRequest>(std::move(a));
        StreamHandler stream = route.stream;
        CancelToken stop = stopping_;
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream",
            [shared, stream, stop](size_t, httplib::DataSink& sink) {
              StreamWriter write = [&sink](const std::string& chunk) {
                return sink.is_writable() && sink.write(chunk.data(), chunk.size());
              };
              (void)stream(*shared, write, stop);
              sink.done();
              return true;
            });
        return;
      }
      Result<ApiResponse> out = route.handler(a);
      if (!out.ok()) {
        send_json(res, http_status(out.error()), error_body(out.error()));
        return;
      }
      if (!out->content_type.empty()) {
        res.status = out->status;
        res.set_content(out->text, out->content_type);
        return;
      }
      send_json(res, out->status, out->body);
    };
    if (route.method == "GET") srv.Get(pattern, handle);
    else if (route.method == "POST") srv.Post(pattern, handle);
    else if (route.method == "PUT") srv.Put(pattern, handle);
    else if (route.method == "DELETE") srv.Delete(pattern, handle);
  }
  srv.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      send_error(res, 404, "not_found", "no route " + req.method + " " + req.path +
                                            " (GET /api/openapi.json lists them)");
    }
  });
  srv.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unexpected failure";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, 500, "internal", what);
  });
}

Status HttpServer::start(const std::string& host, int port, const std::optional<TlsFiles>& tls) {
  if (tls) {
    auto ssl = std::make_unique<httplib::SSLServer>(tls->cert_file.c_str(), tls->key_file.c_str());
    if (!ssl->is_valid()) {
      return Error(Error::Code::kInvalidArgument,
                   "server.tls: cannot load the certificate " + tls->cert_file + " and key " +
                       tls->key_file + " (give PEM files the server can read, key matching)");
    }
    srv_ = std::move(ssl);
  } else {
    srv_ = std::make_unique<httplib::Server>();
  }
  unsigned n = threads_;
  srv_->new_task_queue = [n] { return new httplib::ThreadPool(n); };
  srv_->set_keep_alive_max_count(1000);
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which lets a second server bind
  // the same port and take half the connections.
  srv_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  install(*srv_);
  if (port == 0) {
    port_ = srv_->bind_to_any_port(host);
    if (port_ <= 0) {
      srv_.reset();
      return Error(Error::Code::kIo, "server.listen: cannot bind " + host + " (any port)");
    }
  } else {
    if (!srv_->bind_to_port(host, port)) {
      srv_.reset();
      return Error(Error::Code::kIo, "server.listen: cannot bind " + host + ":" +
                                         std::to_string(port) +
                                         " (in use, or not an address of this host)");
    }
    port_ = port;
  }
  serve_returned_ = std::make_shared<std::atomic<bool>>(false);
  thread_ = std::make_unique<std::thread>([this, done = serve_returned_] {
    srv_->listen_after_bind();
    done->store(true);
  });
  return ok_status();
}

void HttpServer::stop() {
  stopping_.cancel(Error(Error::Code::kCancelled, "the server is stopping"));
  if (srv_ && thread_) {
    // listen_after_bind may not have started listening yet: stop() would then be lost.
    while (!srv_->is_running() && !serve_returned_->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    srv_->stop();
  }
  if (thread_ && thread_->joinable()) thread_->join();
  thread_.reset();
}

}  // namespace haven::server

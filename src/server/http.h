// server/http.h — the REST API's HTTP layer over cpp-httplib: a table of routes, each with the
// least role that may call it, JSON in and out, one mapping from haven::Error to a status, and
// bearer-token authentication through a callback (the catalog's tokens, server/api.cc).
//
// Every route but those registered without a role answers 401 without a valid token and 403
// when the token's role is too small (viewer < operator < admin). Errors are JSON:
//   {"error": {"code": "invalid_argument", "message": "...", "field": "..."}}
// with 400 for a bad request (the message names the field and the reason), 404 for an unknown
// id, 409 for a conflict, 401/403 for auth, 503 while stopping, 500 otherwise.
//
// The route table is also what /api/openapi.json is checked against (server/openapi.h).
//
// Thread-safety: handlers run on the server's worker threads, several at once.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/cancel.h"
#include "util/error.h"

namespace httplib {
class Server;
struct Request;
}  // namespace httplib

namespace haven::server {

enum class Role { kViewer = 0, kOperator = 1, kAdmin = 2 };
const char* role_name(Role r);
std::optional<Role> parse_role(const std::string& s);

struct Principal {
  std::string name;  // the token's name ("" for routes without auth)
  Role role = Role::kViewer;
};

struct ApiRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> params;  // path parameters by name ("{id}" → "id")
  std::multimap<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string remote_addr;  // the client's address
  Principal who;
  // The body as a JSON object; kInvalidArgument naming the problem otherwise.
  Result<nlohmann::json> json() const;
  std::optional<std::string> query_value(const std::string& name) const;
  std::optional<std::string> header(const std::string& lower_name) const;
};

struct ApiResponse {
  ApiResponse() = default;
  ApiResponse(int s, nlohmann::json b, std::string type = "", std::string t = "")
      : status(s), body(std::move(b)), content_type(std::move(type)), text(std::move(t)) {}
  int status = 200;
  nlohmann::json body = nlohmann::json::object();
  // When set, `text` is sent as is with this content type instead of `body` (GET /metrics).
  std::string content_type;
  std::string text;
};

using Handler = std::function<Result<ApiResponse>(const ApiRequest&)>;

// A stream (server-sent events): writes chunks through `write` until it returns false (the
// client went away) or the stream ends (returns). `stop` fires when the server stops.
using StreamWriter = std::function<bool(const std::string& chunk)>;
using StreamHandler =
    std::function<Status(const ApiRequest&, const StreamWriter& write, const CancelToken& stop)>;

struct Route {
  std::string method;  // GET POST PUT DELETE
  std::string path;    // "/api/backup/executions/{id}"
  std::optional<Role> role;  // nullopt: no token needed (/health)
  std::string summary;
  Handler handler;               // one of handler...
  StreamHandler stream;          // ...or stream (text/event-stream)
};

// The status an Error maps to.
int http_status(const Error& e);
// The JSON error body for an Error; `field`, when the message starts with a field name
// ("retention.daily: ..."), is that name.
nlohmann::json error_body(const Error& e);

struct TlsFiles {
  std::string cert_file, key_file;  // both or neither
};

using Authenticator = std::function<std::optional<Principal>(const std::string& bearer_token)>;
// Told of every request refused for want of a valid token (401) or role (403): the audit log.
// `who` is the token's name for a 403, empty for a 401.
using RefusalObserver = std::function<void(const ApiRequest& request, int status,
                                           const std::string& who)>;

class HttpServer {
 public:
  HttpServer(Authenticator auth, unsigned threads = 16);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void add(Route route);
  // Before start().
  void on_refused(RefusalObserver observer) { refused_ = std::move(observer); }
  const std::vector<Route>& routes() const { return routes_; }

  // Binds host:port (port 0: any free one) and serves on a thread of its own. kInvalidArgument
  // for a bad TLS file, kIo naming the address when it cannot bind.
  Status start(const std::string& host, int port, const std::optional<TlsFiles>& tls);
  int port() const { return port_; }
  // Stops accepting, ends the streams, waits for the serving thread.
  void stop();

 private:
  void install(httplib::Server& srv);
  Authenticator auth_;
  RefusalObserver refused_;
  unsigned threads_;
  std::vector<Route> routes_;
  std::unique_ptr<httplib::Server> srv_;
  std::unique_ptr<std::thread> thread_;
  std::shared_ptr<std::atomic<bool>> serve_returned_;
  CancelToken stopping_;
  int port_ = 0;
};

}  // namespace haven::server

// The HTTP layer over real loopback HTTP: routing with path parameters, the auth rules (401
// without or with a bad token, 403 with too small a role), errors as JSON with their status,
// and a server-sent-events stream.
#include "server/http.h"

#include <httplib.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>

namespace haven::server {
namespace {

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    srv_ = std::make_unique<HttpServer>([](const std::string& token) -> std::optional<Principal> {
      if (token == "v-token") return Principal{"viewer-1", Role::kViewer};
      if (token == "o-token") return Principal{"operator-1", Role::kOperator};
      return std::nullopt;
    });
    srv_->add({"GET", "/health", std::nullopt, "health", [](const ApiRequest&) -> Result<ApiResponse> {
                 return ApiResponse{200, {{"status", "ok"}}};
               }, {}});
    srv_->add({"GET", "/api/things/{id}", Role::kViewer, "get a thing",
               [](const ApiRequest& r) -> Result<ApiResponse> {
                 if (r.params.at("id") == "missing") {
                   return Error(Error::Code::kNotFound, "no thing 'missing'");
                 }
                 return ApiResponse{200, {{"id", r.params.at("id")}, {"who", r.who.name},
                                          {"q", r.query_value("q").value_or("")}}};
               }, {}});
    srv_->add({"POST", "/api/things", Role::kOperator, "make a thing",
               [](const ApiRequest& r) -> Result<ApiResponse> {
                 HAVEN_ASSIGN(nlohmann::json body, r.json());
                 if (!body.contains("name")) {
                   return Error(Error::Code::kInvalidArgument, "name: required (give the thing a name)");
                 }
                 return ApiResponse{201, {{"name", body["name"]}}};
               }, {}});
    srv_->add({"GET", "/api/stream", Role::kViewer, "events", {},
               [](const ApiRequest&, const StreamWriter& write, const CancelToken&) -> Status {
                 for (int i = 1; i <= 3; ++i) {
                   if (!write("id: " + std::to_string(i) + "\ndata: {}\n\n")) break;
                 }
                 return ok_status();
               }});
    ASSERT_TRUE(srv_->start("127.0.0.1", 0, std::nullopt).ok());
    cli_ = std::make_unique<httplib::Client>("127.0.0.1", srv_->port());
  }
  void TearDown() override { srv_->stop(); }

  httplib::Headers bearer(const std::string& t) { return {{"Authorization", "Bearer " + t}}; }
  static nlohmann::json body(const httplib::Result& r) { return nlohmann::json::parse(r->body); }

  std::unique_ptr<HttpServer> srv_;
  std::unique_ptr<httplib::Client> cli_;
};

TEST_F(HttpTest, RoutesWithoutARoleNeedNoToken) {
  auto r = cli_->Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body(r)["status"], "ok");
}

TEST_F(HttpTest, TokensAndRoles) {
  auto none = cli_->Get("/api/things/7");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(body(none)["error"]["code"], "unauthorized");
  auto bad = cli_->Get("/api/things/7", bearer("nope"));
  EXPECT_EQ(bad->status, 401);
  auto ok = cli_->Get("/api/things/7?q=x", bearer("v-token"));
  ASSERT_EQ(ok->status, 200);
  EXPECT_EQ(body(ok)["id"], "7");
  EXPECT_EQ(body(ok)["who"], "viewer-1");
  EXPECT_EQ(body(ok)["q"], "x");
  auto small = cli_->Post("/api/things", bearer("v-token"), R"({"name":"a"})", "application/json");
  EXPECT_EQ(small->status, 403);
  EXPECT_NE(body(small)["error"]["message"].get<std::string>().find("needs the operator role"), std::string::npos);
  auto made = cli_->Post("/api/things", bearer("o-token"), R"({"name":"a"})", "application/json");
  EXPECT_EQ(made->status, 201);
}

TEST_F(HttpTest, ErrorsAreJsonWithTheirStatusAndField) {
  auto missing = cli_->Get("/api/things/missing", bearer("v-token"));
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(body(missing)["error"]["code"], "not_found");
  auto invalid = cli_->Post("/api/things", bearer("o-token"), R"({"other":1})", "application/json");
  EXPECT_EQ(invalid->status, 400);
  EXPECT_EQ(body(invalid)["error"]["field"], "name");
  auto garbage = cli_->Post("/api/things", bearer("o-token"), "{not json", "application/json");
  EXPECT_EQ(garbage->status, 400);
  EXPECT_EQ(body(garbage)["error"]["field"], "body");
  auto noroute = cli_->Get("/api/nothing", bearer("v-token"));
  EXPECT_EQ(noroute->status, 404);
  EXPECT_EQ(body(noroute)["error"]["code"], "not_found");
}

TEST_F(HttpTest, StreamsServerSentEvents) {
  auto r = cli_->Get("/api/stream", bearer("v-token"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  EXPECT_EQ(r->body, "id: 1\ndata: {}\n\nid: 2\ndata: {}\n\nid: 3\ndata: {}\n\n");
}

TEST_F(HttpTest, RefusesAPortInUse) {
  HttpServer other([](const std::string&) { return std::nullopt; });
  Status s = other.start("127.0.0.1", srv_->port(), std::nullopt);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("cannot bind 127.0.0.1:" + std::to_string(srv_->port())), std::string::npos);
}

TEST(HttpTlsTest, ServesHttpsWithTheConfiguredCertificateAndRefusesBadFiles) {
  char tmpl[] = "/tmp/haven-tls-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, key = dir + "/key.pem", cert = dir + "/cert.pem";
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                    "-addext subjectAltName=IP:127.0.0.1 -keyout '" + key + "' -out '" + cert +
                    "' >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl(1) cannot make a test certificate (run scripts/setup.sh)";
  HttpServer srv([](const std::string& token) -> std::optional<Principal> {
    if (token == "v-token") return Principal{"viewer-1", Role::kViewer};
    return std::nullopt;
  });
  srv.add({"GET", "/api/secret", Role::kViewer, "needs a token", [](const ApiRequest&) -> Result<ApiResponse> {
             return ApiResponse{200, {{"over", "tls"}}};
           }, {}});
  Status st = srv.start("127.0.0.1", 0, TlsFiles{cert, key});
  ASSERT_TRUE(st.ok()) << st.error().message();
  // A client that trusts the certificate gets the answer, token and all.
  httplib::SSLClient tls("127.0.0.1", srv.port());
  tls.set_ca_cert_path(cert.c_str());
  tls.enable_server_certificate_verification(true);
  auto r = tls.Get("/api/secret", {{"Authorization", "Bearer v-token"}});
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(nlohmann::json::parse(r->body)["over"], "tls");
  EXPECT_EQ(tls.Get("/api/secret")->status, 401);
  // Plain HTTP to the TLS port gets no answer; a client that does not trust it refuses.
  httplib::Client plain("127.0.0.1", srv.port());
  plain.set_read_timeout(2, 0);
  auto p = plain.Get("/api/secret", {{"Authorization", "Bearer v-token"}});
  EXPECT_TRUE(!p || p->status != 200);
  httplib::SSLClient strict("127.0.0.1", srv.port());
  strict.set_ca_cert_path("/nonexistent-ca.pem");
  strict.enable_server_certificate_verification(true);
  EXPECT_FALSE(strict.Get("/api/secret"));
  srv.stop();
  // A missing key file: refused, naming server.tls and both files.
  HttpServer bad([](const std::string&) { return std::nullopt; });
  Status wrong = bad.start("127.0.0.1", 0, TlsFiles{cert, dir + "/missing.pem"});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message().find("server.tls: cannot load the certificate " + cert + " and key " +
                                         dir + "/missing.pem"),
            std::string::npos)
      << wrong.error().message();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace haven::server

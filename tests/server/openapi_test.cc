// The OpenAPI document the server serves describes exactly the routes it registers, with the
// roles they enforce.
#include <gtest/gtest.h>

#include <set>

#include "server/api.h"

namespace haven::server {
namespace {

class NoSink : public EventSink {
 public:
  void emit(const Event&) override {}
};

TEST(OpenApiTest, TheDocumentMatchesTheRegisteredRoutesAndRoles) {
  char tmpl[] = "/tmp/haven-openapi-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  auto cat = catalog::open_sqlite_catalog(dir + "/catalog.db");
  ASSERT_TRUE(cat.ok()) << cat.error().message();
  EventBus bus(**cat);
  {
    jobs::Service service(**cat, bus, {});
    HttpServer http([](const std::string&) { return std::nullopt; });
    add_api_routes(http, ApiContext{**cat, service, nullptr, bus, "test", {}});

    nlohmann::json doc = nlohmann::json::parse(openapi_document());
    std::set<std::string> documented, registered;
    for (const auto& [path, methods] : doc["paths"].items()) {
      for (const auto& [method, spec] : methods.items()) {
        std::string upper = method;
        for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        documented.insert(upper + " " + path + " " + spec.value("x-haven-role", "?"));
        // A route with a role says it needs the bearer token; /health says it does not.
        EXPECT_EQ(spec["security"].empty(), spec["x-haven-role"] == "none") << path;
      }
    }
    for (const Route& r : http.routes()) {
      registered.insert(r.method + " " + r.path + " " + (r.role ? role_name(*r.role) : "none"));
    }
    EXPECT_EQ(documented, registered);
    EXPECT_GE(registered.size(), 14u);
  }
  cat->reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace haven::server

// A policy's JSON (config::check_policy_json_text, and the server's way: parse without
// exceptions, then check_policy_json): any bytes give a Policy or diagnostics naming the key;
// both ways agree; an accepted policy encodes to JSON that decodes to the same JSON.
#include <string_view>

#include <nlohmann/json.hpp>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  static const std::vector<config::Location> locations = [] {
    auto c = config::parse_config(
        "locations:\n  - {name: local, repository: /srv/backup, password_env: PW}\n"
        "  - {name: cloud, storage_type: s3, repository: 's3:http://127.0.0.1:9/bucket', "
        "password_env: PW, credentials: {AWS_ACCESS_KEY_ID: {env: KEY}, AWS_SECRET_ACCESS_KEY: {env: KEY}}}\n",
        "fuzz.yaml", [](const std::string&) { return std::optional<std::string>("x"); });
    if (!c.ok()) __builtin_trap();
    return c->locations;
  }();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto checked = config::check_policy_json_text(text, locations);
  nlohmann::json body = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_discarded() && config::check_policy_json(body, locations).ok() != checked.ok()) {
    __builtin_trap();
  }
  if (!checked.ok()) {
    for (const auto& d : checked.diagnostics) {
      if (d.message.empty()) __builtin_trap();
    }
    return 0;
  }
  nlohmann::json j = checked.value;
  auto back = config::policy_from_json(j, locations);
  if (!back.ok()) __builtin_trap();
  if (nlohmann::json(*back) != j) __builtin_trap();
  return 0;
}

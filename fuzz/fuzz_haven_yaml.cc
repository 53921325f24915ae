// haven.yaml (config/config.h): any text gives a Config or diagnostics, never a crash; each
// diagnostic names where and what; a Config's policies go through their JSON (the API's form)
// and back to the same JSON, and so do its monitors. Secrets come from a fixed environment, never from the process's.
#include <string>

#include <nlohmann/json.hpp>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven;
  std::string text(reinterpret_cast<const char*>(data), size);
  auto env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "UNSET") return std::nullopt;
    return "value-of-" + name;
  };
  auto checked = config::check_config(text, "haven.yaml", env);
  if (!checked.ok()) {
    for (const auto& d : checked.diagnostics) {
      if (d.message.empty()) __builtin_trap();
    }
    return 0;
  }
  const config::Config& c = checked.value;
  for (const auto& p : c.policies) {
    nlohmann::json j = p;
    auto back = config::policy_from_json(j, c.locations);
    if (!back.ok()) __builtin_trap();
    nlohmann::json j2 = *back;
    if (j2 != j) __builtin_trap();
  }
  // Monitors too: their API JSON decodes, through the same decoder, to the same monitor.
  std::vector<std::string> names;
  for (const auto& p : c.policies) names.push_back(p.name);
  for (const auto& m : c.monitoring.monitors) {
    nlohmann::json j = m;
    auto back = config::check_monitor_json(j, c, names);
    if (!back.ok()) __builtin_trap();
    nlohmann::json j2 = back.value;
    if (j2 != j) __builtin_trap();
  }
  return 0;
}

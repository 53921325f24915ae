// config/model.cc — the model's small helpers: enum spellings, SLA tiers, lookups.
#include "config/decode.h"

namespace haven::config {

std::string_view name(StorageType v) { return detail::enum_name(v); }
std::string_view name(ResourceType v) { return detail::enum_name(v); }
std::string_view name(Strategy v) { return detail::enum_name(v); }
std::string_view name(Compression v) { return detail::enum_name(v); }
std::string_view name(SlaTier v) { return detail::enum_name(v); }
std::string_view name(TimeUnit v) { return detail::enum_name(v); }
std::string_view name(CatchUp v) { return detail::enum_name(v); }
std::string_view name(Overlap v) { return detail::enum_name(v); }
std::string_view name(Priority v) { return detail::enum_name(v); }
std::string_view name(IntegrityCheck v) { return detail::enum_name(v); }
std::string_view name(ReplicationMode v) { return detail::enum_name(v); }
std::string_view name(QuorumLoss v) { return detail::enum_name(v); }
std::string_view name(ShutdownMode v) { return detail::enum_name(v); }

int64_t Objective::seconds() const {
  switch (unit) {
    case TimeUnit::kSeconds: return value;
    case TimeUnit::kMinutes: return value * 60;
    case TimeUnit::kHours: return value * 3600;
    case TimeUnit::kDays: return value * 86400;
  }
  return value;
}

// seed 003's tiers.
Objective tier_rpo(SlaTier tier) {
  switch (tier) {
    case SlaTier::kCritical: return {1, TimeUnit::kMinutes};
    case SlaTier::kHigh: return {5, TimeUnit::kMinutes};
    case SlaTier::kStandard: return {15, TimeUnit::kMinutes};
    case SlaTier::kLower: return {1, TimeUnit::kHours};
  }
  return {};
}

Objective tier_rto(SlaTier tier) {
  switch (tier) {
    case SlaTier::kCritical: return {15, TimeUnit::kMinutes};
    case SlaTier::kHigh: return {1, TimeUnit::kHours};
    case SlaTier::kStandard: return {2, TimeUnit::kHours};
    case SlaTier::kLower: return {24, TimeUnit::kHours};
  }
  return {};
}

std::string Retention::keep_within() const {
  return days > 0 ? std::to_string(days) + "d" : "";
}

const Location* Config::find_location(std::string_view wanted) const {
  for (const auto& l : locations) {
    if (l.name == wanted) return &l;
  }
  return nullptr;
}

const Policy* Config::find_policy(std::string_view wanted) const {
  for (const auto& p : policies) {
    if (p.name == wanted) return &p;
  }
  return nullptr;
}

}  // namespace haven::config

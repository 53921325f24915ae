#include "jobs/regions.h"

namespace haven::jobs {

storage::BackendSettings location_settings(const config::Location& location) {
  storage::BackendSettings s;
  s.lookup = [location](const std::string& name) { return location.backend_setting(name); };
  return s;
}

storage::BackendSettings region_settings(const config::SecondaryRegion& region) {
  storage::BackendSettings s;
  s.lookup = [region](const std::string& name) { return region.backend_setting(name); };
  return s;
}

std::string region_names(const config::Location& location) {
  std::string out = location.primary_region_name() + " (primary)";
  for (const auto& r : location.secondary_regions) out += ", " + r.region;
  return out;
}

Result<replication::Region> open_primary_region(const config::Location& location) {
  auto be = storage::open_backend(location.repository, location_settings(location));
  if (!be.ok()) {
    return be.error().with_context("location '" + location.name + "', region " +
                                   location.primary_region_name());
  }
  return replication::Region{location.primary_region_name(), *be};
}

namespace {

Result<replication::Region> open_secondary(const config::Location& location,
                                           const config::SecondaryRegion& r) {
  auto be = storage::open_backend(r.repository, region_settings(r));
  if (!be.ok()) {
    return be.error().with_context("location '" + location.name + "', region " + r.region);
  }
  return replication::Region{r.region, *be};
}

}  // namespace

Result<std::vector<replication::Region>> open_secondary_regions(const config::Location& location,
                                                                const std::string& only) {
  if (location.secondary_regions.empty()) {
    return Error(Error::Code::kInvalidArgument,
                 "location '" + location.name + "' has no secondary regions: add "
                 "secondary_regions: [{region: NAME, repository: …}] to it in haven.yaml");
  }
  std::vector<replication::Region> out;
  for (const auto& r : location.secondary_regions) {
    if (!only.empty() && r.region != only) continue;
    HAVEN_ASSIGN(auto region, open_secondary(location, r));
    out.push_back(std::move(region));
  }
  if (out.empty()) {
    return Error(Error::Code::kNotFound,
                 "--region: location '" + location.name + "' has no secondary region '" + only +
                     "' (its regions: " + region_names(location) + ")");
  }
  return out;
}

Result<replication::Region> open_region(const config::Location& location, const std::string& name) {
  if (name == location.primary_region_name()) return open_primary_region(location);
  if (const config::SecondaryRegion* r = location.find_region(name)) {
    return open_secondary(location, *r);
  }
  return Error(Error::Code::kNotFound, "location '" + location.name + "' has no region '" + name +
                                           "' (its regions: " + region_names(location) + ")");
}

}  // namespace haven::jobs

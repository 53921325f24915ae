// jobs/regions.h — a location's copies as replication/ takes them: the primary region and the
// secondary regions of haven.yaml, each with a backend opened with that region's own settings
// and credentials. The CLI (haven replicate, check --regions, repair --from) and the server's
// replicator open them here, so both reach the same places the same way.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "replication/replication.h"
#include "storage/backend.h"

namespace haven::jobs {

// The backend settings of a location's primary region, or of one secondary region.
storage::BackendSettings location_settings(const config::Location& location);
storage::BackendSettings region_settings(const config::SecondaryRegion& region);

// The primary region (named primary_region_name()), on a backend of its own.
Result<replication::Region> open_primary_region(const config::Location& location);
// The secondary regions; only the one named `only` when it is not empty (kNotFound naming the
// location's regions when it has none of that name). kInvalidArgument when the location has no
// secondary regions.
Result<std::vector<replication::Region>> open_secondary_regions(const config::Location& location,
                                                                const std::string& only = "");
// Any region of the location by name, the primary's included.
Result<replication::Region> open_region(const config::Location& location, const std::string& name);

// "eu-west-1 (primary), us-east-1, eu-north-1": for messages naming the choices.
std::string region_names(const config::Location& location);

}  // namespace haven::jobs

// server/api_replication.cc — the replication part of the REST API: every location's secondary
// regions with their lag (GET /api/replication), a catch-up pass now, and pause / resume /
// stop per region (recorded in the catalog and the audit log by jobs::Replicator).
#include "server/api.h"

namespace haven::server {

namespace {

Error no_replication() {
  return Error(Error::Code::kNotFound, "replication is not running in this server");
}

}  // namespace

void add_replication_routes(HttpServer& http, std::shared_ptr<ApiContext> c) {
  http.add({"GET", "/api/replication", Role::kViewer,
            "every location with secondary regions: mode, RPO target, and per region its state, "
            "lag (objects, bytes, age of the oldest), newest snapshot and last error",
            [c](const ApiRequest&) -> Result<ApiResponse> {
              if (c->replicator == nullptr) return no_replication();
              auto cfg = c->service.config();
              const TimeNs now = haven::now();
              auto regions = c->replicator->status();
              nlohmann::json locations = nlohmann::json::array();
              for (const auto& loc : cfg->locations) {
                if (loc.secondary_regions.empty()) continue;
                nlohmann::json rs = nlohmann::json::array();
                for (const auto& r : regions) {
                  if (r.location == loc.name) rs.push_back(r.to_json(now));
                }
                locations.push_back({{"name", loc.name},
                                     {"primary_region", loc.primary_region_name()},
                                     {"repository", loc.repository},
                                     {"mode", std::string(config::name(loc.replication.mode))},
                                     {"quorum", loc.replication.quorum},
                                     {"on_quorum_loss",
                                      std::string(config::name(loc.replication.on_quorum_loss))},
                                     {"rpo_target_seconds", loc.replication.rpo.seconds()},
                                     {"regions", rs}});
              }
              return ApiResponse{200, {{"locations", locations}}};
            }, {}});
  http.add({"POST", "/api/replication/{location}/sync", Role::kOperator,
            "run a catch-up pass to every active region of the location now",
            [c](const ApiRequest& r) -> Result<ApiResponse> {
              if (c->replicator == nullptr) return no_replication();
              const std::string& loc = r.params.at("location");
              HAVEN_TRY(c->replicator->sync_now(loc));
              audit(*c, r, "replication.sync", loc);
              return ApiResponse{202, {{"location", loc}, {"status", "queued"}}};
            }, {}});
  struct Change {
    const char* verb;
    catalog::ReplicationState state;
    const char* summary;
  };
  for (const Change& ch :
       {Change{"pause", catalog::ReplicationState::kPaused,
               "pause replication to a region: nothing is copied, its lag is still measured"},
        Change{"resume", catalog::ReplicationState::kActive,
               "resume replication to a region (a catch-up pass starts at once)"},
        Change{"stop", catalog::ReplicationState::kStopped,
               "take a region out of replication: not copied, not measured, not in a sync quorum"}}) {
    const catalog::ReplicationState state = ch.state;
    http.add({"POST", std::string("/api/replication/{location}/regions/{region}/") + ch.verb,
              Role::kAdmin, ch.summary,
              [c, state](const ApiRequest& r) -> Result<ApiResponse> {
                if (c->replicator == nullptr) return no_replication();
                HAVEN_ASSIGN(auto row, c->replicator->set_state(r.params.at("location"),
                                                               r.params.at("region"), state,
                                                               actor_of(r)));
                return ApiResponse{200,
                                   {{"location", row.location},
                                    {"region", row.region},
                                    {"state", catalog::to_string(row.state)},
                                    {"state_changed_by", row.state_changed_by},
                                    {"state_changed_at", row.state_changed_at
                                                             ? format_time(*row.state_changed_at)
                                                             : std::string()}}};
              }, {}});
  }
}

}  // namespace haven::server

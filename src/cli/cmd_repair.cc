// haven repair index — rebuild the index from the packs (ops/check.h).
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
#include "ops/check.h"

namespace haven::cli {

void register_repair(App& app) {
  auto* sub = app.root().add_subcommand("repair", "repair a damaged repository");
  sub->require_subcommand(0, 1);
  auto loc = std::make_shared<LocationArgs>();
  auto from = std::make_shared<std::string>();
  auto read_data = std::make_shared<bool>(false);
  sub->add_option("--from", *from,
                  "replace missing or damaged objects of a region (--region, default the primary) "
                  "with sound ones from this region of --location");
  sub->add_option("--config", loc->config, "with --from: haven.yaml (default: $HAVEN_CONFIG)");
  sub->add_option("--location", loc->location, "with --from: the location");
  sub->add_option("--region", loc->region, "with --from: the region to repair (default: the primary)");
  sub->add_flag("--read-data", *read_data, "with --from: also compare contents, byte for byte");
  auto* idx = sub->add_subcommand("index", "rebuild the index from the packs' own trailers");
  app.on(idx, [&app]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    HAVEN_ASSIGN(auto st, ops::repair_index(*repo, ops::RepairIndexRequest{}, sink));
    sink.clear_line();
    if (!app.globals().json && !app.globals().quiet) {
      std::cout << "indexed " << st.packs_indexed << " of " << st.packs << " pack(s), " << st.blobs
                << " blob(s): " << st.packs_added << " pack(s) no index named, "
                << st.packs_from_old_index << " from the old index (damaged trailer), "
                << st.packs_dropped << " missing pack(s) dropped\n"
                << "wrote " << st.index_files_written << " index file(s), removed "
                << st.index_files_deleted << " (" << st.index_files_unreadable << " unreadable)\n";
      for (const auto& p : st.unreadable_packs) {
        std::cout << "error: pack " << p
                  << ": its trailer is damaged and no index names it; its blobs cannot be found "
                     "('haven check' lists the files affected)\n";
      }
    }
    return st.unreadable_packs.empty() ? kExitOk : kExitFailure;
  });
  // After `index`: the first parsed command's action runs (App::run).
  app.on(sub, [&app, loc, from, read_data]() -> CommandResult {
    if (from->empty()) {
      return Error(Error::Code::kInvalidArgument,
                   "repair: say what to repair: 'haven repair index', or 'haven repair --config F "
                   "--location L --from REGION' to restore a region's objects from another");
    }
    return run_repair_from(app, *loc, *from, *read_data);
  });
}

}  // namespace haven::cli

// haven repair index — rebuild the index from the packs (ops/check.h).
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
#include "ops/check.h"

namespace haven::cli {

void register_repair(App& app) {
  auto* sub = app.root().add_subcommand("repair", "repair a damaged repository");
  sub->require_subcommand(1);
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
}

}  // namespace haven::cli

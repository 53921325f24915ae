// haven prune — delete data no snapshot references; repack mostly-unused packs (ops/forget.h).
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/progress.h"
#include "ops/forget.h"

namespace haven::cli {

static void print_prune(const retention::PruneStats& s, bool dry_run) {
  const char* w = dry_run ? "would " : "";
  std::cout << (dry_run ? "would delete " : "deleted ") << s.packs_deleted << " pack(s) ("
            << s.packs_unindexed << " left by interrupted runs) and "
            << (dry_run ? "repack " : "repacked ") << s.packs_repacked << " pack(s), moving "
            << s.blobs_repacked << " blob(s) (" << human_bytes(s.bytes_written) << ")";
  if (!dry_run) std::cout << " into " << s.packs_written << " new pack(s)";
  if (s.leftovers > 0) {
    std::cout << "; " << w << (dry_run ? "remove " : "removed ") << s.leftovers
              << " temporary file(s) of interrupted writes (" << human_bytes(s.leftover_bytes) << ")";
  }
  std::cout << "\nblobs: " << s.blobs_used << " used, " << s.blobs_removed << " unused of "
            << s.blobs_total << "; " << human_bytes(s.bytes_unused_kept)
            << " unused left in packs under the --max-unused threshold\n"
            << w << (dry_run ? "reclaim " : "reclaimed ")
            << human_bytes(s.reclaimed() > 0 ? static_cast<uint64_t>(s.reclaimed()) : 0) << " of "
            << human_bytes(s.bytes_total) << " in " << s.duration_ms / 1000.0 << " s\n";
}

void register_prune(App& app) {
  auto r = std::make_shared<ops::PruneRequest>();
  auto* sub = app.root().add_subcommand("prune", "delete unreferenced data and repack partly used packs");
  sub->add_option("--max-unused", r->max_unused_percent,
                  "repack packs whose unused share exceeds this percentage (default 10)")
      ->check(CLI::Range(0.0, 100.0));
  sub->add_flag("--dry-run", r->dry_run, "show what would be deleted and repacked; change nothing");
  app.on(sub, [&app, r]() -> CommandResult {
    HAVEN_TRY(ops::validate(*r));
    HAVEN_ASSIGN(auto repo, app.open_repository());
    CommandSink sink(app.globals());
    HAVEN_ASSIGN(auto st, ops::prune(*repo, *r, sink));
    sink.clear_line();
    if (!r->dry_run) {
      app.audit("prune", nlohmann::json{{"packs_deleted", st.packs_deleted},
                                        {"packs_repacked", st.packs_repacked},
                                        {"bytes_deleted", st.bytes_deleted}}.dump());
    }
    if (!app.globals().json && !app.globals().quiet) print_prune(st, r->dry_run);
    return kExitOk;
  });
}

}  // namespace haven::cli

// haven check — verify the repository's structure and, when asked, every byte of its data
// (ops/check.h).
#include <iostream>

#include "cli/cli.h"
#include "cli/progress.h"
#include "ops/check.h"

namespace haven::cli {

namespace {

void print_report(const check::Report& r) {
  std::cout << "checked " << r.keys << " key(s), " << r.index_files << " index file(s), " << r.packs
            << " pack(s), " << r.snapshots << " snapshot(s), " << r.trees << " tree(s), "
            << r.data_blobs << " data blob reference(s)\n";
  if (r.packs_read > 0) {
    std::cout << "read " << r.packs_read << " pack(s), " << r.blobs_read << " blob(s), "
              << human_bytes(r.bytes_read) << "\n";
  }
  if (r.wal_files > 0) {
    std::cout << r.wal_files << " WAL file(s) archived";
    if (r.wal_read > 0) std::cout << ", " << r.wal_read << " read and authenticated";
    std::cout << "\n";
  }
  if (r.blobs_unused > 0) {
    std::cout << r.blobs_unused << " blob(s) (" << human_bytes(r.bytes_unused)
              << ") are referenced by no snapshot: 'haven prune' reclaims them\n";
  }
  for (const auto& p : r.problems) {
    std::cout << (p.damage ? "error: " : "notice: ") << p.object << ": " << p.error << "\n";
    for (const auto& [snap, paths] : p.affected) {
      auto it = p.affected_count.find(snap);
      uint64_t total = it == p.affected_count.end() ? paths.size() : it->second;
      std::cout << "  affects snapshot " << snap.substr(0, 8) << ": ";
      for (size_t i = 0; i < paths.size(); i++) std::cout << (i ? ", " : "") << paths[i];
      if (total > paths.size()) std::cout << " (+" << (total - paths.size()) << " more)";
      std::cout << "\n";
    }
  }
  size_t damage = 0;
  for (const auto& p : r.problems) damage += p.damage ? 1 : 0;
  if (damage == 0) {
    std::cout << "no damage found\n";
  } else {
    std::cout << "the repository is damaged: " << damage
              << " problem(s); restore still recovers every file not listed above\n";
  }
}
}  // namespace

void register_check(App& app) {
  auto r = std::make_shared<ops::CheckRequest>();
  auto* sub = app.root().add_subcommand("check", "verify the repository (structure; data with --read-data)");
  auto* rd = sub->add_flag("--read-data", r->read_data, "also read, decrypt and verify every blob");
  sub->add_option("--read-data-subset", r->read_data_subset,
                  "read only a subset of the packs: 'N%' at random, or group 'K/N'")
      ->excludes(rd);
  sub->add_option("--threads", r->threads, "packs verified at once (default 2)")
      ->check(CLI::Range(1, 64));
  auto loc = std::make_shared<LocationArgs>();
  auto regions = std::make_shared<bool>(false);
  auto* rg = sub->add_flag("--regions", *regions,
                           "compare each secondary region of --location with the primary (names "
                           "and sizes; contents with --read-data)");
  sub->add_option("--config", loc->config, "with --regions: haven.yaml (default: $HAVEN_CONFIG)")
      ->needs(rg);
  sub->add_option("--location", loc->location, "with --regions: the location")->needs(rg);
  sub->add_option("--region", loc->region, "with --regions: only this secondary region")->needs(rg);
  app.on(sub, [&app, r, loc, regions]() -> CommandResult {
    if (*regions) {
      if (!r->read_data_subset.empty()) {
        return Error(Error::Code::kInvalidArgument,
                     "--read-data-subset: not with --regions (use --read-data to compare every "
                     "object's contents)");
      }
      return run_check_regions(app, *loc, r->read_data);
    }
    HAVEN_TRY(ops::validate(*r));
    // Every key file is tried, so that one of another repository is named.
    HAVEN_ASSIGN(auto repo, app.open_repository({.try_all_keys = true}));
    CommandSink sink(false, app.globals().quiet || app.globals().json, app.globals().quiet);
    HAVEN_ASSIGN(check::Report rep, ops::check(*repo, *r, sink));
    sink.clear_line();
    if (app.globals().json) {
      std::cout << check::report_json(rep).dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                << "\n";
    } else if (!app.globals().quiet || rep.damaged()) {
      print_report(rep);
    }
    return rep.damaged() ? kExitFailure : kExitOk;
  });
}

}  // namespace haven::cli

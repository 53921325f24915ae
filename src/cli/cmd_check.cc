// haven check — verify the repository's structure and, when asked, every byte of its data.
#include <iostream>

#include "check/check.h"
#include "cli/cli.h"
#include "pg/archive_check.h"
#include "cli/progress.h"

namespace haven::cli {

namespace {
struct CheckCliOptions {
  bool read_data = false;
  std::string subset;
  size_t threads = 2;
};

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
  auto opts = std::make_shared<CheckCliOptions>();
  auto* sub = app.root().add_subcommand("check", "verify the repository (structure; data with --read-data)");
  auto* rd = sub->add_flag("--read-data", opts->read_data, "also read, decrypt and verify every blob");
  sub->add_option("--read-data-subset", opts->subset,
                  "read only a subset of the packs: 'N%' at random, or group 'K/N'")
      ->excludes(rd);
  sub->add_option("--threads", opts->threads, "packs verified at once (default 2)")
      ->check(CLI::Range(1, 64));
  app.on(sub, [&app, opts]() -> CommandResult {
    check::Options o;
    o.threads = opts->threads;
    if (opts->read_data) o.read_data = check::Options::ReadData::kAll;
    if (!opts->subset.empty()) HAVEN_TRY(check::parse_subset(opts->subset, o));
    // Every key file is tried, so that one of another repository is named.
    HAVEN_ASSIGN(auto repo, app.open_repository({.try_all_keys = true}));
    repo::Session session(*repo, app.cancel());
    HAVEN_TRY(app.lock(session, false));
    CliSink sink(false, app.globals().quiet || app.globals().json);
    HAVEN_ASSIGN(check::Report r, check::check(session, o, sink));
    HAVEN_TRY(pg::check_archive(*repo, o.read_data != check::Options::ReadData::kNone, r));
    sink.clear_line();
    if (app.globals().json) {
      std::cout << check::report_json(r).dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                << "\n";
    } else if (!app.globals().quiet || r.damaged()) {
      print_report(r);
    }
    HAVEN_TRY(session.unlock());
    return r.damaged() ? kExitFailure : kExitOk;
  });
}

}  // namespace haven::cli

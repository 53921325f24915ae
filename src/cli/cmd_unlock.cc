// haven unlock — remove locks whose holder is gone (or all of them with --remove-all).
#include <iostream>

#include "cli/cli.h"

namespace haven::cli {

void register_unlock(App& app) {
  auto all = std::make_shared<bool>(false);
  auto* sub = app.root().add_subcommand("unlock", "remove stale locks and lock objects that cannot be read");
  sub->add_flag("--remove-all", *all, "remove every lock, also live ones (make sure nothing runs)");
  app.on(sub, [&app, all]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_ASSIGN(auto removed, repo->remove_stale_locks(*all));
    if (!app.globals().quiet) {
      for (const auto& l : removed) std::cout << "removed " << l << "\n";
      std::cout << "removed " << removed.size() << " lock(s)\n";
    }
    return 0;
  });
}

}  // namespace haven::cli

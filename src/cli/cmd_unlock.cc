// haven unlock — remove locks whose holder is gone (or all of them with --remove-all).
#include <iostream>

#include "cli/cli.h"

namespace haven::cli {

void register_unlock(App& app) {
  auto all = std::make_shared<bool>(false);
  auto* sub = app.root().add_subcommand("unlock", "remove stale locks");
  sub->add_flag("--remove-all", *all, "remove every lock, also live ones (make sure nothing runs)");
  app.on(sub, [&app, all]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_ASSIGN(size_t n, repo->remove_stale_locks(*all));
    if (!app.globals().quiet) std::cout << "removed " << n << " lock(s)\n";
    return 0;
  });
}

}  // namespace haven::cli

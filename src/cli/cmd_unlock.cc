// haven unlock — remove locks whose holder is gone (or all of them with --remove-all)
// (ops/check.h).
#include <iostream>

#include "cli/cli.h"
#include "ops/check.h"

namespace haven::cli {

void register_unlock(App& app) {
  auto r = std::make_shared<ops::UnlockRequest>();
  auto* sub = app.root().add_subcommand("unlock", "remove stale locks and lock objects that cannot be read");
  sub->add_flag("--remove-all", r->remove_all, "remove every lock, also live ones (make sure nothing runs)");
  app.on(sub, [&app, r]() -> CommandResult {
    HAVEN_ASSIGN(auto repo, app.open_repository());
    HAVEN_ASSIGN(ops::UnlockResult res, ops::unlock(*repo, *r));
    if (!app.globals().quiet) {
      for (const auto& l : res.removed) std::cout << "removed " << l << "\n";
      std::cout << "removed " << res.removed.size() << " lock(s)\n";
    }
    return 0;
  });
}

}  // namespace haven::cli

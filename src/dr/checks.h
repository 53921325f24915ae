// dr/checks.h — health checks (config::HealthCheck) as a plan's steps, waits and validations
// run them: HTTP, TCP, SQL, a command, and the checksum of what a restore step wrote. Variables
// (${port}, ${STEP.path}...) are already replaced when a check gets here.
//
// Thread-safety: every function may be called from several threads at once.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "config/config.h"
#include "util/error.h"

namespace haven::dr {

struct CheckOutcome {
  bool passed = false;
  std::string message;  // what was seen: "HTTP 200", "connection refused", "returned 12"…
};

// Compares a query's result with `expect`: a value ("42", "ok"), or a predicate on numbers
// "> N", ">= N", "< N", "<= N", "= V", "!= V" (= and != compare as text when not numbers).
bool satisfies(const std::string& value, const std::string& expect);

// Runs one check with at most `timeout` for it. `checksum` answers a checksum check (the
// runner compares what a restore step wrote with its snapshot); `workdir` is where a command
// runs. Honours the current cancel token (util/cancel.h): a cancelled check fails with a
// message saying so.
CheckOutcome run_check(const config::HealthCheck& check, std::chrono::milliseconds timeout,
                       const std::function<CheckOutcome(const std::string& step)>& checksum,
                       const std::string& workdir);

// "'a b'": a string quoted for sh.
std::string shell_quote(const std::string& s);

}  // namespace haven::dr

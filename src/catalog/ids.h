// catalog/ids.h — the identifiers the catalog makes: random version-4 UUIDs for row IDs, and
// readable run IDs for executions and restore requests.
//
// Randomness comes from getrandom(2) on every call: no state to share between threads, and
// none copied into a forked child (a PRNG seeded once would hand the same IDs to both).
// Thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "util/clock.h"
#include "util/error.h"

namespace haven::catalog {

// "1b4e28ba-2fa1-41d2-883f-0016d3cca427": lower case, version 4, RFC 4122 variant.
Result<std::string> new_uuid();

// "<prefix>-20261202T070101Z-3f2a9c1b": the UTC second of `t` and 32 random bits, so IDs made in
// the same second differ (the caller still retries on the rare collision).
Result<std::string> new_run_id(std::string_view prefix, TimeNs t);

}  // namespace haven::catalog

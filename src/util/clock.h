// util/clock.h — wall-clock time as nanoseconds since the Unix epoch, and its RFC 3339 text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace haven {

using TimeNs = int64_t;  // nanoseconds since 1970-01-01T00:00:00Z

TimeNs now();
// "2026-11-21T22:45:49.123456789Z" (UTC, nanoseconds).
std::string format_time(TimeNs t);
// Parses RFC 3339 ("...Z" or "...+01:00", optional fraction) and "YYYY-MM-DD[ HH:MM[:SS]]"
// (taken as local time). nullopt if malformed.
std::optional<TimeNs> parse_time(const std::string& s);

}  // namespace haven

// config/diagnostic.h — where a value of haven.yaml (or of a policy's JSON) was written, and
// the one shape every configuration problem is reported in.
//
// A Diagnostic names the file, the 1-based line and column, the key path in the document's own
// spelling ("policies[0].schedules[1].cron" in haven.yaml, "schedules[1].cron" in a policy's
// JSON), what is wrong and how to fix it:
//
//   haven.yaml:14:15: policies[0].retention.daily: must be a whole number >= 0, not 'seven'
//     (fix: ...)                                   <- one line in reality
//
// Values in messages are quoted from the document itself, never from a resolved secret.
// Problems are collected, not stopped at: a loader reports every one it finds, in document
// order, and config_error() turns the list into the one Error a caller returns
// (kInvalidArgument, one diagnostic per line).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "util/error.h"

namespace haven::config {

// Where a value was written: kept in the model for values that later layers check (a
// schedule's cron text and time zone), so that they report "file:line:col" like the loader.
struct SourceMark {
  std::string file;  // as given to the loader; "" for JSON that came from the REST API
  int line = 0;      // 1-based; 0 when unknown (JSON carries no positions)
  int column = 0;    // 1-based; 0 when unknown
  std::string path;  // the key path: "policies[0].schedules[1].cron"

  // A mark says where a value was written, not what it is: two models with the same settings
  // compare equal wherever they were written (a policy read from haven.yaml equals the same
  // policy posted as JSON), so marks never make values differ.
  bool operator==(const SourceMark&) const { return true; }
};

struct Diagnostic {
  std::string file;  // "" when there is none (JSON)
  int line = 0;      // 1-based; 0 when unknown
  int column = 0;    // 1-based; 0 when unknown
  std::string path;  // "" for problems of the whole document (a YAML syntax error)
  std::string message;
  std::string fix;   // "" when the message says it all

  // "file:line:col: path: message (fix: fix)"; each part left out when it is empty or
  // unknown ("retention.daily: must be ..." for JSON).
  std::string format() const;
  bool operator==(const Diagnostic&) const = default;
};

// The diagnostic for a problem found in a value after loading (e.g. the schedule module
// refusing a cron expression): `mark` is the value's mark from the model.
Diagnostic diagnostic_at(const SourceMark& mark, std::string message, std::string fix = "");

// Every diagnostic's format(), one per line (no trailing newline).
std::string format_diagnostics(const std::vector<Diagnostic>& diagnostics);

// The Error a loader returns for `diagnostics` (REQUIRES: not empty): kInvalidArgument, its
// message format_diagnostics(diagnostics).
Error config_error(const std::vector<Diagnostic>& diagnostics);

// {"file", "line", "column", "path", "message", "fix"} (the REST API's validation errors).
void to_json(nlohmann::json& j, const Diagnostic& d);

// The candidate closest to `word` — the same ignoring case, '_' and '-' ("min_copies" →
// "minCopies"), or within a small edit distance ("retension" → "retention") — or nullopt.
std::optional<std::string> did_you_mean(std::string_view word,
                                        const std::vector<std::string>& candidates);

}  // namespace haven::config

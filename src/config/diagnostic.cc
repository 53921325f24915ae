#include "config/diagnostic.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <nlohmann/json.hpp>

namespace haven::config {

std::string Diagnostic::format() const {
  std::string out;
  if (!file.empty()) {
    out = file;
    if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
    out += ": ";
  }
  if (!path.empty()) out += path + ": ";
  out += message;
  if (!fix.empty()) out += " (fix: " + fix + ")";
  return out;
}

Diagnostic diagnostic_at(const SourceMark& mark, std::string message, std::string fix) {
  return Diagnostic{mark.file, mark.line, mark.column, mark.path, std::move(message),
                    std::move(fix)};
}

std::string format_diagnostics(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const auto& d : diagnostics) {
    if (!out.empty()) out += '\n';
    out += d.format();
  }
  return out;
}

Error config_error(const std::vector<Diagnostic>& diagnostics) {
  if (diagnostics.empty()) std::abort();  // REQUIRES: a problem to report
  return Error(Error::Code::kInvalidArgument, format_diagnostics(diagnostics));
}

void to_json(nlohmann::json& j, const Diagnostic& d) {
  j = nlohmann::json{{"file", d.file},       {"line", d.line}, {"column", d.column},
                     {"path", d.path},       {"message", d.message}, {"fix", d.fix}};
}

namespace {

// Lower case without '_' and '-': "min_copies", "minCopies" and "MIN-COPIES" all agree.
std::string fold(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '_' || c == '-') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// Edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`: the optimal
// string alignment distance, so that "lcoal" is one edit from "local".
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); i++) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); j++) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    for (size_t j = 1; j <= b.size(); j++) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::optional<std::string> did_you_mean(std::string_view word,
                                        const std::vector<std::string>& candidates) {
  const std::string w = fold(word);
  if (w.empty()) return std::nullopt;
  // A third of the word's length, at least 1 and at most 3 ("dayly" → "daily"), and less than
  // the whole word (changing every letter of "x" is no typo of "y").
  const size_t limit = std::min(std::clamp<size_t>(w.size() / 3, 1, 3), w.size() - 1);
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  for (const auto& c : candidates) {
    size_t d = edit_distance(w, fold(c));
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

}  // namespace haven::config

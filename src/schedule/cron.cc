// Parsing cron expressions (schedule/cron.h). The next-fire search is in cron_next.cc.
#include "schedule/cron.h"

#include <array>
#include <cctype>
#include <cstring>

namespace haven::schedule {
namespace {

// One of the five fields: its name in messages, its values, and its value names.
struct FieldSpec {
  const char* name;
  int lo, hi;                          // values accepted
  int star_hi;                         // the last value "*" stands for (day-of-week: 6)
  const std::array<const char*, 12>* names;  // names[i] is value lo + i, or nullptr
  const char* accepted;                // "0-59", "1-12 or JAN-DEC", ...
};

constexpr std::array<const char*, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                     "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<const char*, 12> kDayNames = {"SUN", "MON", "TUE", "WED", "THU", "FRI",
                                                   "SAT", nullptr, nullptr, nullptr, nullptr,
                                                   nullptr};

constexpr FieldSpec kMinute{"minute", 0, 59, 59, nullptr, "0-59"};
constexpr FieldSpec kHour{"hour", 0, 23, 23, nullptr, "0-23"};
constexpr FieldSpec kDay{"day-of-month", 1, 31, 31, nullptr, "1-31"};
constexpr FieldSpec kMonth{"month", 1, 12, 12, &kMonthNames, "1-12 or JAN-DEC"};
constexpr FieldSpec kWeekday{"day-of-week", 0, 7, 6, &kDayNames,
                             "0-7 (0 and 7 are Sunday) or SUN-SAT"};

constexpr const char* kFieldsHint =
    "minute hour day-of-month month day-of-week, e.g. \"30 2 * * *\" for 02:30 every day, or a "
    "macro such as @daily";

Error invalid(std::string message) {
  return Error(Error::Code::kInvalidArgument, std::move(message));
}

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::vector<std::string_view> split_words(std::string_view s) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) words.push_back(s.substr(i, j - i));
    i = j;
  }
  return words;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) !=
        std::toupper(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Parses one field's text into its bit set. `field` is the whole field, for messages.
class FieldParser {
 public:
  FieldParser(const FieldSpec& spec, std::string_view field) : spec_(spec), field_(field) {}

  Result<uint64_t> parse() {
    uint64_t bits = 0;
    size_t start = 0;
    while (true) {
      const size_t comma = field_.find(',', start);
      const std::string_view item =
          field_.substr(start, comma == std::string_view::npos ? std::string_view::npos
                                                                : comma - start);
      HAVEN_ASSIGN(const uint64_t item_bits, parse_item(item));
      bits |= item_bits;
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return bits;
  }

 private:
  Error fail(const std::string& detail) const {
    return invalid(std::string(spec_.name) + " field '" + std::string(field_) + "': " + detail);
  }
  // "" when the token is the whole field (the message quotes it already), else "'tok' ".
  std::string subject(std::string_view token) const {
    return token == field_ ? std::string() : "'" + std::string(token) + "' ";
  }

  Result<int> parse_value(std::string_view token) const {
    if (all_digits(token)) {
      // More than three digits is out of range for every field (and cannot overflow).
      const int v = token.size() > 3 ? 1000 : std::stoi(std::string(token));
      if (v < spec_.lo || v > spec_.hi) return fail(subject(token) + "must be " + spec_.accepted);
      return v;
    }
    if (spec_.names != nullptr) {
      for (size_t i = 0; i < spec_.names->size(); ++i) {
        const char* name = (*spec_.names)[i];
        if (name != nullptr && iequals(token, name)) return spec_.lo + static_cast<int>(i);
      }
    }
    if (token.find_first_of("#?") != std::string_view::npos ||
        (!token.empty() && std::strchr("LWlw", token.back()) != nullptr &&
         all_digits(token.substr(0, token.size() - 1))) ||
        iequals(token, "L") || iequals(token, "LW")) {
      return fail("'" + std::string(token) +
                  "' is Quartz syntax (L, W, # and ? are not supported): list the days instead");
    }
    if (spec_.names == &kMonthNames) {
      return fail("'" + std::string(token) + "' is neither a number nor a month name: use " +
                  spec_.accepted);
    }
    if (spec_.names == &kDayNames) {
      return fail("'" + std::string(token) + "' is neither a number nor a day name: use " +
                  spec_.accepted);
    }
    return fail("'" + std::string(token) + "' is not a number: use " + spec_.accepted);
  }

  Result<uint64_t> parse_item(std::string_view item) const {
    if (item.empty()) {
      return fail("empty item in the list: separate values with single commas");
    }
    std::string_view base = item;
    std::string_view step_text;
    bool has_step = false;
    if (const size_t slash = item.find('/'); slash != std::string_view::npos) {
      base = item.substr(0, slash);
      step_text = item.substr(slash + 1);
      has_step = true;
      if (step_text.find('/') != std::string_view::npos) {
        return fail("more than one '/' in '" + std::string(item) +
                    "': write one step, as in */15");
      }
    }
    int first = 0, last = 0;
    if (base == "*") {
      first = spec_.lo;
      last = spec_.star_hi;
    } else if (const size_t dash = base.find('-'); dash != std::string_view::npos) {
      const std::string_view a = base.substr(0, dash);
      const std::string_view b = base.substr(dash + 1);
      if (a.empty() || b.empty()) {
        return fail("range '" + std::string(base) + "' needs a value on both sides of '-'");
      }
      HAVEN_ASSIGN(first, parse_value(a));
      HAVEN_ASSIGN(last, parse_value(b));
      // A range of weekdays may end on Sunday, 0: "FRI-SUN" is 5-7.
      if (spec_.names == &kDayNames && last == 0 && first > 0) last = 7;
      if (first > last) {
        return fail("range '" + std::string(base) +
                    "' is backwards: ranges do not wrap around; write " + std::to_string(first) +
                    "-" + std::to_string(spec_.hi) + "," + std::to_string(spec_.lo) + "-" +
                    std::to_string(last));
      }
    } else {
      HAVEN_ASSIGN(first, parse_value(base));
      last = first;
      if (has_step) {
        return fail("the step in '" + std::string(item) +
                    "' needs '*' or a range before it: write " + std::string(base) + "-" +
                    std::to_string(spec_.hi) + "/" + std::string(step_text));
      }
    }
    int step = 1;
    if (has_step) {
      const int span = spec_.star_hi - spec_.lo + 1;
      if (step_text.empty()) {
        return fail("no step after '/' in '" + std::string(item) + "': write one, as in */15");
      }
      if (!all_digits(step_text)) {
        return fail("step '" + std::string(step_text) + "' is not a number");
      }
      step = step_text.size() > 3 ? 1000 : std::stoi(std::string(step_text));
      if (step < 1 || step > span) {
        return fail("step must be 1-" + std::to_string(span) + ", not " +
                    std::string(step_text));
      }
    }
    uint64_t bits = 0;
    for (int v = first; v <= last; v += step) {
      const int value = (spec_.names == &kDayNames && v == 7) ? 0 : v;  // 7 is Sunday too
      bits |= uint64_t{1} << value;
    }
    return bits;
  }

  const FieldSpec& spec_;
  std::string_view field_;
};

struct Macro {
  const char* name;
  const char* fields;
};
constexpr std::array<Macro, 7> kMacros = {{{"@hourly", "0 * * * *"},
                                           {"@daily", "0 0 * * *"},
                                           {"@midnight", "0 0 * * *"},
                                           {"@weekly", "0 0 * * 0"},
                                           {"@monthly", "0 0 1 * *"},
                                           {"@yearly", "0 0 1 1 *"},
                                           {"@annually", "0 0 1 1 *"}}};

// The most days month m (1-12) ever has (February: 29).
constexpr std::array<unsigned, 13> kMaxDays = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

Result<Cron::Fields> parse_fields(const std::vector<std::string_view>& words) {
  Cron::Fields f;
  HAVEN_ASSIGN(f.minutes, FieldParser(kMinute, words[0]).parse());
  HAVEN_ASSIGN(const uint64_t hours, FieldParser(kHour, words[1]).parse());
  HAVEN_ASSIGN(const uint64_t days, FieldParser(kDay, words[2]).parse());
  HAVEN_ASSIGN(const uint64_t months, FieldParser(kMonth, words[3]).parse());
  HAVEN_ASSIGN(const uint64_t weekdays, FieldParser(kWeekday, words[4]).parse());
  f.hours = static_cast<uint32_t>(hours);
  f.days = static_cast<uint32_t>(days);
  f.months = static_cast<uint16_t>(months);
  f.weekdays = static_cast<uint8_t>(weekdays);
  f.any_day = words[2] == "*";
  f.any_weekday = words[4] == "*";
  return f;
}

// Whether some month in the set has some day in the set (the day-of-month field alone
// decides when day-of-week is "*"; otherwise every week has a matching day).
bool can_fire(const Cron::Fields& f) {
  if (!f.any_weekday) return true;
  for (unsigned m = 1; m <= 12; ++m) {
    if ((f.months >> m & 1) == 0) continue;
    for (unsigned d = 1; d <= kMaxDays[m]; ++d) {
      if ((f.days >> d & 1) != 0) return true;
    }
  }
  return false;
}

}  // namespace

Result<Cron> Cron::parse(std::string_view text) {
  size_t b = 0, e = text.size();
  while (b < e && is_space(text[b])) ++b;
  while (e > b && is_space(text[e - 1])) --e;
  const std::string trimmed(text.substr(b, e - b));
  if (trimmed.empty()) {
    return invalid(std::string("empty schedule: give five fields, ") + kFieldsHint);
  }
  std::vector<std::string_view> words = split_words(trimmed);
  if (words[0].front() == '@') {
    const Macro* macro = nullptr;
    for (const Macro& m : kMacros) {
      if (iequals(words[0], m.name)) macro = &m;
    }
    if (macro == nullptr) {
      return invalid("unknown macro '" + std::string(words[0]) +
                     "': use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or "
                     "@annually, or five fields (minute hour day-of-month month day-of-week)");
    }
    if (words.size() > 1) {
      return invalid("schedule '" + trimmed + "': the macro " + macro->name +
                     " stands alone: remove what follows it");
    }
    HAVEN_ASSIGN(const Fields f, parse_fields(split_words(macro->fields)));
    return Cron(trimmed, f);
  }
  if (words.size() != 5) {
    std::string msg = "schedule '" + trimmed + "' has " + std::to_string(words.size()) +
                      (words.size() == 1 ? " field" : " fields") + ", want 5: " + kFieldsHint;
    if (words.size() > 5) msg += " (seconds and year fields are not supported)";
    return invalid(msg);
  }
  HAVEN_ASSIGN(const Fields f, parse_fields(words));
  if (!can_fire(f)) {
    return invalid("schedule '" + trimmed + "' never fires: no month in the month field '" +
                   std::string(words[3]) + "' has a day in the day-of-month field '" +
                   std::string(words[2]) +
                   "' (February has at most 29 days; April, June, September and November "
                   "30): choose days that exist in those months");
  }
  return Cron(trimmed, f);
}

}  // namespace haven::schedule

// A property test of Cron::parse/next against an independent oracle: tests/schedule/
// cron_oracle.py, which parses the expressions itself and maps matching wall times to instants
// with Python's zoneinfo (see its docstring). Thousands of random expressions, in zones with
// ordinary and odd daylight-saving rules, from random instants concentrated around their
// transitions in 2020-2030; each compares its next four fire times.
//
// The seed is fixed so CI is repeatable; HAVEN_CRON_SEED=<n> runs another one. A failure prints
// the seed and the cases that differ.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "schedule/cron.h"
#include "schedule_test_util.h"
#include "util/cancel.h"
#include "util/subprocess.h"

namespace haven::schedule {
namespace {

using testing::iso;
using testing::kSecond;
using testing::T;

constexpr uint64_t kDefaultSeed = 20260329;
constexpr int kCases = 6000;
constexpr size_t kFiresPerCase = 4;
// The date library keeps the last offset the zone files list (2037) for ever after, where
// zoneinfo follows the files' closing rule (schedule/zone.h): compare fires before 2037 only.
const TimeNs kCompareUntil = T("2037-01-01 00:00");

const std::vector<std::string> kZones = {
    "UTC",           "Europe/Berlin",      "America/New_York",  "Australia/Lord_Howe",
    "Pacific/Chatham", "America/Sao_Paulo", "Asia/Kolkata",      "Africa/Casablanca",
    "America/Havana", "Asia/Gaza",         "Australia/Sydney",  "Europe/London"};

uint64_t seed() {
  const char* s = std::getenv("HAVEN_CRON_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : kDefaultSeed;
}

std::string oracle_script() {
  const std::string here = __FILE__;
  return here.substr(0, here.rfind('/') + 1) + "cron_oracle.py";
}

// --- random expressions -------------------------------------------------------------------------

struct FieldGen {
  int lo, hi;                    // values
  double star;                   // chance of "*"
  std::vector<int> favoured;     // values near DST transitions and month ends
  const char* const* names;      // value names (lo + i), or nullptr
};

const char* const kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                   "jul", "aug", "sep", "oct", "nov", "dec"};
const char* const kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"};

const FieldGen kMinuteGen{0, 59, 0.15, {0, 15, 30, 45, 59, 29, 44, 1, 14}, nullptr};
const FieldGen kHourGen{0, 23, 0.3, {0, 1, 2, 3, 4, 22, 23}, nullptr};
const FieldGen kDayGen{1, 31, 0.65, {1, 13, 15, 28, 29, 30, 31}, nullptr};
const FieldGen kMonthGen{1, 12, 0.6, {1, 2, 3, 4, 9, 10, 11, 12}, kMonthNames};
const FieldGen kWeekdayGen{0, 7, 0.6, {0, 1, 5, 6, 7}, kDayNames};

class ExprGen {
 public:
  explicit ExprGen(uint64_t seed) : rng_(seed) {}

  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  int64_t uniform64(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(uniform(0, static_cast<int>(v.size()) - 1))];
  }

  // A random expression; `hours`, if given, is its hour field.
  std::string expression(const std::string& hours = "") {
    if (hours.empty() && chance(0.04)) {
      static const std::vector<std::string> macros = {"@hourly", "@daily",  "@midnight",
                                                      "@weekly", "@monthly", "@yearly",
                                                      "@annually"};
      return spaces(true) + cased(pick(macros)) + spaces(true);
    }
    std::vector<std::string> f = {field(kMinuteGen), hours.empty() ? field(kHourGen) : hours,
                                  field(kDayGen), field(kMonthGen), field(kWeekdayGen)};
    if (chance(0.03)) {  // days that months in the list do not have: never fires, mostly
      static const std::vector<std::string> days = {"30", "31", "30,31", "31", "30-31"};
      static const std::vector<std::string> months = {"2", "FEB", "4,6", "2,11", "9", "2,4"};
      f[2] = pick(days);
      f[3] = pick(months);
      f[4] = "*";
    }
    std::string out = spaces(true);
    for (size_t i = 0; i < f.size(); ++i) out += (i > 0 ? spaces(false) : "") + f[i];
    return out + spaces(true);
  }

 private:
  std::string spaces(bool optional) {
    static const std::vector<std::string> seps = {" ", " ", " ", "  ", "\t", " \t "};
    if (optional && chance(0.85)) return "";
    return pick(seps);
  }

  std::string cased(const std::string& s) {
    std::string out = s;
    const int style = uniform(0, 3);
    for (size_t i = 0; i < out.size(); ++i) {
      const bool upper = style == 0 || (style == 2 && i == 0) || (style == 3 && chance(0.5));
      out[i] = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(out[i]))
                                       : std::tolower(static_cast<unsigned char>(out[i])));
    }
    return out;
  }

  int value(const FieldGen& g) {
    return chance(0.6) ? pick(g.favoured) : uniform(g.lo, g.hi);
  }
  std::string text(const FieldGen& g, int v) {
    if (g.names != nullptr && chance(0.3)) return cased(g.names[v - g.lo]);
    return std::to_string(v);
  }

  std::string item(const FieldGen& g) {
    const int star_hi = g.names == kDayNames ? 6 : g.hi;
    const int span = star_hi - g.lo + 1;
    switch (uniform(0, 9)) {
      case 0:
      case 1:
      case 2:
      case 3:
        return text(g, value(g));
      case 4:
      case 5: {
        const int a = value(g);
        if (g.names == kDayNames && a > 0 && chance(0.25)) return text(g, a) + "-" + text(g, 0);
        const int b = std::min(g.hi, a + uniform(0, span / 3));
        return text(g, a) + "-" + text(g, b);
      }
      case 6: {
        const int a = uniform(g.lo, g.hi);
        const int b = uniform(a, g.hi);
        return text(g, a) + "-" + text(g, b) + "/" + std::to_string(uniform(1, span));
      }
      case 7:
        if (chance(0.1)) return "*";  // "*" inside a list
        [[fallthrough]];
      default: {
        static const std::vector<int> steps = {1, 2, 3, 4, 5, 6, 7, 10, 12, 15, 20, 30};
        int step = pick(steps);
        if (step > span || chance(0.2)) step = uniform(1, span);
        return "*/" + std::to_string(step);
      }
    }
  }

  std::string field(const FieldGen& g) {
    if (chance(g.star)) return "*";
    std::string out = item(g);
    const int more = chance(0.7) ? 0 : uniform(1, 2);
    for (int i = 0; i < more; ++i) out += "," + item(g);
    return out;
  }

  std::mt19937_64 rng_;
};

// The instants (seconds) at which `zone` changes its offset in 2020-2030.
std::vector<int64_t> transitions(const Zone& zone) {
  std::vector<int64_t> out;
  const int64_t end = T("2031-01-01 00:00") / kSecond;
  for (int64_t t = T("2020-01-01 00:00") / kSecond; t < end;) {
    const Zone::Period p = zone.period_at(t);
    if (p.end >= end) break;
    out.push_back(p.end);
    t = p.end;
  }
  return out;
}

TimeNs random_after(ExprGen& gen, const std::vector<int64_t>& changes) {
  const double r = gen.uniform(0, 99) / 100.0;
  TimeNs t;
  if (!changes.empty() && r < 0.55) {
    // Within a day and a half of a transition, at any nanosecond.
    t = (gen.pick(changes) + 60 * gen.uniform64(-36 * 60, 36 * 60)) * kSecond;
    if (gen.chance(0.5)) t += gen.uniform64(0, 60 * kSecond - 1);
  } else if (!changes.empty() && r < 0.75) {
    // Within two hours of a transition, on a whole minute (often a fire time itself).
    t = (gen.pick(changes) + 60 * gen.uniform64(-120, 120)) * kSecond;
  } else {
    t = gen.uniform64(T("2020-01-01 00:00"), T("2031-01-01 00:00"));
    if (gen.chance(0.5)) t -= t % (60 * kSecond);
  }
  return t;
}

struct Case {
  std::string zone;
  TimeNs after;
  std::string expr;
};

// Runs the oracle over all cases at once: one line of answer per case.
std::vector<std::string> ask_oracle(const std::vector<Case>& cases) {
  char in_path[] = "/tmp/haven_cron_oracle_in_XXXXXX";
  char out_path[] = "/tmp/haven_cron_oracle_out_XXXXXX";
  const int in_fd = mkstemp(in_path);
  const int out_fd = mkstemp(out_path);
  if (in_fd < 0 || out_fd < 0) {
    ADD_FAILURE() << "mkstemp failed";
    return {};
  }
  {
    std::ofstream in(in_path);
    for (const Case& c : cases) {
      in << c.zone << '\t' << c.after << '\t' << kFiresPerCase << '\t' << c.expr << '\n';
    }
  }
  SpawnOptions opts;
  opts.argv = {"python3", oracle_script()};
  opts.stdin_fd = in_fd;
  opts.stdout_fd = out_fd;
  Result<Subprocess> child = Subprocess::spawn(opts);
  std::vector<std::string> lines;
  if (!child.ok()) {
    ADD_FAILURE() << "cannot run python3 (the oracle needs it): " << child.error().message();
  } else if (Result<int> status = child->wait(CancelToken()); !status.ok() || *status != 0) {
    ADD_FAILURE() << "python3 " << oracle_script() << " "
                  << (status.ok() ? describe_exit(*status) : status.error().message());
  } else {
    std::ifstream out(out_path);
    for (std::string line; std::getline(out, line);) lines.push_back(line);
  }
  close(in_fd);
  close(out_fd);
  unlink(in_path);
  unlink(out_path);
  return lines;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '\t' ? std::string("\\t") : std::string(1, c);
  return out + "\"";
}

TEST(CronOracle, AgreesWithAnIndependentZoneinfoImplementation) {
  const uint64_t s = seed();
  SCOPED_TRACE("seed " + std::to_string(s) + " (rerun with HAVEN_CRON_SEED=" +
               std::to_string(s) + ")");
  ExprGen gen(s);
  std::map<std::string, Zone> zones;
  std::map<std::string, std::vector<int64_t>> changes;
  for (const std::string& name : kZones) {
    zones.emplace(name, testing::zone(name));
    changes[name] = transitions(zones.at(name));
  }
  ASSERT_GE(changes.at("Australia/Lord_Howe").size(), 20u);

  std::vector<Case> cases;
  for (int i = 0; i < kCases; ++i) {
    const std::string& zone = gen.pick(kZones);
    const std::vector<int64_t>& zone_changes = changes.at(zone);
    if (zone_changes.empty() || gen.chance(0.5)) {
      cases.push_back(Case{zone, random_after(gen, zone_changes), gen.expression()});
      continue;
    }
    // Aimed at one transition: up to 30 hours before it, with the hour field on the wall-clock
    // hour where the gap or the repeated stretch starts (and often the next hour too).
    const int64_t change = gen.pick(zone_changes);
    const Zone& z = zones.at(zone);
    const int64_t wall = change + std::min(z.utc_offset(change - 1), z.utc_offset(change));
    const int hour = static_cast<int>(((wall % 86400) + 86400) % 86400 / 3600);
    std::string hours = std::to_string(hour);
    if (gen.chance(0.5)) hours += "," + std::to_string((hour + 1) % 24);
    TimeNs after = (change - gen.uniform64(0, 30 * 3600)) * kSecond;
    if (gen.chance(0.3)) after += gen.uniform64(0, kSecond - 1);
    cases.push_back(Case{zone, after, gen.expression(hours)});
  }
  const std::vector<std::string> answers = ask_oracle(cases);
  ASSERT_EQ(answers.size(), cases.size());

  int compared = 0, refused = 0, mismatches = 0;
  std::map<char, int> kinds;  // the oracle's kind of each compared fire: u, a, g
  int crossing = 0;           // cases whose fires span an offset change
  std::string report;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const std::string& answer = answers[i];
    const std::string where = c.zone + " after " + iso(c.after) + " (" +
                              std::to_string(c.after) + " ns) " + quoted(c.expr);
    Result<Cron> cron = Cron::parse(c.expr);
    if (!cron.ok()) {
      ++refused;
      if (answer != "never" || cron.error().message().find("never fires") == std::string::npos) {
        ++mismatches;
        report += where + ": parse says \"" + cron.error().message() + "\", oracle \"" + answer +
                  "\"\n";
      }
      continue;
    }
    std::istringstream words(answer);
    std::string head;
    words >> head;
    if (head != "fires") {
      ++mismatches;
      report += where + ": parsed, oracle \"" + answer + "\"\n";
      continue;
    }
    std::vector<TimeNs> want;
    std::vector<char> want_kinds;
    for (std::string w; words >> w;) {
      const TimeNs t = std::stoll(w.substr(0, w.find(':'))) * kSecond;
      if (t >= kCompareUntil) break;
      want.push_back(t);
      want_kinds.push_back(w.back());
    }
    std::vector<TimeNs> got = cron->next_n(c.after, zones.at(c.zone), kFiresPerCase);
    while (!got.empty() && got.back() >= kCompareUntil) got.pop_back();
    ++compared;
    for (char k : want_kinds) ++kinds[k];
    if (!want.empty()) {
      const Zone& z = zones.at(c.zone);
      if (z.utc_offset(c.after / kSecond) != z.utc_offset(want.back() / kSecond)) ++crossing;
    }
    if (got != want) {
      ++mismatches;
      std::string w, g;
      for (size_t k = 0; k < want.size(); ++k) w += " " + iso(want[k]) + ":" + want_kinds[k];
      for (TimeNs t : got) g += " " + iso(t);
      report += where + ":\n    oracle" + w + "\n    next()" + g + "\n";
    }
    if (mismatches >= 20) break;
  }
  EXPECT_EQ(mismatches, 0) << report;
  // The test must have tested something: most cases compared, every DST rule exercised.
  EXPECT_GE(compared, 3000);
  EXPECT_GE(refused, 20);
  EXPECT_GE(kinds['g'], 300) << "fires at the end of a gap";
  EXPECT_GE(kinds['a'], 300) << "fires of a repeated wall time";
  EXPECT_GE(crossing, 500) << "cases whose fires cross an offset change";
  std::printf("oracle: %d cases compared (%d unique, %d repeated, %d gap fires), %d crossing an "
              "offset change, %d refused as never firing\n",
              compared, kinds['u'], kinds['a'], kinds['g'], crossing, refused);
}

}  // namespace
}  // namespace haven::schedule

// Cron expressions (schedule/cron.h): any text either parses or is refused; a parsed one
// parses again from its own text to the same fields, and its next fire times, in zones with
// and without daylight saving (Lord Howe's is half an hour), are strictly increasing and never
// kNever: parse() refuses an expression that cannot fire.
#include <string_view>

#include "schedule/cron.h"
#include "schedule/zone.h"

namespace {

const std::vector<haven::schedule::Zone>& zones() {
  static const std::vector<haven::schedule::Zone> z = [] {
    std::vector<haven::schedule::Zone> out{haven::schedule::Zone::utc()};
    for (const char* name : {"Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"}) {
      auto zone = haven::schedule::Zone::load(name);
      if (zone.ok()) out.push_back(*zone);
    }
    return out;
  }();
  return z;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace haven::schedule;
  if (size > 256) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cron = Cron::parse(text);
  if (!cron.ok()) {
    if (cron.error().message().empty()) __builtin_trap();  // every refusal says why
    return 0;
  }
  auto again = Cron::parse(cron->text());
  if (!again.ok() || !(again->fields() == cron->fields())) __builtin_trap();
  // 2026-03-28T00:00:00Z: the days around Europe's spring change.
  const haven::TimeNs from = 1774656000LL * 1000000000LL;
  for (const Zone& z : zones()) {
    auto fires = cron->next_n(from, z, 4);
    if (fires.size() != 4) __builtin_trap();
    haven::TimeNs prev = from;
    for (haven::TimeNs t : fires) {
      if (t <= prev || t == Cron::kNever) __builtin_trap();
      prev = t;
    }
  }
  return 0;
}

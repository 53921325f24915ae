#include "pg/archive_check.h"

#include <algorithm>
#include <map>
#include <set>

#include "pg/wal.h"

namespace haven::pg {

Status check_archive(repo::Repository& repo, bool read_data, check::Report& report) {
  std::vector<std::string> names;
  HAVEN_TRY(repo.backend().list(storage::ObjectType::kWal, [&](const storage::ObjectInfo& i) {
    names.push_back(i.name.name);
  }));
  report.wal_files = names.size();
  if (names.empty()) return ok_status();
  std::map<uint32_t, std::set<std::pair<uint64_t, uint64_t>>> segs;
  for (const auto& n : names) {
    if (!is_wal_file_name(n)) {
      report.problems.push_back({"WAL file " + n, "not a WAL file name: nothing reads it", false, {}, {}});
      continue;
    }
    if (auto s = parse_segment_name(n)) segs[s->timeline].insert({s->log, s->seg});
    if (!read_data) continue;
    auto object = repo.backend().load({storage::ObjectType::kWal, n});
    Result<Bytes> plain = object.ok() ? repo.open_wal_object(n, *object) : Result<Bytes>(object.error());
    report.wal_read++;
    if (plain.ok()) report.bytes_read += object->size();
    if (!plain.ok()) {
      report.problems.push_back({"WAL file " + n,
                                 plain.error().message() + " (recovery cannot replay past it)", true, {}, {}});
    }
  }
  // Gaps: segment numbers are contiguous within a timeline as long as the server archived them
  // all (16 MiB segments assumed for naming: 256 per log file).
  for (const auto& [tl, set] : segs) {
    std::pair<uint64_t, uint64_t> prev{0, 0};
    bool first = true;
    for (const auto& s : set) {
      if (!first) {
        uint64_t a = prev.first * 256 + prev.second, b = s.first * 256 + s.second;
        if (b > a + 1) {
          char missing[25];
          std::snprintf(missing, sizeof missing, "%08X%08X%08X", tl, static_cast<unsigned>((a + 1) / 256),
                        static_cast<unsigned>((a + 1) % 256));
          report.problems.push_back({"WAL archive",
                                     "timeline " + std::to_string(tl) + " has a gap: " + std::to_string(b - a - 1) +
                                         " segment(s) missing from " + missing +
                                         " on (point-in-time recovery cannot pass it; 'haven pg windows' shows what is recoverable)",
                                     false, {}, {}});
        }
      }
      prev = s;
      first = false;
    }
  }
  // Damage first, then notices, as check orders them.
  std::stable_partition(report.problems.begin(), report.problems.end(),
                        [](const check::Problem& p) { return p.damage; });
  return ok_status();
}

}  // namespace haven::pg

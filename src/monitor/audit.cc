#include "monitor/audit.h"

namespace haven::monitor {

Result<catalog::AuditRow> AuditLog::record(const std::string& actor, const std::string& action,
                                           const std::string& target, nlohmann::json details) {
  catalog::AuditRow row;
  row.actor = actor;
  row.action = action;
  row.target = target;
  row.details = details.is_object() ? std::move(details) : nlohmann::json::object();
  auto stored = catalog_.append_audit(row);
  if (!stored.ok()) {
    failures_++;
    if (note_) {
      note_("audit:failed", {{"action", action}, {"target", target}, {"error", stored.error().message()}});
    }
    return stored.error();
  }
  // The event stream is for viewers; the record's details are for admins (GET /api/audit).
  if (note_) {
    note_("audit:logged", {{"seq", stored->seq}, {"time", format_time(stored->time)},
                           {"actor", stored->actor}, {"action", stored->action},
                           {"target", stored->target}, {"hash", stored->hash}});
  }
  return stored;
}

nlohmann::json audit_json(const catalog::AuditRow& r) {
  return {{"seq", r.seq},     {"time", format_time(r.time)}, {"actor", r.actor},
          {"action", r.action}, {"target", r.target},        {"details", r.details},
          {"prev_hash", r.prev_hash}, {"hash", r.hash}};
}

}  // namespace haven::monitor

// monitor/audit.h — the audit log's writer: every change and every data access (policy changes,
// executions and who started them, restores and their validation, tokens, keys, forget and
// prune, refused logins, acknowledged alerts, reloads) is appended to the catalog's hash-chained
// audit_log (catalog/audit.h) and announced as an "audit:logged" event.
//
// Actors: "token:<name>" for the API, "cli:<user>@<host>" for the command line, "scheduler",
// "server" for what the server decides itself, "anonymous" for a refused request.
// Actions are "<thing>.<verb>": policy.create, policy.update, policy.delete, backup.execute,
// backup.cancel, restore.request, restore.cancel, restore.validate, token.create, token.revoke,
// key.add, key.remove, key.passwd, retention.forget, retention.prune, auth.refused,
// alert.acknowledge, monitor.update, monitor.delete, server.reload.
//
// A record is written after the action was taken and before the answer is sent. Details never
// hold a secret (tokens' values, passwords): callers pass names and ids.
//
// Thread-safety: record() from any thread (the catalog serialises the chain).
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "catalog/catalog.h"

namespace haven::monitor {

class AuditLog {
 public:
  using Note = std::function<void(const std::string& kind, const nlohmann::json& payload)>;
  AuditLog(catalog::Catalog& catalog, Note note = {}) : catalog_(catalog), note_(std::move(note)) {}

  // Appends the record. A failure is returned and counted (failures()), never thrown away
  // silently: the server notes it as an event.
  Result<catalog::AuditRow> record(const std::string& actor, const std::string& action,
                                   const std::string& target,
                                   nlohmann::json details = nlohmann::json::object());
  uint64_t failures() const { return failures_.load(); }

 private:
  catalog::Catalog& catalog_;
  Note note_;
  std::atomic<uint64_t> failures_{0};
};

// The JSON of an audit record (export, the API): seq, time (RFC 3339), actor, action, target,
// details, prev_hash, hash.
nlohmann::json audit_json(const catalog::AuditRow& r);

}  // namespace haven::monitor

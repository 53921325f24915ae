// catalog/audit.h — the audit log's hash chain: how a record's hash is made, and the check
// that finds where a chain was tampered with.
//
// A record's hash is the hex SHA-256 of the canonical JSON array
//   [seq, time, actor, action, target, details, prev_hash]
// (nlohmann's dump(): no spaces, object keys sorted, UTF-8), and prev_hash is the hash of the
// record before it (64 zeros for seq 1). So:
//   * an edited record no longer matches its hash;
//   * a deleted record leaves a gap in seq and breaks the next record's prev_hash;
//   * an inserted record (renumbered in) breaks prev_hash where it was put;
//   * reordered records break both.
// Trade-off, stated: the chain is a plain hash, so whoever can write the catalog can also
// recompute every hash after a change and leave a consistent chain. verify_audit() reports the
// head (the last seq and hash): compared with a copy kept elsewhere (an export, a ticket, the
// repository mirror) it catches that too, and cutting records off the end.
//
// Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "util/cancel.h"

namespace haven::catalog {

inline const std::string kAuditGenesis(64, '0');

// The hash `row` must carry (over its seq, time, actor, action, target, details, prev_hash).
std::string audit_hash(const AuditRow& row);

struct AuditProblem {
  int64_t seq = 0;   // the record concerned
  std::string what;  // "changed after it was written (its hash does not match its content)"
};

struct AuditVerification {
  int64_t records = 0;   // records read
  int64_t last_seq = 0;  // the head of the chain
  std::string last_hash;
  std::vector<AuditProblem> problems;  // in chain order; empty: intact
  bool ok() const { return problems.empty(); }
};

// Reads the whole log in seq order (in pages, so memory does not grow with it) and checks every
// link. Errors only when the catalog cannot be read.
Result<AuditVerification> verify_audit(Catalog& catalog);

}  // namespace haven::catalog

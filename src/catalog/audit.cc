#include "catalog/audit.h"

#include <sodium.h>

#include "util/bytes.h"

namespace haven::catalog {

std::string audit_hash(const AuditRow& row) {
  const nlohmann::json canonical = {row.seq,    row.time,    row.actor,    row.action,
                                    row.target, row.details, row.prev_hash};
  const std::string text = canonical.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  return to_hex(ByteView(h, sizeof(h)));
}

Result<AuditVerification> verify_audit(Catalog& catalog) {
  AuditVerification v;
  std::string expected_prev = kAuditGenesis;
  int64_t expected_seq = 1;
  int64_t after = 0;
  while (true) {
    HAVEN_ASSIGN(auto page, catalog.audit_records(after, 0, Catalog::kMaxEventBatch));
    if (page.empty()) break;
    for (const AuditRow& r : page) {
      v.records++;
      if (r.seq != expected_seq) {
        v.problems.push_back(
            {r.seq, r.seq > expected_seq
                        ? "record" + std::string(r.seq - expected_seq > 1 ? "s " : " ") +
                              std::to_string(expected_seq) +
                              (r.seq - expected_seq > 1 ? "-" + std::to_string(r.seq - 1) : "") +
                              " missing before it (deleted)"
                        : "out of sequence (expected " + std::to_string(expected_seq) + ")"});
      }
      if (audit_hash(r) != r.hash) {
        v.problems.push_back(
            {r.seq, "changed after it was written (its hash does not match its content)"});
      }
      if (r.prev_hash != expected_prev) {
        v.problems.push_back({r.seq, "does not follow the record before it (prev_hash is not "
                                     "that record's hash: a record was inserted, deleted or "
                                     "moved here)"});
      }
      expected_prev = r.hash;
      expected_seq = r.seq + 1;
      v.last_seq = r.seq;
      v.last_hash = r.hash;
      after = r.seq;
    }
  }
  return v;
}

}  // namespace haven::catalog

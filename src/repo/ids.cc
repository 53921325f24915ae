#include "repo/ids.h"

namespace haven::repo {

std::optional<Id> parse_id(const std::string& h) {
  if (h.size() != 64) return std::nullopt;
  auto b = from_hex(h);
  if (!b) return std::nullopt;
  Id id{};
  std::copy(b->begin(), b->end(), id.begin());
  return id;
}

const char* blob_type_name(BlobType t) { return t == BlobType::kTree ? "tree" : "data"; }

}  // namespace haven::repo

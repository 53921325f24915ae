#include "catalog/tokens.h"

#include <sodium.h>

#include <cstdlib>

#include "util/bytes.h"

namespace haven::catalog {

std::string new_token() {
  if (sodium_init() < 0) std::abort();  // idempotent; fails only without a random source
  unsigned char raw[32];
  randombytes_buf(raw, sizeof(raw));
  std::string t = "hvn_" + to_hex(ByteView(raw, sizeof(raw)));
  sodium_memzero(raw, sizeof(raw));
  return t;
}

std::string token_hash(const std::string& token) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(token.data()), token.size());
  return to_hex(ByteView(h, sizeof(h)));
}

Result<TokenRow> authenticate(Catalog& catalog, const std::string& token) {
  if (token.size() != 68 || token.compare(0, 4, "hvn_") != 0) {
    return Error(Error::Code::kNotFound, "not a Haven API token");
  }
  const std::string h = token_hash(token);
  HAVEN_ASSIGN(TokenRow row, catalog.find_token_by_hash(h));
  if (!equal_constant_time(as_bytes(row.token_hash), as_bytes(h))) {
    return Error(Error::Code::kNotFound, "unknown token");
  }
  return row;
}

}  // namespace haven::catalog

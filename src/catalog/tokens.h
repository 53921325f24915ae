// catalog/tokens.h — API bearer tokens: made here, shown once to whoever creates them, kept in
// the catalog only as a hash (api_tokens.token_hash).
//
// A token is "hvn_" and 64 hex digits (256 random bits). Its hash is the hex SHA-256 of the
// whole token: with that much entropy a plain hash cannot be reversed, and it lets the catalog
// find a token by an indexed lookup. authenticate() compares the stored hash with the computed
// one in constant time as well.
#pragma once

#include <string>

#include "catalog/catalog.h"

namespace haven::catalog {

std::string new_token();
std::string token_hash(const std::string& token);
// The unrevoked token row for `token`; kNotFound (unknown, revoked or malformed).
Result<TokenRow> authenticate(Catalog& catalog, const std::string& token);

}  // namespace haven::catalog

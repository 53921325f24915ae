// fuzz/fuzz_common.h — what every libFuzzer target (and the corpus generator) shares: the fixed
// test key that seals the corpus's objects, so a target both authenticates the seeds (reaching
// the parser behind the framing) and fails authentication on their mutations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "crypto/crypto.h"
#include "repo/format.h"
#include "repo/keys.h"
#include "util/bytes.h"

namespace haven::fuzz {

// Generation 0 encryption key 32 × 0x11, ID key 32 × 0x22, chunker key 32 × 0x33.
inline const repo::MasterKey& test_key() {
  static const repo::MasterKey key = [] {
    auto fill = [](uint8_t b) {
      Bytes k(crypto::kKeySize, b);
      return crypto::SecretKey(k);
    };
    repo::MasterKey m;
    m.encryption.emplace(0, fill(0x11));
    m.current_generation = 0;
    m.id_key = fill(0x22);
    m.chunker_key = fill(0x33);
    return m;
  }();
  return key;
}

// The salt of an object (bytes 12..44) as an object name, so that the check "an ID-named
// object's salt is its name" passes and the fuzzer gets as far as authentication.
inline std::string salt_name(ByteView object) {
  if (object.size() < repo::kPrefixSize) return std::string(64, '0');
  return to_hex(object.subspan(repo::kHeaderSize, repo::kSaltSize));
}

inline repo::Id salt_id(ByteView object) {
  repo::Id id{};
  if (object.size() >= repo::kPrefixSize) {
    std::copy_n(object.begin() + repo::kHeaderSize, repo::kSaltSize, id.begin());
  }
  return id;
}

}  // namespace haven::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  haven::crypto::init();
  return 0;
}

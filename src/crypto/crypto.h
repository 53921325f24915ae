// crypto/crypto.h — the primitives Haven's format is built from, wrapped so that the rest of
// the code never touches OpenSSL or libsodium directly.
//
//   AES-256-GCM (OpenSSL, AES-NI): authenticated encryption of every stored record.
//   HKDF-SHA256 (OpenSSL): per-object subkeys from a master key and a 32-byte salt.
//   Argon2id (libsodium crypto_pwhash): password -> key-wrapping key, memory-hard.
//   keyed BLAKE2b-256 (libsodium crypto_generichash): blob IDs, so a storage provider cannot
//     confirm that a repository holds a known file.
//   randombytes (libsodium): salts, key material, IDs.
//
// All functions are thread-safe. Secrets are held in SecretKey, which zeroes itself.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "util/bytes.h"
#include "util/error.h"

namespace haven::crypto {

constexpr size_t kKeySize = 32;
constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;
constexpr size_t kHashSize = 32;

// A 256-bit secret that wipes itself on destruction.
class SecretKey {
 public:
  SecretKey() { bytes_.fill(0); }
  explicit SecretKey(ByteView b);
  SecretKey(const SecretKey&) = default;
  SecretKey& operator=(const SecretKey&) = default;
  ~SecretKey();
  const uint8_t* data() const { return bytes_.data(); }
  uint8_t* data() { return bytes_.data(); }
  ByteView view() const { return ByteView(bytes_.data(), bytes_.size()); }
  static SecretKey random();

 private:
  std::array<uint8_t, kKeySize> bytes_;
};

using Hash = std::array<uint8_t, kHashSize>;

// Must be called once before any other function (initialises libsodium).
void init();

void random_bytes(uint8_t* out, size_t n);
template <size_t N>
std::array<uint8_t, N> random_array() {
  std::array<uint8_t, N> a;
  random_bytes(a.data(), N);
  return a;
}

// Keyed BLAKE2b-256 of data.
Hash keyed_hash(const SecretKey& key, ByteView data);

// HMAC-SHA256 (RFC 2104): the alternative blob-ID function, fast on CPUs with SHA extensions.
Hash hmac_sha256(const SecretKey& key, ByteView data);
// hmac_sha256() of each message into out[i] (out as long as msgs), two side by side at a time:
// on CPUs with the SHA extensions the two streams' rounds interleave (~1.8x the rate of one
// after the other: a Zen 4 core 1.8 -> 3.3 GB/s), and a message that ends frees its side for
// the next, so unequal lengths still pair (only the last message's tail runs alone);
// elsewhere one hmac_sha256() each. The same results either way.
void hmac_sha256_many(const SecretKey& key, std::span<const ByteView> msgs, std::span<Hash> out);
// Whether this CPU has the x86 SHA extensions (SHA-256 then runs ~2.5x faster than BLAKE2b).
bool cpu_has_sha_extensions();

// Plain SHA-256 (used for checksums of plaintext key files, never for secrets).
Hash sha256(ByteView data);

// HKDF-SHA256 (RFC 5869) extract-and-expand to a 32-byte key.
SecretKey hkdf(const SecretKey& ikm, ByteView salt, ByteView info);

// AES-256-GCM. seal() appends ciphertext||tag (plaintext.size() + 16 bytes) to `out`.
void seal(const SecretKey& key, const std::array<uint8_t, kNonceSize>& nonce, ByteView aad,
          ByteView plaintext, Bytes& out);
// The same in place: encrypts data[0, n) over itself and writes the tag to data[n, n + 16).
void seal_in_place(const SecretKey& key, const std::array<uint8_t, kNonceSize>& nonce, ByteView aad,
                   uint8_t* data, size_t n);
// open() returns false (and leaves `out` unspecified) if authentication fails.
bool open(const SecretKey& key, const std::array<uint8_t, kNonceSize>& nonce, ByteView aad,
          ByteView sealed, Bytes& out);
// The same in place: data[0, n) holds ciphertext||tag; on success data[0, n - 16) holds the
// plaintext. On failure it returns false and data[0, n - 16) is zeroed.
bool open_in_place(const SecretKey& key, const std::array<uint8_t, kNonceSize>& nonce, ByteView aad,
                   uint8_t* data, size_t n);
// The same into `out` (room for sealed.size() - 16 bytes, not overlapping `sealed`), which is
// left as it was. On failure it returns false and out's bytes are zeroed.
bool open_into(const SecretKey& key, const std::array<uint8_t, kNonceSize>& nonce, ByteView aad,
               ByteView sealed, uint8_t* out);

// Argon2id parameters as stored in a key file.
struct KdfParams {
  uint64_t iterations = 2;           // libsodium opslimit (crypto_pwhash_OPSLIMIT_INTERACTIVE)
  uint64_t memory = 64ull << 20;     // bytes (crypto_pwhash_MEMLIMIT_INTERACTIVE)
};
// The smallest parameters accepted (libsodium's minimums), used to refuse weakened key files.
bool kdf_params_valid(const KdfParams& p, std::string* why);
Result<SecretKey> derive_from_password(const std::string& password, ByteView salt16,
                                       const KdfParams& params);
// Argon2id derivations this process has run (a server keeps the repositories it opened, so it
// derives once per location, not once per run; tests check that).
uint64_t kdf_runs();

// Locks the memory page(s) holding `key` against swapping (mlock; pages are counted, so keys
// sharing a page stay locked until the last is unlocked). False if the system refused
// (RLIMIT_MEMLOCK): the key still works, it may be swapped out.
bool lock_in_memory(const SecretKey& key);
void unlock_in_memory(const SecretKey& key);

}  // namespace haven::crypto

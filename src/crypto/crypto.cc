#include "crypto/crypto.h"

#include <cpuid.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/core_names.h>
#include <sodium.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>

#include <cstdlib>
#include <memory>

namespace haven::crypto {

SecretKey::SecretKey(ByteView b) {
  if (b.size() != kKeySize) std::abort();
  std::copy(b.begin(), b.end(), bytes_.begin());
}

SecretKey::~SecretKey() { secure_zero(bytes_.data(), bytes_.size()); }

SecretKey SecretKey::random() {
  SecretKey k;
  random_bytes(k.data(), kKeySize);
  return k;
}

void init() {
  if (sodium_init() < 0) std::abort();
}

void random_bytes(uint8_t* out, size_t n) { randombytes_buf(out, n); }

Hash keyed_hash(const SecretKey& key, ByteView data) {
  Hash h;
  crypto_generichash(h.data(), h.size(), data.data(), data.size(), key.data(), kKeySize);
  return h;
}

Hash hmac_sha256(const SecretKey& key, ByteView data) {
  Hash h;
  unsigned int len = 0;
  static const uint8_t kEmpty = 0;
  if (HMAC(EVP_sha256(), key.data(), kKeySize, data.empty() ? &kEmpty : data.data(), data.size(),
           h.data(), &len) == nullptr) {
    std::abort();
  }
  return h;
}

bool cpu_has_sha_extensions() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
  return (b >> 29) & 1;  // CPUID.(EAX=7,ECX=0):EBX.SHA[bit 29]
}

Hash sha256(ByteView data) {
  Hash h;
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), h.data(), &len, EVP_sha256(), nullptr);
  return h;
}

SecretKey hkdf(const SecretKey& ikm, ByteView salt, ByteView info) {
  // EVP_KDF objects are cheap to fetch once; the context is per call (thread-safe).
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) std::abort();
  std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(kdf),
                                                                 EVP_KDF_CTX_free);
  // RFC 5869: an absent salt is HashLen zero bytes (OpenSSL rejects a null pointer).
  static const uint8_t kZeroSalt[32] = {0};
  if (salt.empty()) salt = ByteView(kZeroSalt, sizeof kZeroSalt);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()),
                                        kKeySize),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()),
                                        salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end(),
  };
  SecretKey out;
  if (EVP_KDF_derive(ctx.get(), out.data(), kKeySize, params) != 1) std::abort();
  return out;
}

namespace {
// One cipher context per thread, reused across calls: EVP_CIPHER_CTX_new is not free and
// seal/open run once per blob.
struct CtxHolder {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~CtxHolder() { EVP_CIPHER_CTX_free(ctx); }
};
EVP_CIPHER_CTX* thread_ctx() {
  thread_local CtxHolder holder;
  return holder.ctx;
}
}  // namespace

namespace {
// This thread's context, set up to encrypt under (key, nonce) with `aad` authenticated.
EVP_CIPHER_CTX* begin_seal(const SecretKey& key, const std::array<uint8_t, kNonceSize>& nonce,
                           ByteView aad) {
  EVP_CIPHER_CTX* ctx = thread_ctx();
  int len = 0;
  if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), nonce.data()) != 1)
    std::abort();
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1)
    std::abort();
  return ctx;
}
}  // namespace

void seal(const SecretKey& key, const std::array<uint8_t, kNonceSize>& nonce, ByteView aad,
          ByteView plaintext, Bytes& out) {
  EVP_CIPHER_CTX* ctx = begin_seal(key, nonce, aad);
  int len = 0;
  size_t base = out.size();
  out.resize(base + plaintext.size() + kTagSize);
  if (!plaintext.empty() &&
      EVP_EncryptUpdate(ctx, out.data() + base, &len, plaintext.data(),
                        static_cast<int>(plaintext.size())) != 1)
    std::abort();
  if (EVP_EncryptFinal_ex(ctx, out.data() + base + plaintext.size(), &len) != 1) std::abort();
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagSize,
                          out.data() + base + plaintext.size()) != 1)
    std::abort();
}

void seal_in_place(const SecretKey& key, const std::array<uint8_t, kNonceSize>& nonce, ByteView aad,
                   uint8_t* data, size_t n) {
  EVP_CIPHER_CTX* ctx = begin_seal(key, nonce, aad);
  int len = 0;
  if (n > 0 && EVP_EncryptUpdate(ctx, data, &len, data, static_cast<int>(n)) != 1) std::abort();
  if (EVP_EncryptFinal_ex(ctx, data + n, &len) != 1) std::abort();
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagSize, data + n) != 1) std::abort();
}

namespace {
// Decrypts ct_len bytes from `in` to `out` (which may be `in`) and checks the tag.
bool open_to(const SecretKey& key, const std::array<uint8_t, kNonceSize>& nonce, ByteView aad,
             const uint8_t* in, size_t ct_len, const uint8_t* tag, uint8_t* out) {
  EVP_CIPHER_CTX* ctx = thread_ctx();
  int len = 0;
  if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), nonce.data()) != 1)
    return false;
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1)
    return false;
  if (ct_len > 0 && EVP_DecryptUpdate(ctx, out, &len, in, static_cast<int>(ct_len)) != 1)
    return false;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagSize, const_cast<uint8_t*>(tag)) != 1)
    return false;
  return EVP_DecryptFinal_ex(ctx, out + ct_len, &len) == 1;
}
}  // namespace

bool open(const SecretKey& key, const std::array<uint8_t, kNonceSize>& nonce, ByteView aad,
          ByteView sealed, Bytes& out) {
  if (sealed.size() < kTagSize) return false;
  size_t ct_len = sealed.size() - kTagSize;
  out.resize(ct_len);
  if (!open_to(key, nonce, aad, sealed.data(), ct_len, sealed.data() + ct_len, out.data())) {
    secure_zero(out.data(), out.size());
    out.clear();
    return false;
  }
  return true;
}

bool open_in_place(const SecretKey& key, const std::array<uint8_t, kNonceSize>& nonce, ByteView aad,
                   uint8_t* data, size_t n) {
  if (n < kTagSize) return false;
  size_t ct_len = n - kTagSize;
  // Decryption writes data[0, ct_len) only: the tag after it stays intact.
  if (!open_to(key, nonce, aad, data, ct_len, data + ct_len, data)) {
    secure_zero(data, ct_len);
    return false;
  }
  return true;
}

bool open_into(const SecretKey& key, const std::array<uint8_t, kNonceSize>& nonce, ByteView aad,
               ByteView sealed, uint8_t* out) {
  if (sealed.size() < kTagSize) return false;
  size_t ct_len = sealed.size() - kTagSize;
  if (!open_to(key, nonce, aad, sealed.data(), ct_len, sealed.data() + ct_len, out)) {
    secure_zero(out, ct_len);
    return false;
  }
  return true;
}

bool kdf_params_valid(const KdfParams& p, std::string* why) {
  if (p.iterations < crypto_pwhash_OPSLIMIT_MIN || p.iterations > 64) {
    if (why) *why = "Argon2id iterations must be between 1 and 64";
    return false;
  }
  if (p.memory < (1u << 20) || p.memory > (4ull << 30)) {
    if (why) *why = "Argon2id memory must be between 1 MiB and 4 GiB";
    return false;
  }
  return true;
}

namespace {
std::atomic<uint64_t> g_kdf_runs{0};
std::mutex g_pages_mu;
struct LockedPage {
  size_t keys = 0;      // keys on this page
  bool locked = false;  // whether mlock took
};
std::map<uintptr_t, LockedPage> g_locked_pages;

template <typename Fn>
void for_each_page(const SecretKey& key, Fn&& fn) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t at = reinterpret_cast<uintptr_t>(key.data());
  for (uintptr_t p = at & ~(page - 1); p <= ((at + kKeySize - 1) & ~(page - 1)); p += page) fn(p, page);
}
}  // namespace

uint64_t kdf_runs() { return g_kdf_runs.load(); }

bool lock_in_memory(const SecretKey& key) {
  bool ok = true;
  std::lock_guard<std::mutex> g(g_pages_mu);
  for_each_page(key, [&](uintptr_t p, uintptr_t len) {
    LockedPage& page = g_locked_pages[p];
    if (page.keys++ == 0) page.locked = mlock(reinterpret_cast<void*>(p), len) == 0;
    ok = ok && page.locked;
  });
  return ok;
}

void unlock_in_memory(const SecretKey& key) {
  std::lock_guard<std::mutex> g(g_pages_mu);
  for_each_page(key, [&](uintptr_t p, uintptr_t len) {
    auto it = g_locked_pages.find(p);
    if (it == g_locked_pages.end()) return;
    if (--it->second.keys == 0) {
      if (it->second.locked) munlock(reinterpret_cast<void*>(p), len);
      g_locked_pages.erase(it);
    }
  });
}

Result<SecretKey> derive_from_password(const std::string& password, ByteView salt16,
                                       const KdfParams& params) {
  std::string why;
  if (!kdf_params_valid(params, &why)) return Error(Error::Code::kCorrupt, why);
  if (salt16.size() != crypto_pwhash_SALTBYTES)
    return Error(Error::Code::kCorrupt, "key derivation salt must be 16 bytes");
  SecretKey out;
  if (crypto_pwhash(out.data(), kKeySize, password.data(), password.size(), salt16.data(),
                    params.iterations, params.memory, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Error(Error::Code::kInternal,
                 "Argon2id key derivation ran out of memory (needs " +
                     std::to_string(params.memory >> 20) + " MiB)");
  }
  g_kdf_runs++;
  return out;
}

}  // namespace haven::crypto

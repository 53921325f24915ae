// Tests for crypto/crypto.h (AES-256-GCM, HKDF-SHA256, keyed BLAKE2b, Argon2id) and the
// constant-time comparison in util/bytes.h.
//
// Known answers were computed once, outside this code base, and pasted here:
//   HKDF:   `openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:<ikm>
//            -kdfopt hexsalt:<salt> -kdfopt hexinfo:<info> HKDF` (OpenSSL 3.0.19 CLI), and
//           cross-checked with Python `cryptography` 48 (HKDF(SHA256(), 32, salt, info)). The
//           same CLI reproduces RFC 5869 test case 1 (OKM 3cb25f25...5865), which validates it.
//   BLAKE2b: Python hashlib.blake2b(data, key=key, digest_size=32) (reference implementation).
//   AES-GCM: Python `cryptography` AESGCM(key).encrypt(nonce, plaintext, aad).
#include <algorithm>
#include "crypto/crypto.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>
#include <vector>

#include "util/bytes.h"
#include "util/error.h"

namespace haven::crypto {
namespace {

class CryptoEnv : public ::testing::Environment {
 public:
  void SetUp() override { init(); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new CryptoEnv);

Bytes hex_bytes(const std::string& h) {
  auto b = from_hex(h);
  if (!b) std::abort();
  return *b;
}

// 00 01 02 ... 1f
SecretKey counting_key() {
  Bytes b(kKeySize);
  for (size_t i = 0; i < b.size(); i++) b[i] = static_cast<uint8_t>(i);
  return SecretKey(b);
}

std::array<uint8_t, kNonceSize> nonce_of(uint8_t last) {
  std::array<uint8_t, kNonceSize> n{};
  n[kNonceSize - 1] = last;
  return n;
}

std::string hex_of(const Hash& h) { return to_hex(ByteView(h.data(), h.size())); }

// ---------------------------------------------------------------------------------------------
// AES-256-GCM

TEST(Aead, KnownAnswer) {
  // Python: AESGCM(bytes(range(32))).encrypt(bytes.fromhex("000000000000000000000001"),
  //         b"The quick brown fox jumps over the lazy dog", b"header aad").hex()
  const std::string pt = "The quick brown fox jumps over the lazy dog";
  Bytes out;
  seal(counting_key(), nonce_of(1), as_bytes("header aad"), as_bytes(pt), out);
  EXPECT_EQ(to_hex(out),
            "41bedadc3581597d650e334b83d154d773f064740ec739f400206caf4342532a52f3479d4956fd1c3d"
            "b0a407eb58aff82c299389780ec54aa472aa");
  // Empty plaintext and empty AAD: the output is just the tag.
  Bytes tag_only;
  seal(counting_key(), nonce_of(1), {}, {}, tag_only);
  EXPECT_EQ(to_hex(tag_only), "367ef8288831557408e102950a16e26a");
  Bytes back;
  ASSERT_TRUE(open(counting_key(), nonce_of(1), {}, tag_only, back));
  EXPECT_TRUE(back.empty());
}

TEST(Aead, SealAppendsToExistingOutput) {
  Bytes out = {0xaa, 0xbb, 0xcc};
  const std::string pt = "payload";
  seal(counting_key(), nonce_of(7), {}, as_bytes(pt), out);
  ASSERT_EQ(out.size(), 3 + pt.size() + kTagSize);
  EXPECT_EQ(out[0], 0xaa);
  EXPECT_EQ(out[1], 0xbb);
  EXPECT_EQ(out[2], 0xcc);
  Bytes back;
  ASSERT_TRUE(open(counting_key(), nonce_of(7), {}, ByteView(out).subspan(3), back));
  EXPECT_EQ(to_string(back), pt);
}

TEST(Aead, RoundTripAndEveryTamperingIsDetected) {
  SecretKey key = SecretKey::random();
  auto nonce = random_array<kNonceSize>();
  Bytes aad = {'h', 'e', 'a', 'd', 'e', 'r', 0, 1, 2, 3};
  Bytes pt(100);
  random_bytes(pt.data(), pt.size());

  Bytes sealed;
  seal(key, nonce, aad, pt, sealed);
  ASSERT_EQ(sealed.size(), pt.size() + kTagSize);
  // Ciphertext is not the plaintext.
  EXPECT_NE(Bytes(sealed.begin(), sealed.begin() + pt.size()), pt);

  Bytes back;
  ASSERT_TRUE(open(key, nonce, aad, sealed, back));
  EXPECT_EQ(back, pt);

  // Every byte of ciphertext and tag (the tag is the last 16 bytes).
  for (size_t i = 0; i < sealed.size(); i++) {
    Bytes bad = sealed;
    bad[i] ^= 0x01;
    Bytes out;
    EXPECT_FALSE(open(key, nonce, aad, bad, out)) << "flipped byte " << i;
  }
  // Every byte of the AAD.
  for (size_t i = 0; i < aad.size(); i++) {
    Bytes bad = aad;
    bad[i] ^= 0x80;
    Bytes out;
    EXPECT_FALSE(open(key, nonce, bad, sealed, out)) << "flipped aad byte " << i;
  }
  Bytes out;
  // Missing, shortened or extended AAD.
  EXPECT_FALSE(open(key, nonce, {}, sealed, out));
  EXPECT_FALSE(open(key, nonce, ByteView(aad).first(aad.size() - 1), sealed, out));
  Bytes longer = aad;
  longer.push_back(0);
  EXPECT_FALSE(open(key, nonce, longer, sealed, out));
  // Every byte of the nonce.
  for (size_t i = 0; i < kNonceSize; i++) {
    auto bad = nonce;
    bad[i] ^= 0x01;
    EXPECT_FALSE(open(key, bad, aad, sealed, out)) << "flipped nonce byte " << i;
  }
  // Another key, and a key differing in one bit.
  EXPECT_FALSE(open(SecretKey::random(), nonce, aad, sealed, out));
  Bytes kb(key.data(), key.data() + kKeySize);
  kb[31] ^= 0x01;
  EXPECT_FALSE(open(SecretKey(kb), nonce, aad, sealed, out));
  // Truncated: dropping the last byte, dropping the whole tag, shorter than a tag.
  EXPECT_FALSE(open(key, nonce, aad, ByteView(sealed).first(sealed.size() - 1), out));
  EXPECT_FALSE(open(key, nonce, aad, ByteView(sealed).first(pt.size()), out));
  EXPECT_FALSE(open(key, nonce, aad, ByteView(sealed).first(kTagSize - 1), out));
  EXPECT_FALSE(open(key, nonce, aad, ByteView(), out));
  // Extra byte appended.
  Bytes ext = sealed;
  ext.push_back(0);
  EXPECT_FALSE(open(key, nonce, aad, ext, out));

  // After all those failures the thread's cipher context still works.
  ASSERT_TRUE(open(key, nonce, aad, sealed, back));
  EXPECT_EQ(back, pt);
}

TEST(Aead, OpenInPlaceDecryptsOverTheCiphertextAndRefusesEveryTampering) {
  SecretKey key = SecretKey::random();
  auto nonce = random_array<kNonceSize>();
  Bytes aad = {'a', 'a', 'd'};
  Bytes pt(5000);
  random_bytes(pt.data(), pt.size());
  Bytes sealed;
  seal(key, nonce, aad, pt, sealed);

  Bytes buf = sealed;
  ASSERT_TRUE(open_in_place(key, nonce, aad, buf.data(), buf.size()));
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + pt.size()), pt);

  // A flipped byte of ciphertext or tag, another AAD, a short buffer: refused, and no
  // unauthenticated plaintext is left behind.
  for (size_t i : {size_t{0}, pt.size() / 2, pt.size() - 1, pt.size(), sealed.size() - 1}) {
    Bytes bad = sealed;
    bad[i] ^= 0x01;
    EXPECT_FALSE(open_in_place(key, nonce, aad, bad.data(), bad.size())) << "flipped byte " << i;
    EXPECT_TRUE(std::all_of(bad.begin(), bad.begin() + pt.size(), [](uint8_t b) { return b == 0; }))
        << "flipped byte " << i;
  }
  Bytes other = sealed;
  EXPECT_FALSE(open_in_place(key, nonce, Bytes{'x'}, other.data(), other.size()));
  Bytes tiny(kTagSize - 1, 0);
  EXPECT_FALSE(open_in_place(key, nonce, aad, tiny.data(), tiny.size()));
}

TEST(Aead, LargePlaintextRoundTrip) {
  SecretKey key = SecretKey::random();
  Bytes pt(3 << 20);
  random_bytes(pt.data(), pt.size());
  Bytes sealed, back;
  seal(key, nonce_of(9), as_bytes("x"), pt, sealed);
  ASSERT_TRUE(open(key, nonce_of(9), as_bytes("x"), sealed, back));
  EXPECT_EQ(back, pt);
  sealed[sealed.size() / 2] ^= 0x40;
  EXPECT_FALSE(open(key, nonce_of(9), as_bytes("x"), sealed, back));
}

TEST(Aead, DifferentNoncesGiveDifferentCiphertexts) {
  SecretKey key = SecretKey::random();
  const std::string pt = "same plaintext";
  Bytes a, b;
  seal(key, nonce_of(1), {}, as_bytes(pt), a);
  seal(key, nonce_of(2), {}, as_bytes(pt), b);
  EXPECT_NE(a, b);
}

// ---------------------------------------------------------------------------------------------
// HKDF-SHA256

TEST(Hkdf, KnownAnswer) {
  // openssl kdf -keylen 32 -kdfopt digest:SHA256
  //   -kdfopt hexkey:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
  //   -kdfopt hexsalt:000102030405060708090a0b0c -kdfopt hexinfo:f0f1f2f3f4f5f6f7f8f9 HKDF
  // (salt and info are those of RFC 5869 test case 1; the IKM is 32 bytes because our hkdf()
  // takes a SecretKey.)
  SecretKey out = hkdf(counting_key(), hex_bytes("000102030405060708090a0b0c"),
                       hex_bytes("f0f1f2f3f4f5f6f7f8f9"));
  EXPECT_EQ(to_hex(out.view()), "194109eabd17e0cb6c156d2bcbb8e54f9aa71ab5cdcf4a730b827c03ee4090f4");
}

TEST(Hkdf, EmptySaltAndInfoKnownAnswer) {
  // Same command with -kdfopt hexsalt: -kdfopt hexinfo: (RFC 5869: empty salt = HashLen zeros).
  // Empty views over a real buffer: see the  test below for a null data() pointer.
  uint8_t dummy = 0;
  SecretKey out = hkdf(counting_key(), ByteView(&dummy, 0), ByteView(&dummy, 0));
  EXPECT_EQ(to_hex(out.view()), "37ad29109f43265287804b674e2653d0a513718907f97fca97c95bded8104bbf");
}

// KNOWN BUG (src/crypto/crypto.cc, hkdf()): an empty salt whose data() is nullptr (e.g. a
// default-constructed ByteView or an empty Bytes) makes EVP_KDF_derive fail and hkdf() calls
// std::abort(). Haven's format always passes a 32-byte salt, so this is latent. Enable this
// test once hkdf() maps an empty salt to a non-null pointer (or omits the SALT parameter).
TEST(Hkdf, EmptySaltWithNullPointerDoesNotAbort) {
  SecretKey out = hkdf(counting_key(), ByteView(), ByteView());
  EXPECT_EQ(to_hex(out.view()), "37ad29109f43265287804b674e2653d0a513718907f97fca97c95bded8104bbf");
}

TEST(Hkdf, EveryInputMatters) {
  SecretKey ikm = SecretKey::random();
  Bytes salt = {1, 2, 3, 4};
  Bytes info = {'i', 'n', 'f', 'o'};
  SecretKey base = hkdf(ikm, salt, info);
  EXPECT_EQ(to_hex(hkdf(ikm, salt, info).view()), to_hex(base.view()));  // deterministic
  Bytes salt2 = salt;
  salt2[0] ^= 1;
  Bytes info2 = info;
  info2[3] ^= 1;
  EXPECT_NE(to_hex(hkdf(ikm, salt2, info).view()), to_hex(base.view()));
  EXPECT_NE(to_hex(hkdf(ikm, salt, info2).view()), to_hex(base.view()));
  EXPECT_NE(to_hex(hkdf(SecretKey::random(), salt, info).view()), to_hex(base.view()));
}

// ---------------------------------------------------------------------------------------------
// keyed BLAKE2b-256

TEST(KeyedHash, KnownAnswer) {
  // hashlib.blake2b(b"haven test data", key=bytes(range(32)), digest_size=32).hexdigest()
  EXPECT_EQ(hex_of(keyed_hash(counting_key(), as_bytes("haven test data"))),
            "3ab07a04fc37ba7fccec4403264dca74517ce328917b3016259abc0526e97a38");
  // hashlib.blake2b(b"", key=bytes(range(32)), digest_size=32).hexdigest()
  EXPECT_EQ(hex_of(keyed_hash(counting_key(), ByteView())),
            "4e51e7a913fc80137da52880fecca175bf81e117d5c68126dc2774033517ea0d");
}

TEST(KeyedHash, MatchesLibsodiumAndDependsOnKeyAndData) {
  SecretKey k1 = SecretKey::random();
  SecretKey k2 = SecretKey::random();
  Bytes data(5000);
  random_bytes(data.data(), data.size());

  Hash a = keyed_hash(k1, data);
  EXPECT_EQ(a, keyed_hash(k1, data));  // same key + data -> same hash
  EXPECT_NE(a, keyed_hash(k2, data));  // other key -> other hash
  Bytes data2 = data;
  data2[4999] ^= 1;
  EXPECT_NE(a, keyed_hash(k1, data2));

  Hash direct;
  ASSERT_EQ(crypto_generichash(direct.data(), direct.size(), data.data(), data.size(), k1.data(),
                               kKeySize),
            0);
  EXPECT_EQ(a, direct);
  // And it is keyed: unkeyed BLAKE2b of the same data differs.
  Hash unkeyed;
  ASSERT_EQ(crypto_generichash(unkeyed.data(), unkeyed.size(), data.data(), data.size(), nullptr, 0),
            0);
  EXPECT_NE(a, unkeyed);
}

TEST(Sha256, KnownAnswer) {
  // FIPS 180-2 example "abc".
  EXPECT_EQ(hex_of(sha256(as_bytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// ---------------------------------------------------------------------------------------------
// Argon2id

TEST(Password, DeterministicAndSaltAndPasswordMatter) {
  KdfParams p{1, 8u << 20};
  auto salt = random_array<16>();
  auto salt2 = salt;
  salt2[0] ^= 1;
  auto a = derive_from_password("correct horse", ByteView(salt.data(), salt.size()), p);
  auto b = derive_from_password("correct horse", ByteView(salt.data(), salt.size()), p);
  auto c = derive_from_password("correct horse", ByteView(salt2.data(), salt2.size()), p);
  auto d = derive_from_password("correct horsf", ByteView(salt.data(), salt.size()), p);
  auto e = derive_from_password("correct horse", ByteView(salt.data(), salt.size()),
                                KdfParams{2, 8u << 20});
  auto f = derive_from_password("correct horse", ByteView(salt.data(), salt.size()),
                                KdfParams{1, 9u << 20});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok() && e.ok() && f.ok());
  EXPECT_EQ(to_hex(a->view()), to_hex(b->view()));
  EXPECT_NE(to_hex(a->view()), to_hex(c->view()));
  EXPECT_NE(to_hex(a->view()), to_hex(d->view()));
  EXPECT_NE(to_hex(a->view()), to_hex(e->view()));
  EXPECT_NE(to_hex(a->view()), to_hex(f->view()));
  EXPECT_NE(to_hex(a->view()), std::string(64, '0'));
}

TEST(Password, MatchesLibsodiumArgon2id) {
  KdfParams p{2, 4u << 20};
  auto salt = random_array<16>();
  auto a = derive_from_password("pw", ByteView(salt.data(), salt.size()), p);
  ASSERT_TRUE(a.ok());
  uint8_t direct[kKeySize];
  ASSERT_EQ(crypto_pwhash(direct, sizeof direct, "pw", 2, salt.data(), p.iterations, p.memory,
                          crypto_pwhash_ALG_ARGON2ID13),
            0);
  EXPECT_EQ(to_hex(a->view()), to_hex(ByteView(direct, sizeof direct)));
}

TEST(Password, ParamValidation) {
  std::string why;
  EXPECT_TRUE(kdf_params_valid(KdfParams{1, 1u << 20}, &why));
  EXPECT_TRUE(kdf_params_valid(KdfParams{}, nullptr));  // the defaults are valid
  EXPECT_TRUE(kdf_params_valid(KdfParams{64, 4ull << 30}, nullptr));

  why.clear();
  EXPECT_FALSE(kdf_params_valid(KdfParams{1, (1u << 20) - 1}, &why));
  EXPECT_NE(why.find("memory"), std::string::npos) << why;
  why.clear();
  EXPECT_FALSE(kdf_params_valid(KdfParams{0, 8u << 20}, &why));
  EXPECT_NE(why.find("iterations"), std::string::npos) << why;
  EXPECT_FALSE(kdf_params_valid(KdfParams{65, 8u << 20}, nullptr));
  EXPECT_FALSE(kdf_params_valid(KdfParams{1, (4ull << 30) + 1}, nullptr));

  auto salt = random_array<16>();
  auto r = derive_from_password("pw", ByteView(salt.data(), salt.size()), KdfParams{0, 8u << 20});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kCorrupt);
  r = derive_from_password("pw", ByteView(salt.data(), salt.size()), KdfParams{1, 1024});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kCorrupt);
  // Salt must be exactly 16 bytes.
  r = derive_from_password("pw", ByteView(salt.data(), 15), KdfParams{1, 1u << 20});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kCorrupt);
}

// ---------------------------------------------------------------------------------------------
// SecretKey and randomness

TEST(SecretKeyTest, RandomKeysDifferAndCopy) {
  SecretKey a = SecretKey::random();
  SecretKey b = SecretKey::random();
  EXPECT_NE(to_hex(a.view()), to_hex(b.view()));
  SecretKey c = a;
  EXPECT_EQ(to_hex(c.view()), to_hex(a.view()));
  EXPECT_EQ(to_hex(SecretKey().view()), std::string(64, '0'));
}

// ---------------------------------------------------------------------------------------------
// util/bytes.h

TEST(EqualConstantTime, EqualUnequalAndLengths) {
  Bytes a = {1, 2, 3, 4, 5};
  Bytes b = a;
  EXPECT_TRUE(equal_constant_time(a, b));
  b[4] ^= 1;
  EXPECT_FALSE(equal_constant_time(a, b));
  b = a;
  b[0] ^= 0x80;
  EXPECT_FALSE(equal_constant_time(a, b));
  EXPECT_FALSE(equal_constant_time(a, ByteView(a).first(4)));  // prefix, shorter
  Bytes longer = a;
  longer.push_back(0);
  EXPECT_FALSE(equal_constant_time(a, longer));
  EXPECT_TRUE(equal_constant_time(ByteView(), ByteView()));
  EXPECT_FALSE(equal_constant_time(ByteView(), a));
}

TEST(Hex, RoundTripAndRejects) {
  Bytes all(256);
  for (int i = 0; i < 256; i++) all[i] = static_cast<uint8_t>(i);
  auto back = from_hex(to_hex(all));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, all);
  EXPECT_EQ(to_hex(Bytes{0xab, 0x01}), "ab01");
  EXPECT_EQ(from_hex("AB01"), (Bytes{0xab, 0x01}));
  EXPECT_FALSE(from_hex("abc").has_value());
  EXPECT_FALSE(from_hex("zz").has_value());
}

}  // namespace
}  // namespace haven::crypto

// Known answer from: printf 'haven blob' | openssl dgst -sha256 -mac HMAC -macopt hexkey:0001..1f
TEST(HmacSha256, KnownAnswer) {
  haven::crypto::init();
  uint8_t k[32];
  for (int i = 0; i < 32; i++) k[i] = static_cast<uint8_t>(i);
  haven::crypto::SecretKey key(haven::ByteView(k, 32));
  auto h = haven::crypto::hmac_sha256(key, haven::as_bytes("haven blob"));
  EXPECT_EQ(haven::to_hex(haven::ByteView(h.data(), h.size())),
            "5cf35f5139c8c1d41b6b2cd0fa0a1e0818ff4758142ed8867d43d875f6f333f6");
  // Keyed: another key gives another ID; empty input is fine.
  k[0] ^= 1;
  haven::crypto::SecretKey other(haven::ByteView(k, 32));
  EXPECT_NE(haven::crypto::hmac_sha256(other, haven::as_bytes("haven blob")), h);
  EXPECT_NE(haven::crypto::hmac_sha256(key, {}), h);
}

// Two messages hashed side by side give what hmac_sha256 gives each: every pair of lengths
// 0-140 (one or two padding blocks, the shorter one ending first, either one), and large
// uneven pairs whose last blocks are hashed alone. The known answer above holds for the pair
// too. (On a CPU without the SHA extensions this compares the fallback with itself.)
TEST(HmacSha256, PairGivesEachMessagesOwnHmac) {
  haven::crypto::init();
  auto hmac_sha256_pair = [](const haven::crypto::SecretKey& key, haven::ByteView a, haven::ByteView b) {
    const haven::ByteView msgs[2] = {a, b};
    haven::crypto::Hash out[2];
    haven::crypto::hmac_sha256_many(key, msgs, out);
    return std::pair{out[0], out[1]};
  };
  uint8_t k[32];
  for (int i = 0; i < 32; i++) k[i] = static_cast<uint8_t>(i);
  haven::crypto::SecretKey key(haven::ByteView(k, 32));
  auto [known, empty] = hmac_sha256_pair(key, haven::as_bytes("haven blob"), {});
  EXPECT_EQ(haven::to_hex(haven::ByteView(known.data(), known.size())),
            "5cf35f5139c8c1d41b6b2cd0fa0a1e0818ff4758142ed8867d43d875f6f333f6");
  EXPECT_EQ(empty, haven::crypto::hmac_sha256(key, {}));

  haven::Bytes data(3u << 20);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (auto& b : data) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  size_t mismatches = 0;
  for (size_t la = 0; la <= 140; la++) {
    for (size_t lb = 0; lb <= 140; lb++) {
      haven::ByteView a(data.data() + la, la), b(data.data() + 1000 + lb, lb);
      auto [ha, hb] = hmac_sha256_pair(key, a, b);
      if (ha != haven::crypto::hmac_sha256(key, a) || hb != haven::crypto::hmac_sha256(key, b)) mismatches++;
    }
  }
  EXPECT_EQ(mismatches, 0u);
  for (auto [la, lb] : {std::pair<size_t, size_t>{1u << 20, (1u << 20) + 37}, {(2u << 20) + 63, 5000},
                        {64, (1u << 20) + 64}, {1500000, 1500000}}) {
    haven::ByteView a(data.data() + 3, la), b(data.data() + data.size() - lb, lb);
    auto [ha, hb] = hmac_sha256_pair(key, a, b);
    EXPECT_EQ(ha, haven::crypto::hmac_sha256(key, a)) << la << " " << lb;
    EXPECT_EQ(hb, haven::crypto::hmac_sha256(key, b)) << la << " " << lb;
    // Keyed: another key gives other IDs.
    k[0] ^= 1;
    haven::crypto::SecretKey other(haven::ByteView(k, 32));
    k[0] ^= 1;
    EXPECT_NE(hmac_sha256_pair(other, a, b).first, ha);
  }
}

// Many messages through the two lanes give what hmac_sha256 gives each, whatever the order of
// lengths: a lane that finishes takes the next message while the other is mid-way through
// its own (long after short, short after long, empty ones, one or two padding blocks), and
// the last message's tail runs alone. Zero, one and two messages too.
TEST(HmacSha256, ManyMessagesEachGetTheirOwnHmacWhateverTheirLengths) {
  haven::crypto::init();
  uint8_t k[32];
  for (int i = 0; i < 32; i++) k[i] = static_cast<uint8_t>(7 * i + 1);
  haven::crypto::SecretKey key(haven::ByteView(k, 32));
  haven::Bytes data(4u << 20);
  uint64_t x = 0x2545f4914f6cdd1dull;
  for (auto& b : data) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  const std::vector<size_t> lengths = {(1u << 20) + 5, 100, 0, 3000, 55, 56, 64, (1u << 20) - 1,
                                       (2u << 20) + 4097, 119, 120, 1, 4096, 70000, 0, 333333};
  for (size_t count : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, lengths.size()}) {
    std::vector<haven::ByteView> msgs;
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
      const size_t n = lengths[i];
      at = (at + 4099) % (data.size() - n);  // each its own bytes
      msgs.emplace_back(data.data() + at, n);
    }
    std::vector<haven::crypto::Hash> out(count);
    haven::crypto::hmac_sha256_many(key, msgs, out);
    for (size_t i = 0; i < count; i++) {
      EXPECT_EQ(out[i], haven::crypto::hmac_sha256(key, msgs[i])) << "message " << i << " of " << count;
    }
  }
}

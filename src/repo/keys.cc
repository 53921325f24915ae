#include "repo/keys.h"

#include <unistd.h>

#include <functional>

#include "repo/cbor.h"
#include "util/clock.h"
#include "util/sysinfo.h"

namespace haven::repo {

using nlohmann::json;

namespace {
constexpr int kKeyFileVersion = 1;
constexpr char kWrapAad[] = "haven key v1";
constexpr char kAccessKeyInfo[] = "haven access key v1";
constexpr size_t kAccessKeyHex = 2 * crypto::kKeySize;

// The checksum covers every field but itself: it tells a damaged key file apart from a wrong
// password (GCM alone cannot), so `check` can name it.
std::string checksum_of(json j) {
  j.erase("checksum");
  std::string canon = j.dump();
  auto h = crypto::sha256(as_bytes(canon));
  return to_hex(ByteView(h.data(), h.size()));
}
}  // namespace

MasterKey MasterKey::generate() {
  MasterKey m;
  m.encryption.emplace(0, crypto::SecretKey::random());
  m.current_generation = 0;
  m.id_key = crypto::SecretKey::random();
  m.chunker_key = crypto::SecretKey::random();
  return m;
}

const crypto::SecretKey* MasterKey::encryption_key(uint32_t generation) const {
  auto it = encryption.find(generation);
  return it == encryption.end() ? nullptr : &it->second;
}

chunker::GearTable MasterKey::gear_table() const {
  // gear[i] = first 8 bytes of keyed BLAKE2b(chunker_key, "gear" | i).
  chunker::GearTable g;
  for (int i = 0; i < 256; i++) {
    uint8_t msg[5] = {'g', 'e', 'a', 'r', static_cast<uint8_t>(i)};
    auto h = crypto::keyed_hash(chunker_key, ByteView(msg, sizeof msg));
    uint64_t v = 0;
    for (int b = 0; b < 8; b++) v |= static_cast<uint64_t>(h[b]) << (8 * b);
    g[i] = v;
  }
  return g;
}

static json::binary_t bin(ByteView b) { return json::binary_t(std::vector<uint8_t>(b.begin(), b.end())); }

std::string generate_access_key() {
  crypto::SecretKey k = crypto::SecretKey::random();
  return kAccessKeyPrefix + to_hex(k.view());
}

bool is_access_key(const std::string& text) {
  const size_t n = sizeof kAccessKeyPrefix - 1;
  if (text.size() != n + kAccessKeyHex || text.compare(0, n, kAccessKeyPrefix) != 0) return false;
  for (size_t i = n; i < text.size(); i++) {
    char c = text[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

namespace {

// The access key's 32 bytes, through HKDF with the key file's salt.
crypto::SecretKey access_wrapping_key(const std::string& access_key, ByteView salt) {
  auto raw = from_hex(access_key.substr(sizeof kAccessKeyPrefix - 1));
  crypto::SecretKey ikm(*raw);
  secure_zero(raw->data(), raw->size());
  return crypto::hkdf(ikm, salt, as_bytes(kAccessKeyInfo));
}

// kdf: the key file's "kdf" member without its salt; wrap: the wrapping key from the salt.
Bytes build_key_file(const MasterKey& master, json kdf,
                     const std::function<crypto::SecretKey(ByteView salt)>& wrap) {
  json secret;
  json gens = json::array();
  for (const auto& [gen, key] : master.encryption) {
    gens.push_back({{"generation", gen}, {"key", bin(key.view())}});
  }
  secret["encryption"] = gens;
  secret["current_generation"] = master.current_generation;
  secret["id_key"] = bin(master.id_key.view());
  secret["chunker_key"] = bin(master.chunker_key.view());
  Bytes plain = json::to_cbor(secret);
  // Wipe the key bytes held by the json tree before it is freed.
  for (auto& g : secret["encryption"]) secure_zero(g["key"].get_binary().data(), crypto::kKeySize);
  secure_zero(secret["id_key"].get_binary().data(), crypto::kKeySize);
  secure_zero(secret["chunker_key"].get_binary().data(), crypto::kKeySize);

  auto salt = crypto::random_array<16>();
  auto nonce = crypto::random_array<crypto::kNonceSize>();
  // The wrapping key is used for exactly one encryption (its salt is fresh), so a random
  // nonce cannot collide with another under the same key.
  crypto::SecretKey wrapping = wrap(ByteView(salt.data(), salt.size()));
  Bytes sealed;
  crypto::seal(wrapping, nonce, as_bytes(kWrapAad), plain, sealed);
  secure_zero(plain.data(), plain.size());

  json f;
  f["version"] = kKeyFileVersion;
  f["created"] = format_time(now());
  f["hostname"] = hostname();
  f["username"] = username();
  kdf["salt"] = to_hex(ByteView(salt.data(), salt.size()));
  f["kdf"] = std::move(kdf);
  f["cipher"] = "aes-256-gcm";
  f["nonce"] = to_hex(ByteView(nonce.data(), nonce.size()));
  f["data"] = to_hex(sealed);
  f["checksum"] = checksum_of(f);
  std::string text = f.dump(2) + "\n";
  return Bytes(text.begin(), text.end());
}

}  // namespace

Bytes make_key_file(const MasterKey& master, const std::string& password,
                    const crypto::KdfParams& kdf) {
  return build_key_file(
      master, {{"algorithm", "argon2id"}, {"iterations", kdf.iterations}, {"memory", kdf.memory}},
      [&](ByteView salt) {
        auto wrapping = crypto::derive_from_password(password, salt, kdf);
        if (!wrapping.ok()) std::abort();  // params were validated by the caller
        return std::move(wrapping).value();
      });
}

Bytes make_access_key_file(const MasterKey& master, const std::string& access_key) {
  if (!is_access_key(access_key)) std::abort();  // generate_access_key() made it
  return build_key_file(master, {{"algorithm", "hkdf-sha256"}},
                        [&](ByteView salt) { return access_wrapping_key(access_key, salt); });
}

namespace {
struct Parsed {
  json j;
  KeyFileInfo info;
  Bytes salt, nonce, data;
};

// Each way a key file can be damaged gets its own message naming the file and the damage, so
// that neither `check` nor a failed open has to call it a wrong password. Nothing here runs
// Argon2id: the KDF parameters are bounded (crypto::kdf_params_valid, FORMAT.md §3) before
// anyone derives a key with them, so a key file asking for terabytes or zero passes is refused.
Result<Parsed> parse(ByteView file, const std::string& what) {
  Parsed p;
  auto damaged = [&](const std::string& why) {
    return Error(Error::Code::kCorrupt, what + " is damaged: " + why);
  };
  try {
    p.j = json::parse(file.begin(), file.end());
  } catch (const json::parse_error& e) {
    return damaged("not valid JSON (syntax error at byte " + std::to_string(e.byte) + ")");
  } catch (const json::exception&) {
    return damaged("not valid JSON");
  }
  if (!p.j.is_object()) return damaged("not a JSON object");
  // Field accessors: a missing field or one of the wrong type names the field.
  auto field = [&](const json& obj, const char* name, const char* path,
                   json::value_t type) -> Result<const json*> {
    auto it = obj.find(name);
    bool ok = it != obj.end() &&
              (type == json::value_t::number_unsigned ? it->is_number_unsigned()
                                                      : it->type() == type);
    if (!ok) {
      return damaged(std::string("field \"") + path + "\" is missing or not " +
                     (type == json::value_t::string ? "a string"
                      : type == json::value_t::object ? "an object"
                                                       : "a non-negative integer"));
    }
    return &*it;
  };
  using T = json::value_t;
  HAVEN_ASSIGN(const json* version, field(p.j, "version", "version", T::number_unsigned));
  if (version->get<uint64_t>() > kKeyFileVersion) {
    return Error(Error::Code::kUnsupported,
                 what + " has key file version " + std::to_string(version->get<uint64_t>()) +
                     ", newer than this haven supports: upgrade haven");
  }
  HAVEN_ASSIGN(const json* checksum, field(p.j, "checksum", "checksum", T::string));
  if (checksum->get<std::string>() != checksum_of(p.j)) {
    return damaged("its checksum does not match its contents (checksum mismatch: the file was "
                   "modified or truncated)");
  }
  HAVEN_ASSIGN(const json* kdf, field(p.j, "kdf", "kdf", T::object));
  HAVEN_ASSIGN(const json* algorithm, field(*kdf, "algorithm", "kdf.algorithm", T::string));
  HAVEN_ASSIGN(const json* cipher, field(p.j, "cipher", "cipher", T::string));
  const std::string alg = algorithm->get<std::string>();
  if ((alg != "argon2id" && alg != "hkdf-sha256") || cipher->get<std::string>() != "aes-256-gcm") {
    return Error(Error::Code::kUnsupported,
                 what + " uses an unknown algorithm (" + alg + ", " +
                     cipher->get<std::string>() + "): upgrade haven");
  }
  p.info.access_key = alg == "hkdf-sha256";
  if (!p.info.access_key) {
    HAVEN_ASSIGN(const json* iterations, field(*kdf, "iterations", "kdf.iterations", T::number_unsigned));
    HAVEN_ASSIGN(const json* memory, field(*kdf, "memory", "kdf.memory", T::number_unsigned));
    p.info.kdf.iterations = iterations->get<uint64_t>();
    p.info.kdf.memory = memory->get<uint64_t>();
    std::string why;
    if (!crypto::kdf_params_valid(p.info.kdf, &why)) {
      return damaged("its KDF parameters are out of bounds (iterations " +
                     std::to_string(p.info.kdf.iterations) + ", memory " +
                     std::to_string(p.info.kdf.memory) + " bytes; " + why +
                     "), so no password is tried with it");
    }
  }
  HAVEN_ASSIGN(const json* salt_hex, field(*kdf, "salt", "kdf.salt", T::string));
  HAVEN_ASSIGN(const json* nonce_hex, field(p.j, "nonce", "nonce", T::string));
  HAVEN_ASSIGN(const json* data_hex, field(p.j, "data", "data", T::string));
  // Descriptive fields: optional, but never anything other than text.
  auto text = [&](const char* name) {
    auto it = p.j.find(name);
    return it != p.j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  p.info.created = text("created");
  p.info.hostname = text("hostname");
  p.info.username = text("username");
  auto salt = from_hex(salt_hex->get<std::string>());
  if (!salt || salt->size() != 16) return damaged("kdf.salt is not 16 bytes of hex");
  auto nonce = from_hex(nonce_hex->get<std::string>());
  if (!nonce || nonce->size() != crypto::kNonceSize) {
    return damaged("nonce is not " + std::to_string(crypto::kNonceSize) + " bytes of hex");
  }
  auto data = from_hex(data_hex->get<std::string>());
  if (!data || data->size() <= crypto::kTagSize) return damaged("data is not sealed hex");
  p.salt = *salt;
  p.nonce = *nonce;
  p.data = *data;
  return p;
}
}  // namespace

Result<KeyFileInfo> read_key_file_info(ByteView file, const std::string& what) {
  HAVEN_ASSIGN(auto p, parse(file, what));
  return p.info;
}

Result<MasterKey> open_key_file(ByteView file, const std::string& password,
                                const std::string& what) {
  HAVEN_ASSIGN(auto p, parse(file, what));
  // A password never opens an access-key file, nor an access key a password key file: nothing
  // is derived for the wrong kind.
  if (is_access_key(password) != p.info.access_key) {
    return Error(Error::Code::kWrongPassword, "wrong password or no key for this repository");
  }
  crypto::SecretKey wrapping;
  if (p.info.access_key) {
    wrapping = access_wrapping_key(password, p.salt);
  } else {
    auto derived = crypto::derive_from_password(password, p.salt, p.info.kdf);
    if (!derived.ok()) return derived.error().with_context(what);
    wrapping = std::move(derived).value();
  }
  std::array<uint8_t, crypto::kNonceSize> nonce;
  std::copy(p.nonce.begin(), p.nonce.end(), nonce.begin());
  Bytes plain;
  if (!crypto::open(wrapping, nonce, as_bytes(kWrapAad), p.data, plain)) {
    return Error(Error::Code::kWrongPassword, "wrong password or no key for this repository");
  }
  auto m = decode_master_key(plain, what);
  secure_zero(plain.data(), plain.size());
  return m;
}

Result<MasterKey> decode_master_key(ByteView cbor, const std::string& what) {
  MasterKey m;
  Error damaged(Error::Code::kCorrupt,
                what + " is damaged: it opens with the password but holds a malformed master key");
  try {
    json s = cbor::parse(cbor);
    auto key_of = [](json& v) -> std::optional<crypto::SecretKey> {
      auto& b = v.get_binary();
      if (b.size() != crypto::kKeySize) return std::nullopt;
      crypto::SecretKey k(ByteView(b.data(), b.size()));
      secure_zero(b.data(), b.size());
      return k;
    };
    for (auto& g : s.at("encryption")) {
      auto k = key_of(g.at("key"));
      if (!k) return damaged;
      m.encryption.emplace(cbor::get_int<uint32_t>(g.at("generation")), *k);
    }
    m.current_generation = cbor::get_int<uint32_t>(s.at("current_generation"));
    auto id = key_of(s.at("id_key"));
    auto ch = key_of(s.at("chunker_key"));
    if (!id || !ch || m.encryption_key(m.current_generation) == nullptr) return damaged;
    m.id_key = *id;
    m.chunker_key = *ch;
  } catch (const json::exception&) {
    return damaged;
  }
  return m;
}

}  // namespace haven::repo

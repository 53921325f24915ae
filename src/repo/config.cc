#include "repo/config.h"

#include "repo/cbor.h"

namespace haven::repo {

using nlohmann::json;

const char* id_hash_name(BlobIdFunction h) {
  return h == BlobIdFunction::kHmacSha256 ? "hmac-sha256" : "blake2b-256";
}

Bytes encode_config(const Config& c) {
  json j;
  j["version"] = c.version;
  j["id"] = json::binary_t(std::vector<uint8_t>(c.id.begin(), c.id.end()));
  j["chunker"] = {{"min", c.chunker.min_size}, {"avg", c.chunker.avg_size}, {"max", c.chunker.max_size}};
  j["pack_size"] = c.pack_size;
  j["compression"] = compression_name(c.compression);
  j["id_hash"] = id_hash_name(c.id_hash);
  j["created"] = c.created;
  return json::to_cbor(j);
}

Result<Config> decode_config(ByteView body) {
  Config c;
  try {
    json j = cbor::parse(body);
    c.version = cbor::get_int<uint32_t>(j.at("version"));
    const auto& id = j.at("id").get_binary();
    if (id.size() != 32) return Error(Error::Code::kCorrupt, "config: bad repository id");
    std::copy(id.begin(), id.end(), c.id.begin());
    c.chunker.min_size = cbor::get_int<uint32_t>(j.at("chunker").at("min"));
    c.chunker.avg_size = cbor::get_int<uint32_t>(j.at("chunker").at("avg"));
    c.chunker.max_size = cbor::get_int<uint32_t>(j.at("chunker").at("max"));
    c.pack_size = cbor::get_int<uint32_t>(j.at("pack_size"));
    HAVEN_ASSIGN(c.compression, parse_compression(j.at("compression").get<std::string>()));
    c.created = j.value("created", "");
    std::string idh = j.value("id_hash", "blake2b-256");
    if (idh == "hmac-sha256") {
      c.id_hash = BlobIdFunction::kHmacSha256;
    } else if (idh != "blake2b-256") {
      return Error(Error::Code::kUnsupported, "config: unknown blob ID function '" + idh + "': upgrade haven");
    }
  } catch (const json::exception&) {
    return Error(Error::Code::kCorrupt, "config: malformed");
  }
  if (c.version > kFormatVersion) {
    return Error(Error::Code::kUnsupported,
                 "repository format version " + std::to_string(c.version) +
                     " is newer than this haven supports (" + std::to_string(kFormatVersion) +
                     "): upgrade haven");
  }
  const char* why = nullptr;
  if (!chunker::valid_params(c.chunker, &why)) {
    return Error(Error::Code::kCorrupt, std::string("config: bad chunker parameters: ") + why);
  }
  return c;
}

}  // namespace haven::repo

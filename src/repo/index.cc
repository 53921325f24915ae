#include "repo/index.h"

#include <cstring>

#include <nlohmann/json.hpp>

#include "repo/cbor.h"

namespace haven::repo {

using nlohmann::json;

size_t Index::probe(BlobType type, const Id& id) const {
  size_t mask = slots_.size() - 1;
  size_t i = IdHash{}(id) & mask;
  while (true) {
    uint32_t s = slots_[i];
    if (s == 0) return i;
    const IndexEntry& e = entry(s - 1);
    if (e.type == type && e.id == id) return i;
    i = (i + 1) & mask;
  }
}

void Index::grow() {
  size_t n = slots_.empty() ? 1024 : slots_.size() * 2;
  slots_.assign(n, 0);
  for (size_t k = 0; k < count_; k++) {
    size_t i = probe(entry(k).type, entry(k).id);
    slots_[i] = static_cast<uint32_t>(k + 1);
  }
}

void Index::add_pack(const PackRecord& pack) {
  uint32_t pack_no = static_cast<uint32_t>(packs_.size());
  packs_.push_back({pack.id, pack.key_generation});
  for (const auto& b : pack.blobs) {
    if ((count_ + 1) * 10 > slots_.size() * 7) grow();
    size_t i = probe(b.type, b.id);
    if (slots_[i] != 0) continue;  // duplicate: keep the first copy
    if ((count_ >> kBlockShift) >= blocks_.size()) {
      blocks_.push_back(std::make_unique_for_overwrite<IndexEntry[]>(kBlockSize));
    }
    entry(count_) = {b.id, pack_no, b.offset, b.length, b.raw_length, b.type};
    count_++;
    slots_[i] = static_cast<uint32_t>(count_);
  }
}

std::optional<BlobLocation> Index::find(BlobType type, const Id& id) const {
  if (slots_.empty()) return std::nullopt;
  uint32_t s = slots_[probe(type, id)];
  if (s == 0) return std::nullopt;
  const IndexEntry& e = entry(s - 1);
  const PackSlot& p = packs_[e.pack];
  return BlobLocation{p.id, p.key_generation, e.offset, e.length, e.raw_length};
}

std::optional<size_t> Index::position(BlobType type, const Id& id) const {
  if (slots_.empty()) return std::nullopt;
  uint32_t s = slots_[probe(type, id)];
  if (s == 0) return std::nullopt;
  return s - 1;
}

size_t Index::memory_bytes() const {
  return blocks_.size() * kBlockSize * sizeof(IndexEntry) + slots_.capacity() * sizeof(uint32_t) +
         packs_.capacity() * sizeof(PackSlot);
}

static json::binary_t bin(const Id& id) {
  return json::binary_t(std::vector<uint8_t>(id.begin(), id.end()));
}

static bool id_of(const json& v, Id& out) {
  if (!v.is_binary() || v.get_binary().size() != out.size()) return false;
  std::memcpy(out.data(), v.get_binary().data(), out.size());
  return true;
}

Bytes encode_index_file(const std::vector<PackRecord>& packs) {
  json j;
  j["packs"] = json::array();
  for (const auto& p : packs) {
    json blobs = json::array();
    for (const auto& b : p.blobs) {
      blobs.push_back({static_cast<int>(b.type), bin(b.id), b.offset, b.length, b.raw_length});
    }
    j["packs"].push_back({{"id", bin(p.id)}, {"key_generation", p.key_generation}, {"blobs", blobs}});
  }
  return json::to_cbor(j);
}

Result<std::vector<PackRecord>> decode_index_file(ByteView body, const std::string& what) {
  std::vector<PackRecord> out;
  Error bad(Error::Code::kCorrupt, what + ": malformed index");
  try {
    json j = cbor::parse(body);
    for (const auto& p : j.at("packs")) {
      PackRecord r;
      if (!id_of(p.at("id"), r.id)) return bad;
      r.key_generation = cbor::get_int<uint32_t>(p.at("key_generation"));
      for (const auto& b : p.at("blobs")) {
        if (!b.is_array() || b.size() != 5) return bad;
        PackedBlob pb;
        int t = cbor::get_int<int>(b[0]);
        if (t != 0 && t != 1) return bad;
        pb.type = static_cast<BlobType>(t);
        if (!id_of(b[1], pb.id)) return bad;
        pb.offset = cbor::get_int<uint32_t>(b[2]);
        pb.length = cbor::get_int<uint32_t>(b[3]);
        pb.raw_length = cbor::get_int<uint32_t>(b[4]);
        r.blobs.push_back(pb);
      }
      out.push_back(std::move(r));
    }
  } catch (const json::exception&) {
    return bad;
  }
  return out;
}

}  // namespace haven::repo

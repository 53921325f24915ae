#include "repo/pack.h"

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "repo/cbor.h"

namespace haven::repo {

using nlohmann::json;

namespace {
constexpr char kTrailerAad[] = "pack trailer";
// Blobs never exceed the chunker's 64 MiB maximum; trees are capped at the same size.
constexpr uint32_t kMaxBlob = 64u << 20;
}  // namespace

PackBuilder::PackBuilder(const crypto::SecretKey& master, uint32_t key_generation, Bytes buffer,
                         size_t reserve)
    : buf_(std::move(buffer)) {
  buf_.clear();
  buf_.reserve(reserve);
  header_.kind = ObjectKind::kPack;
  header_.key_generation = key_generation;
  header_.salt = random_id();
  record_.id = header_.salt;
  record_.key_generation = key_generation;
  subkey_ = object_key(master, header_);
  buf_.resize(kPrefixSize);
  header_.encode(buf_.data());
}

uint32_t PackBuilder::add(BlobType type, const Id& id, ByteView data, Compression c) {
  if (!writer_ || data.size() < kStreamChunk / 4) {
    return add_record(type, id, encode_record_view(c, data), static_cast<uint32_t>(data.size()));
  }
  // Streaming a large blob: sealed in place in the compression buffer and written from there,
  // so the pack keeps no copy of it (after what it holds so far, to keep the order).
  drain(0);
  std::span<uint8_t> rec = encode_record_scratch(c, data, crypto::kTagSize);
  const uint64_t offset = written_;
  seal_record_in_place(subkey_, header_, offset, blob_aad(type, id), rec.data(), rec.size());
  const size_t sealed = rec.size() + crypto::kTagSize;
  if (stream_status_.ok()) stream_status_ = writer_->append(ByteView(rec.data(), sealed));
  written_ += sealed;
  record_.blobs.push_back({type, id, static_cast<uint32_t>(offset), static_cast<uint32_t>(sealed),
                           static_cast<uint32_t>(data.size())});
  return record_.blobs.back().length;
}

uint32_t PackBuilder::add_record(BlobType type, const Id& id, ByteView record, uint32_t raw_length) {
  const size_t before = buf_.size();
  const uint32_t offset = static_cast<uint32_t>(written_ + before);
  seal_record_at(subkey_, header_, offset, blob_aad(type, id), record, buf_);
  record_.blobs.push_back({type, id, offset, static_cast<uint32_t>(buf_.size() - before), raw_length});
  drain(kStreamChunk);
  return record_.blobs.back().length;
}

void PackBuilder::stream_to(std::unique_ptr<storage::ObjectWriter> writer) {
  writer_ = std::move(writer);
  drain(kStreamChunk);
}

void PackBuilder::drain(size_t threshold) {
  if (!writer_ || buf_.empty() || buf_.size() < threshold) return;
  if (stream_status_.ok()) stream_status_ = writer_->append(buf_);
  // After a failed write the pack is lost anyway (the caller sees stream_status()): keep
  // counting so offsets stay what they would have been, hold nothing.
  written_ += buf_.size();
  buf_.clear();
}

Bytes encode_pack_trailer(const std::vector<PackedBlob>& blobs) {
  Bytes out;
  out.reserve(9 + blobs.size() * 56);
  cbor::Writer w(out);
  w.array(blobs.size());
  for (const auto& b : blobs) write_packed_blob(w, b);
  return out;
}

Bytes PackBuilder::finish(PackRecord& record) {
  // Written without a DOM (cbor::Writer; a pack of small files lists ~13,000 blobs, whose json
  // tree cost ~2.5 MB), then compressed into this thread's record buffer with room for the tag
  // and the length, sealed there and written from there: no other copy of the trailer is made.
  std::span<uint8_t> rec;
  {
    const Bytes body = encode_pack_trailer(record_.blobs);
    rec = encode_record_scratch(Compression::kLow, body, crypto::kTagSize + 4);
  }
  drain(0);  // when streaming: what the pack holds so far goes first
  const uint64_t offset = written_ + buf_.size();
  seal_record_in_place(subkey_, header_, offset, as_bytes(kTrailerAad), rec.data(), rec.size());
  const uint32_t trailer_len = static_cast<uint32_t>(rec.size() + crypto::kTagSize);
  put_u32le(rec.data() + trailer_len, trailer_len);
  const ByteView out(rec.data(), trailer_len + 4);
  if (writer_) {
    if (stream_status_.ok()) stream_status_ = writer_->append(out);
    written_ += out.size();
  } else {
    buf_.insert(buf_.end(), out.begin(), out.end());
  }
  record = std::move(record_);
  return std::move(buf_);  // when streaming, empty: only its capacity is recycled
}

namespace {
// The header of pack `pack_id`: what its records' key and associated data are derived from.
Header pack_header(const Id& pack_id, uint32_t key_generation) {
  Header h;
  h.kind = ObjectKind::kPack;
  h.key_generation = key_generation;
  h.salt = pack_id;
  return h;
}
}  // namespace

Result<Bytes> open_blob_record(const crypto::SecretKey& master, const Id& pack_id,
                               uint32_t key_generation, BlobType type, const Id& id,
                               uint32_t offset, ByteView sealed, const std::string& what) {
  const Header h = pack_header(pack_id, key_generation);
  crypto::SecretKey subkey = object_key(master, h);
  Bytes plain;
  if (!open_record(subkey, h, offset, blob_aad(type, id), sealed, plain)) {
    return Error(Error::Code::kCorrupt,
                 what + ": authentication failed (the pack was modified or damaged)");
  }
  return plain;
}

Result<Bytes> open_blob(const crypto::SecretKey& master, const Id& pack_id, uint32_t key_generation,
                        BlobType type, const Id& id, uint32_t offset, ByteView sealed,
                        uint32_t raw_length, const std::string& what) {
  HAVEN_ASSIGN(Bytes plain,
               open_blob_record(master, pack_id, key_generation, type, id, offset, sealed, what));
  auto data = decode_record(plain, raw_length);
  if (!data.ok()) return data.error().with_context(what);
  if (data->size() != raw_length) {
    return Error(Error::Code::kCorrupt, what + ": length differs from the index");
  }
  return data;
}

const crypto::SecretKey& PackKeys::get(const crypto::SecretKey& master, const Id& pack_id,
                                       uint32_t key_generation) {
  if (master_ != &master || pack_ != pack_id || generation_ != key_generation) {
    key_ = object_key(master, pack_header(pack_id, key_generation));
    master_ = &master;
    pack_ = pack_id;
    generation_ = key_generation;
  }
  return key_;
}

namespace {
// A blob's record plaintext (opened) decoded into its bytes: in the record or in `scratch`.
Result<ByteView> decode_blob(ByteView plain, uint32_t raw_length,
                             const std::function<std::string()>& what, Scratch& scratch) {
  auto data = decode_record_view(plain, raw_length, scratch);
  if (!data.ok()) return data.error().with_context(what());
  if (data->size() != raw_length) {
    return Error(Error::Code::kCorrupt, what() + ": length differs from the index");
  }
  return data;
}

Error authentication_failed(const std::function<std::string()>& what) {
  return Error(Error::Code::kCorrupt,
               what() + ": authentication failed (the pack was modified or damaged)");
}
}  // namespace

Result<ByteView> open_blob_in_place(const crypto::SecretKey& master, PackKeys& keys,
                                    const Id& pack_id, uint32_t key_generation, BlobType type,
                                    const Id& id, uint32_t offset, std::span<uint8_t> sealed,
                                    uint32_t raw_length, const std::function<std::string()>& what,
                                    Scratch& scratch) {
  const Header h = pack_header(pack_id, key_generation);
  if (!open_record_in_place(keys.get(master, pack_id, key_generation), h, offset,
                            blob_aad(type, id), sealed)) {
    return authentication_failed(what);
  }
  return decode_blob(sealed.first(sealed.size() - crypto::kTagSize), raw_length, what, scratch);
}

bool blob_is_compressed(uint32_t length, uint32_t raw_length) {
  return uint64_t{length} != uint64_t{raw_length} + 1 + crypto::kTagSize;
}

Result<ByteView> open_blob_into(const crypto::SecretKey& master, PackKeys& keys, const Id& pack_id,
                                uint32_t key_generation, BlobType type, const Id& id,
                                uint32_t offset, ByteView sealed, uint8_t* out,
                                uint32_t raw_length, const std::function<std::string()>& what,
                                Scratch& scratch) {
  if (sealed.size() < crypto::kTagSize) return authentication_failed(what);
  const Header h = pack_header(pack_id, key_generation);
  if (!open_record_into(keys.get(master, pack_id, key_generation), h, offset, blob_aad(type, id),
                        sealed, out)) {
    return authentication_failed(what);
  }
  return decode_blob(ByteView(out, sealed.size() - crypto::kTagSize), raw_length, what, scratch);
}

Result<PackRecord> read_pack_trailer(const MasterKey& key, const Id& pack_id, ByteView pack) {
  return read_pack_trailer(key, pack_id, pack.subspan(0, std::min(pack.size(), kPrefixSize)), pack,
                           pack.size());
}

Result<PackRecord> read_pack_trailer(const MasterKey& key, const Id& pack_id, ByteView prefix,
                                     ByteView tail, uint64_t pack_size) {
  std::string what = "pack " + hex(pack_id);
  if (pack_size < kPrefixSize + 4 + crypto::kTagSize || prefix.size() < kPrefixSize ||
      tail.size() < 4 || tail.size() > pack_size) {
    return Error(Error::Code::kCorrupt, what + ": truncated");
  }
  HAVEN_ASSIGN(Header h, parse_header(prefix, what));
  if (h.kind != ObjectKind::kPack) return Error(Error::Code::kCorrupt, what + ": not a pack");
  if (h.salt != pack_id) {
    return Error(Error::Code::kCorrupt, what + ": stored under the wrong name");
  }
  const crypto::SecretKey* master = key.encryption_key(h.key_generation);
  if (master == nullptr) {
    return Error(Error::Code::kCorrupt,
                 what + ": sealed with unknown key generation " + std::to_string(h.key_generation));
  }
  uint32_t tlen = get_u32le(tail.data() + tail.size() - 4);
  if (tlen < crypto::kTagSize || tlen > pack_size - kPrefixSize - 4) {
    return Error(Error::Code::kCorrupt, what + ": truncated or bad trailer length");
  }
  if (tlen > tail.size() - 4) {
    return Error(Error::Code::kCorrupt, what + ": trailer longer than the bytes read");
  }
  uint64_t toff = pack_size - 4 - tlen;
  ByteView sealed = tail.subspan(tail.size() - 4 - tlen, tlen);
  crypto::SecretKey subkey = object_key(*master, h);
  Bytes plain;
  if (!open_record(subkey, h, toff, as_bytes(kTrailerAad), sealed, plain)) {
    return Error(Error::Code::kCorrupt, what + ": trailer authentication failed");
  }
  HAVEN_ASSIGN(Bytes body, decode_record(plain, kMaxBlob));
  return decode_pack_trailer(body, pack_id, h.key_generation, toff, what);
}

Result<PackRecord> decode_pack_trailer(ByteView body, const Id& pack_id, uint32_t key_generation,
                                       uint64_t toff, const std::string& what) {
  PackRecord r;
  r.id = pack_id;
  r.key_generation = key_generation;
  try {
    // Read item by item (no DOM): a trailer may list ~13,000 blobs.
    cbor::Reader rd(body);
    const size_t n = rd.array();
    r.blobs.reserve(std::min(n, body.size() / 40));  // an entry takes at least 40 bytes
    for (size_t i = 0; i < n; i++) {
      const size_t items = rd.array();
      if (items < 5) return Error(Error::Code::kCorrupt, what + ": bad trailer entry");
      PackedBlob pb;
      int t = rd.integer<int>();
      if (t != 0 && t != 1) return Error(Error::Code::kCorrupt, what + ": bad trailer entry");
      pb.type = static_cast<BlobType>(t);
      ByteView idb = rd.bytes();
      if (idb.size() != 32) return Error(Error::Code::kCorrupt, what + ": bad trailer entry");
      std::memcpy(pb.id.data(), idb.data(), 32);
      pb.offset = rd.integer<uint32_t>();
      pb.length = rd.integer<uint32_t>();
      pb.raw_length = rd.integer<uint32_t>();
      for (size_t k = 5; k < items; k++) rd.skip(2);
      if (pb.offset < kPrefixSize || uint64_t(pb.offset) + pb.length > toff) {
        return Error(Error::Code::kCorrupt, what + ": trailer entry outside the pack");
      }
      r.blobs.push_back(pb);
    }
    if (!rd.at_end()) return Error(Error::Code::kCorrupt, what + ": malformed trailer");
  } catch (const json::exception&) {
    return Error(Error::Code::kCorrupt, what + ": malformed trailer");
  }
  return r;
}

}  // namespace haven::repo

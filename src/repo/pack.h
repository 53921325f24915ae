// repo/pack.h — pack objects: many sealed blob records followed by a sealed trailer that lists
// them, so the index can be rebuilt from the packs alone (docs/FORMAT.md §4).
//
//   pack = header(12) | salt(32) | blob record* | trailer record | trailer length u32le
//
// The pack's ID is its salt, so a reader holding only (pack ID, offset, length) from the index
// can derive the subkey without reading the header.
#pragma once

#include <functional>
#include <memory>

#include "repo/compress.h"
#include "repo/format.h"
#include "repo/index.h"
#include "repo/keys.h"
#include "storage/backend.h"

namespace haven::repo {

// Trees go into packs of their own, closed at this size (or the pack size if less): a
// snapshot's directories then lie together, and a pack of them held in memory stays small.
constexpr uint64_t kTreePackTarget = 4u << 20;

class PackBuilder {
 public:
  // `buffer`: memory to build the pack in (recycled from an earlier pack, so its pages are
  // already mapped); `reserve`: expected final size, so the buffer never doubles past it.
  PackBuilder(const crypto::SecretKey& master, uint32_t key_generation, Bytes buffer = {},
              size_t reserve = 0);

  // Compresses (per `c`), seals and appends one blob. Returns the sealed record's length.
  uint32_t add(BlobType type, const Id& id, ByteView data, Compression c);
  // Seals and appends a record plaintext as it came out of another pack (mode byte + payload,
  // see compress.h), without compressing again: prune's repacking.
  uint32_t add_record(BlobType type, const Id& id, ByteView record, uint32_t raw_length);
  // Writes the pack out through `writer` as it grows (from now on, including what it holds):
  // the builder then keeps at most about kStreamChunk bytes plus one record in memory. A write
  // error is kept (stream_status()) and ends the writing; finish() then returns nothing and
  // the caller commits the writer.
  static constexpr size_t kStreamChunk = 256 << 10;
  void stream_to(std::unique_ptr<storage::ObjectWriter> writer);
  storage::ObjectWriter* writer() const { return writer_.get(); }
  const Status& stream_status() const { return stream_status_; }

  // Room for `n` blobs in the pack's list, so it does not double on the way (a list of 13,000
  // small files' blobs is ~0.6 MB; doubling holds both lists for a moment, and keeps up to
  // twice the room).
  void reserve_blobs(size_t n) { record_.blobs.reserve(n); }
  size_t size() const { return written_ + buf_.size(); }
  size_t blob_count() const { return record_.blobs.size(); }
  const Id& id() const { return record_.id; }
  const PackRecord& record() const { return record_; }

  // Seals the trailer; returns the finished pack bytes and its record for the index (when
  // streaming: the bytes not yet written, which it writes, so nothing). The builder is empty
  // afterwards and must not be reused.
  Bytes finish(PackRecord& record);

 private:
  // Streaming: writes out what buf_ holds once it reaches `threshold`.
  void drain(size_t threshold);

  Header header_;
  crypto::SecretKey subkey_;
  PackRecord record_;
  Bytes buf_;
  std::unique_ptr<storage::ObjectWriter> writer_;
  size_t written_ = 0;  // bytes the writer has taken (buf_ holds what follows)
  Status stream_status_ = ok_status();
};

// Decrypts and decodes one blob record read from a pack.
Result<Bytes> open_blob(const crypto::SecretKey& master, const Id& pack_id, uint32_t key_generation,
                        BlobType type, const Id& id, uint32_t offset, ByteView sealed,
                        uint32_t raw_length, const std::string& what);

// The key a pack's records are sealed under, kept for the pack a reader is in. Every record of
// a pack is sealed under one key derived from the master key and the pack's header (HKDF, ~2 µs
// a derivation): a reader that opens many blobs of a pack derives it once instead of once a
// blob. Keep one per reading thread, for the life of one repository handle (the master key is
// recognised by its address).
class PackKeys {
 public:
  const crypto::SecretKey& get(const crypto::SecretKey& master, const Id& pack_id,
                               uint32_t key_generation);

 private:
  const crypto::SecretKey* master_ = nullptr;
  Id pack_{};
  uint32_t generation_ = 0;
  crypto::SecretKey key_;
};

// The same in place: `sealed` is decrypted over itself, and the blob's bytes are returned where
// they lie in it (stored) or in `scratch` (decompressed there). `what` names the blob in errors.
Result<ByteView> open_blob_in_place(const crypto::SecretKey& master, PackKeys& keys,
                                    const Id& pack_id, uint32_t key_generation, BlobType type,
                                    const Id& id, uint32_t offset, std::span<uint8_t> sealed,
                                    uint32_t raw_length, const std::function<std::string()>& what,
                                    Scratch& scratch);
// Whether a blob of `length` sealed bytes holding `raw_length` bytes is stored compressed, so
// opening it needs a buffer of raw_length bytes besides its sealed ones. A blob stored as is
// is its bytes, a mode byte and a tag; one is compressed only when that makes it shorter.
bool blob_is_compressed(uint32_t length, uint32_t raw_length);
// The same into `out` (room for sealed.size() bytes): `sealed` stays as read, and the blob's
// bytes are returned where they lie in `out` or in `scratch`.
Result<ByteView> open_blob_into(const crypto::SecretKey& master, PackKeys& keys, const Id& pack_id,
                                uint32_t key_generation, BlobType type, const Id& id,
                                uint32_t offset, ByteView sealed, uint8_t* out,
                                uint32_t raw_length, const std::function<std::string()>& what,
                                Scratch& scratch);

// Same as open_blob, but returns the authenticated record plaintext (mode byte + payload)
// without decompressing it.
Result<Bytes> open_blob_record(const crypto::SecretKey& master, const Id& pack_id,
                               uint32_t key_generation, BlobType type, const Id& id,
                               uint32_t offset, ByteView sealed, const std::string& what);

// Reads the trailer of a whole pack (for repair and check); verifies header and trailer.
Result<PackRecord> read_pack_trailer(const MasterKey& key, const Id& pack_id, ByteView pack);
// Same from two pieces of a pack of `pack_size` bytes: its first kPrefixSize bytes and its last
// bytes (`tail`, at least the trailer and its length). Lets repair read a few KiB per pack.
Result<PackRecord> read_pack_trailer(const MasterKey& key, const Id& pack_id, ByteView prefix,
                                     ByteView tail, uint64_t pack_size);
// A trailer's payload (CBOR, FORMAT.md §4): [[type, id, offset, length, raw_length], ...], the
// bytes json::to_cbor writes for the same values.
Bytes encode_pack_trailer(const std::vector<PackedBlob>& blobs);
// Decodes an authenticated trailer's payload (CBOR, FORMAT.md §4) of the pack `pack_id` whose
// trailer record starts at `trailer_offset`; every blob must lie between the header and the
// trailer. read_pack_trailer() calls it; the fuzz target fuzz_pack_trailer too.
Result<PackRecord> decode_pack_trailer(ByteView body, const Id& pack_id, uint32_t key_generation,
                                       uint64_t trailer_offset, const std::string& what);

}  // namespace haven::repo

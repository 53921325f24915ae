// pg/wal.h — the WAL archive: the files PostgreSQL's archive_command hands over (segments,
// timeline .history files, .backup history files, .partial segments), each stored as one object
// wal/<file name>, compressed and sealed (docs/FORMAT.md §10).
//
// The WAL key (repo/wal_object.h). archive_command starts one process per segment; deriving the master key from a
// password with Argon2id (64 MiB, ~0.1 s and more by design) on every call would cap archiving
// at a few segments per second. So WAL objects are sealed under their own key, derived from
// the master key with HKDF (a password opens it too), which `haven pg archive-key` writes once
// to a file readable only by its owner (the PostgreSQL server's user). That file opens WAL
// objects and nothing else: not the master key, not file backups or base backups. It names the
// repository it belongs to (the config object's salt, readable without a password), so a key
// for another repository is refused before anything is written.
//
// Idempotence: pushing a file whose name is taken succeeds if the stored plaintext equals the
// new one and fails loudly (kAlreadyExists) if not: two clusters archiving into one repository,
// or a damaged segment, must never replace good WAL.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "crypto/crypto.h"
#include "repo/compress.h"
#include "repo/keys.h"
#include "repo/wal_object.h"
#include "storage/backend.h"

namespace haven::pg {

// What the archive accepts: 24 hex digits (a segment), with ".partial", "<8 hex>.history", or
// "<24 hex>.<8 hex>.backup". Upper-case hex, as PostgreSQL names them.
bool is_wal_file_name(const std::string& name);

// A segment name's timeline and position: name = TTTTTTTT LLLLLLLL SSSSSSSS; the segment
// number is L * (4 GiB / segment size) + S.
struct SegmentId {
  uint32_t timeline = 0;
  uint64_t log = 0, seg = 0;
};
std::optional<SegmentId> parse_segment_name(const std::string& name);

// An LSN "X/Y" (two hex numbers of at most 8 digits) as a 64-bit position and back.
std::optional<uint64_t> parse_lsn(const std::string& s);
std::string format_lsn(uint64_t lsn);

// The WAL key and the WAL object codec are format-level (repo/wal_object.h); a session that
// opened with a password gets it from Repository::wal_key().
using repo::WalKey;

// Writes the key file (mode 0600, created; kAlreadyExists if `path` exists and !overwrite).
Status write_wal_key_file(const std::string& path, const WalKey& key, bool overwrite);
// Reads a key file; refuses one that others can read (the fix is in the message).
Result<WalKey> read_wal_key_file(const std::string& path);
// Parses a key file's text (read_wal_key_file() after its permission check; the fuzz target
// fuzz_wal_key). kInvalidArgument naming `path` if it is not a WAL key file.
Result<WalKey> parse_wal_key_file(const std::string& text, const std::string& path);

enum class PushOutcome { kStored, kAlreadyIdentical };

// Stores `content` as wal/<name>. `key.repository` must match the backend's repository.
// `workers` > 1 compresses a segment on that many threads.
Result<PushOutcome> push(storage::Backend& backend, const WalKey& key, const std::string& name,
                         ByteView content, repo::Compression compression = repo::Compression::kLow,
                         int workers = 1);
// The plaintext of wal/<name>; kNotFound if it is not archived.
Result<Bytes> fetch(storage::Backend& backend, const WalKey& key, const std::string& name);
// The same without copies (repo::open_wal_object_view): the object is loaded into `object` and
// opened there; the contents live in `object` or `scratch`.
Result<ByteView> fetch_view(storage::Backend& backend, const WalKey& key, const std::string& name, Bytes& object,
                            Scratch& scratch);
// The local side of archive_command / restore_command: writes a WAL file under a temporary name
// in the same directory, then renames it (a killed fetch leaves no partial file where
// PostgreSQL would read it); MappedWalFile reads one, mapped read-only instead of copied
// (archive_command reads each segment once: a copy would cost 16 MiB of fresh memory per call).
class MappedWalFile {
 public:
  static Result<MappedWalFile> open(const std::string& path);
  MappedWalFile(MappedWalFile&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr; }
  MappedWalFile& operator=(MappedWalFile&&) = delete;
  ~MappedWalFile();
  ByteView bytes() const { return ByteView(static_cast<const uint8_t*>(data_), size_); }

 private:
  MappedWalFile(void* data, size_t size) : data_(data), size_(size) {}
  void* data_ = nullptr;
  size_t size_ = 0;
};
Status write_local_wal_file(const std::string& path, ByteView data);

}  // namespace haven::pg

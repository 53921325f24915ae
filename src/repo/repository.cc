#include "repo/repository.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "repo/cbor.h"
#include "util/sysinfo.h"
#include "util/version.h"

namespace haven::repo {

using storage::ObjectName;
using storage::ObjectType;

namespace {
// Index files are written once this many blobs are waiting, so a crash mid-backup loses at
// most this much index (the packs themselves stay and `repair index` recovers them).
constexpr size_t kIndexFlushBlobs = 100000;
// A lock not refreshed for this long is stale, even from another host.
constexpr TimeNs kLockStaleNs = 30LL * 60 * 1000000000;
constexpr TimeNs kLockRefreshNs = 5LL * 60 * 1000000000;
}  // namespace

Repository::Repository(std::shared_ptr<storage::Backend> backend, MasterKey master,
                       std::string key_id)
    : backend_(std::move(backend)),
      master_(std::move(master)),
      key_id_(std::move(key_id)),
      lock_refresh_ns_(kLockRefreshNs),
      lock_stale_ns_(kLockStaleNs) {
  unsigned hw = std::thread::hardware_concurrency();
  max_packers_ = std::max(2u, hw);
}

Repository::~Repository() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_uploaders_ = true;
    upload_cv_.notify_all();
  }
  for (auto& t : uploaders_) t.join();
  (void)unlock();
}

Result<std::unique_ptr<Repository>> Repository::init(std::shared_ptr<storage::Backend> backend,
                                                     const std::string& password,
                                                     const InitOptions& options) {
  const char* why = nullptr;
  if (!chunker::valid_params(options.chunker, &why)) {
    return Error(Error::Code::kInvalidArgument, std::string("bad chunker parameters: ") + why);
  }
  std::string kdf_why;
  if (!crypto::kdf_params_valid(options.kdf, &kdf_why)) {
    return Error(Error::Code::kInvalidArgument, kdf_why);
  }
  if (options.pack_size < (1u << 20) || options.pack_size > (1u << 30)) {
    return Error(Error::Code::kInvalidArgument, "pack size must be between 1 MiB and 1 GiB");
  }
  if (password.empty()) {
    return Error(Error::Code::kInvalidArgument, "empty password: choose a non-empty password");
  }
  HAVEN_ASSIGN(bool empty, backend->is_empty());
  if (!empty) {
    return Error(Error::Code::kAlreadyExists,
                 backend->location() +
                     " is not empty: refusing to create a repository there (choose an empty or "
                     "new location)");
  }
  HAVEN_TRY(backend->create());

  MasterKey master = MasterKey::generate();
  std::string key_id = hex(random_id());
  Bytes key_file = make_key_file(master, password, options.kdf);
  HAVEN_TRY(backend->save({ObjectType::kKey, key_id}, key_file));

  std::unique_ptr<Repository> repo(new Repository(backend, std::move(master), key_id));
  repo->config_.id = random_id();
  repo->config_.chunker = options.chunker;
  repo->config_.pack_size = options.pack_size;
  repo->config_.compression = options.compression;
  repo->config_.id_hash = options.id_hash.value_or(
      crypto::cpu_has_sha_extensions() ? BlobIdFunction::kHmacSha256 : BlobIdFunction::kBlake2b);
  repo->config_.created = format_time(now());
  repo->compression_ = options.compression;
  // The config is written last: its presence is what makes the location a repository.
  Id salt = random_id();
  repo->fingerprint_ = hex(salt);
  HAVEN_ASSIGN(Bytes sealed, repo->seal_object_with_salt(ObjectKind::kConfig, salt,
                                                         encode_config(repo->config_)));
  Status saved = backend->save({ObjectType::kConfig, "config"}, sealed);
  if (!saved.ok()) {
    // Leave the location as empty as we found it, so init can simply be run again.
    (void)backend->remove({ObjectType::kKey, key_id});
    return saved.error();
  }
  return repo;
}

Status Repository::probe(storage::Backend& backend) {
  auto raw = backend.load({ObjectType::kConfig, "config"}, 0, kPrefixSize);
  if (!raw.ok()) {
    if (raw.error().code() == Error::Code::kNotFound) {
      return Error(Error::Code::kRepoNotFound,
                   "there is no Haven repository at " + backend.location() +
                       " (check the path, or create one with 'haven init')");
    }
    // A config shorter than the header is a damaged repository, not a missing one.
    return raw.error().with_context("reading the repository config");
  }
  // The version is checked before the password, so a newer repository is refused clearly.
  HAVEN_TRY(parse_header(*raw, "config"));
  return ok_status();
}

namespace {
// Whether `master` authenticates the single-record object `raw` (config, snapshot, index, lock)
// stored under `name`. A key file belongs to a repository exactly when its master key
// authenticates that repository's objects; the config is the one every repository has.
bool authenticates(const MasterKey& master, const ObjectName& name, ByteView raw) {
  auto h = parse_header(raw, name.describe());
  if (!h.ok()) return false;
  static const std::map<ObjectType, ObjectKind> kKinds = {
      {ObjectType::kConfig, ObjectKind::kConfig}, {ObjectType::kSnapshot, ObjectKind::kSnapshot},
      {ObjectType::kIndex, ObjectKind::kIndex}, {ObjectType::kLock, ObjectKind::kLock}};
  auto kind = kKinds.find(name.type);
  if (kind == kKinds.end() || kind->second != h->kind) return false;
  if (name.type != ObjectType::kConfig) {
    auto id = parse_id(name.name);
    if (!id || *id != h->salt) return false;
  }
  const crypto::SecretKey* key = master.encryption_key(h->key_generation);
  if (key == nullptr) return false;
  Bytes plain;
  return open_record(object_key(*key, *h), *h, kPrefixSize, {}, raw.subspan(kPrefixSize), plain);
}

// When a key opens with the password but does not authenticate the config, either the key
// belongs to another repository or the config is damaged. The repository's other small
// objects tell which: true if `master` authenticates one of them, false if it fails on every
// one tried, nullopt if there is none to try (a repository with no snapshot, index or lock).
std::optional<bool> authenticates_other_objects(const MasterKey& master, storage::Backend& be) {
  constexpr int kTries = 3;  // a few, in case one of them is damaged as well
  bool tried = false;
  for (ObjectType t : {ObjectType::kSnapshot, ObjectType::kIndex, ObjectType::kLock}) {
    std::vector<std::string> names;
    if (!be.list(t, [&](const storage::ObjectInfo& i) { names.push_back(i.name.name); }).ok()) {
      continue;
    }
    std::sort(names.begin(), names.end());
    if (names.size() > kTries) names.resize(kTries);
    for (const auto& n : names) {
      ObjectName name{t, n};
      auto raw = be.load(name);
      if (!raw.ok()) continue;
      tried = true;
      if (authenticates(master, name, *raw)) return true;
    }
  }
  if (!tried) return std::nullopt;
  return false;
}

}  // namespace

Result<std::unique_ptr<Repository>> Repository::open(std::shared_ptr<storage::Backend> backend,
                                                     const std::string& password,
                                                     const OpenOptions& options) {
  HAVEN_TRY(probe(*backend));
  const ObjectName config_name{ObjectType::kConfig, "config"};
  HAVEN_ASSIGN(Bytes raw_config, backend->load(config_name));
  // What about the config does not depend on a key is checked first.
  HAVEN_ASSIGN(Header config_header, parse_header(raw_config, "config"));
  if (config_header.kind != ObjectKind::kConfig) {
    return Error(Error::Code::kCorrupt, "config: wrong object kind");
  }

  std::vector<std::string> key_ids;
  HAVEN_TRY(backend->list(ObjectType::kKey, [&](const storage::ObjectInfo& info) {
    key_ids.push_back(info.name.name);
  }));
  std::sort(key_ids.begin(), key_ids.end());
  // Every key file is tried until one opens with the password and authenticates the config.
  // A key file that cannot be read (damaged, absurd KDF parameters, newer version) or that
  // opens but belongs to another repository does not stop the search: it is remembered, named
  // by list_keys() (so `check` and `key list` report it), and named in the error if no key
  // opens. Key files that fail only on the password are never named.
  std::optional<MasterKey> master;
  std::string key_id;
  std::vector<Error> unreadable;                               // key files no password can open
  std::vector<std::pair<std::string, MasterKey>> foreign;      // open, but not this config
  size_t tried = 0;                                            // key files a password was tried on
  for (const auto& id : key_ids) {
    if (master && !options.try_all_keys) break;
    auto file = backend->load({ObjectType::kKey, id});
    if (!file.ok()) {
      if (file.error().code() == Error::Code::kNotFound) continue;  // removed meanwhile
      unreadable.push_back(file.error().with_context("key " + id));
      continue;
    }
    auto m = open_key_file(*file, password, "key " + id);
    if (!m.ok()) {
      if (m.error().code() == Error::Code::kWrongPassword) {
        tried++;
      } else {
        unreadable.push_back(m.error());
      }
      continue;
    }
    tried++;
    if (!authenticates(*m, config_name, raw_config)) {
      foreign.emplace_back(id, std::move(m).value());
      continue;
    }
    if (!master) {
      master = std::move(m).value();
      key_id = id;
    }
  }

  std::string unreadable_list;
  bool all_damaged = true;
  for (const auto& e : unreadable) {
    unreadable_list += (unreadable_list.empty() ? "" : "; ") + e.message();
    all_damaged = all_damaged && e.code() == Error::Code::kCorrupt;
  }
  const std::string besides =
      unreadable.empty() ? std::string()
                         : "; besides, " + std::to_string(unreadable.size()) +
                               " key file(s) could not be read: " + unreadable_list;
  if (!master && !foreign.empty()) {
    // Keys open with this password, yet none authenticates the config. If one of them
    // authenticates the repository's other objects, the config is what is damaged: say so.
    bool unknown = false;
    for (const auto& [id, m] : foreign) {
      auto other = authenticates_other_objects(m, *backend);
      if (!other) {
        unknown = true;
        continue;
      }
      if (*other) {
        return Error(Error::Code::kCorrupt,
                     "config: authentication failed (the object was modified or damaged: key " +
                         id + " authenticates this repository's other objects but not its "
                         "config)");
      }
    }
    std::string ids;
    for (const auto& [id, m] : foreign) ids += (ids.empty() ? "" : ", ") + id;
    if (unknown) {
      return Error(Error::Code::kCorrupt,
                   "config: authentication failed with key " + ids +
                       ", which opens with this password: either the config is damaged or "
                       "that key file belongs to another repository (this repository has no "
                       "snapshot or index file to tell which)" + besides);
    }
    return Error(Error::Code::kWrongPassword,
                 "no key of this repository opens with this password: key " + ids +
                     " opens with it but belongs to another repository (it authenticates none "
                     "of this repository's objects; move it out of keys/)" + besides);
  }
  if (!master) {
    if (unreadable.empty()) {
      // Deliberately says nothing about which keys exist or why each failed.
      return Error(Error::Code::kWrongPassword, "wrong password or no key for this repository");
    }
    if (tried == 0) {
      // No key file could even be tried: the password is not the problem.
      return Error(unreadable.front().code(),
                   "no key file of this repository can be read, so no password opens it: " +
                       unreadable_list +
                       (all_damaged ? " (restore the key files from a copy of the repository)"
                                    : ""));
    }
    // Key files that failed only on the password stay unnamed.
    return Error(Error::Code::kWrongPassword,
                 "wrong password or no key for this repository" + besides);
  }
  std::unique_ptr<Repository> repo(new Repository(backend, std::move(*master), key_id));
  for (const auto& [id, m] : foreign) {
    repo->foreign_keys_.insert(id);
  }
  HAVEN_ASSIGN(Bytes body, repo->open_object(ObjectKind::kConfig, config_name, raw_config));
  HAVEN_ASSIGN(repo->config_, decode_config(body));
  repo->fingerprint_ = hex(config_header.salt);
  repo->compression_ = repo->config_.compression;
  return repo;
}

chunker::Chunker Repository::make_chunker() const {
  return chunker::Chunker(config_.chunker, master_.gear_table());
}

Id Repository::blob_id(ByteView data) const {
  return config_.id_hash == BlobIdFunction::kHmacSha256 ? crypto::hmac_sha256(master_.id_key, data)
                                                : crypto::keyed_hash(master_.id_key, data);
}

Result<Bytes> Repository::seal_object(ObjectKind kind, ByteView body) const {
  return seal_object_with_salt(kind, random_id(), body);
}

Result<Bytes> Repository::seal_object_with_salt(ObjectKind kind, const Id& salt, ByteView body) const {
  return repo::seal_object(master_, kind, salt, body);
}

Result<Bytes> Repository::open_object(ObjectKind kind, const ObjectName& name,
                                      ByteView object) const {
  return repo::open_object(master_, kind, name, object);
}

Result<WalKey> Repository::wal_key(std::optional<uint32_t> generation) const {
  return derive_wal_key(master_, fingerprint_, generation);
}

Result<Bytes> Repository::open_wal_object(const std::string& name, ByteView object) const {
  const std::string what = "WAL file " + name;
  HAVEN_ASSIGN(Header h, parse_header(object, what));
  auto key = wal_key(h.key_generation);
  if (!key.ok()) return key.error().with_context(what);
  return repo::open_wal_object(*key, name, object);
}

Result<Bytes> Repository::load_object(ObjectType type, const std::string& name) {
  ObjectName on{type, name};
  HAVEN_ASSIGN(Bytes raw, backend_->load(on));
  return open_object(kind_of(type), on, raw);
}

Result<Id> Repository::save_object(ObjectType type, ByteView body) {
  Id id = random_id();
  HAVEN_ASSIGN(Bytes sealed, seal_object_with_salt(kind_of(type), id, body));
  HAVEN_TRY(backend_->save({type, hex(id)}, sealed));
  return id;
}

// ---------------------------------------------------------------------------------------------
// Index and blobs

Status Repository::load_index() { return load_index({}); }

Status Repository::load_index(
    const std::function<void(const std::string&, const Error&)>& on_bad) {
  // The index is built afresh and replaces the old one: after a prune or repair, locations
  // this session knew may be gone.
  HAVEN_ASSIGN(auto names, list_index_files());
  Index fresh;
  for (const auto& name : names) {
    auto packs = load_index_file(name);
    if (!packs.ok()) {
      if (!on_bad) return packs.error();
      on_bad(name, packs.error());
      continue;
    }
    for (const auto& p : *packs) fresh.add_pack(p);
  }
  std::lock_guard<std::mutex> g(mu_);
  for (const auto& p : unindexed_) fresh.add_pack(p);  // durable packs not yet in an index file
  index_ = std::move(fresh);
  return ok_status();
}

Result<std::vector<std::string>> Repository::list_index_files() {
  std::vector<std::string> names;
  HAVEN_TRY(backend_->list(ObjectType::kIndex, [&](const storage::ObjectInfo& i) {
    names.push_back(i.name.name);
  }));
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::vector<PackRecord>> Repository::load_index_file(const std::string& name) {
  HAVEN_ASSIGN(Bytes body, load_object(ObjectType::kIndex, name));
  return decode_index_file(body, "index " + name);
}

Result<std::string> Repository::save_index_file(const std::vector<PackRecord>& packs) {
  HAVEN_ASSIGN(Id id, save_object(ObjectType::kIndex, encode_index_file(packs)));
  return hex(id);
}

Result<PackRecord> Repository::read_pack_trailer(const Id& pack_id, uint64_t pack_size) {
  ObjectName name{ObjectType::kData, hex(pack_id)};
  if (pack_size < kPrefixSize + 4) {
    return Error(Error::Code::kCorrupt, name.describe() + ": truncated (" +
                                            std::to_string(pack_size) + " bytes)");
  }
  HAVEN_ASSIGN(Bytes prefix, backend_->load(name, 0, kPrefixSize));
  // Trailers list about 60 bytes per blob: 64 KiB covers a pack of ~1000 blobs in one read.
  uint64_t want = std::min<uint64_t>(pack_size - kPrefixSize, 64 * 1024);
  HAVEN_ASSIGN(Bytes tail, backend_->load(name, pack_size - want, want));
  uint32_t tlen = get_u32le(tail.data() + tail.size() - 4);
  if (uint64_t(tlen) + 4 > want && uint64_t(tlen) + 4 <= pack_size - kPrefixSize) {
    want = uint64_t(tlen) + 4;
    HAVEN_ASSIGN(tail, backend_->load(name, pack_size - want, want));
  }
  return repo::read_pack_trailer(master_, pack_id, prefix, tail, pack_size);
}

bool Repository::has_blob(BlobType type, const Id& id) {
  std::lock_guard<std::mutex> g(mu_);
  return index_.contains(type, id) || in_flight_.count({type, id}) > 0;
}

size_t Repository::index_blob_count() {
  std::lock_guard<std::mutex> g(mu_);
  return index_.blob_count();
}

std::optional<uint32_t> Repository::blob_raw_length(BlobType type, const Id& id) {
  std::lock_guard<std::mutex> g(mu_);
  auto loc = index_.find(type, id);
  if (!loc) return std::nullopt;
  return loc->raw_length;
}

Result<Id> Repository::save_blob(BlobType type, ByteView data) {
  Id id = blob_id(data);
  HAVEN_TRY(save_blob_with_id(type, id, data));
  return id;
}

Result<bool> Repository::save_blob_with_id(BlobType type, const Id& id, ByteView data) {
  HAVEN_TRY(cancel_.check());  // a cancelled operation stores nothing more
  std::unique_ptr<PackBuilder> packer;
  {
    std::unique_lock<std::mutex> lk(mu_);
    if (index_.contains(type, id) || in_flight_.count({type, id}) > 0) return false;
    in_flight_.insert({type, id});
    packer_cv_.wait(lk, [&] { return !idle_packers_.empty() || packers_out_ < max_packers_; });
    if (!idle_packers_.empty()) {
      packer = std::move(idle_packers_.back());
      idle_packers_.pop_back();
    }
    packers_out_++;
  }
  if (!packer) {
    Bytes buffer;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!free_buffers_.empty()) {
        buffer = std::move(free_buffers_.back());
        free_buffers_.pop_back();
      }
    }
    packer = std::make_unique<PackBuilder>(
        *master_.encryption_key(master_.current_generation), master_.current_generation,
        std::move(buffer), size_t{config_.pack_size} + config_.chunker.max_size + 64 * 1024);
  }
  // Compression and encryption run outside the lock, on this thread's own packer.
  uint32_t stored = packer->add(type, id, data, compression_);
  write_stats_.blobs++;
  write_stats_.raw_bytes += data.size();
  write_stats_.stored_bytes += stored;
  if (packer->size() >= config_.pack_size) {
    Status st = enqueue_upload(std::move(packer));
    std::lock_guard<std::mutex> g(mu_);
    packers_out_--;
    packer_cv_.notify_all();
    if (!st.ok()) return st.error();
    return true;
  }
  std::lock_guard<std::mutex> g(mu_);
  idle_packers_.push_back(std::move(packer));
  packers_out_--;
  packer_cv_.notify_all();
  return true;
}

Status Repository::enqueue_upload(std::unique_ptr<PackBuilder> packer) {
  std::unique_lock<std::mutex> lk(mu_);
  if (upload_error_) return *upload_error_;
  if (uploaders_.empty()) {
    for (size_t i = 0; i < upload_threads_; i++) {
      uploaders_.emplace_back([this] {
        CancelScope scope(cancel_);  // uploads stop when the operation is cancelled
        uploader();
      });
    }
  }
  // Hand over only when an uploader is free: packs waiting in memory would only raise the peak.
  upload_cv_.wait(lk, [&] {
    return upload_queue_.size() + uploads_active_ < upload_threads_ || upload_error_;
  });
  if (upload_error_) return *upload_error_;
  upload_queue_.push_back(std::move(packer));
  upload_cv_.notify_all();
  return ok_status();
}

void Repository::uploader() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    upload_cv_.wait(lk, [&] { return !upload_queue_.empty() || stop_uploaders_; });
    if (upload_queue_.empty()) return;
    auto packer = std::move(upload_queue_.front());
    upload_queue_.pop_front();
    uploads_active_++;
    upload_cv_.notify_all();
    lk.unlock();
    Status st = upload_pack(std::move(packer));
    lk.lock();
    uploads_active_--;
    if (!st.ok() && !upload_error_) upload_error_ = st.error();
    upload_cv_.notify_all();
  }
}

Status Repository::wait_uploads() {
  std::unique_lock<std::mutex> lk(mu_);
  upload_cv_.wait(lk, [&] { return upload_queue_.empty() && uploads_active_ == 0; });
  if (upload_error_) return *upload_error_;
  return ok_status();
}

Status Repository::upload_pack(std::unique_ptr<PackBuilder> packer) {
  PackRecord record;
  Bytes data = packer->finish(record);
  Status st = backend_->save({ObjectType::kData, hex(record.id)}, data);
  if (st.ok()) write_stats_.packs++;
  std::unique_lock<std::mutex> lk(mu_);
  if (free_buffers_.size() < max_packers_) free_buffers_.push_back(std::move(data));
  for (const auto& b : record.blobs) in_flight_.erase({b.type, b.id});
  if (!st.ok()) return st;
  // The pack is durable: only now may its blobs be found by lookups and indexed.
  index_.add_pack(record);
  unindexed_.push_back(std::move(record));
  size_t waiting = 0;
  for (const auto& p : unindexed_) waiting += p.blobs.size();
  if (waiting >= kIndexFlushBlobs) return write_index_locked(lk);
  return ok_status();
}

Status Repository::write_index_locked(std::unique_lock<std::mutex>& lk) {
  if (unindexed_.empty()) return ok_status();
  std::vector<PackRecord> packs = std::move(unindexed_);
  unindexed_.clear();
  Bytes body = encode_index_file(packs);
  auto saved = save_object(ObjectType::kIndex, body);
  if (!saved.ok()) {
    // Put them back so a later flush can retry.
    for (auto& p : packs) unindexed_.push_back(std::move(p));
    return saved.error();
  }
  return ok_status();
}

Status Repository::flush() {
  std::vector<std::unique_ptr<PackBuilder>> packers;
  {
    std::unique_lock<std::mutex> lk(mu_);
    packer_cv_.wait(lk, [&] { return packers_out_ == 0; });
    packers = std::move(idle_packers_);
    idle_packers_.clear();
  }
  for (auto& p : packers) {
    if (p->blob_count() == 0) continue;
    HAVEN_TRY(enqueue_upload(std::move(p)));
  }
  // Index after packs: the index file may only name packs that are durable.
  HAVEN_TRY(wait_uploads());
  std::unique_lock<std::mutex> lk(mu_);
  return write_index_locked(lk);
}

Result<Bytes> Repository::load_blob(BlobType type, const Id& id) {
  std::optional<BlobLocation> loc = locate_blob(type, id);
  if (!loc) {
    return Error(Error::Code::kNotFound,
                 std::string(blob_type_name(type)) + " blob " + hex(id) + " is not in the index");
  }
  auto sealed = backend_->load({ObjectType::kData, hex(loc->pack_id)}, loc->offset, loc->length);
  if (!sealed.ok()) {
    return sealed.error().with_context(std::string(blob_type_name(type)) + " blob " + hex(id) +
                                       " in pack " + hex(loc->pack_id));
  }
  return open_located_blob(type, id, *loc, *sealed);
}

std::optional<BlobLocation> Repository::locate_blob(BlobType type, const Id& id) {
  std::lock_guard<std::mutex> g(mu_);
  return index_.find(type, id);
}

Result<Bytes> Repository::open_located_blob(BlobType type, const Id& id, const BlobLocation& loc,
                                            ByteView sealed) const {
  std::string what = std::string(blob_type_name(type)) + " blob " + hex(id) + " in pack " + hex(loc.pack_id);
  if (sealed.size() != loc.length) {
    return Error(Error::Code::kCorrupt, what + ": pack is truncated");
  }
  const crypto::SecretKey* key = master_.encryption_key(loc.key_generation);
  if (key == nullptr) {
    return Error(Error::Code::kCorrupt, what + ": unknown key generation");
  }
  return open_blob(*key, loc.pack_id, loc.key_generation, type, id, loc.offset, sealed,
                   loc.raw_length, what);
}

// ---------------------------------------------------------------------------------------------
// Snapshots and trees

Result<Id> Repository::save_snapshot(const Snapshot& s) {
  // Everything the snapshot references must be durable first.
  HAVEN_TRY(flush());
  // And still protected: once our lock may look stale, a prune elsewhere may have deleted
  // packs this snapshot would reference.
  HAVEN_TRY(check_lock());
  HAVEN_TRY(cancel_.check());
  Snapshot copy = s;
  if (copy.program_version.empty()) copy.program_version = std::string("haven ") + HAVEN_VERSION;
  return save_object(ObjectType::kSnapshot, encode_snapshot(copy));
}

Result<Snapshot> Repository::load_snapshot(const Id& id) {
  HAVEN_ASSIGN(Bytes body, load_object(ObjectType::kSnapshot, hex(id)));
  return decode_snapshot(body, "snapshot " + hex(id));
}

Result<std::vector<std::pair<Id, Snapshot>>> Repository::list_snapshots(std::vector<Error>* damaged) {
  std::vector<std::string> names;
  HAVEN_TRY(backend_->list(ObjectType::kSnapshot, [&](const storage::ObjectInfo& i) {
    names.push_back(i.name.name);
  }));
  std::vector<std::pair<Id, Snapshot>> out;
  for (const auto& n : names) {
    auto id = parse_id(n);
    if (!id) continue;
    auto s = load_snapshot(*id);
    if (!s.ok()) {
      if (damaged == nullptr || s.error().code() != Error::Code::kCorrupt) return s.error();
      damaged->push_back(s.error());
      continue;
    }
    out.emplace_back(*id, std::move(*s));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.second.time < b.second.time; });
  return out;
}

Result<Id> Repository::resolve_snapshot(const std::string& ref, std::vector<Error>* damaged) {
  if (ref == "latest") {
    HAVEN_ASSIGN(auto all, list_snapshots(damaged));
    if (all.empty()) return Error(Error::Code::kNotFound, "the repository has no snapshots yet");
    return all.back().first;
  }
  if (ref.empty() || ref.size() > 64 || !from_hex(ref.size() % 2 ? ref + "0" : ref)) {
    return Error(Error::Code::kInvalidArgument,
                 "'" + ref + "' is not a snapshot ID: give 'latest' or a hex ID prefix");
  }
  std::vector<std::string> matches;
  HAVEN_TRY(backend_->list(ObjectType::kSnapshot, [&](const storage::ObjectInfo& i) {
    if (i.name.name.compare(0, ref.size(), ref) == 0) matches.push_back(i.name.name);
  }));
  if (matches.empty()) {
    return Error(Error::Code::kNotFound, "no snapshot matches '" + ref + "' (see 'haven snapshots')");
  }
  if (matches.size() > 1) {
    return Error(Error::Code::kInvalidArgument,
                 "snapshot prefix '" + ref + "' is ambiguous: give more characters");
  }
  return *parse_id(matches[0]);
}

Status Repository::remove_snapshot(const Id& id) {
  return backend_->remove({ObjectType::kSnapshot, hex(id)});
}

Result<Tree> Repository::load_tree(const Id& id) {
  HAVEN_ASSIGN(Bytes body, load_blob(BlobType::kTree, id));
  return decode_tree(body, "tree " + hex(id));
}

Result<Id> Repository::save_tree(const Tree& t) {
  return save_blob(BlobType::kTree, encode_tree(t));
}

// ---------------------------------------------------------------------------------------------
// Keys

Result<std::vector<KeyListEntry>> Repository::list_keys() {
  std::vector<std::string> ids;
  HAVEN_TRY(backend_->list(ObjectType::kKey, [&](const storage::ObjectInfo& i) {
    ids.push_back(i.name.name);
  }));
  std::sort(ids.begin(), ids.end());
  std::vector<KeyListEntry> out;
  for (const auto& id : ids) {
    KeyListEntry e;
    e.id = id;
    e.current = (id == key_id_);
    auto file = backend_->load({ObjectType::kKey, id});
    if (!file.ok()) {
      e.problem = file.error().message();
    } else {
      auto info = read_key_file_info(*file, "key " + id);
      if (info.ok()) e.info = *info; else e.problem = info.error().message();
    }
    if (e.problem.empty() && foreign_keys_.count(id)) {
      e.problem = "key " + id +
                  " does not belong to this repository: it opens with this password, but its "
                  "master key does not authenticate this repository's config";
      e.foreign = true;
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::string> Repository::add_key(const std::string& password, const crypto::KdfParams& kdf) {
  std::string why;
  if (!crypto::kdf_params_valid(kdf, &why)) return Error(Error::Code::kInvalidArgument, why);
  if (password.empty()) {
    return Error(Error::Code::kInvalidArgument, "empty password: choose a non-empty password");
  }
  std::string id = hex(random_id());
  HAVEN_TRY(backend_->save({ObjectType::kKey, id}, make_key_file(master_, password, kdf)));
  return id;
}

Status Repository::remove_key(const std::string& prefix) {
  HAVEN_ASSIGN(auto keys, list_keys());
  std::vector<std::string> matches;
  for (const auto& k : keys) {
    if (!prefix.empty() && k.id.compare(0, prefix.size(), prefix) == 0) matches.push_back(k.id);
  }
  if (matches.empty()) {
    return Error(Error::Code::kNotFound, "no key matches '" + prefix + "' (see 'haven key list')");
  }
  if (matches.size() > 1) {
    return Error(Error::Code::kInvalidArgument, "key prefix '" + prefix + "' is ambiguous");
  }
  if (keys.size() == 1) {
    return Error(Error::Code::kInvalidArgument,
                 "refusing to remove the only key: the repository would become unreadable");
  }
  if (matches[0] == key_id_) {
    return Error(Error::Code::kInvalidArgument,
                 "refusing to remove the key in use: open the repository with another key's "
                 "password, or use 'haven key passwd' to replace it");
  }
  return backend_->remove({ObjectType::kKey, matches[0]});
}

Result<std::string> Repository::change_password(const std::string& new_password,
                                                const crypto::KdfParams& kdf) {
  HAVEN_ASSIGN(std::string id, add_key(new_password, kdf));
  // The new key is durable before the old one goes: a crash in between leaves two keys.
  HAVEN_TRY(backend_->remove({ObjectType::kKey, key_id_}));
  key_id_ = id;
  return id;
}

// ---------------------------------------------------------------------------------------------
// Locks

namespace {
// A lock is stale when it has not been refreshed for kLockStaleNs (holders refresh every
// kLockRefreshNs), or, on this host, as soon as its process is gone.
bool lock_is_stale(const Lock& l, const std::string& me, TimeNs stale_ns) {
  if (now() - l.refreshed > stale_ns) return true;  // its holder stopped refreshing
  return l.hostname == me && kill(static_cast<pid_t>(l.pid), 0) != 0 && errno == ESRCH;
}

std::string describe_stale(const Lock& l, TimeNs stale_ns) {
  return std::string(l.exclusive ? "exclusive" : "shared") + " lock of PID " +
         std::to_string(l.pid) + " on " + l.hostname + " (user " + l.username + ", since " +
         format_time(l.time) + "): " +
         (now() - l.refreshed > stale_ns ? "not refreshed since " + format_time(l.refreshed)
                                         : std::string("that process is gone"));
}
}  // namespace

Status Repository::lock(bool exclusive) {
  if (lock_id_) return Error(Error::Code::kInternal, "this session already holds a lock");
  std::string me = hostname();
  stale_ignored_.clear();
  auto check = [&](const std::optional<std::string>& own) -> Status {
    std::vector<std::string> names;
    HAVEN_TRY(backend_->list(ObjectType::kLock, [&](const storage::ObjectInfo& i) {
      names.push_back(i.name.name);
    }));
    for (const auto& n : names) {
      if (own && n == *own) continue;
      auto body = load_object(ObjectType::kLock, n);
      Result<Lock> l = body.ok() ? decode_lock(*body, "lock " + n) : Result<Lock>(body.error());
      if (!l.ok()) {
        if (l.error().code() == Error::Code::kNotFound) continue;  // removed meanwhile
        // Only a lock that was read and does not decode or authenticate is junk; failing to
        // read it (permissions, I/O, a newer format) says nothing about it.
        if (l.error().code() != Error::Code::kCorrupt) return l.error().with_context("reading locks");
        // Junk or damage: it cannot be told from a live lock, so only a person may remove it.
        return Error(Error::Code::kLocked,
                     "the repository holds a lock that cannot be read: " + l.error().message() +
                         "; if no other haven process is using the repository, remove it with "
                         "'haven unlock'");
      }
      if (lock_is_stale(*l, me, lock_stale_ns_)) {
        if (!own) stale_ignored_.push_back(describe_stale(*l, lock_stale_ns_));
        continue;
      }
      if (exclusive || l->exclusive) {
        return Error(Error::Code::kLocked,
                     std::string("repository is locked ") + (l->exclusive ? "exclusively " : "") +
                         "by PID " + std::to_string(l->pid) + " on " + l->hostname + " (user " +
                         l->username + ") since " + format_time(l->time) +
                         "; if that process is gone, run 'haven unlock'");
      }
    }
    return ok_status();
  };
  HAVEN_TRY(check(std::nullopt));
  lock_.time = lock_.refreshed = now();
  lock_.hostname = me;
  lock_.username = username();
  lock_.pid = getpid();
  lock_.exclusive = exclusive;
  HAVEN_ASSIGN(Id id, save_object(ObjectType::kLock, encode_lock(lock_)));
  lock_id_ = id;
  // Someone may have locked at the same moment: check again now that ours is visible.
  Status again = check(hex(id));
  if (!again.ok()) {
    (void)unlock();
    return again;
  }
  {
    std::lock_guard<std::mutex> g(lost_mu_);
    lock_lost_.reset();
    last_refresh_error_.clear();
    held_lock_name_ = hex(id);
  }
  lock_ok_at_ = lock_.refreshed;
  lock_held_ = true;
  stop_refresh_ = false;
  lock_stop_ = CancelToken();
  refresh_cancel_ = CancelToken();
  refresher_ = std::thread([this] { refresh_loop(); });
  watchdog_ = std::thread([this] { watch_lock(); });
  return ok_status();
}

TimeNs Repository::lock_deadline_ns() const {
  // Give up one refresh interval (at least a sixth of the stale age) before others may call
  // the lock stale, so the operation has stopped before anyone acts on that.
  TimeNs margin = std::max(lock_refresh_ns_, lock_stale_ns_ / 6);
  return std::max(lock_stale_ns_ - margin, lock_stale_ns_ / 2);
}

void Repository::refresh_loop() {
  // A refresh that hangs in retries once the lock is lost must not hold unlock() up.
  CancelScope scope(refresh_cancel_);
  TimeNs interval = lock_refresh_ns_;
  std::unique_lock<std::mutex> lk(lock_mu_);
  while (!refresh_cv_.wait_for(lk, std::chrono::nanoseconds(interval),
                               [&] { return stop_refresh_ || refresh_cancel_.cancelled(); })) {
    // A new lock object first, then the old one goes: the repository is never unlocked between.
    Lock l = lock_;
    l.refreshed = now();
    auto id = save_object(ObjectType::kLock, encode_lock(l));
    if (!id.ok()) {
      // Try again soon; the old lock stays valid meanwhile, and the watchdog gives up in time.
      std::lock_guard<std::mutex> g(lost_mu_);
      last_refresh_error_ = id.error().message();
      interval = std::max<TimeNs>(lock_refresh_ns_ / 5, 1000000);
      continue;
    }
    Status removed = backend_->remove({ObjectType::kLock, hex(*lock_id_)});
    Id old = *lock_id_;
    lock_id_ = *id;
    // Older lock objects whose removal failed before: try again now.
    std::vector<Id> left;
    for (const Id& earlier : superseded_) {
      Status st = backend_->remove({ObjectType::kLock, hex(earlier)});
      if (!st.ok() && st.error().code() != Error::Code::kNotFound) left.push_back(earlier);
    }
    superseded_ = std::move(left);
    if (!removed.ok() && removed.error().code() != Error::Code::kNotFound) {
      superseded_.push_back(old);  // left behind for now: removed at the next refresh or unlock
    }
    lock_ok_at_ = l.refreshed;
    {
      std::lock_guard<std::mutex> g(lost_mu_);
      held_lock_name_ = hex(*id);
    }
    interval = lock_refresh_ns_;
    if (!removed.ok() && removed.error().code() == Error::Code::kNotFound) {
      // Someone removed our lock ('haven unlock --remove-all', or a process that judged it
      // stale): from then on an exclusive holder may have deleted what we were writing.
      lose_lock(Error(Error::Code::kLocked,
                      "lock " + hex(old).substr(0, 8) +
                          " of this operation was removed by another process (a 'haven unlock "
                          "--remove-all', or a process that judged it stale); the operation "
                          "stopped so that nothing it wrote is referenced: run it again"));
      return;
    }
  }
}

void Repository::watch_lock() {
  while (true) {
    TimeNs left = lock_ok_at_.load() + lock_deadline_ns() - now();
    if (left <= 0) {
      std::string last;
      {
        std::lock_guard<std::mutex> g(lost_mu_);
        last = last_refresh_error_;
      }
      std::string name;
      {
        std::lock_guard<std::mutex> g(lost_mu_);
        name = held_lock_name_;
      }
      lose_lock(Error(
          Error::Code::kLocked,
          "lock " + name.substr(0, 8) + " could not be refreshed since " +
              format_time(lock_ok_at_.load()) + (last.empty() ? "" : " (last error: " + last + ")") +
              "; the operation stopped before other processes could consider the lock stale and "
              "delete data it is writing: make the repository's storage writable and run it "
              "again"));
      return;
    }
    if (lock_stop_.sleep_for(std::chrono::nanoseconds(left))) return;
  }
}

void Repository::lose_lock(Error why) {
  {
    std::lock_guard<std::mutex> g(lost_mu_);
    if (lock_lost_) return;
    lock_lost_ = why;
  }
  refresh_cancel_.cancel(why);
  cancel_.cancel(why);
}

Status Repository::check_lock() const {
  if (!lock_held_) return ok_status();
  {
    std::lock_guard<std::mutex> g(lost_mu_);
    if (lock_lost_) return *lock_lost_;
  }
  // The watchdog may not have run yet (the process was stopped, the machine slept).
  if (now() - lock_ok_at_.load() > lock_deadline_ns()) {
    return Error(Error::Code::kLocked,
                 "the repository lock of this operation was last refreshed at " +
                     format_time(lock_ok_at_.load()) +
                     ", too long ago to rely on it: run the operation again");
  }
  return ok_status();
}

Status Repository::unlock() {
  // Clean-up runs even when the operation was cancelled.
  UncancellableScope scope;
  if (refresher_.joinable()) {
    // A refresh hanging in retries must not hold the operation's end up; if its new lock
    // object was written after all, it is stale as soon as this process is gone.
    refresh_cancel_.cancel(Error(Error::Code::kCancelled, "unlocking"));
    {
      std::lock_guard<std::mutex> g(lock_mu_);
      stop_refresh_ = true;
    }
    refresh_cv_.notify_all();
    refresher_.join();
  }
  if (watchdog_.joinable()) {
    lock_stop_.cancel();
    watchdog_.join();
  }
  lock_held_ = false;
  for (const Id& id : superseded_) (void)backend_->remove({ObjectType::kLock, hex(id)});
  superseded_.clear();
  if (!lock_id_) return ok_status();
  Status st = backend_->remove({ObjectType::kLock, hex(*lock_id_)});
  lock_id_.reset();
  if (!st.ok() && st.error().code() == Error::Code::kNotFound) return ok_status();
  return st;
}

Result<std::vector<std::string>> Repository::remove_stale_locks(bool all) {
  std::string me = hostname();
  std::vector<std::string> names;
  HAVEN_TRY(backend_->list(ObjectType::kLock, [&](const storage::ObjectInfo& i) {
    names.push_back(i.name.name);
  }));
  std::optional<Id> own;
  {
    std::lock_guard<std::mutex> g(lock_mu_);  // the refresher replaces lock_id_
    own = lock_id_;
  }
  std::vector<std::string> removed;
  for (const auto& n : names) {
    if (own && n == hex(*own)) continue;
    std::string what = "lock " + n.substr(0, 8);
    bool remove = all;
    auto body = load_object(ObjectType::kLock, n);
    if (!body.ok() && body.error().code() == Error::Code::kNotFound) continue;
    if (!body.ok() && body.error().code() != Error::Code::kCorrupt) {
      return body.error().with_context("reading lock " + n.substr(0, 8));  // says nothing about it
    }
    Result<Lock> l = body.ok() ? decode_lock(*body, "lock " + n) : Result<Lock>(body.error());
    if (!l.ok() && l.error().code() != Error::Code::kCorrupt) return l.error();
    if (!l.ok()) {
      remove = true;  // junk or damage: nobody can hold it
      what += " (unreadable: " + l.error().message() + ")";
    } else {
      what = std::string(l->exclusive ? "exclusive" : "shared") + " lock " + n.substr(0, 8) +
             " of PID " + std::to_string(l->pid) + " on " + l->hostname;
      remove = remove || lock_is_stale(*l, me, lock_stale_ns_);
    }
    if (remove) {
      Status st = backend_->remove({ObjectType::kLock, n});
      if (st.ok()) removed.push_back(what);
      else if (st.error().code() != Error::Code::kNotFound) return st.error();
    }
  }
  return removed;
}

}  // namespace haven::repo

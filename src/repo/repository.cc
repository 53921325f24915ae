#include "repo/repository.h"

#include <algorithm>
#include <deque>
#include <future>
#include <map>

#include "repo/lock.h"
#include "util/cancel.h"
#include "util/sysinfo.h"

namespace haven::repo {

using storage::ObjectName;
using storage::ObjectType;

namespace {
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
  // master_ is never changed after this: the keys' addresses stay what is locked here.
  keys_locked_ = crypto::lock_in_memory(master_.id_key);
  keys_locked_ = crypto::lock_in_memory(master_.chunker_key) && keys_locked_;
  for (const auto& [generation, key] : master_.encryption) {
    keys_locked_ = crypto::lock_in_memory(key) && keys_locked_;
  }
}

Repository::~Repository() {
  crypto::unlock_in_memory(master_.id_key);
  crypto::unlock_in_memory(master_.chunker_key);
  for (const auto& [generation, key] : master_.encryption) crypto::unlock_in_memory(key);
}

namespace {
// A password for a new key file: not empty, and not of an access key's form (such a password is
// only ever tried on access-key files, so its key file would never open).
Status check_new_password(const std::string& password) {
  if (password.empty()) {
    return Error(Error::Code::kInvalidArgument, "empty password: choose a non-empty password");
  }
  if (is_access_key(password)) {
    return Error(Error::Code::kInvalidArgument,
                 "the password has the form of an access key (" + std::string(kAccessKeyPrefix) +
                     "...): choose another password, or make an access key with 'haven key add "
                     "--access-key-file FILE'");
  }
  return ok_status();
}
}  // namespace

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
  HAVEN_TRY(check_new_password(password));
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

namespace {

// The config's first `length` bytes (0: all of it), its header checked: kRepoNotFound if there
// is none. The version is checked before the password, so a newer repository is refused
// clearly.
Result<Bytes> load_config(storage::Backend& backend, uint64_t length) {
  auto raw = backend.load({ObjectType::kConfig, "config"}, 0, length);
  if (!raw.ok()) {
    if (raw.error().code() == Error::Code::kNotFound) {
      return Error(Error::Code::kRepoNotFound,
                   "there is no Haven repository at " + backend.location() +
                       " (check the path, or create one with 'haven init')");
    }
    // A config shorter than the header is a damaged repository, not a missing one.
    return raw.error().with_context("reading the repository config");
  }
  HAVEN_TRY(parse_header(*raw, "config"));
  return raw;
}

}  // namespace

namespace {
// Key files read ahead by probe(): a repository has one or a few; open() reads any beyond these
// itself, one at a time, only until one opens.
constexpr size_t kKeysReadAhead = 4;

// The key files, listed, in name order.
Result<std::vector<ProbedKey>> list_key_names(storage::Backend& backend) {
  std::vector<ProbedKey> keys;
  HAVEN_TRY(backend.list(ObjectType::kKey, [&](const storage::ObjectInfo& info) {
    keys.push_back({info.name.name, std::nullopt});
  }));
  std::sort(keys.begin(), keys.end(), [](const ProbedKey& x, const ProbedKey& y) { return x.id < y.id; });
  return keys;
}

// Reads the first `read_ahead` of `keys`. A key file read beside the listing (`hinted`, what
// the read gave) that is listed goes first instead, and the others are left to open(), which
// reads them only if that one does not open.
void read_keys_ahead(storage::Backend& backend, std::vector<ProbedKey>& keys, size_t read_ahead,
                     std::optional<ProbedKey> hinted = std::nullopt) {
  if (hinted && hinted->file && hinted->file->ok()) {
    auto it = std::find_if(keys.begin(), keys.end(), [&](const ProbedKey& k) { return k.id == hinted->id; });
    if (it != keys.end()) {
      it->file = std::move(hinted->file);
      std::rotate(keys.begin(), it, it + 1);
      return;
    }
  }
  for (size_t i = 0; i < keys.size() && i < read_ahead; i++) {
    keys[i].file = backend.load({ObjectType::kKey, keys[i].id});
  }
}

Result<std::vector<ProbedKey>> list_key_files(storage::Backend& backend, size_t read_ahead) {
  HAVEN_ASSIGN(std::vector<ProbedKey> keys, list_key_names(backend));
  read_keys_ahead(backend, keys, read_ahead);
  return keys;
}
}  // namespace

Result<Probe> Repository::probe(storage::Backend& backend, const std::string& key_hint) {
  // The key files are listed and read while the config is: on object storage, round trips that
  // need not wait for one another. Read before any password is known, they are only bytes.
  // The key file that opened last time is read beside the listing, not after it.
  const CancelToken token = current_cancel();
  std::future<Result<Bytes>> hinted;
  if (parse_id(key_hint)) {  // a key file's name; anything else is not read
    hinted = std::async(std::launch::async, [&backend, &key_hint, &token] {
      CancelScope scope(token);
      return backend.load({ObjectType::kKey, key_hint});
    });
  }
  auto keys = std::async(std::launch::async, [&backend, &key_hint, &hinted, &token] {
    CancelScope scope(token);
    Result<std::vector<ProbedKey>> listed = list_key_names(backend);
    std::optional<ProbedKey> hint;
    if (hinted.valid()) hint = ProbedKey{key_hint, hinted.get()};
    if (listed.ok()) read_keys_ahead(backend, *listed, kKeysReadAhead, std::move(hint));
    return listed;
  });
  Result<Bytes> config = load_config(backend, 0);  // a few hundred bytes, and open() needs them
  Result<std::vector<ProbedKey>> listed = keys.get();
  if (!config.ok()) return config.error();
  Probe p;
  p.config = std::move(*config);
  p.keys = std::move(listed);
  return p;
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

namespace {

// The config object as stored, and its header: what open() and open_copy() check before any
// key is tried (a repository is there, of a version this reader knows, and it is a config).
struct RawConfig {
  Bytes raw;
  Header header;
};

Result<RawConfig> read_raw_config(storage::Backend& backend, const std::optional<Bytes>& given = std::nullopt) {
  RawConfig rc;
  if (given) {
    rc.raw = *given;  // what probe() read
  } else {
    HAVEN_ASSIGN(rc.raw, load_config(backend, 0));  // one request (on object storage, a round trip)
  }
  HAVEN_ASSIGN(rc.header, parse_header(rc.raw, "config"));
  if (rc.header.kind != ObjectKind::kConfig) {
    return Error(Error::Code::kCorrupt, "config: wrong object kind");
  }
  return rc;
}

}  // namespace

Result<std::unique_ptr<Repository>> Repository::open(std::shared_ptr<storage::Backend> backend,
                                                     const std::string& password,
                                                     const OpenOptions& options) {
  // What about the config does not depend on a key is checked first.
  HAVEN_ASSIGN(RawConfig rc, read_raw_config(*backend, options.config));
  const ObjectName config_name{ObjectType::kConfig, "config"};
  const Bytes& raw_config = rc.raw;
  const Header& config_header = rc.header;

  // The key files, in name order: as probe() listed (and partly read) them, or listed now.
  Result<std::vector<ProbedKey>> listed =
      options.keys ? *options.keys : list_key_files(*backend, 0);
  HAVEN_TRY(listed);
  std::vector<ProbedKey>& keys = *listed;
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
  std::vector<std::string> too_big;                            // key files over max_kdf_memory
  for (auto& key : keys) {
    if (master && !options.try_all_keys) break;
    const std::string& id = key.id;
    Result<Bytes> file = key.file ? std::move(*key.file) : backend->load({ObjectType::kKey, id});
    if (!file.ok()) {
      if (file.error().code() == Error::Code::kNotFound) continue;  // removed meanwhile
      unreadable.push_back(file.error().with_context("key " + id));
      continue;
    }
    if (options.max_kdf_memory != 0 && !is_access_key(password)) {
      auto info = read_key_file_info(*file, "key " + id);
      if (info.ok() && !info->access_key && info->kdf.memory > options.max_kdf_memory) {
        too_big.push_back(id.substr(0, 8) + " (" + std::to_string(info->kdf.memory >> 20) + " MiB)");
        continue;
      }
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
  // Not "wrong password" while keys it may open were left untried (an access-key file beside
  // them fails on any password).
  if (!master && !too_big.empty()) {
    std::string keys;
    for (const auto& k : too_big) keys += (keys.empty() ? "" : ", ") + k;
    return Error(Error::Code::kInvalidArgument,
                 "the memory limit leaves " + std::to_string(options.max_kdf_memory >> 20) +
                     " MiB for deriving the key from the password, and key " + keys +
                     " needs more for Argon2id: open the repository with an access key ('haven "
                     "key add --access-key-file', which needs no memory to derive) or raise the "
                     "limit");
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
  return repo;
}

Result<std::unique_ptr<Repository>> Repository::open_copy(std::shared_ptr<storage::Backend> backend,
                                                          const Repository& original) {
  HAVEN_ASSIGN(RawConfig rc, read_raw_config(*backend));
  const ObjectName config_name{ObjectType::kConfig, "config"};
  const Bytes& raw_config = rc.raw;
  const Header& config_header = rc.header;
  if (hex(config_header.salt) != original.fingerprint_) {
    return Error(Error::Code::kInvalidArgument,
                 backend->location() + " holds another repository (repository " +
                     hex(config_header.salt).substr(0, 16) + ", not " +
                     original.fingerprint_.substr(0, 16) + ")");
  }
  std::unique_ptr<Repository> repo(new Repository(backend, original.master_, original.key_id_));
  HAVEN_ASSIGN(Bytes body, repo->open_object(ObjectKind::kConfig, config_name, raw_config));
  HAVEN_ASSIGN(repo->config_, decode_config(body));
  repo->fingerprint_ = original.fingerprint_;
  repo->index_options_ = original.index_options_;
  repo->memory_ = original.memory_;
  repo->index_ = Index(repo->index_options_);
  repo->lock_refresh_ns_ = original.lock_refresh_ns_.load();
  repo->lock_stale_ns_ = original.lock_stale_ns_.load();
  repo->lock_wait_ = original.lock_wait_;
  return repo;
}

chunker::Chunker Repository::make_chunker() const {
  return chunker::Chunker(config_.chunker, master_.gear_table());
}

Id Repository::blob_id(ByteView data) const {
  return config_.id_hash == BlobIdFunction::kHmacSha256 ? crypto::hmac_sha256(master_.id_key, data)
                                                : crypto::keyed_hash(master_.id_key, data);
}

std::pair<Id, Id> Repository::blob_ids(ByteView a, ByteView b) const {
  const ByteView data[2] = {a, b};
  Id ids[2];
  blob_ids(data, ids);
  return {ids[0], ids[1]};
}

void Repository::blob_ids(std::span<const ByteView> data, std::span<Id> ids) const {
  if (config_.id_hash == BlobIdFunction::kHmacSha256) return crypto::hmac_sha256_many(master_.id_key, data, ids);
  for (size_t i = 0; i < data.size(); i++) ids[i] = crypto::keyed_hash(master_.id_key, data[i]);
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
  // In place: an index file of 10,000 blobs is ~0.4 MB, and three copies of it (read, opened,
  // decoded) were most of a re-backup's peak while the index loaded.
  auto body = open_object_in_place(master_, kind_of(type), on, std::move(raw));
  if (body.ok() || body.error().code() != Error::Code::kCorrupt) return body;
  // Damaged here: another region's copy, where the repository has one.
  auto other = backend_->load_other_copy(on, 0, 0, body.error());
  if (!other.ok()) return body;
  return open_object_in_place(master_, kind_of(type), on, std::move(*other));
}

Status Repository::load_objects(ObjectType type, const std::vector<std::string>& names,
                                const std::function<Status(const std::string&, Result<Bytes>)>& fn) {
  // The objects are fetched and opened a few ahead on threads of their own and handed over here
  // in order. (std::async's futures wait for their fetch when destroyed, so an early return
  // leaves none running on `names`.) An index file held ahead is ~0.5 MB (10,000 blobs): as many
  // as the backend's loads_ahead() (one on a local disk, where four made a 200,000-file
  // re-backup's peak 3 MB higher for no time saved), two at most under a memory limit.
  // Snapshots, a few KB each, go four times as far ahead where the backend reads ahead at all:
  // `haven snapshots` of 5 snapshots over +30 ms waited a round trip for the fifth.
  size_t want = backend_->loads_ahead();
  if (type == ObjectType::kSnapshot && want > 1) want *= 4;
  const size_t ahead_max = std::clamp<size_t>(want, 1, memory_.limited() ? 2 : 16);
  const CancelToken token = current_cancel();  // the fetching threads run under the caller's
  std::deque<std::future<Result<Bytes>>> ahead;
  size_t next = 0;
  for (const auto& name : names) {
    while (ahead.size() < ahead_max && next < names.size()) {
      ahead.push_back(std::async(std::launch::async, [this, type, &token, &n = names[next]] {
        CancelScope scope(token);
        return load_object(type, n);
      }));
      next++;
    }
    Result<Bytes> body = ahead.front().get();
    ahead.pop_front();
    HAVEN_TRY(fn(name, std::move(body)));
  }
  return ok_status();
}

Result<Id> Repository::save_object(ObjectType type, ByteView body) {
  Id id = random_id();
  HAVEN_ASSIGN(Bytes sealed, seal_object_with_salt(kind_of(type), id, body));
  HAVEN_TRY(backend_->save_new({type, hex(id)}, sealed));
  return id;
}

// ---------------------------------------------------------------------------------------------
// Index and blobs

void Repository::set_index_options(IndexOptions options) {
  std::unique_lock<std::shared_mutex> g(index_mu_);
  index_options_ = std::move(options);
  if (!index_loaded_) index_ = Index(index_options_);
}

Status Repository::load_index() { return load_index({}); }

Result<std::unique_ptr<Index>> Repository::read_index(
    const std::function<void(const std::string&, const Error&)>& on_bad) {
  HAVEN_ASSIGN(auto names, list_index_files());
  IndexOptions options;
  {
    std::shared_lock<std::shared_mutex> g(index_mu_);
    options = index_options_;
  }
  auto index = std::make_unique<Index>(options);
  // Each blob goes into the index as it is decoded (neither a file's list of packs nor a pack's
  // list of blobs is held).
  HAVEN_TRY(load_objects(ObjectType::kIndex, names, [&](const std::string& name, Result<Bytes> body) -> Status {
    Status s = body.ok() ? decode_index_file(*body, "index " + name, *index) : Status(body.error());
    if (!s.ok()) {
      if (!on_bad) return s.error();
      on_bad(name, s.error());
    }
    return ok_status();
  }));
  index->compact();
  HAVEN_TRY(index->status());
  return index;
}

Status Repository::load_index(
    const std::function<void(const std::string&, const Error&)>& on_bad) {
  // The index is built afresh and replaces the old one: after a prune or repair, locations
  // this process knew may be gone. Index files sessions write while it is read may be missing
  // from the listing: add_indexed_packs() keeps them for the swap.
  {
    std::unique_lock<std::shared_mutex> g(index_mu_);
    reloads_++;
  }
  auto fresh = read_index(on_bad);
  std::unique_lock<std::shared_mutex> g(index_mu_);
  if (fresh.ok()) {
    for (const auto& p : indexed_during_reload_) (*fresh)->add_pack(p);
    index_ = std::move(**fresh);
    index_loaded_ = true;
  }
  if (--reloads_ == 0) indexed_during_reload_.clear();
  if (!fresh.ok()) return fresh.error();
  return ok_status();
}

bool Repository::index_loaded() const {
  std::shared_lock<std::shared_mutex> g(index_mu_);
  return index_loaded_;
}

void Repository::unload_index() {
  std::unique_lock<std::shared_mutex> g(index_mu_);
  index_ = Index(index_options_);
  index_loaded_ = false;
}

void Repository::add_indexed_packs(const std::vector<PackRecord>& packs) {
  std::unique_lock<std::shared_mutex> g(index_mu_);
  for (const auto& p : packs) index_.add_pack(p);
  if (reloads_ > 0) {
    indexed_during_reload_.insert(indexed_during_reload_.end(), packs.begin(), packs.end());
  }
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
  const Id id = random_id();
  Bytes sealed;
  {
    const Bytes body = encode_index_file(packs);
    HAVEN_ASSIGN(sealed, seal_object_with_salt(ObjectKind::kIndex, id, body));
  }  // the body is gone before the upload, which may take a while on object storage
  HAVEN_TRY(backend_->save_new({ObjectType::kIndex, hex(id)}, sealed));
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

bool Repository::has_blob(BlobType type, const Id& id) const {
  std::shared_lock<std::shared_mutex> g(index_mu_);
  return index_.contains(type, id);
}

Repository::IndexFootprint Repository::index_footprint() const {
  std::shared_lock<std::shared_mutex> g(index_mu_);
  return {index_.blob_count(), index_.memory_bytes(), index_.spilled_count()};
}

size_t Repository::index_blob_count() const {
  std::shared_lock<std::shared_mutex> g(index_mu_);
  return index_.blob_count();
}

std::optional<uint32_t> Repository::blob_raw_length(BlobType type, const Id& id) const {
  std::shared_lock<std::shared_mutex> g(index_mu_);
  auto loc = index_.find(type, id);
  if (!loc) return std::nullopt;
  return loc->raw_length;
}

Result<Bytes> Repository::load_blob(BlobType type, const Id& id) {
  return load_located_blob(type, id, locate_blob(type, id));
}

Result<Bytes> Repository::load_blob(BlobType type, const Id& id, const Index& index) {
  return load_located_blob(type, id, index.find(type, id));
}

Result<Bytes> Repository::load_located_blob(BlobType type, const Id& id,
                                            const std::optional<BlobLocation>& loc) {
  if (!loc) {
    return Error(Error::Code::kNotFound,
                 std::string(blob_type_name(type)) + " blob " + hex(id) + " is not in the index");
  }
  const ObjectName pack{ObjectType::kData, hex(loc->pack_id)};
  auto sealed = backend_->load(pack, loc->offset, loc->length);
  if (!sealed.ok()) {
    return sealed.error().with_context(std::string(blob_type_name(type)) + " blob " + hex(id) +
                                       " in pack " + hex(loc->pack_id));
  }
  auto plain = open_located_blob(type, id, *loc, *sealed);
  if (plain.ok() || plain.error().code() != Error::Code::kCorrupt) return plain;
  auto other = backend_->load_other_copy(pack, loc->offset, loc->length, plain.error());
  if (!other.ok()) return plain;
  return open_located_blob(type, id, *loc, *other);
}

std::optional<BlobLocation> Repository::locate_blob(BlobType type, const Id& id) const {
  std::shared_lock<std::shared_mutex> g(index_mu_);
  return index_.find(type, id);
}

std::vector<std::pair<Id, BlobLocation>> Repository::blobs_in_pack(BlobType type, const Id& pack_id) const {
  std::shared_lock<std::shared_mutex> g(index_mu_);
  return blobs_in_pack(index_, type, pack_id);
}

std::vector<std::pair<Id, BlobLocation>> Repository::blobs_in_pack(const Index& index, BlobType type,
                                                                   const Id& pack_id) {
  std::vector<std::pair<Id, BlobLocation>> out;
  std::optional<uint32_t> no;
  for (uint32_t i = 0; i < index.pack_count() && !no; i++) {
    if (index.pack_id(i) == pack_id) no = i;
  }
  if (!no) return out;
  const uint32_t generation = index.pack_key_generation(*no);
  index.for_each([&](size_t, const IndexEntry& e) {
    if (e.pack == *no && e.type == type) {
      out.emplace_back(e.id, BlobLocation{pack_id, generation, e.offset, e.length, e.raw_length});
    }
  });
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second.offset < b.second.offset; });
  return out;
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

Result<ByteView> Repository::open_located_blob_in_place(BlobType type, const Id& id,
                                                        const BlobLocation& loc,
                                                        std::span<uint8_t> sealed,
                                                        PackKeys& keys, Scratch& scratch) const {
  auto what = [&] {
    return std::string(blob_type_name(type)) + " blob " + hex(id) + " in pack " + hex(loc.pack_id);
  };
  if (sealed.size() != loc.length) return Error(Error::Code::kCorrupt, what() + ": pack is truncated");
  const crypto::SecretKey* key = master_.encryption_key(loc.key_generation);
  if (key == nullptr) return Error(Error::Code::kCorrupt, what() + ": unknown key generation");
  return open_blob_in_place(*key, keys, loc.pack_id, loc.key_generation, type, id, loc.offset,
                            sealed, loc.raw_length, what, scratch);
}

// ---------------------------------------------------------------------------------------------
// Snapshots and trees

Result<Snapshot> Repository::load_snapshot(const Id& id) {
  HAVEN_ASSIGN(Bytes body, load_object(ObjectType::kSnapshot, hex(id)));
  return decode_snapshot(body, "snapshot " + hex(id));
}

Status Repository::for_each_snapshot(
    const std::function<Status(const std::string&, std::optional<Id>, Result<Snapshot>&)>& fn,
    const std::function<void(size_t)>& listed) {
  std::vector<std::string> names, loaded;
  HAVEN_TRY(backend_->list(ObjectType::kSnapshot, [&](const storage::ObjectInfo& i) {
    names.push_back(i.name.name);
  }));
  std::sort(names.begin(), names.end());  // the same order on every backend
  if (listed) listed(names.size());
  // Names that are not snapshot IDs are handed over first, unread.
  for (const auto& n : names) {
    if (parse_id(n)) {
      loaded.push_back(n);
    } else {
      Result<Snapshot> none = Error(Error::Code::kCorrupt, "'" + n + "' is not a snapshot ID");
      HAVEN_TRY(fn(n, std::nullopt, none));
    }
  }
  return load_objects(ObjectType::kSnapshot, loaded, [&](const std::string& n, Result<Bytes> body) {
    Result<Snapshot> snap = body.ok() ? decode_snapshot(*body, "snapshot " + n) : Result<Snapshot>(body.error());
    return fn(n, parse_id(n), snap);
  });
}

Result<std::vector<std::pair<Id, Snapshot>>> Repository::list_snapshots(std::vector<Error>* damaged) {
  std::vector<std::pair<Id, Snapshot>> out;
  HAVEN_TRY(for_each_snapshot([&](const std::string&, std::optional<Id> id, Result<Snapshot>& s) -> Status {
    if (!id) return ok_status();
    if (!s.ok()) {
      if (damaged == nullptr || s.error().code() != Error::Code::kCorrupt) return s.error();
      damaged->push_back(s.error());
      return ok_status();
    }
    out.emplace_back(*id, std::move(*s));
    return ok_status();
  }));
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

Result<Tree> Repository::load_tree(const Id& id, const Index& index) {
  HAVEN_ASSIGN(Bytes body, load_blob(BlobType::kTree, id, index));
  return decode_tree(body, "tree " + hex(id));
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
  HAVEN_TRY(check_new_password(password));
  std::string id = hex(random_id());
  HAVEN_TRY(backend_->save_new({ObjectType::kKey, id}, make_key_file(master_, password, kdf)));
  return id;
}

Result<std::string> Repository::add_access_key(const std::string& access_key) {
  if (!is_access_key(access_key)) {
    return Error(Error::Code::kInvalidArgument, "not an access key: make one with generate_access_key()");
  }
  std::string id = hex(random_id());
  HAVEN_TRY(backend_->save_new({ObjectType::kKey, id}, make_access_key_file(master_, access_key)));
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
// Locks (held by sessions: repo/lock.cc)

void Repository::register_lock(const HeldLock* l) {
  std::lock_guard<std::mutex> g(locks_mu_);
  held_locks_.insert(l);
}

void Repository::unregister_lock(const HeldLock* l) {
  std::lock_guard<std::mutex> g(locks_mu_);
  held_locks_.erase(l);
}

Result<std::vector<std::string>> Repository::remove_stale_locks(bool all) {
  std::set<std::string> own;
  {
    std::lock_guard<std::mutex> g(locks_mu_);
    for (const HeldLock* l : held_locks_) {
      std::string n = l->name();
      if (!n.empty()) own.insert(n);
    }
  }
  return repo::remove_stale_locks(*this, all, own);
}

}  // namespace haven::repo

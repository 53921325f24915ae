#include "ops/wal.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>

#include "ops/ops.h"
#include "pg/wal_spool.h"
#include "repo/format.h"

namespace haven::ops {

namespace {

std::string base_name(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The key for WAL objects sealed with `generation` (nullopt: the current one).
Result<pg::WalKey> wal_key(storage::Backend& /*backend*/, const std::string& key_file,
                           const RepositoryOpener& open_repository,
                           std::optional<uint32_t> generation = std::nullopt) {
  if (!key_file.empty()) return pg::read_wal_key_file(key_file);
  if (!open_repository) {
    return invalid("no WAL key file given (--wal-key-file) and no way to open the repository");
  }
  HAVEN_ASSIGN(auto repo, open_repository());
  return repo->wal_key(generation);
}

}  // namespace

Status validate(const WalPushRequest& r) {
  const std::string name = base_name(r.path);
  if (!pg::is_wal_file_name(name)) {
    return invalid("'" + name + "' is not a WAL file name: wal-push takes %p from archive_command");
  }
  return ok_status();
}

Result<WalPushResult> wal_push(storage::Backend& backend, const WalPushRequest& request,
                               const RepositoryOpener& open_repository) {
  HAVEN_TRY(validate(request));
  WalPushResult out;
  out.name = base_name(request.path);
  HAVEN_ASSIGN(pg::MappedWalFile file, pg::MappedWalFile::open(request.path));
  HAVEN_ASSIGN(pg::WalKey key, wal_key(backend, request.wal_key_file, open_repository));
  // A segment compresses on every core: archive_command runs one segment at a time.
  const int workers = static_cast<int>(std::min(4u, std::max(1u, std::thread::hardware_concurrency())));
  HAVEN_ASSIGN(pg::PushOutcome pushed,
               pg::push(backend, key, out.name, file.bytes(), repo::Compression::kLow, workers));
  out.already_archived = pushed == pg::PushOutcome::kAlreadyIdentical;
  return out;
}

Status validate(const WalFetchRequest& r) {
  if (!pg::is_wal_file_name(r.name)) {
    return invalid("'" + r.name +
                   "' is not a WAL file name: wal-fetch takes %f %p from restore_command");
  }
  if (r.path.empty()) return invalid("no destination given: wal-fetch takes %f %p from restore_command");
  if (r.prefetch > 0 && r.spool.empty()) {
    return invalid("--prefetch needs --spool DIR: the directory the segments fetched ahead wait in");
  }
  if (r.prefetch > 64) {
    return invalid("--prefetch " + std::to_string(r.prefetch) + " is too many: at most 64 segments ahead");
  }
  if (!r.spool.empty() && r.wal_key_file.empty()) {
    return invalid("--spool needs --wal-key-file: the prefetch runs in the background and cannot ask for a password");
  }
  return ok_status();
}

namespace {
// How long wal-fetch waits for a segment the running prefetch is fetching before fetching it
// itself (a prefetch stalled on the network must not stall recovery for longer).
constexpr auto kPlannedWait = std::chrono::seconds(60);

// A segment the running prefetch is fetching: waits for it to be spooled, then takes it.
Result<std::optional<uint64_t>> take_spooled(const pg::WalSpool& spool, const WalFetchRequest& r) {
  HAVEN_ASSIGN(auto taken, spool.take(r.name, r.path));
  const auto deadline = std::chrono::steady_clock::now() + kPlannedWait;
  while (!taken && spool.planned(r.name) && std::chrono::steady_clock::now() < deadline) {
    HAVEN_TRY(current_cancel().check());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    HAVEN_ASSIGN(taken, spool.take(r.name, r.path));
  }
  return taken;
}
}  // namespace

Result<WalFetchResult> wal_fetch(storage::Backend& backend, const WalFetchRequest& request,
                                 const RepositoryOpener& open_repository) {
  HAVEN_TRY(validate(request));
  WalFetchResult out;
  std::optional<pg::WalSpool> spool;
  if (!request.spool.empty()) {
    spool.emplace(request.spool);
    HAVEN_ASSIGN(auto taken, take_spooled(*spool, request));
    if (taken) {
      out.found = out.from_spool = true;
      out.bytes = *taken;
    }
  }
  if (!out.found) {
    auto object = backend.load({storage::ObjectType::kWal, request.name});
    if (!object.ok() && object.error().code() == Error::Code::kNotFound) return out;
    if (!object.ok()) return object.error();
    std::optional<uint32_t> generation;
    if (request.wal_key_file.empty()) {
      // Without a key file, the key comes from the master key: the generation the object was
      // sealed with.
      HAVEN_ASSIGN(repo::Header h, repo::parse_header(*object, "WAL file " + request.name));
      generation = h.key_generation;
    }
    HAVEN_ASSIGN(pg::WalKey key, wal_key(backend, request.wal_key_file, open_repository, generation));
    Scratch scratch;
    HAVEN_ASSIGN(ByteView data, repo::open_wal_object_view(key, request.name, *object, scratch));
    HAVEN_TRY(pg::write_local_wal_file(request.path, data));
    out.found = true;
    out.bytes = data.size();
  }
  if (spool && pg::parse_segment_name(request.name)) {
    spool->drop_before(request.name);
    // Refilled when half the window is used up, by one prefetch at a time.
    std::vector<std::string> missing;
    for (const auto& n : pg::next_segment_names(request.name, out.bytes, request.prefetch)) {
      if (!spool->has(n)) missing.push_back(n);
    }
    if (missing.size() * 2 >= request.prefetch && !missing.empty() && !spool->prefetch_running()) {
      HAVEN_TRY(spool->create());
      out.fetch_ahead = std::move(missing);
    }
  }
  return out;
}

Status validate(const WalPrefetchRequest& r) {
  if (r.names.empty()) return invalid("no segments to prefetch");
  for (const auto& n : r.names) {
    if (!pg::parse_segment_name(n)) return invalid("'" + n + "' is not a WAL segment name");
  }
  if (r.spool.empty()) return invalid("--spool: give the spool directory");
  if (r.wal_key_file.empty()) return invalid("--wal-key-file: a prefetch needs the WAL key file");
  if (r.threads == 0) return invalid("threads must be at least 1");
  return ok_status();
}

Result<WalPrefetchResult> wal_prefetch(storage::Backend& backend, const WalPrefetchRequest& request) {
  HAVEN_TRY(validate(request));
  WalPrefetchResult out;
  pg::WalSpool spool(request.spool);
  HAVEN_TRY(spool.create());
  HAVEN_ASSIGN(bool mine, spool.lock());
  if (!mine) {
    out.other_running = true;
    return out;
  }
  std::vector<std::string> names;
  for (const auto& n : request.names) {
    if (!spool.has(n)) names.push_back(n);
  }
  HAVEN_TRY(spool.write_plan(names));
  HAVEN_ASSIGN(pg::WalKey key, pg::read_wal_key_file(request.wal_key_file));
  // Segments are taken in order; the first one not archived ends the prefetch (nothing after
  // it can be archived yet), and so does the first error (wal-fetch then fetches for itself).
  std::atomic<size_t> next{0}, stop{names.size()}, fetched{0};
  std::mutex mu;
  std::optional<Error> failure;
  const CancelToken& cancel = current_cancel();
  auto worker = [&] {
    CancelScope scope(cancel);
    Bytes object;
    Scratch scratch;
    for (size_t i; (i = next++) < stop.load();) {
      auto data = pg::fetch_view(backend, key, names[i], object, scratch);
      Status st = data.ok() ? spool.put(names[i], *data) : Status(data.error());
      if (!st.ok()) {
        size_t s = stop.load();
        while (i < s && !stop.compare_exchange_weak(s, i)) {
        }
        if (st.error().code() != Error::Code::kNotFound) {
          std::lock_guard<std::mutex> g(mu);
          if (!failure) failure = st.error();
        }
        continue;
      }
      fetched++;
    }
  };
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < std::min<size_t>(request.threads, names.size()); t++) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  HAVEN_TRY(spool.write_plan({}));
  out.fetched = fetched;
  out.end_of_archive = stop.load() < names.size() && !failure;
  if (failure) return *failure;
  return out;
}

Status validate(const ArchiveKeyRequest& r) {
  if (r.output.empty()) return invalid("--output: give the path of the WAL key file to write");
  return ok_status();
}

Status archive_key(repo::Repository& repo, const ArchiveKeyRequest& request) {
  HAVEN_TRY(validate(request));
  HAVEN_ASSIGN(pg::WalKey key, repo.wal_key());
  return pg::write_wal_key_file(request.output, key, request.force);
}

}  // namespace haven::ops

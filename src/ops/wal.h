// ops/wal.h — the WAL archive's front doors: `wal-push` (PostgreSQL's archive_command),
// `wal-fetch` (its restore_command) and `pg archive-key` (writes the WAL key file both use).
// Engine: pg/wal.h. Conventions: ops/ops.h, except that these work on the storage backend: with
// a WAL key file they need no password (archive_command runs once per segment; Argon2id on
// every call would throttle archiving), and only without one do they open the repository.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pg/wal.h"
#include "repo/repository.h"
#include "storage/backend.h"

namespace haven::ops {

// Opens the repository with its password (the front end's way: prompt, file, variable); called
// at most once, and only when a WAL operation has no key file.
using RepositoryOpener = std::function<Result<std::unique_ptr<repo::Repository>>()>;

struct WalPushRequest {
  std::string path;          // the WAL file (%p); its name must be a WAL file name
  std::string wal_key_file;  // "": derive the key from the repository's master key
};
struct WalPushResult {
  std::string name;
  // The name was taken by identical contents (a retry of an archived file): success. Different
  // contents under a taken name are kAlreadyExists, and nothing is replaced.
  bool already_archived = false;
};
Status validate(const WalPushRequest& request);
Result<WalPushResult> wal_push(storage::Backend& backend, const WalPushRequest& request,
                               const RepositoryOpener& open_repository);

struct WalFetchRequest {
  std::string name;          // the WAL file name (%f)
  std::string path;          // where to write it (%p); written whole or not at all
  std::string wal_key_file;  // "": derive the key from the repository's master key
  // Fetching ahead (pg/wal_spool.h): the file is taken from this spool directory when a
  // prefetch put it there (waiting for it if the running prefetch is fetching it), and the
  // result names the segments to fetch ahead, up to `prefetch` past this one. Needs a key file
  // (the prefetch runs unattended).
  std::string spool{};
  unsigned prefetch = 0;
};
struct WalFetchResult {
  // False: not archived (PostgreSQL asks for files past the end of the archive while
  // recovering: not an error, and nothing is written).
  bool found = false;
  uint64_t bytes = 0;
  bool from_spool = false;
  // Segments to fetch ahead into the spool (wal_prefetch()), when too few are there and no
  // prefetch is running. The front end starts that in the background and answers at once.
  std::vector<std::string> fetch_ahead;
};
Status validate(const WalFetchRequest& request);
Result<WalFetchResult> wal_fetch(storage::Backend& backend, const WalFetchRequest& request,
                                 const RepositoryOpener& open_repository);

struct WalPrefetchRequest {
  std::vector<std::string> names;  // consecutive segments, in order
  std::string spool;               // the spool directory (created if missing)
  std::string wal_key_file;        // required
  unsigned threads = 2;            // segments fetched at once
};
struct WalPrefetchResult {
  size_t fetched = 0;          // segments put in the spool
  bool other_running = false;  // another prefetch holds the spool: this one did nothing
  bool end_of_archive = false; // a segment was not archived (the later ones were not fetched)
};
Status validate(const WalPrefetchRequest& request);
// Fetches the segments into the spool on `threads` threads, under the spool's lock; stops at
// the first one not archived.
Result<WalPrefetchResult> wal_prefetch(storage::Backend& backend, const WalPrefetchRequest& request);

struct ArchiveKeyRequest {
  std::string output;  // the key file to write (mode 0600)
  bool force = false;  // replace an existing file
};
Status validate(const ArchiveKeyRequest& request);
// Derives the WAL key for the repository's current key generation and writes the key file.
Status archive_key(repo::Repository& repo, const ArchiveKeyRequest& request);

}  // namespace haven::ops

// restore/restore.h — writes a snapshot's tree (or part of it) back to a directory: content
// (holes stay holes: all-zero chunks become holes), types (files, dirs, symlinks, hard links,
// fifos, devices), mode, owner, times, extended attributes and ACLs.
//
// Safety: every entry name is checked before use (no "", ".", "..", "/" or NUL; no duplicate
// names in a directory), files are opened with O_NOFOLLOW and directories are never entered
// through a symlink, so a hostile snapshot cannot write outside the target. A blob that fails
// authentication makes its file fail (the partial file is removed); other files still restore.
//
// Reading: the walker gathers files into batches (bounded by batch_files and batch_blobs); a
// batch's blobs are grouped by pack and neighbours are fetched in one ranged read (gaps up to
// max_gap are read and dropped, a read is at most max_range), on parallel reader threads. A
// blob shared by several files is read once. Memory: two batch plans (one being read while the
// next is planned) plus at most max_in_flight bytes of ranges. From a backend that
// streams_reads() (object storage) a reader holds no range: it assembles each blob from the
// pieces as they arrive, so it is charged the largest blob of its range (and a buffer to
// decompress it into) instead, and more readers wait out their round trips side by side.
//
// Paths: the tree-level run() takes includes and excludes in the stored form ("app/config",
// relative to the snapshot's root tree); the snapshot-level run() also takes them as the user
// backed them up ("/srv/app/config"), see repo/paths.h, and refuses an include that names
// nothing.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "repo/repository.h"
#include "repo/session.h"
#include "util/events.h"

namespace haven::restore {

enum class Overwrite { kNever, kIfChanged, kAlways };
Result<Overwrite> parse_overwrite(const std::string& s);

struct Options {
  std::string target;
  std::vector<std::string> includes;  // snapshot paths ("etc/hosts" or "/etc/hosts"); empty = all
  std::vector<std::string> excludes;  // snapshot paths or glob patterns
  bool verify = false;                // re-read written files and check them against blob IDs
  bool sync = false;                  // fdatasync each file when its last blob is written
  // Leave restored files' pages in the page cache (pg restore: the server reads them next).
  // Otherwise a file of 1 MiB or more is written back as it is written, what is written back
  // leaves the cache each time a run is written, and the rest when the file is complete;
  // unless the disk does not keep up: while the system has more than max_writeback bytes
  // under writeback (/proc/meminfo), restore starts no writeback and waits for none, and
  // leaves the pages to the kernel as it would with keep_cached.
  bool keep_cached = false;
  uint64_t max_writeback = 64 << 20;
  Overwrite overwrite = Overwrite::kNever;
  // Reader threads; 0: one per core, at least 4 (16 from a backend that streams_reads(): they
  // spend most of their time waiting for the store's answer).
  unsigned threads = 0;
  size_t batch_files = 4096;          // files open at once (also capped by the open-file limit)
  size_t batch_blobs = 65536;         // blob placements planned at once
  uint64_t max_gap = 256 << 10;       // bytes between two blobs still read in one request
  uint64_t max_range = 16 << 20;      // bytes per request at most
  // Bytes of ranges read and not yet written out, across all readers (memory): a reader waits
  // for room before it reads (one range is always allowed, however large). From a backend that
  // streams_reads(), what readers hold instead: each its range's largest blob and room to
  // decompress one.
  uint64_t max_in_flight = 32 << 20;
  // Threads that load directory trees ahead of the walker (repo/tree_ahead.h), holding at
  // most tree_ahead_bytes of trees it has not reached. 0: 8 on object storage (a tree is a
  // request there), none on a local disk.
  unsigned tree_threads = 0;
  uint64_t tree_ahead_bytes = 16 << 20;
};

struct Summary {
  uint64_t files = 0, dirs = 0, others = 0, bytes = 0;
  uint64_t skipped = 0;   // existing files left alone (overwrite never / unchanged)
  uint64_t verified = 0;  // files re-read and checked
  uint64_t errors = 0;    // files that failed (damaged data, I/O)
  // Set when the snapshot restored may not be the one asked for (see Choice).
  std::string substitution;
};

// The snapshot a restore gets: `ref` ("latest", or an ID or unique prefix), or with `at` the
// newest snapshot at or before that time.
//
// A snapshot object that cannot be read (damaged) has no readable time, so it might be the
// newest, or the newest at or before `at`. Then the choice is the newest readable one, and
// `damaged` names every unreadable snapshot not known to be older than it (a readable snapshot
// no newer than the choice that names it as its parent proves it older), and `substitution`
// says so in one sentence: the caller must not present the restore as plainly the one asked
// for (the CLI exits 3). A snapshot named by ID that cannot be read is an error, never
// substituted. Errors: kNotFound (no snapshot, none at or before `at`), kInvalidArgument (bad
// or ambiguous ID), kCorrupt (a damaged snapshot named by ID).
struct Choice {
  repo::Id id{};
  repo::Snapshot snapshot;
  std::vector<repo::Id> damaged;
  std::string substitution;
};
Result<Choice> choose_snapshot(repo::Repository& repo, const std::string& ref,
                               std::optional<TimeNs> at = std::nullopt);

// Restores tree `root` into options.target. Events (util/events.h): restore:initiated,
// restore:progress (phase "files"), restore:warning (a file skipped), restore:error (a file
// failed), restore:validated (with verify: files verified, errors), then restore:completed
// (summary_json, plus "snapshot" and any "substitution"), restore:failed or restore:cancelled.
// Returns an Error only for failures that stop the whole
// restore (bad options, an unsafe name, the target unusable); per-file failures are counted.
// Runs in `session` (which holds the shared lock, and whose token it runs under) and reads
// through the repository's shared index; sessions that back up at the same time do not
// disturb it.
Result<Summary> run(repo::Session& session, const repo::Id& root, const Options& options,
                    const EventTarget& events);

// Restores a chosen snapshot. Includes and excludes may be original paths or stored forms
// (repo/paths.h); an include that names nothing in the snapshot is kNotFound, naming it and the
// snapshot's top-level paths, before anything is written. A substitution (Choice) is emitted
// as a restore:warning event first, and is in the restore:completed event and
// Summary::substitution.
Result<Summary> run(repo::Session& session, const Choice& choice, const Options& options,
                    const EventTarget& events);

// The summary's fields as JSON (restore:completed, the CLI's --json).
nlohmann::json summary_json(const Summary& s);

namespace detail {
// A field of /proc/meminfo's text ("Writeback:"), in bytes; nullopt if it is not there.
std::optional<uint64_t> meminfo_bytes(std::string_view meminfo, std::string_view field);

// The byte ranges written of a file, sorted and apart (touching ones merge). At most kMost:
// beyond that, the two closest join, gap and all (the pages at that gap's edges may then be
// let go of part-written, as when nothing was tracked), so that a file whose blobs arrive in
// no order costs at most kMost ranges to keep and to give back.
class WrittenRanges {
 public:
  static constexpr size_t kMost = 16;
  void add(uint64_t from, uint64_t to);
  const std::vector<std::pair<uint64_t, uint64_t>>& ranges() const { return ranges_; }

 private:
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
};
}  // namespace detail

// Compares what is in options.target with a chosen snapshot (or the part options.includes and
// options.excludes select), writing nothing: the validation of a finished restore. Each
// selected entry must be there with its type (nothing is followed through a symlink); a file
// must have the recorded size and content (every blob re-read from disk and its ID
// recomputed: bytes, not times); a symlink its target; a device its number. Modes, owners and
// times are not compared (an operator may change them after a restore), nor are entries the
// snapshot does not have. A missing directory counts once (what it held is not listed). Events (OpKind::kRestore): restore:initiated (with "compare": true),
// restore:progress (phase "compare"), restore:error for each entry missing or different,
// restore:validated and restore:completed with comparison_json. Memory: one blob's bytes.
struct Comparison {
  uint64_t files = 0, dirs = 0, others = 0;  // entries compared
  uint64_t bytes = 0;                        // file bytes re-read
  uint64_t matched = 0;                      // entries found as the snapshot has them
  uint64_t missing = 0;                      // not in the target
  uint64_t differ = 0;                       // there, but of another type, size or content
  uint64_t unreadable = 0;                   // could not be compared (I/O, a damaged tree)
  struct Difference {
    std::string path;     // in the snapshot
    std::string problem;  // one sentence
  };
  std::vector<Difference> differences;  // the first kMaxDifferences
  static constexpr size_t kMaxDifferences = 100;
  bool clean() const { return missing == 0 && differ == 0 && unreadable == 0; }
};
Result<Comparison> compare(repo::Session& session, const Choice& choice, const Options& options,
                           const EventTarget& events);
nlohmann::json comparison_json(const Comparison& c);

// Checks one entry name from a snapshot (see the file comment).
Status check_name(const std::string& name);

}  // namespace haven::restore

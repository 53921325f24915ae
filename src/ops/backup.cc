#include "ops/backup.h"

#include "ops/lock.h"
#include "ops/ops.h"
#include "repo/compress.h"

namespace haven::ops {

namespace {

// The engine's options, without reading the exclude files.
backup::Options engine_options(const BackupRequest& r) {
  backup::Options o;
  o.paths = r.paths;
  o.strategy = r.strategy;
  o.tags = r.tags;
  o.host = r.host;
  o.excludes = r.excludes;
  o.one_file_system = r.one_file_system;
  o.threads = r.threads;
  if (r.source != BackupRequest::Source::kPaths) {
    o.from_stdin = true;
    o.stdin_filename = r.stdin_filename.empty() ? "stdin" : r.stdin_filename;
    if (r.source == BackupRequest::Source::kCommand) o.command = r.command;
  }
  return o;
}

}  // namespace

uint64_t BackupResult::stat(const std::string& key) const {
  auto it = snapshot.stats.find(key);
  return it == snapshot.stats.end() ? 0 : it->second;
}

Status validate(const BackupRequest& r) {
  if (r.source == BackupRequest::Source::kCommand && r.command.empty()) {
    return invalid("--stdin-from-command needs a command after --, e.g. -- pg_dump mydb");
  }
  if (r.source != BackupRequest::Source::kCommand && !r.command.empty()) {
    return invalid("a command is backed up only with --stdin-from-command");
  }
  if (!r.compression.empty()) HAVEN_TRY(repo::parse_compression(r.compression));
  return backup::validate(engine_options(r));
}

Result<BackupResult> backup(repo::Repository& repo, const BackupRequest& request,
                            const EventTarget& events) {
  OperationScope scope(repo);
  HAVEN_TRY(validate(request));
  backup::Options o = engine_options(request);
  for (const auto& f : request.exclude_files) {
    HAVEN_ASSIGN(auto pats, backup::read_exclude_file(f));
    o.excludes.insert(o.excludes.end(), pats.begin(), pats.end());
  }
  HAVEN_ASSIGN(HeldLock held, lock(repo, LockMode::kShared, events, scope.token()));
  CancelScope session_scope(held.session().cancel_token());  // a lost lock stops this one
  if (!request.compression.empty()) {
    HAVEN_ASSIGN(repo::Compression c, repo::parse_compression(request.compression));
    held.session().set_compression(c);  // this backup's packs only
  }
  HAVEN_TRY(load_index(repo, events));
  HAVEN_ASSIGN(backup::Summary s, backup::run(held.session(), o, events));
  HAVEN_TRY(held.release());
  return BackupResult{s.snapshot_id, std::move(s.snapshot), s.warnings};
}

}  // namespace haven::ops

// pg/server.h — starting a restored cluster and waiting for its recovery (haven pg restore
// --start). pg_ctl runs as the data directory's owner (PostgreSQL refuses to run as root).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <sys/types.h>

#include "util/error.h"

namespace haven::pg {

// The directory holding pg_ctl for the cluster in `datadir` (from its PG_VERSION), or `bin_dir`
// if given.
Result<std::string> find_pg_bin(const std::string& datadir, const std::string& bin_dir);

// `pg_ctl start` on `datadir` (log to <datadir>/haven-recovery.log), then wait_for_recovery().
// For a data directory a restore has just made durable: PostgreSQL 14 and later start with
// recovery_init_sync_method=syncfs. On failure the error quotes the end of the server log.
Status start_and_wait_for_recovery(const std::string& datadir, const std::string& bin_dir,
                                   std::chrono::seconds timeout);

// Waits until the server running on `datadir` has finished recovery and accepts writes:
// recovery.signal is gone and postmaster.pid reports the postmaster "ready". The file alone is
// not enough: PostgreSQL removes it before the end-of-recovery checkpoint, and the server stays
// read-only until that checkpoint is done and the startup process has exited. kIo if the
// server stopped (no postmaster.pid), kTransient after `timeout`; honours the current token.
Status wait_for_recovery(const std::string& datadir, std::chrono::seconds timeout);

// `pg_ctl start -w` on `datadir` as its owner (log to <datadir>/haven-recovery.log): returns
// once the server accepts connections (a standby: read-only ones).
Status start_server(const std::string& datadir, const std::string& bin_dir,
                    std::chrono::seconds timeout);

// `pg_ctl promote -w` on a standby as its owner, then wait_for_recovery(): it accepts writes.
Status promote(const std::string& datadir, const std::string& bin_dir, std::chrono::seconds timeout);

// The postmaster's PID from <datadir>/postmaster.pid, if the file is there and names a process
// that is alive.
std::optional<pid_t> running_postmaster(const std::string& datadir);

// Stops the server running on `datadir`: `pg_ctl stop -m fast` as the directory's owner, and if
// it is still running after `timeout`, an immediate shutdown (SIGQUIT to the postmaster), then
// SIGKILL. OK when no server runs there. Never cancelled (it is clean-up).
Status stop_server(const std::string& datadir, const std::string& bin_dir,
                   std::chrono::seconds timeout);

}  // namespace haven::pg

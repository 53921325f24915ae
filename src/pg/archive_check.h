// pg/archive_check.h — what `haven check` adds for the WAL archive: every object under wal/
// has a WAL file name; with read_data every WAL file authenticates and decompresses; a gap in a
// timeline's run of segments (recovery cannot pass it) is a notice naming the missing segment.
#pragma once

#include "check/check.h"
#include "repo/repository.h"

namespace haven::pg {

// Appends problems to `report` and counts WAL files in report.wal_files / wal_read.
Status check_archive(repo::Repository& repo, bool read_data, check::Report& report);

}  // namespace haven::pg

// util/secret_file.h — writing a file that holds a secret (a WAL key, an access key).
#pragma once

#include <string>
#include <string_view>

#include "util/error.h"

namespace haven {

// Writes `text` to `path` with mode 0600 from the start: under a temporary name, fsynced, then
// linked into place (refusing an existing file with kAlreadyExists, naming --force) or, with
// `overwrite`, renamed over it. The secret is never readable by others, not even for a moment,
// and a crash leaves either no file or the whole one.
Status write_secret_file(const std::string& path, std::string_view text, bool overwrite);

}  // namespace haven

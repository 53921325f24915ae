// chunker/chunker.h — content-defined chunking (FastCDC with normalized chunking).
//
// Splits a byte stream into chunks whose boundaries depend only on the content near them, so
// an insertion or deletion changes only the chunks around the edit. The gear table is derived
// per repository from its secret key (repo/ does that), so chunk lengths do not reveal whether
// a repository holds a known file.
//
// Usage: keep a buffer that starts at the beginning of the current chunk and holds at least
// max_size bytes (or everything up to end of file); call next_cut(); emit that many bytes as a
// chunk; drop them from the buffer; repeat. The chunker keeps no state between chunks, so it is
// cheap to copy and safe to use from several threads with separate instances.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "util/bytes.h"

namespace haven::chunker {

struct Params {
  uint32_t min_size = 256 * 1024;   // no cut before this many bytes
  uint32_t avg_size = 1024 * 1024;  // must be a power of two
  uint32_t max_size = 4 * 1024 * 1024;  // always cut here
};

using GearTable = std::array<uint64_t, 256>;

class Chunker {
 public:
  // REQUIRES: min_size < avg_size < max_size, avg_size a power of two >= 64.
  Chunker(const Params& params, const GearTable& gear);

  // `data` begins at the start of a chunk. Returns the length of that chunk:
  //  - the first content-defined boundary in data, if any (never before min_size);
  //  - max_size if data holds at least max_size bytes and no boundary was found;
  //  - data.size() if `eof` (the rest of the stream is the last chunk);
  //  - 0 if more data is needed (data.size() < max_size and !eof): callers that always supply
  //    max_size bytes never see 0.
  size_t next_cut(ByteView data, bool eof) const;

  const Params& params() const { return params_; }

 private:
  Params params_;
  GearTable gear_;
  uint64_t mask_small_;  // harder mask, used before avg_size (more bits set)
  uint64_t mask_large_;  // easier mask, used after avg_size (fewer bits set)
};

// Validates params; returns false (and fills `why`) if they are unusable.
bool valid_params(const Params& p, const char** why);

}  // namespace haven::chunker

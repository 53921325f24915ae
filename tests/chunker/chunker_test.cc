// chunker_test.cc — tests for the FastCDC chunker.
//
// Why these tests: chunk boundaries are what deduplication rests on. They must be deterministic
// for a given gear table, stay within the configured bounds, survive insertions and local edits
// (otherwise a one-byte change re-uploads the whole file), and must not depend on how the
// caller happens to buffer the stream. A straightforward reference model of the documented cut
// rule checks the optimised loop bit for bit, so a change to the boundary rule (which would
// silently break deduplication against existing repositories) fails here.
#include "chunker/chunker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace haven::chunker {
namespace {

constexpr size_t kMiB = 1024 * 1024;

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

GearTable make_gear(uint64_t seed) {
  GearTable g;
  uint64_t s = seed;
  for (auto& v : g) v = splitmix64(s);
  return g;
}

Bytes random_bytes(size_t n, uint64_t seed) {
  Bytes b(n);
  uint64_t s = seed;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = splitmix64(s);
    std::memcpy(b.data() + i, &v, 8);
  }
  if (i < n) {
    uint64_t v = splitmix64(s);
    std::memcpy(b.data() + i, &v, n - i);
  }
  return b;
}

const GearTable& gear1() {
  static const GearTable g = make_gear(0x6861766e2d746573ULL);
  return g;
}
const GearTable& gear2() {
  static const GearTable g = make_gear(0x0123456789abcdefULL);
  return g;
}

// Chunk lengths of `data`, with the whole remaining buffer available at every step.
std::vector<size_t> chunk_all(const Chunker& c, ByteView data) {
  std::vector<size_t> lens;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t n = c.next_cut(data.subspan(pos), true);
    if (n == 0 || n > data.size() - pos) {
      ADD_FAILURE() << "next_cut returned " << n << " at " << pos;
      break;
    }
    lens.push_back(n);
    pos += n;
  }
  return lens;
}

// Chunk lengths as a streaming caller sees them: data arrives in uneven reads into a private
// buffer, and next_cut only ever sees a window of exactly max_size bytes, or fewer at EOF.
std::vector<size_t> chunk_streaming(const Chunker& c, ByteView src) {
  const size_t max = c.params().max_size;
  std::vector<size_t> lens;
  Bytes buf;
  size_t read_pos = 0;
  uint64_t rng = 42;
  for (;;) {
    while (buf.size() < max && read_pos < src.size()) {
      size_t want = 1 + splitmix64(rng) % (300 * 1024);
      size_t take = std::min(want, src.size() - read_pos);
      buf.insert(buf.end(), src.begin() + read_pos, src.begin() + read_pos + take);
      read_pos += take;
    }
    if (buf.empty()) break;
    const bool eof = read_pos == src.size() && buf.size() <= max;
    // A copy of exactly the window, so a read past it would show up under a sanitizer.
    Bytes window(buf.begin(), buf.begin() + std::min(buf.size(), max));
    size_t n = c.next_cut(window, eof);
    if (n == 0 || n > window.size()) {
      ADD_FAILURE() << "streaming next_cut returned " << n << " for window " << window.size();
      break;
    }
    lens.push_back(n);
    buf.erase(buf.begin(), buf.begin() + n);
  }
  return lens;
}

std::vector<std::string_view> split(ByteView data, const std::vector<size_t>& lens) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  for (size_t n : lens) {
    out.emplace_back(reinterpret_cast<const char*>(data.data()) + pos, n);
    pos += n;
  }
  return out;
}

// Number of chunks of `a` whose exact content does not occur among the chunks of `b`.
size_t missing_chunks(ByteView a, const std::vector<size_t>& la, ByteView b,
                      const std::vector<size_t>& lb) {
  auto cb = split(b, lb);
  std::unordered_set<std::string_view> in_b(cb.begin(), cb.end());  // compares bytes on hit
  size_t missing = 0;
  for (auto s : split(a, la)) missing += in_b.count(s) == 0;
  return missing;
}

void expect_bounds(const Params& p, const std::vector<size_t>& lens, size_t total) {
  size_t sum = 0;
  for (size_t i = 0; i < lens.size(); i++) {
    sum += lens[i];
    EXPECT_LE(lens[i], p.max_size) << "chunk " << i;
    if (i + 1 < lens.size()) {
      EXPECT_GE(lens[i], p.min_size) << "chunk " << i;
    }
  }
  EXPECT_EQ(sum, total);
}

// Reference model of the documented cut rule, written for clarity rather than speed.
size_t reference_cut(const Params& p, const GearTable& gear, ByteView data, bool eof) {
  int bits = 0;
  while ((1u << bits) < p.avg_size) bits++;
  auto mask = [](int n) {
    uint64_t m = 0;
    for (int i = 0; i < n; i++) m |= uint64_t{1} << (63 - (i * 48) / n);
    return m;
  };
  const uint64_t small = mask(bits + 2), large = mask(bits - 2);
  uint64_t h = 0;
  for (size_t i = p.min_size; i < data.size() && i < p.max_size; i++) {
    h = (h << 1) + gear[data[i]];
    if ((h & (i < p.avg_size ? small : large)) == 0) return i + 1;
  }
  if (data.size() >= p.max_size) return p.max_size;
  return eof ? data.size() : 0;
}

TEST(ChunkerTest, DeterministicAndKeyedByGearTable) {
  const Params p;
  Bytes data = random_bytes(16 * kMiB, 1);
  Chunker a(p, gear1());
  auto first = chunk_all(a, data);
  auto second = chunk_all(Chunker(p, gear1()), data);
  EXPECT_EQ(first, second);
  EXPECT_GT(first.size(), 4u);

  auto other = chunk_all(Chunker(p, gear2()), data);
  EXPECT_NE(first, other);
}

TEST(ChunkerTest, MatchesReferenceModel) {
  // Small parameters give many chunks and exercise both masks and the max_size cut; the
  // default ones check the real configuration.
  const Params small{64, 256, 1024};
  const Params tiny{16, 64, 128};  // smallest allowed average: masks of 8 and 4 bits
  const Params defaults;
  for (const Params& p : {small, tiny, defaults}) {
    Chunker c(p, gear1());
    Bytes data = random_bytes(p.max_size == defaults.max_size ? 24 * kMiB : 2 * kMiB, 7);
    size_t pos = 0, count = 0;
    while (pos < data.size()) {
      ByteView rest = ByteView(data).subspan(pos);
      size_t got = c.next_cut(rest, true);
      size_t want = reference_cut(p, gear1(), rest, true);
      ASSERT_EQ(got, want) << "avg " << p.avg_size << " at " << pos;
      pos += got;
      count++;
    }
    EXPECT_GT(count, data.size() / p.max_size);
  }
  // Every length of input, odd and even, with an odd minimum: the scan takes two bytes a step,
  // so a cut on the first or second byte of a step, and a last byte left over, must all give
  // the reference's answer (with and without eof).
  const Params odd{17, 64, 128};
  Chunker c(odd, gear1());
  Bytes data = random_bytes(64 * 1024, 8);
  size_t odd_cuts = 0, even_cuts = 0;
  for (size_t start = 0; start + 160 <= data.size(); start += 97) {
    for (size_t n = 0; n <= 160; n++) {
      ByteView v = ByteView(data).subspan(start, n);
      for (bool eof : {false, true}) {
        size_t got = c.next_cut(v, eof);
        ASSERT_EQ(got, reference_cut(odd, gear1(), v, eof)) << "start " << start << " length " << n;
        if (n == 160 && eof && got < odd.max_size) (got % 2 ? odd_cuts : even_cuts)++;
      }
    }
  }
  EXPECT_GT(odd_cuts, 50u);
  EXPECT_GT(even_cuts, 50u);
}

TEST(ChunkerTest, BoundsAndAverageSize) {
  const Params p;
  Bytes data = random_bytes(64 * kMiB, 2);
  auto lens = chunk_all(Chunker(p, gear1()), data);
  expect_bounds(p, lens, data.size());
  double avg = static_cast<double>(data.size()) / lens.size();
  std::cout << "[ info ] 64 MiB -> " << lens.size() << " chunks, mean " << avg / 1024
            << " KiB\n";
  EXPECT_GE(avg, 0.5 * p.avg_size);
  EXPECT_LE(avg, 2.0 * p.avg_size);
  // On random data a forced cut at max_size is vanishingly rare; many of them would mean the
  // masks never match.
  size_t at_max = std::count(lens.begin(), lens.end() - 1, size_t{p.max_size});
  EXPECT_LE(at_max, 1u);

  const Params small{256, 1024, 8192};
  Bytes d2 = random_bytes(8 * kMiB, 3);
  auto l2 = chunk_all(Chunker(small, gear1()), d2);
  expect_bounds(small, l2, d2.size());
  double avg2 = static_cast<double>(d2.size()) / l2.size();
  EXPECT_GE(avg2, 0.5 * small.avg_size);
  EXPECT_LE(avg2, 2.0 * small.avg_size);
}

TEST(ChunkerTest, ResistsInsertionAtStart) {
  const Params p;
  Chunker c(p, gear1());
  Bytes orig = random_bytes(64 * kMiB, 4);
  Bytes mod;
  mod.reserve(orig.size() + 1);
  mod.push_back(0x5a);
  append(mod, orig);

  auto lo = chunk_all(c, orig);
  auto lm = chunk_all(c, mod);
  size_t missing = missing_chunks(orig, lo, mod, lm);
  std::cout << "[ info ] insert at start: " << missing << " of " << lo.size()
            << " original chunks lost\n";
  EXPECT_GE(static_cast<double>(lo.size() - missing), 0.95 * lo.size());
}

TEST(ChunkerTest, ResistsOverwriteInMiddle) {
  const Params p;
  Chunker c(p, gear1());
  Bytes orig = random_bytes(64 * kMiB, 5);
  Bytes mod = orig;
  Bytes patch = random_bytes(100, 99);
  std::copy(patch.begin(), patch.end(), mod.begin() + mod.size() / 2);

  auto lo = chunk_all(c, orig);
  auto lm = chunk_all(c, mod);
  size_t missing = missing_chunks(orig, lo, mod, lm);
  std::cout << "[ info ] 100-byte overwrite: " << missing << " of " << lo.size()
            << " original chunks lost\n";
  EXPECT_GE(missing, 1u);  // the edited chunk itself must differ
  EXPECT_LE(missing, 3u);
}

TEST(ChunkerTest, StreamingWindowGivesSameCuts) {
  const Params p;
  Chunker c(p, gear1());
  // Not a multiple of anything, so the tail is a short final chunk.
  Bytes data = random_bytes(40 * kMiB + 12345, 6);
  auto whole = chunk_all(c, data);
  auto streamed = chunk_streaming(c, data);
  EXPECT_EQ(whole, streamed);

  const Params small{64, 256, 1024};
  Chunker cs(small, gear1());
  Bytes d2 = random_bytes(3 * kMiB + 77, 8);
  EXPECT_EQ(chunk_all(cs, d2), chunk_streaming(cs, d2));
}

TEST(ChunkerTest, EdgeCases) {
  const Params p;
  Chunker c(p, gear1());

  EXPECT_EQ(c.next_cut(ByteView(), true), 0u);
  EXPECT_EQ(c.next_cut(ByteView(), false), 0u);

  Bytes shortbuf = random_bytes(p.min_size - 1, 10);
  EXPECT_EQ(c.next_cut(shortbuf, true), shortbuf.size());
  EXPECT_EQ(c.next_cut(shortbuf, false), 0u);
  Bytes exact_min = random_bytes(p.min_size, 10);
  EXPECT_EQ(c.next_cut(exact_min, true), exact_min.size());
  EXPECT_EQ(c.next_cut(exact_min, false), 0u);

  // Find a content-defined boundary, then check what the chunker says about prefixes of it.
  Bytes data = random_bytes(p.max_size, 11);
  size_t cut = c.next_cut(data, false);
  ASSERT_GT(cut, p.min_size);
  ASSERT_LT(cut, p.max_size) << "expected a content-defined boundary in random data";
  ByteView view(data);
  EXPECT_EQ(c.next_cut(view.first(cut - 1), false), 0u);  // no boundary yet: need more data
  EXPECT_EQ(c.next_cut(view.first(cut - 1), true), cut - 1);
  EXPECT_EQ(c.next_cut(view.first(cut), false), cut);  // boundary found with < max bytes
  EXPECT_EQ(c.next_cut(view.first(cut + 1000), false), cut);

  // Exactly max_size bytes without a boundary is a full chunk even without eof.
  Bytes zeros(3 * p.max_size + 5, 0);
  size_t zc = c.next_cut(zeros, false);
  EXPECT_GT(zc, p.min_size);
  EXPECT_LE(zc, p.max_size);
  auto lens = chunk_all(c, zeros);
  expect_bounds(p, lens, zeros.size());
  // A run of one byte value hashes to the same state from every chunk start, so all full
  // chunks of it are cut identically.
  for (size_t i = 0; i + 1 < lens.size(); i++) EXPECT_EQ(lens[i], lens[0]);
  if (zc == p.max_size) {
    EXPECT_EQ(c.next_cut(ByteView(zeros).first(p.max_size - 1), false), 0u);
    EXPECT_EQ(c.next_cut(ByteView(zeros).first(p.max_size), false), p.max_size);
  }
}

TEST(ChunkerTest, ValidParams) {
  const char* why = nullptr;
  EXPECT_TRUE(valid_params(Params{}, &why));
  EXPECT_TRUE(valid_params(Params{16, 64, 128}, &why));
  EXPECT_TRUE(valid_params(Params{0, 1024, 64 * 1024 * 1024}, &why));

  auto rejects = [](const Params& p) {
    const char* w = nullptr;
    bool ok = valid_params(p, &w);
    EXPECT_FALSE(ok) << p.min_size << "/" << p.avg_size << "/" << p.max_size;
    EXPECT_NE(w, nullptr);
    if (w != nullptr) {
      EXPECT_GT(std::strlen(w), 0u);
    }
  };
  rejects(Params{256 * 1024, 1000 * 1000, 4 * 1024 * 1024});   // avg not a power of two
  rejects(Params{256 * 1024, 3 * 256 * 1024, 4 * 1024 * 1024});  // ditto
  rejects(Params{1024 * 1024, 1024 * 1024, 4 * 1024 * 1024});  // min == avg
  rejects(Params{2 * 1024 * 1024, 1024 * 1024, 4 * 1024 * 1024});  // min > avg
  rejects(Params{256 * 1024, 1024 * 1024, 1024 * 1024});  // avg == max
  rejects(Params{256 * 1024, 4 * 1024 * 1024, 1024 * 1024});  // avg > max
  rejects(Params{8, 32, 128});  // avg below 64
  rejects(Params{0, 0, 128});   // zero avg (not a power of two)
  rejects(Params{256 * 1024, 1024 * 1024, 64 * 1024 * 1024 + 1});  // max above 64 MiB

  // A null `why` is allowed.
  EXPECT_FALSE(valid_params(Params{1, 1, 1}, nullptr));
}

// Over random data the cut points fall as the parameters promise: every chunk within
// [min, max], and the mean within a factor of two of the average (a broken mask or gear table
// shifts it by far more). Throughput is measured in bench/, not here.
TEST(ChunkerTest, ChunkSizesOverRandomDataCentreOnTheAverage) {
  const Params p;
  Chunker c(p, gear1());
  Bytes data = random_bytes(64 * kMiB, 12);
  size_t pos = 0, chunks = 0, smallest = SIZE_MAX, largest = 0;
  while (pos < data.size()) {
    size_t cut = c.next_cut(ByteView(data).subspan(pos), true);
    ASSERT_GT(cut, 0u);
    pos += cut;
    chunks++;
    if (pos < data.size()) smallest = std::min(smallest, cut);  // the last may be short
    largest = std::max(largest, cut);
  }
  EXPECT_EQ(pos, data.size());
  EXPECT_GE(smallest, p.min_size);
  EXPECT_LE(largest, p.max_size);
  double mean = static_cast<double>(data.size()) / static_cast<double>(chunks);
  EXPECT_GT(mean, p.avg_size / 2.0) << chunks << " chunks";
  EXPECT_LT(mean, p.avg_size * 2.0) << chunks << " chunks";
}

}  // namespace
}  // namespace haven::chunker

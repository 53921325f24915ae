#!/usr/bin/env bash
# fuzz/run.sh — runs every libFuzzer target of a HAVEN_FUZZ build for a bounded time from its
# seed corpus; exits non-zero if any target crashes, leaks, hits UB or runs out of memory.
#
#   fuzz/run.sh BUILD_DIR [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET 0 only replays the seed corpus (every seed once). New inputs the fuzzer
# finds go to BUILD_DIR/fuzz-corpus/<target>/ (not to the checked-in fuzz/corpus/); a crashing
# input is written to BUILD_DIR/fuzz-artifacts/<target>-crash-<sha1>. To keep one as a
# regression seed, copy it into fuzz/corpus/<target>/ and add a GoogleTest case for it.
set -euo pipefail

build=${1:?usage: fuzz/run.sh BUILD_DIR [SECONDS_PER_TARGET] [TARGET...]}
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))
here=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for d in "$here"/corpus/*/; do targets+=("$(basename "$d")"); done
fi

mkdir -p "$build/fuzz-artifacts"
failed=()
for t in "${targets[@]}"; do
  bin="$build/fuzz/fuzz_$t"
  [ -x "$bin" ] || bin="$build/fuzz_$t"
  if [ ! -x "$bin" ]; then
    echo "fuzz: no target fuzz_$t in $build" >&2
    failed+=("$t")
    continue
  fi
  work="$build/fuzz-corpus/$t"
  mkdir -p "$work"
  log="$build/fuzz-artifacts/$t.log"
  # -rss_limit_mb/-malloc_limit_mb: a decoder that allocates what an input claims instead of
  # what it holds fails here. -timeout: one input may take at most 10 s.
  opts=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1
        -artifact_prefix="$build/fuzz-artifacts/$t-")
  if [ "$seconds" = 0 ]; then
    cmd=("$bin" "${opts[@]}" -runs=0 "$here/corpus/$t")
  else
    cmd=("$bin" "${opts[@]}" -max_total_time="$seconds" -max_len=65536 "$work" "$here/corpus/$t")
  fi
  start=$(date +%s)
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "${cmd[@]}" >"$log" 2>&1; then
    execs=$(grep -m1 '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "fuzz: $t ok ($(( $(date +%s) - start )) s, ${execs:-?} runs)"
  else
    echo "fuzz: $t FAILED (log: $log)" >&2
    grep -m5 -E 'ERROR|runtime error|Test unit written|==[0-9]+==' "$log" >&2 || tail -20 "$log" >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi

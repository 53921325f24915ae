#!/usr/bin/env bash
# Haven on generated trees of 50,000 to 1,000,000 small files (issue 15's scaling curve): first
# backup, unchanged re-backup, restore and check --read-data, each timed with its peak memory,
# per tree size, and the index: bytes per blob in the repository's index files and bytes of
# memory it holds (default --index-memory: beyond 2 MiB it stays sorted on disk in the cache
# directory). One run per size; the table goes to stdout.
#   bench/scale.sh [path/to/haven]
# Extra arguments for every haven command: BENCH_HAVEN_ARGS (e.g. "--index-memory 0", the
# whole index in memory).
# Env: BENCH_FILES (sizes, default "50000 200000 1000000"), BENCH_DIR (default
#      /tmp/haven-bench-scale; trees are kept there between runs, ~4 KiB of disk per file).
set -euo pipefail
HAVEN=$(readlink -f "${1:-build/haven}")
HERE=$(cd "$(dirname "$0")" && pwd)
FILES=${BENCH_FILES:-50000 200000 1000000}
W=${BENCH_DIR:-/tmp/haven-bench-scale}
[ -x "$HAVEN" ] || { echo "bench: no haven binary at $HAVEN" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
mkdir -p "$W"
rm -rf "$W"/repo-* "$W"/restore-*
export HAVEN_PASSWORD=bench
read -r -a XARGS <<<"${BENCH_HAVEN_ARGS:-}"

# timed LABEL N CMD...: runs CMD, records "seconds peak_KiB cpu_seconds" as T[LABEL,N],
# M[LABEL,N] and C[LABEL,N] (user + system: what grows with the work, where wall time also
# carries this VM's page cache and disk)
declare -A T M C
timed() {
  local label=$1 n=$2; shift 2
  sync
  /usr/bin/time -f "%e %M %U %S" -o "$W/time.out" "$@" >/dev/null
  local u s
  read -r T[$label,$n] M[$label,$n] u s <"$W/time.out"
  C[$label,$n]=$(awk "BEGIN{print $u + $s}")
}

rows=()
for n in $FILES; do
  tree=$W/tree-$n
  if [ ! -f "$tree.done" ]; then
    echo "bench: generating $n files" >&2
    rm -rf "$tree"
    python3 "$HERE/corpus.py" make-tree "$tree" --files "$n"
    touch "$tree.done"
  fi
  repo=$W/repo-$n
  "$HAVEN" -r "$repo" init -q
  "$HAVEN" -r "$repo" key add --access-key-file "$W/ak-$n" --force >/dev/null
  find "$tree" -type f -exec cat {} + >/dev/null   # warm cache, as for every size
  echo "bench: $n files: backup, re-backup, restore" >&2
  H=("$HAVEN" -r "$repo" --password-file "$W/ak-$n" "${XARGS[@]}")
  timed backup "$n" "${H[@]}" -q backup "$tree"
  timed rebackup "$n" "${H[@]}" -q backup "$tree"
  # A directory nothing was deleted from (ext4 walks recently freed inodes one by one).
  timed restore "$n" "${H[@]}" -q restore latest --target "$W/restore-$n"
  got=$(find "$W/restore-$n" -type f | wc -l)
  [ "$got" -eq "$n" ] || { echo "bench: restored $got of $n files" >&2; exit 1; }
  timed check "$n" "${H[@]}" -q check --read-data
  read -r blobs imem < <("${H[@]}" stats --json | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["blobs"], j["index_memory_bytes"])')
  idx=$(du -sb "$repo/index" | cut -f1)
  rows+=("$n $blobs $idx $imem")
done
rm -rf "$W"/restore-* "$W"/repo-*

awk_row() { awk "BEGIN{$1}"; }
echo "| files | backup (s) | µs per file | unchanged re-backup (s) | restore (s) | µs per file | check --read-data (s) | CPU µs per file: backup / re-backup / restore | backup / re-backup / restore / check peak (MiB) | blobs | index files, bytes per blob | index in memory (MiB), bytes per blob |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  read -r n blobs idx imem <<<"$r"
  awk_row "printf \"| %d | %.2f | %.1f | %.2f | %.2f | %.1f | %.2f | %.1f / %.1f / %.1f | %.0f / %.0f / %.0f / %.0f | %d | %.1f | %.1f, %.1f |\n\", $n, ${T[backup,$n]}, ${T[backup,$n]} * 1e6 / $n, ${T[rebackup,$n]}, ${T[restore,$n]}, ${T[restore,$n]} * 1e6 / $n, ${T[check,$n]}, ${C[backup,$n]} * 1e6 / $n, ${C[rebackup,$n]} * 1e6 / $n, ${C[restore,$n]} * 1e6 / $n, ${M[backup,$n]} / 1024, ${M[rebackup,$n]} / 1024, ${M[restore,$n]} / 1024, ${M[check,$n]} / 1024, $blobs, $idx / $blobs, $imem / 1048576, $imem / $blobs"
done

#!/usr/bin/env bash
# Haven on generated trees of 50,000 to 1,000,000 small files (issue 15's scaling curve): first
# backup, unchanged re-backup and restore, each timed with its peak memory, per tree size, and
# the index's bytes per blob (on disk, and the growth of the re-backup's peak per blob, which
# is mostly the index in memory). One run per size; the table goes to stdout.
#   bench/scale.sh [path/to/haven]
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

# timed LABEL N CMD...: runs CMD, records "seconds peak_KiB" as T[LABEL,N] and M[LABEL,N]
declare -A T M
timed() {
  local label=$1 n=$2; shift 2
  sync
  /usr/bin/time -f "%e %M" -o "$W/time.out" "$@" >/dev/null
  read -r T[$label,$n] M[$label,$n] <"$W/time.out"
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
  timed backup "$n" "$HAVEN" -r "$repo" --password-file "$W/ak-$n" -q backup "$tree"
  timed rebackup "$n" "$HAVEN" -r "$repo" --password-file "$W/ak-$n" -q backup "$tree"
  # A directory nothing was deleted from (ext4 walks recently freed inodes one by one).
  timed restore "$n" "$HAVEN" -r "$repo" --password-file "$W/ak-$n" -q restore latest --target "$W/restore-$n"
  got=$(find "$W/restore-$n" -type f | wc -l)
  [ "$got" -eq "$n" ] || { echo "bench: restored $got of $n files" >&2; exit 1; }
  blobs=$("$HAVEN" -r "$repo" --password-file "$W/ak-$n" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["blobs"])')
  idx=$(du -sb "$repo/index" | cut -f1)
  rows+=("$n $blobs $idx")
done
rm -rf "$W"/restore-* "$W"/repo-*

awk_row() { awk "BEGIN{$1}"; }
echo "| files | backup (s) | µs per file | unchanged re-backup (s) | restore (s) | µs per file | backup / re-backup / restore peak (MiB) | blobs | index on disk, bytes per blob |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  read -r n blobs idx <<<"$r"
  awk_row "printf \"| %d | %.2f | %.1f | %.2f | %.2f | %.1f | %.0f / %.0f / %.0f | %d | %.1f |\n\", $n, ${T[backup,$n]}, ${T[backup,$n]} * 1e6 / $n, ${T[rebackup,$n]}, ${T[restore,$n]}, ${T[restore,$n]} * 1e6 / $n, ${M[backup,$n]} / 1024, ${M[rebackup,$n]} / 1024, ${M[restore,$n]} / 1024, $blobs, $idx / $blobs"
done

#!/usr/bin/env bash
# Haven vs restic vs BorgBackup on the same corpus, in one run, reported as ratios.
#   bench/run.sh [path/to/haven]      (make bench)
# Env: BENCH_SCALE (corpus MB, default 1000), BENCH_DIR (work dir, default /tmp/haven-bench).
set -euo pipefail
HAVEN=$(readlink -f "${1:-build/haven}")
HERE=$(cd "$(dirname "$0")" && pwd)
SCALE=${BENCH_SCALE:-1000}
W=${BENCH_DIR:-/tmp/haven-bench}

need=()
for p in restic borgbackup time python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

CORPUS=$W/corpus-$SCALE
if [ ! -f "$CORPUS/.done" ]; then
  rm -rf "$CORPUS"
  echo "bench: building a ${SCALE} MB corpus in $CORPUS" >&2
  python3 "$HERE/corpus.py" make "$CORPUS" --scale "$SCALE"
  touch "$CORPUS/.done"
fi
rm -rf "$W/run" && mkdir -p "$W/run" && cd "$W/run"
cp -a "$CORPUS" data && rm -f data/.done
find data -type f -exec cat {} + >/dev/null   # warm the page cache for everyone

export HAVEN_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_BASE_DIR=$W/run/borg-home RESTIC_CACHE_DIR=$W/run/restic-cache XDG_CACHE_HOME=$W/run/cache

declare -A T M S A MF
run() {  # run TOOL STEP CMD...: time and peak memory
  local tool=$1 step=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$W/run/t" "$@" >"$W/run/$tool-$step.log" 2>&1 || {
    echo "bench: $tool $step failed:" >&2; tail -5 "$W/run/$tool-$step.log" >&2; exit 1; }
  read -r secs kb <"$W/run/t"
  T[$tool,$step]=$secs
  M[$tool,$step]=$kb
}
size() { du -sb "$1" | cut -f1; }

tools=(haven restic borg)
init() {
  case $1 in
    haven) "$HAVEN" -r repo-haven init -q ;;
    restic) restic -r repo-restic init -q ;;
    borg) borg init -e repokey-blake2 repo-borg ;;
  esac >/dev/null
}
backup() {  # backup TOOL STEP
  case $1 in
    haven) run haven "$2" "$HAVEN" -r repo-haven backup data ;;
    restic) run restic "$2" restic -r repo-restic backup --host bench data ;;
    borg) run borg "$2" borg create repo-borg::"$2" data ;;
  esac
}
restore() {
  rm -rf "restore-$1" && mkdir "restore-$1"
  case $1 in
    haven) run haven restore "$HAVEN" -r repo-haven restore latest --target "restore-$1" ;;
    restic) run restic restore restic -r repo-restic restore latest --target "restore-$1" ;;
    borg) run borg restore sh -c "cd restore-borg && borg extract ../repo-borg::changed" ;;
  esac
  if ! diff -rq data "restore-$1/data" >/dev/null; then echo "bench: $1 restore differs!" >&2; exit 1; fi
  rm -rf "restore-$1"
}

# The CPU's speed swings from second to second: the first backup runs REPEAT times per tool,
# alternating tools, into fresh repositories; the median time is reported.
REPEAT=${BENCH_REPEAT:-3}
declare -A FIRST
for r in $(seq 1 "$REPEAT"); do
  for t in "${tools[@]}"; do
    rm -rf "repo-$t" "$W/run/borg-home" "$W/run/restic-cache"
    init "$t"
    sync  # every tool starts with no dirty pages left by the one before
    backup "$t" first
    FIRST[$t]="${FIRST[$t]:-} ${T[$t,first]}"
    [ "${M[$t,first]}" -gt "${MF[$t]:-0}" ] && MF[$t]=${M[$t,first]}
  done
done
for t in "${tools[@]}"; do
  T[$t,first]=$(echo ${FIRST[$t]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  M[$t,first]=${MF[$t]}
  S[$t,first]=$(size "repo-$t")
done
for t in "${tools[@]}"; do backup "$t" unchanged; done
cp -a data data-before
python3 "$HERE/corpus.py" change data
CHANGED=$(python3 "$HERE/corpus.py" changed data-before data)
rm -rf data-before
for t in "${tools[@]}"; do backup "$t" changed; S[$t,changed]=$(size "repo-$t"); done
for t in "${tools[@]}"; do restore "$t"; done
BYTES=$(du -sb data | cut -f1)

# Maintenance: half of the random files go; back that up, verify every byte, then keep only the
# newest snapshot and reclaim the space (forget + prune; Borg: prune + compact).
find data/random -name 'blob*[02468].bin' -delete
for t in "${tools[@]}"; do backup "$t" reduced; done
run haven check "$HAVEN" -r repo-haven check --read-data
run restic check restic -r repo-restic check --read-data
run borg check borg check --verify-data repo-borg
run haven prune "$HAVEN" -r repo-haven forget --keep-last 1 --prune
run restic prune restic -r repo-restic forget --keep-last 1 --prune
run borg prune sh -c "borg prune --keep-last 1 repo-borg && borg compact repo-borg"
for t in "${tools[@]}"; do S[$t,pruned]=$(size "repo-$t"); done

mb() { awk -v b="$1" 'BEGIN{printf "%.0f", b/1048576}'; }
rate() { awk -v b="$BYTES" -v s="$1" 'BEGIN{printf "%.0f", b/1048576/s}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
peak() { local m=0; for s in first unchanged changed restore reduced; do [ "${M[$1,$s]}" -gt $m ] && m=${M[$1,$s]}; done; echo $m; }

{
echo "Corpus: $(mb "$BYTES") MiB ($(ls data | tr '\n' ' ')); ~1% change = $(mb "$CHANGED") MiB of changed 4 KiB blocks."
echo "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(restic version | cut -d' ' -f1-2), $(borg --version)."
echo
echo "First backup: median of $REPEAT runs per tool, alternating (haven:${FIRST[haven]} s; restic:${FIRST[restic]} s; borg:${FIRST[borg]} s); other rows: one run each."
echo
echo "| measure | Haven | restic | Borg | restic ÷ Haven | Borg ÷ Haven |"
echo "|---|---|---|---|---|---|"
for s in first unchanged changed restore; do
  label=$s; case $s in first) label="first backup (s)";; unchanged) label="unchanged re-backup (s)";; changed) label="re-backup after ~1% change (s)";; restore) label="full restore (s)";; esac
  echo "| $label | ${T[haven,$s]} | ${T[restic,$s]} | ${T[borg,$s]} | $(ratio "${T[restic,$s]}" "${T[haven,$s]}") | $(ratio "${T[borg,$s]}" "${T[haven,$s]}") |"
done
echo "| first backup throughput (MiB/s) | $(rate "${T[haven,first]}") | $(rate "${T[restic,first]}") | $(rate "${T[borg,first]}") | | |"
echo "| restore throughput (MiB/s) | $(rate "${T[haven,restore]}") | $(rate "${T[restic,restore]}") | $(rate "${T[borg,restore]}") | | |"
ph=$(peak haven); pr=$(peak restic); pb=$(peak borg)
echo "| peak memory (MiB) | $((ph/1024)) | $((pr/1024)) | $((pb/1024)) | $(ratio "$pr" "$ph") | $(ratio "$pb" "$ph") |"
echo "| repository after first backup (MiB) | $(mb "${S[haven,first]}") | $(mb "${S[restic,first]}") | $(mb "${S[borg,first]}") | $(ratio "${S[restic,first]}" "${S[haven,first]}") | $(ratio "${S[borg,first]}" "${S[haven,first]}") |"
for t in "${tools[@]}"; do A[$t]=$(( ${S[$t,changed]} - ${S[$t,first]} )); done
echo "| added by the ~1% change (MiB) | $(mb "${A[haven]}") | $(mb "${A[restic]}") | $(mb "${A[borg]}") | $(ratio "${A[restic]}" "${A[haven]}") | $(ratio "${A[borg]}" "${A[haven]}") |"
echo "| added ÷ changed bytes | $(ratio "${A[haven]}" "$CHANGED") | $(ratio "${A[restic]}" "$CHANGED") | $(ratio "${A[borg]}" "$CHANGED") | | |"
for s in check prune; do
  label="check --read-data (s)"; [ $s = prune ] && label="forget --keep-last 1 + prune (s)"
  echo "| $label | ${T[haven,$s]} | ${T[restic,$s]} | ${T[borg,$s]} | $(ratio "${T[restic,$s]}" "${T[haven,$s]}") | $(ratio "${T[borg,$s]}" "${T[haven,$s]}") |"
  echo "| ${label% (s)} peak memory (MiB) | $((M[haven,$s]/1024)) | $((M[restic,$s]/1024)) | $((M[borg,$s]/1024)) | $(ratio "${M[restic,$s]}" "${M[haven,$s]}") | $(ratio "${M[borg,$s]}" "${M[haven,$s]}") |"
done
echo "| repository after prune (MiB) | $(mb "${S[haven,pruned]}") | $(mb "${S[restic,pruned]}") | $(mb "${S[borg,pruned]}") | $(ratio "${S[restic,pruned]}" "${S[haven,pruned]}") | $(ratio "${S[borg,pruned]}" "${S[haven,pruned]}") |"
} | tee "$W/results.md"

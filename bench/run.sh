#!/usr/bin/env bash
# Haven vs restic vs BorgBackup on the same corpus, in one run, reported as ratios.
#   bench/run.sh [path/to/haven]      (make bench runs both profiles)
# Env: BENCH_PROFILE (large: a mixed corpus of few, big files, default; small: 60,000 small
# files), BENCH_SCALE (large: corpus MB, default 1000; small: files, default 60000),
# BENCH_DIR (work dir, default /tmp/haven-bench), BENCH_REPEAT (runs per tool of the first
# backup, the backup after the change, the restore and the check).
set -euo pipefail
HAVEN=$(readlink -f "${1:-build/haven}")
HERE=$(cd "$(dirname "$0")" && pwd)
PROFILE=${BENCH_PROFILE:-large}
case $PROFILE in
  large) SCALE=${BENCH_SCALE:-1000} ;;
  small) SCALE=${BENCH_SCALE:-60000} ;;
  *) echo "bench: BENCH_PROFILE must be large or small, not '$PROFILE'" >&2; exit 2 ;;
esac
W=${BENCH_DIR:-/tmp/haven-bench}

need=()
for p in restic borgbackup time python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

CORPUS=$W/corpus-$PROFILE-$SCALE
if [ ! -f "$CORPUS/.done" ]; then
  rm -rf "$CORPUS"
  if [ "$PROFILE" = large ]; then
    echo "bench: building a ${SCALE} MB corpus in $CORPUS" >&2
    python3 "$HERE/corpus.py" make "$CORPUS" --scale "$SCALE"
  else
    echo "bench: building a corpus of ${SCALE} small files in $CORPUS" >&2
    python3 "$HERE/corpus.py" make-small "$CORPUS" --files "$SCALE"
  fi
  touch "$CORPUS/.done"
fi
rm -rf "$W/run" && mkdir -p "$W/run" && cd "$W/run"
cp -a "$CORPUS" data && rm -f data/.done
find data -type f -exec cat {} + >/dev/null   # warm the page cache for everyone

# The ballast (bench/lib.sh): before each timed step free memory is filled down to ~1 GiB, so
# every tool writes into memory reclaimed from the page cache. Nothing big is deleted during the
# run (restore targets and old copies go at the end). Needs free disk of about RAM + 16 × the
# corpus.
. "$HERE/lib.sh"
settle() {
  ballast_fill "$W/run/ballast"
  # Every tool's input in the page cache right before it runs: this VM empties its page cache
  # within a minute or two (measured: 800 MB cached after reading the small corpus, 281 MB 45 s
  # later, 65 MB after 90 s, with 21 GiB free), so a corpus warmed once at the start was on
  # disk again for later steps, by chance (a 60,000-file backup: 1.4 s warm, 4.4 s cold).
  find data repo-* restic-cache borg-home cache -type f -exec cat {} + >/dev/null 2>&1 || true
}

export HAVEN_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_BASE_DIR=$W/run/borg-home RESTIC_CACHE_DIR=$W/run/restic-cache XDG_CACHE_HOME=$W/run/cache

declare -A T M S A RUNS PEAK
run() {  # run TOOL STEP CMD...: time and peak memory
  local tool=$1 step=$2; shift 2
  settle
  /usr/bin/time -f "%e %M" -o "$W/run/t" "$@" >"$W/run/$tool-$step.log" 2>&1 || {
    echo "bench: $tool $step failed:" >&2; tail -5 "$W/run/$tool-$step.log" >&2; exit 1; }
  read -r secs kb <"$W/run/t"
  T[$tool,$step]=$secs
  M[$tool,$step]=$kb
}
size() { du -sb "$1" | cut -f1; }
# Steps run REPEAT times, alternating tools: keep TOOL STEP after each run; best STEP after the
# last sets each tool's time to its best and its memory to its highest peak.
keep() {
  RUNS[$1,$2]="${RUNS[$1,$2]:-} ${T[$1,$2]}"
  if [ "${M[$1,$2]}" -gt "${PEAK[$1,$2]:-0}" ]; then PEAK[$1,$2]=${M[$1,$2]}; fi
}
best() {
  for t in "${tools[@]}"; do
    T[$t,$1]=$(echo ${RUNS[$t,$1]} | tr ' ' '\n' | sort -n | head -1)
    M[$t,$1]=${PEAK[$t,$1]}
  done
}

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
  # Into a new directory each time, removed at the end: files deleted a moment ago make ext4's
  # inode allocator skip their inodes one by one (recently_deleted), which slowed whichever
  # tool restored next by up to 5x.
  local t="restore-$1-$2"
  mkdir "$t"
  case $1 in
    haven) run haven restore "$HAVEN" -r repo-haven restore latest --target "$t" ;;
    restic) run restic restore restic -r repo-restic restore latest --target "$t" ;;
    borg) run borg restore sh -c "cd $t && borg extract ../repo-borg::changed" ;;
  esac
  if ! diff -rq data "$t/data" >/dev/null; then echo "bench: $1 restore differs!" >&2; exit 1; fi
}

# The machine adds time from run to run (CPU speed, and memory faults in a VM; see settle): the
# first backup runs REPEAT times per tool,
# alternating tools, into fresh repositories; the best time is reported (all are listed).
REPEAT=${BENCH_REPEAT:-3}
for r in $(seq 1 "$REPEAT"); do
  for t in "${tools[@]}"; do
    [ -d "repo-$t" ] && mv "repo-$t" "old-repo-$t-$r"  # removed after the loop
    rm -rf "$W/run/borg-home" "$W/run/restic-cache"
    init "$t"
    sync  # every tool starts with no dirty pages left by the one before
    backup "$t" first
    keep "$t" first
  done
done
rm -rf old-repo-*  # few, large files: no inode effect on later steps (see restore)
best first
for t in "${tools[@]}"; do S[$t,first]=$(size "repo-$t"); done
for t in "${tools[@]}"; do backup "$t" unchanged; done
cp -a data data-before
python3 "$HERE/corpus.py" change data
CHANGED=$(python3 "$HERE/corpus.py" changed data-before data)
# The backup after the change: REPEAT rounds, alternating tools, each from a copy of the
# repository (and the tool's cache) as it was before the change; the best time is reported.
state() {  # state TOOL: the repository and the cache the tool keeps between runs
  case $1 in haven) echo "repo-haven" ;; restic) echo "repo-restic restic-cache" ;; borg) echo "repo-borg borg-home" ;; esac
}
mkdir pre
for t in "${tools[@]}"; do for d in $(state "$t"); do cp -a "$d" "pre/$d"; done; done
for r in $(seq 1 "$REPEAT"); do
  for t in "${tools[@]}"; do
    if [ "$r" -gt 1 ]; then
      for d in $(state "$t"); do mv "$d" "old-$d-$r" && cp -a "pre/$d" "$d"; done
    fi
    backup "$t" changed
    keep "$t" changed
  done
done
best changed
for t in "${tools[@]}"; do S[$t,changed]=$(size "repo-$t"); done
# Full restore: REPEAT rounds, alternating tools; the best time is reported (all are listed).
for r in $(seq 1 "$REPEAT"); do
  for t in "${tools[@]}"; do
    restore "$t" "$r"
    keep "$t" restore
  done
done
best restore
BYTES=$(du -sb data | cut -f1)
FILES=$(find data -type f | wc -l)

# Maintenance: half of the random files go (small profile: half of the directories); back that
# up, verify every byte, then keep only the newest snapshot and reclaim the space (forget +
# prune; Borg: prune + compact).
if [ "$PROFILE" = large ]; then
  find data/random -name 'blob*[02468].bin' -delete
else
  find data/small -mindepth 2 -maxdepth 2 -type d -name 'd*[02468]' -exec rm -rf {} +
fi
for t in "${tools[@]}"; do backup "$t" reduced; done
# check --read-data changes nothing: REPEAT rounds, alternating tools, the best time reported.
for r in $(seq 1 "$REPEAT"); do
  run haven check "$HAVEN" -r repo-haven check --read-data
  run restic check restic -r repo-restic check --read-data
  run borg check borg check --verify-data repo-borg
  for t in "${tools[@]}"; do keep "$t" check; done
done
best check
run haven prune "$HAVEN" -r repo-haven forget --keep-last 1 --prune
run restic prune restic -r repo-restic forget --keep-last 1 --prune
run borg prune sh -c "borg prune --keep-last 1 repo-borg && borg compact repo-borg"
for t in "${tools[@]}"; do S[$t,pruned]=$(size "repo-$t"); done

mb() { awk -v b="$1" 'BEGIN{printf "%.0f", b/1048576}'; }
rate() { awk -v b="$BYTES" -v s="$1" 'BEGIN{printf "%.0f", b/1048576/s}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
row() {  # row LABEL HAVEN RESTIC BORG: Haven's value divided by each other tool's
  echo "| $1 | $2 | $3 | $4 | $(ratio "$2" "$3") | $(ratio "$2" "$4") |"
}
kib() { echo $(($1 / 1024)); }

{
echo "Profile: $PROFILE. Corpus: $(mb "$BYTES") MiB in $FILES files ($(ls data | tr '\n' ' ')); ~1% change = $(mb "$CHANGED") MiB of changed 4 KiB blocks."
echo "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(restic version | cut -d' ' -f1-2), $(borg --version)."
echo
runs() { echo "$1 haven:${RUNS[haven,$2]} s; restic:${RUNS[restic,$2]} s; borg:${RUNS[borg,$2]} s"; }
echo "First backup, backup after the change, full restore and check: best of $REPEAT runs per tool, alternating ($(runs "first backup" first); $(runs "after the change" changed); $(runs restore restore); $(runs check check)); other rows: one run each. Ratios are Haven's value divided by the other tool's: below 1, Haven is faster (smaller)."
echo
echo "| measure | Haven | restic | Borg | Haven ÷ restic | Haven ÷ Borg |"
echo "|---|---|---|---|---|---|"
for s in first unchanged changed restore check prune; do
  case $s in
    first) label="first backup";; unchanged) label="unchanged re-backup";;
    changed) label="re-backup after ~1% change";; restore) label="full restore";;
    check) label="check --read-data";; prune) label="forget --keep-last 1 + prune";;
  esac
  row "$label (s)" "${T[haven,$s]}" "${T[restic,$s]}" "${T[borg,$s]}"
done
echo "| first backup throughput (MiB/s) | $(rate "${T[haven,first]}") | $(rate "${T[restic,first]}") | $(rate "${T[borg,first]}") | | |"
echo "| restore throughput (MiB/s) | $(rate "${T[haven,restore]}") | $(rate "${T[restic,restore]}") | $(rate "${T[borg,restore]}") | | |"
for s in first unchanged restore check prune; do
  case $s in
    first) label="first backup";; unchanged) label="unchanged re-backup";; restore) label="full restore";;
    check) label="check --read-data";; prune) label="forget + prune";;
  esac
  row "$label peak memory (MiB)" "$(kib "${M[haven,$s]}")" "$(kib "${M[restic,$s]}")" "$(kib "${M[borg,$s]}")"
done
row "repository after first backup (MiB)" "$(mb "${S[haven,first]}")" "$(mb "${S[restic,first]}")" "$(mb "${S[borg,first]}")"
for t in "${tools[@]}"; do A[$t]=$(( ${S[$t,changed]} - ${S[$t,first]} )); done
row "added by the ~1% change (MiB)" "$(mb "${A[haven]}")" "$(mb "${A[restic]}")" "$(mb "${A[borg]}")"
echo "| added ÷ changed bytes | $(ratio "${A[haven]}" "$CHANGED") | $(ratio "${A[restic]}" "$CHANGED") | $(ratio "${A[borg]}" "$CHANGED") | | |"
row "repository after prune (MiB)" "$(mb "${S[haven,pruned]}")" "$(mb "${S[restic,pruned]}")" "$(mb "${S[borg,pruned]}")"
} | tee "$W/results-$PROFILE.md"
cd "$W" && rm -rf "$W/run"  # the ballast, old repositories and restore targets

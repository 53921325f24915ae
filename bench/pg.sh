#!/usr/bin/env bash
# Haven vs pgBackRest (zstd and lz4, both encrypted) on the same PostgreSQL 15 cluster, in one run,
# reported as ratios: full base backup, incremental after a pgbench run, restore to the latest
# point until the server accepts queries, archive_command throughput, repository sizes.
#   bench/pg.sh [path/to/haven]
# Env: BENCH_SCALE (pgbench scale factor, default 20 ≈ 320 MB; the issue's reference is 100),
#      BENCH_TX (pgbench transactions per client before the incremental, default 5000, 2 clients),
#      BENCH_SEGMENTS (WAL segments pushed per tool for the archive rate, default 30),
#      BENCH_RESTORE_RUNS (restores per tool, alternating; the best counts; default 3),
#      BENCH_PUSH_RUNS (archive loops per tool, alternating; the best counts; default 3),
#      BENCH_DIR (work dir, default /tmp/haven-bench-pg), BENCH_PORT (default 55432; +1..+3 too).
#
# Fairness notes:
# - PostgreSQL refuses root: the cluster, every server and every tool run as uid/gid 65534
#   (nobody), as PostgreSQL's own user would run them; everything lives under the work dir.
# - One cluster, one archive_command: it calls archive-haven-pgbackrest.sh, which pushes each
#   segment with all three tools side by side, each into its own repository (so every repository
#   gets the same WAL and each backup's wait for its stop segment is about the same for all). The archive
#   *rate* is not measured through it but by a separate timed loop per tool over the same N real
#   segments into fresh repositories, the way PostgreSQL calls archive_command (one process per
#   segment, synchronous; pgBackRest archive-async is off), BENCH_PUSH_RUNS times per tool,
#   alternating, the best counting.
# - pgBackRest runs with process-max = cores (Haven uses one thread per core by default),
#   start-fast=y (Haven's pg_backup_start is fast too), default compression levels
#   (zst 3, lz4 1), repo1-cipher-type=aes-256-cbc. pgBackRest 2.45's incremental is file-level.
# - pgBackRest reads its cipher passphrase from its configuration file; Haven's pg backup and
#   pg restore open the repository with an access key file made by 'key add --access-key-file'
#   (256 random bits, HKDF: no Argon2id), the way an unattended job would; wal-push and
#   wal-fetch use the WAL key file. pg backup runs with its defaults (no --row-counts).
# - "added by the incremental" is measured on each repository right before and after its own
#   incremental, so it holds the backup plus the WAL segment its own pg_backup_stop switched.
# - Before each timed step free memory is filled down to ~1 GiB by a ballast file (bench/lib.sh,
#   as bench/run.sh does) and the step's input is read into the page cache: on this kind of VM,
#   writing into memory that has been free for a while costs ~10 ms per MB for whichever tool
#   does it (every tool's best restore fell by half once the bench settled: Haven 4.50 -> 1.95 s,
#   pgBackRest lz4 5.48 -> 2.68 s). Needs free disk of about RAM + 15 GB.
set -euo pipefail
HAVEN=$(readlink -f "${1:-build/haven}")
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
SCALE=${BENCH_SCALE:-20}
TX=${BENCH_TX:-5000}
NSEG=${BENCH_SEGMENTS:-30}
RESTORE_RUNS=${BENCH_RESTORE_RUNS:-3}
PUSH_RUNS=${BENCH_PUSH_RUNS:-3}
declare -A BEST BESTP
W=${BENCH_DIR:-/tmp/haven-bench-pg}
PORT=${BENCH_PORT:-55432}
PGV=15
B=/usr/lib/postgresql/$PGV/bin
[ -x "$HAVEN" ] || { echo "bench: no haven binary at $HAVEN" >&2; exit 1; }

need=()
for p in pgbackrest postgresql-$PGV postgresql-client-$PGV time; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
PGBR=$(command -v pgbackrest)

R=$W/run
servers=()   # data directories of the servers to stop on exit
stop_all() {
  for d in "${servers[@]}"; do
    [ -f "$d/postmaster.pid" ] && "${AS[@]}" "$B/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
  done
  rm -f "$R/ballast"
}
trap stop_all EXIT
AS=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$R" HAVEN_PASSWORD=bench
    PGHOST="$R" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres)
if [ -d "$R" ]; then  # a previous run's servers may still be up
  for d in "$R"/data "$R"/restore-*; do
    [ -f "$d/postmaster.pid" ] && "${AS[@]}" "$B/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
  done
fi
rm -rf "$R" && mkdir -p "$R/bin" "$R/walseg" "$R/pgbr-lock" "$R/pgbr-log" "$R/pgbr-spool" \
  "$R/repo-zst" "$R/repo-lz4"
chmod 755 "$W" 2>/dev/null || true
cp "$HAVEN" "$R/bin/haven" && chmod 755 "$R/bin/haven"
H=$R/bin/haven
chown -R 65534:65534 "$R"
cd "$R"

q() { "${AS[@]}" psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }   # psql on the benchmark cluster
# settle PATH...: the ballast (bench/lib.sh), then PATH's files into the page cache.
settle() {
  ballast_fill "$R/ballast"
  find "$@" -type f -exec cat {} + >/dev/null 2>&1 || true
}
declare -A T M S
run() {  # run TOOL STEP CMD...: wall time and peak memory (as nobody)
  local tool=$1 step=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$R/t" "${AS[@]}" "$@" >"$R/$tool-$step.log" 2>&1 || {
    echo "bench: $tool $step failed: $*" >&2; tail -5 "$R/$tool-$step.log" >&2; exit 1; }
  read -r secs kb <"$R/t"
  T[$tool,$step]=$secs
  M[$tool,$step]=$kb
}
quiet() {  # wait until archive_command has nothing left to do (no .ready file)
  for _ in $(seq 1 1200); do
    compgen -G "$R/data/pg_wal/archive_status/*.ready" >/dev/null || return 0
    sleep 0.25
  done
  echo "bench: archiving stuck; see $R/pg.log" >&2; exit 1
}
size() { quiet; { du -sb "$1" 2>/dev/null || true; } | cut -f1; }
wait_archived() {  # switch to a new segment and wait until the one before is archived
  local seg
  seg=$(q -c "select pg_walfile_name(pg_current_wal_lsn())")
  q -c "select pg_switch_wal()" >/dev/null
  for _ in $(seq 1 1200); do
    [ "$(q -c "select coalesce(last_archived_wal >= '$seg', false) from pg_stat_archiver")" = t ] && return 0
    sleep 0.25
  done
  echo "bench: WAL $seg not archived after 300 s; see $R/pg.log" >&2; exit 1
}

# --- the cluster: load the data with wal_level=minimal and no archiving (fast), then switch on
echo "bench: pgbench scale $SCALE in $R/data" >&2
"${AS[@]}" "$B/initdb" -D "$R/data" -U postgres --auth=trust >/dev/null
cat >>"$R/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$R'
max_wal_size = 4GB
wal_level = minimal
max_wal_senders = 0
archive_mode = off
CONF
servers+=("$R/data")
"${AS[@]}" "$B/pg_ctl" -D "$R/data" -l "$R/pg.log" -w start >/dev/null
"${AS[@]}" pgbench -i -s "$SCALE" -I dt >"$R/pgbench-init.log" 2>&1   # drop, create tables
# Stock pgbench rows compress ~20×; these get random hex in the filler (char(84)) so the data
# compresses like real data (~2.7×). TRUNCATE in the same transaction: no WAL at wal_level=minimal.
q <<SQL
begin;
truncate pgbench_branches, pgbench_tellers, pgbench_accounts;
insert into pgbench_branches (bid, bbalance) select bid, 0 from generate_series(1, $SCALE) bid;
insert into pgbench_tellers (tid, bid, tbalance)
  select tid, (tid - 1) / 10 + 1, 0 from generate_series(1, $SCALE * 10) tid;
insert into pgbench_accounts (aid, bid, abalance, filler)
  select aid, (aid - 1) / 100000 + 1, 0,
         md5(random()::text) || md5(random()::text) || left(md5(random()::text), 20)
  from generate_series(1, $SCALE * 100000) aid;
commit;
SQL
"${AS[@]}" pgbench -i -s "$SCALE" -I vp >>"$R/pgbench-init.log" 2>&1   # vacuum, primary keys
"${AS[@]}" "$B/pg_ctl" -D "$R/data" -w stop >/dev/null
cat >"$R/archive-haven-pgbackrest.sh" <<SH
#!/bin/sh
# archive_command: each segment into all three repositories (PostgreSQL runs this in the data
# directory; restored clusters run it in theirs and archive nothing, so they leave the repos be).
[ "\$(pwd -P)" = "$R/data" ] || exit 0
set -e
# The three pushes run side by side, so none of the tools' backups waits on the others' pushes
# more than another does (Haven's pg_backup_stop waits for the whole command; pgBackRest's
# archive-check for the segment in its own repository).
"$H" -r "$R/repo-haven" wal-push --wal-key-file "$R/wal.key" "\$1" & h=\$!
"$PGBR" --config="$R/zst.conf" --stanza=bench archive-push "\$1" & z=\$!
"$PGBR" --config="$R/lz4.conf" --stanza=bench archive-push "\$1" & l=\$!
wait \$h; wait \$z; wait \$l
[ ! -f "$R/copy-wal" ] || cp "\$1" "$R/walseg/"
SH
chmod 755 "$R/archive-haven-pgbackrest.sh"
cat >>"$R/data/postgresql.conf" <<CONF
wal_level = replica
max_wal_senders = 10
archive_mode = on
# (pgBackRest's backup refuses an archive_command without "pgbackrest" in it: the name has it)
archive_command = '$R/archive-haven-pgbackrest.sh %p'
CONF

pgbr_conf() {  # pgbr_conf NAME COMPRESS REPO
  cat >"$R/$1.conf" <<CONF
[global]
repo1-path=$3
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-$1-cipher-pass
repo1-retention-full=99
compress-type=$2
process-max=$(nproc)
start-fast=y
archive-async=n
lock-path=$R/pgbr-lock
log-path=$R/pgbr-log
spool-path=$R/pgbr-spool
log-level-console=warn
log-level-file=info

[bench]
pg1-path=$R/data
pg1-port=$PORT
pg1-socket-path=$R
pg1-user=postgres
CONF
}
pgbr_conf zst zst "$R/repo-zst"
pgbr_conf lz4 lz4 "$R/repo-lz4"
pgbr_conf zst-wal zst "$R/repo-zst-wal"
pgbr_conf lz4-wal lz4 "$R/repo-lz4-wal"
chown -R 65534:65534 "$R"
"${AS[@]}" "$H" -r "$R/repo-haven" init -q >/dev/null
"${AS[@]}" "$H" -r "$R/repo-haven" pg archive-key --output "$R/wal.key" >/dev/null
"${AS[@]}" "$H" -r "$R/repo-haven" -q key add --access-key-file "$R/access.key" >/dev/null
"${AS[@]}" "$B/pg_ctl" -D "$R/data" -l "$R/pg.log" -w start >/dev/null
for c in zst lz4; do "${AS[@]}" "$PGBR" --config="$R/$c.conf" --stanza=bench stanza-create >/dev/null; done
wait_archived
DBSIZE=$(q -c "select pg_database_size('postgres')")

tools=(haven zst lz4)
backup() {  # backup TOOL STEP full|incr
  case $1 in
    haven) local s=incremental; [ "$3" = full ] && s=full
           run haven "$2" "$H" -r "$R/repo-haven" --password-file "$R/access.key" pg backup --pgdata "$R/data" --strategy $s \
             --conninfo "host=$R port=$PORT user=postgres dbname=postgres" ;;
    *) run "$1" "$2" "$PGBR" --config="$R/$1.conf" --stanza=bench --type="$3" backup ;;
  esac
}
# --- 1. full base backups, 2. incrementals after one pgbench run seen by all
find "$R/data/base" -type f -exec cat {} + >/dev/null   # warm the page cache for everyone
for t in "${tools[@]}"; do
  q -c checkpoint
  settle "$R/data"
  backup "$t" full full
  S[$t,full]=$(size "$R/repo-$t")
done
echo "bench: pgbench -t $TX -c 2" >&2
"${AS[@]}" pgbench -n -t "$TX" -c 2 -j 2 >"$R/pgbench.log" 2>&1
# The first read of the pages pgbench changed prunes them, and after a checkpoint that WAL-logs
# full pages (~8 KiB per changed page): read every table once now, or whichever tool reads the
# tables first (Haven counts every table's rows before pg_backup_stop) would get that WAL
# archived into its backup window and replayed by its restore.
for tb in pgbench_accounts pgbench_branches pgbench_tellers pgbench_history; do
  q -c "select count(*) from $tb" >/dev/null
done
wait_archived
for t in "${tools[@]}"; do
  q -c checkpoint
  S[$t,before]=$(size "$R/repo-$t")
  settle "$R/data"
  backup "$t" incr incr
  S[$t,incr]=$(size "$R/repo-$t")
done
wait_archived

# --- 3. restore to the end of the archive, until the server accepts queries and is promoted
cat >"$R/restore.sh" <<SH
#!/bin/sh
# restore.sh TOOL PORT: restore the latest point into restore-TOOL, start it, wait until promoted
set -e
d="$R/restore-\$1"
case \$1 in
  haven) "$H" -r "$R/repo-haven" --password-file "$R/access.key" pg restore --target "\$d" --latest --start --port "\$2" ;;
  *) "$PGBR" --config="$R/\$1.conf" --stanza=bench --pg1-path="\$d" restore
     "$B/pg_ctl" -D "\$d" -l "\$d.log" -o "-p \$2" -w start ;;
esac
for _ in \$(seq 1 36000); do
  [ "\$(psql -X -qAt -h "$R" -p "\$2" -U postgres -d postgres -c 'select not pg_is_in_recovery()' 2>/dev/null)" = t ] && exit 0
  sleep 0.1
done
echo "restore.sh: \$1 not promoted after an hour" >&2; exit 1
SH
chmod 755 "$R/restore.sh"
# Best of RESTORE_RUNS, tools alternating: this step writes the whole cluster to disk, and on a
# virtual machine the disk's speed swings from run to run more than the tools differ.
declare -A RT   # every run's time, for the table's note
for ((k = 1; k <= RESTORE_RUNS; k++)); do
  p=$PORT
  for t in "${tools[@]}"; do
    p=$((p + 1))
    d="$R/restore-$t"
    install -d -m 700 -o 65534 -g 65534 "$d"
    servers+=("$d")
    settle "$R/repo-$t"
    run "$t" restore "$R/restore.sh" "$t" "$p"
    rows=$(psql -X -qAt -h "$R" -p "$p" -U postgres -d postgres -c 'select count(*) from pgbench_history')
    want=$(q -c 'select count(*) from pgbench_history')
    [ "$rows" = "$want" ] || { echo "bench: $t restore has $rows pgbench_history rows, want $want" >&2; exit 1; }
    "${AS[@]}" "$B/pg_ctl" -D "$d" -m fast -w stop >/dev/null
    # Moved aside, deleted at the end: a restore right after deleting a cluster's files would
    # pay for ext4's walk over recently freed inodes.
    mv "$d" "$R/old-restore-$t-$k"
    RT[$t]="${RT[$t]:-}${RT[$t]:+ / }${T[$t,restore]}"
    if [ -z "${BEST[$t]:-}" ] || awk -v a="${T[$t,restore]}" -v b="${BEST[$t]}" 'BEGIN{exit !(a < b)}'; then
      BEST[$t]=${T[$t,restore]}
    fi
  done
done
for t in "${tools[@]}"; do T[$t,restore]=${BEST[$t]}; done
rm -rf "$R"/old-restore-*

# --- 4. archive rate: N real, full segments of update WAL (with full-page images, like after a
# checkpoint), pushed one process per segment into fresh repositories
echo "bench: generating $NSEG WAL segments" >&2
touch "$R/copy-wal"
wait_archived
first=$(q -c "select pg_walfile_name(pg_current_wal_lsn())")
start=$(q -c "select pg_current_wal_lsn()")
step=$((SCALE * 100000 / 10)); lo=1
while [ "$(q -c "select pg_wal_lsn_diff(pg_current_wal_lsn(), '$start') > ($NSEG + 2) * 16777216::numeric")" != t ]; do
  q -c checkpoint
  q -c "update pgbench_accounts set abalance = abalance + 1 where aid between $lo and $((lo + step - 1))"
  lo=$((lo + step)); [ $lo -gt $((SCALE * 100000)) ] && lo=1
done
wait_archived
rm -f "$R/copy-wal"
segs=()
for f in "$R"/walseg/*; do   # the first NSEG whole segments written after $first
  f=${f##*/}
  [[ $f =~ ^[0-9A-F]{24}$ && $f > $first ]] && segs+=("$f")
  [ ${#segs[@]} -lt "$NSEG" ] || break
done
[ ${#segs[@]} -eq "$NSEG" ] || { echo "bench: only ${#segs[@]} segments after $first in $R/walseg" >&2; exit 1; }
cat "$R/walseg"/* >/dev/null
printf '%s\n' "${segs[@]}" >"$R/walseg.list"
cat >"$R/push.sh" <<SH
#!/bin/sh
# push.sh TOOL ROUND: push every listed segment, one process each, as archive_command would,
# into that round's fresh repository
set -e
while read -r f; do
  case \$1 in
    haven) "$H" -r "$R/repo-haven-wal-\$2" wal-push --wal-key-file "$R/wal-bench.key" "$R/walseg/\$f" ;;
    *) "$PGBR" --config="$R/\$1-wal-\$2.conf" --stanza=bench archive-push "$R/walseg/\$f" ;;
  esac
done <"$R/walseg.list"
SH
chmod 755 "$R/push.sh"
# Best of PUSH_RUNS, tools alternating, each round into fresh repositories: one process per
# segment makes the rate depend on how fast the machine starts processes at that moment.
"${AS[@]}" "$H" -r "$R/repo-haven-wal-1" init -q >/dev/null
"${AS[@]}" "$H" -r "$R/repo-haven-wal-1" pg archive-key --output "$R/wal-bench.key" >/dev/null
cp -a "$R/repo-haven-wal-1" "$R/repo-haven-wal.empty"
for ((k = 1; k <= PUSH_RUNS; k++)); do
  # Later rounds' repositories are copies of the first while it was empty (the same WAL key).
  [ "$k" = 1 ] || cp -a "$R/repo-haven-wal.empty" "$R/repo-haven-wal-$k"
  for c in zst lz4; do   # stanza-create needs the running cluster
    "${AS[@]}" mkdir -p "$R/repo-$c-wal-$k"
    sed "s|^repo1-path=.*|repo1-path=$R/repo-$c-wal-$k|" "$R/$c-wal.conf" >"$R/$c-wal-$k.conf"
    "${AS[@]}" "$PGBR" --config="$R/$c-wal-$k.conf" --stanza=bench stanza-create >/dev/null
  done
done
# The cluster has done its part: stopped, it runs nothing beside the timed loops (after these
# updates autovacuum would, taking a core from whichever tool it overlaps).
"${AS[@]}" "$B/pg_ctl" -D "$R/data" -m fast -w stop >/dev/null
declare -A PT   # every round's time, for the table's note
for ((k = 1; k <= PUSH_RUNS; k++)); do
  for t in "${tools[@]}"; do
    settle "$R/walseg"
    run "$t" push "$R/push.sh" "$t" "$k"
    PT[$t]="${PT[$t]:-}${PT[$t]:+ / }${T[$t,push]}"
    if [ -z "${BESTP[$t]:-}" ] || awk -v a="${T[$t,push]}" -v b="${BESTP[$t]}" 'BEGIN{exit !(a < b)}'; then
      BESTP[$t]=${T[$t,push]}
    fi
    [ "$k" = 1 ] && S[$t,wal]=$(size "$R/repo-$t-wal-1")
  done
done
for t in "${tools[@]}"; do T[$t,push]=${BESTP[$t]}; done
WALBYTES=$(cd "$R/walseg" && du -cb "${segs[@]}" | tail -1 | cut -f1)

# --- 5. the table
mb() { awk -v b="$1" 'BEGIN{printf "%.0f", b/1048576}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
segps() { awk -v n="$NSEG" -v s="$1" 'BEGIN{printf "%.1f", n/s}'; }
row() {  # row LABEL HAVEN ZST LZ4: ratios Haven ÷ lz4, Haven ÷ zst
  echo "| $1 | $2 | $3 | $4 | $(ratio "$2" "$4") | $(ratio "$2" "$3") |"
}
{
echo "Corpus: pgbench scale $SCALE, database $(mb "$DBSIZE") MiB (filler = random hex); incremental after pgbench -t $TX -c 2 ($(grep -m1 -o 'tps = [0-9.]*' "$R/pgbench.log" || true)); archive rate over $NSEG segments ($(mb "$WALBYTES") MiB)."
echo "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); PostgreSQL $("$B/postgres" -V | awk '{print $3}'), $("$PGBR" version); all encrypted."
echo "Restore: best of $RESTORE_RUNS runs per tool, alternating (haven: ${RT[haven]} s; zst: ${RT[zst]} s; lz4: ${RT[lz4]} s). Archive rate: best of $PUSH_RUNS loops per tool, alternating (haven: ${PT[haven]} s; zst: ${PT[zst]} s; lz4: ${PT[lz4]} s). Other rows: one run each."
echo
echo "| measure | Haven | pgBackRest zst | pgBackRest lz4 | Haven ÷ pgBackRest lz4 | Haven ÷ pgBackRest zst |"
echo "|---|---|---|---|---|---|"
row "full backup (s)" "${T[haven,full]}" "${T[zst,full]}" "${T[lz4,full]}"
row "incremental backup (s)" "${T[haven,incr]}" "${T[zst,incr]}" "${T[lz4,incr]}"
for t in "${tools[@]}"; do S[$t,added]=$(( ${S[$t,incr]} - ${S[$t,before]} )); done
row "added by the incremental (MiB)" "$(mb "${S[haven,added]}")" "$(mb "${S[zst,added]}")" "$(mb "${S[lz4,added]}")"
row "restore latest until promoted (s)" "${T[haven,restore]}" "${T[zst,restore]}" "${T[lz4,restore]}"
row "archive_command rate (segments/s, higher is better)" "$(segps "${T[haven,push]}")" "$(segps "${T[zst,push]}")" "$(segps "${T[lz4,push]}")"
row "archived WAL ÷ WAL" "$(ratio "${S[haven,wal]}" "$WALBYTES")" "$(ratio "${S[zst,wal]}" "$WALBYTES")" "$(ratio "${S[lz4,wal]}" "$WALBYTES")"
row "repository after full (MiB)" "$(mb "${S[haven,full]}")" "$(mb "${S[zst,full]}")" "$(mb "${S[lz4,full]}")"
row "repository after full + incremental (MiB)" "$(mb "${S[haven,incr]}")" "$(mb "${S[zst,incr]}")" "$(mb "${S[lz4,incr]}")"
row "full backup peak memory (MiB)" "$((M[haven,full] / 1024))" "$((M[zst,full] / 1024))" "$((M[lz4,full] / 1024))"
echo
echo "Repository sizes include the WAL archived so far (the same segments in every repository)."
} | tee "$W/results.md"

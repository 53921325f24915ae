#!/usr/bin/env bash
# Restore from object storage with latency added to every request, against a restore from the
# local disk, on the same corpus in one run (issue 15: within 1.5x of local).
#   bench/latency.sh [path/to/haven]
# s3rver runs on loopback; bench/latency_proxy.py sits in front of it and delays the first bytes
# of each request by BENCH_LATENCY_MS (a round trip to a distant region) and counts requests.
# A second proxy adds no delay: it shows what the proxy itself costs (a process on the same
# cores), apart from the latency. Rounds alternate local, s3rver, through the proxy without and
# with latency; the median counts. CPU seconds of Haven and of the servers (s3rver, and the proxy
# a restore goes through) are taken per restore: they share the machine's cores, so their sum
# over the cores is the least wall time that restore could take here.
# Env: BENCH_SCALE (corpus MB, default 2000), BENCH_LATENCY_MS (default 30), BENCH_ROUNDS
#      (default 3), BENCH_DIR (default /tmp/haven-bench-latency),
#      HAVEN_TEST_SERVERS (default /opt/haven-test-servers, installed by scripts/setup.sh).
set -euo pipefail
HAVEN=$(readlink -f "${1:-build/haven}")
HERE=$(cd "$(dirname "$0")" && pwd)
SCALE=${BENCH_SCALE:-2000}
DELAY=${BENCH_LATENCY_MS:-30}
ROUNDS=${BENCH_ROUNDS:-3}
W=${BENCH_DIR:-/tmp/haven-bench-latency}
SERVERS=${HAVEN_TEST_SERVERS:-/opt/haven-test-servers}
command -v /usr/bin/time >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }

CORPUS=$W/corpus-$SCALE
if [ ! -f "$CORPUS/.done" ]; then
  rm -rf "$CORPUS"
  python3 "$HERE/corpus.py" make "$CORPUS" --scale "$SCALE"
  touch "$CORPUS/.done"
fi
rm -rf "$W/run" && mkdir -p "$W/run/s3" && cd "$W/run"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
S3P=$(free_port); PXP=$(free_port); PX0=$(free_port)
NODE_OPTIONS=--openssl-legacy-provider "$SERVERS/node_modules/.bin/s3rver" --directory "$W/run/s3" \
  --port "$S3P" --address 127.0.0.1 --silent >/dev/null 2>&1 &
S3PID=$!
python3 "$HERE/latency_proxy.py" --listen "$PXP" --to "127.0.0.1:$S3P" --delay-ms "$DELAY" --stats "$W/run/proxy.json" --log "$W/run/requests.log" &
PXPID=$!
python3 "$HERE/latency_proxy.py" --listen "$PX0" --to "127.0.0.1:$S3P" --delay-ms 0 --stats "$W/run/proxy0.json" &
PX0PID=$!
trap 'kill $S3PID $PXPID $PX0PID 2>/dev/null || true' EXIT
for p in "$S3P" "$PXP" "$PX0"; do
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done
export HAVEN_PASSWORD=bench AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
requests() { sleep 0.5; python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$W/run/proxy.json"; }

"$HAVEN" -r "$W/run/repo-local" init -q
"$HAVEN" -r "s3:http://127.0.0.1:$S3P/bench/repo" init -q
"$HAVEN" -r "$W/run/repo-local" -q backup "$CORPUS"
"$HAVEN" -r "s3:http://127.0.0.1:$S3P/bench/repo" -q backup "$CORPUS"
declare -A LOC=([local]="$W/run/repo-local" [s3rver]="s3:http://127.0.0.1:$S3P/bench/repo"
                [proxy]="s3:http://127.0.0.1:$PX0/bench/repo" [latency]="s3:http://127.0.0.1:$PXP/bench/repo")
# CPU seconds (user + system) a process has used so far, from /proc (clock ticks).
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
# The servers' CPU during one restore: s3rver, plus the proxy the restore went through.
declare -A PROXY_PID=([local]="" [s3rver]="" [proxy]="$PX0PID" [latency]="$PXPID")
# The ballast (bench/lib.sh): before each restore free memory is filled down to ~1 GiB, so every
# restore writes into memory reclaimed from the page cache, and both repositories are read into
# the page cache. A restore target is moved aside, not deleted, before the next restore of its
# kind: ext4 passes over inodes freed in the last minute or more when it allocates new ones, and
# a restore right after deleting 1,621 files spent 18% of its samples doing so (`perf`, session
# 26). Needs free disk of about RAM + (4 x ROUNDS + 2) x the corpus.
. "$HERE/lib.sh"
settle() {
  ballast_fill "$W/run/ballast"
  find "$W/run/repo-local" "$W/run/s3" -type f -exec cat {} + >/dev/null 2>&1 || true
}
declare -A T REQ CPU SRV
for round in $(seq 1 "$ROUNDS"); do
  for n in local s3rver proxy latency; do
    [ -d "restore-$n" ] && mv "restore-$n" "old-restore-$n-$round"
    settle
    r0=$(requests)
    s0=$(cpu_of "$S3PID"); p0=0; [ -n "${PROXY_PID[$n]}" ] && p0=$(cpu_of "${PROXY_PID[$n]}")
    /usr/bin/time -f "%e %U %S" -o t "$HAVEN" -r "${LOC[$n]}" -q restore latest --target "restore-$n" >"$n.log" 2>&1 || {
      echo "bench: $n restore failed" >&2; tail -5 "$n.log" >&2; exit 1; }
    s1=$(cpu_of "$S3PID"); p1=0; [ -n "${PROXY_PID[$n]}" ] && p1=$(cpu_of "${PROXY_PID[$n]}")
    r1=$(requests)
    read -r wall user sys <t
    T[$n]+="$wall "
    CPU[$n]+="$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u + s}') "
    SRV[$n]+="$(awk -v a="$s0" -v b="$s1" -v c="$p0" -v d="$p1" 'BEGIN{printf "%.2f", (b - a) + (d - c)}') "
    if [ "$n" = latency ]; then
      REQ[$round]=$((r1 - r0))
      # What the first one asked for, by method and object kind (/bench/repo/<kind>/...).
      [ "$round" = 1 ] && KINDS=$(grep -v ' <$' requests.log | tail -n "$((r1 - r0))" | awk '{split($4, p, "/"); k=p[4]; sub(/\?.*/, "", k); if (k == "") k="(listing)"; n[$3" "k]++} END{for (x in n) printf "%s %d, ", x, n[x]}' | sed 's/, $//')
    fi
    diff -rq "$CORPUS" "restore-$n/corpus-$SCALE" >/dev/null || { echo "bench: $n restore differs" >&2; exit 1; }
  done
done
rm -rf restore-* old-restore-* ballast
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
L=$(median "${T[local]}"); S=$(median "${T[s3rver]}"); P=$(median "${T[proxy]}"); X=$(median "${T[latency]}")
# What the restore and the servers on the same cores cost in CPU, and the wall time that CPU
# needs at the least on this machine's cores: a restore cannot end sooner than that.
floor() { awk -v a="$(median "${CPU[$1]}")" -v b="$(median "${SRV[$1]}")" -v c="$(nproc)" 'BEGIN{printf "%.2f", (a + b) / c}'; }
row() { echo "| $1 | $2 | $3 | $4 | $(median "${CPU[$5]}") | $(median "${SRV[$5]}") | $(floor "$5") |"; }
{
echo "Corpus: $(du -sm "$CORPUS" | cut -f1) MiB, $(find "$CORPUS" -type f | wc -l) files, $(find "$CORPUS" -type d | wc -l) directories; s3rver on loopback; +$DELAY ms per request; $(nproc) cores; median of $ROUNDS rounds (local: ${T[local]}; s3rver: ${T[s3rver]}; proxy: ${T[proxy]}; +$DELAY ms: ${T[latency]})."
echo
echo "| restore | time (s) | ÷ local | requests | Haven CPU (s) | s3rver + proxy CPU (s) | CPU ÷ $(nproc) cores (s) |"
echo "|---|---|---|---|---|---|---|"
row "local disk" "$L" "1.00" "" local
row "s3rver" "$S" "$(ratio "$S" "$L")" "" s3rver
row "s3rver through the proxy, no delay" "$P" "$(ratio "$P" "$L")" "" proxy
row "s3rver, +$DELAY ms per request" "$X" "$(ratio "$X" "$L")" "${REQ[1]}" latency
echo
echo "Requests of the first restore with latency: $KINDS."
} | tee "$W/results.md"

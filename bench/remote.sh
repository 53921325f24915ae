#!/usr/bin/env bash
# Haven to local disk vs to s3rver vs to Azurite on the same corpus, in one run (issue 5's
# benchmark; restic cannot be the anchor: it signs with aws-chunked payloads s3rver rejects).
#   bench/remote.sh [path/to/haven]
# Env: BENCH_SCALE (corpus MB, default 300), BENCH_ROUNDS (default 3; the median is reported),
#      BENCH_DIR (default /tmp/haven-bench-remote),
#      HAVEN_TEST_SERVERS (default /opt/haven-test-servers, installed by scripts/setup.sh).
set -euo pipefail
HAVEN=$(readlink -f "${1:-build/haven}")
HERE=$(cd "$(dirname "$0")" && pwd)
SCALE=${BENCH_SCALE:-300}
W=${BENCH_DIR:-/tmp/haven-bench-remote}
SERVERS=${HAVEN_TEST_SERVERS:-/opt/haven-test-servers}
command -v /usr/bin/time >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }

CORPUS=$W/corpus-$SCALE
if [ ! -f "$CORPUS/.done" ]; then
  rm -rf "$CORPUS"
  python3 "$HERE/corpus.py" make "$CORPUS" --scale "$SCALE"
  touch "$CORPUS/.done"
fi
rm -rf "$W/run" && mkdir -p "$W/run/s3" "$W/run/az" && cd "$W/run"
cp -a "$CORPUS" data && rm -f data/.done
find data -type f -exec cat {} + >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
S3P=$(free_port); AZP=$(free_port)
NODE_OPTIONS=--openssl-legacy-provider "$SERVERS/node_modules/.bin/s3rver" --directory "$W/run/s3" \
  --port "$S3P" --address 127.0.0.1 --silent >/dev/null 2>&1 &
S3PID=$!
"$SERVERS/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZP" --location "$W/run/az" \
  --silent >/dev/null 2>&1 &
AZPID=$!
trap 'kill $S3PID $AZPID 2>/dev/null || true' EXIT
for p in "$S3P" "$AZP"; do
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done

export HAVEN_PASSWORD=bench AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:$AZP/devstoreaccount1;"
declare -A LOC=([local]="$W/run/repo-local" [s3rver]="s3:http://127.0.0.1:$S3P/bench/repo" [azurite]="azure:bench/repo")
declare -A PID=([local]="" [s3rver]=$S3PID [azurite]=$AZPID)
ROUNDS=${BENCH_ROUNDS:-3}
declare -A T SCPU HCPU
cpu_of() { [ -n "$1" ] && awk '{print $14+$15}' "/proc/$1/stat" || echo 0; }  # clock ticks
run() {  # run NAME STEP CMD...: appends the wall time to T[NAME,STEP] and the server's CPU
  local name=$1 step=$2; shift 2
  local c0; c0=$(cpu_of "${PID[$name]}")
  /usr/bin/time -f "%e %U %S" -o "$W/run/t" "$@" >"$W/run/$name-$step.log" 2>&1 || {
    echo "bench: $name $step failed:" >&2; tail -5 "$W/run/$name-$step.log" >&2; exit 1; }
  local c1; c1=$(cpu_of "${PID[$name]}")
  T[$name,$step]+="$(awk '{print $1}' "$W/run/t") "
  HCPU[$name,$step]+="$(awk '{printf "%.2f", $2+$3}' "$W/run/t") "
  SCPU[$name,$step]+="$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/hz}') "
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# Each round: a fresh repository per store (so every backup is a first backup), backup,
# restore (compared with the source), check --read-data. Reported: the median of the rounds.
for round in $(seq 1 "$ROUNDS"); do
  for n in local s3rver azurite; do
    loc=${LOC[$n]}-$round
    "$HAVEN" -r "$loc" init -q
    sync
    run "$n" backup "$HAVEN" -r "$loc" backup data
    rm -rf "restore-$n"
    sync
    run "$n" restore "$HAVEN" -r "$loc" restore latest --target "restore-$n"
    diff -rq data "restore-$n/data" >/dev/null || { echo "bench: $n restore differs" >&2; exit 1; }
    rm -rf "restore-$n"
    run "$n" check "$HAVEN" -r "$loc" check --read-data
  done
done
BYTES=$(du -sb data | cut -f1)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
{
echo "Corpus: $(awk -v b="$BYTES" 'BEGIN{printf "%.0f", b/1048576}') MiB; servers on loopback; $(nproc) cores; median of $ROUNDS rounds."
echo
echo "| measure | local | s3rver | Azurite | s3rver ÷ local | Azurite ÷ local | Haven CPU local / s3rver / Azurite (s) | server CPU s3rver / Azurite (s) |"
echo "|---|---|---|---|---|---|---|---|"
for s in backup restore check; do
  l=$(median "${T[local,$s]}"); a=$(median "${T[s3rver,$s]}"); z=$(median "${T[azurite,$s]}")
  echo "| $s (s) | $l | $a | $z | $(ratio "$a" "$l") | $(ratio "$z" "$l") | $(median "${HCPU[local,$s]}") / $(median "${HCPU[s3rver,$s]}") / $(median "${HCPU[azurite,$s]}") | $(median "${SCPU[s3rver,$s]}") / $(median "${SCPU[azurite,$s]}") |"
done
} | tee "$W/results.md"

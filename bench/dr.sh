#!/usr/bin/env bash
# A disaster-recovery drill, timed: a pgbench cluster (scale BENCH_SCALE, default 100 ≈ 1.5 GB)
# archiving its WAL into a Haven repository, a file tree (bench/corpus.py, BENCH_TREE_MB,
# default 200) backed up into the same repository, and a plan that restores both into a
# sandbox, recovers the cluster to the latest point (replaying the WAL of BENCH_TX pgbench
# transactions made after the base backup), starts an HTTP service that reads both, and
# validates it over HTTP, SQL and checksums. `haven dr drill` runs it BENCH_RUNS times (default
# 3); the table splits each drill's time into restore (files and base backup, in parallel), WAL
# replay and validation, with the RTO and RPO it measured. No peer tool drills; the restore
# figures compare with bench/pg.sh's.
#   bench/dr.sh [path/to/haven]
set -euo pipefail
HAVEN=$(readlink -f "${1:-build/haven}")
SCALE=${BENCH_SCALE:-100}
TX=${BENCH_TX:-20000}
TREE_MB=${BENCH_TREE_MB:-200}
RUNS=${BENCH_RUNS:-3}
W=${BENCH_DIR:-/tmp/haven-bench-dr}
PORT=${BENCH_PORT:-55442}
PGV=15
B=/usr/lib/postgresql/$PGV/bin
HERE=$(cd "$(dirname "$0")" && pwd)
[ -x "$HAVEN" ] || { echo "bench: no haven binary at $HAVEN" >&2; exit 1; }

R=$W/run
stop_all() {
  for d in "$R/data"; do
    [ -f "$d/postmaster.pid" ] && "${AS[@]}" "$B/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
  done
}
trap stop_all EXIT
AS=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$R" HAVEN_PASSWORD=bench
    PGHOST="$R" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres)
if [ -d "$R" ]; then
  [ -f "$R/data/postmaster.pid" ] && "${AS[@]}" "$B/pg_ctl" -D "$R/data" -m immediate -w stop >/dev/null 2>&1 || true
fi
rm -rf "$R" && mkdir -p "$R/bin"
chmod 755 "$W" 2>/dev/null || true
cp "$HAVEN" "$R/bin/haven" && chmod 755 "$R/bin/haven"
H=$R/bin/haven
echo bench >"$R/pass"
chown -R 65534:65534 "$R"
cd "$R"
q() { "${AS[@]}" psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

echo "bench: pgbench scale $SCALE" >&2
"${AS[@]}" "$H" -r "$R/repo" init >/dev/null
"${AS[@]}" "$H" -r "$R/repo" pg archive-key --output "$R/wal.key" >/dev/null
"${AS[@]}" "$B/initdb" -D "$R/data" -U postgres --auth=trust >/dev/null
cat >>"$R/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$R'
max_wal_size = 4GB
archive_mode = on
archive_command = '[ "\$(pwd -P)" = "$R/data" ] || exit 0; exec $H -r $R/repo wal-push --wal-key-file $R/wal.key %p'
CONF
"${AS[@]}" "$B/pg_ctl" -D "$R/data" -l "$R/pg.log" -w start >/dev/null
"${AS[@]}" pgbench -i -s "$SCALE" -q >"$R/pgbench-init.log" 2>&1
"${AS[@]}" "$H" -r "$R/repo" pg backup --pgdata "$R/data" >"$R/pg-backup.log" 2>&1
echo "bench: $TX pgbench transactions after the base backup (the WAL a drill replays)" >&2
"${AS[@]}" pgbench -c 2 -t $((TX / 2)) >"$R/pgbench-run.log" 2>&1
seg=$(q -c "select pg_walfile_name(pg_current_wal_lsn())")
q -c "select pg_switch_wal()" >/dev/null
for _ in $(seq 1 1200); do
  [ "$(q -c "select coalesce(last_archived_wal >= '$seg', false) from pg_stat_archiver")" = t ] && break
  sleep 0.25
done
accounts=$(q -c "select count(*) from pgbench_accounts")
echo "bench: a ${TREE_MB} MB file tree" >&2
python3 "$HERE/corpus.py" make "$R/tree" --scale "$TREE_MB" >/dev/null
chmod -R a+rX "$R/tree"
"${AS[@]}" "$H" -r "$R/repo" backup "$R/tree" >"$R/backup.log" 2>&1

cat >"$R/app.py" <<'PY'
import http.server, subprocess, sys
port, tree, sock, pgport = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        rows = subprocess.run(["psql", "-qAtX", "-h", sock, "-p", pgport, "-U", "postgres", "-d", "postgres",
                               "-c", "select count(*) from pgbench_accounts"], capture_output=True, text=True).stdout.strip()
        body = ("rows=%s files=%d" % (rows, sum(1 for _ in __import__("os").scandir(tree)))).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
cat >"$R/haven.yaml" <<YAML
server: {catalog: $R/catalog.db}
locations:
  - {name: local, repository: $R/repo, password_file: $R/pass}
policies:
  - {name: tree, resource_type: files, sources: [$R/tree], location: local, schedules: []}
  - name: db
    resource_type: database
    database: {pgdata: $R/data, conninfo: "host=$R port=$PORT user=postgres"}
    location: local
    schedules: []
dr_plans:
  - name: bench-drill
    plan_type: warm_site
    rto: {value: 30, unit: minutes}
    rpo: {value: 24, unit: hours}
    steps:
      - name: files
        restore_files: {policy: tree}
      - name: db
        restore_postgres: {policy: db}
      - name: app
        depends_on: [files, db]
        command: "exec python3 $R/app.py \${port} \${files.path}/tree \${db.host} \${db.port}"
        wait: {http: "http://127.0.0.1:\${port}/", timeout: 60}
    validation:
      - name: service
        checks:
          - {http: "http://127.0.0.1:\${app.port}/", expect_body: "rows=$accounts"}
          - {sql: "select count(*) from pgbench_accounts", conninfo: "\${db.conninfo}", expect: "= $accounts"}
          - {checksum: files}
        timeout: 300
YAML

echo "bench: $RUNS drills" >&2
for i in $(seq 1 "$RUNS"); do
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  "$H" dr drill bench-drill --config "$R/haven.yaml" --json >"$R/drill-$i.json" 2>"$R/drill-$i.err" || {
    echo "bench: drill $i failed" >&2; cat "$R/drill-$i.err" >&2; exit 1; }
done

python3 - "$R" "$RUNS" "$SCALE" "$TX" "$TREE_MB" <<'PY'
import json, statistics, sys
R, runs = sys.argv[1], int(sys.argv[2])
rows = []
for i in range(1, runs + 1):
    j = [json.loads(l) for l in open(f"{R}/drill-{i}.json") if l.strip().startswith("{") and "execution_id" in l][0]
    steps = {s["name"]: s for s in j["steps"]}
    rows.append({
        "files restore": steps["files"]["restore_seconds"],
        "base backup restore": steps["db"]["restore_seconds"],
        "WAL replay": steps["db"]["replay_seconds"],
        "service start": steps["app"]["seconds"],
        "validation": j["validation_seconds"],
        "RTO": j["rto_seconds"],
        "RPO": j["rpo_seconds"],
        "files": steps["files"]["details"]["bytes"],
        "db": steps["db"]["details"]["bytes"],
        "ok": j["success"],
    })
med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "ok"}
print(f"\nDrill of pgbench scale {sys.argv[3]} + {sys.argv[4]} transactions of WAL + a {sys.argv[5]} MB tree "
      f"({med['db']/1e6:.0f} MB of cluster, {med['files']/1e6:.0f} MB of files), median of {runs} drills, all "
      f"{'passed' if all(r['ok'] for r in rows) else 'NOT all passed'}:\n")
print("| phase | seconds |\n|---|---|")
for k in ("files restore", "base backup restore", "WAL replay", "service start", "validation", "RTO"):
    print(f"| {k} | {med[k]:.1f} |")
print(f"| RPO (drill start − last replayed commit) | {med['RPO']:.1f} |")
print("\nThe files and the base backup restore in parallel; the RTO runs from the drill's start to the validation passing.")
PY

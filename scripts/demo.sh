#!/usr/bin/env bash
# make demo: Haven's main job on embedded defaults, on a local repository in a temp directory.
set -euo pipefail
HAVEN=${1:-build/haven}
HAVEN=$(readlink -f "$HAVEN")
WORK=$(mktemp -d /tmp/haven-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export HAVEN_REPOSITORY="$WORK/repo"
echo "demo password" > "$WORK/password"
export HAVEN_PASSWORD_FILE="$WORK/password"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "haven version"
"$HAVEN" version

step "haven init (Argon2id-wrapped random master key, AES-256-GCM objects)"
"$HAVEN" init

step "haven cat config (decrypted)"
"$HAVEN" cat config

step "haven key add / key list (a second password opens the same repository)"
echo "second password" > "$WORK/password2"
"$HAVEN" key add --new-password-file "$WORK/password2"
"$HAVEN" key list
HAVEN_PASSWORD_FILE="$WORK/password2" "$HAVEN" key list

step "a wrong password is refused with exit 12"
set +e
env -u HAVEN_PASSWORD_FILE HAVEN_PASSWORD=wrong "$HAVEN" cat config
rc=$?
set -e
echo "exit code: $rc"
[ "$rc" -eq 12 ]

step "a sample tree: text, a binary, a compressible log, a sparse file, a symlink, a hard link"
SRC="$WORK/sample"
mkdir -p "$SRC/docs" "$SRC/empty"
cp /etc/os-release "$SRC/docs/os-release"
cp "$HAVEN" "$SRC/haven-binary"
for i in $(seq 1 20000); do echo "2026-11-21 12:00:$((i % 60)) INFO request $i served in $((i % 97)) ms"; done > "$SRC/app.log"
truncate -s 64M "$SRC/sparse.img" && printf 'end' | dd of="$SRC/sparse.img" bs=1 seek=60000000 conv=notrunc 2>/dev/null
ln -s docs/os-release "$SRC/link-to-os-release"
ln "$SRC/app.log" "$SRC/app.log.hardlink"
find "$SRC" | sort

step "haven backup (full)"
"$HAVEN" backup --strategy full --tag demo "$SRC"
sleep 1.1
T1=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
cp -a "$SRC" "$WORK/sample-at-t1"
sleep 1.1

step "change the tree: append to the log, edit a file, add one, delete one"
echo "2026-11-21 13:00:00 INFO a new line" >> "$SRC/app.log"
echo "edited" >> "$SRC/docs/os-release"
echo "new file" > "$SRC/docs/new.txt"
rm "$SRC/link-to-os-release"

step "haven backup (incremental: only changed files are read)"
"$HAVEN" backup --tag demo "$SRC"

step "haven snapshots / diff / ls / stats"
"$HAVEN" snapshots
"$HAVEN" diff "$("$HAVEN" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')" latest
"$HAVEN" ls latest | head -8
"$HAVEN" stats

step "haven restore --at T1 --verify (point in time: the tree as it was before the change)"
"$HAVEN" restore --at "$T1" --target "$WORK/restored" --verify
diff -r "$WORK/sample-at-t1" "$WORK/restored/sample" && echo "restored tree is identical to the tree at T1"
echo "sparse file: $(du -k "$WORK/restored/sample/sparse.img" | cut -f1) KiB allocated of 64 MiB"

step "haven restore latest (the newest state)"
"$HAVEN" restore latest --target "$WORK/restored-latest" -q
diff -r "$SRC" "$WORK/restored-latest/sample" && echo "restored tree is identical to the current tree"

step "haven check --read-data (every blob decrypted and re-hashed)"
"$HAVEN" check --read-data

step "haven forget --keep-last 1 --dry-run (the rule behind each decision), then forget --prune"
"$HAVEN" forget --keep-last 1 --dry-run
"$HAVEN" forget --keep-last 1 --prune
"$HAVEN" check

step "the repository on disk"
find "$HAVEN_REPOSITORY" -maxdepth 1 | sort

step "the server: haven.yaml with a temporary catalog, checked"
cat > "$WORK/haven.yaml" <<YAML
server:
  listen: 127.0.0.1:8420
  catalog: $WORK/catalog.db
locations:
  - name: local
    storage_type: on_premise
    repository: $HAVEN_REPOSITORY
    password_file: $WORK/password
    primary_region: eu-west-1
    secondary_regions:       # byte-for-byte copies the server keeps in step
      - {region: us-east-1, repository: $WORK/region-us-east-1}
      - {region: eu-north-1, repository: $WORK/region-eu-north-1}
    replication: {mode: async, rpo: {value: 5, unit: minutes}, interval_seconds: 2}
policies:
  - name: nightly            # healthy: backed up below, RPO target a day, RTO target an hour
    resource_type: files
    sources: [$SRC]
    location: local
    schedules: [{cron: "0 2 * * *", timezone: Europe/Berlin}]
    rpo: {value: 1, unit: days}
    rto: {value: 1, unit: hours}
  - name: docs               # overdue: backed up below, but its RPO target is 10 seconds
    resource_type: files
    sources: [$SRC/docs]
    location: local
    schedules: []
    rpo: {value: 10, unit: seconds}
dr_plans:
  - name: files-drill        # restore nightly's latest snapshot, serve it over HTTP, check it
    plan_type: data_only
    rto: {value: 5, unit: minutes}
    rpo: {value: 1, unit: days}
    test_frequency_days: 0   # drilled by hand here; 90 would drill it every quarter
    steps:
      - name: restore
        restore_files: {policy: nightly}
      - name: serve
        depends_on: [restore]
        command: "exec python3 -m http.server \${port} --bind 127.0.0.1 --directory \${restore.path}"
        wait: {http: "http://127.0.0.1:\${port}/", timeout: 30}
    validation:
      - name: content
        checks:
          - {http: "http://127.0.0.1:\${serve.port}/sample/docs/os-release", expect_body: edited}
          - {checksum: restore}
        timeout: 30
monitoring:
  channels:                  # a command channel: each notification's JSON appended to a file
    - {name: log, type: command, command: [sh, -c, "cat >> $WORK/alerts.jsonl; echo >> $WORK/alerts.jsonl"]}
  monitors:
    - {name: docs-rpo, type: rpo, policy: docs, check_frequency_minutes: 1, channels: [log]}
    - {name: nightly-missed, type: missed_schedule, policy: nightly, channels: [log],
       escalation: [{after_minutes: 15, channels: [log]}]}
YAML
cat "$WORK/haven.yaml"
"$HAVEN" config check --config "$WORK/haven.yaml"

step "an admin token (shown once; the catalog keeps its hash), then the server on a free port"
TOKEN=$("$HAVEN" server token create --config "$WORK/haven.yaml" --name demo-admin --role admin)
echo "token: ${TOKEN:0:8}... (68 characters)"
"$HAVEN" server --config "$WORK/haven.yaml" --port 0 > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do grep -q "listening on port" "$WORK/server.log" && break; sleep 0.1; done
PORT=$(grep -o 'listening on port [0-9]*' "$WORK/server.log" | grep -o '[0-9]*$')
API="http://127.0.0.1:$PORT"
api() { python3 - "$@" <<'PY'
import json, sys, urllib.request
method, url, token = sys.argv[1], sys.argv[2], sys.argv[3]
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request(url, data=body, method=method,
                             headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req) as r:
        print(json.dumps(json.load(r), indent=1))
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
    sys.exit(1)
PY
}
echo "GET /health: $(python3 -c "import urllib.request; print(urllib.request.urlopen('$API/health').read().decode())")"

step "POST /api/backup/policies (a policy created over the API)"
api POST "$API/api/backup/policies" "$TOKEN" "{\"name\": \"demo\", \"resourceType\": \"files\", \"sources\": [\"$SRC\"], \"location\": \"local\", \"schedules\": [{\"cron\": \"0 2 * * *\", \"timezone\": \"Europe/Berlin\"}], \"retention\": {\"last\": 3}}" | python3 -c 'import json,sys; p=json.load(sys.stdin); print({k: p[k] for k in ("id", "name", "schedule_cron", "timezone", "source")})'

step "POST /api/backup/execute/demo, then the execution as recorded"
EXEC=$(api POST "$API/api/backup/execute/demo" "$TOKEN" '{"backupType": "full"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["execution_id"])')
for _ in $(seq 1 100); do
  STATUS=$(api GET "$API/api/backup/executions/$EXEC" "$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$STATUS" = pending ] || [ "$STATUS" = running ] || break; sleep 0.2
done
api GET "$API/api/backup/executions/$EXEC" "$TOKEN"
[ "$STATUS" = completed ]

step "POST /api/restore/request, then its status"
RID=$(api POST "$API/api/restore/request" "$TOKEN" "{\"restoreType\": \"full_restore\", \"sourceBackupId\": \"$EXEC\", \"targetLocation\": \"$WORK/restored-api\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["request_id"])')
for _ in $(seq 1 100); do
  RSTATUS=$(api GET "$API/api/restore/operations/$RID/status" "$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$RSTATUS" = pending ] || [ "$RSTATUS" = running ] || break; sleep 0.2
done
api GET "$API/api/restore/operations/$RID/status" "$TOKEN"
[ "$RSTATUS" = completed ]
diff -r "$SRC" "$WORK/restored-api/sample" && echo "restored over the API: identical to the current tree"

step "POST /api/restore/operations/$RID/validate (the target compared with its snapshot, after one file was changed)"
echo "appending a line to sample/docs/os-release in the restored tree"
echo "tampered" >> "$WORK/restored-api/sample/docs/os-release"
api POST "$API/api/restore/operations/$RID/validate" "$TOKEN" '{}' > /dev/null
for _ in $(seq 1 100); do
  VSTATE=$(api GET "$API/api/restore/operations/$RID/status" "$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["validation_results"]["validation"]["state"])')
  [ "$VSTATE" = running ] || break; sleep 0.2
done
api GET "$API/api/restore/operations/$RID/status" "$TOKEN" | python3 -c 'import json,sys; r=json.load(sys.stdin); v=r["validation_results"]["validation"]; print({"integrity_validated": r["integrity_validated"], "state": v["state"], "matched": v["matched"], "differ": v["differ"], "differences": v["differences"]})'
[ "$VSTATE" = completed ]

step "GET /api/scheduler (the plan; fire delays once schedules have fired)"
api GET "$API/api/scheduler" "$TOKEN"

step "monitoring: both policies of haven.yaml backed up over the API"
for P in nightly docs; do
  E=$(api POST "$API/api/backup/execute/$P" "$TOKEN" '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["execution_id"])')
  for _ in $(seq 1 100); do
    S=$(api GET "$API/api/backup/executions/$E" "$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [ "$S" = pending ] || [ "$S" = running ] || break; sleep 0.2
  done
  echo "$P: $E $S"
  [ "$S" = completed ]
done
check() { api POST "$API/api/monitors/$1/check" "$TOKEN" '{}' | python3 -c 'import json,sys; e=json.load(sys.stdin); print("'$1':", e["level"], "-", e["message"])'; }
echo "the monitor docs-rpo raised an alert when the server started (docs had no backup yet);"
echo "checked now, after the backup, it clears and the channel gets a resolve notice:"
check docs-rpo
echo "docs' RPO target is 10 seconds: waiting 11 seconds, as a missed hour would in real life"
sleep 11
check docs-rpo
for _ in $(seq 1 50); do [ "$(grep -c . "$WORK/alerts.jsonl" 2>/dev/null)" -ge 3 ] && break; sleep 0.2; done

step "replication: every snapshot reached both secondary regions as it landed"
for _ in $(seq 1 100); do
  api GET "$API/api/replication" "$TOKEN" | python3 -c 'import json,sys
r = json.load(sys.stdin)["locations"][0]["regions"]
sys.exit(0 if all(x["pending_objects"] == 0 and x["last_success_at"] for x in r) else 1)' && break
  sleep 0.2
done
api GET "$API/api/replication" "$TOKEN" | python3 -c 'import json,sys
for r in json.load(sys.stdin)["locations"][0]["regions"]:
    print(r["region"], r["state"], r["status"], "lag", r["lag_seconds"], "s,", r["pending_objects"],
          "objects behind; copied", r["copied_objects"], "objects; newest snapshot", r["newest_snapshot_at"])'
"$HAVEN" check --config "$WORK/haven.yaml" --location local --regions --read-data

step "a replica restores alone, with the repository's password"
"$HAVEN" -r "$WORK/region-eu-north-1" --password-file "$WORK/password" restore latest --target "$WORK/from-replica" -q
diff -r "$SRC/docs" "$WORK/from-replica/docs" && echo "restored from eu-north-1: identical to the source"

step "a disaster-recovery drill over the API: restore into a sandbox, serve, validate, measure"
D=$(api POST "$API/api/disaster-recovery/execute/files-drill" "$TOKEN" '{"executionType": "drill", "triggerReason": "demo"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 1 150); do
  S=$(api GET "$API/api/disaster-recovery/executions/$D/status" "$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$S" = pending ] || [ "$S" = running ] || break; sleep 0.2
done
echo "drill $D: $S"
python3 - "$API" "$TOKEN" "$D" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/api/disaster-recovery/executions/" + sys.argv[3] + "/report",
                             headers={"Authorization": "Bearer " + sys.argv[2]})
print(urllib.request.urlopen(req).read().decode())
PY
[ "$S" = completed ]

step "a pack deleted in the primary: check --regions names it, repair --from restores it"
PACK=$(find "$HAVEN_REPOSITORY/data" -type f | head -1)
rm -f "$PACK"
set +e
"$HAVEN" check --config "$WORK/haven.yaml" --location local --regions --region us-east-1
set -e
"$HAVEN" repair --config "$WORK/haven.yaml" --location local --from us-east-1
"$HAVEN" -r "$HAVEN_REPOSITORY" --password-file "$WORK/password" check --read-data | tail -1

step "pause a region (recorded in the catalog and the audit log), then resume it"
"$HAVEN" replication pause --config "$WORK/haven.yaml" --location local --region us-east-1
"$HAVEN" replication status --config "$WORK/haven.yaml"
"$HAVEN" replication resume --config "$WORK/haven.yaml" --location local --region us-east-1

step "haven status: one policy healthy, one overdue (exit 3: something needs a person)"
set +e
"$HAVEN" status --config "$WORK/haven.yaml"
rc=$?
set -e
echo "exit code: $rc"
[ "$rc" -eq 3 ]

step "the notifications as the command channel received them (webhook, Slack, PagerDuty and e-mail alike)"
python3 -c "import json,sys
for line in open('$WORK/alerts.jsonl'):
    if line.strip():
        a = json.loads(line); print(a['action'], a['severity'], a['kind'], '-', a['summary'])"

step "GET /metrics (Prometheus; the same numbers as haven status)"
python3 - "$API" "$TOKEN" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/metrics", headers={"Authorization": "Bearer " + sys.argv[2]})
for line in urllib.request.urlopen(req).read().decode().splitlines():
    if line.startswith(("haven_policy_rpo", "haven_policy_rto", "haven_alerts_open{severity=\"critical\",state=\"open\"}")):
        print(line)
PY

step "GET /api/status: the repository's health check (reachable, writable, locks, capacity)"
api GET "$API/api/status" "$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["locations"])'

step "the audit log: who did what (hash-chained), and its check"
"$HAVEN" audit export --config "$WORK/haven.yaml" | python3 -c "import json,sys
for line in sys.stdin:
    r = json.loads(line); print(r['seq'], r['time'][:19], r['actor'], r['action'], r['target'])"
"$HAVEN" audit verify --config "$WORK/haven.yaml"

step "a request without a token, and a bad one"
python3 -c "import urllib.request
try: urllib.request.urlopen('$API/api/backup/policies')
except urllib.error.HTTPError as e: print(e.code, e.read().decode())"
api POST "$API/api/backup/execute/demo" "$TOKEN" '{"backupType": "weekly"}' || true

step "SIGTERM: the server stops"
kill -TERM $SERVER_PID
wait $SERVER_PID
tail -3 "$WORK/server.log"
echo
echo "demo finished"

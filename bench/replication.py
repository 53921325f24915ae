#!/usr/bin/env python3
"""Replication benchmark (issue 13), in one run on this machine:

1. Throughput: `haven replicate` of one repository to a fresh region vs `rclone sync` of the
   same repository directory to a fresh place on the same backend — local disk, s3rver, Azurite —
   alternating, BENCH_ROUNDS rounds, medians, reported as ratios.
2. Time from a snapshot landing in the primary to its presence in every region, with
   `haven server` replicating asynchronously to three regions (local disk, s3rver, Azurite): the
   primary's snapshot file time against the replicator's replication:progress events (the
   catalog's events table) naming that snapshot, for a first backup and for an incremental one.
3. Sync mode reads the source once: a policy backup with `mode: sync, quorum: 3` reports
   bytes_read equal to the corpus, however many regions receive it.

  python3 bench/replication.py [path/to/haven]
Env: BENCH_SCALE (corpus MB, default 300), BENCH_ROUNDS (default 3), BENCH_DIR
     (default /tmp/haven-bench-replication), HAVEN_TEST_SERVERS (default /opt/haven-test-servers).
"""
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request

HAVEN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/haven")
HERE = os.path.dirname(os.path.abspath(__file__))
SCALE = int(os.environ.get("BENCH_SCALE", "300"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
W = os.environ.get("BENCH_DIR", "/tmp/haven-bench-replication")
SERVERS = os.environ.get("HAVEN_TEST_SERVERS", "/opt/haven-test-servers")
AZ_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
          "KBHBeksoGMGw==")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(p):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", p), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"bench: nothing listens on {p}")


def account_sas(port):
    """An account SAS URL for Azurite's development account (blob service, everything)."""
    import base64
    import hashlib
    import hmac
    import urllib.parse
    acct, sp, ss, srt, se, spr, sv = ("devstoreaccount1", "rwdlacup", "b", "sco",
                                      "2030-01-01T00:00:00Z", "https,http", "2019-12-12")
    sts = "\n".join([acct, sp, ss, srt, "", se, "", spr, sv, ""])
    sig = base64.b64encode(hmac.new(base64.b64decode(AZ_KEY), sts.encode(),
                                    hashlib.sha256).digest()).decode()
    q = urllib.parse.urlencode({"sv": sv, "ss": ss, "srt": srt, "sp": sp, "se": se, "spr": spr,
                                "sig": sig})
    return f"http://127.0.0.1:{port}/{acct}?{q}"


def run(cmd, env=None, check=True):
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.monotonic() - t0
    if check and r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return dt, r


def main():
    if shutil.which("rclone") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "rclone"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       stdout=subprocess.DEVNULL)
    os.makedirs(W, exist_ok=True)
    corpus = f"{W}/corpus-{SCALE}"
    if not os.path.exists(f"{corpus}/.done"):
        shutil.rmtree(corpus, ignore_errors=True)
        subprocess.run([sys.executable, f"{HERE}/corpus.py", "make", corpus, "--scale", str(SCALE)],
                       check=True)
        open(f"{corpus}/.done", "w").close()
    work = f"{W}/run"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(f"{work}/s3")
    os.makedirs(f"{work}/az")
    shutil.copytree(corpus, f"{work}/data", ignore=shutil.ignore_patterns(".done"))
    s3p, azp = free_port(), free_port()
    procs = [
        subprocess.Popen([f"{SERVERS}/node_modules/.bin/s3rver", "--directory", f"{work}/s3",
                          "--port", str(s3p), "--address", "127.0.0.1", "--silent"],
                         env=dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([f"{SERVERS}/node_modules/.bin/azurite-blob", "--blobHost", "127.0.0.1",
                          "--blobPort", str(azp), "--location", f"{work}/az", "--silent"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_port(s3p)
        wait_port(azp)
        bench(work, s3p, azp)
    finally:
        for p in procs:
            p.kill()


def bench(work, s3p, azp):
    az_conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZ_KEY};"
               f"BlobEndpoint=http://127.0.0.1:{azp}/devstoreaccount1;")
    with open(f"{work}/pass", "w") as f:
        f.write("bench\n")
    for name, value in (("s3key", "S3RVER"), ("s3secret", "S3RVER"), ("azconn", az_conn)):
        with open(f"{work}/{name}", "w") as f:
            f.write(value + "\n")
    primary = f"{work}/primary"
    run([HAVEN, "init", "-r", primary, "--password-file", f"{work}/pass"])
    run([HAVEN, "-r", primary, "--password-file", f"{work}/pass", "backup", f"{work}/data", "-q"])
    repo_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(primary)
                     for f in fs if "/locks" not in d)
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # plain HTTP here
    env.update(RCLONE_CONFIG_S3_TYPE="s3", RCLONE_CONFIG_S3_PROVIDER="Other",
               RCLONE_CONFIG_S3_ENDPOINT=f"http://127.0.0.1:{s3p}",
               RCLONE_CONFIG_S3_ACCESS_KEY_ID="S3RVER", RCLONE_CONFIG_S3_SECRET_ACCESS_KEY="S3RVER",
               RCLONE_CONFIG_S3_FORCE_PATH_STYLE="true",
               # Debian's rclone 1.60 reaches an emulator at another port only by a SAS URL.
               RCLONE_CONFIG_AZ_TYPE="azureblob", RCLONE_CONFIG_AZ_SAS_URL=account_sas(azp))

    def region_yaml(kind, name):
        if kind == "local":
            return f"{{region: r, repository: {work}/{name}}}"
        if kind == "s3rver":
            return (f"{{region: r, repository: \"s3:http://127.0.0.1:{s3p}/{name}/repo\", "
                    f"settings: {{HAVEN_S3_PATH_STYLE: \"1\"}}, credentials: "
                    f"{{AWS_ACCESS_KEY_ID: {{file: {work}/s3key}}, "
                    f"AWS_SECRET_ACCESS_KEY: {{file: {work}/s3secret}}}}}}")
        return (f"{{region: r, repository: azure:{name}/repo, credentials: "
                f"{{AZURE_STORAGE_CONNECTION_STRING: {{file: {work}/azconn}}}}}}")

    def rclone_target(kind, name):
        return {"local": f"{work}/{name}", "s3rver": f"s3:{name}/repo", "azurite": f"az:{name}/repo"}[kind]

    # --- 1. throughput ---
    times = {}
    for rnd in range(ROUNDS):
        for kind in ("local", "s3rver", "azurite"):
            for tool in (("haven", "rclone") if rnd % 2 == 0 else ("rclone", "haven")):
                name = f"t{rnd}-{kind[:2]}-{tool}"
                if tool == "haven":
                    cfg = f"{work}/tp.yaml"
                    with open(cfg, "w") as f:
                        f.write(f"server: {{catalog: {work}/tp.db}}\nlocations:\n  - name: l\n"
                                f"    repository: {primary}\n    password_file: {work}/pass\n"
                                f"    secondary_regions: [{region_yaml(kind, name)}]\n")
                    dt, _ = run([HAVEN, "replicate", "--config", cfg, "--location", "l", "-q"])
                else:
                    if kind == "s3rver":
                        run(["rclone", "mkdir", f"s3:{name}"], env=env)
                    dt, _ = run(["rclone", "sync", primary, rclone_target(kind, name),
                                 "--exclude", "locks/**", "--transfers", "4"], env=env)
                times.setdefault((kind, tool), []).append(dt)
    print(f"\nReplication throughput: a {repo_bytes / 1e6:.0f} MB repository ({SCALE} MB corpus) to "
          f"a fresh region, median of {ROUNDS} alternating rounds")
    print("| backend | haven replicate | rclone sync | rclone / haven time |")
    print("|---|---|---|---|")
    for kind in ("local", "s3rver", "azurite"):
        h = statistics.median(times[(kind, "haven")])
        r = statistics.median(times[(kind, "rclone")])
        print(f"| {kind} | {h:.2f} s ({repo_bytes / 1e6 / h:.0f} MB/s) | {r:.2f} s "
              f"({repo_bytes / 1e6 / r:.0f} MB/s) | {r / h:.2f}× |")

    # --- 2. snapshot landing → present in every region (the server, async) ---
    cfg = f"{work}/server.yaml"
    srv_port = free_port()

    def server_yaml(mode):
        return (f"server: {{catalog: {work}/server.db, listen: \"127.0.0.1:{srv_port}\"}}\n"
                f"locations:\n  - name: l\n    repository: {primary}\n"
                f"    password_file: {work}/pass\n    primary_region: eu\n"
                f"    secondary_regions:\n"
                f"      - {region_yaml('local', 'lat-local').replace('region: r', 'region: disk')}\n"
                f"      - {region_yaml('s3rver', 'lat-s3').replace('region: r', 'region: s3')}\n"
                f"      - {region_yaml('azurite', 'lat-az').replace('region: r', 'region: azure')}\n"
                f"    replication: {mode}\n"
                f"policies:\n  - {{name: files, resource_type: files, location: l, "
                f"sources: [{work}/data], schedules: []}}\n")
    with open(cfg, "w") as f:
        f.write(server_yaml("{mode: async, interval_seconds: 30}"))
    _, tok = run([HAVEN, "server", "token", "create", "--config", cfg, "--name", "b", "--role", "admin"])
    token = tok.stdout.split("\n")[0]
    srv = subprocess.Popen([HAVEN, "server", "--config", cfg], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    wait_port(srv_port)

    def api(method, path):
        req = urllib.request.Request(f"http://127.0.0.1:{srv_port}{path}", method=method,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"},
                                     data=b"{}" if method == "POST" else None)
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())

    def caught_up():
        regions = api("GET", "/api/replication")["locations"][0]["regions"]
        return all(r["pending_objects"] == 0 and r["last_success_at"] for r in regions)

    try:
        for _ in range(600):  # the first pass copies the repository of step 1's backup
            if caught_up():
                break
            time.sleep(0.2)
        policy = api("GET", "/api/backup/policies")["policies"][0]["id"]
        rows = []
        for label, change in (("incremental, 1 % changed", 0.01),
                              ("incremental, 10 % changed", 0.1)):
            if change:
                files = sorted(os.path.join(d, f) for d, _, fs in os.walk(f"{work}/data") for f in fs)
                for p in files[: max(1, int(len(files) * change))]:
                    with open(p, "ab") as f:
                        f.write(os.urandom(4096))
            e = api("POST", f"/api/backup/execute/{policy}")
            for _ in range(3000):
                e = api("GET", f"/api/backup/executions/{e['id']}")
                if e["status"] not in ("pending", "running"):
                    break
                time.sleep(0.1)
            snap = e["snapshot_id"]
            landed = os.stat(f"{primary}/snapshots/{snap}").st_mtime_ns
            seen = {}
            for _ in range(600):
                db = sqlite3.connect(f"{work}/server.db")
                for (t, payload) in db.execute(
                        "SELECT time, payload FROM events WHERE kind = 'replication:progress'"):
                    p = json.loads(payload)
                    if snap in p.get("snapshots", []):
                        seen.setdefault(p["region"], t)
                db.close()
                if len(seen) == 3:
                    break
                time.sleep(0.2)
            rows.append((label, e.get("compressed_size_bytes") or 0,
                         {r: (t - landed) / 1e9 for r, t in seen.items()}))
    finally:
        srv.terminate()
        srv.wait()
    print("\nSnapshot landing in the primary → present in every region (haven server, async, "
          "regions on local disk, s3rver, Azurite)")
    print("| backup | stored | local disk | s3rver | Azurite |")
    print("|---|---|---|---|---|")
    for label, stored, d in rows:
        cells = " | ".join(f"{d[r]:.2f} s" if r in d else "not seen" for r in ("disk", "s3", "azure"))
        print(f"| {label} | {stored / 1e6:.0f} MB | {cells} |")

    # --- 3. sync mode reads the source once ---
    # A repository of its own, so that every byte is new: read once, written to four places.
    run([HAVEN, "init", "-r", f"{work}/primary-sync", "--password-file", f"{work}/pass"])
    with open(cfg, "w") as f:
        f.write(server_yaml("{mode: sync, quorum: 3}").replace("lat-", "sync-")
                .replace(f"repository: {primary}\n", f"repository: {work}/primary-sync\n"))
    dt, r = run([HAVEN, "backup", "--config", cfg, "--policy", "files", "--json"])
    corpus_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(f"{work}/data")
                       for f in fs)
    read = None
    for line in r.stdout.splitlines():
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if isinstance(j, dict) and j.get("event") == "backup:completed":
            read = j.get("stats", {}).get("bytes_read")
    region_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in
                       os.walk(f"{work}/sync-local") for f in fs)
    primary_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in
                        os.walk(f"{work}/primary-sync") for f in fs if "/locks" not in d)
    print(f"\nSync mode, quorum 3 of 3, a first backup into a new repository: the "
          f"{corpus_bytes / 1e6:.0f} MB corpus was read {(read or 0) / corpus_bytes:.2f} times "
          f"({(read or 0) / 1e6:.0f} MB) and written to the primary ({primary_bytes / 1e6:.0f} MB) "
          f"and to each of 3 regions (the disk region holds {region_bytes / 1e6:.0f} MB) "
          f"in {dt:.1f} s")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The server's bench (make bench-server): API latency with 100,000 executions in the catalog
while a backup runs, the backup's throughput with and without that API load, and the scheduler's
fire delay.

    bench/server.py path/to/haven [--scale MB] [--minutes N] [--clients N]

Method.
  * A corpus of --scale MB (a third incompressible, the rest text) is backed up 2 × --pairs
    times by the server, each time by a policy whose repository is still empty, so every run
    does the whole work (read, chunk, hash, compress, encrypt, write: already-stored data would
    take a fraction of a second and measure nothing); runs alternate without and with API load,
    so both see the same work and a drifting CPU clock hits both alike. The figure is the
    median of each kind, from the execution rows (completed_at - started_at).
  * 100,000 executions of 20 policies are inserted into the catalog first (SQLite, the server's
    own schema), spread over a year, in every status.
  * API load: --clients threads sending GET /api/backup/executions with a random filter
    (policy, status, date range, page of 50, sometimes the next page), --rate requests a second
    in all (default 20: dashboards and scripts polling; 0 = back to back, which on two cores
    mostly measures the clients' own CPU); the latency of each request is recorded (client
    side, loopback).
  * Fire delay: 10 policies scheduled "* * * * *" run for --minutes minutes; the delay of a fire is
    created_at - scheduled_for of its execution row (the moment the run was recorded), and the
    scheduler's own figures (GET /api/scheduler).
Targets (issue 11): p99 <= 20 ms; backup slowed <= 5 %; fire delay p99 <= 1 s.
"""
import argparse
import calendar
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid


def api(port, token, method, path, body=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def parse_ns(s):
    """RFC 3339 UTC with nanoseconds ("2026-12-02T08:15:00.123456789Z") to ns since the epoch."""
    secs = calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))
    frac = s[20:-1] if len(s) > 21 and s[19] == "." else ""
    return secs * 10**9 + int((frac + "000000000")[:9])


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def make_corpus(root, mb):
    os.makedirs(root)
    rnd = random.Random(7)
    words = [("w%d" % i) * (1 + i % 5) for i in range(5000)]
    size = 0
    i = 0
    while size < mb << 20:
        path = os.path.join(root, "d%02d" % (i % 37), "f%05d" % i)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if i % 3 == 0:
            data = os.urandom(rnd.randint(1 << 20, 8 << 20))
        else:
            data = " ".join(rnd.choice(words) for _ in range(rnd.randint(1000, 60000))).encode()
        with open(path, "wb") as f:
            f.write(data)
        size += len(data)
        i += 1
    return size


def seed_executions(db, policy_ids, location, n):
    statuses = ["completed"] * 8 + ["failed", "cancelled", "skipped", "interrupted"]
    now = time.time_ns()
    year = 365 * 86400 * 10**9
    rnd = random.Random(11)
    con = sqlite3.connect(db)
    rows = []
    for k in range(n):
        started = now - rnd.randrange(year)
        st = rnd.choice(statuses)
        rows.append((str(uuid.uuid4()), rnd.choice(policy_ids), "bench-%07d" % k, "incremental", st,
                     started, started + 60 * 10**9, 10**9, 10**8, 1000, 60, 16.7, location,
                     started, "schedule"))
    con.executemany(
        "INSERT INTO backup_executions (id, policy_id, execution_id, backup_type, status, started_at,"
        " completed_at, backup_size_bytes, compressed_size_bytes, files_backed_up, duration_seconds,"
        " transfer_rate_mbps, backup_location, created_at, \"trigger\") VALUES"
        " (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()


class Load:
    def __init__(self, port, token, policy_ids, clients, rate):
        self.port, self.token, self.policy_ids = port, token, policy_ids
        self.interval = clients / rate if rate > 0 else 0.0  # per client, between requests
        self.stop = threading.Event()
        self.latencies = []
        self.errors = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(clients)]

    def run(self, seed):
        rnd = random.Random(seed)
        now = time.time()
        next_at = time.perf_counter()
        while not self.stop.is_set():
            if self.interval:
                next_at += self.interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    self.stop.wait(delay)
            q = {"limit": "50"}
            if rnd.random() < 0.5:
                q["policyId"] = rnd.choice(self.policy_ids)
            if rnd.random() < 0.3:
                q["status"] = rnd.choice(["completed", "failed", "skipped"])
            if rnd.random() < 0.3:
                start = now - rnd.randrange(300) * 86400
                q["from"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
                q["to"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 7 * 86400))
            path = "/api/backup/executions?" + urllib.parse.urlencode(q)
            t0 = time.perf_counter()
            try:
                page = api(self.port, self.token, "GET", path)
                dt = time.perf_counter() - t0
                if page.get("next_cursor") and rnd.random() < 0.3:
                    t1 = time.perf_counter()
                    api(self.port, self.token, "GET",
                        path + "&cursor=" + urllib.parse.quote(page["next_cursor"]))
                    with self.lock:
                        self.latencies.append(time.perf_counter() - t1)
                with self.lock:
                    self.latencies.append(dt)
            except Exception:  # noqa: BLE001 - counted, reported
                with self.lock:
                    self.errors += 1

    def control(self):
        """GET /health every 50 ms: no catalog, no JSON to speak of. What it waits is the
        machine's own stall (scheduling, I/O, the hypervisor), not the server's work."""
        while not self.stop.wait(0.05):
            t0 = time.perf_counter()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=60).read()
                with self.lock:
                    self.health.append(time.perf_counter() - t0)
            except Exception:  # noqa: BLE001 - counted, reported
                with self.lock:
                    self.errors += 1

    def __enter__(self):
        self.health = []
        self.threads.append(threading.Thread(target=self.control))
        self.stat0 = cpu_times()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()
        now = cpu_times()
        self.cpu = [b - a for a, b in zip(self.stat0, now)]


def thread_cpu(pid, nice):
    """CPU seconds (user + system) used so far by the threads of `pid` that run at `nice` (the
    server's job threads run at server.job_nice, 10; the API, scheduler and event threads at 0)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[16]) == nice:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_times():
    """The machine's CPU time so far (/proc/stat: user nice system idle iowait irq softirq steal)."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def run_backup(port, token, policy):
    e = api(port, token, "POST", f"/api/backup/execute/{policy}", {"backupType": "full"})
    while True:
        r = api(port, token, "GET", f"/api/backup/executions/{e['id']}")
        if r["status"] not in ("pending", "running"):
            break
        time.sleep(0.25)
    if r["status"] != "completed":
        sys.exit(f"bench: backup {r['execution_id']} {r['status']}: {r['error_message']}")
    return (parse_ns(r["completed_at"]) - parse_ns(r["started_at"])) / 1e9, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("haven")
    ap.add_argument("--scale", type=int, default=int(os.environ.get("BENCH_SERVER_SCALE", "1000")))
    ap.add_argument("--minutes", type=int, default=int(os.environ.get("BENCH_SERVER_MINUTES", "3")))
    ap.add_argument("--clients", type=int, default=4)
    # Requests per second, all clients together (0: back to back, as fast as they go). The
    # default is a busy operations team: dashboards and scripts polling (a request every 50 ms).
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--executions", type=int, default=100000)
    # Measured backups: this many without API load and as many with it, alternating.
    ap.add_argument("--pairs", type=int, default=3)
    a = ap.parse_args()
    haven = os.path.abspath(a.haven)
    w = tempfile.mkdtemp(prefix="haven-server-bench-")
    server = None
    try:
        with open(f"{w}/pass", "w") as f:
            f.write("bench\n")
        corpus_bytes = make_corpus(f"{w}/corpus", a.scale)
        os.makedirs(f"{w}/tick")
        with open(f"{w}/tick/t", "w") as f:
            f.write("tick\n")
        # Each measured run is the first backup into a repository of its own: every byte is
        # read, chunked, hashed, compressed, encrypted and written, the same work each time.
        runs = 2 * a.pairs
        text = (f"server:\n  listen: 127.0.0.1:8420\n  catalog: {w}/catalog.db\n"
                f"  max_parallel_jobs: 4\nlocations:\n")
        for r in ["local"] + [f"run{i}" for i in range(runs)]:
            repo = f"{w}/repo" if r == "local" else f"{w}/repo-{r}"
            subprocess.run([haven, "init", "--repo", repo, "--password-file", f"{w}/pass", "-q"],
                           check=True)
            text += f"  - name: {r}\n    repository: {repo}\n    password_file: {w}/pass\n"
        text += "policies:\n"
        for i in range(runs):
            text += (f"  - name: bulk{i}\n    resource_type: files\n    sources: [{w}/corpus]\n"
                     f"    location: run{i}\n    schedules: []\n    retention: {{last: 100}}\n")
        cfg = f"{w}/haven.yaml"
        with open(cfg, "w") as f:
            f.write(text)
        token = subprocess.run([haven, "server", "token", "create", "--config", cfg, "--name", "bench",
                                "--role", "admin"], check=True, capture_output=True,
                               text=True).stdout.strip()
        log = open(f"{w}/server.log", "w")
        server = subprocess.Popen([haven, "server", "--config", cfg, "--port", "0"], stdout=log,
                                  stderr=subprocess.STDOUT)
        port = 0
        for _ in range(200):
            text = open(f"{w}/server.log").read()
            if "listening on port" in text:
                port = int(text.split("listening on port ")[1].split()[0])
                break
            time.sleep(0.05)
        if not port:
            sys.exit("bench: the server did not start:\n" + open(f"{w}/server.log").read())
        # 20 policies (API-created) to spread the executions over, then 100,000 executions.
        policy_ids = []
        for i in range(20):
            p = api(port, token, "POST", "/api/backup/policies",
                    {"name": f"p{i:02d}", "resourceType": "files", "sources": [f"{w}/tick"],
                     "location": "local", "schedules": []})
            policy_ids.append(p["id"])
        seed_executions(f"{w}/catalog.db", policy_ids, f"{w}/repo", a.executions)

        print(f"bench: corpus {corpus_bytes / 1e6:.0f} MB; {runs} backups, alternating without "
              f"and with API load", file=sys.stderr)
        quiet, loaded, lat, health = [], [], [], []
        errors = 0
        cpu = [0] * 8
        api_cpu = {True: 0.0, False: 0.0}  # the server's nice-0 threads, by "with load"
        for i in range(runs):
            before = thread_cpu(server.pid, 0)
            if i % 2 == 0:
                s, _ = run_backup(port, token, f"bulk{i}")
                quiet.append(s)
                api_cpu[False] += thread_cpu(server.pid, 0) - before
            else:
                with Load(port, token, policy_ids, a.clients, a.rate) as load:
                    s, _ = run_backup(port, token, f"bulk{i}")
                api_cpu[True] += thread_cpu(server.pid, 0) - before
                loaded.append(s)
                lat += load.latencies
                health += load.health
                cpu = [a + b for a, b in zip(cpu, load.cpu)]
                errors += load.errors
        # The scheduler: 10 policies every minute.
        for i in range(10):
            api(port, token, "POST", "/api/backup/policies",
                {"name": f"tick{i}", "resourceType": "files", "sources": [f"{w}/tick"],
                 "location": "local", "schedules": [{"cron": "* * * * *"}], "retention": {"last": 2}})
        time.sleep(a.minutes * 60 + 5)
        delays = []
        for i in range(10):
            page = api(port, token, "GET", f"/api/backup/executions?policyId=tick{i}&limit=1000")
            for e in page["executions"]:
                if e["trigger"] != "schedule":
                    continue
                delays.append((parse_ns(e["created_at"]) - parse_ns(e["scheduled_for"])) / 1e9)
        sched = api(port, token, "GET", "/api/scheduler")  # the scheduler's own measure
        q, l = statistics.median(quiet), statistics.median(loaded)
        slowdown = (l / q - 1) * 100
        mb = corpus_bytes / 1e6
        print()
        print("| measure | value | target |")
        print("|---|---|---|")
        print(f"| GET /api/backup/executions, {a.executions:,} rows, during a backup: p50 | "
              f"{pct(lat, 50) * 1000:.1f} ms ({len(lat)} requests, {a.clients} clients, "
              f"{'back to back' if a.rate <= 0 else f'{a.rate:g}/s'}, {errors} errors) | |")
        print(f"| same, p99 | {pct(lat, 99) * 1000:.1f} ms | ≤ 20 ms |")
        print(f"| control: GET /health (no catalog) at the same time, p50 / p99 | "
              f"{pct(health, 50) * 1000:.1f} ms / {pct(health, 99) * 1000:.1f} ms ({len(health)} requests) | |")
        total = sum(cpu) or 1
        print(f"| machine during the loaded backups: user+nice / system / iowait / steal | "
              f"{(cpu[0] + cpu[1]) / total:.0%} / {cpu[2] / total:.0%} / {cpu[4] / total:.0%} / "
              f"{cpu[7] / total:.0%} of CPU time | |")
        print(f"| backup ({mb:.0f} MB into an empty repository) without API load | "
              f"{mb / q:.0f} MB/s (median of {len(quiet)}: {', '.join(f'{x:.1f}' for x in quiet)} s) | |")
        print(f"| same, with the API load | {mb / l:.0f} MB/s ({', '.join(f'{x:.1f}' for x in loaded)} s): "
              f"slowed {slowdown:+.1f} % | ≤ 5 % |")
        extra = api_cpu[True] - api_cpu[False]
        print(f"| CPU the API load cost the server (its nice-0 threads, loaded − quiet runs) | "
              f"{extra:.2f} s over {sum(loaded):.1f} s of loaded backups = "
              f"{extra / (sum(loaded) * (os.cpu_count() or 1)) * 100:.1f} % of the machine's "
              f"{os.cpu_count()} cores | |")
        if delays:
            print(f"| scheduler fire delay ({len(delays)} fires, 10 policies, {a.minutes} min): p50 / p99 | "
                  f"{pct(delays, 50) * 1000:.0f} ms / {pct(delays, 99) * 1000:.0f} ms | p99 ≤ 1 s |")
        if "fire_delay_ms" in sched:
            d = sched["fire_delay_ms"]
            print(f"| same, as the scheduler exports it (GET /api/scheduler, {sched['fires']} fires): "
                  f"p50 / p99 / max | {d['p50']:.1f} ms / {d['p99']:.1f} ms / {d['max']:.1f} ms | |")
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()

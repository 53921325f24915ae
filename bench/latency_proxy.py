#!/usr/bin/env python3
"""A TCP proxy that adds latency per request, for benchmarks over object storage.

    latency_proxy.py --listen PORT --to HOST:PORT --delay-ms 30 --stats FILE [--log FILE]

Each connection is forwarded to the upstream server. A request is the client's bytes after
the server has answered (HTTP/1.1 on a kept-alive connection: one request, one response): its
first bytes wait --delay-ms before they go on, as a round trip to a distant region would add.
The rest of a request and every response pass at once. FILE gets {"requests": N,
"connections": M, "bytes_up": U, "bytes_down": D} a few times a second and at exit; the
--log FILE gets, per connection, the time and first line of each request and the time each
response starts ("<").

Latency on a real network costs the client no CPU; this proxy runs on the same cores as the
client and the server, so it should cost as little as it can: two threads per connection, and
responses (nearly all the bytes) go from socket to socket through a pipe with splice(2), never
copied into the process (an asyncio proxy that read and wrote 64 KiB at a time took ~1.1 CPU
seconds per 2 GB restored).
"""
import argparse
import json
import os
import signal
import socket
import threading
import time

stats = {"requests": 0, "connections": 0, "bytes_up": 0, "bytes_down": 0}
stats_mu = threading.Lock()
log = None
log_mu = threading.Lock()


def note(line):
    if log is not None:
        with log_mu:
            log.write(line)


def close(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def up(client, server, conn, delay):
    """Client to server: requests, small; the first bytes of each wait `delay`."""
    try:
        while True:
            data = client.recv(1 << 16)
            if not data:
                break
            if conn["last"] != "up":  # the first bytes of a new request
                conn["last"] = "up"
                with stats_mu:
                    stats["requests"] += 1
                note("%.3f %d %s\n" % (time.monotonic(), conn["id"],
                                       data.split(b"\r\n", 1)[0].decode("latin-1")))
                if delay > 0:
                    time.sleep(delay)
            with stats_mu:
                stats["bytes_up"] += len(data)
            server.sendall(data)
    except OSError:
        pass
    finally:
        close(client, server)


def down(server, client, conn):
    """Server to client: responses, through a pipe with splice (no copy into the process)."""
    r, w = os.pipe()
    try:
        while True:
            n = os.splice(server.fileno(), w, 1 << 20)
            if n == 0:
                break
            if conn["last"] != "down":  # the first bytes of a response
                note("%.3f %d <\n" % (time.monotonic(), conn["id"]))
                conn["last"] = "down"
            with stats_mu:
                stats["bytes_down"] += n
            while n > 0:
                sent = os.splice(r, client.fileno(), n)
                if sent == 0:
                    return
                n -= sent
    except OSError:
        pass
    finally:
        os.close(r)
        os.close(w)
        close(client, server)


def handle(client, host, port, delay):
    with stats_mu:
        stats["connections"] += 1
        conn = {"last": None, "id": stats["connections"]}
    try:
        server = socket.create_connection((host, port))
    except OSError:
        client.close()
        return
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = threading.Thread(target=down, args=(server, client, conn), daemon=True)
    t.start()
    up(client, server, conn, delay)
    t.join()
    client.close()
    server.close()


def write_stats(path):
    tmp = path + ".tmp"
    with stats_mu:
        snapshot = dict(stats)
    with open(tmp, "w") as f:
        json.dump(snapshot, f)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--delay-ms", type=float, default=30)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--log")
    a = ap.parse_args()
    global log
    if a.log:
        log = open(a.log, "a", buffering=1)
    host, port = a.to.rsplit(":", 1)
    delay = a.delay_ms / 1000
    listener = socket.create_server(("127.0.0.1", a.listen))
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())

    def accept():
        while True:
            try:
                c, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(c, host, int(port), delay), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    while not stop.is_set():
        write_stats(a.stats)
        stop.wait(0.2)
    write_stats(a.stats)


if __name__ == "__main__":
    main()

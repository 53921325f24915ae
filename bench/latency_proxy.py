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
"""
import argparse
import asyncio
import json
import os
import signal
import time

stats = {"requests": 0, "connections": 0, "bytes_up": 0, "bytes_down": 0}


log = None


async def pump(reader, writer, conn, upstream, delay):
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            if upstream:
                if conn["last"] != "up":  # the first bytes of a new request
                    conn["last"] = "up"
                    stats["requests"] += 1
                    if log is not None:
                        log.write("%.3f %d %s\n" % (time.monotonic(), conn["id"],
                                                      data.split(b"\r\n", 1)[0].decode("latin-1")))
                    if delay > 0:
                        await asyncio.sleep(delay)
                stats["bytes_up"] += len(data)
            else:
                if conn["last"] != "down" and log is not None:  # the first bytes of a response
                    log.write("%.3f %d <\n" % (time.monotonic(), conn["id"]))
                conn["last"] = "down"
                stats["bytes_down"] += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle(client_r, client_w, host, port, delay):
    stats["connections"] += 1
    conn = {"last": None, "id": stats["connections"]}
    try:
        server_r, server_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(pump(client_r, server_w, conn, True, delay),
                         pump(server_r, client_w, conn, False, delay))


def write_stats(path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, path)


async def main():
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
    server = await asyncio.start_server(lambda r, w: handle(r, w, host, int(port), delay),
                                        "127.0.0.1", a.listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    async with server:
        while not stop.is_set():
            write_stats(a.stats)
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except asyncio.TimeoutError:
                pass
    write_stats(a.stats)


if __name__ == "__main__":
    asyncio.run(main())

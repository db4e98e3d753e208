#!/usr/bin/env python3
"""Pipelining check: does a server answer deep pipelines without stalling?

    pipeline.py URL PATHS_FILE [--conns 8] [--depth 64] [--batches 200] [--timeout 5]

Each connection writes `depth` GET requests in one send, then reads the `depth` responses
(status line, Content-Length, body) and checks they are 200 and in order of size; then the next
batch. A batch that gets no byte for `--timeout` seconds is a stall: the script prints it and
exits 1. Prints one line: `PIPELINE requests=N seconds=S batch_p50_ms=… batch_p99_ms=…
batch_max_ms=… stalls=N`. Stdlib only.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from urllib.parse import urlsplit


def read_response(sock: socket.socket, buf: bytearray) -> tuple[int, int]:
    """Reads one response from sock (buffered in buf); returns (status, body length)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-pipeline")
        buf += chunk
    head, _, _ = bytes(buf).partition(b"\r\n\r\n")
    del buf[: len(head) + 4]
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(buf) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-body")
        buf += chunk
    del buf[:length]
    return status, length


def worker(host: str, port: int, paths: list[str], depth: int, batches: int, timeout: float,
           offset: int, out: dict) -> None:
    sock = socket.create_connection((host, port))
    sock.settimeout(timeout)
    buf = bytearray()
    index = offset
    try:
        for _ in range(batches):
            batch = []
            for _ in range(depth):
                batch.append(paths[index % len(paths)])
                index += 1
            data = b"".join(f"GET {p} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() for p in batch)
            start = time.monotonic()
            sock.sendall(data)
            for _ in batch:
                status, _ = read_response(sock, buf)
                if status != 200:
                    out["errors"] += 1
            out["latencies"].append(time.monotonic() - start)
            out["requests"] += depth
    except socket.timeout:
        out["stalls"] += 1
    except (ConnectionError, OSError) as error:
        out["errors"] += 1
        out["messages"].append(str(error))
    finally:
        sock.close()


def main(argv: list[str]) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("paths")
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv[1:])
    url = urlsplit(args.url)
    paths = [line.strip() for line in open(args.paths) if line.strip()]
    results = [{"requests": 0, "latencies": [], "stalls": 0, "errors": 0, "messages": []} for _ in range(args.conns)]
    threads = [threading.Thread(target=worker, args=(url.hostname, url.port, paths, args.depth, args.batches,
                                                     args.timeout, i * 7919, results[i])) for i in range(args.conns)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start
    latencies = sorted(x for r in results for x in r["latencies"])

    def pct(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")

    stalls = sum(r["stalls"] for r in results)
    errors = sum(r["errors"] for r in results)
    print(f"PIPELINE requests={sum(r['requests'] for r in results)} seconds={seconds:.2f} depth={args.depth} "
          f"batch_p50_ms={pct(0.5):.2f} batch_p99_ms={pct(0.99):.2f} "
          f"batch_max_ms={1000 * latencies[-1] if latencies else float('nan'):.2f} stalls={stalls} errors={errors}")
    for r in results:
        for m in r["messages"][:3]:
            print("error:", m, file=sys.stderr)
    return 1 if stalls or errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

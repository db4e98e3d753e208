#!/usr/bin/env python3
"""Stampede and hit-while-misses figures for athens (issue 5), in one run, on 127.0.0.1 only.

Usage: bench/stash_bench.py [--athens BIN] [--plugins DIR] [--misses 32] [--duration 5]

1. Stampede: 200 clients ask at once for one uncached zip (fetched from a fake upstream that logs every
   path). Reports the wall time until all 200 have their bytes, how many zip fetches the upstream saw
   (single-flight: should be 1) and whether every body is identical.
2. Hits while misses are in flight: wrk (1 thread, 16 connections) on a cached .info, first alone, then
   while N slow misses (a C fixture fetcher that takes 1 s per fetch) keep every download worker busy.
   Reports req/s, p50 and p99 of the hits in both phases and their ratio: hits never queue behind misses.
Needs: python3, cc, wrk. Builds nothing else: run `swift build -c release` first (default binaries).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(cmd, **kw):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    line = p.stdout.readline()
    port = re.findall(r"(\d+)\s*$", line)
    if not port:
        p.kill()
        sys.exit("did not start: %s %s" % (cmd, p.stderr.read()))
    return p, int(port[0])


def get(url, timeout=60):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def wrk(url, duration):
    out = subprocess.run(["wrk", "-t1", "-c16", "-d%ds" % duration, "--latency", url],
                         capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def pct(p):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)" % p, out)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    return rps, pct(50), pct(99)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--athens", default=os.path.join(ROOT, ".build/release/athens"))
    ap.add_argument("--plugins", default=os.path.join(ROOT, ".build/release"))
    ap.add_argument("--misses", type=int, default=32)
    ap.add_argument("--duration", type=int, default=5)
    args = ap.parse_args()
    for tool in ["cc", "wrk"]:
        if not shutil.which(tool):
            sys.exit("needs %s (apt-get install -y %s)" % (tool, "gcc" if tool == "cc" else tool))
    work = tempfile.mkdtemp(prefix="stash-bench-")
    procs = []
    try:
        tree = os.path.join(work, "tree")
        subprocess.run([sys.executable, os.path.join(ROOT, "Tests/Fixtures/make_fixture_proxy.py"), tree], check=True)
        fetcher = os.path.join(work, "libCTestFetcher.so")
        subprocess.run(["cc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-O2", "-shared", "-fPIC",
                        "-I", os.path.join(ROOT, "Sources/PluginABI/include"),
                        os.path.join(ROOT, "Tests/Fixtures/CPlugins/test_fetcher.c"), "-o", fetcher], check=True)
        log = os.path.join(work, "upstream.log")
        upstream, uport = start([sys.executable, os.path.join(ROOT, "Tests/Fixtures/fake_upstream.py"),
                                 "--root", tree, "--port", "0", "--log", log])
        procs.append(upstream)
        manifest = {
            "listen": "127.0.0.1:0", "pluginDirectory": args.plugins, "spoolDirectory": work,
            "storage": {"plugin": "MemoryStorage"},
            "download": {"workers": args.misses, "queue": 4096},
            "fetchers": [{"name": "public", "plugin": "ProxyFetcher", "config": {"url": "http://127.0.0.1:%d" % uport}},
                         {"name": "slow", "plugin": fetcher}],
            "defaultFetcher": "public",
            "rules": [{"match": "example.com/slow", "fetcher": "slow"}],
        }
        path = os.path.join(work, "athens.json")
        with open(path, "w") as f:
            json.dump(manifest, f)
        athens, port = start([args.athens, "--config", path])
        procs.append(athens)
        base = "http://127.0.0.1:%d" % port

        # 1. Stampede.
        barrier = threading.Barrier(200)
        bodies, errors = [], []
        def client():
            barrier.wait()
            try:
                status, body = get(base + "/example.com/hello/@v/v1.1.0.zip")
                (bodies if status == 200 else errors).append(body)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(str(e))
        threads = [threading.Thread(target=client) for _ in range(200)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        with open(log) as f:
            fetches = sum(1 for line in f if line.strip().endswith("/example.com/hello/@v/v1.1.0.zip"))
        identical = len(set(bodies)) == 1 and len(bodies) == 200
        print("stampede: 200 clients, one uncached zip: %.3f s until all served, upstream zip fetches: %d, "
              "identical bodies: %s, errors: %d" % (elapsed, fetches, identical, len(errors)))

        # 2. Hits while misses are in flight.
        hit = base + "/example.com/hello/@v/v1.0.0.info"
        get(hit)
        alone = wrk(hit, args.duration)
        stop = threading.Event()
        counter = [0]
        def miss_loop(i):
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    get(base + "/example.com/slow/@v/v0.%d.%d.info" % (i + 1, n), timeout=30)
                except Exception:  # noqa: BLE001 - misses may 503 when the pool is full; that is fine
                    pass
                counter[0] += 1
        missers = [threading.Thread(target=miss_loop, args=(i,)) for i in range(args.misses)]
        for t in missers:
            t.start()
        time.sleep(0.5)
        busy = wrk(hit, args.duration)
        stop.set()
        for t in missers:
            t.join()
        print("hits alone:                 %8.0f req/s  p50 %.2f ms  p99 %.2f ms" % alone)
        print("hits with %3d slow misses:  %8.0f req/s  p50 %.2f ms  p99 %.2f ms   (misses completed: %d)"
              % ((args.misses,) + busy + (counter[0],)))
        print("ratio busy/alone: req/s %.2fx, p99 %.2fx" % (busy[0] / alone[0], busy[2] / max(alone[2], 1e-6)))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

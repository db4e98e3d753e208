#!/usr/bin/env python3
"""Start-up, /readyz, catalog and RSS of athens with FileStorage over a large store against a small one.

Usage: bench/store_bench.py [--athens BIN] [--plugins DIR] [--versions 1000000] [--small 3000] [--store DIR] [--reps 3]
                            [--json FILE]

Stores are written by bench/make_store.py (into --store, default $TMPDIR/athens-store-<versions>, kept for the
next run because writing 1 M versions takes a minute or two; the small one is made fresh). For each store and each
repetition, a fresh athens (FileStorage on that root, no fetcher) is started and measured:
- start-up: from exec to its "listening on" line (FileStorage's recovery runs before it listens);
- /readyz: from exec to the first 200 of /readyz;
- catalog: wall time of one /catalog?pagesize=1000 page (median of 5) at the start, after a token in the middle
  of the store, and of the second page (the token the first page returned);
- RSS: VmHWM and VmRSS after those requests.
Prints one table with the figures for both stores (median over --reps) and their ratios. --json FILE also writes
them for bench/summary.py: {"versions", "small_versions", "per_module", "reps", "median": {"small"|"large": {figure:
value}}, "runs": {"small"|"large": [{figure: value}, ...]}}, times in seconds, RSS in MiB, NaN as null.
Targets (issue 15): start-up and /readyz <= 1 s, catalog page <= 50 ms at 1 M versions, RSS not above the small store's.
"""
import argparse
import base64
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import make_store  # noqa: E402


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.status, r.read()


def timed(url, n=5):
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        status, body = get(url)
        times.append(time.monotonic() - t0)
        if status != 200:
            sys.exit("%s: %d" % (url, status))
    return statistics.median(times), body


def vm(pid, field):
    """A /proc/PID/status figure in MiB."""
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(field + r":\s+(\d+)", f.read()).group(1)) / 1024


def middle_token(versions, per_module):
    """The catalog token FileStorage would issue after the middle module's middle version (fs1. + base64url path)."""
    m = versions // per_module // 2
    path = "example.com/store/g%03d/m%06d/@v/v1.0.%d" % (m % 1000, m, per_module // 2)
    return "fs1." + base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def measure(args, store, versions, work):
    manifest = {"listen": "127.0.0.1:0", "pluginDirectory": args.plugins, "spoolDirectory": work,
                "storage": {"plugin": "FileStorage", "config": {"root": store}}, "accessLog": False}
    path = os.path.join(work, "athens.json")
    with open(path, "w") as f:
        json.dump(manifest, f)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATHENS_")}
    t0 = time.monotonic()
    proc = subprocess.Popen([args.athens, "--config", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        port = None
        for line in proc.stdout:
            m = re.match(r"listening on [\d.]+:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            sys.exit("athens did not start on %s" % store)
        startup = time.monotonic() - t0
        base = "http://127.0.0.1:%d" % port
        while True:
            try:
                if get(base + "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.005)
        readyz = time.monotonic() - t0
        ready_rss = vm(proc.pid, "VmRSS")
        first, body = timed(base + "/catalog?pagesize=1000")
        page = json.loads(body)
        token = page.get("next") or page.get("nextToken") or ""
        second = timed(base + "/catalog?pagesize=1000&token=" + urllib.parse.quote(token))[0] if token else float("nan")
        middle = timed(base + "/catalog?pagesize=1000&token=" + middle_token(versions, args.per_module))[0]
        hwm, rss = vm(proc.pid, "VmHWM"), vm(proc.pid, "VmRSS")
        entries = len(page.get("modules") or page.get("entries") or [])
        return {"startup": startup, "readyz": readyz, "first": first, "second": second, "middle": middle,
                "ready_rss": ready_rss, "hwm": hwm, "rss": rss, "entries": entries}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_json(path, data):
    """Writes data as JSON with NaN (a missing second page) as null, which every JSON reader accepts."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return None if isinstance(v, float) and math.isnan(v) else v
    with open(path, "w") as f:
        json.dump(clean(data), f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--athens", default=os.path.join(ROOT, ".build/release/athens"))
    ap.add_argument("--plugins", default=os.path.join(ROOT, ".build/release"))
    ap.add_argument("--versions", type=int, default=1_000_000)
    ap.add_argument("--per-module", type=int, default=100)
    ap.add_argument("--small", type=int, default=3000)
    ap.add_argument("--store", default=None)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the medians and raw repetitions to this file")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="store-bench-")
    big = args.store or os.path.join(tempfile.gettempdir(), "athens-store-%d" % args.versions)
    if not os.path.isdir(os.path.join(big, "example.com")):
        t0 = time.monotonic()
        make_store.make_store(big, args.versions, args.per_module)
        print("wrote %d versions to %s in %.1f s" % (args.versions, big, time.monotonic() - t0))
    small = os.path.join(work, "small")
    make_store.make_store(small, args.small, args.per_module)
    results, raw = {}, {}
    for label, store, versions in [("small", small, args.small), ("large", big, args.versions)]:
        runs = [measure(args, store, versions, work) for _ in range(args.reps)]
        raw[label] = runs
        results[label] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    s, l = results["small"], results["large"]
    print("FileStorage store: %d vs %d versions (%d per module); median of %d fresh starts" % (args.small, args.versions, args.per_module, args.reps))
    print("%-28s %12s %12s %8s" % ("figure", "small", "large", "large/small"))
    for key, label, unit, scale in [("startup", "start-up (exec -> listening)", "ms", 1000), ("readyz", "/readyz 200 (from exec)", "ms", 1000),
                                    ("first", "catalog first page (1000)", "ms", 1000), ("second", "catalog second page", "ms", 1000),
                                    ("middle", "catalog page mid-store", "ms", 1000), ("ready_rss", "VmRSS at /readyz", "MiB", 1),
                                    ("hwm", "VmHWM after the pages", "MiB", 1), ("rss", "VmRSS after the pages", "MiB", 1)]:
        print("%-28s %9.1f %-2s %9.1f %-2s %7.2fx" % (label, s[key] * scale, unit, l[key] * scale, unit, l[key] / s[key] if s[key] else float("nan")))
    print("catalog entries per page: %d" % l["entries"])
    if args.json:
        write_json(args.json, {"versions": args.versions, "small_versions": args.small, "per_module": args.per_module,
                               "reps": args.reps, "median": results, "runs": raw})
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Cold fetch throughput of athens with durable FileStorage against the physical limit of the set-up.

Usage: bench/cold_bench.py [--athens BIN] [--plugins DIR] [--clients 32] [--small 500] [--large 200] [--reps 3]
                           [--storage FileStorage|MemoryStorage] [--no-relay] [--wrap CMD] [--json FILE]

Two sets, each fetched by --clients concurrent clients (one `curl --parallel` process, keep-alive):
- 500 distinct modules with a 10 KiB zip, 200 distinct modules with a 1 MiB zip (bench/make_tree.py trees);
- served by a private nginx (the upstream, `sendfile on`, private config and pid file in a temp dir, stopped by pid);
- the clients write the bodies to /dev/shm (--bodies), so that their own file creations do not load the file system
  under test;
- "direct": every .zip straight from nginx; "athens": every .zip through a fresh athens (FileStorage in a fresh
  root on the same file system as the repo, ProxyFetcher to that nginx), so every request is a miss that fetches
  .info, .mod and .zip from nginx, validates them and saves them durably before it is answered;
- "relay" (unless --no-relay): every .zip through a second nginx acting as a caching proxy of that upstream
  (proxy_store into a fresh folder beside the athens roots: one upstream request per module, no checks, no fsync),
  what any relaying cache costs on this machine.
Prints the wall times (median of --reps, each rep on a fresh athens and an empty storage root), athens/direct,
athens/relay, and athens' own CPU (user+system, from /proc) per module, which moves much less with machine load
than wall time.
Every response must be 200 with the tree's sha256, or the bench stops. --json FILE also writes the figures for
bench/summary.py: {"clients", "storage", "reps", "sets": [{"zip", "modules", "direct_s", "athens_s", "ratio",
"athens_cpu_ms_per_module", "direct_runs_s", "athens_runs_s", "relay_s", "relay_runs_s"}]} (relay_s null with
--no-relay).
Needs: nginx (/usr/sbin/nginx), curl, python3; run `swift build -c release` first (default binaries).
"""
import argparse
import hashlib
import json
import os
import shutil
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
import make_tree  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("%s exited during start-up" % what)
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("%s not listening after %d s" % (what, timeout))


def start_nginx(work, tree, nginx, relay_to=None):
    """The upstream (serving `tree`), or with relay_to=PORT a caching relay: every miss is fetched from that port
    with proxy_store (kept on disk in `tree`, written without fsync) while it streams to the client."""
    port = free_port()
    conf = os.path.join(work, "nginx.conf")
    if relay_to:
        server = """upstream up { server 127.0.0.1:%(u)d; keepalive 64; }
  server { listen 127.0.0.1:%(p)d; root %(t)s;
    location / { try_files $uri @fetch; }
    location @fetch { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_store on; proxy_store_access user:rw group:r all:r; } }""" % {"u": relay_to, "p": port, "t": tree}
    else:
        server = "server { listen 127.0.0.1:%d; root %s; location / { try_files $uri =404; } }" % (port, tree)
    with open(conf, "w") as f:
        # A relay's workers write its store: as root (started as root, workers would drop to nobody) or as us.
        f.write(("user root;\n" if relay_to and os.geteuid() == 0 else "") + """worker_processes 1; daemon off; master_process on; pid %(w)s/nginx.pid; error_log %(w)s/error.log warn;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 1000000;
  types { application/json info; text/plain mod; application/zip zip; } default_type text/plain;
  client_body_temp_path %(w)s/body; proxy_temp_path %(s)s/.proxy-temp; fastcgi_temp_path %(w)s/fcgi;
  uwsgi_temp_path %(w)s/uwsgi; scgi_temp_path %(w)s/scgi;
  %(server)s }
""" % {"w": work, "s": tree, "server": server})
    proc = subprocess.Popen([nginx, "-p", work, "-c", conf, "-e", os.path.join(work, "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http("http://127.0.0.1:%d/" % port, proc, "nginx")
    return proc, port


def start_athens(args, work, upstream_port, root):
    port = free_port()
    manifest = {
        "listen": "127.0.0.1:%d" % port, "pluginDirectory": args.plugins, "spoolDirectory": work,
        "storage": {"plugin": args.storage, "config": {"root": root} if args.storage == "FileStorage" else {}},
        "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher", "config": {"url": "http://127.0.0.1:%d" % upstream_port}}],
        "defaultFetcher": "upstream",
        "accessLog": os.environ.get("BENCH_ACCESS_LOG") == "1",
    }
    if args.stash_workers:
        manifest["stash"] = {"wrappers": [{"type": "singleflight"}, {"type": "pool", "workers": args.stash_workers}]}
        manifest["download"] = {"workers": max(args.stash_workers, 64), "queue": 4096}
    path = os.path.join(work, "athens.json")
    with open(path, "w") as f:
        json.dump(manifest, f)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATHENS_")}
    log = open(os.path.join(work, "athens.log"), "a")
    # Wrapped, athens is the wrapper's child: both get their own process group, stopped together (see stop).
    proc = subprocess.Popen(args.wrap.split() + [args.athens, "--config", path], stdout=log, stderr=log, env=env,
                            start_new_session=bool(args.wrap))
    wait_http("http://127.0.0.1:%d/healthz" % port, proc, "athens")
    return proc, port


def process_cpu(pid):
    """utime + stime of a process in seconds (its user and kernel CPU so far, load-independent unlike wall time)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc, sig=signal.SIGTERM, group=False):
    if group:
        # The wrapper and the athens it started, both ours (their own session); the wrapper writes its summary.
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fetch_all(base, paths, clients, work, sums, bodies):
    """Fetches every path once with `clients` parallel transfers; returns the wall time. Checks every body."""
    out = os.path.join(bodies, "bodies")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    config = os.path.join(work, "curl.cfg")
    with open(config, "w") as f:
        for i, path in enumerate(paths):
            f.write('url = "%s%s"\noutput = "%s/%d"\n' % (base, path, out, i))
    t0 = time.monotonic()
    result = subprocess.run(["curl", "-s", "--parallel", "--parallel-immediate", "--parallel-max", str(clients),
                             "-w", "%{http_code}\n", "-K", config], capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    codes = result.stdout.split()
    bad = [c for c in codes if c != "200"]
    if len(codes) != len(paths) or bad:
        log = os.path.join(work, "athens.log")
        tail = open(log).read()[-2000:] if os.path.exists(log) else ""
        sys.exit("%s: %d answers, non-200: %s\n%s" % (base, len(codes), sorted(set(bad)), tail))
    for i, path in enumerate(paths):
        with open(os.path.join(out, str(i)), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != sums[path.lstrip("/")]:
                sys.exit("%s%s: body differs from the tree" % (base, path))
    return elapsed


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--athens", default=os.path.join(ROOT, ".build/release/athens"))
    ap.add_argument("--plugins", default=os.path.join(ROOT, ".build/release"))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--small", type=int, default=500)
    ap.add_argument("--large", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--storage", default="FileStorage", help="MemoryStorage shows what the host costs without any disk")
    ap.add_argument("--stash-workers", type=int, default=0, help="fetch+save pool size (default: athens' own default)")
    ap.add_argument("--wrap", default="", help="command prefix for athens, for profiling (e.g. 'strace -f -c -w -e trace=fsync -o F')")
    ap.add_argument("--storage-parent", default=ROOT, help="where the FileStorage roots go (the repo's file system)")
    ap.add_argument("--bodies", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the clients write the bodies they check (default: the tmpfs /dev/shm, so that the clients'"
                         " own file creations do not load the file system under test; else the work directory)")
    ap.add_argument("--no-relay", dest="relay", action="store_false",
                    help="skip the relay baseline (nginx as a caching proxy in front of the upstream)")
    ap.add_argument("--json", default=None, help="also write the medians and raw repetitions to this file")
    args = ap.parse_args(argv)
    # Checked before any temporary folder exists: a bad path must not leave one behind.
    for flag, path in (("--storage-parent", args.storage_parent), ("--bodies", args.bodies)):
        if path is not None and not os.path.isdir(path):
            ap.error("%s %s: not a directory" % (flag, path))
    work = tempfile.mkdtemp(prefix="cold-bench-")
    os.chmod(work, 0o755)  # nginx workers started as root drop privileges and must read the tree
    bodies = tempfile.mkdtemp(prefix="cold-bench-bodies-", dir=args.bodies) if args.bodies else work
    storage_parent = tempfile.mkdtemp(prefix=".cold-bench-storage-", dir=args.storage_parent)
    procs = []
    try:
        rows = []
        for label, count, size in [("10 KiB", args.small, "10k"), ("1 MiB", args.large, "1m")]:
            if count == 0:
                continue
            tree_dir = os.path.join(work, "tree-" + size)
            tree = make_tree.make_tree(tree_dir, modules=count, sizes=[size], seed=1)
            paths = tree.paths["zip" + size]
            nginx_dir = os.path.join(work, "nginx-" + size)
            os.makedirs(nginx_dir)
            nginx, nport = start_nginx(nginx_dir, tree_dir, args.nginx)
            procs.append(nginx)
            direct, cold, cpu, relayed = [], [], [], []
            for rep in range(args.reps):
                direct.append(fetch_all("http://127.0.0.1:%d" % nport, paths, args.clients, work, tree.sha256, bodies))
                root = os.path.join(storage_parent, "%s-%d" % (size, rep))
                athens, aport = start_athens(args, work, nport, root)
                procs.append(athens)
                before = process_cpu(athens.pid)  # start-up (plugin copies, dlopen) is not the fetches' cost
                cold.append(fetch_all("http://127.0.0.1:%d" % aport, paths, args.clients, work, tree.sha256, bodies))
                cpu.append(process_cpu(athens.pid) - before)
                # A wrapper (strace -c, perf) writes its summary on SIGINT.
                stop(athens, signal.SIGINT if args.wrap else signal.SIGTERM, group=bool(args.wrap))
                # Roots are deleted only at the end: on ext4 without a journal (this VM) every file created soon
                # after a mass deletion scans the recently deleted inodes, which would slow the next repetition.
                if args.relay:
                    store = os.path.join(storage_parent, "relay-%s-%d" % (size, rep))
                    os.makedirs(os.path.join(store, ".proxy-temp"))
                    relay_dir = os.path.join(work, "relay-%s-%d" % (size, rep))
                    os.makedirs(relay_dir)
                    relay, rport = start_nginx(relay_dir, store, args.nginx, relay_to=nport)
                    procs.append(relay)
                    relayed.append(fetch_all("http://127.0.0.1:%d" % rport, paths, args.clients, work, tree.sha256, bodies))
                    stop(relay)
            stop(nginx)
            d, a = statistics.median(direct), statistics.median(cold)
            r = statistics.median(relayed) if relayed else None
            rows.append((label, count, d, a, a / d, direct, cold, statistics.median(cpu) * 1000 / count, r, relayed))
        print("cold fetch: %d clients, %s, stash pool %s, upstream nginx; median of %d reps"
              % (args.clients, args.storage, args.stash_workers or "default", args.reps))
        print("%-8s %7s %12s %12s %8s %16s %10s %13s   %s" % ("zip", "modules", "direct s", "athens s", "ratio",
              "athens cpu ms/mod", "relay s", "athens/relay", "reps direct / athens / relay"))
        for label, count, d, a, ratio, ds, cs, c, r, rs in rows:
            print("%-8s %7d %12.3f %12.3f %7.2fx %16.2f %10s %13s   %s / %s / %s" % (
                label, count, d, a, ratio, c, "%.3f" % r if r else "-", "%.2fx" % (a / r) if r else "-",
                " ".join("%.3f" % x for x in ds), " ".join("%.3f" % x for x in cs), " ".join("%.3f" % x for x in rs)))
        if args.json:
            sets = [{"zip": label, "modules": count, "direct_s": d, "athens_s": a, "ratio": ratio,
                     "athens_cpu_ms_per_module": c, "direct_runs_s": ds, "athens_runs_s": cs,
                     "relay_s": r, "relay_runs_s": rs}
                    for label, count, d, a, ratio, ds, cs, c, r, rs in rows]
            with open(args.json, "w") as f:
                json.dump({"clients": args.clients, "storage": args.storage, "reps": args.reps, "sets": sets}, f, indent=1)
                f.write("\n")
    finally:
        for p in procs:
            stop(p)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        if bodies != work:
            shutil.rmtree(bodies, ignore_errors=True)
        shutil.rmtree(storage_parent, ignore_errors=True)


if __name__ == "__main__":
    main()

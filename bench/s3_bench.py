#!/usr/bin/env python3
"""S3Storage against FileStorage (issue 13), in one run, on 127.0.0.1 only.

Usage: bench/s3_bench.py [--athens BIN] [--plugins DIR] [--duration 5] [--cold 8]

Starts a single-node Ceph RGW (scripts/rgw.sh, in a run folder of its own) unless ATHENS_S3_TEST_ENDPOINT
(and _ACCESS_KEY, _SECRET_KEY) name a running one, a fake upstream serving a generated tree, and athens twice:
on FileStorage and on S3Storage, same manifest otherwise. Prints one table:
1. warm: wrk (1 thread, 16 connections) on a stored .info and a stored 10 KiB zip, with athens' memory cache
   off (every request reaches the storage) and on (the default 64 MiB cache): req/s, p50, p99.
2. cold save: N distinct 20 MiB zips asked for one after another (each fetched from the upstream, saved, served):
   MB/s of zip bytes delivered (upstream fetch + save + serve, the cost a first request pays).
3. a stored 1 MiB zip streamed through athens ("serve": "bytes", both storages) vs redirected on S3Storage ("serve":
   "redirect": 302 to a presigned RGW URL, followed; FileStorage has no URL to redirect to): --downloads sequential
   whole downloads, p50/p99 ms per download as the client sees it, and athens' CPU ms per download (utime + stime
   from /proc: what the redirect saves the proxy).
Every row is printed with FileStorage's figure beside S3Storage's, both measured in this run.
Needs: python3, wrk, the Ceph packages (scripts/rgw.sh installs them). Run `swift build -c release` first.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from stash_bench import get, wrk  # noqa: E402 - same helpers as the stash benchmark


def start(cmd, log):
    """Starts a server that prints its port on its first stdout line; its stderr (athens' access log) goes to `log`,
    never to an unread pipe that would fill and block it."""
    with open(log, "w") as err:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    port = re.findall(r"(\d+)\s*$", p.stdout.readline())
    if not port:
        p.kill()
        sys.exit("did not start: %s (see %s)" % (cmd, log))
    return p, int(port[0])


def make_tree(root, cold):
    """A small module with a 10 KiB zip, and `cold` versions of a module with 20 MiB zips."""
    subprocess.run([sys.executable, os.path.join(ROOT, "Tests/Fixtures/make_big_module.py"), root, "example.com/small", "v1.0.0", "0"],
                   check=True, capture_output=True)
    # make_big_module.py writes whole MiBs; pad the small one to about 10 KiB with a second file.
    import zipfile
    zpath = os.path.join(root, "example.com/small/@v/v1.0.0.zip")
    with zipfile.ZipFile(zpath, "a", zipfile.ZIP_STORED) as z:
        z.writestr("example.com/small@v1.0.0/pad.txt", os.urandom(5000).hex()[:10000])
    subprocess.run([sys.executable, os.path.join(ROOT, "Tests/Fixtures/make_big_module.py"), root, "example.com/mib", "v1.0.0", "1"],
                   check=True, capture_output=True)
    for i in range(cold):
        subprocess.run([sys.executable, os.path.join(ROOT, "Tests/Fixtures/make_big_module.py"), root, "example.com/cold",
                        "v1.0.%d" % i, "20"], check=True, capture_output=True)


def s3_request(endpoint, method, path, access, secret):
    """A SigV4-signed request (creating the bucket) with curl --aws-sigv4, which needs x-amz-content-sha256 set."""
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    subprocess.run(["curl", "-sf", "-X", method, "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "%s:%s" % (access, secret),
                    "-H", "x-amz-content-sha256: " + empty, endpoint + path], check=True, capture_output=True)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def cpu_ms(pid):
    """utime + stime of `pid` in milliseconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def streamed_vs_redirected(args, work, uport, name, storage, tree, serves):
    """Rows of table 3: the same stored 1 MiB zip served as bytes, then (S3Storage) by 302 to the bucket."""
    path = "/example.com/mib/@v/v1.0.0.zip"
    with open(os.path.join(tree, path.lstrip("/")), "rb") as f:
        expected = f.read()
    rows = []
    for serve in serves:
        manifest = {"listen": "127.0.0.1:0", "pluginDirectory": args.plugins, "spoolDirectory": work,
                    "storage": dict(storage, serve=serve),
                    "fetchers": [{"name": "up", "plugin": "ProxyFetcher", "config": {"url": "http://127.0.0.1:%d" % uport}}]}
        config = os.path.join(work, "athens-mib-%s-%s.json" % (name, serve))
        with open(config, "w") as f:
            json.dump(manifest, f)
        print("[s3_bench] %s: 1 MiB zip, serve %s" % (name, serve), file=sys.stderr, flush=True)
        athens, port = start([args.athens, "--config", config], config + ".log")
        try:
            base = "http://127.0.0.1:%d" % port
            status, body = get(base + path, timeout=120)  # stores it (first run) or reads it back
            assert status == 200 and body == expected, (serve, status, len(body))
            try:
                answer = urllib.request.build_opener(NoRedirect).open(base + path, timeout=30).status
            except urllib.error.HTTPError as e:
                answer = e.code
            assert answer == (302 if serve == "redirect" else 200), (serve, answer)
            times, cpu0 = [], cpu_ms(athens.pid)
            for _ in range(args.downloads):
                t0 = time.monotonic()
                status, body = get(base + path)
                times.append((time.monotonic() - t0) * 1000)
                assert status == 200 and len(body) == len(expected)
            cpu = (cpu_ms(athens.pid) - cpu0) / args.downloads
            times.sort()
            label = "1 MiB zip %s" % ("streamed (HTTP 200)" if serve == "bytes" else "redirected (HTTP 302)")
            rows.append((name, label, "p50 %.1f ms, p99 %.1f ms, athens CPU %.2f ms" %
                         (times[len(times) // 2], times[int(len(times) * 0.99) - 1], cpu)))
        finally:
            athens.terminate()
            athens.wait()
    return rows


def print_table(rows):
    """One line per test, FileStorage's figure beside S3Storage's (a markdown table, as bench/README.md quotes it)."""
    tests, figures = [], {}
    for name, test, figure in rows:
        if test not in figures:
            tests.append(test)
            figures[test] = {}
        figures[test][name] = figure
    print("| test | FileStorage | S3Storage |")
    print("|---|---|---|")
    for test in tests:
        print("| %s | %s | %s |" % (test, figures[test].get("FileStorage", "n/a (no presigned URL)"),
                                   figures[test].get("S3Storage", "")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--athens", default=os.path.join(ROOT, ".build/release/athens"))
    ap.add_argument("--plugins", default=os.path.join(ROOT, ".build/release"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--cold", type=int, default=8)
    ap.add_argument("--downloads", type=int, default=100)
    ap.add_argument("--only-redirect", action="store_true", help="only table 3 (streamed vs redirected)")
    args = ap.parse_args()
    for tool in ["wrk", "curl"]:
        if not shutil.which(tool):
            sys.exit("needs %s (apt-get install -y %s)" % (tool, tool))
    work = tempfile.mkdtemp(prefix="s3-bench-")
    procs = []
    rgw_dir = None
    try:
        env = os.environ
        if not env.get("ATHENS_S3_TEST_ENDPOINT"):
            rgw_dir = os.path.join(work, "rgw")
            out = subprocess.run([os.path.join(ROOT, "scripts/rgw.sh"), "start"], env=dict(env, RGW_DIR=rgw_dir),
                                 check=True, capture_output=True, text=True).stdout
            env = dict(env, **dict(re.findall(r"export (\w+)=(\S+)", out)))
        endpoint, access, secret = env["ATHENS_S3_TEST_ENDPOINT"], env["ATHENS_S3_TEST_ACCESS_KEY"], env["ATHENS_S3_TEST_SECRET_KEY"]
        bucket = "athens-bench-%d" % os.getpid()
        s3_request(endpoint, "PUT", "/" + bucket, access, secret)

        tree = os.path.join(work, "tree")
        make_tree(tree, args.cold)
        upstream, uport = start([sys.executable, os.path.join(ROOT, "Tests/Fixtures/fake_upstream.py"),
                                 "--root", tree, "--port", "0", "--log", os.path.join(work, "upstream.log")],
                                os.path.join(work, "upstream.err"))
        procs.append(upstream)
        storages = {
            "FileStorage": {"plugin": "FileStorage", "config": {"root": os.path.join(work, "files")}},
            "S3Storage": {"plugin": "S3Storage", "config": {"endpoint": endpoint, "bucket": bucket, "accessKeyId": access,
                                                             "secretAccessKey": secret, "prefix": "bench"}},
        }
        rows = streamed_vs_redirected(args, work, uport, "S3Storage", storages["S3Storage"], tree, ["bytes", "redirect"])
        rows += streamed_vs_redirected(args, work, uport, "FileStorage", storages["FileStorage"], tree, ["bytes"])
        for name, storage in ({} if args.only_redirect else storages).items():
            for cache in ["off", "on"]:
                manifest = {"listen": "127.0.0.1:0", "pluginDirectory": args.plugins, "spoolDirectory": work,
                            "storage": storage,
                            "fetchers": [{"name": "up", "plugin": "ProxyFetcher", "config": {"url": "http://127.0.0.1:%d" % uport}}]}
                if cache == "off":
                    manifest["cache"] = {"maxBytes": 0}
                path = os.path.join(work, "athens-%s-%s.json" % (name, cache))
                with open(path, "w") as f:
                    json.dump(manifest, f)
                print("[s3_bench] %s, cache %s" % (name, cache), file=sys.stderr, flush=True)
                athens, port = start([args.athens, "--config", path], path + ".log")
                procs.append(athens)
                base = "http://127.0.0.1:%d" % port
                for label, url in [(".info", "/example.com/small/@v/v1.0.0.info"), ("10 KiB zip", "/example.com/small/@v/v1.0.0.zip")]:
                    status, _ = get(base + url)
                    assert status == 200, (name, url, status)
                    rps, p50, p99 = wrk(base + url, args.duration)
                    rows.append((name, "warm %s, cache %s" % (label, cache), "%.0f req/s, p50 %.2f ms, p99 %.2f ms" % (rps, p50, p99)))
                if cache == "off":
                    # Cold saves: every version is new to this storage.
                    total, t0 = 0, time.monotonic()
                    for i in range(args.cold):
                        print("[s3_bench] %s: cold zip %d" % (name, i), file=sys.stderr, flush=True)
                        status, body = get(base + "/example.com/cold/@v/v1.0.%d.zip" % i, timeout=120)
                        assert status == 200, (name, i, status)
                        total += len(body)
                    elapsed = time.monotonic() - t0
                    rows.append((name, "cold save of %d x 20 MiB zips" % args.cold,
                                 "%.1f MB/s, %.2f s per zip" % (total / elapsed / 1e6, elapsed / args.cold)))
                athens.terminate()
                athens.wait()
                procs.remove(athens)
        print_table(rows)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        if rgw_dir:
            subprocess.run([os.path.join(ROOT, "scripts/rgw.sh"), "stop"], env=dict(os.environ, RGW_DIR=rgw_dir))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

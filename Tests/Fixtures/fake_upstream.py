#!/usr/bin/env python3
"""A fake GOPROXY upstream for tests: serves a static directory tree, with fault modes.

Usage:
    fake_upstream.py --root DIR [--port N] [--log FILE] [--auth USER:PASS]

Prints the port it listens on (127.0.0.1 only; --port 0, the default, picks a free one) as the first
line of stdout, then serves until killed. Every request's raw path (as sent, percent-encoding kept) is
appended to --log, one per line, flushed before the answer, so a test can count what the upstream saw.

Static tree: GET /<path> serves DIR/<percent-decoded path> (e.g. DIR/github.com/!burnt!sushi/toml/@v/list).
'+' stays '+' (the GOPROXY protocol never form-decodes). A missing file answers 404 text/plain.

Path prefixes that change the answer (they nest: /_auth/_fault/truncate/...):
    /_auth/REST               REST as usual if the request carries Basic auth equal to --auth, else 401.
    /_fault/MODE/REST         MODE applies to REST.
    /_fault/MODE:SUFFIX/REST  MODE applies only if REST ends with SUFFIX (e.g. truncate:.zip); else REST as usual.
Modes:
    status-NNN     answers NNN with a short text/plain body.
    garbage        answers 200 with a body that is not JSON (nor anything else).
    wrong-version  answers 200 with {"Version":"v9.9.9"} (valid JSON, wrong version).
    truncate       sends the file's headers with its full Content-Length, then half the bytes, then closes.
    stall          reads the request and never answers.
    stall-body     sends headers and half the body, then never sends more.
    trickle        sends the file in 64-byte pieces, 0.2 s apart.
    redirect       answers 302 to REST (without the fault prefix).
    redirect-loop  answers 302 to the very same path, forever.
    redirect-port-NNNN  answers 302 to http://127.0.0.1:NNNN/REST (another origin).
    hold           waits while the file DIR/.hold exists (a test holds the answer), then answers REST as usual.
"""

import argparse
import base64
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STALL_SECONDS = 600


def content_type(path):
    if path.endswith(".info") or path.endswith("/@latest"):
        return "application/json"
    if path.endswith(".zip"):
        return "application/zip"
    return "text/plain; charset=utf-8"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-upstream"

    def log_message(self, format, *args):  # keep stderr quiet; the request log is the record
        pass

    def do_GET(self):
        self.server.record(self.path)
        path = self.path.split("?", 1)[0]
        while True:
            if path.startswith("/_auth/"):
                rest = path[len("/_auth"):]
                auth = self.server.auth
                expected = "Basic " + base64.b64encode(auth.encode()).decode() if auth else None
                if expected is None or self.headers.get("Authorization") != expected:
                    return self.answer(401, b"fake upstream: credentials required\n", "text/plain; charset=utf-8")
                path = rest
                continue
            if path.startswith("/_fault/"):
                spec, rest = split_prefix(path, "/_fault/")
                mode, _, suffix = spec.partition(":")
                if suffix and not rest.endswith(suffix):
                    path = rest
                    continue
                return self.fault(mode, path, rest)
            return self.serve_file(path)

    def fault(self, mode, path, rest):
        if mode.startswith("status-"):
            code = int(mode[len("status-"):])
            body = ("fake upstream: status %d for %s\n" % (code, rest)).encode()
            return self.answer(code, body, "text/plain; charset=utf-8")
        if mode == "garbage":
            return self.answer(200, b"<html>this is not what you asked for", "application/json")
        if mode == "wrong-version":
            return self.answer(200, b'{"Version":"v9.9.9","Time":"2020-01-01T00:00:00Z"}', "application/json")
        if mode == "redirect":
            return self.redirect(rest)
        if mode == "redirect-loop":
            return self.redirect(path)
        if mode.startswith("redirect-port-"):
            return self.redirect("http://127.0.0.1:%d%s" % (int(mode[len("redirect-port-"):]), rest))
        if mode == "hold":
            deadline = time.monotonic() + STALL_SECONDS
            while os.path.exists(os.path.join(self.server.root, ".hold")) and time.monotonic() < deadline:
                time.sleep(0.02)
            return self.serve_file(rest)
        if mode == "stall":
            time.sleep(STALL_SECONDS)
            self.close_connection = True
            return
        body = self.read_file(rest)
        if body is None:
            return self.not_found(rest)
        if mode == "truncate":
            self.send_head(200, len(body), content_type(rest))
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if mode == "stall-body":
            self.send_head(200, len(body), content_type(rest))
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(STALL_SECONDS)
            self.close_connection = True
            return
        if mode == "trickle":
            self.send_head(200, len(body), content_type(rest))
            for start in range(0, len(body), 64):
                self.wfile.write(body[start : start + 64])
                self.wfile.flush()
                time.sleep(0.2)
            return
        return self.answer(500, ("fake upstream: unknown fault mode %s\n" % mode).encode(), "text/plain")

    def serve_file(self, path):
        body = self.read_file(path)
        if body is None:
            return self.not_found(path)
        return self.answer(200, body, content_type(path))

    def read_file(self, path):
        # unquote, not unquote_plus: '+' in versions (v2.0.0+incompatible) is literal.
        relative = urllib.parse.unquote(path).lstrip("/")
        if any(part in ("", ".", "..") for part in relative.split("/")):
            return None
        full = os.path.join(self.server.root, relative)
        if not os.path.isfile(full):
            return None
        with open(full, "rb") as f:
            return f.read()

    def not_found(self, path):
        return self.answer(404, ("not found: %s\n" % path).encode(), "text/plain; charset=utf-8")

    def redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_head(self, code, length, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def answer(self, code, body, ctype):
        self.send_head(code, len(body), ctype)
        self.wfile.write(body)


def split_prefix(path, prefix):
    """'/_fault/mode/a/b' -> ('mode', '/a/b')."""
    tail = path[len(prefix):]
    spec, slash, rest = tail.partition("/")
    return spec, "/" + rest if slash else "/"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port, root, log_path, auth):
        super().__init__(("127.0.0.1", port), Handler)
        self.root = root
        self.auth = auth
        self.log_lock = threading.Lock()
        self.log_file = open(log_path, "a", buffering=1) if log_path else None

    def record(self, path):
        if self.log_file is None:
            return
        with self.log_lock:
            self.log_file.write(path + "\n")
            self.log_file.flush()


def main():
    parser = argparse.ArgumentParser(description="Fake GOPROXY upstream with fault modes.")
    parser.add_argument("--root", required=True, help="directory tree served as the GOPROXY")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--log", help="file that gets every request path, one per line")
    parser.add_argument("--auth", help="USER:PASS that paths under /_auth/ require (Basic)")
    args = parser.parse_args()
    # A parent that spawned us from a thread with blocked signals (Dispatch workers do) passes its mask on;
    # unblock so that SIGTERM ends us.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    server = Server(args.port, os.path.abspath(args.root), args.log, args.auth)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())

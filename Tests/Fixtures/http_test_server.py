#!/usr/bin/env python3
"""An HTTP/1.1 server on 127.0.0.1 for the HTTPClient tests: each path is one behaviour.

Usage: http_test_server.py [--port N] [--cert PEM --key PEM]
Prints "port N" as its first stdout line, then serves until killed; with --cert and --key it speaks TLS.
A path ending in "..." below matches every path with that prefix.

    /hello                 200 "hello" (Content-Length, keep-alive)
    /connections           200, body = number of TCP connections accepted so far
    /bytes/N               200 with N bytes of "x" and a Content-Length
    /announce/N            200 announcing Content-Length N, sends nothing and holds the connection
    /endless...            200 without Content-Length, "x" forever (as fast as the client reads)
    /endless-chunked...    200 chunked, 16 KiB chunks forever
    /stall-head            reads the request, never answers
    /stall-body            headers and 1000 of 100000 bytes, then nothing
    /drip                  200 chunked, one byte every 0.1 s forever (never idle, never done)
    /gzip...               200 Content-Encoding: gzip, a 256 KiB body that inflates to 256 MiB
    /redirect/CODE?to=URL  CODE with Location URL
    /loop                  302 with Location /loop, for ever
    /echo                  200 JSON {method, headers, length, sha256} of the request (any method; reads the body)
    /status/NNN            NNN with a short text body
    /headers-flood         200 then header lines forever
"""

import argparse
import gzip
import hashlib
import io
import json
import signal
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLD_SECONDS = 600

_bomb = None
_bomb_lock = threading.Lock()


def gzip_bomb():
    """256 MiB of zeros gzipped (about 256 KiB), built once."""
    global _bomb
    with _bomb_lock:
        if _bomb is None:
            out = io.BytesIO()
            with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as z:
                block = bytes(1 << 20)
                for _ in range(256):
                    z.write(block)
            _bomb = out.getvalue()
        return _bomb


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "http-test-server"

    def log_message(self, format, *args):
        pass

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_GET(self):
        self.route()

    def do_HEAD(self):
        self.route()

    def do_PUT(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_DELETE(self):
        self.route()

    def simple(self, status, body, content_type="text/plain; charset=utf-8", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def hold(self):
        self.wfile.flush()
        time.sleep(HOLD_SECONDS)
        self.close_connection = True

    def route(self):
        parsed = urllib.parse.urlsplit(self.path)
        path, query = parsed.path, urllib.parse.parse_qs(parsed.query)
        if path == "/hello":
            return self.simple(200, b"hello")
        if path == "/connections":
            with self.server.lock:
                count = self.server.connections
            return self.simple(200, str(count).encode())
        if path.startswith("/bytes/"):
            return self.simple(200, b"x" * int(path[len("/bytes/"):]), "application/octet-stream")
        if path.startswith("/announce/"):
            self.send_response(200)
            self.send_header("Content-Length", path[len("/announce/"):])
            self.end_headers()
            return self.hold()
        if path.startswith("/endless") and not path.startswith("/endless-chunked"):
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            block = b"x" * 65536
            try:
                while True:
                    self.wfile.write(block)
            except OSError:
                return
        if path.startswith("/endless-chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            block = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
            try:
                while True:
                    self.wfile.write(block)
            except OSError:
                self.close_connection = True
                return
        if path == "/stall-head":
            return self.hold()
        if path == "/stall-body":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            return self.hold()
        if path == "/drip":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"1\r\nx\r\n")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                self.close_connection = True
                return
        if path.startswith("/gzip"):
            body = gzip_bomb()
            return self.simple(200, body, "text/plain", [("Content-Encoding", "gzip")])
        if path.startswith("/redirect/"):
            code = int(path[len("/redirect/"):])
            self.send_response(code)
            self.send_header("Location", query.get("to", ["/hello"])[0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/echo":
            length = int(self.headers.get("Content-Length") or 0)
            digest = hashlib.sha256()
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                digest.update(chunk)
                remaining -= len(chunk)
            body = json.dumps({
                "method": self.command,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "length": length - remaining,
                "sha256": digest.hexdigest(),
            }).encode()
            return self.simple(200, body, "application/json")
        if path.startswith("/status/"):
            return self.simple(int(path[len("/status/"):]), b"status body\n")
        if path == "/headers-flood":
            self.send_response(200)
            try:
                n = 0
                while True:
                    self.send_header("X-Flood-%d" % n, "y" * 100)
                    n += 1
                    if n % 100 == 0:
                        self.flush_headers()
            except OSError:
                self.close_connection = True
                return
        return self.simple(404, b"no such test path\n")


def main():
    # A parent that spawned us from a thread with blocked signals (Dispatch workers do) passes its mask on.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    server.lock = threading.Lock()
    server.connections = 0
    print("port %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

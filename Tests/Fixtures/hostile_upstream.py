#!/usr/bin/env python3
"""A hostile GOPROXY upstream on 127.0.0.1, for the bounded-memory tests.

Usage: hostile_upstream.py [--port N] [--stall-port]
Prints "port N" as its first stdout line, then serves until killed.

Every module serves v1.0.0 (list, .info, .mod, .zip generated on the fly), except:
    a module path containing "endless": its .info is 200 application/json that never ends
    a module path containing "bomb":    its .mod is a gzip bomb (Content-Encoding: gzip, ~1 MiB that
                                        inflates to 1 GiB of zeros)
With --stall-port, a second socket is opened and its port printed as the second line ("stall N"): it
accepts connections, reads nothing and never answers (a stalled checksum database).
"""

import argparse
import io
import json
import signal
import socket
import threading
import time
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_bomb():
    """gzip framing around 1 GiB of zeros, deflated (about 1 MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(1024)]
    parts.append(compressor.flush())
    return b"".join(parts)


BOMB = None


def module_zip(module, version):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        prefix = "%s@%s/" % (module, version)
        z.writestr(prefix + "go.mod", "module %s\n" % module)
        z.writestr(prefix + "x.go", "package x\n")
    return out.getvalue()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile-upstream"

    def log_message(self, format, *args):
        pass

    def answer(self, status, body, content_type, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        module, sep, rest = path[1:].partition("/@v/")
        if not sep:
            module, sep, _ = path[1:].partition("/@latest")
            if sep:
                return self.info(module, "v1.0.0")
            return self.answer(404, b"not found\n", "text/plain; charset=utf-8")
        if rest == "list":
            return self.answer(200, b"v1.0.0\n", "text/plain; charset=utf-8")
        version, dot, ext = rest.rpartition(".")
        if version != "v1.0.0":
            return self.answer(404, b"not found: unknown version\n", "text/plain; charset=utf-8")
        if ext == "info":
            if "endless" in module:
                return self.endless()
            return self.info(module, version)
        if ext == "mod":
            if "bomb" in module:
                return self.answer(200, BOMB, "text/plain; charset=utf-8", [("Content-Encoding", "gzip")])
            return self.answer(200, ("module %s\n" % module).encode(), "text/plain; charset=utf-8")
        if ext == "zip":
            return self.answer(200, module_zip(module, version), "application/zip")
        return self.answer(404, b"not found\n", "text/plain; charset=utf-8")

    def info(self, module, version):
        body = json.dumps({"Version": version, "Time": "2024-01-02T03:04:05Z"}).encode()
        return self.answer(200, body, "application/json")

    def endless(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        block = b'{"Version":"v1.0.0","Pad":"' + b"x" * 65536
        try:
            self.wfile.write(block)
            block = b"x" * 65536
            while True:
                self.wfile.write(block)
        except OSError:
            return


def stall_forever(listener):
    held = []
    while True:
        connection, _ = listener.accept()
        held.append(connection)  # never read, never answered, never closed


def main():
    global BOMB
    # A parent that spawned us from a thread with blocked signals (Dispatch workers do) passes its mask on.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stall-port", action="store_true")
    args = parser.parse_args()
    BOMB = make_bomb()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    print("port %d" % server.server_address[1], flush=True)
    if args.stall_port:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(256)
        print("stall %d" % listener.getsockname()[1], flush=True)
        threading.Thread(target=stall_forever, args=(listener,), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()

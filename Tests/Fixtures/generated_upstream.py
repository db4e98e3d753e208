#!/usr/bin/env python3
"""A GOPROXY upstream for tests that makes up every module it is asked for, so that names no file system can
hold (a 300-byte path element, say) can still be served.

Usage: generated_upstream.py [--port N]
Prints the port (127.0.0.1 only; 0, the default, picks a free one) as the first line of stdout, then serves:
    /<escaped module>/@v/<escaped version>.info   {"Version": ..., "Time": "2024-01-02T03:04:05Z"}
    /<escaped module>/@v/<escaped version>.mod    "module <module>\\n"
    /<escaped module>/@v/<escaped version>.zip    a valid module zip holding go.mod and one .go file
    /<escaped module>/@v/list                     empty
Anything else answers 404.
"""
import argparse
import io
import json
import re
import sys
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def unescape(text):
    return re.sub(r"!([a-z])", lambda m: m.group(1).upper(), text)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, kind="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = urllib.parse.unquote(self.path)
        if path.endswith("/@v/list"):
            return self.answer(200, b"")
        match = re.fullmatch(r"/(.+)/@v/([^/]+)\.(info|mod|zip)", path)
        if not match:
            return self.answer(404, b"not found")
        module, version, kind = unescape(match.group(1)), unescape(match.group(2)), match.group(3)
        mod = ("module %s\n" % module).encode()
        if kind == "info":
            return self.answer(200, json.dumps({"Version": version, "Time": "2024-01-02T03:04:05Z"}).encode(), "application/json")
        if kind == "mod":
            return self.answer(200, mod)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("%s@%s/go.mod" % (module, version), mod)
            archive.writestr("%s@%s/x.go" % (module, version), b"package x\n")
        return self.answer(200, buffer.getvalue(), "application/zip")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A forwarding proxy in front of a real S3 server (the tests' RGW) that injects faults, for S3Storage's retry tests.

Usage: s3_fault_proxy.py --target http://127.0.0.1:PORT --rules JSON --log FILE [--port 0]
Prints "port N" first. Every request is forwarded unchanged (the Host header too, so SigV4 signatures made for
the proxy's address still verify) unless a rule matches it first. Rules, tried in order, each used `times` times:
    {"method": "PUT", "contains": ".info", "status": 503, "code": "SlowDown", "times": 2}
    {"method": "GET", "contains": ".zip", "stall": 30, "times": 1}      # hold the request, answer nothing
"contains" is matched against the path with its query. Each request is logged as "METHOD PATH STATUS".
"""
import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # the log file is the record
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        rule = self.server.take_rule(self.command, self.path)
        if rule and "stall" in rule:
            self.server.record("%s %s stall" % (self.command, self.path))
            time.sleep(rule["stall"])
            self.close_connection = True
            return
        if rule:
            status = rule["status"]
            text = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code><Message>injected</Message></Error>"
                    % rule.get("code", "InternalError")).encode()
            # Logged before answering: a client that has its answer finds the line already there.
            self.server.record("%s %s %d injected" % (self.command, self.path, status))
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
            return
        target = urllib.parse.urlsplit(self.server.target)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
        connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            connection.putheader(k, v)
        if body or self.command in ("PUT", "POST"):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        self.server.record("%s %s %d" % (self.command, self.path, response.status))
        self.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                self.send_header(k, v)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        else:
            self.send_header("Content-Length", response.getheader("Content-Length") or "0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        connection.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port, target, rules, log):
        super().__init__(("127.0.0.1", port), Handler)
        self.target, self.rules, self.log = target, rules, log
        self.lock = threading.Lock()

    def take_rule(self, method, path):
        with self.lock:
            for rule in self.rules:
                if rule.get("times", 0) > 0 and rule["method"] == method and rule["contains"] in path:
                    rule["times"] -= 1
                    return dict(rule)
        return None

    def record(self, line):
        with self.lock, open(self.log, "a") as f:
            f.write(line + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--rules", default="[]")
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    server = Proxy(args.port, args.target, json.loads(args.rules), args.log)
    print("port %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

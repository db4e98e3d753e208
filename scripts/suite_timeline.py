#!/usr/bin/env python3
"""Where the test suite's wall time goes, from Swift Testing's event stream.

    swift test --skip-build --experimental-event-stream-output /tmp/events.jsonl
    scripts/suite_timeline.py /tmp/events.jsonl [--top N]

Prints the tests that ended last, the longest ones (start to end), the suites by end time, and how many tests were
between their start and end in each 30 s of the run. A test's "started" event comes when it is scheduled, not when its
body runs: trivial tests that end late waited for a thread (measured 2026-12-02: all ~570 tests start at t = 0, the
cores are 57% idle over the test phase, and table-driven unit tests end only at ~250 s).
"""
import argparse
import collections
import json


def load(path):
    start, end, first = {}, {}, None
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if record.get("kind") != "event":
                continue
            payload = record["payload"]
            test = payload.get("testID")
            if not test or payload["kind"] not in ("testStarted", "testEnded"):
                continue
            instant = payload["instant"]["absolute"]
            first = instant if first is None else min(first, instant)
            (start if payload["kind"] == "testStarted" else end)[test] = instant
    rows = [(end[t] - start[t], start[t] - first, end[t] - first, t) for t in start if t in end]
    # Suites' IDs have no "/": Module.Suite; tests' are Module.Suite/function/File.swift:line:column.
    return [r for r in rows if "/" in r[3]], [r for r in rows if "/" not in r[3]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("events", help="the file written by --experimental-event-stream-output")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    tests, suites = load(args.events)
    if not tests:
        raise SystemExit("no test events in %s" % args.events)
    line = "%8.1f %8.1f %8.1f  %s"
    header = "%8s %8s %8s  %s" % ("wall s", "start", "end", "test")
    print("%d tests, last ended at %.1f s" % (len(tests), max(r[2] for r in tests)))
    for title, rows in (("ended last", sorted(tests, key=lambda r: -r[2])),
                        ("longest, start to end", sorted(tests, reverse=True)),
                        ("suites by end", sorted(suites, key=lambda r: -r[2]))):
        print("\n%s:\n%s" % (title, header))
        for r in rows[:args.top]:
            print(line % (r[0], r[1], r[2], r[3][:110]))
    running = collections.Counter()
    for _, s, e, _ in tests:
        for bucket in range(int(s // 30), int(e // 30) + 1):
            running[bucket] += 1
    print("\ntests between start and end, per 30 s:", [running[b] for b in range(max(running) + 1)])


if __name__ == "__main__":
    main()

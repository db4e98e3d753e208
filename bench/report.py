#!/usr/bin/env python3
"""Summarise the raw rows written by run.sh into the results table.

    report.py RUNS.tsv RSS.tsv BASELINE CANDIDATE

RUNS.tsv columns (tab-separated, with a header line):
    test conns server rep requests duration_s rps mbps p50_ms p90_ms p99_ms cpu_us_req steal_pct
    srv_util_pct other_pct cli_util_pct cli_other_pct errors attempts [allocs_req]
RSS.tsv columns: test server vmhwm_kib [cache_kib]
``NA`` marks a figure that could not be measured (e.g. CPU of an external server).

Prints one row per (test, server) with medians over the repetitions
(req/s also with min–max), then the CANDIDATE/BASELINE ratios for req/s, CPU
per request, p99 latency and peak RSS. allocs_req (heap allocations per request,
from bench/malloc_count.c) and cache_kib (athens_cache_bytes) are optional.
"""

from __future__ import annotations

import csv
import statistics
import sys


def _num(text: str) -> float | None:
    return None if text in ("", "NA") else float(text)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, digits: int = 0, grouping: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if grouping else f"{value:.{digits}f}"


def _cpu(value: float | None) -> str:
    if value is None:
        return "-"
    return _fmt(value, 1 if value < 100 else 0, grouping=True)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return _fmt(value, 2 if value < 10 else 1)


def _read(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _table(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(runs_path: str, rss_path: str, baseline: str, candidate: str) -> str:
    """Return the results text for the given raw files."""
    runs = _read(runs_path)
    rss_rows = _read(rss_path)
    rss = {(r["test"], r["server"]): _num(r["vmhwm_kib"]) for r in rss_rows}
    cache = {(r["test"], r["server"]): _num(r.get("cache_kib") or "NA") for r in rss_rows}
    tests: list[str] = []
    cells: dict[tuple[str, str], list[dict[str, str]]] = {}
    conns: dict[str, str] = {}
    for r in runs:
        if r["test"] not in tests:
            tests.append(r["test"])
        conns[r["test"]] = r["conns"]
        cells.setdefault((r["test"], r["server"]), []).append(r)

    header = [
        "test", "conns", "server", "reps", "req/s median (min-max)", "MB/s", "p50 ms", "p99 ms",
        "cpu us/req", "allocs/req", "peak RSS MiB", "cache MiB", "srv %", "other", "wrk %", "other", "steal %", "errors",
    ]
    rows = [header]
    medians: dict[tuple[str, str], dict[str, float | None]] = {}
    for test in tests:
        for server in (baseline, candidate):
            cell = cells.get((test, server), [])
            if not cell:
                continue

            def col(name: str) -> list[float | None]:
                return [_num(r[name]) for r in cell]

            rps = [v for v in col("rps") if v is not None]
            m = {
                "rps": _median(col("rps")),
                "mbps": _median(col("mbps")),
                "p50": _median(col("p50_ms")),
                "p99": _median(col("p99_ms")),
                "cpu": _median(col("cpu_us_req")),
                "allocs": _median([_num(r.get("allocs_req") or "NA") for r in cell]),
                "steal": max((v for v in col("steal_pct") if v is not None), default=None),
                "util": _median(col("srv_util_pct")),
                "other": max((v for v in col("other_pct") if v is not None), default=None),
                "cutil": _median(col("cli_util_pct")),
                "cother": max((v for v in col("cli_other_pct") if v is not None), default=None),
            }
            medians[(test, server)] = m
            errors = sum(int(r["errors"]) for r in cell)
            hwm = rss.get((test, server))
            m["rss"] = hwm
            held = cache.get((test, server))
            rows.append([
                test,
                conns[test],
                server,
                str(len(cell)),
                f"{_fmt(m['rps'], grouping=True)} ({_fmt(min(rps), grouping=True)}-{_fmt(max(rps), grouping=True)})"
                if rps else "-",
                _fmt(m["mbps"], 0 if (m["mbps"] or 0) >= 10 else 1, grouping=True),
                _ms(m["p50"]),
                _ms(m["p99"]),
                _cpu(m["cpu"]),
                _fmt(m["allocs"], 2),
                _fmt(hwm / 1024, 1) if hwm is not None else "-",
                _fmt(held / 1024, 1) if held is not None else "-",
                _fmt(m["util"], 0),
                _fmt(m["other"], 1),
                _fmt(m["cutil"], 0),
                _fmt(m["cother"], 1),
                _fmt(m["steal"], 2),
                str(errors),
            ])
    out = [_table(rows, right=set(range(3, len(header))) | {1})]
    out.append("")
    out.append("Medians over the repetitions. srv % / wrk %: CPU time of the server / of wrk as a share of")
    out.append("their pinned CPUs (srv near 100 means the server was the bottleneck; wrk near 100 means the")
    out.append("client was). The two \"other\" columns and steal % are the highest of the cell's runs: CPU")
    out.append("time of unrelated processes on the server / client CPUs, and hypervisor steal. errors are")
    out.append("wrk's connect/read/write/timeout errors plus non-2xx/3xx responses, summed over the runs.")
    out.append("")

    ratio_rows = [["test", f"req/s {candidate}/{baseline}", f"cpu/req {candidate}/{baseline}",
                   f"p99 {candidate}/{baseline}", f"peak RSS {candidate}/{baseline}"]]
    for test in tests:
        base = medians.get((test, baseline))
        cand = medians.get((test, candidate))
        if not base or not cand:
            continue

        def ratio(key: str) -> str:
            b, c = base[key], cand[key]
            return f"{c / b:.2f}x" if b and c is not None else "-"

        ratio_rows.append([test, ratio("rps"), ratio("cpu"), ratio("p99"), ratio("rss")])
    out.append(_table(ratio_rows, right={1, 2, 3, 4}))
    out.append("")
    out.append("Targets (issue 15): cpu/req <= 1.00x and p99 <= 1.00x for info and zip10k; athens' peak RSS")
    out.append("<= 28 MiB. allocs/req: heap allocations per request (0 is the goal for a cache hit).")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    """Command-line entry point; returns the exit status."""
    if len(argv) != 5:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    sys.stdout.write(report(argv[1], argv[2], argv[3], argv[4]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""The issue-15 table: every figure of issue 15 in one table, from the outputs of the benches that measure them.

    summary.py [--runs RUNS.tsv --rss RSS.tsv] [--pipeline PIPELINE.txt] [--store STORE.json]
               [--cold COLD.json] [--soak SOAK.txt] [--baseline nginx] [--candidate athens] [--note TEXT]...

Inputs (each optional; a figure whose input is missing or lacks it is shown as "-", met "-"):
- RUNS.tsv / RSS.tsv: run.sh's raw warm rows (see report.py), medians over the repetitions per test and server;
- PIPELINE.txt: run.sh's pipelining lines, "<server> PIPELINE k=v ..." or "<server> FAILED: ...";
- STORE.json: store_bench.py --json; COLD.json: cold_bench.py --json;
- SOAK.txt: soak.sh's output (its sample lines "<label> VmHWM x MiB  VmRSS y MiB  cache z MiB  threads n").
Columns: figure, athens, baseline (nginx / direct / small store / 1-min sample), ratio, target, met.
"met" is yes/no against the target (ratios compared as printed, to 2 decimals), "-" when not measured or when the
figure is reported without a target. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import _median, _num, _read, _table  # noqa: E402  (the same medians as report.py's table)

# Issue 15's targets.
CPU_RATIO = P99_RATIO = RSS_RATIO = 1.00
PEAK_RSS_MIB = 28.0
STARTUP_MS = READYZ_MS = 1000.0
CATALOG_MS = 50.0
COLD_RATIO = {"10 KiB": 1.5, "1 MiB": 1.2}
SOAK_GROWTH_MIB = 0.5

WARM_LABELS = {"info": ".info", "zip10k": "10 KiB zip", "zip1m": "1 MiB zip", "zip20m": "20 MiB zip"}
WARM_CONNS = {"info": "64", "zip10k": "64", "zip1m": "16", "zip20m": "4"}


def read_warm(runs_path: str | None, rss_path: str | None) -> dict:
    """Medians per (test, server) of cpu/req, p99 and allocs/req; VmHWM and cache per (test, server) in MiB."""
    warm: dict = {"cells": {}, "conns": {}, "rss": {}, "cache": {}}
    if runs_path and os.path.exists(runs_path):
        by_cell: dict[tuple[str, str], list[dict[str, str]]] = {}
        for r in _read(runs_path):
            by_cell.setdefault((r["test"], r["server"]), []).append(r)
            warm["conns"][r["test"]] = r["conns"]
        for key, rows in by_cell.items():
            warm["cells"][key] = {
                "cpu": _median([_num(r["cpu_us_req"]) for r in rows]),
                "p99": _median([_num(r["p99_ms"]) for r in rows]),
                "allocs": _median([_num(r.get("allocs_req") or "NA") for r in rows]),
                "reps": len(rows),
            }
    if rss_path and os.path.exists(rss_path):
        for r in _read(rss_path):
            hwm, cache = _num(r["vmhwm_kib"]), _num(r.get("cache_kib") or "NA")
            warm["rss"][(r["test"], r["server"])] = hwm / 1024 if hwm is not None else None
            warm["cache"][(r["test"], r["server"])] = cache / 1024 if cache is not None else None
    return warm


def _lines(path: str | None) -> list[str]:
    """The lines of a text input; none when it was not given or not written (its bench skipped or failed)."""
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return f.readlines()


def _json(path: str | None):
    """A JSON input, or None when it was not given or not written."""
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_pipeline(path: str | None) -> dict[str, dict]:
    """Per server: its PIPELINE fields (numbers) and whether pipeline.py failed (stall, error or crash)."""
    servers: dict[str, dict] = {}
    for line in _lines(path):
        words = line.split()
        if not words:
            continue
        fields = {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.]+|nan)", line)}
        servers[words[0]] = {"failed": len(words) > 1 and words[1] == "FAILED:", **fields}
    return servers


def read_store(path: str | None) -> dict | None:
    """store_bench.py --json, or None."""
    return _json(path)


def read_cold(path: str | None) -> dict[str, dict]:
    """cold_bench.py --json's sets by zip label ("10 KiB", "1 MiB")."""
    cold = _json(path)
    return {s["zip"]: s for s in cold["sets"]} if cold else {}


def read_soak(path: str | None) -> dict[str, float]:
    """soak.sh's VmHWM (MiB) per sample label ("start", "warmed", "0m30s", "1m0s", ..., "end"), in order."""
    samples: dict[str, float] = {}
    for line in _lines(path):
        m = re.match(r"(\S+)\s+VmHWM\s+([\d.]+) MiB", line)
        if m:
            samples[m.group(1)] = float(m.group(2))
    return samples


def _f(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _met(value: float | None, limit: float | None, digits: int = 2) -> str:
    """yes/no for value <= limit, compared as printed (rounded to digits); "-" if unmeasured or without a target."""
    if value is None or limit is None:
        return "-"
    return "yes" if round(value, digits) <= limit else "no"


def _warm_rows(warm: dict, base: str, cand: str) -> list[list[str]]:
    rows = []
    cells = warm["cells"]
    for test in ("info", "zip10k", "zip1m", "zip20m"):
        name = f"{WARM_LABELS[test]}, {warm['conns'].get(test, WARM_CONNS[test])} conns"
        c, b = cells.get((test, cand), {}), cells.get((test, base), {})
        small = test in ("info", "zip10k")
        cpu = _ratio(c.get("cpu"), b.get("cpu"))
        rows.append([f"{name}: CPU us/req", _f(c.get("cpu")), _f(b.get("cpu"), unit=f" {base}"), _f(cpu, 2, "x"),
                     f"<= {CPU_RATIO:.2f}x" if small else "(report)", _met(cpu, CPU_RATIO if small else None)])
        if not small:
            continue
        p99 = _ratio(c.get("p99"), b.get("p99"))
        rows.append([f"{name}: p99 ms", _f(c.get("p99"), 2), _f(b.get("p99"), 2, f" {base}"), _f(p99, 2, "x"),
                     f"<= {P99_RATIO:.2f}x", _met(p99, P99_RATIO)])
        allocs = c.get("allocs")
        rows.append([f"{name}: allocs/req", _f(allocs, 2), "-", "-", "0", _met(allocs, 0.0)])
    peak = max(((v, t) for (t, s), v in warm["rss"].items() if s == cand and v is not None), default=None)
    base_peak = max((v for (t, s), v in warm["rss"].items() if s == base and v is not None), default=None)
    hwm = peak[0] if peak else None
    rows.append(["peak RSS serving (max VmHWM, warm tests) MiB", _f(hwm), _f(base_peak, unit=f" {base}"),
                 _f(_ratio(hwm, base_peak), 2, "x"), f"<= {PEAK_RSS_MIB:.0f} MiB", _met(hwm, PEAK_RSS_MIB, 1)])
    cache = warm["cache"].get((peak[1], cand)) if peak else None
    rows.append([f"  athens cache at that peak ({peak[1] if peak else '-'}) MiB", _f(cache), "-", "-", "(report)", "-"])
    return rows


def _pipeline_row(pipe: dict[str, dict], base: str, cand: str) -> list[str]:
    def cell(server: str) -> str:
        p = pipe.get(server)
        if p is None:
            return "-"
        if "stalls" not in p:
            return "failed"
        return f"{p['stalls']:.0f} stalls, {p.get('errors', 0):.0f} err, p99 {p.get('batch_p99_ms', float('nan')):.1f} ms"

    c = pipe.get(cand)
    met = "-" if c is None else ("yes" if not c["failed"] and c.get("stalls") == 0 and c.get("errors") == 0 else "no")
    return ["pipelining: stalls, errors, batch p99", cell(cand), cell(base) + (f" {base}" if base in pipe else ""),
            "-", "0 stalls", met]


def _store_rows(store: dict | None) -> list[list[str]]:
    med = store["median"] if store else {"small": {}, "large": {}}
    large, small = med["large"], med["small"]
    n = f"{store['versions']:,}" if store else "N"
    ns = f"{store['small_versions']:,}" if store else "small"

    def ms(d: dict, key: str) -> float | None:
        return d[key] * 1000 if d.get(key) is not None else None

    def worst(d: dict) -> float | None:
        pages = [ms(d, k) for k in ("first", "second", "middle") if d.get(k) is not None]
        return max(pages) if pages else None

    rows = []
    for key, label, limit in (("startup", "start-up", STARTUP_MS), ("readyz", "/readyz", READYZ_MS)):
        a, b = ms(large, key), ms(small, key)
        rows.append([f"{label} at {n} versions ms", _f(a), _f(b, unit=f" at {ns}"), _f(_ratio(a, b), 2, "x"),
                     f"<= {limit:.0f} ms", _met(a, limit, 1)])
    a, b = worst(large), worst(small)
    rows.append([f"catalog page of 1,000 at {n} (worst of 3) ms", _f(a), _f(b, unit=f" at {ns}"),
                 _f(_ratio(a, b), 2, "x"), f"<= {CATALOG_MS:.0f} ms", _met(a, CATALOG_MS, 1)])
    a, b = large.get("ready_rss"), small.get("ready_rss")
    r = _ratio(a, b)
    rows.append([f"VmRSS at /readyz, {n} vs {ns} MiB", _f(a), _f(b, unit=f" at {ns}"), _f(r, 2, "x"),
                 f"<= {RSS_RATIO:.2f}x", _met(r, RSS_RATIO)])
    return rows


def _cold_rows(cold: dict[str, dict]) -> list[list[str]]:
    rows = []
    for label, limit in COLD_RATIO.items():
        s = cold.get(label, {})
        count = s.get("modules", "N")
        rows.append([f"cold {count} x {label} zip, wall s", _f(s.get("athens_s"), 3),
                     _f(s.get("direct_s"), 3, " direct"), _f(s.get("ratio"), 2, "x"), f"<= {limit:.2f}x",
                     _met(s.get("ratio"), limit)])
        rows.append([f"  athens CPU ms per module ({label})", _f(s.get("athens_cpu_ms_per_module"), 2), "-", "-",
                     "(report)", "-"])
        # The relay baseline: nginx as a caching proxy of the same upstream (one request per module, no checks, no
        # fsync) - what any relaying cache costs on this machine, beside the direct fetch's physical limit.
        rows.append([f"  same, vs nginx relay ({label}), wall s", _f(s.get("athens_s"), 3),
                     _f(s.get("relay_s"), 3, " relay"), _f(_ratio(s.get("athens_s"), s.get("relay_s")), 2, "x"),
                     "(report)", "-"])
    return rows


def _soak_row(soak: dict[str, float], minutes: str) -> list[str]:
    def seconds(label: str) -> int | None:
        m = re.fullmatch(r"(\d+)m(\d+)s", label)
        return int(m.group(1)) * 60 + int(m.group(2)) if m else None

    # The 1-minute sample: the first one taken at 60 s or later (the loop may be a second late).
    one = next((v for k, v in soak.items() if (seconds(k) or 0) >= 60), None)
    end = soak.get("end")
    growth = end - one if end is not None and one is not None else None
    return [f"soak VmHWM at the end ({minutes} min) vs 1 min, MiB", _f(end), _f(one, unit=" at 1m"),
            "-" if growth is None else f"{growth:+.1f} MiB", f"<= +{SOAK_GROWTH_MIB:.1f} MiB",
            _met(growth, SOAK_GROWTH_MIB, 1)]


def summary(args: argparse.Namespace) -> str:
    """Returns the issue-15 table for the given inputs."""
    warm = read_warm(args.runs, args.rss)
    rows = [["figure", args.candidate, "baseline", "ratio", "target", "met"]]
    rows += _warm_rows(warm, args.baseline, args.candidate)
    rows.append(_pipeline_row(read_pipeline(args.pipeline), args.baseline, args.candidate))
    rows += _store_rows(read_store(args.store))
    rows += _cold_rows(read_cold(args.cold))
    rows.append(_soak_row(read_soak(args.soak), args.soak_minutes))
    met = [r[5] for r in rows[1:]]
    out = ["issue-15 table (bench/summary.py)"]
    out += [f"NOTE: {n}" for n in args.note]
    out.append(_table(rows, right={1, 2, 3}))
    out.append("")
    out.append(f"met: {met.count('yes')} yes, {met.count('no')} no, {met.count('-')} without a verdict "
               "(\"-\": not measured, or reported without a target).")
    return "\n".join(out) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options of the command line (without the program name)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("runs", "rss", "pipeline", "store", "cold", "soak"):
        ap.add_argument("--" + name)
    ap.add_argument("--soak-minutes", default="?", help="the soak's length, for the row's label")
    ap.add_argument("--baseline", default="nginx")
    ap.add_argument("--candidate", default="athens")
    ap.add_argument("--note", action="append", default=[], help="a line printed above the table (repeatable)")
    return ap.parse_args(argv)


def main(argv: list[str]) -> int:
    """Command-line entry point; returns the exit status."""
    sys.stdout.write(summary(parse_args(argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Tests for summary.py (stdlib unittest) on fixture inputs: ``python3 bench/test_summary.py``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summary  # noqa: E402

RUNS_HEADER = (
    "test\tconns\tserver\trep\trequests\tduration_s\trps\tmbps\tp50_ms\tp90_ms\tp99_ms\tcpu_us_req\tsteal_pct\t"
    "srv_util_pct\tother_pct\tcli_util_pct\tcli_other_pct\terrors\tattempts\tallocs_req\n"
)


def run(test: str, conns: int, server: str, rep: int, cpu: str, p99: float, allocs: str = "NA") -> str:
    return (f"{test}\t{conns}\t{server}\t{rep}\t100000\t10.0\t10000\t10\t0.5\t0.7\t{p99}\t{cpu}\t0.0\t"
            f"99.0\t0.0\t85.0\t1.0\t0\t1\t{allocs}\n")


SOAK = """start      VmHWM   32.0 MiB  VmRSS   32.0 MiB  cache    0.0 MiB  threads 9
warmed     VmHWM   36.5 MiB  VmRSS   36.0 MiB  cache    2.0 MiB  threads 11
0m30s      VmHWM   36.9 MiB  VmRSS   36.2 MiB  cache    2.0 MiB  threads 11
1m1s       VmHWM   37.0 MiB  VmRSS   36.3 MiB  cache    2.0 MiB  threads 11
1m30s      VmHWM   37.2 MiB  VmRSS   36.3 MiB  cache    2.0 MiB  threads 11
end        VmHWM   37.3 MiB  VmRSS   36.4 MiB  cache    2.0 MiB  threads 11
BENCH requests=873228 duration_us=60000000
"""


class SummaryTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="summary_test.")

    def tearDown(self) -> None:
        shutil.rmtree(self.dir)

    def path(self, name: str, text: str) -> str:
        p = os.path.join(self.dir, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def table(self, *argv: str) -> dict[str, list[str]]:
        """Runs summary on argv; returns the table's rows by figure, cells split on runs of 2+ spaces."""
        text = summary.summary(summary.parse_args(list(argv)))
        rows = {}
        for line in text.splitlines():
            cells = [c.strip() for c in line.split("  ") if c.strip()]
            if len(cells) == 6 and not line.startswith("---"):
                rows[cells[0]] = cells[1:]
        return rows

    def full_inputs(self) -> list[str]:
        runs = self.path("runs.tsv", RUNS_HEADER + "".join([
            # info: athens 11, 10, 12 (median 11) vs nginx 10, 9, 11 (median 10) -> 1.10x, not met.
            run("info", 64, "nginx", 1, "10.0", 2.0), run("info", 64, "athens", 1, "11.0", 1.9, "2.00"),
            run("info", 64, "athens", 2, "10.0", 1.8, "2.00"), run("info", 64, "nginx", 2, "9.0", 2.0),
            run("info", 64, "nginx", 3, "11.0", 2.0), run("info", 64, "athens", 3, "12.0", 2.2, "2.02"),
            # zip10k: 10.04 vs 10.0 prints as 1.00x, and is met as printed; zero allocations.
            run("zip10k", 64, "nginx", 1, "10.0", 3.0), run("zip10k", 64, "athens", 1, "10.04", 3.3, "0.00"),
            run("zip1m", 16, "nginx", 1, "300", 9.0), run("zip1m", 16, "athens", 1, "150", 8.0, "5.00"),
        ]))
        rss = self.path("rss.tsv", "test\tserver\tvmhwm_kib\tcache_kib\n"
                                   "info\tnginx\t12288\tNA\ninfo\tathens\t34816\t2048\n"
                                   "zip10k\tnginx\t12800\tNA\nzip10k\tathens\t36864\t4096\n"
                                   "zip1m\tnginx\t12000\tNA\nzip1m\tathens\t35840\t8192\n")
        pipe = self.path("pipe.txt",
                         "nginx PIPELINE requests=51200 seconds=10.2 depth=32 batch_p50_ms=40 batch_p99_ms=84.0 "
                         "batch_max_ms=90 stalls=0 errors=0\n"
                         "athens PIPELINE requests=51200 seconds=2.0 depth=32 batch_p50_ms=8 batch_p99_ms=40.0 "
                         "batch_max_ms=50 stalls=0 errors=0\n")
        store = self.path("store.json", json.dumps({
            "versions": 1000000, "small_versions": 3000, "per_module": 100, "reps": 3,
            "median": {"small": {"startup": 0.030, "readyz": 0.031, "first": 0.020, "second": 0.021, "middle": 0.022,
                                 "ready_rss": 33.4, "hwm": 34.0, "rss": 33.9},
                       "large": {"startup": 0.060, "readyz": 1.2, "first": 0.025, "second": None, "middle": 0.060,
                                 "ready_rss": 33.3, "hwm": 34.0, "rss": 33.9}},
            "runs": {"small": [], "large": []}}))
        cold = self.path("cold.json", json.dumps({"clients": 32, "storage": "FileStorage", "reps": 3, "sets": [
            {"zip": "10 KiB", "modules": 500, "direct_s": 0.4, "athens_s": 0.56, "ratio": 1.4,
             "athens_cpu_ms_per_module": 1.25, "direct_runs_s": [0.4], "athens_runs_s": [0.56],
             "relay_s": 0.5, "relay_runs_s": [0.5]},
            {"zip": "1 MiB", "modules": 200, "direct_s": 0.24, "athens_s": 0.88, "ratio": 3.6667,
             "athens_cpu_ms_per_module": 4.5, "direct_runs_s": [0.24], "athens_runs_s": [0.88]}]}))
        soak = self.path("soak.txt", SOAK)
        return ["--runs", runs, "--rss", rss, "--pipeline", pipe, "--store", store, "--cold", cold,
                "--soak", soak, "--soak-minutes", "10"]

    def test_every_figure_from_full_inputs(self) -> None:
        rows = self.table(*self.full_inputs())
        self.assertEqual(rows[".info, 64 conns: CPU us/req"], ["11.0", "10.0 nginx", "1.10x", "<= 1.00x", "no"])
        self.assertEqual(rows[".info, 64 conns: p99 ms"], ["1.90", "2.00 nginx", "0.95x", "<= 1.00x", "yes"])
        self.assertEqual(rows[".info, 64 conns: allocs/req"], ["2.00", "-", "-", "0", "no"])
        self.assertEqual(rows["10 KiB zip, 64 conns: CPU us/req"], ["10.0", "10.0 nginx", "1.00x", "<= 1.00x", "yes"])
        self.assertEqual(rows["10 KiB zip, 64 conns: p99 ms"], ["3.30", "3.00 nginx", "1.10x", "<= 1.00x", "no"])
        self.assertEqual(rows["10 KiB zip, 64 conns: allocs/req"], ["0.00", "-", "-", "0", "yes"])
        self.assertEqual(rows["1 MiB zip, 16 conns: CPU us/req"], ["150.0", "300.0 nginx", "0.50x", "(report)", "-"])
        self.assertEqual(rows["20 MiB zip, 4 conns: CPU us/req"], ["-", "-", "-", "(report)", "-"])
        # The peak is zip10k's 36 MiB (not the last test's), and the cache beside it is zip10k's.
        self.assertEqual(rows["peak RSS serving (max VmHWM, warm tests) MiB"],
                         ["36.0", "12.5 nginx", "2.88x", "<= 28 MiB", "no"])
        self.assertEqual(rows["athens cache at that peak (zip10k) MiB"], ["4.0", "-", "-", "(report)", "-"])
        self.assertEqual(rows["pipelining: stalls, errors, batch p99"],
                         ["0 stalls, 0 err, p99 40.0 ms", "0 stalls, 0 err, p99 84.0 ms nginx", "-", "0 stalls", "yes"])
        self.assertEqual(rows["start-up at 1,000,000 versions ms"], ["60.0", "30.0 at 3,000", "2.00x", "<= 1000 ms", "yes"])
        self.assertEqual(rows["/readyz at 1,000,000 versions ms"], ["1,200.0", "31.0 at 3,000", "38.71x", "<= 1000 ms", "no"])
        # Worst of first / second (missing) / middle page.
        self.assertEqual(rows["catalog page of 1,000 at 1,000,000 (worst of 3) ms"],
                         ["60.0", "22.0 at 3,000", "2.73x", "<= 50 ms", "no"])
        self.assertEqual(rows["VmRSS at /readyz, 1,000,000 vs 3,000 MiB"], ["33.3", "33.4 at 3,000", "1.00x", "<= 1.00x", "yes"])
        self.assertEqual(rows["cold 500 x 10 KiB zip, wall s"], ["0.560", "0.400 direct", "1.40x", "<= 1.50x", "yes"])
        self.assertEqual(rows["athens CPU ms per module (10 KiB)"], ["1.25", "-", "-", "(report)", "-"])
        self.assertEqual(rows["same, vs nginx relay (10 KiB), wall s"], ["0.560", "0.500 relay", "1.12x", "(report)", "-"])
        # An older cold.json without the relay: dashes.
        self.assertEqual(rows["same, vs nginx relay (1 MiB), wall s"], ["0.880", "-", "-", "(report)", "-"])
        self.assertEqual(rows["cold 200 x 1 MiB zip, wall s"], ["0.880", "0.240 direct", "3.67x", "<= 1.20x", "no"])
        # The 1-minute sample is the first at >= 60 s (1m1s), not 0m30s nor 1m30s.
        self.assertEqual(rows["soak VmHWM at the end (10 min) vs 1 min, MiB"],
                         ["37.3", "37.0 at 1m", "+0.3 MiB", "<= +0.5 MiB", "yes"])

    def test_nothing_measured_gives_dashes_not_verdicts(self) -> None:
        rows = self.table("--runs", os.path.join(self.dir, "absent.tsv"))
        self.assertEqual(len(rows), 1 + 8 + 2 + 1 + 4 + 6 + 1)  # header + every figure of issue 15 (cold: 3 rows a set)
        for figure, cells in rows.items():
            if figure != "figure":
                self.assertEqual(cells[-1], "-", figure)
                self.assertEqual(cells[0], "-", figure)

    def test_failed_or_stalled_pipeline_is_not_met(self) -> None:
        pipe = self.path("pipe.txt",
                         "nginx PIPELINE requests=6400 seconds=1 depth=32 batch_p50_ms=1 batch_p99_ms=2 batch_max_ms=3 "
                         "stalls=0 errors=0\n"
                         "athens FAILED: PIPELINE requests=6368 seconds=6 depth=32 batch_p50_ms=1 batch_p99_ms=2 "
                         "batch_max_ms=5001 stalls=1 errors=0 \n")
        rows = self.table("--pipeline", pipe)
        self.assertEqual(rows["pipelining: stalls, errors, batch p99"][0], "1 stalls, 0 err, p99 2.0 ms")
        self.assertEqual(rows["pipelining: stalls, errors, batch p99"][-1], "no")
        crashed = self.path("crash.txt", "athens FAILED:  Traceback (most recent call last)\n")
        self.assertEqual(self.table("--pipeline", crashed)["pipelining: stalls, errors, batch p99"][0::4],
                         ["failed", "no"])

    def test_soak_without_a_one_minute_sample_has_no_verdict(self) -> None:
        soak = self.path("soak.txt", "start      VmHWM   32.0 MiB  VmRSS   32.0 MiB  cache    0.0 MiB  threads 9\n"
                                     "0m30s      VmHWM   36.9 MiB  VmRSS   36.2 MiB  cache    2.0 MiB  threads 11\n"
                                     "end        VmHWM   37.9 MiB  VmRSS   36.4 MiB  cache    2.0 MiB  threads 11\n")
        row = self.table("--soak", soak, "--soak-minutes", "1")["soak VmHWM at the end (1 min) vs 1 min, MiB"]
        self.assertEqual(row, ["37.9", "-", "-", "<= +0.5 MiB", "-"])

    def test_notes_are_printed_above_the_table(self) -> None:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "summary.py")
        result = subprocess.run([sys.executable, script, "--note", "QUICK RUN: not the real figures"],
                                capture_output=True, text=True, check=True)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[1], "NOTE: QUICK RUN: not the real figures")
        self.assertTrue(lines[2].startswith("figure"))


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""Tests for report.py (stdlib unittest): ``python3 bench/test_report.py``."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

HEADER = (
    "test\tconns\tserver\trep\trequests\tduration_s\trps\tmbps\tp50_ms\tp90_ms\tp99_ms\tcpu_us_req\tsteal_pct\t"
    "srv_util_pct\tother_pct\tcli_util_pct\tcli_other_pct\terrors\tattempts\n"
)


def row(test: str, server: str, rep: int, rps: float, cpu: str, steal: float = 0.0, errors: int = 0) -> str:
    return (
        f"{test}\t64\t{server}\t{rep}\t{int(rps * 10)}\t10.0\t{rps}\t{rps / 1000}\t0.5\t0.7\t1.5\t{cpu}\t{steal}\t"
        f"99.0\t0.0\t85.0\t1.0\t{errors}\t1\n"
    )


class ReportTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="report_test.")
        self.runs = os.path.join(self.dir, "runs.tsv")
        self.rss = os.path.join(self.dir, "rss.tsv")

    def tearDown(self) -> None:
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def write(self, runs: list[str], rss: list[str]) -> None:
        with open(self.runs, "w") as f:
            f.write(HEADER + "".join(runs))
        with open(self.rss, "w") as f:
            f.write("test\tserver\tvmhwm_kib\n" + "".join(rss))

    def test_medians_ranges_and_ratios(self) -> None:
        self.write(
            [
                row("info", "nginx", 1, 80000, "12.0"),
                row("info", "athens", 1, 20000, "40.0", steal=0.3),
                row("info", "athens", 2, 30000, "36.0", errors=2),
                row("info", "nginx", 2, 90000, "11.0"),
                row("info", "nginx", 3, 50000, "13.0"),
                row("info", "athens", 3, 25000, "38.0"),
            ],
            ["info\tnginx\t12800\n", "info\tathens\t20480\n"],
        )
        text = report.report(self.runs, self.rss, "nginx", "athens")
        lines = text.splitlines()
        nginx = next(line for line in lines if line.startswith("info") and " nginx " in line)
        athens = next(line for line in lines if line.startswith("info") and " athens " in line)
        self.assertIn("80,000 (50,000-90,000)", nginx)
        self.assertIn("12.0", nginx)
        self.assertIn("12.5", nginx)  # 12800 KiB
        self.assertIn("25,000 (20,000-30,000)", athens)
        self.assertIn("38.0", athens)
        self.assertIn("20.0", athens)
        self.assertTrue(athens.rstrip().endswith("2"), athens)  # errors summed
        self.assertIn("0.30", athens)  # highest steal
        ratio = next(line for line in lines[lines.index(athens):] if line.startswith("info") and "x" in line)
        self.assertEqual(ratio.split()[1:], ["0.31x", "3.17x", "1.00x", "1.60x"])

    def test_missing_cpu_is_shown_as_dash(self) -> None:
        self.write(
            [row("zip1m", "nginx", 1, 2800, "343"), row("zip1m", "external", 1, 1800, "NA")],
            ["zip1m\tnginx\t12800\n", "zip1m\texternal\tNA\n"],
        )
        text = report.report(self.runs, self.rss, "nginx", "external")
        ratio = [line for line in text.splitlines() if line.startswith("zip1m")][-1]
        self.assertEqual(ratio.split()[1:], ["0.64x", "-", "1.00x", "-"])

    def test_allocations_and_cache_columns(self) -> None:
        with open(self.runs, "w") as f:
            f.write(HEADER.rstrip("\n") + "\tallocs_req\n")
            f.write(row("info", "nginx", 1, 80000, "12.0").rstrip("\n") + "\tNA\n")
            f.write(row("info", "athens", 1, 70000, "11.0").rstrip("\n") + "\t2.00\n")
            f.write(row("info", "athens", 2, 71000, "11.5").rstrip("\n") + "\t4.00\n")
        with open(self.rss, "w") as f:
            f.write("test\tserver\tvmhwm_kib\tcache_kib\ninfo\tnginx\t12800\tNA\ninfo\tathens\t25600\t2048\n")
        text = report.report(self.runs, self.rss, "nginx", "athens")
        athens = next(line for line in text.splitlines() if line.startswith("info") and " athens " in line)
        self.assertIn(" 3.00 ", athens)  # median allocations per request
        self.assertIn(" 25.0 ", athens)  # peak RSS MiB
        self.assertIn(" 2.0 ", athens)  # cache MiB

    def test_wrong_argument_count_exits_2(self) -> None:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.py")
        result = subprocess.run([sys.executable, script, "only-one"], capture_output=True, text=True)
        self.assertEqual(result.returncode, 2)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""Tests for cold_bench.py's argument checks (stdlib unittest): ``python3 bench/test_cold_bench.py``."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cold_bench  # noqa: E402


class BadPathsLeaveNothing(unittest.TestCase):
    def setUp(self):
        self.bodies = tempfile.mkdtemp(prefix="test-cold-bench-bodies-")
        self.temp = tempfile.mkdtemp(prefix="test-cold-bench-tmp-")
        self.saved = tempfile.tempdir
        tempfile.tempdir = self.temp  # where cold_bench's own work folder would go

    def tearDown(self):
        tempfile.tempdir = self.saved
        shutil.rmtree(self.bodies, ignore_errors=True)
        shutil.rmtree(self.temp, ignore_errors=True)

    def refused(self, argv):
        stderr = io.StringIO()
        with self.assertRaises(SystemExit) as exit, contextlib.redirect_stderr(stderr):
            cold_bench.main(argv)
        self.assertEqual(exit.exception.code, 2)
        self.assertEqual(os.listdir(self.bodies), [], "no bodies folder left behind")
        self.assertEqual(os.listdir(self.temp), [], "no work folder left behind")
        return stderr.getvalue()

    def test_missing_storage_parent(self):
        message = self.refused(["--storage-parent", "/nonexistent/parent", "--bodies", self.bodies])
        self.assertIn("--storage-parent /nonexistent/parent: not a directory", message)

    def test_missing_bodies(self):
        message = self.refused(["--storage-parent", self.temp, "--bodies", "/nonexistent/bodies"])
        self.assertIn("--bodies /nonexistent/bodies: not a directory", message)


if __name__ == "__main__":
    unittest.main()

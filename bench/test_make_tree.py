#!/usr/bin/env python3
"""Tests for make_tree.py (stdlib unittest): ``python3 bench/test_make_tree.py``.

The ``go mod download`` test runs only when a ``go`` binary is on PATH; it
proves the tree is a valid GOPROXY tree by letting the real client fetch,
verify and extract every version through ``GOPROXY=file://``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tree  # noqa: E402


class ParseSizeTests(unittest.TestCase):
    def test_units_are_binary(self) -> None:
        self.assertEqual(make_tree.parse_size("10k"), 10 * 1024)
        self.assertEqual(make_tree.parse_size("1M"), 1 << 20)
        self.assertEqual(make_tree.parse_size("20m"), 20 << 20)
        self.assertEqual(make_tree.parse_size("512"), 512)
        self.assertEqual(make_tree.parse_size("1g"), 1 << 30)

    def test_bad_sizes_are_rejected(self) -> None:
        for bad in ["", "k", "10kb", "-1k", "0", "0m", "1.5m", "ten", "10 k"]:
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                make_tree.parse_size(bad)


class EscapeTests(unittest.TestCase):
    def test_upper_case_is_escaped(self) -> None:
        self.assertEqual(make_tree.escape_path("example.com/Bench/UpperCase"), "example.com/!bench/!upper!case")
        self.assertEqual(make_tree.escape_path("github.com/BurntSushi/toml"), "github.com/!burnt!sushi/toml")
        self.assertEqual(make_tree.escape_path("example.com/bench/m0001"), "example.com/bench/m0001")

    def test_bang_and_non_ascii_are_rejected(self) -> None:
        for bad in ["example.com/!x", "example.com/é"]:
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                make_tree.escape_path(bad)


class ModulePathTests(unittest.TestCase):
    def test_last_module_is_upper_case(self) -> None:
        self.assertEqual(
            make_tree.module_paths(3),
            ["example.com/bench/m0001", "example.com/bench/m0002", "example.com/Bench/UpperCase"],
        )
        self.assertEqual(make_tree.module_paths(1), ["example.com/Bench/UpperCase"])

    def test_zero_modules_is_rejected(self) -> None:
        with self.assertRaises(ValueError):
            make_tree.module_paths(0)

    def test_package_names_are_identifiers(self) -> None:
        self.assertEqual(make_tree.package_name("example.com/bench/m0001"), "m0001")
        self.assertEqual(make_tree.package_name("example.com/Bench/UpperCase"), "uppercase")
        self.assertEqual(make_tree.package_name("example.com/x/9lives"), "p9lives")


class TreeTests(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="make_tree_test.")

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp)

    def build(self, name: str, **kwargs) -> make_tree.Tree:
        return make_tree.make_tree(os.path.join(self.tmp, name), **kwargs)

    def test_layout_and_contents(self) -> None:
        tree = self.build("t", modules=3, sizes=["10k", "64k", "1m"], max_large=1, large_threshold=1 << 20)
        upper = "example.com/Bench/UpperCase"
        self.assertEqual(list(tree.modules), ["example.com/bench/m0001", "example.com/bench/m0002", upper])
        # Only the first module gets the large (1 MiB) version.
        self.assertEqual([v.version for v in tree.modules["example.com/bench/m0001"]], ["v1.0.0", "v1.1.0", "v1.2.0"])
        self.assertEqual([v.version for v in tree.modules[upper]], ["v1.0.0", "v1.1.0"])
        self.assertEqual(len(tree.paths["zip1m"]), 1)
        vdir = os.path.join(tree.root, "example.com", "!bench", "!upper!case", "@v")
        with open(os.path.join(vdir, "list")) as f:
            self.assertEqual(f.read(), "v1.0.0\nv1.1.0\n")
        with open(os.path.join(vdir, "v1.1.0.info")) as f:
            self.assertEqual(json.load(f), {"Version": "v1.1.0", "Time": "2024-01-02T03:04:05Z"})
        with open(os.path.join(vdir, "v1.1.0.mod"), "rb") as f:
            mod = f.read()
        self.assertEqual(mod, b"module example.com/Bench/UpperCase\n\ngo 1.21\n")

        zpath = os.path.join(vdir, "v1.1.0.zip")
        self.assertEqual(os.path.getsize(zpath), 64 * 1024)
        with zipfile.ZipFile(zpath) as zf:
            self.assertIsNone(zf.testzip())
            names = zf.namelist()
            self.assertTrue(all(n.startswith(f"{upper}@v1.1.0/") for n in names), names)
            self.assertFalse(any(n.endswith("/") for n in names), names)
            self.assertEqual(len(names), len(set(names)))
            self.assertEqual(zf.read(f"{upper}@v1.1.0/go.mod"), mod)
            self.assertIn(b"package uppercase\n", zf.read(f"{upper}@v1.1.0/uppercase.go"))
            filler = [n for n in names if n.endswith(".bin")]
            self.assertTrue(filler)
            # Incompressible: deflate must not shrink the filler noticeably.
            import zlib

            data = b"".join(zf.read(n) for n in filler)
            self.assertGreater(len(zlib.compress(data)), len(data) * 0.99)

    def test_every_zip_has_its_target_size(self) -> None:
        tree = self.build("t", modules=2, sizes=["10k", "100k", "3m"])
        for kind, size in [("zip10k", 10 << 10), ("zip100k", 100 << 10), ("zip3m", 3 << 20)]:
            for path in tree.paths[kind]:
                with self.subTest(path=path):
                    self.assertEqual(os.path.getsize(tree.root + path), size)

    def test_tiny_target_still_gives_a_valid_zip(self) -> None:
        tree = self.build("t", modules=1, sizes=["100"])
        zpath = tree.root + tree.paths["zip100"][0]
        with zipfile.ZipFile(zpath) as zf:
            self.assertEqual(len(zf.namelist()), 2)
        self.assertGreater(os.path.getsize(zpath), 100)

    def test_paths_files_and_sums_match_the_tree(self) -> None:
        tree = self.build("t", modules=4, sizes=["10k", "1m"])
        for kind, paths in tree.paths.items():
            with open(os.path.join(tree.root, f"paths-{kind}.txt")) as f:
                self.assertEqual(f.read().splitlines(), paths)
            for path in paths:
                self.assertTrue(os.path.isfile(tree.root + path), path)
        self.assertEqual(len(tree.paths["info"]), 8)
        self.assertEqual(len(tree.paths["list"]), 4)
        result = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=tree.root, capture_output=True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        served = {
            os.path.relpath(os.path.join(d, f), tree.root)
            for d, _, files in os.walk(tree.root)
            for f in files
            if d != tree.root
        }
        self.assertEqual(served, set(tree.sha256))

    def test_same_seed_same_tree_other_seed_other_zips(self) -> None:
        a = self.build("a", modules=2, sizes=["10k", "1m"], seed=7)
        b = self.build("b", modules=2, sizes=["10k", "1m"], seed=7)
        c = self.build("c", modules=2, sizes=["10k", "1m"], seed=8)
        self.assertEqual(a.sha256, b.sha256)
        for rel, digest in a.sha256.items():
            if rel.endswith(".zip"):
                self.assertNotEqual(digest, c.sha256[rel], rel)
            else:
                self.assertEqual(digest, c.sha256[rel], rel)

    def test_bad_arguments_are_rejected(self) -> None:
        cases = [
            dict(modules=0),
            dict(sizes=[]),
            dict(sizes=["1m", "10k"]),
            dict(sizes=["10k", "10K"]),
            dict(sizes=["10q"]),
            dict(max_large=-1),
        ]
        for i, kwargs in enumerate(cases):
            with self.subTest(kwargs=kwargs), self.assertRaises(ValueError):
                self.build(f"bad{i}", **kwargs)

    def test_non_empty_output_dir_is_rejected(self) -> None:
        self.build("t", modules=1, sizes=["10k"])
        with self.assertRaises(ValueError):
            self.build("t", modules=1, sizes=["10k"])

    def test_command_line(self) -> None:
        out = os.path.join(self.tmp, "cli")
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "make_tree.py")
        ok = subprocess.run(
            [sys.executable, script, out, "--modules", "2", "--sizes", "10k,1m", "--seed", "3", "--quiet"],
            capture_output=True,
            text=True,
        )
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertTrue(os.path.isfile(os.path.join(out, "paths-zip1m.txt")))
        bad = subprocess.run(
            [sys.executable, script, os.path.join(self.tmp, "x"), "--sizes", "big"], capture_output=True, text=True
        )
        self.assertEqual(bad.returncode, 2)
        self.assertIn("invalid size", bad.stderr)

    @unittest.skipUnless(shutil.which("go"), "go not installed")
    def test_go_mod_download_accepts_the_tree(self) -> None:
        tree = self.build("t", modules=3, sizes=["10k", "1m", "2m"], max_large=1, large_threshold=2 << 20)
        work = os.path.join(self.tmp, "client")
        os.makedirs(work)
        with open(os.path.join(work, "go.mod"), "w") as f:
            f.write("module benchclient\n\ngo 1.19\n")
        env = dict(
            os.environ,
            GOPROXY="file://" + tree.root,
            GOFLAGS="-modcacherw",
            GOSUMDB="off",
            GONOSUMDB="",
            GOPRIVATE="",
            GOMODCACHE=os.path.join(self.tmp, "modcache"),
            GOPATH=os.path.join(self.tmp, "gopath"),
            GOCACHE=os.path.join(self.tmp, "gocache"),
            GOTOOLCHAIN="local",
        )
        targets = [f"{m}@{v.version}" for m, versions in tree.modules.items() for v in versions]
        result = subprocess.run(
            ["go", "mod", "download", "-json", *targets], cwd=work, env=env, capture_output=True, text=True
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        decoder = json.JSONDecoder()
        text, pos, downloads = result.stdout, 0, []
        while pos < len(text.rstrip()):
            obj, pos = decoder.raw_decode(text, pos)
            downloads.append(obj)
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.assertEqual(len(downloads), len(targets))
        for d in downloads:
            with self.subTest(module=d["Path"], version=d["Version"]):
                self.assertNotIn("Error", d)
                escaped = make_tree.escape_path(d["Path"])
                zpath = os.path.join(tree.root, escaped, "@v", d["Version"] + ".zip")
                self.assertEqual(d["Sum"], make_tree.zip_h1(zpath))
                self.assertEqual(d["GoModSum"], make_tree.go_mod_h1(make_tree.go_mod(d["Path"])))
                self.assertTrue(os.path.isfile(os.path.join(d["Dir"], "go.mod")))
        # @latest goes through @v/list and picks the highest listed version.
        latest = subprocess.run(
            ["go", "list", "-m", "-json", "example.com/Bench/UpperCase@latest"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        self.assertEqual(latest.returncode, 0, latest.stderr)
        self.assertEqual(json.loads(latest.stdout)["Version"], "v1.1.0")


if __name__ == "__main__":
    unittest.main()

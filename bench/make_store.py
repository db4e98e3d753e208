#!/usr/bin/env python3
"""Writes a FileStorage root holding many stored versions, fast, for start-up and catalog benchmarks.

Usage: bench/make_store.py OUT_DIR [--versions 1000000] [--per-module 100]

Layout (FileStorage's, which is the GOPROXY protocol's):
    OUT_DIR/example.com/store/gNNN/mNNNNNN/@v/v1.0.K.info|.mod|.zip and list
The tree is written directly, not through athens: per module, three tiny placeholder files, and every version's
.info/.mod/.zip is a hard link to them (so 1,000,000 versions cost ~60,000 inodes and ~20 s, not 3 M files).
Start-up and the catalog read names and file types only, never content, so placeholders measure them exactly;
the .info of a version is therefore NOT that version's (do not serve this tree to the go command).
Refuses a non-empty OUT_DIR. Prints the number of versions and modules written.
"""
import argparse
import os
import sys


def make_store(out_dir, versions=1_000_000, per_module=100):
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise ValueError("%s is not empty" % out_dir)
    modules = (versions + per_module - 1) // per_module
    written = 0
    for m in range(modules):
        module = "example.com/store/g%03d/m%06d" % (m % 1000, m)
        vdir = os.path.join(out_dir, module, "@v")
        os.makedirs(vdir)
        count = min(per_module, versions - written)
        placeholders = []
        for ext, content in (("info", b'{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z"}'),
                             ("mod", ("module %s\n" % module).encode()), ("zip", b"PK\x05\x06" + bytes(18))):
            path = os.path.join(vdir, ".placeholder." + ext)
            with open(path, "wb") as f:
                f.write(content)
            placeholders.append((ext, path))
        for k in range(count):
            for ext, path in placeholders:
                os.link(path, os.path.join(vdir, "v1.0.%d.%s" % (k, ext)))
        for _, path in placeholders:
            os.unlink(path)
        with open(os.path.join(vdir, "list"), "w") as f:
            f.write("".join("v1.0.%d\n" % k for k in range(count)))
        written += count
    return written, modules


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--versions", type=int, default=1_000_000)
    parser.add_argument("--per-module", type=int, default=100)
    args = parser.parse_args()
    try:
        written, modules = make_store(args.out_dir, args.versions, args.per_module)
    except ValueError as error:
        sys.exit(str(error))
    print("%d versions in %d modules under %s" % (written, modules, args.out_dir))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Adds one large, valid module version to a static GOPROXY tree (for the S3Storage size and kill tests).

Usage: make_big_module.py OUT_DIR MODULE VERSION MIB

The zip holds go.mod and data.bin (MIB MiB of random bytes, stored uncompressed so the zip is as large as asked).
Prints the zip's size in bytes.
"""
import json
import os
import sys
import zipfile


def main():
    root, module, version, mib = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    vdir = os.path.join(root, module, "@v")  # module paths here are lower case: no escaping needed
    os.makedirs(vdir, exist_ok=True)
    gomod = "module %s\n\ngo 1.19\n" % module
    base = os.path.join(vdir, version)
    with open(base + ".info", "w") as f:
        json.dump({"Version": version, "Time": "2024-01-02T03:04:05Z"}, f)
    with open(base + ".mod", "w") as f:
        f.write(gomod)
    prefix = "%s@%s/" % (module, version)
    with zipfile.ZipFile(base + ".zip", "w", zipfile.ZIP_STORED) as z:
        z.writestr(prefix + "go.mod", gomod)
        with z.open(prefix + "data.bin", "w", force_zip64=True) as out:
            for _ in range(mib):
                out.write(os.urandom(1 << 20))
    with open(os.path.join(vdir, "list"), "a") as f:
        f.write(version + "\n")
    print(os.path.getsize(base + ".zip"))


if __name__ == "__main__":
    main()

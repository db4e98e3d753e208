#!/usr/bin/env python3
"""Writes module zips for the upload tests without holding them in memory.

Usage: make_big_zip.py OUT MODULE VERSION MIB [--bomb]

Without --bomb: a valid module zip (stored, no compression) of go.mod plus one file of MIB MiB.
With --bomb: a small deflated zip whose one entry expands to MIB MiB of zeros (a zip bomb when MIB > 500).
"""
import sys
import zipfile

out, module, version, mib = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
bomb = "--bomb" in sys.argv[5:]
prefix = "%s@%s/" % (module, version)
chunk = bytes(range(256)) * 4096  # 1 MiB
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if bomb else zipfile.ZIP_STORED) as z:
    z.writestr(prefix + "go.mod", "module %s\n" % module)
    with z.open(prefix + ("zeros.bin" if bomb else "data.bin"), "w", force_zip64=True) as f:
        for _ in range(mib):
            f.write(b"\0" * len(chunk) if bomb else chunk)

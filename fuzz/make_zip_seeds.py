#!/usr/bin/env python3
"""Writes the zip target's seed corpus (fuzz/corpus/zip/): small module zips, valid and broken.

Run from anywhere: python3 fuzz/make_zip_seeds.py. The seeds are committed; rerun only to change them.
"""
import io
import os
import struct
import zipfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "zip")
PREFIX = "example.com/m@v1.0.0/"


def module_zip(files, compression=zipfile.ZIP_STORED, comment=b""):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z:
        for name, data in files:
            z.writestr(name, data)
        z.comment = comment
    return buffer.getvalue()


def raw_zip(entries, zip64_end=False):
    """A stored zip written by hand; entries: (name, data, zip64_extra). Optionally ZIP64 end records."""
    local, central = b"", b""
    for name, data, zip64_extra in entries:
        name_bytes = name.encode()
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, 0, len(data), len(data), len(name_bytes), 0)
        local += name_bytes + data
        if zip64_extra:
            extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
            sizes = (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
        else:
            extra, sizes = b"", (len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, 0, sizes[0], sizes[1],
                               len(name_bytes), len(extra), 0, 0, 0, 0, sizes[2])
        central += name_bytes + extra
    directory_offset = len(local)
    tail = b""
    count = len(entries)
    if zip64_end:
        zip64_offset = directory_offset + len(central)
        tail += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(central), directory_offset)
        tail += struct.pack("<IIQI", 0x07064B50, 0, zip64_offset, 1)
        tail += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        tail += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), directory_offset, 0)
    return local + central + tail


GO_MOD = b"module example.com/m\n\ngo 1.21\n"
seeds = {
    "stored": module_zip([(PREFIX + "go.mod", GO_MOD), (PREFIX + "m.go", b"package m\n")]),
    "deflate": module_zip([(PREFIX + "go.mod", GO_MOD), (PREFIX + "LICENSE", b"MIT " * 40),
                           (PREFIX + "sub/dir/x.go", b"package dir\n" * 10)], zipfile.ZIP_DEFLATED),
    "comment": module_zip([(PREFIX + "go.mod", GO_MOD)], comment=b"PK\x05\x06 not an end record"),
    "v2": module_zip([("example.com/m/v2@v2.1.0-pre+incompatible/go.mod", b"module example.com/m/v2\n")]),
    "upper-gomod": module_zip([(PREFIX + "GO.MOD", GO_MOD), (PREFIX + "sub/go.mod", GO_MOD), (PREFIX + "a/", b"")]),
    "bad-paths": module_zip([(PREFIX + "../x.go", b""), ("other.com/n@v1.0.0/a.go", b""), (PREFIX + "A.go", b""),
                             (PREFIX + "a.go", b""), (PREFIX + "con.go", b""), (PREFIX + "caf\u00e9.go", b"")]),
    "zip64-end": raw_zip([(PREFIX + "go.mod", GO_MOD, False), (PREFIX + "a.go", b"package a\n", False)], zip64_end=True),
    "zip64-extra": raw_zip([(PREFIX + "go.mod", GO_MOD, True)], zip64_end=True),
    "empty": raw_zip([]),
}

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name + ".zip"), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {OUT}")

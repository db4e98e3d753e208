#!/usr/bin/env python3
"""Writes a static GOPROXY tree whose files lie in the ways a hostile upstream can (for fake_upstream.py).

Usage: make_lying_upstream.py DIR

Modules under example.com/liar/, each at v1.0.0 (.info, .mod, .zip):
    good        everything valid (deflated zip): stored and served
    nulltime    .info with "Time": null, which the go command reads as "no time": stored and served
    badtime     .info with "Time": "yesterday": refused (the go command fails to parse it)
    wrongmod    .mod declares example.com/liar/other: refused ("module declares its path as")
    badcrc      one byte of a stored entry's data flipped after the CRC-32 was computed: refused
    baddeflate  a deflated entry's data corrupted: refused
    bomb        an entry whose directory and local header say 1000 bytes but that inflates to 600 MiB
                (the compressed stream is about 600 KiB): refused without inflating more than 1001 bytes
"""

import os
import struct
import sys
import zlib

VERSION = "v1.0.0"


def entry_bytes(name, data, method, declared_size=None, crc=None, corrupt=None):
    """(CRC-32, stored bytes, declared uncompressed size) of one entry; `corrupt` flips a stored byte after the CRC."""
    raw_crc = zlib.crc32(data) if crc is None else crc
    if method == 8:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        stored = c.compress(data) + c.flush()
    else:
        stored = data
    if corrupt is not None:
        stored = bytearray(stored)
        stored[corrupt] ^= 0xFF
        stored = bytes(stored)
    size = len(data) if declared_size is None else declared_size
    return raw_crc, stored, size


def write_zip(path, files):
    """files: list of (name, stored_bytes, method, crc, uncompressed_size)."""
    out = bytearray()
    central = bytearray()
    for name, stored, method, crc, size in files:
        name_b = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x800, method, 0, 0x21, crc, len(stored), size, len(name_b), 0)
        out += name_b + stored
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0x800, method, 0, 0x21, crc, len(stored), size,
                               len(name_b), 0, 0, 0, 0, 0, offset)
        central += name_b
    directory = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(files), len(files), len(central), directory, 0)
    with open(path, "wb") as f:
        f.write(out)


def zeros_stream(mib):
    """Raw deflate of `mib` MiB of zeros: one full-flushed 1 MiB block repeated (each block stands alone)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * mib + b"\x03\x00"  # a final empty fixed-Huffman block


def module(tree, name, info=None, mod=None, files=None):
    path = "example.com/liar/" + name
    prefix = f"{path}@{VERSION}/"
    directory = os.path.join(tree, path, "@v")
    os.makedirs(directory, exist_ok=True)
    if info is None:
        info = '{"Version":"%s","Time":"2024-01-02T03:04:05Z"}' % VERSION
    if mod is None:
        mod = f"module {path}\n\ngo 1.21\n"
    with open(os.path.join(directory, VERSION + ".info"), "w") as f:
        f.write(info)
    with open(os.path.join(directory, VERSION + ".mod"), "w") as f:
        f.write(mod)
    with open(os.path.join(directory, "list"), "w") as f:
        f.write(VERSION + "\n")
    entries = []
    for file_name, data, method, options in files or [("x.go", b"package x\n", 8, {})]:
        crc, stored, size = entry_bytes(prefix + file_name, data, method, **options)
        entries.append((prefix + file_name, stored, method, crc, size))
    go_mod = mod.encode()
    crc, stored, size = entry_bytes(prefix + "go.mod", go_mod, 8)
    entries.insert(0, (prefix + "go.mod", stored, 8, crc, size))
    write_zip(os.path.join(directory, VERSION + ".zip"), entries)


def main():
    tree = sys.argv[1]
    module(tree, "good")
    module(tree, "nulltime", info='{"Version":"%s","Time":null}' % VERSION)
    module(tree, "badtime", info='{"Version":"%s","Time":"yesterday"}' % VERSION)
    module(tree, "wrongmod", mod="module example.com/liar/other\n")
    module(tree, "badcrc", files=[("x.go", b"package x\n\nconst A = 1\n", 0, {"corrupt": 3})])
    module(tree, "baddeflate", files=[("x.go", b"package x\n" * 200, 8, {"corrupt": 5})])
    # The bomb is written by hand: its compressed data is made without inflating anything in memory.
    path = "example.com/liar/bomb"
    module(tree, "bomb")
    prefix = f"{path}@{VERSION}/"
    go_mod = f"module {path}\n\ngo 1.21\n".encode()
    write_zip(os.path.join(tree, path, "@v", VERSION + ".zip"), [
        (prefix + "go.mod", go_mod, 0, zlib.crc32(go_mod), len(go_mod)),
        (prefix + "zeros.bin", zeros_stream(600), 8, 0x12345678, 1000),
    ])


if __name__ == "__main__":
    main()

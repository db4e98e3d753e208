#!/usr/bin/env python3
"""Writes the tar_reader seeds into fuzz/corpus/tar_reader/: small tar streams in the shapes `git archive`
writes (pax global header with the commit id, ustar prefix, pax path records for long names), each after
the target's control byte (chunk size and which members are wanted)."""
import io, os, tarfile

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "tar_reader")
os.makedirs(here, exist_ok=True)

def member(tar, name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.mtime, info.mode = kind, len(data), link, 1700000000, 0o644
    tar.addfile(info, io.BytesIO(data) if data else None)

def seed(name, control, build, fmt=tarfile.PAX_FORMAT, pax=None):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt, pax_headers=pax or {}) as tar:
        build(tar)
    data = buffer.getvalue().rstrip(b"\0")
    # The end marker (two zero blocks), not tarfile's padding to a 10 KiB record.
    data += b"\0" * (-len(data) % 512 + 1024)
    with open(os.path.join(here, name), "wb") as out:
        out.write(bytes([control]) + data)

# Like `git archive`: a global header carrying the commit, a file, a symlink.
seed("git-archive", 0x00, lambda t: (member(t, "m/go.mod", b"module example.com/m\n"),
                                    member(t, "m/link", kind=tarfile.SYMTYPE, link="go.mod")),
     pax={"comment": "3f1b0c1d2e3f405162738495a6b7c8d9e0f1a2b3"})
# A path over 100 bytes: ustar prefix field (git uses it when the split fits).
seed("ustar-prefix", 0x07, lambda t: member(t, "d" * 60 + "/" + "e" * 60 + "/f.go", b"package e\n"), fmt=tarfile.USTAR_FORMAT)
# A path that needs a pax "path" record; wanted every second member, fed 1 byte at a time.
seed("pax-path", 0x80, lambda t: (member(t, "x/" + "p" * 200 + ".go", b"package p\n" * 60), member(t, "x/b.go", b"b")))
# An empty file and a file exactly one block long.
seed("sizes", 0x3F, lambda t: (member(t, "empty"), member(t, "block", b"z" * 512)))

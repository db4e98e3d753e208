#!/usr/bin/env python3
"""Generate a static GOPROXY tree for benchmarks and end-to-end tests.

The tree is laid out exactly as the GOPROXY protocol expects, so it can be
served by any static file server (nginx) or used directly with
``GOPROXY=file:///path/to/tree``:

    OUT_DIR/<escaped module>/@v/list
    OUT_DIR/<escaped module>/@v/<version>.info
    OUT_DIR/<escaped module>/@v/<version>.mod
    OUT_DIR/<escaped module>/@v/<version>.zip

Every zip is a valid module zip: its entries are ``<module>@<version>/go.mod``
(byte-identical to the ``.mod`` file), one ``.go`` file and, to reach the
requested size, filler files of incompressible pseudo-random bytes that are
stored uncompressed.  The generator sizes the filler so that each zip is
exactly the requested number of bytes.  No directory entries are written
(Go's ``zip.Create`` never writes them and they would change the h1: hash).

Besides the modules, the root of the tree holds:

* ``paths-<kind>.txt``: one URL path per line (``/<escaped module>/@v/...``)
  for the kinds ``info``, ``mod``, ``list`` and ``zip<size>`` (for example
  ``zip10k``, ``zip1m``, ``zip20m``).  The benchmark's wrk script rotates
  over these.
* ``SHA256SUMS``: ``sha256sum -c`` format, one line per served file, paths
  relative to the tree root.  Used to check what a proxy serves.

Output is deterministic for a given seed and set of options.

Used as a library::

    import make_tree
    tree = make_tree.make_tree("/tmp/tree", modules=10, sizes=["10k", "1m"])
    tree.paths["zip10k"]     # list of URL paths
    tree.sha256["example.com/bench/m0001/@v/v1.0.0.zip"]

Run ``make_tree.py --help`` for the command line.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import re
import sys
import zipfile
from dataclasses import dataclass, field

# The `.info` time stamp is fixed so the tree is byte-for-byte reproducible.
INFO_TIME = "2024-01-02T03:04:05Z"
# Zip entry time stamps: Go ignores them; a fixed value keeps the zips reproducible.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
# Size of each filler file inside a zip. Many small files would add per-entry
# overhead; one huge file would be unlike real modules. 1 MiB is a middle ground.
FILLER_CHUNK = 1 << 20
# Sizes at or above this are "large": only --max-large modules get them.
DEFAULT_LARGE_THRESHOLD = 10 << 20
DEFAULT_MAX_LARGE = 20
DEFAULT_SIZES = ("10k", "1m", "20m")
UPPER_CASE_MODULE = "example.com/Bench/UpperCase"

# Fixed per-entry overheads of a stored zip entry without extra fields
# (APPNOTE 4.3.7 local file header, 4.3.12 central directory header,
# 4.3.16 end of central directory record).
_LOCAL_HEADER = 30
_CENTRAL_HEADER = 46
_END_OF_CENTRAL_DIR = 22
# Above this, zipfile would switch to zip64 records and the size arithmetic
# below would no longer hold.
_ZIP64_LIMIT = (1 << 31) - 1

_SIZE_RE = re.compile(r"^([0-9]+)([kKmMgG]?)$")


def parse_size(text: str) -> int:
    """Parse a size such as ``10k``, ``1m``, ``20m`` or ``512`` into bytes.

    Suffixes are binary: k = KiB, m = MiB, g = GiB.  Raises ValueError for
    anything else, including zero.
    """
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise ValueError(f"invalid size {text!r}: expected a number with optional k, m or g suffix")
    number = int(match.group(1))
    unit = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    if number <= 0:
        raise ValueError(f"invalid size {text!r}: must be positive")
    return number * unit


def size_label(text: str) -> str:
    """Return the canonical label of a size spec (``10K`` -> ``10k``), used in kind names."""
    parse_size(text)
    return text.strip().lower()


def escape_path(path: str) -> str:
    """Case-encode a module path or version as the GOPROXY protocol requires.

    Every upper-case ASCII letter becomes ``!`` followed by its lower-case
    form (``example.com/Bench/UpperCase`` -> ``example.com/!bench/!upper!case``).
    Raises ValueError for input that already contains ``!`` or is not ASCII,
    which Go's module.EscapePath also rejects.
    """
    if "!" in path:
        raise ValueError(f"cannot escape {path!r}: contains '!'")
    if not path.isascii():
        raise ValueError(f"cannot escape {path!r}: not ASCII")
    return "".join("!" + c.lower() if "A" <= c <= "Z" else c for c in path)


def module_paths(count: int) -> list[str]:
    """Return the benchmark's module paths for ``count`` modules.

    The first ``count - 1`` are ``example.com/bench/m0001`` and onwards; the
    last is always ``example.com/Bench/UpperCase`` so that every tree
    exercises case-encoding.
    """
    if count < 1:
        raise ValueError("need at least one module")
    return [f"example.com/bench/m{i:04d}" for i in range(1, count)] + [UPPER_CASE_MODULE]


def package_name(module: str) -> str:
    """Return a valid Go package name for ``module`` (last element, lower-case, letters and digits)."""
    last = module.rsplit("/", 1)[-1].lower()
    name = "".join(c for c in last if c.isascii() and c.isalnum())
    if not name or name[0].isdigit():
        name = "p" + name
    return name


def go_mod(module: str) -> bytes:
    """Return the go.mod content used for every version of ``module``."""
    return f"module {module}\n\ngo 1.21\n".encode()


def info_json(version: str) -> bytes:
    """Return the ``.info`` content for ``version``."""
    return f'{{"Version":"{version}","Time":"{INFO_TIME}"}}'.encode()


def _zip_size(names_and_sizes: list[tuple[str, int]]) -> int:
    """Exact size of a stored zip (no extra fields, no zip64) with these entries."""
    total = _END_OF_CENTRAL_DIR
    for name, size in names_and_sizes:
        n = len(name.encode())
        total += _LOCAL_HEADER + n + size + _CENTRAL_HEADER + n
    return total


def _filler_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}testdata/filler-{i:04d}.bin" for i in range(count)]


def _plan_filler(prefix: str, fixed: list[tuple[str, int]], target: int) -> list[tuple[str, int]]:
    """Choose filler entries (name, size) so the stored zip is exactly ``target`` bytes.

    Returns an empty list when the fixed entries alone already reach the target.
    """
    base = _zip_size(fixed)
    if base >= target:
        return []
    count = 1
    while True:
        names = _filler_names(prefix, count)
        overhead = _zip_size(fixed + [(name, 0) for name in names]) - base
        data = target - base - overhead
        if data < count:
            # Too small to give each filler file at least one byte; shrink the count.
            if count == 1:
                return []
            count -= 1
            continue
        needed = -(-data // FILLER_CHUNK)
        if needed <= count:
            sizes = [FILLER_CHUNK] * (count - 1)
            sizes.append(data - FILLER_CHUNK * (count - 1))
            if sizes[-1] <= 0:
                count -= 1
                continue
            return list(zip(names, sizes))
        count = needed


def write_module_zip(dest: str, module: str, version: str, target_size: int, rng: random.Random) -> int:
    """Write a valid module zip for ``module@version`` to ``dest``; return its size in bytes.

    The zip holds ``go.mod`` (identical to :func:`go_mod`), ``<pkg>.go`` and
    filler files of bytes from ``rng`` so that the file is exactly
    ``target_size`` bytes.  If the target is smaller than the two required
    files, the zip is as small as possible and larger than the target.
    Raises ValueError for a target that would need zip64.
    """
    if target_size > _ZIP64_LIMIT // 2:
        raise ValueError(f"zip size {target_size} too large for this generator")
    prefix = f"{module}@{version}/"
    pkg = package_name(module)
    source = (
        f"// Package {pkg} is generated by bench/make_tree.py for benchmarks.\n"
        f"package {pkg}\n\n"
        f"// Version is the module version this file was generated for.\n"
        f'const Version = "{version}"\n'
    ).encode()
    files: list[tuple[str, bytes]] = [(prefix + "go.mod", go_mod(module)), (prefix + f"{pkg}.go", source)]
    filler = _plan_filler(prefix, [(name, len(data)) for name, data in files], target_size)
    with open(dest, "wb") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED, allowZip64=False) as zf:
        for name, data in files:
            zf.writestr(_zip_info(name), data)
        for name, size in filler:
            zf.writestr(_zip_info(name), rng.randbytes(size))
    written = os.path.getsize(dest)
    if filler and written != target_size:
        raise RuntimeError(f"{dest}: wrote {written} bytes, planned {target_size}; zipfile layout changed?")
    return written


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3  # Unix, so external_attr carries the mode on every platform.
    info.external_attr = 0o644 << 16
    return info


def h1_hash(files: list[tuple[str, bytes]]) -> str:
    """Go's dirhash.Hash1 over (name, content) pairs: the ``h1:`` form used in go.sum."""
    summary = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files, key=lambda item: item[0])
    )
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def zip_h1(path: str) -> str:
    """The go.sum ``h1:`` hash of the module zip at ``path`` (what ``go mod download -json`` calls Sum).

    Like Go's dirhash.HashZip it hashes every entry under its full name, and
    it refuses directory entries, which this generator never writes.
    """
    with zipfile.ZipFile(path) as zf:
        files = []
        for info in zf.infolist():
            if info.is_dir():
                raise ValueError(f"{path}: directory entry {info.filename!r}")
            files.append((info.filename, zf.read(info)))
    return h1_hash(files)


def go_mod_h1(data: bytes) -> str:
    """The go.sum ``h1:`` hash of a go.mod file (``/go.mod`` line; ``GoModSum`` in ``go mod download -json``)."""
    return h1_hash([("go.mod", data)])


@dataclass
class Version:
    """One generated module version."""

    version: str
    label: str
    size: int


@dataclass
class Tree:
    """What :func:`make_tree` generated."""

    root: str
    #: Module path -> its versions, in version order.
    modules: dict[str, list[Version]] = field(default_factory=dict)
    #: Kind (``info``, ``mod``, ``list``, ``zip10k``, ...) -> URL paths, each starting with ``/``.
    paths: dict[str, list[str]] = field(default_factory=dict)
    #: Path relative to ``root`` -> hex sha256 of the file, for every served file.
    sha256: dict[str, str] = field(default_factory=dict)

    def zip_kinds(self) -> list[str]:
        """The ``zip<label>`` kinds, smallest size first."""
        return [k for k in self.paths if k.startswith("zip")]


def version_for(index: int) -> str:
    """The version used for the ``index``-th size: v1.0.0, v1.1.0, v1.2.0, ..."""
    return f"v1.{index}.0"


def make_tree(
    out_dir: str,
    modules: int = 200,
    sizes: list[str] | tuple[str, ...] = DEFAULT_SIZES,
    seed: int = 1,
    max_large: int = DEFAULT_MAX_LARGE,
    large_threshold: int = DEFAULT_LARGE_THRESHOLD,
) -> Tree:
    """Generate a GOPROXY tree in ``out_dir`` (created if missing) and describe it.

    ``sizes`` gives one zip size per version (``v1.0.0`` gets the first).
    Sizes of at least ``large_threshold`` bytes are generated only for the
    first ``max_large`` modules.  Raises ValueError for bad arguments and if
    ``out_dir`` already contains files.
    """
    if modules < 1:
        raise ValueError("--modules must be at least 1")
    if max_large < 0:
        raise ValueError("--max-large must not be negative")
    if not sizes:
        raise ValueError("need at least one size")
    labels = [size_label(s) for s in sizes]
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate sizes in {list(sizes)}")
    byte_sizes = [parse_size(s) for s in sizes]
    if sorted(byte_sizes) != byte_sizes:
        raise ValueError("sizes must be given smallest first")
    os.makedirs(out_dir, exist_ok=True)
    if os.listdir(out_dir):
        raise ValueError(f"{out_dir} is not empty")

    tree = Tree(root=os.path.abspath(out_dir))
    kinds = ["info", "mod", "list"] + [f"zip{label}" for label in labels]
    tree.paths = {kind: [] for kind in kinds}
    for index, module in enumerate(module_paths(modules)):
        versions = [
            Version(version_for(i), label, size)
            for i, (label, size) in enumerate(zip(labels, byte_sizes))
            if size < large_threshold or index < max_large
        ]
        tree.modules[module] = versions
        escaped = escape_path(module)
        vdir = os.path.join(out_dir, escaped, "@v")
        os.makedirs(vdir)

        def put(name: str, data: bytes, kind: str | None) -> None:
            with open(os.path.join(vdir, name), "wb") as f:
                f.write(data)
            _record(tree, escaped, name, data, kind)

        put("list", "".join(v.version + "\n" for v in versions).encode(), "list")
        for v in versions:
            put(f"{v.version}.info", info_json(v.version), "info")
            put(f"{v.version}.mod", go_mod(module), "mod")
            # Seeding with a string is stable across runs (it goes through sha512).
            rng = random.Random(f"{seed}:{module}:{v.version}")
            zpath = os.path.join(vdir, f"{v.version}.zip")
            write_module_zip(zpath, module, v.version, v.size, rng)
            tree.sha256[f"{escaped}/@v/{v.version}.zip"] = _file_sha256(zpath)
            tree.paths[f"zip{v.label}"].append(f"/{escaped}/@v/{v.version}.zip")

    for kind, paths in tree.paths.items():
        with open(os.path.join(out_dir, f"paths-{kind}.txt"), "w") as f:
            f.writelines(p + "\n" for p in paths)
    with open(os.path.join(out_dir, "SHA256SUMS"), "w") as f:
        f.writelines(f"{digest}  {rel}\n" for rel, digest in tree.sha256.items())
    return tree


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _record(tree: Tree, escaped: str, name: str, data: bytes, kind: str | None) -> None:
    rel = f"{escaped}/@v/{name}"
    tree.sha256[rel] = hashlib.sha256(data).hexdigest()
    if kind is not None:
        tree.paths[kind].append("/" + rel)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description="Generate a static GOPROXY tree for benchmarks.")
    parser.add_argument("out_dir", help="directory to create (must be empty or absent)")
    parser.add_argument("--modules", type=int, default=200, help="number of modules (default 200)")
    parser.add_argument(
        "--sizes",
        default=",".join(DEFAULT_SIZES),
        help="comma-separated zip sizes, smallest first, one version each (default 10k,1m,20m)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for the zip contents (default 1)")
    parser.add_argument(
        "--max-large",
        type=int,
        default=DEFAULT_MAX_LARGE,
        help=f"how many modules get sizes >= the large threshold (default {DEFAULT_MAX_LARGE})",
    )
    parser.add_argument(
        "--large-threshold",
        default="10m",
        help="sizes at or above this count as large (default 10m)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print a summary")
    args = parser.parse_args(argv)
    try:
        sizes = [s for s in args.sizes.split(",") if s.strip()]
        tree = make_tree(
            args.out_dir,
            modules=args.modules,
            sizes=sizes,
            seed=args.seed,
            max_large=args.max_large,
            large_threshold=parse_size(args.large_threshold),
        )
    except ValueError as error:
        print(f"make_tree.py: {error}", file=sys.stderr)
        return 2
    if not args.quiet:
        total = sum(os.path.getsize(os.path.join(tree.root, rel)) for rel in tree.sha256)
        counts = ", ".join(f"{kind}={len(paths)}" for kind, paths in tree.paths.items())
        print(f"{tree.root}: {len(tree.modules)} modules, {total / (1 << 20):.1f} MiB ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Writes a static GOPROXY tree of small, valid modules for the end-to-end tests.

Usage: make_fixture_proxy.py OUT_DIR [--second | --private | --queries]

With --second it writes only example.com/second, a module the main tree lacks (for fall-through tests);
with --private only corp.example/secret (v1.0.0, v1.1.0), the tree of a private source; with --queries the
modules of the query and @latest tests: example.com/jwt, whose v3.2.0 tag has no go.mod (stored as
v3.2.0+incompatible; its plain v3.2.0.info answers the +incompatible version, as proxy.golang.org does), and
example.com/untagged, with only pseudo-versions listed and no @latest (as in the go command's own cache).

The tree is laid out exactly as the GOPROXY protocol names files (escaped module paths, @v/list,
<version>.info/.mod/.zip), so any static file server can act as an upstream proxy. The modules cover
what the go command treats specially: several tags and a pre-release, upper-case letters in the path,
a /v2 module, a +incompatible version with a synthesized go.mod, and a module with a dependency.
"""
import json
import os
import sys
import zipfile


def escape(s):
    """Go's module.EscapePath/EscapeVersion: upper-case letters become '!' + lower case."""
    return "".join("!" + c.lower() if "A" <= c <= "Z" else c for c in s)


def add_version(root, module, version, files, gomod=None, time="2024-01-02T03:04:05Z"):
    """Writes .info, .mod and .zip for module@version; files maps relative names to text."""
    vdir = os.path.join(root, escape(module), "@v")
    os.makedirs(vdir, exist_ok=True)
    if gomod is None:
        gomod = "module %s\n\ngo 1.19\n" % module
        zip_files = dict(files, **{"go.mod": gomod})
    else:
        zip_files = dict(files)
        if gomod.startswith("synthesized:"):
            gomod = "module %s\n" % module  # what the go command serves for a module without go.mod
        else:
            zip_files["go.mod"] = gomod
    base = os.path.join(vdir, escape(version))
    with open(base + ".info", "w") as f:
        json.dump({"Version": version, "Time": time}, f)
    with open(base + ".mod", "w") as f:
        f.write(gomod)
    with zipfile.ZipFile(base + ".zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(zip_files):
            z.writestr("%s@%s/%s" % (module, version, name), zip_files[name])
    with open(os.path.join(vdir, "list"), "a") as f:
        f.write(version + "\n")


def add_query(root, module, query, version, time="2024-01-02T03:04:05Z"):
    """Writes the .info a proxy answers for a query that names another version (no .mod, .zip or list line)."""
    vdir = os.path.join(root, escape(module), "@v")
    os.makedirs(vdir, exist_ok=True)
    with open(os.path.join(vdir, escape(query) + ".info"), "w") as f:
        json.dump({"Version": version, "Time": time}, f)


def main(out, second=False, private=False, queries=False):
    if os.path.exists(out) and os.listdir(out):
        sys.exit("refusing to write into non-empty " + out)
    os.makedirs(out, exist_ok=True)
    if second:
        add_version(out, "example.com/second", "v1.0.0", {"second.go": "package second\n"})
        return
    if queries:
        add_version(out, "example.com/jwt", "v3.2.0+incompatible", {"jwt.go": "package jwt\n\nconst V = 3\n"},
                    gomod="synthesized:")
        add_query(out, "example.com/jwt", "v3.2.0", "v3.2.0+incompatible")
        # Newest by time is the v0.0.0 one, although the other is higher in semver order: the go command
        # picks by time.
        add_version(out, "example.com/untagged", "v1.2.4-0.20230101000000-123456123456",
                    {"u.go": "package untagged\n\nconst Old = true\n"}, time="2023-01-01T00:00:00Z")
        add_version(out, "example.com/untagged", "v0.0.0-20240102030405-abcdefabcdef",
                    {"u.go": "package untagged\n"}, time="2024-01-02T03:04:05Z")
        return
    if private:
        for version in ["v1.0.0", "v1.1.0"]:
            add_version(out, "corp.example/secret", version, {"secret.go": "package secret\n\nconst Token = \"%s\"\n" % version})
        return
    for version in ["v1.0.0", "v1.1.0", "v1.2.0-pre.1"]:
        add_version(out, "example.com/hello", version, {
            "hello.go": 'package hello\n\n// Version is the tag.\nconst Version = "%s"\n' % version,
            "LICENSE": "Fixture license\n",
        })
    add_version(out, "example.com/Upper/Case", "v0.1.0", {"case.go": "package casepkg\n\nconst X = 1\n"})
    add_version(out, "example.com/multi/v2", "v2.0.0", {"multi.go": "package multi\n\nconst Major = 2\n"})
    add_version(out, "example.com/legacy", "v2.0.0+incompatible",
                {"legacy.go": "package legacy\n\nconst Old = true\n"}, gomod="synthesized:")
    # Known answer: x/mod's dirhash gives h1:fCHMqo5ggHEQvwcrsN81zr5orRk5lClR36KRHpfUjKg= for this zip.
    add_version(out, "example.com/m", "v1.0.0", {"m.go": "package m\n"}, gomod="module example.com/m\n")
    add_version(out, "example.com/dep", "v1.0.0", {"dep.go": "package dep\n\nfunc Answer() int { return 42 }\n"})
    add_version(out, "example.com/app", "v1.0.0", {
        "app.go": 'package app\n\nimport "example.com/dep"\n\nfunc Run() int { return dep.Answer() }\n',
    }, gomod="module example.com/app\n\ngo 1.19\n\nrequire example.com/dep v1.0.0\n")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] not in ("--second", "--private", "--queries")):
        sys.exit(__doc__)
    flag = sys.argv[2] if len(sys.argv) == 3 else ""
    main(sys.argv[1], second=flag == "--second", private=flag == "--private", queries=flag == "--queries")

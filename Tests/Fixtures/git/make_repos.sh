#!/usr/bin/env bash
# Creates the GitFetcher fixture repositories as bare repos under OUT/github.com/<owner>/<name>, so that
# git's url."file://OUT/github.com/".insteadOf "https://github.com/" lets the go command's direct mode
# clone them, and GitFetcher can be pointed at the same file:// URLs. Commit times are fixed, so the
# pseudo-versions are the same on every run.
# Usage: make_repos.sh OUT [LARGE_MB]
set -euo pipefail
out=$(realpath -m "$1")
large_mb=${2:-8}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export GIT_CONFIG_NOSYSTEM=1 HOME="$work/home" GIT_AUTHOR_NAME=Fixture GIT_AUTHOR_EMAIL=fixture@example.com \
    GIT_COMMITTER_NAME=Fixture GIT_COMMITTER_EMAIL=fixture@example.com
mkdir -p "$HOME"
git config --global init.defaultBranch main
git config --global core.autocrlf false
clock=1600000000

# commit MESSAGE: commits everything in the work tree at the next fixed time.
commit() {
    clock=$((clock + 3600))
    git add -A
    GIT_AUTHOR_DATE="@$clock +0000" GIT_COMMITTER_DATE="@$clock +0000" git commit -q --allow-empty -m "$1"
}
# annotated TAG: some tags annotated, some light, as in real repositories.
atag() { GIT_COMMITTER_DATE="@$clock +0000" git tag -a -m "$1" "$1"; }

# publish NAME (OWNER defaults to fixture): the work repo becomes a bare repo in place.
publish() {
    local owner=${2:-fixture}
    mkdir -p "$out/github.com/$owner"
    rm -rf "$out/github.com/$owner/$1"
    git clone -q --bare . "$out/github.com/$owner/$1"
}

start() { rm -rf "$work/repo"; mkdir -p "$work/repo"; cd "$work/repo"; git init -q; }

# hello: several tags, pre-release, retractions, branches, vendor dirs, nested modules, symlinks,
# odd names, a large file, a subdirectory go.mod in upper case, .gitattributes export-ignore.
start
printf 'module github.com/fixture/hello\n\ngo 1.16\n' > go.mod
printf 'package hello\n\nfunc Hello() string { return "hello" }\n' > hello.go
printf 'MIT License\n' > LICENSE
commit "v1.0.0"
git tag v1.0.0
printf 'package hello\n\nfunc Hi() string { return "hi" }\n' > hi.go
mkdir -p vendor/example.com/dep pkg/vendor sub Nested
printf '# example.com/dep v1.0.0\nexample.com/dep\n' > vendor/modules.txt
printf 'package dep\n' > vendor/example.com/dep/dep.go
printf 'package vendor\n' > vendor/top.go
printf 'package vendor\n' > pkg/vendor/vendor.go
printf 'module github.com/fixture/hello/sub\n' > sub/go.mod
printf 'package sub\n' > sub/sub.go
printf 'module github.com/fixture/hello/Nested\n' > Nested/GO.MOD
printf 'package nested\n' > Nested/n.go
ln -s hello.go link.go
ln -s missing-target dangling
printf 'spaces\n' > 'odd name with spaces.txt'
printf 'unicode\n' > 'ünïcödé-日本.txt'
printf 'punct\n' > 'a+b=c@d,{e}[f]~!#$%&().txt'
printf 'dash\n' > -leading-dash.txt
printf 'dot\n' > .dotfile
printf 'CRLF\r\nline\r\n' > crlf.txt
printf 'ignored.txt export-ignore\n*.subst export-subst\n' > .gitattributes
printf 'not ignored by the go command\n' > ignored.txt
printf '$Format:%%H$\n' > version.subst
printf 'archival\n' > .hg_archival.txt
commit "v1.1.0"
git tag v1.1.0
printf 'package hello\n\nconst Pre = true\n' > pre.go
commit "v1.2.0-pre.1"
atag v1.2.0-pre.1
git tag v1.4
git tag v1.5.0+meta
python3 - "$large_mb" <<'PY'
import sys, random
random.seed(4)
# Half random, half text: something deflate can partly compress, deterministic.
with open("large.bin", "wb") as f:
    for i in range(int(sys.argv[1]) * 32):
        f.write(random.randbytes(32 << 10) if i % 2 else ((b"line %08d of a large fixture file\n" % i) * 1000)[:32 << 10])
PY
# Incompressible data (the zip writer switches such files to stored blocks), an empty and an executable file.
python3 -c 'import random, sys; random.seed(5); sys.stdout.buffer.write(random.randbytes(3 << 20))' > random.bin
: > empty.txt
printf '#!/bin/sh\necho hi\n' > script.sh
chmod +x script.sh
printf 'module github.com/fixture/hello\n\ngo 1.16\n\nretract (\n\t// broken\n\t[v1.1.0, v1.1.9]\n\tv1.3.0 // retracts itself\n)\n' > go.mod
commit "v1.3.0"
atag v1.3.0
git checkout -q -b feature
printf 'package hello\n\nconst Feature = 1\n' > feature.go
commit "feature work"
git checkout -q main
printf 'package hello\n\nconst Next = 1\n' > next.go
commit "after v1.3.0"
publish hello

# multi: a root module, a subdirectory module with prefixed tags, a /v2 module in a v2/ subdirectory.
start
printf 'module github.com/fixture/multi\n\ngo 1.18\n' > go.mod
printf 'package multi\n' > multi.go
printf 'Apache License\n' > LICENSE
mkdir -p sub
printf 'module github.com/fixture/multi/sub\n\ngo 1.18\n' > sub/go.mod
printf 'package sub\n' > sub/sub.go
commit "root v1.0.0, sub v1.0.0"
git tag v1.0.0
git tag sub/v1.0.0
printf 'package sub\n\nconst Two = 2\n' > sub/two.go
printf 'sub readme\n' > sub/README
commit "sub v1.1.0"
atag sub/v1.1.0
mkdir -p v2
printf 'module github.com/fixture/multi/v2\n\ngo 1.18\n' > v2/go.mod
printf 'package multi\n\nconst V = 2\n' > v2/multi.go
commit "v2 in a subdirectory"
git tag v2.0.0
printf 'package sub\n\nconst Three = 3\n' > sub/three.go
commit "sub work after sub/v1.1.0"
publish multi

# major: the major-branch convention (go.mod at the root says /v2 from v2.0.0 on).
start
printf 'module github.com/fixture/major\n\ngo 1.17\n' > go.mod
printf 'package major\n' > major.go
commit "v1.0.0"
git tag v1.0.0
printf 'module github.com/fixture/major/v2\n\ngo 1.17\n' > go.mod
commit "v2.0.0"
git tag v2.0.0
printf 'package major\n\nconst X = 1\n' > x.go
commit "v2.1.0"
atag v2.1.0
printf 'package major\n\nconst Y = 1\n' > y.go
commit "v2 work"
publish major

# legacy: no go.mod anywhere: v2+ tags become +incompatible, go.mod is synthesised.
start
printf 'package legacy\n' > legacy.go
commit "v1.0.0"
git tag v1.0.0
printf 'package legacy\n\nconst Two = 2\n' > two.go
commit "v2.0.0"
git tag v2.0.0
printf 'package legacy\n\nconst Three = 3\n' > three.go
commit "v2.1.0"
git tag v2.1.0
printf 'package legacy\n\nconst Four = 4\n' > four.go
commit "after v2.1.0"
publish legacy

# UpperCase: upper-case letters in the module path and in file names.
start
printf 'module github.com/Fixture/UpperCase\n\ngo 1.19\n' > go.mod
printf 'package uppercase\n' > Upper.go
printf 'readme\n' > README.MD
commit "v0.1.0"
git tag v0.1.0
publish UpperCase Fixture

# notags: no tags at all: latest is a pseudo-version of the default branch.
start
printf 'module github.com/fixture/notags\n\ngo 1.19\n' > go.mod
printf 'package notags\n' > notags.go
commit "first"
printf 'package notags\n\nconst Second = 2\n' > second.go
commit "second"
publish notags

# collide: a case-fold collision (a valid git tree, an invalid module zip: both sides must refuse it).
start
printf 'module github.com/fixture/collide\n' > go.mod
printf 'a\n' > readme.txt
printf 'A\n' > README.txt
commit "v1.0.0"
git tag v1.0.0
publish collide

echo "$out"

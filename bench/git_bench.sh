#!/usr/bin/env bash
# GitFetcher benchmark: the go command's cold `go mod download` through athens (GitFetcher only, FileStorage)
# against the go command in direct mode on the same local git repositories, in one run; then a warm
# re-fetch of another version from the existing mirror; then the peak RSS of athens while it builds the
# zip of a large module (hundreds of MiB of files).
#
# Usage: bench/git_bench.sh [--no-build] [--reps N] [--large-mb N]
# Environment: ATHENS_BIN (default <repo>/.build/release/athens; setting it skips the build),
#              PLUGIN_DIR (default the directory of ATHENS_BIN), TMPDIR.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
build=1 reps=3 large_mb=300
while (($#)); do
    case $1 in
        --no-build) build=0 ;;
        --reps) reps=$2; shift ;;
        --large-mb) large_mb=$2; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ -z ${ATHENS_BIN:-} ]]; then
    ATHENS_BIN=$REPO/.build/release/athens
    ((build)) && (cd "$REPO" && swift build -c release -j 1 --product athens && swift build -c release -j 1 --product GitFetcher \
        && swift build -c release -j 1 --product FileStorage)
fi
PLUGIN_DIR=${PLUGIN_DIR:-$(dirname "$ATHENS_BIN")}

work=$(mktemp -d "${TMPDIR:-/tmp}/git-bench.XXXXXX")
athens_pid=
cleanup() {
    [[ -n $athens_pid ]] && kill "$athens_pid" 2>/dev/null && wait "$athens_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "# fixture repositories (large file 8 MiB) and a large module (${large_mb} MiB of files)"
"$REPO/Tests/Fixtures/git/make_repos.sh" "$work/repos" 8 >/dev/null
# big: many incompressible files, hundreds of MiB in total, committed once.
(
    export GIT_CONFIG_NOSYSTEM=1 HOME=$work/githome GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@example.com GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.com
    mkdir -p "$HOME" "$work/big" && cd "$work/big" && git init -q -b main
    printf 'module github.com/fixture/big\n\ngo 1.19\n' > go.mod
    python3 - "$large_mb" <<'PY'
import os, random, sys
random.seed(7)
total = int(sys.argv[1]) << 20
n = 0
while total > 0:
    d = "d%02d" % (n // 100)
    os.makedirs(d, exist_ok=True)
    size = min(total, 4 << 20)
    with open(f"{d}/f{n:04d}.bin", "wb") as f:
        f.write(random.randbytes(size))
    total -= size
    n += 1
PY
    git add -A && GIT_COMMITTER_DATE="@1600000000 +0000" GIT_AUTHOR_DATE="@1600000000 +0000" git commit -q -m big && git tag v1.0.0
    git clone -q --bare . "$work/repos/github.com/fixture/big"
)
mkdir -p "$work/home"
printf '[url "file://%s/github.com/"]\n\tinsteadOf = https://github.com/\n' "$work/repos" > "$work/home/.gitconfig"

roots=(github.com/fixture/hello github.com/fixture/multi github.com/fixture/major github.com/fixture/legacy
       github.com/Fixture/UpperCase github.com/fixture/notags github.com/fixture/big)
cold=(github.com/fixture/hello@v1.3.0 github.com/fixture/hello@v1.1.0 github.com/fixture/multi/sub@v1.1.0
      github.com/fixture/multi/v2@v2.0.0 github.com/fixture/major/v2@v2.1.0 github.com/fixture/legacy@v2.1.0+incompatible
      github.com/Fixture/UpperCase@v0.1.0 github.com/fixture/notags@main)
warm=(github.com/fixture/hello@v1.2.0-pre.1 github.com/fixture/major@v1.0.0)

goenv() { # CACHE PROXY COMMAND...: runs COMMAND in a clean environment for the go command (and athens)
    env -i PATH="$PATH" HOME="$work/home" GOPATH="$1/gopath" GOCACHE="$1/gocache" GOMODCACHE="$1/modcache" GOPROXY="$2" \
        GOSUMDB=off GOFLAGS=-modcacherw GO111MODULE=on GONOSUMDB= GOPRIVATE= GONOPROXY= GIT_CONFIG_NOSYSTEM=1 "${@:3}"
}
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

start_athens() {
    local rules="" sep=""
    for root in "${roots[@]}"; do
        rules+="$sep{\"root\": \"$root\", \"url\": \"file://$work/repos/$root\"}"; sep=", "
    done
    rm -rf "$work/mirrors" "$work/storage"
    cat > "$work/athens.json" <<JSON
{"listen": "127.0.0.1:0", "pluginDirectory": "$PLUGIN_DIR",
 "storage": {"plugin": "FileStorage", "config": {"root": "$work/storage"}},
 "fetchers": [{"name": "git", "plugin": "GitFetcher", "config": {"cacheDirectory": "$work/mirrors", "repositories": [$rules]}}]}
JSON
    # exec: the coproc's pid is athens itself (for its RSS and for kill).
    coproc ATHENS { exec env -i PATH="$PATH" HOME="$work/home" GIT_CONFIG_NOSYSTEM=1 "$ATHENS_BIN" --config "$work/athens.json" 2>"$work/athens.log"; }
    athens_pid=$ATHENS_PID
    local line
    read -r line <&"${ATHENS[0]}"
    athens_url="http://${line##* }"
}
stop_athens() { kill "$athens_pid"; wait "$athens_pid" 2>/dev/null || true; athens_pid=; }

cd "$work/home"
echo "# cold: ${#cold[@]} module versions, $reps repetitions each side (fresh module cache, mirrors, storage every time)"
direct_total=0 athens_total=0
for ((r = 1; r <= reps; r++)); do
    rm -rf "$work/c"; t0=$(now)
    goenv "$work/c" direct go mod download "${cold[@]}"
    d=$(elapsed "$t0" "$(now)")
    start_athens
    rm -rf "$work/c"; t0=$(now)
    goenv "$work/c" "$athens_url" go mod download "${cold[@]}"
    a=$(elapsed "$t0" "$(now)")
    # warm: another version of a repository whose mirror exists now (no clone).
    rm -rf "$work/c"; t0=$(now)
    goenv "$work/c" "$athens_url" go mod download "${warm[@]}"
    w=$(elapsed "$t0" "$(now)")
    stop_athens
    echo "rep $r: direct ${d}s  athens+GitFetcher ${a}s  ratio $(python3 -c "print(f'{$a/$d:.2f}')")  warm re-fetch of ${#warm[@]} other versions ${w}s"
    direct_total=$(python3 -c "print(f'{$direct_total + $d:.3f}')"); athens_total=$(python3 -c "print(f'{$athens_total + $a:.3f}')")
done
echo "cold total: direct ${direct_total}s athens ${athens_total}s ratio $(python3 -c "print(f'{$athens_total/$direct_total:.2f}')")"

echo "# large module: github.com/fixture/big@v1.0.0 (${large_mb} MiB of files)"
rm -rf "$work/c"; t0=$(now)
goenv "$work/c" direct go mod download github.com/fixture/big@v1.0.0
d=$(elapsed "$t0" "$(now)")
start_athens
base=$(awk '/VmRSS/ {print $2}' "/proc/$athens_pid/status")
rm -rf "$work/c"; t0=$(now)
goenv "$work/c" "$athens_url" go mod download github.com/fixture/big@v1.0.0
a=$(elapsed "$t0" "$(now)")
peak=$(awk '/VmHWM/ {print $2}' "/proc/$athens_pid/status")
zip=$(find "$work/storage" -name '*.zip' -size +1M -printf '%s\n' | sort -n | tail -1)
stop_athens
echo "large: direct ${d}s  athens ${a}s  ratio $(python3 -c "print(f'{$a/$d:.2f}')")  zip $((zip / 1048576)) MiB"
echo "large: athens RSS before ${base} KiB, peak (VmHWM) ${peak} KiB during the fetch"

#!/usr/bin/env bash
# The whole test suite. Installs what the tests need on a fresh Debian machine, then builds and runs
# `swift test` (unit, plugin-conformance, loader, HTTP and end-to-end tests with the real go command).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v go >/dev/null || need+=(golang-go)
command -v git >/dev/null || need+=(git)
command -v cc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
command -v readelf >/dev/null || need+=(binutils)
command -v strace >/dev/null || need+=(strace)
command -v redis-server >/dev/null || need+=(redis-server)  # RedisClient and LeaseLock tests
command -v nginx >/dev/null || need+=(nginx)  # the deployment test's load balancer (scripts/deploy.sh)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || need+=(libcurl4-openssl-dev)
# S3Storage: libcrypto for SigV4; curl for the presigned-URL and large-zip tests; botocore for the signer cross-check.
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v curl >/dev/null || need+=(curl)
python3 -c 'import botocore' 2>/dev/null || need+=(python3-botocore)
dpkg -s golang-golang-x-mod-dev >/dev/null 2>&1 || need+=(golang-golang-x-mod-dev)  # x/mod sumdb server for Tests/Fixtures/sumdb
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The bench scripts' own unit tests (tree generator, table and report makers): a second, no build needed. Skipped
# when the run is filtered to some Swift tests.
if (($# == 0)); then python3 -m unittest discover -s bench -p 'test_*.py'; fi
# Everything the build and the tests put in the temporary directory (module caches, fixture trees, stores, the
# compiler's scratch files) goes in one folder of this run's, removed however the run ends: nothing is left in /tmp.
export TMPDIR
TMPDIR=$(mktemp -d /tmp/athens-tests.XXXXXX)
trap 'rm -rf "$TMPDIR"' EXIT
# Arguments (e.g. --filter NAME) go to `swift test` only: `swift build` refuses test filters.
swift build --build-tests
# A real S3 server for the S3Storage tests: single-node Ceph RGW (scripts/rgw.sh installs its packages when
# missing), in a run folder of its own, stopped whatever way the tests end.
export RGW_DIR
RGW_DIR=$(mktemp -d /tmp/athens-rgw.XXXXXX)
rmdir "$RGW_DIR"
trap 'scripts/rgw.sh stop; rm -rf "$TMPDIR"' EXIT
eval "$(scripts/rgw.sh start)"
swift test --skip-build "$@"

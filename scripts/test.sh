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
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || need+=(libcurl4-openssl-dev)
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

swift build --build-tests "$@"
swift test --skip-build "$@"

#!/usr/bin/env bash
# Memory over time: athens (FileStorage, default cache) under a mixed load for a while, VmHWM and VmRSS
# sampled every --every seconds with the cache's own bytes (athens_cache_bytes) and the thread count.
# Usage: bench/soak.sh [--minutes 10] [--every 30] [--conns 32] [--modules 200] [--keep]
# The load rotates over every .info, .mod, 10 KiB and 1 MiB zip of the tree, plus @v/list (wrk, pinned to
# CPU 0; athens to CPU 1). Flat means VmHWM at the end equals VmHWM at 1 minute, give or take a page run.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
MINUTES=10 EVERY=30 CONNS=32 MODULES=200 KEEP=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --minutes) MINUTES=$2; shift 2 ;;
        --every) EVERY=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --modules) MODULES=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n 2,6p "$0"; exit 0 ;;
        *) echo "soak.sh: unknown option $1" >&2; exit 1 ;;
    esac
done
# shellcheck source=bench/helpers.sh
. "$BENCH_DIR/helpers.sh"

python3 "$BENCH_DIR/make_tree.py" "$TMP/tree" --modules "$MODULES" --sizes 10k,1m --max-large 0 >/dev/null
cat "$TMP"/tree/paths-{info,mod,zip10k,zip1m,list}.txt >"$TMP/paths-mixed.txt"
mkdir -p "$TMP/storage"
start_upstream "$TMP/tree"
write_manifest '{"plugin":"FileStorage","config":{"root":"'"$TMP/storage"'"}}'
taskset -c 1 "$ATHENS_BIN" --config "$TMP/manifest.json" >"$TMP/athens.log" 2>&1 &
PID=$!
PIDS+=($PID)
wait_up "$PID"
sample() {  # sample LABEL
    local hwm rss threads cache
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status")
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status")
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$PID/status")
    cache=$(curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" | awk '$1 == "athens_cache_bytes" { printf "%d", $2 / 1024 }')
    printf '%-10s VmHWM %6.1f MiB  VmRSS %6.1f MiB  cache %6.1f MiB  threads %s\n' "$1" \
        "$(bc -l <<<"$hwm / 1024")" "$(bc -l <<<"$rss / 1024")" "$(bc -l <<<"${cache:-0} / 1024")" "$threads"
}
sample start
# Cold pass: every file once through athens (fetch, validate, store).
sed "s|^|http://127.0.0.1:$PORT|" "$TMP/paths-mixed.txt" | xargs -n 1 -P 8 curl -s -o /dev/null --max-time 60
sample warmed
SECONDS=0
END=$((MINUTES * 60))
taskset -c 0 wrk -t1 "-c$CONNS" "-d${END}s" --timeout 10s -s "$BENCH_DIR/rotate.lua" "http://127.0.0.1:$PORT/" -- \
    "$TMP/paths-mixed.txt" >"$TMP/wrk.log" 2>&1 &
WRK=$!
PIDS+=($WRK)
next=$EVERY
[[ $next -gt 60 ]] && next=60
while kill -0 "$WRK" 2>/dev/null; do
    sleep 1
    if [[ $SECONDS -ge $next ]]; then
        sample "$((SECONDS / 60))m$((SECONDS % 60))s"
        next=$((next + EVERY))
    fi
done
sample end
grep '^BENCH ' "$TMP/wrk.log" || tail -n 5 "$TMP/wrk.log"

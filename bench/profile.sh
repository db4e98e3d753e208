#!/usr/bin/env bash
# Per-request cost of athens' warm hit path, in figures that do not move with machine load:
#   - instructions per request (valgrind --tool=callgrind, collection switched on only around the load),
#   - heap allocations per request (bench/malloc_count.c preloaded).
# Usage: bench/profile.sh [--tests info,zip10k] [--duration S] [--conns N] [--max-allocs N] [--keep]
#   --max-allocs N: exit 1 when a test's heap allocations per request exceed N (a gate: warm hits allocate 0).
# Needs valgrind (callgrind_control), wrk, nginx, cc, python3 and a release build (.build/release).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
TESTS=info,zip10k DURATION=5 CONNS=8 KEEP=0 MAX_ALLOCS=
while [[ $# -gt 0 ]]; do
    case $1 in
        --tests) TESTS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --max-allocs) MAX_ALLOCS=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n 2,7p "$0"; exit 0 ;;
        *) echo "profile.sh: unknown option $1" >&2; exit 1 ;;
    esac
done
# shellcheck source=bench/helpers.sh
. "$BENCH_DIR/helpers.sh"

# valgrind 3.19 cannot read the DWARF 5 that Swift emits: profile debug-stripped copies (symbols stay).
mkdir -p "$TMP/bin"
objcopy --strip-debug "$ATHENS_BIN" "$TMP/bin/athens"
for lib in "$PLUGIN_DIR"/lib*.so; do objcopy --strip-debug "$lib" "$TMP/bin/$(basename "$lib")"; done
ATHENS_BIN=$TMP/bin/athens PLUGIN_DIR=$TMP/bin
cc -O2 -shared -fPIC -o "$TMP/malloc_count.so" "$BENCH_DIR/malloc_count.c" -lpthread
python3 "$BENCH_DIR/make_tree.py" "$TMP/tree" --modules 20 --sizes 10k --max-large 0 >/dev/null
start_upstream "$TMP/tree"
write_manifest '{"plugin":"MemoryStorage","config":{}}'
warm() {  # fetch the test's paths once (fills memory storage and the cache)
    sed "s|^|http://127.0.0.1:$PORT|" "$TMP/tree/paths-$1.txt" | xargs -n1 curl -s -o /dev/null --max-time 60
}
requests_of() { awk '/^BENCH /{ for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "requests") print kv[2] } }' "$1"; }
load() {  # load TEST LOG
    wrk -t1 "-c$CONNS" "-d${DURATION}s" --timeout 10s -s "$BENCH_DIR/rotate.lua" "http://127.0.0.1:$PORT/" -- \
        "$TMP/tree/paths-$1.txt" >"$2" 2>&1
}

printf '%-8s %14s %12s %12s\n' test instr/req allocs/req frees/req
OVER=()   # tests past --max-allocs
for test in ${TESTS//,/ }; do
    # Allocations: preloaded counter, delta over one load run.
    MALLOC_COUNT_FILE="$TMP/mc" LD_PRELOAD="$TMP/malloc_count.so" "$ATHENS_BIN" --config "$TMP/manifest.json" >"$TMP/athens-mc.log" 2>&1 &
    pid=$!; PIDS+=($pid)
    wait_up "$pid"; warm "$test"; load "$test" "$TMP/wrk-warm.log"
    sleep 0.3; read -r a0 f0 <"$TMP/mc"
    load "$test" "$TMP/wrk-mc.log"
    sleep 0.3; read -r a1 f1 <"$TMP/mc"
    n=$(requests_of "$TMP/wrk-mc.log")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    # Instructions: callgrind with instrumentation off until the load starts (counts zeroed there).
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$TMP/callgrind.$test.%p" \
        "$ATHENS_BIN" --config "$TMP/manifest.json" >"$TMP/athens-cg.log" 2>&1 &
    pid=$!; PIDS+=($pid)
    wait_up "$pid"; warm "$test"
    callgrind_control -i on "$pid" >/dev/null 2>&1
    callgrind_control -z "$pid" >/dev/null 2>&1
    load "$test" "$TMP/wrk-cg.log"
    callgrind_control -d "$pid" >/dev/null 2>&1
    m=$(requests_of "$TMP/wrk-cg.log")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    ir=$(cat "$TMP"/callgrind.$test.*.[0-9]* 2>/dev/null | awk '/^totals:/ { t += $2 } END { print t + 0 }')
    awk -v t="$test" -v ir="$ir" -v m="$m" -v n="$n" -v a="$((a1 - a0))" -v f="$((f1 - f0))" \
        'BEGIN { printf "%-8s %14.0f %12.2f %12.2f   (callgrind %d requests, malloc count %d requests)\n", t, ir / m, a / n, f / n, m, n }'
    if [[ -n $MAX_ALLOCS ]] && awk -v a="$((a1 - a0))" -v n="$n" -v m="$MAX_ALLOCS" 'BEGIN { exit !(n == 0 || a / n > m) }'; then
        OVER+=("$test ($((a1 - a0)) allocations in $n requests)")
    fi
    if [[ $KEEP == 1 ]]; then  # head closing the pipe early fails the pipeline (pipefail): not an error here
        callgrind_annotate "$(ls "$TMP"/callgrind.$test.*.[0-9]* | head -1)" 2>/dev/null | head -60 >"$TMP/annotate.$test.txt" || true
    fi
done
if [[ ${#OVER[@]} -gt 0 ]]; then
    echo "profile.sh: more than $MAX_ALLOCS allocations per request (or no requests) in: ${OVER[*]}" >&2
    exit 1
fi

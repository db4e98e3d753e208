#!/usr/bin/env bash
# Scale-out figures (issue 14): the deployment of scripts/deploy.sh (nginx → athens instances on one RGW bucket,
# RedisLock single-flight) measured through nginx.
#
#   bench/scale_bench.sh                 # warm .info and 10 KiB zip req/s, nginx → 3 instances vs nginx → 1;
#                                        # cold-miss latency of N modules, 3 instances with and without the lock
#   bench/scale_bench.sh --duration 5 --cold 20 --connections 16
#
# Needs the S3 endpoint of scripts/rgw.sh in the environment (ATHENS_S3_TEST_*), nginx, redis-server, wrk, curl.
# ATHENS_BIN picks the binary (default: .build/release/athens if built, else .build/debug/athens: say which with the
# figures). Warm: each path is asked once, then wrk warms every instance's memory cache for --warmup s before the
# measured --duration s. Cold: --cold distinct modules never asked before, one at a time through nginx, each a fetch
# from the logging upstream and a save to the bucket; p50/p99 of their times (with few samples p99 is about the max).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
duration=10 warmup=2 cold=30 connections=32
while (($#)); do
    case $1 in
        --duration) duration=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --cold) cold=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "scale_bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
for tool in nginx redis-server wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "scale_bench.sh: $tool not found" >&2; exit 1; }
done
[[ -n ${ATHENS_S3_TEST_ENDPOINT:-} ]] || { echo "scale_bench.sh: no S3 endpoint (eval \"\$(scripts/rgw.sh start)\")" >&2; exit 1; }
if [[ -z ${ATHENS_BIN:-} ]]; then
    ATHENS_BIN=$root/.build/debug/athens
    [[ -x $root/.build/release/athens ]] && ATHENS_BIN=$root/.build/release/athens
fi
export ATHENS_BIN ATHENS_PLUGINS=${ATHENS_PLUGINS:-$(dirname "$ATHENS_BIN")}

work=$(mktemp -d "${TMPDIR:-/tmp}/athens-scale.XXXXXX")
deployments=()
cleanup() {
    local d
    for d in "${deployments[@]}"; do "$root/scripts/deploy.sh" stop "$d" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# One warm module (m0001) and `cold` never-asked ones, each with a 10 KiB zip.
python3 "$root/bench/make_tree.py" --quiet --modules $((cold + 1)) --sizes 10k "$work/tree"
warm_info=$(sed -n 1p "$work/tree/paths-info.txt")
warm_zip=$(sed -n 1p "$work/tree/paths-zip10k.txt")

# deploy NAME INSTANCES LOCK: starts a deployment, sets $url.
deploy() {
    local d=$work/$1
    deployments+=("$d")
    local env
    env=$(DEPLOY_INSTANCES=$2 DEPLOY_LOCK=$3 DEPLOY_UPSTREAM_ROOT=$work/tree "$root/scripts/deploy.sh" start "$d" 2>"$work/$1.err") ||
        { cat "$work/$1.err" >&2; exit 1; }
    url=$(sed -n 's/^export DEPLOY_URL=//p' <<<"$env")
}

# warm PATH: "req/s p50 p99 errors" of wrk through nginx.
warm() {
    local target=$url$1 out
    curl -sf -o /dev/null "$target" || { echo "scale_bench.sh: $target failed" >&2; exit 1; }
    wrk -t2 "-c$connections" "-d${warmup}s" "$target" >/dev/null
    out=$(wrk -t2 "-c$connections" "-d${duration}s" --latency "$target")
    awk '/Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
         /Non-2xx|Socket errors/ { errors = errors $0 " " }
         END { printf "%s %s %s %s\n", rps, p50, p99, errors == "" ? "0" : errors }' <<<"$out"
}

# cold: "p50 p99 max failures" in ms over the cold modules' zips, one at a time.
cold_misses() {
    local path times=() failures=0 t
    while read -r path; do
        t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$url$path")
        [[ ${t%% *} == 200 ]] || failures=$((failures + 1))
        times+=("${t#* }")
    done < <(sed -n "2,$((cold + 1))p" "$work/tree/paths-zip10k.txt")
    printf '%s\n' "${times[@]}" | sort -g | awk -v f="$failures" '{ v[NR] = $1 * 1000 }
        END { i50 = int(NR * 0.50 + 0.5); i99 = int(NR * 0.99 + 0.5); if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1
              printf "%.1fms %.1fms %.1fms %d\n", v[i50], v[i99], v[NR], f }'
}

rows=()
echo "[scale] nginx → 3 instances, RedisLock" >&2
deploy three 3 1
rows+=("warm .info|3 instances|$(warm "$warm_info")")
rows+=("warm 10 KiB zip|3 instances|$(warm "$warm_zip")")
cold_lock=$(cold_misses)
echo "[scale] nginx → 3 instances, no lock (local single-flight)" >&2
deploy nolock 3 0
cold_nolock=$(cold_misses)
"$root/scripts/deploy.sh" stop "$work/nolock"
echo "[scale] nginx → 1 instance, RedisLock" >&2
"$root/scripts/deploy.sh" stop "$work/three"
deploy one 1 1
rows+=("warm .info|1 instance|$(warm "$warm_info")")
rows+=("warm 10 KiB zip|1 instance|$(warm "$warm_zip")")

echo
echo "athens scale-out through nginx ($(basename "$(dirname "$ATHENS_BIN")") build; wrk -t2 -c$connections, ${duration}s after ${warmup}s warm-up)"
printf '%-16s %-12s %10s %10s %10s  %s\n' test deployment req/s p50 p99 errors
for row in "${rows[@]}"; do
    IFS='|' read -r test deployment figures <<<"$row"
    read -r rps p50 p99 errors <<<"$figures"
    printf '%-16s %-12s %10s %10s %10s  %s\n' "$test" "$deployment" "$rps" "$p50" "$p99" "$errors"
done
echo
echo "cold miss: $cold distinct modules' 10 KiB zips, one at a time through nginx → 3 instances (fetch + save to the bucket)"
printf '%-34s %10s %10s %10s  %s\n' single-flight p50 p99 max failures
read -r p50 p99 max failures <<<"$cold_lock"
printf '%-34s %10s %10s %10s  %s\n' "RedisLock (cross-instance)" "$p50" "$p99" "$max" "$failures"
read -r p50 p99 max failures <<<"$cold_nolock"
printf '%-34s %10s %10s %10s  %s\n' "none (local single-flight only)" "$p50" "$p99" "$max" "$failures"
echo
echo "Note: on a $(nproc)-core machine, nginx, wrk, every athens instance, Redis and the RGW share the same CPUs, so more"
echo "instances cannot add throughput here (they add processes competing for the same cores); the figures show the cost"
echo "of the balancer hop and of the lock, not scale-out capacity. Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."

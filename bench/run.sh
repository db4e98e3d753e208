#!/usr/bin/env bash
# Benchmark athens against nginx serving the same generated GOPROXY tree.
# See bench/README.md for what it measures and how to read the output.
#
# Usage: bench/run.sh [options]        (bench/run.sh --help for the list)
#
# Environment overrides:
#   ATHENS_BIN   athens executable (default <repo>/.build/release/athens; setting it skips the build)
#   PLUGIN_DIR   plugin directory for the manifest (default <repo>/.build/release)
#   NGINX_BIN    nginx executable (default: nginx on PATH)
#   TMPDIR       where the temporary tree and server state go (default /tmp)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")

usage() {
    cat <<'EOF'
Usage: bench/run.sh [options]

  --reps N            repetitions per test and server (default 3)
  --duration S        seconds per measured wrk run (default 10)
  --warmup S          seconds of wrk warm-up before every measured run (default 2)
  --modules N         modules in the generated tree (default 200)
  --sizes LIST        zip sizes, one version each (default 10k,1m,20m)
  --max-large N       modules that get the >=10 MiB version (default 20)
  --seed N            tree seed (default 1)
  --tests LIST        subset of tests: info,zip10k,zip1m,zip20m,... (default: all)
  --quick             smoke run: 20 modules, sizes 10k,1m, 2 reps of 3 s, 1 s warm-up
                      (explicit options win over --quick)
  --storage NAME      athens storage plugin (default MemoryStorage, FileStorage with --all); any
                      other name gets config {"root": DIR} with DIR under the temp dir (or --storage-root)
  --storage-root DIR  root directory for a non-memory storage plugin
  --no-build          do not run `swift build -c release`
  --no-malloc-count   do not preload bench/malloc_count.c into athens (no allocs/req column)
  --no-pipeline       skip the pipelining check (bench/pipeline.py against both servers)
  --athens-nginx      self-test: put a second nginx in the athens column (no athens needed)
  --athens-url URL    measure an already running server as the candidate instead of
                      starting athens (no restarts; CPU/RSS only with --athens-pid)
  --athens-pid PID    pid of the --athens-url server, for CPU and RSS figures
  --nginx-sendfile on|off
                      nginx's sendfile setting (default on, as in the method notes; off can
                      cost less CPU for large files on loopback)
  --server-cpus LIST  CPUs for the servers (taskset -c, default 1)
  --client-cpus LIST  CPUs for wrk (taskset -c, default 0)
  --max-steal PCT     redo a run whose steal exceeds PCT (default 1.0), at most twice
  --max-other PCT     redo a run in which other processes used more than PCT of the server
                      CPUs or of the client CPUs (default 5), at most twice
  --all               every figure of issue 15: the warm tests (FileStorage unless --storage), then
                      store_bench.py, cold_bench.py and soak.sh with the same binaries, each one's output
                      kept in the results file, then one summary table (bench/summary.py). With --quick
                      the sub-benches are smaller too (store 100,000 versions, cold 100 / 40 modules,
                      soak 1 min), and the table says so
  --no-store          with --all: skip store_bench.py (start-up, /readyz, catalog at 1 M versions)
  --no-cold           with --all: skip cold_bench.py (500 x 10 KiB and 200 x 1 MiB cold fetches)
  --no-soak           with --all: skip soak.sh (VmHWM over a mixed load)
  --soak-minutes N    with --all: length of the soak (default $SOAK_MINUTES, else 10; 1 with --quick)
  --out FILE          results file (default bench/results-<date>.txt)
  --keep              keep the temporary directory (tree, logs, raw rows)
  -h, --help          this help
EOF
}

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# ---------------------------------------------------------------- options
REPS="" DURATION="" WARMUP="" MODULES="" SIZES="" MAX_LARGE="" SEED=1 TESTS=""
QUICK=0 STORAGE="" STORAGE_ROOT="" BUILD=1 CANDIDATE=athens
NGINX_SENDFILE=on ATHENS_URL="" ATHENS_EXT_PID="" SERVER_CPUS=1 CLIENT_CPUS=0 MAX_STEAL=1.0 MAX_OTHER=5 MAX_ATTEMPTS=3
OUT="" KEEP=0 COUNT_MALLOC=1 PIPELINE=1 MALLOC_SHIM=""
ALL=0 ALL_STORE=1 ALL_COLD=1 ALL_SOAK=1 SOAK_MIN=""
while [[ $# -gt 0 ]]; do
    opt=$1
    case $opt in
        -h|--help) usage; exit 0 ;;
        --quick) QUICK=1; shift; continue ;;
        --no-build) BUILD=0; shift; continue ;;
        --no-malloc-count) COUNT_MALLOC=0; shift; continue ;;
        --no-pipeline) PIPELINE=0; shift; continue ;;
        --athens-nginx) CANDIDATE=nginx; shift; continue ;;
        --keep) KEEP=1; shift; continue ;;
        --all) ALL=1; shift; continue ;;
        --no-store) ALL_STORE=0; shift; continue ;;
        --no-cold) ALL_COLD=0; shift; continue ;;
        --no-soak) ALL_SOAK=0; shift; continue ;;
    esac
    case $opt in
        --reps|--duration|--warmup|--modules|--sizes|--max-large|--seed|--tests|--storage|--storage-root|\
        --athens-url|--athens-pid|--server-cpus|--client-cpus|--max-steal|--max-other|--nginx-sendfile|--out|\
        --soak-minutes) ;;
        *) die "unknown option $opt (see --help)" ;;
    esac
    [[ $# -ge 2 ]] || die "$opt needs a value (see --help)"
    val=$2
    case $opt in
        --reps) REPS=$val ;;
        --duration) DURATION=$val ;;
        --warmup) WARMUP=$val ;;
        --modules) MODULES=$val ;;
        --sizes) SIZES=$val ;;
        --max-large) MAX_LARGE=$val ;;
        --seed) SEED=$val ;;
        --tests) TESTS=$val ;;
        --storage) STORAGE=$val ;;
        --storage-root) STORAGE_ROOT=$val ;;
        --athens-url) CANDIDATE=url; ATHENS_URL=${val%/} ;;
        --athens-pid) ATHENS_EXT_PID=$val ;;
        --server-cpus) SERVER_CPUS=$val ;;
        --client-cpus) CLIENT_CPUS=$val ;;
        --max-steal) MAX_STEAL=$val ;;
        --max-other) MAX_OTHER=$val ;;
        --nginx-sendfile) NGINX_SENDFILE=$val ;;
        --out) OUT=$val ;;
        --soak-minutes) SOAK_MIN=$val ;;
        *) die "unknown option $opt (see --help)" ;;
    esac
    shift 2
done
if [[ $QUICK == 1 ]]; then
    : "${REPS:=2}" "${DURATION:=3}" "${WARMUP:=1}" "${MODULES:=20}" "${SIZES:=10k,1m}" "${MAX_LARGE:=0}"
fi
: "${REPS:=3}" "${DURATION:=10}" "${WARMUP:=2}" "${MODULES:=200}" "${SIZES:=10k,1m,20m}" "${MAX_LARGE:=20}"
# The issue-15 RSS target is for the default cache over FileStorage, so --all measures that unless told otherwise.
if [[ -z $STORAGE ]]; then
    if [[ $ALL == 1 ]]; then STORAGE=FileStorage; else STORAGE=MemoryStorage; fi
fi
if [[ -z $SOAK_MIN ]]; then
    if [[ -n ${SOAK_MINUTES:-} ]]; then SOAK_MIN=$SOAK_MINUTES; elif [[ $QUICK == 1 ]]; then SOAK_MIN=1; else SOAK_MIN=10; fi
fi
[[ $SOAK_MIN =~ ^[1-9][0-9]*$ ]] || die "--soak-minutes must be a positive integer, got '$SOAK_MIN'"
[[ $ALL == 1 || ($ALL_STORE == 1 && $ALL_COLD == 1 && $ALL_SOAK == 1) ]] || die "--no-store/--no-cold/--no-soak need --all"
for n in REPS DURATION WARMUP MODULES MAX_LARGE SEED; do
    flag=${n,,}
    [[ ${!n} =~ ^[0-9]+$ ]] || die "--${flag//_/-} must be a non-negative integer, got '${!n}'"
done
[[ $REPS -ge 1 && $DURATION -ge 1 ]] || die "--reps and --duration must be at least 1"
[[ $MAX_STEAL =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--max-steal must be a number"
[[ $NGINX_SENDFILE == on || $NGINX_SENDFILE == off ]] || die "--nginx-sendfile must be on or off"
[[ $MAX_OTHER =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--max-other must be a number"
[[ -z $ATHENS_EXT_PID || $CANDIDATE == url ]] || die "--athens-pid needs --athens-url"
[[ -z $ATHENS_EXT_PID || -d /proc/$ATHENS_EXT_PID ]] || die "--athens-pid $ATHENS_EXT_PID: no such process"
[[ $ALL == 0 || $CANDIDATE == athens ]] || die "--all measures athens: not with --athens-nginx or --athens-url"

ATHENS_BIN_DEFAULT="$REPO/.build/release/athens"
if [[ -n ${ATHENS_BIN:-} ]]; then BUILD=0; fi
ATHENS_BIN=${ATHENS_BIN:-$ATHENS_BIN_DEFAULT}
PLUGIN_DIR=${PLUGIN_DIR:-$REPO/.build/release}
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || true)}
[[ -x $NGINX_BIN ]] || die "nginx not found (apt-get install -y nginx)"
for tool in wrk taskset curl python3 sha256sum ps; do
    command -v "$tool" >/dev/null || die "$tool not found (wrk: apt-get install -y wrk)"
done

case $CANDIDATE in
    athens) CAND_LABEL=athens ;;
    nginx) CAND_LABEL=nginx-b ;;
    url) CAND_LABEL=external ;;
esac
BASE_LABEL=nginx
# nginx gets one worker per CPU it is pinned to, like a runtime sizing its pool from the affinity mask.
NGINX_WORKERS=$(taskset -c "$SERVER_CPUS" nproc) || die "bad --server-cpus '$SERVER_CPUS'"
taskset -c "$CLIENT_CPUS" true || die "bad --client-cpus '$CLIENT_CPUS'"
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/athens-bench.XXXXXX")
# nginx workers drop privileges when started as root; they must be able to read the tree.
chmod 755 "$TMP"
STARTED=()   # pids of every server this script started
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do
        stop_pid "$pid"
    done
    if [[ $KEEP == 1 ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

forget_pid() {
    local pid=$1 kept=() p
    for p in "${STARTED[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
    STARTED=("${kept[@]}")
}

# ---------------------------------------------------------------- servers
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

wait_port() {  # wait_port PID PORT LOGFILE
    local pid=$1 port=$2 logfile=$3 i
    for i in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logfile" >&2 || true
            die "server (pid $pid, port $port) exited during start-up"
        fi
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$logfile" >&2 || true
    die "server (pid $pid) not listening on 127.0.0.1:$port after 10 s"
}

write_nginx_conf() {  # write_nginx_conf DIR PORT WORKERS
    local dir=$1 port=$2 workers=$3
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
worker_processes $workers;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    sendfile $NGINX_SENDFILE;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    # The default of 1000 would force reconnects at tens of thousands of requests per second.
    keepalive_requests 1000000;
    open_file_cache max=20000 inactive=60s;
    open_file_cache_valid 60s;
    types {
        application/json info;
        text/plain mod;
        application/zip zip;
    }
    default_type text/plain;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port reuseport;
        root $TREE;
        location / {
            try_files \$uri =404;
        }
    }
}
EOF
}

LAST_PID=""
start_nginx() {  # start_nginx NAME PORT CPUS WORKERS -> LAST_PID
    local name=$1 port=$2 cpus=$3 workers=$4 dir="$TMP/$1"
    write_nginx_conf "$dir" "$port" "$workers"
    # taskset execs nginx, so $! is the nginx master; workers inherit the affinity.
    taskset -c "$cpus" "$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
        >>"$dir/stdout.log" 2>&1 &
    LAST_PID=$!
    STARTED+=("$LAST_PID")
    wait_port "$LAST_PID" "$port" "$dir/error.log"
}

write_manifest() {  # write_manifest FILE PORT UPSTREAM_PORT
    python3 - "$@" "$PLUGIN_DIR" "$STORAGE" "$STORAGE_ROOT" <<'EOF'
import json, os, sys
path, port, upstream, plugin_dir, storage, root = sys.argv[1:7]
config = {} if storage == "MemoryStorage" else {"root": root}
manifest = {
    "listen": f"127.0.0.1:{port}",
    "pluginDirectory": plugin_dir,
    "storage": {"plugin": storage, "config": config},
    "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher", "config": {"url": f"http://127.0.0.1:{upstream}"}}],
    # nginx runs with access_log off; athens too unless BENCH_ACCESS_LOG=1 (then one line per request).
    "accessLog": os.environ.get("BENCH_ACCESS_LOG") == "1",
}
with open(path, "w") as f:
    json.dump(manifest, f)
    f.write("\n")
EOF
}

start_athens() {  # start_athens -> LAST_PID
    local dir="$TMP/athens"
    mkdir -p "$dir"
    write_manifest "$dir/manifest.json" "$CAND_PORT" "$UP_PORT"
    # athens reads ATHENS_* overrides (ATHENS_PORT, ATHENS_STORAGE_TYPE, ...) from its environment;
    # drop them all so the manifest alone decides what is measured.
    local unset_args=() var
    for var in $(compgen -e); do
        [[ $var == ATHENS_* ]] && unset_args+=(-u "$var")
    done
    # The allocation counter (bench/malloc_count.c) is preloaded unless --no-malloc-count: a relaxed
    # atomic add per malloc/free, well under 1% of a request's CPU.
    local preload=()
    if [[ -n $MALLOC_SHIM ]]; then
        rm -f "$dir/malloc.txt"
        preload=(MALLOC_COUNT_FILE="$dir/malloc.txt" LD_PRELOAD="$MALLOC_SHIM")
    fi
    # The preload goes after taskset (every step execs, so $! stays athens' pid): set before it, the
    # shim would load into taskset, which drops LD_PRELOAD for what it runs.
    env "${unset_args[@]}" taskset -c "$SERVER_CPUS" env "${preload[@]}" "$ATHENS_BIN" --config "$dir/manifest.json" \
        >>"$dir/athens.log" 2>&1 &
    LAST_PID=$!
    STARTED+=("$LAST_PID")
    wait_port "$LAST_PID" "$CAND_PORT" "$dir/athens.log"
}

# BASE_PID/CAND_PID: the measured servers' pids (CAND_PID is empty for an external server
# without --athens-pid). Only servers this script started are ever stopped.
BASE_PID="" CAND_PID="" CAND_OWNED=0
start_servers() {
    start_nginx nginx-base "$BASE_PORT" "$SERVER_CPUS" "$NGINX_WORKERS"
    BASE_PID=$LAST_PID
    case $CANDIDATE in
        athens) start_athens; CAND_PID=$LAST_PID; CAND_OWNED=1 ;;
        nginx) start_nginx nginx-cand "$CAND_PORT" "$SERVER_CPUS" "$NGINX_WORKERS"; CAND_PID=$LAST_PID; CAND_OWNED=1 ;;
        url) CAND_PID=$ATHENS_EXT_PID; CAND_OWNED=0 ;;
    esac
}

stop_servers() {
    stop_pid "$BASE_PID"
    forget_pid "$BASE_PID"
    if [[ $CAND_OWNED == 1 ]]; then
        stop_pid "$CAND_PID"
        forget_pid "$CAND_PID"
    fi
}

# All processes of a server: the given pid and its children (nginx master + workers).
server_pids() {
    [[ -n $1 ]] || return 0
    echo "$1"
    ps -o pid= --ppid "$1" 2>/dev/null || true
}

# Sum of utime+stime (clock ticks) over a server's processes; NA when unknown.
cpu_ticks() {
    local pids
    [[ -n $1 ]] || { echo NA; return; }
    pids=$(server_pids "$1")
    # Fields are counted after the ")" that ends the command name, which may contain spaces.
    # shellcheck disable=SC2086
    for p in $pids; do cat "/proc/$p/stat" 2>/dev/null || true; done |
        awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%d\n", t }'
}

# Sum of VmHWM (KiB) over a server's processes; NA when unknown.
vmhwm_kib() {
    local pids
    [[ -n $1 ]] || { echo NA; return; }
    pids=$(server_pids "$1")
    # shellcheck disable=SC2086
    for p in $pids; do grep '^VmHWM:' "/proc/$p/status" 2>/dev/null || true; done |
        awk '{ t += $2 } END { printf "%d\n", t }'
}

# "total steal srv_total srv_busy cli_total cli_busy" jiffies from /proc/stat: all CPUs'
# total and steal, then the total and user+nice+system time of the server CPUs and of
# the client CPUs. irq/softirq are left out of *_busy because loopback packet processing
# lands there and is part of serving.
cpu_stat() {
    awk -v srv="$SERVER_CPU_IDS" -v cli="$CLIENT_CPU_IDS" '
        BEGIN {
            n = split(srv, c, " "); for (i = 1; i <= n; i++) s["cpu" c[i]] = 1
            n = split(cli, c, " "); for (i = 1; i <= n; i++) k["cpu" c[i]] = 1
        }
        /^cpu / { for (i = 2; i <= NF; i++) t += $i; steal = $9 }
        ($1 in s) { for (i = 2; i <= NF; i++) st += $i; sb += $2 + $3 + $4 }
        ($1 in k) { for (i = 2; i <= NF; i++) ct += $i; cb += $2 + $3 + $4 }
        END { print t + 0, steal + 0, st + 0, sb + 0, ct + 0, cb + 0 }' /proc/stat
}

# CPU time (clock ticks) of this shell's reaped children so far, from the `times` builtin.
# `times` must run in this shell, not in a pipeline or $(...) subshell (a fresh process has
# no children yet), so its output goes through a file; pass the file name.
children_ticks() {
    times >"$1"
    awk -v hz="$CLK_TCK" 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] }
        printf "%d\n", t * hz + 0.5
    }' "$1"
}

expand_cpus() {  # "0-2,5" -> "0 1 2 5"
    local part out=() i
    local -a parts
    IFS=, read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
            for ((i = BASH_REMATCH[1]; i <= BASH_REMATCH[2]; i++)); do out+=("$i"); done
        elif [[ $part =~ ^[0-9]+$ ]]; then
            out+=("$part")
        else
            die "bad CPU list '$1'"
        fi
    done
    echo "${out[*]}"
}

# Allocation count of athens so far (bench/malloc_count.c), or NA when not counted. The shim rewrites the
# file every 100 ms, so the caller waits that long after the load stops.
malloc_count() {
    local file="$TMP/athens/malloc.txt"
    [[ -n $MALLOC_SHIM && $1 == "$CAND_LABEL" && $CANDIDATE == athens && -s $file ]] || { echo NA; return; }
    awk '{ print $1 }' "$file"
}

# athens' in-memory file cache (athens_cache_bytes in /metrics) in KiB, or NA.
cache_kib() {
    [[ $CANDIDATE == athens ]] || { echo NA; return; }
    curl -s --max-time 5 "$CAND_URL/metrics" | awk '$1 == "athens_cache_bytes" { printf "%d\n", $2 / 1024; found = 1 } END { if (!found) print "NA" }'
}

# ---------------------------------------------------------------- warming and checking
# fetch_check BASE_URL PATHS_FILE: GET every path once with one keep-alive curl, require 200
# and content identical (sha256) to the tree. Prints "files bytes seconds".
fetch_check() {
    local base=$1 list=$2 dir="$TMP/fetch" start end
    rm -rf "$dir"
    mkdir -p "$dir/out"
    awk -v base="$base" -v out="$dir/out" '
        NF { printf "url = \"%s%s\"\noutput = \"%s%s\"\n", base, $0, out, $0 }' "$list" >"$dir/curl.cfg"
    start=$(date +%s.%N)
    curl --silent --globoff --create-dirs --max-time 120 -K "$dir/curl.cfg" \
        -w '%{http_code} %{size_download} %{url_effective}\n' >"$dir/status.txt" || true
    end=$(date +%s.%N)
    local bad
    bad=$(awk '$1 != "200"' "$dir/status.txt" | head -n 5)
    if [[ -n $bad ]] || [[ $(wc -l <"$dir/status.txt") -ne $(grep -c . "$list") ]]; then
        echo "$bad" >&2
        die "fetching $(grep -c . "$list") paths from $base: not every answer was 200 (see above)"
    fi
    awk 'NR == FNR { want[substr($0, 2)] = 1; next } ($2 in want)' "$list" "$TREE/SHA256SUMS" >"$dir/sums"
    [[ $(wc -l <"$dir/sums") -eq $(grep -c . "$list") ]] || die "paths in $list missing from SHA256SUMS"
    # athens' stored .info carries its ingest record ("Athens": the zip's and go.mod's h1 hashes, see
    # IngestRecord.swift) next to the upstream's fields: drop that member, then the rest must match the tree byte
    # for byte (the tree's .info is compact JSON, which json.dumps reproduces in the same key order).
    python3 - "$dir/out" <<'EOF'
import json, os, sys
for top, _, files in os.walk(sys.argv[1]):
    for name in files:
        if name.endswith(".info"):
            path = os.path.join(top, name)
            try:
                with open(path, "rb") as f:
                    info = json.loads(f.read())
            except ValueError:
                continue  # not JSON: the sha256 check reports it
            if isinstance(info, dict) and "Athens" in info:
                del info["Athens"]
                with open(path, "w") as f:
                    f.write(json.dumps(info, separators=(",", ":")))
EOF
    if ! (cd "$dir/out" && sha256sum -c --quiet "$dir/sums" >&2); then
        die "content served by $base differs from the tree (see above)"
    fi
    awk -v s="$start" -v e="$end" '{ n++; b += $2 } END { printf "%d %d %.2f\n", n, b, e - s }' "$dir/status.txt"
    rm -rf "$dir"
}

# ---------------------------------------------------------------- measuring
RUNS_TSV="" RSS_TSV=""
# measure TEST CONNS SERVER_LABEL URL PID REP
measure() {
    local test=$1 conns=$2 label=$3 url=$4 pid=$5 rep=$6
    local paths="$TREE/paths-$test.txt" attempt=0 logf line
    local wrk_cmd=(taskset -c "$CLIENT_CPUS" wrk -t1 "-c$conns" --timeout 10s -s "$BENCH_DIR/rotate.lua")
    while :; do
        attempt=$((attempt + 1))
        logf="$TMP/logs/$test-$label-rep$rep-try$attempt.log"
        if [[ $WARMUP -gt 0 ]]; then
            "${wrk_cmd[@]}" "-d${WARMUP}s" "$url/" -- "$paths" >"$logf.warmup" 2>&1 ||
                die "wrk warm-up failed, see $logf.warmup"
        fi
        local cpu0 cpu1 st0 st1 wrk0 wrk1 mc0 mc1
        [[ -z $MALLOC_SHIM ]] || sleep 0.25
        mc0=$(malloc_count "$label")
        cpu0=$(cpu_ticks "$pid")
        children_ticks "$TMP/times.0" >"$TMP/times.a"
        wrk0=$(<"$TMP/times.a")
        st0=$(cpu_stat)
        "${wrk_cmd[@]}" "-d${DURATION}s" "$url/" -- "$paths" >"$logf" 2>&1 || die "wrk failed, see $logf"
        st1=$(cpu_stat)
        children_ticks "$TMP/times.1" >"$TMP/times.b"
        wrk1=$(<"$TMP/times.b")
        cpu1=$(cpu_ticks "$pid")
        [[ -z $MALLOC_SHIM ]] || sleep 0.25
        mc1=$(malloc_count "$label")
        line=$(grep '^BENCH ' "$logf") || die "no BENCH line in $logf"
        local row
        row=$(awk -v line="$line" -v cpu0="$cpu0" -v cpu1="$cpu1" -v st0="$st0" -v st1="$st1" \
            -v hz="$CLK_TCK" -v wrk0="$wrk0" -v wrk1="$wrk1" -v test="$test" -v conns="$conns" -v label="$label" -v rep="$rep" \
            -v attempt="$attempt" -v mc0="$mc0" -v mc1="$mc1" 'BEGIN {
                n = split(line, kv, /[ =]/)
                for (i = 2; i < n; i += 2) f[kv[i]] = kv[i + 1]
                req = f["requests"]; dur = f["duration_us"] / 1e6
                split(st0, a, " "); split(st1, b, " ")
                total = b[1] - a[1]
                steal = total > 0 ? 100 * (b[2] - a[2]) / total : 0
                srv_total = b[3] - a[3]; srv_busy = b[4] - a[4]
                cli_total = b[5] - a[5]; cli_busy = b[6] - a[6]; wrk = wrk1 - wrk0
                cpu = "NA"; util = "NA"; other = "NA"; cutil = "NA"; cother = "NA"
                if (cpu0 != "NA" && cpu1 != "NA" && req > 0) {
                    cpu = sprintf("%.2f", (cpu1 - cpu0) * 1e6 / hz / req)
                    if (srv_total > 0) {
                        util = sprintf("%.1f", 100 * (cpu1 - cpu0) / srv_total)
                        o = 100 * (srv_busy - (cpu1 - cpu0)) / srv_total
                        other = sprintf("%.1f", o < 0 ? 0 : o)
                    }
                }
                if (cli_total > 0) {
                    cutil = sprintf("%.1f", 100 * wrk / cli_total)
                    o = 100 * (cli_busy - wrk) / cli_total
                    cother = sprintf("%.1f", o < 0 ? 0 : o)
                }
                errors = f["err_connect"] + f["err_read"] + f["err_write"] + f["err_status"] + f["err_timeout"]
                # Allocations between the two reads, over the requests of the run (the reads bracket it
                # by 0.25 s of idle: an idle athens allocates nothing).
                allocs = (mc0 != "NA" && mc1 != "NA" && req > 0) ? sprintf("%.2f", (mc1 - mc0) / req) : "NA"
                printf "%s\t%s\t%s\t%s\t%d\t%.3f\t%.1f\t%.1f\t%.3f\t%.3f\t%.3f\t%s\t%.2f\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n",
                    test, conns, label, rep, req, dur, req / dur, f["bytes"] / f["duration_us"],
                    f["p50_us"] / 1000, f["p90_us"] / 1000, f["p99_us"] / 1000, cpu, steal, util, other,
                    cutil, cother, errors, attempt, allocs
            }')
        local steal other cother
        steal=$(cut -f13 <<<"$row")
        other=$(cut -f15 <<<"$row")
        cother=$(cut -f17 <<<"$row")
        if [[ $attempt -lt $MAX_ATTEMPTS ]]; then
            if awk -v s="$steal" -v m="$MAX_STEAL" 'BEGIN { exit !(s > m) }'; then
                log "  $label rep $rep: steal $steal% > $MAX_STEAL%, redoing the run"
                continue
            fi
            if [[ $other != NA ]] && awk -v o="$other" -v m="$MAX_OTHER" 'BEGIN { exit !(o > m) }'; then
                log "  $label rep $rep: other processes used $other% of the server CPUs (> $MAX_OTHER%), redoing the run"
                continue
            fi
            if [[ $cother != NA ]] && awk -v o="$cother" -v m="$MAX_OTHER" 'BEGIN { exit !(o > m) }'; then
                log "  $label rep $rep: other processes used $cother% of the client CPUs (> $MAX_OTHER%), redoing the run"
                continue
            fi
        fi
        echo "$row" >>"$RUNS_TSV"
        awk -F'\t' '{ printf "  %-8s rep %s: %9.0f req/s %7.1f MB/s  p50 %.2f ms  p99 %.2f ms  cpu %s us/req  allocs %s/req  srv %s%% (other %s%%)  wrk %s%% (other %s%%)  steal %s%%  errors %s\n",
            $3, $4, $7, $8, $9, $11, $12, $20, $14, $15, $16, $17, $13, $18 }' <<<"$row" >&2
        return 0
    done
}

conns_for() {  # connections per test, from the method notes
    local test=$1 bytes
    case $test in
        info|mod|list) echo 64; return ;;
    esac
    bytes=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import make_tree; print(make_tree.parse_size(sys.argv[2]))' \
        "$BENCH_DIR" "${test#zip}")
    if [[ $bytes -le $((64 << 10)) ]]; then echo 64
    elif [[ $bytes -le $((4 << 20)) ]]; then echo 16
    else echo 4
    fi
}

# ---------------------------------------------------------------- main
SERVER_CPU_IDS=$(expand_cpus "$SERVER_CPUS")
CLIENT_CPU_IDS=$(expand_cpus "$CLIENT_CPUS")
if [[ $CANDIDATE == athens ]]; then
    if [[ $BUILD == 1 ]]; then
        log "building release (swift build -c release in $REPO)"
        (cd "$REPO" && swift build -c release) >&2
    fi
    [[ -x $ATHENS_BIN ]] || die "athens binary $ATHENS_BIN not found (build it, or set ATHENS_BIN)"
    [[ -d $PLUGIN_DIR ]] || die "plugin directory $PLUGIN_DIR not found (set PLUGIN_DIR)"
fi
if [[ $CANDIDATE == athens && $COUNT_MALLOC == 1 ]]; then
    command -v cc >/dev/null || die "cc not found (needed for the allocation counter; or pass --no-malloc-count)"
    cc -O2 -shared -fPIC -o "$TMP/malloc_count.so" "$BENCH_DIR/malloc_count.c" -lpthread || die "building bench/malloc_count.c failed"
    MALLOC_SHIM="$TMP/malloc_count.so"
fi
if [[ $STORAGE != MemoryStorage && -z $STORAGE_ROOT ]]; then
    STORAGE_ROOT="$TMP/storage"
fi
[[ -z $STORAGE_ROOT ]] || mkdir -p "$STORAGE_ROOT"

TREE="$TMP/tree"
log "generating tree: $MODULES modules, sizes $SIZES, max-large $MAX_LARGE, seed $SEED"
python3 "$BENCH_DIR/make_tree.py" "$TREE" --modules "$MODULES" --sizes "$SIZES" --max-large "$MAX_LARGE" \
    --seed "$SEED" >&2
mkdir -p "$TMP/logs"
RUNS_TSV="$TMP/runs.tsv"
RSS_TSV="$TMP/rss.tsv"
printf 'test\tconns\tserver\trep\trequests\tduration_s\trps\tmbps\tp50_ms\tp90_ms\tp99_ms\tcpu_us_req\tsteal_pct\tsrv_util_pct\tother_pct\tcli_util_pct\tcli_other_pct\terrors\tattempts\tallocs_req\n' >"$RUNS_TSV"
printf 'test\tserver\tvmhwm_kib\tcache_kib\n' >"$RSS_TSV"

ALL_TESTS="info"
for s in ${SIZES//,/ }; do ALL_TESTS+=" zip${s,,}"; done
if [[ -n $TESTS ]]; then
    for t in ${TESTS//,/ }; do
        [[ " $ALL_TESTS " == *" $t "* || -f $TREE/paths-$t.txt ]] || die "--tests: unknown test '$t' (have: $ALL_TESTS mod list)"
    done
    ALL_TESTS=${TESTS//,/ }
fi
for t in $ALL_TESTS; do
    [[ -s $TREE/paths-$t.txt ]] || die "test $t has no paths (did --max-large leave it empty?)"
done

read -r BASE_PORT UP_PORT CAND_PORT < <(free_ports 3)
BASE_URL="http://127.0.0.1:$BASE_PORT"
CAND_URL=${ATHENS_URL:-http://127.0.0.1:$CAND_PORT}

# The upstream for athens stays up for the whole run; it is not measured.
start_nginx nginx-upstream "$UP_PORT" "$SERVER_CPUS" 1
UP_PID=$LAST_PID
log "upstream nginx pid $UP_PID on port $UP_PORT"

# Correctness gate: every file of the tree through the baseline and (cold) through the candidate.
sed 's|^|/|' <(awk '{ print $2 }' "$TREE/SHA256SUMS") >"$TMP/paths-all.txt"
start_servers
fetch_check "$BASE_URL" "$TMP/paths-all.txt" >"$TMP/fetch.out"
read -r n b t <"$TMP/fetch.out"
log "baseline served all $n files ($b bytes) correctly in ${t}s"
fetch_check "$CAND_URL" "$TMP/paths-all.txt" >"$TMP/fetch.out"
read -r n b t <"$TMP/fetch.out"
COLD="cold pass through $CAND_LABEL: $n files, $((b >> 20)) MiB, ${t}s, all identical to the tree"
log "$COLD"
stop_servers

for test in $ALL_TESTS; do
    conns=$(conns_for "$test")
    log "test $test ($conns connections): restarting servers"
    start_servers
    # A fresh athens with memory storage is empty: fetch this test's paths once (and check them).
    fetch_check "$CAND_URL" "$TREE/paths-$test.txt" >"$TMP/fetch.out"
    read -r n b t <"$TMP/fetch.out"
    log "  warmed $CAND_LABEL with $n files in ${t}s"
    for rep in $(seq "$REPS"); do
        if ((rep % 2 == 1)); then order="base cand"; else order="cand base"; fi
        for who in $order; do
            if [[ $who == base ]]; then
                measure "$test" "$conns" "$BASE_LABEL" "$BASE_URL" "$BASE_PID" "$rep"
            else
                measure "$test" "$conns" "$CAND_LABEL" "$CAND_URL" "$CAND_PID" "$rep"
            fi
        done
    done
    printf '%s\t%s\t%s\tNA\n' "$test" "$BASE_LABEL" "$(vmhwm_kib "$BASE_PID")" >>"$RSS_TSV"
    printf '%s\t%s\t%s\t%s\n' "$test" "$CAND_LABEL" "$(vmhwm_kib "$CAND_PID")" "$(cache_kib)" >>"$RSS_TSV"
    stop_servers
done

# Pipelining: deep pipelines of .info requests on a few connections; a batch with no answer for 5 s is a stall.
PIPE_TXT="$TMP/pipeline.txt"
: >"$PIPE_TXT"
if [[ $PIPELINE == 1 ]]; then
    log "pipelining check: 8 connections x 200 batches of 32 pipelined .info requests"
    start_servers
    fetch_check "$CAND_URL" "$TREE/paths-info.txt" >"$TMP/fetch.out"
    for who in "$BASE_LABEL $BASE_URL" "$CAND_LABEL $CAND_URL"; do
        read -r label url <<<"$who"
        if line=$(taskset -c "$CLIENT_CPUS" python3 "$BENCH_DIR/pipeline.py" "$url" "$TREE/paths-info.txt" \
                --conns 8 --depth 32 --batches 200 --timeout 5 2>"$TMP/logs/pipeline-$label.err"); then
            echo "$label $line" >>"$PIPE_TXT"
        else
            echo "$label FAILED: $line $(head -c 300 "$TMP/logs/pipeline-$label.err")" >>"$PIPE_TXT"
        fi
        log "  $(tail -n 1 "$PIPE_TXT")"
    done
    stop_servers
fi

# ---------------------------------------------------------------- report
DATE=$(date +%Y-%m-%d-%H%M%S)
OUT=${OUT:-$BENCH_DIR/results-$DATE.txt}
{
    echo "athens benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "repo: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "baseline: $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'), $NGINX_WORKERS worker(s), sendfile $NGINX_SENDFILE"
    case $CANDIDATE in
        athens) echo "candidate: athens $ATHENS_BIN, storage $STORAGE${STORAGE_ROOT:+ (root $STORAGE_ROOT)}, upstream nginx" ;;
        nginx) echo "candidate: a second nginx with the same config (--athens-nginx self-test, not athens)" ;;
        url) echo "candidate: external server $ATHENS_URL${ATHENS_EXT_PID:+ (pid $ATHENS_EXT_PID)}" ;;
    esac
    echo "tree: $MODULES modules, sizes $SIZES, max-large $MAX_LARGE, seed $SEED"
    echo "load: wrk -t1 pinned to CPU $CLIENT_CPUS, servers pinned to CPU $SERVER_CPUS, $REPS reps x ${DURATION}s, ${WARMUP}s warm-up before each run, servers alternate (order reversed every other rep)"
    echo "$COLD"
    echo
    python3 "$BENCH_DIR/report.py" "$RUNS_TSV" "$RSS_TSV" "$BASE_LABEL" "$CAND_LABEL"
    echo
    if [[ -s $PIPE_TXT ]]; then
        echo "pipelining (bench/pipeline.py: batch = 32 requests written at once, time to the 32nd answer):"
        cat "$PIPE_TXT"
        echo
    fi
    echo "raw runs:"
    cat "$RUNS_TSV"
    echo
    echo "raw peak RSS:"
    cat "$RSS_TSV"
} >"$OUT"
if [[ $ALL == 1 ]]; then
    # shellcheck source=bench/all.sh
    . "$BENCH_DIR/all.sh"
fi
echo
sed -n '/^test /,/^raw runs:/p' "$OUT" | sed '$d'
if [[ $ALL == 1 ]]; then
    sed -n '/^issue-15 table/,$p' "$OUT"
fi
echo "results written to $OUT"
[[ $ALL == 0 || ${#ALL_FAILED[@]} == 0 ]] || die "failed: ${ALL_FAILED[*]} (see $OUT)"

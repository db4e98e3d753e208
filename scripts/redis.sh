#!/usr/bin/env bash
# A private redis-server (Debian's redis-server package) for scripts and manual runs; the Swift tests start their
# own through Tests/AthensHostTests/Support/RedisServer.swift, so the suite needs no global service.
#
#   eval "$(scripts/redis.sh start [--password P])"   # prints REDIS_DIR, REDIS_PID, REDIS_PORT, REDIS_SOCKET, REDIS_URL
#   scripts/redis.sh env [DIR]                         # the same lines again for a running server
#   scripts/redis.sh stop [DIR]                        # SIGTERM by pid (SIGKILL after 5 s), then removes DIR
#
# DIR defaults to $REDIS_DIR. The server listens on 127.0.0.1 on a free port and on DIR/redis.sock, keeps its data
# in DIR, persists nothing (no RDB, no AOF) and runs in the foreground (--daemonize no) as a background child of
# this script, tracked by the pid in DIR/pid. With --password, REDIS_URL carries it (percent-encoded).
set -euo pipefail

usage() { sed -n '2,12p' "$0" >&2; exit 2; }
die() { echo "redis.sh: $*" >&2; exit 1; }

print_env() {
    local dir=$1
    [[ -f $dir/pid && -f $dir/port ]] || die "no server state in $dir"
    local port pid auth=""
    port=$(cat "$dir/port"); pid=$(cat "$dir/pid")
    if [[ -f $dir/password ]]; then
        auth=":$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read(), safe=""))' <"$dir/password")@"
    fi
    printf 'REDIS_DIR=%q\nREDIS_PID=%s\nREDIS_PORT=%s\nREDIS_SOCKET=%q\nREDIS_URL=%q\n' \
        "$dir" "$pid" "$port" "$dir/redis.sock" "redis://${auth}127.0.0.1:$port/0"
    echo "export REDIS_DIR REDIS_PID REDIS_PORT REDIS_SOCKET REDIS_URL"
}

# PONG (or, with a password, an answer to AUTH) on the unix socket.
ready() {
    local dir=$1
    if [[ -f $dir/password ]]; then
        REDISCLI_AUTH=$(cat "$dir/password") redis-cli -s "$dir/redis.sock" ping 2>/dev/null | grep -qx PONG
    else
        redis-cli -s "$dir/redis.sock" ping 2>/dev/null | grep -qx PONG
    fi
}

start() {
    local password=""
    while (($#)); do
        case $1 in
            --password) password=$2; shift 2 ;;
            *) usage ;;
        esac
    done
    command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/athens-redis.XXXXXX")
    chmod 700 "$dir"
    if [[ -n $password ]]; then (umask 077; printf '%s' "$password" >"$dir/password"); fi
    local attempt
    for attempt in 1 2 3; do
        local port
        # A port the kernel hands out now; another process may take it before redis binds it, hence the retries.
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        local args=(--port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no --daemonize no
            --unixsocket "$dir/redis.sock" --unixsocketperm 700 --logfile "$dir/redis.log")
        # The password goes in a private config file, not argv (which every user can read in ps).
        if [[ -n $password ]]; then
            (umask 077; printf 'requirepass "%s"\n' "${password//\"/\\\"}" >"$dir/auth.conf")
            redis-server "$dir/auth.conf" "${args[@]}" </dev/null >/dev/null 2>&1 &
        else
            redis-server "${args[@]}" </dev/null >/dev/null 2>&1 &
        fi
        local pid=$!
        echo "$pid" >"$dir/pid"
        echo "$port" >"$dir/port"
        local tries
        for ((tries = 0; tries < 500; tries++)); do
            ready "$dir" && { print_env "$dir"; return 0; }
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.02
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    local log
    log=$(tail -5 "$dir/redis.log" 2>/dev/null || true)
    rm -rf "$dir"
    die "redis-server did not start: $log"
}

stop() {
    local dir=${1:-${REDIS_DIR:-}}
    [[ -n $dir && -f $dir/pid ]] || die "stop: no server directory (give DIR or set REDIS_DIR)"
    local pid
    pid=$(cat "$dir/pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        local tries
        for ((tries = 0; tries < 250; tries++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -rf "$dir"
}

case ${1:-} in
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    env) shift; print_env "${1:-${REDIS_DIR:-}}" ;;
    *) usage ;;
esac

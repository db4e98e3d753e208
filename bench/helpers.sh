# Shared by profile.sh and soak.sh (sourced): temp dir, cleanup, the upstream nginx, athens' manifest.
# Expects BENCH_DIR, REPO and KEEP; sets ATHENS_BIN, PLUGIN_DIR, TMP, UP (upstream port), PORT (athens).

ATHENS_BIN=${ATHENS_BIN:-$REPO/.build/release/athens}
PLUGIN_DIR=${PLUGIN_DIR:-$REPO/.build/release}
[[ -x $ATHENS_BIN ]] || { echo "$(basename "$0"): $ATHENS_BIN missing (swift build -c release)" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/athens-$(basename "$0" .sh).XXXXXX")
chmod 755 "$TMP"
PIDS=()   # every process started here; only these are stopped
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [[ $KEEP == 1 ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
read -r UP PORT < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

start_upstream() {  # start_upstream TREE: nginx serving TREE on $UP (athens' ProxyFetcher upstream)
    mkdir -p "$TMP/up/tmp"
    cat >"$TMP/up/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $TMP/up/nginx.pid; error_log $TMP/up/error.log warn;
events { worker_connections 256; }
http { access_log off; client_body_temp_path $TMP/up/tmp; proxy_temp_path $TMP/up/tmp;
  fastcgi_temp_path $TMP/up/tmp; uwsgi_temp_path $TMP/up/tmp; scgi_temp_path $TMP/up/tmp;
  server { listen 127.0.0.1:$UP; root $1; } }
EOF
    taskset -c 0 nginx -p "$TMP/up" -c "$TMP/up/nginx.conf" -e "$TMP/up/error.log" >/dev/null 2>&1 &
    PIDS+=($!)
}

write_manifest() {  # write_manifest STORAGE_JSON: athens on $PORT, ProxyFetcher to $UP, no access log (+ $MANIFEST_EXTRA keys)
    cat >"$TMP/manifest.json" <<EOF
{"listen":"127.0.0.1:$PORT","pluginDirectory":"$PLUGIN_DIR","storage":$1,${MANIFEST_EXTRA:+$MANIFEST_EXTRA,}
 "fetchers":[{"name":"upstream","plugin":"ProxyFetcher","config":{"url":"http://127.0.0.1:$UP"}}],"accessLog":false}
EOF
}

wait_up() {  # wait_up PID: until athens answers /healthz (60 s: valgrind starts slowly)
    local i
    for i in $(seq 600); do
        kill -0 "$1" 2>/dev/null || { echo "$(basename "$0"): athens exited (see $TMP)" >&2; exit 1; }
        curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/healthz" && return 0
        sleep 0.1
    done
    echo "$(basename "$0"): athens not up after 60 s" >&2
    exit 1
}

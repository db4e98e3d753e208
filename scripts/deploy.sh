#!/usr/bin/env bash
# A whole scale-out deployment on 127.0.0.1, for trying it out and for Tests/AthensHostTests/DeploymentTests.swift:
# redis-server, 3 athens processes on ONE S3 bucket (S3Storage) whose single-flight coordinates through Redis
# (RedisLock), nginx balancing over them (round robin, keep-alive, retries on the next instance), and a logging
# upstream GOPROXY (Tests/Fixtures/fake_upstream.py) that the instances fetch from.
#
#   scripts/deploy.sh start DIR          # starts everything under DIR (made if missing), prints the env lines
#   scripts/deploy.sh env DIR            # prints them again
#   scripts/deploy.sh stop DIR           # kills exactly the pids recorded in DIR/pids, nothing else; removes the
#                                        # bucket `start` made (DEPLOY_KEEP_BUCKET=1 keeps it)
#   scripts/deploy.sh stop-redis DIR     # SIGKILL redis (an outage); start-redis DIR brings it back on its port
#   scripts/deploy.sh restart DIR N      # SIGTERM instance N (1-3), waits for its exit, starts it again on its port
#
# S3: ATHENS_S3_TEST_ENDPOINT, _ACCESS_KEY, _SECRET_KEY, _REGION (what scripts/rgw.sh prints; `eval "$(scripts/rgw.sh
# start)"` for a throwaway Ceph RGW). A fresh bucket is made unless DEPLOY_BUCKET names one.
# Upstream: DEPLOY_UPSTREAM_URL to use an existing GOPROXY; else the logging upstream serves DEPLOY_UPSTREAM_ROOT
# (default: the fixture tree of Tests/Fixtures/make_fixture_proxy.py), its request log in DIR/upstream.log, and the
# instances fetch from it + DEPLOY_UPSTREAM_PATH (e.g. /_fault/hold:.zip for the fixture's hold mode).
# Other knobs: DEPLOY_INSTANCES (3), DEPLOY_LEASE_SECONDS (10), DEPLOY_LOCK (1; 0: local single-flight, no RedisLock),
# DEPLOY_S3_TIMEOUT_SECONDS (S3Storage's timeoutSeconds; its save lock is taken over after max(10, twice that)),
# ATHENS_BIN (.build/debug/athens), ATHENS_PLUGINS (the athens binary's folder).
#
# Env lines: DEPLOY_URL (nginx), DEPLOY_INSTANCE_PORTS, DEPLOY_REDIS_PORT, DEPLOY_UPSTREAM, DEPLOY_UPSTREAM_LOG,
# DEPLOY_BUCKET, DEPLOY_DIR. Logs: DIR/athens-N.log (with the access log), DIR/nginx/access.log (one line per
# request: status, upstream address(es) it went to, bytes), DIR/redis/redis.log.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command=${1:-}
dir=${2:-}
[[ -n $command && -n $dir ]] || { sed -n '2,26p' "$0" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pids=$dir/pids

say() { printf '[deploy] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

answers() { curl -sf -o /dev/null --max-time 2 "$1"; }

# Records NAME PID; `stop` kills only what is listed here.
record() { echo "$1 $2" >>"$pids"; }
pid_of() { awk -v n="$1" '$1 == n { p = $2 } END { print p }' "$pids" 2>/dev/null; }
forget() { [[ -f $pids ]] && { grep -v "^$1 " "$pids" >"$pids.new" || true; mv "$pids.new" "$pids"; }; }

kill_pid() {
    local signal=$1 pid=$2
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill "-$signal" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
}

athens_binary() {
    local found
    for found in "${ATHENS_BIN:-}" "$root/.build/debug/athens" "$root"/.build/*/debug/athens; do
        [[ -n $found && -x $found ]] && { echo "$found"; return; }
    done
    echo "$root/.build/debug/athens"
}

# s3 make|remove BUCKET: creates the bucket with a SigV4-signed PUT (botocore signs; the tests need it anyway), or
# deletes what is in it (objects, unfinished multipart uploads) and then the bucket.
s3() {
    python3 - "$1" "$2" <<'EOF'
import os, sys, urllib.error, urllib.parse, urllib.request
import xml.etree.ElementTree as ET
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
e = os.environ
ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
def send(method, path, query=""):
    request = AWSRequest(method=method, url=e["ATHENS_S3_TEST_ENDPOINT"].rstrip("/") + path + query, data=b"")
    credentials = Credentials(e["ATHENS_S3_TEST_ACCESS_KEY"], e["ATHENS_S3_TEST_SECRET_KEY"])
    S3SigV4Auth(credentials, "s3", e.get("ATHENS_S3_TEST_REGION", "us-east-1")).add_auth(request)
    prepared = request.prepare()
    with urllib.request.urlopen(urllib.request.Request(prepared.url, data=b"" if method == "PUT" else None, method=method,
                                                       headers=dict(prepared.headers)), timeout=20) as answer:
        return answer.read()
command, bucket = sys.argv[1], "/" + sys.argv[2]
if command == "make":
    # A PUT of a bucket is idempotent: under a loaded machine the gateway can take longer than one timeout (seen in a
    # full parallel suite run), so try again; 409 BucketAlreadyOwnedByYou means an earlier try got through.
    for attempt in range(3):
        try:
            send("PUT", bucket)
            sys.exit(0)
        except urllib.error.HTTPError as error:
            if error.code == 409:
                sys.exit(0)
            raise
        except (TimeoutError, urllib.error.URLError):
            if attempt == 2:
                raise
while True:
    listed = ET.fromstring(send("GET", bucket, "?list-type=2"))
    keys = [c.find(ns + "Key").text for c in listed.iter(ns + "Contents")]
    for key in keys:
        send("DELETE", bucket + "/" + urllib.parse.quote(key, safe="/"))
    if not keys:
        break
for upload in ET.fromstring(send("GET", bucket, "?uploads")).iter(ns + "Upload"):
    key, upload_id = upload.find(ns + "Key").text, upload.find(ns + "UploadId").text
    send("DELETE", bucket + "/" + urllib.parse.quote(key, safe="/"), "?uploadId=" + urllib.parse.quote(upload_id))
send("DELETE", bucket)
EOF
}

setting() { sed -n "s/^export $1=//p" "$dir/env" | tr -d '"'; }

start_redis() {
    local port=$1
    mkdir -p "$dir/redis"
    unblocked redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/redis" --save "" --appendonly no --daemonize no \
        --logfile "$dir/redis/redis.log" </dev/null >/dev/null 2>&1 &
    record redis $!
    wait_for 20 "redis on $port" redis_answers "$port"
}

redis_answers() { [[ $(redis-cli -h 127.0.0.1 -p "$1" ping) == PONG ]]; }

# Runs "$@" with no signal blocked or ignored: a caller (a test runner's thread) may have SIGTERM blocked, and a
# daemon inheriting that would ignore `stop` and a rolling restart's SIGTERM. No fd but 0-2 either: a caller's
# pipe or socket held by a daemon would keep the caller waiting for its end (Foundation's Process does).
unblocked() {
    exec python3 -c 'import os, signal, sys
signal.pthread_sigmask(signal.SIG_SETMASK, [])
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP): signal.signal(s, signal.SIG_DFL)
os.closerange(3, os.sysconf("SC_OPEN_MAX"))
os.execvp(sys.argv[1], sys.argv[1:])' "$@"
}

instance_port() { setting DEPLOY_INSTANCE_PORTS | cut -d' ' -f"$1"; }

launch_instance() {
    unblocked "$athens" --config "$dir/athens-$1.json" </dev/null >>"$dir/athens-$1.log" 2>&1 &
    record "athens-$1" $!
}

await_instance() { wait_for 60 "athens-$1 on $(instance_port "$1")" answers "http://127.0.0.1:$(instance_port "$1")/readyz"; }

start_instance() {
    launch_instance "$1"
    await_instance "$1"
}

write_manifest() {
    local n=$1 port=$2 s3_timeout=${DEPLOY_S3_TIMEOUT_SECONDS:-}
    mkdir -p "$dir/spool-$n"
    python3 - "$dir/athens-$n.json" <<EOF
import json, sys
manifest = {
    "listen": "127.0.0.1:$port", "pluginDirectory": "$plugins", "spoolDirectory": "$dir/spool-$n",
    "server": {"maxConnections": 4000, "maxConnectionsPerClient": 4000},
    "storage": {"plugin": "S3Storage", "config": {
        "endpoint": "$ATHENS_S3_TEST_ENDPOINT", "bucket": "$bucket", "region": "${ATHENS_S3_TEST_REGION:-us-east-1}",
        "accessKeyId": "$ATHENS_S3_TEST_ACCESS_KEY", "secretAccessKey": "$ATHENS_S3_TEST_SECRET_KEY",
        **({"timeoutSeconds": float("$s3_timeout")} if "$s3_timeout" else {})}},
    "fetchers": [{"name": "upstream", "plugin": "ProxyFetcher",
                  "config": {"url": "$fetch_url", "timeoutSeconds": 60, "zipTimeoutSeconds": 120}}],
    "stash": {"timeoutSeconds": 120, "wrappers": [
        {"type": "singleflight", "lock": {"plugin": "RedisLock", "config": {"url": "redis://127.0.0.1:$redis_port/0"},
                                          "leaseSeconds": ${DEPLOY_LEASE_SECONDS:-10}, "waitSeconds": 120}},
        {"type": "pool", "workers": 8}]},
}
if "${DEPLOY_LOCK:-1}" == "0":
    del manifest["stash"]["wrappers"][0]["lock"]  # local single-flight only (the bench's "without the lock")
json.dump(manifest, open(sys.argv[1], "w"), indent=1)
EOF
}

write_nginx() {
    local port=$1
    shift
    mkdir -p "$dir/nginx/temp"
    local servers="" p
    # max_fails=3: one failed attempt (a reused keep-alive connection the instance had just closed, a moment of
    # overload) must not take an instance out for fail_timeout; with one instance restarting and a race on each of
    # the other two, max_fails=1 left none ("no live upstreams" 502s for everyone, seen once in a loaded CI run).
    # A stopped instance refuses every connection, so it is out after three attempts, each retried elsewhere.
    for p in "$@"; do servers+="        server 127.0.0.1:$p max_fails=3 fail_timeout=2s;"$'\n'; done
    # As root, nginx's workers would switch to nobody and could not write the run folder.
    local user=""
    [[ $EUID -eq 0 ]] && user="user root;"
    cat >"$dir/nginx/nginx.conf" <<EOF
$user
worker_processes 2;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
    log_format deploy '\$status \$request_method \$request_uri upstream=\$upstream_addr status=\$upstream_status bytes=\$body_bytes_sent';
    access_log $dir/nginx/access.log deploy;
    client_body_temp_path $dir/nginx/temp/body;
    proxy_temp_path $dir/nginx/temp/proxy;
    fastcgi_temp_path $dir/nginx/temp/fastcgi;
    uwsgi_temp_path $dir/nginx/temp/uwsgi;
    scgi_temp_path $dir/nginx/temp/scgi;

    # zone: the instances' failure state is shared by both nginx workers. Without it each worker keeps its own, so
    # an instance back in one worker could still be out in the other; a rolling restart that moved on when the first
    # worker sent to it again left the second with all three out ("no live upstreams", seen in CI and here 2 in 6).
    upstream athens {
        zone athens 64k;
$servers        keepalive 32;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://athens;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header Athens-Request-ID \$request_id;
            # GETs are idempotent: a refused or reset connection (an instance stopping) is retried on the next.
            # Not a 502/503: athens answers those for what every instance shares (the origin, the bucket, the
            # lock), so a retry repeats the fetch and marks healthy instances failed (max_fails): one bad module
            # took two of three out for fail_timeout, and "no live upstreams" 502s followed for everyone.
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
            # A cold .zip waits for the fetch (athens's stash.timeoutSeconds bounds it).
            proxy_read_timeout 300s;
            # Buffer in memory so small answers free the upstream connection at once, but never spool a large zip
            # to disk: past the buffers nginx passes it on at the client's pace.
            proxy_buffering on;
            proxy_buffers 16 64k;
            proxy_busy_buffers_size 128k;
            proxy_max_temp_file_size 0;
        }
    }
}
EOF
}

start() {
    [[ -n ${ATHENS_S3_TEST_ENDPOINT:-} && -n ${ATHENS_S3_TEST_ACCESS_KEY:-} ]] ||
        die "no S3 endpoint: set ATHENS_S3_TEST_ENDPOINT, _ACCESS_KEY, _SECRET_KEY (eval \"\$(scripts/rgw.sh start)\")"
    [[ -s $pids ]] && die "$dir already has a deployment (scripts/deploy.sh stop $dir first)"
    athens=$(athens_binary)
    plugins=${ATHENS_PLUGINS:-$(dirname "$athens")}
    [[ -x $athens ]] || die "no athens binary at $athens (swift build)"
    command -v nginx >/dev/null || die "nginx is not installed (apt-get install nginx)"
    command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server)"
    local count=${DEPLOY_INSTANCES:-3}
    # Anything that fails from here on leaves nothing running.
    trap 'status=$?; ((status == 0)) || { stop; exit $status; }' EXIT

    local ports
    read -r -a ports <<<"$(free_ports $((count + 2)))"
    redis_port=${ports[0]}
    local nginx_port=${ports[1]}
    local instance_ports=("${ports[@]:2}")

    bucket=${DEPLOY_BUCKET:-athens-deploy-$(date +%s)-$RANDOM}
    if [[ -z ${DEPLOY_BUCKET:-} ]]; then
        s3 make "$bucket" ||
            die "could not create bucket $bucket at $ATHENS_S3_TEST_ENDPOINT"
        # Ours to remove at `stop` (a shared gateway fills up with the buckets of past runs otherwise).
        echo "$bucket" >"$dir/bucket-made"
    fi

    local upstream
    if [[ -n ${DEPLOY_UPSTREAM_URL:-} ]]; then
        upstream=$DEPLOY_UPSTREAM_URL
    else
        local tree=${DEPLOY_UPSTREAM_ROOT:-}
        if [[ -z $tree ]]; then
            tree=$dir/tree
            [[ -d $tree ]] || python3 "$root/Tests/Fixtures/make_fixture_proxy.py" "$tree"
        fi
        unblocked python3 -u "$root/Tests/Fixtures/fake_upstream.py" --root "$tree" --port 0 --log "$dir/upstream.log" \
            </dev/null >"$dir/upstream.out" 2>&1 &
        record upstream $!
        wait_for 20 "the upstream's port" grep -q '[0-9]' "$dir/upstream.out"
        upstream=http://127.0.0.1:$(head -1 "$dir/upstream.out" | grep -o '[0-9]*$')
    fi
    fetch_url=$upstream${DEPLOY_UPSTREAM_PATH:-}

    cat >"$dir/env" <<EOF
export DEPLOY_DIR=$dir
export DEPLOY_URL=http://127.0.0.1:$nginx_port
export DEPLOY_INSTANCE_PORTS="${instance_ports[*]}"
export DEPLOY_REDIS_PORT=$redis_port
export DEPLOY_UPSTREAM=$upstream
export DEPLOY_UPSTREAM_LOG=$dir/upstream.log
export DEPLOY_BUCKET=$bucket
EOF

    start_redis "$redis_port"
    local n
    for ((n = 1; n <= count; n++)); do write_manifest "$n" "${instance_ports[n - 1]}"; done
    # Started together, then waited for: start-up is mostly loading plugins.
    for ((n = 1; n <= count; n++)); do launch_instance "$n"; done
    for ((n = 1; n <= count; n++)); do await_instance "$n"; done

    write_nginx "$nginx_port" "${instance_ports[@]}"
    unblocked nginx -p "$dir/nginx" -e "$dir/nginx/error.log" -c "$dir/nginx/nginx.conf" -g 'daemon off;' </dev/null >/dev/null 2>&1 &
    record nginx $!
    wait_for 20 "nginx on $nginx_port" answers "http://127.0.0.1:$nginx_port/healthz"
    trap - EXIT
    cat "$dir/env"
}

stop() {
    [[ -f $pids ]] || return 0
    # nginx first (no new requests reach the instances), then the rest at once; each waited for by its pid.
    kill_pid TERM "$(pid_of nginx)"
    local name pid waiting=()
    while read -r name pid; do
        [[ $name == nginx ]] && continue
        kill -TERM "$pid" 2>/dev/null && waiting+=("$pid")
    done <"$pids"
    for pid in "${waiting[@]}"; do kill_pid TERM "$pid"; done
    rm -f "$pids"
    if [[ -s $dir/bucket-made && -z ${DEPLOY_KEEP_BUCKET:-} ]]; then
        if [[ -n ${ATHENS_S3_TEST_ENDPOINT:-} ]] && s3 remove "$(cat "$dir/bucket-made")" 2>"$dir/bucket-remove.err"; then
            rm -f "$dir/bucket-made"
        else
            say "bucket $(cat "$dir/bucket-made") left in place (no S3 settings, or the gateway refused: $dir/bucket-remove.err)"
        fi
    fi
}

case $command in
start) start ;;
env) cat "$dir/env" ;;
stop) stop ;;
stop-redis)
    kill_pid KILL "$(pid_of redis)"
    forget redis
    ;;
start-redis) start_redis "$(setting DEPLOY_REDIS_PORT)" ;;
restart)
    n=${3:?instance number}
    athens=$(athens_binary)
    kill_pid TERM "$(pid_of "athens-$n")"
    forget "athens-$n"
    start_instance "$n"
    ;;
*) die "unknown command $command (start, env, stop, stop-redis, start-redis, restart)" ;;
esac

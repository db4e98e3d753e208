#!/usr/bin/env bash
# A throwaway S3 server for the tests: single-node Ceph (one monitor, one OSD, one RADOS Gateway) on 127.0.0.1,
# everything under one run folder, data in RAM (memstore: ~2 s cold start, gone on stop).
#
#   scripts/rgw.sh start            # installs the Ceph packages if missing, starts, prints the env lines
#   scripts/rgw.sh env              # prints the env lines of the running cluster (eval "$(scripts/rgw.sh env)")
#   scripts/rgw.sh stop             # stops the three daemons by their pid files, removes the run folder
#   scripts/rgw.sh stop-gateway     # stops only the gateway; start-gateway brings it back
#   scripts/rgw.sh gateway PORT     # runs one more gateway of the cluster in the foreground on PORT. Stopping
#                                   # one leaves its cache watch behind: for ~30 s every bucket creation on the
#                                   # cluster waits for it (RGWSI_Notify::robust_notify), so the tests do not use it
#
# Env lines: ATHENS_S3_TEST_ENDPOINT, _ACCESS_KEY, _SECRET_KEY, _REGION (the tests read these).
# Run folder: $RGW_DIR, default <repo>/.build-rgw (git-ignored). Ports: picked free by the OS at start.
# Facts behind the settings: ../shared/notes/ceph-rgw.md (cephx off, so the gateway talks crc to the monitor;
# fast paxos, else the gateway's first start waits ~1 s per pool it creates).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${RGW_DIR:-$root/.build-rgw}
conf=$dir/ceph.conf
# Fixed keys: the server only listens on loopback and lives for one test run.
access_key=ATHENSTESTACCESSKEY1
secret_key=athens/test/secret/key/0123456789abcdefghij
gateway=client.rgw.athens

say() { printf '[rgw] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

install_packages() {
    local need=()
    for package in ceph-mon ceph-osd radosgw ceph-common; do
        dpkg -s "$package" >/dev/null 2>&1 || need+=("$package")
    done
    ((${#need[@]})) || return 0
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# Prints N distinct ports the OS reports free on 127.0.0.1.
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

gateway_answers() {
    python3 - "$1" <<'EOF'
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/", timeout=2).read()
EOF
}

env_lines() {
    [[ -f $dir/endpoint ]] || die "not running (no $dir/endpoint)"
    cat <<EOF
export ATHENS_S3_TEST_ENDPOINT=$(cat "$dir/endpoint")
export ATHENS_S3_TEST_ACCESS_KEY=$access_key
export ATHENS_S3_TEST_SECRET_KEY=$secret_key
export ATHENS_S3_TEST_REGION=us-east-1
export ATHENS_S3_TEST_RGW_DIR=$dir
EOF
}

start_gateway() {
    radosgw -c "$conf" -n "$gateway"
    wait_for 60 "the gateway on $(cat "$dir/endpoint")" gateway_answers "$(cat "$dir/endpoint")"
}

start() {
    [[ -f $dir/endpoint ]] && die "already running in $dir (scripts/rgw.sh stop first)"
    install_packages
    rm -rf "$dir"
    mkdir -p "$dir"/{run,log,mon,osd/osd.0,rgw}
    local ports fsid osd_uuid
    read -r mon2 mon1 http <<<"$(free_ports 3)"
    fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
    osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
    cat >"$conf" <<EOF
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$mon2,v1:127.0.0.1:$mon1]
public_addr = 127.0.0.1
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
keyring = /dev/null
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_max_pg_per_osd = 1000
paxos_propose_interval = 0.1
paxos_min_wait = 0.01
run_dir = $dir/run
log_file = $dir/log/\$name.log
admin_socket = $dir/run/\$name.asok
pid_file = $dir/run/\$name.pid
mon_data = $dir/mon/\$name
osd_data = $dir/osd/\$name

[osd]
osd_objectstore = memstore
memstore_device_bytes = 4294967296
osd_memory_target = 1073741824

[$gateway]
rgw_frontends = beast endpoint=127.0.0.1:$http
rgw_data = $dir/rgw
ms_mon_client_mode = crc
# Deleted objects' data is freed by the garbage collector, by default 2 h later: with data in a 4 GiB memstore
# that many test runs share, the tests' 300 MiB zips would fill it (writes then hang) long before that.
rgw_gc_obj_min_wait = 30
rgw_gc_processor_period = 30
EOF
    echo "http://127.0.0.1:$http" >"$dir/endpoint.pending"
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon2,v1:127.0.0.1:$mon1]" "$dir/monmap" >/dev/null
    ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap"
    ceph-mon -c "$conf" -i a
    wait_for 30 "the monitor" ceph -c "$conf" --connect-timeout 2 mon stat
    local id
    id=$(ceph -c "$conf" osd new "$osd_uuid")
    [[ $id == 0 ]] || die "osd new printed '$id', expected 0"
    ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$dir/log/setup.log" 2>&1
    ceph-osd -c "$conf" -i 0 2>>"$dir/log/setup.log"
    mv "$dir/endpoint.pending" "$dir/endpoint"
    start_gateway
    radosgw-admin -c "$conf" user create --uid=athens-test --display-name="athens tests" \
        --access-key="$access_key" --secret-key="$secret_key" >/dev/null
    say "running: $(cat "$dir/endpoint") (folder $dir)"
    env_lines
}

# Stops one daemon by its pid file, if that pid is still that daemon; waits for it to go.
stop_daemon() {
    local name=$1 comm=$2
    local pid_file=$dir/run/$name.pid
    [[ -f $pid_file ]] || return 0
    local pid
    pid=$(cat "$pid_file")
    if [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 20))
        while [[ -d /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
        # Data lives in RAM and is thrown away anyway: do not let a slow shutdown hold up the test run.
        [[ -d /proc/$pid ]] && kill -KILL "$pid" 2>/dev/null || true
        while [[ -d /proc/$pid ]]; do sleep 0.05; done
    fi
    rm -f "$pid_file"
}

stop() {
    [[ -d $dir/run ]] || return 0
    stop_daemon "$gateway" radosgw
    stop_daemon osd.0 ceph-osd
    stop_daemon mon.a ceph-mon
    rm -rf "$dir"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    env) env_lines ;;
    stop-gateway) stop_daemon "$gateway" radosgw ;;
    start-gateway) start_gateway ;;
    gateway)
        [[ ${2:-} =~ ^[0-9]+$ ]] || die "usage: scripts/rgw.sh gateway PORT"
        exec radosgw -c "$conf" -n "$gateway" -f --rgw_frontends="beast endpoint=127.0.0.1:$2" \
            --pid_file="$dir/run/extra-$2.pid" --admin_socket="$dir/run/extra-$2.asok" --log_file="$dir/log/extra-$2.log" ;;
    *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac

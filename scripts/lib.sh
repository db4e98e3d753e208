# Shell helpers shared by scripts/rgw.sh and scripts/deploy.sh. Sourced after the caller has defined `die` and
# `dir` (its state folder, named in timeout messages).

# Prints N free loopback TCP ports (picked by the kernel, released at once).
free_ports() {
    python3 -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

# Polls `$@` until it succeeds or `seconds` pass.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out after ${seconds}s waiting for $what (logs in $dir)"
        sleep 0.1
    done
}

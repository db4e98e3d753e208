#!/usr/bin/env bash
# A/B of the cold path on a file system in a known state: every run of cold_bench.py gets a brand-new ext4 made in
# a RAM-backed image (loop-mounted), so neither variant inherits the other's deleted inodes. (On this VM's root file
# system - ext4 without a journal - each file creation scans past every inode of its group freed in the last
# minutes, so a run's figures depended on the runs before it: 1.8 -> 7.8 ms CPU per module over four runs of the
# same binary.) The device is RAM, so fsync costs CPU, not device latency: compare CPU per module, not wall time.
#
#   bench/cold_ab.sh [--journal] [--rounds N] [--small N] [--large N] DIR_A DIR_B
#
# DIR_A, DIR_B: folders that each hold an `athens` binary and its plugins (e.g. copies of .build/release made
# before and after a change). --journal makes ext4 with its journal (a production file system); the default is
# without, like this VM's root. Rounds alternate A, B (default 3). Needs root (mkfs, mount -o loop), python3 and
# nginx (cold_bench.py's upstream). Prints each run's cold_bench.py table, then the medians per variant.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JOURNAL=0 ROUNDS=3 SMALL=500 LARGE=200
while [[ $# -gt 0 ]]; do
    case $1 in
        --journal) JOURNAL=1; shift ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --small) SMALL=$2; shift 2 ;;
        --large) LARGE=$2; shift 2 ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        -*) echo "cold_ab.sh: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[[ $# == 2 ]] || { sed -n 8,8p "$0" >&2; exit 2; }
A=$(cd "$1" && pwd) B=$(cd "$2" && pwd)
for dir in "$A" "$B"; do [[ -x $dir/athens ]] || { echo "cold_ab.sh: no athens in $dir" >&2; exit 2; }; done
[[ $EUID == 0 ]] || { echo "cold_ab.sh: needs root (mkfs and mount -o loop)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/cold-ab.XXXXXX)
IMAGE=/dev/shm/cold-ab-$$.img MOUNT=$WORK/mnt
mkdir -p "$MOUNT"
cleanup() {
    mountpoint -q "$MOUNT" && umount "$MOUNT"
    rm -f "$IMAGE"
    rm -rf "$WORK"
}
trap cleanup EXIT

features=()
((JOURNAL)) || features=(-O ^has_journal)
for round in $(seq "$ROUNDS"); do
    for variant in A B; do
        dir=$A
        [[ $variant == B ]] && dir=$B
        truncate -s 3G "$IMAGE"
        mkfs.ext4 -q -F "${features[@]}" "$IMAGE"
        mount -o loop "$IMAGE" "$MOUNT"
        echo "== $variant, round $round ($dir; ext4 $( ((JOURNAL)) && echo with || echo without ) journal)"
        python3 "$BENCH_DIR/cold_bench.py" --athens "$dir/athens" --plugins "$dir" --small "$SMALL" --large "$LARGE" \
            --reps 3 --no-relay --storage-parent "$MOUNT" --json "$WORK/$variant-$round.json" | tail -n +2
        umount "$MOUNT"
        rm -f "$IMAGE"
    done
done

python3 - "$WORK" "$ROUNDS" <<'EOF'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
print("\nmedians over %d rounds (each round: cold_bench.py's median of 3 reps)" % rounds)
print("%-8s %-3s %14s %18s" % ("zip", "", "athens wall s", "athens cpu ms/mod"))
for variant in "AB":
    runs = [json.load(open("%s/%s-%d.json" % (work, variant, r))) for r in range(1, rounds + 1)]
    for i, s in enumerate(runs[0]["sets"]):
        wall = statistics.median(run["sets"][i]["athens_s"] for run in runs)
        cpu = statistics.median(run["sets"][i]["athens_cpu_ms_per_module"] for run in runs)
        print("%-8s %-3s %14.3f %18.2f" % (s["zip"], variant, wall, cpu))
EOF

# Sourced by run.sh --all after the warm tests and the pipelining check: runs store_bench.py, cold_bench.py and
# soak.sh with the same athens binary and plugins, appends each one's normal output to the results file, then
# bench/summary.py's issue-15 table (to the results file and to stdout). A sub-bench that fails is named under the
# table and makes run.sh exit 1; its figures show "-".
# Expects from run.sh: BENCH_DIR ATHENS_BIN PLUGIN_DIR NGINX_BIN TMP OUT RUNS_TSV RSS_TSV PIPE_TXT BASE_LABEL
# CAND_LABEL QUICK REPS DURATION STORAGE KEEP, and ALL_STORE ALL_COLD ALL_SOAK SOAK_MIN (its own options).

# --quick shrinks the slow parts too, and says so above the table.
if [[ $QUICK == 1 ]]; then
    STORE_VERSIONS=100000 COLD_SMALL=100 COLD_LARGE=40
else
    STORE_VERSIONS=1000000 COLD_SMALL=500 COLD_LARGE=200
fi
ALL_FAILED=()

sub_bench() {  # sub_bench NAME OUTFILE CMD...: runs CMD, its stdout to OUTFILE and stderr (progress), and into $OUT
    local name=$1 file=$2 rc=0
    shift 2
    log "$name: $*"
    "$@" 2>&1 | tee "$file" >&2 || rc=$?
    {
        echo
        echo "== $name ($*)"
        cat "$file"
        [[ $rc == 0 ]] || echo "$name FAILED (exit $rc)"
    } >>"$OUT"
    [[ $rc == 0 ]] || { ALL_FAILED+=("$name"); rm -f "${file%.txt}.json"; }
}

if [[ $ALL_STORE == 1 ]]; then
    sub_bench store_bench.py "$TMP/store.txt" python3 "$BENCH_DIR/store_bench.py" --athens "$ATHENS_BIN" \
        --plugins "$PLUGIN_DIR" --versions "$STORE_VERSIONS" --json "$TMP/store.json"
fi
if [[ $ALL_COLD == 1 ]]; then
    sub_bench cold_bench.py "$TMP/cold.txt" python3 "$BENCH_DIR/cold_bench.py" --athens "$ATHENS_BIN" \
        --plugins "$PLUGIN_DIR" --nginx "$NGINX_BIN" --small "$COLD_SMALL" --large "$COLD_LARGE" --json "$TMP/cold.json"
fi
if [[ $ALL_SOAK == 1 ]]; then
    soak_args=(--minutes "$SOAK_MIN")
    [[ $KEEP == 0 ]] || soak_args+=(--keep)
    # soak.sh takes the binaries from the environment (helpers.sh).
    sub_bench soak.sh "$TMP/soak.txt" env ATHENS_BIN="$ATHENS_BIN" PLUGIN_DIR="$PLUGIN_DIR" \
        "$BENCH_DIR/soak.sh" "${soak_args[@]}"
fi

sizes="warm: $STORAGE, medians of $REPS reps x ${DURATION}s"
if [[ $ALL_STORE == 1 ]]; then sizes+="; store $STORE_VERSIONS vs 3000 versions"; else sizes+="; store skipped"; fi
if [[ $ALL_COLD == 1 ]]; then sizes+="; cold $COLD_SMALL x 10 KiB / $COLD_LARGE x 1 MiB, 32 clients"; else sizes+="; cold skipped"; fi
if [[ $ALL_SOAK == 1 ]]; then sizes+="; soak $SOAK_MIN min"; else sizes+="; soak skipped"; fi
summary_args=(--runs "$RUNS_TSV" --rss "$RSS_TSV" --pipeline "$PIPE_TXT" --store "$TMP/store.json"
    --cold "$TMP/cold.json" --soak "$TMP/soak.txt" --soak-minutes "$SOAK_MIN"
    --baseline "$BASE_LABEL" --candidate "$CAND_LABEL" --note "$sizes")
if [[ $QUICK == 1 ]]; then
    summary_args+=(--note "QUICK RUN (--quick): smaller tree, store, cold sets and shorter runs than issue 15 asks; not the real figures")
fi
[[ ${#ALL_FAILED[@]} == 0 ]] || summary_args+=(--note "FAILED: ${ALL_FAILED[*]} (their figures are missing; output above)")
{
    echo
    python3 "$BENCH_DIR/summary.py" "${summary_args[@]}"
} >>"$OUT"

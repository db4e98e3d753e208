#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for a number of executions, one target at a time.
#
#   fuzz/run.sh                      # every target, 10,000,000 executions each
#   fuzz/run.sh -n 100000 zip        # one target, 100,000 executions
#   fuzz/run.sh --build-only         # then --no-build to run what is built (e.g. two run.sh side by side)
#   fuzz/run.sh -j 2                 # two targets at a time (only on an otherwise idle machine)
#   fuzz/run.sh --repro zip FILE     # run one saved input through a target (after a crash)
#
# Targets: request_parser, module_path, manifest, zip, gomod, tar_reader, router, sumdb_path, s3_xml, sumdb_note,
# resp, json (sources in fuzz/targets/, seeds in fuzz/corpus/<target>/).
# Environment: FUZZ_BUILD (default <repo>/.build-fuzz, git-ignored: binaries, generated corpus, logs, crash
# inputs), FUZZ_SANITIZERS (default "fuzzer,address"; "fuzzer" alone runs about 3x faster),
# FUZZ_RUNS (default 10000000), FUZZ_SECONDS (default 0: no time limit).
#
# The host is an executable target, so it is not linked: its sources (all but main.swift) are compiled into a
# static library with -enable-testing, which the targets import with @testable; GoModule and HTTPClient likewise
# (the binaries link the system zlib and libcurl).
# Prints per target: executions, exec/s, wall time, coverage (edges, features), crashes. Exit status 1 if any
# target crashed; the crashing input is in $FUZZ_BUILD/crashes/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FUZZ_BUILD:-$root/.build-fuzz}
sanitizers=${FUZZ_SANITIZERS:-fuzzer,address}
runs=${FUZZ_RUNS:-10000000}
seconds=${FUZZ_SECONDS:-0}
parallel=1
build_only=0
no_build=0
repro=()
targets=()
all_targets=(request_parser module_path manifest zip gomod tar_reader router sumdb_path s3_xml sumdb_note)
all_targets+=(resp)  # the RESP2 reply reader of Plugins/RedisLock/Client
all_targets+=(json)  # the one JSON reader (Sources/JSON)

while (($#)); do
    case $1 in
        -n) runs=$2; shift 2 ;;
        -j) parallel=$2; shift 2 ;;
        --build-only) build_only=1; shift ;;
        --no-build) no_build=1; shift ;;
        --repro) repro=("$2" "$3"); shift 3 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")
((${#repro[@]})) && targets=("${repro[0]}")

# Per-target settings: longest input, dictionary, and the object libraries it links.
max_len() {
    case $1 in
        request_parser) echo 2048 ;;  # past the tiny limits; the default limits are tested with seeds near them
        module_path) echo 1024 ;;
        manifest) echo 4096 ;;
        zip) echo 8192 ;;
        gomod) echo 4096 ;;
        tar_reader) echo 2048 ;;  # four 512-byte blocks: a pax header and its records, a member header, contents
        router) echo 2048 ;;
        sumdb_path) echo 512 ;;
        s3_xml) echo 4096 ;;
        sumdb_note) echo 12288 ;;  # a lookup answer and three tiles of a 300-record tree
        resp) echo 4096 ;;
        json) echo 4096 ;;
    esac
}
libraries() {
    case $1 in
        zip|gomod|s3_xml) echo "GoModule" ;;
        tar_reader) echo "PluginKit JSON Basics" ;;
        sumdb_note) echo "SumDB Digests GoModule" ;;
        resp) echo "RedisClient Basics" ;;
        json) echo "JSON" ;;
        *) echo "RequestPath PluginHost HostSupport HTTPClient SumDB GoModule Digests JSON Basics" ;;
    esac
}
# Plugin sources a target compiles into itself (plugins are not libraries the host links).
extra_sources() {
    case $1 in
        tar_reader) echo "$root/Plugins/GitFetcher/TarReader.swift" ;;
        router) echo "$root/fuzz/glue/InMemoryPlugins.swift $root/fuzz/glue/BlockedSumDB.swift" ;;
        sumdb_path) echo "$root/fuzz/glue/BlockedSumDB.swift" ;;
        s3_xml) echo "$root/Plugins/S3Storage/Core/XMLReader.swift $root/Plugins/S3Storage/Core/S3Responses.swift" ;;
    esac
}
# Linker flags of a target: the router's plugin shims call back into the binary for their tables.
link_flags() {
    case $1 in
        router) echo "-Xlinker --export-dynamic-symbol=athens_fuzz_plugin" ;;
    esac
}

out=$build/$(echo "$sanitizers" | tr ',' '-')
mkdir -p "$out" "$build/corpus" "$build/logs" "$build/crashes"
swift_flags=(-O -parse-as-library -swift-version 6 -package-name athens -sanitize="$sanitizers" -I "$out"
    -Xcc -fmodule-map-file="$root/fuzz/glue/PluginABI/module.modulemap"
    -Xcc -fmodule-map-file="$root/fuzz/glue/SystemShims/module.modulemap"
    -Xcc -fmodule-map-file="$root/Sources/CCrypto/module.modulemap" -Xcc -fmodule-map-file="$root/Sources/CZlib/module.modulemap"
    -Xcc -fmodule-map-file="$root/Sources/CCurl/module.modulemap")
c_sanitizers=fuzzer-no-link
[[ $sanitizers == *address* ]] && c_sanitizers+=,address

say() { printf '[fuzz] %s\n' "$*" >&2; }

build_all() {
    say "building ($sanitizers) into $out"
    clang -c -O1 -fsanitize="$c_sanitizers" -I "$root/Sources/SystemShims/include" \
        "$root/Sources/SystemShims/shims.c" -o "$out/shims.o"
    clang -c -O1 -fsanitize="$c_sanitizers" -I "$root/Sources/SystemShims/include" \
        "$root/Sources/SystemShims/crash_report.c" -o "$out/crash_report.o"
    # What FoundationEssentials lacks (locks, threads, fd writes, string helpers): the host and PluginKit import it.
    swiftc "${swift_flags[@]}" -emit-library -static -module-name Basics \
        -emit-module -emit-module-path "$out/Basics.swiftmodule" \
        "$root"/Sources/Basics/*.swift -o "$out/libBasics.a"
    swiftc "${swift_flags[@]}" -emit-library -static -module-name GoModule \
        -emit-module -emit-module-path "$out/GoModule.swiftmodule" \
        "$root"/Sources/GoModule/*.swift -o "$out/libGoModule.a"
    # The host's HTTP client (upstream calls) over the system libcurl.
    swiftc "${swift_flags[@]}" -emit-library -static -module-name HTTPClient \
        -emit-module -emit-module-path "$out/HTTPClient.swiftmodule" \
        "$root"/Sources/HTTPClient/*.swift -o "$out/libHTTPClient.a"
    # The one JSON reader: PluginKit and the host's RequestPath and PluginCheck import it.
    swiftc "${swift_flags[@]}" -emit-library -static -module-name JSON \
        -emit-module -emit-module-path "$out/JSON.swiftmodule" \
        "$root"/Sources/JSON/*.swift -o "$out/libJSON.a"
    swiftc "${swift_flags[@]}" -emit-library -static -module-name PluginKit \
        -emit-module -emit-module-path "$out/PluginKit.swiftmodule" \
        "$root"/Plugins/PluginKit/*.swift -o "$out/libPluginKit.a"
    swiftc "${swift_flags[@]}" -emit-library -static -module-name Digests \
        -emit-module -emit-module-path "$out/Digests.swiftmodule" \
        "$root"/Sources/Digests/*.swift -o "$out/libDigests.a"
    swiftc "${swift_flags[@]}" -emit-library -static -module-name SumDB \
        -emit-module -emit-module-path "$out/SumDB.swiftmodule" \
        "$root"/Sources/SumDB/*.swift -o "$out/libSumDB.a"
    # The host's libraries, in dependency order (Package.swift): one module each, one package for `package` access.
    local host_module
    for host_module in HostSupport PluginHost RequestPath; do
        swiftc "${swift_flags[@]}" -emit-library -static -module-name "$host_module" -enable-testing \
            -emit-module -emit-module-path "$out/$host_module.swiftmodule" \
            $(find "$root/Sources/$host_module" -name '*.swift' | sort) -o "$out/lib$host_module.a"
    done
    # The router target's storage and fetcher: two tiny plugin files whose entry calls back into the binary.
    mkdir -p "$out/router-plugins"
    clang -shared -fPIC -O1 -DFUZZ_KIND=1 "$root/fuzz/glue/plugin_shim.c" -o "$out/router-plugins/libFuzzStorage.so"
    clang -shared -fPIC -O1 -DFUZZ_KIND=2 "$root/fuzz/glue/plugin_shim.c" -o "$out/router-plugins/libFuzzFetcher.so"
    # RedisClient (the resp target): Plugins/RedisLock/Client, Glibc only.
    swiftc "${swift_flags[@]}" -emit-library -static -module-name RedisClient -enable-testing \
        -emit-module -emit-module-path "$out/RedisClient.swiftmodule" \
        "$root"/Plugins/RedisLock/Client/*.swift -o "$out/libRedisClient.a"
    local target
    for target in "${targets[@]}"; do
        local source
        source=$(tr -d '_' <<<"$target")
        source=$(find "$root/fuzz/targets" -iname "${source}fuzz.swift" | head -1)
        [[ -n $source ]] || { say "no source for target $target"; exit 2; }
        local libs=()
        for lib in $(libraries "$target"); do libs+=("$out/lib$lib.a"); done
        # shellcheck disable=SC2046 # paths without spaces, one per word
        swiftc "${swift_flags[@]}" -use-ld=lld "$root/fuzz/targets/FuzzSupport.swift" "$source" $(extra_sources "$target") $(link_flags "$target") \
            "${libs[@]}" "$out/shims.o" "$out/crash_report.o" -lcrypto -lz -lcurl -o "$out/$target"
    done
}

# Runs one target; writes its log and a summary line to $build/logs/<target>.summary.
run_target() {
    local target=$1
    local corpus=$build/corpus/$target log=$build/logs/$target.log
    mkdir -p "$corpus"
    local args=(-runs="$runs" -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=4096
        -print_final_stats=1 -artifact_prefix="$build/crashes/$target-")
    ((seconds > 0)) && args+=(-max_total_time="$seconds")
    [[ -f $root/fuzz/dict/$target.dict ]] && args+=(-dict="$root/fuzz/dict/$target.dict")
    local started status=0
    started=$(date +%s)
    # The Swift runtime's backtracer would fight libFuzzer's crash handler (and can hang); leak checking is off
    # because the Swift runtime and Foundation keep caches alive on purpose.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} \
        "$out/$target" "${args[@]}" "$corpus" "$root/fuzz/corpus/$target" >"$log" 2>&1 || status=$?
    local elapsed=$(($(date +%s) - started))
    local executions rate coverage crashes
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    coverage=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
    crashes=$(find "$build/crashes" -name "$target-*" -newer "$log.start" 2>/dev/null | wc -l)
    ((status == 0)) || crashes=$((crashes > 0 ? crashes : 1))
    printf '%-15s %12s %9s %7ss  %-22s %s\n' "$target" "${executions:-?}" "${rate:-?}" "$elapsed" \
        "${coverage:-?}" "$crashes" >"$build/logs/$target.summary"
}

((no_build)) || build_all
((build_only)) && exit 0

if ((${#repro[@]})); then
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} "$out/${repro[0]}" "${repro[1]}"
    exit $?
fi

say "running ${targets[*]}: $runs executions each, $parallel at a time; logs in $build/logs"
running=0
for target in "${targets[@]}"; do
    touch "$build/logs/$target.log.start"
    run_target "$target" &
    running=$((running + 1))
    if ((running >= parallel)); then wait -n || true; running=$((running - 1)); fi
done
wait || true

printf '%-15s %12s %9s %8s  %-22s %s\n' target executions exec/s time coverage crashes
failed=0
for target in "${targets[@]}"; do
    cat "$build/logs/$target.summary"
    [[ $(awk '{print $NF}' "$build/logs/$target.summary") == 0 ]] || failed=1
done
((failed == 0)) || say "crash inputs: $build/crashes/ (reproduce: fuzz/run.sh --repro TARGET FILE)"
exit $failed

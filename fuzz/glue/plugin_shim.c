/* A plugin file whose entry forwards to the fuzz binary (fuzz/glue/InMemoryPlugins.swift), so the router
 * target loads its in-memory storage and fetcher through the host's real PluginLibrary checks.
 * Built twice by run.sh: -DFUZZ_KIND=1 (storage) and -DFUZZ_KIND=2 (fetcher). */
#include <stdint.h>

const void *athens_fuzz_plugin(uint32_t host_abi_major, int32_t kind);

const void *ath_plugin_query(uint32_t host_abi_major) { return athens_fuzz_plugin(host_abi_major, FUZZ_KIND); }

/*
 * A process that holds a lock, for FileLockTests: it drives a lock plugin through athens_plugin.h alone, as a host
 * written in C would.
 *   lock_holder <plugin.so> <config JSON> <key> <lease_ms>
 *       Takes the lock (waiting up to 60 s), prints "held <pid>" and waits to be killed.
 *   lock_holder <plugin.so> <config JSON> <key> <lease_ms> count <cycles> <counter file>
 *       <cycles> times: takes the lock, reads the number in <counter file>, yields, writes it back plus one,
 *       releases. Without mutual exclusion between the processes doing this at once, increments get lost.
 *       Prints "counted <cycles>" at the end.
 *   lock_holder <plugin.so> <config JSON> <key> <lease_ms> short
 *       As a host of a minor with smaller structs would: an ath_host and an ath_call of 8 bytes (struct_size and
 *       one more field), each laid right before a PROT_NONE page, so the plugin faults if it reads one byte past
 *       either struct_size. Takes the lock, refreshes it (same lease), releases it, prints "short ok".
 * Creates its instance with create_with_host (the host's log prints "log <level> <message>" on stderr). On
 * failure prints "error <status> <message>" and exits 1.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "athens_plugin.h"

#include <dlfcn.h>
#include <sched.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void host_log(void *host_ctx, ath_log_level level, const char *message) {
    (void)host_ctx;
    fprintf(stderr, "log %d %s\n", (int)level, message);
}

int main(int argc, char **argv) {
    if (argc != 5 && !(argc == 8 && strcmp(argv[5], "count") == 0) && !(argc == 6 && strcmp(argv[5], "short") == 0)) {
        fprintf(stderr, "usage: lock_holder <plugin.so> <config JSON> <key> <lease_ms> [count <cycles> <counter file>]\n");
        return 2;
    }
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!library) { printf("error dlopen %s\n", dlerror()); return 1; }
    ath_plugin_query_fn query = (ath_plugin_query_fn)(uintptr_t)dlsym(library, ATH_PLUGIN_QUERY_SYMBOL);
    const ath_plugin *plugin = query ? query(ATH_ABI_MAJOR) : NULL;
    if (!plugin || plugin->magic != ATH_MAGIC || plugin->kind != ATH_KIND_LOCK || plugin->struct_size < sizeof(ath_plugin)
        || !plugin->lock || !plugin->create_with_host) {
        printf("error not a 1.1 lock plugin\n");
        return 1;
    }
    static const ath_host host = {
        .struct_size = sizeof(ath_host), .abi_minor = ATH_ABI_MINOR, .name = "lock_holder", .version = "1",
        .host_ctx = NULL, .log = host_log, .reader_size = sizeof(ath_reader), .sink_size = sizeof(ath_sink),
        .error_size = sizeof(ath_error), .reserved = 0,
    };
    ath_error err = {{0}};
    void *instance = NULL;
    if (argc == 6) {
        long page = sysconf(_SC_PAGESIZE);
        unsigned char *p = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || mprotect(p + page, (size_t)page, PROT_NONE) != 0) { printf("error mmap\n"); return 1; }
        uint32_t short_host[2] = {8, ATH_ABI_MINOR}, short_call[2] = {8, 0};
        memcpy(p + page - 24, short_host, 8);   /* 8-byte aligned, ending 16 bytes before the guard page */
        memcpy(p + page - 8, short_call, 8);    /* ends exactly at the guard page */
        const ath_host *tiny_host = (const ath_host *)(void *)(p + page - 24);
        const ath_call *tiny_call = (const ath_call *)(void *)(p + page - 8);
        ath_status status = plugin->create_with_host(tiny_host, argv[2], &instance, &err);
        if (status != ATH_OK) { printf("error %d %s\n", (int)status, err.message); return 1; }
        uint64_t handle = 0;
        status = plugin->lock->acquire(instance, tiny_call, argv[3], (uint32_t)atoi(argv[4]), 1000, &handle, &err);
        if (status != ATH_OK) { printf("error %d %s\n", (int)status, err.message); return 1; }
        /* refresh with the same lease: a 1 ms one could run out before the release (Redis expires keys) */
        status = plugin->lock->refresh(instance, tiny_call, handle, (uint32_t)atoi(argv[4]), &err);
        if (status == ATH_OK) status = plugin->lock->release(instance, handle, &err);
        if (status != ATH_OK) { printf("error %d %s\n", (int)status, err.message); return 1; }
        plugin->destroy(instance);
        printf("short ok\n");
        return 0;
    }
    ath_status status = plugin->create_with_host(&host, argv[2], &instance, &err);
    if (status != ATH_OK) { printf("error %d %s\n", (int)status, err.message); return 1; }
    ath_call call = { .struct_size = sizeof(ath_call), .reserved = 0, .deadline_ns = 0, .request_id = "holder",
                      .cancelled = NULL, .host_data = NULL };
    if (argc == 8) {
        int cycles = atoi(argv[6]);
        for (int i = 0; i < cycles; i++) {
            uint64_t handle = 0;
            status = plugin->lock->acquire(instance, &call, argv[3], (uint32_t)atoi(argv[4]), 60000, &handle, &err);
            if (status != ATH_OK) { printf("error %d %s\n", (int)status, err.message); return 1; }
            long value = 0;
            FILE *counter = fopen(argv[7], "r");
            if (counter) {
                if (fscanf(counter, "%ld", &value) != 1) value = 0;
                fclose(counter);
            }
            sched_yield(); /* widen the window a missing exclusion would lose an increment in */
            counter = fopen(argv[7], "w");
            if (!counter) { printf("error cannot write %s\n", argv[7]); return 1; }
            fprintf(counter, "%ld\n", value + 1);
            fclose(counter);
            status = plugin->lock->release(instance, handle, &err);
            if (status != ATH_OK) { printf("error %d %s\n", (int)status, err.message); return 1; }
        }
        printf("counted %d\n", cycles);
        return 0;
    }
    uint64_t handle = 0;
    status = plugin->lock->acquire(instance, &call, argv[3], (uint32_t)atoi(argv[4]), 60000, &handle, &err);
    if (status != ATH_OK) { printf("error %d %s\n", (int)status, err.message); return 1; }
    printf("held %d\n", (int)getpid());
    fflush(stdout);
    for (;;) pause();
}

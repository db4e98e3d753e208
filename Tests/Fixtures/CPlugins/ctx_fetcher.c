/*
 * A context-aware fetcher (ABI 1.1) for the host-side tests of host services and per-call contexts. It appends
 * what it sees to the file named by its config ({"marker": "/path"}), one line per event, times in
 * CLOCK_MONOTONIC nanoseconds (the clock of ath_call.deadline_ns):
 *   create host=<name> version=<v> minor=<n> reader=<b> sink=<b> error=<b>   (create_with_host)   | create10
 *   fetch entry=<fetch|fetch_ctx> module=<m> request=<id> deadline=<ns>
 *   list entry=list_ctx module=<m> request=<id> deadline=<ns>          (both answer not found)
 *   resolve entry=resolve_ctx module=<m> query=<q> request=<id> deadline=<ns>
 *   cancelled at=<ns> request=<id>     the call's cancelled() turned non-zero
 *   timeout at=<ns>                    its deadline passed (seen by the plugin itself)
 *   refused at=<ns>                    (1.0 build) a sink refused a byte
 * fetch of example.com/log logs a long two-line message through the host (1.0 entry: no log) and answers not
 * found at once; any other
 * module loops (1 ms naps) until cancelled or past its deadline. -DABI10_ONLY builds it as a 1.0 plugin: 1.0
 * sizes, no create_with_host, no twins; its fetch writes one zip byte per nap until the sink refuses.
 */
#define _POSIX_C_SOURCE 200809L
#include "athens_plugin.h"
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct instance {
    char marker[1024];
    const ath_host *host; /* NULL when created by `create` */
} instance;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void record(const instance *self, const char *line) {
    int fd = open(self->marker, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0) return;
    size_t n = strlen(line);
    if (write(fd, line, n) != (ssize_t)n) { /* a test failure shows it */ }
    close(fd);
}

static ath_status make(const char *config_json, instance **out, ath_error *err) {
    const char *key = strstr(config_json, "\"marker\"");
    const char *start = key ? strchr(key + 8, '"') : NULL;
    const char *end = start ? strchr(start + 1, '"') : NULL;
    if (!end || (size_t)(end - start - 1) >= sizeof((*out)->marker)) {
        ath_error_set(err, "config needs {\"marker\": \"/path\"}");
        return ATH_INVALID;
    }
    instance *self = calloc(1, sizeof *self);
    if (!self) return ATH_INTERNAL;
    /* The host re-serialises the config and may escape '/' as "\/": undo that (the only escape a test path has). */
    size_t n = 0;
    for (const char *c = start + 1; c < end; c++) {
        if (c[0] == '\\' && c + 1 < end && c[1] == '/') continue;
        self->marker[n++] = *c;
    }
    *out = self;
    return ATH_OK;
}

static ath_status create(const char *config_json, void **out_instance, ath_error *err) {
    instance *self;
    ath_status status = make(config_json, &self, err);
    if (status != ATH_OK) return status;
    record(self, "create10\n");
    *out_instance = self;
    return ATH_OK;
}

static void destroy(void *self) { free(self); }

/* The 1.0 entry's loop: nothing but the sinks can tell it to stop. */
static ath_status fetch10(instance *self, const char *module, const ath_sink *zip) {
    char line[1400];
    snprintf(line, sizeof line, "fetch entry=fetch module=%s request=- deadline=0\n", module);
    record(self, line);
    if (strcmp(module, "example.com/log") == 0) return ATH_NOT_FOUND; /* answers at once (guard-page test) */
    const uint8_t byte = 0x50;
    for (;;) {
        if (zip->write(zip->ctx, &byte, 1) != 0) {
            snprintf(line, sizeof line, "refused at=%llu\n", (unsigned long long)now_ns());
            record(self, line);
            return ATH_INVALID;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

#ifndef ABI10_ONLY
static const char *text_of(const ath_call *call) { return call ? call->request_id : "-"; }

static ath_status create_with_host(const ath_host *host, const char *config_json, void **out_instance, ath_error *err) {
    instance *self;
    ath_status status = make(config_json, &self, err);
    if (status != ATH_OK) return status;
    self->host = host;
    char line[1400];
    snprintf(line, sizeof line, "create host=%s version=%s minor=%u reader=%u sink=%u error=%u\n", host->name, host->version,
             host->abi_minor, host->reader_size, host->sink_size, host->error_size);
    record(self, line);
    host->log(host->host_ctx, ATH_LOG_WARNING, "created, marker file set");
    *out_instance = self;
    return ATH_OK;
}

static ath_status fetch_ctx(void *opaque, const ath_call *call, const char *module, const char *version,
                            const ath_sink *info, const ath_sink *mod, const ath_sink *zip, ath_error *err) {
    (void)version; (void)info; (void)mod; (void)zip;
    instance *self = opaque;
    char line[1400];
    snprintf(line, sizeof line, "fetch entry=fetch_ctx module=%s request=%s deadline=%llu\n", module, text_of(call),
             (unsigned long long)call->deadline_ns);
    record(self, line);
    if (strcmp(module, "example.com/log") == 0) {
        /* Longer than the host keeps, with a newline and a tab: the host must cut and escape it. */
        static char message[6000];
        memset(message, 'x', sizeof message - 1);
        memcpy(message, "fetch log\nsecond\tline ", 22);
        message[sizeof message - 1] = '\0';
        self->host->log(self->host->host_ctx, ATH_LOG_INFO, message);
        ath_error_set(err, "example.com/log: logged, nothing to fetch");
        return ATH_NOT_FOUND;
    }
    for (;;) {
        /* The deadline first: past it, cancelled() reads non-zero too, and the answer is ATH_TIMEOUT. */
        if (call->deadline_ns != 0 && now_ns() >= call->deadline_ns) {
            snprintf(line, sizeof line, "timeout at=%llu\n", (unsigned long long)now_ns());
            record(self, line);
            ath_error_set(err, "deadline passed");
            return ATH_TIMEOUT;
        }
        if (ath_call_is_cancelled(call)) {
            snprintf(line, sizeof line, "cancelled at=%llu request=%s\n", (unsigned long long)now_ns(), call->request_id);
            record(self, line);
            ath_error_set(err, "cancelled");
            return ATH_CANCELLED;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}
#endif

static ath_status fetch(void *opaque, const char *module, const char *version, const ath_sink *info,
                        const ath_sink *mod, const ath_sink *zip, ath_error *err) {
    (void)version; (void)info; (void)mod; (void)err;
    return fetch10(opaque, module, zip);
}

static ath_status list(void *self, const char *module, ath_emit_version_fn emit, void *ctx, ath_error *err) {
    (void)self; (void)module; (void)emit; (void)ctx;
    ath_error_set(err, "lists nothing");
    return ATH_NOT_FOUND;
}

static ath_status resolve(void *self, const char *module, const char *query, const ath_sink *info, ath_error *err) {
    (void)self; (void)module; (void)query; (void)info;
    ath_error_set(err, "resolves nothing");
    return ATH_NOT_FOUND;
}

#ifndef ABI10_ONLY
static ath_status list_ctx(void *opaque, const ath_call *call, const char *module, ath_emit_version_fn emit, void *ctx,
                           ath_error *err) {
    (void)emit; (void)ctx;
    char line[1400];
    snprintf(line, sizeof line, "list entry=list_ctx module=%s request=%s deadline=%llu\n", module, call->request_id,
             (unsigned long long)call->deadline_ns);
    record(opaque, line);
    ath_error_set(err, "lists nothing");
    return ATH_NOT_FOUND;
}

static ath_status resolve_ctx(void *opaque, const ath_call *call, const char *module, const char *query, const ath_sink *info,
                              ath_error *err) {
    (void)info;
    char line[1400];
    snprintf(line, sizeof line, "resolve entry=resolve_ctx module=%s query=%s request=%s deadline=%llu\n", module, query,
             call->request_id, (unsigned long long)call->deadline_ns);
    record(opaque, line);
    ath_error_set(err, "resolves nothing");
    return ATH_NOT_FOUND;
}
#endif

static const ath_fetcher_methods methods = {
#ifdef ABI10_ONLY
    .struct_size = offsetof(ath_fetcher_methods, fetch_ctx),
#else
    .struct_size = sizeof(ath_fetcher_methods),
    .fetch_ctx = fetch_ctx,
    .list_ctx = list_ctx,
    .resolve_ctx = resolve_ctx,
#endif
    .fetch = fetch,
    .list = list,
    .resolve = resolve,
};

static const ath_plugin descriptor = {
    .magic = ATH_MAGIC,
#ifdef ABI10_ONLY
    .struct_size = offsetof(ath_plugin, create_with_host),
    .abi_minor = 0,
#else
    .struct_size = sizeof(ath_plugin),
    .abi_minor = ATH_ABI_MINOR,
    .create_with_host = create_with_host,
#endif
    .abi_major = ATH_ABI_MAJOR,
    .kind = ATH_KIND_FETCHER,
    .name = "CtxFetcher",
    .create = create,
    .destroy = destroy,
    .fetcher = &methods,
};

ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t host_abi_major) {
    return host_abi_major == ATH_ABI_MAJOR ? &descriptor : NULL;
}

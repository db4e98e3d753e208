/*
 * A fetcher whose answers say which build it is, for the hot-upgrade tests: list emits BUILD_VERSION and
 * resolve names it, for any module; fetch finds nothing. Build it twice with different -DBUILD_VERSION to
 * get two versions of "the same plugin". -DPADDING_KB=n adds n KiB of read-only data, so that the memory a
 * loaded version costs can be measured on a plugin of a realistic size.
 */
#include "athens_plugin.h"
#include <stdio.h>
#include <string.h>

#ifndef BUILD_VERSION
#define BUILD_VERSION "v1.0.0"
#endif
#ifndef PADDING_KB
#define PADDING_KB 1
#endif

/* Read at every list call, so its pages are really mapped in and counted. */
static const unsigned char padding[PADDING_KB * 1024] = {1};

static ath_status create(const char *config_json, void **out_instance, ath_error *err) {
    (void)config_json; (void)err;
    *out_instance = NULL;
    return ATH_OK;
}

static void destroy(void *instance) { (void)instance; }

static ath_status fetch(void *instance, const char *module, const char *version,
                        const ath_sink *info, const ath_sink *mod, const ath_sink *zip, ath_error *err) {
    (void)instance; (void)info; (void)mod; (void)zip;
    char message[600];
    snprintf(message, sizeof message, "%s@%s: this build (" BUILD_VERSION ") serves no files", module, version);
    ath_error_set(err, message);
    return ATH_NOT_FOUND;
}

static ath_status list(void *instance, const char *module, ath_emit_version_fn emit, void *ctx, ath_error *err) {
    (void)instance; (void)module; (void)err;
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof padding; i += 4096) sum += padding[i];
    if (sum == 0) return ATH_INTERNAL; /* never: padding[0] is 1 */
    emit(ctx, BUILD_VERSION);
    return ATH_OK;
}

static ath_status resolve(void *instance, const char *module, const char *query, const ath_sink *info, ath_error *err) {
    (void)instance; (void)module; (void)query; (void)err;
    const char *json = "{\"Version\":\"" BUILD_VERSION "\",\"Time\":\"2024-01-02T03:04:05Z\"}";
    return info->write(info->ctx, (const uint8_t *)json, strlen(json)) ? ATH_INVALID : ATH_OK;
}

static const ath_fetcher_methods methods = {
    .struct_size = sizeof(ath_fetcher_methods),
    .fetch = fetch,
    .list = list,
    .resolve = resolve,
};

static const ath_plugin descriptor = {
    .magic = ATH_MAGIC,
    .struct_size = sizeof(ath_plugin),
    .abi_major = ATH_ABI_MAJOR,
    .abi_minor = ATH_ABI_MINOR,
    .kind = ATH_KIND_FETCHER,
    .name = "UpgradeFetcher",
    .create = create,
    .destroy = destroy,
    .fetcher = &methods,
};

ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t host_abi_major) {
    return host_abi_major == ATH_ABI_MAJOR ? &descriptor : NULL;
}

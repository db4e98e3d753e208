/*
 * The C half of a Go fetcher plugin: the descriptor and tables are static C data (a Go value cannot be a
 * static C struct with function pointers), and each entry forwards to a function that fetcher.go exports.
 * The instance athens holds is a runtime/cgo.Handle (an integer), never a Go pointer: C may not keep a Go
 * pointer after the call that passed it returns (cgo's pointer rules).
 */
#include "athens_plugin.h"
#include "gofetcher.h"
#include "_cgo_export.h"

int gofetcher_write(ath_sink *sink, const uint8_t *data, uint64_t len) { return sink->write(sink->ctx, data, len); }
int gofetcher_emit(ath_emit_version_fn emit, void *ctx, const char *version) { return emit(ctx, version); }
void gofetcher_error(ath_error *err, const char *message) { ath_error_set(err, message); }

static ath_status create(const char *config_json, void **out_instance, ath_error *err) {
    uintptr_t handle = 0;
    ath_status status = goFetcherCreate((char *)config_json, &handle, err);
    *out_instance = (void *)handle;
    return status;
}

static void destroy(void *instance) { goFetcherDestroy((uintptr_t)instance); }

static ath_status fetch(void *instance, const char *module, const char *version,
                        const ath_sink *info, const ath_sink *mod, const ath_sink *zip, ath_error *err) {
    return goFetcherFetch((uintptr_t)instance, (char *)module, (char *)version,
                          (ath_sink *)info, (ath_sink *)mod, (ath_sink *)zip, err);
}

static ath_status list(void *instance, const char *module, ath_emit_version_fn emit, void *ctx, ath_error *err) {
    return goFetcherList((uintptr_t)instance, (char *)module, emit, ctx, err);
}

static ath_status resolve(void *instance, const char *module, const char *query, const ath_sink *info, ath_error *err) {
    return goFetcherResolve((uintptr_t)instance, (char *)module, (char *)query, (ath_sink *)info, err);
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
    .name = "GoFetcher",
    .toolchain = NULL, /* a C ABI only: no runtime shared with the host */
    .create = create,
    .destroy = destroy,
    .fetcher = &methods,
};

ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t host_abi_major) {
    return host_abi_major == ATH_ABI_MAJOR ? &descriptor : NULL;
}

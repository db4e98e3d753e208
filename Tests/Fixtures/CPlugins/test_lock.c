/* A deliberately broken lock plugin (ABI 1.1 lock kind) for the host's loader and plugin-check tests.
 * Default: acquire always succeeds (no exclusion, no key checks), refresh always succeeds: every lock check that
 * covers exclusion, BUSY, NOT_FOUND or INVALID must fail on it. Variants (-D):
 *   NULL_RELEASE      the required release entry is NULL: the loader refuses the plugin.
 *   NONZERO_RESERVED  the lock table's reserved field is 1: the loader refuses the plugin. */
#include "athens_plugin.h"
#include <stdatomic.h>

static atomic_ullong next_handle = 1;

static ath_status create(const char *config_json, void **out_instance, ath_error *err) {
    (void)config_json; (void)err;
    *out_instance = NULL;
    return ATH_OK;
}

static void destroy(void *instance) { (void)instance; }

static ath_status acquire(void *instance, const ath_call *call, const char *key, uint32_t lease_ms, uint32_t wait_ms,
                          uint64_t *out_handle, ath_error *err) {
    (void)instance; (void)call; (void)key; (void)lease_ms; (void)wait_ms; (void)err;
    *out_handle = atomic_fetch_add(&next_handle, 1);
    return ATH_OK;
}

static ath_status refresh(void *instance, const ath_call *call, uint64_t handle, uint32_t lease_ms, ath_error *err) {
    (void)instance; (void)call; (void)handle; (void)lease_ms; (void)err;
    return ATH_OK;
}

#ifndef NULL_RELEASE
static ath_status release(void *instance, uint64_t handle, ath_error *err) {
    (void)instance; (void)handle; (void)err;
    return ATH_OK;
}
#endif

static const ath_lock_methods methods = {
    .struct_size = sizeof(ath_lock_methods),
#ifdef NONZERO_RESERVED
    .reserved = 1,
#endif
    .acquire = acquire,
    .refresh = refresh,
#ifndef NULL_RELEASE
    .release = release,
#endif
};

static const ath_plugin plugin = {
    .magic = ATH_MAGIC,
    .struct_size = sizeof(ath_plugin),
    .abi_major = ATH_ABI_MAJOR,
    .abi_minor = ATH_ABI_MINOR,
    .kind = ATH_KIND_LOCK,
    .name = "CTestLock",
    .create = create,
    .destroy = destroy,
    .lock = &methods,
};

ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t host_abi_major) {
    return host_abi_major == ATH_ABI_MAJOR ? &plugin : NULL;
}

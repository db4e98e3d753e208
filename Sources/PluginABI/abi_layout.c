/* Pins the v1 layout of the ABI structs: a change that moves a field fails the build instead of
 * silently breaking every plugin built before it. Defines no symbols. */
#include "athens_plugin.h"
#include <stddef.h>

_Static_assert(sizeof(ath_status) == 4, "enums are 32-bit");
_Static_assert(sizeof(ath_error) == ATH_ERROR_MESSAGE_CAPACITY, "ath_error is just the buffer");
_Static_assert(offsetof(ath_blob, fd) == 0, "ath_blob v1 layout");
_Static_assert(offsetof(ath_blob, offset) == 8, "ath_blob v1 layout");
_Static_assert(offsetof(ath_blob, size) == 16, "ath_blob v1 layout");
_Static_assert(offsetof(ath_blob, data) == 24, "ath_blob v1 layout");
_Static_assert(offsetof(ath_blob, read) == 32, "ath_blob v1 layout");
_Static_assert(offsetof(ath_blob, release) == 40, "ath_blob v1 layout");
_Static_assert(offsetof(ath_blob, private_data) == 48, "ath_blob v1 layout");
_Static_assert(sizeof(ath_blob) == 56, "ath_blob v1 layout");
_Static_assert(offsetof(ath_storage_methods, open) == 8, "storage v1 layout");
_Static_assert(offsetof(ath_storage_methods, catalog) == 48, "storage v1 layout");
_Static_assert(sizeof(ath_storage_methods) == 56, "storage v1 layout");
_Static_assert(offsetof(ath_fetcher_methods, fetch) == 8, "fetcher v1 layout");
_Static_assert(offsetof(ath_fetcher_methods, resolve) == 24, "fetcher v1 layout");
_Static_assert(sizeof(ath_fetcher_methods) == 32, "fetcher v1 layout");
_Static_assert(offsetof(ath_plugin, name) == 24, "plugin v1 layout");
_Static_assert(offsetof(ath_plugin, toolchain) == 32, "plugin v1 layout");
_Static_assert(offsetof(ath_plugin, create) == 40, "plugin v1 layout");
_Static_assert(offsetof(ath_plugin, destroy) == 48, "plugin v1 layout");
_Static_assert(offsetof(ath_plugin, storage) == 56, "plugin v1 layout");
_Static_assert(offsetof(ath_plugin, fetcher) == 64, "plugin v1 layout");
_Static_assert(sizeof(ath_plugin) == 72, "plugin v1 layout");

/* Pins the layout of every ABI struct, 1.0 fields and 1.1 additions: a change that moves a field fails the
 * build instead of silently breaking every plugin built before it. Defines no symbols. LP64 (x86_64, aarch64). */
#include "athens_plugin.h"
#include <stddef.h>

#define PIN(type, field, offset) _Static_assert(offsetof(type, field) == (offset), #type "." #field " moved")
#define SIZE(type, size) _Static_assert(sizeof(type) == (size), #type " changed size")

_Static_assert(sizeof(void *) == 8, "the pinned layout is LP64's");
_Static_assert(sizeof(ath_status) == 4, "enums are 32-bit");
_Static_assert(sizeof(ath_kind) == 4 && sizeof(ath_artifact) == 4 && sizeof(ath_log_level) == 4, "enums are 32-bit");

/* Host-allocated, 1.0 (grow only at the end; sizes in ath_host) */
PIN(ath_error, message, 0);
SIZE(ath_error, ATH_ERROR_MESSAGE_CAPACITY);
PIN(ath_reader, size, 0);
PIN(ath_reader, read, 8);
PIN(ath_reader, ctx, 16);
SIZE(ath_reader, 24);
PIN(ath_sink, write, 0);
PIN(ath_sink, ctx, 8);
SIZE(ath_sink, 16);

/* Plugin-filled blob, 1.0 */
PIN(ath_blob, fd, 0);
PIN(ath_blob, reserved, 4);
PIN(ath_blob, offset, 8);
PIN(ath_blob, size, 16);
PIN(ath_blob, data, 24);
PIN(ath_blob, read, 32);
PIN(ath_blob, release, 40);
PIN(ath_blob, private_data, 48);
SIZE(ath_blob, 56);

/* Host services and per-call context, 1.1 */
PIN(ath_host, struct_size, 0);
PIN(ath_host, abi_minor, 4);
PIN(ath_host, name, 8);
PIN(ath_host, version, 16);
PIN(ath_host, host_ctx, 24);
PIN(ath_host, log, 32);
PIN(ath_host, reader_size, 40);
PIN(ath_host, sink_size, 44);
PIN(ath_host, error_size, 48);
PIN(ath_host, reserved, 52);
SIZE(ath_host, 56);
PIN(ath_call, struct_size, 0);
PIN(ath_call, reserved, 4);
PIN(ath_call, deadline_ns, 8);
PIN(ath_call, request_id, 16);
PIN(ath_call, cancelled, 24);
PIN(ath_call, host_data, 32);
SIZE(ath_call, 40);

/* Storage table: 1.0, then 1.1 */
PIN(ath_storage_methods, struct_size, 0);
PIN(ath_storage_methods, reserved, 4);
PIN(ath_storage_methods, open, 8);
PIN(ath_storage_methods, save, 16);
PIN(ath_storage_methods, exists, 24);
PIN(ath_storage_methods, list, 32);
PIN(ath_storage_methods, remove, 40);
PIN(ath_storage_methods, catalog, 48);
PIN(ath_storage_methods, open_ctx, 56);
PIN(ath_storage_methods, save_ctx, 64);
PIN(ath_storage_methods, exists_ctx, 72);
PIN(ath_storage_methods, list_ctx, 80);
PIN(ath_storage_methods, remove_ctx, 88);
PIN(ath_storage_methods, catalog_ctx, 96);
PIN(ath_storage_methods, url, 104);
SIZE(ath_storage_methods, 112);

/* Fetcher table: 1.0, then 1.1 */
PIN(ath_fetcher_methods, struct_size, 0);
PIN(ath_fetcher_methods, reserved, 4);
PIN(ath_fetcher_methods, fetch, 8);
PIN(ath_fetcher_methods, list, 16);
PIN(ath_fetcher_methods, resolve, 24);
PIN(ath_fetcher_methods, fetch_ctx, 32);
PIN(ath_fetcher_methods, list_ctx, 40);
PIN(ath_fetcher_methods, resolve_ctx, 48);
SIZE(ath_fetcher_methods, 56);

/* Lock table, 1.1 */
PIN(ath_lock_methods, struct_size, 0);
PIN(ath_lock_methods, reserved, 4);
PIN(ath_lock_methods, acquire, 8);
PIN(ath_lock_methods, refresh, 16);
PIN(ath_lock_methods, release, 24);
SIZE(ath_lock_methods, 32);

/* Descriptor: 1.0, then 1.1 */
PIN(ath_plugin, magic, 0);
PIN(ath_plugin, struct_size, 4);
PIN(ath_plugin, abi_major, 8);
PIN(ath_plugin, abi_minor, 12);
PIN(ath_plugin, kind, 16);
PIN(ath_plugin, reserved, 20);
PIN(ath_plugin, name, 24);
PIN(ath_plugin, toolchain, 32);
PIN(ath_plugin, create, 40);
PIN(ath_plugin, destroy, 48);
PIN(ath_plugin, storage, 56);
PIN(ath_plugin, fetcher, 64);
PIN(ath_plugin, create_with_host, 72);
PIN(ath_plugin, lock, 80);
SIZE(ath_plugin, 88);

/*
 * athens_plugin.h — the whole contract between the athens host and its plugins (ABI major 1).
 *
 * A plugin is a shared library exporting one C symbol, ath_plugin_query (ATH_PLUGIN_QUERY_SYMBOL),
 * which returns a static descriptor (ath_plugin). The descriptor names the plugin, says whether it is
 * a storage or a fetcher, and carries a constructor that takes the plugin's JSON config and returns
 * an opaque instance, plus a table of function pointers that all take that instance first.
 *
 * LOADING. The host dlopen()s a private copy of the file with RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE and never
 * unloads (a file replaced on disk is loaded anew at the next reload: docs/PLUGINS.md §3.1). It checks,
 * in this order: magic, abi_major == ATH_ABI_MAJOR, struct_size of the descriptor (all of v1.0's) and of
 * the table (at least up to its last Required entry; Optional entries past struct_size read as absent),
 * the toolchain string (Swift plugins only), then that every Required entry is non-NULL.
 *
 * VERSIONING. ABI major changes break compatibility; the host refuses another major. Within a major,
 * minor versions only ever APPEND fields at the end of a struct (below the "end of version" marker).
 * Every versioned struct begins with struct_size = sizeof(struct) as its author compiled it; the reader
 * never reads a field that lies beyond struct_size (such a field reads as NULL / absent). A breaking
 * change is a new struct name, never an edit of an existing field.
 *
 * OWNERSHIP. Arguments the host passes live for the duration of the call only: copy what you keep.
 * Everything a plugin hands back that owns resources (ath_blob) carries a release function that the host
 * calls exactly once, from any thread. Memory is always freed by the side that allocated it.
 * Strings are NUL-terminated UTF-8. Module paths and versions are the DECODED forms
 * ("github.com/BurntSushi/toml", "v1.2.3"), already validated by the host.
 *
 * ERRORS. Every fallible call returns ath_status and, on failure, writes a human-readable message into
 * the host-owned ath_error (bounded, always NUL-terminated; use ath_error_set). The message should say
 * what failed and for which module@version. Codes the host does not know read as ATH_INTERNAL. No
 * exception, panic, longjmp or exit() may cross the boundary.
 *
 * THREADS. Unless an entry says otherwise, it may be called from many threads at once on one instance.
 * Plugins must not change process-wide state (cwd, umask, signal dispositions, locale, environment).
 * Blocking is allowed (the host calls plugins from dedicated threads, never from its event loop,
 * except storage `open`, which should therefore be quick: an open()+fstat(), not a network round trip).
 *
 * GO c-shared: only one Go runtime may live in a process, so at most one Go plugin can be loaded.
 */
#ifndef ATHENS_PLUGIN_H
#define ATHENS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__clang__)
#define ATH_NONNULL _Nonnull
#define ATH_NULLABLE _Nullable
#define ATH_BEGIN_NONNULL _Pragma("clang assume_nonnull begin")
#define ATH_END_NONNULL _Pragma("clang assume_nonnull end")
#else
#define ATH_NONNULL
#define ATH_NULLABLE
#define ATH_BEGIN_NONNULL
#define ATH_END_NONNULL
#endif

ATH_BEGIN_NONNULL

/** "ATHP": the first field of every descriptor; if it is wrong, nothing else can be trusted. */
#define ATH_MAGIC 0x50485441u
/** Incompatible changes bump the major; the host refuses a plugin with another major. */
#define ATH_ABI_MAJOR 1u
/** Compatible additions (fields appended at the end of a struct) bump the minor. */
#define ATH_ABI_MINOR 0u
/** The one symbol a plugin exports. */
#define ATH_PLUGIN_QUERY_SYMBOL "ath_plugin_query"
/** Size of the message buffer in ath_error, including the terminating NUL. */
#define ATH_ERROR_MESSAGE_CAPACITY 512
/** Capacity the host gives catalog() for the next-page token, including the terminating NUL. */
#define ATH_CATALOG_TOKEN_CAPACITY 1024

/** Result of every fallible call. Pinned to 32 bits. */
typedef enum ath_status {
    ATH_OK = 0,
    ATH_NOT_FOUND = 1,        /* no such module/version (or query) here: host answers 404 */
    ATH_ALREADY_EXISTS = 2,   /* save of a version that is already complete: host treats as success */
    ATH_INVALID = 3,          /* malformed config (create: host refuses to start), arguments, or data (a fetcher's
                                 source sent garbage or a sink refused it: host answers 502, stores nothing) */
    ATH_UNAVAILABLE = 4,      /* transient: upstream or disk unreachable: host answers 502 */
    ATH_TIMEOUT = 5,          /* a deadline passed: host answers 504 */
    ATH_INTERNAL = 6,         /* anything else; unknown codes are read as this */
    ATH_STATUS_FORCE_32BIT = 0x7fffffff
} ath_status;

/** Which kind of plugin a descriptor describes. */
typedef enum ath_kind {
    ATH_KIND_STORAGE = 1,
    ATH_KIND_FETCHER = 2,
    ATH_KIND_FORCE_32BIT = 0x7fffffff
} ath_kind;

/** One of the three stored files of a module version. */
typedef enum ath_artifact {
    ATH_ARTIFACT_INFO = 1,    /* <version>.info: JSON {"Version": ..., "Time": ...} */
    ATH_ARTIFACT_MOD = 2,     /* <version>.mod: the go.mod file */
    ATH_ARTIFACT_ZIP = 3,     /* <version>.zip: the module zip */
    ATH_ARTIFACT_FORCE_32BIT = 0x7fffffff
} ath_artifact;

/** Host-owned, per-call error buffer. The plugin writes a NUL-terminated message on failure. */
typedef struct ath_error {
    char message[ATH_ERROR_MESSAGE_CAPACITY];
} ath_error;

/** Writes a bounded, NUL-terminated copy of `message` into `err`. */
static inline void ath_error_set(ath_error *err, const char *message) {
    size_t n = strlen(message);
    if (n >= ATH_ERROR_MESSAGE_CAPACITY) n = ATH_ERROR_MESSAGE_CAPACITY - 1;
    memcpy(err->message, message, n);
    err->message[n] = '\0';
}

/**
 * A byte source a plugin returns from storage `open`. Exactly one of three shapes:
 *   fd >= 0          the bytes are [offset, offset+size) of an open file: the host may sendfile() them.
 *                    The host never closes the fd and never moves a shared file offset (it uses pread /
 *                    sendfile with an explicit offset); `release` closes it.
 *   data != NULL     `size` contiguous bytes, valid and unchanged until release.
 *   read != NULL     a pull stream of exactly `size` bytes: read(private_data, buf, cap) returns the number of
 *                    bytes written into buf (1..cap), 0 at the end, or -1 on error. Called from one thread
 *                    at a time.
 * `release` is Required in every shape and is called exactly once, from any thread, after which nothing
 * in the blob may be used. The blob stays valid even if the version is deleted meanwhile.
 */
typedef struct ath_blob {
    int32_t fd;
    uint32_t reserved;        /* zero */
    uint64_t offset;
    uint64_t size;
    const uint8_t *ATH_NULLABLE data;
    int64_t (*ATH_NULLABLE read)(void *ATH_NULLABLE private_data, uint8_t *buf, uint64_t cap);
    void (*ATH_NULLABLE release)(void *ATH_NULLABLE private_data);
    void *ATH_NULLABLE private_data;
} ath_blob;

/**
 * A byte source the host gives to storage `save` (the module zip). read(ctx, buf, cap) returns 1..cap
 * bytes, 0 at the end, or -1 if the host failed (the save must then fail and store nothing).
 * `size` is the exact total length. Valid for the duration of the call; call from one thread at a time.
 */
typedef struct ath_reader {
    uint64_t size;
    int64_t (*read)(void *ATH_NULLABLE ctx, uint8_t *buf, uint64_t cap);
    void *ATH_NULLABLE ctx;
} ath_reader;

/**
 * A byte sink the host gives to a fetcher. write(ctx, data, len) returns 0 to go on, non-zero when the
 * host refuses more (e.g. a size limit): the fetcher must then stop and return an error. Valid for the
 * duration of the call; call from one thread at a time.
 */
typedef struct ath_sink {
    int32_t (*write)(void *ATH_NULLABLE ctx, const uint8_t *data, uint64_t len);
    void *ATH_NULLABLE ctx;
} ath_sink;

/** List callback: one canonical version per call. Return 0 to go on, non-zero to stop early. */
typedef int32_t (*ath_emit_version_fn)(void *ATH_NULLABLE ctx, const char *version);
/** Catalog callback: one module@version per call. Return 0 to go on, non-zero to stop early. */
typedef int32_t (*ath_emit_module_version_fn)(void *ATH_NULLABLE ctx, const char *module, const char *version);

/**
 * Storage: keeps every module version the host has fetched. The three files of a version are saved
 * together and become visible together.
 */
typedef struct ath_storage_methods {
    /** sizeof(ath_storage_methods) as the plugin compiled it. */
    uint32_t struct_size;
    uint32_t reserved;

    /* open: one stored file of module@version.
     * Required. Threads: any, concurrently. Should be quick (called on the host's event loop).
     * Ownership: arguments for the call only; on ATH_OK *out is filled and owned by the plugin until
     *   the host calls out->release. On failure *out is untouched and nothing is released.
     * Returns: ATH_OK; ATH_NOT_FOUND if the version is not (completely) stored; others with err set. */
    ath_status (*ATH_NULLABLE open)(void *ATH_NULLABLE instance, const char *module, const char *version,
                                    ath_artifact artifact, ath_blob *out, ath_error *err);

    /* save: stores info + mod + zip of module@version atomically: a concurrent reader sees all of it
     *   or none of it, and a failed save leaves nothing behind.
     * Required. Threads: any, concurrently, including two saves of the same version: one wins, the
     *   other returns ATH_ALREADY_EXISTS; the stored bytes never mix.
     * Ownership: all arguments for the call only; `zip` must be read to its end before returning OK.
     * Returns: ATH_OK; ATH_ALREADY_EXISTS; ATH_UNAVAILABLE (disk full, I/O error); others with err set. */
    ath_status (*ATH_NULLABLE save)(void *ATH_NULLABLE instance, const char *module, const char *version,
                                    const uint8_t *info, uint64_t info_size,
                                    const uint8_t *mod, uint64_t mod_size,
                                    const ath_reader *zip, ath_error *err);

    /* exists: *out_exists = 1 if module@version is completely stored, else 0.
     * Required. Threads: any, concurrently.  Returns: ATH_OK; others with err set. */
    ath_status (*ATH_NULLABLE exists)(void *ATH_NULLABLE instance, const char *module, const char *version,
                                      int32_t *out_exists, ath_error *err);

    /* list: emits every stored version of module, in any order (the host sorts). No versions is
     *   ATH_OK with no calls, not ATH_NOT_FOUND.
     * Required. Threads: any, concurrently. Ownership: `version` strings passed to emit live for that
     *   call only.  Returns: ATH_OK; others with err set. */
    ath_status (*ATH_NULLABLE list)(void *ATH_NULLABLE instance, const char *module,
                                    ath_emit_version_fn emit, void *ATH_NULLABLE ctx, ath_error *err);

    /* remove: deletes module@version (all three files). Readers holding blobs keep valid bytes.
     * Required. Threads: any, concurrently.  Returns: ATH_OK; ATH_NOT_FOUND; others with err set. */
    ath_status (*ATH_NULLABLE remove)(void *ATH_NULLABLE instance, const char *module, const char *version,
                                      ath_error *err);

    /* catalog: one page of at most page_size (>= 1) stored module versions, in a stable order, starting
     *   after `token` ("" = from the beginning). Writes the token of the next page into next_token
     *   (capacity ATH_CATALOG_TOKEN_CAPACITY, NUL-terminated), or "" when this is the last page. Pages
     *   are complete: walking all of them yields each stored version exactly once (modulo concurrent
     *   saves and removes). The token is opaque to the host.
     * Optional (NULL: the host answers /catalog with 501). Threads: any, concurrently.
     * Returns: ATH_OK; ATH_INVALID for a token it did not issue; others with err set. */
    ath_status (*ATH_NULLABLE catalog)(void *ATH_NULLABLE instance, const char *token, uint32_t page_size,
                                       ath_emit_module_version_fn emit, void *ATH_NULLABLE ctx,
                                       char *next_token, ath_error *err);
    /* end of version 1.0: append only below this line */
} ath_storage_methods;

/**
 * Fetcher: gets module versions from somewhere else (an upstream proxy, a VCS). The host validates
 * everything a fetcher produces before it reaches storage.
 */
typedef struct ath_fetcher_methods {
    /** sizeof(ath_fetcher_methods) as the plugin compiled it. */
    uint32_t struct_size;
    uint32_t reserved;

    /* fetch: writes the .info JSON, the go.mod and the module zip of module@version (version is
     *   canonical) into the three sinks, in any order, each completely.
     * Required. Threads: any, concurrently.
     * Ownership: arguments and sinks for the call only.
     * Returns: ATH_OK only if all three were written completely; ATH_NOT_FOUND if the version does not
     *   exist; ATH_UNAVAILABLE / ATH_TIMEOUT for transient failures; ATH_INVALID if a sink refused data
     *   or the source sent something malformed; others with err set. */
    ath_status (*ATH_NULLABLE fetch)(void *ATH_NULLABLE instance, const char *module, const char *version,
                                     const ath_sink *info, const ath_sink *mod, const ath_sink *zip,
                                     ath_error *err);

    /* list: emits the canonical release and pre-release versions of module known to the source (no
     *   pseudo-versions), in any order. A module with no tagged versions is ATH_OK with no calls.
     * Required. Threads: any, concurrently.
     * Returns: ATH_OK; ATH_NOT_FOUND if the source does not know the module; others with err set. */
    ath_status (*ATH_NULLABLE list)(void *ATH_NULLABLE instance, const char *module,
                                    ath_emit_version_fn emit, void *ATH_NULLABLE ctx, ath_error *err);

    /* resolve: turns a query — "latest", a branch, a tag, a commit hash prefix, or a canonical version —
     *   into the .info JSON of one canonical version, written into `info`. The "Version" field of that
     *   JSON is the canonical version the host will then fetch and store. A canonical version names
     *   itself, except one whose major the path lacks (v3.2.0 of a path without /v3), which may name
     *   only its +incompatible twin (v3.2.0+incompatible), as in the go command's direct mode.
     * Required. Threads: any, concurrently.
     * Returns: ATH_OK; ATH_NOT_FOUND if nothing matches; others with err set. */
    ath_status (*ATH_NULLABLE resolve)(void *ATH_NULLABLE instance, const char *module, const char *query,
                                       const ath_sink *info, ath_error *err);
    /* end of version 1.0: append only below this line */
} ath_fetcher_methods;

/**
 * What ath_plugin_query returns: static, never freed, identical on every call.
 */
typedef struct ath_plugin {
    uint32_t magic;           /* ATH_MAGIC */
    uint32_t struct_size;     /* sizeof(ath_plugin) as the plugin compiled it */
    uint32_t abi_major;       /* ATH_ABI_MAJOR the plugin was built against */
    uint32_t abi_minor;       /* ATH_ABI_MINOR the plugin was built against */
    ath_kind kind;
    uint32_t reserved;
    /** Short name for messages, e.g. "MemoryStorage". */
    const char *name;
    /** For plugins that need a language runtime shared with the host, e.g. "swift-6.3.1"; the host
     *  refuses a mismatch. NULL for plugins with no such runtime (C, Rust, Go c-shared). */
    const char *ATH_NULLABLE toolchain;

    /* create: builds an instance from the plugin's config, a JSON object as UTF-8 text ("{}" if the
     *   manifest gives none). Unknown keys should be refused with ATH_INVALID naming the key.
     * Required. Threads: alone (called once per configured use at start-up, and again at every reload
     *   (SIGHUP), while the previous instance, maybe of an older build of the library, still serves).
     * Ownership: config_json for the call only; *out_instance is the plugin's until destroy.
     * Returns: ATH_OK; ATH_INVALID for a bad config; others with err set. */
    ath_status (*ATH_NULLABLE create)(const char *config_json, void *ATH_NULLABLE *ATH_NONNULL out_instance,
                                      ath_error *err);

    /* destroy: releases an instance. Required. Threads: alone, after every other call on it returned. */
    void (*ATH_NULLABLE destroy)(void *ATH_NULLABLE instance);

    /** The methods of a storage plugin (kind ATH_KIND_STORAGE), else NULL. */
    const ath_storage_methods *ATH_NULLABLE storage;
    /** The methods of a fetcher plugin (kind ATH_KIND_FETCHER), else NULL. */
    const ath_fetcher_methods *ATH_NULLABLE fetcher;
    /* end of version 1.0: append only below this line */
} ath_plugin;

/**
 * The entry symbol. host_abi_major is the host's ATH_ABI_MAJOR; a plugin may return NULL to decline.
 * Threads: any; must be cheap and have no side effects.
 */
typedef const ath_plugin *ATH_NULLABLE (*ath_plugin_query_fn)(uint32_t host_abi_major);

#if defined(__clang__) && defined(__swift__)
/**
 * Identifies the Swift toolchain that imported this header (its embedded clang's full version, which
 * differs between Swift releases). Swift plugins put it in ath_plugin.toolchain and the host compares it
 * with its own: Swift has no stable ABI on Linux, so a Swift plugin must come from the host's toolchain.
 */
static inline const char *ath_swift_toolchain_id(void) { return "swift-clang " __clang_version__; }
#endif

ATH_END_NONNULL

#ifdef __cplusplus
}
#endif

#endif /* ATHENS_PLUGIN_H */

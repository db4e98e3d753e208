/*
 * athens_plugin.h — the whole contract between the athens host and its plugins (ABI major 1).
 *
 * A plugin is a shared library exporting one C symbol, ath_plugin_query (ATH_PLUGIN_QUERY_SYMBOL, define it
 * with ATH_EXPORT), which returns a static descriptor (ath_plugin). The descriptor names the plugin, says
 * whether it is a storage, a fetcher or (1.1) a lock, and carries a constructor that takes the plugin's JSON
 * config and returns an opaque instance, plus a table of function pointers that all take that instance first.
 *
 * LOADING. The host dlopen()s a private copy of the file with RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE and never
 * unloads (a file replaced on disk is loaded anew at the next reload: docs/PLUGINS.md §3.1). It checks,
 * in this order: magic, abi_major == ATH_ABI_MAJOR, struct_size of the descriptor (all of v1.0's) and of
 * the table (at least up to its last Required entry; Optional entries past struct_size read as absent),
 * the toolchain string (Swift plugins only), then that every Required entry is non-NULL (and, from 1.1 on,
 * that the descriptor's and the table's `reserved` fields are zero).
 *
 * VERSIONING. ABI major changes break compatibility; the host refuses another major. Within a major,
 * minor versions only ever APPEND fields at the end of a struct (below the "end of version" marker).
 * Every versioned struct begins with struct_size = sizeof(struct) as its author compiled it; the reader
 * never reads a field that lies beyond struct_size (such a field reads as NULL / absent). A breaking
 * change is a new struct name, never an edit of an existing field.
 *
 * ABI 1.1 (all additions; a 1.0 plugin loads in a 1.1 host and a 1.1 plugin in a 1.0 host):
 *   - ATH_EXPORT and the ath_plugin_query prototype;
 *   - host services (ath_host: name, version, log) handed to ath_plugin.create_with_host;
 *   - a per-call context (ath_call: deadline, cancellation, request id) for every blocking entry, through
 *     the `*_ctx` twins appended to the storage and fetcher tables;
 *   - statuses ATH_CANCELLED, ATH_DECLINED, ATH_BUSY;
 *   - storage `url` (a time-limited URL to redirect clients to);
 *   - the lock kind (ATH_KIND_LOCK, ath_lock_methods).
 * THE TWIN RULE. Every 1.0 entry keeps its 1.0 status for all of major 1: a Required entry stays Required
 *   even when its 1.1 `*_ctx` twin is present, because a 1.0 host calls only it. The twins are Optional. A
 *   1.1 host calls the twin when it is non-NULL (and lies inside the table's struct_size), else the 1.0
 *   entry; it never calls both for one request. A plugin usually implements the 1.0 entry by calling its
 *   twin with a context of its own: {struct_size, 0, deadline 0, request_id "", cancelled NULL}.
 *   Likewise `create` stays Required; a 1.1 host calls `create_with_host` instead when it is present.
 * HOST-ALLOCATED STRUCTS (ath_reader, ath_sink, ath_error) have no struct_size field
 *   of their own, and adding one at their start would break every 1.0 plugin. They may only grow at their
 *   END, and the host tells how many bytes of each it allocates in ath_host.reader_size / sink_size /
 *   error_size. A plugin that got no ath_host (created by `create`, i.e. by a 1.0 host) must assume the 1.0
 *   sizes: no field past those of 1.0 exists. ath_host and ath_call carry their own struct_size.
 * RESERVED FIELDS must be zero, in every struct either side fills. A 1.1 host refuses at load a descriptor
 *   or table whose `reserved` is non-zero, naming the field, so that a later minor can give it a meaning.
 *   Reserved fields the host fills (ath_call.reserved) are zero today; plugins must not read meaning into them.
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

/* ATH_EXPORT: marks ath_plugin_query as exported even when the plugin builds with -fvisibility=hidden. (1.1) */
#if defined(__GNUC__) || defined(__clang__)
#define ATH_EXPORT __attribute__((visibility("default")))
#else
#define ATH_EXPORT
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
#define ATH_ABI_MINOR 1u
/** The one symbol a plugin exports. */
#define ATH_PLUGIN_QUERY_SYMBOL "ath_plugin_query"
/** Size of the message buffer in ath_error, including the terminating NUL. */
#define ATH_ERROR_MESSAGE_CAPACITY 512
/** Capacity the host gives catalog() for the next-page token, including the terminating NUL. */
#define ATH_CATALOG_TOKEN_CAPACITY 1024
/** Capacity the host gives storage `url` for the URL, including the terminating NUL. (1.1) */
#define ATH_URL_CAPACITY 4096
/** Longest lock key, in bytes, without the terminating NUL. (1.1) */
#define ATH_LOCK_KEY_MAX 1024

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
    /* 1.1 (a 1.0 host never calls an entry that returns these): */
    ATH_CANCELLED = 7,        /* the call's ath_call was cancelled (client gone, shutdown): the host drops the
                                 result, stores nothing, and answers nobody with it */
    ATH_DECLINED = 8,         /* storage url only: no URL for this artifact; the host serves the bytes itself */
    ATH_BUSY = 9,             /* lock acquire only: another holder kept the lock for all of wait_ms (at once when
                                 wait_ms is 0) */
    ATH_STATUS_FORCE_32BIT = 0x7fffffff
} ath_status;

/** Which kind of plugin a descriptor describes. */
typedef enum ath_kind {
    ATH_KIND_STORAGE = 1,
    ATH_KIND_FETCHER = 2,
    ATH_KIND_LOCK = 3,        /* 1.1: a 1.0 host refuses it as an unknown kind */
    ATH_KIND_FORCE_32BIT = 0x7fffffff
} ath_kind;

/** One of the three stored files of a module version. */
typedef enum ath_artifact {
    ATH_ARTIFACT_INFO = 1,    /* <version>.info: JSON {"Version": ..., "Time": ...} */
    ATH_ARTIFACT_MOD = 2,     /* <version>.mod: the go.mod file */
    ATH_ARTIFACT_ZIP = 3,     /* <version>.zip: the module zip */
    ATH_ARTIFACT_FORCE_32BIT = 0x7fffffff
} ath_artifact;

/** Host-owned, per-call error buffer. The plugin writes a NUL-terminated message on failure.
 *  May grow only at its end (after `message`); ath_host.error_size says how much the host allocates. */
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
 * bytes, 0 at the end, or -1 if the host failed (the save must then fail and store nothing: return
 * ATH_UNAVAILABLE, or ATH_CANCELLED when the call's context was cancelled meanwhile; the host discards
 * the result either way, and removes the version before answering).
 * `size` is the exact total length. Valid for the duration of the call; call from one thread at a time.
 * May grow only at its end (after `ctx`); ath_host.reader_size says how much the host allocates.
 */
typedef struct ath_reader {
    uint64_t size;
    int64_t (*read)(void *ATH_NULLABLE ctx, uint8_t *buf, uint64_t cap);
    void *ATH_NULLABLE ctx;
} ath_reader;

/**
 * A byte sink the host gives to a fetcher. write(ctx, data, len) returns 0 to go on, non-zero when the
 * host refuses more (e.g. a size limit, or a 1.1 host whose call was cancelled): the fetcher must then stop
 * and return an error. Valid for the duration of the call; call from one thread at a time.
 * May grow only at its end (after `ctx`); ath_host.sink_size says how much the host allocates.
 */
typedef struct ath_sink {
    int32_t (*write)(void *ATH_NULLABLE ctx, const uint8_t *data, uint64_t len);
    void *ATH_NULLABLE ctx;
} ath_sink;

/** Severity of a line a plugin logs through ath_host.log. (1.1) Pinned to 32 bits. */
typedef enum ath_log_level {
    ATH_LOG_ERROR = 1,        /* something failed that an operator must look at */
    ATH_LOG_WARNING = 2,      /* something degraded (a retry, a fallback) */
    ATH_LOG_INFO = 3,         /* rare, useful events (connected, config in effect) */
    ATH_LOG_DEBUG = 4,        /* detail the host drops unless asked for; levels it does not know read as this */
    ATH_LOG_LEVEL_FORCE_32BIT = 0x7fffffff
} ath_log_level;

/**
 * Host services (1.1): what the host offers its plugins, handed to ath_plugin.create_with_host.
 * Host-allocated, versioned by struct_size: a field past struct_size does not exist (read it as absent).
 * Ownership: the host's; valid from create_with_host until destroy of every instance created with it has
 *   returned (keep the pointer, never copy the struct only). Plugins never write to it.
 */
typedef struct ath_host {
    /** sizeof(ath_host) as the host compiled it. */
    uint32_t struct_size;
    /** ATH_ABI_MINOR the host was built with. */
    uint32_t abi_minor;
    /** The host program, e.g. "athens". */
    const char *name;
    /** The host's version text, e.g. "0.9.0". */
    const char *version;
    /** Passed back to `log`; the host's, opaque. */
    void *ATH_NULLABLE host_ctx;

    /* log: writes one line into the host's own log, in its format. Called on the thread of an entry call,
     *   the line carries that call's request id; from a plugin's own thread, none.
     * Required (always non-NULL). Threads: any, concurrently, including the plugin's own threads and
     *   during create_with_host; never calls back into the plugin; does not block on I/O for long.
     * Ownership: message (UTF-8, one line; newlines and control bytes are escaped by the host; long messages
     *   are cut) for the call only.  Returns nothing: logging never fails the caller. */
    void (*log)(void *ATH_NULLABLE host_ctx, ath_log_level level, const char *message);

    /** Bytes of ath_reader, ath_sink and ath_error the host allocates: at least their 1.0 sizes (24, 16, 512).
     *  A field of those structs that lies past these sizes does not exist. */
    uint32_t reader_size;
    uint32_t sink_size;
    uint32_t error_size;
    uint32_t reserved;        /* zero */
    /* end of version 1.1: append only below this line */
} ath_host;

/**
 * Per-call context (1.1): handed to every `*_ctx` entry, to `url` and to the lock entries.
 * Host-allocated, versioned by struct_size (a field past it does not exist).
 * Ownership: the host's, valid for the call only (copy request_id to keep it).
 * Deadlines: the host gives up on the call at deadline_ns and cancels it; an entry that notices the deadline
 *   has passed returns ATH_TIMEOUT. Compare with clock_gettime(CLOCK_MONOTONIC): deadline_ns is
 *   tv_sec * 1000000000 + tv_nsec of that clock, absolute, 0 = no deadline.
 * Cancellation: cancelled(call) turns non-zero when the host no longer wants the result (the last client
 *   waiting for it went away, timed out or hung up, and the fetch is not kept for later, the host is
 *   shutting down past its timeout, or the deadline passed) and stays non-zero. Poll it between steps (each
 *   chunk written, each retry); an entry that notices returns ATH_CANCELLED (or ATH_TIMEOUT past the
 *   deadline) soon, after releasing what it holds. Ignoring it is allowed but wastes work. Sinks may also refuse once cancelled.
 */
typedef struct ath_call {
    /** sizeof(ath_call) as the host compiled it. */
    uint32_t struct_size;
    uint32_t reserved;        /* zero */
    /** Absolute CLOCK_MONOTONIC nanoseconds at which the host gives up; 0 = none. */
    uint64_t deadline_ns;
    /** The request this call serves, as the host's log names it; "" when none (start-up, plugin-check). */
    const char *request_id;
    /* cancelled: non-zero once the call is cancelled (see above).
     *   Optional: NULL means the call is never cancelled. Threads: any, concurrently (a plugin may poll it
     *   from a helper thread while the entry is running), cheap (an atomic load), never blocks. Valid until
     *   the entry returns. */
    int32_t (*ATH_NULLABLE cancelled)(const struct ath_call *call);
    /** The host's, opaque: for `cancelled`. Plugins never touch it. */
    void *ATH_NULLABLE host_data;
    /* end of version 1.1: append only below this line */
} ath_call;

/** Non-zero if `call` has been cancelled; a NULL `cancelled` entry means never. (1.1) */
static inline int32_t ath_call_is_cancelled(const ath_call *call) {
    return call->cancelled != NULL ? call->cancelled(call) : 0;
}

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
     *   saves and removes). The token is opaque to the host, which hands it to clients in the JSON of
     *   /catalog ("next") and takes it back from the query string: keep it to printable ASCII without
     *   spaces (a client must be able to put it in a URL), under ATH_CATALOG_TOKEN_CAPACITY - 1 bytes.
     *   If emit returns non-zero, stop emitting at once and return ATH_OK; next_token is then ignored
     *   (the host never resumes a page it cut short; the 1.0 and 1.1 hosts never stop early).
     * Optional (NULL: the host answers /catalog with 501). Threads: any, concurrently.
     * Returns: ATH_OK; ATH_INVALID for a token it did not issue; others with err set. */
    ath_status (*ATH_NULLABLE catalog)(void *ATH_NULLABLE instance, const char *token, uint32_t page_size,
                                       ath_emit_module_version_fn emit, void *ATH_NULLABLE ctx,
                                       char *next_token, ath_error *err);
    /* end of version 1.0: append only below this line */

    /* The *_ctx twins (1.1): each is the 1.0 entry above with the per-call context `call` after the
     *   instance, and the same contract otherwise (Threads, Ownership, Returns), plus: ATH_CANCELLED when
     *   the call was cancelled, ATH_TIMEOUT when its deadline passed.
     * Optional each (NULL: the host calls the 1.0 entry); the 1.0 entries stay Required (the twin rule). */
    ath_status (*ATH_NULLABLE open_ctx)(void *ATH_NULLABLE instance, const ath_call *call, const char *module,
                                        const char *version, ath_artifact artifact, ath_blob *out, ath_error *err);
    ath_status (*ATH_NULLABLE save_ctx)(void *ATH_NULLABLE instance, const ath_call *call, const char *module,
                                        const char *version, const uint8_t *info, uint64_t info_size,
                                        const uint8_t *mod, uint64_t mod_size, const ath_reader *zip, ath_error *err);
    ath_status (*ATH_NULLABLE exists_ctx)(void *ATH_NULLABLE instance, const ath_call *call, const char *module,
                                          const char *version, int32_t *out_exists, ath_error *err);
    ath_status (*ATH_NULLABLE list_ctx)(void *ATH_NULLABLE instance, const ath_call *call, const char *module,
                                        ath_emit_version_fn emit, void *ATH_NULLABLE ctx, ath_error *err);
    ath_status (*ATH_NULLABLE remove_ctx)(void *ATH_NULLABLE instance, const ath_call *call, const char *module,
                                          const char *version, ath_error *err);
    /* catalog_ctx: Optional even when catalog is present; NULL catalog and catalog_ctx: /catalog is 501. */
    ath_status (*ATH_NULLABLE catalog_ctx)(void *ATH_NULLABLE instance, const ath_call *call, const char *token,
                                           uint32_t page_size, ath_emit_module_version_fn emit,
                                           void *ATH_NULLABLE ctx, char *next_token, ath_error *err);

    /* url (1.1): a time-limited URL from which a client can GET the stored bytes of one file of
     *   module@version directly (e.g. a presigned object-store URL), so that the host answers 302 to it and
     *   the bytes never pass through the host. Used only when the manifest asks for redirects for this storage.
     *   Writes an absolute http:// or https:// URL of printable ASCII (0x21..0x7E: no spaces, no CR/LF; the
     *   host refuses anything else and serves the bytes) into out_url (capacity ATH_URL_CAPACITY,
     *   NUL-terminated), and into *out_valid_s how many seconds from now it stays valid (>= 1; the host caches
     *   the redirect for less than that, and the client must be able to start its GET well within it).
     *   The URL must serve exactly the bytes `open` would (same length, same content).
     * Optional (NULL: the host always serves bytes). Threads: any, concurrently. Should be quick, like open
     *   (computed locally, e.g. a signature, not a network round trip): the host may call it on its event loop.
     * Ownership: arguments for the call only; out_url and out_valid_s are the host's.
     * Returns: ATH_OK with out_url set; ATH_DECLINED when this artifact gets no URL (a per-artifact choice,
     *   e.g. only zips, or a small .mod served faster by the host): the host calls open and serves the
     *   bytes; ATH_NOT_FOUND if the version is not (completely) stored; other codes with err set (the host
     *   logs them and falls back to open: a redirect is an optimisation, never the only way to the bytes). */
    ath_status (*ATH_NULLABLE url)(void *ATH_NULLABLE instance, const ath_call *call, const char *module,
                                   const char *version, ath_artifact artifact, char *out_url,
                                   uint32_t *out_valid_s, ath_error *err);
    /* end of version 1.1: append only below this line */
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
     *   The queries the host sends: "latest" (for /@latest); the highest version of `list` when "latest"
     *   answered ATH_NOT_FOUND; and the version of every /@v/<query>.info that is not a canonical version
     *   fitting the path, as the client sent it (decoded, one path element, never "upgrade" or "patch"):
     *   branches, tags, commit hash prefixes, and partial versions such as "v1" or "v1.2". The host does
     *   not expand those: answer them as the go command's direct mode does (a tag or branch of exactly that
     *   name, else ATH_NOT_FOUND); the go command itself turns `m@v1.2` into a version from /@v/list.
     * Required. Threads: any, concurrently.
     * Returns: ATH_OK; ATH_NOT_FOUND if nothing matches; others with err set. */
    ath_status (*ATH_NULLABLE resolve)(void *ATH_NULLABLE instance, const char *module, const char *query,
                                       const ath_sink *info, ath_error *err);
    /* end of version 1.0: append only below this line */

    /* The *_ctx twins (1.1): the 1.0 entries above with the per-call context `call` after the instance, and
     *   the same contract otherwise, plus: ATH_CANCELLED when the call was cancelled (poll it between chunks
     *   and between network steps), ATH_TIMEOUT when its deadline passed. A fetch that is cancelled may
     *   leave its sinks half written: the host discards them.
     * Optional each (NULL: the host calls the 1.0 entry); the 1.0 entries stay Required (the twin rule). */
    ath_status (*ATH_NULLABLE fetch_ctx)(void *ATH_NULLABLE instance, const ath_call *call, const char *module,
                                         const char *version, const ath_sink *info, const ath_sink *mod,
                                         const ath_sink *zip, ath_error *err);
    ath_status (*ATH_NULLABLE list_ctx)(void *ATH_NULLABLE instance, const ath_call *call, const char *module,
                                        ath_emit_version_fn emit, void *ATH_NULLABLE ctx, ath_error *err);
    ath_status (*ATH_NULLABLE resolve_ctx)(void *ATH_NULLABLE instance, const ath_call *call, const char *module,
                                           const char *query, const ath_sink *info, ath_error *err);
    /* end of version 1.1: append only below this line */
} ath_fetcher_methods;

/**
 * Lock (1.1, kind ATH_KIND_LOCK): mutual exclusion on named keys across processes (several athens
 * instances sharing one storage), e.g. so that one of them fetches a module version while the others wait
 * and then find it stored.
 *
 * KEYS are NUL-terminated byte strings of 1..ATH_LOCK_KEY_MAX bytes, any byte but NUL (not necessarily
 *   UTF-8). The plugin treats them as opaque names: never as paths, never interpreted. Equal bytes = one lock.
 * A HANDLE is a non-zero uint64_t the plugin chooses (a pointer, an index, a Go cgo.Handle) naming one held
 *   lock; the host passes it back to refresh and release, and never uses it after release.
 * LEASES. A holder names a lease (lease_ms >= 1) at acquire and at each refresh. The lock is held until
 *   release. If the holder dies (its process exits or is killed, or its machine goes away), the lock is
 *   freed without a release: at once when the backend can tell (a kernel lock, FileLock), else at the latest
 *   lease_ms after the last acquire or refresh (a backend with expiring keys). A living holder that stops
 *   refreshing may lose the lock once its lease has run out (a backend with expiring keys does; FileLock
 *   does not, since its kernel lock has no timer); refresh then says so with ATH_NOT_FOUND. So a holder that
 *   must keep it refreshes well before lease_ms (the host: at a third of it). What a holder does once the
 *   lock is lost is its own choice: athens finishes the fetch it holds the lock for (its saves are atomic and
 *   a stored version is a success, so a lost lock costs at most a second upstream fetch elsewhere, while
 *   stopping would fail every fetch during a lock-backend outage), logs the loss once and counts it.
 * FAIRNESS: none promised. Waiters are not served in arrival order: a caller arriving as the lock is freed
 *   may take it before one that waited (barging). Every waiter gets its answer within wait_ms (plus one
 *   backend round trip); none waits forever.
 * Not reentrant: a second acquire of a held key waits like any other, even on the same instance and thread.
 * Threads: every entry any, concurrently on one instance (many acquires of one key wait at once).
 */
typedef struct ath_lock_methods {
    /** sizeof(ath_lock_methods) as the plugin compiled it. */
    uint32_t struct_size;
    uint32_t reserved;        /* zero */

    /* acquire: takes the lock on `key` for lease_ms, waiting up to wait_ms while another holder has it.
     *   wait_ms = 0 is one try that never waits: ATH_OK if the lock was free, else ATH_BUSY at once (after at
     *   most one backend round trip). Waiting must not spin: block on the backend (a wake-up, a blocking
     *   call with a timeout) or sleep between tries. It also ends early when `call` is cancelled or its
     *   deadline passes, whichever of the three comes first.
     * Required. Threads: any, concurrently.
     * Ownership: key and call for the call only (copy the key to keep it); *out_handle is set only on ATH_OK,
     *   and the lock it names is the host's until it calls release.
     * Returns: ATH_OK (held; *out_handle set); ATH_BUSY when wait_ms ran out with another holder;
     *   ATH_CANCELLED / ATH_TIMEOUT when the call was cancelled / its deadline passed first; ATH_INVALID for
     *   an empty or too long key or lease_ms 0; ATH_UNAVAILABLE when the backend is unreachable; others with
     *   err set. On any failure no lock is held and nothing needs releasing. */
    ath_status (*ATH_NULLABLE acquire)(void *ATH_NULLABLE instance, const ath_call *call, const char *key,
                                       uint32_t lease_ms, uint32_t wait_ms, uint64_t *out_handle, ath_error *err);

    /* refresh: extends the lease of a held lock to lease_ms from now.
     * Required. Threads: any, concurrently, but not concurrently with release of the same handle.
     * Returns: ATH_OK (still held); ATH_NOT_FOUND when the lock was lost (its lease ran out and it may be held
     *   by another now) or the handle is not one of this instance's; ATH_INVALID for lease_ms 0;
     *   ATH_UNAVAILABLE (backend unreachable: the holder must assume the lock may be lost at the lease's end);
     *   others with err set. The handle stays valid either way: release it. */
    ath_status (*ATH_NULLABLE refresh)(void *ATH_NULLABLE instance, const ath_call *call, uint64_t handle,
                                       uint32_t lease_ms, ath_error *err);

    /* release: frees the lock (if still held) and the handle, whatever it returns: the host never uses the
     *   handle again. Not cancellable: called with no context, also at shutdown.
     * Required. Threads: any, concurrently (each handle released once).
     * Returns: ATH_OK; ATH_NOT_FOUND when the lock had already been lost (harmless); others with err set
     *   (the lock then frees itself when its lease ends). */
    ath_status (*ATH_NULLABLE release)(void *ATH_NULLABLE instance, uint64_t handle, ath_error *err);
    /* end of version 1.1: append only below this line */
} ath_lock_methods;

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

    /* create_with_host (1.1): `create` with the host's services, which the plugin may keep (and use from
     *   any thread) until destroy. The instance it returns is used exactly like one from `create`.
     * Optional (a 1.1 host calls it instead of `create` when non-NULL; `create` stays Required, since a 1.0
     *   host calls only `create`: a plugin must work without host services, e.g. by logging nowhere).
     * Threads: alone, like create (again at every reload, while the previous instance still serves).
     * Ownership: host as described at ath_host; config_json for the call only; *out_instance the plugin's
     *   until destroy.  Returns: as create. */
    ath_status (*ATH_NULLABLE create_with_host)(const ath_host *host, const char *config_json,
                                                void *ATH_NULLABLE *ATH_NONNULL out_instance, ath_error *err);

    /** The methods of a lock plugin (kind ATH_KIND_LOCK), else NULL. (1.1) */
    const ath_lock_methods *ATH_NULLABLE lock;
    /* end of version 1.1: append only below this line */
} ath_plugin;

/**
 * The entry symbol. host_abi_major is the host's ATH_ABI_MAJOR; a plugin may return NULL to decline.
 * Threads: any; must be cheap and have no side effects.
 */
typedef const ath_plugin *ATH_NULLABLE (*ath_plugin_query_fn)(uint32_t host_abi_major);

#if !defined(__swift__)
/**
 * The prototype of the entry symbol (1.1), so that a definition with another signature fails to compile.
 * Define it as: ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t host_abi_major) { ... }
 * (Hidden from Swift, where PluginKit's plugins define it with @c and the host finds it with dlsym.)
 */
ATH_EXPORT const ath_plugin *ATH_NULLABLE ath_plugin_query(uint32_t host_abi_major);
#endif

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

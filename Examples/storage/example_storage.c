/*
 * example_storage.c — an athens storage plugin in plain C11, written against athens_plugin.h alone.
 *
 * It keeps module versions in memory: .info and .mod as heap bytes (handed out as "data" blobs) and the
 * .zip in an unlinked temporary file (handed out as an "fd" blob, which athens can sendfile()). Versions
 * sit in an array sorted by (module, version), which gives lookups by binary search and a stable catalog
 * order whose page token is simply the last module@version of the page.
 *
 * Config (JSON object, every key optional):
 *   {"spoolDirectory": "/var/tmp"}   where zip files are created (then unlinked at once); default $TMPDIR or /tmp
 *
 * Build:
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -shared -fPIC \
 *      -I ../../Sources/PluginABI/include example_storage.c -o libExampleStorage.so -lpthread
 * Check:
 *   athens plugin-check ./libExampleStorage.so
 *
 * Ownership, in one line each (see docs/PLUGINS.md):
 *   - every stored version is an `entry` with a reference count: one for the array, one per open blob;
 *   - a blob's release drops its reference, so a removed version stays readable until its last blob goes;
 *   - nothing the host passed in is kept: module, version, info and mod are copied, the zip is read to its end.
 */
#include "athens_plugin.h"
#include "athens_config.h" /* optional helper: reads flat JSON configs */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef ATH_EXPORT /* ATH_EXPORT came with ABI 1.1; this example also builds against the 1.0 header */
#define ATH_EXPORT __attribute__((visibility("default")))
#endif

/* ---- stored versions ---------------------------------------------------------------------------- */

struct entry {
    char *module;
    char *version;
    uint8_t *info, *mod; /* never NULL, even when empty: a data blob needs a pointer */
    uint64_t info_size, mod_size;
    int zip_fd;          /* unlinked file holding the zip; shared by every blob (athens uses pread) */
    uint64_t zip_size;
    int refs;            /* guarded by store.lock */
};

struct store {
    pthread_mutex_t lock;
    struct entry **entries; /* sorted by (module, version) */
    size_t count, capacity;
    char spool[4096];
};

static void entry_free(struct entry *e) {
    if (e->zip_fd >= 0) close(e->zip_fd);
    free(e->module);
    free(e->version);
    free(e->info);
    free(e->mod);
    free(e);
}

/* Drops one reference; the last one frees the entry (outside the lock: close() may block). */
static void entry_unref(struct store *s, struct entry *e) {
    pthread_mutex_lock(&s->lock);
    int refs = --e->refs;
    pthread_mutex_unlock(&s->lock);
    if (refs == 0) entry_free(e);
}

static int compare_key(const char *module, const char *version, const struct entry *e) {
    int c = strcmp(module, e->module);
    return c != 0 ? c : strcmp(version, e->version);
}

/* Index of the first entry whose key is >= (module, version); sets *found when it is equal. Lock held. */
static size_t lower_bound(const struct store *s, const char *module, const char *version, int *found) {
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (compare_key(module, version, s->entries[mid]) > 0) lo = mid + 1;
        else hi = mid;
    }
    *found = lo < s->count && compare_key(module, version, s->entries[lo]) == 0;
    return lo;
}

/* Formats "what: module@version: detail" into err. */
static ath_status fail(ath_error *err, ath_status status, const char *what, const char *module, const char *version,
                       const char *detail) {
    char message[ATH_ERROR_MESSAGE_CAPACITY];
    snprintf(message, sizeof message, "%s %s@%s: %s", what, module, version, detail);
    ath_error_set(err, message);
    return status;
}

/* ---- config: read with the optional helper athens_config.h ----------------------------------------- */

static ath_status parse_config(const char *json, struct store *s, ath_error *err) {
    ath_config config;
    char message[ATH_ERROR_MESSAGE_CAPACITY];
    if (ath_config_parse(&config, json) != 0) {
        ath_error_set(err, config.error);
        return ATH_INVALID;
    }
    char spool[sizeof s->spool];
    int found = ath_config_string(&config, "spoolDirectory", spool, sizeof spool);
    if (found < 0 || (found == 1 && spool[0] == '\0')) {
        ath_error_set(err, "config: spoolDirectory must be a non-empty JSON string");
        return ATH_INVALID;
    }
    const char *unknown = ath_config_unknown(&config);
    if (unknown != NULL) {
        snprintf(message, sizeof message, "config: unknown key \"%s\" (this plugin takes spoolDirectory)", unknown);
        ath_error_set(err, message);
        return ATH_INVALID;
    }
    if (found == 1) memcpy(s->spool, spool, strlen(spool) + 1);
    return ATH_OK;
}

/* ---- lifecycle ---------------------------------------------------------------------------------- */

static ath_status create(const char *config_json, void **out_instance, ath_error *err) {
    struct store *s = calloc(1, sizeof *s);
    if (!s) {
        ath_error_set(err, "create: out of memory");
        return ATH_INTERNAL;
    }
    const char *tmp = getenv("TMPDIR"); /* reading the environment is fine; changing it is not */
    snprintf(s->spool, sizeof s->spool, "%s", tmp && tmp[0] ? tmp : "/tmp");
    ath_status status = parse_config(config_json, s, err);
    if (status != ATH_OK) {
        free(s);
        return status;
    }
    if (access(s->spool, W_OK | X_OK) != 0) {
        char message[ATH_ERROR_MESSAGE_CAPACITY];
        snprintf(message, sizeof message, "config: spoolDirectory %.300s: %.100s", s->spool, strerror(errno));
        ath_error_set(err, message);
        free(s);
        return ATH_INVALID;
    }
    pthread_mutex_init(&s->lock, NULL);
    *out_instance = s;
    return ATH_OK;
}

/* Called alone, after every other call returned. Entries still held by blobs are freed by their release. */
static void destroy(void *instance) {
    struct store *s = instance;
    for (size_t i = 0; i < s->count; i++) entry_unref(s, s->entries[i]);
    free(s->entries);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- blobs -------------------------------------------------------------------------------------- */

struct blob_ref {
    struct store *store;
    struct entry *entry;
};

static void blob_release(void *private_data) {
    struct blob_ref *ref = private_data;
    entry_unref(ref->store, ref->entry);
    free(ref);
}

static ath_status storage_open(void *instance, const char *module, const char *version, ath_artifact artifact,
                               ath_blob *out, ath_error *err) {
    struct store *s = instance;
    if (artifact != ATH_ARTIFACT_INFO && artifact != ATH_ARTIFACT_MOD && artifact != ATH_ARTIFACT_ZIP)
        return fail(err, ATH_INVALID, "open", module, version, "unknown artifact");
    struct blob_ref *ref = malloc(sizeof *ref);
    if (!ref) return fail(err, ATH_INTERNAL, "open", module, version, "out of memory");
    int found;
    pthread_mutex_lock(&s->lock);
    size_t at = lower_bound(s, module, version, &found);
    struct entry *e = found ? s->entries[at] : NULL;
    if (e) e->refs++; /* the blob's reference: taken under the lock, so remove cannot free it meanwhile */
    pthread_mutex_unlock(&s->lock);
    if (!e) {
        free(ref); /* on failure *out stays untouched and nothing is released */
        return fail(err, ATH_NOT_FOUND, "open", module, version, "not stored");
    }
    ref->store = s;
    ref->entry = e;
    ath_blob blob = {.fd = -1, .release = blob_release, .private_data = ref};
    if (artifact == ATH_ARTIFACT_ZIP) {
        blob.fd = e->zip_fd;
        blob.offset = 0;
        blob.size = e->zip_size;
    } else {
        blob.data = artifact == ATH_ARTIFACT_INFO ? e->info : e->mod;
        blob.size = artifact == ATH_ARTIFACT_INFO ? e->info_size : e->mod_size;
    }
    *out = blob;
    return ATH_OK;
}

/* ---- save: build the entry outside the lock, publish it under the lock ------------------------- */

static uint8_t *copy_bytes(const uint8_t *data, uint64_t size) {
    uint8_t *p = malloc(size + 1);
    if (p && size) memcpy(p, data, size);
    return p;
}

static char *copy_string(const char *s) { return (char *)copy_bytes((const uint8_t *)s, strlen(s) + 1); }

/* Copies the host's zip stream into an unlinked temporary file. Returns the fd, or -1 with err set. */
static int spool_zip(struct store *s, const char *module, const char *version, const ath_reader *zip, ath_error *err) {
    char path[sizeof s->spool + 32];
    snprintf(path, sizeof path, "%s/athens-example-XXXXXX", s->spool);
    int fd = mkstemp(path);
    if (fd < 0) {
        char detail[256];
        snprintf(detail, sizeof detail, "cannot create a zip file in %.120s: %.100s", s->spool, strerror(errno));
        fail(err, ATH_UNAVAILABLE, "save", module, version, detail);
        return -1;
    }
    unlink(path); /* the file lives as long as its fd: nothing is left behind on a crash */
    static const size_t chunk = 1 << 16;
    uint8_t *buffer = malloc(chunk);
    uint64_t got = 0;
    while (buffer && got < zip->size) {
        uint64_t want = zip->size - got < chunk ? zip->size - got : chunk;
        int64_t n = zip->read(zip->ctx, buffer, want); /* may return fewer bytes than asked: loop */
        if (n <= 0 || (uint64_t)n > want) break;
        for (int64_t done = 0; done < n;) {
            ssize_t w = write(fd, buffer + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                char detail[256];
                snprintf(detail, sizeof detail, "writing the zip file: %s", strerror(errno));
                fail(err, ATH_UNAVAILABLE, "save", module, version, detail);
                free(buffer);
                close(fd);
                return -1;
            }
            done += w;
        }
        got += (uint64_t)n;
    }
    free(buffer);
    if (got != zip->size) {
        fail(err, ATH_UNAVAILABLE, "save", module, version, "the zip stream failed or ended early");
        close(fd);
        return -1;
    }
    return fd;
}

static ath_status storage_save(void *instance, const char *module, const char *version,
                               const uint8_t *info, uint64_t info_size, const uint8_t *mod, uint64_t mod_size,
                               const ath_reader *zip, ath_error *err) {
    struct store *s = instance;
    struct entry *e = calloc(1, sizeof *e);
    if (!e) return fail(err, ATH_INTERNAL, "save", module, version, "out of memory");
    e->zip_fd = -1;
    e->refs = 1;
    e->module = copy_string(module);
    e->version = copy_string(version);
    e->info = copy_bytes(info, info_size);
    e->mod = copy_bytes(mod, mod_size);
    e->info_size = info_size;
    e->mod_size = mod_size;
    if (!e->module || !e->version || !e->info || !e->mod) {
        entry_free(e);
        return fail(err, ATH_INTERNAL, "save", module, version, "out of memory");
    }
    /* The slow part, done before taking the lock so that saves of different versions run in parallel. */
    e->zip_fd = spool_zip(s, module, version, zip, err);
    if (e->zip_fd < 0) {
        entry_free(e);
        return ATH_UNAVAILABLE;
    }
    e->zip_size = zip->size;

    int found;
    pthread_mutex_lock(&s->lock);
    size_t at = lower_bound(s, module, version, &found);
    if (found) {
        /* Another save of this version won: keep its bytes, answer ALREADY_EXISTS. */
        pthread_mutex_unlock(&s->lock);
        entry_free(e);
        return fail(err, ATH_ALREADY_EXISTS, "save", module, version, "already stored");
    }
    if (s->count == s->capacity) {
        size_t capacity = s->capacity ? s->capacity * 2 : 64;
        struct entry **grown = realloc(s->entries, capacity * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&s->lock);
            entry_free(e);
            return fail(err, ATH_INTERNAL, "save", module, version, "out of memory");
        }
        s->entries = grown;
        s->capacity = capacity;
    }
    memmove(&s->entries[at + 1], &s->entries[at], (s->count - at) * sizeof *s->entries);
    s->entries[at] = e; /* from here on, all three files are visible together */
    s->count++;
    pthread_mutex_unlock(&s->lock);
    return ATH_OK;
}

/* ---- exists, list, remove ----------------------------------------------------------------------- */

static ath_status storage_exists(void *instance, const char *module, const char *version, int32_t *out_exists,
                                 ath_error *err) {
    (void)err;
    struct store *s = instance;
    int found;
    pthread_mutex_lock(&s->lock);
    (void)lower_bound(s, module, version, &found);
    pthread_mutex_unlock(&s->lock);
    *out_exists = found ? 1 : 0;
    return ATH_OK;
}

static ath_status storage_list(void *instance, const char *module, ath_emit_version_fn emit, void *ctx,
                               ath_error *err) {
    (void)err;
    struct store *s = instance;
    int found;
    /* The versions of one module are adjacent in the sorted array and start at (module, ""). The lock is
     * held while emitting: emit only appends to the host's list and never calls back into the plugin. */
    pthread_mutex_lock(&s->lock);
    for (size_t i = lower_bound(s, module, "", &found); i < s->count && strcmp(s->entries[i]->module, module) == 0; i++)
        if (emit(ctx, s->entries[i]->version) != 0) break;
    pthread_mutex_unlock(&s->lock);
    return ATH_OK;
}

static ath_status storage_remove(void *instance, const char *module, const char *version, ath_error *err) {
    struct store *s = instance;
    int found;
    pthread_mutex_lock(&s->lock);
    size_t at = lower_bound(s, module, version, &found);
    if (!found) {
        pthread_mutex_unlock(&s->lock);
        return fail(err, ATH_NOT_FOUND, "remove", module, version, "not stored");
    }
    struct entry *e = s->entries[at];
    memmove(&s->entries[at], &s->entries[at + 1], (s->count - at - 1) * sizeof *s->entries);
    s->count--;
    pthread_mutex_unlock(&s->lock);
    entry_unref(s, e); /* open blobs keep their own references: their bytes stay valid */
    return ATH_OK;
}

/* ---- catalog: token = "c1:" + module + "@" + version of the last entry of the previous page ------ */

static ath_status storage_catalog(void *instance, const char *token, uint32_t page_size, ath_emit_module_version_fn emit,
                                  void *ctx, char *next_token, ath_error *err) {
    struct store *s = instance;
    size_t start = 0;
    char *after_module = NULL;
    if (token[0] != '\0') {
        const char *at = strncmp(token, "c1:", 3) == 0 ? strrchr(token + 3, '@') : NULL;
        if (!at || at == token + 3) {
            char message[ATH_ERROR_MESSAGE_CAPACITY];
            snprintf(message, sizeof message, "catalog: \"%.200s\" is not a token this storage issued", token);
            ath_error_set(err, message);
            return ATH_INVALID;
        }
        after_module = copy_string(token + 3);
        if (!after_module) {
            ath_error_set(err, "catalog: out of memory");
            return ATH_INTERNAL;
        }
        after_module[at - (token + 3)] = '\0';
    }
    next_token[0] = '\0';
    uint32_t emitted = 0;
    pthread_mutex_lock(&s->lock);
    if (after_module) {
        int found;
        const char *after_version = after_module + strlen(after_module) + 1;
        start = lower_bound(s, after_module, after_version, &found);
        if (found) start++; /* resume strictly after the last entry of the previous page */
    }
    size_t i = start;
    while (i < s->count && emitted < page_size) {
        int stop = emit(ctx, s->entries[i]->module, s->entries[i]->version);
        i++;
        emitted++;
        if (stop) break; /* the host asked for no more: the next page starts after what it got */
    }
    if (i < s->count && emitted > 0) {
        const struct entry *last = s->entries[i - 1];
        int n = snprintf(next_token, ATH_CATALOG_TOKEN_CAPACITY, "c1:%s@%s", last->module, last->version);
        if (n < 0 || n >= ATH_CATALOG_TOKEN_CAPACITY) {
            pthread_mutex_unlock(&s->lock);
            free(after_module);
            next_token[0] = '\0';
            ath_error_set(err, "catalog: a module path too long for a page token");
            return ATH_INTERNAL;
        }
    }
    pthread_mutex_unlock(&s->lock);
    free(after_module);
    return ATH_OK;
}

/* ---- the descriptor ----------------------------------------------------------------------------- */

static const ath_storage_methods methods = {
    .struct_size = sizeof(ath_storage_methods),
    .open = storage_open,
    .save = storage_save,
    .exists = storage_exists,
    .list = storage_list,
    .remove = storage_remove,
    .catalog = storage_catalog,
};

static const ath_plugin descriptor = {
    .magic = ATH_MAGIC,
    .struct_size = sizeof(ath_plugin),
    .abi_major = ATH_ABI_MAJOR,
    .abi_minor = ATH_ABI_MINOR,
    .kind = ATH_KIND_STORAGE,
    .name = "ExampleStorage",
    .toolchain = NULL, /* C: no language runtime shared with the host, so it loads in any athens of ABI 1 */
    .create = create,
    .destroy = destroy,
    .storage = &methods,
    .fetcher = NULL,
};

ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t host_abi_major) {
    return host_abi_major == ATH_ABI_MAJOR ? &descriptor : NULL;
}

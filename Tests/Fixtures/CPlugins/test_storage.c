/*
 * A small storage plugin in plain C11 against athens_plugin.h alone, used by the loader and ABI tests.
 * It keeps versions in a mutex-protected linked list and hands out blobs in the "read callback" shape.
 * Compile-time switches build deliberately broken variants:
 *   -DNO_ENTRY        no ath_plugin_query symbol
 *   -DDECLINE         ath_plugin_query returns NULL
 *   -DBAD_MAGIC       wrong magic
 *   -DABI_MAJOR_OVERRIDE=N   claims ABI major N
 *   -DSMALL_DESCRIPTOR       descriptor struct_size smaller than v1.0's
 *   -DNULL_OPEN       storage table without open
 *   -DTOOLCHAIN=\"x\" claims a Swift toolchain
 *   -DWRONG_KIND      says fetcher but has a storage table only
 * Run-time faults, by module path (for the fault-injection tests):
 *   a module containing "storage-fail"   save fails with ATH_UNAVAILABLE ("disk on fire")
 *   a module containing "storage-stall"  open sleeps 2 s first
 *   a module containing "fd-past-end"    open hands out an fd blob whose size runs 1000 bytes past the file's end
 *   a module containing "save-partial"   save keeps the files with half the zip, then fails (ATH_UNAVAILABLE)
 *   a module containing "crash-open"     open dereferences NULL (SIGSEGV inside the plugin)
 *   a module containing "slow-read"      each read of its zip blob sleeps 1 s and returns at most 64 bytes
 * -DEVENTS_FILE=\"path\"   each blob release appends "released <module>@<version> <artifact index>\n" to path,
 *                          each slow read "read <module>@<version> <artifact index>\n" (tests poll it)
 */
#include "athens_plugin.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


struct entry {
    struct entry *next;
    char *module, *version;
    uint8_t *files[3];
    uint64_t sizes[3];
    int refs; /* list reference + one per open blob */
};

struct store {
    pthread_mutex_t lock;
    struct entry *head;
};

struct reader {
    struct entry *entry;
    struct store *store;
    int which;
    uint64_t position;
};

static char *copy_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

#ifdef EVENTS_FILE
static void note_event(const char *what, const struct entry *e, int which) {
    char line[600];
    int n = snprintf(line, sizeof line, "%s %s@%s %d\n", what, e->module, e->version, which);
    int fd = open(EVENTS_FILE, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (n > 0 && write(fd, line, (size_t)n) < 0) { /* best effort: the test then times out waiting */ }
    close(fd);
}
#else
static void note_event(const char *what, const struct entry *e, int which) { (void)what, (void)e, (void)which; }
#endif

static void entry_unref(struct store *s, struct entry *e) {
    pthread_mutex_lock(&s->lock);
    int refs = --e->refs;
    pthread_mutex_unlock(&s->lock);
    if (refs == 0) {
        for (int i = 0; i < 3; i++) free(e->files[i]);
        free(e->module);
        free(e->version);
        free(e);
    }
}

static struct entry *find(struct store *s, const char *module, const char *version) {
    for (struct entry *e = s->head; e; e = e->next)
        if (strcmp(e->module, module) == 0 && strcmp(e->version, version) == 0) return e;
    return NULL;
}

static ath_status create(const char *config_json, void **out_instance, ath_error *err) {
    if (strcmp(config_json, "{}") != 0) {
        ath_error_set(err, "config: this plugin takes no keys");
        return ATH_INVALID;
    }
    struct store *s = calloc(1, sizeof *s);
    if (!s) return ATH_INTERNAL;
    pthread_mutex_init(&s->lock, NULL);
    *out_instance = s;
    return ATH_OK;
}

static void destroy(void *instance) {
    struct store *s = instance;
    struct entry *e = s->head;
    while (e) {
        struct entry *next = e->next;
        entry_unref(s, e);
        e = next;
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int64_t blob_read(void *private_data, uint8_t *buf, uint64_t cap) {
    struct reader *r = private_data;
    if (r->which == 2 && strstr(r->entry->module, "slow-read")) {
        struct timespec t = {1, 0};
        nanosleep(&t, NULL);
        if (cap > 64) cap = 64;
        note_event("read", r->entry, r->which);
    }
    uint64_t left = r->entry->sizes[r->which] - r->position;
    uint64_t n = left < cap ? left : cap;
    memcpy(buf, r->entry->files[r->which] + r->position, n);
    r->position += n;
    return (int64_t)n;
}

static void blob_release(void *private_data) {
    struct reader *r = private_data;
    note_event("released", r->entry, r->which);
    entry_unref(r->store, r->entry);
    free(r);
}

static void fd_release(void *private_data) { close((int)(intptr_t)private_data); }

/* The stored bytes in an unlinked temporary file, announced 1000 bytes longer than they are. */
static ath_status open_past_end(struct entry *e, int which, ath_blob *out, ath_error *err) {
    char path[] = "/tmp/athens-test-storage-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        ath_error_set(err, "mkstemp failed");
        return ATH_UNAVAILABLE;
    }
    unlink(path);
    if (write(fd, e->files[which], e->sizes[which]) != (ssize_t)e->sizes[which]) {
        close(fd);
        ath_error_set(err, "write failed");
        return ATH_UNAVAILABLE;
    }
    *out = (ath_blob){.fd = fd, .offset = 0, .size = e->sizes[which] + 1000, .release = fd_release,
                      .private_data = (void *)(intptr_t)fd};
    return ATH_OK;
}

static ath_status storage_open(void *instance, const char *module, const char *version, ath_artifact artifact,
                               ath_blob *out, ath_error *err) {
    struct store *s = instance;
    if (strstr(module, "crash-open")) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
    }
    if (strstr(module, "storage-stall")) {
        struct timespec t = {2, 0};
        nanosleep(&t, NULL);
    }
    int which = artifact == ATH_ARTIFACT_INFO ? 0 : artifact == ATH_ARTIFACT_MOD ? 1 : artifact == ATH_ARTIFACT_ZIP ? 2 : -1;
    if (which < 0) {
        ath_error_set(err, "unknown artifact");
        return ATH_INVALID;
    }
    struct reader *r = calloc(1, sizeof *r);
    if (!r) return ATH_INTERNAL;
    pthread_mutex_lock(&s->lock);
    struct entry *e = find(s, module, version);
    if (e) e->refs++;
    pthread_mutex_unlock(&s->lock);
    if (!e) {
        free(r);
        char message[ATH_ERROR_MESSAGE_CAPACITY];
        snprintf(message, sizeof message, "%s@%s: not stored", module, version);
        ath_error_set(err, message);
        return ATH_NOT_FOUND;
    }
    if (strstr(module, "fd-past-end")) {
        free(r);
        ath_status status = open_past_end(e, which, out, err);
        entry_unref(s, e);
        return status;
    }
    r->entry = e;
    r->store = s;
    r->which = which;
    *out = (ath_blob){.fd = -1, .size = e->sizes[which], .read = blob_read, .release = blob_release, .private_data = r};
    return ATH_OK;
}

static ath_status storage_save(void *instance, const char *module, const char *version,
                               const uint8_t *info, uint64_t info_size, const uint8_t *mod, uint64_t mod_size,
                               const ath_reader *zip, ath_error *err) {
    struct store *s = instance;
    if (strstr(module, "storage-fail")) {
        ath_error_set(err, "disk on fire");
        return ATH_UNAVAILABLE;
    }
    struct entry *e = calloc(1, sizeof *e);
    if (!e) return ATH_INTERNAL;
    e->module = copy_string(module);
    e->version = copy_string(version);
    e->files[0] = malloc(info_size + 1);
    e->files[1] = malloc(mod_size + 1);
    e->files[2] = malloc(zip->size + 1);
    e->refs = 1;
    if (!e->module || !e->version || !e->files[0] || !e->files[1] || !e->files[2]) {
        entry_unref(s, e);
        return ATH_INTERNAL;
    }
    memcpy(e->files[0], info, info_size);
    memcpy(e->files[1], mod, mod_size);
    e->sizes[0] = info_size;
    e->sizes[1] = mod_size;
    uint64_t got = 0;
    while (got < zip->size) {
        int64_t n = zip->read(zip->ctx, e->files[2] + got, zip->size - got);
        if (n <= 0) {
            entry_unref(s, e);
            ath_error_set(err, "zip stream ended early");
            return ATH_UNAVAILABLE;
        }
        got += (uint64_t)n;
    }
    e->sizes[2] = got;
    int partial = strstr(module, "save-partial") != NULL;
    if (partial) e->sizes[2] = got / 2; /* as if the disk filled half-way through the zip */
    pthread_mutex_lock(&s->lock);
    if (find(s, module, version)) {
        pthread_mutex_unlock(&s->lock);
        entry_unref(s, e);
        ath_error_set(err, "already stored");
        return ATH_ALREADY_EXISTS;
    }
    e->next = s->head;
    s->head = e;
    pthread_mutex_unlock(&s->lock);
    if (partial) {
        ath_error_set(err, "disk full half-way through the zip");
        return ATH_UNAVAILABLE;
    }
    return ATH_OK;
}

static ath_status storage_exists(void *instance, const char *module, const char *version, int32_t *out, ath_error *err) {
    (void)err;
    struct store *s = instance;
    pthread_mutex_lock(&s->lock);
    *out = find(s, module, version) != NULL;
    pthread_mutex_unlock(&s->lock);
    return ATH_OK;
}

static ath_status storage_list(void *instance, const char *module, ath_emit_version_fn emit, void *ctx, ath_error *err) {
    (void)err;
    struct store *s = instance;
    pthread_mutex_lock(&s->lock);
    for (struct entry *e = s->head; e; e = e->next)
        if (strcmp(e->module, module) == 0 && emit(ctx, e->version) != 0) break;
    pthread_mutex_unlock(&s->lock);
    return ATH_OK;
}

static ath_status storage_remove(void *instance, const char *module, const char *version, ath_error *err) {
    struct store *s = instance;
    pthread_mutex_lock(&s->lock);
    for (struct entry **p = &s->head; *p; p = &(*p)->next) {
        struct entry *e = *p;
        if (strcmp(e->module, module) == 0 && strcmp(e->version, version) == 0) {
            *p = e->next;
            pthread_mutex_unlock(&s->lock);
            entry_unref(s, e);
            return ATH_OK;
        }
    }
    pthread_mutex_unlock(&s->lock);
    ath_error_set(err, "not stored");
    return ATH_NOT_FOUND;
}

static const ath_storage_methods methods = {
#ifdef SMALL_TABLE
    .struct_size = 16,
#else
    .struct_size = sizeof(ath_storage_methods),
#endif
#ifndef NULL_OPEN
    .open = storage_open,
#else
    .open = NULL,
    .reserved = sizeof(&storage_open) == 0, /* keeps storage_open referenced */
#endif
    .save = storage_save,
    .exists = storage_exists,
    .list = storage_list,
    .remove = storage_remove,
    .catalog = NULL, /* optional: not implemented */
};

#ifndef ABI_MAJOR_OVERRIDE
#define ABI_MAJOR_OVERRIDE ATH_ABI_MAJOR
#endif

static const ath_plugin descriptor = {
#ifdef BAD_MAGIC
    .magic = 0xdeadbeef,
#else
    .magic = ATH_MAGIC,
#endif
#ifdef SMALL_DESCRIPTOR
    .struct_size = 24,
#else
    .struct_size = sizeof(ath_plugin),
#endif
    .abi_major = ABI_MAJOR_OVERRIDE,
    .abi_minor = ATH_ABI_MINOR,
#ifdef WRONG_KIND
    .kind = ATH_KIND_FETCHER,
#else
    .kind = ATH_KIND_STORAGE,
#endif
    .name = "CTestStorage",
#ifdef TOOLCHAIN
    .toolchain = TOOLCHAIN,
#else
    .toolchain = NULL,
#endif
    .create = create,
    .destroy = destroy,
    .storage = &methods,
    .fetcher = NULL,
};

#ifndef NO_ENTRY
ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t host_abi_major) {
#ifdef DECLINE
    (void)host_abi_major;
    (void)&descriptor;
    return NULL;
#else
    return host_abi_major == ATH_ABI_MAJOR ? &descriptor : NULL;
#endif
}
#else
ATH_EXPORT int not_the_entry(void) { return descriptor.magic == 0; }
#endif

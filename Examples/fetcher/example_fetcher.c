/*
 * example_fetcher.c — an athens fetcher plugin in plain C11, written against athens_plugin.h alone.
 *
 * It serves modules from a directory laid out as a GOPROXY tree (what `GOPROXY=file://DIR` reads):
 *   DIR/<escaped module>/@v/list                     one version per line
 *   DIR/<escaped module>/@v/<escaped version>.info   {"Version": ..., "Time": ...}
 *   DIR/<escaped module>/@v/<escaped version>.mod    the go.mod
 *   DIR/<escaped module>/@v/<escaped version>.zip    the module zip
 * where "escaped" is Go's case encoding: every upper-case letter becomes '!' and its lower case.
 * Such a tree is what the go command leaves in $GOMODCACHE/cache/download, so a mirror of a module cache
 * becomes an upstream for athens.
 *
 * Config: {"root": "/path/to/tree"}   (required)
 *
 * Build:
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -shared -fPIC \
 *      -I ../../Sources/PluginABI/include example_fetcher.c -o libExampleFetcher.so
 * Check:
 *   athens plugin-check ./libExampleFetcher.so --config '{"root":"/srv/goproxy"}' --module example.com/hello --version v1.1.0
 *
 * The instance holds only the root path, written once by create: every entry is safe to call from many
 * threads at once without a lock. athens validates module paths and versions before calling, so they
 * are canonical and cannot climb out of the root.
 */
#include "athens_plugin.h"
#include "athens_config.h" /* optional helper: reads flat JSON configs */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef ATH_EXPORT /* ATH_EXPORT came with ABI 1.1; this example also builds against the 1.0 header */
#define ATH_EXPORT __attribute__((visibility("default")))
#endif
#define PATH_CAPACITY 4096

struct tree {
    char root[PATH_CAPACITY];
};

static ath_status fail(ath_error *err, ath_status status, const char *what, const char *module, const char *version,
                       const char *detail) {
    char message[ATH_ERROR_MESSAGE_CAPACITY];
    snprintf(message, sizeof message, "%s %.200s@%.100s: %.150s", what, module, version, detail);
    ath_error_set(err, message);
    return status;
}

/* ---- config: read with the optional helper athens_config.h ----------------------------------------- */

static ath_status parse_config(const char *json, struct tree *t, ath_error *err) {
    ath_config config;
    char message[ATH_ERROR_MESSAGE_CAPACITY];
    if (ath_config_parse(&config, json) != 0) {
        ath_error_set(err, config.error);
        return ATH_INVALID;
    }
    int found = ath_config_string(&config, "root", t->root, sizeof t->root);
    if (found < 0 || (found == 1 && t->root[0] == '\0')) {
        ath_error_set(err, "config: root must be a non-empty JSON string");
        return ATH_INVALID;
    }
    const char *unknown = ath_config_unknown(&config);
    if (unknown != NULL) {
        snprintf(message, sizeof message, "config: unknown key \"%s\" (this plugin takes root)", unknown);
        ath_error_set(err, message);
        return ATH_INVALID;
    }
    if (found == 0) {
        ath_error_set(err, "config: root is required: the directory of a GOPROXY tree");
        return ATH_INVALID;
    }
    return ATH_OK;
}

static ath_status create(const char *config_json, void **out_instance, ath_error *err) {
    struct tree *t = calloc(1, sizeof *t);
    if (!t) {
        ath_error_set(err, "create: out of memory");
        return ATH_INTERNAL;
    }
    ath_status status = parse_config(config_json, t, err);
    struct stat st;
    if (status == ATH_OK && (stat(t->root, &st) != 0 || !S_ISDIR(st.st_mode))) {
        char message[ATH_ERROR_MESSAGE_CAPACITY];
        snprintf(message, sizeof message, "config: root %.300s is not a directory", t->root);
        ath_error_set(err, message);
        status = ATH_INVALID;
    }
    if (status != ATH_OK) {
        free(t);
        return status;
    }
    *out_instance = t;
    return ATH_OK;
}

static void destroy(void *instance) { free(instance); }

/* ---- paths -------------------------------------------------------------------------------------- */

/* Appends s with Go's case encoding; returns 0, or -1 if it does not fit. */
static int append_escaped(char *out, size_t cap, size_t *n, const char *s) {
    for (; *s; s++) {
        int upper = *s >= 'A' && *s <= 'Z';
        if (*n + (upper ? 2 : 1) >= cap) return -1;
        if (upper) {
            out[(*n)++] = '!';
            out[(*n)++] = (char)(*s - 'A' + 'a');
        } else {
            out[(*n)++] = *s;
        }
    }
    out[*n] = '\0';
    return 0;
}

/* DIR/<escaped module>/@v/<escaped name><suffix>; name may be "" (for "list"). Returns 0 or -1. */
static int tree_path(const struct tree *t, const char *module, const char *name, const char *suffix, char *out) {
    size_t n = 0;
    int written = snprintf(out, PATH_CAPACITY, "%s/", t->root);
    if (written < 0 || written >= PATH_CAPACITY) return -1;
    n = (size_t)written;
    if (append_escaped(out, PATH_CAPACITY, &n, module) != 0) return -1;
    if (append_escaped(out, PATH_CAPACITY, &n, "/@v/") != 0) return -1;
    if (append_escaped(out, PATH_CAPACITY, &n, name) != 0) return -1;
    if (n + strlen(suffix) + 1 > PATH_CAPACITY) return -1;
    memcpy(out + n, suffix, strlen(suffix) + 1);
    return 0;
}

/* Whether the module has a directory in the tree (so a missing version is not found, not an error). */
static int module_known(const struct tree *t, const char *module) {
    char path[PATH_CAPACITY];
    struct stat st;
    return tree_path(t, module, "", "", path) == 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ABI 1.1 gives fetch a per-call context (fetch_ctx): this example polls it between chunks, so that a fetch
 * nobody waits for any more stops early. Built against the 1.0 header there is no ath_call, and the example has
 * the 1.0 entries only. */
#if ATH_ABI_MINOR >= 1
typedef const ath_call *call_ref;
#else
typedef const void *call_ref;
#endif

/* Streams a whole file into a sink. Returns ATH_OK, or a failure with err set. call may be NULL (a 1.0 entry). */
static ath_status stream_file(int fd, const ath_sink *sink, call_ref call, const char *what, const char *module,
                              const char *version, ath_error *err) {
    uint8_t buffer[1 << 16];
    for (;;) {
#if ATH_ABI_MINOR >= 1
        if (call != NULL && ath_call_is_cancelled(call))
            return fail(err, ATH_CANCELLED, what, module, version, "cancelled by the host");
#else
        (void)call;
#endif
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(err, ATH_UNAVAILABLE, what, module, version, strerror(errno));
        if (n == 0) return ATH_OK;
        /* A non-zero answer means the host wants no more: stop at once and fail. */
        if (sink->write(sink->ctx, buffer, (uint64_t)n) != 0)
            return fail(err, ATH_INVALID, what, module, version, "the host refused the data");
    }
}

/* Opens DIR/<module>/@v/<version><suffix>; -1 with errno set if it cannot. */
static int open_version_file(const struct tree *t, const char *module, const char *version, const char *suffix) {
    char path[PATH_CAPACITY];
    if (tree_path(t, module, version, suffix, path) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(path, O_RDONLY);
}

/* ---- versions: just enough of Go's semver to filter the list and pick "latest" ----------------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_ident_char(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-'; }

/* Reads a number without a leading zero at *p; returns its length, or 0. */
static size_t number_at(const char *p) {
    size_t n = 0;
    while (is_digit(p[n])) n++;
    return n == 0 || (n > 1 && p[0] == '0') ? 0 : n;
}

/* vMAJOR.MINOR.PATCH[-PRERELEASE][+incompatible]: the canonical forms athens accepts from a fetcher. */
static int is_canonical(const char *v) {
    if (*v++ != 'v') return 0;
    for (int part = 0; part < 3; part++) {
        size_t n = number_at(v);
        if (n == 0) return 0;
        v += n;
        if (part < 2 && *v++ != '.') return 0;
    }
    if (*v == '-') {
        v++;
        for (;;) {
            size_t n = 0, digits = 0;
            while (is_ident_char(v[n])) digits += is_digit(v[n++]);
            if (n == 0 || (digits == n && n > 1 && v[0] == '0')) return 0;
            v += n;
            if (*v != '.') break;
            v++;
        }
    }
    return *v == '\0' || strcmp(v, "+incompatible") == 0;
}

/* Go's module.IsPseudoVersion, for canonical input: the pre-release ends in a 14-digit time and a revision,
 * after "vX.0.0-", "-0." or ".0.". */
static int is_pseudo(const char *v) {
    const char *dash = strchr(v, '-');
    if (!dash) return 0;
    const char *end = strchr(dash, '+');
    size_t len = end ? (size_t)(end - dash - 1) : strlen(dash + 1);
    const char *pre = dash + 1;
    const char *last = NULL;
    for (size_t i = 0; i < len; i++)
        if (pre[i] == '-') last = pre + i;
    if (!last || last == pre + len - 1 || last - pre < 14) return 0;
    for (const char *p = last - 14; p < last; p++)
        if (!is_digit(*p)) return 0;
    const char *stamp = last - 14;
    if (stamp == pre) return dash - v >= 5 && strncmp(dash - 4, ".0.0", 4) == 0; /* vX.0.0-yyyymmddhhmmss-abcdef */
    return stamp - pre >= 2 && stamp[-1] == '.' && stamp[-2] == '0' && (stamp - 2 == pre || stamp[-3] == '.');
}

/* Compares two numbers given as digit strings of lengths a_len and b_len. */
static int compare_number(const char *a, size_t a_len, const char *b, size_t b_len) {
    if (a_len != b_len) return a_len < b_len ? -1 : 1;
    int c = strncmp(a, b, a_len);
    return c < 0 ? -1 : c > 0;
}

/* Semantic-version precedence of two canonical versions: -1, 0 or 1. */
static int compare_versions(const char *a, const char *b) {
    a++;
    b++;
    for (int part = 0; part < 3; part++) {
        size_t na = number_at(a), nb = number_at(b);
        int c = compare_number(a, na, b, nb);
        if (c != 0) return c;
        a += na + (part < 2);
        b += nb + (part < 2);
    }
    int pa = *a == '-', pb = *b == '-';
    if (!pa || !pb) return pa == pb ? 0 : pa ? -1 : 1; /* a release outranks its pre-releases */
    a++;
    b++;
    for (;;) {
        size_t la = 0, lb = 0;
        while (is_ident_char(a[la])) la++;
        while (is_ident_char(b[lb])) lb++;
        size_t da = 0, db = 0;
        while (da < la && is_digit(a[da])) da++;
        while (db < lb && is_digit(b[db])) db++;
        int num_a = da == la, num_b = db == lb;
        int c;
        if (num_a && num_b) c = compare_number(a, la, b, lb);
        else if (num_a || num_b) c = num_a ? -1 : 1; /* numeric identifiers sort before alphanumeric ones */
        else {
            size_t m = la < lb ? la : lb;
            c = strncmp(a, b, m);
            c = c != 0 ? (c < 0 ? -1 : 1) : la == lb ? 0 : la < lb ? -1 : 1;
        }
        if (c != 0) return c;
        a += la;
        b += lb;
        int more_a = *a == '.', more_b = *b == '.';
        if (!more_a || !more_b) return more_a == more_b ? 0 : more_a ? 1 : -1;
        a++;
        b++;
    }
}

/* Calls each(ctx, version) for every canonical, non-pseudo version in the module's list file.
 * Returns ATH_OK (also when the module has no list file: no tagged versions), or ATH_NOT_FOUND. */
typedef int (*version_fn)(void *ctx, const char *version);

static ath_status each_listed_version(const struct tree *t, const char *module, version_fn each, void *ctx,
                                      ath_error *err) {
    if (!module_known(t, module)) return fail(err, ATH_NOT_FOUND, "list", module, "", "no such module in the tree");
    char path[PATH_CAPACITY];
    if (tree_path(t, module, "list", "", path) != 0) return fail(err, ATH_INVALID, "list", module, "", "path too long");
    FILE *file = fopen(path, "r");
    if (!file) return errno == ENOENT ? ATH_OK : fail(err, ATH_UNAVAILABLE, "list", module, "", strerror(errno));
    char line[512];
    while (fgets(line, sizeof line, file)) {
        /* The first field of the line; the protocol allows a time after it. */
        line[strcspn(line, " \t\r\n")] = '\0';
        if (is_canonical(line) && !is_pseudo(line) && each(ctx, line) != 0) break;
    }
    fclose(file);
    return ATH_OK;
}

/* ---- the fetcher entries ------------------------------------------------------------------------ */

/* fetch, with or without a context (the 1.0 entry passes NULL). */
static ath_status fetch_with(void *instance, call_ref call, const char *module, const char *version, const ath_sink *info,
                             const ath_sink *mod, const ath_sink *zip, ath_error *err) {
    const struct tree *t = instance;
    const char *suffixes[3] = {".info", ".mod", ".zip"};
    const ath_sink *sinks[3] = {info, mod, zip};
    int fds[3];
    /* Open all three first: a version is either there completely or not found, never half sent. */
    for (int i = 0; i < 3; i++) {
        fds[i] = open_version_file(t, module, version, suffixes[i]);
        if (fds[i] < 0) {
            int saved = errno;
            for (int j = 0; j < i; j++) close(fds[j]);
            if (saved == ENOENT || saved == ENOTDIR)
                return fail(err, ATH_NOT_FOUND, "fetch", module, version,
                            module_known(t, module) ? "no such version in the tree" : "no such module in the tree");
            return fail(err, ATH_UNAVAILABLE, "fetch", module, version, strerror(saved));
        }
    }
    ath_status status = ATH_OK;
    for (int i = 0; i < 3 && status == ATH_OK; i++) status = stream_file(fds[i], sinks[i], call, "fetch", module, version, err);
    for (int i = 0; i < 3; i++) close(fds[i]);
    return status;
}

static ath_status fetch(void *instance, const char *module, const char *version, const ath_sink *info,
                        const ath_sink *mod, const ath_sink *zip, ath_error *err) {
    return fetch_with(instance, NULL, module, version, info, mod, zip, err);
}

#if ATH_ABI_MINOR >= 1
/* The 1.1 twin of fetch: a 1.1 host calls it instead of fetch. list and resolve are quick here, so they have no
 * twin (each twin is optional on its own; the host then calls the 1.0 entry). */
static ath_status fetch_ctx(void *instance, const ath_call *call, const char *module, const char *version,
                            const ath_sink *info, const ath_sink *mod, const ath_sink *zip, ath_error *err) {
    return fetch_with(instance, call, module, version, info, mod, zip, err);
}
#endif

struct emit_context {
    ath_emit_version_fn emit;
    void *ctx;
};

static int emit_one(void *ctx, const char *version) {
    struct emit_context *e = ctx;
    return e->emit(e->ctx, version);
}

static ath_status list(void *instance, const char *module, ath_emit_version_fn emit, void *ctx, ath_error *err) {
    struct emit_context e = {emit, ctx};
    return each_listed_version(instance, module, emit_one, &e, err);
}

struct latest {
    char release[256];
    char prerelease[256];
};

static int consider(void *ctx, const char *version) {
    struct latest *l = ctx;
    char *best = strchr(version, '-') ? l->prerelease : l->release;
    if (strlen(version) < sizeof l->release && (best[0] == '\0' || compare_versions(version, best) > 0))
        memcpy(best, version, strlen(version) + 1);
    return 0;
}

static ath_status resolve(void *instance, const char *module, const char *query, const ath_sink *info, ath_error *err) {
    const struct tree *t = instance;
    const char *version = query;
    struct latest l = {{0}, {0}};
    if (strcmp(query, "latest") == 0) {
        /* The highest release, else the highest pre-release (what the go command means by @latest). */
        ath_status status = each_listed_version(t, module, consider, &l, err);
        if (status != ATH_OK) return status;
        version = l.release[0] ? l.release : l.prerelease;
        if (version[0] == '\0') return fail(err, ATH_NOT_FOUND, "resolve", module, "latest", "no tagged versions");
    } else if (!is_canonical(query)) {
        /* A static tree has no branches or commits: only versions and "latest" can be resolved. */
        return fail(err, ATH_NOT_FOUND, "resolve", module, query, "a GOPROXY tree resolves only versions and latest");
    }
    int fd = open_version_file(t, module, version, ".info");
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return fail(err, ATH_NOT_FOUND, "resolve", module, version, "not in the tree");
        return fail(err, ATH_UNAVAILABLE, "resolve", module, version, strerror(errno));
    }
    ath_status status = stream_file(fd, info, NULL, "resolve", module, version, err);
    close(fd);
    return status;
}

static const ath_fetcher_methods methods = {
    .struct_size = sizeof(ath_fetcher_methods),
    .fetch = fetch,
    .list = list,
    .resolve = resolve,
#if ATH_ABI_MINOR >= 1
    .fetch_ctx = fetch_ctx,
#endif
};

static const ath_plugin descriptor = {
    .magic = ATH_MAGIC,
    .struct_size = sizeof(ath_plugin),
    .abi_major = ATH_ABI_MAJOR,
    .abi_minor = ATH_ABI_MINOR,
    .kind = ATH_KIND_FETCHER,
    .name = "ExampleFetcher",
    .toolchain = NULL,
    .create = create,
    .destroy = destroy,
    .storage = NULL,
    .fetcher = &methods,
};

ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t host_abi_major) {
    return host_abi_major == ATH_ABI_MAJOR ? &descriptor : NULL;
}

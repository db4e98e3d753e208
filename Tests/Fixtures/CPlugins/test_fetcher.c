/*
 * A fetcher plugin in plain C11 that behaves according to the module path it is asked for, so tests can
 * drive the host through every way a fetcher can fail or lie. Modules (any version):
 *   example.com/ok/...          valid .info/.mod/.zip (zip built here, stored entries)
 *   example.com/notfound        ATH_NOT_FOUND
 *   example.com/unavailable     ATH_UNAVAILABLE
 *   example.com/timeout         ATH_TIMEOUT
 *   example.com/internal        ATH_INTERNAL
 *   example.com/weird-status    status 77 (unknown: must read as internal)
 *   example.com/slow            sleeps 1 s, then valid files
 *   example.com/lies/version    .info names another version
 *   example.com/lies/prefix     zip entry outside module@version/
 *   example.com/lies/garbage    zip is not a zip
 *   example.com/lies/empty-zip  says OK but wrote no zip bytes
 *   example.com/lies/nomodule   go.mod without a module line
 *   example.com/lies/wrong-module  go.mod (and the zip's) declares example.com/other
 *   example.com/lies/bad-crc    one byte of the zip's go.mod data flipped after its CRC-32 was computed
 *   example.com/lies/huge-mod   writes a go.mod past 16 MiB and ignores the refusal, then says OK
 *   example.com/lies/long-error a 100 KiB error message source: message must stay bounded
 * list: v1.0.0, v1.1.0, v1.2.0-pre, junk, v0.0.0-20240101000000-abcdefabcdef (host filters the last two)
 * resolve: "latest" -> v1.1.0; "main" -> v1.1.0; anything else not found.
 */
#include "athens_plugin.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

struct buf { uint8_t *p; size_t n, cap; };

static void put(struct buf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}
static void u16(struct buf *b, uint16_t v) { uint8_t x[2] = {v & 0xFF, v >> 8}; put(b, x, 2); }
static void u32(struct buf *b, uint32_t v) { uint8_t x[4] = {v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24}; put(b, x, 4); }

/* A stored (uncompressed) zip of the given files. */
static struct buf make_zip(int count, const char *const names[], const char *const contents[]) {
    struct buf zip = {0}, dir = {0};
    for (int i = 0; i < count; i++) {
        size_t name_len = strlen(names[i]), size = strlen(contents[i]);
        uint32_t crc = crc32_of((const uint8_t *)contents[i], size);
        uint32_t offset = (uint32_t)zip.n;
        u32(&zip, 0x04034b50); u16(&zip, 20); u16(&zip, 0x0800); u16(&zip, 0); u16(&zip, 0); u16(&zip, 0x21);
        u32(&zip, crc); u32(&zip, (uint32_t)size); u32(&zip, (uint32_t)size); u16(&zip, (uint16_t)name_len); u16(&zip, 0);
        put(&zip, names[i], name_len);
        put(&zip, contents[i], size);
        u32(&dir, 0x02014b50); u16(&dir, 20); u16(&dir, 20); u16(&dir, 0x0800); u16(&dir, 0); u16(&dir, 0); u16(&dir, 0x21);
        u32(&dir, crc); u32(&dir, (uint32_t)size); u32(&dir, (uint32_t)size); u16(&dir, (uint16_t)name_len);
        u16(&dir, 0); u16(&dir, 0); u16(&dir, 0); u16(&dir, 0); u32(&dir, 0); u32(&dir, offset);
        put(&dir, names[i], name_len);
    }
    uint32_t dir_offset = (uint32_t)zip.n;
    put(&zip, dir.p, dir.n);
    u32(&zip, 0x06054b50); u16(&zip, 0); u16(&zip, 0); u16(&zip, (uint16_t)count); u16(&zip, (uint16_t)count);
    u32(&zip, (uint32_t)dir.n); u32(&zip, dir_offset); u16(&zip, 0);
    free(dir.p);
    return zip;
}

static int is(const char *module, const char *name) { return strcmp(module, name) == 0; }

static ath_status fail(ath_error *err, ath_status status, const char *module, const char *what) {
    char message[ATH_ERROR_MESSAGE_CAPACITY];
    snprintf(message, sizeof message, "%s: %s", module, what);
    ath_error_set(err, message);
    return status;
}

static int write_all(const ath_sink *sink, const void *data, size_t n) {
    return sink->write(sink->ctx, (const uint8_t *)data, n);
}

static ath_status create(const char *config_json, void **out_instance, ath_error *err) {
    (void)config_json;
    (void)err;
    crc_init();
    *out_instance = NULL;
    return ATH_OK;
}

static void destroy(void *instance) { (void)instance; }

static ath_status fetch(void *instance, const char *module, const char *version,
                        const ath_sink *info, const ath_sink *mod, const ath_sink *zip, ath_error *err) {
    (void)instance;
    if (is(module, "example.com/notfound")) return fail(err, ATH_NOT_FOUND, module, "no such module upstream");
    if (is(module, "example.com/unavailable")) return fail(err, ATH_UNAVAILABLE, module, "upstream answered 503");
    if (is(module, "example.com/timeout")) return fail(err, ATH_TIMEOUT, module, "upstream took too long");
    if (is(module, "example.com/internal")) return fail(err, ATH_INTERNAL, module, "secret internal detail");
    if (is(module, "example.com/weird-status")) return fail(err, (ath_status)77, module, "status from the future");
    if (is(module, "example.com/lies/long-error")) {
        /* Writes exactly the capacity, as a careless plugin might, via the bounded helper. */
        char *big = malloc(100000);
        if (!big) return ATH_INTERNAL;
        memset(big, 'x', 99999);
        big[99999] = '\0';
        ath_error_set(err, big);
        free(big);
        return ATH_UNAVAILABLE;
    }
    if (is(module, "example.com/slow")) {
        struct timespec t = {1, 0};
        nanosleep(&t, NULL);
    }

    char buffer[1024], gomod[512], prefix[512];
    const char *info_version = is(module, "example.com/lies/version") ? "v9.9.9" : version;
    snprintf(buffer, sizeof buffer, "{\"Version\":\"%s\",\"Time\":\"2024-01-02T03:04:05Z\"}", info_version);
    if (write_all(info, buffer, strlen(buffer))) return fail(err, ATH_INVALID, module, "info refused");

    if (is(module, "example.com/lies/huge-mod")) {
        static uint8_t chunk[1 << 16];
        memset(chunk, '/', sizeof chunk);
        for (int i = 0; i < 300; i++) (void)write_all(mod, chunk, sizeof chunk); /* ignores refusals */
        return ATH_OK;
    }
    if (is(module, "example.com/lies/nomodule")) snprintf(gomod, sizeof gomod, "go 1.19\n");
    else if (is(module, "example.com/lies/wrong-module")) snprintf(gomod, sizeof gomod, "module example.com/other\n\ngo 1.19\n");
    else snprintf(gomod, sizeof gomod, "module %s\n\ngo 1.19\n", module);
    if (write_all(mod, gomod, strlen(gomod))) return fail(err, ATH_INVALID, module, "mod refused");

    if (is(module, "example.com/lies/empty-zip")) return ATH_OK;
    if (is(module, "example.com/lies/garbage")) {
        const char *junk = "this is not a zip file at all";
        return write_all(zip, junk, strlen(junk)) ? ATH_INVALID : ATH_OK;
    }
    char name_mod[600], name_go[600];
    if (is(module, "example.com/lies/prefix")) snprintf(prefix, sizeof prefix, "example.com/other@%s/", version);
    else snprintf(prefix, sizeof prefix, "%s@%s/", module, version);
    snprintf(name_mod, sizeof name_mod, "%sgo.mod", prefix);
    snprintf(name_go, sizeof name_go, "%sx.go", prefix);
    const char *names[] = {name_mod, name_go};
    const char *contents[] = {gomod, "package x\n"};
    struct buf z = make_zip(2, names, contents);
    if (is(module, "example.com/lies/bad-crc")) z.p[30 + strlen(name_mod)] ^= 0x01; /* first byte of go.mod's data */
    int refused = write_all(zip, z.p, z.n);
    free(z.p);
    return refused ? fail(err, ATH_INVALID, module, "zip refused") : ATH_OK;
}

static ath_status list(void *instance, const char *module, ath_emit_version_fn emit, void *ctx, ath_error *err) {
    (void)instance;
    if (is(module, "example.com/notfound")) return fail(err, ATH_NOT_FOUND, module, "no such module upstream");
    if (is(module, "example.com/unavailable")) return fail(err, ATH_UNAVAILABLE, module, "upstream answered 503");
    const char *versions[] = {"v1.0.0", "v1.1.0", "v1.2.0-pre", "junk", "v0.0.0-20240101000000-abcdefabcdef"};
    for (size_t i = 0; i < sizeof versions / sizeof *versions; i++)
        if (emit(ctx, versions[i]) != 0) break;
    return ATH_OK;
}

static ath_status resolve(void *instance, const char *module, const char *query, const ath_sink *info, ath_error *err) {
    (void)instance;
    if (is(module, "example.com/notfound")) return fail(err, ATH_NOT_FOUND, module, "no such module upstream");
    if (is(module, "example.com/unavailable")) return fail(err, ATH_UNAVAILABLE, module, "upstream answered 503");
    if (strcmp(query, "latest") != 0 && strcmp(query, "main") != 0) return fail(err, ATH_NOT_FOUND, module, "unknown revision");
    const char *json = is(module, "example.com/lies/version")
        ? "{\"Version\":\"not-a-version\"}"
        : "{\"Version\":\"v1.1.0\",\"Time\":\"2024-01-02T03:04:05Z\"}";
    return write_all(info, json, strlen(json)) ? ATH_INVALID : ATH_OK;
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
    .name = "CTestFetcher",
    .toolchain = NULL,
    .create = create,
    .destroy = destroy,
    .storage = NULL,
    .fetcher = &methods,
};

ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t host_abi_major) {
    return host_abi_major == ATH_ABI_MAJOR ? &descriptor : NULL;
}

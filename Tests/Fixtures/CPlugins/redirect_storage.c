/*
 * test_storage.c with the ABI 1.1 storage `url` entry, for the redirect tests ("serve": "redirect").
 * Every saved version is also written as a GOPROXY tree under $ATH_TEST_URL_DIR (when set), and `url` answers
 * $ATH_TEST_URL_BASE/<escaped module>/@v/<escaped version><ext> (default base http://127.0.0.1:9), valid 600 s,
 * so a static file server on that tree serves exactly the bytes `open` would.
 * Lying or refusing answers, by module path:
 *   "url-decline"     ATH_DECLINED
 *   "url-fail"        ATH_UNAVAILABLE ("signer on fire")
 *   "url-crlf"        a URL with CR LF and a header after it
 *   "url-nonul"       fills the whole buffer, no NUL
 *   "url-file"        file:///etc/passwd
 *   "url-novalidity"  a good URL valid for 0 seconds
 * $ATH_TEST_URL_LIE, when set, makes every module answer one way (for plugin-check, whose module paths are its own):
 *   "decline", "nonul", "file", or "wrongbytes" (a zip's URL names the .mod file instead).
 */
#include "athens_plugin.h"
#include <errno.h>
#include <sys/stat.h>

struct entry;
static ath_status storage_url(void *instance, const ath_call *call, const char *module, const char *version,
                              ath_artifact artifact, char *out_url, uint32_t *out_valid_s, ath_error *err);
static void publish(const struct entry *e);
#define STORAGE_URL storage_url
#define SAVE_HOOK publish
#include "test_storage.c"

static const char *const extensions[3] = {".info", ".mod", ".zip"};

/* The GOPROXY case encoding: an upper-case letter is '!' and its lower case. Returns 0 when it does not fit. */
static int escape(const char *in, char *out, size_t capacity) {
    size_t n = 0;
    for (; *in; in++) {
        if (n + 3 > capacity) return 0;
        if (*in >= 'A' && *in <= 'Z') {
            out[n++] = '!';
            out[n++] = (char)(*in - 'A' + 'a');
        } else {
            out[n++] = *in;
        }
    }
    out[n] = 0;
    return 1;
}

static void make_parents(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST) { *p = '/'; return; }
        *p = '/';
    }
}

static void publish(const struct entry *e) {
    const char *dir = getenv("ATH_TEST_URL_DIR");
    char module[1024], version[512], path[2048];
    if (!dir || !escape(e->module, module, sizeof module) || !escape(e->version, version, sizeof version)) return;
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s/@v/%s%s", dir, module, version, extensions[i]);
        make_parents(path);
        FILE *f = fopen(path, "wb");
        if (!f) return;
        fwrite(e->files[i], 1, e->sizes[i], f);
        fclose(f);
    }
}

static ath_status storage_url(void *instance, const ath_call *call, const char *module, const char *version,
                              ath_artifact artifact, char *out_url, uint32_t *out_valid_s, ath_error *err) {
    struct store *s = instance;
    if (!call || call->struct_size < sizeof(ath_call)) {
        ath_error_set(err, "no call context");
        return ATH_INVALID;
    }
    int which = artifact == ATH_ARTIFACT_INFO ? 0 : artifact == ATH_ARTIFACT_MOD ? 1 : artifact == ATH_ARTIFACT_ZIP ? 2 : -1;
    if (which < 0) {
        ath_error_set(err, "unknown artifact");
        return ATH_INVALID;
    }
    pthread_mutex_lock(&s->lock);
    int stored = find(s, module, version) != NULL;
    pthread_mutex_unlock(&s->lock);
    if (!stored) {
        ath_error_set(err, "not stored");
        return ATH_NOT_FOUND;
    }
    const char *lie = getenv("ATH_TEST_URL_LIE");
    if (!lie) lie = "";
    if (strstr(module, "url-decline") || strcmp(lie, "decline") == 0) {
        ath_error_set(err, "no URL for this one");
        return ATH_DECLINED;
    }
    if (strstr(module, "url-fail")) {
        ath_error_set(err, "signer on fire");
        return ATH_UNAVAILABLE;
    }
    *out_valid_s = strstr(module, "url-novalidity") ? 0 : 600;
    if (strstr(module, "url-crlf")) {
        snprintf(out_url, ATH_URL_CAPACITY, "http://127.0.0.1:9/x\r\nSet-Cookie: stolen=1");
        return ATH_OK;
    }
    if (strstr(module, "url-nonul") || strcmp(lie, "nonul") == 0) {
        memset(out_url, 'a', ATH_URL_CAPACITY);
        return ATH_OK;
    }
    if (strstr(module, "url-file") || strcmp(lie, "file") == 0) {
        snprintf(out_url, ATH_URL_CAPACITY, "file:///etc/passwd");
        return ATH_OK;
    }
    const char *base = getenv("ATH_TEST_URL_BASE");
    char escaped_module[1024], escaped_version[512];
    if (!escape(module, escaped_module, sizeof escaped_module) || !escape(version, escaped_version, sizeof escaped_version)) {
        ath_error_set(err, "path too long for a URL");
        return ATH_DECLINED;
    }
    int n = snprintf(out_url, ATH_URL_CAPACITY, "%s/%s/@v/%s%s", base ? base : "http://127.0.0.1:9", escaped_module,
                     escaped_version, extensions[which == 2 && strcmp(lie, "wrongbytes") == 0 ? 1 : which]);
    if (n < 0 || n >= (int)ATH_URL_CAPACITY) {
        ath_error_set(err, "URL too long");
        return ATH_DECLINED;
    }
    return ATH_OK;
}

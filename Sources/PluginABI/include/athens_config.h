/*
 * athens_config.h — OPTIONAL HELPER, NOT PART OF THE PLUGIN CONTRACT.
 *
 * Reads the config a C plugin's `create` receives (a JSON object as text) when that object is flat: every
 * value a string, a number, true, false or null. Nothing here crosses the ABI, and nothing here is
 * versioned by ATH_ABI_*: a plugin may copy this file, ignore it, or use any JSON parser instead. It does
 * not include athens_plugin.h (it builds against any version of it).
 *
 * Bounded and allocation-free: ath_config_parse checks the whole text once (strict JSON grammar for a flat
 * object, at most ATH_CONFIG_MAX_ENTRIES keys, no duplicate keys, keys of at most ATH_CONFIG_MAX_KEY bytes)
 * and records where each value lies in the caller's text; the getters decode one value into the caller's
 * buffer. No recursion: a nested object or array is refused where it starts, however deep it goes.
 * Ownership: an ath_config points into `json`, which must outlive it (for `create`, the call).
 * Threads: an ath_config is used by one thread at a time; nothing global.
 *
 *   ath_config config;
 *   char root[4096];
 *   if (ath_config_parse(&config, config_json) != 0 ||
 *       ath_config_string(&config, "root", root, sizeof root) < 0 ||
 *       ath_config_unknown(&config) != NULL) {
 *       ath_error_set(err, config.error);   // e.g. "config.rooot: unknown key"
 *       return ATH_INVALID;
 *   }
 */
#ifndef ATHENS_CONFIG_H
#define ATHENS_CONFIG_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Most keys one config may hold. */
#define ATH_CONFIG_MAX_ENTRIES 32
/** Longest key, in bytes once decoded, without the NUL. */
#define ATH_CONFIG_MAX_KEY 64
/** Size of ath_config.error, including the NUL. */
#define ATH_CONFIG_ERROR_CAPACITY 256

/** The type of one value. */
typedef enum ath_config_type {
    ATH_CONFIG_NULL = 0,
    ATH_CONFIG_STRING = 1,
    ATH_CONFIG_NUMBER = 2,
    ATH_CONFIG_BOOL = 3
} ath_config_type;

/** One key and where its value lies in the text (for a string: between the quotes, still escaped). */
typedef struct ath_config_entry {
    char key[ATH_CONFIG_MAX_KEY + 1];
    ath_config_type type;
    const char *value;
    size_t value_length;
    int read;                 /* set by the getters, for ath_config_unknown */
} ath_config_entry;

/** A parsed flat config. `error` holds a NUL-terminated message after any failing call. */
typedef struct ath_config {
    ath_config_entry entries[ATH_CONFIG_MAX_ENTRIES];
    size_t count;
    char error[ATH_CONFIG_ERROR_CAPACITY];
} ath_config;

static inline int ath_config__fail(ath_config *c, const char *key, const char *what) {
    if (key != NULL) snprintf(c->error, sizeof c->error, "config.%s: %s", key, what);
    else snprintf(c->error, sizeof c->error, "config: %s", what);
    return -1;
}

static inline const char *ath_config__space(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static inline int ath_config__hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        v <<= 4;
        if (h >= '0' && h <= '9') v |= (unsigned)(h - '0');
        else if (h >= 'a' && h <= 'f') v |= (unsigned)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') v |= (unsigned)(h - 'A' + 10);
        else return -1;   /* also stops at the NUL of a text cut short */
    }
    *out = v;
    return 0;
}

/* Decodes the escaped string body [p, end) into out (capacity cap, NUL-terminated) when out is not NULL;
 * returns the decoded length, or -1 for a bad escape, a control byte, \u0000, a lone surrogate, or (when
 * out is given) a result that does not fit. With out == NULL it only validates. */
static inline long ath_config__decode(const char *p, const char *end, char *out, size_t cap) {
    size_t n = 0;
    while (p < end) {
        unsigned char c = (unsigned char)*p++;
        unsigned long cp;
        if (c < 0x20) return -1;
        if (c != '\\') {
            if (out != NULL) { if (n + 1 >= cap) return -1; out[n] = (char)c; }
            n++;
            continue;
        }
        if (p >= end) return -1;
        switch (*p++) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u': {
            unsigned hi, lo;
            if (end - p < 4 || ath_config__hex4(p, &hi) != 0) return -1;
            p += 4;
            if (hi >= 0xDC00 && hi <= 0xDFFF) return -1;
            if (hi >= 0xD800 && hi <= 0xDBFF) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || ath_config__hex4(p + 2, &lo) != 0) return -1;
                if (lo < 0xDC00 || lo > 0xDFFF) return -1;
                p += 6;
                cp = 0x10000 + (((unsigned long)hi - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
            } else {
                cp = hi;
            }
            if (cp == 0) return -1;   /* would cut the C string short */
            break;
        }
        default: return -1;
        }
        unsigned char utf8[4];
        size_t k;
        if (cp < 0x80) { utf8[0] = (unsigned char)cp; k = 1; }
        else if (cp < 0x800) { utf8[0] = (unsigned char)(0xC0 | (cp >> 6)); utf8[1] = (unsigned char)(0x80 | (cp & 0x3F)); k = 2; }
        else if (cp < 0x10000) {
            utf8[0] = (unsigned char)(0xE0 | (cp >> 12)); utf8[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            utf8[2] = (unsigned char)(0x80 | (cp & 0x3F)); k = 3;
        } else {
            utf8[0] = (unsigned char)(0xF0 | (cp >> 18)); utf8[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
            utf8[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); utf8[3] = (unsigned char)(0x80 | (cp & 0x3F)); k = 4;
        }
        if (out != NULL) { if (n + k >= cap) return -1; memcpy(out + n, utf8, k); }
        n += k;
    }
    if (out != NULL) out[n] = '\0';
    return (long)n;
}

/* Finds the closing quote of a string whose body starts at p; NULL if the text ends first. */
static inline const char *ath_config__string_end(const char *p) {
    while (*p != '"') {
        if (*p == '\0') return NULL;
        if (*p == '\\') { p++; if (*p == '\0') return NULL; }
        p++;
    }
    return p;
}

/* Scans a JSON number at p (strict grammar); returns the position after it, or NULL. */
static inline const char *ath_config__number_end(const char *p) {
    if (*p == '-') p++;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') { while (*p >= '0' && *p <= '9') p++; }
    else return NULL;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return NULL;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return NULL;
        while (*p >= '0' && *p <= '9') p++;
    }
    return p;
}

/**
 * Checks `json` (NUL-terminated) and indexes its keys. Returns 0, or -1 with c->error set (not an object,
 * malformed JSON, a nested value, a duplicate or too long key, too many keys, text after the object).
 */
static inline int ath_config_parse(ath_config *c, const char *json) {
    c->count = 0;
    c->error[0] = '\0';
    const char *p = ath_config__space(json);
    if (*p != '{') return ath_config__fail(c, NULL, "must be a JSON object");
    p = ath_config__space(p + 1);
    if (*p != '}') {
        for (;;) {
            if (*p != '"') return ath_config__fail(c, NULL, "expected a key in quotes");
            const char *key_end = ath_config__string_end(p + 1);
            if (key_end == NULL) return ath_config__fail(c, NULL, "unterminated key");
            if (c->count == ATH_CONFIG_MAX_ENTRIES) return ath_config__fail(c, NULL, "too many keys");
            ath_config_entry *e = &c->entries[c->count];
            if (ath_config__decode(p + 1, key_end, e->key, sizeof e->key) < 0)
                return ath_config__fail(c, NULL, "key too long or badly escaped");
            for (size_t i = 0; i < c->count; i++)
                if (strcmp(c->entries[i].key, e->key) == 0) return ath_config__fail(c, e->key, "duplicate key");
            p = ath_config__space(key_end + 1);
            if (*p != ':') return ath_config__fail(c, e->key, "expected ':'");
            p = ath_config__space(p + 1);
            e->read = 0;
            if (*p == '"') {
                const char *end = ath_config__string_end(p + 1);
                if (end == NULL) return ath_config__fail(c, e->key, "unterminated string");
                if (ath_config__decode(p + 1, end, NULL, 0) < 0) return ath_config__fail(c, e->key, "bad escape or control character in string");
                e->type = ATH_CONFIG_STRING;
                e->value = p + 1;
                e->value_length = (size_t)(end - (p + 1));
                p = end + 1;
            } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
                const char *end = ath_config__number_end(p);
                if (end == NULL) return ath_config__fail(c, e->key, "malformed number");
                e->type = ATH_CONFIG_NUMBER;
                e->value = p;
                e->value_length = (size_t)(end - p);
                p = end;
            } else if (strncmp(p, "true", 4) == 0 || strncmp(p, "false", 5) == 0 || strncmp(p, "null", 4) == 0) {
                e->type = *p == 'n' ? ATH_CONFIG_NULL : ATH_CONFIG_BOOL;
                e->value = p;
                e->value_length = *p == 'f' ? 5 : 4;
                p += e->value_length;
            } else if (*p == '{' || *p == '[') {
                return ath_config__fail(c, e->key, "nested objects and arrays are not supported");
            } else {
                return ath_config__fail(c, e->key, "expected a value");
            }
            c->count++;
            p = ath_config__space(p);
            if (*p == ',') { p = ath_config__space(p + 1); continue; }
            if (*p == '}') break;
            return ath_config__fail(c, e->key, "expected ',' or '}'");
        }
    }
    p = ath_config__space(p + 1);
    if (*p != '\0') return ath_config__fail(c, NULL, "text after the object");
    return 0;
}

/* The entry of `key`, marked read; NULL if absent. */
static inline ath_config_entry *ath_config__find(ath_config *c, const char *key) {
    for (size_t i = 0; i < c->count; i++) {
        if (strcmp(c->entries[i].key, key) == 0) {
            c->entries[i].read = 1;
            return &c->entries[i];
        }
    }
    return NULL;
}

/**
 * The string at `key`, decoded (UTF-8, NUL-terminated) into out (capacity cap).
 * Returns 1; 0 if the key is absent or null (out untouched); -1 with c->error set if it is not a string
 * or does not fit in cap bytes.
 */
static inline int ath_config_string(ath_config *c, const char *key, char *out, size_t cap) {
    ath_config_entry *e = ath_config__find(c, key);
    if (e == NULL || e->type == ATH_CONFIG_NULL) return 0;
    if (e->type != ATH_CONFIG_STRING) return ath_config__fail(c, key, "must be a string");
    if (cap == 0 || ath_config__decode(e->value, e->value + e->value_length, out, cap) < 0)
        return ath_config__fail(c, key, "too long");
    return 1;
}

/**
 * The integer at `key`, which must lie in [min, max] (a fraction or exponent is refused).
 * Returns 1; 0 if absent or null (out untouched); -1 with c->error set otherwise.
 */
static inline int ath_config_integer(ath_config *c, const char *key, int64_t min, int64_t max, int64_t *out) {
    ath_config_entry *e = ath_config__find(c, key);
    if (e == NULL || e->type == ATH_CONFIG_NULL) return 0;
    if (e->type != ATH_CONFIG_NUMBER) return ath_config__fail(c, key, "must be a number");
    const char *p = e->value, *end = e->value + e->value_length;
    int negative = *p == '-';
    if (negative) p++;
    /* Accumulate as a negative number: its range is one larger, so INT64_MIN parses too. */
    int64_t v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return ath_config__fail(c, key, "must be an integer");
        int digit = *p - '0';
        if (v < (INT64_MIN + digit) / 10) return ath_config__fail(c, key, "out of range");
        v = v * 10 - digit;
    }
    if (!negative) {
        if (v == INT64_MIN) return ath_config__fail(c, key, "out of range");
        v = -v;
    }
    if (v < min || v > max) {
        char what[96];
        snprintf(what, sizeof what, "must be between %lld and %lld", (long long)min, (long long)max);
        return ath_config__fail(c, key, what);
    }
    *out = v;
    return 1;
}

/**
 * The number at `key` as a double (strtod, in the C locale the host never changes); refused when it does not
 * fit a double (1e999). Returns 1; 0 if absent or null (out untouched); -1 with c->error set otherwise.
 */
static inline int ath_config_number(ath_config *c, const char *key, double *out) {
    ath_config_entry *e = ath_config__find(c, key);
    if (e == NULL || e->type == ATH_CONFIG_NULL) return 0;
    if (e->type != ATH_CONFIG_NUMBER) return ath_config__fail(c, key, "must be a number");
    char text[64];
    if (e->value_length >= sizeof text) return ath_config__fail(c, key, "number too long");
    memcpy(text, e->value, e->value_length);
    text[e->value_length] = '\0';
    errno = 0;
    double v = strtod(text, NULL);
    if (errno == ERANGE) return ath_config__fail(c, key, "out of range");
    *out = v;
    return 1;
}

/** The boolean at `key` as 0 or 1. Returns 1; 0 if absent or null (out untouched); -1 if not a boolean. */
static inline int ath_config_bool(ath_config *c, const char *key, int *out) {
    ath_config_entry *e = ath_config__find(c, key);
    if (e == NULL || e->type == ATH_CONFIG_NULL) return 0;
    if (e->type != ATH_CONFIG_BOOL) return ath_config__fail(c, key, "must be true or false");
    *out = *e->value == 't';
    return 1;
}

/**
 * The first key no getter asked for, or NULL: call it after reading every key you know, so that a typo
 * in a manifest is refused by name. Sets c->error to "config.<key>: unknown key" when it finds one.
 */
static inline const char *ath_config_unknown(ath_config *c) {
    for (size_t i = 0; i < c->count; i++) {
        if (!c->entries[i].read) {
            ath_config__fail(c, c->entries[i].key, "unknown key");
            return c->entries[i].key;
        }
    }
    return NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* ATHENS_CONFIG_H */

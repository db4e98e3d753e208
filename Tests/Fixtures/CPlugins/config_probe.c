/*
 * Drives athens_config.h for ConfigHelperTests: `config_probe FILE QUERY...` reads a config from FILE, parses it,
 * then answers each query, one line each:
 *   s:KEY  string (capacity 4096)     S:KEY  string into an 8-byte buffer
 *   i:KEY  integer in [INT64_MIN, INT64_MAX]   r:KEY  integer in [1, 100]
 *   n:KEY  number (printed with %.17g)          b:KEY  boolean
 *   u      the first unknown key
 * Bytes below 0x20 and above 0x7E in strings are printed as \xNN, so every answer is one line.
 */
#include "athens_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_bytes(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p > 0x7E || *p == '\\') printf("\\x%02X", *p);
        else putchar(*p);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    FILE *file = fopen(argv[1], "rb");
    if (!file) return 2;
    size_t cap = 1 << 16, n = 0;
    char *json = malloc(cap);
    size_t got;
    while (json && (got = fread(json + n, 1, cap - n - 1, file)) > 0) {
        n += got;
        if (cap - n - 1 == 0) json = realloc(json, cap *= 2);
    }
    if (!json) return 2;
    json[n] = '\0';
    fclose(file);

    ath_config config;
    if (ath_config_parse(&config, json) != 0) {
        printf("parse error: %s\n", config.error);
        free(json);
        return 0;
    }
    printf("parsed %zu\n", config.count);
    for (int i = 2; i < argc; i++) {
        const char *q = argv[i], *key = q + 2;
        int r = 0;
        if (q[0] == 'u') {
            const char *unknown = ath_config_unknown(&config);
            if (unknown) printf("unknown: %s (%s)\n", unknown, config.error);
            else printf("unknown: none\n");
            continue;
        }
        printf("%s: ", key);
        if (q[0] == 's' || q[0] == 'S') {
            char value[4096];
            r = ath_config_string(&config, key, value, q[0] == 's' ? sizeof value : 8);
            if (r == 1) { putchar('"'); print_bytes(value); printf("\"\n"); }
        } else if (q[0] == 'i' || q[0] == 'r') {
            int64_t value = 0;
            r = q[0] == 'i' ? ath_config_integer(&config, key, INT64_MIN, INT64_MAX, &value)
                            : ath_config_integer(&config, key, 1, 100, &value);
            if (r == 1) printf("%lld\n", (long long)value);
        } else if (q[0] == 'n') {
            double value = 0;
            r = ath_config_number(&config, key, &value);
            if (r == 1) printf("%.17g\n", value);
        } else if (q[0] == 'b') {
            int value = 0;
            r = ath_config_bool(&config, key, &value);
            if (r == 1) printf("%s\n", value ? "true" : "false");
        }
        if (r == 0) printf("absent\n");
        if (r < 0) printf("error: %s\n", config.error);
    }
    free(json);
    return 0;
}

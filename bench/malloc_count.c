// LD_PRELOAD shim for bench/run.sh: counts heap allocations of the process it is preloaded into.
//
// Build: cc -O2 -shared -fPIC -o malloc_count.so bench/malloc_count.c -lpthread
// Use:   MALLOC_COUNT_FILE=/tmp/x LD_PRELOAD=./malloc_count.so athens ...
// Every 100 ms a background thread rewrites MALLOC_COUNT_FILE with "<allocations> <frees>\n" (totals
// since start), so the bench can take the delta over a measured run and divide by the requests.
// Allocation calls: malloc, calloc, realloc (non-NULL size), memalign, posix_memalign, aligned_alloc.
// The counters are relaxed atomics: a few ns per call, far below what is being measured.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_ulong allocations, frees;

void *malloc(size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n) {
    if (n != 0) atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    if (p != NULL) atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

void *memalign(size_t alignment, size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_memalign(alignment, n);
}

void *aligned_alloc(size_t alignment, size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_memalign(alignment, n);
}

int posix_memalign(void **out, size_t alignment, size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    void *p = __libc_memalign(alignment, n);
    if (p == NULL && n != 0) return 12; // ENOMEM
    *out = p;
    return 0;
}

void free(void *p) {
    if (p != NULL) atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    __libc_free(p);
}

static void *reporter(void *path) {
    char line[64], temp[4096];
    // Written aside and renamed, so a reader never sees a half-written line.
    snprintf(temp, sizeof temp, "%s.tmp", (const char *)path);
    for (;;) {
        int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            int len = snprintf(line, sizeof line, "%lu %lu\n",
                               atomic_load_explicit(&allocations, memory_order_relaxed),
                               atomic_load_explicit(&frees, memory_order_relaxed));
            if (write(fd, line, (size_t)len) < 0) { /* the bench reads the next one */ }
            close(fd);
            rename(temp, (const char *)path);
        }
        usleep(100000);
    }
    return NULL;
}

__attribute__((constructor)) static void start(void) {
    const char *path = getenv("MALLOC_COUNT_FILE");
    if (path == NULL || path[0] == 0) return;
    // Children (plugins spawn none, but be safe) must not inherit the shim's file.
    char *copy = strdup(path);
    unsetenv("LD_PRELOAD");
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_create(&thread, &attr, reporter, copy);
    pthread_detach(thread);
}

/* Linux APIs the Glibc Swift module does not expose: epoll, eventfd, sendfile, CPU affinity, accept4.
 * Host only. No _GNU_SOURCE here: it would change struct definitions the Glibc module also declares. */
#ifndef ATHENS_SYSTEM_SHIMS_H
#define ATHENS_SYSTEM_SHIMS_H
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include "crash_report.h"

/** CPUs in this process's affinity mask (what taskset allows); 0 if it cannot be read. */
int athens_affinity_cpu_count(void);

/** glibc malloc tuning (mallopt: <malloc.h> is not in the Glibc module): at most `arenas` arenas, and a
 *  fixed mmap threshold in bytes (which also stops glibc from raising it after large frees). */
void athens_malloc_tune(int arenas, int mmap_threshold);
/** accept4(fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC): the peer's address is filled in (address may be NULL). */
int athens_accept_nonblocking(int fd, struct sockaddr *address, socklen_t *length);
#endif

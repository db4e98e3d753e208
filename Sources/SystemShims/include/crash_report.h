/* The fatal-signal report: one line naming the plugin call in flight on the crashing thread.
 * In C because a signal handler may only call async-signal-safe functions: the handler below only reads
 * thread-local and static bytes prepared earlier, write()s them, resets the default action and re-raises.
 * The per-thread record is a fixed thread-local buffer: entering a call copies a few bytes, never allocates. */
#ifndef ATHENS_CRASH_REPORT_H
#define ATHENS_CRASH_REPORT_H
#include <stddef.h>

/** Installs the handler for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT (once; later calls do nothing). */
void athens_crash_install(void);

/** Records the request this thread now works for (copied, at most 128 bytes); length 0 clears it. */
void athens_crash_set_request(const char *id, size_t length);
/** Copies this thread's request id into buffer (capacity bytes); returns its length. */
size_t athens_crash_request(char *buffer, size_t capacity);

/** Records the plugin call this thread is about to make: `label` (e.g. "storage CTestStorage, entry open")
 *  and, if not NULL, the module and version it is about. Bytes are copied and bounded. */
void athens_crash_enter(const char *label, size_t label_length, const char *module, const char *version);
/** The call returned. */
void athens_crash_leave(void);

/** plugin-check: bytes written to stdout before "<signal> in the plugin: the process died ..." (its FAIL row's
 *  start); length 0 disarms. Process-wide: plugin-check runs one check at a time. */
void athens_crash_arm_row(const char *row, size_t length);
#endif

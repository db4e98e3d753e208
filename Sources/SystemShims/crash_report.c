#include <signal.h>
#include <string.h>
#include <unistd.h>
#include "crash_report.h"

enum { CALL_CAPACITY = 1024, REQUEST_CAPACITY = 128, ROW_CAPACITY = 4096 };

static _Thread_local char call_text[CALL_CAPACITY];
static _Thread_local size_t call_length;
static _Thread_local char request_text[REQUEST_CAPACITY];
static _Thread_local size_t request_length;

static char row_text[ROW_CAPACITY];
static volatile sig_atomic_t row_length;
static volatile sig_atomic_t installed;

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

static size_t append(char *to, size_t at, size_t capacity, const char *from, size_t length) {
    size_t room = at < capacity ? capacity - at : 0;
    size_t n = length < room ? length : room;
    memcpy(to + at, from, n);
    return at + n;
}

static size_t append_string(char *to, size_t at, size_t capacity, const char *from) {
    return append(to, at, capacity, from, strlen(from));
}

static const char *describe(int signal_number) {
    switch (signal_number) {
    case SIGSEGV: return "SIGSEGV (bad memory access)";
    case SIGBUS: return "SIGBUS (bad memory access)";
    case SIGILL: return "SIGILL (illegal instruction, e.g. a trap)";
    case SIGFPE: return "SIGFPE (arithmetic fault)";
    case SIGABRT: return "SIGABRT (abort)";
    default: return "fatal signal";
    }
}

/* Only async-signal-safe calls: memcpy/strlen on prepared bytes, write, sigaction, raise. */
static void handler(int signal_number) {
    const char *what = describe(signal_number);
    if (row_length > 0) {
        char row[ROW_CAPACITY + 160];
        size_t n = append(row, 0, sizeof row, row_text, (size_t)row_length);
        n = append_string(row, n, sizeof row, what);
        n = append_string(row, n, sizeof row, " in the plugin: the process died (rows above ran; later checks did not)\n");
        (void)!write(1, row, n);
    }
    char line[CALL_CAPACITY + REQUEST_CAPACITY + 200];
    size_t n = append_string(line, 0, sizeof line, "athens: fatal ");
    n = append_string(line, n, sizeof line, what);
    if (call_length > 0) {
        n = append_string(line, n, sizeof line, " in plugin call: ");
        n = append(line, n, sizeof line, call_text, call_length);
    } else {
        n = append_string(line, n, sizeof line, " outside any plugin call");
    }
    n = append_string(line, n, sizeof line, "; request_id=");
    n = request_length > 0 ? append(line, n, sizeof line, request_text, request_length) : append_string(line, n, sizeof line, "-");
    n = append_string(line, n, sizeof line, "; the process dies\n");
    (void)!write(2, line, n);

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    sigaction(signal_number, &action, NULL);
    /* Blocked while this handler runs: delivered, with the default action, as it returns. A fault also
     * re-runs its instruction and meets the default action. */
    raise(signal_number);
}

void athens_crash_install(void) {
    if (installed) return;
    installed = 1;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    /* SA_ONSTACK: a fault on a thread with a small stack and an alternate signal stack (every Go runtime
     * thread, in a Go plugin) must run the handler there; Go requires it of every handler. */
    action.sa_flags = SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof fatal_signals / sizeof *fatal_signals; i++) sigaction(fatal_signals[i], &action, NULL);
}

void athens_crash_set_request(const char *id, size_t length) {
    request_length = 0;
    request_length = append(request_text, 0, REQUEST_CAPACITY, id, length);
}

size_t athens_crash_request(char *buffer, size_t capacity) {
    return append(buffer, 0, capacity, request_text, request_length);
}

void athens_crash_enter(const char *label, size_t label_length, const char *module, const char *version) {
    call_length = 0; /* a crash while this is being written reports no call rather than a torn one */
    size_t n = append(call_text, 0, CALL_CAPACITY, label, label_length);
    if (module) {
        n = append_string(call_text, n, CALL_CAPACITY, ", ");
        n = append_string(call_text, n, CALL_CAPACITY, module);
        if (version) {
            n = append_string(call_text, n, CALL_CAPACITY, "@");
            n = append_string(call_text, n, CALL_CAPACITY, version);
        }
    }
    call_length = n;
}

void athens_crash_leave(void) { call_length = 0; }

void athens_crash_arm_row(const char *row, size_t length) {
    row_length = 0;
    size_t n = append(row_text, 0, ROW_CAPACITY, row, length);
    row_length = (sig_atomic_t)n;
}

/* C helpers the Go code calls: Go cannot call a C function pointer (sink->write, emit) itself. */
#ifndef GOFETCHER_H
#define GOFETCHER_H
#include "athens_plugin.h"

int gofetcher_write(ath_sink *sink, const uint8_t *data, uint64_t len);
int gofetcher_emit(ath_emit_version_fn emit, void *ctx, const char *version);
void gofetcher_error(ath_error *err, const char *message);
#endif

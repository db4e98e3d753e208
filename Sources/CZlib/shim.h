// The system zlib, for GitFetcher's streaming deflate of module zips.
#ifndef ATHENS_CZLIB_SHIM_H
#define ATHENS_CZLIB_SHIM_H
#include <zlib.h>
#endif

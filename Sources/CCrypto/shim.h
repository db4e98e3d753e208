// The system's libcrypto (OpenSSL 3), for SHA-256 and HMAC-SHA256 in S3Storage's request signing.
#ifndef ATHENS_CCRYPTO_SHIM_H
#define ATHENS_CCRYPTO_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#endif

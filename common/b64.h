/*
 * b64.h — standard base64 (RFC 4648 §4, with padding), as AWS JSON 1.1
 * carries binary fields.  Decoding is strict: no whitespace, padding
 * required, non-canonical trailing bits rejected.  Thread-safe, no
 * allocation.
 */
#ifndef KMS_COMMON_B64_H
#define KMS_COMMON_B64_H

#include <stddef.h>
#include <stdint.h>

/* Characters (without NUL) that encoding len bytes produces. */
#define B64_ENCODED_LEN(len) ((((len) + 2) / 3) * 4)
/* Upper bound of bytes decoded from n characters. */
#define B64_DECODED_MAX(n) (((n) / 4) * 3)

/*
 * Bytes that decoding in[0..inlen) yields if it is well-formed: 3 per
 * quad less the padding of the last one.  Never more than
 * B64_DECODED_MAX(inlen), and never wraps: padding is counted only in a
 * whole last quad, so "=", "==" or "AB=" give 0, not SIZE_MAX.  For
 * sizing and early length checks; b64_decode still judges the input.
 */
size_t b64_decoded_len(const char *in, size_t inlen);

/* Writes a NUL-terminated string; out must hold B64_ENCODED_LEN(len) + 1.
 * Returns 0 or KMS_EINVAL (too small). */
int b64_encode(const uint8_t *in, size_t len, char *out, size_t outsz);
/* Returns 0, KMS_EVALIDATION (not base64), or KMS_EINVAL (too small). */
int b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outsz,
    size_t *outlen);

#endif

/*
 * ctx.h — canonical encryption context (docs/design.md §4).
 *
 * u16 pair count, then the pairs sorted by key bytes, each as u16 key
 * length, key, u16 value length, value.  Keys are non-empty UTF-8, values
 * UTF-8; duplicate keys are rejected.  The empty context is u16 0.
 * Thread-safe, no global state.
 */
#ifndef KMS_COMMON_CTX_H
#define KMS_COMMON_CTX_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kms.h"

#define CTX_MAX_PAIRS 64	/* pairs in one encryption context */
#define CTX_MAX_CANONICAL 8192	/* bytes of canonical form */

/*
 * From a JSON object of string values (NULL or absent means empty).
 * Returns 0, or KMS_EVALIDATION with a message in msg (non-string value,
 * empty key, invalid UTF-8, too many pairs, too long).  jansson already
 * rejects duplicate keys when parsing with JSON_REJECT_DUPLICATES.
 */
int ctx_canonical_json(const json_t *obj, uint8_t *out, size_t outsz,
    size_t *outlen, char *msg, size_t msglen);
/* From C pairs; also rejects duplicate keys.  Same errors. */
int ctx_canonical_pairs(const kms_context_pair *pairs, size_t n,
    uint8_t *out, size_t outsz, size_t *outlen, char *msg, size_t msglen);
/* Valid UTF-8 (no overlongs, no surrogates)?  1 or 0. */
int ctx_utf8_valid(const char *s, size_t len);
/* Characters (code points) in s[0..len), which must be valid UTF-8: AWS
 * counts string lengths in characters, not bytes. */
size_t ctx_utf8_chars(const char *s, size_t len);

#endif

/*
 * client.h — libkmsclient internals: the transport (one connection to
 * kmsd speaking nng's req0 protocol, client.c) and the JSON codec shared
 * by the typed calls.
 *
 * Nothing here is exported: the library is built with -fvisibility=hidden
 * and only the KMS_API functions of include/kms.h leave it.
 *
 * Thread safety: client_call() may run from any number of threads on one
 * client; their requests share the connection, each reply found by its
 * request id.
 *
 * Ownership: JSON trees passed in are borrowed; trees returned are owned by
 * the caller (json_decref).  jansson allocates through the wiping allocator
 * (secure_json_allocator, installed once by kms_client_open), so strings
 * that held base64 plaintexts are zeroed when freed.
 */
#ifndef KMS_CLIENT_H
#define KMS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kms.h"

/* Set ei (when not NULL) from a library-side error and return code. */
int client_fail(kms_error_info *ei, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Clear ei (code 0, empty name and message). */
void client_ok(kms_error_info *ei);

/*
 * One round trip: send the request text, wait for the reply within the
 * client's timeout.  On 0, *bodyp is the malloc'd, NUL-terminated reply
 * (wipe and free with kms_free) and *lenp its length.  The request's
 * frame is wiped before it is freed.
 */
int client_roundtrip(kms_client *c, const void *req, size_t len,
    char **bodyp, size_t *lenp, kms_error_info *ei);

/*
 * Classify one reply object: an object with "__type" is an error (ei
 * filled with its code, name and message, code returned); anything else
 * is success (0).  A "__type" that is not a string is KMS_EPROTO.
 */
int client_reply_status(const json_t *reply, kms_error_info *ei);

/*
 * Serialise req, round-trip it, parse the reply with the bounded reader.
 * Returns 0 with *replyp (caller decrefs) on a success object; the error
 * otherwise (ei filled).  The serialised request is wiped after sending.
 */
int client_call(kms_client *c, const json_t *req, json_t **replyp,
    kms_error_info *ei);

/* ------------------------------------------------ request building */

/* A request object {"Action": action}; NULL when out of memory. */
json_t *codec_request(const char *action);
/* Set a string member (s may be NULL: nothing set).  0 or KMS_ENOMEM. */
int codec_put_string(json_t *o, const char *name, const char *s);
/* Set a base64 member from bytes (p may be NULL when len is 0). */
int codec_put_blob(json_t *o, const char *name, const uint8_t *p,
    size_t len);
/* Set an EncryptionContext-shaped member; nothing set for 0 pairs.
 * KMS_EINVAL for NULL pointers or a duplicate key (not expressible in a
 * JSON object). */
int codec_put_context(json_t *o, const char *name, const kms_context *ctx,
    kms_error_info *ei);
/* Set "GrantTokens"; nothing set when gt is NULL or empty. */
int codec_put_grant_tokens(json_t *o, const kms_grant_tokens *gt,
    kms_error_info *ei);

/* ------------------------------------------------ reply reading */

/* Copy a string member into buf (size sz).  Missing: buf = "" and 0 unless
 * required.  Not a string, or too long: KMS_EPROTO. */
int codec_get_string(const json_t *o, const char *name, char *buf,
    size_t sz, int required, kms_error_info *ei);
/* A number / boolean member (missing: 0); not one: KMS_EPROTO. */
int codec_get_number(const json_t *o, const char *name, double *out,
    kms_error_info *ei);
int codec_get_bool(const json_t *o, const char *name, int *out,
    kms_error_info *ei);
/* A list reply's paging: Truncated, and NextMarker (malloc'd, or NULL
 * when absent) into *next_marker. */
int codec_get_page(const json_t *reply, int *truncated, char **next_marker,
    kms_error_info *ei);
/* A base64 member into owned bytes (malloc). */
int codec_get_blob(const json_t *o, const char *name, kms_buf *out,
    int required, kms_error_info *ei);
/* A base64 member into a kms_secret (secure_alloc). */
int codec_get_secret(const json_t *o, const char *name, kms_secret *out,
    int required, kms_error_info *ei);

/* ------------------------------------------------ per-operation codecs
 * Shared by the single calls and kms_batch(): build_* make the request
 * object (with Action), parse_* fill the response from a success object.
 * parse_* set *out only on success. */
int build_encrypt(const kms_encrypt_req *req, json_t **op,
    kms_error_info *ei);
int parse_encrypt(const json_t *reply, kms_encrypt_resp *out,
    kms_error_info *ei);
int build_decrypt(const kms_decrypt_req *req, json_t **op,
    kms_error_info *ei);
int parse_decrypt(const json_t *reply, kms_decrypt_resp *out,
    kms_error_info *ei);
int build_re_encrypt(const kms_re_encrypt_req *req, json_t **op,
    kms_error_info *ei);
int parse_re_encrypt(const json_t *reply, kms_re_encrypt_resp *out,
    kms_error_info *ei);
int build_generate_data_key(const kms_generate_data_key_req *req,
    int with_plaintext, json_t **op, kms_error_info *ei);
int parse_generate_data_key(const json_t *reply, int with_plaintext,
    kms_generate_data_key_resp *out, kms_error_info *ei);

#endif

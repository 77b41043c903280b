/*
 * json.h — the bounded JSON reader: every untrusted message goes through it.
 *
 * Limits (docs/design.md §5): a message ≤ 1 MiB, a request ≤ 64 KiB, nesting ≤ 32.
 * The parser (ours, building jansson values) refuses a level past the
 * limit before descending into it, so its recursion is bounded.  Duplicate
 * keys are rejected, trailing bytes are rejected, the top level must be an
 * object.
 * Thread-safe.
 */
#ifndef KMS_COMMON_JSON_H
#define KMS_COMMON_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "kms.h"

#define JSON_MAX_MESSAGE (1024 * 1024)	/* one request message (Batch) */
#define JSON_MAX_REQUEST (64 * 1024)	/* one request or batch item */
#define JSON_MAX_DEPTH 32		/* nesting of arrays and objects */

/*
 * The largest reply a request within those limits gets, which kmsd never
 * exceeds and libkmsclient accepts.  A reply is not bounded by the 1 MiB
 * of its request: a 53 KB Batch of 1000 GenerateRandom of 1024 bytes
 * answers 1.39 MB.  What one Batch item's response adds to the bytes of
 * its request item is at most JSON_MAX_ITEM_GROWTH:
 *
 *  - GenerateDataKey of 1024 bytes: base64 ciphertext (1432) and
 *    plaintext (1368) and a key ARN (< 128): 2974 bytes for a request
 *    item of about 60;
 *  - GenerateRandom of 1024 bytes: 1384;
 *  - an error object: its name (< 64) and message (< 512 bytes, each
 *    escaped in at most 6): < 3160;
 *  - Encrypt, Decrypt, ReEncrypt answer with a blob no longer than the
 *    one in their request plus 49 bytes (68 in base64), and key ARNs and
 *    algorithm names: < 600 more than the request item;
 *
 * and the Batch's "Responses" wrapper is shorter than its "Requests" one.
 * So a reply is at most JSON_MAX_MESSAGE + KMS_MAX_BATCH *
 * JSON_MAX_ITEM_GROWTH bytes (5,144,576).  DescribeKey, whose response
 * carries the key's description, is held to what is left of that by the
 * dispatcher; the longest single replies (ListGrants: at most 100 grants,
 * each with constraints of at most 16 KiB) stay well below it.
 */
#define JSON_MAX_ITEM_GROWTH 4096
#define JSON_MAX_REPLY (JSON_MAX_MESSAGE + KMS_MAX_BATCH * JSON_MAX_ITEM_GROWTH)

/*
 * Parse buf[0..len) as one JSON object of at most maxlen bytes.
 * Returns the object (caller json_decref()s) or NULL with *err set to
 * KMS_ESERIALIZATION and a message in msg.
 */
json_t *kjson_read_bounded(const void *buf, size_t len, size_t maxlen,
    int *err, char *msg, size_t msglen);
/*
 * kjson_read_bounded, noting where in buf each element of the root
 * object's member named member (when it is an array) lies: the first
 * spans->max of them, in spans->at[0 .. spans->n).  (A Batch's audit
 * records tell items of the same text by them.)
 */
struct kjson_spans {
	struct kjson_span {
		size_t off, len;
	} *at;
	size_t n, max;
};
json_t *kjson_read_spans(const void *buf, size_t len, size_t maxlen,
    int *err, char *msg, size_t msglen, const char *member,
    struct kjson_spans *spans);
/* Depth of the deepest array/object in buf, scanning strings correctly;
 * stops early and returns limit + 1 once limit is exceeded.  (A cheap
 * check for callers that hand bytes to another parser.) */
int kjson_depth(const void *buf, size_t len, int limit);

/*
 * Serialise j compactly into buf (no NUL).  Returns the length written, or
 * the length needed when it exceeds cap (nothing useful in buf then), or 0
 * on a value that cannot be written.  A faster json_dumpb(JSON_COMPACT) for
 * replies: strings are escaped as RFC 8259 requires, reals use %.17g.
 */
size_t kjson_write_compact(const json_t *j, char *buf, size_t cap);

#endif

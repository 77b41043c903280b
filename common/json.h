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

#define JSON_MAX_MESSAGE (1024 * 1024)	/* one nng message (Batch) */
#define JSON_MAX_REQUEST (64 * 1024)	/* one request or batch item */
#define JSON_MAX_DEPTH 32		/* nesting of arrays and objects */

/*
 * Parse buf[0..len) as one JSON object of at most maxlen bytes.
 * Returns the object (caller json_decref()s) or NULL with *err set to
 * KMS_ESERIALIZATION and a message in msg.
 */
json_t *kjson_read_bounded(const void *buf, size_t len, size_t maxlen,
    int *err, char *msg, size_t msglen);
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

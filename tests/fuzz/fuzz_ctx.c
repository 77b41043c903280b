/*
 * fuzz_ctx.c — libFuzzer harness for the canonical encryption context.
 *
 * The bytes are read as JSON (through the bounded reader, as the daemon
 * does); an object goes to ctx_canonical_json.  On success the output must
 * parse back as count + sorted, distinct, UTF-8 pairs that fill it exactly;
 * on failure a message must be set.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctx.h"
#include "common/err.h"
#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
get_u16(const uint8_t *p)
{
	return ((size_t)p[0] << 8) | p[1];
}

/* Re-parse canonical bytes; abort on any inconsistency. */
static void
check_canonical(const uint8_t *c, size_t len, size_t npairs)
{
	const uint8_t *prev = NULL;
	size_t off = 2, n, i, klen, vlen, prevlen = 0, m;
	int r;

	if (len < 2 || (n = get_u16(c)) != npairs || n > CTX_MAX_PAIRS) {
		abort();
	}
	for (i = 0; i < n; i++) {
		if (len - off < 2) {
			abort();
		}
		klen = get_u16(c + off);
		off += 2;
		if (klen == 0 || len - off < klen + 2) {
			abort();
		}
		if (!ctx_utf8_valid((const char *)c + off, klen)) {
			abort();
		}
		if (prev != NULL) {
			m = prevlen < klen ? prevlen : klen;
			r = memcmp(prev, c + off, m);
			if (r > 0 || (r == 0 && prevlen >= klen)) {
				abort();	/* unsorted or duplicate */
			}
		}
		prev = c + off;
		prevlen = klen;
		off += klen;
		vlen = get_u16(c + off);
		off += 2;
		if (len - off < vlen ||
		    !ctx_utf8_valid((const char *)c + off, vlen)) {
			abort();
		}
		off += vlen;
	}
	if (off != len) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[CTX_MAX_CANONICAL];
	char msg[256], jmsg[256];
	size_t len = 0;
	json_t *o;
	int err, r;

	o = kjson_read_bounded(data, size, JSON_MAX_REQUEST, &err, jmsg,
	    sizeof(jmsg));
	if (o == NULL) {
		return 0;
	}
	msg[0] = '\0';
	r = ctx_canonical_json(o, out, sizeof(out), &len, msg, sizeof(msg));
	if (r == 0) {
		check_canonical(out, len, json_object_size(o));
	} else if (r != KMS_EVALIDATION || msg[0] == '\0') {
		abort();
	}
	/* A small buffer must fail cleanly, never overrun. */
	r = ctx_canonical_json(o, out, 16, &len, msg, sizeof(msg));
	if (r != 0 && r != KMS_EVALIDATION) {
		abort();
	}
	json_decref(o);
	return 0;
}

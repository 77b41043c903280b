/*
 * ctx.c — canonical encryption context (docs/design.md §4).
 *
 * Both entry points gather the pairs into one small array (at most
 * CTX_MAX_PAIRS entries, on the stack), validate them, sort them by key
 * bytes and write the length-prefixed form.  Nothing is allocated.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctx.h"
#include "common/err.h"

struct ctx_pair {
	const char *key;
	size_t klen;
	const char *val;
	size_t vlen;
};

/* Longest key echoed in a message, so messages stay short and readable. */
#define CTX_MSG_KEY_MAX 64

static int
fail(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (msg != NULL && msglen > 0) {
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return KMS_EVALIDATION;
}

/*
 * A key fit to quote in a message: printable ASCII and short (messages go
 * into JSON replies and logs, and must stay valid UTF-8 after truncation).
 */
static int
quotable(const char *s, size_t len)
{
	size_t i;

	if (len > CTX_MSG_KEY_MAX) {
		return 0;
	}
	for (i = 0; i < len; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\') {
			return 0;
		}
	}
	return 1;
}

int
ctx_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, n, k;
	unsigned char c, lo, hi;

	if (s == NULL) {
		return len == 0;
	}
	while (i < len) {
		c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		/* Second-byte range excludes overlongs, surrogates, > U+10FFFF
		 * (RFC 3629 §4). */
		lo = 0x80;
		hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c == 0xe0) {
			n = 2;
			lo = 0xa0;
		} else if (c == 0xed) {
			n = 2;
			hi = 0x9f;
		} else if (c >= 0xe1 && c <= 0xef) {
			n = 2;
		} else if (c == 0xf0) {
			n = 3;
			lo = 0x90;
		} else if (c == 0xf4) {
			n = 3;
			hi = 0x8f;
		} else if (c >= 0xf1 && c <= 0xf3) {
			n = 3;
		} else {
			return 0;	/* continuation, C0, C1, F5..FF */
		}
		if (len - i - 1 < n) {
			return 0;	/* truncated sequence */
		}
		if (s[i + 1] < lo || s[i + 1] > hi) {
			return 0;
		}
		for (k = 2; k <= n; k++) {
			if (s[i + k] < 0x80 || s[i + k] > 0xbf) {
				return 0;
			}
		}
		i += n + 1;
	}
	return 1;
}

size_t
ctx_utf8_chars(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i, n = 0;

	/* Every byte but a continuation byte starts a character. */
	for (i = 0; i < len; i++) {
		n += (s[i] & 0xc0) != 0x80;
	}
	return n;
}

/* Bytewise order; a key that is a prefix of another sorts first. */
static int
compare_keys(const struct ctx_pair *a, const struct ctx_pair *b)
{
	size_t n = a->klen < b->klen ? a->klen : b->klen;
	int r;

	if ((r = memcmp(a->key, b->key, n)) != 0) {
		return r;
	}
	if (a->klen != b->klen) {
		return a->klen < b->klen ? -1 : 1;
	}
	return 0;
}

static int
compare_pairs(const void *a, const void *b)
{
	return compare_keys(a, b);
}

static void
put_u16_be(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Validate, sort in place and write the canonical form. */
static int
canonicalise(struct ctx_pair *p, size_t n, uint8_t *out, size_t outsz,
    size_t *outlen, char *msg, size_t msglen)
{
	size_t i, total = 2, o = 0;
	size_t limit = outsz < CTX_MAX_CANONICAL ? outsz : CTX_MAX_CANONICAL;

	if (n > CTX_MAX_PAIRS) {
		return fail(msg, msglen, "Encryption context has %zu pairs; "
		    "at most %d are allowed", n, CTX_MAX_PAIRS);
	}
	for (i = 0; i < n; i++) {
		if (p[i].klen == 0) {
			return fail(msg, msglen, "Encryption context keys "
			    "must not be empty");
		}
		/* Each term is bounded by limit, so the sum cannot wrap. */
		if (p[i].klen > limit || p[i].vlen > limit ||
		    total + 4 + p[i].klen + p[i].vlen > limit) {
			return fail(msg, msglen, "Encryption context exceeds "
			    "%zu bytes in canonical form", limit);
		}
		if (!ctx_utf8_valid(p[i].key, p[i].klen) ||
		    !ctx_utf8_valid(p[i].val, p[i].vlen)) {
			return fail(msg, msglen, "Encryption context "
			    "contains invalid UTF-8");
		}
		total += 4 + p[i].klen + p[i].vlen;
	}
	if (n > 1) {
		qsort(p, n, sizeof(*p), compare_pairs);
	}
	for (i = 1; i < n; i++) {
		if (compare_keys(&p[i - 1], &p[i]) == 0) {
			if (quotable(p[i].key, p[i].klen)) {
				return fail(msg, msglen, "Encryption context "
				    "has duplicate key \"%.*s\"",
				    (int)p[i].klen, p[i].key);
			}
			return fail(msg, msglen, "Encryption context has a "
			    "duplicate key");
		}
	}
	/* Reached only by the empty context with outsz < 2. */
	if (total > limit) {
		return fail(msg, msglen, "Encryption context exceeds %zu "
		    "bytes in canonical form", limit);
	}
	put_u16_be(out + o, n);
	o += 2;
	for (i = 0; i < n; i++) {
		put_u16_be(out + o, p[i].klen);
		o += 2;
		memcpy(out + o, p[i].key, p[i].klen);
		o += p[i].klen;
		put_u16_be(out + o, p[i].vlen);
		o += 2;
		if (p[i].vlen > 0) {
			memcpy(out + o, p[i].val, p[i].vlen);
		}
		o += p[i].vlen;
	}
	KMS_ASSERT(o == total);
	*outlen = o;
	return 0;
}

int
ctx_canonical_json(const json_t *obj, uint8_t *out, size_t outsz,
    size_t *outlen, char *msg, size_t msglen)
{
	struct ctx_pair p[CTX_MAX_PAIRS];
	const char *key;
	json_t *v;
	size_t n = 0;

	if (msg != NULL && msglen > 0) {
		msg[0] = '\0';
	}
	if (out == NULL || outlen == NULL) {
		return KMS_EINVAL;
	}
	/* Absent or JSON null: the empty context. */
	if (obj == NULL || json_is_null(obj)) {
		return canonicalise(p, 0, out, outsz, outlen, msg, msglen);
	}
	if (!json_is_object(obj)) {
		return fail(msg, msglen, "Encryption context must be an "
		    "object of strings");
	}
	if (json_object_size(obj) > CTX_MAX_PAIRS) {
		return fail(msg, msglen, "Encryption context has %zu pairs; "
		    "at most %d are allowed", json_object_size(obj),
		    CTX_MAX_PAIRS);
	}
	/* jansson's iterators take a non-const object; nothing is changed. */
	json_object_foreach((json_t *)obj, key, v) {
		KMS_ASSERT(n < CTX_MAX_PAIRS);
		if (!json_is_string(v)) {
			if (quotable(key, strlen(key))) {
				return fail(msg, msglen, "Encryption context "
				    "value for key \"%s\" must be a string",
				    key);
			}
			return fail(msg, msglen, "Encryption context values "
			    "must be strings");
		}
		p[n].key = key;
		p[n].klen = strlen(key);
		p[n].val = json_string_value(v);
		p[n].vlen = json_string_length(v);
		n++;
	}
	return canonicalise(p, n, out, outsz, outlen, msg, msglen);
}

int
ctx_canonical_pairs(const kms_context_pair *pairs, size_t n,
    uint8_t *out, size_t outsz, size_t *outlen, char *msg, size_t msglen)
{
	struct ctx_pair p[CTX_MAX_PAIRS];
	size_t i;

	if (msg != NULL && msglen > 0) {
		msg[0] = '\0';
	}
	if (out == NULL || outlen == NULL || (pairs == NULL && n != 0)) {
		return KMS_EINVAL;
	}
	if (n > CTX_MAX_PAIRS) {
		return fail(msg, msglen, "Encryption context has %zu pairs; "
		    "at most %d are allowed", n, CTX_MAX_PAIRS);
	}
	for (i = 0; i < n; i++) {
		if (pairs[i].key == NULL || pairs[i].value == NULL) {
			return fail(msg, msglen, "Encryption context keys and "
			    "values must not be null");
		}
		p[i].key = pairs[i].key;
		p[i].klen = strlen(pairs[i].key);
		p[i].val = pairs[i].value;
		p[i].vlen = strlen(pairs[i].value);
	}
	return canonicalise(p, n, out, outsz, outlen, msg, msglen);
}

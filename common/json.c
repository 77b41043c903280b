/*
 * json.c — the bounded JSON reader (docs/design.md §5).
 *
 * The length is checked first; then the parser, ours (jansson's lexer cost
 * 2.8 µs per Batch item, 93% of json_loadb's time): a recursive descent
 * over RFC 8259 that recurses once per level, refuses the level past
 * JSON_MAX_DEPTH before descending into it, and builds jansson values.  It
 * accepts exactly what json_loadb(JSON_REJECT_DUPLICATES) accepts with an
 * object at the top: UTF-8 checked (no overlong forms, surrogates or code
 * points above U+10FFFF), escapes with paired surrogates, no NUL in
 * strings (raw or \u0000), no control characters, integers within
 * json_int_t, reals that do not overflow, unique keys, nothing after the
 * object but whitespace.  test_json checks the two agree on thousands of
 * inputs and their mutations; fuzz_json does the same on whatever it finds.
 */
#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/hex.h"
#include "common/json.h"
#include "common/secmem.h"

static void
set_msg(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_msg(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (msg == NULL || msglen == 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
}

int
kjson_depth(const void *buf, size_t len, int limit)
{
	const unsigned char *s = buf;
	size_t i;
	int depth = 0, max = 0, in_string = 0;

	if (s == NULL) {
		return 0;
	}
	for (i = 0; i < len; i++) {
		if (in_string) {
			if (s[i] == '\\') {
				/* The escaped byte cannot end the string. */
				i++;
			} else if (s[i] == '"') {
				in_string = 0;
			}
			continue;
		}
		switch (s[i]) {
		case '"':
			in_string = 1;
			break;
		case '{':
		case '[':
			if (++depth > max) {
				max = depth;
			}
			if (max > limit) {
				return limit + 1;
			}
			break;
		case '}':
		case ']':
			/* Unbalanced input is jansson's to reject. */
			if (depth > 0) {
				depth--;
			}
			break;
		default:
			break;
		}
	}
	return max;
}

/* ------------------------------------------------------------ parser */

struct jp {
	const unsigned char *s, *p, *end;
	const char *why;		/* first error */
	const unsigned char *at;	/* where */
	int too_deep;			/* the error was the nesting */
	char *tmp;			/* unescaped strings, wiped after */
	size_t tmpcap;
	int depth;
	/* kjson_read_spans: the root's member whose elements are noted,
	 * and whether the value about to be read is that member's. */
	const char *member;
	size_t mlen;
	struct kjson_spans *spans;
	int noting;
};

static json_t *jp_value(struct jp *j);

static void *
jp_fail(struct jp *j, const char *why)
{
	if (j->why == NULL) {
		j->why = why;
		j->at = j->p;
	}
	return NULL;
}

static void
jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
	    *j->p == '\n' || *j->p == '\r')) {
		j->p++;
	}
}

/* Four hex digits at p (p + 4 <= end checked by the caller). */
static long
hex4(const unsigned char *p)
{
	long v = 0;
	int i, h;

	for (i = 0; i < 4; i++) {
		if ((h = hex_value(p[i])) < 0) {
			return -1;
		}
		v = v * 16 + h;
	}
	return v;
}

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), or 0. */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	uint32_t cp;
	size_t n, i;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n) {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) {
			return 0;
		}
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
		return 0;
	}
	return n;
}

static size_t
put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Fail at q (inside a string); -1. */
static int
jp_fail_at(struct jp *j, const unsigned char *q, const char *why)
{
	j->p = q;
	jp_fail(j, why);
	return -1;
}

/*
 * The escape at *qp (a backslash) into t; advances *qp past it and
 * returns the bytes written, or -1.
 */
static int
jp_escape(struct jp *j, const unsigned char **qp, char *t)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const unsigned char *q = *qp;
	const char *e;
	long cp, lo;

	if (j->end - q < 2) {
		return jp_fail_at(j, q, "unterminated string");
	}
	if (q[1] != 'u') {
		if (q[1] == '\0' || (e = strchr(from, q[1])) == NULL) {
			return jp_fail_at(j, q, "invalid escape in a string");
		}
		*t = to[e - from];
		*qp = q + 2;
		return 1;
	}
	if (j->end - q < 6 || (cp = hex4(q + 2)) < 0) {
		return jp_fail_at(j, q, "invalid \\u escape in a string");
	}
	q += 6;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (j->end - q < 6 || q[0] != '\\' || q[1] != 'u' ||
		    (lo = hex4(q + 2)) < 0xdc00 || lo > 0xdfff) {
			return jp_fail_at(j, q, "unpaired surrogate in a string");
		}
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		q += 6;
	} else if (cp >= 0xdc00 && cp <= 0xdfff) {
		return jp_fail_at(j, q, "unpaired surrogate in a string");
	} else if (cp == 0) {
		return jp_fail_at(j, q, "\\u0000 in a string");
	}
	*qp = q;
	return (int)put_utf8(t, (uint32_t)cp);
}

/*
 * The string at j->p (just after its opening quote).  On success *out
 * points at its value (into the input while it has no escapes; from the
 * first one on, it is unescaped into j->tmp), *len its length, and j->p
 * is past the closing quote.
 */
static int
jp_string(struct jp *j, const char **out, size_t *len)
{
	const unsigned char *start = j->p, *q = j->p, *run;
	char *t = NULL;
	size_t o = 0, n;
	int w;

	for (;;) {
		/* A run of plain ASCII, the common case. */
		for (run = q; q < j->end && *q >= 0x20 && *q < 0x80 &&
		    *q != '"' && *q != '\\'; q++) {
		}
		if (t != NULL) {
			memcpy(t + o, run, (size_t)(q - run));
			o += (size_t)(q - run);
		}
		if (q >= j->end) {
			return jp_fail_at(j, q, "unterminated string");
		}
		if (*q == '"') {
			break;
		}
		if (*q < 0x20) {
			return jp_fail_at(j, q, *q == 0 ? "NUL byte in a string" :
			    "control character in a string");
		}
		if (*q >= 0x80) {
			if ((n = utf8_len(q, j->end)) == 0) {
				return jp_fail_at(j, q,
				    "invalid UTF-8 in a string");
			}
			if (t != NULL) {
				memcpy(t + o, q, n);
				o += n;
			}
			q += n;
			continue;
		}
		/* A backslash: from here on the value is unescaped into
		 * j->tmp (the input bounds its size). */
		if (t == NULL) {
			if (j->tmp == NULL) {
				j->tmpcap = (size_t)(j->end - j->s);
				if ((j->tmp = malloc(j->tmpcap + 1)) == NULL) {
					return jp_fail_at(j, q, "out of memory");
				}
			}
			t = j->tmp;
			o = (size_t)(q - start);
			memcpy(t, start, o);
		}
		if ((w = jp_escape(j, &q, t + o)) < 0) {
			return -1;
		}
		o += (size_t)w;
	}
	*out = t != NULL ? t : (const char *)start;
	*len = t != NULL ? o : (size_t)(q - start);
	j->p = q + 1;
	return 0;
}

/* A number, as RFC 8259 spells it: an integer when it has neither
 * fraction nor exponent (and fits json_int_t), else a finite real. */
static json_t *
jp_number(struct jp *j)
{
	const unsigned char *q = j->p;
	char small[64], *buf = small;
	int real = 0;
	size_t n;
	json_t *v;

	if (q < j->end && *q == '-') {
		q++;
	}
	if (q >= j->end || *q < '0' || *q > '9') {
		return jp_fail(j, "invalid number");
	}
	if (*q == '0') {
		q++;
		if (q < j->end && *q >= '0' && *q <= '9') {
			return jp_fail(j, "invalid number");
		}
	} else {
		while (q < j->end && *q >= '0' && *q <= '9') {
			q++;
		}
	}
	if (q < j->end && *q == '.') {
		real = 1;
		q++;
		if (q >= j->end || *q < '0' || *q > '9') {
			return jp_fail(j, "invalid number");
		}
		while (q < j->end && *q >= '0' && *q <= '9') {
			q++;
		}
	}
	if (q < j->end && (*q == 'e' || *q == 'E')) {
		real = 1;
		q++;
		if (q < j->end && (*q == '+' || *q == '-')) {
			q++;
		}
		if (q >= j->end || *q < '0' || *q > '9') {
			return jp_fail(j, "invalid number");
		}
		while (q < j->end && *q >= '0' && *q <= '9') {
			q++;
		}
	}
	n = (size_t)(q - j->p);
	if (n >= sizeof(small) && (buf = malloc(n + 1)) == NULL) {
		return jp_fail(j, "out of memory");
	}
	memcpy(buf, j->p, n);
	buf[n] = '\0';
	errno = 0;
	if (!real) {
		char *e;
		long long x = strtoll(buf, &e, 10);
		v = errno == ERANGE || *e != '\0' ? NULL : json_integer(x);
		if (v == NULL && errno == ERANGE) {
			jp_fail(j, "integer out of range");
		}
	} else {
		/* strtod follows LC_NUMERIC: write its decimal point. */
		const char *dp = localeconv()->decimal_point;
		char *dot, *e;
		double x;
		if (dp != NULL && dp[0] != '.' && dp[0] != '\0' && dp[1] == '\0' &&
		    (dot = strchr(buf, '.')) != NULL) {
			*dot = dp[0];
		}
		x = strtod(buf, &e);
		if (*e != '\0') {
			v = NULL;
		} else if (errno == ERANGE && (x > 1.0 || x < -1.0)) {
			v = NULL;
			jp_fail(j, "real number overflow");
		} else {
			v = json_real(x);
		}
	}
	if (buf != small) {
		free(buf);
	}
	if (v == NULL) {
		return jp_fail(j, "invalid number");
	}
	j->p = q;
	return v;
}

static json_t *
jp_literal(struct jp *j, const char *word, size_t n, json_t *v)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) {
		return jp_fail(j, "invalid token");
	}
	j->p += n;
	return v;
}

/* After a member of an array or object: ',' (1: another follows, white
 * space skipped) or the closing bracket (0: done); else it fails (-1). */
static int
jp_after_member(struct jp *j, char close)
{
	jp_ws(j);
	if (j->p < j->end && *j->p == ',') {
		j->p++;
		jp_ws(j);
		return 1;
	}
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	jp_fail(j, close == ']' ? "',' or ']' expected" :
	    "',' or '}' expected");
	return -1;
}

static json_t *
jp_array(struct jp *j, int noting)
{
	struct kjson_spans *sp = j->spans;
	json_t *a, *v;
	size_t off = 0;
	int more;

	if ((a = json_array()) == NULL) {
		return jp_fail(j, "out of memory");
	}
	j->p++;			/* '[' */
	jp_ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return a;
	}
	for (;;) {
		if (noting) {
			jp_ws(j);
			off = (size_t)(j->p - j->s);
		}
		if ((v = jp_value(j)) == NULL) {
			break;
		}
		if (noting && sp->n < sp->max) {
			sp->at[sp->n].off = off;
			sp->at[sp->n].len = (size_t)(j->p - j->s) - off;
			sp->n++;
		}
		if (json_array_append_new(a, v) != 0) {
			jp_fail(j, "out of memory");
			break;
		}
		if ((more = jp_after_member(j, ']')) == 0) {
			return a;
		}
		if (more < 0) {
			break;
		}
	}
	json_decref(a);
	return NULL;
}

static json_t *
jp_object(struct jp *j)
{
	json_t *o, *v;
	const char *k;
	char *kcopy = NULL;
	size_t klen;
	int more;

	if ((o = json_object()) == NULL) {
		return jp_fail(j, "out of memory");
	}
	j->p++;			/* '{' */
	jp_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return o;
	}
	for (;;) {
		if (j->p >= j->end || *j->p != '"') {
			jp_fail(j, "string or '}' expected");
			break;
		}
		j->p++;
		if (jp_string(j, &k, &klen) != 0) {
			break;
		}
		if (json_object_getn(o, k, klen) != NULL) {
			j->p -= 1;
			jp_fail(j, "duplicate object key");
			break;
		}
		jp_ws(j);
		if (j->p >= j->end || *j->p != ':') {
			jp_fail(j, "':' expected");
			break;
		}
		j->p++;
		/* An unescaped key lives in j->tmp, which the value may
		 * reuse: keep a copy (escapes in keys are rare). */
		if (k == j->tmp) {
			if ((kcopy = malloc(klen + 1)) == NULL) {
				jp_fail(j, "out of memory");
				break;
			}
			memcpy(kcopy, k, klen);
			k = kcopy;
		}
		j->noting = j->depth == 1 && j->member != NULL &&
		    klen == j->mlen && memcmp(k, j->member, klen) == 0;
		v = jp_value(j);
		if (v != NULL && json_object_setn_new_nocheck(o, k, klen,
		    v) != 0) {
			jp_fail(j, "out of memory");
			v = NULL;
		}
		if (kcopy != NULL) {
			secure_wipe(kcopy, klen);
			free(kcopy);
			kcopy = NULL;
		}
		if (v == NULL) {
			break;
		}
		if ((more = jp_after_member(j, '}')) == 0) {
			return o;
		}
		if (more < 0) {
			break;
		}
	}
	json_decref(o);
	return NULL;
}

static json_t *
jp_value(struct jp *j)
{
	const char *str;
	size_t len;
	json_t *v;
	int noting = j->noting;

	j->noting = 0;
	jp_ws(j);
	if (j->p >= j->end) {
		return jp_fail(j, "unexpected end of input");
	}
	switch (*j->p) {
	case '{':
	case '[':
		/* Recursion stops here: at most JSON_MAX_DEPTH frames. */
		if (++j->depth > JSON_MAX_DEPTH) {
			j->depth--;
			if (j->why == NULL) {
				j->too_deep = 1;
			}
			return jp_fail(j, "nesting too deep");
		}
		v = *j->p == '{' ? jp_object(j) : jp_array(j, noting);
		j->depth--;
		return v;
	case '"':
		j->p++;
		if (jp_string(j, &str, &len) != 0) {
			return NULL;
		}
		if ((v = json_stringn_nocheck(str, len)) == NULL) {
			return jp_fail(j, "out of memory");
		}
		return v;
	case 't':
		return jp_literal(j, "true", 4, json_true());
	case 'f':
		return jp_literal(j, "false", 5, json_false());
	case 'n':
		return jp_literal(j, "null", 4, json_null());
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) {
			return jp_number(j);
		}
		return jp_fail(j, "invalid token");
	}
}

json_t *
kjson_read_bounded(const void *buf, size_t len, size_t maxlen, int *err,
    char *msg, size_t msglen)
{
	return kjson_read_spans(buf, len, maxlen, err, msg, msglen, NULL,
	    NULL);
}

json_t *
kjson_read_spans(const void *buf, size_t len, size_t maxlen, int *err,
    char *msg, size_t msglen, const char *member, struct kjson_spans *spans)
{
	struct jp j;
	json_t *root = NULL;
	int dummy;

	if (err == NULL) {
		err = &dummy;
	}
	*err = KMS_ESERIALIZATION;
	if (buf == NULL && len != 0) {
		set_msg(msg, msglen, "No request body");
		return NULL;
	}
	if (len > maxlen) {
		set_msg(msg, msglen, "Request exceeds %zu bytes", maxlen);
		return NULL;
	}
	memset(&j, 0, sizeof(j));
	if (member != NULL && spans != NULL) {
		j.member = member;
		j.mlen = strlen(member);
		j.spans = spans;
		spans->n = 0;
	}
	j.s = j.p = buf != NULL ? buf : (const unsigned char *)"";
	j.end = j.s + len;
	jp_ws(&j);
	if (j.p < j.end && *j.p != '{') {
		set_msg(msg, msglen, "The request must be a JSON object");
		return NULL;
	}
	if ((root = jp_value(&j)) != NULL) {
		jp_ws(&j);
		if (j.p != j.end) {
			jp_fail(&j, "end of input expected");
			json_decref(root);
			root = NULL;
		}
	}
	if (j.tmp != NULL) {
		/* Unescaped strings may have been secrets. */
		secure_wipe(j.tmp, j.tmpcap + 1);
		free(j.tmp);
	}
	if (root == NULL && j.too_deep) {
		set_msg(msg, msglen, "JSON nesting deeper than %d",
		    JSON_MAX_DEPTH);
		return NULL;
	}
	if (root == NULL) {
		const unsigned char *c;
		int line = 1, col = 1;
		/* Where, never what: the input may be a secret. */
		for (c = j.s; c < j.at && c < j.end; c++) {
			if (*c == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		set_msg(msg, msglen, "Invalid JSON at line %d column %d: %s",
		    line, col, j.why != NULL ? j.why : "unexpected input");
		return NULL;
	}
	*err = 0;
	return root;
}

/*
 * jsonw.c — a compact JSON writer for replies (see json.h).
 *
 * jansson's dumper goes through a callback per fragment; replies are built
 * per request, so this writes straight into the caller's buffer.  It keeps
 * counting past cap so the caller learns the size needed in one pass.
 */
#include <stdio.h>
#include <string.h>

#include "common/json.h"

struct out {
	char *buf;
	size_t cap, len;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->len < o->cap) {
		size_t room = o->cap - o->len;
		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static void
put_string(struct out *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	put(o, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[6];
		if (ch >= 0x20 && ch != '"' && ch != '\\') {
			continue;
		}
		put(o, s + run, i - run);
		run = i + 1;
		switch (ch) {
		case '"':
			put(o, "\\\"", 2);
			break;
		case '\\':
			put(o, "\\\\", 2);
			break;
		case '\n':
			put(o, "\\n", 2);
			break;
		case '\r':
			put(o, "\\r", 2);
			break;
		case '\t':
			put(o, "\\t", 2);
			break;
		default:
			esc[0] = '\\';
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			put(o, esc, 6);
			break;
		}
	}
	put(o, s + run, n - run);
	put(o, "\"", 1);
}

static int
write_value(struct out *o, const json_t *j, int depth)
{
	char num[40];
	const char *k;
	json_t *v;
	size_t i;
	int n, first = 1;

	if (depth > JSON_MAX_DEPTH) {
		return -1;
	}
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		put(o, "{", 1);
		json_object_foreach((json_t *)j, k, v) {
			if (!first) {
				put(o, ",", 1);
			}
			first = 0;
			put_string(o, k, strlen(k));
			put(o, ":", 1);
			if (write_value(o, v, depth + 1) != 0) {
				return -1;
			}
		}
		put(o, "}", 1);
		return 0;
	case JSON_ARRAY:
		put(o, "[", 1);
		json_array_foreach((json_t *)j, i, v) {
			if (i > 0) {
				put(o, ",", 1);
			}
			if (write_value(o, v, depth + 1) != 0) {
				return -1;
			}
		}
		put(o, "]", 1);
		return 0;
	case JSON_STRING:
		put_string(o, json_string_value(j), json_string_length(j));
		return 0;
	case JSON_INTEGER:
		n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(j));
		put(o, num, (size_t)n);
		return 0;
	case JSON_REAL:
		n = snprintf(num, sizeof(num), "%.17g", json_real_value(j));
		if (strspn(num, "-0123456789") == (size_t)n) {
			num[n++] = '.';		/* keep it a real */
			num[n++] = '0';
		}
		put(o, num, (size_t)n);
		return 0;
	case JSON_TRUE:
		put(o, "true", 4);
		return 0;
	case JSON_FALSE:
		put(o, "false", 5);
		return 0;
	case JSON_NULL:
		put(o, "null", 4);
		return 0;
	}
	return -1;
}

size_t
kjson_write_compact(const json_t *j, char *buf, size_t cap)
{
	struct out o = { buf, cap, 0 };

	if (j == NULL || write_value(&o, j, 0) != 0) {
		return 0;
	}
	return o.len;
}

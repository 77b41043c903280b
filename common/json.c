/*
 * json.c — the bounded JSON reader (DESIGN §4).
 *
 * Order matters: the length is checked first, then a linear, non-recursive
 * scan measures the nesting, and only input that passes both reaches
 * jansson, whose parser recurses once per level.  jansson then enforces
 * the grammar, UTF-8, no NUL in strings (JSON_ALLOW_NUL is off), no
 * trailing bytes (JSON_DISABLE_EOF_CHECK is off) and, with
 * JSON_REJECT_DUPLICATES, unique keys.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"

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
json_depth(const void *buf, size_t len, int limit)
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

/*
 * jansson's error text ends with " near '<token>'", quoting the input.  The
 * input may be a secret, or not UTF-8 (which would make the error reply
 * itself unencodable), so the quote is cut and any byte that is not
 * printable ASCII replaced.
 */
static void
clean_parse_error(char *text)
{
	unsigned char *s;
	char *near;

	if ((near = strstr(text, " near '")) != NULL) {
		*near = '\0';
	}
	for (s = (unsigned char *)text; *s != '\0'; s++) {
		if (*s < 0x20 || *s > 0x7e) {
			*s = '?';
		}
	}
}

json_t *
json_read_bounded(const void *buf, size_t len, size_t maxlen, int *err,
    char *msg, size_t msglen)
{
	json_error_t jerr;
	json_t *root;
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
	if (json_depth(buf, len, JSON_MAX_DEPTH) > JSON_MAX_DEPTH) {
		set_msg(msg, msglen, "JSON nesting deeper than %d",
		    JSON_MAX_DEPTH);
		return NULL;
	}
	memset(&jerr, 0, sizeof(jerr));
	/* json_loadb wants a non-NULL buffer even when empty. */
	root = json_loadb(buf != NULL ? buf : "", len, JSON_REJECT_DUPLICATES,
	    &jerr);
	if (root == NULL) {
		jerr.text[sizeof(jerr.text) - 1] = '\0';
		clean_parse_error(jerr.text);
		set_msg(msg, msglen, "Invalid JSON at line %d column %d: %s",
		    jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		set_msg(msg, msglen, "The request must be a JSON object");
		return NULL;
	}
	*err = 0;
	return root;
}

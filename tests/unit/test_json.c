/*
 * test_json.c — the bounded JSON reader (common/json.c, docs/design.md §5).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/json.h"

static const char valid_request[] =
    "{\"Action\":\"Encrypt\",\"KeyId\":\"alias/app\","
    "\"Plaintext\":\"aGVsbG8=\",\"EncryptionContext\":{\"a\":\"b\","
    "\"q\":\"x\\\"}]\"},\"GrantTokens\":[\"t1\",\"t2\"],\"N\":[1,2.5,"
    "true,false,null]}";

/* Parse text with the request limit; returns the object or NULL. */
static json_t *
read_text(const char *text, size_t len, int *err, char *msg, size_t msglen)
{
	return kjson_read_bounded(text, len, JSON_MAX_REQUEST, err, msg,
	    msglen);
}

/* {"a":[[[ ... 1 ... ]]]} with depth levels in all (the object counts). */
static char *
nested(int depth)
{
	size_t cap = (size_t)depth * 2 + 16, o = 0;
	char *s = malloc(cap);
	int i;

	assert_non_null(s);
	o += (size_t)snprintf(s, cap, "{\"a\":");
	for (i = 1; i < depth; i++) {
		s[o++] = '[';
	}
	s[o++] = '1';
	for (i = 1; i < depth; i++) {
		s[o++] = ']';
	}
	s[o++] = '}';
	s[o] = '\0';
	return s;
}

static void
test_json_reads_a_valid_request(void **state)
{
	char msg[256];
	json_t *o;
	int err = -1;

	o = read_text(valid_request, strlen(valid_request), &err, msg,
	    sizeof(msg));
	assert_non_null(o);
	assert_int_equal(err, 0);
	assert_string_equal(json_string_value(json_object_get(o, "Action")),
	    "Encrypt");
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(o, "EncryptionContext"), "q")), "x\"}]");
	json_decref(o);
}

static void
test_json_accepts_depth_32_rejects_33(void **state)
{
	char msg[256], *s;
	json_t *o;
	int err;

	s = nested(JSON_MAX_DEPTH);
	assert_int_equal(kjson_depth(s, strlen(s), JSON_MAX_DEPTH),
	    JSON_MAX_DEPTH);
	o = read_text(s, strlen(s), &err, msg, sizeof(msg));
	assert_non_null(o);
	json_decref(o);
	free(s);

	s = nested(JSON_MAX_DEPTH + 1);
	assert_int_equal(kjson_depth(s, strlen(s), JSON_MAX_DEPTH),
	    JSON_MAX_DEPTH + 1);
	assert_null(read_text(s, strlen(s), &err, msg, sizeof(msg)));
	assert_int_equal(err, KMS_ESERIALIZATION);
	assert_string_equal(msg, "JSON nesting deeper than 32");
	free(s);
}

static void
test_json_depth_counts_objects_too(void **state)
{
	char buf[64 * 8 + 16], msg[256];
	size_t o = 0;
	int i, err;

	for (i = 0; i < JSON_MAX_DEPTH + 1; i++) {
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "{\"k\":");
	}
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "1");
	for (i = 0; i < JSON_MAX_DEPTH + 1; i++) {
		buf[o++] = '}';
	}
	buf[o] = '\0';
	assert_int_equal(kjson_depth(buf, o, 100), JSON_MAX_DEPTH + 1);
	assert_null(read_text(buf, o, &err, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "nesting"));
}

static void
test_json_depth_caps_at_limit_plus_one(void **state)
{
	size_t n = 1000000;
	char *s = malloc(n);

	assert_non_null(s);
	memset(s, '[', n);
	assert_int_equal(kjson_depth(s, n, JSON_MAX_DEPTH), JSON_MAX_DEPTH + 1);
	assert_int_equal(kjson_depth(s, n, 5), 6);
	free(s);
}

static void
test_json_depth_ignores_brackets_in_strings(void **state)
{
	static const char *s1 = "{\"a\":\"[[[[{{{{\"}";
	static const char *s2 = "{\"a\":\"\\\"[[[[\",\"b\":[\"]]]\\\\\"]}";
	static const char *s3 = "{\"[[[\":\"\\\\\",\"c\":[[1]]}";
	char deep[256], msg[256];
	json_t *o;
	int i, err;

	assert_int_equal(kjson_depth(s1, strlen(s1), 32), 1);
	/* Escaped quote does not end the string; \\ then " does. */
	assert_int_equal(kjson_depth(s2, strlen(s2), 32), 2);
	assert_int_equal(kjson_depth(s3, strlen(s3), 32), 3);
	/* 100 brackets inside a string value are fine. */
	strcpy(deep, "{\"a\":\"");
	for (i = 0; i < 100; i++) {
		strcat(deep, "[");
	}
	strcat(deep, "\"}");
	o = read_text(deep, strlen(deep), &err, msg, sizeof(msg));
	assert_non_null(o);
	json_decref(o);
}

static void
test_json_rejects_duplicate_keys(void **state)
{
	static const char *s =
	    "{\"Action\":\"Encrypt\",\"Action\":\"Decrypt\"}";
	static const char *inner = "{\"c\":{\"k\":\"1\",\"k\":\"2\"}}";
	char msg[256];
	int err;

	assert_null(read_text(s, strlen(s), &err, msg, sizeof(msg)));
	assert_int_equal(err, KMS_ESERIALIZATION);
	assert_non_null(strstr(msg, "duplicate"));
	assert_null(read_text(inner, strlen(inner), &err, msg, sizeof(msg)));
}

static void
test_json_rejects_trailing_bytes(void **state)
{
	static const char *bad[] = {
		"{} x", "{}{}", "{}]", "{\"a\":1}}", "{}\"", "{}0",
	};
	char msg[256];
	size_t i;
	int err;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(read_text(bad[i], strlen(bad[i]), &err, msg,
		    sizeof(msg)));
		assert_int_equal(err, KMS_ESERIALIZATION);
	}
	/* Trailing whitespace is JSON, not garbage. */
	{
		json_t *o = read_text("{} \n", 4, &err, msg, sizeof(msg));

		assert_non_null(o);
		json_decref(o);
	}
	/* A NUL after the object is a trailing byte too. */
	assert_null(read_text("{}\0", 3, &err, msg, sizeof(msg)));
}

static void
test_json_rejects_non_object_top_level(void **state)
{
	static const char *bad[] = {
		"[]", "[{}]", "\"Encrypt\"", "1", "true", "null", "",
	};
	char msg[256];
	size_t i;
	int err;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = 0;
		assert_null(read_text(bad[i], strlen(bad[i]), &err, msg,
		    sizeof(msg)));
		assert_int_equal(err, KMS_ESERIALIZATION);
		assert_true(strlen(msg) > 0);
	}
}

static void
test_json_rejects_oversize_input(void **state)
{
	size_t n = JSON_MAX_REQUEST + 1, i;
	char msg[256], *s = malloc(n);
	json_t *o;
	int err;

	assert_non_null(s);
	/* {"a":"xxxx...x"} exactly JSON_MAX_REQUEST bytes, then one more. */
	memcpy(s, "{\"a\":\"", 6);
	for (i = 6; i < JSON_MAX_REQUEST - 2; i++) {
		s[i] = 'x';
	}
	s[JSON_MAX_REQUEST - 2] = '"';
	s[JSON_MAX_REQUEST - 1] = '}';
	o = read_text(s, JSON_MAX_REQUEST, &err, msg, sizeof(msg));
	assert_non_null(o);
	json_decref(o);
	s[JSON_MAX_REQUEST] = ' ';
	assert_null(read_text(s, n, &err, msg, sizeof(msg)));
	assert_int_equal(err, KMS_ESERIALIZATION);
	assert_string_equal(msg, "Request exceeds 65536 bytes");
	free(s);
}

static void
test_json_rejects_nul_and_bad_utf8_in_strings(void **state)
{
	static const char nul_esc[] = "{\"a\":\"x\\u0000y\"}";
	static const char nul_raw[] = "{\"a\":\"x\0y\"}";
	static const char bad_utf8[] = "{\"a\":\"\xff\"}";
	static const char surrogate[] = "{\"a\":\"\xed\xa0\x80\"}";
	char msg[256];
	int err;

	assert_null(read_text(nul_esc, sizeof(nul_esc) - 1, &err, msg,
	    sizeof(msg)));
	assert_null(read_text(nul_raw, sizeof(nul_raw) - 1, &err, msg,
	    sizeof(msg)));
	assert_null(read_text(bad_utf8, sizeof(bad_utf8) - 1, &err, msg,
	    sizeof(msg)));
	assert_null(read_text(surrogate, sizeof(surrogate) - 1, &err, msg,
	    sizeof(msg)));
}

/* Messages name the place but never echo input (it may be a secret, or
 * not UTF-8). */
static void
test_json_error_message_locates_without_echoing_input(void **state)
{
	static const char bad[] = "{\"a\": SECRETx\xff}";
	char msg[256];
	size_t i;
	int err;

	assert_null(read_text(bad, sizeof(bad) - 1, &err, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "Invalid JSON at line 1 column "));
	assert_null(strstr(msg, "SECRET"));
	for (i = 0; msg[i] != '\0'; i++) {
		assert_true((unsigned char)msg[i] >= 0x20 &&
		    (unsigned char)msg[i] < 0x7f);
	}
}

static void
test_json_rejects_every_prefix_of_a_valid_request(void **state)
{
	size_t len = strlen(valid_request), i;
	char msg[256], *copy;
	json_t *o;
	int err;

	for (i = 0; i < len; i++) {
		/* Exactly-sized heap copy: ASan sees any over-read. */
		copy = malloc(i > 0 ? i : 1);
		assert_non_null(copy);
		memcpy(copy, valid_request, i);
		err = 0;
		o = read_text(copy, i, &err, msg, sizeof(msg));
		assert_null(o);
		assert_int_equal(err, KMS_ESERIALIZATION);
		free(copy);
	}
}

/* xorshift64*: reproducible mutations without libc rand state. */
static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/*
 * The reader is ours; it must accept exactly what jansson's
 * json_loadb(JSON_REJECT_DUPLICATES) accepts (with an object on top) and
 * build the same values.  Hand-picked edge cases, then 200,000 mutations
 * of several seeds drawn from an alphabet of the grammar's hard parts.
 */
static int
agree(const char *buf, size_t n, char *why, size_t whylen)
{
	char msg[256];
	json_t *mine, *ref;
	int err, same;

	mine = kjson_read_bounded(buf, n, JSON_MAX_MESSAGE, &err, msg,
	    sizeof(msg));
	ref = kjson_depth(buf, n, JSON_MAX_DEPTH) > JSON_MAX_DEPTH ? NULL :
	    json_loadb(n > 0 ? buf : "", n, JSON_REJECT_DUPLICATES, NULL);
	if (ref != NULL && !json_is_object(ref)) {
		json_decref(ref);
		ref = NULL;
	}
	same = (mine == NULL) == (ref == NULL) &&
	    (mine == NULL || json_equal(mine, ref));
	/* jansson skips a raw NUL byte between some tokens (its buffer
	 * stream treats one as "read more"); RFC 8259 has no such byte
	 * outside strings, and we refuse it. */
	if (!same && mine == NULL && memchr(buf, 0, n) != NULL) {
		same = 1;
	}
	if (!same) {
		snprintf(why, whylen, "ours %s (%s), jansson %s",
		    mine != NULL ? "accepts" : "rejects",
		    mine != NULL ? "-" : msg, ref != NULL ? "accepts" : "rejects");
	}
	json_decref(mine);
	json_decref(ref);
	return same;
}

static void
expect_agree(const char *buf, size_t n)
{
	char why[512];

	if (!agree(buf, n, why, sizeof(why))) {
		char shown[200];
		size_t i, o = 0;
		for (i = 0; i < n && o + 5 < sizeof(shown); i++) {
			unsigned char c = (unsigned char)buf[i];
			o += (size_t)snprintf(shown + o, sizeof(shown) - o,
			    c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
		}
		fail_msg("%s: %s", shown, why);
	}
}

static void
test_json_accepts_exactly_what_jansson_accepts(void **state)
{
	static const char *cases[] = {
		"{}", " {} ", "{\"a\":1}", "{\"a\":-0}", "{\"a\":0.5e-3}",
		"{\"a\":1E+2}", "{\"a\":1e400}", "{\"a\":-1e400}", "{\"a\":1e-400}",
		"{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":-}", "{\"a\":+1}",
		"{\"a\":9223372036854775807}", "{\"a\":9223372036854775808}",
		"{\"a\":-9223372036854775808}", "{\"a\":-9223372036854775809}",
		"{\"a\":1.5x}", "{\"a\":tru}", "{\"a\":truex}", "{\"a\":nul}",
		"{\"a\":[true,false,null]}", "{\"a\":[1,]}", "{\"a\":[,1]}",
		"{\"a\":[]}", "{\"a\":{}}", "{\"a\":{\"b\":{}}}", "{,}",
		"{\"a\":1,}", "{\"a\" 1}", "{\"a\":1 \"b\":2}", "{a:1}",
		"{\"\\u0061\":1,\"a\":2}", "{\"a\\u0000\":1}", "{\"a\":\"\\u0000\"}",
		"{\"a\":\"\\ud83d\\ude00\"}", "{\"a\":\"\\ud83d\"}",
		"{\"a\":\"\\ude00\"}", "{\"a\":\"\\ud83dx\"}", "{\"a\":\"\\ud83d\\u0041\"}",
		"{\"a\":\"\\uDBFF\\uDFFF\"}", "{\"a\":\"\\u00e9\\u20AC\"}",
		"{\"a\":\"\\u12\"}", "{\"a\":\"\\uZZZZ\"}", "{\"a\":\"\\x\"}",
		"{\"a\":\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"}", "{\"a\":\"\t\"}",
		"{\"a\":\"\x7f\"}", "{\"a\":\"\xc3\xa9\"}", "{\"a\":\"\xc0\xaf\"}",
		"{\"a\":\"\xe0\x80\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}",
		"{\"a\":\"\xf4\x8f\xbf\xbf\"}", "{\"a\":\"\xf4\x90\x80\x80\"}",
		"{\"a\":\"\xf0\x9f\x98\x80\"}", "{\"a\":\"\xf0\x9f\x98\"}",
		"{\"a\":\"\x80\"}", "{\"a\":\"\xff\"}", "{\"\xc3\xa9\":1}",
		"{\"a\":\"x", "{\"a\":\"x\\", "{\"a\":\"x\\\"}", "{\"a\"",
		"{\"a\":", "{", "", " ", "[]", "1", "\"a\"", "null", "{}x",
		"{} ", "{}\n\r\t", "\xef\xbb\xbf{}", "{\"a\":1}\x00",
		"{\"k\":\"v\",\"k\":\"w\"}", "{\"o\":{\"k\":1,\"k\":2}}",
		"{\"a\":[{\"k\":1,\"k\":1}]}", "{\"a\":\"\\u0041\\u0042\"}",
		"{\"\\ud83d\\ude00\":\"\\\"\",\"b\":[\"\\\\\"]}",
		"{\"a\":1.7976931348623157e308}", "{\"a\":2e308}",
		"{\"a\":-0.0}", "{\"a\":0e0}", "{\"a\":0E-0}", "{\"a\":1e}",
		"{\"a\":1e+}", "{\"a\":[1 2]}", "{\"a\":[\"\\u00\"]}",
	};
	static const char alphabet[] = "{}[]\":,\\ \t\n\x00\x01\x7f\x80\xbf"
	    "\xc3\xa9\xed\xf0\xf4\xffu0123456789abcdefABCDEFtrunlsxz-+.eE/";
	static const char *seeds[] = {
		valid_request,
		"{\"s\":\"\\ud83d\\ude00\\u00e9\xc3\xa9\",\"n\":[-0.5e-3,12,1E9],"
		    "\"o\":{\"t\":true,\"f\":false,\"z\":null},\"e\":\"\\n\\/\"}",
		"{\"Responses\":[{\"KeyId\":\"k\",\"Plaintext\":\"q83v\"},"
		    "{\"__type\":\"X\",\"message\":\"m\"}]}",
	};
	uint64_t seed = 0x6a736f6e;
	char buf[512];
	size_t i, k, n, pos;
	int m;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		expect_agree(cases[i], strlen(cases[i]));
	}
	/* "{\"a\":1}\x00" and friends: lengths that include a NUL. */
	expect_agree("{}\0", 3);
	expect_agree("{\"a\":\"\0\"}", 8);
	for (i = 0; i < 200000; i++) {
		const char *sd = seeds[i % (sizeof(seeds) / sizeof(seeds[0]))];
		n = strlen(sd);
		memcpy(buf, sd, n);
		for (m = 0; m < 1 + (int)(next_rand(&seed) % 3); m++) {
			pos = next_rand(&seed) % (n + 1);
			k = next_rand(&seed) % 3;
			if (k == 0 && pos < n) {
				buf[pos] = alphabet[next_rand(&seed) %
				    (sizeof(alphabet) - 1)];
			} else if (k == 1 && pos < n) {
				memmove(buf + pos, buf + pos + 1, n - pos - 1);
				n--;
			} else if (n + 1 < sizeof(buf)) {
				memmove(buf + pos + 1, buf + pos, n - pos);
				buf[pos] = alphabet[next_rand(&seed) %
				    (sizeof(alphabet) - 1)];
				n++;
			}
		}
		expect_agree(buf, n);
	}
}

static void
test_json_survives_random_mutations(void **state)
{
	static const char alphabet[] = "{}[]\":,\\ \x00\xff\xc3\xa9u0a-e.1";
	size_t len = strlen(valid_request), n, j, pos;
	uint64_t seed = 0x6b6d7364;
	char msg[256], *buf;
	json_t *o;
	int i, err, accepted = 0;

	for (i = 0; i < 20000; i++) {
		buf = malloc(len + 8);
		assert_non_null(buf);
		memcpy(buf, valid_request, len);
		n = len;
		for (j = 0; j < 1 + next_rand(&seed) % 4; j++) {
			pos = next_rand(&seed) % n;
			switch (next_rand(&seed) % 3) {
			case 0:	/* replace */
				buf[pos] = alphabet[next_rand(&seed) %
				    (sizeof(alphabet) - 1)];
				break;
			case 1:	/* delete */
				memmove(buf + pos, buf + pos + 1, n - pos - 1);
				n--;
				break;
			default: /* insert */
				memmove(buf + pos + 1, buf + pos, n - pos);
				buf[pos] = alphabet[next_rand(&seed) %
				    (sizeof(alphabet) - 1)];
				n++;
				break;
			}
		}
		err = -1;
		o = read_text(buf, n, &err, msg, sizeof(msg));
		if (o != NULL) {
			assert_int_equal(err, 0);
			assert_true(json_is_object(o));
			accepted++;
			json_decref(o);
		} else {
			assert_int_equal(err, KMS_ESERIALIZATION);
		}
		free(buf);
	}
	/* Some mutations (inside strings) keep the request valid. */
	assert_true(accepted > 0);
}

/* kjson_read_spans notes where the root member's elements lie, each
 * exactly (no surrounding blanks), and nothing else: not a member of the
 * same name deeper down, not a member that is no array, not past max. */
static void
test_json_spans_of_a_members_elements(void **state)
{
	static const char text[] = "{\"X\":{\"Requests\":[1,2]}, \"Requests\""
	    " : [ {\"a\":[1,{\"Requests\":[3]}]} ,\"s]\", [ ] ,7 ],\"Z\":1}";
	static const char *want[] = { "{\"a\":[1,{\"Requests\":[3]}]}",
	    "\"s]\"", "[ ]", "7" };
	struct kjson_span at[4];
	struct kjson_spans sp = { at, 99, 4 };
	json_t *j;
	size_t i;
	int err;

	(void)state;
	j = kjson_read_spans(text, strlen(text), JSON_MAX_REQUEST, &err, NULL,
	    0, "Requests", &sp);
	assert_non_null(j);
	assert_int_equal(sp.n, 4);
	for (i = 0; i < 4; i++) {
		assert_int_equal(at[i].len, strlen(want[i]));
		assert_memory_equal(text + at[i].off, want[i], at[i].len);
	}
	json_decref(j);
	/* At most max of them; the parse is whole all the same. */
	sp.max = 2;
	j = kjson_read_spans(text, strlen(text), JSON_MAX_REQUEST, &err, NULL,
	    0, "Requests", &sp);
	assert_non_null(j);
	assert_int_equal(sp.n, 2);
	assert_int_equal(json_array_size(json_object_get(j, "Requests")), 4);
	json_decref(j);
	/* Not an array, absent, or only deeper down: none. */
	sp.max = 4;
	j = kjson_read_spans("{\"Requests\":{\"a\":[1]}}", 22,
	    JSON_MAX_REQUEST, &err, NULL, 0, "Requests", &sp);
	assert_non_null(j);
	assert_int_equal(sp.n, 0);
	json_decref(j);
	j = kjson_read_spans("{\"X\":{\"Requests\":[1,2]}}", 24,
	    JSON_MAX_REQUEST, &err, NULL, 0, "Requests", &sp);
	assert_non_null(j);
	assert_int_equal(sp.n, 0);
	json_decref(j);
	/* Without a member to note, spans are left alone. */
	sp.n = 3;
	j = kjson_read_spans(text, strlen(text), JSON_MAX_REQUEST, &err, NULL,
	    0, NULL, &sp);
	assert_non_null(j);
	assert_int_equal(sp.n, 3);
	json_decref(j);
}

static void
test_json_handles_null_arguments(void **state)
{
	char msg[8];
	int err;

	assert_null(kjson_read_bounded(NULL, 5, JSON_MAX_REQUEST, &err, msg,
	    sizeof(msg)));
	assert_int_equal(err, KMS_ESERIALIZATION);
	assert_null(kjson_read_bounded(NULL, 0, JSON_MAX_REQUEST, &err, NULL,
	    0));
	/* A tiny message buffer is truncated, not overrun. */
	assert_null(kjson_read_bounded("[]", 2, JSON_MAX_REQUEST, &err, msg,
	    sizeof(msg)));
	assert_int_equal(strlen(msg), sizeof(msg) - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_reads_a_valid_request),
		cmocka_unit_test(test_json_spans_of_a_members_elements),
		cmocka_unit_test(test_json_accepts_depth_32_rejects_33),
		cmocka_unit_test(test_json_depth_counts_objects_too),
		cmocka_unit_test(test_json_depth_caps_at_limit_plus_one),
		cmocka_unit_test(test_json_depth_ignores_brackets_in_strings),
		cmocka_unit_test(test_json_rejects_duplicate_keys),
		cmocka_unit_test(test_json_rejects_trailing_bytes),
		cmocka_unit_test(test_json_rejects_non_object_top_level),
		cmocka_unit_test(test_json_rejects_oversize_input),
		cmocka_unit_test(test_json_rejects_nul_and_bad_utf8_in_strings),
		cmocka_unit_test(
		    test_json_error_message_locates_without_echoing_input),
		cmocka_unit_test(
		    test_json_rejects_every_prefix_of_a_valid_request),
		cmocka_unit_test(test_json_accepts_exactly_what_jansson_accepts),
		cmocka_unit_test(test_json_survives_random_mutations),
		cmocka_unit_test(test_json_handles_null_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

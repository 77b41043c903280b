/*
 * test_json.c — the bounded JSON reader (common/json.c, DESIGN §4).
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
	return json_read_bounded(text, len, JSON_MAX_REQUEST, err, msg,
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
	assert_int_equal(json_depth(s, strlen(s), JSON_MAX_DEPTH),
	    JSON_MAX_DEPTH);
	o = read_text(s, strlen(s), &err, msg, sizeof(msg));
	assert_non_null(o);
	json_decref(o);
	free(s);

	s = nested(JSON_MAX_DEPTH + 1);
	assert_int_equal(json_depth(s, strlen(s), JSON_MAX_DEPTH),
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
	assert_int_equal(json_depth(buf, o, 100), JSON_MAX_DEPTH + 1);
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
	assert_int_equal(json_depth(s, n, JSON_MAX_DEPTH), JSON_MAX_DEPTH + 1);
	assert_int_equal(json_depth(s, n, 5), 6);
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

	assert_int_equal(json_depth(s1, strlen(s1), 32), 1);
	/* Escaped quote does not end the string; \\ then " does. */
	assert_int_equal(json_depth(s2, strlen(s2), 32), 2);
	assert_int_equal(json_depth(s3, strlen(s3), 32), 3);
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

static void
test_json_handles_null_arguments(void **state)
{
	char msg[8];
	int err;

	assert_null(json_read_bounded(NULL, 5, JSON_MAX_REQUEST, &err, msg,
	    sizeof(msg)));
	assert_int_equal(err, KMS_ESERIALIZATION);
	assert_null(json_read_bounded(NULL, 0, JSON_MAX_REQUEST, &err, NULL,
	    0));
	/* A tiny message buffer is truncated, not overrun. */
	assert_null(json_read_bounded("[]", 2, JSON_MAX_REQUEST, &err, msg,
	    sizeof(msg)));
	assert_int_equal(strlen(msg), sizeof(msg) - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_reads_a_valid_request),
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
		cmocka_unit_test(test_json_survives_random_mutations),
		cmocka_unit_test(test_json_handles_null_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_ctx.c — canonical encryption context (common/ctx.c, docs/design.md §4).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/ctx.h"
#include "common/err.h"
#include "tests/vector.h"

/* Canonical form of a JSON text; returns ctx_canonical_json's result. */
static int
canon_json(const char *text, uint8_t *out, size_t outsz, size_t *outlen,
    char *msg, size_t msglen)
{
	json_error_t jerr;
	json_t *obj;
	int r;

	obj = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	    &jerr);
	assert_non_null(obj);
	r = ctx_canonical_json(obj, out, outsz, outlen, msg, msglen);
	json_decref(obj);
	return r;
}

static void
test_ctx_empty_context_is_u16_zero(void **state)
{
	uint8_t out[16];
	size_t len = 99;
	char msg[128];

	assert_int_equal(ctx_canonical_json(NULL, out, sizeof(out), &len, msg,
	    sizeof(msg)), 0);
	assert_int_equal(len, 2);
	assert_int_equal(out[0], 0);
	assert_int_equal(out[1], 0);
	len = 99;
	assert_int_equal(canon_json("{}", out, sizeof(out), &len, msg,
	    sizeof(msg)), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(out, "\0\0", 2);
	len = 99;
	assert_int_equal(ctx_canonical_pairs(NULL, 0, out, sizeof(out), &len,
	    msg, sizeof(msg)), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(out, "\0\0", 2);
}

static void
test_ctx_split_point_changes_the_encoding(void **state)
{
	uint8_t a[64], b[64];
	size_t alen, blen;
	char msg[128];

	assert_int_equal(canon_json("{\"ab\":\"c\"}", a, sizeof(a), &alen,
	    msg, sizeof(msg)), 0);
	assert_int_equal(canon_json("{\"a\":\"bc\"}", b, sizeof(b), &blen,
	    msg, sizeof(msg)), 0);
	assert_int_equal(alen, blen);
	assert_memory_not_equal(a, b, alen);
	assert_memory_equal(a, "\0\1\0\2ab\0\1c", alen);
	assert_memory_equal(b, "\0\1\0\1a\0\2bc", blen);
}

static void
test_ctx_sorts_by_key_bytes_regardless_of_order(void **state)
{
	/* "B" (0x42) < "a" (0x61) < "ab" (prefix first) < "b" < "é". */
	static const kms_context_pair fwd[] = {
		{ "B", "1" }, { "a", "2" }, { "ab", "3" }, { "b", "4" },
		{ "\xc3\xa9", "5" },
	};
	static const kms_context_pair rev[] = {
		{ "\xc3\xa9", "5" }, { "b", "4" }, { "ab", "3" }, { "a", "2" },
		{ "B", "1" },
	};
	static const uint8_t want[] = {
		0, 5,
		0, 1, 'B', 0, 1, '1',
		0, 1, 'a', 0, 1, '2',
		0, 2, 'a', 'b', 0, 1, '3',
		0, 1, 'b', 0, 1, '4',
		0, 2, 0xc3, 0xa9, 0, 1, '5',
	};
	uint8_t a[128], b[128], c[128];
	size_t alen, blen, clen;
	char msg[128];

	assert_int_equal(ctx_canonical_pairs(fwd, 5, a, sizeof(a), &alen, msg,
	    sizeof(msg)), 0);
	assert_int_equal(ctx_canonical_pairs(rev, 5, b, sizeof(b), &blen, msg,
	    sizeof(msg)), 0);
	assert_int_equal(canon_json("{\"b\":\"4\",\"\\u00e9\":\"5\",\"ab\":"
	    "\"3\",\"B\":\"1\",\"a\":\"2\"}", c, sizeof(c), &clen, msg,
	    sizeof(msg)), 0);
	assert_int_equal(alen, sizeof(want));
	assert_memory_equal(a, want, sizeof(want));
	assert_int_equal(blen, sizeof(want));
	assert_memory_equal(b, want, sizeof(want));
	assert_int_equal(clen, sizeof(want));
	assert_memory_equal(c, want, sizeof(want));
}

static void
test_ctx_matches_known_answer_vector(void **state)
{
	uint8_t want[256], out[256];
	char text[256], msg[128];
	long wantlen;
	size_t len;

	assert_int_equal(vec_get("ctx_v1.txt", "context", text, sizeof(text)),
	    0);
	wantlen = vec_get_hex("ctx_v1.txt", "canonical", want, sizeof(want));
	assert_true(wantlen > 2);
	assert_int_equal(canon_json(text, out, sizeof(out), &len, msg,
	    sizeof(msg)), 0);
	assert_int_equal(len, (size_t)wantlen);
	assert_memory_equal(out, want, len);
}

static void
test_ctx_keeps_empty_values(void **state)
{
	static const kms_context_pair p[] = { { "k", "" } };
	uint8_t out[16];
	size_t len;
	char msg[128];

	assert_int_equal(ctx_canonical_pairs(p, 1, out, sizeof(out), &len,
	    msg, sizeof(msg)), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(out, "\0\1\0\1k\0\0", 7);
}

static void
test_ctx_rejects_duplicate_keys_in_pairs(void **state)
{
	static const kms_context_pair p[] = {
		{ "x", "1" }, { "dup", "a" }, { "y", "2" }, { "dup", "b" },
	};
	static const kms_context_pair same[] = {
		{ "dup", "a" }, { "dup", "a" },
	};
	uint8_t out[128];
	size_t len = 1234;
	char msg[128];

	assert_int_equal(ctx_canonical_pairs(p, 4, out, sizeof(out), &len,
	    msg, sizeof(msg)), KMS_EVALIDATION);
	assert_non_null(strstr(msg, "duplicate"));
	assert_non_null(strstr(msg, "dup"));
	assert_int_equal(len, 1234);	/* outputs only on success */
	assert_int_equal(ctx_canonical_pairs(same, 2, out, sizeof(out), &len,
	    msg, sizeof(msg)), KMS_EVALIDATION);
}

static void
test_ctx_rejects_non_string_values(void **state)
{
	static const char *bad[] = {
		"{\"k\":1}", "{\"k\":null}", "{\"k\":true}", "{\"k\":[]}",
		"{\"k\":{}}", "{\"a\":\"ok\",\"k\":1.5}",
	};
	uint8_t out[128];
	size_t len, i;
	char msg[128];

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg[0] = '\0';
		assert_int_equal(canon_json(bad[i], out, sizeof(out), &len,
		    msg, sizeof(msg)), KMS_EVALIDATION);
		assert_non_null(strstr(msg, "string"));
	}
}

static void
test_ctx_rejects_non_object_context(void **state)
{
	uint8_t out[128];
	size_t len;
	char msg[128];

	assert_int_equal(canon_json("[\"a\",\"b\"]", out, sizeof(out), &len,
	    msg, sizeof(msg)), KMS_EVALIDATION);
	assert_int_equal(canon_json("\"a\"", out, sizeof(out), &len, msg,
	    sizeof(msg)), KMS_EVALIDATION);
}

static void
test_ctx_rejects_empty_key(void **state)
{
	static const kms_context_pair p[] = { { "a", "1" }, { "", "v" } };
	uint8_t out[128];
	size_t len;
	char msg[128];

	assert_int_equal(ctx_canonical_pairs(p, 2, out, sizeof(out), &len,
	    msg, sizeof(msg)), KMS_EVALIDATION);
	assert_non_null(strstr(msg, "empty"));
	assert_int_equal(canon_json("{\"\":\"v\"}", out, sizeof(out), &len,
	    msg, sizeof(msg)), KMS_EVALIDATION);
}

static void
test_ctx_rejects_null_key_or_value(void **state)
{
	const kms_context_pair nk[] = { { NULL, "v" } };
	const kms_context_pair nv[] = { { "k", NULL } };
	uint8_t out[128];
	size_t len;
	char msg[128];

	assert_int_equal(ctx_canonical_pairs(nk, 1, out, sizeof(out), &len,
	    msg, sizeof(msg)), KMS_EVALIDATION);
	assert_int_equal(ctx_canonical_pairs(nv, 1, out, sizeof(out), &len,
	    msg, sizeof(msg)), KMS_EVALIDATION);
}

static void
test_ctx_rejects_invalid_utf8(void **state)
{
	static const char *bad[] = {
		"\xff",			/* never valid */
		"\x80",			/* lone continuation */
		"\xc3",			/* truncated 2-byte */
		"\xe2\x82",		/* truncated 3-byte */
		"\xc0\xaf",		/* overlong '/' */
		"\xc1\xbf",		/* overlong */
		"\xe0\x80\xaf",		/* overlong 3-byte */
		"\xf0\x80\x80\xaf",	/* overlong 4-byte */
		"\xed\xa0\x80",		/* surrogate U+D800 */
		"\xed\xbf\xbf",		/* surrogate U+DFFF */
		"\xf4\x90\x80\x80",	/* > U+10FFFF */
		"\xf5\x80\x80\x80",	/* F5 lead */
		"a\xc3(",		/* bad continuation */
	};
	kms_context_pair p[1];
	uint8_t out[128];
	size_t len, i;
	char msg[128];

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(ctx_utf8_valid(bad[i], strlen(bad[i])));
		p[0].key = bad[i];
		p[0].value = "v";
		assert_int_equal(ctx_canonical_pairs(p, 1, out, sizeof(out),
		    &len, msg, sizeof(msg)), KMS_EVALIDATION);
		assert_non_null(strstr(msg, "UTF-8"));
		p[0].key = "k";
		p[0].value = bad[i];
		assert_int_equal(ctx_canonical_pairs(p, 1, out, sizeof(out),
		    &len, msg, sizeof(msg)), KMS_EVALIDATION);
	}
}

static void
test_utf8_accepts_valid_boundaries(void **state)
{
	static const char *good[] = {
		"", "ascii", "\x7f",
		"\xc2\x80",		/* U+0080 */
		"\xdf\xbf",		/* U+07FF */
		"\xe0\xa0\x80",		/* U+0800 */
		"\xed\x9f\xbf",		/* U+D7FF, below surrogates */
		"\xee\x80\x80",		/* U+E000, just above */
		"\xef\xbf\xbf",		/* U+FFFF */
		"\xf0\x90\x80\x80",	/* U+10000 */
		"\xf4\x8f\xbf\xbf",	/* U+10FFFF */
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_true(ctx_utf8_valid(good[i], strlen(good[i])));
	}
	/* NUL is a valid code point when the length says so. */
	assert_true(ctx_utf8_valid("a\0b", 3));
}

static void
test_ctx_rejects_too_many_pairs(void **state)
{
	kms_context_pair p[CTX_MAX_PAIRS + 1];
	char keys[CTX_MAX_PAIRS + 1][8], msg[128];
	uint8_t out[CTX_MAX_CANONICAL];
	json_t *obj;
	size_t len, i;

	for (i = 0; i < CTX_MAX_PAIRS + 1; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
		p[i].key = keys[i];
		p[i].value = "v";
	}
	assert_int_equal(ctx_canonical_pairs(p, CTX_MAX_PAIRS, out,
	    sizeof(out), &len, msg, sizeof(msg)), 0);
	assert_int_equal(ctx_canonical_pairs(p, CTX_MAX_PAIRS + 1, out,
	    sizeof(out), &len, msg, sizeof(msg)), KMS_EVALIDATION);

	obj = json_object();
	for (i = 0; i < CTX_MAX_PAIRS; i++) {
		json_object_set_new(obj, keys[i], json_string("v"));
	}
	assert_int_equal(ctx_canonical_json(obj, out, sizeof(out), &len, msg,
	    sizeof(msg)), 0);
	json_object_set_new(obj, keys[CTX_MAX_PAIRS], json_string("v"));
	assert_int_equal(ctx_canonical_json(obj, out, sizeof(out), &len, msg,
	    sizeof(msg)), KMS_EVALIDATION);
	json_decref(obj);
}

static void
test_ctx_rejects_canonical_form_over_limit(void **state)
{
	/* One pair: 2 + 2 + 1 + 2 + vlen bytes. */
	static char val[CTX_MAX_CANONICAL + 1];
	static uint8_t out[CTX_MAX_CANONICAL + 64];
	kms_context_pair p[1] = { { "k", val } };
	size_t len, fit = CTX_MAX_CANONICAL - 7;
	char msg[128];

	memset(val, 'v', sizeof(val) - 1);
	val[fit] = '\0';
	assert_int_equal(ctx_canonical_pairs(p, 1, out, sizeof(out), &len,
	    msg, sizeof(msg)), 0);
	assert_int_equal(len, CTX_MAX_CANONICAL);
	val[fit] = 'v';
	val[fit + 1] = '\0';
	assert_int_equal(ctx_canonical_pairs(p, 1, out, sizeof(out), &len,
	    msg, sizeof(msg)), KMS_EVALIDATION);
	assert_non_null(strstr(msg, "exceeds"));
	/* A value longer than u16 is caught by the same limit. */
	memset(val, 'v', sizeof(val) - 1);
	assert_int_equal(ctx_canonical_pairs(p, 1, out, sizeof(out), &len,
	    msg, sizeof(msg)), KMS_EVALIDATION);
}

static void
test_ctx_respects_small_output_buffer(void **state)
{
	static const kms_context_pair p[] = { { "key", "value" } };
	uint8_t out[16];
	size_t len = 77;
	char msg[128];

	/* 2 + 2 + 3 + 2 + 5 = 14 bytes. */
	assert_int_equal(ctx_canonical_pairs(p, 1, out, 13, &len, msg,
	    sizeof(msg)), KMS_EVALIDATION);
	assert_int_equal(len, 77);
	assert_int_equal(ctx_canonical_pairs(p, 1, out, 14, &len, msg,
	    sizeof(msg)), 0);
	assert_int_equal(len, 14);
	assert_int_equal(ctx_canonical_pairs(NULL, 0, out, 1, &len, msg,
	    sizeof(msg)), KMS_EVALIDATION);
}

static void
test_ctx_tolerates_tiny_message_buffer(void **state)
{
	static const kms_context_pair p[] = { { "", "v" } };
	uint8_t out[16];
	size_t len;
	char msg[4];

	assert_int_equal(ctx_canonical_pairs(p, 1, out, sizeof(out), &len,
	    msg, sizeof(msg)), KMS_EVALIDATION);
	assert_int_equal(strlen(msg), 3);
	assert_int_equal(ctx_canonical_pairs(p, 1, out, sizeof(out), &len,
	    NULL, 0), KMS_EVALIDATION);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctx_empty_context_is_u16_zero),
		cmocka_unit_test(test_ctx_split_point_changes_the_encoding),
		cmocka_unit_test(
		    test_ctx_sorts_by_key_bytes_regardless_of_order),
		cmocka_unit_test(test_ctx_matches_known_answer_vector),
		cmocka_unit_test(test_ctx_keeps_empty_values),
		cmocka_unit_test(test_ctx_rejects_duplicate_keys_in_pairs),
		cmocka_unit_test(test_ctx_rejects_non_string_values),
		cmocka_unit_test(test_ctx_rejects_non_object_context),
		cmocka_unit_test(test_ctx_rejects_empty_key),
		cmocka_unit_test(test_ctx_rejects_null_key_or_value),
		cmocka_unit_test(test_ctx_rejects_invalid_utf8),
		cmocka_unit_test(test_utf8_accepts_valid_boundaries),
		cmocka_unit_test(test_ctx_rejects_too_many_pairs),
		cmocka_unit_test(test_ctx_rejects_canonical_form_over_limit),
		cmocka_unit_test(test_ctx_respects_small_output_buffer),
		cmocka_unit_test(test_ctx_tolerates_tiny_message_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_b64.c — strict standard base64 (common/b64.c, RFC 4648).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/b64.h"
#include "common/err.h"

/* RFC 4648 §10. */
static const struct {
	const char *bin;
	const char *b64;
} rfc4648[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static int
decode_str(const char *s, uint8_t *out, size_t outsz, size_t *outlen)
{
	return b64_decode(s, strlen(s), out, outsz, outlen);
}

static void
test_b64_encodes_rfc4648_vectors(void **state)
{
	char out[16];
	size_t i;

	for (i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		assert_int_equal(b64_encode((const uint8_t *)rfc4648[i].bin,
		    strlen(rfc4648[i].bin), out, sizeof(out)), 0);
		assert_string_equal(out, rfc4648[i].b64);
	}
}

static void
test_b64_decodes_rfc4648_vectors(void **state)
{
	uint8_t out[16];
	size_t i, len;

	for (i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		len = 99;
		assert_int_equal(decode_str(rfc4648[i].b64, out, sizeof(out),
		    &len), 0);
		assert_int_equal(len, strlen(rfc4648[i].bin));
		assert_memory_equal(out, rfc4648[i].bin, len);
	}
}

static void
test_b64_uses_full_alphabet(void **state)
{
	static const uint8_t bin[] = { 0x00, 0x10, 0x83, 0x10, 0x51, 0x87,
	    0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff };
	char out[32];
	uint8_t back[16];
	size_t len;

	assert_int_equal(b64_encode(bin, sizeof(bin), out, sizeof(out)), 0);
	assert_string_equal(out, "ABCDEFGH++++////");
	assert_int_equal(decode_str(out, back, sizeof(back), &len), 0);
	assert_int_equal(len, sizeof(bin));
	assert_memory_equal(back, bin, len);
	assert_int_equal(decode_str("abcdwxyz0189", back, sizeof(back), &len),
	    0);
	assert_int_equal(len, 9);
}

static void
test_b64_round_trips_every_byte_and_length(void **state)
{
	uint8_t bin[300], back[300];
	char text[B64_ENCODED_LEN(300) + 1];
	size_t n, i, len;

	for (i = 0; i < sizeof(bin); i++) {
		bin[i] = (uint8_t)(i * 131 + 7);
	}
	for (n = 0; n <= sizeof(bin); n++) {
		assert_int_equal(b64_encode(bin, n, text, sizeof(text)), 0);
		assert_int_equal(strlen(text), B64_ENCODED_LEN(n));
		assert_true(B64_DECODED_MAX(strlen(text)) >= n);
		assert_int_equal(decode_str(text, back, sizeof(back), &len),
		    0);
		assert_int_equal(len, n);
		assert_memory_equal(back, bin, n);
	}
}

static void
test_b64_rejects_whitespace(void **state)
{
	static const char *bad[] = {
		"Zm9v\n", "Zm9v YmFy", " Zm9v", "Zm9v\r\nYmFy", "Zm9\tv",
		"Zm9vYmFy\n", "Zg==\n",
	};
	uint8_t out[16];
	size_t i, len;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(decode_str(bad[i], out, sizeof(out), &len),
		    KMS_EVALIDATION);
	}
}

static void
test_b64_rejects_bad_padding(void **state)
{
	static const char *bad[] = {
		"Zg", "Zg=", "Zm8", "Z", "Zg===", "Z===", "====", "Zg=A",
		"=Zm9", "Zm=9", "Zg==Zm9v", "Zm8=Zm9v", "Zg==Zg==", "Zm9v=",
	};
	uint8_t out[16];
	size_t i, len;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(decode_str(bad[i], out, sizeof(out), &len),
		    KMS_EVALIDATION);
	}
}

static void
test_b64_rejects_non_canonical_trailing_bits(void **state)
{
	static const char *bad[] = { "Zh==", "Zm9=", "Zm/=", "AB==", "AAB=" };
	uint8_t out[16];
	size_t i, len;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(decode_str(bad[i], out, sizeof(out), &len),
		    KMS_EVALIDATION);
	}
	assert_int_equal(decode_str("AA==", out, sizeof(out), &len), 0);
	assert_int_equal(decode_str("AAA=", out, sizeof(out), &len), 0);
}

static void
test_b64_rejects_url_safe_and_foreign_characters(void **state)
{
	static const char *bad[] = { "Zm9-", "Zm9_", "Zm9.", "Zm9\xc3",
	    "Zm9\0" };
	uint8_t out[16];
	size_t i, len;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(b64_decode(bad[i], 4, out, sizeof(out), &len),
		    KMS_EVALIDATION);
	}
}

static void
test_b64_wipes_output_on_failure(void **state)
{
	uint8_t out[16];
	size_t len = 42;

	memset(out, 0xa5, sizeof(out));
	/* Two good quads, then a bad one: nothing of the first may stay. */
	assert_int_equal(decode_str("Zm9vYmFyZm9!", out, sizeof(out), &len),
	    KMS_EVALIDATION);
	assert_int_equal(len, 42);
	assert_memory_equal(out, "\0\0\0\0\0\0\0\0\0", 9);
}

static void
test_b64_decode_rejects_small_buffer(void **state)
{
	uint8_t out[6];
	size_t len;

	assert_int_equal(decode_str("Zm9vYmFy", out, 5, &len), KMS_EINVAL);
	assert_int_equal(decode_str("Zm9vYmFy", out, 6, &len), 0);
	assert_int_equal(decode_str("Zm9vYg==", out, 3, &len), KMS_EINVAL);
	assert_int_equal(decode_str("Zm9vYg==", out, 4, &len), 0);
	assert_int_equal(len, 4);
	assert_int_equal(decode_str("", NULL, 0, &len), 0);
	assert_int_equal(len, 0);
}

static void
test_b64_encode_rejects_small_buffer(void **state)
{
	char out[16];

	assert_int_equal(b64_encode((const uint8_t *)"foo", 3, out, 4),
	    KMS_EINVAL);
	assert_int_equal(b64_encode((const uint8_t *)"foo", 3, out, 5), 0);
	assert_string_equal(out, "Zm9v");
	assert_int_equal(b64_encode((const uint8_t *)"", 0, out, 0),
	    KMS_EINVAL);
	assert_int_equal(b64_encode((const uint8_t *)"", 0, out, 1), 0);
	assert_string_equal(out, "");
	assert_int_equal(b64_encode(NULL, 3, out, sizeof(out)), KMS_EINVAL);
	assert_int_equal(b64_encode((const uint8_t *)"f", SIZE_MAX, out,
	    sizeof(out)), KMS_EINVAL);
}

/* Short and padded inputs never wrap the length (a size_t once did:
 * "=" counted as SIZE_MAX bytes). */
static void
test_b64_decoded_len_never_wraps(void **state)
{
	static const struct {
		const char *in;
		size_t len;
	} cases[] = {
		{ "", 0 }, { "=", 0 }, { "==", 0 }, { "===", 0 }, { "A=", 0 },
		{ "AB=", 0 }, { "=A", 0 }, { "====", 1 }, { "A===", 1 },
		{ "AB==", 1 }, { "ABC=", 2 }, { "ABCD", 3 }, { "Zm9vYg==", 4 },
		{ "Zm9vYmE=", 5 }, { "Zm9vYmFy", 6 }, { "Zm9vY", 3 },
	};
	uint8_t out[16];
	size_t i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = b64_decoded_len(cases[i].in, strlen(cases[i].in));
		assert_int_equal(n, cases[i].len);
		assert_true(n <= B64_DECODED_MAX(strlen(cases[i].in)));
		/* And the decoder refuses the short and ill-padded ones. */
		if (strchr(cases[i].in, '=') != NULL &&
		    strncmp(cases[i].in, "Zm9v", 4) != 0) {
			assert_int_equal(decode_str(cases[i].in, out,
			    sizeof(out), &n), KMS_EVALIDATION);
		}
	}
	assert_int_equal(b64_decoded_len(NULL, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_encodes_rfc4648_vectors),
		cmocka_unit_test(test_b64_decodes_rfc4648_vectors),
		cmocka_unit_test(test_b64_uses_full_alphabet),
		cmocka_unit_test(test_b64_round_trips_every_byte_and_length),
		cmocka_unit_test(test_b64_rejects_whitespace),
		cmocka_unit_test(test_b64_rejects_bad_padding),
		cmocka_unit_test(test_b64_rejects_non_canonical_trailing_bits),
		cmocka_unit_test(
		    test_b64_rejects_url_safe_and_foreign_characters),
		cmocka_unit_test(test_b64_wipes_output_on_failure),
		cmocka_unit_test(test_b64_decode_rejects_small_buffer),
		cmocka_unit_test(test_b64_encode_rejects_small_buffer),
		cmocka_unit_test(test_b64_decoded_len_never_wraps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

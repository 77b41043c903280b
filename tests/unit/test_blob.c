/*
 * test_blob.c — ciphertext blob format 1 and UUID text (common/blob.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "common/blob.h"
#include "common/ctx.h"
#include "common/err.h"
#include "tests/vector.h"

#define VEC "blob_v1.txt"

static const uint8_t test_id[16] = {
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};

/* A well-formed blob with ctlen ciphertext bytes; returns its length. */
static size_t
make_blob(uint8_t *buf, size_t ctlen, uint32_t version)
{
	size_t i, len = BLOB_OVERHEAD + ctlen;

	blob_write_header(buf, test_id, version);
	for (i = BLOB_HEADER_LEN; i < len; i++) {
		buf[i] = (uint8_t)(i * 7);
	}
	return len;
}

static void
test_blob_round_trips_header_and_fields(void **state)
{
	uint8_t buf[BLOB_OVERHEAD + 40];
	struct blob_view b;
	size_t len = make_blob(buf, 40, 7);

	assert_int_equal(blob_parse(buf, len, &b), 0);
	assert_ptr_equal(b.header, buf);
	assert_memory_equal(b.key_id, test_id, 16);
	assert_int_equal(b.version, 7);
	assert_ptr_equal(b.iv, buf + BLOB_HEADER_LEN);
	assert_ptr_equal(b.ct, buf + BLOB_HEADER_LEN + BLOB_IV_LEN);
	assert_int_equal(b.ct_len, 40);
	assert_ptr_equal(b.tag, buf + len - BLOB_TAG_LEN);
	assert_ptr_equal(b.ct + b.ct_len, b.tag);
}

static void
test_blob_header_is_big_endian(void **state)
{
	uint8_t hdr[BLOB_HEADER_LEN];

	blob_write_header(hdr, test_id, 0x01020304);
	assert_int_equal(hdr[0], BLOB_FORMAT_1);
	assert_memory_equal(hdr + 1, test_id, 16);
	assert_int_equal(hdr[17], 0x01);
	assert_int_equal(hdr[18], 0x02);
	assert_int_equal(hdr[19], 0x03);
	assert_int_equal(hdr[20], 0x04);
}

static void
test_blob_accepts_highest_version(void **state)
{
	uint8_t buf[BLOB_OVERHEAD + 1];
	struct blob_view b;
	size_t len = make_blob(buf, 1, UINT32_MAX);

	assert_int_equal(blob_parse(buf, len, &b), 0);
	assert_int_equal(b.version, UINT32_MAX);
	assert_int_equal(b.ct_len, 1);
}

/* The vector fixes layout, AAD construction and the GCM parameters. */
static void
test_blob_matches_known_answer_vector(void **state)
{
	uint8_t blob[256], hdr[64], iv[16], key[32], ct[64], tag[16], pt[64];
	uint8_t canon[256], aad[BLOB_HEADER_LEN + 256], out[64], id[16];
	char idtext[64], vertext[32], ctxjson[256], msg[128];
	long bloblen, hdrlen, ctlen, ptlen, canonlen;
	size_t clen;
	struct blob_view b;
	json_error_t jerr;
	json_t *ctx;
	EVP_CIPHER_CTX *e;
	int n, fin;

	assert_int_equal(vec_get(VEC, "key_id", idtext, sizeof(idtext)), 0);
	assert_int_equal(vec_get(VEC, "version", vertext, sizeof(vertext)), 0);
	assert_int_equal(vec_get(VEC, "context", ctxjson, sizeof(ctxjson)), 0);
	bloblen = vec_get_hex(VEC, "blob", blob, sizeof(blob));
	hdrlen = vec_get_hex(VEC, "header", hdr, sizeof(hdr));
	ctlen = vec_get_hex(VEC, "ciphertext", ct, sizeof(ct));
	ptlen = vec_get_hex(VEC, "plaintext", pt, sizeof(pt));
	canonlen = vec_get_hex(VEC, "canonical_context", canon, sizeof(canon));
	assert_int_equal(vec_get_hex(VEC, "iv", iv, sizeof(iv)), BLOB_IV_LEN);
	assert_int_equal(vec_get_hex(VEC, "aes_key", key, sizeof(key)), 32);
	assert_int_equal(vec_get_hex(VEC, "tag", tag, sizeof(tag)),
	    BLOB_TAG_LEN);
	assert_int_equal(hdrlen, BLOB_HEADER_LEN);
	assert_true(bloblen > 0 && ctlen > 0 && ptlen == ctlen &&
	    canonlen > 0);

	/* Header from the fields. */
	assert_int_equal(blob_uuid_parse(idtext, strlen(idtext), id), 0);
	blob_write_header(out, id, (uint32_t)strtoul(vertext, NULL, 10));
	assert_memory_equal(out, hdr, BLOB_HEADER_LEN);

	/* Parsed view of the whole blob. */
	assert_int_equal(blob_parse(blob, (size_t)bloblen, &b), 0);
	assert_memory_equal(b.header, hdr, BLOB_HEADER_LEN);
	assert_memory_equal(b.key_id, id, 16);
	assert_int_equal(b.version, 16909060);
	assert_memory_equal(b.iv, iv, BLOB_IV_LEN);
	assert_int_equal(b.ct_len, (size_t)ctlen);
	assert_memory_equal(b.ct, ct, (size_t)ctlen);
	assert_memory_equal(b.tag, tag, BLOB_TAG_LEN);

	/* AAD = header ‖ canonical context. */
	ctx = json_loads(ctxjson, JSON_REJECT_DUPLICATES, &jerr);
	assert_non_null(ctx);
	assert_int_equal(ctx_canonical_json(ctx, canon, sizeof(canon), &clen,
	    msg, sizeof(msg)), 0);
	json_decref(ctx);
	assert_int_equal(clen, (size_t)canonlen);
	memcpy(aad, b.header, BLOB_HEADER_LEN);
	memcpy(aad + BLOB_HEADER_LEN, canon, clen);

	/* AES-256-GCM open with OpenSSL gives the plaintext. */
	assert_non_null(e = EVP_CIPHER_CTX_new());
	assert_int_equal(EVP_DecryptInit_ex(e, EVP_aes_256_gcm(), NULL, NULL,
	    NULL), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(e, EVP_CTRL_GCM_SET_IVLEN,
	    BLOB_IV_LEN, NULL), 1);
	assert_int_equal(EVP_DecryptInit_ex(e, NULL, NULL, key, b.iv), 1);
	assert_int_equal(EVP_DecryptUpdate(e, NULL, &n, aad,
	    (int)(BLOB_HEADER_LEN + clen)), 1);
	assert_int_equal(EVP_DecryptUpdate(e, out, &n, b.ct, (int)b.ct_len),
	    1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(e, EVP_CTRL_GCM_SET_TAG,
	    BLOB_TAG_LEN, (void *)b.tag), 1);
	fin = EVP_DecryptFinal_ex(e, out + n, &n);
	EVP_CIPHER_CTX_free(e);
	assert_int_equal(fin, 1);
	assert_memory_equal(out, pt, (size_t)ptlen);
}

static void
test_blob_rejects_every_prefix(void **state)
{
	uint8_t buf[BLOB_OVERHEAD + 5];
	struct blob_view b;
	size_t len = make_blob(buf, 5, 3), i;
	uint8_t *copy;

	for (i = 0; i <= BLOB_OVERHEAD; i++) {
		/* Exactly-sized heap copy: ASan catches any over-read. */
		copy = malloc(i > 0 ? i : 1);
		assert_non_null(copy);
		memcpy(copy, buf, i);
		assert_int_equal(blob_parse(copy, i, &b),
		    KMS_EINVALIDCIPHERTEXT);
		free(copy);
	}
	for (; i <= len; i++) {
		copy = malloc(i);
		assert_non_null(copy);
		memcpy(copy, buf, i);
		assert_int_equal(blob_parse(copy, i, &b), 0);
		assert_int_equal(b.ct_len, i - BLOB_OVERHEAD);
		free(copy);
	}
	assert_int_equal(blob_parse(NULL, 0, &b), KMS_EINVALIDCIPHERTEXT);
}

static void
test_blob_rejects_empty_ciphertext(void **state)
{
	uint8_t buf[BLOB_OVERHEAD];
	struct blob_view b;

	make_blob(buf, 0, 1);
	assert_int_equal(blob_parse(buf, BLOB_OVERHEAD, &b),
	    KMS_EINVALIDCIPHERTEXT);
}

static void
test_blob_rejects_wrong_format_byte(void **state)
{
	static const uint8_t formats[] = { 0x00, 0x02, 0x10, 0x80, 0xff };
	uint8_t buf[BLOB_OVERHEAD + 8];
	struct blob_view b;
	size_t len = make_blob(buf, 8, 1), i;

	for (i = 0; i < sizeof(formats); i++) {
		buf[0] = formats[i];
		assert_int_equal(blob_parse(buf, len, &b),
		    KMS_EINVALIDCIPHERTEXT);
	}
}

static void
test_blob_rejects_version_zero(void **state)
{
	uint8_t buf[BLOB_OVERHEAD + 8];
	struct blob_view b;
	size_t len = make_blob(buf, 8, 0);

	assert_int_equal(blob_parse(buf, len, &b), KMS_EINVALIDCIPHERTEXT);
}

static void
test_blob_leaves_output_untouched_on_failure(void **state)
{
	uint8_t buf[BLOB_OVERHEAD + 8];
	struct blob_view b, before;
	size_t len = make_blob(buf, 8, 0);

	memset(&b, 0xa5, sizeof(b));
	before = b;
	assert_int_equal(blob_parse(buf, len, &b), KMS_EINVALIDCIPHERTEXT);
	assert_memory_equal(&b, &before, sizeof(b));
}

static void
test_uuid_parses_lower_and_upper_case(void **state)
{
	static const char *lower = "00112233-4455-6677-8899-aabbccddeeff";
	static const char *upper = "00112233-4455-6677-8899-AABBCCDDEEFF";
	static const char *mixed = "00112233-4455-6677-8899-aAbBcCdDeEfF";
	uint8_t id[16];

	assert_int_equal(blob_uuid_parse(lower, strlen(lower), id), 0);
	assert_memory_equal(id, test_id, 16);
	memset(id, 0, sizeof(id));
	assert_int_equal(blob_uuid_parse(upper, strlen(upper), id), 0);
	assert_memory_equal(id, test_id, 16);
	memset(id, 0, sizeof(id));
	assert_int_equal(blob_uuid_parse(mixed, strlen(mixed), id), 0);
	assert_memory_equal(id, test_id, 16);
}

static void
test_uuid_formats_canonical_lower_case(void **state)
{
	char s[UUID_STR_LEN + 1];
	uint8_t id[16];

	memset(s, 'x', sizeof(s));
	blob_uuid_format(test_id, s);
	assert_string_equal(s, "00112233-4455-6677-8899-aabbccddeeff");
	assert_int_equal(blob_uuid_parse(s, strlen(s), id), 0);
	assert_memory_equal(id, test_id, 16);
}

static void
test_uuid_rejects_bad_characters(void **state)
{
	static const char *bad[] = {
		"0011223g-4455-6677-8899-aabbccddeeff",
		"00112233-4455-6677-8899-aabbccddeefG",
		"00112233-4455-6677-8899-aabbccddee f",
		"00112233-4455-6677-8899-aabbccddee\xc3\xa9",
		"+0112233-4455-6677-8899-aabbccddeeff",
		"00112233-4455-6677-8899-aabbccddee-f",
	};
	uint8_t id[16];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(blob_uuid_parse(bad[i], strlen(bad[i]), id),
		    KMS_EVALIDATION);
	}
	/* An embedded NUL inside the 36 bytes. */
	assert_int_equal(blob_uuid_parse("00112233-4455-6677-8899-aabbccdd\0eff",
	    36, id), KMS_EVALIDATION);
}

static void
test_uuid_rejects_wrong_dashes_and_lengths(void **state)
{
	static const char *bad[] = {
		"001122334-455-6677-8899-aabbccddeeff",
		"00112233-44556-677-8899-aabbccddeeff",
		"00112233_4455_6677_8899_aabbccddeeff",
		"00112233-4455-6677-8899aabbccddeeff0",
		"00112233445566778899aabbccddeeff",
		"{00112233-4455-6677-8899-aabbccddeeff}",
		"00112233-4455-6677-8899-aabbccddeef",
		"00112233-4455-6677-8899-aabbccddeeff0",
		"",
	};
	uint8_t id[16];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(blob_uuid_parse(bad[i], strlen(bad[i]), id),
		    KMS_EVALIDATION);
	}
	assert_int_equal(blob_uuid_parse(NULL, 36, id), KMS_EVALIDATION);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blob_round_trips_header_and_fields),
		cmocka_unit_test(test_blob_header_is_big_endian),
		cmocka_unit_test(test_blob_accepts_highest_version),
		cmocka_unit_test(test_blob_matches_known_answer_vector),
		cmocka_unit_test(test_blob_rejects_every_prefix),
		cmocka_unit_test(test_blob_rejects_empty_ciphertext),
		cmocka_unit_test(test_blob_rejects_wrong_format_byte),
		cmocka_unit_test(test_blob_rejects_version_zero),
		cmocka_unit_test(test_blob_leaves_output_untouched_on_failure),
		cmocka_unit_test(test_uuid_parses_lower_and_upper_case),
		cmocka_unit_test(test_uuid_formats_canonical_lower_case),
		cmocka_unit_test(test_uuid_rejects_bad_characters),
		cmocka_unit_test(test_uuid_rejects_wrong_dashes_and_lengths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

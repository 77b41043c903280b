/*
 * blob.c — ciphertext blob format 1 (docs/design.md §4) and UUID text.
 *
 * blob_parse only checks structure; whether the key, version and tag are
 * genuine is for the GCM open that follows, and every failure there and
 * here is the same InvalidCiphertextException.
 */
#include <stdint.h>
#include <string.h>

#include "common/be.h"
#include "common/blob.h"
#include "common/err.h"
#include "common/hex.h"

/* Field offsets, as in the table of docs/design.md §4. */
#define BLOB_OFF_FORMAT 0
#define BLOB_OFF_KEY_ID 1
#define BLOB_OFF_VERSION 17
#define BLOB_OFF_IV 21
#define BLOB_OFF_CT 33

int
blob_parse(const uint8_t *buf, size_t len, struct blob_view *out)
{
	struct blob_view b;

	if (out == NULL) {
		return KMS_EINVAL;
	}
	/* At least one ciphertext byte: every KMS plaintext is ≥ 1 byte. */
	if (buf == NULL || len < BLOB_OVERHEAD + 1) {
		return KMS_EINVALIDCIPHERTEXT;
	}
	if (buf[BLOB_OFF_FORMAT] != BLOB_FORMAT_1) {
		return KMS_EINVALIDCIPHERTEXT;
	}
	memset(&b, 0, sizeof(b));
	b.header = buf;
	memcpy(b.key_id, buf + BLOB_OFF_KEY_ID, BLOB_KEY_ID_LEN);
	b.version = get_u32_be(buf + BLOB_OFF_VERSION);
	if (b.version == 0) {
		/* Versions count from 1. */
		return KMS_EINVALIDCIPHERTEXT;
	}
	b.iv = buf + BLOB_OFF_IV;
	b.ct = buf + BLOB_OFF_CT;
	b.ct_len = len - BLOB_OVERHEAD;
	b.tag = buf + len - BLOB_TAG_LEN;
	*out = b;
	return 0;
}

void
blob_write_header(uint8_t *out, const uint8_t key_id[BLOB_KEY_ID_LEN],
    uint32_t version)
{
	KMS_ASSERT(out != NULL && key_id != NULL);
	out[BLOB_OFF_FORMAT] = BLOB_FORMAT_1;
	memcpy(out + BLOB_OFF_KEY_ID, key_id, BLOB_KEY_ID_LEN);
	put_u32_be(out + BLOB_OFF_VERSION, version);
}

static int
is_dash_position(size_t i)
{
	return i == 8 || i == 13 || i == 18 || i == 23;
}

/*
 * Accepts exactly the 8-4-4-4-12 form; hex digits in either case, since
 * users paste ids from tools that print them upper-case.
 */
int
blob_uuid_parse(const char *s, size_t len, uint8_t out[16])
{
	uint8_t id[16];
	size_t i, n = 0;
	int hi = -1, v;

	if (s == NULL || out == NULL || len != UUID_STR_LEN) {
		return KMS_EVALIDATION;
	}
	for (i = 0; i < UUID_STR_LEN; i++) {
		if (is_dash_position(i)) {
			if (s[i] != '-') {
				return KMS_EVALIDATION;
			}
			continue;
		}
		if ((v = hex_value(s[i])) < 0) {
			return KMS_EVALIDATION;
		}
		if (hi < 0) {
			hi = v;
		} else {
			id[n++] = (uint8_t)((hi << 4) | v);
			hi = -1;
		}
	}
	KMS_ASSERT(n == sizeof(id) && hi < 0);
	memcpy(out, id, sizeof(id));
	return 0;
}

void
blob_uuid_format(const uint8_t id[16], char out[UUID_STR_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	KMS_ASSERT(id != NULL && out != NULL);
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10) {
			out[o++] = '-';
		}
		out[o++] = hex[id[i] >> 4];
		out[o++] = hex[id[i] & 0x0f];
	}
	out[o] = '\0';
}

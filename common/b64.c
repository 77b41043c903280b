/*
 * b64.c — strict standard base64 (RFC 4648 §4, padded).
 *
 * Plaintexts and data keys travel base64-encoded, so the character mapping
 * is branch-free and table-free (no secret-dependent memory access), as in
 * libsodium.  Decoding accepts exactly one spelling of each byte string: the
 * length is a multiple of 4, padding appears only at the end, and the bits
 * the padding leaves over must be zero (RFC 4648 §3.5).
 */
#include <stdint.h>
#include <string.h>

#include "common/b64.h"
#include "common/err.h"
#include "common/secmem.h"

/* Masks: 0xff when the relation holds, 0 otherwise, without branches. */
#define MASK_EQ(x, y) \
	((((0U - ((unsigned int)(x) ^ (unsigned int)(y))) >> 8) & 0xff) ^ 0xff)
#define MASK_GT(x, y) ((((unsigned int)(y) - (unsigned int)(x)) >> 8) & 0xff)
#define MASK_GE(x, y) (MASK_GT(y, x) ^ 0xff)
#define MASK_LT(x, y) MASK_GT(y, x)
#define MASK_LE(x, y) MASK_GE(y, x)

static const char pad_char = '=';

static unsigned int
sextet_to_char(unsigned int x)
{
	return (MASK_LT(x, 26) & (x + 'A')) |
	    (MASK_GE(x, 26) & MASK_LT(x, 52) & (x + ('a' - 26))) |
	    (MASK_GE(x, 52) & MASK_LT(x, 62) & (x + ('0' - 52))) |
	    (MASK_EQ(x, 62) & '+') | (MASK_EQ(x, 63) & '/');
}

/* The sextet, or 0xff when c is not in the alphabet. */
static unsigned int
char_to_sextet(unsigned int c)
{
	unsigned int x;

	x = (MASK_GE(c, 'A') & MASK_LE(c, 'Z') & (c - 'A')) |
	    (MASK_GE(c, 'a') & MASK_LE(c, 'z') & (c - ('a' - 26))) |
	    (MASK_GE(c, '0') & MASK_LE(c, '9') & (c - ('0' - 52))) |
	    (MASK_EQ(c, '+') & 62) | (MASK_EQ(c, '/') & 63);
	/* x == 0 is 'A' or an invalid character. */
	return x | (MASK_EQ(x, 0) & (MASK_EQ(c, 'A') ^ 0xff));
}

int
b64_encode(const uint8_t *in, size_t len, char *out, size_t outsz)
{
	size_t i, o = 0;
	unsigned int v;

	if (out == NULL || (in == NULL && len != 0)) {
		return KMS_EINVAL;
	}
	/* B64_ENCODED_LEN must not overflow. */
	if (len > (SIZE_MAX - 3) / 4 * 3) {
		return KMS_EINVAL;
	}
	if (outsz < B64_ENCODED_LEN(len) + 1) {
		return KMS_EINVAL;
	}
	for (i = 0; len - i >= 3; i += 3) {
		v = ((unsigned int)in[i] << 16) |
		    ((unsigned int)in[i + 1] << 8) | in[i + 2];
		out[o++] = (char)sextet_to_char((v >> 18) & 63);
		out[o++] = (char)sextet_to_char((v >> 12) & 63);
		out[o++] = (char)sextet_to_char((v >> 6) & 63);
		out[o++] = (char)sextet_to_char(v & 63);
	}
	if (len - i == 1) {
		v = (unsigned int)in[i] << 16;
		out[o++] = (char)sextet_to_char((v >> 18) & 63);
		out[o++] = (char)sextet_to_char((v >> 12) & 63);
		out[o++] = pad_char;
		out[o++] = pad_char;
	} else if (len - i == 2) {
		v = ((unsigned int)in[i] << 16) |
		    ((unsigned int)in[i + 1] << 8);
		out[o++] = (char)sextet_to_char((v >> 18) & 63);
		out[o++] = (char)sextet_to_char((v >> 12) & 63);
		out[o++] = (char)sextet_to_char((v >> 6) & 63);
		out[o++] = pad_char;
	}
	out[o] = '\0';
	return 0;
}

size_t
b64_decoded_len(const char *in, size_t inlen)
{
	size_t n = B64_DECODED_MAX(inlen), npad = 0;

	if (in == NULL || inlen < 4 || inlen % 4 != 0) {
		return n;
	}
	if (in[inlen - 1] == pad_char) {
		npad = in[inlen - 2] == pad_char ? 2 : 1;
	}
	return n - npad;	/* n >= 3 > npad */
}

int
b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outsz,
    size_t *outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t npad = 0, nchars, need, i, o = 0;
	unsigned int bad = 0, v, q[4];
	int k;

	if (outlen == NULL || (in == NULL && inlen != 0) ||
	    (out == NULL && outsz != 0)) {
		return KMS_EINVAL;
	}
	if (inlen % 4 != 0) {
		return KMS_EVALIDATION;
	}
	/* inlen is 0 or at least 4 here, so neither subtraction wraps. */
	if (inlen >= 4 && s[inlen - 1] == pad_char) {
		npad = (s[inlen - 2] == pad_char) ? 2 : 1;
	}
	nchars = inlen - npad;
	need = inlen / 4 * 3 - npad;
	if (need > outsz) {
		return KMS_EINVAL;
	}
	/* Whole quads; a '=' here is invalid like any other stray byte. */
	for (i = 0; i + 4 <= nchars; i += 4) {
		for (k = 0; k < 4; k++) {
			q[k] = char_to_sextet(s[i + k]);
			bad |= q[k] >> 7;
		}
		v = (q[0] << 18) | (q[1] << 12) | (q[2] << 6) | q[3];
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	/* The padded last quad: 2 or 3 characters carry 1 or 2 bytes. */
	if (npad > 0) {
		for (k = 0; k < 4 - (int)npad; k++) {
			q[k] = char_to_sextet(s[i + k]);
			bad |= q[k] >> 7;
		}
		if (npad == 2) {
			bad |= (q[1] & 0x0f) != 0;	/* non-canonical */
			out[o++] = (uint8_t)((q[0] << 2) | (q[1] >> 4));
		} else {
			bad |= (q[2] & 0x03) != 0;	/* non-canonical */
			out[o++] = (uint8_t)((q[0] << 2) | (q[1] >> 4));
			out[o++] = (uint8_t)((q[1] << 4) | (q[2] >> 2));
		}
	}
	if (bad) {
		/* The output may hold part of a secret: leave nothing. */
		secure_wipe(out, o);
		return KMS_EVALIDATION;
	}
	*outlen = o;
	return 0;
}

/*
 * envelope_header.c — the message header, version 2.0, byte for byte as
 * the AWS Encryption SDK's specification (data-format/message-header.md):
 *
 *   u8 version (02) ‖ u16 suite ‖ 32 message id ‖ u16 AAD length ‖ AAD
 *   (the serialized encryption context, absent when empty) ‖ u16 EDK count
 *   ‖ EDKs (u16 len + provider id, u16 len + provider info, u16 len +
 *   ciphertext) ‖ u8 content type ‖ u32 frame length ‖ 32 commit key ‖
 *   16 header authentication tag.
 *
 * The parser is a bounded reader: every length is checked against what
 * remains before it is used, and a short input is "need more", never a
 * guess, so a streaming reader can feed it as bytes arrive.
 */
#include <stdlib.h>
#include <string.h>

#include "common/be.h"
#include "common/ctx.h"
#include "common/err.h"
#include "libkmsclient/client.h"
#include "libkmsclient/envelope.h"

int
env_suite_known(uint16_t suite)
{
	return suite == KMS_ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY ||
	    suite == KMS_ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384;
}

int
env_suite_signed(uint16_t suite)
{
	return suite == KMS_ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384;
}

static void
put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t
get_u16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

int
env_context_serialize(const kms_context_pair *pairs, size_t n,
    uint8_t **outp, size_t *lenp, kms_error_info *ei)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char msg[KMS_ERROR_MESSAGE_MAX];
	int r;

	if (n == 0) {
		*outp = NULL;
		*lenp = 0;
		return 0;
	}
	/* The canonical form of common/ctx.c is this serialization: u16
	 * count, pairs sorted by key bytes, u16-prefixed, duplicates and bad
	 * UTF-8 refused. */
	if ((buf = malloc(CTX_MAX_CANONICAL)) == NULL) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	if ((r = ctx_canonical_pairs(pairs, n, buf, CTX_MAX_CANONICAL, &len,
	    msg, sizeof(msg))) != 0) {
		free(buf);
		return client_fail(ei, r, "Encryption context: %s", msg);
	}
	*outp = buf;
	*lenp = len;
	return 0;
}

void
env_edk_clear(struct env_edk *e)
{
	if (e == NULL) {
		return;
	}
	free(e->provider_id);
	free(e->info);
	free(e->blob);
	memset(e, 0, sizeof(*e));
}

void
env_header_clear(struct env_header *h)
{
	size_t i;

	if (h == NULL) {
		return;
	}
	for (i = 0; i < h->npairs; i++) {
		free((char *)h->pairs[i].key);
		free((char *)h->pairs[i].value);
	}
	free(h->pairs);
	for (i = 0; i < h->nedks; i++) {
		env_edk_clear(&h->edks[i]);
	}
	free(h->edks);
	free(h->body);
	memset(h, 0, sizeof(*h));
}

const char *
env_header_get(const struct env_header *h, const char *key)
{
	size_t i;

	for (i = 0; i < h->npairs; i++) {
		if (strcmp(h->pairs[i].key, key) == 0) {
			return h->pairs[i].value;
		}
	}
	return NULL;
}

int
env_header_write_body(struct env_header *h, kms_error_info *ei)
{
	uint8_t *ctx = NULL, *b = NULL, *p;
	size_t ctxlen = 0, len, i;
	int r;

	if ((r = env_context_serialize(h->pairs, h->npairs, &ctx, &ctxlen,
	    ei)) != 0) {
		return r;
	}
	len = 1 + 2 + ENV_MESSAGE_ID_LEN + 2 + ctxlen + 2 + 1 + 4 +
	    ENV_COMMIT_LEN;
	for (i = 0; i < h->nedks; i++) {
		const struct env_edk *e = &h->edks[i];
		if (strlen(e->provider_id) > UINT16_MAX ||
		    e->info_len > UINT16_MAX || e->blob_len > UINT16_MAX) {
			r = client_fail(ei, KMS_EVALIDATION, "An encrypted "
			    "data key field exceeds 65535 bytes");
			goto out;
		}
		len += 6 + strlen(e->provider_id) + e->info_len + e->blob_len;
	}
	if (h->nedks == 0 || h->nedks > UINT16_MAX) {
		r = client_fail(ei, KMS_EINVAL, "A message needs 1 to 65535 "
		    "encrypted data keys");
		goto out;
	}
	if ((b = malloc(len)) == NULL) {
		r = client_fail(ei, KMS_ENOMEM, "Out of memory");
		goto out;
	}
	p = b;
	*p++ = ENV_VERSION;
	put_u16(p, h->suite);
	p += 2;
	memcpy(p, h->message_id, ENV_MESSAGE_ID_LEN);
	p += ENV_MESSAGE_ID_LEN;
	put_u16(p, (uint16_t)ctxlen);
	p += 2;
	if (ctxlen > 0) {
		memcpy(p, ctx, ctxlen);
		p += ctxlen;
	}
	put_u16(p, (uint16_t)h->nedks);
	p += 2;
	for (i = 0; i < h->nedks; i++) {
		const struct env_edk *e = &h->edks[i];
		size_t pl = strlen(e->provider_id);
		put_u16(p, (uint16_t)pl);
		memcpy(p + 2, e->provider_id, pl);
		p += 2 + pl;
		put_u16(p, (uint16_t)e->info_len);
		memcpy(p + 2, e->info, e->info_len);
		p += 2 + e->info_len;
		put_u16(p, (uint16_t)e->blob_len);
		memcpy(p + 2, e->blob, e->blob_len);
		p += 2 + e->blob_len;
	}
	*p++ = h->content_type;
	put_u32_be(p, h->frame_len);
	p += 4;
	memcpy(p, h->commitment, ENV_COMMIT_LEN);
	p += ENV_COMMIT_LEN;
	KMS_ASSERT((size_t)(p - b) == len);
	free(h->body);
	h->body = b;
	h->body_len = len;
	b = NULL;
	r = 0;
 out:
	free(ctx);
	free(b);
	return r;
}

/* ------------------------------------------------------------ parsing */

struct rd {
	const uint8_t *p;
	size_t left;
};

/* 0, or ENV_NEED_MORE when fewer than n bytes remain. */
static int
take(struct rd *r, size_t n, const uint8_t **out)
{
	if (r->left < n) {
		return ENV_NEED_MORE;
	}
	*out = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

static int
take_u16(struct rd *r, uint16_t *v)
{
	const uint8_t *p;
	int e;

	if ((e = take(r, 2, &p)) != 0) {
		return e;
	}
	*v = get_u16(p);
	return 0;
}

static int
bad(kms_error_info *ei, const char *what)
{
	return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Message header: %s",
	    what);
}

static char *
dup_str(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s != NULL) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* The AAD field's serialized context (len bytes at p, len > 0). */
static int
parse_context(const uint8_t *p, size_t len, struct env_header *h,
    kms_error_info *ei)
{
	struct rd r = { p, len };
	const uint8_t *k, *v;
	uint16_t n, kl, vl;
	size_t i, j;

	if (take_u16(&r, &n) != 0 || n == 0) {
		return bad(ei, "the encryption context has no pairs");
	}
	if (n > ENV_MAX_PAIRS) {
		return bad(ei, "the encryption context has too many pairs");
	}
	if ((h->pairs = calloc(n, sizeof(*h->pairs))) == NULL) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	for (i = 0; i < n; i++) {
		if (take_u16(&r, &kl) != 0 || take(&r, kl, &k) != 0 ||
		    take_u16(&r, &vl) != 0 || take(&r, vl, &v) != 0) {
			return bad(ei, "the encryption context is truncated");
		}
		if (kl == 0 || !ctx_utf8_valid((const char *)k, kl) ||
		    !ctx_utf8_valid((const char *)v, vl) ||
		    memchr(k, 0, kl) != NULL || memchr(v, 0, vl) != NULL) {
			return bad(ei, "an encryption context pair is not "
			    "UTF-8 text");
		}
		h->pairs[i].key = dup_str(k, kl);
		h->pairs[i].value = dup_str(v, vl);
		h->npairs = i + 1;
		if (h->pairs[i].key == NULL || h->pairs[i].value == NULL) {
			return client_fail(ei, KMS_ENOMEM, "Out of memory");
		}
		for (j = 0; j < i; j++) {
			if (strcmp(h->pairs[j].key, h->pairs[i].key) == 0) {
				return bad(ei, "the encryption context has a "
				    "duplicate key");
			}
		}
	}
	if (r.left != 0) {
		return bad(ei, "bytes follow the encryption context");
	}
	return 0;
}

int
env_header_parse(const uint8_t *buf, size_t len, struct env_header *hp,
    size_t *used, kms_error_info *ei)
{
	struct env_header h;
	struct rd r = { buf, len };
	const uint8_t *p, *ctx;
	uint16_t ctxlen, nedk, l;
	size_t i, body_len;
	int e;

	memset(&h, 0, sizeof(h));
	/* The fixed part first, so a message of another kind is named as
	 * soon as its first bytes arrive. */
	if ((e = take(&r, 1, &p)) != 0) {
		goto out;
	}
	if (p[0] == 0x01) {
		e = bad(ei, "format version 1.0 has no key commitment; only "
		    "committing messages (version 2.0) are accepted");
		goto out;
	}
	if (p[0] != ENV_VERSION) {
		e = bad(ei, "not an AWS Encryption SDK message (unknown "
		    "version)");
		goto out;
	}
	if ((e = take_u16(&r, &h.suite)) != 0) {
		goto out;
	}
	if (!env_suite_known(h.suite)) {
		e = client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Message header: "
		    "algorithm suite 0x%04x is not accepted (only the "
		    "committing suites 0x0478 and 0x0578)", h.suite);
		goto out;
	}
	if ((e = take(&r, ENV_MESSAGE_ID_LEN, &p)) != 0) {
		goto out;
	}
	memcpy(h.message_id, p, ENV_MESSAGE_ID_LEN);
	if ((e = take_u16(&r, &ctxlen)) != 0 ||
	    (e = take(&r, ctxlen, &ctx)) != 0 ||
	    (e = take_u16(&r, &nedk)) != 0) {
		goto out;
	}
	if (nedk == 0) {
		e = bad(ei, "no encrypted data keys");
		goto out;
	}
	if (nedk > ENV_MAX_EDKS) {
		e = bad(ei, "too many encrypted data keys");
		goto out;
	}
	/* The EDK fields are walked once to learn their size, so that a
	 * short buffer allocates nothing. */
	{
		struct rd probe = r;
		for (i = 0; i < nedk; i++) {
			int k;
			for (k = 0; k < 3; k++) {
				if ((e = take_u16(&probe, &l)) != 0 ||
				    (e = take(&probe, l, &p)) != 0) {
					goto out;
				}
			}
		}
		if (probe.left < 1 + 4 + ENV_COMMIT_LEN + ENV_TAG_LEN) {
			e = ENV_NEED_MORE;
			goto out;
		}
	}
	if (ctxlen > 0 && (e = parse_context(ctx, ctxlen, &h, ei)) != 0) {
		goto out;
	}
	if ((h.edks = calloc(nedk, sizeof(*h.edks))) == NULL) {
		e = client_fail(ei, KMS_ENOMEM, "Out of memory");
		goto out;
	}
	for (i = 0; i < nedk; i++) {
		struct env_edk *d = &h.edks[i];
		h.nedks = i + 1;
		(void)take_u16(&r, &l);
		(void)take(&r, l, &p);
		if ((d->provider_id = dup_str(p, l)) == NULL) {
			e = client_fail(ei, KMS_ENOMEM, "Out of memory");
			goto out;
		}
		(void)take_u16(&r, &l);
		(void)take(&r, l, &p);
		d->info_len = l;
		if ((d->info = malloc(l + 1)) == NULL) {
			e = client_fail(ei, KMS_ENOMEM, "Out of memory");
			goto out;
		}
		memcpy(d->info, p, l);
		(void)take_u16(&r, &l);
		(void)take(&r, l, &p);
		d->blob_len = l;
		if ((d->blob = malloc(l + 1)) == NULL) {
			e = client_fail(ei, KMS_ENOMEM, "Out of memory");
			goto out;
		}
		memcpy(d->blob, p, l);
	}
	(void)take(&r, 1, &p);
	h.content_type = p[0];
	if (h.content_type == ENV_CONTENT_NONFRAMED) {
		e = bad(ei, "non-framed content is not supported (kmsd and the "
		    "current SDKs write framed content)");
		goto out;
	}
	if (h.content_type != ENV_CONTENT_FRAMED) {
		e = bad(ei, "unknown content type");
		goto out;
	}
	(void)take(&r, 4, &p);
	h.frame_len = get_u32_be(p);
	if (h.frame_len == 0 || h.frame_len > KMS_FRAME_LENGTH_MAX) {
		e = client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Message header: "
		    "frame length %u is outside 1..%u", h.frame_len,
		    KMS_FRAME_LENGTH_MAX);
		goto out;
	}
	(void)take(&r, ENV_COMMIT_LEN, &p);
	memcpy(h.commitment, p, ENV_COMMIT_LEN);
	body_len = len - r.left;
	(void)take(&r, ENV_TAG_LEN, &p);
	memcpy(h.tag, p, ENV_TAG_LEN);
	if ((h.body = malloc(body_len)) == NULL) {
		e = client_fail(ei, KMS_ENOMEM, "Out of memory");
		goto out;
	}
	memcpy(h.body, buf, body_len);
	h.body_len = body_len;
	*used = len - r.left;
	*hp = h;
	memset(&h, 0, sizeof(h));	/* transferred */
	e = 0;
 out:
	if (e == ENV_NEED_MORE && len >= ENV_MAX_HEADER) {
		e = bad(ei, "larger than the 256 KiB this reader accepts");
	}
	env_header_clear(&h);
	return e;
}

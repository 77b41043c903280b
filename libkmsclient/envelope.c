/*
 * envelope.c — the encryptor and the decryptor: state machines that turn
 * a stream of plaintext into a message and back, one frame at a time, and
 * the public kms_encryptor_* / kms_decryptor_* calls over kmsd.
 *
 * Encryptor: the header is written when it is made; update() buffers at
 * most one frame of plaintext (locked memory) and seals a full frame only
 * once more input shows it is not the last, so a plaintext that is an
 * exact multiple of the frame length ends in a full final frame (the
 * specification's SHOULD); final() seals the final frame and, for 0x0578,
 * appends the footer.
 *
 * Decryptor: header → frames → footer → done.  Bytes are processed in
 * place when a whole element is at hand and buffered (one frame at most)
 * when it is not.  The commitment and the header tag are checked before
 * any frame is opened; a frame's plaintext is written only after its tag
 * verifies; the sequence number, IV and final-frame length of each frame
 * are checked, so reordered, dropped, duplicated or truncated frames fail
 * with the frame's number.  Any failure is sticky.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/be.h"
#include "common/err.h"
#include "common/secmem.h"
#include "libkmsclient/client.h"
#include "libkmsclient/envelope.h"

enum { S_OPEN, S_DONE, S_FAILED };

struct kms_encryptor {
	uint16_t suite;
	uint32_t frame_len;
	kms_write_fn sink;
	void *sink_arg;
	EVP_CIPHER_CTX *cx;
	EVP_MD_CTX *sig;		/* 0x0578 only */
	uint8_t msgid[ENV_MESSAGE_ID_LEN];
	uint8_t *pt;			/* locked, frame_len */
	size_t fill;
	uint8_t *ct;			/* frame_len + ENV_FINAL_OVERHEAD */
	uint32_t seq;			/* the next frame's */
	int state;
};

static int
fail_state(kms_error_info *ei)
{
	return client_fail(ei, KMS_EINVAL, "The stream has already failed "
	    "or ended");
}

static int
enc_emit(kms_encryptor *e, const uint8_t *p, size_t n, kms_error_info *ei)
{
	if (e->sig != NULL && env_sig_update(e->sig, p, n) != 0) {
		return client_fail(ei, KMS_EINTERNAL, "Signing failed");
	}
	if (n > 0 && e->sink(e->sink_arg, p, n) != 0) {
		return client_fail(ei, KMS_EIO, "Writing the message failed");
	}
	return 0;
}

static int
check_context(const kms_context *ctx, kms_error_info *ei)
{
	size_t i;

	if (ctx->npairs > 0 && ctx->pairs == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL context pairs");
	}
	for (i = 0; i < ctx->npairs; i++) {
		if (ctx->pairs[i].key == NULL || ctx->pairs[i].value == NULL) {
			return client_fail(ei, KMS_EINVAL, "NULL context key "
			    "or value");
		}
		if (strncmp(ctx->pairs[i].key, ENV_RESERVED_PREFIX,
		    strlen(ENV_RESERVED_PREFIX)) == 0) {
			return client_fail(ei, KMS_EVALIDATION, "Encryption "
			    "context keys starting \"%s\" are reserved",
			    ENV_RESERVED_PREFIX);
		}
	}
	return 0;
}

int
env_encryptor_new(const struct env_materials *m,
    const struct env_enc_params *par, kms_write_fn sink, void *sink_arg,
    kms_encryptor **ep, kms_error_info *ei)
{
	kms_encryptor *e = NULL;
	kms_context_pair *pairs = NULL;
	struct env_header h;
	struct env_edk edk;
	EVP_PKEY *pk = NULL;
	uint8_t *dk = NULL, *key = NULL;
	char pub[96];
	size_t n = par->context.npairs;
	int r;

	memset(&h, 0, sizeof(h));
	memset(&edk, 0, sizeof(edk));
	if (!env_suite_known(par->suite)) {
		return client_fail(ei, KMS_EINVAL, "Algorithm suite 0x%04x is "
		    "not one this library writes (0x0478, 0x0578)", par->suite);
	}
	if (par->frame_len == 0 || par->frame_len > KMS_FRAME_LENGTH_MAX) {
		return client_fail(ei, KMS_EINVAL, "The frame length must be "
		    "1..%u", KMS_FRAME_LENGTH_MAX);
	}
	if (sink == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL sink");
	}
	if ((r = check_context(&par->context, ei)) != 0) {
		return r;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (pairs = calloc(n + 1, sizeof(*pairs))) == NULL ||
	    (dk = secure_alloc(ENV_KEY_LEN)) == NULL ||
	    (key = secure_alloc(ENV_KEY_LEN)) == NULL ||
	    (e->pt = secure_alloc(par->frame_len)) == NULL ||
	    (e->ct = malloc(par->frame_len + ENV_FINAL_OVERHEAD)) == NULL) {
		r = client_fail(ei, KMS_ENOMEM, "Out of memory");
		goto out;
	}
	e->suite = par->suite;
	e->frame_len = par->frame_len;
	e->sink = sink;
	e->sink_arg = sink_arg;
	e->seq = 1;
	if (n > 0) {
		memcpy(pairs, par->context.pairs, n * sizeof(*pairs));
	}
	if (env_suite_signed(par->suite)) {
		/* The verification key travels in the context, so kmsd binds
		 * it to the data key too. */
		if ((pk = env_sig_keygen()) == NULL ||
		    env_sig_pubkey_b64(pk, pub, sizeof(pub)) != 0 ||
		    (e->sig = env_sig_begin(pk, 0)) == NULL) {
			r = client_fail(ei, KMS_EINTERNAL, "Making the P-384 "
			    "signing key failed");
			goto out;
		}
		pairs[n].key = ENV_PUBKEY_KEY;
		pairs[n].value = pub;
		n++;
	}
	if ((r = m->generate(m->arg, par->suite, pairs, n, par->plaintext_hint,
	    dk, &edk, ei)) != 0) {
		goto out;
	}
	if (RAND_bytes(e->msgid, sizeof(e->msgid)) != 1 ||
	    env_derive(par->suite, dk, e->msgid, key, h.commitment) != 0 ||
	    (e->cx = env_gcm_new(key)) == NULL) {
		r = client_fail(ei, KMS_EINTERNAL, "Key derivation failed");
		goto out;
	}
	h.suite = par->suite;
	memcpy(h.message_id, e->msgid, ENV_MESSAGE_ID_LEN);
	h.pairs = pairs;
	h.npairs = n;
	h.edks = &edk;
	h.nedks = 1;
	h.content_type = ENV_CONTENT_FRAMED;
	h.frame_len = par->frame_len;
	if ((r = env_header_write_body(&h, ei)) != 0) {
		goto out;
	}
	if (env_header_tag(e->cx, h.body, h.body_len, h.tag) != 0) {
		r = client_fail(ei, KMS_EINTERNAL, "Header authentication "
		    "failed");
		goto out;
	}
	if ((r = enc_emit(e, h.body, h.body_len, ei)) != 0 ||
	    (r = enc_emit(e, h.tag, ENV_TAG_LEN, ei)) != 0) {
		goto out;
	}
	*ep = e;
	e = NULL;
	r = 0;
 out:
	free(h.body);
	env_edk_clear(&edk);
	free(pairs);
	secure_free(dk, ENV_KEY_LEN);
	secure_free(key, ENV_KEY_LEN);
	EVP_PKEY_free(pk);
	kms_encryptor_free(e);
	return r;
}

static int
enc_seal(kms_encryptor *e, const uint8_t *pt, size_t n, int final,
    kms_error_info *ei)
{
	size_t len;

	if (e->seq > ENV_MAX_SEQ) {
		return client_fail(ei, KMS_ELIMITEXCEEDED, "A message holds at "
		    "most %u frames; use a larger frame length",
		    ENV_MAX_SEQ);
	}
	if ((len = env_frame_seal(e->cx, e->msgid, e->seq, final, pt, n,
	    e->ct)) == 0) {
		return client_fail(ei, KMS_EINTERNAL, "AES-GCM failed");
	}
	e->seq++;
	return enc_emit(e, e->ct, len, ei);
}

KMS_API int
kms_encryptor_update(kms_encryptor *e, const uint8_t *p, size_t n,
    kms_error_info *ei)
{
	size_t take;
	int r;

	client_ok(ei);
	if (e == NULL || (p == NULL && n > 0)) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if (e->state != S_OPEN) {
		return fail_state(ei);
	}
	while (n > 0) {
		if (e->fill == e->frame_len) {
			/* More input follows: the buffered frame is not the
			 * last. */
			if ((r = enc_seal(e, e->pt, e->fill, 0, ei)) != 0) {
				goto fail;
			}
			e->fill = 0;
		}
		if (e->fill == 0 && n > e->frame_len) {
			/* A whole frame with more behind it: seal in place. */
			if ((r = enc_seal(e, p, e->frame_len, 0, ei)) != 0) {
				goto fail;
			}
			p += e->frame_len;
			n -= e->frame_len;
			continue;
		}
		take = e->frame_len - e->fill;
		if (take > n) {
			take = n;
		}
		memcpy(e->pt + e->fill, p, take);
		e->fill += take;
		p += take;
		n -= take;
	}
	return 0;
 fail:
	e->state = S_FAILED;
	return r;
}

KMS_API int
kms_encryptor_final(kms_encryptor *e, kms_error_info *ei)
{
	uint8_t footer[2 + ENV_MAX_SIG];
	size_t siglen = 0;
	int r;

	client_ok(ei);
	if (e == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if (e->state != S_OPEN) {
		return fail_state(ei);
	}
	if ((r = enc_seal(e, e->pt, e->fill, 1, ei)) != 0) {
		goto fail;
	}
	secure_wipe(e->pt, e->fill);
	e->fill = 0;
	if (e->sig != NULL) {
		if (env_sig_sign(e->sig, footer + 2, &siglen) != 0) {
			r = client_fail(ei, KMS_EINTERNAL, "Signing failed");
			goto fail;
		}
		footer[0] = (uint8_t)(siglen >> 8);
		footer[1] = (uint8_t)siglen;
		/* The footer itself is not signed. */
		if (e->sink(e->sink_arg, footer, 2 + siglen) != 0) {
			r = client_fail(ei, KMS_EIO, "Writing the message "
			    "failed");
			goto fail;
		}
	}
	e->state = S_DONE;
	return 0;
 fail:
	e->state = S_FAILED;
	return r;
}

KMS_API void
kms_encryptor_free(kms_encryptor *e)
{
	if (e == NULL) {
		return;
	}
	EVP_CIPHER_CTX_free(e->cx);	/* wipes the key schedule */
	EVP_MD_CTX_free(e->sig);
	secure_free(e->pt, e->frame_len);
	free(e->ct);
	free(e);
}

/* ------------------------------------------------------------ decrypt */

enum { D_HEADER, D_FRAME, D_FOOTER, D_DONE, D_FAILED };

struct kms_decryptor {
	struct env_materials m;
	struct env_kms kms;		/* m.arg for the public calls */
	char **gt;			/* copied grant tokens */
	kms_context_pair *req;		/* copied required pairs */
	size_t nreq;
	kms_write_fn sink;
	void *sink_arg;
	int state;
	uint8_t *buf;			/* a partial element */
	size_t have, cap;
	struct env_header h;
	EVP_CIPHER_CTX *cx;
	EVP_MD_CTX *sig;
	uint8_t *pt;			/* locked, frame_len */
	uint32_t seq;			/* the next frame's */
	char arn[KMS_ARN_MAX];
};

static int
copy_required(kms_decryptor *d, const kms_context *req, kms_error_info *ei)
{
	size_t i;

	if (req == NULL || req->npairs == 0) {
		return 0;
	}
	if (req->pairs == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL required pairs");
	}
	if ((d->req = calloc(req->npairs, sizeof(*d->req))) == NULL) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	for (i = 0; i < req->npairs; i++) {
		if (req->pairs[i].key == NULL || req->pairs[i].value == NULL) {
			return client_fail(ei, KMS_EINVAL, "NULL required "
			    "context key or value");
		}
		d->nreq = i + 1;
		if ((d->req[i].key = strdup(req->pairs[i].key)) == NULL ||
		    (d->req[i].value = strdup(req->pairs[i].value)) == NULL) {
			return client_fail(ei, KMS_ENOMEM, "Out of memory");
		}
	}
	return 0;
}

int
env_decryptor_new(const struct env_materials *m, const kms_context *required,
    kms_write_fn sink, void *sink_arg, kms_decryptor **dp, kms_error_info *ei)
{
	kms_decryptor *d;
	int r;

	if (sink == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL sink");
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	d->m = *m;
	d->sink = sink;
	d->sink_arg = sink_arg;
	d->state = D_HEADER;
	if ((r = copy_required(d, required, ei)) != 0) {
		kms_decryptor_free(d);
		return r;
	}
	*dp = d;
	return 0;
}

static int
grow(kms_decryptor *d, size_t cap, kms_error_info *ei)
{
	uint8_t *b;

	if (cap <= d->cap) {
		return 0;
	}
	if ((b = realloc(d->buf, cap)) == NULL) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	d->buf = b;
	d->cap = cap;
	return 0;
}

/* The header has been parsed: check it and get ready for frames. */
static int
dec_start(kms_decryptor *d, kms_error_info *ei)
{
	struct env_header *h = &d->h;
	uint8_t commit[ENV_COMMIT_LEN], tag[ENV_TAG_LEN];
	uint8_t *dk = NULL, *key = NULL;
	EVP_PKEY *pub = NULL;
	const char *v;
	size_t i;
	int r;

	for (i = 0; i < d->nreq; i++) {
		if ((v = env_header_get(h, d->req[i].key)) == NULL) {
			return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "The "
			    "message's encryption context lacks the required "
			    "key \"%.64s\"", d->req[i].key);
		}
		if (strcmp(v, d->req[i].value) != 0) {
			return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "The "
			    "message's encryption context has another value "
			    "for the required key \"%.64s\"", d->req[i].key);
		}
	}
	v = env_header_get(h, ENV_PUBKEY_KEY);
	if (env_suite_signed(h->suite)) {
		if (v == NULL || (pub = env_sig_pubkey_from_b64(v)) == NULL) {
			return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Message "
			    "header: the signing suite's verification key (%s) "
			    "is missing or not a P-384 point", ENV_PUBKEY_KEY);
		}
	} else if (v != NULL) {
		return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Message header: "
		    "%s in a suite without signatures", ENV_PUBKEY_KEY);
	}
	if ((dk = secure_alloc(ENV_KEY_LEN)) == NULL ||
	    (key = secure_alloc(ENV_KEY_LEN)) == NULL) {
		r = client_fail(ei, KMS_ENOMEM, "Out of memory");
		goto out;
	}
	if ((r = d->m.unwrap(d->m.arg, h, dk, d->arn, sizeof(d->arn),
	    ei)) != 0) {
		goto out;
	}
	if (env_derive(h->suite, dk, h->message_id, key, commit) != 0) {
		r = client_fail(ei, KMS_EINTERNAL, "Key derivation failed");
		goto out;
	}
	if (secure_memcmp(commit, h->commitment, ENV_COMMIT_LEN) != 0) {
		r = client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Key commitment "
		    "mismatch: the data key does not commit to this message");
		goto out;
	}
	if ((d->cx = env_gcm_new(key)) == NULL ||
	    env_header_tag(d->cx, h->body, h->body_len, tag) != 0) {
		r = client_fail(ei, KMS_EINTERNAL, "AES-GCM failed");
		goto out;
	}
	if (secure_memcmp(tag, h->tag, ENV_TAG_LEN) != 0) {
		r = client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Message header "
		    "failed authentication");
		goto out;
	}
	if (pub != NULL) {
		if ((d->sig = env_sig_begin(pub, 1)) == NULL ||
		    env_sig_update(d->sig, h->body, h->body_len) != 0 ||
		    env_sig_update(d->sig, h->tag, ENV_TAG_LEN) != 0) {
			r = client_fail(ei, KMS_EINTERNAL, "ECDSA failed");
			goto out;
		}
	}
	if ((d->pt = secure_alloc(h->frame_len)) == NULL ||
	    (r = grow(d, h->frame_len + ENV_FINAL_OVERHEAD, ei)) != 0) {
		r = client_fail(ei, KMS_ENOMEM, "Out of memory");
		goto out;
	}
	d->seq = 1;
	d->state = D_FRAME;
	r = 0;
 out:
	secure_free(dk, ENV_KEY_LEN);
	secure_free(key, ENV_KEY_LEN);
	secure_wipe(commit, sizeof(commit));
	EVP_PKEY_free(pub);
	return r;
}

/*
 * The size of the element (frame or footer) starting at p: *size = its
 * length, or 0 with *min the bytes needed to know it.
 */
static int
element_size(kms_decryptor *d, const uint8_t *p, size_t avail, size_t *size,
    size_t *min, kms_error_info *ei)
{
	uint32_t len;

	*size = 0;
	switch (d->state) {
	case D_FRAME:
		if (avail < 4) {
			*min = 4;
			return 0;
		}
		if (get_u32_be(p) != ENV_FINAL_MARK) {
			*size = 4 + ENV_IV_LEN + (size_t)d->h.frame_len +
			    ENV_TAG_LEN;
			return 0;
		}
		if (avail < 4 + 4 + ENV_IV_LEN + 4) {
			*min = 4 + 4 + ENV_IV_LEN + 4;
			return 0;
		}
		len = get_u32_be(p + 4 + 4 + ENV_IV_LEN);
		if (len > d->h.frame_len) {
			return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Frame "
			    "%u (final): its length %u exceeds the frame "
			    "length %u", d->seq, len, d->h.frame_len);
		}
		*size = ENV_FINAL_OVERHEAD + (size_t)len;
		return 0;
	case D_FOOTER:
		if (avail < 2) {
			*min = 2;
			return 0;
		}
		len = ((uint32_t)p[0] << 8) | p[1];
		if (len == 0 || len > ENV_MAX_SIG) {
			return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Message "
			    "footer: a signature of %u bytes is not ECDSA "
			    "P-384", len);
		}
		*size = 2 + (size_t)len;
		return 0;
	default:
		return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Bytes follow "
		    "the end of the message");
	}
}

static int
dec_frame(kms_decryptor *d, const uint8_t *p, size_t size, kms_error_info *ei)
{
	uint8_t aad[ENV_BODY_AAD_MAX], iv[ENV_IV_LEN];
	const uint8_t *q = p;
	int final = get_u32_be(p) == ENV_FINAL_MARK;
	uint32_t seq, len;
	size_t aadlen;
	int r;

	if (final) {
		q += 4;
	}
	seq = get_u32_be(q);
	q += 4;
	if (seq != d->seq) {
		return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Frame %u%s: "
		    "sequence number %u where %u was due (frames reordered, "
		    "dropped or duplicated)", d->seq, final ? " (final)" : "",
		    seq, d->seq);
	}
	env_frame_iv(seq, iv);
	if (memcmp(q, iv, ENV_IV_LEN) != 0) {
		return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Frame %u: its "
		    "IV is not the one its sequence number gives", seq);
	}
	q += ENV_IV_LEN;
	if (final) {
		len = get_u32_be(q);
		q += 4;
	} else {
		len = d->h.frame_len;
	}
	aadlen = env_body_aad(d->h.message_id, final, seq, len, aad);
	if ((r = env_gcm_open(d->cx, iv, aad, aadlen, q, len, q + len,
	    d->pt)) != 0) {
		return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Frame %u%s "
		    "failed authentication", seq, final ? " (final)" : "");
	}
	if (d->sig != NULL && env_sig_update(d->sig, p, size) != 0) {
		return client_fail(ei, KMS_EINTERNAL, "ECDSA failed");
	}
	if (len > 0 && d->sink(d->sink_arg, d->pt, len) != 0) {
		secure_wipe(d->pt, len);
		return client_fail(ei, KMS_EIO, "Writing the plaintext failed");
	}
	secure_wipe(d->pt, len);
	if (final) {
		d->state = d->sig != NULL ? D_FOOTER : D_DONE;
	} else if (d->seq == ENV_MAX_SEQ) {
		return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Frame %u: too "
		    "many frames", seq);
	} else {
		d->seq++;
	}
	return 0;
}

static int
dec_element(kms_decryptor *d, const uint8_t *p, size_t size,
    kms_error_info *ei)
{
	if (d->state == D_FRAME) {
		return dec_frame(d, p, size, ei);
	}
	if (env_sig_verify(d->sig, p + 2, size - 2) != 0) {
		return client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Message footer: "
		    "the signature does not verify");
	}
	d->state = D_DONE;
	return 0;
}

static int
dec_header(kms_decryptor *d, const uint8_t **pp, size_t *np,
    kms_error_info *ei)
{
	size_t take = ENV_MAX_HEADER - d->have, used = 0, rest;
	uint8_t *left = NULL;
	int r;

	if (take > *np) {
		take = *np;
	}
	if ((r = grow(d, d->have + take, ei)) != 0) {
		return r;
	}
	memcpy(d->buf + d->have, *pp, take);
	d->have += take;
	*pp += take;
	*np -= take;
	r = env_header_parse(d->buf, d->have, &d->h, &used, ei);
	if (r == ENV_NEED_MORE) {
		return 0;
	}
	if (r != 0) {
		return r;
	}
	/* Bytes past the header go back through update(). */
	rest = d->have - used;
	if (rest > 0 && (left = malloc(rest)) == NULL) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	if (rest > 0) {
		memcpy(left, d->buf + used, rest);
	}
	d->have = 0;
	if ((r = dec_start(d, ei)) == 0 && rest > 0) {
		r = kms_decryptor_update(d, left, rest, ei);
	}
	free(left);
	return r;
}

KMS_API int
kms_decryptor_update(kms_decryptor *d, const uint8_t *p, size_t n,
    kms_error_info *ei)
{
	size_t size, min = 0, target, take;
	int r = 0;

	client_ok(ei);
	if (d == NULL || (p == NULL && n > 0)) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if (d->state == D_FAILED) {
		return fail_state(ei);
	}
	while (n > 0) {
		if (d->state == D_HEADER) {
			if ((r = dec_header(d, &p, &n, ei)) != 0) {
				goto fail;
			}
			continue;
		}
		if (d->have == 0) {
			if ((r = element_size(d, p, n, &size, &min, ei)) != 0) {
				goto fail;
			}
			if (size > 0 && size <= n) {
				if ((r = dec_element(d, p, size, ei)) != 0) {
					goto fail;
				}
				p += size;
				n -= size;
				continue;
			}
		}
		if ((r = element_size(d, d->buf, d->have, &size, &min,
		    ei)) != 0) {
			goto fail;
		}
		target = size > 0 ? size : min;
		take = target - d->have;
		if (take > n) {
			take = n;
		}
		memcpy(d->buf + d->have, p, take);
		d->have += take;
		p += take;
		n -= take;
		if (size > 0 && d->have == size) {
			d->have = 0;
			if ((r = dec_element(d, d->buf, size, ei)) != 0) {
				goto fail;
			}
		}
	}
	return 0;
 fail:
	d->state = D_FAILED;
	return r;
}

static int
fill_info(const kms_decryptor *d, kms_envelope_info *info, kms_error_info *ei)
{
	kms_envelope_info o;
	size_t i;

	memset(&o, 0, sizeof(o));
	o.algorithm = d->h.suite;
	o.frame_length = d->h.frame_len;
	memcpy(o.message_id, d->h.message_id, sizeof(o.message_id));
	snprintf(o.key_arn, sizeof(o.key_arn), "%s", d->arn);
	if (d->h.npairs > 0 &&
	    (o.pairs = calloc(d->h.npairs, sizeof(*o.pairs))) == NULL) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	for (i = 0; i < d->h.npairs; i++) {
		o.npairs = i + 1;
		if ((o.pairs[i].key = strdup(d->h.pairs[i].key)) == NULL ||
		    (o.pairs[i].value = strdup(d->h.pairs[i].value)) == NULL) {
			kms_envelope_info_free(&o);
			return client_fail(ei, KMS_ENOMEM, "Out of memory");
		}
	}
	*info = o;
	return 0;
}

KMS_API int
kms_decryptor_final(kms_decryptor *d, kms_envelope_info *info,
    kms_error_info *ei)
{
	int r;

	client_ok(ei);
	if (d == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	switch (d->state) {
	case D_DONE:
		break;
	case D_FAILED:
		return fail_state(ei);
	case D_HEADER:
		r = client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Message truncated "
		    "in its header (%zu bytes)", d->have);
		goto fail;
	case D_FRAME:
		if (d->have > 0) {
			r = client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Message "
			    "truncated within frame %u", d->seq);
		} else {
			r = client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Message "
			    "truncated after frame %u: the final frame is "
			    "missing", d->seq - 1);
		}
		goto fail;
	default:
		r = client_fail(ei, KMS_EINVALIDCIPHERTEXT, "Message truncated: "
		    "the signature footer is missing");
		goto fail;
	}
	if (info != NULL) {
		return fill_info(d, info, ei);
	}
	return 0;
 fail:
	d->state = D_FAILED;
	return r;
}

static void
free_pairs(kms_context_pair *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free((char *)p[i].key);
		free((char *)p[i].value);
	}
	free(p);
}

KMS_API void
kms_decryptor_free(kms_decryptor *d)
{
	size_t i;

	if (d == NULL) {
		return;
	}
	secure_free(d->pt, d->h.frame_len);
	env_header_clear(&d->h);
	EVP_CIPHER_CTX_free(d->cx);
	EVP_MD_CTX_free(d->sig);
	free(d->buf);
	free_pairs(d->req, d->nreq);
	if (d->gt != NULL) {
		for (i = 0; i < d->kms.grant_tokens.ntokens; i++) {
			free(d->gt[i]);
		}
		free(d->gt);
	}
	free(d);
}

KMS_API void
kms_envelope_info_free(kms_envelope_info *info)
{
	if (info == NULL) {
		return;
	}
	free_pairs(info->pairs, info->npairs);
	info->pairs = NULL;
	info->npairs = 0;
}

/* ------------------------------------------------- the public calls */

static int
enc_params(const kms_envelope_encrypt_opts *o, struct env_enc_params *p)
{
	memset(p, 0, sizeof(*p));
	p->suite = KMS_ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY;
	p->frame_len = KMS_FRAME_LENGTH_DEFAULT;
	p->plaintext_hint = UINT64_MAX;
	if (o == NULL) {
		return 0;
	}
	if (o->algorithm != 0) {
		p->suite = o->algorithm;
	}
	if (o->frame_length != 0) {
		p->frame_len = o->frame_length;
	}
	p->context = o->context;
	if (o->plaintext_length != 0) {
		p->plaintext_hint = o->plaintext_length;
	}
	return 0;
}

KMS_API int
kms_encryptor_new(kms_client *c, const char *key_id,
    const kms_envelope_encrypt_opts *opts, kms_write_fn sink, void *arg,
    kms_encryptor **ep, kms_error_info *ei)
{
	struct env_materials m = env_kms_materials;
	struct env_enc_params par;
	struct env_kms k;

	client_ok(ei);
	if (c == NULL || key_id == NULL || ep == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	memset(&k, 0, sizeof(k));
	k.client = c;
	k.key_id = key_id;
	if (opts != NULL) {
		k.grant_tokens = opts->grant_tokens;
		k.cache = opts->cache;
	}
	m.arg = &k;
	enc_params(opts, &par);
	return env_encryptor_new(&m, &par, sink, arg, ep, ei);
}

KMS_API int
kms_decryptor_new(kms_client *c, const kms_envelope_decrypt_opts *opts,
    kms_write_fn sink, void *arg, kms_decryptor **dp, kms_error_info *ei)
{
	kms_decryptor *d = NULL;
	const kms_grant_tokens *gt = opts != NULL ? &opts->grant_tokens : NULL;
	size_t i;
	int r;

	client_ok(ei);
	if (c == NULL || dp == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if (gt != NULL && gt->ntokens > KMS_MAX_GRANT_TOKENS) {
		return client_fail(ei, KMS_EINVAL, "At most %d grant tokens",
		    KMS_MAX_GRANT_TOKENS);
	}
	if ((r = env_decryptor_new(&env_kms_materials,
	    opts != NULL ? &opts->required : NULL, sink, arg, &d, ei)) != 0) {
		return r;
	}
	d->kms.client = c;
	d->kms.cache = opts != NULL ? opts->cache : NULL;
	d->m.arg = &d->kms;
	if (gt != NULL && gt->ntokens > 0) {
		if ((d->gt = calloc(gt->ntokens, sizeof(char *))) == NULL) {
			kms_decryptor_free(d);
			return client_fail(ei, KMS_ENOMEM, "Out of memory");
		}
		d->kms.grant_tokens.ntokens = gt->ntokens;
		d->kms.grant_tokens.tokens = (const char *const *)d->gt;
		for (i = 0; i < gt->ntokens; i++) {
			if (gt->tokens[i] == NULL ||
			    (d->gt[i] = strdup(gt->tokens[i])) == NULL) {
				kms_decryptor_free(d);
				return client_fail(ei, KMS_EINVAL, "Bad grant "
				    "token");
			}
		}
	}
	*dp = d;
	return 0;
}

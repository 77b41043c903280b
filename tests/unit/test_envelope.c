/*
 * test_envelope.c — the envelope message format without a daemon: data
 * keys from a raw AES keyring (the AWS Encryption SDK's, built here for
 * testing only), so the format can be checked byte for byte against the
 * SDK's published test vectors (tests/vectors/esdk/, suites 0x0478 and
 * 0x0578), round-tripped at the sizes around a frame, and tampered with
 * in every way the decryptor must notice: every truncation, a bit flip
 * in every byte, swapped, dropped and duplicated frames, a header
 * transplanted from another message, required context pairs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "common/be.h"
#include "common/err.h"
#include "kms.h"
#include "libkmsclient/envelope.h"
#include "tests/testutil.h"

#define VECDIR "tests/vectors/esdk/"
#define RAW_NS "aws-raw-vectors-persistant"
#define RAW_NAME "aes-256"

/* keys.json's "aes-256": bytes 00 01 .. 09 10 11 .. 31 (as written). */
static const uint8_t raw_key[32] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x10,
	0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x20, 0x21,
	0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x30, 0x31,
};

/* ------------------------------------------------ raw AES keyring */

struct raw {
	int generated, unwrapped;
	int fixed;		/* 1: always the same data key */
};

static int
raw_generate(void *arg, uint16_t suite, const kms_context_pair *pairs,
    size_t n, uint64_t hint, uint8_t *dk, struct env_edk *edk,
    kms_error_info *ei)
{
	struct raw *rk = arg;
	EVP_CIPHER_CTX *cx = env_gcm_new(raw_key);
	uint8_t *aad = NULL, iv[ENV_IV_LEN];
	size_t aadlen = 0, nl = strlen(RAW_NAME);

	assert_non_null(cx);
	assert_int_equal(env_context_serialize(pairs, n, &aad, &aadlen, ei), 0);
	if (rk->fixed) {
		memset(dk, 0x5a, ENV_KEY_LEN);
	} else {
		assert_int_equal(RAND_bytes(dk, ENV_KEY_LEN), 1);
	}
	assert_int_equal(RAND_bytes(iv, sizeof(iv)), 1);
	edk->provider_id = strdup(RAW_NS);
	edk->info_len = nl + 4 + 4 + ENV_IV_LEN;
	edk->info = malloc(edk->info_len);
	memcpy(edk->info, RAW_NAME, nl);
	put_u32_be(edk->info + nl, 128);
	put_u32_be(edk->info + nl + 4, ENV_IV_LEN);
	memcpy(edk->info + nl + 8, iv, ENV_IV_LEN);
	edk->blob_len = ENV_KEY_LEN + ENV_TAG_LEN;
	edk->blob = malloc(edk->blob_len);
	assert_int_equal(env_gcm_seal(cx, iv, aad, aadlen, dk, ENV_KEY_LEN,
	    edk->blob, edk->blob + ENV_KEY_LEN), 0);
	free(aad);
	EVP_CIPHER_CTX_free(cx);
	rk->generated++;
	return 0;
}

static int
raw_unwrap(void *arg, const struct env_header *h, uint8_t *dk, char *arn,
    size_t arnsz, kms_error_info *ei)
{
	struct raw *rk = arg;
	size_t nl = strlen(RAW_NAME), i, aadlen = 0;
	uint8_t *aad = NULL;
	int r = KMS_EINVALIDCIPHERTEXT;

	rk->unwrapped++;
	assert_int_equal(env_context_serialize(h->pairs, h->npairs, &aad,
	    &aadlen, ei), 0);
	for (i = 0; i < h->nedks && r != 0; i++) {
		const struct env_edk *e = &h->edks[i];
		EVP_CIPHER_CTX *cx;
		if (strcmp(e->provider_id, RAW_NS) != 0 ||
		    e->info_len != nl + 8 + ENV_IV_LEN ||
		    memcmp(e->info, RAW_NAME, nl) != 0 ||
		    get_u32_be(e->info + nl) != 128 ||
		    get_u32_be(e->info + nl + 4) != ENV_IV_LEN ||
		    e->blob_len != ENV_KEY_LEN + ENV_TAG_LEN) {
			continue;
		}
		cx = env_gcm_new(raw_key);
		r = env_gcm_open(cx, e->info + nl + 8, aad, aadlen, e->blob,
		    ENV_KEY_LEN, e->blob + ENV_KEY_LEN, dk);
		EVP_CIPHER_CTX_free(cx);
	}
	free(aad);
	snprintf(arn, arnsz, "%s", RAW_NAME);
	if (r != 0) {
		snprintf(ei->message, sizeof(ei->message), "raw keyring: no "
		    "EDK unwraps");
		ei->code = r;
	}
	return r;
}

/* ------------------------------------------------------- helpers */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static int
buf_sink(void *arg, const uint8_t *p, size_t n)
{
	struct buf *b = arg;

	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static uint8_t *
read_file(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	uint8_t *p;
	long n;

	snprintf(path, sizeof(path), VECDIR "%s", name);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

static struct env_materials
raw_materials(struct raw *rk)
{
	struct env_materials m = { raw_generate, raw_unwrap, rk };

	return m;
}

/* Encrypt pt into *out with the raw keyring. */
static void
seal(struct raw *rk, uint16_t suite, uint32_t frame, const kms_context *ctx,
    const uint8_t *pt, size_t len, size_t chunk, struct buf *out)
{
	struct env_materials m = raw_materials(rk);
	struct env_enc_params par;
	kms_encryptor *e = NULL;
	kms_error_info ei;
	size_t off, n;

	memset(&par, 0, sizeof(par));
	par.suite = suite;
	par.frame_len = frame;
	if (ctx != NULL) {
		par.context = *ctx;
	}
	par.plaintext_hint = UINT64_MAX;
	memset(out, 0, sizeof(*out));
	assert_int_equal(env_encryptor_new(&m, &par, buf_sink, out, &e, &ei),
	    0);
	for (off = 0; off < len; off += n) {
		n = len - off < chunk ? len - off : chunk;
		assert_int_equal(kms_encryptor_update(e, pt + off, n, &ei), 0);
	}
	assert_int_equal(kms_encryptor_final(e, &ei), 0);
	kms_encryptor_free(e);
}

/* Decrypt msg fed in chunks; returns the error (0), plaintext in *out. */
static int
open_msg(struct raw *rk, const uint8_t *msg, size_t len, size_t chunk,
    const kms_context *required, struct buf *out, kms_envelope_info *info,
    kms_error_info *ei)
{
	struct env_materials m = raw_materials(rk);
	kms_decryptor *d = NULL;
	size_t off, n;
	int r;

	memset(out, 0, sizeof(*out));
	assert_int_equal(env_decryptor_new(&m, required, buf_sink, out, &d,
	    ei), 0);
	r = 0;
	for (off = 0; off < len && r == 0; off += n) {
		n = len - off < chunk ? len - off : chunk;
		r = kms_decryptor_update(d, msg + off, n, ei);
	}
	if (r == 0) {
		r = kms_decryptor_final(d, info, ei);
	}
	kms_decryptor_free(d);
	return r;
}

static uint8_t *
pattern(size_t len)
{
	uint8_t *p = malloc(len + 1);
	size_t i;

	for (i = 0; i < len; i++) {
		p[i] = (uint8_t)(i * 31 + (i >> 8));
	}
	return p;
}

static const kms_context_pair ctx_pairs[] = {
	{ "purpose", "test" }, { "tenant", "\xc3\xa9t\xc3\xa9" },
};
static const kms_context test_ctx = { ctx_pairs, 2 };

/* --------------------------------------------------------- vectors */

static const char *vectors[] = {
	"0478-ec_len_0-cmm_Default-8aa92ac6-31f0-49b2-801d-8f51633affc2",
	"0478-ec_len_2-cmm_Default-0753d7fa-f37a-4b8c-b1fe-29db29f57af6",
	"0578-ec_len_0-cmm_Default-edd8a07a-358e-476b-a85c-4d48d5120a4f",
	"0578-ec_len_2-cmm_Default-74967b4f-3015-44cc-870e-8cc8b525bb6c",
};

static void
test_envelope_decrypts_published_sdk_vectors(void **state)
{
	size_t ptlen, ctlen, i, j, chunks[] = { 1 << 20, 1, 7, 513 };
	uint8_t *pt = read_file("plaintext-small", &ptlen);

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		uint8_t *ct = read_file(vectors[i], &ctlen);
		int ec2 = strstr(vectors[i], "ec_len_2") != NULL;
		int sig = strncmp(vectors[i], "0578", 4) == 0;
		for (j = 0; j < sizeof(chunks) / sizeof(chunks[0]); j++) {
			struct raw rk = { 0 };
			kms_envelope_info info;
			kms_error_info ei;
			struct buf out;
			int r = open_msg(&rk, ct, ctlen, chunks[j], NULL, &out,
			    &info, &ei);
			if (r != 0) {
				fail_msg("%s: %s", vectors[i], ei.message);
			}
			assert_int_equal(out.len, ptlen);
			assert_memory_equal(out.p, pt, ptlen);
			assert_int_equal(info.algorithm, sig ? 0x0578 : 0x0478);
			assert_int_equal(info.npairs, (ec2 ? 2 : 0) + sig);
			if (ec2) {
				/* Sorted by key: the public key comes first. */
				assert_string_equal(info.pairs[sig].key,
				    "key1");
				assert_string_equal(info.pairs[sig].value,
				    "val1");
			}
			kms_envelope_info_free(&info);
			free(out.p);
		}
		free(ct);
	}
	free(pt);
}

static void
test_envelope_vector_with_any_bit_flipped_fails(void **state)
{
	size_t ctlen, i;
	uint8_t *ct = read_file(vectors[3], &ctlen);

	/* Every byte of a signed vector, one bit each. */
	for (i = 0; i < ctlen; i += 1) {
		struct raw rk = { 0 };
		kms_error_info ei;
		struct buf out;
		ct[i] ^= (uint8_t)(1u << (i % 8));
		assert_int_not_equal(open_msg(&rk, ct, ctlen, 1 << 20, NULL,
		    &out, NULL, &ei), 0);
		ct[i] ^= (uint8_t)(1u << (i % 8));
		free(out.p);
	}
	free(ct);
}

/* ------------------------------------------------------ round trips */

static void
round_trip(uint16_t suite, uint32_t frame, size_t len, size_t chunk)
{
	struct raw rk = { 0 };
	uint8_t *pt = pattern(len);
	kms_envelope_info info;
	kms_error_info ei;
	struct buf ct, out;
	size_t nframes;

	seal(&rk, suite, frame, &test_ctx, pt, len, chunk, &ct);
	assert_int_equal(ct.p[0], 0x02);
	assert_int_equal((ct.p[1] << 8) | ct.p[2], suite);
	if (open_msg(&rk, ct.p, ct.len, chunk, &test_ctx, &out, &info,
	    &ei) != 0) {
		fail_msg("suite %04x frame %u len %zu: %s", suite, frame, len,
		    ei.message);
	}
	assert_int_equal(out.len, len);
	if (len > 0) {
		assert_memory_equal(out.p, pt, len);
	}
	assert_int_equal(info.frame_length, frame);
	assert_int_equal(info.npairs, 2 + (suite == 0x0578));
	/* A plaintext that fills its last frame ends in a full final
	 * frame, never an empty one (the specification's SHOULD). */
	nframes = len == 0 ? 1 : (len + frame - 1) / frame;
	{
		struct env_header h;
		kms_error_info e2;
		size_t used, body, sigl = 0;
		assert_int_equal(env_header_parse(ct.p, ct.len, &h, &used,
		    &e2), 0);
		body = (nframes - 1) * (frame + ENV_FRAME_OVERHEAD) +
		    ENV_FINAL_OVERHEAD + (len - (nframes - 1) * frame);
		if (suite == 0x0578) {
			sigl = ct.len - used - body;
			assert_true(sigl > 2 && sigl <= 2 + ENV_MAX_SIG);
		} else {
			assert_int_equal(ct.len, used + body);
		}
		assert_int_equal(get_u32_be(ct.p + used + (nframes - 1) *
		    (frame + ENV_FRAME_OVERHEAD)), ENV_FINAL_MARK);
		env_header_clear(&h);
	}
	kms_envelope_info_free(&info);
	free(pt);
	free(ct.p);
	free(out.p);
}

static void
test_envelope_round_trips_sizes_around_a_frame(void **state)
{
	const uint32_t frames[] = { 4096, 64, 1 };
	const uint16_t suites[] = { 0x0478, 0x0578 };
	size_t s, f, k;

	for (s = 0; s < 2; s++) {
		for (f = 0; f < 3; f++) {
			uint32_t fl = frames[f];
			size_t sizes[] = { 0, 1, fl - 1, fl, fl + 1, 3 * fl,
			    3 * fl + 5 };
			for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
				round_trip(suites[s], fl, sizes[k], 1 << 20);
				round_trip(suites[s], fl, sizes[k], 3);
			}
		}
	}
}

static void
test_envelope_derives_keys_as_the_specification(void **state)
{
	uint8_t dk[32], id[32], k1[32], c1[32], k2[32], c2[32];

	memset(dk, 1, sizeof(dk));
	memset(id, 2, sizeof(id));
	assert_int_equal(env_derive(0x0478, dk, id, k1, c1), 0);
	assert_int_equal(env_derive(0x0578, dk, id, k2, c2), 0);
	/* The suite id is in the encryption key's info, not the commit
	 * key's. */
	assert_memory_not_equal(k1, k2, 32);
	assert_memory_equal(c1, c2, 32);
	id[0] ^= 1;
	assert_int_equal(env_derive(0x0478, dk, id, k2, c2), 0);
	assert_memory_not_equal(c1, c2, 32);
}

/* ------------------------------------------------------- tampering */

#define TF 64		/* small frames: many frames in a small message */

static void
make_tamper_msg(uint16_t suite, struct buf *ct, size_t *hdr, size_t nfr)
{
	struct raw rk = { 0 };
	uint8_t *pt = pattern(TF * nfr - 10);
	struct env_header h;
	kms_error_info ei;

	seal(&rk, suite, TF, &test_ctx, pt, TF * nfr - 10, 1 << 20, ct);
	assert_int_equal(env_header_parse(ct->p, ct->len, &h, hdr, &ei), 0);
	env_header_clear(&h);
	free(pt);
}

static void
test_envelope_every_truncation_fails(void **state)
{
	const uint16_t suites[] = { 0x0478, 0x0578 };
	size_t s, cut, hdr;
	uint8_t *pt = pattern(TF * 4);

	for (s = 0; s < 2; s++) {
		struct buf ct;
		make_tamper_msg(suites[s], &ct, &hdr, 4);
		for (cut = 0; cut < ct.len; cut++) {
			struct raw rk = { 0 };
			kms_error_info ei;
			struct buf out;
			int r = open_msg(&rk, ct.p, cut, 1 << 20, NULL, &out,
			    NULL, &ei);
			assert_int_equal(r, KMS_EINVALIDCIPHERTEXT);
			assert_non_null(strstr(ei.message, "runcated"));
			/* What was released is whole, authenticated frames
			 * of the plaintext. */
			assert_true(out.len % TF == 0 ||
			    (suites[s] == 0x0578 && out.len == TF * 4 - 10));
			if (out.len > 0) {
				assert_memory_equal(out.p, pt, out.len);
			}
			if (cut == hdr + TF + ENV_FRAME_OVERHEAD) {
				assert_non_null(strstr(ei.message,
				    "after frame 1"));
			}
			free(out.p);
		}
		free(ct.p);
	}
	free(pt);
}

static void
test_envelope_bit_flip_in_header_frames_footer_fails(void **state)
{
	const uint16_t suites[] = { 0x0478, 0x0578 };
	size_t s, i, hdr;

	for (s = 0; s < 2; s++) {
		struct buf ct;
		make_tamper_msg(suites[s], &ct, &hdr, 3);
		for (i = 0; i < ct.len * 8; i += 3) {
			struct raw rk = { 0 };
			kms_error_info ei;
			struct buf out;
			ct.p[i / 8] ^= (uint8_t)(1u << (i % 8));
			assert_int_not_equal(open_msg(&rk, ct.p, ct.len,
			    1 << 20, NULL, &out, NULL, &ei), 0);
			ct.p[i / 8] ^= (uint8_t)(1u << (i % 8));
			/* A flip in frame 2's content is named. */
			if (i / 8 == hdr + (TF + ENV_FRAME_OVERHEAD) + 20) {
				assert_string_equal(ei.message,
				    "Frame 2 failed authentication");
			}
			free(out.p);
		}
		free(ct.p);
	}
}

static void
expect_failure(const uint8_t *msg, size_t len, const char *what)
{
	struct raw rk = { 0 };
	kms_error_info ei;
	struct buf out;

	assert_int_equal(open_msg(&rk, msg, len, 1 << 20, NULL, &out, NULL,
	    &ei), KMS_EINVALIDCIPHERTEXT);
	if (strstr(ei.message, what) == NULL) {
		fail_msg("expected \"%s\" in \"%s\"", what, ei.message);
	}
	free(out.p);
}

static void
test_envelope_swapped_dropped_duplicated_frames_fail(void **state)
{
	struct buf ct;
	size_t hdr, fs = TF + ENV_FRAME_OVERHEAD;
	uint8_t *m, tmp[TF + ENV_FRAME_OVERHEAD];

	make_tamper_msg(0x0478, &ct, &hdr, 4);
	m = malloc(ct.len + fs);
	/* Swap frames 2 and 3. */
	memcpy(m, ct.p, ct.len);
	memcpy(tmp, m + hdr + fs, fs);
	memcpy(m + hdr + fs, m + hdr + 2 * fs, fs);
	memcpy(m + hdr + 2 * fs, tmp, fs);
	expect_failure(m, ct.len, "Frame 2: sequence number 3 where 2");
	/* Drop frame 2. */
	memcpy(m, ct.p, hdr + fs);
	memcpy(m + hdr + fs, ct.p + hdr + 2 * fs, ct.len - hdr - 2 * fs);
	expect_failure(m, ct.len - fs, "Frame 2: sequence number 3 where 2");
	/* Duplicate frame 1. */
	memcpy(m, ct.p, hdr + fs);
	memcpy(m + hdr + fs, ct.p + hdr, ct.len - hdr);
	expect_failure(m, ct.len + fs, "Frame 2: sequence number 1 where 2");
	/* A regular frame renumbered to pass the sequence check still fails
	 * its tag (the number is in the AAD and IV). */
	memcpy(m, ct.p, ct.len);
	memcpy(m + hdr, ct.p + hdr + fs, fs);
	put_u32_be(m + hdr, 1);
	memcpy(m + hdr + 4, ct.p + hdr + 4, ENV_IV_LEN);
	expect_failure(m, ct.len, "Frame 1 failed authentication");
	free(m);
	free(ct.p);
}

static void
test_envelope_transplanted_header_fails(void **state)
{
	struct raw rk = { 0, 0, 1 };	/* the same data key for both */
	uint8_t *pt = pattern(300);
	struct buf a, b;
	struct env_header ha, hb;
	kms_error_info ei;
	size_t ua, ub;
	uint8_t *m;

	seal(&rk, 0x0478, TF, &test_ctx, pt, 300, 1 << 20, &a);
	seal(&rk, 0x0478, TF, &test_ctx, pt, 300, 1 << 20, &b);
	assert_int_equal(env_header_parse(a.p, a.len, &ha, &ua, &ei), 0);
	assert_int_equal(env_header_parse(b.p, b.len, &hb, &ub, &ei), 0);
	assert_int_equal(ua, ub);
	/* A's header (valid, same data key) on B's body. */
	m = malloc(b.len);
	memcpy(m, a.p, ua);
	memcpy(m + ua, b.p + ub, b.len - ub);
	expect_failure(m, b.len, "Frame 1 failed authentication");
	free(m);
	env_header_clear(&ha);
	env_header_clear(&hb);
	free(a.p);
	free(b.p);
	free(pt);
}

static void
test_envelope_required_context_pairs_are_enforced(void **state)
{
	struct raw rk = { 0 };
	uint8_t *pt = pattern(100);
	const kms_context_pair wrong[] = { { "purpose", "other" } };
	const kms_context_pair missing[] = { { "owner", "x" } };
	const kms_context_pair good[] = { { "tenant", "\xc3\xa9t\xc3\xa9" } };
	kms_context req;
	kms_error_info ei;
	struct buf ct, out;

	seal(&rk, 0x0478, TF, &test_ctx, pt, 100, 1 << 20, &ct);
	rk.unwrapped = 0;
	req.pairs = wrong;
	req.npairs = 1;
	assert_int_equal(open_msg(&rk, ct.p, ct.len, 1 << 20, &req, &out,
	    NULL, &ei), KMS_EINVALIDCIPHERTEXT);
	assert_non_null(strstr(ei.message, "another value"));
	free(out.p);
	req.pairs = missing;
	assert_int_equal(open_msg(&rk, ct.p, ct.len, 1 << 20, &req, &out,
	    NULL, &ei), KMS_EINVALIDCIPHERTEXT);
	assert_non_null(strstr(ei.message, "lacks the required key"));
	free(out.p);
	/* Refused before any data key was asked for. */
	assert_int_equal(rk.unwrapped, 0);
	req.pairs = good;
	assert_int_equal(open_msg(&rk, ct.p, ct.len, 1 << 20, &req, &out,
	    NULL, &ei), 0);
	assert_int_equal(out.len, 100);
	free(out.p);
	free(ct.p);
	free(pt);
}

static void
test_envelope_refuses_non_committing_and_unknown_input(void **state)
{
	size_t ctlen;
	uint8_t *ct = read_file(vectors[1], &ctlen);

	/* The same bytes claiming a non-committing suite (0x0178). */
	ct[1] = 0x01;
	expect_failure(ct, ctlen, "0x0178 is not accepted");
	ct[0] = 0x01;
	expect_failure(ct, ctlen, "no key commitment");
	ct[0] = 'H';
	expect_failure(ct, ctlen, "not an AWS Encryption SDK message");
	free(ct);
}

static void
test_envelope_refuses_reserved_context_keys_and_bad_frames(void **state)
{
	struct raw rk = { 0 };
	struct env_materials m = raw_materials(&rk);
	const kms_context_pair res[] = { { "aws-crypto-public-key", "x" } };
	struct env_enc_params par;
	kms_encryptor *e = NULL;
	kms_error_info ei;
	struct buf out = { 0 };

	memset(&par, 0, sizeof(par));
	par.suite = 0x0478;
	par.frame_len = 4096;
	par.context.pairs = res;
	par.context.npairs = 1;
	assert_int_equal(env_encryptor_new(&m, &par, buf_sink, &out, &e, &ei),
	    KMS_EVALIDATION);
	par.context.npairs = 0;
	par.frame_len = KMS_FRAME_LENGTH_MAX + 1;
	assert_int_equal(env_encryptor_new(&m, &par, buf_sink, &out, &e, &ei),
	    KMS_EINVAL);
	par.frame_len = 4096;
	par.suite = 0x0178;
	assert_int_equal(env_encryptor_new(&m, &par, buf_sink, &out, &e, &ei),
	    KMS_EINVAL);
	assert_int_equal(rk.generated, 0);
	assert_null(out.p);
}

/* ------------------------------------------ the SDK for JavaScript */

static void
write_file(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

/*
 * Both directions against @aws-crypto/client-node with the same raw AES
 * keyring: what this library writes, the SDK reads, and the other way
 * round, for both suites, with a context.  Needs node and the SDK
 * (KMS_ESDK_NODE_MODULES, else tests/sdk/node_modules); skipped without.
 */
static void
test_envelope_interoperates_with_the_sdk_for_javascript(void **state)
{
	const char *mods = getenv("KMS_ESDK_NODE_MODULES");
	const uint16_t suites[] = { 0x0478, 0x0578 };
#define NSIZES 6
	const size_t sizes[NSIZES] = { 0, 1, 999, 1000, 1001, 20000 };
	char dir[] = "/tmp/kms-esdk-XXXXXX", cmd[8192], enc[2][8192];
	char probe[1024], path[600], cwd[512];
	struct stat st;
	size_t s, k, n;

	if (mods == NULL) {
		mods = "tests/sdk/node_modules";
	}
	snprintf(probe, sizeof(probe), "%s/@aws-crypto/client-node", mods);
	if (stat(probe, &st) != 0 || tu_run("node --version", NULL,
	    NULL) != 0) {
		skip();
	}
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_non_null(mkdtemp(dir));
	/* ES modules resolve from the script's folder: put both there. */
	snprintf(cmd, sizeof(cmd), "ln -s '%s%s%s' %s/node_modules && "
	    "cp tests/sdk/esdk_raw.mjs %s/", mods[0] == '/' ? "" : cwd,
	    mods[0] == '/' ? "" : "/", mods, dir, dir);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	/* This library writes, the SDK reads; the SDK writes, this library
	 * reads: all files first, then one node run per direction. */
	snprintf(cmd, sizeof(cmd), "node %s/esdk_raw.mjs decrypt "
	    "purpose=test,tenant=\xc3\xa9t\xc3\xa9", dir);
	for (s = 0; s < 2; s++) {
		snprintf(enc[s], sizeof(enc[s]), "node %s/esdk_raw.mjs "
		    "encrypt %04x 1000 purpose=test,tenant=\xc3\xa9t\xc3\xa9",
		    dir, suites[s]);
		for (k = 0; k < NSIZES; k++) {
			struct raw rk = { 0 };
			uint8_t *pt = pattern(sizes[k]);
			struct buf ct;

			seal(&rk, suites[s], 4096, &test_ctx, pt, sizes[k],
			    1000, &ct);
			snprintf(path, sizeof(path), "%s/c%zu-%zu", dir, s, k);
			write_file(path, ct.p, ct.len);
			snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd),
			    " %s:%s.back", path, path);
			snprintf(path, sizeof(path), "%s/p%zu-%zu", dir, s, k);
			write_file(path, pt, sizes[k]);
			snprintf(enc[s] + strlen(enc[s]), sizeof(enc[s]) -
			    strlen(enc[s]), " %s:%s.msg", path, path);
			free(ct.p);
			free(pt);
		}
	}
	for (s = 0; s < 3; s++) {
		char *err = NULL;
		if (tu_run(s == 0 ? cmd : enc[s - 1], NULL, &err) != 0) {
			fail_msg("the SDK failed: %s", err);
		}
		free(err);
	}
	for (s = 0; s < 2; s++) {
		for (k = 0; k < NSIZES; k++) {
			struct raw rk = { 0 };
			uint8_t *pt = pattern(sizes[k]), *got;
			kms_envelope_info info;
			kms_error_info ei;
			struct buf out;

			snprintf(path, sizeof(path), "%s/c%zu-%zu.back", dir, s,
			    k);
			got = slurp(path, &n);
			assert_int_equal(n, sizes[k]);
			assert_memory_equal(got, pt, n);
			free(got);
			snprintf(path, sizeof(path), "%s/p%zu-%zu.msg", dir, s,
			    k);
			got = slurp(path, &n);
			if (open_msg(&rk, got, n, 777, &test_ctx, &out, &info,
			    &ei) != 0) {
				fail_msg("the SDK's %04x/%zu: %s", suites[s],
				    sizes[k], ei.message);
			}
			assert_int_equal(out.len, sizes[k]);
			if (sizes[k] > 0) {
				assert_memory_equal(out.p, pt, sizes[k]);
			}
			assert_int_equal(info.algorithm, suites[s]);
			assert_int_equal(info.frame_length, 1000);
			kms_envelope_info_free(&info);
			free(out.p);
			free(got);
			free(pt);
		}
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope_decrypts_published_sdk_vectors),
		cmocka_unit_test(
		    test_envelope_vector_with_any_bit_flipped_fails),
		cmocka_unit_test(
		    test_envelope_round_trips_sizes_around_a_frame),
		cmocka_unit_test(
		    test_envelope_derives_keys_as_the_specification),
		cmocka_unit_test(test_envelope_every_truncation_fails),
		cmocka_unit_test(
		    test_envelope_bit_flip_in_header_frames_footer_fails),
		cmocka_unit_test(
		    test_envelope_swapped_dropped_duplicated_frames_fail),
		cmocka_unit_test(test_envelope_transplanted_header_fails),
		cmocka_unit_test(
		    test_envelope_required_context_pairs_are_enforced),
		cmocka_unit_test(
		    test_envelope_refuses_non_committing_and_unknown_input),
		cmocka_unit_test(
		    test_envelope_refuses_reserved_context_keys_and_bad_frames),
		cmocka_unit_test(
		    test_envelope_interoperates_with_the_sdk_for_javascript),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

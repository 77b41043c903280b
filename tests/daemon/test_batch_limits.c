/*
 * test_batch_limits.c — Batches at the documented limits (PROTOCOL.md §4:
 * a message ≤ 1 MiB, an item ≤ 64 KiB, ≤ 1000 items), against a real kmsd
 * on a throwaway SoftHSM2 token, through libkmsclient and kmsctl.
 *
 * Every Batch within the limits succeeds item by item, for each batchable
 * cryptographic operation at the largest sizes the limits allow (1000
 * items as large as fit in one message, and items at the per-operation
 * maximum, as many as fit), and its whole reply, up to JSON_MAX_REPLY,
 * reaches the client.  What the limits refuse gets the documented typed
 * error.  Requests at the message limit are built here as JSON text, so
 * that their size is exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/b64.h"
#include "common/blob.h"
#include "common/json.h"
#include "kms.h"
#include "tests/testutil.h"

static struct tu_env env;
static kms_client *cl;
static char key[KMS_KEY_ID_LEN + 1], key2[KMS_KEY_ID_LEN + 1];

/* The contexts the raw requests carry. */
#define CTX_JSON "{\"purpose\":\"batch-limits\",\"tenant\":\"acme\"}"
#define CTX2_JSON "{\"purpose\":\"batch-limits\",\"stage\":\"re-encrypted\"}"
static const kms_context_pair ctx_pairs[] = {
	{ "purpose", "batch-limits" }, { "tenant", "acme" } };
static const kms_context ctx = { ctx_pairs, 2 };

#define BATCH_OPEN "{\"Action\":\"Batch\",\"Requests\":["
#define BATCH_CLOSE "]}"

static int
setup(void **state)
{
	if (tu_env_init(&env, NULL) != 0 || tu_kmsd_start(&env) != 0 ||
	    kms_client_open(&cl, env.endpoint) != 0) {
		return -1;
	}
	kms_client_set_timeout(cl, 60000);
	tu_new_key(cl, "batch limits", key, NULL);
	tu_new_key(cl, "batch limits, re-encrypted", key2, NULL);
	return 0;
}

static int
teardown(void **state)
{
	kms_client_close(cl);
	return tu_env_destroy(&env) == 0 ? 0 : -1;
}

/* ---- a growing string ---- */

struct sb {
	char *p;
	size_t len, cap;
};

static void sb_add(struct sb *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_add(struct sb *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	if (s->len + (size_t)n + 1 > s->cap) {
		s->cap = (s->len + (size_t)n + 1) * 2;
		assert_non_null(s->p = realloc(s->p, s->cap));
	}
	va_start(ap, fmt);
	vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
	va_end(ap);
	s->len += (size_t)n;
}

static char *
b64(const uint8_t *p, size_t n)
{
	size_t sz = B64_ENCODED_LEN(n) + 1;
	char *s = malloc(sz);

	assert_non_null(s);
	assert_int_equal(b64_encode(p, n, s, sz), 0);
	return s;
}

/* Decode a base64 member of o into a malloc'd buffer. */
static uint8_t *
unb64(json_t *o, const char *name, size_t *n)
{
	json_t *v = json_object_get(o, name);
	size_t cap;
	uint8_t *p;

	assert_true(json_is_string(v));
	cap = B64_DECODED_MAX(json_string_length(v)) + 1;
	assert_non_null(p = malloc(cap));
	assert_int_equal(b64_decode(json_string_value(v),
	    json_string_length(v), p, cap, n), 0);
	return p;
}

/* Plaintext i of n bytes: differs per item. */
static void
fill(uint8_t *p, size_t n, size_t i)
{
	size_t k;

	for (k = 0; k < n; k++) {
		p[k] = (uint8_t)(i * 131 + k * 7 + (k >> 8));
	}
}

/* An item's text: pre, the base64 of its blob, post. */
struct item_fmt {
	char pre[512], post[512];
};

/*
 * The largest blob (in bytes, a multiple of 3 so that its base64 has no
 * padding, at most max) such that n items of f fill one message to within
 * 5 bytes an item.
 */
static size_t
largest_blob(const struct item_fmt *f, size_t n, size_t max)
{
	size_t fixed = strlen(f->pre) + strlen(f->post), frame, per;

	frame = strlen(BATCH_OPEN) + strlen(BATCH_CLOSE) + (n - 1);
	per = (JSON_MAX_MESSAGE - frame) / n - fixed;	/* base64 chars */
	per = per / 4 * 3;
	return per < max ? per : max / 3 * 3;
}

/* The whole Batch of n items of f, one for each blob. */
static struct sb
batch_text(const struct item_fmt *f, uint8_t *const *blobs,
    const size_t *lens, size_t n)
{
	struct sb s = { 0 };
	size_t i;

	sb_add(&s, "%s", BATCH_OPEN);
	for (i = 0; i < n; i++) {
		char *t = b64(blobs[i], lens[i]);
		sb_add(&s, "%s%s%s%s", i ? "," : "", f->pre, t, f->post);
		free(t);
	}
	sb_add(&s, "%s", BATCH_CLOSE);
	return s;
}

/* Send a raw Batch of n items; every item must have succeeded.  Returns
 * the Responses array (the caller json_decref()s the reply, *replyp). */
static json_t *
call_batch(const struct sb *req, size_t n, json_t **replyp, size_t *rlenp)
{
	kms_error_info ei;
	char *reply = NULL;
	size_t rlen = 0, i;
	json_t *j, *resps, *it;
	json_error_t je;

	assert_true(req->len <= JSON_MAX_MESSAGE);
	tu_must(kms_call_json(cl, req->p, req->len, &reply, &rlen, &ei), &ei,
	    "Batch");
	assert_true(rlen <= JSON_MAX_REPLY);
	j = json_loadb(reply, rlen, 0, &je);
	kms_free(reply);
	assert_non_null(j);
	resps = json_object_get(j, "Responses");
	assert_true(json_is_array(resps));
	assert_int_equal(json_array_size(resps), n);
	json_array_foreach(resps, i, it) {
		if (json_object_get(it, "__type") != NULL) {
			fail_msg("item %zu of %zu: %s: %s", i, n,
			    json_string_value(json_object_get(it, "__type")),
			    json_string_value(json_object_get(it,
			    "message")));
		}
	}
	*replyp = j;
	if (rlenp != NULL) {
		*rlenp = rlen;
	}
	return resps;
}

static void
free_all(uint8_t **p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(p[i]);
	}
}

/* ---- the item texts ---- */

static struct item_fmt enc_f, dec_f, dec2_f, reenc_f;
static const struct item_fmt *const enc_fmt = &enc_f, *const dec_fmt =
    &dec_f, *const dec2_fmt = &dec2_f, *const reenc_fmt = &reenc_f;

static void
make_formats(void)
{
	snprintf(enc_f.pre, sizeof(enc_f.pre), "{\"Action\":\"Encrypt\","
	    "\"KeyId\":\"%s\",\"Plaintext\":\"", key);
	snprintf(enc_f.post, sizeof(enc_f.post), "\",\"EncryptionContext\":"
	    CTX_JSON "}");
	snprintf(dec_f.pre, sizeof(dec_f.pre), "{\"Action\":\"Decrypt\","
	    "\"KeyId\":\"%s\",\"CiphertextBlob\":\"", key);
	snprintf(dec_f.post, sizeof(dec_f.post), "\",\"EncryptionContext\":"
	    CTX_JSON "}");
	snprintf(dec2_f.pre, sizeof(dec2_f.pre), "{\"Action\":\"Decrypt\","
	    "\"KeyId\":\"%s\",\"CiphertextBlob\":\"", key2);
	snprintf(dec2_f.post, sizeof(dec2_f.post), "\","
	    "\"EncryptionContext\":" CTX2_JSON "}");
	snprintf(reenc_f.pre, sizeof(reenc_f.pre), "{\"Action\":\"ReEncrypt\","
	    "\"SourceKeyId\":\"%s\",\"CiphertextBlob\":\"", key);
	snprintf(reenc_f.post, sizeof(reenc_f.post), "\","
	    "\"SourceEncryptionContext\":" CTX_JSON ","
	    "\"DestinationKeyId\":\"%s\",\"DestinationEncryptionContext\":"
	    CTX2_JSON "}", key2);
}

/* Encrypt pts[0..n) (lens[i] bytes each) in one Batch; blobs out. */
static void
encrypt_all(uint8_t **pts, const size_t *lens, size_t n, uint8_t **blobs,
    size_t *bloblens)
{
	struct sb req = batch_text(enc_fmt, pts, lens, n);
	json_t *reply, *resps;
	size_t i;

	resps = call_batch(&req, n, &reply, NULL);
	for (i = 0; i < n; i++) {
		blobs[i] = unb64(json_array_get(resps, i), "CiphertextBlob",
		    &bloblens[i]);
		assert_int_equal(bloblens[i], lens[i] + BLOB_OVERHEAD);
	}
	json_decref(reply);
	free(req.p);
}

/* Decrypt blobs[0..n) with fmt in one Batch; each must give pts[i]. */
static void
decrypt_all(const struct item_fmt *fmt, uint8_t **blobs, const size_t *bloblens,
    size_t n, uint8_t **pts, const size_t *lens)
{
	struct sb req = batch_text(fmt, blobs, bloblens, n);
	json_t *reply, *resps;
	uint8_t *p;
	size_t i, m;

	resps = call_batch(&req, n, &reply, NULL);
	for (i = 0; i < n; i++) {
		p = unb64(json_array_get(resps, i), "Plaintext", &m);
		assert_int_equal(m, lens[i]);
		assert_memory_equal(p, pts[i], m);
		free(p);
	}
	json_decref(reply);
	free(req.p);
}

/* n plaintexts of len bytes. */
static void
plaintexts(uint8_t **pts, size_t *lens, size_t n, size_t len)
{
	size_t i;

	for (i = 0; i < n; i++) {
		assert_non_null(pts[i] = malloc(len ? len : 1));
		fill(pts[i], len, i);
		lens[i] = len;
	}
}

/* ---- the tests ---- */

static void
test_1000_encrypts_as_large_as_fit_in_a_message_all_succeed(void **state)
{
	static uint8_t *pts[KMS_MAX_BATCH], *blobs[KMS_MAX_BATCH];
	static size_t lens[KMS_MAX_BATCH], bloblens[KMS_MAX_BATCH];
	size_t n = KMS_MAX_BATCH, p;
	struct sb req;

	make_formats();
	p = largest_blob(enc_fmt, n, KMS_MAX_PLAINTEXT);
	plaintexts(pts, lens, n, p);
	/* The message is at the limit, to within 5 bytes an item. */
	req = batch_text(enc_fmt, pts, lens, n);
	assert_true(req.len <= JSON_MAX_MESSAGE);
	assert_true(req.len + 5 * n > JSON_MAX_MESSAGE);
	free(req.p);
	encrypt_all(pts, lens, n, blobs, bloblens);
	/* They open again (in as many Batches as their blobs need). */
	decrypt_all(dec_fmt, blobs, bloblens, n / 2, pts, lens);
	decrypt_all(dec_fmt, blobs + n / 2, bloblens + n / 2, n - n / 2,
	    pts + n / 2, lens + n / 2);
	free_all(pts, n);
	free_all(blobs, n);
}

static void
test_1000_decrypts_and_re_encrypts_as_large_as_fit_all_succeed(void **state)
{
	static uint8_t *pts[KMS_MAX_BATCH], *blobs[KMS_MAX_BATCH],
	    *blobs2[KMS_MAX_BATCH];
	static size_t lens[KMS_MAX_BATCH], bloblens[KMS_MAX_BATCH],
	    bloblens2[KMS_MAX_BATCH];
	size_t n = KMS_MAX_BATCH, l, i, m;
	json_t *reply, *resps;
	struct sb req;

	make_formats();
	/* Decrypt: the largest ciphertexts 1000 of which fit. */
	l = largest_blob(dec_fmt, n, KMS_MAX_CIPHERTEXT);
	plaintexts(pts, lens, n, l - BLOB_OVERHEAD);
	encrypt_all(pts, lens, n, blobs, bloblens);
	req = batch_text(dec_fmt, blobs, bloblens, n);
	assert_true(req.len + 5 * n > JSON_MAX_MESSAGE);
	free(req.p);
	decrypt_all(dec_fmt, blobs, bloblens, n, pts, lens);
	free_all(pts, n);
	free_all(blobs, n);

	/* ReEncrypt: the same, from key to key2, context to context. */
	l = largest_blob(reenc_fmt, n, KMS_MAX_CIPHERTEXT);
	plaintexts(pts, lens, n, l - BLOB_OVERHEAD);
	encrypt_all(pts, lens, n, blobs, bloblens);
	req = batch_text(reenc_fmt, blobs, bloblens, n);
	assert_true(req.len + 5 * n > JSON_MAX_MESSAGE);
	resps = call_batch(&req, n, &reply, NULL);
	for (i = 0; i < n; i++) {
		json_t *it = json_array_get(resps, i);
		blobs2[i] = unb64(it, "CiphertextBlob", &m);
		bloblens2[i] = m;
		assert_int_equal(m, bloblens[i]);
		assert_non_null(strstr(json_string_value(json_object_get(it,
		    "KeyId")), key2));
	}
	json_decref(reply);
	free(req.p);
	decrypt_all(dec2_fmt, blobs2, bloblens2, n, pts, lens);
	free_all(pts, n);
	free_all(blobs, n);
	free_all(blobs2, n);
}

static void
test_largest_plaintexts_encrypt_decrypt_and_re_encrypt_as_many_as_fit(
    void **state)
{
	static uint8_t *pts[KMS_MAX_BATCH], *blobs[KMS_MAX_BATCH],
	    *blobs2[KMS_MAX_BATCH];
	static size_t lens[KMS_MAX_BATCH], bloblens[KMS_MAX_BATCH],
	    bloblens2[KMS_MAX_BATCH];
	size_t n, nd, nr, i, m;
	json_t *reply, *resps;
	struct sb req;

	make_formats();
	/* As many 4096-byte plaintexts as one message holds. */
	plaintexts(pts, lens, 1, KMS_MAX_PLAINTEXT);
	req = batch_text(enc_fmt, pts, lens, 1);
	n = (JSON_MAX_MESSAGE - strlen(BATCH_OPEN) - strlen(BATCH_CLOSE)) /
	    (req.len - strlen(BATCH_OPEN) - strlen(BATCH_CLOSE) + 1);
	free(req.p);
	free_all(pts, 1);
	assert_true(n > 100 && n < KMS_MAX_BATCH);
	plaintexts(pts, lens, n, KMS_MAX_PLAINTEXT);
	encrypt_all(pts, lens, n, blobs, bloblens);

	/* Their 4145-byte ciphertexts: as many as a message holds. */
	req = batch_text(dec_fmt, blobs, bloblens, 1);
	nd = (JSON_MAX_MESSAGE - strlen(BATCH_OPEN) - strlen(BATCH_CLOSE)) /
	    (req.len - strlen(BATCH_OPEN) - strlen(BATCH_CLOSE) + 1);
	free(req.p);
	assert_true(nd <= n);
	decrypt_all(dec_fmt, blobs, bloblens, nd, pts, lens);

	req = batch_text(reenc_fmt, blobs, bloblens, 1);
	nr = (JSON_MAX_MESSAGE - strlen(BATCH_OPEN) - strlen(BATCH_CLOSE)) /
	    (req.len - strlen(BATCH_OPEN) - strlen(BATCH_CLOSE) + 1);
	free(req.p);
	req = batch_text(reenc_fmt, blobs, bloblens, nr);
	resps = call_batch(&req, nr, &reply, NULL);
	for (i = 0; i < nr; i++) {
		blobs2[i] = unb64(json_array_get(resps, i), "CiphertextBlob",
		    &m);
		bloblens2[i] = m;
	}
	json_decref(reply);
	free(req.p);
	decrypt_all(dec2_fmt, blobs2, bloblens2, nr, pts, lens);
	free_all(pts, n);
	free_all(blobs, n);
	free_all(blobs2, nr);
}

/* GenerateDataKey(WithoutPlaintext) of 1024 bytes × 1000, with a
 * context, through the typed Batch call. */
static void
data_keys(kms_batch_op op)
{
	static kms_batch_item items[KMS_MAX_BATCH];
	kms_decrypt_req dr;
	kms_decrypt_resp dp;
	kms_error_info ei;
	size_t i;

	memset(items, 0, sizeof(items));
	for (i = 0; i < KMS_MAX_BATCH; i++) {
		items[i].op = op;
		items[i].req.generate_data_key.key_id = key;
		items[i].req.generate_data_key.number_of_bytes =
		    KMS_MAX_DATA_KEY_BYTES;
		items[i].req.generate_data_key.context = ctx;
	}
	tu_must(kms_batch(cl, items, KMS_MAX_BATCH, &ei), &ei, "Batch");
	for (i = 0; i < KMS_MAX_BATCH; i++) {
		kms_generate_data_key_resp *g = &items[i].resp.generate_data_key;
		if (items[i].err.code != 0) {
			fail_msg("item %zu: %s: %s", i, items[i].err.name,
			    items[i].err.message);
		}
		assert_int_equal(g->ciphertext_blob.len,
		    KMS_MAX_DATA_KEY_BYTES + BLOB_OVERHEAD);
		assert_int_equal(g->plaintext.len,
		    op == KMS_BATCH_GENERATE_DATA_KEY ?
		    KMS_MAX_DATA_KEY_BYTES : 0);
	}
	/* The first, a middle and the last blob hold their data keys. */
	for (i = 0; i < KMS_MAX_BATCH; i += KMS_MAX_BATCH / 2 - 1) {
		kms_generate_data_key_resp *g = &items[i].resp.generate_data_key;
		memset(&dr, 0, sizeof(dr));
		dr.ciphertext_blob = g->ciphertext_blob.data;
		dr.ciphertext_len = g->ciphertext_blob.len;
		dr.context = ctx;
		tu_must(kms_decrypt(cl, &dr, &dp, &ei), &ei, "Decrypt");
		assert_int_equal(dp.plaintext.len, KMS_MAX_DATA_KEY_BYTES);
		if (op == KMS_BATCH_GENERATE_DATA_KEY) {
			assert_memory_equal(dp.plaintext.data,
			    g->plaintext.data, KMS_MAX_DATA_KEY_BYTES);
		}
		kms_decrypt_resp_free(&dp);
	}
	for (i = 0; i < KMS_MAX_BATCH; i++) {
		kms_batch_item_free(&items[i]);
	}
}

static void
test_1000_data_keys_of_1024_bytes_all_succeed(void **state)
{
	data_keys(KMS_BATCH_GENERATE_DATA_KEY);
}

static void
test_1000_data_keys_without_plaintext_of_1024_bytes_all_succeed(
    void **state)
{
	data_keys(KMS_BATCH_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT);
}

static void
test_1000_random_of_1024_bytes_get_their_whole_reply(void **state)
{
	struct sb req = { 0 };
	json_t *reply, *resps;
	size_t i, m, rlen = 0;
	uint8_t *p, *first = NULL;

	sb_add(&req, "%s", BATCH_OPEN);
	for (i = 0; i < KMS_MAX_BATCH; i++) {
		sb_add(&req, "%s{\"Action\":\"GenerateRandom\","
		    "\"NumberOfBytes\":%d}", i ? "," : "",
		    KMS_MAX_RANDOM_BYTES);
	}
	sb_add(&req, "%s", BATCH_CLOSE);
	/* A small request (53 KB) whose reply is larger than a request
	 * may be. */
	resps = call_batch(&req, KMS_MAX_BATCH, &reply, &rlen);
	assert_true(rlen > JSON_MAX_MESSAGE);
	for (i = 0; i < KMS_MAX_BATCH; i++) {
		p = unb64(json_array_get(resps, i), "Plaintext", &m);
		assert_int_equal(m, KMS_MAX_RANDOM_BYTES);
		if (first == NULL) {
			first = p;
		} else {
			assert_memory_not_equal(p, first, m);
			free(p);
		}
	}
	free(first);
	json_decref(reply);
	free(req.p);
}

/* The mix that needs the most locked memory per byte of request: the
 * largest ReEncrypts (their plaintexts wait in the scratch for the
 * Batch's HSM turn) and 1024-byte data keys in the rest of the items. */
static void
test_largest_re_encrypts_mixed_with_data_keys_all_succeed(void **state)
{
	static uint8_t *pts[KMS_MAX_BATCH], *blobs[KMS_MAX_BATCH];
	static size_t lens[KMS_MAX_BATCH], bloblens[KMS_MAX_BATCH];
	char gdk[256], *t;
	struct sb req = { 0 };
	json_t *reply;
	size_t k, i, one;

	make_formats();
	snprintf(gdk, sizeof(gdk), "{\"Action\":\"GenerateDataKey\","
	    "\"KeyId\":\"%s\",\"NumberOfBytes\":%d,\"EncryptionContext\":"
	    CTX_JSON "}", key, KMS_MAX_DATA_KEY_BYTES);
	plaintexts(pts, lens, 1, KMS_MAX_PLAINTEXT);
	encrypt_all(pts, lens, 1, blobs, bloblens);
	t = b64(blobs[0], bloblens[0]);
	one = strlen(reenc_f.pre) + strlen(t) + strlen(reenc_f.post);
	free(t);
	/* k ReEncrypts and 1000 - k data keys in one message. */
	for (k = KMS_MAX_BATCH; k > 0; k--) {
		if (strlen(BATCH_OPEN) + strlen(BATCH_CLOSE) + k * one +
		    (KMS_MAX_BATCH - k) * strlen(gdk) + KMS_MAX_BATCH - 1 <=
		    JSON_MAX_MESSAGE) {
			break;
		}
	}
	assert_true(k > 100);
	free_all(pts, 1);
	free_all(blobs, 1);
	plaintexts(pts, lens, k, KMS_MAX_PLAINTEXT);
	encrypt_all(pts, lens, k, blobs, bloblens);
	sb_add(&req, "%s", BATCH_OPEN);
	for (i = 0; i < KMS_MAX_BATCH; i++) {
		sb_add(&req, "%s", i ? "," : "");
		if (i % (KMS_MAX_BATCH / k) == 0 && i / (KMS_MAX_BATCH / k) <
		    k) {
			t = b64(blobs[i / (KMS_MAX_BATCH / k)],
			    bloblens[i / (KMS_MAX_BATCH / k)]);
			sb_add(&req, "%s%s%s", reenc_f.pre, t, reenc_f.post);
			free(t);
		} else {
			sb_add(&req, "%s", gdk);
		}
	}
	sb_add(&req, "%s", BATCH_CLOSE);
	(void)call_batch(&req, KMS_MAX_BATCH, &reply, NULL);
	json_decref(reply);
	free(req.p);
	free_all(pts, k);
	free_all(blobs, k);
}

static void
test_1001_items_and_oversized_messages_get_typed_errors(void **state)
{
	static kms_batch_item items[KMS_MAX_BATCH + 1];
	struct sb req = { 0 };
	kms_error_info ei;
	char *reply = NULL, *pad;
	size_t i, rlen = 0;
	json_t *j, *resps;

	/* 1001 items: libkmsclient refuses them ... */
	memset(items, 0, sizeof(items));
	for (i = 0; i <= KMS_MAX_BATCH; i++) {
		items[i].op = KMS_BATCH_GENERATE_DATA_KEY;
		items[i].req.generate_data_key.key_id = key;
		items[i].req.generate_data_key.key_spec = "AES_256";
	}
	assert_int_equal(kms_batch(cl, items, KMS_MAX_BATCH + 1, &ei),
	    KMS_EINVAL);
	/* ... and kmsd, sent them raw, answers one ValidationException. */
	sb_add(&req, "%s", BATCH_OPEN);
	for (i = 0; i <= KMS_MAX_BATCH; i++) {
		sb_add(&req, "%s{\"Action\":\"GenerateRandom\","
		    "\"NumberOfBytes\":1}", i ? "," : "");
	}
	sb_add(&req, "%s", BATCH_CLOSE);
	assert_int_equal(kms_call_json(cl, req.p, req.len, &reply, &rlen,
	    &ei), KMS_EVALIDATION);
	assert_string_equal(ei.name, "ValidationException");
	assert_non_null(strstr(ei.message, "1 to 1000"));
	kms_free(reply);
	free(req.p);

	/* A message over 1 MiB is refused before it is sent. */
	assert_non_null(pad = malloc(JSON_MAX_MESSAGE + 2));
	memset(pad, ' ', JSON_MAX_MESSAGE + 1);
	pad[0] = '{';
	pad[JSON_MAX_MESSAGE] = '}';
	pad[JSON_MAX_MESSAGE + 1] = '\0';
	reply = NULL;
	assert_int_equal(kms_call_json(cl, pad, JSON_MAX_MESSAGE + 1, &reply,
	    &rlen, &ei), KMS_EINVAL);
	assert_null(reply);
	free(pad);

	/* An item over 64 KiB in a message within 1 MiB: that item alone
	 * is refused. */
	memset(&req, 0, sizeof(req));
	assert_non_null(pad = malloc(JSON_MAX_REQUEST + 1));
	memset(pad, 'a', JSON_MAX_REQUEST);
	pad[JSON_MAX_REQUEST] = '\0';
	sb_add(&req, "%s{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":8,"
	    "\"Padding\":\"%s\"},{\"Action\":\"GenerateRandom\","
	    "\"NumberOfBytes\":8}%s", BATCH_OPEN, pad, BATCH_CLOSE);
	free(pad);
	tu_must(kms_call_json(cl, req.p, req.len, &reply, &rlen, &ei), &ei,
	    "Batch");
	assert_non_null(j = json_loadb(reply, rlen, 0, NULL));
	kms_free(reply);
	resps = json_object_get(j, "Responses");
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(resps, 0), "__type")), "ValidationException");
	assert_null(json_object_get(json_array_get(resps, 1), "__type"));
	json_decref(j);
	free(req.p);

	/* An item whose error message would quote its Action cut inside a
	 * UTF-8 sequence: that item fails, not the Batch. */
	memset(&req, 0, sizeof(req));
	sb_add(&req, "%s{\"Action\":\"%s\xc3\xa9\"},{\"Action\":"
	    "\"GenerateRandom\",\"NumberOfBytes\":8}%s", BATCH_OPEN,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    BATCH_CLOSE);
	tu_must(kms_call_json(cl, req.p, req.len, &reply, &rlen, &ei), &ei,
	    "Batch");
	assert_non_null(j = json_loadb(reply, rlen, 0, NULL));
	kms_free(reply);
	resps = json_object_get(j, "Responses");
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(resps, 0), "__type")), "UnknownOperationException");
	assert_null(json_object_get(json_array_get(resps, 1), "__type"));
	json_decref(j);
	free(req.p);

	/* And the daemon serves on. */
	{
		kms_secret s = { 0 };
		tu_must(kms_generate_random(cl, 16, &s, &ei), &ei,
		    "GenerateRandom");
		kms_secret_free(&s);
	}
}

/*
 * DescribeKey answers with the key's description, not with the request's
 * bytes: 1000 of a key with a long description would answer tens of
 * megabytes.  kmsd answers as many as JSON_MAX_REPLY holds and a
 * ValidationException for the rest; the reply, the largest a request can
 * get, reaches libkmsclient and kmsctl whole.
 */
static void
test_describe_key_batches_stay_within_the_reply_limit(void **state)
{
	char desc[8192 + 1], big[KMS_KEY_ID_LEN + 1], path[300], cmd[1024];
	char *reply = NULL, *out = NULL, *err = NULL;
	struct sb req = { 0 };
	kms_error_info ei;
	size_t i, rlen = 0, ok = 0;
	json_t *j, *resps, *it;
	FILE *f;
	int rc;

	/* Each '"' is escaped in the reply: 2 bytes of JSON apiece. */
	memset(desc, '"', sizeof(desc) - 1);
	desc[sizeof(desc) - 1] = '\0';
	tu_new_key(cl, desc, big, NULL);
	sb_add(&req, "%s", BATCH_OPEN);
	for (i = 0; i < KMS_MAX_BATCH; i++) {
		sb_add(&req, "%s{\"Action\":\"DescribeKey\",\"KeyId\":\"%s\"}",
		    i ? "," : "", big);
	}
	sb_add(&req, "%s", BATCH_CLOSE);
	tu_must(kms_call_json(cl, req.p, req.len, &reply, &rlen, &ei), &ei,
	    "Batch");
	assert_true(rlen <= JSON_MAX_REPLY);
	assert_true(rlen > JSON_MAX_REPLY * 9 / 10);
	assert_non_null(j = json_loadb(reply, rlen, 0, NULL));
	kms_free(reply);
	resps = json_object_get(j, "Responses");
	assert_int_equal(json_array_size(resps), KMS_MAX_BATCH);
	json_array_foreach(resps, i, it) {
		if (json_object_get(it, "__type") == NULL) {
			assert_int_equal(ok, i);	/* a prefix */
			assert_string_equal(json_string_value(
			    json_object_get(json_object_get(it,
			    "KeyMetadata"), "Description")), desc);
			ok++;
			continue;
		}
		assert_string_equal(json_string_value(json_object_get(it,
		    "__type")), "ValidationException");
		assert_non_null(strstr(json_string_value(json_object_get(it,
		    "message")), "reply would exceed"));
	}
	assert_true(ok > 200 && ok < KMS_MAX_BATCH);
	json_decref(j);

	/* kmsctl: the same request from a file, the same whole reply. */
	snprintf(path, sizeof(path), "%s/describe-batch.json", env.dir);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(req.p, 1, req.len, f), req.len);
	fclose(f);
	free(req.p);
	snprintf(cmd, sizeof(cmd), "%s --endpoint %s call file://%s",
	    tu_bin("kmsctl"), env.endpoint, path);
	rc = tu_run(cmd, &out, &err);
	if (rc != 0) {
		fail_msg("kmsctl: exit %d: %s", rc, err);
	}
	assert_non_null(j = json_loads(out, 0, NULL));
	resps = json_object_get(j, "Responses");
	assert_int_equal(json_array_size(resps), KMS_MAX_BATCH);
	assert_null(json_object_get(json_array_get(resps, ok - 1), "__type"));
	json_decref(j);
	free(out);
	free(err);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(
	    test_1000_encrypts_as_large_as_fit_in_a_message_all_succeed),
	cmocka_unit_test(
	    test_1000_decrypts_and_re_encrypts_as_large_as_fit_all_succeed),
	cmocka_unit_test(
	    test_largest_plaintexts_encrypt_decrypt_and_re_encrypt_as_many_as_fit),
	cmocka_unit_test(test_1000_data_keys_of_1024_bytes_all_succeed),
	cmocka_unit_test(
	    test_1000_data_keys_without_plaintext_of_1024_bytes_all_succeed),
	cmocka_unit_test(test_1000_random_of_1024_bytes_get_their_whole_reply),
	cmocka_unit_test(
	    test_largest_re_encrypts_mixed_with_data_keys_all_succeed),
	cmocka_unit_test(
	    test_1001_items_and_oversized_messages_get_typed_errors),
	cmocka_unit_test(test_describe_key_batches_stay_within_the_reply_limit),
};

int
main(void)
{
	if (getenv("KMS_TEST_FILTER") != NULL) {
		cmocka_set_test_filter(getenv("KMS_TEST_FILTER"));
	}
	return cmocka_run_group_tests_name("batch limits", tests, setup,
	    teardown);
}

/*
 * ops_crypto.c — the cryptographic calls (Encrypt, Decrypt, ReEncrypt,
 * GenerateDataKey[WithoutPlaintext], GenerateRandom) and Batch, which
 * carries several of them in one round trip.
 *
 * Request and reply codecs live in codec.c so that a Batch item is built
 * and read exactly as the single call is.  Plaintexts come back in
 * kms_secret (locked memory), wiped by the *_free functions.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "libkmsclient/client.h"

#define NOMEM(ei) client_fail((ei), KMS_ENOMEM, "Out of memory")

/* Round trip for a built request (consumed). */
static int
call(kms_client *c, json_t *req, json_t **replyp, kms_error_info *ei)
{
	int r = client_call(c, req, replyp, ei);

	json_decref(req);
	return r;
}

KMS_API int
kms_encrypt(kms_client *c, const kms_encrypt_req *req, kms_encrypt_resp *out,
    kms_error_info *ei)
{
	json_t *o = NULL, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || out == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if ((r = build_encrypt(req, &o, ei)) != 0 ||
	    (r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	r = parse_encrypt(reply, out, ei);
	json_decref(reply);
	return r;
}

KMS_API void
kms_encrypt_resp_free(kms_encrypt_resp *r)
{
	if (r != NULL) {
		kms_buf_free(&r->ciphertext_blob);
	}
}

KMS_API int
kms_decrypt(kms_client *c, const kms_decrypt_req *req, kms_decrypt_resp *out,
    kms_error_info *ei)
{
	json_t *o = NULL, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || out == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if ((r = build_decrypt(req, &o, ei)) != 0 ||
	    (r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	r = parse_decrypt(reply, out, ei);
	json_decref(reply);
	return r;
}

KMS_API void
kms_decrypt_resp_free(kms_decrypt_resp *r)
{
	if (r != NULL) {
		kms_secret_free(&r->plaintext);
	}
}

KMS_API int
kms_re_encrypt(kms_client *c, const kms_re_encrypt_req *req,
    kms_re_encrypt_resp *out, kms_error_info *ei)
{
	json_t *o = NULL, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || out == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if ((r = build_re_encrypt(req, &o, ei)) != 0 ||
	    (r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	r = parse_re_encrypt(reply, out, ei);
	json_decref(reply);
	return r;
}

KMS_API void
kms_re_encrypt_resp_free(kms_re_encrypt_resp *r)
{
	if (r != NULL) {
		kms_buf_free(&r->ciphertext_blob);
	}
}

static int
generate_data_key(kms_client *c, const kms_generate_data_key_req *req,
    int with_plaintext, kms_generate_data_key_resp *out, kms_error_info *ei)
{
	json_t *o = NULL, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || out == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if ((r = build_generate_data_key(req, with_plaintext, &o, ei)) != 0 ||
	    (r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	r = parse_generate_data_key(reply, with_plaintext, out, ei);
	json_decref(reply);
	return r;
}

KMS_API int
kms_generate_data_key(kms_client *c, const kms_generate_data_key_req *req,
    kms_generate_data_key_resp *out, kms_error_info *ei)
{
	return generate_data_key(c, req, 1, out, ei);
}

KMS_API int
kms_generate_data_key_without_plaintext(kms_client *c,
    const kms_generate_data_key_req *req, kms_generate_data_key_resp *out,
    kms_error_info *ei)
{
	return generate_data_key(c, req, 0, out, ei);
}

KMS_API void
kms_generate_data_key_resp_free(kms_generate_data_key_resp *r)
{
	if (r != NULL) {
		kms_secret_free(&r->plaintext);
		kms_buf_free(&r->ciphertext_blob);
	}
}

KMS_API int
kms_generate_random(kms_client *c, size_t n, kms_secret *out,
    kms_error_info *ei)
{
	json_t *o, *reply = NULL;
	kms_secret s = { NULL, 0 };
	int r;

	client_ok(ei);
	if (c == NULL || out == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	/* Out-of-range sizes are sent: the daemon's validation answers. */
	if ((o = codec_request("GenerateRandom")) == NULL ||
	    json_object_set_new(o, "NumberOfBytes",
	    json_integer(n > (size_t)INT32_MAX ? INT32_MAX :
	    (json_int_t)n)) != 0) {
		json_decref(o);
		return NOMEM(ei);
	}
	if ((r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	r = codec_get_secret(reply, "Plaintext", &s, 1, ei);
	json_decref(reply);
	if (r != 0) {
		return r;
	}
	*out = s;
	return 0;
}

/* ----------------------------------------------------------- batch */

static int
build_item(const kms_batch_item *it, json_t **op, kms_error_info *ei)
{
	switch (it->op) {
	case KMS_BATCH_ENCRYPT:
		return build_encrypt(&it->req.encrypt, op, ei);
	case KMS_BATCH_DECRYPT:
		return build_decrypt(&it->req.decrypt, op, ei);
	case KMS_BATCH_RE_ENCRYPT:
		return build_re_encrypt(&it->req.re_encrypt, op, ei);
	case KMS_BATCH_GENERATE_DATA_KEY:
		return build_generate_data_key(&it->req.generate_data_key, 1,
		    op, ei);
	case KMS_BATCH_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT:
		return build_generate_data_key(&it->req.generate_data_key, 0,
		    op, ei);
	}
	return client_fail(ei, KMS_EINVAL, "Unknown batch operation %d",
	    (int)it->op);
}

static int
parse_item(const json_t *reply, kms_batch_item *it, kms_error_info *ei)
{
	switch (it->op) {
	case KMS_BATCH_ENCRYPT:
		return parse_encrypt(reply, &it->resp.encrypt, ei);
	case KMS_BATCH_DECRYPT:
		return parse_decrypt(reply, &it->resp.decrypt, ei);
	case KMS_BATCH_RE_ENCRYPT:
		return parse_re_encrypt(reply, &it->resp.re_encrypt, ei);
	case KMS_BATCH_GENERATE_DATA_KEY:
		return parse_generate_data_key(reply, 1,
		    &it->resp.generate_data_key, ei);
	case KMS_BATCH_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT:
		return parse_generate_data_key(reply, 0,
		    &it->resp.generate_data_key, ei);
	}
	return client_fail(ei, KMS_EPROTO, "Unknown batch operation");
}

KMS_API int
kms_batch(kms_client *c, kms_batch_item *items, size_t n, kms_error_info *ei)
{
	json_t *o = NULL, *reqs, *one = NULL, *reply = NULL, *resps;
	size_t i;
	int r;

	client_ok(ei);
	if (c == NULL || items == NULL || n == 0 || n > KMS_MAX_BATCH) {
		return client_fail(ei, KMS_EINVAL, "A batch holds 1 to %d "
		    "items", KMS_MAX_BATCH);
	}
	/* Outputs start empty, so kms_batch_item_free is always safe. */
	for (i = 0; i < n; i++) {
		memset(&items[i].err, 0, sizeof(items[i].err));
		memset(&items[i].resp, 0, sizeof(items[i].resp));
	}
	if ((o = codec_request("Batch")) == NULL ||
	    (reqs = json_array()) == NULL) {
		json_decref(o);
		return NOMEM(ei);
	}
	if (json_object_set_new(o, "Requests", reqs) != 0) {
		json_decref(o);
		return NOMEM(ei);
	}
	for (i = 0; i < n; i++) {
		if ((r = build_item(&items[i], &one, ei)) != 0) {
			json_decref(o);
			if (ei != NULL) {
				char m[KMS_ERROR_MESSAGE_MAX];
				snprintf(m, sizeof(m), "%s", ei->message);
				snprintf(ei->message, sizeof(ei->message),
				    "Batch item %zu: %s", i, m);
			}
			return r;
		}
		if (json_array_append_new(reqs, one) != 0) {
			json_decref(o);
			return NOMEM(ei);
		}
	}
	if ((r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	resps = json_object_get(reply, "Responses");
	if (!json_is_array(resps) || json_array_size(resps) != n) {
		json_decref(reply);
		return client_fail(ei, KMS_EPROTO, "The Batch reply does not "
		    "hold %zu responses", n);
	}
	/* One item's failure, even one we cannot read, fails only it. */
	for (i = 0; i < n; i++) {
		const json_t *item = json_array_get(resps, i);
		if (client_reply_status(item, &items[i].err) == 0) {
			(void)parse_item(item, &items[i], &items[i].err);
		}
	}
	json_decref(reply);
	return 0;
}

KMS_API void
kms_batch_item_free(kms_batch_item *it)
{
	if (it == NULL) {
		return;
	}
	switch (it->op) {
	case KMS_BATCH_ENCRYPT:
		kms_encrypt_resp_free(&it->resp.encrypt);
		break;
	case KMS_BATCH_DECRYPT:
		kms_decrypt_resp_free(&it->resp.decrypt);
		break;
	case KMS_BATCH_RE_ENCRYPT:
		kms_re_encrypt_resp_free(&it->resp.re_encrypt);
		break;
	case KMS_BATCH_GENERATE_DATA_KEY:
	case KMS_BATCH_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT:
		kms_generate_data_key_resp_free(&it->resp.generate_data_key);
		break;
	}
	memset(&it->resp, 0, sizeof(it->resp));
}

/*
 * codec.c — JSON members of requests and replies, as AWS JSON 1.1 has
 * them: binary fields in standard base64, encryption contexts as objects of
 * strings, grant tokens as arrays of strings.
 *
 * Replies are untrusted: every member is type-checked, copied only into
 * buffers it fits, and base64 is decoded strictly.  Plaintexts are decoded
 * straight into secure memory; their base64 form lives only in jansson
 * strings, which the wiping allocator zeroes on free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/b64.h"
#include "common/err.h"
#include "common/secmem.h"
#include "libkmsclient/client.h"

json_t *
codec_request(const char *action)
{
	json_t *o = json_object();

	if (o != NULL && json_object_set_new(o, "Action",
	    json_string(action)) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
codec_put_string(json_t *o, const char *name, const char *s)
{
	json_t *v;

	if (s == NULL) {
		return 0;
	}
	/* Not UTF-8 is still sent (as the bytes jansson accepts). */
	if ((v = json_string(s)) == NULL) {
		v = json_stringn_nocheck(s, strlen(s));
	}
	if (v == NULL || json_object_set_new(o, name, v) != 0) {
		return KMS_ENOMEM;
	}
	return 0;
}

/* Encode into secure memory when the bytes are secret, so that the only
 * other copy is the jansson string (wiped on free). */
static int
put_b64(json_t *o, const char *name, const uint8_t *p, size_t len,
    int secret)
{
	size_t n = B64_ENCODED_LEN(len) + 1;
	char *text;
	json_t *v;
	int r = KMS_ENOMEM;

	text = secret ? secure_alloc_fast(n) : malloc(n);
	if (text == NULL) {
		return KMS_ENOMEM;
	}
	if (b64_encode(p, len, text, n) != 0) {
		r = KMS_EINTERNAL;
		goto out;
	}
	if ((v = json_stringn_nocheck(text, n - 1)) == NULL ||
	    json_object_set_new(o, name, v) != 0) {
		goto out;
	}
	r = 0;
 out:
	if (secret) {
		secure_free(text, n);
	} else {
		free(text);
	}
	return r;
}

int
codec_put_blob(json_t *o, const char *name, const uint8_t *p, size_t len)
{
	static const uint8_t none[1];

	return put_b64(o, name, p != NULL ? p : none, len, 0);
}

/* Plaintexts and data keys: the encoding buffer is locked and wiped. */
static int
codec_put_secret(json_t *o, const char *name, const uint8_t *p, size_t len)
{
	static const uint8_t none[1];

	return put_b64(o, name, p != NULL ? p : none, len, 1);
}

int
codec_put_context(json_t *o, const char *name, const kms_context *ctx,
    kms_error_info *ei)
{
	json_t *obj;
	size_t i;

	if (ctx == NULL || ctx->npairs == 0) {
		return 0;
	}
	if (ctx->pairs == NULL) {
		return client_fail(ei, KMS_EINVAL, "%s: %zu pairs but no "
		    "array", name, ctx->npairs);
	}
	if ((obj = json_object()) == NULL) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	for (i = 0; i < ctx->npairs; i++) {
		const kms_context_pair *p = &ctx->pairs[i];
		if (p->key == NULL || p->value == NULL) {
			json_decref(obj);
			return client_fail(ei, KMS_EINVAL, "%s: pair %zu has a "
			    "NULL key or value", name, i);
		}
		/* A JSON object cannot carry a key twice. */
		if (json_object_get(obj, p->key) != NULL) {
			json_decref(obj);
			return client_fail(ei, KMS_EINVAL, "%s: duplicate key "
			    "\"%.64s\"", name, p->key);
		}
		if (codec_put_string(obj, p->key, p->value) != 0) {
			json_decref(obj);
			return client_fail(ei, KMS_ENOMEM, "Out of memory");
		}
	}
	if (json_object_set_new(o, name, obj) != 0) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	return 0;
}

int
codec_put_grant_tokens(json_t *o, const kms_grant_tokens *gt,
    kms_error_info *ei)
{
	json_t *arr;
	size_t i;

	if (gt == NULL || gt->ntokens == 0) {
		return 0;
	}
	if (gt->tokens == NULL) {
		return client_fail(ei, KMS_EINVAL, "GrantTokens: %zu tokens "
		    "but no array", gt->ntokens);
	}
	if ((arr = json_array()) == NULL) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	for (i = 0; i < gt->ntokens; i++) {
		if (gt->tokens[i] == NULL) {
			json_decref(arr);
			return client_fail(ei, KMS_EINVAL, "GrantTokens: token "
			    "%zu is NULL", i);
		}
		if (json_array_append_new(arr, json_string(gt->tokens[i])) !=
		    0) {
			json_decref(arr);
			return client_fail(ei, KMS_ENOMEM, "Out of memory");
		}
	}
	if (json_object_set_new(o, "GrantTokens", arr) != 0) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	return 0;
}

int
codec_get_string(const json_t *o, const char *name, char *buf, size_t sz,
    int required, kms_error_info *ei)
{
	const json_t *v = json_object_get(o, name);

	buf[0] = '\0';
	if (v == NULL) {
		if (required) {
			return client_fail(ei, KMS_EPROTO, "The reply has no "
			    "\"%s\"", name);
		}
		return 0;
	}
	if (!json_is_string(v)) {
		return client_fail(ei, KMS_EPROTO, "The reply's \"%s\" is not "
		    "a string", name);
	}
	if (json_string_length(v) >= sz ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		return client_fail(ei, KMS_EPROTO, "The reply's \"%s\" is too "
		    "long or holds NUL", name);
	}
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

int
codec_get_number(const json_t *o, const char *name, double *out,
    kms_error_info *ei)
{
	const json_t *v = json_object_get(o, name);

	*out = 0;
	if (v == NULL) {
		return 0;
	}
	if (!json_is_number(v)) {
		return client_fail(ei, KMS_EPROTO, "The reply's \"%s\" is not "
		    "a number", name);
	}
	*out = json_number_value(v);
	return 0;
}

int
codec_get_bool(const json_t *o, const char *name, int *out,
    kms_error_info *ei)
{
	const json_t *v = json_object_get(o, name);

	*out = 0;
	if (v == NULL) {
		return 0;
	}
	if (!json_is_boolean(v)) {
		return client_fail(ei, KMS_EPROTO, "The reply's \"%s\" is not "
		    "a boolean", name);
	}
	*out = json_is_true(v);
	return 0;
}

/* Decode member name into memory from alloc (malloc or secure_alloc). */
static int
get_b64(const json_t *o, const char *name, int required, int secret,
    uint8_t **datap, size_t *lenp, kms_error_info *ei)
{
	const json_t *v = json_object_get(o, name);
	uint8_t *data = NULL;
	size_t max, n = 0;

	if (v == NULL) {
		if (required) {
			return client_fail(ei, KMS_EPROTO, "The reply has no "
			    "\"%s\"", name);
		}
		*datap = NULL;
		*lenp = 0;
		return 0;
	}
	if (!json_is_string(v)) {
		return client_fail(ei, KMS_EPROTO, "The reply's \"%s\" is not "
		    "a string", name);
	}
	max = B64_DECODED_MAX(json_string_length(v));
	/* No binary member of a reply (a plaintext, a data key, a blob) is
	 * longer than the longest ciphertext blob: a reply may be megabytes
	 * (JSON_MAX_REPLY), one member not. */
	if (max > KMS_MAX_CIPHERTEXT) {
		return client_fail(ei, KMS_EPROTO, "The reply's \"%s\" is "
		    "longer than %d bytes", name, KMS_MAX_CIPHERTEXT);
	}
	if (max > 0) {
		data = secret ? secure_alloc_fast(max) : malloc(max);
		if (data == NULL) {
			return client_fail(ei, KMS_ENOMEM, "Out of memory for "
			    "\"%s\"", name);
		}
	}
	if (b64_decode(json_string_value(v), json_string_length(v), data, max,
	    &n) != 0) {
		if (secret) {
			secure_free(data, max);
		} else {
			free(data);
		}
		return client_fail(ei, KMS_EPROTO, "The reply's \"%s\" is not "
		    "base64", name);
	}
	*datap = data;
	*lenp = n;
	return 0;
}

int
codec_get_blob(const json_t *o, const char *name, kms_buf *out, int required,
    kms_error_info *ei)
{
	return get_b64(o, name, required, 0, &out->data, &out->len, ei);
}

int
codec_get_secret(const json_t *o, const char *name, kms_secret *out,
    int required, kms_error_info *ei)
{
	return get_b64(o, name, required, 1, &out->data, &out->len, ei);
}

/* ------------------------------------------------ per-operation codecs */

#define NOMEM(ei) client_fail((ei), KMS_ENOMEM, "Out of memory")

static int
check_bytes(const void *p, size_t len, const char *what, kms_error_info *ei)
{
	if (p == NULL && len > 0) {
		return client_fail(ei, KMS_EINVAL, "%s is NULL with length "
		    "%zu", what, len);
	}
	return 0;
}

int
build_encrypt(const kms_encrypt_req *req, json_t **op, kms_error_info *ei)
{
	json_t *o;
	int r;

	if (req == NULL || req->key_id == NULL) {
		return client_fail(ei, KMS_EINVAL, "Encrypt needs a request "
		    "with a key id");
	}
	if ((r = check_bytes(req->plaintext, req->plaintext_len, "Plaintext",
	    ei)) != 0) {
		return r;
	}
	if ((o = codec_request("Encrypt")) == NULL) {
		return NOMEM(ei);
	}
	if (codec_put_string(o, "KeyId", req->key_id) != 0 ||
	    codec_put_secret(o, "Plaintext", req->plaintext,
	    req->plaintext_len) != 0) {
		json_decref(o);
		return NOMEM(ei);
	}
	if ((r = codec_put_context(o, "EncryptionContext", &req->context,
	    ei)) != 0 ||
	    (r = codec_put_grant_tokens(o, &req->grant_tokens, ei)) != 0) {
		json_decref(o);
		return r;
	}
	*op = o;
	return 0;
}

int
parse_encrypt(const json_t *reply, kms_encrypt_resp *out,
    kms_error_info *ei)
{
	kms_encrypt_resp v;
	int r;

	memset(&v, 0, sizeof(v));
	if ((r = codec_get_string(reply, "KeyId", v.key_id,
	    sizeof(v.key_id), 0, ei)) != 0 ||
	    (r = codec_get_string(reply, "EncryptionAlgorithm",
	    v.encryption_algorithm, sizeof(v.encryption_algorithm), 0,
	    ei)) != 0 ||
	    (r = codec_get_blob(reply, "CiphertextBlob", &v.ciphertext_blob,
	    1, ei)) != 0) {
		return r;
	}
	*out = v;
	return 0;
}

int
build_decrypt(const kms_decrypt_req *req, json_t **op, kms_error_info *ei)
{
	json_t *o;
	int r;

	if (req == NULL) {
		return client_fail(ei, KMS_EINVAL, "Decrypt needs a request");
	}
	if ((r = check_bytes(req->ciphertext_blob, req->ciphertext_len,
	    "CiphertextBlob", ei)) != 0) {
		return r;
	}
	if ((o = codec_request("Decrypt")) == NULL) {
		return NOMEM(ei);
	}
	if (codec_put_blob(o, "CiphertextBlob", req->ciphertext_blob,
	    req->ciphertext_len) != 0 ||
	    codec_put_string(o, "KeyId", req->key_id) != 0) {
		json_decref(o);
		return NOMEM(ei);
	}
	if ((r = codec_put_context(o, "EncryptionContext", &req->context,
	    ei)) != 0 ||
	    (r = codec_put_grant_tokens(o, &req->grant_tokens, ei)) != 0) {
		json_decref(o);
		return r;
	}
	*op = o;
	return 0;
}

int
parse_decrypt(const json_t *reply, kms_decrypt_resp *out,
    kms_error_info *ei)
{
	kms_decrypt_resp v;
	int r;

	memset(&v, 0, sizeof(v));
	if ((r = codec_get_string(reply, "KeyId", v.key_id,
	    sizeof(v.key_id), 0, ei)) != 0 ||
	    (r = codec_get_string(reply, "EncryptionAlgorithm",
	    v.encryption_algorithm, sizeof(v.encryption_algorithm), 0,
	    ei)) != 0 ||
	    (r = codec_get_secret(reply, "Plaintext", &v.plaintext, 1,
	    ei)) != 0) {
		return r;
	}
	*out = v;
	return 0;
}

int
build_re_encrypt(const kms_re_encrypt_req *req, json_t **op,
    kms_error_info *ei)
{
	json_t *o;
	int r;

	if (req == NULL || req->destination_key_id == NULL) {
		return client_fail(ei, KMS_EINVAL, "ReEncrypt needs a request "
		    "with a destination key id");
	}
	if ((r = check_bytes(req->ciphertext_blob, req->ciphertext_len,
	    "CiphertextBlob", ei)) != 0) {
		return r;
	}
	if ((o = codec_request("ReEncrypt")) == NULL) {
		return NOMEM(ei);
	}
	if (codec_put_blob(o, "CiphertextBlob", req->ciphertext_blob,
	    req->ciphertext_len) != 0 ||
	    codec_put_string(o, "SourceKeyId", req->source_key_id) != 0 ||
	    codec_put_string(o, "DestinationKeyId",
	    req->destination_key_id) != 0) {
		json_decref(o);
		return NOMEM(ei);
	}
	if ((r = codec_put_context(o, "SourceEncryptionContext",
	    &req->source_context, ei)) != 0 ||
	    (r = codec_put_context(o, "DestinationEncryptionContext",
	    &req->destination_context, ei)) != 0 ||
	    (r = codec_put_grant_tokens(o, &req->grant_tokens, ei)) != 0) {
		json_decref(o);
		return r;
	}
	*op = o;
	return 0;
}

int
parse_re_encrypt(const json_t *reply, kms_re_encrypt_resp *out,
    kms_error_info *ei)
{
	kms_re_encrypt_resp v;
	int r;

	memset(&v, 0, sizeof(v));
	if ((r = codec_get_string(reply, "SourceKeyId", v.source_key_id,
	    sizeof(v.source_key_id), 0, ei)) != 0 ||
	    (r = codec_get_string(reply, "KeyId", v.key_id,
	    sizeof(v.key_id), 0, ei)) != 0 ||
	    (r = codec_get_string(reply, "SourceEncryptionAlgorithm",
	    v.source_encryption_algorithm,
	    sizeof(v.source_encryption_algorithm), 0, ei)) != 0 ||
	    (r = codec_get_string(reply, "DestinationEncryptionAlgorithm",
	    v.destination_encryption_algorithm,
	    sizeof(v.destination_encryption_algorithm), 0, ei)) != 0 ||
	    (r = codec_get_blob(reply, "CiphertextBlob", &v.ciphertext_blob,
	    1, ei)) != 0) {
		return r;
	}
	*out = v;
	return 0;
}

int
build_generate_data_key(const kms_generate_data_key_req *req,
    int with_plaintext, json_t **op, kms_error_info *ei)
{
	json_t *o;
	int r;

	if (req == NULL || req->key_id == NULL) {
		return client_fail(ei, KMS_EINVAL, "GenerateDataKey needs a "
		    "request with a key id");
	}
	o = codec_request(with_plaintext ? "GenerateDataKey" :
	    "GenerateDataKeyWithoutPlaintext");
	if (o == NULL) {
		return NOMEM(ei);
	}
	if (codec_put_string(o, "KeyId", req->key_id) != 0 ||
	    codec_put_string(o, "KeySpec", req->key_spec) != 0 ||
	    (req->number_of_bytes > 0 && json_object_set_new(o,
	    "NumberOfBytes", json_integer((json_int_t)req->number_of_bytes))
	    != 0)) {
		json_decref(o);
		return NOMEM(ei);
	}
	if ((r = codec_put_context(o, "EncryptionContext", &req->context,
	    ei)) != 0 ||
	    (r = codec_put_grant_tokens(o, &req->grant_tokens, ei)) != 0) {
		json_decref(o);
		return r;
	}
	*op = o;
	return 0;
}

int
parse_generate_data_key(const json_t *reply, int with_plaintext,
    kms_generate_data_key_resp *out, kms_error_info *ei)
{
	kms_generate_data_key_resp v;
	int r;

	memset(&v, 0, sizeof(v));
	if ((r = codec_get_string(reply, "KeyId", v.key_id,
	    sizeof(v.key_id), 0, ei)) != 0 ||
	    (r = codec_get_blob(reply, "CiphertextBlob", &v.ciphertext_blob,
	    1, ei)) != 0) {
		return r;
	}
	if (with_plaintext && (r = codec_get_secret(reply, "Plaintext",
	    &v.plaintext, 1, ei)) != 0) {
		kms_buf_free(&v.ciphertext_blob);
		return r;
	}
	*out = v;
	return 0;
}

int
codec_get_page(const json_t *reply, int *truncated, char **next_marker,
    kms_error_info *ei)
{
	json_t *nm;
	int r;

	*next_marker = NULL;
	if ((r = codec_get_bool(reply, "Truncated", truncated, ei)) != 0) {
		return r;
	}
	if ((nm = json_object_get(reply, "NextMarker")) == NULL) {
		return 0;
	}
	if (!json_is_string(nm) || json_string_length(nm) > 1024) {
		return client_fail(ei, KMS_EPROTO, "The reply's "
		    "\"NextMarker\" is not a short string");
	}
	if ((*next_marker = strdup(json_string_value(nm))) == NULL) {
		return NOMEM(ei);
	}
	return 0;
}

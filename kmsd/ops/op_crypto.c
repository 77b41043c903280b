/*
 * op_crypto.c — Encrypt, Decrypt, ReEncrypt, GenerateDataKey(+Without
 * Plaintext), GenerateRandom.
 *
 * Every plaintext and data key lives in the worker's locked scratch
 * (op_secret) for the duration of the request and is wiped by the
 * dispatcher; each takes its exact size, so that a Batch of any items
 * within the limits fits (OP_SCRATCH_CAP).  Ciphertexts, not secret, take
 * the request's heap (op_heap).  IV and data key come from one
 * C_GenerateRandom call; the HSM does the AES-GCM under the version's
 * non-extractable handle.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/blob.h"
#include "common/ctx.h"
#include "common/err.h"
#include "common/log.h"
#include "common/secmem.h"
#include "kmsd/audit/audit.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/ops/op.h"

#define ALG_DEFAULT "SYMMETRIC_DEFAULT"

/* A version's encryption budget was spent and this request rotated the
 * key: a service event in the audit log, as for a rotation on schedule
 * (lifecycle.c), saying why.  It waits for no sync (the HSM turn is
 * held). */
static void
budget_rotated(struct opctx *c, const struct key_info *ki, uint32_t made)
{
	json_t *det = json_pack("{s:s, s:s, s:I, s:I}", "rotationType",
	    "AUTOMATIC", "rotationReason", "ENCRYPTION_LIMIT", "keyVersion",
	    (json_int_t)made, "maxEncryptionsPerVersion",
	    (json_int_t)c->w->d->cfg.max_encryptions);

	log_info("key %s rotated: version %u's encryption budget spent; "
	    "version %u", ki->arn, made - 1, made);
	(void)audit_service_event(c->w->d->audit, "RotateKey", ki->arn, det);
	json_decref(det);
}

/* The HSM's part of sealing: pin the key's current version, write the
 * header, encrypt under it with AAD = header ‖ context. */
static int
seal_now(struct opctx *c, const struct key_info *ki, const uint8_t *iv,
    const uint8_t *ctx, size_t ctxlen, const uint8_t *pt, size_t ptlen,
    uint8_t *blob)
{
	uint8_t aad[BLOB_HEADER_LEN + CTX_MAX_CANONICAL];
	struct key_use u = { 0 };
	int r;

	r = keycache_pin_encrypt(c->w, ki, &u);
	if (u.rotated != 0) {
		/* Recorded even when the pin then failed: it rotated. */
		budget_rotated(c, ki, u.rotated);
	}
	if (r != 0) {
		return op_state_error(c, r, ki);
	}
	blob_write_header(blob, ki->id, u.version);
	memcpy(blob + BLOB_HEADER_LEN, iv, BLOB_IV_LEN);
	memcpy(aad, blob, BLOB_HEADER_LEN);
	memcpy(aad + BLOB_HEADER_LEN, ctx, ctxlen);
	r = hsm_gcm_encrypt(c->w->hs, u.handle, blob + BLOB_HEADER_LEN, aad,
	    BLOB_HEADER_LEN + ctxlen, pt, ptlen,
	    blob + BLOB_HEADER_LEN + BLOB_IV_LEN);
	keycache_unpin(c->w, &u);
	if (r != 0) {
		return op_state_error(c, r, ki);
	}
	return 0;
}

static int open_now(struct opctx *c, const struct key_info *ki,
    const struct blob_view *b, const uint8_t *ctx, size_t ctxlen,
    uint8_t *pt, size_t *ptlen);

int
op_hsm_job(struct opctx *c, struct hsm_job *j)
{
	c->action = j->action;
	if (j->kind == JOB_SEAL) {
		return seal_now(c, &j->ki, j->iv, j->ctx, j->ctxlen, j->in,
		    j->inlen, j->out);
	}
	return open_now(c, &j->ki, &j->blob, j->ctx, j->ctxlen, j->out,
	    &j->outlen);
}

/* Record an HSM call of the current Batch item; NULL when it cannot be
 * (no Batch turn, or no memory): the caller makes it at once. */
static struct hsm_job *
record(struct opctx *c, int kind, const struct key_info *ki,
    const uint8_t *ctx, size_t ctxlen)
{
	struct hsm_job *j;
	uint8_t *cc = NULL;

	if (c->jobs == NULL || c->njobs == c->jobs_cap ||
	    (ctxlen > 0 && (cc = malloc(ctxlen)) == NULL)) {
		return NULL;
	}
	j = &c->jobs[c->njobs++];
	memset(j, 0, sizeof(*j));
	j->kind = kind;
	j->item = c->item;
	j->action = c->action;
	j->ki = *ki;
	if (ctxlen > 0) {
		memcpy(cc, ctx, ctxlen);
	}
	j->ctx = cc;
	j->ctxlen = ctxlen;
	return j;
}

/*
 * Seal pt under the key's current version into blob (caller's buffer of
 * BLOB_OVERHEAD + ptlen, in the scratch); iv may be given (from a combined
 * random call).  In a Batch that makes its HSM calls together (c->jobs),
 * the encryption is recorded instead, with a copy of the context (not a
 * secret: it goes to the heap, leaving the locked scratch to plaintexts);
 * resp_hsm then names the response field.  Where it cannot be recorded,
 * it is done at once.
 */
static int
seal(struct opctx *c, const struct key_info *ki, const uint8_t *iv_in,
    const uint8_t *ctx, size_t ctxlen, const uint8_t *pt, size_t ptlen,
    uint8_t *blob)
{
	struct hsm_job *j;
	uint8_t *iv = NULL;
	int r;

	if (iv_in == NULL) {
		if ((r = op_random(c, BLOB_IV_LEN, &iv)) != 0) {
			return op_state_error(c, r, ki);
		}
		iv_in = iv;
	}
	if ((j = record(c, JOB_SEAL, ki, ctx, ctxlen)) == NULL) {
		return seal_now(c, ki, iv_in, ctx, ctxlen, pt, ptlen, blob);
	}
	memcpy(j->iv, iv_in, BLOB_IV_LEN);
	j->in = pt;
	j->inlen = ptlen;
	j->out = blob;
	j->outlen = BLOB_OVERHEAD + ptlen;
	return 0;
}

/*
 * Open a blob: the key comes from the blob.  want_key (optional KeyId)
 * must name the same key.  On success ki describes the key and *ptp (in
 * the scratch) holds *ptlen bytes.
 */
static int
open_blob(struct opctx *c, const uint8_t *buf, size_t len,
    const char *want_key, const uint8_t *ctx, size_t ctxlen,
    const char *action, const char *ctx_field, int may_record,
    struct key_info *ki, uint8_t **ptp, size_t *ptlen)
{
	struct blob_view b;
	struct key_info want;
	struct hsm_job *j;
	uint8_t *pt;
	int r;

	if (blob_parse(buf, len, &b) != 0) {
		return op_fail(c, KMS_EINVALIDCIPHERTEXT, "The ciphertext is "
		    "invalid.");
	}
	if (want_key != NULL) {
		if ((r = op_key(c, want_key, &want)) != 0) {
			return r;
		}
		if (memcmp(want.id, b.key_id, 16) != 0) {
			return op_fail(c, KMS_EINCORRECTKEY, "The key ID in "
			    "the request does not identify the key that "
			    "encrypted the ciphertext.");
		}
	}
	if ((r = keycache_lookup_id(c->w, b.key_id, ki)) != 0) {
		/* A blob naming no key we hold is just a bad blob. */
		return op_fail(c, r == KMS_ENOTFOUND ? KMS_EINVALIDCIPHERTEXT :
		    r, "The ciphertext is invalid.");
	}
	if ((r = op_authorize(c, ki, action, ctx_field)) != 0) {
		return r;
	}
	/* The plaintext is as long as the ciphertext; the HSM wants room
	 * for the tag too (hsm_gcm_decrypt). */
	if ((pt = op_secret(c, b.ct_len + BLOB_TAG_LEN)) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of request memory");
	}
	*ptp = pt;
	if (may_record && (j = record(c, JOB_OPEN, ki, ctx, ctxlen)) != NULL) {
		j->blob = b;
		j->out = pt;
		j->outlen = *ptlen = b.ct_len;
		return 0;
	}
	return open_now(c, ki, &b, ctx, ctxlen, pt, ptlen);
}

/* The HSM's part of opening: pin the blob's version, decrypt it with
 * AAD = header ‖ context. */
static int
open_now(struct opctx *c, const struct key_info *ki,
    const struct blob_view *b, const uint8_t *ctx, size_t ctxlen,
    uint8_t *pt, size_t *ptlen)
{
	uint8_t aad[BLOB_HEADER_LEN + CTX_MAX_CANONICAL];
	struct key_use u = { 0 };
	int r;

	if ((r = keycache_pin_decrypt(c->w, ki, b->version, &u)) != 0) {
		if (r == KMS_EINVALIDCIPHERTEXT) {
			return op_fail(c, r, "The ciphertext is invalid.");
		}
		return op_state_error(c, r, ki);
	}
	memcpy(aad, b->header, BLOB_HEADER_LEN);
	memcpy(aad + BLOB_HEADER_LEN, ctx, ctxlen);
	r = hsm_gcm_decrypt(c->w->hs, u.handle, b->iv, aad,
	    BLOB_HEADER_LEN + ctxlen, b->ct, b->ct_len + BLOB_TAG_LEN, pt,
	    ptlen);
	keycache_unpin(c->w, &u);
	if (r == KMS_EINVALIDCIPHERTEXT) {
		return op_fail(c, r, "The ciphertext is invalid.");
	}
	if (r != 0) {
		return op_state_error(c, r, ki);
	}
	return 0;
}

static int
key_for_encrypt(struct opctx *c, const char *field, struct key_info *ki)
{
	const char *id;
	int r;

	if ((r = req_string(c, field, 1, 1, KMS_MAX_KEY_ID, &id)) != 0 ||
	    (r = req_grant_tokens(c)) != 0 ||
	    (r = op_key(c, id, ki)) != 0) {
		return r;
	}
	if (strcmp(ki->key_usage, "ENCRYPT_DECRYPT") != 0) {
		/* AWS's text (LocalStack's snapshots of AWS). */
		return op_fail(c, KMS_EINVALIDKEYUSAGE, "%s key usage is %s "
		    "which is not valid for %s.", ki->arn, ki->key_usage,
		    c->action);
	}
	return 0;
}

static int
check_dry_run(struct opctx *c)
{
	int dry, r;

	if ((r = req_bool(c, "DryRun", &dry)) != 0) {
		return r;
	}
	if (dry) {
		return op_fail(c, KMS_EUNSUPPORTED, "DryRun is not supported "
		    "by this kmsd");
	}
	return 0;
}

static json_t *
new_resp(struct opctx *c)
{
	json_t *o = json_object();

	if (o == NULL) {
		op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	return o;
}

int
op_encrypt(struct opctx *c, json_t **resp)
{
	uint8_t ctx[CTX_MAX_CANONICAL], *pt, *blob;
	size_t ctxlen, ptlen;
	struct key_info ki;
	json_t *o;
	int r;

	if ((r = key_for_encrypt(c, "KeyId", &ki)) != 0 ||
	    (r = req_blob_alloc(c, "Plaintext", 1, KMS_MAX_PLAINTEXT, 1, &pt,
	    &ptlen)) != 0 ||
	    (r = req_context(c, "EncryptionContext", ctx, sizeof(ctx),
	    &ctxlen)) != 0 ||
	    (r = req_grant_tokens(c)) != 0 ||
	    (r = req_algorithm(c, "EncryptionAlgorithm")) != 0 ||
	    (r = check_dry_run(c)) != 0 ||
	    (r = op_authorize(c, &ki, "Encrypt", "EncryptionContext")) != 0) {
		return r;
	}
	if ((blob = op_heap(c, BLOB_OVERHEAD + ptlen)) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	if ((r = seal(c, &ki, NULL, ctx, ctxlen, pt, ptlen, blob)) != 0) {
		return r;
	}
	if ((o = new_resp(c)) == NULL) {
		return KMS_EINTERNAL;
	}
	if ((r = resp_hsm(o, "CiphertextBlob", blob, BLOB_OVERHEAD + ptlen,
	    c)) != 0) {
		json_decref(o);
		return r;
	}
	json_object_set_new(o, "KeyId", json_string(ki.arn));
	json_object_set_new(o, "EncryptionAlgorithm", json_string(ALG_DEFAULT));
	*resp = o;
	return 0;
}

int
op_decrypt(struct opctx *c, json_t **resp)
{
	uint8_t ctx[CTX_MAX_CANONICAL], *blob, *pt;
	size_t ctxlen, bloblen, ptlen = 0;
	const char *key_id;
	struct key_info ki;
	json_t *o;
	int r;

	if ((r = req_blob_alloc(c, "CiphertextBlob", 1, KMS_MAX_CIPHERTEXT, 0,
	    &blob, &bloblen)) != 0 ||
	    (r = req_string(c, "KeyId", 0, 1, KMS_MAX_KEY_ID, &key_id)) != 0 ||
	    (r = req_context(c, "EncryptionContext", ctx, sizeof(ctx),
	    &ctxlen)) != 0 ||
	    (r = req_grant_tokens(c)) != 0 ||
	    (r = req_algorithm(c, "EncryptionAlgorithm")) != 0 ||
	    (r = check_dry_run(c)) != 0) {
		return r;
	}
	if (json_object_get(c->req, "Recipient") != NULL) {
		return op_fail(c, KMS_EUNSUPPORTED, "Recipient (Nitro "
		    "attestation) is not supported by this kmsd");
	}
	if ((r = open_blob(c, blob, bloblen, key_id, ctx, ctxlen, "Decrypt",
	    "EncryptionContext", 1, &ki, &pt, &ptlen)) != 0) {
		return r;
	}
	if ((o = new_resp(c)) == NULL) {
		return KMS_EINTERNAL;
	}
	if ((r = resp_hsm(o, "Plaintext", pt, ptlen, c)) != 0) {
		json_decref(o);
		return r;
	}
	json_object_set_new(o, "KeyId", json_string(ki.arn));
	json_object_set_new(o, "EncryptionAlgorithm", json_string(ALG_DEFAULT));
	*resp = o;
	return 0;
}

int
op_re_encrypt(struct opctx *c, json_t **resp)
{
	uint8_t sctx[CTX_MAX_CANONICAL], dctx[CTX_MAX_CANONICAL];
	uint8_t *blob, *pt, *out;
	size_t sctxlen, dctxlen, bloblen, ptlen = 0;
	const char *src_id;
	struct key_info src, dst;
	json_t *o;
	int r;

	if ((r = req_blob_alloc(c, "CiphertextBlob", 1, KMS_MAX_CIPHERTEXT, 0,
	    &blob, &bloblen)) != 0 ||
	    (r = req_string(c, "SourceKeyId", 0, 1, KMS_MAX_KEY_ID,
	    &src_id)) != 0 ||
	    (r = req_context(c, "SourceEncryptionContext", sctx, sizeof(sctx),
	    &sctxlen)) != 0 ||
	    (r = key_for_encrypt(c, "DestinationKeyId", &dst)) != 0 ||
	    (r = req_context(c, "DestinationEncryptionContext", dctx,
	    sizeof(dctx), &dctxlen)) != 0 ||
	    (r = req_grant_tokens(c)) != 0 ||
	    (r = req_algorithm(c, "SourceEncryptionAlgorithm")) != 0 ||
	    (r = req_algorithm(c, "DestinationEncryptionAlgorithm")) != 0 ||
	    (r = check_dry_run(c)) != 0) {
		return r;
	}
	/* The plaintext never leaves the daemon: it goes from open to seal
	 * inside this worker's locked scratch. */
	if ((r = op_authorize(c, &dst, "ReEncryptTo",
	    "DestinationEncryptionContext")) != 0) {
		return r;
	}
	/* Not recorded: the plaintext is needed at once, to seal. */
	if ((r = open_blob(c, blob, bloblen, src_id, sctx, sctxlen,
	    "ReEncryptFrom", "SourceEncryptionContext", 0, &src, &pt,
	    &ptlen)) != 0) {
		return r;
	}
	if ((out = op_heap(c, BLOB_OVERHEAD + ptlen)) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	if ((r = seal(c, &dst, NULL, dctx, dctxlen, pt, ptlen, out)) != 0) {
		return r;
	}
	if ((o = new_resp(c)) == NULL) {
		return KMS_EINTERNAL;
	}
	if ((r = resp_hsm(o, "CiphertextBlob", out, BLOB_OVERHEAD + ptlen,
	    c)) != 0) {
		json_decref(o);
		return r;
	}
	json_object_set_new(o, "SourceKeyId", json_string(src.arn));
	json_object_set_new(o, "KeyId", json_string(dst.arn));
	json_object_set_new(o, "SourceEncryptionAlgorithm",
	    json_string(ALG_DEFAULT));
	json_object_set_new(o, "DestinationEncryptionAlgorithm",
	    json_string(ALG_DEFAULT));
	*resp = o;
	return 0;
}

static int
generate_data_key(struct opctx *c, int with_plaintext, json_t **resp)
{
	uint8_t ctx[CTX_MAX_CANONICAL], *rnd, *blob;
	const char *spec;
	long long nbytes = 0;
	size_t ctxlen, n;
	struct key_info ki;
	int present, r;
	json_t *o;

	if ((r = key_for_encrypt(c, "KeyId", &ki)) != 0 ||
	    (r = req_string(c, "KeySpec", 0, 1, 16, &spec)) != 0 ||
	    (r = req_int(c, "NumberOfBytes", 0, 1, KMS_MAX_DATA_KEY_BYTES,
	    &nbytes, &present)) != 0 ||
	    (r = req_context(c, "EncryptionContext", ctx, sizeof(ctx),
	    &ctxlen)) != 0 ||
	    (r = req_grant_tokens(c)) != 0 ||
	    (r = check_dry_run(c)) != 0) {
		return r;
	}
	if ((r = op_authorize(c, &ki, with_plaintext ? "GenerateDataKey" :
	    "GenerateDataKeyWithoutPlaintext", "EncryptionContext")) != 0) {
		return r;
	}
	if ((spec == NULL) == !present) {
		return op_fail(c, KMS_EVALIDATION, "Please specify either "
		    "number of bytes or key spec.");
	}
	if (spec != NULL) {
		if (strcmp(spec, "AES_256") == 0) {
			n = 32;
		} else if (strcmp(spec, "AES_128") == 0) {
			n = 16;
		} else {
			return op_fail(c, KMS_EVALIDATION, "1 validation error "
			    "detected: Value '%s' at 'keySpec' failed to "
			    "satisfy constraint: Member must satisfy enum value "
			    "set: [AES_256, AES_128]", spec);
		}
	} else {
		n = (size_t)nbytes;
	}
	if (with_plaintext && json_object_get(c->req, "Recipient") != NULL) {
		return op_fail(c, KMS_EUNSUPPORTED, "Recipient (Nitro "
		    "attestation) is not supported by this kmsd");
	}
	if ((blob = op_heap(c, n + BLOB_OVERHEAD)) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	/* Data key and IV from the HSM's generator (one call per request;
	 * a Batch's items share it). */
	if ((r = op_random(c, n + BLOB_IV_LEN, &rnd)) != 0) {
		return op_state_error(c, r, &ki);
	}
	if ((r = seal(c, &ki, rnd + n, ctx, ctxlen, rnd, n, blob)) != 0) {
		return r;
	}
	if ((o = new_resp(c)) == NULL) {
		return KMS_EINTERNAL;
	}
	if ((r = resp_hsm(o, "CiphertextBlob", blob, BLOB_OVERHEAD + n,
	    c)) != 0 ||
	    (with_plaintext && (r = resp_blob(o, "Plaintext", rnd, n,
	    c)) != 0)) {
		json_decref(o);
		return r;
	}
	json_object_set_new(o, "KeyId", json_string(ki.arn));
	*resp = o;
	return 0;
}

int
op_generate_data_key(struct opctx *c, json_t **resp)
{
	return generate_data_key(c, 1, resp);
}

int
op_generate_data_key_without_plaintext(struct opctx *c, json_t **resp)
{
	return generate_data_key(c, 0, resp);
}

int
op_generate_random(struct opctx *c, json_t **resp)
{
	long long n = 0;
	uint8_t *buf;
	size_t mark;
	int present, r;
	json_t *o;

	if ((r = req_int(c, "NumberOfBytes", 0, 1, KMS_MAX_RANDOM_BYTES, &n,
	    &present)) != 0) {
		return r;
	}
	/* Optional in AWS's model; its operation answers thus (LocalStack's
	 * snapshot of AWS). */
	if (!present) {
		return op_fail(c, KMS_EVALIDATION, "NumberOfBytes is required.");
	}
	if (json_object_get(c->req, "CustomKeyStoreId") != NULL ||
	    json_object_get(c->req, "Recipient") != NULL) {
		return op_fail(c, KMS_EUNSUPPORTED, "CustomKeyStoreId and "
		    "Recipient are not supported by this kmsd");
	}
	/* The bytes are in the scratch only until their base64 is in the
	 * reply. */
	mark = op_secret_mark(c);
	if ((buf = op_secret(c, (size_t)n)) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of request memory");
	}
	if ((r = hsm_random(c->w->hs, buf, (size_t)n)) != 0) {
		op_fail(c, r, r == KMS_EDEPENDENCYTIMEOUT ? "The HSM is "
		    "unavailable; retry later." : "The HSM could not generate "
		    "random bytes");
		goto out;
	}
	if ((o = new_resp(c)) == NULL) {
		r = KMS_EINTERNAL;
		goto out;
	}
	if ((r = resp_blob(o, "Plaintext", buf, (size_t)n, c)) != 0) {
		json_decref(o);
		goto out;
	}
	*resp = o;
	r = 0;
 out:
	op_secret_release(c, mark);
	return r;
}

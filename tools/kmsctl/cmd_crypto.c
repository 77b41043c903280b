/*
 * cmd_crypto.c — the commands that carry secrets, through libkmsclient's
 * typed calls: encrypt, decrypt, re-encrypt, generate-data-key(-without-
 * plaintext), generate-random, and the options of encrypt-file and
 * decrypt-file (cmd_envelope.c).  Plaintexts are read into and returned
 * in locked memory and wiped.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "kms.h"
#include "common/err.h"
#include "common/b64.h"
#include "common/json.h"
#include "common/secmem.h"
#include "tools/kmsctl/kmsctl.h"
#include "tools/kmsctl/shorthand.h"
#include "tools/kmsctl/cmd_envelope.h"

/* Context and grant tokens shared by the crypto commands. */
static int
get_context(const struct run *R, const char *name, struct ctxarg *a)
{
	const char *s = opt_str(R, name);

	memset(a, 0, sizeof(*a));
	return s != NULL ? parse_context(s, a, name) : 0;
}

static kms_grant_tokens
get_grant_tokens(const struct run *R)
{
	const struct optval *gv = opt(R, "grant-tokens");
	kms_grant_tokens gt = { 0 };

	if (gv != NULL) {
		gt.tokens = (const char *const *)gv->list;
		gt.ntokens = (size_t)gv->nlist;
	}
	return gt;
}

/* encrypt-file / decrypt-file: the options, then cmd_envelope.c. */
int
cmd_envelope(struct run *R)
{
	struct envelope_args a;
	const struct optval *v;
	int r;

	memset(&a, 0, sizeof(a));
	a.encrypt = strcmp(R->cmd->name, "encrypt-file") == 0;
	a.input = opt_str(R, "input");
	a.output = opt_str(R, "output");
	a.suffix = opt_str(R, "suffix");
	if ((v = opt(R, "encryption-context")) != NULL) {
		a.context = v->list;
		a.ncontext = v->nlist;
	}
	/* The key and the message's shape are encrypt-file's alone. */
	if (a.encrypt) {
		a.key_id = opt_str(R, "key-id");
		a.algorithm = opt_str(R, "algorithm");
		if ((v = opt(R, "frame-length")) != NULL &&
		    (r = parse_long(v->val, 1, KMS_FRAME_LENGTH_MAX,
		    &a.frame_length, "frame-length")) != 0) {
			return r;
		}
	}
	a.recursive = (v = opt(R, "recursive")) != NULL && v->flag;
	a.quiet = (v = opt(R, "quiet")) != NULL && v->flag;
	a.grant_tokens = get_grant_tokens(R);
	return envelope_run(R->c, &a);
}

int
cmd_encrypt(struct run *R)
{
	kms_encrypt_req req = { 0 };
	kms_encrypt_resp out;
	kms_secret pt = { NULL, 0 };
	kms_error_info ei;
	struct ctxarg ctx;
	json_t *o;
	int r;

	if ((r = load_blob(opt_str(R, "plaintext"), &pt, "plaintext")) != 0) {
		return r;
	}
	if ((r = get_context(R, "encryption-context", &ctx)) != 0) {
		input_free(&pt);
		return r;
	}
	req.key_id = opt_str(R, "key-id");
	req.plaintext = pt.data;
	req.plaintext_len = pt.len;
	req.context = ctx.ctx;
	req.grant_tokens = get_grant_tokens(R);
	r = kms_encrypt(R->c, &req, &out, &ei);
	input_free(&pt);
	ctxarg_free(&ctx);
	if (r != 0) {
		return fail(R, r, &ei);
	}
	o = json_object();
	put_b64(o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	json_object_set_new(o, "KeyId", json_string(out.key_id));
	json_object_set_new(o, "EncryptionAlgorithm",
	    json_string(out.encryption_algorithm));
	r = emit(R, o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	kms_encrypt_resp_free(&out);
	return r;
}

int
cmd_decrypt(struct run *R)
{
	kms_decrypt_req req = { 0 };
	kms_decrypt_resp out;
	kms_secret ct = { NULL, 0 };
	kms_error_info ei;
	struct ctxarg ctx;
	json_t *o;
	int r;

	if ((r = load_blob(opt_str(R, "ciphertext-blob"), &ct,
	    "ciphertext-blob")) != 0) {
		return r;
	}
	if ((r = get_context(R, "encryption-context", &ctx)) != 0) {
		input_free(&ct);
		return r;
	}
	req.ciphertext_blob = ct.data;
	req.ciphertext_len = ct.len;
	req.key_id = opt_str(R, "key-id");
	req.context = ctx.ctx;
	req.grant_tokens = get_grant_tokens(R);
	r = kms_decrypt(R->c, &req, &out, &ei);
	input_free(&ct);
	ctxarg_free(&ctx);
	if (r != 0) {
		return fail(R, r, &ei);
	}
	o = json_object();
	json_object_set_new(o, "KeyId", json_string(out.key_id));
	put_b64(o, "Plaintext", out.plaintext.data, out.plaintext.len);
	json_object_set_new(o, "EncryptionAlgorithm",
	    json_string(out.encryption_algorithm));
	r = emit(R, o, "Plaintext", out.plaintext.data, out.plaintext.len);
	kms_decrypt_resp_free(&out);
	return r;
}

int
cmd_re_encrypt(struct run *R)
{
	kms_re_encrypt_req req = { 0 };
	kms_re_encrypt_resp out;
	kms_secret ct = { NULL, 0 };
	kms_error_info ei;
	struct ctxarg sctx, dctx;
	json_t *o;
	int r;

	if ((r = load_blob(opt_str(R, "ciphertext-blob"), &ct,
	    "ciphertext-blob")) != 0) {
		return r;
	}
	if ((r = get_context(R, "source-encryption-context", &sctx)) != 0) {
		input_free(&ct);
		return r;
	}
	if ((r = get_context(R, "destination-encryption-context", &dctx)) !=
	    0) {
		input_free(&ct);
		ctxarg_free(&sctx);
		return r;
	}
	req.ciphertext_blob = ct.data;
	req.ciphertext_len = ct.len;
	req.source_key_id = opt_str(R, "source-key-id");
	req.source_context = sctx.ctx;
	req.destination_key_id = opt_str(R, "destination-key-id");
	req.destination_context = dctx.ctx;
	req.grant_tokens = get_grant_tokens(R);
	r = kms_re_encrypt(R->c, &req, &out, &ei);
	input_free(&ct);
	ctxarg_free(&sctx);
	ctxarg_free(&dctx);
	if (r != 0) {
		return fail(R, r, &ei);
	}
	o = json_object();
	put_b64(o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	json_object_set_new(o, "SourceKeyId", json_string(out.source_key_id));
	json_object_set_new(o, "KeyId", json_string(out.key_id));
	json_object_set_new(o, "SourceEncryptionAlgorithm",
	    json_string(out.source_encryption_algorithm));
	json_object_set_new(o, "DestinationEncryptionAlgorithm",
	    json_string(out.destination_encryption_algorithm));
	r = emit(R, o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	kms_re_encrypt_resp_free(&out);
	return r;
}

static int
generate_data_key(struct run *R, int with_plaintext)
{
	kms_generate_data_key_req req = { 0 };
	kms_generate_data_key_resp out;
	kms_error_info ei;
	struct ctxarg ctx;
	long n = 0;
	json_t *o;
	int r;

	if (opt(R, "number-of-bytes") != NULL &&
	    (r = parse_long(opt_str(R, "number-of-bytes"), 0, INT_MAX, &n,
	    "number-of-bytes")) != 0) {
		return r;
	}
	if ((r = get_context(R, "encryption-context", &ctx)) != 0) {
		return r;
	}
	req.key_id = opt_str(R, "key-id");
	req.key_spec = opt_str(R, "key-spec");
	req.number_of_bytes = (size_t)n;
	req.context = ctx.ctx;
	req.grant_tokens = get_grant_tokens(R);
	r = with_plaintext ? kms_generate_data_key(R->c, &req, &out, &ei) :
	    kms_generate_data_key_without_plaintext(R->c, &req, &out, &ei);
	ctxarg_free(&ctx);
	if (r != 0) {
		return fail(R, r, &ei);
	}
	o = json_object();
	put_b64(o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	if (with_plaintext) {
		put_b64(o, "Plaintext", out.plaintext.data,
		    out.plaintext.len);
	}
	json_object_set_new(o, "KeyId", json_string(out.key_id));
	if (with_plaintext) {
		r = emit(R, o, "Plaintext", out.plaintext.data,
		    out.plaintext.len);
	} else {
		r = emit(R, o, "CiphertextBlob", out.ciphertext_blob.data,
		    out.ciphertext_blob.len);
	}
	kms_generate_data_key_resp_free(&out);
	return r;
}

int
cmd_generate_data_key(struct run *R)
{
	return generate_data_key(R, 1);
}

int
cmd_generate_data_key_without_plaintext(struct run *R)
{
	return generate_data_key(R, 0);
}

int
cmd_generate_random(struct run *R)
{
	kms_secret s;
	kms_error_info ei;
	long n = 0;
	json_t *o;
	int r;

	if ((r = parse_long(opt_str(R, "number-of-bytes"), 0, INT_MAX, &n,
	    "number-of-bytes")) != 0) {
		return r;
	}
	if ((r = kms_generate_random(R->c, (size_t)n, &s, &ei)) != 0) {
		return fail(R, r, &ei);
	}
	o = json_object();
	put_b64(o, "Plaintext", s.data, s.len);
	r = emit(R, o, "Plaintext", s.data, s.len);
	kms_secret_free(&s);
	return r;
}

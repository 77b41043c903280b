/*
 * cmd_crypto.c — the commands that carry secrets, through libkmsclient's
 * typed calls: encrypt, decrypt, re-encrypt, generate-data-key(-without-
 * plaintext), generate-random, and the options of encrypt-file and
 * decrypt-file (cmd_envelope.c).  Plaintexts are read into and returned
 * in locked memory and wiped.
 */
#include <limits.h>
#include <string.h>

#include <jansson.h>

#include "kms.h"
#include "tools/kmsctl/kmsctl.h"
#include "tools/kmsctl/shorthand.h"
#include "tools/kmsctl/cmd_envelope.h"

/*
 * What a crypto command reads besides key ids: a blob option (base64 or
 * fileb://), in locked memory, and up to two encryption contexts.
 */
struct crypto_in {
	kms_secret blob;
	struct ctxarg ctx[2];
};

static void
crypto_in_free(struct crypto_in *in)
{
	input_free(&in->blob);
	ctxarg_free(&in->ctx[0]);
	ctxarg_free(&in->ctx[1]);
}

/* A context option, if given. */
static int
get_context(const struct run *R, const char *name, struct ctxarg *a)
{
	const char *s = opt_str(R, name);

	memset(a, 0, sizeof(*a));
	return s != NULL ? parse_context(s, a, name) : 0;
}

/* blob_opt (NULL: none), then the context options ctx1 and ctx2 (NULL:
 * none), in that order; 0 or an exit status with nothing held. */
static int
crypto_in_load(const struct run *R, const char *blob_opt, const char *ctx1,
    const char *ctx2, struct crypto_in *in)
{
	int r;

	memset(in, 0, sizeof(*in));
	if (blob_opt != NULL && (r = load_blob(opt_str(R, blob_opt),
	    &in->blob, blob_opt)) != 0) {
		return r;
	}
	if ((r = get_context(R, ctx1, &in->ctx[0])) != 0 ||
	    (ctx2 != NULL && (r = get_context(R, ctx2, &in->ctx[1])) != 0)) {
		crypto_in_free(in);
		return r;
	}
	return 0;
}

/* After the call that returned r: the inputs wiped and freed; the error
 * line printed if r says so. */
static int
crypto_done(const struct run *R, struct crypto_in *in, int r,
    const kms_error_info *ei)
{
	crypto_in_free(in);
	return r != 0 ? fail(R, r, ei) : 0;
}

/* A string field of a reply (left out when s is NULL, as before). */
static void
put_str(json_t *o, const char *name, const char *s)
{
	json_object_set_new(o, name, json_string(s));
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
	a.recursive = opt_flag(R, "recursive");
	a.quiet = opt_flag(R, "quiet");
	a.grant_tokens = opt_grant_tokens(R);
	return envelope_run(R->c, &a);
}

int
cmd_encrypt(struct run *R)
{
	kms_encrypt_req req = { 0 };
	kms_encrypt_resp out;
	struct crypto_in in;
	kms_error_info ei;
	json_t *o;
	int r;

	if ((r = crypto_in_load(R, "plaintext", "encryption-context", NULL,
	    &in)) != 0) {
		return r;
	}
	req.key_id = opt_str(R, "key-id");
	req.plaintext = in.blob.data;
	req.plaintext_len = in.blob.len;
	req.context = in.ctx[0].ctx;
	req.grant_tokens = opt_grant_tokens(R);
	if ((r = crypto_done(R, &in, kms_encrypt(R->c, &req, &out, &ei),
	    &ei)) != 0) {
		return r;
	}
	o = json_object();
	put_b64(o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	put_str(o, "KeyId", out.key_id);
	put_str(o, "EncryptionAlgorithm", out.encryption_algorithm);
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
	struct crypto_in in;
	kms_error_info ei;
	json_t *o;
	int r;

	if ((r = crypto_in_load(R, "ciphertext-blob", "encryption-context",
	    NULL, &in)) != 0) {
		return r;
	}
	req.ciphertext_blob = in.blob.data;
	req.ciphertext_len = in.blob.len;
	req.key_id = opt_str(R, "key-id");
	req.context = in.ctx[0].ctx;
	req.grant_tokens = opt_grant_tokens(R);
	if ((r = crypto_done(R, &in, kms_decrypt(R->c, &req, &out, &ei),
	    &ei)) != 0) {
		return r;
	}
	o = json_object();
	put_str(o, "KeyId", out.key_id);
	put_b64(o, "Plaintext", out.plaintext.data, out.plaintext.len);
	put_str(o, "EncryptionAlgorithm", out.encryption_algorithm);
	r = emit(R, o, "Plaintext", out.plaintext.data, out.plaintext.len);
	kms_decrypt_resp_free(&out);
	return r;
}

int
cmd_re_encrypt(struct run *R)
{
	kms_re_encrypt_req req = { 0 };
	kms_re_encrypt_resp out;
	struct crypto_in in;
	kms_error_info ei;
	json_t *o;
	int r;

	if ((r = crypto_in_load(R, "ciphertext-blob",
	    "source-encryption-context", "destination-encryption-context",
	    &in)) != 0) {
		return r;
	}
	req.ciphertext_blob = in.blob.data;
	req.ciphertext_len = in.blob.len;
	req.source_key_id = opt_str(R, "source-key-id");
	req.source_context = in.ctx[0].ctx;
	req.destination_key_id = opt_str(R, "destination-key-id");
	req.destination_context = in.ctx[1].ctx;
	req.grant_tokens = opt_grant_tokens(R);
	if ((r = crypto_done(R, &in, kms_re_encrypt(R->c, &req, &out, &ei),
	    &ei)) != 0) {
		return r;
	}
	o = json_object();
	put_b64(o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	put_str(o, "SourceKeyId", out.source_key_id);
	put_str(o, "KeyId", out.key_id);
	put_str(o, "SourceEncryptionAlgorithm",
	    out.source_encryption_algorithm);
	put_str(o, "DestinationEncryptionAlgorithm",
	    out.destination_encryption_algorithm);
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
	struct crypto_in in;
	kms_error_info ei;
	long n = 0;
	json_t *o;
	int r;

	if (opt(R, "number-of-bytes") != NULL &&
	    (r = parse_long(opt_str(R, "number-of-bytes"), 0, INT_MAX, &n,
	    "number-of-bytes")) != 0) {
		return r;
	}
	if ((r = crypto_in_load(R, NULL, "encryption-context", NULL,
	    &in)) != 0) {
		return r;
	}
	req.key_id = opt_str(R, "key-id");
	req.key_spec = opt_str(R, "key-spec");
	req.number_of_bytes = (size_t)n;
	req.context = in.ctx[0].ctx;
	req.grant_tokens = opt_grant_tokens(R);
	r = with_plaintext ? kms_generate_data_key(R->c, &req, &out, &ei) :
	    kms_generate_data_key_without_plaintext(R->c, &req, &out, &ei);
	if ((r = crypto_done(R, &in, r, &ei)) != 0) {
		return r;
	}
	o = json_object();
	put_b64(o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	if (with_plaintext) {
		put_b64(o, "Plaintext", out.plaintext.data,
		    out.plaintext.len);
	}
	put_str(o, "KeyId", out.key_id);
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

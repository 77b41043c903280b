/*
 * cmd_lifecycle.c — kmsctl's helpers for a key's life that are more than
 * one request: wrap-key-material, which wraps a person's 256-bit key
 * material for ImportKeyMaterial under the public key that
 * get-parameters-for-import gave, with OpenSSL (RSAES-OAEP), so the whole
 * bring-your-own-key flow runs from the shell:
 *
 *   kmsctl get-parameters-for-import --key-id K \
 *       --wrapping-algorithm RSAES_OAEP_SHA_1 --wrapping-key-spec RSA_2048
 *   kmsctl wrap-key-material --public-key <PublicKey> \
 *       --key-material fileb://key.bin --outfile wrapped.bin
 *   kmsctl import-key-material --key-id K --import-token <ImportToken> \
 *       --encrypted-key-material fileb://wrapped.bin
 *
 * The key material is read into locked memory and wiped; it never
 * reaches kmsd unwrapped.
 *
 * admin rotate-domain-key asks kmsd to rotate its domain key and follows
 * it to the end, with a progress line on a terminal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/b64.h"
#include "common/secmem.h"
#include "tools/kmsctl/kmsctl.h"

#define KEY_MATERIAL_LEN 32	/* SYMMETRIC_DEFAULT: AES-256 */
#define WRAPPED_MAX 512		/* RSA-4096 */

int
cmd_wrap_key_material(struct run *R)
{
	kms_secret pub = { NULL, 0 }, key = { NULL, 0 };
	const char *alg = opt_str(R, "wrapping-algorithm");
	const unsigned char *p;
	EVP_PKEY *pk = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	const EVP_MD *md;
	uint8_t out[WRAPPED_MAX];
	char b64[B64_ENCODED_LEN(WRAPPED_MAX) + 1];
	size_t outlen = sizeof(out);
	json_t *o;
	int r;

	if (alg == NULL || strcmp(alg, "RSAES_OAEP_SHA_1") == 0) {
		md = EVP_sha1();
	} else if (strcmp(alg, "RSAES_OAEP_SHA_256") == 0) {
		md = EVP_sha256();
	} else {
		fprintf(stderr, "kmsctl: --wrapping-algorithm: "
		    "RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256\n");
		return EXIT_USAGE;
	}
	if ((r = load_blob(opt_str(R, "public-key"), &pub, "public-key")) !=
	    0 || (r = load_blob(opt_str(R, "key-material"), &key,
	    "key-material")) != 0) {
		goto out;
	}
	r = EXIT_OTHER;
	if (key.len != KEY_MATERIAL_LEN) {
		fprintf(stderr, "kmsctl: --key-material: %zu bytes; key "
		    "material is %d bytes (AES-256)\n", key.len,
		    KEY_MATERIAL_LEN);
		r = EXIT_USAGE;
		goto out;
	}
	p = pub.data;
	if ((pk = d2i_PUBKEY(NULL, &p, (long)pub.len)) == NULL ||
	    p != pub.data + pub.len || EVP_PKEY_get_base_id(pk) !=
	    EVP_PKEY_RSA) {
		fprintf(stderr, "kmsctl: --public-key: not a DER RSA public "
		    "key (get-parameters-for-import's PublicKey)\n");
		r = EXIT_USAGE;
		goto out;
	}
	if ((ctx = EVP_PKEY_CTX_new(pk, NULL)) == NULL ||
	    EVP_PKEY_encrypt_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) <= 0 ||
	    EVP_PKEY_encrypt(ctx, out, &outlen, key.data, key.len) <= 0) {
		fprintf(stderr, "kmsctl: wrapping the key material failed\n");
		goto out;
	}
	if (b64_encode(out, outlen, b64, sizeof(b64)) != 0 ||
	    (o = json_pack("{s:s}", "EncryptedKeyMaterial", b64)) == NULL) {
		goto out;
	}
	r = emit(R, o, "EncryptedKeyMaterial", out, outlen);
 out:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	kms_secret_free(&pub);
	kms_secret_free(&key);
	return r;
}

#define POLL_MS 200		/* between looks at the rotation's state */

int
cmd_rotate_domain_key(struct run *R)
{
	const struct optval *nw = opt(R, "no-wait");
	struct timespec ts = { 0, POLL_MS * 1000000L };
	json_t *req, *st = NULL;
	const char *state;
	int r, tty = isatty(2), shown = 0;

	if ((req = json_pack("{s:s}", "Action", "RotateDomainKey")) == NULL) {
		return EXIT_OTHER;
	}
	r = send_json(R, req, &st);
	json_decref(req);
	if (r != 0) {
		return r;
	}
	if (nw != NULL && nw->flag) {
		return emit(R, st, NULL, NULL, 0);
	}
	if ((req = json_pack("{s:s}", "Action", "GetDomainKeyStatus")) ==
	    NULL) {
		json_decref(st);
		return EXIT_OTHER;
	}
	for (;;) {
		state = json_string_value(json_object_get(st, "State"));
		if (tty) {
			fprintf(stderr, "\rdomain-key rotation: %-10s %lld of "
			    "%lld versions re-wrapped", state ? state : "?",
			    (long long)json_integer_value(json_object_get(st,
			    "VersionsRewrapped")), (long long)
			    json_integer_value(json_object_get(st,
			    "VersionsTotal")));
			shown = 1;
		}
		if (state == NULL || strcmp(state, "DONE") == 0 ||
		    strcmp(state, "NONE") == 0) {
			break;
		}
		nanosleep(&ts, NULL);
		json_decref(st);
		st = NULL;
		if ((r = send_json(R, req, &st)) != 0) {
			json_decref(req);
			return r;
		}
	}
	if (shown) {
		fputc('\n', stderr);
	}
	json_decref(req);
	return emit(R, st, NULL, NULL, 0);
}

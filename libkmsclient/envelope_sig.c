/*
 * envelope_sig.c — the footer signature of suite 0x0578: ECDSA on P-384
 * with SHA-384 over the whole header and body, the signature DER-encoded
 * (ECDSA-Sig-Value), the verification key carried in the encryption
 * context under "aws-crypto-public-key" as the base64 of its compressed
 * point (SEC 1 §2.3.3), as framework/transitive-requirements.md says.
 * OpenSSL does the curve arithmetic; the private key never leaves the
 * EVP_PKEY it is made in and dies with the message.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "common/b64.h"
#include "common/err.h"
#include "libkmsclient/envelope.h"

#define P384_COMPRESSED 49	/* 0x02/0x03 ‖ x */

EVP_PKEY *
env_sig_keygen(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
}

int
env_sig_pubkey_b64(EVP_PKEY *k, char *out, size_t outsz)
{
	uint8_t pt[P384_COMPRESSED + 8];
	size_t len = 0;

	if (EVP_PKEY_set_utf8_string_param(k,
	    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed") != 1 ||
	    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt,
	    sizeof(pt), &len) != 1 || len != P384_COMPRESSED) {
		return KMS_EINTERNAL;
	}
	return b64_encode(pt, len, out, outsz) == 0 ? 0 : KMS_EINTERNAL;
}

EVP_PKEY *
env_sig_pubkey_from_b64(const char *b64)
{
	uint8_t pt[P384_COMPRESSED + 8];
	size_t len = 0;
	EVP_PKEY_CTX *pc = NULL;
	EVP_PKEY *k = NULL;
	OSSL_PARAM params[3];

	if (b64_decode(b64, strlen(b64), pt, sizeof(pt), &len) != 0 ||
	    len != P384_COMPRESSED || (pt[0] != 0x02 && pt[0] != 0x03)) {
		return NULL;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, (char *)"P-384", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
	    pt, len);
	params[2] = OSSL_PARAM_construct_end();
	if ((pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(pc) != 1 ||
	    EVP_PKEY_fromdata(pc, &k, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		k = NULL;
	}
	EVP_PKEY_CTX_free(pc);
	return k;
}

EVP_MD_CTX *
env_sig_begin(EVP_PKEY *k, int verify)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;

	if (md == NULL) {
		return NULL;
	}
	ok = verify ? EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, k) :
	    EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, k);
	if (ok != 1) {
		EVP_MD_CTX_free(md);
		return NULL;
	}
	return md;
}

int
env_sig_update(EVP_MD_CTX *md, const uint8_t *p, size_t n)
{
	/* DigestSignUpdate and DigestVerifyUpdate are the same digest. */
	return EVP_DigestUpdate(md, p, n) == 1 ? 0 : KMS_EINTERNAL;
}

int
env_sig_sign(EVP_MD_CTX *md, uint8_t *sig, size_t *len)
{
	size_t n = ENV_MAX_SIG;

	if (EVP_DigestSignFinal(md, sig, &n) != 1) {
		return KMS_EINTERNAL;
	}
	*len = n;
	return 0;
}

int
env_sig_verify(EVP_MD_CTX *md, const uint8_t *sig, size_t len)
{
	return EVP_DigestVerifyFinal(md, sig, len) == 1 ? 0 :
	    KMS_EINVALIDCIPHERTEXT;
}

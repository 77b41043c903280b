/*
 * envelope_kdf.c — key derivation and key commitment for the committing
 * suites (framework/transitive-requirements.md): HKDF with SHA-512, the
 * data key as input keying material, the 32-byte message id as salt; one
 * extract, then two expands: the encryption key (info = u16 suite id ‖
 * "DERIVEKEY", 32 bytes) and the commit key (info = "COMMITKEY", 32
 * bytes) that the header carries and the reader compares in constant
 * time before it trusts anything else.  OpenSSL's EVP_KDF "HKDF" does the
 * arithmetic; the pseudorandom key lives in locked memory.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "common/err.h"
#include "common/secmem.h"
#include "libkmsclient/envelope.h"

#define PRK_LEN 64	/* SHA-512 output */

static int
hkdf(int mode, const uint8_t *key, size_t keylen, const uint8_t *salt,
    size_t saltlen, const uint8_t *info, size_t infolen, uint8_t *out,
    size_t outlen)
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kc = NULL;
	OSSL_PARAM params[6], *p = params;
	int r = KMS_EINTERNAL;

	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL ||
	    (kc = EVP_KDF_CTX_new(kdf)) == NULL) {
		goto out;
	}
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    (char *)"SHA512", 0);
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)key, keylen);
	if (salt != NULL) {
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
		    (void *)salt, saltlen);
	}
	if (info != NULL) {
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
		    (void *)info, infolen);
	}
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kc, out, outlen, params) != 1) {
		goto out;
	}
	r = 0;
 out:
	EVP_KDF_CTX_free(kc);
	EVP_KDF_free(kdf);
	return r;
}

int
env_derive(uint16_t suite, const uint8_t dk[ENV_KEY_LEN],
    const uint8_t msgid[ENV_MESSAGE_ID_LEN], uint8_t enc_key[ENV_KEY_LEN],
    uint8_t commit[ENV_COMMIT_LEN])
{
	static const char derive[] = "DERIVEKEY", commitkey[] = "COMMITKEY";
	uint8_t info[2 + sizeof(derive) - 1];
	uint8_t *prk;
	int r = KMS_EINTERNAL;

	if ((prk = secure_alloc(PRK_LEN)) == NULL) {
		return KMS_ENOMEM;
	}
	info[0] = (uint8_t)(suite >> 8);
	info[1] = (uint8_t)suite;
	memcpy(info + 2, derive, sizeof(derive) - 1);
	if (hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, dk, ENV_KEY_LEN, msgid,
	    ENV_MESSAGE_ID_LEN, NULL, 0, prk, PRK_LEN) != 0 ||
	    hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, PRK_LEN, NULL, 0, info,
	    sizeof(info), enc_key, ENV_KEY_LEN) != 0 ||
	    hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, PRK_LEN, NULL, 0,
	    (const uint8_t *)commitkey, sizeof(commitkey) - 1, commit,
	    ENV_COMMIT_LEN) != 0) {
		secure_wipe(enc_key, ENV_KEY_LEN);
		goto out;
	}
	r = 0;
 out:
	secure_free(prk, PRK_LEN);
	return r;
}

int
env_header_tag(EVP_CIPHER_CTX *cx, const uint8_t *body, size_t len,
    uint8_t tag[ENV_TAG_LEN])
{
	static const uint8_t zero_iv[ENV_IV_LEN];

	return env_gcm_seal(cx, zero_iv, body, len, NULL, 0, NULL, tag);
}

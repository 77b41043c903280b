/*
 * import.c — imported key material (bring your own key) in the HSM: the
 * RSA wrapping key pair a person wraps their key material for, and the
 * unwrap that brings the material in.
 *
 * The material never exists in kmsd's memory: C_UnwrapKey decrypts it
 * (RSAES-OAEP, SHA-1: SoftHSM2 2.6.1 refuses other hashes) into an HSM
 * object, which becomes a resident token object or is wrapped under the
 * domain key at once, like generated material.  There is no software
 * fallback.  The private key is a token object (an import token is valid
 * for 24 hours, across restarts), private, sensitive and never
 * extractable; the public key leaves as DER SubjectPublicKeyInfo, built
 * with OpenSSL from its modulus and exponent.  Thread-safety as for the
 * rest of hsm/: a session is used by one thread at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/err.h"
#include "common/secmem.h"
#include "hsm/hsm.h"
#include "hsm/internal.h"

#define RSA_MODULUS_MAX 512	/* 4096 bits */

static const CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY;

/* DER SubjectPublicKeyInfo of the RSA key (n, e). */
static int
spki_der(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
    uint8_t *out, size_t cap, size_t *outlen)
{
	OSSL_PARAM_BLD *b = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	unsigned char *der = NULL;
	int len, r = KMS_EINTERNAL;

	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)elen, NULL)) == NULL ||
	    (b = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be) ||
	    (params = OSSL_PARAM_BLD_to_param(b)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0 ||
	    (len = i2d_PUBKEY(pk, &der)) <= 0) {
		goto out;
	}
	if ((size_t)len > cap) {
		r = KMS_EINVAL;
		goto out;
	}
	memcpy(out, der, (size_t)len);
	*outlen = (size_t)len;
	r = 0;
 out:
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	BN_free(bn);
	BN_free(be);
	return r;
}

/* Does token object k carry CKA_ID id (a handle kept from before may
 * name another object after a module restart)? */
static int
names(hsm_session *s, CK_OBJECT_HANDLE k, const uint8_t *id, size_t idlen)
{
	uint8_t got[HSM_RESIDENT_ID_MAX];
	CK_ATTRIBUTE a = { CKA_ID, got, sizeof(got) };

	return s->h->f->C_GetAttributeValue(s->s, k, &a, 1) == CKR_OK &&
	    a.ulValueLen == idlen && memcmp(got, id, idlen) == 0;
}

int
hsm_destroy_resident_ref(hsm_session *s, const uint8_t *id, size_t idlen,
    const hsm_resident_ref *ref)
{
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	if (ref != NULL && ref->obj != 0 && ref->gen == hsm_generation(s->h) &&
	    names(s, ref->obj, id, idlen)) {
		return hsm_rv_err(s->h, s->h->f->C_DestroyObject(s->s,
		    ref->obj), "destroy resident key");
	}
	return hsm_destroy_resident(s, id, idlen);
}

int
hsm_import_keypair(hsm_session *s, unsigned bits, const uint8_t *id,
    size_t idlen, uint8_t *spki, size_t cap, size_t *spkilen,
    hsm_resident_ref *pref)
{
	CK_MECHANISM gen = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_ULONG modbits = bits;
	CK_BYTE exp[] = { 0x01, 0x00, 0x01 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_MODULUS_BITS, &modbits, sizeof(modbits) },
		{ CKA_PUBLIC_EXPONENT, exp, sizeof(exp) },
		{ CKA_ENCRYPT, &no, sizeof(no) },
		{ CKA_WRAP, &yes, sizeof(yes) },
		{ CKA_VERIFY, &no, sizeof(no) },
	};
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_DECRYPT, &no, sizeof(no) },
		{ CKA_SIGN, &no, sizeof(no) },
		{ CKA_UNWRAP, &yes, sizeof(yes) },
		{ CKA_ID, (void *)id, idlen },
	};
	uint8_t n[RSA_MODULUS_MAX], e[16];
	CK_ATTRIBUTE get[] = {
		{ CKA_MODULUS, n, sizeof(n) },
		{ CKA_PUBLIC_EXPONENT, e, sizeof(e) },
	};
	CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
	CK_RV rv;
	int r;

	if ((bits != 2048 && bits != 3072 && bits != 4096) || idlen == 0 ||
	    idlen > HSM_RESIDENT_ID_MAX) {
		return KMS_EINVAL;
	}
	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	if ((rv = s->h->f->C_GenerateKeyPair(s->s, &gen, pub,
	    sizeof(pub) / sizeof(pub[0]), priv, sizeof(priv) / sizeof(priv[0]),
	    &hpub, &hpriv)) != CKR_OK) {
		if (rv == CKR_MECHANISM_INVALID) {
			return KMS_EUNSUPPORTED;
		}
		return hsm_rv_err(s->h, rv, "C_GenerateKeyPair (import)");
	}
	rv = s->h->f->C_GetAttributeValue(s->s, hpub, get, 2);
	(void)s->h->f->C_DestroyObject(s->s, hpub);
	if (rv != CKR_OK) {
		(void)s->h->f->C_DestroyObject(s->s, hpriv);
		return hsm_rv_err(s->h, rv, "C_GetAttributeValue (import)");
	}
	if ((r = spki_der(n, get[0].ulValueLen, e, get[1].ulValueLen, spki,
	    cap, spkilen)) != 0) {
		(void)s->h->f->C_DestroyObject(s->s, hpriv);
		return r;
	}
	if (pref != NULL) {
		pref->obj = hpriv;
		pref->gen = hsm_generation(s->h);
	}
	return 0;
}

static CK_RV
find_import_key(hsm *h, const uint8_t *id, size_t idlen,
    CK_OBJECT_HANDLE *out)
{
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, (void *)&priv_class, sizeof(priv_class) },
		{ CKA_ID, (void *)id, idlen },
	};

	return hsm_find_one(h, t, 2, out);
}

int
hsm_import_unwrap(hsm_session *s, const uint8_t *id, size_t idlen,
    hsm_resident_ref *pref, int sha256, const uint8_t *enc, size_t enclen,
    const uint8_t *res_id, size_t res_idlen, hsm_resident_ref *res_ref,
    uint8_t *wrapped, size_t wrapsz, size_t *wrappedlen, uint8_t kcv[16])
{
	CK_RSA_PKCS_OAEP_PARAMS oaep = { sha256 ? CKM_SHA256 : CKM_SHA_1,
		sha256 ? CKG_MGF1_SHA256 : CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED,
		NULL, 0 };
	CK_MECHANISM mech = { CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep) };
	CK_MECHANISM kw = { CKM_AES_KEY_WRAP, NULL, 0 };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	/* A transient session object, extractable only to be wrapped under
	 * the domain key at once (as generated material is): the wrap's
	 * length is how the key's size is known (SoftHSM2 sets no
	 * CKA_VALUE_LEN on an unwrapped key). */
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &yes, sizeof(yes) },
		{ CKA_ENCRYPT, &yes, sizeof(yes) },
		{ CKA_DECRYPT, &yes, sizeof(yes) },
		{ CKA_WRAP, &no, sizeof(no) },
		{ CKA_UNWRAP, &no, sizeof(no) },
	};
	/* Resident: the same key again, from its wrap, as a token object. */
	CK_ATTRIBUTE rt[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_ENCRYPT, &yes, sizeof(yes) },
		{ CKA_DECRYPT, &yes, sizeof(yes) },
		{ CKA_WRAP, &no, sizeof(no) },
		{ CKA_UNWRAP, &no, sizeof(no) },
		{ CKA_ID, (void *)res_id, res_idlen },
	};
	CK_ULONG wl = wrapsz;
	CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE, k = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE rk = CK_INVALID_HANDLE, dk;
	uint8_t iv[12], zero[16], out[32];
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	if (pref != NULL && pref->obj != 0 &&
	    pref->gen == hsm_generation(s->h) && names(s, pref->obj, id,
	    idlen)) {
		priv = pref->obj;
	} else {
		/* Made before a restart: found once, then kept. */
		pthread_mutex_lock(&s->h->mu);
		rv = find_import_key(s->h, id, idlen, &priv);
		pthread_mutex_unlock(&s->h->mu);
		if (rv != CKR_OK) {
			return hsm_rv_err(s->h, rv, "find import key");
		}
		if (priv == CK_INVALID_HANDLE) {
			return KMS_ENOTFOUND;
		}
		if (pref != NULL) {
			pref->obj = priv;
			pref->gen = hsm_generation(s->h);
		}
	}
	rv = s->h->f->C_UnwrapKey(s->s, &mech, priv, (CK_BYTE_PTR)enc,
	    enclen, t, sizeof(t) / sizeof(t[0]), &k);
	if (rv != CKR_OK) {
		/* A blob that does not decrypt under this key is a bad
		 * ciphertext, whatever the module calls it. */
		if (rv == CKR_ENCRYPTED_DATA_INVALID || rv ==
		    CKR_ENCRYPTED_DATA_LEN_RANGE || rv ==
		    CKR_WRAPPED_KEY_INVALID || rv == CKR_WRAPPED_KEY_LEN_RANGE ||
		    rv == CKR_GENERAL_ERROR || rv == CKR_TEMPLATE_INCONSISTENT ||
		    rv == CKR_ATTRIBUTE_VALUE_INVALID) {
			return KMS_EINVALIDCIPHERTEXT;
		}
		return hsm_rv_err(s->h, rv, "C_UnwrapKey (import)");
	}
	atomic_fetch_add(&s->h->made, 1);
	/* Under the next domain key while a domain-key rotation runs. */
	dk = s->h->domain_next != CK_INVALID_HANDLE ? s->h->domain_next :
	    s->h->domain;
	rv = s->h->f->C_WrapKey(s->s, &kw, dk, k, wrapped, &wl);
	if (rv != CKR_OK || wl != HSM_WRAPPED_LEN) {
		/* Not a 256-bit key (AWS's SYMMETRIC_DEFAULT): refused. */
		r = rv == CKR_OK || rv == CKR_KEY_SIZE_RANGE ||
		    rv == CKR_WRAPPED_KEY_LEN_RANGE ? KMS_EINVALIDCIPHERTEXT :
		    hsm_rv_err(s->h, rv, "C_WrapKey (import)");
		goto out;
	}
	memset(iv, 0, sizeof(iv));
	memset(zero, 0, sizeof(zero));
	if ((r = hsm_gcm_encrypt(s, k, iv, NULL, 0, zero, sizeof(zero),
	    out)) != 0) {
		goto out;
	}
	memcpy(kcv, out, 16);
	*wrappedlen = wl;
	if (res_id != NULL) {
		rv = s->h->f->C_UnwrapKey(s->s, &kw, dk, wrapped, wl,
		    rt, sizeof(rt) / sizeof(rt[0]), &rk);
		secure_wipe(wrapped, wl);
		*wrappedlen = 0;
		if (rv != CKR_OK) {
			r = hsm_rv_err(s->h, rv, "C_UnwrapKey (resident "
			    "import)");
			goto out;
		}
		if (res_ref != NULL) {
			res_ref->obj = rk;
			res_ref->gen = hsm_generation(s->h);
		}
	}
	r = 0;
 out:
	(void)s->h->f->C_DestroyObject(s->s, k);
	return r;
}

/*
 * The known-answer probe: a session key pair made here, a known AES-256
 * key wrapped with OpenSSL (RSAES-OAEP, SHA-256 and MGF1-SHA-256, or SHA-1
 * and MGF1-SHA-1) under its
 * public half, unwrapped by the HSM, and the unwrapped key's AES-GCM of a
 * zero block compared with OpenSSL's under the known key.  An HSM that
 * refuses the parameters, or unwraps to another key, fails it.
 */
int
hsm_probe_oaep(hsm_session *s, int sha256)
{
	static const uint8_t known[32] = {
		0x6b, 0x6d, 0x73, 0x64, 0x2d, 0x6f, 0x61, 0x65,
		0x70, 0x2d, 0x73, 0x68, 0x61, 0x32, 0x35, 0x36,
		0x2d, 0x70, 0x72, 0x6f, 0x62, 0x65, 0x2d, 0x6b,
		0x65, 0x79, 0x2d, 0x30, 0x31, 0x32, 0x33, 0x34,
	};
	CK_MECHANISM gen = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_RSA_PKCS_OAEP_PARAMS oaep = { sha256 ? CKM_SHA256 : CKM_SHA_1,
		sha256 ? CKG_MGF1_SHA256 : CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED,
		NULL, 0 };
	CK_MECHANISM mech = { CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep) };
	const EVP_MD *md = sha256 ? EVP_sha256() : EVP_sha1();
	CK_ULONG modbits = 2048;
	CK_BYTE exp[] = { 0x01, 0x00, 0x01 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_MODULUS_BITS, &modbits, sizeof(modbits) },
		{ CKA_PUBLIC_EXPONENT, exp, sizeof(exp) },
		{ CKA_WRAP, &yes, sizeof(yes) },
	};
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_UNWRAP, &yes, sizeof(yes) },
	};
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_ENCRYPT, &yes, sizeof(yes) },
	};
	uint8_t n[RSA_MODULUS_MAX], e[16], spki[RSA_MODULUS_MAX + 64];
	CK_ATTRIBUTE get[] = {
		{ CKA_MODULUS, n, sizeof(n) },
		{ CKA_PUBLIC_EXPONENT, e, sizeof(e) },
	};
	uint8_t wrapped[RSA_MODULUS_MAX], iv[12] = { 0 }, zero[16] = { 0 };
	uint8_t hsm_out[32], sw_out[16], tag[16];
	CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
	const unsigned char *pp;
	EVP_PKEY *pk = NULL;
	EVP_PKEY_CTX *pc = NULL;
	EVP_CIPHER_CTX *cc = NULL;
	size_t spkilen = 0, wl = sizeof(wrapped);
	int ok = 0, outl = 0;

	if (hsm_ready(s) != 0 || s->h->f->C_GenerateKeyPair(s->s, &gen, pub,
	    sizeof(pub) / sizeof(pub[0]), priv, sizeof(priv) / sizeof(priv[0]),
	    &hpub, &hpriv) != CKR_OK) {
		goto out;
	}
	atomic_fetch_add(&s->h->made, 2);
	if (s->h->f->C_GetAttributeValue(s->s, hpub, get, 2) != CKR_OK ||
	    spki_der(n, get[0].ulValueLen, e, get[1].ulValueLen, spki,
	    sizeof(spki), &spkilen) != 0) {
		goto out;
	}
	pp = spki;
	if ((pk = d2i_PUBKEY(NULL, &pp, (long)spkilen)) == NULL ||
	    (pc = EVP_PKEY_CTX_new(pk, NULL)) == NULL ||
	    EVP_PKEY_encrypt_init(pc) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pc, md) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pc, md) != 1 ||
	    EVP_PKEY_encrypt(pc, wrapped, &wl, known, sizeof(known)) != 1) {
		goto out;
	}
	if (s->h->f->C_UnwrapKey(s->s, &mech, hpriv, wrapped, wl, t,
	    sizeof(t) / sizeof(t[0]), &k) != CKR_OK) {
		goto out;
	}
	atomic_fetch_add(&s->h->made, 1);
	if (hsm_gcm_encrypt(s, k, iv, NULL, 0, zero, sizeof(zero),
	    hsm_out) != 0) {
		goto out;
	}
	if ((cc = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(cc, EVP_aes_256_gcm(), NULL, known, iv) != 1 ||
	    EVP_EncryptUpdate(cc, sw_out, &outl, zero, sizeof(zero)) != 1 ||
	    outl != (int)sizeof(sw_out) ||
	    EVP_EncryptFinal_ex(cc, tag, &outl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1) {
		goto out;
	}
	ok = CRYPTO_memcmp(hsm_out, sw_out, 16) == 0 &&
	    CRYPTO_memcmp(hsm_out + 16, tag, 16) == 0;
 out:
	EVP_CIPHER_CTX_free(cc);
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(pk);
	if (k != CK_INVALID_HANDLE) {
		(void)s->h->f->C_DestroyObject(s->s, k);
	}
	if (hpub != CK_INVALID_HANDLE) {
		(void)s->h->f->C_DestroyObject(s->s, hpub);
	}
	if (hpriv != CK_INVALID_HANDLE) {
		(void)s->h->f->C_DestroyObject(s->s, hpriv);
	}
	return ok;
}

int
hsm_probe_oaep_sha256(hsm_session *s)
{
	return hsm_probe_oaep(s, 1);
}

int
hsm_destroy_import_key(hsm_session *s, const uint8_t *id, size_t idlen)
{
	CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	pthread_mutex_lock(&s->h->mu);
	if ((rv = find_import_key(s->h, id, idlen, &k)) == CKR_OK) {
		if (k == CK_INVALID_HANDLE) {
			pthread_mutex_unlock(&s->h->mu);
			return KMS_ENOTFOUND;
		}
		rv = s->h->f->C_DestroyObject(s->h->sess, k);
	}
	pthread_mutex_unlock(&s->h->mu);
	return hsm_rv_err(s->h, rv, "destroy import key");
}

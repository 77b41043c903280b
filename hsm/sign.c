/*
 * sign.c — the audit signing key pair: found (or generated) in the token
 * by label, used to sign checkpoints of the audit log, its public half
 * exported as a DER SubjectPublicKeyInfo (see hsm.h).
 *
 * The private half is a token object that is private, sensitive and not
 * extractable, and may only sign: nobody, kmsd included, can read it, so a
 * signature proves the HSM made it.  Ed25519 (CKM_EDDSA) where the token
 * offers it, else ECDSA on P-256 (CKM_ECDSA over a SHA-256 digest, r ‖ s).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>
#include <p11-kit/pkcs11.h>

#include "common/err.h"
#include "common/log.h"
#include "hsm/hsm.h"
#include "hsm/internal.h"

/* GCC says __SANITIZE_ADDRESS__; clang (the fuzz build) says it through
 * __has_feature. */
#if defined(__SANITIZE_ADDRESS__)
#define KMS_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KMS_LSAN 1
#endif
#endif

#if defined(KMS_LSAN)
#include <sanitizer/lsan_interface.h>
/* SoftHSM2 2.6.1 leaks a small ASN.1 string (24 + 13 bytes) on every
 * CKM_EDDSA signature (it decodes the private key on each call and does
 * not free all of it): not ours to fix, and not to hide kmsd's own leaks
 * behind a broad suppression, so only the module's allocations during a
 * signature are left out of LeakSanitizer's report.  kmsd signs a
 * checkpoint every audit_checkpoint_records records or
 * audit_checkpoint_seconds: at the defaults, tens of bytes a minute. */
#define MODULE_LEAKS_BEGIN() __lsan_disable()
#define MODULE_LEAKS_END() __lsan_enable()
#else
#define MODULE_LEAKS_BEGIN() do { } while (0)
#define MODULE_LEAKS_END() do { } while (0)
#endif

/* DER of the curve OIDs, as CKA_EC_PARAMS. */
static const uint8_t ed25519_oid[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
static const uint8_t p256_oid[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
	0x3d, 0x03, 0x01, 0x07 };
/* SubjectPublicKeyInfo prefixes; the key's bytes follow. */
static const uint8_t ed25519_spki[] = { 0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
	0x2b, 0x65, 0x70, 0x03, 0x21, 0x00 };
static const uint8_t p256_spki[] = { 0x30, 0x59, 0x30, 0x13, 0x06, 0x07,
	0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
	0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00 };

static int
has_mech(hsm *h, CK_MECHANISM_TYPE m, CK_FLAGS need)
{
	CK_MECHANISM_INFO mi;

	return h->f->C_GetMechanismInfo(h->slot, m, &mi) == CKR_OK &&
	    (mi.flags & need) == need;
}

/* First object of class cls with this label (internal session, mu held). */
static CK_RV
find_labelled(hsm *h, CK_OBJECT_CLASS cls, const char *label,
    CK_OBJECT_HANDLE *out)
{
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};

	return hsm_find_one(h, t, 3, out);
}

static CK_RV
generate(hsm *h, int alg, const char *label)
{
	CK_MECHANISM m = { alg == HSM_SIGN_ED25519 ?
	    CKM_EC_EDWARDS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &no, sizeof(no) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
		{ CKA_ENCRYPT, &no, sizeof(no) },
		{ CKA_WRAP, &no, sizeof(no) },
		{ CKA_EC_PARAMS, (void *)(alg == HSM_SIGN_ED25519 ?
		    ed25519_oid : p256_oid), alg == HSM_SIGN_ED25519 ?
		    sizeof(ed25519_oid) : sizeof(p256_oid) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_DECRYPT, &no, sizeof(no) },
		{ CKA_UNWRAP, &no, sizeof(no) },
		{ CKA_DERIVE, &no, sizeof(no) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_OBJECT_HANDLE hp, hk;

	return h->f->C_GenerateKeyPair(h->sess, &m, pub,
	    sizeof(pub) / sizeof(pub[0]), priv, sizeof(priv) / sizeof(priv[0]),
	    &hp, &hk);
}

/* The public key's CKA_EC_POINT as a SubjectPublicKeyInfo. */
static CK_RV
public_spki(hsm *h, CK_OBJECT_HANDLE pub, struct hsm_signing_key *k)
{
	uint8_t pt[128];
	CK_ATTRIBUTE a = { CKA_EC_POINT, pt, sizeof(pt) };
	const uint8_t *p = pt;
	size_t n, want = k->alg == HSM_SIGN_ED25519 ? 32 : 65;
	CK_RV rv;

	if ((rv = h->f->C_GetAttributeValue(h->sess, pub, &a, 1)) != CKR_OK) {
		return rv;
	}
	n = a.ulValueLen;
	/* A DER OCTET STRING around the point, or the bare point. */
	if (n == want + 2 && pt[0] == 0x04 && pt[1] == want) {
		p += 2;
		n -= 2;
	}
	if (n != want) {
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	if (k->alg == HSM_SIGN_ED25519) {
		memcpy(k->spki, ed25519_spki, sizeof(ed25519_spki));
		memcpy(k->spki + sizeof(ed25519_spki), p, n);
		k->spkilen = sizeof(ed25519_spki) + n;
	} else {
		memcpy(k->spki, p256_spki, sizeof(p256_spki));
		memcpy(k->spki + sizeof(p256_spki), p, n);
		k->spkilen = sizeof(p256_spki) + n;
	}
	return CKR_OK;
}

/* Key type of a found private key → algorithm. */
static int
key_alg(hsm *h, CK_OBJECT_HANDLE o)
{
	CK_KEY_TYPE kt = 0;
	CK_ATTRIBUTE a = { CKA_KEY_TYPE, &kt, sizeof(kt) };

	if (h->f->C_GetAttributeValue(h->sess, o, &a, 1) != CKR_OK) {
		return 0;
	}
	return kt == CKK_EC_EDWARDS ? HSM_SIGN_ED25519 : kt == CKK_EC ?
	    HSM_SIGN_ECDSA_P256 : 0;
}

int
hsm_signing_key(hsm *h, const char *label, int create,
    struct hsm_signing_key *k, char *err, size_t errlen)
{
	CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE;
	CK_RV rv;
	int r = KMS_EINTERNAL, alg;

	memset(k, 0, sizeof(*k));
	if (strlen(label) >= sizeof(k->label)) {
		return KMS_EINVAL;
	}
	snprintf(k->label, sizeof(k->label), "%s", label);
	pthread_mutex_lock(&h->mu);
	if (atomic_load(&h->down) || h->sess == CK_INVALID_HANDLE) {
		snprintf(err, errlen, "the HSM is unavailable");
		r = KMS_EDEPENDENCYTIMEOUT;
		goto out;
	}
	if ((rv = find_labelled(h, CKO_PRIVATE_KEY, label, &priv)) !=
	    CKR_OK) {
		snprintf(err, errlen, "finding the audit signing key: 0x%lx",
		    (unsigned long)rv);
		goto out;
	}
	if (priv == CK_INVALID_HANDLE) {
		if (!create) {
			snprintf(err, errlen, "no audit signing key \"%s\" in "
			    "the token", label);
			r = KMS_ENOTFOUND;
			goto out;
		}
		if (has_mech(h, CKM_EDDSA, CKF_SIGN) &&
		    has_mech(h, CKM_EC_EDWARDS_KEY_PAIR_GEN,
		    CKF_GENERATE_KEY_PAIR)) {
			alg = HSM_SIGN_ED25519;
		} else if (has_mech(h, CKM_ECDSA, CKF_SIGN) &&
		    has_mech(h, CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR)) {
			alg = HSM_SIGN_ECDSA_P256;
		} else {
			snprintf(err, errlen, "the HSM offers neither CKM_EDDSA "
			    "nor CKM_ECDSA (with their key pair generation) "
			    "for the audit signing key; for SoftHSM2 add "
			    "CKM_EC_EDWARDS_KEY_PAIR_GEN,CKM_EDDSA to "
			    "slots.mechanisms in softhsm2.conf (scripts/hsm-init "
			    "does), or set audit = no");
			r = KMS_EUNSUPPORTED;
			goto out;
		}
		if ((rv = generate(h, alg, label)) != CKR_OK) {
			snprintf(err, errlen, "generating the audit signing "
			    "key: 0x%lx", (unsigned long)rv);
			goto out;
		}
		log_info("audit signing key (%s) generated in token \"%s\"",
		    alg == HSM_SIGN_ED25519 ? "Ed25519" : "ECDSA P-256",
		    h->label);
		if ((rv = find_labelled(h, CKO_PRIVATE_KEY, label, &priv)) !=
		    CKR_OK || priv == CK_INVALID_HANDLE) {
			snprintf(err, errlen, "the new audit signing key "
			    "cannot be found");
			goto out;
		}
	}
	if ((k->alg = key_alg(h, priv)) == 0) {
		snprintf(err, errlen, "the audit signing key \"%s\" is "
		    "neither Ed25519 nor EC", label);
		goto out;
	}
	if ((rv = find_labelled(h, CKO_PUBLIC_KEY, label, &pub)) != CKR_OK ||
	    pub == CK_INVALID_HANDLE ||
	    (rv = public_spki(h, pub, k)) != CKR_OK) {
		snprintf(err, errlen, "the audit signing key's public half "
		    "cannot be read");
		goto out;
	}
	k->priv = priv;
	k->gen = atomic_load(&h->gen);
	r = 0;
 out:
	pthread_mutex_unlock(&h->mu);
	return r;
}

int
hsm_sign(hsm_session *s, struct hsm_signing_key *k, const uint8_t *msg,
    size_t len, uint8_t sig[HSM_SIG_LEN])
{
	CK_MECHANISM m = { k->alg == HSM_SIGN_ED25519 ? CKM_EDDSA : CKM_ECDSA,
	    NULL, 0 };
	uint8_t digest[SHA256_DIGEST_LENGTH];
	const uint8_t *in = msg;
	CK_ULONG inlen = len, siglen = HSM_SIG_LEN;
	uint64_t gen;
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	gen = atomic_load(&s->h->gen);
	if (k->gen != gen) {
		/* Handles of an older generation may name anything now. */
		pthread_mutex_lock(&s->h->mu);
		rv = find_labelled(s->h, CKO_PRIVATE_KEY, k->label, &k->priv);
		pthread_mutex_unlock(&s->h->mu);
		if (rv != CKR_OK) {
			return hsm_rv_err(s->h, rv, "finding the audit key");
		}
		if (k->priv == CK_INVALID_HANDLE) {
			return KMS_ENOTFOUND;
		}
		k->gen = gen;
	}
	if (k->alg == HSM_SIGN_ECDSA_P256) {
		SHA256(msg, len, digest);
		in = digest;
		inlen = sizeof(digest);
	}
	MODULE_LEAKS_BEGIN();
	if ((rv = s->h->f->C_SignInit(s->s, &m, k->priv)) == CKR_OK) {
		rv = s->h->f->C_Sign(s->s, (CK_BYTE_PTR)in, inlen, sig,
		    &siglen);
	}
	MODULE_LEAKS_END();
	if (rv != CKR_OK) {
		return hsm_rv_err(s->h, rv, "C_SignInit/C_Sign");
	}
	return siglen == HSM_SIG_LEN ? 0 : KMS_EINTERNAL;
}

int
hsm_signing_key_inspect(hsm_session *s, struct hsm_signing_key *k,
    struct hsm_key_attrs *out)
{
	CK_BBOOL sens = 0, ext = 0, tok = 0, priv = 0;
	CK_ATTRIBUTE a[] = {
		{ CKA_SENSITIVE, &sens, sizeof(sens) },
		{ CKA_EXTRACTABLE, &ext, sizeof(ext) },
		{ CKA_TOKEN, &tok, sizeof(tok) },
		{ CKA_PRIVATE, &priv, sizeof(priv) },
	};
	uint8_t value[128];
	CK_ATTRIBUTE v = { CKA_VALUE, value, sizeof(value) };
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	if ((rv = s->h->f->C_GetAttributeValue(s->s, k->priv, a, 4)) !=
	    CKR_OK) {
		return hsm_rv_err(s->h, rv, "C_GetAttributeValue");
	}
	memset(out, 0, sizeof(*out));
	out->sensitive = sens != 0;
	out->extractable = ext != 0;
	out->token = tok != 0;
	out->is_private = priv != 0;
	out->value_readable = s->h->f->C_GetAttributeValue(s->s, k->priv, &v,
	    1) == CKR_OK && v.ulValueLen != CK_UNAVAILABLE_INFORMATION;
	out->wrap_refused = 1;
	return 0;
}

/*
 * measure.c — the HSM's own cost per call (see measure.h).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/secmem.h"
#include "hsm/internal.h"
#include "hsm/measure.h"

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
hsm_measure_gdk_calls(hsm_session *s, int private, size_t nkeys,
    uint64_t count, double sum[HSM_NCALLS])
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE, priv = private ? yes : no;
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_ULONG len = 32, outlen;
	CK_MECHANISM gen = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_VALUE_LEN, &len, sizeof(len) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_PRIVATE, &priv, sizeof(priv) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_ENCRYPT, &yes, sizeof(yes) },
		{ CKA_DECRYPT, &yes, sizeof(yes) },
	};
	uint8_t rnd[32 + HSM_GCM_IV_LEN], aad[21], out[32 + HSM_GCM_TAG_LEN];
	CK_GCM_PARAMS gp;
	CK_MECHANISM m = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_OBJECT_HANDLE *keys;
	CK_FUNCTION_LIST_PTR f;
	CK_RV rv;
	uint64_t i, x = 0x9E3779B97F4A7C15ULL;
	size_t made;
	double t0, t1, t2, t3;
	int r;

	if (nkeys == 0) {
		return KMS_EINVAL;
	}
	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	if ((keys = calloc(nkeys, sizeof(*keys))) == NULL) {
		return KMS_ENOMEM;
	}
	f = s->h->f;
	for (made = 0; made < nkeys; made++) {
		if ((rv = f->C_GenerateKey(s->s, &gen, t,
		    sizeof(t) / sizeof(t[0]), &keys[made])) != CKR_OK) {
			r = hsm_rv_err(s->h, rv, "C_GenerateKey");
			goto out;
		}
	}
	memset(aad, 0x01, sizeof(aad));
	for (i = 0; i < count; i++) {
		x ^= x << 13;			/* xorshift64: a key per call */
		x ^= x >> 7;
		x ^= x << 17;
		t0 = mono_s();
		if ((rv = f->C_GenerateRandom(s->s, rnd, sizeof(rnd))) !=
		    CKR_OK) {
			r = hsm_rv_err(s->h, rv, "C_GenerateRandom");
			goto out;
		}
		t1 = mono_s();
		memset(&gp, 0, sizeof(gp));
		gp.pIv = rnd + 32;
		gp.ulIvLen = HSM_GCM_IV_LEN;
		gp.ulIvBits = HSM_GCM_IV_LEN * 8;
		gp.pAAD = aad;
		gp.ulAADLen = sizeof(aad);
		gp.ulTagBits = HSM_GCM_TAG_LEN * 8;
		if ((rv = f->C_EncryptInit(s->s, &m, keys[x % nkeys])) !=
		    CKR_OK) {
			r = hsm_rv_err(s->h, rv, "C_EncryptInit");
			goto out;
		}
		t2 = mono_s();
		outlen = sizeof(out);
		if ((rv = f->C_Encrypt(s->s, rnd, 32, out, &outlen)) !=
		    CKR_OK) {
			r = hsm_rv_err(s->h, rv, "C_Encrypt");
			goto out;
		}
		t3 = mono_s();
		sum[HSM_CALL_RANDOM] += t1 - t0;
		sum[HSM_CALL_ENCRYPT_INIT] += t2 - t1;
		sum[HSM_CALL_ENCRYPT] += t3 - t2;
	}
	r = 0;
 out:
	secure_wipe(rnd, sizeof(rnd));
	for (i = 0; i < made; i++) {
		(void)f->C_DestroyObject(s->s, keys[i]);
	}
	free(keys);
	return r;
}

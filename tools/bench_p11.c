/*
 * bench_p11.c — `kms-bench --op hsm-calls`: what each PKCS#11 call of a
 * GenerateDataKey costs the HSM, and how much of it is the price of the
 * key being a private object.
 *
 * Made directly on the token a kmsd.conf names (--hsm-conf), from one
 * thread, with no daemon: C_GenerateRandom (data key ‖ IV),
 * C_EncryptInit (AES-GCM, 21 bytes of AAD) and C_Encrypt (32 bytes), each
 * timed on its own, under sensitive, non-extractable AES-256 session keys
 * generated for the run (--hsm-keys of them, used uniformly).  Two kinds
 * of key, alternated round by round (--rounds): private, as kmsd holds
 * its keys, and public.  SoftHSM2 keeps a private object's value
 * encrypted under its token key and decrypts it on every C_EncryptInit;
 * a public one it keeps in clear.  kmsd keeps its keys private (DESIGN
 * §2: no plaintext CMK in the daemon's memory, and SoftHSM2 lives in it),
 * so the difference is what custody costs per operation, not something to
 * take.  Every key made here is a session object, gone with the session.
 *
 * This talks PKCS#11 itself instead of going through hsm/, which never
 * makes a public key.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

#include "common/secmem.h"
#include "kmsd/config.h"
#include "tools/bench.h"

#define P11_PIN_MAX 256
#define P11_DEFAULT_COUNT 20000		/* operations per kind and round */

enum { CALL_RANDOM, CALL_INIT, CALL_ENCRYPT, NCALLS };
static const char *call_names[NCALLS] = {
	"C_GenerateRandom", "C_EncryptInit", "C_Encrypt"
};

struct p11 {
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	CK_SESSION_HANDLE s;
	int initialized, open;
};

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The user PIN: the file's first line, at most P11_PIN_MAX - 1 bytes. */
static int
read_pin(const char *path, char *pin, size_t *len, char *err, size_t errlen)
{
	FILE *fp;
	size_t n;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "cannot read the PIN file %s", path);
		return -1;
	}
	n = fread(pin, 1, P11_PIN_MAX - 1, fp);
	fclose(fp);
	pin[n] = '\0';
	n = strcspn(pin, "\r\n");
	if (n == 0) {
		snprintf(err, errlen, "the PIN file %s is empty", path);
		return -1;
	}
	*len = n;
	return 0;
}

static int
p11_open(const struct config *c, struct p11 *p, char *err, size_t errlen)
{
	CK_C_GetFunctionList gfl;
	CK_C_INITIALIZE_ARGS ia;
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64, i;
	CK_TOKEN_INFO ti;
	char pin[P11_PIN_MAX], label[33];
	size_t pinlen, l;
	CK_RV rv;

	if ((p->dl = dlopen(c->pkcs11_module, RTLD_NOW | RTLD_LOCAL)) == NULL ||
	    (gfl = (CK_C_GetFunctionList)dlsym(p->dl,
	    "C_GetFunctionList")) == NULL || gfl(&p->f) != CKR_OK) {
		snprintf(err, errlen, "cannot load %s", c->pkcs11_module);
		return -1;
	}
	memset(&ia, 0, sizeof(ia));
	ia.flags = CKF_OS_LOCKING_OK;
	if ((rv = p->f->C_Initialize(&ia)) != CKR_OK) {
		snprintf(err, errlen, "C_Initialize: 0x%lx", (unsigned long)rv);
		return -1;
	}
	p->initialized = 1;
	if ((rv = p->f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) {
		snprintf(err, errlen, "C_GetSlotList: 0x%lx", (unsigned long)rv);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (p->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK) {
			continue;
		}
		memcpy(label, ti.label, 32);
		for (l = 32; l > 0 && label[l - 1] == ' '; l--)
			;
		label[l] = '\0';
		if (strcmp(label, c->token_label) == 0) {
			break;
		}
	}
	if (i == n) {
		snprintf(err, errlen, "no token labelled \"%s\"",
		    c->token_label);
		return -1;
	}
	if ((rv = p->f->C_OpenSession(slots[i], CKF_SERIAL_SESSION |
	    CKF_RW_SESSION, NULL, NULL, &p->s)) != CKR_OK) {
		snprintf(err, errlen, "C_OpenSession: 0x%lx", (unsigned long)rv);
		return -1;
	}
	p->open = 1;
	if (read_pin(c->pin_file, pin, &pinlen, err, errlen) != 0) {
		return -1;
	}
	rv = p->f->C_Login(p->s, CKU_USER, (CK_UTF8CHAR_PTR)pin, pinlen);
	secure_wipe(pin, sizeof(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		snprintf(err, errlen, "C_Login: 0x%lx", (unsigned long)rv);
		return -1;
	}
	return 0;
}

static void
p11_close(struct p11 *p)
{
	if (p->open) {
		p->f->C_CloseSession(p->s);	/* its session objects too */
	}
	if (p->initialized) {
		p->f->C_Finalize(NULL);
	}
	if (p->dl != NULL) {
		dlclose(p->dl);
	}
}

/* n sensitive, non-extractable AES-256 session keys, private or not. */
static int
make_keys(struct p11 *p, int private, CK_OBJECT_HANDLE *keys, size_t n,
    char *err, size_t errlen)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE, priv = private ? yes : no;
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_ULONG len = 32;
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
	CK_RV rv;
	size_t i;

	for (i = 0; i < n; i++) {
		if ((rv = p->f->C_GenerateKey(p->s, &gen, t,
		    sizeof(t) / sizeof(t[0]), &keys[i])) != CKR_OK) {
			snprintf(err, errlen, "C_GenerateKey: 0x%lx",
			    (unsigned long)rv);
			return -1;
		}
	}
	return 0;
}

/* count GenerateDataKeys under keys; adds each call's seconds to sum. */
static int
measure(struct p11 *p, const CK_OBJECT_HANDLE *keys, size_t nkeys,
    uint64_t count, uint64_t *seed, double sum[NCALLS], char *err,
    size_t errlen)
{
	uint8_t rnd[32 + 12], aad[21], out[32 + 16];
	CK_GCM_PARAMS gp;
	CK_MECHANISM m = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_ULONG outlen;
	CK_RV rv = CKR_OK;
	double t0, t1, t2, t3;
	uint64_t i;

	memset(aad, 0x01, sizeof(aad));
	for (i = 0; i < count && rv == CKR_OK; i++) {
		CK_OBJECT_HANDLE k = keys[bench_rand(seed) % nkeys];

		t0 = mono_s();
		if ((rv = p->f->C_GenerateRandom(p->s, rnd,
		    sizeof(rnd))) != CKR_OK) {
			break;
		}
		t1 = mono_s();
		memset(&gp, 0, sizeof(gp));
		gp.pIv = rnd + 32;
		gp.ulIvLen = 12;
		gp.ulIvBits = 96;
		gp.pAAD = aad;
		gp.ulAADLen = sizeof(aad);
		gp.ulTagBits = 128;
		if ((rv = p->f->C_EncryptInit(p->s, &m, k)) != CKR_OK) {
			break;
		}
		t2 = mono_s();
		outlen = sizeof(out);
		rv = p->f->C_Encrypt(p->s, rnd, 32, out, &outlen);
		t3 = mono_s();
		sum[CALL_RANDOM] += t1 - t0;
		sum[CALL_INIT] += t2 - t1;
		sum[CALL_ENCRYPT] += t3 - t2;
	}
	secure_wipe(rnd, sizeof(rnd));
	if (rv != CKR_OK) {
		snprintf(err, errlen, "PKCS#11 call failed: 0x%lx",
		    (unsigned long)rv);
		return -1;
	}
	return 0;
}

int
run_hsm_calls(const struct bench_opts *o)
{
	struct config c;
	struct p11 p;
	CK_OBJECT_HANDLE *keys[2] = { NULL, NULL };
	double sum[2][NCALLS];
	char err[BENCH_ERR_MAX];
	uint64_t count = o->count > 0 ? o->count : P11_DEFAULT_COUNT, seed = 1;
	size_t nkeys = o->hsm_keys > 0 ? o->hsm_keys : 1;
	int rounds = o->rounds > 0 ? o->rounds : 1, k, r, rc = 1;
	const char *kind[2] = { "private", "public" };

	memset(&p, 0, sizeof(p));
	memset(sum, 0, sizeof(sum));
	if (o->hsm_conf == NULL) {
		fprintf(stderr, "kms-bench: --op hsm-calls needs --hsm-conf\n");
		return 2;
	}
	config_defaults(&c, NULL);
	if (config_load(&c, o->hsm_conf, err, sizeof(err)) != 0 ||
	    config_finish(&c, err, sizeof(err)) != 0) {
		fprintf(stderr, "kms-bench: --hsm-conf: %s\n", err);
		return 2;
	}
	if (c.softhsm2_conf[0] != '\0') {
		setenv("SOFTHSM2_CONF", c.softhsm2_conf, 1);
	}
	if ((keys[0] = calloc(nkeys, sizeof(*keys[0]))) == NULL ||
	    (keys[1] = calloc(nkeys, sizeof(*keys[1]))) == NULL) {
		fprintf(stderr, "kms-bench: out of memory\n");
		goto out;
	}
	if (p11_open(&c, &p, err, sizeof(err)) != 0 ||
	    make_keys(&p, 1, keys[0], nkeys, err, sizeof(err)) != 0 ||
	    make_keys(&p, 0, keys[1], nkeys, err, sizeof(err)) != 0) {
		fprintf(stderr, "kms-bench: hsm-calls: %s\n", err);
		goto out;
	}
	/* A short warm-up of each kind, then the rounds, alternated. */
	for (k = 0; k < 2; k++) {
		double w[NCALLS] = { 0 };
		if (measure(&p, keys[k], nkeys, count / 10 + 1, &seed, w, err,
		    sizeof(err)) != 0) {
			fprintf(stderr, "kms-bench: hsm-calls: %s\n", err);
			goto out;
		}
	}
	for (r = 0; r < rounds; r++) {
		for (k = 0; k < 2; k++) {
			if (measure(&p, keys[k], nkeys, count, &seed, sum[k],
			    err, sizeof(err)) != 0) {
				fprintf(stderr, "kms-bench: hsm-calls: %s\n",
				    err);
				goto out;
			}
		}
	}
	for (k = 0; k < 2; k++) {
		for (r = 0; r < NCALLS; r++) {
			sum[k][r] = sum[k][r] * 1e6 / (double)(count *
			    (uint64_t)rounds);
		}
	}
	if (o->json) {
		printf("{\"op\": \"hsm-calls\", \"hsm_keys\": %zu, "
		    "\"count\": %llu, \"rounds\": %d", nkeys,
		    (unsigned long long)count, rounds);
		for (k = 0; k < 2; k++) {
			printf(", \"%s_us\": {\"random\": %.3f, "
			    "\"encrypt_init\": %.3f, \"encrypt\": %.3f, "
			    "\"total\": %.3f}", kind[k], sum[k][CALL_RANDOM],
			    sum[k][CALL_INIT], sum[k][CALL_ENCRYPT],
			    sum[k][0] + sum[k][1] + sum[k][2]);
		}
		printf("}\n");
	} else {
		printf("kms-bench: hsm-calls, one thread, %zu key%s, %llu "
		    "GenerateDataKeys per kind in each of %d round%s\n",
		    nkeys, nkeys == 1 ? "" : "s", (unsigned long long)count,
		    rounds, rounds == 1 ? "" : "s");
		printf("%-18s %12s %12s\n", "mean us per call", kind[0],
		    kind[1]);
		for (r = 0; r < NCALLS; r++) {
			printf("%-18s %12.2f %12.2f\n", call_names[r],
			    sum[0][r], sum[1][r]);
		}
		printf("%-18s %12.2f %12.2f\n", "all three",
		    sum[0][0] + sum[0][1] + sum[0][2],
		    sum[1][0] + sum[1][1] + sum[1][2]);
	}
	rc = 0;
 out:
	p11_close(&p);
	free(keys[0]);
	free(keys[1]);
	return rc;
}

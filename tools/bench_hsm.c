/*
 * bench_hsm.c — the HSM baseline: the PKCS#11 calls an operation needs,
 * made directly through hsm/ from one thread on the daemon's own token,
 * with no daemon, no transport and no store.  It is the ceiling kmsd's
 * throughput is judged against.
 *
 * Per operation:
 *   GenerateDataKey (+WithoutPlaintext): C_GenerateRandom(data key ‖ IV),
 *     AES-GCM encrypt of the data key with AAD (blob header ‖ context);
 *   Encrypt: C_GenerateRandom(IV), AES-GCM encrypt of the plaintext;
 *   Decrypt: AES-GCM decrypt;
 *   ReEncrypt: decrypt, then as Encrypt;
 *   CreateKey: generate a key and wrap it under the domain key.
 * The CMK is a session object unwrapped from a fresh wrapped blob, as kmsd
 * holds hot keys.  --hsm-keys N makes N such objects and spreads GenerateDataKey
 * and Encrypt uniformly over them (Decrypt and ReEncrypt open under the
 * first), to measure what the HSM's own cost does with the number of hot
 * keys, apart from kmsd.
 *
 * --op hsm-calls times a GenerateDataKey's calls one by one instead
 * (hsm/measure.h), under private and public keys.
 *
 * The token is found from a kmsd.conf (--hsm-conf), read here with the
 * same keys and defaults as kmsd's own parser; lines are bounded.  Without
 * --hsm-conf it is the token of the var/ state directory nearest the
 * current directory upwards (as kmsctl finds kmsd's socket): that
 * directory's kmsd.conf when it has one, else kmsd's embedded defaults
 * for it, as `kmsd --state-dir DIR` would read them.
 */
#include <sys/stat.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/secmem.h"
#include "hsm/hsm.h"
#include "hsm/measure.h"
#include "kmsd/daemon/config.h"
#include "tools/bench.h"

#define BLOB_HEADER_LEN 21		/* format ‖ key id ‖ version */
#define AAD_MAX (BLOB_HEADER_LEN + 2 + BENCH_MAX_CONTEXT_PAIRS * 256)

struct hsm_thr {
	hsm_session *s;
	hsm_key k;			/* keys[0] */
	hsm_key *keys;
	size_t nkeys;
	int op;
	size_t ptlen;
	uint8_t aad[AAD_MAX];
	size_t aadlen;
	uint8_t *pt;			/* secure memory, ptlen */
	uint8_t ct[KMS_MAX_PLAINTEXT + HSM_GCM_TAG_LEN];	/* prepared */
	uint8_t iv[HSM_GCM_IV_LEN];
};

static int
one_encrypt(struct hsm_thr *t, uint64_t *seed, uint8_t *rnd, size_t rndlen)
{
	uint8_t out[KMS_MAX_PLAINTEXT + HSM_GCM_TAG_LEN];
	hsm_key k = t->nkeys > 1 ? t->keys[bench_rand(seed) % t->nkeys] : t->k;
	int r;

	if ((r = hsm_random(t->s, rnd, rndlen)) != 0) {
		return r;
	}
	/* GenerateDataKey: the data key is the first bytes, the IV last. */
	return hsm_gcm_encrypt(t->s, k, rnd + rndlen - HSM_GCM_IV_LEN,
	    t->aad, t->aadlen, rndlen > HSM_GCM_IV_LEN ? rnd : t->pt,
	    t->ptlen, out);
}

static int
hsm_req(void *arg, uint64_t *seed, uint64_t *ops, uint64_t *op_errors,
    char *err, size_t errlen)
{
	struct hsm_thr *t = arg;
	uint8_t rnd[KMS_MAX_DATA_KEY_BYTES + HSM_GCM_IV_LEN];
	uint8_t pt[KMS_MAX_PLAINTEXT];
	uint8_t wrapped[HSM_WRAPPED_LEN];
	size_t ptlen = 0, wl;
	int op = t->op, r = 0;

	*ops = 1;
	*op_errors = 0;
	if (op == OP_MIX) {
		op = bench_mix_pick(seed);
	}
	switch (op) {
	case OP_GDK:
	case OP_GDK_WP:
		r = one_encrypt(t, seed, rnd, t->ptlen + HSM_GCM_IV_LEN);
		break;
	case OP_ENCRYPT:
		r = one_encrypt(t, seed, rnd, HSM_GCM_IV_LEN);
		break;
	case OP_DECRYPT:
		r = hsm_gcm_decrypt(t->s, t->k, t->iv, t->aad, t->aadlen,
		    t->ct, t->ptlen + HSM_GCM_TAG_LEN, pt, &ptlen);
		break;
	case OP_RE_ENCRYPT:
		if ((r = hsm_gcm_decrypt(t->s, t->k, t->iv, t->aad, t->aadlen,
		    t->ct, t->ptlen + HSM_GCM_TAG_LEN, pt, &ptlen)) == 0) {
			r = one_encrypt(t, seed, rnd, HSM_GCM_IV_LEN);
		}
		break;
	case OP_CREATE_KEY:
		r = hsm_generate_wrapped(t->s, wrapped, sizeof(wrapped), &wl);
		break;
	default:
		r = KMS_EINVAL;
		break;
	}
	secure_wipe(rnd, sizeof(rnd));
	secure_wipe(pt, sizeof(pt));
	if (r != 0) {
		snprintf(err, errlen, "hsm baseline: %s", kms_strerror(r));
	}
	return r;
}

/* AAD as kmsd builds it: blob bytes 0-20 ‖ canonical context. */
static int
build_aad(struct hsm_thr *t, uint64_t *seed)
{
	size_t i, n = 0;
	uint64_t x;

	t->aad[n++] = 0x01;
	for (i = 0; i < 16; i++) {
		x = bench_rand(seed);
		t->aad[n++] = (uint8_t)x;
	}
	t->aad[n++] = 0;
	t->aad[n++] = 0;
	t->aad[n++] = 0;
	t->aad[n++] = 1;
	t->aad[n++] = (uint8_t)(bench_ctx.npairs >> 8);
	t->aad[n++] = (uint8_t)bench_ctx.npairs;
	for (i = 0; i < bench_ctx.npairs; i++) {
		const char *kv[2] = { bench_ctx.pairs[i].key,
		    bench_ctx.pairs[i].value };
		int j;

		for (j = 0; j < 2; j++) {
			size_t l = strlen(kv[j]);

			if (l > 0xffff || sizeof(t->aad) - n < l + 2) {
				return -1;
			}
			t->aad[n++] = (uint8_t)(l >> 8);
			t->aad[n++] = (uint8_t)l;
			memcpy(t->aad + n, kv[j], l);
			n += l;
		}
	}
	t->aadlen = n;
	return 0;
}

/*
 * The state directory kmsd started by `make run` keeps: the nearest
 * ancestor of the current directory (itself included) whose var/ holds a
 * kmsd.conf or a token's PIN file (scripts/hsm-init's user.pin).  Into
 * dir (absolute, "DIR/var"); -1 when there is none.
 */
static int
find_state_dir(char *dir, size_t dirlen)
{
	char cwd[PATH_MAX], probe[PATH_MAX + 32];
	static const char *marks[] = { "kmsd.conf", "user.pin" };
	struct stat st;
	char *slash;
	size_t i;
	int n;

	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		return -1;
	}
	for (;;) {
		const char *sep = strcmp(cwd, "/") == 0 ? "" : "/";

		for (i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
			snprintf(probe, sizeof(probe), "%s%svar/%s", cwd, sep,
			    marks[i]);
			if (stat(probe, &st) == 0 && S_ISREG(st.st_mode)) {
				n = snprintf(dir, dirlen, "%s%svar", cwd, sep);
				return (n < 0 || (size_t)n >= dirlen) ? -1 : 0;
			}
		}
		if (strcmp(cwd, "/") == 0 ||
		    (slash = strrchr(cwd, '/')) == NULL) {
			return -1;
		}
		if (slash == cwd) {
			cwd[1] = '\0';
		} else {
			*slash = '\0';
		}
	}
}

/* The token the kmsd.conf at path names (NULL: the state directory's, see
 * find_state_dir), opened and logged in as kmsd does: kmsd's own reader,
 * the same defaults and derivations. */
static int
open_token(const char *path, hsm **h, char *err, size_t errlen)
{
	struct config c;
	struct hsm_config hc;
	char dir[PATH_MAX], conf[PATH_MAX + 16];

	if (path == NULL) {
		if (find_state_dir(dir, sizeof(dir)) != 0) {
			snprintf(err, errlen, "no var/ state directory with "
			    "kmsd.conf or a token (user.pin) from the current "
			    "directory upwards: run from kmsd's directory or "
			    "give --hsm-conf FILE");
			return -1;
		}
		config_defaults(&c, dir);
		snprintf(conf, sizeof(conf), "%s/kmsd.conf", dir);
		if (access(conf, F_OK) == 0) {
			path = conf;
		}
	} else {
		config_defaults(&c, NULL);
	}
	if ((path != NULL && config_load(&c, path, err, errlen) != 0) ||
	    config_finish(&c, err, errlen) != 0) {
		return -1;
	}
	if (c.softhsm2_conf[0] != '\0') {
		setenv("SOFTHSM2_CONF", c.softhsm2_conf, 1);
	}
	memset(&hc, 0, sizeof(hc));
	hc.module = c.pkcs11_module;
	hc.token_label = c.token_label;
	hc.pin_file = c.pin_file;
	return hsm_open(&hc, h, err, errlen) != 0 ? -1 : 0;
}

int
hsm_measure(const struct bench_opts *o, struct bench_result *res, char *err,
    size_t errlen)
{
	struct hsm_thr *t = NULL;
	struct bench_run run;
	hsm *h = NULL;
	uint8_t wrapped[HSM_WRAPPED_LEN];
	size_t wl, i;
	uint64_t seed = 0x243F6A8885A308D3ULL;
	void *args[1];
	int r = -1, rv;

	if (open_token(o->hsm_conf, &h, err, errlen) != 0) {
		return -1;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->keys = calloc(o->hsm_keys, sizeof(*t->keys))) == NULL ||
	    (t->pt = secure_alloc(KMS_MAX_PLAINTEXT)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	t->op = o->op;
	t->ptlen = o->plaintext_bytes;
	if ((rv = hsm_session_open(h, &t->s)) != 0 ||
	    (rv = hsm_generate_wrapped(t->s, wrapped, sizeof(wrapped),
	    &wl)) != 0 ||
	    (rv = hsm_unwrap(t->s, wrapped, wl, &t->k)) != 0 ||
	    (rv = hsm_random(t->s, t->pt, t->ptlen)) != 0 ||
	    (rv = hsm_random(t->s, t->iv, sizeof(t->iv))) != 0) {
		snprintf(err, errlen, "hsm baseline set-up: %s",
		    kms_strerror(rv));
		goto out;
	}
	/* Further keys, each its own wrapped blob, as kmsd's hot keys are. */
	t->keys[0] = t->k;
	for (t->nkeys = 1; t->nkeys < o->hsm_keys; t->nkeys++) {
		if ((rv = hsm_generate_wrapped(t->s, wrapped, sizeof(wrapped),
		    &wl)) != 0 ||
		    (rv = hsm_unwrap(t->s, wrapped, wl,
		    &t->keys[t->nkeys])) != 0) {
			snprintf(err, errlen, "hsm baseline set-up, key %zu: "
			    "%s", t->nkeys, kms_strerror(rv));
			goto out;
		}
	}
	if (build_aad(t, &seed) != 0) {
		snprintf(err, errlen, "encryption context too long");
		goto out;
	}
	/* The ciphertext Decrypt and ReEncrypt open. */
	if ((rv = hsm_gcm_encrypt(t->s, t->k, t->iv, t->aad, t->aadlen, t->pt,
	    t->ptlen, t->ct)) != 0) {
		snprintf(err, errlen, "hsm baseline set-up: %s",
		    kms_strerror(rv));
		goto out;
	}
	memset(&run, 0, sizeof(run));
	args[0] = t;
	run.nthreads = 1;
	run.args = args;
	run.fn = hsm_req;
	run.warmup = o->warmup;
	run.duration = o->duration;
	run.count = o->count;
	run.ops_per_req = 1;
	if (bench_run(&run, res) != 0) {
		snprintf(err, errlen, "hsm baseline: the run failed");
		goto out;
	}
	r = 0;
 out:
	if (t != NULL) {
		if (t->s != NULL) {
			if (t->k != 0) {
				hsm_key_release(t->s, t->k);
			}
			for (i = 1; i < t->nkeys; i++) {
				hsm_key_release(t->s, t->keys[i]);
			}
			hsm_session_close(t->s);
		}
		free(t->keys);
		secure_free(t->pt, KMS_MAX_PLAINTEXT);
		free(t);
	}
	hsm_close(h);
	return r;
}

/*
 * --op hsm-calls: a GenerateDataKey's PKCS#11 calls timed one by one
 * (hsm_measure_gdk_calls), from one thread on the token, no kmsd, under
 * private keys (kmsd's) and public ones, the two kinds alternated round by
 * round so that a slow spell of the machine falls on both.
 */
#define HSM_CALLS_COUNT 20000		/* operations per kind and round */

int
run_hsm_calls(const struct bench_opts *o)
{
	static const char *kind[2] = { "private", "public" };
	static const char *call[HSM_NCALLS] = { "C_GenerateRandom",
	    "C_EncryptInit", "C_Encrypt" };
	double us[2][HSM_NCALLS], total[2];
	char err[BENCH_ERR_MAX];
	uint64_t count = o->count > 0 ? o->count : HSM_CALLS_COUNT;
	size_t nkeys = o->hsm_keys > 0 ? o->hsm_keys : 1;
	int rounds = o->rounds > 0 ? o->rounds : 1, k, i, r, rc = 1;
	hsm_session *s = NULL;
	hsm *h = NULL;

	memset(us, 0, sizeof(us));
	if (open_token(o->hsm_conf, &h, err, sizeof(err)) != 0) {
		fprintf(stderr, "kms-bench: --op hsm-calls: %s\n", err);
		return 2;
	}
	if ((r = hsm_session_open(h, &s)) != 0) {
		goto fail;
	}
	/* A short warm-up of each kind, then the rounds. */
	for (k = 0; k < 2; k++) {
		double w[HSM_NCALLS] = { 0 };
		if ((r = hsm_measure_gdk_calls(s, k == 0, nkeys,
		    count / 10 + 1, w)) != 0) {
			goto fail;
		}
	}
	for (i = 0; i < rounds; i++) {
		for (k = 0; k < 2; k++) {
			if ((r = hsm_measure_gdk_calls(s, k == 0, nkeys, count,
			    us[k])) != 0) {
				goto fail;
			}
		}
	}
	for (k = 0; k < 2; k++) {
		total[k] = 0;
		for (i = 0; i < HSM_NCALLS; i++) {
			us[k][i] *= 1e6 / (double)(count * (uint64_t)rounds);
			total[k] += us[k][i];
		}
	}
	if (o->json) {
		printf("{\"op\": \"hsm-calls\", \"hsm_keys\": %zu, "
		    "\"count\": %llu, \"rounds\": %d", nkeys,
		    (unsigned long long)count, rounds);
		for (k = 0; k < 2; k++) {
			printf(", \"%s_us\": {\"random\": %.3f, "
			    "\"encrypt_init\": %.3f, \"encrypt\": %.3f, "
			    "\"total\": %.3f}", kind[k],
			    us[k][HSM_CALL_RANDOM], us[k][HSM_CALL_ENCRYPT_INIT],
			    us[k][HSM_CALL_ENCRYPT], total[k]);
		}
		printf("}\n");
	} else {
		printf("kms-bench: hsm-calls, one thread, %zu key%s, %llu "
		    "GenerateDataKeys per kind in each of %d round%s\n",
		    nkeys, nkeys == 1 ? "" : "s", (unsigned long long)count,
		    rounds, rounds == 1 ? "" : "s");
		printf("%-18s %12s %12s\n", "mean us per call", kind[0],
		    kind[1]);
		for (i = 0; i < HSM_NCALLS; i++) {
			printf("%-18s %12.2f %12.2f\n", call[i], us[0][i],
			    us[1][i]);
		}
		printf("%-18s %12.2f %12.2f\n", "all three", total[0],
		    total[1]);
	}
	rc = 0;
	goto out;
 fail:
	fprintf(stderr, "kms-bench: --op hsm-calls: %s\n", kms_strerror(r));
 out:
	hsm_session_close(s);
	hsm_close(h);
	return rc;
}

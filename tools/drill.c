/*
 * drill.c — kms-drill, the rotation drill: what an operator runs against
 * a live kmsd to rehearse a key's life and prove that nothing is lost.
 *
 * Steps, each timed and judged:
 *   keys       create --keys keys (or use the --key-id ones)
 *   write      N envelopes through Batch: a data key (GenerateDataKey,
 *              with an encryption context) and a ciphertext of a known
 *              plaintext (Encrypt) each
 *   rotate     RotateKeyOnDemand on every key
 *   domain     rotate the domain key (administrators; skipped, and said,
 *              with resident keys), following it to the end
 *   reencrypt  ReEncrypt every ciphertext to its key's newest version
 *              (--fault FILE pulls the token in the middle of this step,
 *              through tests/p11shim's fault file, and the step resumes)
 *   verify     every old and new ciphertext decrypts to the original
 *              bytes (data keys by SHA-256, known plaintexts exactly)
 *   disable    a disabled key is refused, and works again once enabled
 *   delete     with --test-clock: a throwaway key scheduled for deletion
 *              is shredded once kmsd's test clock passes its date
 * A progress bar on a terminal; a report in Markdown and JSON (--report
 * PREFIX writes PREFIX.md and PREFIX.json); exit status 0 only when
 * every step passed.  Data keys never leave locked memory unhashed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "kms.h"

#define BATCH 200		/* envelopes per Batch (kmsd answers a Batch in
				 * a bounded scratch of locked memory) */
#define RE_BATCH 50		/* ReEncrypt holds a plaintext per item too */
#define MAX_KEYS 64
#define MAX_STEPS 16
#define RETRY_SLEEP_MS 200	/* after a transient error (HSM away) */
#define RETRY_MAX 50		/* ten seconds of retries per Batch */

struct step {
	const char *name;
	int pass, skipped;
	unsigned long long count, retries;
	double seconds;
	char note[256];
};

struct env_ctx {
	kms_client *c;
	char keys[MAX_KEYS][KMS_KEY_ID_LEN + 1];
	int nkeys;
	size_t n;			/* envelopes */
	kms_buf *edk, *ect;		/* data key blobs, ciphertexts */
	kms_buf *nedk, *nect;		/* re-encrypted */
	uint8_t (*dkhash)[32];		/* SHA-256 of each data key */
	const char *fault;
	int tty;
	struct step steps[MAX_STEPS];
	int nsteps;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
progress(struct env_ctx *E, const char *what, size_t done, size_t total)
{
	int w = 40, fill;

	if (!E->tty || total == 0) {
		return;
	}
	fill = (int)((double)done / (double)total * w);
	fprintf(stderr, "\r%-10s [%.*s%*s] %zu/%zu", what, fill,
	    "########################################", w - fill, "", done,
	    total);
	if (done == total) {
		fputc('\n', stderr);
	}
}

static struct step *
step_begin(struct env_ctx *E, const char *name)
{
	struct step *s = &E->steps[E->nsteps++];

	memset(s, 0, sizeof(*s));
	s->name = name;
	s->pass = 1;
	s->seconds = now_s();
	return s;
}

static void
step_end(struct step *s)
{
	s->seconds = now_s() - s->seconds;
}

static void __attribute__((format(printf, 2, 3)))
step_fail(struct step *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->pass) {
		return;		/* the first reason is kept */
	}
	s->pass = 0;
	va_start(ap, fmt);
	vsnprintf(s->note, sizeof(s->note), fmt, ap);
	va_end(ap);
}

static int
transient(int code)
{
	return code == KMS_EDEPENDENCYTIMEOUT || code == KMS_ETIMEDOUT ||
	    code == KMS_ETRANSPORT;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static char ctx_val[BATCH][24];
static double fault_until;	/* the pulled token comes back then */
static kms_context_pair ctx_pair[BATCH];

static const char *
known(size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "kms-drill envelope %zu", i);
	return buf;
}

/* Run items[0..n) as Batches, retrying transient failures; fail s on
 * the others.  check(i, item) judges each success. */
static void
run_batch(struct env_ctx *E, struct step *s, kms_batch_item *items, size_t n)
{
	kms_error_info ei;
	size_t i;
	int tries, again, r;

	for (tries = 0; tries < RETRY_MAX; tries++) {
		if (fault_until > 0 && now_s() >= fault_until) {
			(void)unlink(E->fault);	/* the token is back */
			fault_until = 0;
		}
		if ((r = kms_batch(E->c, items, n, &ei)) != 0) {
			if (!transient(r)) {
				step_fail(s, "Batch: %s: %s", ei.name,
				    ei.message);
				return;
			}
			s->retries++;
			sleep_ms(RETRY_SLEEP_MS);
			continue;
		}
		for (i = 0, again = 0; i < n; i++) {
			if (items[i].err.code != 0 &&
			    transient(items[i].err.code)) {
				if (!again && tries == RETRY_MAX - 1) {
					step_fail(s, "item %zu: %s: %s", i,
					    items[i].err.name,
					    items[i].err.message);
				}
				again = 1;
			}
		}
		if (!again) {
			return;
		}
		/* Some items met the HSM away: the whole Batch again (the
		 * successes are redone: harmless for these operations). */
		for (i = 0; i < n; i++) {
			if (items[i].err.code == 0) {
				kms_batch_item_free(&items[i]);
			}
		}
		s->retries++;
		sleep_ms(RETRY_SLEEP_MS);
	}
	step_fail(s, "gave up after %d retries", RETRY_MAX);
}

static void
do_write(struct env_ctx *E, struct step *s)
{
	static kms_batch_item items[2 * BATCH];
	char text[64];
	size_t base, i, m;

	for (base = 0; base < E->n && s->pass; base += BATCH) {
		m = E->n - base < BATCH ? E->n - base : BATCH;
		memset(items, 0, sizeof(items));
		for (i = 0; i < m; i++) {
			size_t e = base + i;
			const char *key = E->keys[e % E->nkeys];
			snprintf(ctx_val[i], sizeof(ctx_val[i]), "%zu", e);
			ctx_pair[i].key = "envelope";
			ctx_pair[i].value = ctx_val[i];
			items[2 * i].op = KMS_BATCH_GENERATE_DATA_KEY;
			items[2 * i].req.generate_data_key.key_id = key;
			items[2 * i].req.generate_data_key.key_spec = "AES_256";
			items[2 * i].req.generate_data_key.context.pairs =
			    &ctx_pair[i];
			items[2 * i].req.generate_data_key.context.npairs = 1;
			items[2 * i + 1].op = KMS_BATCH_ENCRYPT;
			items[2 * i + 1].req.encrypt.key_id = key;
			known(e, text, sizeof(text));
			items[2 * i + 1].req.encrypt.plaintext =
			    (const uint8_t *)strdup(text);
			items[2 * i + 1].req.encrypt.plaintext_len =
			    strlen(text);
			items[2 * i + 1].req.encrypt.context.pairs =
			    &ctx_pair[i];
			items[2 * i + 1].req.encrypt.context.npairs = 1;
		}
		run_batch(E, s, items, 2 * m);
		for (i = 0; i < m; i++) {
			size_t e = base + i;
			kms_generate_data_key_resp *g =
			    &items[2 * i].resp.generate_data_key;
			kms_encrypt_resp *x = &items[2 * i + 1].resp.encrypt;
			free((void *)items[2 * i + 1].req.encrypt.plaintext);
			if (items[2 * i].err.code != 0 ||
			    items[2 * i + 1].err.code != 0) {
				step_fail(s, "envelope %zu: %s%s", e,
				    items[2 * i].err.name,
				    items[2 * i + 1].err.name);
				continue;
			}
			SHA256(g->plaintext.data, g->plaintext.len,
			    E->dkhash[e]);
			E->edk[e] = g->ciphertext_blob;
			g->ciphertext_blob.data = NULL;
			E->ect[e] = x->ciphertext_blob;
			x->ciphertext_blob.data = NULL;
			kms_batch_item_free(&items[2 * i]);
			kms_batch_item_free(&items[2 * i + 1]);
			s->count += 2;
		}
		progress(E, "write", base + m, E->n);
	}
}

static void
do_reencrypt(struct env_ctx *E, struct step *s)
{
	static kms_batch_item items[2 * BATCH];
	size_t base, i, m, half = E->n / 2;
	int pulled = 0;
	double pulled_at = 0;
	FILE *f;

	for (base = 0; base < E->n && s->pass; base += RE_BATCH) {
		m = E->n - base < RE_BATCH ? E->n - base : RE_BATCH;
		if (E->fault != NULL && !pulled && base >= half) {
			/* Pull the token mid-step; put it back a second
			 * later (below); the step must resume. */
			if ((f = fopen(E->fault, "w")) != NULL) {
				fclose(f);
			}
			pulled = 1;
			pulled_at = now_s();
		}
		memset(items, 0, sizeof(items));
		for (i = 0; i < m; i++) {
			size_t e = base + i;
			const char *key = E->keys[e % E->nkeys];
			snprintf(ctx_val[i], sizeof(ctx_val[i]), "%zu", e);
			ctx_pair[i].key = "envelope";
			ctx_pair[i].value = ctx_val[i];
			items[2 * i].op = KMS_BATCH_RE_ENCRYPT;
			items[2 * i].req.re_encrypt.ciphertext_blob =
			    E->edk[e].data;
			items[2 * i].req.re_encrypt.ciphertext_len =
			    E->edk[e].len;
			items[2 * i].req.re_encrypt.destination_key_id = key;
			items[2 * i].req.re_encrypt.source_context.pairs =
			    &ctx_pair[i];
			items[2 * i].req.re_encrypt.source_context.npairs = 1;
			items[2 * i].req.re_encrypt.destination_context =
			    items[2 * i].req.re_encrypt.source_context;
			items[2 * i + 1] = items[2 * i];
			items[2 * i + 1].req.re_encrypt.ciphertext_blob =
			    E->ect[e].data;
			items[2 * i + 1].req.re_encrypt.ciphertext_len =
			    E->ect[e].len;
		}
		if (pulled == 1) {
			fault_until = pulled_at + 1.0;	/* run_batch ends it */
			pulled = 2;
		}
		run_batch(E, s, items, 2 * m);
		for (i = 0; i < 2 * m; i++) {
			size_t e = base + i / 2;
			kms_re_encrypt_resp *rr = &items[i].resp.re_encrypt;
			if (items[i].err.code != 0) {
				step_fail(s, "envelope %zu: %s: %s", e,
				    items[i].err.name, items[i].err.message);
				continue;
			}
			if (i % 2 == 0) {
				E->nedk[e] = rr->ciphertext_blob;
			} else {
				E->nect[e] = rr->ciphertext_blob;
			}
			rr->ciphertext_blob.data = NULL;
			kms_batch_item_free(&items[i]);
			s->count++;
		}
		progress(E, "reencrypt", base + m, E->n);
	}
	if (E->fault != NULL) {
		(void)unlink(E->fault);
		if (s->pass) {
			snprintf(s->note, sizeof(s->note), "token pulled for "
			    "1 s mid-step; %llu Batch retries", s->retries);
		}
	}
}

/* Decrypt blobs (data keys or ciphertexts of known plaintexts). */
static void
verify_set(struct env_ctx *E, struct step *s, kms_buf *blobs, int datakeys,
    const char *label)
{
	static kms_batch_item items[BATCH];
	char text[64];
	uint8_t h[32];
	size_t base, i, m;

	for (base = 0; base < E->n && s->pass; base += BATCH) {
		m = E->n - base < BATCH ? E->n - base : BATCH;
		memset(items, 0, sizeof(items));
		for (i = 0; i < m; i++) {
			size_t e = base + i;
			snprintf(ctx_val[i], sizeof(ctx_val[i]), "%zu", e);
			ctx_pair[i].key = "envelope";
			ctx_pair[i].value = ctx_val[i];
			items[i].op = KMS_BATCH_DECRYPT;
			items[i].req.decrypt.ciphertext_blob = blobs[e].data;
			items[i].req.decrypt.ciphertext_len = blobs[e].len;
			items[i].req.decrypt.context.pairs = &ctx_pair[i];
			items[i].req.decrypt.context.npairs = 1;
		}
		run_batch(E, s, items, m);
		for (i = 0; i < m; i++) {
			size_t e = base + i;
			kms_secret *pt = &items[i].resp.decrypt.plaintext;
			if (items[i].err.code != 0) {
				step_fail(s, "%s %zu: %s", label, e,
				    items[i].err.name);
				continue;
			}
			if (datakeys) {
				SHA256(pt->data, pt->len, h);
				if (memcmp(h, E->dkhash[e], 32) != 0) {
					step_fail(s, "%s %zu: wrong data key",
					    label, e);
				}
			} else {
				known(e, text, sizeof(text));
				if (pt->len != strlen(text) ||
				    memcmp(pt->data, text, pt->len) != 0) {
					step_fail(s, "%s %zu: wrong bytes",
					    label, e);
				}
			}
			kms_batch_item_free(&items[i]);
			s->count++;
		}
		progress(E, label, base + m, E->n);
	}
}

/* A raw request; its reply (caller frees) or NULL, code in *r. */
static char *
raw(struct env_ctx *E, int *r, kms_error_info *ei, const char *fmt, ...)
{
	char req[1024], *reply = NULL;
	size_t n = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	*r = kms_call_json(E->c, req, strlen(req), &reply, &n, ei);
	return reply;
}

static void
do_domain(struct env_ctx *E, struct step *s)
{
	kms_error_info ei;
	char *rep;
	int r, i;

	rep = raw(E, &r, &ei, "{\"Action\":\"RotateDomainKey\"}");
	kms_free(rep);
	if (r == KMS_EUNSUPPORTED) {
		s->skipped = 1;
		snprintf(s->note, sizeof(s->note), "%s", ei.message);
		return;
	}
	if (r != 0) {
		step_fail(s, "RotateDomainKey: %s: %s", ei.name, ei.message);
		return;
	}
	for (i = 0; i < 6000; i++) {
		rep = raw(E, &r, &ei, "{\"Action\":\"GetDomainKeyStatus\"}");
		if (r == 0 && rep != NULL && strstr(rep, "\"DONE\"") != NULL) {
			const char *p = strstr(rep, "\"VersionsRewrapped\":");
			if (p != NULL) {
				s->count = strtoull(p + 20, NULL, 10);
			}
			kms_free(rep);
			return;
		}
		kms_free(rep);
		sleep_ms(100);
	}
	step_fail(s, "the domain-key rotation did not finish in 10 min");
}

static void
do_disable(struct env_ctx *E, struct step *s)
{
	kms_encrypt_req er = { 0 };
	kms_encrypt_resp out;
	kms_error_info ei;
	int r;

	er.key_id = E->keys[0];
	er.plaintext = (const uint8_t *)"x";
	er.plaintext_len = 1;
	if ((r = kms_disable_key(E->c, E->keys[0], &ei)) != 0) {
		step_fail(s, "DisableKey: %s", ei.name);
		return;
	}
	if ((r = kms_encrypt(E->c, &er, &out, &ei)) != KMS_EDISABLED) {
		step_fail(s, "a disabled key answered %s",
		    r == 0 ? "success" : ei.name);
		if (r == 0) {
			kms_encrypt_resp_free(&out);
		}
	}
	if ((r = kms_enable_key(E->c, E->keys[0], &ei)) != 0) {
		step_fail(s, "EnableKey: %s", ei.name);
		return;
	}
	if ((r = kms_encrypt(E->c, &er, &out, &ei)) != 0) {
		step_fail(s, "the key enabled again answered %s", ei.name);
		return;
	}
	kms_encrypt_resp_free(&out);
	s->count = 4;
}

static void
do_delete(struct env_ctx *E, struct step *s)
{
	kms_create_key_req cr = { 0 };
	kms_key_metadata m;
	kms_schedule_key_deletion_resp sd;
	kms_encrypt_req er = { 0 };
	kms_encrypt_resp out;
	kms_decrypt_req dr = { 0 };
	kms_decrypt_resp dout;
	kms_error_info ei;
	char id[KMS_KEY_ID_LEN + 1];
	int r, i;

	cr.description = "kms-drill throwaway";
	if (kms_create_key(E->c, &cr, &m, &ei) != 0) {
		step_fail(s, "CreateKey: %s", ei.name);
		return;
	}
	snprintf(id, sizeof(id), "%s", m.key_id);
	kms_key_metadata_free(&m);
	er.key_id = id;
	er.plaintext = (const uint8_t *)"doomed";
	er.plaintext_len = 6;
	if (kms_encrypt(E->c, &er, &out, &ei) != 0) {
		step_fail(s, "Encrypt: %s", ei.name);
		return;
	}
	if (kms_schedule_key_deletion(E->c, id, 7, &sd, &ei) != 0 ||
	    kms_advance_test_clock(E->c, 8 * 86400, &ei) != 0) {
		step_fail(s, "%s: %s", ei.name, ei.message);
		kms_encrypt_resp_free(&out);
		return;
	}
	for (i = 0; i < 200; i++) {
		if ((r = kms_describe_key(E->c, id, NULL, &m, &ei)) ==
		    KMS_ENOTFOUND) {
			break;
		}
		if (r == 0) {
			kms_key_metadata_free(&m);
		}
		sleep_ms(100);
	}
	if (r != KMS_ENOTFOUND) {
		step_fail(s, "the key was not shredded within 20 s");
	}
	dr.ciphertext_blob = out.ciphertext_blob.data;
	dr.ciphertext_len = out.ciphertext_blob.len;
	if ((r = kms_decrypt(E->c, &dr, &dout, &ei)) == 0) {
		step_fail(s, "a shredded key's ciphertext still decrypts");
		kms_decrypt_resp_free(&dout);
	}
	kms_encrypt_resp_free(&out);
	s->count = 1;
}

static void
report(struct env_ctx *E, const char *prefix, double total)
{
	char path[1024];
	FILE *md, *js;
	int i, ok = 1;

	for (i = 0; i < E->nsteps; i++) {
		ok &= E->steps[i].pass;
	}
	snprintf(path, sizeof(path), "%s.md", prefix);
	md = fopen(path, "w");
	snprintf(path, sizeof(path), "%s.json", prefix);
	js = fopen(path, "w");
	if (md == NULL || js == NULL) {
		fprintf(stderr, "kms-drill: cannot write %s.{md,json}\n",
		    prefix);
		if (md != NULL) {
			fclose(md);
		}
		if (js != NULL) {
			fclose(js);
		}
		return;
	}
	fprintf(md, "# kms-drill report\n\n%zu envelopes over %d keys, "
	    "%.1f s in all: **%s**\n\n| step | result | operations | "
	    "seconds | per second | note |\n|---|---|---:|---:|---:|---|\n",
	    E->n, E->nkeys, total, ok ? "PASS" : "FAIL");
	fprintf(js, "{\"envelopes\": %zu, \"keys\": %d, \"seconds\": %.3f, "
	    "\"pass\": %s, \"steps\": [", E->n, E->nkeys, total,
	    ok ? "true" : "false");
	for (i = 0; i < E->nsteps; i++) {
		struct step *s = &E->steps[i];
		double rate = s->seconds > 0 ? (double)s->count / s->seconds :
		    0;
		const char *res = s->skipped ? "skipped" : s->pass ? "pass" :
		    "FAIL";
		char note[300];
		size_t k, o = 0;
		fprintf(md, "| %s | %s | %llu | %.2f | %.0f | %s |\n", s->name,
		    res, s->count, s->seconds, rate, s->note);
		for (k = 0; s->note[k] != '\0' && o + 2 < sizeof(note); k++) {
			if (s->note[k] == '"' || s->note[k] == '\\') {
				note[o++] = '\\';
			}
			note[o++] = s->note[k];
		}
		note[o] = '\0';
		fprintf(js, "%s{\"step\": \"%s\", \"result\": \"%s\", "
		    "\"operations\": %llu, \"seconds\": %.3f, \"per_second\": "
		    "%.0f, \"retries\": %llu, \"note\": \"%s\"}", i ? ", " : "",
		    s->name, res, s->count, s->seconds, rate, s->retries,
		    note);
	}
	fprintf(js, "]}\n");
	fclose(md);
	fclose(js);
}

static void
usage(void)
{
	fprintf(stderr, "usage: kms-drill [--endpoint URL] [--keys N] "
	    "[--key-id ID ...] [--envelopes N]\n"
	    "                 [--report PREFIX] [--test-clock] "
	    "[--fault FILE]\n");
}

int
main(int argc, char **argv)
{
	struct env_ctx E;
	const char *endpoint = NULL, *prefix = "kms-drill-report";
	kms_create_key_req cr = { 0 };
	kms_key_metadata m;
	kms_error_info ei;
	struct step *s;
	int i, want_keys = 4, test_clock = 0, ok = 1;
	double t0 = now_s();
	size_t e;

	memset(&E, 0, sizeof(E));
	E.n = 1000;
	E.tty = isatty(2);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc) {
			endpoint = argv[++i];
		} else if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) {
			want_keys = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--key-id") == 0 && i + 1 < argc &&
		    E.nkeys < MAX_KEYS) {
			snprintf(E.keys[E.nkeys++], sizeof(E.keys[0]), "%s",
			    argv[++i]);
		} else if (strcmp(argv[i], "--envelopes") == 0 &&
		    i + 1 < argc) {
			E.n = strtoul(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "--report") == 0 && i + 1 < argc) {
			prefix = argv[++i];
		} else if (strcmp(argv[i], "--test-clock") == 0) {
			test_clock = 1;
		} else if (strcmp(argv[i], "--fault") == 0 && i + 1 < argc) {
			E.fault = argv[++i];
		} else {
			usage();
			return 2;
		}
	}
	if (want_keys < 1 || want_keys > MAX_KEYS || E.n < 1 ||
	    E.n > 10000000) {
		usage();
		return 2;
	}
	if (kms_client_open(&E.c, endpoint) != 0) {
		fprintf(stderr, "kms-drill: cannot reach kmsd\n");
		return 1;
	}
	kms_client_set_timeout(E.c, 120000);
	if ((E.edk = calloc(E.n, sizeof(*E.edk))) == NULL ||
	    (E.ect = calloc(E.n, sizeof(*E.ect))) == NULL ||
	    (E.nedk = calloc(E.n, sizeof(*E.nedk))) == NULL ||
	    (E.nect = calloc(E.n, sizeof(*E.nect))) == NULL ||
	    (E.dkhash = calloc(E.n, sizeof(*E.dkhash))) == NULL) {
		fprintf(stderr, "kms-drill: out of memory\n");
		return 1;
	}

	s = step_begin(&E, "keys");
	for (i = 0; E.nkeys == 0 && i < want_keys; i++) {
		cr.description = "kms-drill";
		if (kms_create_key(E.c, &cr, &m, &ei) != 0) {
			step_fail(s, "CreateKey: %s: %s", ei.name, ei.message);
			break;
		}
		snprintf(E.keys[i], sizeof(E.keys[i]), "%s", m.key_id);
		kms_key_metadata_free(&m);
		s->count++;
	}
	if (E.nkeys == 0) {
		E.nkeys = (int)s->count;
	}
	step_end(s);
	if (s->pass) {
		s = step_begin(&E, "write");
		do_write(&E, s);
		step_end(s);
	}
	if (s->pass) {
		s = step_begin(&E, "rotate");
		for (i = 0; i < E.nkeys; i++) {
			if (kms_rotate_key_on_demand(E.c, E.keys[i], &ei) !=
			    0) {
				step_fail(s, "RotateKeyOnDemand: %s: %s",
				    ei.name, ei.message);
			}
			s->count++;
		}
		step_end(s);
		s = step_begin(&E, "domain");
		do_domain(&E, s);
		step_end(s);
		s = step_begin(&E, "reencrypt");
		do_reencrypt(&E, s);
		step_end(s);
		s = step_begin(&E, "verify");
		verify_set(&E, s, E.edk, 1, "old keys");
		verify_set(&E, s, E.ect, 0, "old texts");
		if (E.steps[E.nsteps - 2].pass) {
			verify_set(&E, s, E.nedk, 1, "new keys");
			verify_set(&E, s, E.nect, 0, "new texts");
		}
		step_end(s);
		s = step_begin(&E, "disable");
		do_disable(&E, s);
		step_end(s);
		if (test_clock) {
			s = step_begin(&E, "delete");
			do_delete(&E, s);
			step_end(s);
		}
	}
	for (i = 0; i < E.nsteps; i++) {
		ok &= E.steps[i].pass;
		fprintf(stderr, "%-10s %-7s %10llu ops %8.2f s  %s\n",
		    E.steps[i].name, E.steps[i].skipped ? "skipped" :
		    E.steps[i].pass ? "pass" : "FAIL", E.steps[i].count,
		    E.steps[i].seconds, E.steps[i].note);
	}
	report(&E, prefix, now_s() - t0);
	for (e = 0; e < E.n; e++) {
		kms_buf_free(&E.edk[e]);
		kms_buf_free(&E.ect[e]);
		kms_buf_free(&E.nedk[e]);
		kms_buf_free(&E.nect[e]);
	}
	free(E.edk);
	free(E.ect);
	free(E.nedk);
	free(E.nect);
	free(E.dkhash);
	kms_client_close(E.c);
	return ok ? 0 : 1;
}

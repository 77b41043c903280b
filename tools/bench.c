/*
 * kms-bench — drive a live kmsd through libkmsclient, as applications do,
 * and put each figure beside its physical limit measured in the same run:
 * the nng IPC round trip (--baseline echo) or the HSM's own operation rate
 * (--baseline hsm).  See `kms-bench --help` and kms-bench(1).
 *
 * Threads: --clients N client objects, each shared by --outstanding M
 * threads (the library keeps every call of a client in flight at once on
 * its connection), so N×M requests are in flight.  Latency is per request: a Batch of 100 is one
 * sample; throughput counts operations.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/b64.h"
#include "common/err.h"
#include "common/secmem.h"
#include "tools/bench.h"

#define DEFAULT_DURATION 5.0
#define DEFAULT_CREATE_THREADS 16
#define DEFAULT_ECHO_WORKERS 8		/* kmsd's default worker count */
#define LIST_PAGE 100			/* ListKeys default page (replies < 64 KiB) */
#define STARTUP_TIMEOUT_S 300.0
#define MIX_WEIGHTS 10

kms_context bench_ctx;
static kms_context_pair ctx_pairs[BENCH_MAX_CONTEXT_PAIRS];
static char ctx_text[BENCH_MAX_CONTEXT_PAIRS][2][32];

static const char *op_names[] = {
	[OP_GDK] = "generate-data-key",
	[OP_GDK_WP] = "generate-data-key-without-plaintext",
	[OP_ENCRYPT] = "encrypt",
	[OP_DECRYPT] = "decrypt",
	[OP_RE_ENCRYPT] = "re-encrypt",
	[OP_CREATE_KEY] = "create-key",
	[OP_MIX] = "mix",
	[OP_STARTUP] = "startup",
	[OP_HSM_CALLS] = "hsm-calls",
	[OP_ENVELOPE] = "envelope",
};

const char *
bench_op_name(int op)
{
	if (op < 0 || op >= OP_NONE) {
		return "?";
	}
	return op_names[op];
}

int
bench_mix_pick(uint64_t *seed)
{
	static const int w[MIX_WEIGHTS] = { OP_GDK, OP_GDK, OP_GDK, OP_GDK,
	    OP_DECRYPT, OP_DECRYPT, OP_DECRYPT, OP_ENCRYPT, OP_ENCRYPT,
	    OP_RE_ENCRYPT };

	return w[bench_rand(seed) % MIX_WEIGHTS];
}

/* Keys named so that byte order is creation order (canonical form). */
static void
build_context(size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(ctx_text[i][0], sizeof(ctx_text[i][0]),
		    "bench-key-%03zu", i);
		snprintf(ctx_text[i][1], sizeof(ctx_text[i][1]),
		    "bench-value-%03zu", i);
		ctx_pairs[i].key = ctx_text[i][0];
		ctx_pairs[i].value = ctx_text[i][1];
	}
	bench_ctx.pairs = ctx_pairs;
	bench_ctx.npairs = n;
}

/* ------------------------------------------------------------ world */

struct prepared {
	kms_buf blob;
	size_t key;		/* index in ids */
};

/* Everything the request threads share, read-only during a run. */
struct world {
	const struct bench_opts *o;
	char (*ids)[KMS_KEY_ID_LEN + 1];
	size_t nids;
	size_t hot;
	struct prepared *prep;
	size_t nprep;
	uint8_t plaintext[KMS_MAX_PLAINTEXT];
	double keys_s;		/* time to create the missing keys */
	size_t keys_created;
	size_t keys_reused;
};

struct kthr {
	kms_client *c;
	struct world *w;
	kms_batch_item *items;	/* batch slots */
};

static void
fmt_err(char *err, size_t errlen, const char *what, int r,
    const kms_error_info *ei)
{
	snprintf(err, errlen, "%s: %s: %s", what, kms_error_name(r),
	    ei != NULL && ei->message[0] ? ei->message : kms_strerror(r));
}

/* Fill one request of op (not mix, not create-key) into it. */
static void
fill_item(struct world *w, kms_batch_item *it, int op, uint64_t *seed)
{
	const struct bench_opts *o = w->o;
	size_t k = (size_t)(bench_rand(seed) % w->hot);
	const struct prepared *p = w->nprep > 0 ? &w->prep[k % w->nprep] :
	    NULL;
	kms_generate_data_key_req *g = &it->req.generate_data_key;

	memset(it, 0, sizeof(*it));
	switch (op) {
	case OP_GDK:
	case OP_GDK_WP:
		it->op = op == OP_GDK ? KMS_BATCH_GENERATE_DATA_KEY :
		    KMS_BATCH_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT;
		g->key_id = w->ids[k];
		if (o->plaintext_bytes == 32) {
			g->key_spec = "AES_256";
		} else {
			g->number_of_bytes = o->plaintext_bytes;
		}
		g->context = bench_ctx;
		break;
	case OP_ENCRYPT:
		it->op = KMS_BATCH_ENCRYPT;
		it->req.encrypt.key_id = w->ids[k];
		it->req.encrypt.plaintext = w->plaintext;
		it->req.encrypt.plaintext_len = o->plaintext_bytes;
		it->req.encrypt.context = bench_ctx;
		break;
	case OP_DECRYPT:
		KMS_ASSERT(p != NULL);
		it->op = KMS_BATCH_DECRYPT;
		it->req.decrypt.ciphertext_blob = p->blob.data;
		it->req.decrypt.ciphertext_len = p->blob.len;
		it->req.decrypt.context = bench_ctx;
		break;
	case OP_RE_ENCRYPT:
		KMS_ASSERT(p != NULL);
		it->op = KMS_BATCH_RE_ENCRYPT;
		it->req.re_encrypt.ciphertext_blob = p->blob.data;
		it->req.re_encrypt.ciphertext_len = p->blob.len;
		it->req.re_encrypt.source_context = bench_ctx;
		it->req.re_encrypt.destination_key_id =
		    w->ids[bench_rand(seed) % w->hot];
		it->req.re_encrypt.destination_context = bench_ctx;
		break;
	default:
		KMS_ASSERT(0);
	}
}

/* One typed call; the reply is checked and freed. */
static int
call_one(struct kthr *t, kms_batch_item *it, char *err, size_t errlen)
{
	const struct bench_opts *o = t->w->o;
	kms_error_info ei;
	int r;

	memset(&ei, 0, sizeof(ei));
	switch (it->op) {
	case KMS_BATCH_GENERATE_DATA_KEY:
	case KMS_BATCH_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT: {
		kms_generate_data_key_resp g;
		int wp = it->op != KMS_BATCH_GENERATE_DATA_KEY;

		memset(&g, 0, sizeof(g));
		r = wp ? kms_generate_data_key_without_plaintext(t->c,
		    &it->req.generate_data_key, &g, &ei) :
		    kms_generate_data_key(t->c, &it->req.generate_data_key,
		    &g, &ei);
		if (r != 0) {
			fmt_err(err, errlen, "GenerateDataKey", r, &ei);
			return r;
		}
		if ((!wp && g.plaintext.len != o->plaintext_bytes) ||
		    g.ciphertext_blob.len == 0) {
			snprintf(err, errlen, "GenerateDataKey: reply has a "
			    "%zu-byte data key", g.plaintext.len);
			r = KMS_EPROTO;
		}
		kms_generate_data_key_resp_free(&g);
		return r;
	}
	case KMS_BATCH_ENCRYPT: {
		kms_encrypt_resp e;

		memset(&e, 0, sizeof(e));
		if ((r = kms_encrypt(t->c, &it->req.encrypt, &e, &ei)) != 0) {
			fmt_err(err, errlen, "Encrypt", r, &ei);
			return r;
		}
		kms_encrypt_resp_free(&e);
		return 0;
	}
	case KMS_BATCH_DECRYPT: {
		kms_decrypt_resp d;

		memset(&d, 0, sizeof(d));
		if ((r = kms_decrypt(t->c, &it->req.decrypt, &d, &ei)) != 0) {
			fmt_err(err, errlen, "Decrypt", r, &ei);
			return r;
		}
		if (d.plaintext.len != o->plaintext_bytes) {
			snprintf(err, errlen, "Decrypt: %zu bytes back, not "
			    "%zu", d.plaintext.len, o->plaintext_bytes);
			r = KMS_EPROTO;
		}
		kms_decrypt_resp_free(&d);
		return r;
	}
	case KMS_BATCH_RE_ENCRYPT: {
		kms_re_encrypt_resp re;

		memset(&re, 0, sizeof(re));
		if ((r = kms_re_encrypt(t->c, &it->req.re_encrypt, &re,
		    &ei)) != 0) {
			fmt_err(err, errlen, "ReEncrypt", r, &ei);
			return r;
		}
		kms_re_encrypt_resp_free(&re);
		return 0;
	}
	}
	snprintf(err, errlen, "unknown batch op");
	return KMS_EINVAL;
}

static int
kmsd_req(void *arg, uint64_t *seed, uint64_t *ops, uint64_t *op_errors,
    char *err, size_t errlen)
{
	struct kthr *t = arg;
	const struct bench_opts *o = t->w->o;
	kms_error_info ei;
	int i, r, op;

	*op_errors = 0;
	if (o->op == OP_CREATE_KEY) {
		kms_create_key_req req;
		kms_key_metadata md;

		*ops = 1;
		memset(&req, 0, sizeof(req));
		memset(&md, 0, sizeof(md));
		memset(&ei, 0, sizeof(ei));
		req.description = "kms-bench";
		if ((r = kms_create_key(t->c, &req, &md, &ei)) != 0) {
			fmt_err(err, errlen, "CreateKey", r, &ei);
			return r;
		}
		kms_key_metadata_free(&md);
		return 0;
	}
	for (i = 0; i < o->batch; i++) {
		op = o->op == OP_MIX ? bench_mix_pick(seed) : o->op;
		fill_item(t->w, &t->items[i], op, seed);
	}
	*ops = (uint64_t)o->batch;
	if (o->batch == 1) {
		return call_one(t, &t->items[0], err, errlen);
	}
	memset(&ei, 0, sizeof(ei));
	if ((r = kms_batch(t->c, t->items, (size_t)o->batch, &ei)) != 0) {
		fmt_err(err, errlen, "Batch", r, &ei);
		return r;
	}
	for (i = 0; i < o->batch; i++) {
		kms_batch_item *it = &t->items[i];

		if (it->err.code != 0) {
			if (*op_errors == 0) {
				fmt_err(err, errlen, "Batch item",
				    it->err.code, &it->err);
			}
			(*op_errors)++;
			continue;
		}
		if (it->op == KMS_BATCH_GENERATE_DATA_KEY &&
		    it->resp.generate_data_key.plaintext.len !=
		    o->plaintext_bytes) {
			if (*op_errors == 0) {
				snprintf(err, errlen, "Batch: a data key of "
				    "%zu bytes", it->resp.generate_data_key.
				    plaintext.len);
			}
			(*op_errors)++;
		}
		kms_batch_item_free(it);
	}
	return 0;
}

/* ------------------------------------------------- parallel set-up */

struct par {
	kms_client **clients;
	int nclients;
	size_t n;
	atomic_size_t next;
	atomic_size_t done;
	atomic_int failed;
	int (*fn)(struct par *, kms_client *, size_t, char *, size_t);
	struct world *w;
	char err[BENCH_ERR_MAX];
	pthread_mutex_t mu;
	double t0;
	int progress;
};

struct par_thr {
	struct par *p;
	kms_client *c;
	pthread_t tid;
};

static void *
par_main(void *a)
{
	struct par_thr *pt = a;
	struct par *p = pt->p;
	char err[BENCH_ERR_MAX];
	size_t i, d;

	while (!atomic_load(&p->failed) &&
	    (i = atomic_fetch_add(&p->next, 1)) < p->n) {
		err[0] = '\0';
		if (p->fn(p, pt->c, i, err, sizeof(err)) != 0) {
			pthread_mutex_lock(&p->mu);
			if (!atomic_load(&p->failed)) {
				snprintf(p->err, sizeof(p->err), "%s", err);
			}
			atomic_store(&p->failed, 1);
			pthread_mutex_unlock(&p->mu);
			break;
		}
		d = atomic_fetch_add(&p->done, 1) + 1;
		if (p->progress && d % 10000 == 0) {
			double s = bench_now() - p->t0;

			fprintf(stderr, "kms-bench: %zu/%zu keys created "
			    "(%.0f/s)\n", d, p->n, (double)d / s);
		}
	}
	return NULL;
}

/* Run fn(i) for i in [0, n) on nthreads threads sharing the clients. */
static int
par_for(struct par *p, int nthreads, char *err, size_t errlen)
{
	struct par_thr *ts;
	int i, started = 0;

	if (p->n == 0) {
		return 0;
	}
	if ((size_t)nthreads > p->n) {
		nthreads = (int)p->n;
	}
	if ((ts = calloc((size_t)nthreads, sizeof(*ts))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&p->mu, NULL);
	atomic_init(&p->next, 0);
	atomic_init(&p->done, 0);
	atomic_init(&p->failed, 0);
	p->t0 = bench_now();
	for (i = 0; i < nthreads; i++) {
		ts[i].p = p;
		ts[i].c = p->clients[i % p->nclients];
		if (pthread_create(&ts[i].tid, NULL, par_main, &ts[i]) != 0) {
			atomic_store(&p->failed, 1);
			snprintf(p->err, sizeof(p->err), "cannot start threads");
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++) {
		pthread_join(ts[i].tid, NULL);
	}
	free(ts);
	pthread_mutex_destroy(&p->mu);
	if (atomic_load(&p->failed)) {
		snprintf(err, errlen, "%s", p->err);
		return -1;
	}
	return 0;
}

static int
create_one(struct par *p, kms_client *c, size_t i, char *err, size_t errlen)
{
	struct world *w = p->w;
	kms_create_key_req req;
	kms_key_metadata md;
	kms_error_info ei;
	int r;

	memset(&req, 0, sizeof(req));
	memset(&md, 0, sizeof(md));
	memset(&ei, 0, sizeof(ei));
	req.description = "kms-bench";
	if ((r = kms_create_key(c, &req, &md, &ei)) != 0) {
		fmt_err(err, errlen, "CreateKey", r, &ei);
		return r;
	}
	snprintf(w->ids[w->keys_reused + i], sizeof(w->ids[0]), "%s",
	    md.key_id);
	kms_key_metadata_free(&md);
	return 0;
}

static int
prepare_one(struct par *p, kms_client *c, size_t i, char *err, size_t errlen)
{
	struct world *w = p->w;
	kms_encrypt_req req;
	kms_encrypt_resp resp;
	kms_error_info ei;
	int r;

	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	memset(&ei, 0, sizeof(ei));
	req.key_id = w->ids[i];
	req.plaintext = w->plaintext;
	req.plaintext_len = w->o->plaintext_bytes;
	req.context = bench_ctx;
	if ((r = kms_encrypt(c, &req, &resp, &ei)) != 0) {
		fmt_err(err, errlen, "Encrypt (preparing ciphertexts)", r,
		    &ei);
		return r;
	}
	w->prep[i].blob = resp.ciphertext_blob;
	w->prep[i].key = i;
	resp.ciphertext_blob.data = NULL;
	resp.ciphertext_blob.len = 0;
	kms_encrypt_resp_free(&resp);
	return 0;
}

/* Existing keys first (--reuse-keys), then create what is missing. */
static int
populate_keys(struct world *w, kms_client **clients, int nclients,
    char *err, size_t errlen)
{
	const struct bench_opts *o = w->o;
	char *marker = NULL;
	struct par p;
	int r;

	if ((w->ids = calloc(o->keys, sizeof(*w->ids))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->nids = o->keys;
	while (o->reuse_keys && w->keys_reused < o->keys) {
		kms_key_list l;
		kms_error_info ei;
		size_t i;

		memset(&l, 0, sizeof(l));
		memset(&ei, 0, sizeof(ei));
		if ((r = kms_list_keys(clients[0], LIST_PAGE, marker, &l,
		    &ei)) != 0) {
			fmt_err(err, errlen, "ListKeys", r, &ei);
			free(marker);
			return -1;
		}
		for (i = 0; i < l.nkeys && w->keys_reused < o->keys; i++) {
			snprintf(w->ids[w->keys_reused++], sizeof(w->ids[0]),
			    "%s", l.keys[i].key_id);
		}
		free(marker);
		marker = NULL;
		if (l.truncated && l.next_marker != NULL) {
			marker = strdup(l.next_marker);
		}
		kms_key_list_free(&l);
		if (marker == NULL) {
			break;
		}
	}
	free(marker);
	memset(&p, 0, sizeof(p));
	p.clients = clients;
	p.nclients = nclients;
	p.n = o->keys - w->keys_reused;
	p.fn = create_one;
	p.w = w;
	p.progress = p.n >= 20000;
	w->keys_s = bench_now();
	if (par_for(&p, o->create_threads, err, errlen) != 0) {
		return -1;
	}
	w->keys_s = bench_now() - w->keys_s;
	w->keys_created = p.n;
	if (p.n > 0 && !o->json) {
		fprintf(stderr, "kms-bench: created %zu keys in %.1f s "
		    "(%.0f/s)\n", p.n, w->keys_s, (double)p.n / w->keys_s);
	}
	return 0;
}

/* PutKeyPolicy the --policy document on every hot key. */
static int
put_policies(struct world *w, kms_client *c, char *err, size_t errlen)
{
	json_t *doc, *req;
	json_error_t je;
	char *text, *s, *reply;
	size_t i, n;
	kms_error_info ei;
	int r;

	if ((doc = json_load_file(w->o->policy_file, 0, &je)) == NULL) {
		snprintf(err, errlen, "%s: %s", w->o->policy_file, je.text);
		return -1;
	}
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < w->hot; i++) {
		req = json_pack("{s:s, s:s, s:s, s:s}", "Action",
		    "PutKeyPolicy", "KeyId", w->ids[i], "PolicyName",
		    "default", "Policy", text);
		s = req ? json_dumps(req, JSON_COMPACT) : NULL;
		json_decref(req);
		reply = NULL;
		r = s ? kms_call_json(c, s, strlen(s), &reply, &n, &ei) :
		    KMS_ENOMEM;
		free(s);
		kms_free(reply);
		if (r != 0) {
			fmt_err(err, errlen, "PutKeyPolicy", r, &ei);
			free(text);
			return -1;
		}
	}
	free(text);
	return 0;
}

static int
prepare_ciphertexts(struct world *w, kms_client **clients, int nclients,
    char *err, size_t errlen)
{
	const struct bench_opts *o = w->o;
	struct par p;

	if (o->op != OP_DECRYPT && o->op != OP_RE_ENCRYPT &&
	    o->op != OP_MIX) {
		return 0;
	}
	w->nprep = w->hot < BENCH_MAX_PREPARED ? w->hot : BENCH_MAX_PREPARED;
	if ((w->prep = calloc(w->nprep, sizeof(*w->prep))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memset(&p, 0, sizeof(p));
	p.clients = clients;
	p.nclients = nclients;
	p.n = w->nprep;
	p.fn = prepare_one;
	p.w = w;
	return par_for(&p, o->create_threads, err, errlen);
}

/* ------------------------------------------ message sizes for echo */

static json_t *
json_b64(const uint8_t *p, size_t len)
{
	size_t n = B64_ENCODED_LEN(len) + 1;
	char *s = malloc(n);
	json_t *j;

	if (s == NULL || b64_encode(p, len, s, n) != 0) {
		free(s);
		return NULL;
	}
	j = json_string(s);
	free(s);
	return j;
}

static json_t *
json_context(void)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; o != NULL && i < bench_ctx.npairs; i++) {
		json_object_set_new(o, bench_ctx.pairs[i].key,
		    json_string(bench_ctx.pairs[i].value));
	}
	return o;
}

/* The AWS JSON request the client library sends for this item. */
static json_t *
json_request(const struct world *w, const kms_batch_item *it)
{
	json_t *j = json_object();

	if (j == NULL) {
		return NULL;
	}
	switch (it->op) {
	case KMS_BATCH_GENERATE_DATA_KEY:
	case KMS_BATCH_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT:
		json_object_set_new(j, "Action", json_string(it->op ==
		    KMS_BATCH_GENERATE_DATA_KEY ? "GenerateDataKey" :
		    "GenerateDataKeyWithoutPlaintext"));
		json_object_set_new(j, "KeyId",
		    json_string(it->req.generate_data_key.key_id));
		if (it->req.generate_data_key.key_spec != NULL) {
			json_object_set_new(j, "KeySpec", json_string(
			    it->req.generate_data_key.key_spec));
		} else {
			json_object_set_new(j, "NumberOfBytes", json_integer(
			    (json_int_t)it->req.generate_data_key.
			    number_of_bytes));
		}
		break;
	case KMS_BATCH_ENCRYPT:
		json_object_set_new(j, "Action", json_string("Encrypt"));
		json_object_set_new(j, "KeyId",
		    json_string(it->req.encrypt.key_id));
		json_object_set_new(j, "Plaintext", json_b64(w->plaintext,
		    w->o->plaintext_bytes));
		break;
	case KMS_BATCH_DECRYPT:
		json_object_set_new(j, "Action", json_string("Decrypt"));
		json_object_set_new(j, "CiphertextBlob", json_b64(
		    it->req.decrypt.ciphertext_blob,
		    it->req.decrypt.ciphertext_len));
		break;
	case KMS_BATCH_RE_ENCRYPT:
		json_object_set_new(j, "Action", json_string("ReEncrypt"));
		json_object_set_new(j, "CiphertextBlob", json_b64(
		    it->req.re_encrypt.ciphertext_blob,
		    it->req.re_encrypt.ciphertext_len));
		json_object_set_new(j, "DestinationKeyId", json_string(
		    it->req.re_encrypt.destination_key_id));
		if (bench_ctx.npairs > 0) {
			json_object_set_new(j, "SourceEncryptionContext",
			    json_context());
			json_object_set_new(j, "DestinationEncryptionContext",
			    json_context());
		}
		return j;
	}
	if (bench_ctx.npairs > 0) {
		json_object_set_new(j, "EncryptionContext", json_context());
	}
	return j;
}

/*
 * Sizes of one real request and its reply, for the echo baseline: the
 * request is built as the library builds it, sent raw, and the reply that
 * comes back is measured.
 */
static int
measure_sizes(struct world *w, kms_client *c, size_t *req_len,
    size_t *rep_len, char *err, size_t errlen)
{
	const struct bench_opts *o = w->o;
	kms_batch_item it;
	kms_error_info ei;
	json_t *j = NULL, *arr;
	char *req = NULL, *rep = NULL;
	uint64_t seed = 1;
	size_t rl = 0;
	int i, r = -1, op;

	if (o->op == OP_CREATE_KEY) {
		j = json_pack("{s:s, s:s}", "Action", "CreateKey",
		    "Description", "kms-bench");
	} else if (o->batch == 1) {
		op = o->op == OP_MIX ? OP_GDK : o->op;
		fill_item(w, &it, op, &seed);
		j = json_request(w, &it);
	} else {
		j = json_pack("{s:s, s:[]}", "Action", "Batch", "Requests");
		arr = j != NULL ? json_object_get(j, "Requests") : NULL;
		for (i = 0; arr != NULL && i < o->batch; i++) {
			op = o->op == OP_MIX ? bench_mix_pick(&seed) : o->op;
			fill_item(w, &it, op, &seed);
			json_array_append_new(arr, json_request(w, &it));
		}
	}
	if (j == NULL || (req = json_dumps(j, JSON_COMPACT)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	memset(&ei, 0, sizeof(ei));
	if ((r = kms_call_json(c, req, strlen(req), &rep, &rl, &ei)) != 0) {
		fmt_err(err, errlen, "sizing call", r, &ei);
		r = -1;
		goto out;
	}
	*req_len = strlen(req);
	*rep_len = rl;
	r = 0;
 out:
	json_decref(j);
	free(req);
	if (rep != NULL) {
		/* The reply may hold data keys. */
		secure_wipe(rep, rl);
		kms_free(rep);
	}
	return r;
}

/* ----------------------------------------------------------- output */

static json_t *
json_latency(const struct bench_latency *l)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:f}", "p50", l->p50, "p90",
	    l->p90, "p99", l->p99, "p999", l->p999, "max", l->max);
}

static json_t *
json_num_or_null(double v, int known)
{
	return known ? json_real(v) : json_null();
}

#define BENCH_MAX_ROUNDS 15

struct report {
	const struct bench_opts *o;
	const struct world *w;
	const struct bench_result *k;	/* kmsd (the median round) */
	const struct bench_result *b;	/* baseline or NULL */
	const struct bench_result *kr, *br;	/* every round */
	int rounds;
	uint64_t errors;		/* kmsd's failed operations, all rounds */
	pid_t kmsd_pid;
	size_t req_len, rep_len;
};

static double
ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

/* The watched process's context switches per request, or -1. */
static double
switches_per_request(const struct bench_result *r)
{
	return r->ctx_switches >= 0 && r->requests > 0 ?
	    (double)r->ctx_switches / (double)r->requests : -1;
}

static void
print_json(const struct report *rp)
{
	const struct bench_opts *o = rp->o;
	const struct bench_result *k = rp->k, *b = rp->b;
	json_t *j, *base;
	char *s;

	j = json_pack("{s:s, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:f, "
	    "s:I, s:I, s:f, s:o, s:I, s:I, s:s, s:o, s:o, s:o, s:o, s:I, "
	    "s:I, s:{s:I, s:I, s:f}}",
	    "op", bench_op_name(o->op),
	    "clients", o->clients,
	    "outstanding", o->outstanding,
	    "batch", o->batch,
	    "keys", (json_int_t)o->keys,
	    "hot", (json_int_t)rp->w->hot,
	    "plaintext_bytes", (json_int_t)o->plaintext_bytes,
	    "context_pairs", (json_int_t)o->context_pairs,
	    "elapsed_s", k->elapsed_s,
	    "requests", (json_int_t)k->requests,
	    "ops", (json_int_t)k->ops,
	    "ops_per_s", k->ops_per_s,
	    "latency_us", json_latency(&k->lat),
	    "errors", (json_int_t)rp->errors,
	    "warmup_errors", (json_int_t)k->warmup_errors,
	    "first_error", k->first_error,
	    "kmsd_pid", rp->kmsd_pid > 0 ? json_integer(rp->kmsd_pid) :
	    json_null(),
	    "kmsd_cpu_s", json_num_or_null(k->cpu_s, k->cpu_s >= 0),
	    "kmsd_ctx_switches_per_request", json_num_or_null(
	    switches_per_request(k), switches_per_request(k) >= 0),
	    "kmsd_peak_rss_kib", k->peak_rss_kib >= 0 ?
	    json_integer(k->peak_rss_kib) : json_null(),
	    "request_bytes", (json_int_t)rp->req_len,
	    "reply_bytes", (json_int_t)rp->rep_len,
	    "key_setup", "created", (json_int_t)rp->w->keys_created,
	    "reused", (json_int_t)rp->w->keys_reused,
	    "seconds", rp->w->keys_s);
	if (j == NULL) {
		fprintf(stderr, "kms-bench: cannot build the JSON report\n");
		return;
	}
	if (b != NULL) {
		base = json_pack("{s:s, s:f, s:o, s:I, s:I, s:f, s:o}",
		    "kind", o->baseline == BASE_ECHO ? "echo" : "hsm",
		    "ops_per_s", b->ops_per_s,
		    "latency_us", json_latency(&b->lat),
		    "requests", (json_int_t)b->requests,
		    "errors", (json_int_t)b->errors,
		    "elapsed_s", b->elapsed_s,
		    "server_cpu_s", json_num_or_null(b->cpu_s, b->cpu_s >= 0));
		if (base != NULL && o->baseline == BASE_HSM) {
			json_object_set_new(base, "hsm_keys",
			    json_integer((json_int_t)o->hsm_keys));
		}
		if (base != NULL && switches_per_request(b) >= 0) {
			json_object_set_new(base, "server_ctx_switches_per_request",
			    json_real(switches_per_request(b)));
		}
		json_object_set_new(j, "baseline", base);
		json_object_set_new(j, "ratio",
		    json_real(ratio(k->ops_per_s, b->ops_per_s)));
		json_object_set_new(j, "latency_ratio", json_pack(
		    "{s:f, s:f, s:f}",
		    "p50", ratio(k->lat.p50, b->lat.p50),
		    "p99", ratio(k->lat.p99, b->lat.p99),
		    "p999", ratio(k->lat.p999, b->lat.p999)));
	}
	if (rp->rounds > 1) {
		json_t *arr = json_array();
		int i;
		for (i = 0; i < rp->rounds && arr != NULL; i++) {
			json_t *e = json_pack("{s:f, s:o}", "ops_per_s",
			    rp->kr[i].ops_per_s, "baseline_ops_per_s", b != NULL ?
			    json_real(rp->br[i].ops_per_s) : json_null());
			if (e != NULL && b != NULL) {
				json_object_set_new(e, "ratio", json_real(ratio(
				    rp->kr[i].ops_per_s, rp->br[i].ops_per_s)));
			}
			json_array_append_new(arr, e);
		}
		json_object_set_new(j, "rounds", json_integer(rp->rounds));
		json_object_set_new(j, "round_results", arr);
	}
	if ((s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6))) !=
	    NULL) {
		printf("%s\n", s);
		free(s);
	}
	json_decref(j);
}

static void
print_row(const char *name, const struct bench_result *r)
{
	printf("%-8s %12.1f %9.1f %9.1f %9.1f %9.1f %9.1f %8llu\n", name,
	    r->ops_per_s, r->lat.p50, r->lat.p90, r->lat.p99, r->lat.p999,
	    r->lat.max, (unsigned long long)r->errors);
}

static void
print_human(const struct report *rp)
{
	const struct bench_opts *o = rp->o;
	const struct bench_result *k = rp->k, *b = rp->b;

	printf("kms-bench: %s, %d client%s x %d outstanding, batch %d, "
	    "%zu key%s (%zu hot), %zu-byte plaintexts, %zu context "
	    "pair%s\n", bench_op_name(o->op), o->clients,
	    o->clients == 1 ? "" : "s", o->outstanding, o->batch, o->keys,
	    o->keys == 1 ? "" : "s", rp->w->hot, o->plaintext_bytes,
	    o->context_pairs, o->context_pairs == 1 ? "" : "s");
	printf("messages: request %zu bytes, reply %zu bytes; measured "
	    "%.2f s, %llu requests\n", rp->req_len, rp->rep_len,
	    k->elapsed_s, (unsigned long long)k->requests);
	if (rp->rounds > 1) {
		int i;
		printf("%d rounds, kmsd and %s alternated; the round of median "
		    "%s is shown:\n", rp->rounds, b != NULL ? (o->baseline ==
		    BASE_ECHO ? "echo" : "hsm") : "nothing", b != NULL ?
		    "ratio" : "throughput");
		for (i = 0; i < rp->rounds; i++) {
			printf("  round %d: kmsd %.1f ops/s", i + 1,
			    rp->kr[i].ops_per_s);
			if (b != NULL) {
				printf(", baseline %.1f, ratio %.3f",
				    rp->br[i].ops_per_s,
				    ratio(rp->kr[i].ops_per_s,
				    rp->br[i].ops_per_s));
			}
			printf("\n");
		}
	}
	printf("%-8s %12s %9s %9s %9s %9s %9s %8s\n", "", "ops/s",
	    "p50 us", "p90 us", "p99 us", "p999 us", "max us", "errors");
	print_row("kmsd", k);
	if (b != NULL) {
		print_row(o->baseline == BASE_ECHO ? "echo" : "hsm", b);
		printf("ratio kmsd/%s: throughput %.3f, p50 %.2f, p99 %.2f\n",
		    o->baseline == BASE_ECHO ? "echo" : "hsm",
		    ratio(k->ops_per_s, b->ops_per_s),
		    ratio(k->lat.p50, b->lat.p50),
		    ratio(k->lat.p99, b->lat.p99));
	}
	if (k->cpu_s >= 0) {
		printf("kmsd (pid %ld): %.2f s CPU over %.2f s (%.1f us per "
		    "operation), peak RSS %ld KiB\n", (long)rp->kmsd_pid,
		    k->cpu_s, k->elapsed_s, k->ops ? k->cpu_s * 1e6 /
		    (double)k->ops : 0, k->peak_rss_kib);
		if (switches_per_request(k) >= 0) {
			printf("kmsd: %.1f context switches per request",
			    switches_per_request(k));
			if (b != NULL && o->baseline == BASE_ECHO &&
			    switches_per_request(b) >= 0) {
				printf(" (echo server: %.1f)",
				    switches_per_request(b));
			}
			printf("\n");
		}
	} else {
		printf("kmsd: process not found; no CPU or RSS figures "
		    "(--kmsd-pid)\n");
	}
	if (k->errors > 0 || k->warmup_errors > 0) {
		printf("first error: %s (%llu failed during warm-up)\n",
		    k->first_error, (unsigned long long)k->warmup_errors);
	}
}

/* ---------------------------------------------------------- startup */

static const char *
ipc_path(const char *url)
{
	return strncmp(url, "ipc://", 6) == 0 ? url + 6 : NULL;
}

/*
 * Start kmsd, time it until the socket exists and one DescribeKey (or, on
 * an empty store, one ListKeys) is answered; leave it running.
 */
static int
run_startup(const struct bench_opts *o)
{
	const char *sock = o->endpoint ? ipc_path(o->endpoint) : NULL;
	struct timespec nap = { 0, 1000 * 1000 };
	double t0, t_sock = 0, t_ready = 0;
	kms_client *c = NULL;
	pid_t pid;
	long rss;
	int st, r, answered = 0, listed = 0;

	if (sock == NULL || o->kmsd_conf == NULL) {
		fprintf(stderr, "kms-bench: --op startup needs --endpoint "
		    "ipc://... and --kmsd-conf\n");
		return 1;
	}
	unlink(sock);
	fflush(NULL);
	t0 = bench_now();
	if ((pid = fork()) < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		int fd = open(o->kmsd_log ? o->kmsd_log : "/dev/null",
		    O_WRONLY | O_CREAT | O_APPEND, 0600);

		setsid();
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(o->kmsd_bin, "kmsd", "-c", o->kmsd_conf, (char *)NULL);
		_exit(127);
	}
	while (access(sock, F_OK) != 0) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr, "kms-bench: kmsd exited during "
			    "start-up (see %s)\n", o->kmsd_log ? o->kmsd_log :
			    "its log");
			return 1;
		}
		if (bench_now() - t0 > STARTUP_TIMEOUT_S) {
			fprintf(stderr, "kms-bench: kmsd not ready after "
			    "%.0f s\n", STARTUP_TIMEOUT_S);
			kill(pid, SIGTERM);
			return 1;
		}
		nanosleep(&nap, NULL);
	}
	t_sock = bench_now() - t0;
	if ((r = kms_client_open(&c, o->endpoint)) != 0) {
		fprintf(stderr, "kms-bench: %s\n", kms_strerror(r));
		kill(pid, SIGTERM);
		return 1;
	}
	while (!answered && bench_now() - t0 < STARTUP_TIMEOUT_S) {
		kms_key_list l;
		kms_key_metadata md;
		kms_error_info ei;

		memset(&l, 0, sizeof(l));
		memset(&md, 0, sizeof(md));
		memset(&ei, 0, sizeof(ei));
		if (o->key_id != NULL) {
			r = kms_describe_key(c, o->key_id, NULL, &md, &ei);
			if (r == 0) {
				kms_key_metadata_free(&md);
				answered = 1;
			}
		} else if ((r = kms_list_keys(c, 1, NULL, &l, &ei)) == 0) {
			listed = 1;
			if (l.nkeys == 0) {
				answered = 1;
			} else if ((r = kms_describe_key(c, l.keys[0].key_id,
			    NULL, &md, &ei)) == 0) {
				kms_key_metadata_free(&md);
				answered = 1;
			}
			kms_key_list_free(&l);
		}
		if (!answered) {
			if (r != KMS_ETRANSPORT && r != KMS_ETIMEDOUT) {
				fprintf(stderr, "kms-bench: %s: %s\n",
				    kms_error_name(r), ei.message);
				break;
			}
			nanosleep(&nap, NULL);
		}
	}
	t_ready = bench_now() - t0;
	kms_client_close(c);
	if (!answered) {
		kill(pid, SIGTERM);
		return 1;
	}
	rss = proc_status_kib(pid, "VmHWM");
	if (o->json) {
		printf("{\"op\":\"startup\",\"startup_s\":%.4f,\"socket_s\":"
		    "%.4f,\"kmsd_pid\":%ld,\"kmsd_peak_rss_kib\":%ld,"
		    "\"listed_first\":%s}\n", t_ready, t_sock, (long)pid, rss,
		    listed ? "true" : "false");
	} else {
		printf("kmsd (pid %ld) ready: socket after %.3f s, first "
		    "DescribeKey answered after %.3f s; peak RSS %ld KiB\n",
		    (long)pid, t_sock, t_ready, rss);
	}
	return 0;
}

/* ------------------------------------------------------------- main */

static void
usage(FILE *f)
{
	fprintf(f,
"usage: kms-bench [options]\n"
"  --endpoint URL        kmsd endpoint (default as kmsctl)\n"
"  --op OP               generate-data-key | generate-data-key-without-\n"
"                        plaintext | encrypt | decrypt | re-encrypt |\n"
"                        create-key | mix | startup | hsm-calls |\n"
"                        envelope\n"
"  --clients N           client objects, one per thread group (1)\n"
"  --outstanding N       requests in flight per client (1)\n"
"  --batch N             operations per Batch request (1: no Batch)\n"
"  --keys N              key population (1); created unless --reuse-keys\n"
"  --reuse-keys          use existing keys (ListKeys), create the rest\n"
"  --hot N               keys used, chosen uniformly per operation (all)\n"
"  --plaintext-bytes N   data key / plaintext size (32)\n"
"  --context-pairs N     encryption context pairs per request (1)\n"
"  --duration S          measured seconds (5), or\n"
"  --count N             measured operations\n"
"  --warmup S            unmeasured seconds first (1 with --duration)\n"
"  --json                one JSON object on stdout\n"
"  --kmsd-pid PID        kmsd for CPU/RSS (default: found by socket)\n"
"  --baseline echo|hsm|http-echo\n"
"                        also measure the transport, the HSM, or (with an\n"
"                        https:// endpoint) libmicrohttpd answering a\n"
"                        fixed body of the reply's size\n"
"  --ca-bundle FILE      trust for an https:// endpoint\n"
"  --tls-cert F --tls-key F  http-echo's certificate and key (kmsd's)\n"
"  --region R            SigV4 region ($AWS_DEFAULT_REGION, else local);\n"
"                        the access key from $AWS_ACCESS_KEY_ID and\n"
"                        $AWS_SECRET_ACCESS_KEY\n"
"  --hsm-conf FILE       kmsd.conf naming the token (--baseline hsm,\n"
"                        --op hsm-calls; default: var/kmsd.conf, else\n"
"                        var/'s defaults, var/ found from the current\n"
"                        directory upwards)\n"
"  --hsm-keys N          session objects the HSM baseline spreads\n"
"                        its encryptions over (1)\n"
"  --rounds N            measure kmsd and the baseline alternately N\n"
"                        times and report the round of median ratio\n"
"                        (median throughput without a baseline): on a\n"
"                        shared, noisy machine (1)\n"
"  --echo-workers N      echo server workers (8, kmsd's default)\n"
"  --create-threads N    threads creating keys (16)\n"
"  --policy FILE         PutKeyPolicy FILE on the hot keys first (to\n"
"                        measure what a policy costs; default: the\n"
"                        keys' default policy)\n"
"  --kmsd-bin PATH --kmsd-conf FILE --kmsd-log FILE --key-id ID\n"
"                        --op startup: start kmsd, time it to ready\n"
"  --op hsm-calls [--hsm-conf FILE] [--hsm-keys N] [--count N] [--rounds N]\n"
"                        time a GenerateDataKey's PKCS#11 calls one by\n"
"                        one on the token, under private keys (as kmsd\n"
"                        holds them) and public ones; no kmsd\n"
"  --op envelope [--stream-mib N] [--frame-length N] [--rounds N]\n"
"                        encrypt, then encrypt and decrypt, a stream of N\n"
"                        MiB (1024) in the AWS Encryption SDK's format\n"
"                        (data key from kmsd; --key-id or a new key),\n"
"                        beside OpenSSL's raw AES-256-GCM over the same\n"
"                        frames; reports the ratios and peak RSS\n"
"  --help                this text\n"
"  --version             print the version and exit\n");
}

static int
parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		return -1;
	}
	*out = v;
	return 0;
}

static int
parse_op(const char *s)
{
	int i;

	for (i = 0; i < OP_NONE; i++) {
		if (strcmp(s, op_names[i]) == 0) {
			return i;
		}
	}
	return -1;
}

enum {
	O_ENDPOINT = 256, O_OP, O_CLIENTS, O_OUTSTANDING, O_BATCH, O_KEYS,
	O_REUSE, O_HOT, O_PTBYTES, O_CTXPAIRS, O_DURATION, O_COUNT, O_WARMUP,
	O_JSON, O_KMSDPID, O_BASELINE, O_HSMCONF, O_ECHOWORKERS, O_CREATETHR,
	O_KMSDBIN, O_KMSDCONF, O_KMSDLOG, O_KEYID, O_ECHOSERVER, O_POLICY,
	O_HSMKEYS, O_ROUNDS, O_CABUNDLE, O_TLSCERT, O_TLSKEY, O_REGION, O_STREAMMIB,
	O_FRAMELEN, O_HELP, O_VERSION
};

static const struct option longopts[] = {
	{ "endpoint", required_argument, NULL, O_ENDPOINT },
	{ "op", required_argument, NULL, O_OP },
	{ "clients", required_argument, NULL, O_CLIENTS },
	{ "outstanding", required_argument, NULL, O_OUTSTANDING },
	{ "batch", required_argument, NULL, O_BATCH },
	{ "keys", required_argument, NULL, O_KEYS },
	{ "reuse-keys", no_argument, NULL, O_REUSE },
	{ "hot", required_argument, NULL, O_HOT },
	{ "plaintext-bytes", required_argument, NULL, O_PTBYTES },
	{ "context-pairs", required_argument, NULL, O_CTXPAIRS },
	{ "duration", required_argument, NULL, O_DURATION },
	{ "count", required_argument, NULL, O_COUNT },
	{ "warmup", required_argument, NULL, O_WARMUP },
	{ "json", no_argument, NULL, O_JSON },
	{ "kmsd-pid", required_argument, NULL, O_KMSDPID },
	{ "baseline", required_argument, NULL, O_BASELINE },
	{ "hsm-conf", required_argument, NULL, O_HSMCONF },
	{ "hsm-keys", required_argument, NULL, O_HSMKEYS },
	{ "rounds", required_argument, NULL, O_ROUNDS },
	{ "stream-mib", required_argument, NULL, O_STREAMMIB },
	{ "frame-length", required_argument, NULL, O_FRAMELEN },
	{ "echo-workers", required_argument, NULL, O_ECHOWORKERS },
	{ "create-threads", required_argument, NULL, O_CREATETHR },
	{ "kmsd-bin", required_argument, NULL, O_KMSDBIN },
	{ "kmsd-conf", required_argument, NULL, O_KMSDCONF },
	{ "kmsd-log", required_argument, NULL, O_KMSDLOG },
	{ "key-id", required_argument, NULL, O_KEYID },
	{ "echo-server", required_argument, NULL, O_ECHOSERVER },
	{ "policy", required_argument, NULL, O_POLICY },
	{ "ca-bundle", required_argument, NULL, O_CABUNDLE },
	{ "tls-cert", required_argument, NULL, O_TLSCERT },
	{ "tls-key", required_argument, NULL, O_TLSKEY },
	{ "region", required_argument, NULL, O_REGION },
	{ "help", no_argument, NULL, O_HELP },
	{ "version", no_argument, NULL, O_VERSION },
	{ NULL, 0, NULL, 0 }
};

static int
parse_args(int argc, char **argv, struct bench_opts *o,
    const char **echo_url)
{
	double v;
	int c, keys_set = 0, warm_set = 0;

	memset(o, 0, sizeof(*o));
	o->op = OP_GDK;
	o->clients = 1;
	o->outstanding = 1;
	o->batch = 1;
	o->hsm_keys = 1;
	o->rounds = 1;
	o->keys = 1;
	o->plaintext_bytes = 32;
	o->context_pairs = 1;
	o->duration = DEFAULT_DURATION;
	o->echo_workers = DEFAULT_ECHO_WORKERS;
	o->create_threads = DEFAULT_CREATE_THREADS;
	o->kmsd_bin = "bin/kmsd";
	o->stream_mib = 1024;
	*echo_url = NULL;

#define NUM(lo, hi) do { \
	if (parse_num(optarg, (lo), (hi), &v) != 0) { \
		fprintf(stderr, "kms-bench: bad value for --%s: %s\n", \
		    longopts[c - O_ENDPOINT].name, optarg); \
		return -1; \
	} \
} while (0)
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_ENDPOINT: o->endpoint = optarg; break;
		case O_OP:
			if ((o->op = parse_op(optarg)) < 0) {
				fprintf(stderr, "kms-bench: unknown --op %s\n",
				    optarg);
				return -1;
			}
			break;
		case O_CLIENTS: NUM(1, BENCH_MAX_CLIENTS);
			o->clients = (int)v; break;
		case O_OUTSTANDING: NUM(1, BENCH_MAX_OUTSTANDING);
			o->outstanding = (int)v; break;
		case O_BATCH: NUM(1, KMS_MAX_BATCH); o->batch = (int)v; break;
		case O_KEYS: NUM(0, 10000000); o->keys = (size_t)v;
			keys_set = 1; break;
		case O_REUSE: o->reuse_keys = 1; break;
		case O_POLICY: o->policy_file = optarg; break;
		case O_HOT: NUM(1, 10000000); o->hot = (size_t)v; break;
		case O_PTBYTES: NUM(1, KMS_MAX_DATA_KEY_BYTES);
			o->plaintext_bytes = (size_t)v; break;
		case O_CTXPAIRS: NUM(0, BENCH_MAX_CONTEXT_PAIRS);
			o->context_pairs = (size_t)v; break;
		case O_DURATION: NUM(0.01, 86400); o->duration = v; break;
		case O_COUNT: NUM(1, 1e12); o->count = (uint64_t)v; break;
		case O_WARMUP: NUM(0, 3600); o->warmup = v; warm_set = 1;
			break;
		case O_JSON: o->json = 1; break;
		case O_KMSDPID: NUM(1, 1e9); o->kmsd_pid = (pid_t)v; break;
		case O_BASELINE:
			if (strcmp(optarg, "echo") == 0) {
				o->baseline = BASE_ECHO;
			} else if (strcmp(optarg, "hsm") == 0) {
				o->baseline = BASE_HSM;
			} else if (strcmp(optarg, "http-echo") == 0) {
				o->baseline = BASE_HTTP_ECHO;
			} else if (strcmp(optarg, "none") == 0) {
				o->baseline = BASE_NONE;
			} else {
				fprintf(stderr, "kms-bench: --baseline is "
				    "echo, hsm or none\n");
				return -1;
			}
			break;
		case O_HSMCONF: o->hsm_conf = optarg; break;
		case O_ROUNDS: NUM(1, BENCH_MAX_ROUNDS); o->rounds = (int)v;
			break;
		case O_HSMKEYS: NUM(1, 1000000); o->hsm_keys = (size_t)v;
			break;
		case O_STREAMMIB: NUM(1, 1048576); o->stream_mib = (uint64_t)v;
			break;
		case O_FRAMELEN: NUM(1, KMS_FRAME_LENGTH_MAX);
			o->frame_length = (uint32_t)v; break;
		case O_ECHOWORKERS: NUM(1, 256); o->echo_workers = (int)v;
			break;
		case O_CREATETHR: NUM(1, 1024); o->create_threads = (int)v;
			break;
		case O_KMSDBIN: o->kmsd_bin = optarg; break;
		case O_KMSDCONF: o->kmsd_conf = optarg; break;
		case O_KMSDLOG: o->kmsd_log = optarg; break;
		case O_KEYID: o->key_id = optarg; break;
		case O_ECHOSERVER: *echo_url = optarg; break;
		case O_CABUNDLE: o->ca_bundle = optarg; break;
		case O_TLSCERT: o->tls_cert = optarg; break;
		case O_TLSKEY: o->tls_key = optarg; break;
		case O_REGION: o->region = optarg; break;
		case O_HELP: usage(stdout); exit(0);
		case O_VERSION: printf("kms-bench %s\n", kms_version()); exit(0);
		default: usage(stderr); return -1;
		}
	}
#undef NUM
	if (optind != argc) {
		usage(stderr);
		return -1;
	}
	if (o->op == OP_CREATE_KEY && !keys_set) {
		o->keys = 0;
	}
	if (!warm_set) {
		o->warmup = o->count > 0 ? 0 : 1;
	}
	if (o->clients * o->outstanding > BENCH_MAX_THREADS) {
		fprintf(stderr, "kms-bench: clients x outstanding > %d\n",
		    BENCH_MAX_THREADS);
		return -1;
	}
	if (o->op == OP_CREATE_KEY && o->batch != 1) {
		fprintf(stderr, "kms-bench: CreateKey cannot be batched\n");
		return -1;
	}
	if (o->op != OP_CREATE_KEY && o->op != OP_STARTUP &&
	    o->op != OP_HSM_CALLS && o->op != OP_ENVELOPE && o->keys == 0) {
		fprintf(stderr, "kms-bench: --op %s needs --keys >= 1\n",
		    bench_op_name(o->op));
		return -1;
	}
	if (o->plaintext_bytes > KMS_MAX_PLAINTEXT) {
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct bench_opts o;
	struct world w;
	struct bench_result kres, bres;
	struct bench_result kr[BENCH_MAX_ROUNDS], br[BENCH_MAX_ROUNDS];
	double key[BENCH_MAX_ROUNDS];
	uint64_t errors = 0, bad = 0;
	int ord[BENCH_MAX_ROUNDS], k, m;
	struct report rp;
	struct bench_run run;
	struct echo_server *es = NULL;
	kms_client **clients = NULL;
	struct kthr *ts = NULL;
	void **args = NULL;
	const char *echo_url;
	char err[BENCH_ERR_MAX], ep[512];
	size_t req_len = 0, rep_len = 0, i;
	int nthr, r, nopen = 0, rc = 1, have_base = 0;
	pid_t pid;

	if (parse_args(argc, argv, &o, &echo_url) != 0) {
		return 2;
	}
	if (echo_url != NULL) {
		return echo_server_main(echo_url, o.echo_workers);
	}
	signal(SIGPIPE, SIG_IGN);
	build_context(o.context_pairs);
	if (o.op == OP_STARTUP) {
		return run_startup(&o);
	}
	if (o.op == OP_HSM_CALLS) {
		return run_hsm_calls(&o);
	}
	if (o.endpoint != NULL && (strncmp(o.endpoint, "http://", 7) == 0 ||
	    strncmp(o.endpoint, "https://", 8) == 0)) {
		return bench_http_main(&o);
	}
	if (o.baseline == BASE_HTTP_ECHO) {
		fprintf(stderr, "kms-bench: --baseline http-echo needs an "
		    "http(s):// --endpoint\n");
		return 2;
	}
	if (o.op == OP_ENVELOPE) {
		return run_envelope(&o);
	}
	memset(&w, 0, sizeof(w));
	memset(&kres, 0, sizeof(kres));
	memset(&bres, 0, sizeof(bres));
	w.o = &o;
	for (i = 0; i < sizeof(w.plaintext); i++) {
		w.plaintext[i] = (uint8_t)(i * 131 + 7);
	}
	nthr = o.clients * o.outstanding;
	if ((clients = calloc((size_t)o.clients, sizeof(*clients))) == NULL ||
	    (ts = calloc((size_t)nthr, sizeof(*ts))) == NULL ||
	    (args = calloc((size_t)nthr, sizeof(*args))) == NULL) {
		fprintf(stderr, "kms-bench: out of memory\n");
		goto out;
	}
	for (nopen = 0; nopen < o.clients; nopen++) {
		if ((r = kms_client_open(&clients[nopen], o.endpoint)) != 0) {
			fprintf(stderr, "kms-bench: cannot connect to %s: "
			    "%s\n", o.endpoint ? o.endpoint : "the default "
			    "endpoint", kms_strerror(r));
			goto out;
		}
	}
	if (populate_keys(&w, clients, o.clients, err, sizeof(err)) != 0) {
		fprintf(stderr, "kms-bench: key set-up: %s\n", err);
		goto out;
	}
	w.hot = o.hot > 0 && o.hot < w.nids ? o.hot : w.nids;
	if (o.policy_file != NULL && put_policies(&w, clients[0], err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "kms-bench: --policy: %s\n", err);
		goto out;
	}
	if (prepare_ciphertexts(&w, clients, o.clients, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "kms-bench: %s\n", err);
		goto out;
	}
	if ((pid = o.kmsd_pid) == 0) {
		if (o.endpoint == NULL && kms_default_endpoint(ep,
		    sizeof(ep)) == 0) {
			o.endpoint = ep;
		}
		if (o.endpoint != NULL && ipc_path(o.endpoint) != NULL) {
			pid = proc_find_listener(ipc_path(o.endpoint));
		}
	}
	if (measure_sizes(&w, clients[0], &req_len, &rep_len, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "kms-bench: %s\n", err);
		goto out;
	}
	for (r = 0; r < nthr; r++) {
		ts[r].c = clients[r / o.outstanding];
		ts[r].w = &w;
		if ((ts[r].items = calloc((size_t)o.batch,
		    sizeof(*ts[r].items))) == NULL) {
			fprintf(stderr, "kms-bench: out of memory\n");
			goto out;
		}
		args[r] = &ts[r];
	}
	memset(&run, 0, sizeof(run));
	run.nthreads = nthr;
	run.args = args;
	run.fn = kmsd_req;
	run.warmup = o.warmup;
	run.duration = o.duration;
	run.count = o.count;
	run.ops_per_req = (uint64_t)o.batch;
	run.watch_pid = pid;
	if (o.baseline == BASE_ECHO && echo_server_start(o.echo_workers, &es,
	    err, sizeof(err)) != 0) {
		fprintf(stderr, "kms-bench: echo baseline: %s\n", err);
		goto out;
	}
	/* Rounds alternate kmsd and its baseline, so that a slow spell of
	 * a shared machine falls on both sides of a ratio. */
	memset(kr, 0, sizeof(kr));
	memset(br, 0, sizeof(br));
	for (k = 0; k < o.rounds; k++) {
		if (bench_run(&run, &kr[k]) != 0) {
			fprintf(stderr, "kms-bench: the run failed\n");
			goto out;
		}
		errors += kr[k].errors;
		bad += kr[k].errors + kr[k].warmup_errors;
		if (o.baseline == BASE_ECHO) {
			if (echo_measure(&o, echo_server_url(es),
			    echo_server_pid(es), req_len, rep_len, &br[k], err,
			    sizeof(err)) != 0) {
				fprintf(stderr, "kms-bench: echo baseline: "
				    "%s\n", err);
				goto out;
			}
			have_base = 1;
		} else if (o.baseline == BASE_HSM) {
			if (hsm_measure(&o, &br[k], err, sizeof(err)) != 0) {
				fprintf(stderr, "kms-bench: hsm baseline: "
				    "%s\n", err);
				goto out;
			}
			have_base = 1;
		}
		bad += br[k].errors;
		key[k] = have_base ? ratio(kr[k].ops_per_s, br[k].ops_per_s) :
		    kr[k].ops_per_s;
		ord[k] = k;
	}
	/* The round of median ratio (lower median for an even count). */
	for (k = 1; k < o.rounds; k++) {
		for (m = k; m > 0 && key[ord[m - 1]] > key[ord[m]]; m--) {
			int t = ord[m];
			ord[m] = ord[m - 1];
			ord[m - 1] = t;
		}
	}
	m = ord[(o.rounds - 1) / 2];
	kres = kr[m];
	bres = br[m];
	/* The process's peak is the peak of every round. */
	for (k = 0; k < o.rounds; k++) {
		if (kr[k].peak_rss_kib > kres.peak_rss_kib) {
			kres.peak_rss_kib = kr[k].peak_rss_kib;
		}
	}
	memset(&rp, 0, sizeof(rp));
	rp.o = &o;
	rp.w = &w;
	rp.k = &kres;
	rp.b = have_base ? &bres : NULL;
	rp.kr = kr;
	rp.br = br;
	rp.rounds = o.rounds;
	rp.errors = errors;
	rp.kmsd_pid = pid;
	rp.req_len = req_len;
	rp.rep_len = rep_len;
	if (o.json) {
		print_json(&rp);
	} else {
		print_human(&rp);
	}
	fflush(stdout);
	/* 3: it ran, but something failed (or nothing was measured). */
	rc = bad > 0 || kres.requests == 0 ? 3 : 0;
 out:
	echo_server_stop(es);
	if (ts != NULL) {
		for (r = 0; r < nthr; r++) {
			free(ts[r].items);
		}
	}
	for (i = 0; i < w.nprep; i++) {
		kms_buf_free(&w.prep[i].blob);
	}
	free(w.prep);
	free(w.ids);
	for (r = 0; r < nopen; r++) {
		kms_client_close(clients[r]);
	}
	free(clients);
	free(ts);
	free(args);
	return rc;
}

/*
 * test_crash.c — crash consistency: a real kmsd on a real SoftHSM2 token,
 * killed with SIGKILL at random moments under a mutating workload from
 * several threads (libkmsclient), restarted, and checked after every
 * restart: every acknowledged mutation is there, and every acknowledged
 * ciphertext decrypts to its plaintext.
 *
 * Each workload thread owns its keys and aliases, so at any moment each
 * has at most one mutation in flight and knows, for everything it owns,
 * the last acknowledged state.  The mutation in flight when kmsd dies may
 * or may not have applied: its object may show either the state before or
 * the one it asked for (the one seen is adopted), nothing else.  Keys
 * whose CreateKey was in flight may exist unknown to the model: ListKeys
 * may show at most that many more keys than the model holds.
 *
 * The mutations: CreateKey, EnableKey/DisableKey, UpdateKeyDescription,
 * PutKeyPolicy, TagResource/UntagResource, CreateAlias/UpdateAlias/
 * DeleteAlias, CreateGrant/RetireGrant/RevokeGrant, RotateKeyOnDemand,
 * EnableKeyRotation/DisableKeyRotation; and Encrypt and
 * GenerateDataKey, whose acknowledged ciphertexts are all decrypted after
 * the next restart and all again at the end.
 *
 * Size: KMS_CRASH_KILLS (default 50) kill cycles, KMS_CRASH_SCALE (default
 * 1) more threads, keys and a longer workload per cycle (`make crash-full`
 * runs 50 kills at scale 4).  The seed of the run is printed first;
 * KMS_CRASH_SEED repeats its choices (the kill moments fall where they
 * fall).
 */
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "kms.h"
#include "tests/testutil.h"

#define MAX_THREADS 8
#define MAX_KEYS 32		/* per thread */
#define MAX_ALIASES 16		/* per thread */
#define MAX_GRANTS 4		/* per key, live or in doubt */
#define NTAGS 2			/* tag keys "a" and "b" */
#define CALL_TIMEOUT_MS 20000
#define MAX_ROTATIONS 8		/* on-demand, per key (AWS allows 25) */

/* A field's last acknowledged value, and the one a mutation in flight at
 * the kill asked for. */
struct fv {
	int cur;
	int alt;
	int has_alt;
};

struct cgrant {
	char id[80];		/* empty until known */
	char token[256];	/* empty when unknown (adopted after a kill) */
	int name_seq;		/* Name "g<seq>" */
	struct fv live;
};

struct ckey {
	char id[40];
	struct fv enabled;
	struct fv desc;		/* Description "d<seq>" */
	struct fv policy;	/* Sid "p<seq>" of the policy; 0: default */
	struct fv tag[NTAGS];	/* value "v<seq>", -1 absent */
	struct cgrant grants[MAX_GRANTS];
	int ngrants;
	struct fv rotations;	/* on-demand rotations acknowledged */
	struct fv autorot;	/* automatic rotation on (1) or off */
};

struct calias {
	char name[64];
	struct fv target;	/* key index in the thread, -1 none */
};

struct cthread {
	int idx;
	pthread_t thr;
	unsigned seed;
	struct ckey keys[MAX_KEYS];
	int nkeys;
	struct calias aliases[MAX_ALIASES];
	int naliases;
	int pending_create;	/* CreateKey in flight at the kill */
	uint64_t acked, ops;
	char err[512];		/* the first unexpected answer */
};

struct ct {
	char key_id[40];
	char *blob;		/* base64 */
	char plain[64];		/* base64 */
	int ctx;		/* EncryptionContext {"n": "<ctx>"}, 0: none */
	int verified;
};

static struct tu_env env;
static struct cthread th[MAX_THREADS];
static int nthreads, keys_cap, aliases_cap, cycle_ms, kills;
static atomic_int stop;
static atomic_int seqno = 1;
static char me[160];		/* our principal, as kmsd names it */
static pthread_mutex_t ct_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ct *cts;
static size_t ncts, capcts;
static int unknown_keys;	/* CreateKeys in flight at kills, summed */
static uint64_t in_flight_at_kill, adopted;

/* An unexpected answer in a workload thread (cmocka's failures may only
 * be raised on the main thread): recorded, and the thread stops. */
#define BROKEN (-1)
#define TFAIL(t, ...) do { \
	if ((t)->err[0] == '\0') { \
		snprintf((t)->err, sizeof((t)->err), __VA_ARGS__); \
	} \
	return BROKEN; \
} while (0)

static int
is_lost(int r)
{
	return r == KMS_ETRANSPORT || r == KMS_ETIMEDOUT || r == KMS_EPROTO;
}

/* Send req (stolen); the reply object in *out on success. */
static int
call(kms_client *c, json_t *req, json_t **out, kms_error_info *ei)
{
	char *s = json_dumps(req, JSON_COMPACT), *rep = NULL;
	size_t n = 0;
	int r;

	json_decref(req);
	if (s == NULL) {
		return KMS_ENOMEM;
	}
	memset(ei, 0, sizeof(*ei));
	r = kms_call_json(c, s, strlen(s), &rep, &n, ei);
	free(s);
	if (r == 0 && out != NULL) {
		if ((*out = json_loadb(rep, n, 0, NULL)) == NULL) {
			r = KMS_EPROTO;
		}
	}
	kms_free(rep);
	return r;
}

static int
next_seq(void)
{
	return atomic_fetch_add(&seqno, 1);
}

static void
fv_set(struct fv *f, int v)
{
	f->cur = v;
	f->has_alt = 0;
}

/* Before a mutation of f to v. */
static void
fv_begin(struct fv *f, int v)
{
	f->alt = v;
	f->has_alt = 1;
}

/* After: acknowledged (applied) or refused (not applied); lost: still in
 * doubt. */
static void
fv_end(struct fv *f, int r)
{
	if (r == 0) {
		f->cur = f->alt;
		f->has_alt = 0;
	} else if (!is_lost(r)) {
		f->has_alt = 0;
	}
}

static json_t *
policy_doc(int seq)
{
	char s[512];

	snprintf(s, sizeof(s), "{\"Version\":\"2012-10-17\",\"Statement\":"
	    "[{\"Sid\":\"crash-p%d\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
	    "\"*\"},\"Action\":\"kms:*\",\"Resource\":\"*\"}]}", seq);
	return json_string(s);
}

static void
add_ct(const char *key_id, const char *blob, const char *plain, int ctx)
{
	pthread_mutex_lock(&ct_mu);
	if (ncts == capcts) {
		capcts = capcts ? capcts * 2 : 256;
		cts = realloc(cts, capcts * sizeof(*cts));
		if (cts == NULL) {
			abort();
		}
	}
	snprintf(cts[ncts].key_id, sizeof(cts[ncts].key_id), "%s", key_id);
	cts[ncts].blob = strdup(blob);
	snprintf(cts[ncts].plain, sizeof(cts[ncts].plain), "%s", plain);
	cts[ncts].ctx = ctx;
	cts[ncts].verified = 0;
	ncts++;
	pthread_mutex_unlock(&ct_mu);
}

/* ---- the workload: one mutation (or encryption) of t's own objects ---- */

static int
op_create_key(kms_client *c, struct cthread *t)
{
	kms_error_info ei;
	struct ckey *k;
	json_t *rep = NULL;
	int r;

	if (t->nkeys >= keys_cap) {
		return 0;
	}
	t->pending_create = 1;
	r = call(c, json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "Action",
	    "CreateKey", "Description", "", "Tags", "TagKey", "a", "TagValue",
	    "v0"), &rep, &ei);
	if (is_lost(r)) {
		return r;
	}
	t->pending_create = 0;
	if (r != 0) {
		TFAIL(t, "CreateKey: %s %s", ei.name, ei.message);
	}
	k = &t->keys[t->nkeys];
	memset(k, 0, sizeof(*k));
	snprintf(k->id, sizeof(k->id), "%s", json_string_value(
	    json_object_get(json_object_get(rep, "KeyMetadata"), "KeyId")));
	json_decref(rep);
	if (strlen(k->id) != 36) {
		TFAIL(t, "CreateKey: no KeyId");
	}
	fv_set(&k->enabled, 1);
	fv_set(&k->desc, 0);
	fv_set(&k->policy, 0);
	fv_set(&k->tag[0], 0);
	fv_set(&k->tag[1], -1);
	fv_set(&k->rotations, 0);
	fv_set(&k->autorot, 0);
	t->nkeys++;
	return 0;
}

static int
op_enable(kms_client *c, struct cthread *t, struct ckey *k)
{
	kms_error_info ei;
	int to = !k->enabled.cur, r;

	fv_begin(&k->enabled, to);
	r = call(c, json_pack("{s:s, s:s}", "Action", to ? "EnableKey" :
	    "DisableKey", "KeyId", k->id), NULL, &ei);
	fv_end(&k->enabled, r);
	if (r != 0 && !is_lost(r)) {
		TFAIL(t, "%sKey: %s %s", to ? "Enable" : "Disable", ei.name,
		    ei.message);
	}
	return r;
}

static int
op_describe(kms_client *c, struct cthread *t, struct ckey *k)
{
	kms_error_info ei;
	char d[32];
	int seq = next_seq(), r;

	snprintf(d, sizeof(d), "d%d", seq);
	fv_begin(&k->desc, seq);
	r = call(c, json_pack("{s:s, s:s, s:s}", "Action",
	    "UpdateKeyDescription", "KeyId", k->id, "Description", d), NULL,
	    &ei);
	fv_end(&k->desc, r);
	if (r != 0 && !is_lost(r)) {
		TFAIL(t, "UpdateKeyDescription: %s %s", ei.name, ei.message);
	}
	return r;
}

static int
op_policy(kms_client *c, struct cthread *t, struct ckey *k)
{
	kms_error_info ei;
	int seq = next_seq(), r;

	fv_begin(&k->policy, seq);
	r = call(c, json_pack("{s:s, s:s, s:s, s:o}", "Action", "PutKeyPolicy",
	    "KeyId", k->id, "PolicyName", "default", "Policy",
	    policy_doc(seq)), NULL, &ei);
	fv_end(&k->policy, r);
	if (r != 0 && !is_lost(r)) {
		TFAIL(t, "PutKeyPolicy: %s %s", ei.name, ei.message);
	}
	return r;
}

static int
op_tag(kms_client *c, struct cthread *t, struct ckey *k)
{
	static const char *names[NTAGS] = { "a", "b" };
	kms_error_info ei;
	int i = rand_r(&t->seed) % NTAGS, seq = next_seq(), r;
	char v[32];

	if (k->tag[i].cur >= 0 && rand_r(&t->seed) % 3 == 0) {
		fv_begin(&k->tag[i], -1);
		r = call(c, json_pack("{s:s, s:s, s:[s]}", "Action",
		    "UntagResource", "KeyId", k->id, "TagKeys", names[i]),
		    NULL, &ei);
	} else {
		snprintf(v, sizeof(v), "v%d", seq);
		fv_begin(&k->tag[i], seq);
		r = call(c, json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "Action",
		    "TagResource", "KeyId", k->id, "Tags", "TagKey", names[i],
		    "TagValue", v), NULL, &ei);
	}
	fv_end(&k->tag[i], r);
	if (r != 0 && !is_lost(r)) {
		TFAIL(t, "tagging: %s %s", ei.name, ei.message);
	}
	return r;
}

static int
op_alias(kms_client *c, struct cthread *t)
{
	kms_error_info ei;
	struct calias *a;
	int i, to, r;

	if (t->nkeys == 0) {
		return 0;
	}
	i = rand_r(&t->seed) % aliases_cap;
	if (i >= t->naliases) {
		i = t->naliases++;
		a = &t->aliases[i];
		snprintf(a->name, sizeof(a->name), "alias/crash-%d-%d",
		    t->idx, i);
		fv_set(&a->target, -1);
	}
	a = &t->aliases[i];
	if (a->target.cur < 0) {
		to = rand_r(&t->seed) % t->nkeys;
		fv_begin(&a->target, to);
		r = call(c, json_pack("{s:s, s:s, s:s}", "Action",
		    "CreateAlias", "AliasName", a->name, "TargetKeyId",
		    t->keys[to].id), NULL, &ei);
	} else if (rand_r(&t->seed) % 3 == 0) {
		fv_begin(&a->target, -1);
		r = call(c, json_pack("{s:s, s:s}", "Action", "DeleteAlias",
		    "AliasName", a->name), NULL, &ei);
	} else {
		to = rand_r(&t->seed) % t->nkeys;
		fv_begin(&a->target, to);
		r = call(c, json_pack("{s:s, s:s, s:s}", "Action",
		    "UpdateAlias", "AliasName", a->name, "TargetKeyId",
		    t->keys[to].id), NULL, &ei);
	}
	fv_end(&a->target, r);
	if (r != 0 && !is_lost(r)) {
		TFAIL(t, "%s: %s %s", a->name, ei.name, ei.message);
	}
	return r;
}

static void
grants_compact(struct ckey *k)
{
	int i, j = 0;

	for (i = 0; i < k->ngrants; i++) {
		if (k->grants[i].live.cur || k->grants[i].live.has_alt) {
			k->grants[j++] = k->grants[i];
		}
	}
	k->ngrants = j;
}

static int
op_grant(kms_client *c, struct cthread *t, struct ckey *k)
{
	kms_error_info ei;
	struct cgrant *g;
	json_t *rep = NULL;
	char name[32];
	int i, r;

	grants_compact(k);
	if (k->ngrants < MAX_GRANTS && (k->ngrants == 0 ||
	    rand_r(&t->seed) % 2 == 0)) {
		g = &k->grants[k->ngrants++];
		memset(g, 0, sizeof(*g));
		g->name_seq = next_seq();
		snprintf(name, sizeof(name), "g%d", g->name_seq);
		fv_set(&g->live, 0);
		fv_begin(&g->live, 1);
		r = call(c, json_pack("{s:s, s:s, s:s, s:s, s:[s, s], s:s}",
		    "Action", "CreateGrant", "KeyId", k->id, "GranteePrincipal",
		    "uid:54321", "RetiringPrincipal", me, "Operations",
		    "Encrypt", "Decrypt", "Name", name), &rep, &ei);
		if (r == 0) {
			snprintf(g->id, sizeof(g->id), "%s", json_string_value(
			    json_object_get(rep, "GrantId")));
			snprintf(g->token, sizeof(g->token), "%s",
			    json_string_value(json_object_get(rep,
			    "GrantToken")));
			json_decref(rep);
		}
		fv_end(&g->live, r);
		if (r != 0 && !is_lost(r)) {
			TFAIL(t, "CreateGrant: %s %s", ei.name, ei.message);
		}
		return r;
	}
	i = rand_r(&t->seed) % k->ngrants;
	g = &k->grants[i];
	fv_begin(&g->live, 0);
	if (g->token[0] != '\0' && rand_r(&t->seed) % 2 == 0) {
		r = call(c, json_pack("{s:s, s:s}", "Action", "RetireGrant",
		    "GrantToken", g->token), NULL, &ei);
	} else {
		r = call(c, json_pack("{s:s, s:s, s:s}", "Action",
		    rand_r(&t->seed) % 2 ? "RevokeGrant" : "RetireGrant",
		    "KeyId", k->id, "GrantId", g->id), NULL, &ei);
	}
	fv_end(&g->live, r);
	if (r != 0 && !is_lost(r)) {
		TFAIL(t, "removing grant %s: %s %s", g->id, ei.name,
		    ei.message);
	}
	return r;
}

/* RotateKeyOnDemand: new material in the HSM, a version row, the
 * history; ciphertexts under older versions must still decrypt. */
static int
op_rotate(kms_client *c, struct cthread *t, struct ckey *k)
{
	kms_error_info ei;
	int r;

	if (!k->enabled.cur || k->rotations.cur >= MAX_ROTATIONS) {
		return 0;
	}
	fv_begin(&k->rotations, k->rotations.cur + 1);
	r = call(c, json_pack("{s:s, s:s}", "Action", "RotateKeyOnDemand",
	    "KeyId", k->id), NULL, &ei);
	fv_end(&k->rotations, r);
	if (r != 0 && !is_lost(r)) {
		TFAIL(t, "RotateKeyOnDemand: %s %s", ei.name, ei.message);
	}
	return r;
}

/* EnableKeyRotation / DisableKeyRotation: the schedule row. */
static int
op_autorot(kms_client *c, struct cthread *t, struct ckey *k)
{
	kms_error_info ei;
	int to = !k->autorot.cur, r;

	if (!k->enabled.cur) {
		return 0;
	}
	fv_begin(&k->autorot, to);
	r = call(c, to ? json_pack("{s:s, s:s, s:i}", "Action",
	    "EnableKeyRotation", "KeyId", k->id, "RotationPeriodInDays",
	    90 + next_seq() % 1000) : json_pack("{s:s, s:s}", "Action",
	    "DisableKeyRotation", "KeyId", k->id), NULL, &ei);
	fv_end(&k->autorot, r);
	if (r != 0 && !is_lost(r)) {
		TFAIL(t, "%sKeyRotation: %s %s", to ? "Enable" : "Disable",
		    ei.name, ei.message);
	}
	return r;
}

static int
op_encrypt(kms_client *c, struct cthread *t, struct ckey *k)
{
	kms_error_info ei;
	json_t *rep = NULL, *req;
	char plain[64], n[16];
	int seq = next_seq(), ctx = rand_r(&t->seed) % 2 ? seq : 0, gdk, r;

	if (!k->enabled.cur) {
		return 0;
	}
	gdk = rand_r(&t->seed) % 3 == 0;
	snprintf(n, sizeof(n), "%d", ctx);
	if (gdk) {
		req = json_pack("{s:s, s:s, s:i}", "Action", "GenerateDataKey",
		    "KeyId", k->id, "NumberOfBytes", 16 + seq % 17);
	} else {
		/* A distinct plaintext each time, in base64. */
		snprintf(plain, sizeof(plain), "cGxhaW4t%08d", seq % 100000000);
		req = json_pack("{s:s, s:s, s:s}", "Action", "Encrypt",
		    "KeyId", k->id, "Plaintext", plain);
	}
	if (ctx != 0) {
		json_object_set_new(req, "EncryptionContext",
		    json_pack("{s:s}", "n", n));
	}
	r = call(c, req, &rep, &ei);
	if (r == 0) {
		add_ct(k->id, json_string_value(json_object_get(rep,
		    "CiphertextBlob")), gdk ? json_string_value(
		    json_object_get(rep, "Plaintext")) : plain, ctx);
		json_decref(rep);
	} else if (!is_lost(r)) {
		TFAIL(t, "%s: %s %s", gdk ? "GenerateDataKey" : "Encrypt",
		    ei.name, ei.message);
	}
	return r;
}

static void *
worker(void *arg)
{
	struct cthread *t = arg;
	kms_client *c = NULL;
	struct ckey *k;
	int r = 0, what;

	if (kms_client_open(&c, env.endpoint) != 0) {
		return NULL;
	}
	kms_client_set_timeout(c, CALL_TIMEOUT_MS);
	while (!atomic_load(&stop) && !is_lost(r) && r != BROKEN) {
		what = rand_r(&t->seed) % 18;
		if (t->nkeys == 0 || (what == 0 && t->nkeys < keys_cap)) {
			r = op_create_key(c, t);
			t->ops++;
			t->acked += r == 0;
			continue;
		}
		k = &t->keys[rand_r(&t->seed) % t->nkeys];
		switch (what) {
		case 0:
		case 1:
			r = op_enable(c, t, k);
			break;
		case 2:
			r = op_describe(c, t, k);
			break;
		case 3:
			r = op_policy(c, t, k);
			break;
		case 4:
		case 5:
			r = op_tag(c, t, k);
			break;
		case 6:
		case 7:
		case 8:
			r = op_alias(c, t);
			break;
		case 9:
		case 10:
			r = op_grant(c, t, k);
			break;
		case 11:
			r = op_rotate(c, t, k);
			break;
		case 12:
			r = op_autorot(c, t, k);
			break;
		default:
			r = op_encrypt(c, t, k);
			break;
		}
		t->ops++;
		t->acked += r == 0;
	}
	kms_client_close(c);
	return NULL;
}

/* ---- after a restart: the daemon holds what the model says ---- */

/* Observed value v for f: the acknowledged one, or the one in flight. */
static void
fv_check(struct fv *f, int v, const char *what, const char *id)
{
	if (v == f->cur) {
		f->has_alt = 0;
		return;
	}
	if (f->has_alt && v == f->alt) {
		f->cur = v;
		f->has_alt = 0;
		adopted++;
		return;
	}
	fail_msg("%s of %s: found %d, acknowledged %d%s", what, id, v, f->cur,
	    f->has_alt ? " (or the one in flight)" : "");
}

/* The number after prefix in s; -999 when s does not start with it. */
static int
seq_of(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	if (s == NULL || strncmp(s, prefix, n) != 0) {
		return -999;
	}
	return atoi(s + n);
}

static json_t *
must(kms_client *c, json_t *req)
{
	kms_error_info ei;
	json_t *rep = NULL;
	char *s = json_dumps(req, JSON_COMPACT);
	int r = call(c, req, &rep, &ei);

	if (r != 0) {
		fail_msg("%s: %s %s", s, ei.name, ei.message);
	}
	free(s);
	return rep;
}

static void
verify_key(kms_client *c, struct ckey *k)
{
	json_t *rep, *m, *a, *e;
	const char *sid = NULL, *v;
	int seen[NTAGS] = { -1, -1 }, i, j;
	size_t n;

	rep = must(c, json_pack("{s:s, s:s}", "Action", "DescribeKey", "KeyId",
	    k->id));
	m = json_object_get(rep, "KeyMetadata");
	fv_check(&k->enabled, json_is_true(json_object_get(m, "Enabled")),
	    "Enabled", k->id);
	v = json_string_value(json_object_get(m, "Description"));
	fv_check(&k->desc, v == NULL || v[0] == '\0' ? 0 : seq_of(v, "d"),
	    "Description", k->id);
	json_decref(rep);

	rep = must(c, json_pack("{s:s, s:s, s:s}", "Action", "GetKeyPolicy",
	    "KeyId", k->id, "PolicyName", "default"));
	a = json_loads(json_string_value(json_object_get(rep, "Policy")), 0,
	    NULL);
	assert_non_null(a);
	sid = json_string_value(json_object_get(json_array_get(
	    json_object_get(a, "Statement"), 0), "Sid"));
	fv_check(&k->policy, sid != NULL && strncmp(sid, "crash-p", 7) == 0 ?
	    seq_of(sid, "crash-p") : 0, "policy", k->id);
	json_decref(a);
	json_decref(rep);

	rep = must(c, json_pack("{s:s, s:s}", "Action", "ListResourceTags",
	    "KeyId", k->id));
	json_array_foreach(json_object_get(rep, "Tags"), n, e) {
		const char *tk = json_string_value(json_object_get(e,
		    "TagKey"));
		i = tk != NULL && strcmp(tk, "b") == 0;
		if (tk == NULL || (strcmp(tk, "a") != 0 && !i)) {
			fail_msg("unexpected tag on %s", k->id);
		}
		seen[i] = seq_of(json_string_value(json_object_get(e,
		    "TagValue")), "v");
	}
	json_decref(rep);
	for (i = 0; i < NTAGS; i++) {
		fv_check(&k->tag[i], seen[i], i ? "tag b" : "tag a", k->id);
	}

	rep = must(c, json_pack("{s:s, s:s, s:i}", "Action", "ListGrants",
	    "KeyId", k->id, "Limit", 100));
	assert_false(json_is_true(json_object_get(rep, "Truncated")));
	{
		int found[MAX_GRANTS] = { 0 };
		json_array_foreach(json_object_get(rep, "Grants"), n, e) {
			const char *gid = json_string_value(json_object_get(e,
			    "GrantId"));
			int ns = seq_of(json_string_value(json_object_get(e,
			    "Name")), "g");
			for (j = 0; j < k->ngrants; j++) {
				if (k->grants[j].name_seq == ns) {
					break;
				}
			}
			if (j == k->ngrants || gid == NULL) {
				fail_msg("unknown grant %s on %s",
				    gid ? gid : "?", k->id);
			}
			if (k->grants[j].id[0] == '\0') {
				/* Created by the call in flight. */
				snprintf(k->grants[j].id,
				    sizeof(k->grants[j].id), "%s", gid);
			} else if (strcmp(k->grants[j].id, gid) != 0) {
				fail_msg("grant g%d of %s changed id", ns,
				    k->id);
			}
			found[j] = 1;
		}
		for (j = 0; j < k->ngrants; j++) {
			fv_check(&k->grants[j].live, found[j], "grant",
			    k->id);
		}
	}
	json_decref(rep);
	grants_compact(k);

	rep = must(c, json_pack("{s:s, s:s, s:i}", "Action", "ListKeyRotations",
	    "KeyId", k->id, "Limit", 100));
	{
		int od = 0;
		json_array_foreach(json_object_get(rep, "Rotations"), n, e) {
			v = json_string_value(json_object_get(e,
			    "RotationType"));
			od += v != NULL && strcmp(v, "ON_DEMAND") == 0;
		}
		fv_check(&k->rotations, od, "on-demand rotations", k->id);
	}
	json_decref(rep);
	rep = must(c, json_pack("{s:s, s:s}", "Action", "GetKeyRotationStatus",
	    "KeyId", k->id));
	fv_check(&k->autorot, json_is_true(json_object_get(rep,
	    "KeyRotationEnabled")), "automatic rotation", k->id);
	json_decref(rep);
}

static void
verify_alias(kms_client *c, struct cthread *t, struct calias *a)
{
	kms_error_info ei;
	json_t *rep = NULL;
	const char *id;
	int r, j, v = -1;

	r = call(c, json_pack("{s:s, s:s}", "Action", "DescribeKey", "KeyId",
	    a->name), &rep, &ei);
	if (r == KMS_ENOTFOUND) {
		v = -1;
	} else if (r != 0) {
		fail_msg("DescribeKey %s: %s %s", a->name, ei.name,
		    ei.message);
	} else {
		id = json_string_value(json_object_get(json_object_get(rep,
		    "KeyMetadata"), "KeyId"));
		for (j = 0; j < t->nkeys; j++) {
			if (id != NULL && strcmp(t->keys[j].id, id) == 0) {
				v = j;
			}
		}
		if (v < 0) {
			fail_msg("%s points at %s, no key of its owner",
			    a->name, id ? id : "?");
		}
		json_decref(rep);
	}
	fv_check(&a->target, v, a->name, "its thread");
}

static struct ckey *
key_by_id(const char *id, struct cthread **tp)
{
	int i, j;

	for (i = 0; i < nthreads; i++) {
		for (j = 0; j < th[i].nkeys; j++) {
			if (strcmp(th[i].keys[j].id, id) == 0) {
				*tp = &th[i];
				return &th[i].keys[j];
			}
		}
	}
	return NULL;
}

/* Decrypt the ciphertexts not yet checked (all: every one). */
static void
verify_ciphertexts(kms_client *c, int all)
{
	kms_error_info ei;
	struct cthread *t;
	struct ckey *k;
	json_t *rep, *req;
	char n[16];
	size_t i;

	for (i = 0; i < ncts; i++) {
		if (cts[i].verified && !all) {
			continue;
		}
		if ((k = key_by_id(cts[i].key_id, &t)) == NULL) {
			fail_msg("ciphertext under an unknown key");
		}
		if (!k->enabled.cur) {
			/* Its state was checked; enabled to decrypt. */
			json_decref(must(c, json_pack("{s:s, s:s}", "Action",
			    "EnableKey", "KeyId", k->id)));
			fv_set(&k->enabled, 1);
		}
		req = json_pack("{s:s, s:s}", "Action", "Decrypt",
		    "CiphertextBlob", cts[i].blob);
		if (cts[i].ctx != 0) {
			snprintf(n, sizeof(n), "%d", cts[i].ctx);
			json_object_set_new(req, "EncryptionContext",
			    json_pack("{s:s}", "n", n));
		}
		rep = NULL;
		if (call(c, req, &rep, &ei) != 0) {
			fail_msg("Decrypt of an acknowledged ciphertext under "
			    "%s: %s %s", k->id, ei.name, ei.message);
		}
		if (strcmp(json_string_value(json_object_get(rep, "Plaintext")),
		    cts[i].plain) != 0) {
			fail_msg("ciphertext under %s decrypts to another "
			    "plaintext", k->id);
		}
		json_decref(rep);
		cts[i].verified = 1;
	}
}

static int
count_keys(kms_client *c)
{
	json_t *rep, *req;
	const char *marker = NULL;
	char mk[256];
	int n = 0;

	for (;;) {
		req = json_pack("{s:s, s:i}", "Action", "ListKeys", "Limit",
		    1000);
		if (marker != NULL) {
			json_object_set_new(req, "Marker", json_string(marker));
		}
		rep = must(c, req);
		n += (int)json_array_size(json_object_get(rep, "Keys"));
		if (!json_is_true(json_object_get(rep, "Truncated"))) {
			json_decref(rep);
			return n;
		}
		snprintf(mk, sizeof(mk), "%s", json_string_value(
		    json_object_get(rep, "NextMarker")));
		marker = mk;
		json_decref(rep);
	}
}

static int
verify_all(int final)
{
	kms_client *c = NULL;
	int i, j, modeled = 0, listed;

	assert_int_equal(kms_client_open(&c, env.endpoint), 0);
	kms_client_set_timeout(c, CALL_TIMEOUT_MS);
	for (i = 0; i < nthreads; i++) {
		struct cthread *t = &th[i];
		in_flight_at_kill += t->pending_create;
		unknown_keys += t->pending_create;
		t->pending_create = 0;
		for (j = 0; j < t->nkeys; j++) {
			verify_key(c, &t->keys[j]);
		}
		for (j = 0; j < t->naliases; j++) {
			verify_alias(c, t, &t->aliases[j]);
		}
		modeled += t->nkeys;
	}
	listed = count_keys(c);
	if (listed < modeled || listed > modeled + unknown_keys) {
		fail_msg("ListKeys shows %d keys; acknowledged %d, in doubt %d",
		    listed, modeled, unknown_keys);
	}
	verify_ciphertexts(c, final);
	kms_client_close(c);
	return listed;
}

static void
kill_kmsd(void)
{
	int st;

	assert_true(env.kmsd > 0);
	kill(env.kmsd, SIGKILL);
	while (waitpid(env.kmsd, &st, 0) < 0) {
	}
	env.kmsd = 0;
}

static int
env_int(const char *name, int def, int lo, int hi)
{
	const char *s = getenv(name);
	int v = s != NULL ? atoi(s) : def;

	return v < lo ? lo : v > hi ? hi : v;
}

static void
count_in_doubt(void)
{
	int i, j, g, n;

	for (i = 0; i < nthreads; i++) {
		struct cthread *t = &th[i];
		n = 0;
		for (j = 0; j < t->nkeys; j++) {
			struct ckey *k = &t->keys[j];
			n += k->enabled.has_alt + k->desc.has_alt +
			    k->policy.has_alt + k->tag[0].has_alt +
			    k->tag[1].has_alt;
			for (g = 0; g < k->ngrants; g++) {
				n += k->grants[g].live.has_alt;
			}
		}
		for (j = 0; j < t->naliases; j++) {
			n += t->aliases[j].target.has_alt;
		}
		in_flight_at_kill += n;
	}
}

static void
test_crash_every_acknowledged_mutation_survives_sigkill(void **state)
{
	struct timespec ts;
	uint64_t ops = 0, acked = 0;
	double t0 = tu_now_s();
	int cycle, i, scale, ms, nkeys;
	unsigned seed = (unsigned)time(NULL);

	if (getenv("KMS_CRASH_SEED") != NULL) {
		seed = (unsigned)atoi(getenv("KMS_CRASH_SEED"));
	}
	kills = env_int("KMS_CRASH_KILLS", 50, 1, 100000);
	scale = env_int("KMS_CRASH_SCALE", 1, 1, 8);
	nthreads = 2 + scale < MAX_THREADS ? 2 + scale : MAX_THREADS;
	keys_cap = 3 * scale + 1;
	aliases_cap = 2 * scale;
	cycle_ms = 150 * scale;
	srand(seed);
	printf("seed %u: %d kills, %d threads, up to %d keys and %d aliases "
	    "each, up to %d ms of work per cycle\n", seed, kills, nthreads,
	    keys_cap, aliases_cap, cycle_ms + 50);
	for (i = 0; i < nthreads; i++) {
		th[i].idx = i;
		th[i].seed = seed + (unsigned)i * 7919;
	}
	for (cycle = 0; cycle < kills; cycle++) {
		assert_int_equal(tu_kmsd_start(&env), 0);
		if (cycle > 0) {
			verify_all(0);
		}
		atomic_store(&stop, 0);
		for (i = 0; i < nthreads; i++) {
			assert_int_equal(pthread_create(&th[i].thr, NULL,
			    worker, &th[i]), 0);
		}
		/* A random moment: 20 ms to cycle_ms + 50 ms of work. */
		ms = 20 + rand() % (cycle_ms + 30);
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		kill_kmsd();
		atomic_store(&stop, 1);
		for (i = 0; i < nthreads; i++) {
			pthread_join(th[i].thr, NULL);
			if (th[i].err[0] != '\0') {
				fail_msg("cycle %d, thread %d: %s", cycle, i,
				    th[i].err);
			}
		}
		count_in_doubt();
	}
	assert_int_equal(tu_kmsd_start(&env), 0);
	nkeys = verify_all(1);
	for (i = 0; i < nthreads; i++) {
		ops += th[i].ops;
		acked += th[i].acked;
	}
	printf("%d kills in %.1f s: %llu calls, %llu acknowledged, %llu in "
	    "flight at a kill (%llu of them found applied), %zu ciphertexts "
	    "decrypted, %d keys, all as acknowledged\n", kills,
	    tu_now_s() - t0, (unsigned long long)ops,
	    (unsigned long long)acked, (unsigned long long)in_flight_at_kill,
	    (unsigned long long)adopted, ncts, nkeys);
	/* The test means something only if the workload did work. */
	assert_true(acked >= (uint64_t)kills * 5);
	assert_true(ncts > 0);
}

static int
setup(void **state)
{
	struct passwd *pw = getpwuid(getuid());

	if (pw != NULL) {
		snprintf(me, sizeof(me), "user:%s", pw->pw_name);
	} else {
		snprintf(me, sizeof(me), "uid:%u", (unsigned)getuid());
	}
	return tu_env_init(&env, NULL);
}

static int
teardown(void **state)
{
	size_t i;

	for (i = 0; i < ncts; i++) {
		free(cts[i].blob);
	}
	free(cts);
	return tu_env_destroy(&env) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_crash_every_acknowledged_mutation_survives_sigkill),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

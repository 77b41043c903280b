/*
 * authz.c — key policies and grants enforced per request (see authz.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "common/err.h"
#include "common/log.h"
#include "kmsd/authz/authz.h"
#include "kmsd/daemon/clock.h"
#include "kmsd/frontend/principal.h"
#include "kmsd/keys/keycache.h"
#include "policy/policy.h"

#define AZ_BUCKETS 4096		/* power of two */
#define AZ_MAX_ENTRIES 65536	/* compiled policies kept */

struct az_grant {
	char id[STORE_GRANT_ID_MAX + 1];
	char *grantee;
	char *retiring;
	struct policy_grant g;
	kms_context_pair *pairs;	/* backing for g.ec_* */
	char *strings;			/* backing for pairs */
};

struct az_entry {
	struct az_entry *next;
	uint8_t id[16];
	uint64_t row_version;
	struct policy *pol;
	int pol_shared;			/* a default policy: not ours to free */
	struct az_grant *grants;
	size_t ngrants;
};

/* Default policies compiled once per creator and shared by their keys. */
#define AZ_MAX_DEFAULTS 256
struct az_default {
	char creator[STORE_NAME_MAX];
	struct policy *pol;
};

struct authz {
	struct kmsd *d;
	pthread_mutex_t mu;
	struct az_default defaults[AZ_MAX_DEFAULTS];
	size_t ndefaults;
	struct az_entry *buckets[AZ_BUCKETS];
	size_t n;
};

static void
grant_fini(struct az_grant *g)
{
	free(g->grantee);
	free(g->retiring);
	free(g->pairs);
	free(g->strings);
}

static void
entry_free(struct az_entry *e)
{
	size_t i;

	if (e == NULL) {
		return;
	}
	if (!e->pol_shared) {
		policy_free(e->pol);
	}
	for (i = 0; i < e->ngrants; i++) {
		grant_fini(&e->grants[i]);
	}
	free(e->grants);
	free(e);
}

int
authz_create(struct kmsd *d, struct authz **out)
{
	struct authz *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		return KMS_ENOMEM;
	}
	a->d = d;
	pthread_mutex_init(&a->mu, NULL);
	*out = a;
	return 0;
}

void
authz_destroy(struct authz *a)
{
	size_t i;

	if (a == NULL) {
		return;
	}
	for (i = 0; i < AZ_BUCKETS; i++) {
		struct az_entry *e = a->buckets[i], *n;
		for (; e != NULL; e = n) {
			n = e->next;
			entry_free(e);
		}
	}
	for (i = 0; i < a->ndefaults; i++) {
		policy_free(a->defaults[i].pol);
	}
	pthread_mutex_destroy(&a->mu);
	free(a);
}

void
authz_token_hash(const char *token, uint8_t out[32])
{
	SHA256((const unsigned char *)token, strlen(token), out);
}

int
authz_principal_is(const struct principal *p, const char *s)
{
	int i;

	if (strcmp(s, "*") == 0 || strcmp(s, p->uid_name) == 0 ||
	    strcmp(s, p->name) == 0) {
		return 1;
	}
	for (i = 0; i < p->ngroups; i++) {
		if (strcmp(s, p->groups[i]) == 0) {
			return 1;
		}
	}
	return 0;
}

int
authz_is_admin(const struct kmsd *d, const struct principal *p)
{
	int i;

	for (i = 0; i < d->cfg.nadministrators; i++) {
		if (strcmp(d->cfg.administrators[i], "*") != 0 &&
		    authz_principal_is(p, d->cfg.administrators[i])) {
			return 1;
		}
	}
	return 0;
}

int
authz_default_document(const struct kmsd *d, const char *creator,
    char **doc)
{
	const char *who[CONFIG_MAX_ADMINS + 1];
	size_t n = 0, cap = 4096 + 256 * (CONFIG_MAX_ADMINS + 1);
	char *out;
	int i, r;

	if (creator != NULL && creator[0] != '\0') {
		who[n++] = creator;
	}
	for (i = 0; i < d->cfg.nadministrators; i++) {
		if (creator == NULL ||
		    strcmp(d->cfg.administrators[i], creator) != 0) {
			who[n++] = d->cfg.administrators[i];
		}
	}
	if ((out = malloc(cap)) == NULL) {
		return KMS_ENOMEM;
	}
	if ((r = policy_default_document(who, n, out, cap)) != 0) {
		free(out);
		return r;
	}
	*doc = out;
	return 0;
}

/* The stored policy, or the default one for the key's creator. */
static int
load_document(struct worker *w, const uint8_t id[16], char **doc)
{
	struct store_key *k;
	int r;

	r = w->st->ops->get_policy(w->st, id, doc, NULL);
	if (r != KMS_ENOTFOUND) {
		return r;
	}
	if ((k = malloc(sizeof(*k))) == NULL) {
		return KMS_ENOMEM;
	}
	if ((r = w->st->ops->get_key(w->st, id, k)) == 0) {
		r = authz_default_document(w->d, k->creator, doc);
	}
	free(k);
	return r;
}

int
authz_policy_document(struct worker *w, const struct key_info *ki,
    char **doc)
{
	return load_document(w, ki->id, doc);
}

/* Parse {"EncryptionContextEquals"|"EncryptionContextSubset": {...}}. */
static int
parse_constraints(struct az_grant *g, const char *text)
{
	json_t *j, *eq, *sub, *v;
	size_t n = 0, len = 0, i = 0, off = 0;
	const char *k;
	int r = KMS_EINTERNAL;

	if (text[0] == '\0') {
		return 0;
	}
	if ((j = json_loads(text, 0, NULL)) == NULL) {
		return KMS_EINTERNAL;
	}
	eq = json_object_get(j, "EncryptionContextEquals");
	sub = json_object_get(j, "EncryptionContextSubset");
	n = json_object_size(eq) + json_object_size(sub);
	json_object_foreach(eq, k, v) {
		len += strlen(k) + json_string_length(v) + 2;
	}
	json_object_foreach(sub, k, v) {
		len += strlen(k) + json_string_length(v) + 2;
	}
	if ((g->pairs = calloc(n + 1, sizeof(*g->pairs))) == NULL ||
	    (g->strings = malloc(len + 1)) == NULL) {
		r = KMS_ENOMEM;
		goto out;
	}
#define TAKE(obj) json_object_foreach(obj, k, v) {			\
		size_t kl = strlen(k), vl = json_string_length(v);	\
		memcpy(g->strings + off, k, kl + 1);			\
		g->pairs[i].key = g->strings + off;			\
		off += kl + 1;						\
		memcpy(g->strings + off, json_string_value(v), vl + 1);	\
		g->pairs[i].value = g->strings + off;			\
		off += vl + 1;						\
		i++;							\
	}
	if (eq != NULL) {
		g->g.has_equals = 1;
		g->g.ec_equals = g->pairs;
		g->g.n_equals = json_object_size(eq);
		TAKE(eq);
	}
	if (sub != NULL) {
		g->g.has_subset = 1;
		g->g.ec_subset = g->pairs + i;
		g->g.n_subset = json_object_size(sub);
		TAKE(sub);
	}
#undef TAKE
	r = 0;
 out:
	json_decref(j);
	return r;
}

static int
load_grant(struct az_grant *g, const struct store_grant *sg)
{
	json_t *ops, *v;
	size_t i;

	memset(g, 0, sizeof(*g));
	snprintf(g->id, sizeof(g->id), "%s", sg->grant_id);
	if ((g->grantee = strdup(sg->grantee)) == NULL ||
	    (g->retiring = strdup(sg->retiring)) == NULL) {
		return KMS_ENOMEM;
	}
	g->g.grantee = g->grantee;
	if ((ops = json_loads(sg->operations, 0, NULL)) == NULL) {
		return KMS_EINTERNAL;
	}
	json_array_foreach(ops, i, v) {
		if (json_is_string(v)) {
			g->g.operations |= policy_grant_op_parse(
			    json_string_value(v));
		}
	}
	json_decref(ops);
	return parse_constraints(g, sg->constraints);
}

/* The compiled default policy of creator, shared by its keys (compiled on
 * first use); *shared = 0 when AZ_MAX_DEFAULTS creators already have one:
 * the caller then owns it. */
static struct policy *
default_policy(struct worker *w, const char *creator, int *shared)
{
	struct authz *a = w->d->authz;
	struct policy *p = NULL;
	char *doc = NULL, err[POLICY_ERR_MAX];
	size_t i;

	*shared = 1;
	pthread_mutex_lock(&a->mu);
	for (i = 0; i < a->ndefaults; i++) {
		if (strcmp(a->defaults[i].creator, creator) == 0) {
			p = a->defaults[i].pol;
			break;
		}
	}
	pthread_mutex_unlock(&a->mu);
	if (p != NULL || authz_default_document(w->d, creator, &doc) != 0) {
		return p;
	}
	p = policy_compile(doc, strlen(doc), err, sizeof(err));
	free(doc);
	if (p == NULL) {
		return NULL;
	}
	pthread_mutex_lock(&a->mu);
	for (i = 0; i < a->ndefaults; i++) {
		if (strcmp(a->defaults[i].creator, creator) == 0) {
			policy_free(p);		/* another worker was first */
			p = a->defaults[i].pol;
			break;
		}
	}
	if (i == a->ndefaults && a->ndefaults < AZ_MAX_DEFAULTS) {
		snprintf(a->defaults[i].creator, sizeof(a->defaults[i].creator),
		    "%s", creator);
		a->defaults[i].pol = p;
		a->ndefaults++;
	} else if (i == a->ndefaults) {
		/* Too many creators to share theirs: this entry owns it. */
		*shared = 0;
	}
	pthread_mutex_unlock(&a->mu);
	return p;
}

/* The key's compiled policy: its own, or its creator's shared default. */
static int
load_policy(struct worker *w, const struct key_info *ki, struct az_entry *e)
{
	struct store_key *k;
	char *doc = NULL, err[POLICY_ERR_MAX];
	int r;

	r = w->st->ops->get_policy(w->st, ki->id, &doc, NULL);
	if (r == 0) {
		e->pol = policy_compile(doc, strlen(doc), err, sizeof(err));
		free(doc);
		if (e->pol == NULL) {
			/* Stored policies compiled when put: this is damage. */
			log_warn("key %s: stored policy does not "
			    "compile: %s", ki->id_str, err);
			return KMS_EINTERNAL;
		}
		return 0;
	}
	if (r != KMS_ENOTFOUND) {
		return r;
	}
	if ((k = malloc(sizeof(*k))) == NULL) {
		return KMS_ENOMEM;
	}
	if ((r = w->st->ops->get_key(w->st, ki->id, k)) == 0) {
		e->pol = default_policy(w, k->creator, &e->pol_shared);
		r = e->pol != NULL ? 0 : KMS_EINTERNAL;
	}
	free(k);
	return r;
}

/* Build an entry for key ki from the store (no lock held). */
static int
load_entry(struct worker *w, const struct key_info *ki, struct az_entry **out)
{
	struct store_grant *sg = NULL;
	struct az_entry *e;
	size_t n = 0, i;
	int r;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		return KMS_ENOMEM;
	}
	memcpy(e->id, ki->id, 16);
	e->row_version = ki->row_version;
	if ((r = load_policy(w, ki, e)) != 0) {
		goto out;
	}
	if ((r = w->st->ops->get_grants(w->st, ki->id, &sg, &n)) != 0) {
		goto out;
	}
	if (n > 0 && (e->grants = calloc(n, sizeof(*e->grants))) == NULL) {
		r = KMS_ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		e->ngrants++;
		if ((r = load_grant(&e->grants[i], &sg[i])) != 0) {
			goto out;
		}
	}
	*out = e;
	e = NULL;
	r = 0;
 out:
	free(sg);
	entry_free(e);
	return r;
}

static struct az_entry **
slot(struct authz *a, const uint8_t id[16])
{
	uint32_t h;
	struct az_entry **pp;

	memcpy(&h, id + 12, sizeof(h));
	for (pp = &a->buckets[h & (AZ_BUCKETS - 1)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (memcmp((*pp)->id, id, 16) == 0) {
			break;
		}
	}
	return pp;
}

/* Find a current entry for ki, loading it if needed; returns locked. */
static int
get_locked(struct worker *w, const struct key_info *ki, struct az_entry **ep)
{
	struct authz *a = w->d->authz;
	struct az_entry **pp, *fresh = NULL;
	int r;

	pthread_mutex_lock(&a->mu);
	pp = slot(a, ki->id);
	if (*pp != NULL && (*pp)->row_version == ki->row_version) {
		*ep = *pp;
		return 0;
	}
	pthread_mutex_unlock(&a->mu);
	if ((r = load_entry(w, ki, &fresh)) != 0) {
		return r;
	}
	pthread_mutex_lock(&a->mu);
	pp = slot(a, ki->id);
	if (*pp != NULL) {
		struct az_entry *old = *pp;
		if (old->row_version >= fresh->row_version) {
			entry_free(fresh);	/* someone was quicker */
			*ep = old;
			return 0;
		}
		fresh->next = old->next;
		entry_free(old);
	} else {
		if (a->n >= AZ_MAX_ENTRIES) {
			/* Bounded: drop this bucket's chain, rebuilt lazily. */
			struct az_entry *e = a->buckets[0], *n;
			for (; e != NULL; e = n, a->n--) {
				n = e->next;
				entry_free(e);
			}
			a->buckets[0] = NULL;
			pp = slot(a, ki->id);
		}
		a->n++;
	}
	*pp = fresh;
	*ep = fresh;
	return 0;
}

static void
fill_request(const struct kmsd *d, const struct principal *p,
    const struct key_info *ki, const struct authz_req *r,
    const char **groups, struct policy_request *q)
{
	int i;

	memset(q, 0, sizeof(*q));
	q->action = r->action;
	q->resource = ki != NULL ? ki->arn : NULL;
	q->principal = p->name;
	/* Network callers have no uid ((uid_t)-1): no uid:<n> names them. */
	q->uid = p->uid == (uid_t)-1 ? -1 : (int64_t)p->uid;
	q->user = strncmp(p->name, "user:", 5) == 0 ? p->name + 5 : NULL;
	q->cert = strncmp(p->name, "cert:", 5) == 0 ? p->name + 5 : NULL;
	q->access_key = strncmp(p->name, "access-key:", 11) == 0 ?
	    p->name + 11 : NULL;
	for (i = 0; i < p->ngroups; i++) {
		groups[i] = p->groups[i] + 6;	/* past "group:" */
	}
	q->groups = groups;
	q->ngroups = (size_t)p->ngroups;
	q->context = r->ctx;
	q->ncontext = r->nctx;
	q->request_alias = r->request_alias;
	q->grant_operations = r->grant_ops;
	q->ngrant_operations = r->ngrant_ops;
	q->grantee_principal = r->grantee;
	q->retiring_principal = r->retiring;
	if (ki != NULL) {
		q->key_spec = ki->key_spec;
		q->key_usage = ki->key_usage;
		q->key_origin = ki->origin;
	}
	q->encryption_algorithm = "SYMMETRIC_DEFAULT";
	q->current_time = now_ms() / 1000;
	q->source_ip = p->source[0] != '\0' && strcmp(p->source, "ipc") != 0 ?
	    p->source : NULL;
	q->bypass_lockout = r->bypass_lockout;
	(void)d;
}

/* Every grant token must name a live grant (any key). */
static int
check_tokens(struct worker *w, const struct authz_req *r, char *msg,
    size_t msglen)
{
	struct store_grant *g = NULL;
	uint8_t h[32];
	size_t i;
	int rc = 0;

	for (i = 0; i < r->ngrant_tokens; i++) {
		const char *t = r->grant_tokens[i];
		if (strncmp(t, "kmsgt1.", 7) != 0 || strlen(t) != 7 + 44) {
			snprintf(msg, msglen, "Grant token %zu is malformed",
			    i);
			return KMS_EINVALIDGRANTTOKEN;
		}
		if (g == NULL && (g = malloc(sizeof(*g))) == NULL) {
			return KMS_ENOMEM;
		}
		authz_token_hash(t, h);
		rc = w->st->ops->find_grant_by_token(w->st, h, g);
		if (rc == KMS_ENOTFOUND) {
			snprintf(msg, msglen, "Grant token %zu is not valid "
			    "(unknown or retired grant)", i);
			rc = KMS_EINVALIDGRANTTOKEN;
		}
		if (rc != 0) {
			break;
		}
	}
	free(g);
	return rc;
}

/* Operations AWS lets the configured administrators keep, always. */
static int
admin_keeps(const char *action)
{
	return strcmp(action, "DescribeKey") == 0 ||
	    strcmp(action, "GetKeyPolicy") == 0 ||
	    strcmp(action, "PutKeyPolicy") == 0;
}

int
authz_check(struct worker *w, const struct principal *p,
    const struct key_info *ki, const struct authz_req *r, char *grant_id,
    size_t grant_id_len, char *msg, size_t msglen)
{
	const char *groups[PRINCIPAL_GROUPS_MAX];
	struct policy_request q;
	struct az_entry *e;
	enum policy_decision dec;
	size_t i;
	int rc;

	if (grant_id != NULL && grant_id_len > 0) {
		grant_id[0] = '\0';
	}
	if ((rc = check_tokens(w, r, msg, msglen)) != 0) {
		return rc;
	}
	fill_request(w->d, p, ki, r, groups, &q);
	if ((rc = get_locked(w, ki, &e)) != 0) {
		snprintf(msg, msglen, "Cannot read the key's policy");
		return rc;
	}
	dec = policy_evaluate(e->pol, &q);
	if (dec == POLICY_DENY_IMPLICIT) {
		for (i = 0; i < e->ngrants; i++) {
			if (authz_principal_is(p, e->grants[i].grantee) &&
			    policy_grant_allows(&e->grants[i].g, &q)) {
				dec = POLICY_ALLOW;
				if (grant_id != NULL) {
					snprintf(grant_id, grant_id_len, "%s",
					    e->grants[i].id);
				}
				break;
			}
		}
	}
	pthread_mutex_unlock(&w->d->authz->mu);
	if (dec != POLICY_ALLOW && admin_keeps(r->action) &&
	    authz_is_admin(w->d, p)) {
		dec = POLICY_ALLOW;	/* no key is ever lost to a policy */
	}
	if (dec == POLICY_ALLOW) {
		return 0;
	}
	snprintf(msg, msglen, "User: %s is not authorized to perform: "
	    "kms:%s on resource: %s because %s", p->name, r->action, ki->arn,
	    dec == POLICY_DENY_EXPLICIT ? "an explicit deny in the key "
	    "policy applies" : "no key policy statement or grant allows it");
	return KMS_EACCESSDENIED;
}

int
authz_lockout_safe(struct worker *w, const struct principal *p,
    const struct key_info *ki, const char *doc, size_t len)
{
	const char *groups[PRINCIPAL_GROUPS_MAX];
	struct authz_req r = { 0 };
	struct policy_request q;
	struct policy *pol;
	char err[POLICY_ERR_MAX];
	int ok;

	if ((pol = policy_compile(doc, len, err, sizeof(err))) == NULL) {
		return 0;
	}
	r.action = "PutKeyPolicy";
	r.bypass_lockout = -1;
	fill_request(w->d, p, ki, &r, groups, &q);
	ok = policy_evaluate(pol, &q) == POLICY_ALLOW;
	policy_free(pol);
	return ok;
}

int
authz_grant_narrower(struct worker *w, const struct key_info *ki,
    const char *parent_id, const struct policy_grant *child)
{
	struct az_entry *e;
	size_t i;
	int ok = 0;

	if (get_locked(w, ki, &e) != 0) {
		return 0;
	}
	for (i = 0; i < e->ngrants; i++) {
		if (strcmp(e->grants[i].id, parent_id) == 0) {
			ok = policy_grant_narrower(child, &e->grants[i].g);
			break;
		}
	}
	pthread_mutex_unlock(&w->d->authz->mu);
	return ok;
}

/*
 * policy_eval.c — deciding a request against a compiled key policy and
 * against grants; the default key policy.
 *
 * Evaluation never allocates and never writes to the policy: request
 * values are read through a small on-stack view (struct kval) that parses
 * numbers, dates and addresses at most once per value.  Decision order is
 * IAM's: any matching Deny wins, else any matching Allow, else implicit
 * deny.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "policy/policy_int.h"

/* One request value, with lazily parsed forms. */
struct kval {
	const char *s;			/* NULL until needed (uid, time) */
	int64_t lazy;			/* uid or time for s */
	int lazy_kind;			/* 0 none, 1 uid, 2 time */
	int num_state;			/* 0 unparsed, 1 ok, -1 not a number */
	double num;
	int date_state;
	int64_t date;
	int ip_state;
	struct cidr ip;
	char buf[40];
};

static size_t
ec_count(const struct condition *c, const struct policy_request *r)
{
	size_t i, n = 0;

	for (i = 0; i < r->ncontext; i++) {
		if (ascii_casecmp(r->context[i].key, c->ctxkey) == 0) {
			n++;
		}
	}
	return n;
}

static const char *
ec_value(const struct condition *c, const struct policy_request *r,
    size_t idx)
{
	size_t i;

	for (i = 0; i < r->ncontext; i++) {
		if (ascii_casecmp(r->context[i].key, c->ctxkey) == 0 &&
		    idx-- == 0) {
			return r->context[i].value;
		}
	}
	return NULL;
}

static size_t
present(const void *p)
{
	return p != NULL ? 1 : 0;
}

/* How many values the request holds for the condition's key (0: missing). */
static size_t
key_count(const struct condition *c, const struct policy_request *r)
{
	switch (c->key) {
	case CK_EC:
		return ec_count(c, r);
	case CK_EC_KEYS:
		return r->context != NULL ? r->ncontext : 0;
	case CK_CALLER_PRINCIPAL:
		return present(r->principal);
	case CK_CALLER_UID:
		return r->uid >= 0 ? 1 : 0;
	case CK_CALLER_GROUPS:
		return r->groups != NULL ? r->ngroups : 0;
	case CK_REQUEST_ALIAS:
		return present(r->request_alias);
	case CK_GRANT_OPS:
		return r->grant_operations != NULL ? r->ngrant_operations : 0;
	case CK_GRANTEE:
		return present(r->grantee_principal);
	case CK_RETIRING:
		return present(r->retiring_principal);
	case CK_KEY_SPEC:
		return present(r->key_spec);
	case CK_KEY_USAGE:
		return present(r->key_usage);
	case CK_KEY_ORIGIN:
		return present(r->key_origin);
	case CK_ENC_ALG:
		return present(r->encryption_algorithm);
	case CK_CURRENT_TIME:
		return 1;
	case CK_SOURCE_IP:
		return present(r->source_ip);
	case CK_BYPASS:
		return r->bypass_lockout >= 0 ? 1 : 0;
	}
	return 0;
}

static void
key_value(const struct condition *c, const struct policy_request *r,
    size_t i, struct kval *k)
{
	memset(k, 0, offsetof(struct kval, buf));
	switch (c->key) {
	case CK_EC:
		k->s = ec_value(c, r, i);
		break;
	case CK_EC_KEYS:
		k->s = r->context[i].key;
		break;
	case CK_CALLER_PRINCIPAL:
		k->s = r->principal;
		break;
	case CK_CALLER_UID:
		k->lazy = r->uid;
		k->lazy_kind = 1;
		k->num = (double)r->uid;
		k->num_state = 1;
		break;
	case CK_CALLER_GROUPS:
		k->s = r->groups[i];
		break;
	case CK_REQUEST_ALIAS:
		k->s = r->request_alias;
		break;
	case CK_GRANT_OPS:
		k->s = r->grant_operations[i];
		break;
	case CK_GRANTEE:
		k->s = r->grantee_principal;
		break;
	case CK_RETIRING:
		k->s = r->retiring_principal;
		break;
	case CK_KEY_SPEC:
		k->s = r->key_spec;
		break;
	case CK_KEY_USAGE:
		k->s = r->key_usage;
		break;
	case CK_KEY_ORIGIN:
		k->s = r->key_origin;
		break;
	case CK_ENC_ALG:
		k->s = r->encryption_algorithm;
		break;
	case CK_CURRENT_TIME:
		k->lazy = r->current_time;
		k->lazy_kind = 2;
		k->date = r->current_time;
		k->date_state = 1;
		k->num = (double)r->current_time;
		k->num_state = 1;
		break;
	case CK_SOURCE_IP:
		k->s = r->source_ip;
		break;
	case CK_BYPASS:
		k->s = r->bypass_lockout ? "true" : "false";
		break;
	}
}

static const char *
kstr(struct kval *k)
{
	if (k->s == NULL) {
		if (k->lazy_kind == 1) {
			snprintf(k->buf, sizeof(k->buf), "%lld",
			    (long long)k->lazy);
		} else if (k->lazy_kind == 2) {
			date_format(k->lazy, k->buf, sizeof(k->buf));
		} else {
			k->buf[0] = '\0';
		}
		k->s = k->buf;
	}
	return k->s;
}

static int
knum(struct kval *k, double *d)
{
	if (k->num_state == 0) {
		k->num_state = num_parse(kstr(k), &k->num) == 0 ? 1 : -1;
	}
	*d = k->num;
	return k->num_state == 1;
}

static int
kdate(struct kval *k, int64_t *t)
{
	if (k->date_state == 0) {
		k->date_state = date_parse(kstr(k), &k->date) == 0 ? 1 : -1;
	}
	*t = k->date;
	return k->date_state == 1;
}

static int
kip(struct kval *k, const struct cidr **ip)
{
	if (k->ip_state == 0) {
		k->ip_state = ip_parse(kstr(k), &k->ip) == 0 ? 1 : -1;
	}
	*ip = &k->ip;
	return k->ip_state == 1;
}

/* The positive comparison of one request value with one policy value. */
static int
value_matches(const struct condition *c, const struct cond_value *v,
    struct kval *k)
{
	const struct cidr *ip;
	int64_t t;
	double d;

	switch (c->base) {
	case CB_STR_EQ:
		return c->icase ? ascii_casecmp(kstr(k), v->s) == 0 :
		    strcmp(kstr(k), v->s) == 0;
	case CB_STR_LIKE:
		return glob_match(v->s, kstr(k), 0);
	case CB_NUM_EQ:
		return knum(k, &d) && d == v->num;
	case CB_NUM_LT:
		return knum(k, &d) && d < v->num;
	case CB_NUM_LE:
		return knum(k, &d) && d <= v->num;
	case CB_NUM_GT:
		return knum(k, &d) && d > v->num;
	case CB_NUM_GE:
		return knum(k, &d) && d >= v->num;
	case CB_DATE_EQ:
		return kdate(k, &t) && t == v->date;
	case CB_DATE_LT:
		return kdate(k, &t) && t < v->date;
	case CB_DATE_LE:
		return kdate(k, &t) && t <= v->date;
	case CB_DATE_GT:
		return kdate(k, &t) && t > v->date;
	case CB_DATE_GE:
		return kdate(k, &t) && t >= v->date;
	case CB_BOOL:
		if (ascii_casecmp(kstr(k), "true") == 0) {
			return v->boolean == 1;
		}
		if (ascii_casecmp(kstr(k), "false") == 0) {
			return v->boolean == 0;
		}
		return 0;
	case CB_IP:
		return kip(k, &ip) && cidr_contains(&v->ip, ip);
	case CB_NULL:
		break;
	}
	return 0;
}

/* Values are ORed; a negated operator wants none of them to match. */
static int
request_value_satisfies(const struct condition *c, struct kval *k)
{
	size_t j;

	for (j = 0; j < c->nvals; j++) {
		if (value_matches(c, &c->vals[j], k)) {
			return !c->negate;
		}
	}
	return c->negate;
}

int
condition_holds(const struct condition *c, const struct policy_request *r)
{
	struct kval k;
	size_t i, n = key_count(c, r);
	int any;

	if (c->base == CB_NULL) {
		/* "true": the key must be absent; "false": present. */
		for (i = 0; i < c->nvals; i++) {
			if (c->vals[i].boolean == (n == 0)) {
				return 1;
			}
		}
		return 0;
	}
	if (n == 0) {
		if (c->ifexists || c->set == CS_ALL) {
			return 1;
		}
		if (c->set == CS_ANY) {
			return 0;
		}
		/* IAM: a missing key matches no value. */
		return c->negate;
	}
	if (c->set == CS_ALL) {
		for (i = 0; i < n; i++) {
			key_value(c, r, i, &k);
			if (!request_value_satisfies(c, &k)) {
				return 0;
			}
		}
		return 1;
	}
	if (c->set == CS_ANY) {
		for (i = 0; i < n; i++) {
			key_value(c, r, i, &k);
			if (request_value_satisfies(c, &k)) {
				return 1;
			}
		}
		return 0;
	}
	/* Plain operator: does any request value match any policy value? */
	for (i = 0, any = 0; i < n && !any; i++) {
		size_t j;

		key_value(c, r, i, &k);
		for (j = 0; j < c->nvals && !any; j++) {
			any = value_matches(c, &c->vals[j], &k);
		}
	}
	return c->negate ? !any : any;
}

int
principal_kind_matches(enum principal_kind kind, const char *name,
    int64_t uid, const struct policy_request *r)
{
	size_t i;

	switch (kind) {
	case PK_ANY:
		return 1;
	case PK_UID:
		return r->uid >= 0 && r->uid == uid;
	case PK_USER:
		return r->user != NULL && strcmp(r->user, name) == 0;
	case PK_GROUP:
		for (i = 0; r->groups != NULL && i < r->ngroups; i++) {
			if (r->groups[i] != NULL &&
			    strcmp(r->groups[i], name) == 0) {
				return 1;
			}
		}
		return 0;
	case PK_CERT:
		return r->cert != NULL && strcmp(r->cert, name) == 0;
	case PK_ACCESS_KEY:
		return r->access_key != NULL &&
		    strcmp(r->access_key, name) == 0;
	}
	return 0;
}

int
policy_principal_matches(const char *principal,
    const struct policy_request *r)
{
	enum principal_kind kind;
	const char *name;
	int64_t uid;

	if (r == NULL || principal_parse(principal, &kind, &name, &uid) != 0) {
		return 0;
	}
	return principal_kind_matches(kind, name, uid, r);
}

static int
statement_applies(const struct statement *st, int action,
    const struct policy_request *r)
{
	size_t i;
	int m;

	m = (int)((st->actions.w[action / 64] >> (action % 64)) & 1);
	if (m == st->not_action) {
		return 0;
	}
	for (i = 0, m = 0; i < st->nprincipals && !m; i++) {
		const struct principal *p = &st->principals[i];

		m = principal_kind_matches(p->kind, p->name, p->uid, r);
	}
	if (m == st->not_principal) {
		return 0;
	}
	m = st->any_resource;
	for (i = 0; i < st->nresources && !m && r->resource != NULL; i++) {
		m = glob_match(st->resources[i], r->resource, 0);
	}
	if (m == st->not_resource) {
		return 0;
	}
	for (i = 0; i < st->nconds; i++) {
		if (!condition_holds(&st->conds[i], r)) {
			return 0;
		}
	}
	return 1;
}

enum policy_decision
policy_evaluate(const struct policy *p, const struct policy_request *r)
{
	size_t i;
	int action, allowed = 0;

	if (p == NULL || r == NULL || (action = action_index(r->action)) < 0) {
		return POLICY_DENY_IMPLICIT;
	}
	for (i = 0; i < p->n; i++) {
		const struct statement *st = &p->st[i];

		if (!st->deny && allowed) {
			continue;	/* only a Deny can change the answer */
		}
		if (!statement_applies(st, action, r)) {
			continue;
		}
		if (st->deny) {
			return POLICY_DENY_EXPLICIT;
		}
		allowed = 1;
	}
	return allowed ? POLICY_ALLOW : POLICY_DENY_IMPLICIT;
}

/* Grant constraints: keys case-insensitive, values case-sensitive (AWS). */
static int
pair_in(const kms_context_pair *p, const kms_context_pair *set, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (ascii_casecmp(p->key, set[i].key) == 0 &&
		    strcmp(p->value, set[i].value) == 0) {
			return 1;
		}
	}
	return 0;
}

static int
ctx_subset(const kms_context_pair *need, size_t nn,
    const kms_context_pair *have, size_t nh)
{
	size_t i;

	for (i = 0; i < nn; i++) {
		if (!pair_in(&need[i], have, nh)) {
			return 0;
		}
	}
	return 1;
}

static int
ctx_equals(const kms_context_pair *a, size_t na, const kms_context_pair *b,
    size_t nb)
{
	return na == nb && ctx_subset(a, na, b, nb) && ctx_subset(b, nb, a, na);
}

int
policy_grant_allows(const struct policy_grant *g,
    const struct policy_request *r)
{
	enum principal_kind kind;
	const char *name;
	uint32_t bit;
	int64_t uid;
	int action;

	if (g == NULL || r == NULL || (action = action_index(r->action)) < 0) {
		return 0;
	}
	bit = action_grant_bit((size_t)action);
	if (bit == 0 || (g->operations & bit) == 0) {
		return 0;
	}
	/* A grant names one principal; "*" is not a grantee. */
	if (principal_parse(g->grantee, &kind, &name, &uid) != 0 ||
	    kind == PK_ANY || !principal_kind_matches(kind, name, uid, r)) {
		return 0;
	}
	if (!action_takes_context((size_t)action)) {
		return 1;	/* AWS applies constraints only to these */
	}
	if (g->has_equals && !ctx_equals(g->ec_equals, g->n_equals,
	    r->context, r->ncontext)) {
		return 0;
	}
	if (g->has_subset && !ctx_subset(g->ec_subset, g->n_subset,
	    r->context, r->ncontext)) {
		return 0;
	}
	return 1;
}

#define CONTEXT_OPS (POLICY_GOP_DECRYPT | POLICY_GOP_ENCRYPT | \
	POLICY_GOP_GENERATE_DATA_KEY | \
	POLICY_GOP_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT | \
	POLICY_GOP_REENCRYPT_FROM | POLICY_GOP_REENCRYPT_TO | \
	POLICY_GOP_GENERATE_DATA_KEY_PAIR | \
	POLICY_GOP_GENERATE_DATA_KEY_PAIR_WITHOUT_PLAINTEXT)

int
policy_grant_narrower(const struct policy_grant *child,
    const struct policy_grant *parent)
{
	int ok;

	if (child == NULL || parent == NULL ||
	    (child->operations & ~parent->operations) != 0) {
		return 0;
	}
	/* Constraints bind only operations that take a context. */
	if ((child->operations & CONTEXT_OPS) == 0) {
		return 1;
	}
	if (parent->has_equals && (!child->has_equals ||
	    !ctx_equals(child->ec_equals, child->n_equals, parent->ec_equals,
	    parent->n_equals))) {
		return 0;
	}
	if (parent->has_subset) {
		ok = (child->has_equals && ctx_subset(parent->ec_subset,
		    parent->n_subset, child->ec_equals, child->n_equals)) ||
		    (child->has_subset && ctx_subset(parent->ec_subset,
		    parent->n_subset, child->ec_subset, child->n_subset));
		if (!ok) {
			return 0;
		}
	}
	return 1;
}

int
policy_default_document(const char *const *principals, size_t n, char *out,
    size_t outsz)
{
	json_t *doc = NULL, *list = NULL;
	char *text = NULL;
	size_t i, j, len;
	int r = KMS_EINTERNAL;

	if (principals == NULL || n == 0 || n > POLICY_MAX_VALUES ||
	    out == NULL) {
		return KMS_EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (!policy_principal_valid(principals[i]) ||
		    strcmp(principals[i], "*") == 0) {
			return KMS_EINVAL;
		}
	}
	if ((list = json_array()) == NULL) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++) {
			if (strcmp(principals[i], principals[j]) == 0) {
				break;
			}
		}
		if (j == i && json_array_append_new(list,
		    json_string(principals[i])) != 0) {
			goto out;
		}
	}
	doc = json_pack("{s:s, s:s, s:[{s:s, s:s, s:{s:O}, s:s, s:s}]}",
	    "Version", "2012-10-17", "Id", POLICY_DEFAULT_ID, "Statement",
	    "Sid", POLICY_DEFAULT_SID, "Effect", "Allow", "Principal", "KMS",
	    list, "Action", "kms:*", "Resource", "*");
	if (doc == NULL || (text = json_dumps(doc, JSON_INDENT(2) |
	    JSON_PRESERVE_ORDER)) == NULL) {
		goto out;
	}
	if ((len = strlen(text)) + 1 > outsz) {
		r = KMS_ELIMITEXCEEDED;
		goto out;
	}
	memcpy(out, text, len + 1);
	r = 0;
 out:
	free(text);
	json_decref(doc);
	json_decref(list);
	return r;
}

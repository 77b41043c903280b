/*
 * op_grants.c — CreateGrant, ListGrants, ListRetirableGrants, RetireGrant,
 * RevokeGrant.
 *
 * A grant works at once (the store is the one source of truth), so a
 * GrantToken needs no propagation; it is still checked on every use and a
 * forged, malformed or retired one is refused.  Tokens are 32 random bytes
 * from the HSM; only their SHA-256 is stored.  A grantee that holds
 * CreateGrant through a grant can pass on only what it holds, with
 * constraints at least as tight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/b64.h"
#include "common/blob.h"
#include "common/err.h"
#include "common/secmem.h"
#include "kmsd/authz/authz.h"
#include "kmsd/daemon/clock.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/ops/op.h"
#include "policy/policy.h"

#define GRANT_NAME_MAX 256
#define GRANT_LIST_DEFAULT 50
#define GRANT_LIST_MAX 100		/* AWS ListGrants page at most */
#define GRANT_OPS_MAX 32
#define CTX_MAX_PAIRS_GRANT 64	/* pairs in one grant constraint */

/* Operations: a non-empty list of AWS grant operation names. */
static int
parse_ops(struct opctx *c, json_t *ops, uint32_t *mask, const char **names,
    size_t *n)
{
	json_t *v;
	size_t i;

	*mask = 0;
	*n = 0;
	if (ops != NULL && !json_is_null(ops) && !json_is_array(ops)) {
		return op_fail(c, KMS_ESERIALIZATION, "Operations must be a "
		    "list of grant operations");
	}
	if (!json_is_array(ops) || json_array_size(ops) == 0 ||
	    json_array_size(ops) > GRANT_OPS_MAX) {
		return op_fail(c, KMS_EVALIDATION, "Operations must be a "
		    "non-empty list of grant operations");
	}
	json_array_foreach(ops, i, v) {
		uint32_t bit = json_is_string(v) ?
		    policy_grant_op_parse(json_string_value(v)) : 0;
		if (bit == 0) {
			return op_fail(c, KMS_EVALIDATION, "1 validation error "
			    "detected: Value '%.64s' at 'operations.%zu.member' "
			    "failed to satisfy constraint: Member must satisfy "
			    "enum value set", json_is_string(v) ?
			    json_string_value(v) : "", i + 1);
		}
		*mask |= bit;
		names[(*n)++] = json_string_value(v);
	}
	return 0;
}

/* Constraints: at most one of EncryptionContextEquals / ...Subset. */
static int
parse_constraints(struct opctx *c, json_t *cons, struct policy_grant *g,
    kms_context_pair *pairs, char *text, size_t textsz)
{
	json_t *eq, *sub, *which, *v;
	const char *k;
	size_t n = 0;

	text[0] = '\0';
	if (cons == NULL || json_is_null(cons)) {
		return 0;
	}
	if (!json_is_object(cons)) {
		return op_fail(c, KMS_ESERIALIZATION, "Constraints must be an "
		    "object");
	}
	eq = json_object_get(cons, "EncryptionContextEquals");
	sub = json_object_get(cons, "EncryptionContextSubset");
	if (json_object_size(cons) != (size_t)((eq != NULL) + (sub != NULL)) ||
	    (eq != NULL && sub != NULL)) {
		return op_fail(c, KMS_EVALIDATION, "Constraints takes one of "
		    "EncryptionContextEquals or EncryptionContextSubset");
	}
	which = eq != NULL ? eq : sub;
	if (which == NULL) {
		return 0;
	}
	if (!json_is_object(which)) {
		return op_fail(c, KMS_ESERIALIZATION, "A constraint is an "
		    "object of strings");
	}
	if (json_object_size(which) > CTX_MAX_PAIRS_GRANT) {
		return op_fail(c, KMS_EVALIDATION, "A constraint is an object "
		    "of at most %d string pairs", CTX_MAX_PAIRS_GRANT);
	}
	json_object_foreach(which, k, v) {
		if (!json_is_string(v)) {
			return op_fail(c, KMS_ESERIALIZATION, "Constraint "
			    "values must be strings");
		}
		if (k[0] == '\0') {
			return op_fail(c, KMS_EVALIDATION, "Constraint values "
			    "must be strings and keys non-empty");
		}
		pairs[n].key = k;
		pairs[n].value = json_string_value(v);
		n++;
	}
	if (eq != NULL) {
		g->has_equals = 1;
		g->ec_equals = pairs;
		g->n_equals = n;
	} else {
		g->has_subset = 1;
		g->ec_subset = pairs;
		g->n_subset = n;
	}
	{
		char *s = json_dumps(cons, JSON_COMPACT | JSON_SORT_KEYS);
		if (s == NULL || strlen(s) >= textsz) {
			free(s);
			return op_fail(c, KMS_EVALIDATION, "Constraints too "
			    "large");
		}
		snprintf(text, textsz, "%s", s);
		free(s);
	}
	return 0;
}

static int
principal_field(struct opctx *c, const char *name, int required,
    const char **out)
{
	int r;

	/* Bytes: the store's field holds STORE_NAME_MAX - 1 of them, and a
	 * principal cut short would name someone else. */
	if ((r = req_string_bytes(c, name, required, 1, STORE_NAME_MAX - 1,
	    out)) != 0) {
		return r;
	}
	if (*out != NULL && (strcmp(*out, "*") == 0 ||
	    !policy_principal_valid(*out))) {
		return op_fail(c, KMS_EVALIDATION, "%s %s is not a principal "
		    "(uid:<n>, user:<name>, group:<name>, cert:<CN>, "
		    "access-key:<id>)", name, *out);
	}
	return 0;
}

static int
same_grant(const struct store_grant *a, const struct store_grant *b)
{
	return strcmp(a->grantee, b->grantee) == 0 &&
	    strcmp(a->retiring, b->retiring) == 0 &&
	    strcmp(a->operations, b->operations) == 0 &&
	    strcmp(a->constraints, b->constraints) == 0;
}

static int
new_token(struct opctx *c, char *token, size_t len, uint8_t hash[32])
{
	uint8_t rnd[32];
	char b64[B64_ENCODED_LEN(32) + 1];
	int r;

	if ((r = hsm_random(c->w->hs, rnd, sizeof(rnd))) != 0 ||
	    (r = b64_encode(rnd, sizeof(rnd), b64, sizeof(b64))) != 0) {
		r = op_fail(c, r, "Cannot make a grant token");
		goto out;
	}
	snprintf(token, len, "kmsgt1.%s", b64);
	authz_token_hash(token, hash);
	r = 0;
 out:
	/* The token is a bearer secret: leave none of it on the stack. */
	secure_wipe(rnd, sizeof(rnd));
	secure_wipe(b64, sizeof(b64));
	return r;
}

int
op_create_grant(struct opctx *c, json_t **resp)
{
	const char *grantee, *retiring, *name, *opnames[GRANT_OPS_MAX];
	kms_context_pair pairs[CTX_MAX_PAIRS_GRANT];
	struct store_grant *g = NULL, *all = NULL;
	struct policy_grant pg;
	struct authz_req ar;
	struct key_info ki;
	char token[64] = "";
	uint8_t rnd[32];
	json_t *ops;
	size_t nops, nall = 0, i;
	int r, found = -1;

	memset(&pg, 0, sizeof(pg));
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	if ((r = req_grant_tokens(c)) != 0 || (r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = principal_field(c, "GranteePrincipal", 1, &grantee)) != 0 ||
	    (r = principal_field(c, "RetiringPrincipal", 0, &retiring)) != 0 ||
	    (r = req_string(c, "Name", 0, 1, GRANT_NAME_MAX, &name)) != 0) {
		goto out;
	}
	if (name != NULL && strspn(name, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:/_-") != strlen(name)) {
		r = op_fail(c, KMS_EVALIDATION, "Name must match "
		    "^[a-zA-Z0-9:/_-]+$");
		goto out;
	}
	if (ki.state == KEY_PENDING_DELETION) {
		r = op_state_error(c, KMS_EINVALIDSTATE, &ki);
		goto out;
	}
	ops = json_object_get(c->req, "Operations");
	if ((r = parse_ops(c, ops, &pg.operations, opnames, &nops)) != 0 ||
	    (r = parse_constraints(c, json_object_get(c->req, "Constraints"),
	    &pg, pairs, g->constraints, sizeof(g->constraints))) != 0) {
		goto out;
	}
	pg.grantee = grantee;
	/* Authorise, with the grant's own condition keys visible. */
	memset(&ar, 0, sizeof(ar));
	ar.action = "CreateGrant";
	ar.bypass_lockout = -1;
	ar.grant_ops = opnames;
	ar.ngrant_ops = nops;
	ar.grantee = grantee;
	ar.retiring = retiring;
	ar.grant_tokens = c->tokens;
	ar.ngrant_tokens = c->ntokens;
	if ((r = authz_check(c->w, c->p, &ki, &ar, c->grant_id,
	    sizeof(c->grant_id), c->msg, sizeof(c->msg))) != 0) {
		goto out;
	}
	if (c->grant_id[0] != '\0' &&
	    !authz_grant_narrower(c->w, &ki, c->grant_id, &pg)) {
		r = op_fail(c, KMS_EACCESSDENIED, "User: %s is not authorized "
		    "to perform: kms:CreateGrant on resource: %s because a "
		    "grant can pass on only what it holds, with constraints "
		    "at least as tight", c->p->name, ki.arn);
		goto out;
	}
	{
		json_t *o = json_array();
		char *s;
		for (i = 0; i < nops; i++) {
			json_array_append_new(o, json_string(opnames[i]));
		}
		s = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		if (s == NULL || strlen(s) >= sizeof(g->operations)) {
			free(s);
			r = op_fail(c, KMS_EVALIDATION, "Operations too long");
			goto out;
		}
		snprintf(g->operations, sizeof(g->operations), "%s", s);
		free(s);
	}
	memcpy(g->key_id, ki.id, 16);
	snprintf(g->name, sizeof(g->name), "%s", name ? name : "");
	snprintf(g->grantee, sizeof(g->grantee), "%s", grantee);
	snprintf(g->retiring, sizeof(g->retiring), "%s",
	    retiring ? retiring : "");
	snprintf(g->issuer, sizeof(g->issuer), "%s", c->p->name);
	g->creation_ms = now_ms();
	/* Idempotent: the same request with the same Name is the same grant. */
	if (name != NULL && (r = c->w->st->ops->get_grants(c->w->st, ki.id,
	    &all, &nall)) == 0) {
		for (i = 0; i < nall; i++) {
			if (strcmp(all[i].name, name) == 0 &&
			    same_grant(&all[i], g)) {
				found = (int)i;
				break;
			}
		}
	}
	if ((r = new_token(c, token, sizeof(token), g->token_hash)) != 0) {
		goto out;
	}
	if (found >= 0) {
		/* AWS returns the same GrantId and a new token; kmsd keeps one
		 * token per grant, so the new token replaces the old. */
		snprintf(g->grant_id, sizeof(g->grant_id), "%s",
		    all[found].grant_id);
		g->creation_ms = all[found].creation_ms;
		if ((r = c->w->st->ops->delete_grant(c->w->st, ki.id,
		    g->grant_id)) != 0) {
			r = op_fail(c, r, "The key store failed");
			goto out;
		}
	} else {
		if ((r = hsm_random(c->w->hs, rnd, sizeof(rnd))) != 0) {
			r = op_fail(c, r, "The HSM is unavailable");
			goto out;
		}
		for (i = 0; i < 32; i++) {
			snprintf(g->grant_id + 2 * i, 3, "%02x", rnd[i]);
		}
	}
	if ((r = c->w->st->ops->create_grant(c->w->st, g)) != 0) {
		r = op_fail(c, r, "The key store failed");
		goto out;
	}
	(void)keycache_refresh(c->w, ki.id);
	*resp = json_pack("{s:s, s:s}", "GrantId", g->grant_id, "GrantToken",
	    token);
	r = *resp != NULL ? 0 : op_fail(c, KMS_EINTERNAL, "out of memory");
 out:
	secure_wipe(token, sizeof(token));
	free(all);
	free(g);
	return r;
}

static json_t *
grant_json(const struct kmsd *d, const struct store_grant *g)
{
	char id[37], arn[KEY_ARN_MAX];
	json_t *o, *ops, *cons = NULL;

	blob_uuid_format(g->key_id, id);
	key_arn(d, id, arn, sizeof(arn));
	ops = json_loads(g->operations, 0, NULL);
	if (g->constraints[0] != '\0') {
		cons = json_loads(g->constraints, 0, NULL);
	}
	o = json_pack("{s:s, s:s, s:f, s:s, s:s, s:o}", "KeyId", arn,
	    "GrantId", g->grant_id, "CreationDate",
	    (double)g->creation_ms / 1000.0, "GranteePrincipal", g->grantee,
	    "IssuingAccount", g->issuer, "Operations",
	    ops != NULL ? ops : json_array());
	if (o == NULL) {
		json_decref(cons);
		return NULL;
	}
	if (g->name[0] != '\0') {
		json_object_set_new(o, "Name", json_string(g->name));
	}
	if (g->retiring[0] != '\0') {
		json_object_set_new(o, "RetiringPrincipal",
		    json_string(g->retiring));
	}
	if (cons != NULL) {
		json_object_set_new(o, "Constraints", cons);
	}
	return o;
}

/* Page a grant array by grant id marker; filters may be NULL. */
static int
reply_grants(struct opctx *c, struct store_grant *gs, size_t n,
    const char *marker, long long limit, const char *grant_id,
    const char *grantee, json_t **resp)
{
	json_t *arr = json_array();
	size_t i, shown = 0;
	int past = marker == NULL, more = 0;
	const char *last = NULL;

	for (i = 0; arr != NULL && i < n; i++) {
		if (!past) {
			past = strcmp(gs[i].grant_id, marker) == 0;
			continue;
		}
		if ((grant_id != NULL && strcmp(gs[i].grant_id,
		    grant_id) != 0) || (grantee != NULL &&
		    strcmp(gs[i].grantee, grantee) != 0)) {
			continue;
		}
		if (shown == (size_t)limit) {
			more = 1;
			break;
		}
		json_array_append_new(arr, grant_json(c->w->d, &gs[i]));
		last = gs[i].grant_id;
		shown++;
	}
	if (!past) {
		json_decref(arr);
		return op_fail(c, KMS_EINVALIDMARKER, "Invalid Marker");
	}
	*resp = json_pack("{s:o, s:b}", "Grants", arr, "Truncated", more);
	if (*resp == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	if (more && last != NULL) {
		return resp_next_marker(c, *resp, "grants", last);
	}
	return 0;
}

int
op_list_grants(struct opctx *c, json_t **resp)
{
	struct store_grant *gs = NULL;
	struct key_info ki;
	const char *grant_id, *grantee;
	char marker[72];
	long long limit;
	size_t n = 0;
	int present, r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = req_limit(c, GRANT_LIST_DEFAULT, GRANT_LIST_MAX,
	    &limit)) != 0 ||
	    (r = req_marker(c, "grants", marker, sizeof(marker),
	    &present)) != 0 ||
	    (r = req_string(c, "GrantId", 0, 1, 128, &grant_id)) != 0 ||
	    (r = req_string(c, "GranteePrincipal", 0, 1, 256, &grantee)) != 0 ||
	    (r = op_authorize(c, &ki, "ListGrants", NULL)) != 0) {
		return r;
	}
	if ((r = c->w->st->ops->get_grants(c->w->st, ki.id, &gs, &n)) != 0) {
		return op_fail(c, r, "The key store failed");
	}
	r = reply_grants(c, gs, n, present ? marker : NULL, limit, grant_id,
	    grantee, resp);
	free(gs);
	return r;
}

int
op_list_retirable_grants(struct opctx *c, json_t **resp)
{
	struct store_grant *gs = NULL;
	const char *who;
	char marker[72];
	long long limit;
	size_t n = 0;
	int present, more = 0, r;

	if ((r = req_string(c, "RetiringPrincipal", 1, 1, 256, &who)) != 0 ||
	    (r = req_limit(c, GRANT_LIST_DEFAULT, GRANT_LIST_MAX,
	    &limit)) != 0 ||
	    (r = req_marker(c, "retirable", marker, sizeof(marker),
	    &present)) != 0) {
		return r;
	}
	if (!authz_principal_is(c->p, who) && !authz_is_admin(c->w->d, c->p)) {
		return op_fail(c, KMS_EACCESSDENIED, "User: %s is not "
		    "authorized to perform: kms:ListRetirableGrants for %s",
		    c->p->name, who);
	}
	if ((r = c->w->st->ops->list_retirable(c->w->st, who,
	    present ? marker : NULL,
	    (size_t)limit, &gs, &n, &more)) != 0) {
		return op_fail(c, r, "The key store failed");
	}
	r = reply_grants(c, gs, n, NULL, limit, NULL, NULL, resp);
	if (r == 0 && more && n > 0) {
		r = resp_next_marker(c, *resp, "retirable", gs[n - 1].grant_id);
	}
	free(gs);
	return r;
}

static int
grant_id_ok(struct opctx *c, const char *id)
{
	if (strlen(id) != 64 || strspn(id, "0123456789abcdef") != 64) {
		return op_fail(c, KMS_EINVALIDGRANTID, "Grant ID %.80s is not "
		    "valid", id);
	}
	return 0;
}

/* Find grant id on key; KMS_ENOTFOUND when absent. */
static int
find_grant(struct opctx *c, const struct key_info *ki, const char *id,
    struct store_grant *out)
{
	struct store_grant *gs = NULL;
	size_t n = 0, i;
	int r;

	if ((r = c->w->st->ops->get_grants(c->w->st, ki->id, &gs, &n)) != 0) {
		return op_fail(c, r, "The key store failed");
	}
	r = KMS_ENOTFOUND;
	for (i = 0; i < n; i++) {
		if (strcmp(gs[i].grant_id, id) == 0) {
			*out = gs[i];
			r = 0;
			break;
		}
	}
	free(gs);
	if (r != 0) {
		op_fail(c, r, "Grant %s does not exist on %s", id, ki->arn);
	}
	return r;
}

int
op_retire_grant(struct opctx *c, json_t **resp)
{
	const char *token, *key_id, *grant_id;
	struct store_grant *g;
	struct key_info ki;
	int r, allowed;

	if ((g = malloc(sizeof(*g))) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	if ((r = req_string(c, "GrantToken", 0, 1, KMS_MAX_GRANT_TOKEN,
	    &token)) != 0 ||
	    (r = req_string(c, "KeyId", 0, 1, KMS_MAX_KEY_ID, &key_id)) != 0 ||
	    (r = req_string(c, "GrantId", 0, 1, 128, &grant_id)) != 0) {
		goto out;
	}
	if (token != NULL) {
		uint8_t h[32];
		if (strncmp(token, "kmsgt1.", 7) != 0) {
			r = op_fail(c, KMS_EINVALIDGRANTTOKEN, "The grant token "
			    "is malformed");
			goto out;
		}
		authz_token_hash(token, h);
		if ((r = c->w->st->ops->find_grant_by_token(c->w->st, h,
		    g)) != 0) {
			r = op_fail(c, r == KMS_ENOTFOUND ?
			    KMS_EINVALIDGRANTTOKEN : r, "The grant token is "
			    "not valid (unknown or retired grant)");
			goto out;
		}
		if ((r = keycache_lookup_id(c->w, g->key_id, &ki)) != 0) {
			r = op_fail(c, r, "The grant's key is gone");
			goto out;
		}
	} else if (key_id != NULL && grant_id != NULL) {
		if ((r = grant_id_ok(c, grant_id)) != 0 ||
		    (r = op_key(c, key_id, &ki)) != 0 ||
		    (r = find_grant(c, &ki, grant_id, g)) != 0) {
			goto out;
		}
	} else {
		r = op_fail(c, KMS_EVALIDATION, "RetireGrant needs GrantToken, "
		    "or KeyId and GrantId");
		goto out;
	}
	/* The retiring principal, a grantee whose grant includes
	 * RetireGrant, or an administrator. */
	allowed = (g->retiring[0] != '\0' &&
	    authz_principal_is(c->p, g->retiring)) ||
	    (authz_principal_is(c->p, g->grantee) &&
	    strstr(g->operations, "\"RetireGrant\"") != NULL) ||
	    authz_is_admin(c->w->d, c->p);
	if (!allowed) {
		r = op_fail(c, KMS_EACCESSDENIED, "User: %s is not authorized "
		    "to perform: kms:RetireGrant on resource: %s", c->p->name,
		    ki.arn);
		goto out;
	}
	if ((r = c->w->st->ops->delete_grant(c->w->st, ki.id,
	    g->grant_id)) != 0) {
		r = op_fail(c, r == KMS_ENOTFOUND ? KMS_EINVALIDGRANTID : r,
		    "Grant %s is already retired", g->grant_id);
		goto out;
	}
	(void)keycache_refresh(c->w, ki.id);
	*resp = json_object();
	r = *resp != NULL ? 0 : op_fail(c, KMS_EINTERNAL, "out of memory");
 out:
	free(g);
	return r;
}

int
op_revoke_grant(struct opctx *c, json_t **resp)
{
	struct store_grant *g;
	struct key_info ki;
	const char *grant_id;
	int r;

	if ((g = malloc(sizeof(*g))) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = req_string(c, "GrantId", 1, 1, 128, &grant_id)) != 0 ||
	    (r = grant_id_ok(c, grant_id)) != 0 ||
	    (r = op_authorize(c, &ki, "RevokeGrant", NULL)) != 0 ||
	    (r = find_grant(c, &ki, grant_id, g)) != 0) {
		goto out;
	}
	if ((r = c->w->st->ops->delete_grant(c->w->st, ki.id,
	    grant_id)) != 0) {
		r = op_fail(c, r, "Grant %s could not be revoked", grant_id);
		goto out;
	}
	(void)keycache_refresh(c->w, ki.id);
	*resp = json_object();
	r = *resp != NULL ? 0 : op_fail(c, KMS_EINTERNAL, "out of memory");
 out:
	free(g);
	return r;
}

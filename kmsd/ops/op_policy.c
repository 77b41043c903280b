/*
 * op_policy.c — GetKeyPolicy, PutKeyPolicy, ListKeyPolicies.
 *
 * A key has one policy, "default".  A key created without one uses the
 * default document (creator and administrators get kms:*); GetKeyPolicy
 * returns it.  PutKeyPolicy compiles the document first (malformed →
 * MalformedPolicyDocumentException naming the problem) and refuses one
 * that would lock the caller out, unless BypassPolicyLockoutSafetyCheck.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "kmsd/authz/authz.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/ops/op.h"
#include "policy/policy.h"

static int
policy_name(struct opctx *c)
{
	const char *name;
	int r;

	if ((r = req_string(c, "PolicyName", 0, 1, 128, &name)) != 0) {
		return r;
	}
	if (name != NULL && strcmp(name, "default") != 0) {
		return op_fail(c, KMS_ENOTFOUND, "Policy %s does not exist; a "
		    "key has only the policy \"default\"", name);
	}
	return 0;
}

int
op_get_key_policy(struct opctx *c, json_t **resp)
{
	struct key_info ki;
	char *doc = NULL;
	int r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 || (r = policy_name(c)) != 0 ||
	    (r = op_authorize(c, &ki, "GetKeyPolicy", NULL)) != 0) {
		return r;
	}
	if ((r = authz_policy_document(c->w, &ki, &doc)) != 0) {
		return op_fail(c, r, "Cannot read the key policy");
	}
	*resp = json_pack("{s:s, s:s}", "Policy", doc, "PolicyName",
	    "default");
	free(doc);
	return *resp != NULL ? 0 : op_fail(c, KMS_EINTERNAL, "out of memory");
}

int
op_put_key_policy(struct opctx *c, json_t **resp)
{
	char err[POLICY_ERR_MAX];
	struct key_info ki;
	struct policy *pol;
	const char *doc;
	int bypass, r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 || (r = policy_name(c)) != 0 ||
	    (r = req_string_bytes(c, "Policy", 1, 1, POLICY_MAX_DOC,
	    &doc)) != 0 ||
	    (r = req_bool(c, "BypassPolicyLockoutSafetyCheck", &bypass)) != 0 ||
	    (r = op_authorize(c, &ki, "PutKeyPolicy", NULL)) != 0) {
		return r;
	}
	if ((pol = policy_compile(doc, strlen(doc), err, sizeof(err))) ==
	    NULL) {
		return op_fail(c, KMS_EMALFORMEDPOLICY, "%s", err);
	}
	policy_free(pol);
	if (!bypass && !authz_lockout_safe(c->w, c->p, &ki, doc,
	    strlen(doc))) {
		return op_fail(c, KMS_EMALFORMEDPOLICY, "The new key policy "
		    "will not allow you to update the key policy in the "
		    "future.");
	}
	if ((r = c->w->st->ops->put_policy(c->w->st, ki.id, doc, NULL)) != 0) {
		return op_fail(c, r, "Storing the key policy failed");
	}
	/* The new row_version retires the compiled policy everywhere. */
	if ((r = keycache_refresh(c->w, ki.id)) != 0) {
		return op_state_error(c, r, &ki);
	}
	*resp = json_object();
	return *resp != NULL ? 0 : op_fail(c, KMS_EINTERNAL, "out of memory");
}

int
op_list_key_policies(struct opctx *c, json_t **resp)
{
	struct key_info ki;
	long long limit;
	char marker[8];
	int present, r;

	/* One policy ("default"): never a second page, so no marker
	 * is valid. */
	if ((r = op_mgmt_key(c, 1, &ki)) != 0 ||
	    (r = req_limit(c, KMS_LIST_DEFAULT, KMS_LIST_MAX, &limit)) != 0 ||
	    (r = req_marker(c, "", marker, 1, &present)) != 0 ||
	    (r = op_authorize(c, &ki, "ListKeyPolicies", NULL)) != 0) {
		return r;
	}
	*resp = json_pack("{s:[s], s:b}", "PolicyNames", "default",
	    "Truncated", 0);
	return *resp != NULL ? 0 : op_fail(c, KMS_EINTERNAL, "out of memory");
}

/*
 * op_aliases.c — CreateAlias, UpdateAlias, DeleteAlias, ListAliases.
 *
 * AWS's rules: "alias/" prefix, not "alias/aws/", 1-256 characters of
 * [a-zA-Z0-9:/_-], unique, at most 50 per key.  An alias works as KeyId for
 * the crypto operations and DescribeKey (see op_key in dispatch.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/blob.h"
#include "common/err.h"
#include "kmsd/daemon/clock.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/ops/op.h"

#define KMS_MAX_ALIASES_PER_KEY 50	/* AWS quota */
#define KMS_ALIAS_LIST_DEFAULT 50	/* AWS ListAliases default Limit */
#define KMS_ALIAS_LIST_MAX 100		/* AWS ListAliases page at most */

static int
alias_name(struct opctx *c, const char **name)
{
	int r;

	if ((r = req_string(c, "AliasName", 1, 1, 256, name)) != 0) {
		return r;
	}
	return op_alias_name_ok(c, *name);
}

/* TargetKeyId: a key id or key ARN, never an alias. */
static int
target_key(struct opctx *c, struct key_info *ki)
{
	const char *id;
	int r;

	if ((r = req_string(c, "TargetKeyId", 1, 1, KMS_MAX_KEY_ID,
	    &id)) != 0) {
		return r;
	}
	if (strstr(id, "alias/") != NULL) {
		return op_fail(c, KMS_EVALIDATION, "TargetKeyId must be a key "
		    "id or key ARN, not an alias");
	}
	if ((r = op_key(c, id, ki)) != 0) {
		return r;
	}
	if (ki->state == KEY_PENDING_DELETION) {
		return op_state_error(c, KMS_EINVALIDSTATE, ki);
	}
	return 0;
}

int
op_create_alias(struct opctx *c, json_t **resp)
{
	struct store_alias a;
	struct key_info ki;
	const char *name;
	size_t n = 0;
	int r;

	if ((r = alias_name(c, &name)) != 0 || (r = target_key(c, &ki)) != 0 ||
	    (r = op_authorize(c, &ki, "CreateAlias", NULL)) != 0) {
		return r;
	}
	if ((r = c->w->st->ops->count_aliases(c->w->st, ki.id, &n)) != 0) {
		return op_fail(c, r, "The key store failed");
	}
	if (n >= KMS_MAX_ALIASES_PER_KEY) {
		return op_fail(c, KMS_ELIMITEXCEEDED, "A key can have at most "
		    "%d aliases", KMS_MAX_ALIASES_PER_KEY);
	}
	memset(&a, 0, sizeof(a));
	snprintf(a.name, sizeof(a.name), "%s", name);
	memcpy(a.key_id, ki.id, 16);
	a.creation_ms = a.update_ms = now_ms();
	if ((r = c->w->st->ops->create_alias(c->w->st, &a)) != 0) {
		if (r == KMS_EALREADYEXISTS) {
			char arn[KEY_ARN_MAX + 256];
			alias_arn(c->w->d, name, arn, sizeof(arn));
			return op_fail(c, r, "An alias with the name %s "
			    "already exists", arn);
		}
		return op_fail(c, r, "The key store failed");
	}
	*resp = json_object();
	return *resp != NULL ? 0 : op_fail(c, KMS_EINTERNAL, "out of memory");
}

static int
existing_alias(struct opctx *c, const char *name, struct store_alias *a,
    struct key_info *ki)
{
	char arn[KEY_ARN_MAX + 256];
	int r;

	if ((r = c->w->st->ops->get_alias(c->w->st, name, a)) != 0) {
		alias_arn(c->w->d, name, arn, sizeof(arn));
		return op_fail(c, r, r == KMS_ENOTFOUND ? "Alias %s is not "
		    "found." : "The key store failed (%s)", arn);
	}
	if ((r = keycache_lookup_id(c->w, a->key_id, ki)) != 0) {
		return op_fail(c, r, "Alias %s names a key that is gone", name);
	}
	return 0;
}

int
op_update_alias(struct opctx *c, json_t **resp)
{
	struct store_alias a;
	struct key_info old, ki;
	const char *name;
	int r;

	if ((r = alias_name(c, &name)) != 0 || (r = target_key(c, &ki)) != 0 ||
	    (r = existing_alias(c, name, &a, &old)) != 0 ||
	    (r = op_authorize(c, &old, "UpdateAlias", NULL)) != 0 ||
	    (r = op_authorize(c, &ki, "UpdateAlias", NULL)) != 0) {
		return r;
	}
	if (strcmp(old.key_usage, ki.key_usage) != 0 ||
	    strcmp(old.key_spec, ki.key_spec) != 0) {
		return op_fail(c, KMS_EVALIDATION, "The new key must have the "
		    "same key usage and key spec as the alias's current key");
	}
	if ((r = c->w->st->ops->update_alias(c->w->st, name, ki.id,
	    now_ms())) != 0) {
		return op_fail(c, r, "Alias %s could not be updated", name);
	}
	*resp = json_object();
	return *resp != NULL ? 0 : op_fail(c, KMS_EINTERNAL, "out of memory");
}

int
op_delete_alias(struct opctx *c, json_t **resp)
{
	struct store_alias a;
	struct key_info ki;
	const char *name;
	int r;

	if ((r = alias_name(c, &name)) != 0 ||
	    (r = existing_alias(c, name, &a, &ki)) != 0 ||
	    (r = op_authorize(c, &ki, "DeleteAlias", NULL)) != 0) {
		return r;
	}
	if ((r = c->w->st->ops->delete_alias(c->w->st, name)) != 0) {
		return op_fail(c, r, r == KMS_ENOTFOUND ? "Alias %s is not "
		    "found." : "Alias %s could not be deleted", name);
	}
	*resp = json_object();
	return *resp != NULL ? 0 : op_fail(c, KMS_EINTERNAL, "out of memory");
}

int
op_list_aliases(struct opctx *c, json_t **resp)
{
	struct store_alias *as = NULL;
	struct key_info ki;
	const char *key_id;
	char marker[300];
	long long limit;
	size_t n = 0, i;
	int present, more = 0, r;
	json_t *arr = NULL;

	if ((r = req_string(c, "KeyId", 0, 1, KMS_MAX_KEY_ID, &key_id)) != 0 ||
	    (r = req_limit(c, KMS_ALIAS_LIST_DEFAULT, KMS_ALIAS_LIST_MAX,
	    &limit)) != 0 ||
	    (r = req_marker(c, "aliases", marker, sizeof(marker),
	    &present)) != 0) {
		return r;
	}
	if (key_id != NULL && (r = op_key(c, key_id, &ki)) != 0) {
		return r;
	}
	if (present && strncmp(marker, "alias/", 6) != 0) {
		return op_fail(c, KMS_EINVALIDMARKER, "Invalid Marker");
	}
	if ((as = calloc((size_t)limit, sizeof(*as))) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	if ((r = c->w->st->ops->list_aliases(c->w->st, key_id ? ki.id : NULL,
	    present ? marker : NULL, (size_t)limit, as, &n, &more)) != 0) {
		r = op_fail(c, r, "The key store failed");
		goto out;
	}
	if ((arr = json_array()) == NULL) {
		r = op_fail(c, KMS_EINTERNAL, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		char id[37], arn[KEY_ARN_MAX + 256];
		blob_uuid_format(as[i].key_id, id);
		alias_arn(c->w->d, as[i].name, arn, sizeof(arn));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:f, "
		    "s:f}", "AliasName", as[i].name, "AliasArn", arn,
		    "TargetKeyId", id, "CreationDate",
		    (double)as[i].creation_ms / 1000.0, "LastUpdatedDate",
		    (double)as[i].update_ms / 1000.0));
	}
	*resp = json_pack("{s:o, s:b}", "Aliases", arr, "Truncated", more);
	arr = NULL;
	if (*resp == NULL) {
		r = op_fail(c, KMS_EINTERNAL, "out of memory");
		goto out;
	}
	r = 0;
	if (more && n > 0) {
		r = resp_next_marker(c, *resp, "aliases", as[n - 1].name);
	}
 out:
	json_decref(arr);
	free(as);
	return r;
}

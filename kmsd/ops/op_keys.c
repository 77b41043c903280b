/*
 * op_keys.c — key management operations: CreateKey, DescribeKey, ListKeys,
 * UpdateKeyDescription, EnableKey, DisableKey.
 *
 * Mutations are committed to the store (durable) before the reply, then
 * the key cache entry is refreshed from the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/blob.h"
#include "common/ctx.h"
#include "common/err.h"
#include "kmsd/authz/authz.h"
#include "kmsd/daemon/clock.h"
#include "kmsd/dispatch/validate.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/ops/op.h"
#include "policy/policy.h"

static const char *const usages[] = { "ENCRYPT_DECRYPT", "SIGN_VERIFY",
	"GENERATE_VERIFY_MAC", "KEY_AGREEMENT", NULL };
static const char *const specs[] = { "SYMMETRIC_DEFAULT", "RSA_2048",
	"RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384",
	"ECC_NIST_P521", "ECC_SECG_P256K1", "HMAC_224", "HMAC_256",
	"HMAC_384", "HMAC_512", "SM2", NULL };
static const char *const origins[] = { "AWS_KMS", "EXTERNAL",
	"AWS_CLOUDHSM", "EXTERNAL_KEY_STORE", NULL };

static int
in_set(const char *v, const char *const *set)
{
	for (; *set != NULL; set++) {
		if (strcmp(v, *set) == 0) {
			return 1;
		}
	}
	return 0;
}

/* Enum field: absent → def; unknown → ValidationException; known but not
 * implemented → UnsupportedOperationException. */
static int
req_enum(struct opctx *c, const char *name, const char *const *set,
    const char *supported, const char **out)
{
	const char *v;
	int r;

	if ((r = req_string(c, name, 0, 1, 64, &v)) != 0) {
		return r;
	}
	if (v == NULL) {
		*out = supported;
		return 0;
	}
	/* validate.c answers this first, with AWS's whole set. */
	if (!in_set(v, set)) {
		char at[64];
		return op_fail(c, KMS_EVALIDATION, "1 validation error "
		    "detected: Value '%s' at '%s' failed to satisfy "
		    "constraint: Member must satisfy enum value set", v,
		    validate_member_name(name, at, sizeof(at)));
	}
	if (strcmp(v, supported) != 0) {
		return op_fail(c, KMS_EUNSUPPORTED, "%s %s is not supported "
		    "by this kmsd", name, v);
	}
	*out = v;
	return 0;
}

/* Origin: AWS_KMS (the default) or EXTERNAL (imported material). */
static int
req_origin(struct opctx *c, const char **out)
{
	const char *v;
	int r;

	if ((r = req_string(c, "Origin", 0, 1, 64, &v)) != 0) {
		return r;
	}
	if (v != NULL && strcmp(v, "EXTERNAL") == 0) {
		*out = v;
		return 0;
	}
	return req_enum(c, "Origin", origins, "AWS_KMS", out);
}

int
op_parse_tags(struct opctx *c, json_t *tags, struct store_tag **out,
    size_t *n)
{
	json_t *t;
	struct store_tag *arr;
	size_t i, j;

	*out = NULL;
	*n = 0;
	if (tags == NULL || json_is_null(tags)) {
		return 0;
	}
	if (!json_is_array(tags)) {
		return op_fail(c, KMS_ESERIALIZATION, "Tags must be a list");
	}
	if (json_array_size(tags) > KMS_MAX_TAGS) {
		return op_fail(c, KMS_ETAG, "%s", OP_TAGS_TOO_MANY);
	}
	if (json_array_size(tags) == 0) {
		return 0;
	}
	if ((arr = calloc(json_array_size(tags), sizeof(*arr))) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	json_array_foreach(tags, i, t) {
		json_t *k = json_object_get(t, "TagKey");
		json_t *v = json_object_get(t, "TagValue");
		char at[64];
		size_t klen, vlen;
		if (!json_is_object(t) || !json_is_string(k) ||
		    !json_is_string(v)) {
			free(arr);
			return op_fail(c, KMS_ESERIALIZATION, "Tags[%zu] "
			    "needs string TagKey and TagValue", i);
		}
		if (!ctx_utf8_valid(json_string_value(k), json_string_length(k)) ||
		    !ctx_utf8_valid(json_string_value(v), json_string_length(v))) {
			free(arr);
			return op_fail(c, KMS_EVALIDATION, "Tags[%zu] is not "
			    "UTF-8", i);
		}
		klen = ctx_utf8_chars(json_string_value(k), json_string_length(k));
		vlen = ctx_utf8_chars(json_string_value(v), json_string_length(v));
		/* AWS's texts (validate.c answers these first). */
		if (klen < 1 || klen > KMS_MAX_TAG_KEY ||
		    vlen > KMS_MAX_TAG_VALUE) {
			free(arr);
			snprintf(at, sizeof(at), "tags.%zu.member.%s", i + 1,
			    vlen > KMS_MAX_TAG_VALUE ? "tagValue" : "tagKey");
			return op_fail(c, KMS_EVALIDATION, "1 validation error "
			    "detected: Value '%s' at '%s' failed to satisfy "
			    "constraint: Member must have length %s than or "
			    "equal to %d", vlen > KMS_MAX_TAG_VALUE ?
			    json_string_value(v) : json_string_value(k), at,
			    klen < 1 ? "greater" : "less", klen < 1 ? 1 :
			    vlen > KMS_MAX_TAG_VALUE ? KMS_MAX_TAG_VALUE :
			    KMS_MAX_TAG_KEY);
		}
		/* AWS reserves aws: in any case (LocalStack's snapshots of
		 * AWS record "aws:" and "AWS:" alike). */
		if (strncasecmp(json_string_value(k), "aws:", 4) == 0) {
			free(arr);
			return op_fail(c, KMS_ETAG, "Tags beginning with aws: "
			    "are reserved");
		}
		snprintf(arr[i].key, sizeof(arr[i].key), "%s",
		    json_string_value(k));
		snprintf(arr[i].value, sizeof(arr[i].value), "%s",
		    json_string_value(v));
		for (j = 0; j < i; j++) {
			if (strcmp(arr[j].key, arr[i].key) == 0) {
				free(arr);
				return op_fail(c, KMS_ETAG, "Duplicate tag "
				    "keys");
			}
		}
	}
	*out = arr;
	*n = json_array_size(tags);
	return 0;
}

static const char *
state_name(int s)
{
	static const char *const names[] = { "Unavailable", "Enabled",
		"Disabled", "PendingDeletion", "PendingImport",
		"Unavailable" };

	return (s >= KEY_ENABLED && s <= KEY_UNAVAILABLE) ? names[s] :
	    "Unavailable";
}

json_t *
op_key_metadata(const struct kmsd *d, const struct store_key *k)
{
	char id[37], arn[KEY_ARN_MAX];
	json_t *m;

	blob_uuid_format(k->id, id);
	key_arn(d, id, arn, sizeof(arn));
	m = json_pack("{s:s, s:s, s:s, s:f, s:b, s:s, s:s, s:s, s:s, s:s, "
	    "s:s, s:s, s:[s], s:b}",
	    "AWSAccountId", d->cfg.account_id,
	    "KeyId", id,
	    "Arn", arn,
	    "CreationDate", (double)k->creation_ms / 1000.0,
	    "Enabled", k->state == KEY_ENABLED,
	    "Description", k->description,
	    "KeyUsage", k->key_usage,
	    "KeyState", state_name(k->state),
	    "Origin", k->origin,
	    "KeyManager", "CUSTOMER",
	    "KeySpec", k->key_spec,
	    "CustomerMasterKeySpec", k->key_spec,
	    "EncryptionAlgorithms", "SYMMETRIC_DEFAULT",
	    "MultiRegion", 0);
	if (m != NULL && k->state == KEY_PENDING_DELETION) {
		json_object_set_new(m, "DeletionDate",
		    json_real((double)k->deletion_ms / 1000.0));
	}
	return m;
}

static int
reply_metadata(struct opctx *c, const struct store_key *k, json_t **resp)
{
	json_t *m = op_key_metadata(c->w->d, k);

	if (m == NULL || (*resp = json_pack("{s:o}", "KeyMetadata", m)) ==
	    NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	return 0;
}

int
op_create_key(struct opctx *c, json_t **resp)
{
	const char *desc, *usage, *spec, *cmkspec, *origin, *policy, *s;
	struct store_tag *tags = NULL;
	struct store_key *k = NULL;
	size_t ntags = 0;
	int multi, bypass, r;

	if ((r = req_string(c, "Description", 0, 0, KMS_MAX_DESCRIPTION,
	    &desc)) != 0 ||
	    (r = req_enum(c, "KeyUsage", usages, "ENCRYPT_DECRYPT",
	    &usage)) != 0 ||
	    (r = req_enum(c, "KeySpec", specs, "SYMMETRIC_DEFAULT",
	    &spec)) != 0 ||
	    (r = req_enum(c, "CustomerMasterKeySpec", specs,
	    "SYMMETRIC_DEFAULT", &cmkspec)) != 0 ||
	    (r = req_origin(c, &origin)) != 0 ||
	    (r = req_string_bytes(c, "Policy", 0, 1, POLICY_MAX_DOC,
	    &policy)) != 0 ||
	    (r = req_bool(c, "BypassPolicyLockoutSafetyCheck", &bypass)) != 0 ||
	    (r = req_bool(c, "MultiRegion", &multi)) != 0) {
		return r;
	}
	if (desc != NULL && !ctx_utf8_valid(desc, strlen(desc))) {
		return op_fail(c, KMS_EVALIDATION, "Description is not UTF-8");
	}
	if (multi) {
		return op_fail(c, KMS_EUNSUPPORTED, "Multi-Region keys are not "
		    "supported by this kmsd");
	}
	if (json_object_get(c->req, "CustomKeyStoreId") != NULL ||
	    json_object_get(c->req, "XksKeyId") != NULL) {
		return op_fail(c, KMS_EUNSUPPORTED, "Custom key stores are not "
		    "supported by this kmsd");
	}
	if (!config_may_create_keys(&c->w->d->cfg, c->p)) {
		return op_fail(c, KMS_EACCESSDENIED, "User: %s is not "
		    "authorized to perform: kms:CreateKey (see key_creators in "
		    "kmsd.conf)", c->p->name);
	}
	if (policy != NULL) {
		char err[POLICY_ERR_MAX];
		struct policy *pol = policy_compile(policy, strlen(policy),
		    err, sizeof(err));
		if (pol == NULL) {
			return op_fail(c, KMS_EMALFORMEDPOLICY, "%s", err);
		}
		policy_free(pol);
	}
	if ((r = op_parse_tags(c, json_object_get(c->req, "Tags"), &tags,
	    &ntags)) != 0) {
		return r;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		r = op_fail(c, KMS_EINTERNAL, "out of memory");
		goto out;
	}
	k->creation_ms = now_ms();
	k->state = KEY_ENABLED;
	snprintf(k->key_usage, sizeof(k->key_usage), "%s", usage);
	snprintf(k->key_spec, sizeof(k->key_spec), "%s", spec);
	snprintf(k->origin, sizeof(k->origin), "%s", origin);
	snprintf(k->description, sizeof(k->description), "%s",
	    desc != NULL ? desc : "");
	s = c->p->name[0] != '\0' ? c->p->name : c->p->uid_name;
	snprintf(k->creator, sizeof(k->creator), "%s", s);
	if (policy != NULL && !bypass) {
		struct key_info pre;
		/* The lockout check, against the key about to exist. */
		memset(&pre, 0, sizeof(pre));
		key_arn(c->w->d, "*", pre.arn, sizeof(pre.arn));
		snprintf(pre.key_spec, sizeof(pre.key_spec), "%s", spec);
		snprintf(pre.key_usage, sizeof(pre.key_usage), "%s", usage);
		snprintf(pre.origin, sizeof(pre.origin), "%s", origin);
		if (!authz_lockout_safe(c->w, c->p, &pre, policy,
		    strlen(policy))) {
			r = op_fail(c, KMS_EMALFORMEDPOLICY, "The new key policy "
			    "will not allow you to update the key policy in the "
			    "future.");
			goto out;
		}
	}
	if ((r = strcmp(origin, "EXTERNAL") == 0 ?
	    keycache_create_external(c->w, k, tags, ntags) :
	    keycache_create_key(c->w, k, tags, ntags)) != 0) {
		struct key_info ki;
		memset(&ki, 0, sizeof(ki));
		r = op_state_error(c, r, &ki);
		goto out;
	}
	/* No stored policy means the default one (creator and
	 * administrators), so a crash before this write errs on the safe
	 * side. */
	if (policy != NULL && (r = c->w->st->ops->put_policy(c->w->st, k->id,
	    policy, NULL)) != 0) {
		r = op_fail(c, r, "Storing the key policy failed");
		goto out;
	}
	if (policy != NULL) {
		(void)keycache_refresh(c->w, k->id);
	}
	r = reply_metadata(c, k, resp);
 out:
	free(tags);
	free(k);
	return r;
}

/* KeyId for the management operations (some refuse an alias). */
int
op_mgmt_key(struct opctx *c, int allow_alias, struct key_info *ki)
{
	const char *id;
	int r;

	if ((r = req_string(c, "KeyId", 1, 1, KMS_MAX_KEY_ID, &id)) != 0) {
		return r;
	}
	/* AWS's answer to an alias name or alias ARN where only a key will
	 * do (its text as AWS KMS gives it, quoted in public reports). */
	if (!allow_alias && (strncmp(id, "alias/", 6) == 0 ||
	    (strncmp(id, "arn:", 4) == 0 && strstr(id, ":alias/") != NULL))) {
		return op_fail(c, KMS_EINVALIDARN, "Key Aliases are not "
		    "supported for this operation.");
	}
	return op_key(c, id, ki);
}

int
op_load_row(struct opctx *c, const struct key_info *ki, struct store_key **kp)
{
	struct store_key *k;
	int r;

	if ((k = malloc(sizeof(*k))) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	if ((r = c->w->st->ops->get_key(c->w->st, ki->id, k)) != 0) {
		free(k);
		return op_state_error(c, r, ki);
	}
	*kp = k;
	return 0;
}

int
op_describe_key(struct opctx *c, json_t **resp)
{
	struct store_key *k = NULL;
	struct key_info ki;
	int r;

	if ((r = req_grant_tokens(c)) != 0 || (r = op_mgmt_key(c, 1, &ki)) != 0 ||
	    (r = op_authorize(c, &ki, "DescribeKey", NULL)) != 0 ||
	    (r = op_load_row(c, &ki, &k)) != 0) {
		return r;
	}
	/* The cache knows of states the store does not (Unavailable). */
	if (ki.state == KEY_UNAVAILABLE) {
		k->state = KEY_UNAVAILABLE;
	}
	r = reply_metadata(c, k, resp);
	if (r == 0 && strcmp(k->origin, "EXTERNAL") == 0) {
		struct store_import im;
		json_t *m = json_object_get(*resp, "KeyMetadata");
		/* AWS shows how imported material expires, once imported. */
		if (c->w->st->ops->get_import(c->w->st, k->id, &im) == 0) {
			json_object_set_new(m, "ExpirationModel", json_string(
			    im.expires ? "KEY_MATERIAL_EXPIRES" :
			    "KEY_MATERIAL_DOES_NOT_EXPIRE"));
			if (im.expires && im.present) {
				json_object_set_new(m, "ValidTo", json_real(
				    (double)im.valid_to_ms / 1000.0));
			}
		}
	}
	free(k);
	return r;
}

int
op_list_keys(struct opctx *c, json_t **resp)
{
	uint8_t (*ids)[16] = NULL, after[16];
	char marker[64];
	long long limit;
	size_t n = 0, i;
	int present, more = 0, r;
	json_t *keys = NULL;

	if ((r = req_limit(c, KMS_LIST_DEFAULT, KMS_LIST_MAX, &limit)) != 0 ||
	    (r = req_marker(c, "keys", marker, sizeof(marker),
	    &present)) != 0) {
		return r;
	}
	if (present && blob_uuid_parse(marker, strlen(marker), after) != 0) {
		return op_fail(c, KMS_EINVALIDMARKER, "Invalid Marker");
	}
	if ((ids = calloc((size_t)limit, sizeof(*ids))) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	if ((r = c->w->st->ops->list_keys(c->w->st, present ? after : NULL,
	    (size_t)limit, ids, &n, &more)) != 0) {
		r = op_fail(c, r, "The key store failed");
		goto out;
	}
	if ((keys = json_array()) == NULL) {
		r = op_fail(c, KMS_EINTERNAL, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		char id[37], arn[KEY_ARN_MAX];
		blob_uuid_format(ids[i], id);
		key_arn(c->w->d, id, arn, sizeof(arn));
		json_array_append_new(keys, json_pack("{s:s, s:s}", "KeyId",
		    id, "KeyArn", arn));
	}
	*resp = json_pack("{s:o, s:b}", "Keys", keys, "Truncated", more);
	keys = NULL;
	if (*resp == NULL) {
		r = op_fail(c, KMS_EINTERNAL, "out of memory");
		goto out;
	}
	r = 0;
	if (more && n > 0) {
		char id[37];
		blob_uuid_format(ids[n - 1], id);
		r = resp_next_marker(c, *resp, "keys", id);
	}
 out:
	json_decref(keys);
	free(ids);
	return r;
}

/* Apply a change to the row, commit, refresh the cache, reply {}. */
int
op_commit_key(struct opctx *c, const struct key_info *ki, struct store_key *k,
    json_t **resp)
{
	uint64_t rv;
	int r;

	if ((r = c->w->st->ops->update_key(c->w->st, k, &rv)) != 0) {
		return op_state_error(c, r, ki);
	}
	if ((r = keycache_refresh(c->w, ki->id)) != 0) {
		return op_state_error(c, r, ki);
	}
	if ((*resp = json_object()) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	return 0;
}

int
op_update_key_description(struct opctx *c, json_t **resp)
{
	struct store_key *k = NULL;
	struct key_info ki;
	const char *desc;
	int r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = req_string(c, "Description", 1, 0, KMS_MAX_DESCRIPTION,
	    &desc)) != 0) {
		return r;
	}
	if (!ctx_utf8_valid(desc, strlen(desc))) {
		return op_fail(c, KMS_EVALIDATION, "Description is not UTF-8");
	}
	if ((r = op_authorize(c, &ki, "UpdateKeyDescription", NULL)) != 0) {
		return r;
	}
	if (ki.state == KEY_PENDING_DELETION) {
		return op_state_error(c, KMS_EINVALIDSTATE, &ki);
	}
	if ((r = op_load_row(c, &ki, &k)) != 0) {
		return r;
	}
	snprintf(k->description, sizeof(k->description), "%s", desc);
	r = op_commit_key(c, &ki, k, resp);
	free(k);
	return r;
}

static int
set_enabled(struct opctx *c, int enable, json_t **resp)
{
	struct store_key *k = NULL;
	struct key_info ki;
	int r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = op_authorize(c, &ki, enable ? "EnableKey" : "DisableKey",
	    NULL)) != 0) {
		return r;
	}
	if (ki.state != KEY_ENABLED && ki.state != KEY_DISABLED) {
		return op_state_error(c, KMS_EINVALIDSTATE, &ki);
	}
	if ((r = op_load_row(c, &ki, &k)) != 0) {
		return r;
	}
	k->state = enable ? KEY_ENABLED : KEY_DISABLED;
	r = op_commit_key(c, &ki, k, resp);
	free(k);
	return r;
}

int
op_enable_key(struct opctx *c, json_t **resp)
{
	return set_enabled(c, 1, resp);
}

int
op_disable_key(struct opctx *c, json_t **resp)
{
	return set_enabled(c, 0, resp);
}

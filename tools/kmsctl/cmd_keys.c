/*
 * cmd_keys.c — the key commands sent through libkmsclient's typed calls:
 * create-key, describe-key, list-keys, update-key-description,
 * enable-key and disable-key.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kms.h"
#include "tools/kmsctl/kmsctl.h"
#include "tools/kmsctl/shorthand.h"

static json_t *
metadata_json(const kms_key_metadata *m)
{
	json_t *o = json_object(), *km = json_object(), *algs = json_array();
	char t[64];
	size_t i;

	json_object_set_new(km, "AWSAccountId",
	    json_string(m->aws_account_id));
	json_object_set_new(km, "KeyId", json_string(m->key_id));
	json_object_set_new(km, "Arn", json_string(m->arn));
	json_object_set_new(km, "CreationDate",
	    json_string(iso8601(m->creation_date, t, sizeof(t))));
	json_object_set_new(km, "Enabled", json_boolean(m->enabled));
	json_object_set_new(km, "Description", json_string(m->description ?
	    m->description : ""));
	json_object_set_new(km, "KeyUsage", json_string(m->key_usage));
	json_object_set_new(km, "KeyState", json_string(m->key_state));
	if (m->deletion_date > 0) {
		json_object_set_new(km, "DeletionDate",
		    json_string(iso8601(m->deletion_date, t, sizeof(t))));
	}
	json_object_set_new(km, "Origin", json_string(m->origin));
	json_object_set_new(km, "KeyManager", json_string(m->key_manager));
	json_object_set_new(km, "CustomerMasterKeySpec",
	    json_string(m->customer_master_key_spec));
	json_object_set_new(km, "KeySpec", json_string(m->key_spec));
	for (i = 0; i < m->nencryption_algorithms; i++) {
		json_array_append_new(algs,
		    json_string(m->encryption_algorithms[i]));
	}
	json_object_set_new(km, "EncryptionAlgorithms", algs);
	json_object_set_new(km, "MultiRegion", json_boolean(m->multi_region));
	json_object_set_new(o, "KeyMetadata", km);
	return o;
}

/* The reply of a call that returned r with key metadata m (freed), or
 * its error line. */
static int
metadata_reply(struct run *R, int r, kms_key_metadata *m,
    const kms_error_info *ei)
{
	if (r != 0) {
		return fail(R, r, ei);
	}
	r = emit(R, metadata_json(m), NULL, NULL, 0);
	kms_key_metadata_free(m);
	return r;
}

int
cmd_create_key(struct run *R)
{
	kms_create_key_req req = { 0 };
	kms_key_metadata m;
	kms_error_info ei;
	struct tagarg tags = { 0 };
	const struct optval *v;
	char *hold_policy = NULL, *hold_desc = NULL;
	int r;

	if ((v = opt(R, "description")) != NULL &&
	    (r = load_text(v->val, &req.description, &hold_desc,
	    "description")) != 0) {
		return r;
	}
	if ((v = opt(R, "policy")) != NULL &&
	    (r = load_text(v->val, &req.policy, &hold_policy, "policy")) !=
	    0) {
		free(hold_desc);
		return r;
	}
	req.key_usage = opt_str(R, "key-usage");
	req.key_spec = opt_str(R, "key-spec");
	req.origin = opt_str(R, "origin");
	if ((v = opt(R, "bypass-policy-lockout-safety-check")) != NULL) {
		req.bypass_policy_lockout_safety_check = v->flag;
	}
	if ((v = opt(R, "tags")) != NULL && (r = parse_tags(v, &tags)) != 0) {
		free(hold_desc);
		free(hold_policy);
		return r;
	}
	req.tags = tags.tags;
	req.ntags = tags.ntags;
	r = kms_create_key(R->c, &req, &m, &ei);
	free(hold_desc);
	free(hold_policy);
	tagarg_free(&tags);
	return metadata_reply(R, r, &m, &ei);
}

int
cmd_describe_key(struct run *R)
{
	kms_grant_tokens gt = opt_grant_tokens(R);
	kms_key_metadata m;
	kms_error_info ei;
	int r;

	r = kms_describe_key(R->c, opt_str(R, "key-id"), &gt, &m, &ei);
	return metadata_reply(R, r, &m, &ei);
}

int
cmd_list_keys(struct run *R)
{
	const char *marker = opt_str(R, "starting-token");
	json_t *o = json_object(), *keys = json_array();
	kms_key_list l;
	kms_error_info ei;
	char *next = NULL;
	long limit = 0;
	size_t i;
	int r, paginate;

	if (marker == NULL) {
		marker = opt_str(R, "marker");
	}
	if (opt(R, "limit") != NULL && (r = parse_long(opt_str(R, "limit"),
	    1, 1000, &limit, "limit")) != 0) {
		json_decref(o);
		json_decref(keys);
		return r;
	}
	/* As the AWS CLI: all pages, unless one page was asked for. */
	paginate = limit == 0;
	for (;;) {
		if ((r = kms_list_keys(R->c, (int)limit, marker, &l,
		    &ei)) != 0) {
			free(next);
			json_decref(o);
			json_decref(keys);
			return fail(R, r, &ei);
		}
		for (i = 0; i < l.nkeys; i++) {
			json_t *k = json_object();
			json_object_set_new(k, "KeyId",
			    json_string(l.keys[i].key_id));
			json_object_set_new(k, "KeyArn",
			    json_string(l.keys[i].key_arn));
			json_array_append_new(keys, k);
		}
		free(next);
		next = l.next_marker != NULL ? strdup(l.next_marker) : NULL;
		if (!paginate || !l.truncated || next == NULL) {
			break;
		}
		kms_key_list_free(&l);
		marker = next;
	}
	json_object_set_new(o, "Keys", keys);
	if (!paginate) {
		json_object_set_new(o, "Truncated", json_boolean(l.truncated));
		if (l.next_marker != NULL) {
			json_object_set_new(o, "NextMarker",
			    json_string(l.next_marker));
		}
	}
	kms_key_list_free(&l);
	free(next);
	return emit(R, o, NULL, NULL, 0);
}

int
cmd_update_key_description(struct run *R)
{
	const char *desc;
	char *hold = NULL;
	kms_error_info ei;
	int r;

	if ((r = load_text(opt_str(R, "description"), &desc, &hold,
	    "description")) != 0) {
		return r;
	}
	r = kms_update_key_description(R->c, opt_str(R, "key-id"), desc, &ei);
	free(hold);
	return r != 0 ? fail(R, r, &ei) : 0;
}

/* enable-key and disable-key: the command's operation says which. */
int
cmd_enable_disable(struct run *R)
{
	kms_error_info ei;
	const char *id = opt_str(R, "key-id");
	int r;

	r = strcmp(R->cmd->op, "EnableKey") == 0 ?
	    kms_enable_key(R->c, id, &ei) : kms_disable_key(R->c, id, &ei);
	return r != 0 ? fail(R, r, &ei) : 0;
}

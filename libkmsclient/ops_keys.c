/*
 * ops_keys.c — the key-management calls: CreateKey, DescribeKey,
 * UpdateKeyDescription, EnableKey, DisableKey, ListKeys.
 *
 * Each builds the AWS request object, makes one round trip and reads the
 * AWS response object into the caller's structure, which is set only on
 * success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "libkmsclient/client.h"

#define NOMEM(ei) client_fail((ei), KMS_ENOMEM, "Out of memory")

/* {"KeyMetadata": {...}} into *out (set only on success). */
static int
parse_metadata(const json_t *reply, kms_key_metadata *out,
    kms_error_info *ei)
{
	const json_t *m = json_object_get(reply, "KeyMetadata"), *algs, *a;
	kms_key_metadata v;
	const json_t *desc;
	size_t i;
	int r;

	memset(&v, 0, sizeof(v));
	if (!json_is_object(m)) {
		return client_fail(ei, KMS_EPROTO, "The reply has no "
		    "\"KeyMetadata\" object");
	}
	if ((r = codec_get_string(m, "AWSAccountId", v.aws_account_id,
	    sizeof(v.aws_account_id), 0, ei)) != 0 ||
	    (r = codec_get_string(m, "KeyId", v.key_id, sizeof(v.key_id), 1,
	    ei)) != 0 ||
	    (r = codec_get_string(m, "Arn", v.arn, sizeof(v.arn), 0,
	    ei)) != 0 ||
	    (r = codec_get_number(m, "CreationDate", &v.creation_date, ei)) != 0 ||
	    (r = codec_get_bool(m, "Enabled", &v.enabled, ei)) != 0 ||
	    (r = codec_get_string(m, "KeyUsage", v.key_usage,
	    sizeof(v.key_usage), 0, ei)) != 0 ||
	    (r = codec_get_string(m, "KeyState", v.key_state,
	    sizeof(v.key_state), 0, ei)) != 0 ||
	    (r = codec_get_number(m, "DeletionDate", &v.deletion_date, ei)) != 0 ||
	    (r = codec_get_string(m, "Origin", v.origin, sizeof(v.origin), 0,
	    ei)) != 0 ||
	    (r = codec_get_string(m, "KeyManager", v.key_manager,
	    sizeof(v.key_manager), 0, ei)) != 0 ||
	    (r = codec_get_string(m, "KeySpec", v.key_spec,
	    sizeof(v.key_spec), 0, ei)) != 0 ||
	    (r = codec_get_string(m, "CustomerMasterKeySpec",
	    v.customer_master_key_spec, sizeof(v.customer_master_key_spec), 0,
	    ei)) != 0 ||
	    (r = codec_get_bool(m, "MultiRegion", &v.multi_region, ei)) != 0) {
		return r;
	}
	if ((algs = json_object_get(m, "EncryptionAlgorithms")) != NULL) {
		if (!json_is_array(algs) || json_array_size(algs) >
		    sizeof(v.encryption_algorithms) /
		    sizeof(v.encryption_algorithms[0])) {
			return client_fail(ei, KMS_EPROTO, "The reply's "
			    "\"EncryptionAlgorithms\" is not a short array");
		}
		json_array_foreach(algs, i, a) {
			if (!json_is_string(a) || json_string_length(a) >=
			    sizeof(v.encryption_algorithms[0])) {
				return client_fail(ei, KMS_EPROTO, "The "
				    "reply's \"EncryptionAlgorithms\" holds a "
				    "bad name");
			}
			snprintf(v.encryption_algorithms[i],
			    sizeof(v.encryption_algorithms[i]), "%s",
			    json_string_value(a));
		}
		v.nencryption_algorithms = json_array_size(algs);
	}
	desc = json_object_get(m, "Description");
	if (desc != NULL && (!json_is_string(desc) ||
	    strlen(json_string_value(desc)) != json_string_length(desc))) {
		return client_fail(ei, KMS_EPROTO, "The reply's "
		    "\"Description\" is not a string");
	}
	if ((v.description = strdup(desc != NULL ?
	    json_string_value(desc) : "")) == NULL) {
		return NOMEM(ei);
	}
	*out = v;
	return 0;
}

KMS_API void
kms_key_metadata_free(kms_key_metadata *m)
{
	if (m == NULL) {
		return;
	}
	free(m->description);
	m->description = NULL;
}

/* One round trip for req (consumed); *replyp on success. */
static int
call(kms_client *c, json_t *req, json_t **replyp, kms_error_info *ei)
{
	int r = client_call(c, req, replyp, ei);

	json_decref(req);
	return r;
}

static int
put_tags(json_t *o, const kms_tag *tags, size_t ntags, kms_error_info *ei)
{
	json_t *arr, *t;
	size_t i;

	if (ntags == 0) {
		return 0;
	}
	if (tags == NULL) {
		return client_fail(ei, KMS_EINVAL, "Tags: %zu tags but no "
		    "array", ntags);
	}
	if ((arr = json_array()) == NULL) {
		return NOMEM(ei);
	}
	for (i = 0; i < ntags; i++) {
		if (tags[i].key == NULL || tags[i].value == NULL) {
			json_decref(arr);
			return client_fail(ei, KMS_EINVAL, "Tags: tag %zu has "
			    "a NULL key or value", i);
		}
		if ((t = json_object()) == NULL ||
		    codec_put_string(t, "TagKey", tags[i].key) != 0 ||
		    codec_put_string(t, "TagValue", tags[i].value) != 0 ||
		    json_array_append_new(arr, t) != 0) {
			json_decref(arr);
			return NOMEM(ei);
		}
	}
	if (json_object_set_new(o, "Tags", arr) != 0) {
		return NOMEM(ei);
	}
	return 0;
}

KMS_API int
kms_create_key(kms_client *c, const kms_create_key_req *req,
    kms_key_metadata *out, kms_error_info *ei)
{
	json_t *o, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || req == NULL || out == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if ((o = codec_request("CreateKey")) == NULL) {
		return NOMEM(ei);
	}
	if (codec_put_string(o, "Description", req->description) != 0 ||
	    codec_put_string(o, "KeyUsage", req->key_usage) != 0 ||
	    codec_put_string(o, "KeySpec", req->key_spec) != 0 ||
	    codec_put_string(o, "Policy", req->policy) != 0 ||
	    codec_put_string(o, "Origin", req->origin) != 0 ||
	    (req->bypass_policy_lockout_safety_check && json_object_set_new(o,
	    "BypassPolicyLockoutSafetyCheck", json_true()) != 0)) {
		json_decref(o);
		return NOMEM(ei);
	}
	if ((r = put_tags(o, req->tags, req->ntags, ei)) != 0) {
		json_decref(o);
		return r;
	}
	if ((r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	r = parse_metadata(reply, out, ei);
	json_decref(reply);
	return r;
}

KMS_API int
kms_describe_key(kms_client *c, const char *key_id,
    const kms_grant_tokens *gt, kms_key_metadata *out, kms_error_info *ei)
{
	json_t *o, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || key_id == NULL || out == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if ((o = codec_request("DescribeKey")) == NULL ||
	    codec_put_string(o, "KeyId", key_id) != 0) {
		json_decref(o);
		return NOMEM(ei);
	}
	if ((r = codec_put_grant_tokens(o, gt, ei)) != 0) {
		json_decref(o);
		return r;
	}
	if ((r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	r = parse_metadata(reply, out, ei);
	json_decref(reply);
	return r;
}

/* Operations whose success reply carries nothing we keep. */
static int
simple_key_op(kms_client *c, const char *action, const char *key_id,
    const char *description, kms_error_info *ei)
{
	json_t *o, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || key_id == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if ((o = codec_request(action)) == NULL ||
	    codec_put_string(o, "KeyId", key_id) != 0 ||
	    codec_put_string(o, "Description", description) != 0) {
		json_decref(o);
		return NOMEM(ei);
	}
	if ((r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	json_decref(reply);
	return 0;
}

KMS_API int
kms_update_key_description(kms_client *c, const char *key_id,
    const char *description, kms_error_info *ei)
{
	if (description == NULL) {
		client_ok(ei);
		return client_fail(ei, KMS_EINVAL, "NULL description");
	}
	return simple_key_op(c, "UpdateKeyDescription", key_id, description,
	    ei);
}

KMS_API int
kms_enable_key(kms_client *c, const char *key_id, kms_error_info *ei)
{
	return simple_key_op(c, "EnableKey", key_id, NULL, ei);
}

KMS_API int
kms_disable_key(kms_client *c, const char *key_id, kms_error_info *ei)
{
	return simple_key_op(c, "DisableKey", key_id, NULL, ei);
}

static int
parse_key_list(const json_t *reply, kms_key_list *out, kms_error_info *ei)
{
	const json_t *keys = json_object_get(reply, "Keys"), *k;
	kms_key_list v;
	size_t i;
	int r;

	memset(&v, 0, sizeof(v));
	if (!json_is_array(keys)) {
		return client_fail(ei, KMS_EPROTO, "The reply has no \"Keys\" "
		    "array");
	}
	if (json_array_size(keys) > 0 && (v.keys = calloc(
	    json_array_size(keys), sizeof(*v.keys))) == NULL) {
		return NOMEM(ei);
	}
	json_array_foreach(keys, i, k) {
		if (!json_is_object(k)) {
			r = client_fail(ei, KMS_EPROTO, "A \"Keys\" entry is "
			    "not an object");
			goto fail;
		}
		if ((r = codec_get_string(k, "KeyId", v.keys[i].key_id,
		    sizeof(v.keys[i].key_id), 1, ei)) != 0 ||
		    (r = codec_get_string(k, "KeyArn", v.keys[i].key_arn,
		    sizeof(v.keys[i].key_arn), 0, ei)) != 0) {
			goto fail;
		}
	}
	v.nkeys = json_array_size(keys);
	if ((r = codec_get_page(reply, &v.truncated, &v.next_marker, ei)) !=
	    0) {
		goto fail;
	}
	*out = v;
	return 0;
 fail:
	free(v.keys);
	return r;
}

KMS_API int
kms_list_keys(kms_client *c, int limit, const char *marker,
    kms_key_list *out, kms_error_info *ei)
{
	json_t *o, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || out == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if ((o = codec_request("ListKeys")) == NULL ||
	    codec_put_string(o, "Marker", marker) != 0 ||
	    (limit != 0 && json_object_set_new(o, "Limit",
	    json_integer(limit)) != 0)) {
		json_decref(o);
		return NOMEM(ei);
	}
	if ((r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	r = parse_key_list(reply, out, ei);
	json_decref(reply);
	return r;
}

KMS_API void
kms_key_list_free(kms_key_list *l)
{
	if (l == NULL) {
		return;
	}
	free(l->keys);
	free(l->next_marker);
	memset(l, 0, sizeof(*l));
}

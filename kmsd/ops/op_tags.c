/*
 * op_tags.c — TagResource, UntagResource, ListResourceTags (AWS's rules:
 * at most 50 tags a key; keys 1-128 characters, not aws:; values 0-256).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctx.h"
#include "common/err.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/ops/op.h"

int
op_tag_resource(struct opctx *c, json_t **resp)
{
	struct store_tag *tags = NULL, *have = NULL;
	struct key_info ki;
	size_t n = 0, nhave = 0, i, j, total;
	json_t *t = json_object_get(c->req, "Tags");
	int r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0) {
		return r;
	}
	if (t == NULL || json_is_null(t)) {
		return op_fail(c, KMS_EVALIDATION, "1 validation error "
		    "detected: Value null at 'tags' failed to satisfy "
		    "constraint: Member must not be null");
	}
	if ((r = op_authorize(c, &ki, "TagResource", NULL)) != 0 ||
	    (r = op_parse_tags(c, t, &tags, &n)) != 0) {
		return r;
	}
	if (ki.state == KEY_PENDING_DELETION) {
		r = op_state_error(c, KMS_EINVALIDSTATE, &ki);
		goto out;
	}
	if ((r = c->w->st->ops->get_tags(c->w->st, ki.id, &have,
	    &nhave)) != 0) {
		r = op_fail(c, r, "The key store failed");
		goto out;
	}
	total = nhave;
	for (i = 0; i < n; i++) {
		for (j = 0; j < nhave; j++) {
			if (strcmp(tags[i].key, have[j].key) == 0) {
				break;
			}
		}
		total += j == nhave;
	}
	if (total > KMS_MAX_TAGS) {
		r = op_fail(c, KMS_ETAG, "%s", OP_TAGS_TOO_MANY);
		goto out;
	}
	if ((r = c->w->st->ops->put_tags(c->w->st, ki.id, tags, n)) != 0) {
		r = op_fail(c, r, "The key store failed");
		goto out;
	}
	(void)keycache_refresh(c->w, ki.id);
	if ((*resp = json_object()) == NULL) {
		r = op_fail(c, KMS_EINTERNAL, "out of memory");
	}
 out:
	free(tags);
	free(have);
	return r;
}

int
op_untag_resource(struct opctx *c, json_t **resp)
{
	const char *keys[KMS_MAX_TAGS];
	json_t *tk = json_object_get(c->req, "TagKeys"), *v;
	struct key_info ki;
	size_t i;
	int r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0) {
		return r;
	}
	if (tk == NULL || json_is_null(tk)) {
		return op_fail(c, KMS_EVALIDATION, "1 validation error "
		    "detected: Value null at 'tagKeys' failed to satisfy "
		    "constraint: Member must not be null");
	}
	if (!json_is_array(tk)) {
		return op_fail(c, KMS_ESERIALIZATION, "TagKeys must be a list "
		    "of strings");
	}
	if (json_array_size(tk) > KMS_MAX_TAGS) {
		return op_fail(c, KMS_ETAG, "%s", OP_TAGS_TOO_MANY);
	}
	json_array_foreach(tk, i, v) {
		if (!json_is_string(v)) {
			return op_fail(c, KMS_ESERIALIZATION, "TagKeys must be "
			    "a list of strings");
		}
		if (!ctx_utf8_valid(json_string_value(v), json_string_length(v))) {
			return op_fail(c, KMS_EVALIDATION, "TagKeys[%zu] is not "
			    "UTF-8", i);
		}
		if (json_string_length(v) < 1 ||
		    ctx_utf8_chars(json_string_value(v), json_string_length(v)) >
		    KMS_MAX_TAG_KEY) {
			return op_fail(c, KMS_EVALIDATION, "1 validation error "
			    "detected: Value '%s' at 'tagKeys.%zu.member' failed "
			    "to satisfy constraint: Member must have length %s "
			    "than or equal to %d", json_string_value(v), i + 1,
			    json_string_length(v) < 1 ? "greater" : "less",
			    json_string_length(v) < 1 ? 1 : KMS_MAX_TAG_KEY);
		}
		keys[i] = json_string_value(v);
	}
	if ((r = op_authorize(c, &ki, "UntagResource", NULL)) != 0) {
		return r;
	}
	if (ki.state == KEY_PENDING_DELETION) {
		return op_state_error(c, KMS_EINVALIDSTATE, &ki);
	}
	if ((r = c->w->st->ops->delete_tags(c->w->st, ki.id, keys,
	    json_array_size(tk))) != 0) {
		return op_fail(c, r, "The key store failed");
	}
	(void)keycache_refresh(c->w, ki.id);
	*resp = json_object();
	return *resp != NULL ? 0 : op_fail(c, KMS_EINTERNAL, "out of memory");
}

int
op_list_resource_tags(struct opctx *c, json_t **resp)
{
	struct store_tag *have = NULL;
	struct key_info ki;
	char marker[KMS_MAX_TAG_KEY * 4 + 1];
	long long limit;
	size_t n = 0, i, start = 0;
	json_t *arr;
	int present, r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = req_limit(c, KMS_MAX_TAGS, KMS_MAX_TAGS, &limit)) != 0 ||
	    (r = req_marker(c, "tags", marker, sizeof(marker),
	    &present)) != 0 ||
	    (r = op_authorize(c, &ki, "ListResourceTags", NULL)) != 0) {
		return r;
	}
	if ((r = c->w->st->ops->get_tags(c->w->st, ki.id, &have, &n)) != 0) {
		return op_fail(c, r, "The key store failed");
	}
	if (present) {
		/* The marker is the last tag key of the previous page. */
		for (start = 0; start < n && strcmp(have[start].key,
		    marker) <= 0; start++) {
		}
	}
	arr = json_array();
	for (i = start; arr != NULL && i < n && i < start + (size_t)limit;
	    i++) {
		json_array_append_new(arr, json_pack("{s:s, s:s}", "TagKey",
		    have[i].key, "TagValue", have[i].value));
	}
	*resp = json_pack("{s:o, s:b}", "Tags", arr, "Truncated", 0);
	r = *resp != NULL ? 0 : op_fail(c, KMS_EINTERNAL, "out of memory");
	if (r == 0 && i < n && i > start) {
		r = resp_next_marker(c, *resp, "tags", have[i - 1].key);
	}
	free(have);
	return r;
}

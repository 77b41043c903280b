/*
 * ops_lifecycle.c — a key's life: rotation (automatic and on demand, its
 * status and history), deletion and its cancellation, and the test
 * clock; imported key material.
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

/* One round trip for req (consumed); *replyp on success. */
static int
call(kms_client *c, json_t *req, json_t **replyp, kms_error_info *ei)
{
	int r = client_call(c, req, replyp, ei);

	json_decref(req);
	return r;
}

/* {"Action": action, "KeyId": key_id, name: n (when n > 0)}. */
static int
key_request(const char *action, const char *key_id, const char *name,
    long long n, json_t **out, kms_error_info *ei)
{
	json_t *o;

	if ((o = codec_request(action)) == NULL ||
	    codec_put_string(o, "KeyId", key_id) != 0 ||
	    (n > 0 && json_object_set_new(o, name, json_integer(n)) != 0)) {
		json_decref(o);
		return NOMEM(ei);
	}
	*out = o;
	return 0;
}

/* An operation whose success reply carries nothing we keep. */
static int
simple(kms_client *c, const char *action, const char *key_id,
    const char *name, long long n, kms_error_info *ei)
{
	json_t *o = NULL, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || key_id == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if ((r = key_request(action, key_id, name, n, &o, ei)) != 0 ||
	    (r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	json_decref(reply);
	return 0;
}

KMS_API int
kms_enable_key_rotation(kms_client *c, const char *key_id,
    int rotation_period_in_days, kms_error_info *ei)
{
	if (rotation_period_in_days < 0) {
		client_ok(ei);
		return client_fail(ei, KMS_EINVAL, "negative rotation period");
	}
	return simple(c, "EnableKeyRotation", key_id, "RotationPeriodInDays",
	    rotation_period_in_days, ei);
}

KMS_API int
kms_disable_key_rotation(kms_client *c, const char *key_id,
    kms_error_info *ei)
{
	return simple(c, "DisableKeyRotation", key_id, NULL, 0, ei);
}

KMS_API int
kms_rotate_key_on_demand(kms_client *c, const char *key_id,
    kms_error_info *ei)
{
	return simple(c, "RotateKeyOnDemand", key_id, NULL, 0, ei);
}

KMS_API int
kms_cancel_key_deletion(kms_client *c, const char *key_id,
    kms_error_info *ei)
{
	return simple(c, "CancelKeyDeletion", key_id, NULL, 0, ei);
}

KMS_API int
kms_get_key_rotation_status(kms_client *c, const char *key_id,
    kms_key_rotation_status *out, kms_error_info *ei)
{
	kms_key_rotation_status v;
	json_t *o = NULL, *reply = NULL;
	double period;
	int r;

	client_ok(ei);
	if (c == NULL || key_id == NULL || out == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if ((r = key_request("GetKeyRotationStatus", key_id, NULL, 0, &o,
	    ei)) != 0 || (r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	memset(&v, 0, sizeof(v));
	if ((r = codec_get_string(reply, "KeyId", v.key_id, sizeof(v.key_id),
	    0, ei)) == 0 &&
	    (r = codec_get_bool(reply, "KeyRotationEnabled",
	    &v.key_rotation_enabled, ei)) == 0 &&
	    (r = codec_get_number(reply, "RotationPeriodInDays", &period,
	    ei)) == 0 &&
	    (r = codec_get_number(reply, "NextRotationDate",
	    &v.next_rotation_date, ei)) == 0 &&
	    (r = codec_get_number(reply, "OnDemandRotationStartDate",
	    &v.on_demand_rotation_start_date, ei)) == 0) {
		if (period < 0 || period > 100000) {
			r = client_fail(ei, KMS_EPROTO, "The reply's "
			    "\"RotationPeriodInDays\" is out of range");
		} else {
			v.rotation_period_in_days = (int)period;
			*out = v;
		}
	}
	json_decref(reply);
	return r;
}

static int
parse_rotations(const json_t *reply, kms_key_rotation_list *out,
    kms_error_info *ei)
{
	const json_t *arr = json_object_get(reply, "Rotations"), *e;
	kms_key_rotation_list v;
	size_t i;
	int r;

	memset(&v, 0, sizeof(v));
	if (!json_is_array(arr)) {
		return client_fail(ei, KMS_EPROTO, "The reply has no "
		    "\"Rotations\" array");
	}
	if (json_array_size(arr) > 0 && (v.rotations = calloc(
	    json_array_size(arr), sizeof(*v.rotations))) == NULL) {
		return NOMEM(ei);
	}
	json_array_foreach(arr, i, e) {
		if (!json_is_object(e)) {
			r = client_fail(ei, KMS_EPROTO, "A \"Rotations\" "
			    "entry is not an object");
			goto fail;
		}
		if ((r = codec_get_string(e, "KeyId", v.rotations[i].key_id,
		    sizeof(v.rotations[i].key_id), 0, ei)) != 0 ||
		    (r = codec_get_number(e, "RotationDate",
		    &v.rotations[i].rotation_date, ei)) != 0 ||
		    (r = codec_get_string(e, "RotationType",
		    v.rotations[i].rotation_type,
		    sizeof(v.rotations[i].rotation_type), 0, ei)) != 0) {
			goto fail;
		}
	}
	v.nrotations = json_array_size(arr);
	if ((r = codec_get_page(reply, &v.truncated, &v.next_marker, ei)) !=
	    0) {
		goto fail;
	}
	*out = v;
	return 0;
 fail:
	free(v.rotations);
	return r;
}

KMS_API int
kms_list_key_rotations(kms_client *c, const char *key_id, int limit,
    const char *marker, kms_key_rotation_list *out, kms_error_info *ei)
{
	json_t *o = NULL, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || key_id == NULL || out == NULL || limit < 0) {
		return client_fail(ei, KMS_EINVAL, "NULL argument or negative "
		    "limit");
	}
	if ((r = key_request("ListKeyRotations", key_id, "Limit", limit, &o,
	    ei)) != 0) {
		return r;
	}
	if (codec_put_string(o, "Marker", marker) != 0) {
		json_decref(o);
		return NOMEM(ei);
	}
	if ((r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	r = parse_rotations(reply, out, ei);
	json_decref(reply);
	return r;
}

KMS_API void
kms_key_rotation_list_free(kms_key_rotation_list *l)
{
	if (l == NULL) {
		return;
	}
	free(l->rotations);
	free(l->next_marker);
	memset(l, 0, sizeof(*l));
}

KMS_API int
kms_schedule_key_deletion(kms_client *c, const char *key_id,
    int pending_window_in_days, kms_schedule_key_deletion_resp *out,
    kms_error_info *ei)
{
	kms_schedule_key_deletion_resp v;
	json_t *o = NULL, *reply = NULL;
	double days;
	int r;

	client_ok(ei);
	if (c == NULL || key_id == NULL || out == NULL ||
	    pending_window_in_days < 0) {
		return client_fail(ei, KMS_EINVAL, "NULL argument or negative "
		    "window");
	}
	if ((r = key_request("ScheduleKeyDeletion", key_id,
	    "PendingWindowInDays", pending_window_in_days, &o, ei)) != 0 ||
	    (r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	memset(&v, 0, sizeof(v));
	if ((r = codec_get_string(reply, "KeyId", v.key_id, sizeof(v.key_id),
	    0, ei)) == 0 &&
	    (r = codec_get_number(reply, "DeletionDate", &v.deletion_date,
	    ei)) == 0 &&
	    (r = codec_get_string(reply, "KeyState", v.key_state,
	    sizeof(v.key_state), 0, ei)) == 0 &&
	    (r = codec_get_number(reply, "PendingWindowInDays", &days,
	    ei)) == 0) {
		if (days < 0 || days > 1000) {
			r = client_fail(ei, KMS_EPROTO, "The reply's "
			    "\"PendingWindowInDays\" is out of range");
		} else {
			v.pending_window_in_days = (int)days;
			*out = v;
		}
	}
	json_decref(reply);
	return r;
}

KMS_API int
kms_advance_test_clock(kms_client *c, long long seconds, kms_error_info *ei)
{
	json_t *o, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || seconds <= 0) {
		return client_fail(ei, KMS_EINVAL, "NULL client or seconds "
		    "not positive");
	}
	if ((o = codec_request("AdvanceTestClock")) == NULL ||
	    json_object_set_new(o, "Seconds", json_integer(seconds)) != 0) {
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
kms_get_parameters_for_import(kms_client *c, const char *key_id,
    const char *wrapping_algorithm, const char *wrapping_key_spec,
    kms_import_parameters *out, kms_error_info *ei)
{
	kms_import_parameters v;
	json_t *o = NULL, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || key_id == NULL || wrapping_algorithm == NULL ||
	    wrapping_key_spec == NULL || out == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if ((r = key_request("GetParametersForImport", key_id, NULL, 0, &o,
	    ei)) != 0) {
		return r;
	}
	if (codec_put_string(o, "WrappingAlgorithm", wrapping_algorithm) !=
	    0 || codec_put_string(o, "WrappingKeySpec", wrapping_key_spec) !=
	    0) {
		json_decref(o);
		return NOMEM(ei);
	}
	if ((r = call(c, o, &reply, ei)) != 0) {
		return r;
	}
	memset(&v, 0, sizeof(v));
	if ((r = codec_get_string(reply, "KeyId", v.key_id, sizeof(v.key_id),
	    0, ei)) == 0 &&
	    (r = codec_get_number(reply, "ParametersValidTo",
	    &v.parameters_valid_to, ei)) == 0 &&
	    (r = codec_get_blob(reply, "ImportToken", &v.import_token, 1,
	    ei)) == 0) {
		if ((r = codec_get_blob(reply, "PublicKey", &v.public_key, 1,
		    ei)) == 0) {
			*out = v;
		} else {
			kms_buf_free(&v.import_token);
		}
	}
	json_decref(reply);
	return r;
}

KMS_API void
kms_import_parameters_free(kms_import_parameters *p)
{
	if (p == NULL) {
		return;
	}
	kms_buf_free(&p->import_token);
	kms_buf_free(&p->public_key);
}

KMS_API int
kms_import_key_material(kms_client *c, const char *key_id,
    const uint8_t *import_token, size_t import_token_len,
    const uint8_t *encrypted_key_material, size_t encrypted_len,
    double valid_to, kms_error_info *ei)
{
	json_t *o = NULL, *reply = NULL;
	int r;

	client_ok(ei);
	if (c == NULL || key_id == NULL || import_token == NULL ||
	    import_token_len == 0 || encrypted_key_material == NULL ||
	    encrypted_len == 0 || valid_to < 0) {
		return client_fail(ei, KMS_EINVAL, "NULL or empty argument");
	}
	if ((r = key_request("ImportKeyMaterial", key_id, NULL, 0, &o,
	    ei)) != 0) {
		return r;
	}
	if (codec_put_blob(o, "ImportToken", import_token,
	    import_token_len) != 0 ||
	    codec_put_blob(o, "EncryptedKeyMaterial", encrypted_key_material,
	    encrypted_len) != 0 ||
	    codec_put_string(o, "ExpirationModel", valid_to > 0 ?
	    "KEY_MATERIAL_EXPIRES" : "KEY_MATERIAL_DOES_NOT_EXPIRE") != 0 ||
	    (valid_to > 0 && json_object_set_new(o, "ValidTo",
	    json_real(valid_to)) != 0)) {
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
kms_delete_imported_key_material(kms_client *c, const char *key_id,
    kms_error_info *ei)
{
	return simple(c, "DeleteImportedKeyMaterial", key_id, NULL, 0, ei);
}

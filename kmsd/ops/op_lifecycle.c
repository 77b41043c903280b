/*
 * op_lifecycle.c — a key's life: EnableKeyRotation, DisableKeyRotation,
 * GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations,
 * ScheduleKeyDeletion, CancelKeyDeletion.
 *
 * AWS's names, fields, limits and errors, and its key-state table: a
 * Disabled key answers DisabledException to the rotation operations, a
 * key in any other state but Enabled KMSInvalidStateException.  The work
 * itself is elsewhere: a rotation in the key cache (keycache_rotate: new
 * material in the HSM, committed, current at once on every worker),
 * automatic rotations and the shred in the scheduler (daemon/lifecycle.c).
 * RotateKeyOnDemand and CancelKeyDeletion hold the key's store lease while
 * they work, so they never race the scheduler (or another node).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "kmsd/daemon/clock.h"
#include "kmsd/daemon/lifecycle.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/ops/op.h"

#define DAY_MS 86400000LL
#define ROTATION_PERIOD_MIN 90		/* AWS RotationPeriodInDays */
#define ROTATION_PERIOD_MAX 2560
#define ROTATION_PERIOD_DEFAULT 365
#define ON_DEMAND_MAX 25		/* AWS: on-demand rotations per key */
#define PENDING_WINDOW_MIN 7		/* AWS PendingWindowInDays */
#define PENDING_WINDOW_MAX 30
#define PENDING_WINDOW_DEFAULT 30

/* Rotation needs an Enabled key (AWS's key-state table) whose material
 * kmsd makes. */
static int
need_enabled(struct opctx *c, const struct key_info *ki)
{
	if (strcmp(ki->origin, "EXTERNAL") == 0) {
		/* AWS's text (LocalStack's snapshot of AWS). */
		return op_fail(c, KMS_EUNSUPPORTED, "%s origin is EXTERNAL "
		    "which is not valid for this operation.", ki->arn);
	}
	switch (ki->state) {
	case KEY_ENABLED:
		return 0;
	case KEY_DISABLED:
		return op_state_error(c, KMS_EDISABLED, ki);
	default:
		return op_state_error(c, KMS_EINVALIDSTATE, ki);
	}
}

/* This request's name as a lease holder. */
static void
request_holder(struct opctx *c, const char *what, char *out, size_t len)
{
	snprintf(out, len, "%s:%s:w%d", c->w->d->node_id, what, c->w->id);
}

static json_t *
date(int64_t ms)
{
	return json_real((double)ms / 1000.0);
}

static int
reply_key_id(struct opctx *c, const struct key_info *ki, json_t **resp)
{
	if ((*resp = json_pack("{s:s}", "KeyId", ki->arn)) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	return 0;
}

int
op_enable_key_rotation(struct opctx *c, json_t **resp)
{
	struct store_rotation_schedule rs, old;
	struct key_info ki;
	long long days = ROTATION_PERIOD_DEFAULT;
	int present, r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = req_int(c, "RotationPeriodInDays", 0, ROTATION_PERIOD_MIN,
	    ROTATION_PERIOD_MAX, &days, &present)) != 0 ||
	    (r = op_authorize(c, &ki, "EnableKeyRotation", NULL)) != 0 ||
	    (r = need_enabled(c, &ki)) != 0) {
		return r;
	}
	memset(&rs, 0, sizeof(rs));
	rs.period_days = (uint32_t)days;
	/* Already on: the new period counts from the same date, as AWS
	 * does (a date now past makes the rotation due at once). */
	r = c->w->st->ops->get_rotation_schedule(c->w->st, ki.id, &old);
	if (r == 0) {
		rs.base_ms = old.base_ms;
	} else if (r == KMS_ENOTFOUND) {
		rs.base_ms = now_ms();
	} else {
		return op_fail(c, r, "The key store failed");
	}
	rs.next_ms = rs.base_ms + (int64_t)days * DAY_MS;
	if ((r = c->w->st->ops->set_rotation_schedule(c->w->st, ki.id,
	    &rs)) != 0) {
		return op_state_error(c, r, &ki);
	}
	if ((*resp = json_object()) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	return 0;
}

int
op_disable_key_rotation(struct opctx *c, json_t **resp)
{
	struct key_info ki;
	int r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = op_authorize(c, &ki, "DisableKeyRotation", NULL)) != 0 ||
	    (r = need_enabled(c, &ki)) != 0) {
		return r;
	}
	if ((r = c->w->st->ops->set_rotation_schedule(c->w->st, ki.id,
	    NULL)) != 0) {
		return op_state_error(c, r, &ki);
	}
	if ((*resp = json_object()) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	return 0;
}

int
op_get_key_rotation_status(struct opctx *c, json_t **resp)
{
	struct store_rotation_schedule rs;
	struct key_info ki;
	char lease[STORE_LEASE_NAME_MAX], holder[STORE_LEASE_HOLDER_MAX];
	int64_t since;
	int r, on;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = op_authorize(c, &ki, "GetKeyRotationStatus", NULL)) != 0) {
		return r;
	}
	r = c->w->st->ops->get_rotation_schedule(c->w->st, ki.id, &rs);
	if (r != 0 && r != KMS_ENOTFOUND) {
		return op_fail(c, r, "The key store failed");
	}
	on = r == 0;
	if ((*resp = json_pack("{s:s, s:b}", "KeyId", ki.arn,
	    "KeyRotationEnabled", on)) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	if (on) {
		json_object_set_new(*resp, "RotationPeriodInDays",
		    json_integer(rs.period_days));
		json_object_set_new(*resp, "NextRotationDate",
		    date(rs.next_ms));
	}
	/* An on-demand rotation under way holds the key's lease. */
	lease_name(ki.id, lease, sizeof(lease));
	if (c->w->st->ops->get_lease(c->w->st, lease, now_ms(), holder,
	    &since) == 0 && strstr(holder, ":on-demand:") != NULL) {
		json_object_set_new(*resp, "OnDemandRotationStartDate",
		    date(since));
	}
	return 0;
}

int
op_rotate_key_on_demand(struct opctx *c, json_t **resp)
{
	struct key_info ki;
	char lease[STORE_LEASE_NAME_MAX], holder[STORE_LEASE_HOLDER_MAX];
	uint32_t made = 0;
	size_t n = 0;
	int r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = op_authorize(c, &ki, "RotateKeyOnDemand", NULL)) != 0 ||
	    (r = need_enabled(c, &ki)) != 0) {
		return r;
	}
	lease_name(ki.id, lease, sizeof(lease));
	request_holder(c, "on-demand", holder, sizeof(holder));
	if ((r = lease_claim(c->w, lease, holder)) != 0) {
		if (r == KMS_ECONFLICT) {
			return op_fail(c, r, "A rotation of %s is in progress; "
			    "retry when it is done.", ki.arn);
		}
		return op_fail(c, r, "The key store failed");
	}
	/* Counted with the lease held, so two requests cannot both pass. */
	if ((r = c->w->st->ops->count_rotations(c->w->st, ki.id,
	    ROTATION_ON_DEMAND, &n)) != 0) {
		r = op_fail(c, r, "The key store failed");
		goto out;
	}
	if (n >= ON_DEMAND_MAX) {
		/* AWS's text (LocalStack's snapshot of AWS). */
		r = op_fail(c, KMS_ELIMITEXCEEDED, "The on-demand rotations "
		    "limit has been reached for the given keyId. No more "
		    "on-demand rotations can be performed for this key: %s",
		    ki.arn);
		goto out;
	}
	if ((r = keycache_rotate(c->w, &ki, ROTATION_ON_DEMAND, &made)) !=
	    0) {
		if (r == KMS_ECONFLICT) {
			r = op_fail(c, r, "A rotation of %s is in progress; "
			    "retry when it is done.", ki.arn);
		} else {
			r = op_state_error(c, r, &ki);
		}
		goto out;
	}
	r = reply_key_id(c, &ki, resp);
 out:
	(void)c->w->st->ops->release_lease(c->w->st, lease, holder);
	return r;
}

static const char *
rotation_type(int kind)
{
	return kind == ROTATION_ON_DEMAND ? "ON_DEMAND" : "AUTOMATIC";
}

int
op_list_key_rotations(struct opctx *c, json_t **resp)
{
	struct store_rotation *rot = NULL;
	struct key_info ki;
	char marker[16];
	long long limit;
	unsigned long after = 0;
	size_t n = 0, i;
	json_t *arr = NULL, *o;
	char *end;
	int present, more = 0, r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = req_limit(c, KMS_LIST_DEFAULT, KMS_LIST_MAX, &limit)) != 0 ||
	    (r = req_marker(c, "rotations", marker, sizeof(marker),
	    &present)) != 0 ||
	    (r = op_authorize(c, &ki, "ListKeyRotations", NULL)) != 0) {
		return r;
	}
	if (present) {
		after = strtoul(marker, &end, 10);
		if (*marker < '1' || *marker > '9' || *end != '\0' ||
		    after > UINT32_MAX) {
			return op_fail(c, KMS_EINVALIDMARKER, "Invalid Marker");
		}
	}
	if ((rot = calloc((size_t)limit, sizeof(*rot))) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	if ((r = c->w->st->ops->list_rotations(c->w->st, ki.id,
	    (uint32_t)after, (size_t)limit, rot, &n, &more)) != 0) {
		r = op_fail(c, r, "The key store failed");
		goto out;
	}
	if ((arr = json_array()) == NULL) {
		r = op_fail(c, KMS_EINTERNAL, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		o = json_pack("{s:s, s:o, s:s}", "KeyId", ki.arn,
		    "RotationDate", date(rot[i].rotation_ms),
		    "RotationType", rotation_type(rot[i].kind));
		/* kmsd's own rotations when a version's GCM budget is
		 * spent are AUTOMATIC to AWS's clients, and say why. */
		if (o != NULL && rot[i].kind == ROTATION_BUDGET) {
			json_object_set_new(o, "RotationReason",
			    json_string("ENCRYPTION_LIMIT"));
		}
		if (o == NULL || json_array_append_new(arr, o) != 0) {
			r = op_fail(c, KMS_EINTERNAL, "out of memory");
			goto out;
		}
	}
	if ((*resp = json_pack("{s:O, s:b}", "Rotations", arr, "Truncated",
	    more)) == NULL) {
		r = op_fail(c, KMS_EINTERNAL, "out of memory");
		goto out;
	}
	r = 0;
	if (more && n > 0) {
		char m[16];
		snprintf(m, sizeof(m), "%u", rot[n - 1].version);
		r = resp_next_marker(c, *resp, "rotations", m);
	}
 out:
	json_decref(arr);
	free(rot);
	return r;
}

int
op_schedule_key_deletion(struct opctx *c, json_t **resp)
{
	struct store_key *k = NULL;
	struct key_info ki;
	long long days = PENDING_WINDOW_DEFAULT;
	json_t *ok = NULL;
	int present, r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = req_int(c, "PendingWindowInDays", 0, PENDING_WINDOW_MIN,
	    PENDING_WINDOW_MAX, &days, &present)) != 0 ||
	    (r = op_authorize(c, &ki, "ScheduleKeyDeletion", NULL)) != 0) {
		return r;
	}
	if (ki.state == KEY_PENDING_DELETION) {
		return op_state_error(c, KMS_EINVALIDSTATE, &ki);
	}
	if ((r = op_load_row(c, &ki, &k)) != 0) {
		return r;
	}
	k->state = KEY_PENDING_DELETION;
	k->deletion_ms = now_ms() + (int64_t)days * DAY_MS;
	if ((r = op_commit_key(c, &ki, k, &ok)) != 0) {
		goto out;
	}
	if ((*resp = json_pack("{s:s, s:o, s:s, s:I}", "KeyId", ki.arn,
	    "DeletionDate", date(k->deletion_ms), "KeyState",
	    "PendingDeletion", "PendingWindowInDays", (json_int_t)days)) ==
	    NULL) {
		r = op_fail(c, KMS_EINTERNAL, "out of memory");
		goto out;
	}
	r = 0;
 out:
	json_decref(ok);
	free(k);
	return r;
}

int
op_cancel_key_deletion(struct opctx *c, json_t **resp)
{
	struct store_key *k = NULL;
	struct key_info ki;
	char lease[STORE_LEASE_NAME_MAX], holder[STORE_LEASE_HOLDER_MAX];
	json_t *ok = NULL;
	int r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = op_authorize(c, &ki, "CancelKeyDeletion", NULL)) != 0) {
		return r;
	}
	if (ki.state != KEY_PENDING_DELETION) {
		return op_state_error(c, KMS_EINVALIDSTATE, &ki);
	}
	/* The scheduler shreds under this lease: hold it while the key
	 * comes back, so the two never cross. */
	lease_name(ki.id, lease, sizeof(lease));
	request_holder(c, "cancel", holder, sizeof(holder));
	if ((r = lease_claim(c->w, lease, holder)) != 0) {
		return op_fail(c, r == KMS_ECONFLICT ? KMS_EINVALIDSTATE : r,
		    "%s is being deleted.", ki.arn);
	}
	if ((r = op_load_row(c, &ki, &k)) != 0) {
		goto out;
	}
	if (k->state != KEY_PENDING_DELETION) {
		ki.state = k->state;
		r = op_state_error(c, KMS_EINVALIDSTATE, &ki);
		goto out;
	}
	/* AWS: a key whose deletion is cancelled comes back Disabled. */
	k->state = KEY_DISABLED;
	k->deletion_ms = 0;
	if ((r = op_commit_key(c, &ki, k, &ok)) != 0) {
		goto out;
	}
	r = reply_key_id(c, &ki, resp);
 out:
	(void)c->w->st->ops->release_lease(c->w->st, lease, holder);
	json_decref(ok);
	free(k);
	return r;
}

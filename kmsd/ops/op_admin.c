/*
 * op_admin.c — operations for kmsd's administrators (the administrators
 * of kmsd.conf), not for keys: AdvanceTestClock, RotateDomainKey,
 * GetDomainKeyStatus.
 *
 * AdvanceTestClock moves kmsd's clock (daemon/clock.c) forward so that
 * tests see rotations and deletions come due without waiting for days.
 * It is refused outright unless kmsd.conf says test_clock = yes, a
 * test-only setting, and then to anyone who is not an administrator.
 *
 * RotateDomainKey records the request in the store and wakes the
 * scheduler, which does the work (daemon/lifecycle.c: it needs the HSM
 * to itself at the start and the end, which a request, holding the HSM's
 * turn for reading, cannot take); GetDomainKeyStatus says how far it is.
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "kmsd/authz/authz.h"
#include "kmsd/daemon/clock.h"
#include "kmsd/ops/op.h"

/* Ten years: past any rotation period (2560 days) or deletion window. */
#define TEST_CLOCK_MAX_S (10LL * 366 * 86400)

static int
require_admin(struct opctx *c)
{
	if (!authz_is_admin(c->w->d, c->p)) {
		return op_fail(c, KMS_EACCESSDENIED, "User: %s is not "
		    "authorized to perform: kms:%s (only the administrators "
		    "named in kmsd.conf may)", c->p->name, c->action);
	}
	return 0;
}

int
op_advance_test_clock(struct opctx *c, json_t **resp)
{
	long long secs = 0, days = 0;
	int64_t off;
	int has_s, has_d, r;

	if (!c->w->d->cfg.test_clock) {
		return op_fail(c, KMS_EUNSUPPORTED, "This kmsd's clock cannot "
		    "be moved: AdvanceTestClock needs test_clock = yes in "
		    "kmsd.conf, a setting for tests only");
	}
	if ((r = require_admin(c)) != 0 ||
	    (r = req_int(c, "Seconds", 0, 1, TEST_CLOCK_MAX_S, &secs,
	    &has_s)) != 0 ||
	    (r = req_int(c, "Days", 0, 1, TEST_CLOCK_MAX_S / 86400, &days,
	    &has_d)) != 0) {
		return r;
	}
	if (!has_s && !has_d) {
		return op_fail(c, KMS_EVALIDATION, "AdvanceTestClock needs "
		    "Seconds or Days");
	}
	secs += days * 86400;
	if (secs > TEST_CLOCK_MAX_S) {
		return op_fail(c, KMS_EVALIDATION, "AdvanceTestClock moves "
		    "at most %lld seconds at once", TEST_CLOCK_MAX_S);
	}
	off = clock_advance((int64_t)secs * 1000);
	log_warn("test clock moved forward %lld s by %s (now %lld s ahead)",
	    secs, c->p->name, (long long)(off / 1000));
	atomic_store(&c->w->d->lifecycle_kick, 1);
	if ((*resp = json_pack("{s:f, s:I}", "Now", (double)now_ms() / 1000.0,
	    "OffsetSeconds", (json_int_t)(off / 1000))) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	return 0;
}

static const char *
domain_state_name(int s)
{
	switch (s) {
	case DOMAIN_ROTATION_REQUESTED:
		return "REQUESTED";
	case DOMAIN_ROTATION_REWRAPPING:
		return "REWRAPPING";
	case DOMAIN_ROTATION_DONE:
		return "DONE";
	default:
		return "NONE";
	}
}

static int
domain_status(struct opctx *c, json_t **resp)
{
	struct store_domain_rotation dr;
	int r;

	if ((r = c->w->st->ops->get_domain_rotation(c->w->st, &dr)) != 0 &&
	    r != KMS_ENOTFOUND) {
		return op_fail(c, r, "The key store failed");
	}
	if (r == KMS_ENOTFOUND) {
		memset(&dr, 0, sizeof(dr));
	}
	*resp = json_pack("{s:s, s:s, s:I, s:I}", "KeyStorage",
	    c->w->d->cfg.key_storage == STORAGE_RESIDENT ? "resident" :
	    "wrapped", "State", domain_state_name(dr.state),
	    "VersionsRewrapped", (json_int_t)dr.done,
	    "VersionsTotal", (json_int_t)dr.total);
	if (*resp == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	if (dr.started_ms > 0) {
		json_object_set_new(*resp, "StartedDate",
		    json_real((double)dr.started_ms / 1000.0));
	}
	if (dr.finished_ms > 0 && dr.state == DOMAIN_ROTATION_DONE) {
		json_object_set_new(*resp, "FinishedDate",
		    json_real((double)dr.finished_ms / 1000.0));
	}
	if (dr.requested_by[0] != '\0') {
		json_object_set_new(*resp, "RequestedBy",
		    json_string(dr.requested_by));
	}
	if (c->w->d->cfg.key_storage == STORAGE_RESIDENT) {
		json_object_set_new(*resp, "Message", json_string("Resident "
		    "keys are token objects, not wrapped: the domain key "
		    "wraps nothing here."));
	}
	return 0;
}

int
op_get_domain_key_status(struct opctx *c, json_t **resp)
{
	int r;

	if ((r = require_admin(c)) != 0) {
		return r;
	}
	return domain_status(c, resp);
}

int
op_rotate_domain_key(struct opctx *c, json_t **resp)
{
	struct store_domain_rotation dr;
	int r;

	if ((r = require_admin(c)) != 0) {
		return r;
	}
	if (c->w->d->cfg.key_storage == STORAGE_RESIDENT) {
		return op_fail(c, KMS_EUNSUPPORTED, "key_storage is resident: "
		    "keys are token objects in the HSM, not wrapped, so there "
		    "is nothing for a new domain key to re-wrap.");
	}
	if ((r = c->w->st->ops->get_domain_rotation(c->w->st, &dr)) != 0 &&
	    r != KMS_ENOTFOUND) {
		return op_fail(c, r, "The key store failed");
	}
	if (r == 0 && dr.state != DOMAIN_ROTATION_DONE) {
		/* One at a time; asking again just shows it. */
		return domain_status(c, resp);
	}
	memset(&dr, 0, sizeof(dr));
	dr.state = DOMAIN_ROTATION_REQUESTED;
	dr.started_ms = now_ms();
	snprintf(dr.requested_by, sizeof(dr.requested_by), "%s",
	    c->p->name);
	if ((r = c->w->st->ops->put_domain_rotation(c->w->st, &dr)) != 0) {
		return op_fail(c, r, "The key store failed");
	}
	log_info("domain-key rotation requested by %s", c->p->name);
	atomic_store(&c->w->d->lifecycle_kick, 1);
	return domain_status(c, resp);
}

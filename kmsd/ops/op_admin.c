/*
 * op_admin.c — operations for kmsd's administrators (the administrators
 * of kmsd.conf), not for keys: AdvanceTestClock.
 *
 * AdvanceTestClock moves kmsd's clock (daemon/clock.c) forward so that
 * tests see rotations and deletions come due without waiting for days.
 * It is refused outright unless kmsd.conf says test_clock = yes, a
 * test-only setting, and then to anyone who is not an administrator.
 */
#include <stdio.h>

#include "common/err.h"
#include "common/log.h"
#include "kmsd/authz/authz.h"
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

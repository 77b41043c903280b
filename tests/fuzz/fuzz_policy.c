/*
 * fuzz_policy.c — libFuzzer harness for key policy documents.
 *
 * The bytes go to policy_compile as the daemon passes PutKeyPolicy's
 * Policy.  A refusal must carry a printable message; a compiled policy is
 * evaluated against a few fixed callers, twice, and must answer one of
 * the three decisions the same way both times.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct policy *p, const struct policy_request *r)
{
	enum policy_decision a = policy_evaluate(p, r);

	if (a != POLICY_ALLOW && a != POLICY_DENY_EXPLICIT &&
	    a != POLICY_DENY_IMPLICIT) {
		abort();
	}
	if (policy_evaluate(p, r) != a) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const groups[] = { "ops", "staff" };
	static const char *const ops[] = { "Decrypt", "CreateGrant" };
	static const kms_context_pair ctx[] = { { "Department", "IT" },
	    { "app", "web" } };
	char err[POLICY_ERR_MAX];
	struct policy_request r;
	struct policy *p;
	const unsigned char *e;

	err[0] = '\0';
	if ((p = policy_compile((const char *)data, size, err,
	    sizeof(err))) == NULL) {
		if (err[0] == '\0') {
			abort();
		}
		for (e = (const unsigned char *)err; *e != '\0'; e++) {
			if (*e < 0x20 || *e >= 0x7f) {
				abort();
			}
		}
		return 0;
	}
	memset(&r, 0, sizeof(r));
	r.action = "Decrypt";
	r.resource = "arn:aws:kms:local:111122223333:key/"
	    "1234abcd-12ab-34cd-56ef-1234567890ab";
	r.principal = "uid:1000";
	r.uid = 1000;
	r.user = "alice";
	r.groups = groups;
	r.ngroups = 2;
	r.context = ctx;
	r.ncontext = 2;
	r.request_alias = "alias/app";
	r.grant_operations = ops;
	r.ngrant_operations = 2;
	r.current_time = 1700000000;
	r.source_ip = "10.1.2.3";
	r.bypass_lockout = 1;
	check(p, &r);
	/* A caller with almost nothing: every key missing. */
	memset(&r, 0, sizeof(r));
	r.action = "kms:CreateKey";
	r.uid = -1;
	r.bypass_lockout = -1;
	r.cert = "svc";
	check(p, &r);
	policy_free(p);
	return 0;
}

/*
 * op_audit.c — GetAuditPublicKey (kmsd's own operation, not AWS's): the
 * public half of the audit signing key, so that `kmsctl audit public-key`
 * can export it and `kmsctl audit verify` check a log offline.  A public
 * key is nobody's secret: every caller may have it.
 */
#include <string.h>

#include "common/err.h"
#include "kmsd/audit/audit.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/ops/op.h"

#define PEM_MAX 512

int
op_get_audit_public_key(struct opctx *c, json_t **resp)
{
	char pem[PEM_MAX], fp[64];
	const char *alg = NULL;

	if (audit_public_key(c->w->d->audit, pem, sizeof(pem), fp, sizeof(fp),
	    &alg) != 0) {
		return op_fail(c, KMS_EUNSUPPORTED, "Auditing is off (audit = "
		    "no): there is no audit signing key");
	}
	if ((*resp = json_pack("{s:s, s:s, s:s}", "PublicKey", pem,
	    "KeyFingerprint", fp, "SigningAlgorithm", alg)) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	return 0;
}

/*
 * GetKeyLastUsage (AWS): the last successful cryptographic operation with
 * a key, as the audit log recorded it (its eventID and request id).  The
 * table is saved beside the log and read back at start-up with what the
 * log recorded after the save, so tracking starts when the log first did
 * (or when the key was created, whichever is later).
 */
int
op_get_key_last_usage(struct opctx *c, json_t **resp)
{
	struct key_info ki;
	struct audit_usage u;
	int64_t tracking = 0;
	json_t *o;
	int r, have;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = op_authorize(c, &ki, "GetKeyLastUsage", NULL)) != 0) {
		return r;
	}
	if (c->w->d->audit == NULL) {
		return op_fail(c, KMS_EUNSUPPORTED, "Auditing is off (audit = "
		    "no): kmsd records no key usage");
	}
	have = audit_last_usage(c->w->d->audit, ki.id_str, &u, &tracking);
	if (tracking < ki.creation_ms) {
		tracking = ki.creation_ms;
	}
	o = json_pack("{s:s, s:f, s:f}", "KeyId", ki.id_str,
	    "TrackingStartDate", (double)tracking / 1000.0, "KeyCreationDate",
	    (double)ki.creation_ms / 1000.0);
	if (o != NULL && have && json_object_set_new(o, "KeyLastUsage",
	    json_pack("{s:s, s:f, s:s, s:s}", "Operation", u.op, "Timestamp",
	    (double)u.at_ms / 1000.0, "CloudTrailEventId", u.event_id,
	    "KmsRequestId", u.request_id)) != 0) {
		json_decref(o);
		o = NULL;
	}
	if (o == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	*resp = o;
	return 0;
}

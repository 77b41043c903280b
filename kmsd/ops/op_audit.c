/*
 * op_audit.c — GetAuditPublicKey (kmsd's own operation, not AWS's): the
 * public half of the audit signing key, so that `kmsctl audit public-key`
 * can export it and `kmsctl audit verify` check a log offline.  A public
 * key is nobody's secret: every caller may have it.
 */
#include <string.h>

#include "common/err.h"
#include "kmsd/audit/audit.h"
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
